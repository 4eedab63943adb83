//! The parallel, deterministic loader: `num_workers` threads turn sampler positions into
//! normalised float32 [`Batch`]es, delivered in sampler order.
//!
//! **Determinism.** Every random draw of a sample (temporal offset, crop, flip, augmentation op
//! and magnitude) comes from [`sample_rng`]`(seed, epoch, position)`, and the order comes from the
//! sampler's `(seed, epoch)`, so a batch is bit-identical for any worker count, thread timing or
//! resume point ([`Loader::epoch_from`]).
//!
//! **Memory bound.** Workers may only start batch `b` while `b < delivered + queue_depth`, so at
//! most `queue_depth` batches are being built or queued, plus the batch the consumer holds: a
//! consumer that drops each batch before taking the next keeps batch memory under
//! `(queue_depth + 1) * batch_bytes` ([`Loader::memory_bound_bytes`]) with
//! `batch_bytes = 4 * batch_size * 3 * num_frames * input_size^2` (16 x 224 x 224 clips, batch 8:
//! 77 MB per batch). Dropped batches return their buffer to the loader's pool (it keeps at most
//! `queue_depth + 1`), so every epoch reuses the same memory. Per worker there is also one
//! cropped uint8 frame and a 64 KiB table ([`TransformScratch`], reused from sample to sample);
//! cache-mode clips are read in place from a memory map of the entry, not copied.
//!
//! **Speed.** Workers run the fused [`ClipTransform::apply_normalized`]: resample the crop once,
//! then one pass per frame that applies flip, augmentation and normalisation while writing the
//! sample's slot of the batch.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use std::sync::Weak;

use ethos_video::Clip;
use fast_image_resize::Resizer;
use rand::Rng;

use crate::dataset::{ClipDataset, LoadedClip};
use crate::error::DataError;
use crate::rng::sample_rng;
use crate::sampler::Sampler;
use crate::shard::Shard;
use crate::transforms::{ClipTransform, Layout, TransformParams, TransformScratch};

/// Where a loader gets uint8 clips and labels from ([`ClipDataset`], or a test source).
pub trait ClipSource: Send + Sync {
    /// Number of samples.
    fn len(&self) -> usize;
    /// True when there are no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Class index of sample `index`.
    fn label(&self, index: usize) -> usize;
    /// Event id of sample `index`.
    fn event_idx(&self, index: usize) -> u32;
    /// Largest temporal offset in frames (`M`).
    fn max_offset(&self) -> usize;
    /// The uint8 clip `(T, H, W, 3)` of sample `index` shifted by `offset` frames.
    fn load(&self, index: usize, offset: i32) -> Result<Clip, DataError>;
    /// As [`Self::load`], in place where the source can (the loader's path; a cache is
    /// memory-mapped instead of copied).
    fn load_frames(&self, index: usize, offset: i32) -> Result<LoadedClip, DataError> {
        self.load(index, offset).map(LoadedClip::Owned)
    }
}

impl ClipSource for ClipDataset {
    fn len(&self) -> usize {
        ClipDataset::len(self)
    }
    fn label(&self, index: usize) -> usize {
        self.items()[index].event.class_index
    }
    fn event_idx(&self, index: usize) -> u32 {
        self.items()[index].event.event_idx
    }
    fn max_offset(&self) -> usize {
        self.margin()
    }
    fn load(&self, index: usize, offset: i32) -> Result<Clip, DataError> {
        ClipDataset::load(self, index, offset)
    }
    fn load_frames(&self, index: usize, offset: i32) -> Result<LoadedClip, DataError> {
        ClipDataset::load_frames(self, index, offset)
    }
}

/// The float32 pixels of a [`Batch`]. Dropping it hands the memory back to the loader that made
/// it, so later batches reuse pages that are already mapped: having the kernel fault in and
/// zero a fresh 77 MB batch cost about a seventh of the loader's CPU time.
pub struct BatchBuffer {
    data: Vec<f32>,
    pool: Weak<BufferPool>,
}

impl std::ops::Deref for BatchBuffer {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.data
    }
}

impl std::ops::DerefMut for BatchBuffer {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }
}

impl AsRef<[f32]> for BatchBuffer {
    fn as_ref(&self) -> &[f32] {
        &self.data
    }
}

impl From<Vec<f32>> for BatchBuffer {
    /// A buffer that belongs to no pool.
    fn from(data: Vec<f32>) -> Self {
        Self {
            data,
            pool: Weak::new(),
        }
    }
}

impl Clone for BatchBuffer {
    /// A copy that belongs to no pool.
    fn clone(&self) -> Self {
        Self::from(self.data.clone())
    }
}

impl PartialEq for BatchBuffer {
    fn eq(&self, other: &Self) -> bool {
        self.data == other.data
    }
}

impl std::fmt::Debug for BatchBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BatchBuffer({} values)", self.data.len())
    }
}

impl Drop for BatchBuffer {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.upgrade() {
            pool.give_back(std::mem::take(&mut self.data));
        }
    }
}

/// Free batch buffers of one loader, at most `keep`.
#[derive(Debug)]
struct BufferPool {
    free: Mutex<Vec<Vec<f32>>>,
    keep: usize,
}

impl BufferPool {
    /// A buffer of `len` values: a free one (old contents; the batch overwrites every value) or
    /// a new zeroed one.
    fn take(&self, len: usize) -> Vec<f32> {
        let reused = self.free.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match reused {
            Some(mut buf) if buf.capacity() >= len => {
                buf.resize(len, 0.0);
                buf
            }
            _ => batch_buffer(len),
        }
    }

    fn give_back(&self, buf: Vec<f32>) {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if free.len() < self.keep {
            free.push(buf);
        }
    }
}

/// A batch leaving the loader: float32 inputs in `layout` with `shape` (`[B, C, T, H, W]` or
/// `[B, T, C, H, W]`), and per sample its label, event id and position in the epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Normalised pixels, `shape.iter().product()` values.
    pub inputs: BatchBuffer,
    /// The 5-d shape in `layout` order.
    pub shape: [usize; 5],
    /// Axis order of `inputs`.
    pub layout: Layout,
    /// Class index per sample.
    pub labels: Vec<usize>,
    /// Event id per sample.
    pub event_idx: Vec<u32>,
    /// Position of each sample in the epoch (index into the sampler's order).
    pub positions: Vec<usize>,
}

/// Loader settings.
#[derive(Debug, Clone)]
pub struct LoaderOptions {
    /// Clips per batch.
    pub batch_size: usize,
    /// Worker threads; 0 builds batches on the calling thread.
    pub num_workers: usize,
    /// Most batches alive at once (see the module's memory bound); at least 1.
    pub queue_depth: usize,
    /// Run seed.
    pub seed: u64,
    /// Output layout the model asks for.
    pub layout: Layout,
    /// Frames per clip the source delivers (checked).
    pub num_frames: usize,
    /// Leave out the last incomplete batch.
    pub drop_last: bool,
}

/// What one sample of an epoch became: the transformed uint8 clip, its parameters and offset.
#[derive(Debug, Clone)]
pub struct PreparedSample {
    /// The clip after crop/flip/augmentation, `(T, size, size, 3)`.
    pub clip: Clip,
    /// The temporal offset in frames.
    pub offset: i32,
    /// The spatial parameters drawn.
    pub params: TransformParams,
}

/// Draws and applies everything random for the sample at `position` of `epoch`, in the fixed
/// order: temporal offset (train with jitter), then [`ClipTransform::sample_params`].
pub fn prepare_sample(
    source: &dyn ClipSource,
    transform: &ClipTransform,
    resizer: &mut Resizer,
    seed: u64,
    epoch: u64,
    position: usize,
    index: usize,
) -> Result<PreparedSample, DataError> {
    let (clip, offset, params) = load_sample(source, transform, seed, epoch, position, index)?;
    let clip = transform.apply(resizer, &clip.into_clip(), &params);
    Ok(PreparedSample {
        clip,
        offset,
        params,
    })
}

/// The random draws of [`prepare_sample`] and the loaded (untransformed) clip.
fn load_sample(
    source: &dyn ClipSource,
    transform: &ClipTransform,
    seed: u64,
    epoch: u64,
    position: usize,
    index: usize,
) -> Result<(LoadedClip, i32, TransformParams), DataError> {
    let mut rng = sample_rng(seed, epoch, position as u64);
    let m = source.max_offset() as i32;
    let jitter = transform.augmentation().is_some_and(|a| a.temporal_jitter) && m > 0;
    let offset = if jitter { rng.random_range(-m..=m) } else { 0 };
    let clip = source.load_frames(index, offset)?;
    let view = clip.view();
    let params = transform.sample_params(&mut rng, view.height, view.width);
    Ok((clip, offset, params))
}

/// A zeroed buffer for one batch. A batch is tens of MB that are written once: on Linux it asks
/// for transparent huge pages, since faulting it in 4 KiB pages cost about a third of the CPU
/// time of a 16 x 224 x 224 sample (19k page faults per batch of 8).
fn batch_buffer(len: usize) -> Vec<f32> {
    let buf = vec![0f32; len];
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let bytes = len * std::mem::size_of::<f32>();
        if bytes >= 2 * HUGE {
            let start = buf.as_ptr() as usize;
            let first = start.next_multiple_of(4096);
            let end = (start + bytes) & !4095;
            if end > first {
                // SAFETY: [first, end) is whole pages inside `buf`'s allocation, which we own;
                // MADV_HUGEPAGE only changes how untouched pages are backed, never their
                // contents (zero), so the Vec stays valid. A refusal (THP off) changes nothing.
                unsafe {
                    libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
                }
            }
        }
    }
    buf
}

/// The parallel loader over a clip source with one transform.
pub struct Loader {
    source: Arc<dyn ClipSource>,
    transform: Arc<ClipTransform>,
    opts: LoaderOptions,
    pool: Arc<BufferPool>,
    shard: Shard,
}

impl Loader {
    /// A loader of `source` through `transform`.
    pub fn new(
        source: Arc<dyn ClipSource>,
        transform: ClipTransform,
        mut opts: LoaderOptions,
    ) -> Self {
        opts.batch_size = opts.batch_size.max(1);
        opts.queue_depth = opts.queue_depth.max(1);
        let pool = Arc::new(BufferPool {
            free: Mutex::new(Vec::new()),
            keep: opts.queue_depth + 1,
        });
        Self {
            source,
            transform: Arc::new(transform),
            opts,
            pool,
            shard: Shard::Whole,
        }
    }

    /// This loader delivering only `shard`'s positions of each epoch (a data-parallel rank);
    /// `batch_size` is then the global batch for [`Shard::SplitBatches`].
    pub fn with_shard(mut self, shard: Shard) -> Self {
        self.shard = shard;
        self
    }

    /// Bytes of one full batch of float32 inputs.
    pub fn batch_bytes(&self) -> usize {
        let s = self.transform.input_size();
        4 * self.opts.batch_size * 3 * self.opts.num_frames * s * s
    }

    /// Upper bound of batch memory alive at once for a consumer that holds one batch at a time:
    /// `(queue_depth + 1) * batch_bytes`.
    pub fn memory_bound_bytes(&self) -> usize {
        (self.opts.queue_depth + 1) * self.batch_bytes()
    }

    /// Number of batches of an epoch of `epoch_len` positions.
    pub fn num_batches(&self, epoch_len: usize) -> usize {
        self.shard
            .num_batches(epoch_len, self.opts.batch_size, self.opts.drop_last)
    }

    /// The batches of `epoch`, in sampler order.
    pub fn epoch(&self, sampler: &dyn Sampler, epoch: u64) -> EpochBatches {
        self.epoch_from(sampler, epoch, 0)
    }

    /// The batches of `epoch` starting at batch `start_batch` (a resume): identical to those an
    /// uninterrupted epoch yields from there.
    pub fn epoch_from(
        &self,
        sampler: &dyn Sampler,
        epoch: u64,
        start_batch: usize,
    ) -> EpochBatches {
        let order = sampler.epoch_order(self.opts.seed, epoch);
        let num_batches = self.num_batches(order.len());
        let job = Arc::new(EpochJob {
            source: Arc::clone(&self.source),
            transform: Arc::clone(&self.transform),
            opts: self.opts.clone(),
            order,
            epoch,
            pool: Arc::clone(&self.pool),
            shard: self.shard,
        });
        let window = Arc::new(Window {
            state: Mutex::new(WindowState {
                next_claim: start_batch,
                delivered: start_batch,
            }),
            cond: Condvar::new(),
            cancel: AtomicBool::new(false),
        });
        let mut workers = Vec::new();
        let mut rx = None;
        if self.opts.num_workers > 0 {
            let (tx, r) = crossbeam_channel::bounded(self.opts.queue_depth);
            rx = Some(r);
            for _ in 0..self.opts.num_workers {
                let (job, window, tx) = (Arc::clone(&job), Arc::clone(&window), tx.clone());
                workers.push(std::thread::spawn(move || {
                    worker(&job, &window, num_batches, &tx)
                }));
            }
        }
        EpochBatches {
            job,
            window,
            rx,
            workers,
            next: start_batch,
            num_batches,
            pending: BTreeMap::new(),
            failed: false,
            scratch: TransformScratch::default(),
        }
    }
}

struct EpochJob {
    source: Arc<dyn ClipSource>,
    transform: Arc<ClipTransform>,
    opts: LoaderOptions,
    order: Vec<usize>,
    epoch: u64,
    pool: Arc<BufferPool>,
    shard: Shard,
}

impl EpochJob {
    fn build_batch(&self, b: usize, scratch: &mut TransformScratch) -> Result<Batch, DataError> {
        let o = &self.opts;
        let positions: Vec<usize> = self
            .shard
            .batch_positions(b, self.order.len(), o.batch_size)
            .collect();
        let size = self.transform.input_size();
        let shape = o.layout.shape(positions.len(), o.num_frames, size, size);
        let per_sample = 3 * o.num_frames * size * size;
        let mut inputs = BatchBuffer {
            data: self.pool.take(positions.len() * per_sample),
            pool: Arc::downgrade(&self.pool),
        };
        let (mut labels, mut event_idx) = (Vec::new(), Vec::new());
        for (slot, &pos) in positions.iter().enumerate() {
            let index = self.order[pos];
            let (clip, _, params) = load_sample(
                &*self.source,
                &self.transform,
                o.seed,
                self.epoch,
                pos,
                index,
            )?;
            let clip = clip.view();
            // The transform always gives `size` x `size` frames; only the frame count can differ.
            if clip.frames != o.num_frames {
                return Err(DataError::Shape {
                    event_idx: self.source.event_idx(index),
                    got: [clip.frames, size, size, 3],
                    expected: [o.num_frames, size, size, 3],
                });
            }
            self.transform.apply_normalized(
                scratch,
                clip,
                &params,
                o.layout,
                &mut inputs[slot * per_sample..(slot + 1) * per_sample],
            );
            labels.push(self.source.label(index));
            event_idx.push(self.source.event_idx(index));
        }
        Ok(Batch {
            inputs,
            shape,
            layout: o.layout,
            labels,
            event_idx,
            positions,
        })
    }
}

struct WindowState {
    next_claim: usize,
    delivered: usize,
}

struct Window {
    state: Mutex<WindowState>,
    cond: Condvar,
    cancel: AtomicBool,
}

type Delivery = (usize, Result<Batch, DataError>);

fn worker(
    job: &EpochJob,
    window: &Window,
    num_batches: usize,
    tx: &crossbeam_channel::Sender<Delivery>,
) {
    let mut scratch = TransformScratch::default();
    loop {
        let b = {
            let mut st = window.state.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if window.cancel.load(Ordering::Relaxed) || st.next_claim >= num_batches {
                    return;
                }
                if st.next_claim < st.delivered + job.opts.queue_depth {
                    break;
                }
                st = window.cond.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            st.next_claim += 1;
            st.next_claim - 1
        };
        let result = job.build_batch(b, &mut scratch);
        if tx.send((b, result)).is_err() {
            return;
        }
    }
}

/// The batches of one epoch (an iterator); dropping it stops and joins the workers.
pub struct EpochBatches {
    job: Arc<EpochJob>,
    window: Arc<Window>,
    rx: Option<crossbeam_channel::Receiver<Delivery>>,
    workers: Vec<JoinHandle<()>>,
    next: usize,
    num_batches: usize,
    pending: BTreeMap<usize, Result<Batch, DataError>>,
    failed: bool,
    /// Buffers for building batches on the calling thread (`num_workers` 0).
    scratch: TransformScratch,
}

impl EpochBatches {
    /// Number of batches left to yield.
    pub fn remaining(&self) -> usize {
        self.num_batches.saturating_sub(self.next)
    }
}

impl Iterator for EpochBatches {
    type Item = Result<Batch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.next >= self.num_batches {
            return None;
        }
        let result = match &self.rx {
            None => self.job.build_batch(self.next, &mut self.scratch),
            Some(rx) => loop {
                if let Some(r) = self.pending.remove(&self.next) {
                    break r;
                }
                match rx.recv() {
                    Ok((b, r)) => {
                        self.pending.insert(b, r);
                    }
                    // All workers gone without the batch: only possible after a panic in one.
                    Err(_) => {
                        self.failed = true;
                        return None;
                    }
                }
            },
        };
        self.next += 1;
        {
            let mut st = self.window.state.lock().unwrap_or_else(|e| e.into_inner());
            st.delivered = self.next;
        }
        self.window.cond.notify_all();
        if result.is_err() {
            self.failed = true;
        }
        Some(result)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining()))
    }
}

impl Drop for EpochBatches {
    fn drop(&mut self) {
        {
            // Under the lock, so a worker between its check and its wait cannot miss the wake-up.
            let _st = self.window.state.lock().unwrap_or_else(|e| e.into_inner());
            self.window.cancel.store(true, Ordering::Relaxed);
        }
        self.window.cond.notify_all();
        // Unblocks workers waiting to send.
        self.rx = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AugmentationConfig;
    use crate::sampler::{BalancedSampler, SequentialSampler};

    /// A source of synthetic clips: frame t of sample i is a gradient shifted by i and the offset.
    struct Synthetic {
        n: usize,
    }

    impl ClipSource for Synthetic {
        fn len(&self) -> usize {
            self.n
        }
        fn label(&self, index: usize) -> usize {
            usize::from(index.is_multiple_of(5))
        }
        fn event_idx(&self, index: usize) -> u32 {
            100 + index as u32
        }
        fn max_offset(&self) -> usize {
            2
        }
        fn load(&self, index: usize, offset: i32) -> Result<Clip, DataError> {
            let (t, h, w) = (4, 24, 32);
            let mut clip = Clip::zeros(t, h, w);
            for f in 0..t {
                for (p, px) in clip.frame_mut(f).chunks_exact_mut(3).enumerate() {
                    let (y, x) = (p / w, p % w);
                    let base = (x * 7 + y * 3 + index * 11) as i32 + (f as i32 + offset) * 13;
                    px.copy_from_slice(&[base as u8, (base * 3) as u8, (x * y) as u8]);
                }
            }
            Ok(clip)
        }
    }

    fn loader(workers: usize) -> Loader {
        let aug = AugmentationConfig::default();
        let transform = ClipTransform::train(&aug, 16, [0.45; 3], [0.225; 3]);
        let opts = LoaderOptions {
            batch_size: 3,
            num_workers: workers,
            queue_depth: 2,
            seed: 42,
            layout: Layout::Bcthw,
            num_frames: 4,
            drop_last: false,
        };
        Loader::new(Arc::new(Synthetic { n: 23 }), transform, opts)
    }

    fn collect(l: &Loader, epoch: u64, start: usize) -> Vec<Batch> {
        let labels: Vec<usize> = (0..23usize)
            .map(|i| usize::from(i.is_multiple_of(5)))
            .collect();
        let sampler = BalancedSampler::new(&labels, None);
        l.epoch_from(&sampler, epoch, start)
            .map(|b| b.unwrap())
            .collect()
    }

    #[test]
    fn batches_identical_for_any_worker_count_run_and_resume() {
        let one = collect(&loader(1), 3, 0);
        assert_eq!(one.len(), 8); // 23 positions in batches of 3
        assert_eq!(one[7].labels.len(), 2);
        assert_eq!(one[0].shape, [3, 3, 4, 16, 16]);
        assert_eq!(
            one.iter()
                .flat_map(|b| b.positions.clone())
                .collect::<Vec<_>>(),
            (0..23).collect::<Vec<_>>()
        );
        let four = collect(&loader(4), 3, 0);
        assert_eq!(one, four);
        assert_eq!(one, collect(&loader(1), 3, 0)); // a second run with the same seed
        assert_eq!(one, collect(&loader(0), 3, 0)); // on the calling thread
        assert_eq!(&one[5..], &collect(&loader(4), 3, 5)[..]); // resume at batch 5
        assert_ne!(one, collect(&loader(4), 4, 0)); // another epoch differs
    }

    #[test]
    fn rank_shards_rebuild_the_single_process_batches_sample_for_sample() {
        let whole = collect(&loader(2), 3, 0);
        let labels: Vec<usize> = (0..23usize)
            .map(|i| usize::from(i.is_multiple_of(5)))
            .collect();
        let sampler = BalancedSampler::new(&labels, None);
        // Batches of 3 over 2 ranks: shares of 1 and 2, augmentation drawn per global position.
        let ranks: Vec<Vec<Batch>> = (0..2)
            .map(|r| {
                let l = loader(r + 1).with_shard(crate::shard::Shard::training(r, 2));
                assert_eq!(l.num_batches(23), whole.len());
                l.epoch_from(&sampler, 3, 2).map(|b| b.unwrap()).collect()
            })
            .collect();
        for (i, w) in whole[2..].iter().enumerate() {
            let (a, b) = (&ranks[0][i], &ranks[1][i]);
            let inputs: Vec<f32> = a.inputs.iter().chain(b.inputs.iter()).copied().collect();
            assert_eq!(inputs, w.inputs.to_vec(), "batch {}", i + 2);
            assert_eq!(
                [a.positions.clone(), b.positions.clone()].concat(),
                w.positions
            );
            assert_eq!([a.labels.clone(), b.labels.clone()].concat(), w.labels);
        }
    }

    #[test]
    fn an_early_drop_stops_the_workers() {
        let l = loader(3);
        let sampler = SequentialSampler::new(23);
        let mut it = l.epoch(&sampler, 0);
        assert!(it.next().unwrap().is_ok());
        drop(it);
        assert_eq!(l.memory_bound_bytes(), 3 * 4 * 3 * 3 * 4 * 16 * 16);
    }

    #[test]
    fn dropped_batches_lend_their_buffers_to_later_ones() {
        let l = loader(2);
        let fresh = collect(&loader(2), 6, 0);
        let labels: Vec<usize> = (0..23usize)
            .map(|i| usize::from(i.is_multiple_of(5)))
            .collect();
        let sampler = BalancedSampler::new(&labels, None);
        // Each batch dropped at once: at most queue_depth + 1 buffers ever exist, and they end
        // up in the pool holding old pixels.
        let mut seen = std::collections::HashSet::new();
        for b in l.epoch(&sampler, 5) {
            seen.insert(b.unwrap().inputs.as_ptr() as usize);
        }
        assert!(seen.len() <= 3, "{} buffers for one epoch", seen.len());
        let pooled = l.pool.free.lock().unwrap().len();
        assert!((1..=3).contains(&pooled), "{pooled} buffers pooled");
        // Batches built over stale buffers equal those of a fresh loader, value for value.
        let again: Vec<Batch> = l.epoch(&sampler, 6).map(|b| b.unwrap()).collect();
        assert_eq!(again, fresh);
        // A clone belongs to no pool.
        let before = l.pool.free.lock().unwrap().len();
        drop(again[0].inputs.clone());
        assert_eq!(l.pool.free.lock().unwrap().len(), before);
    }
}
