//! The resumable trainer: epochs of train + validation, metrics every epoch, `best.ckpt` by
//! `train.metric_key`, `last.ckpt` every epoch (and on SIGTERM/SIGUSR1/SIGINT), early stopping,
//! `history.csv`, and `per_sample_loss.csv` after training.
//!
//! Reproducibility: the batches come from a [`BatchSource`] whose content depends only on
//! (seed, epoch, position); the mixup draw of a batch comes from a ChaCha stream keyed by
//! (seed, epoch, batch index); libtorch's generator (dropout, stochastic depth) is re-seeded
//! from (seed, epoch, batch index) before every forward pass. So a run interrupted at any step
//! boundary and resumed from its `last.ckpt` produces bit-identical numbers on the CPU.
//!
//! Losses: each batch is scored with the configured [`FocalLoss`] on (possibly mixed) soft targets;
//! epoch losses are `Σ numerator / Σ denominator` over the epoch's batches (the weighted mean).
//! Train metrics come from the train pass itself (augmented, dropout on), against each sample's
//! own label; with mixup they are a rough indicator only.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;
use tch::{Device, Kind, Tensor, nn};

use ethos_data::chunks::ChunkLayout;
use ethos_models::config::ClipAggregation;
use ethos_models::{Layout, VideoModel};

use crate::checkpoint::{self, CHECKPOINT_FORMAT, CheckpointError, PartialEpoch, TrainState};
use crate::config::TrainConfig;
use crate::data_parallel::DataParallel;
use crate::loss::{FocalLoss, apply_mixup, draw_mixup, one_hot};
use crate::optim::{Accumulation, AdamW, AmpMode, GradScaler, autocast};
use crate::schedule::Schedule;
use ethos_eval::history::{HistoryRow, write_history_csv};
use ethos_eval::metrics::{MetricKey, MetricSet};

/// Errors of training and evaluation.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The data source failed (its error is the source, e.g. a bad video or cache entry).
    #[error("loading {split} data")]
    Data {
        /// Which split was being read.
        split: String,
        /// The loader's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A checkpoint could not be read or written.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A run file could not be written.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The loss became NaN or infinite; the last good checkpoint is kept.
    #[error(
        "the training loss is not finite ({value}) at epoch {epoch}, batch {batch}; stopping. \
         The last good checkpoint is {last}. Try a lower optim.lr, optim.grad_clip, or train.amp: off"
    )]
    NonFiniteLoss {
        /// Epoch (1-based).
        epoch: usize,
        /// Batch index in the epoch.
        batch: usize,
        /// The loss value.
        value: f64,
        /// The checkpoint that stays valid.
        last: String,
    },
    /// The configuration or the data cannot be used as given (a user error).
    #[error("{0}")]
    BadInput(String),
    /// Something inconsistent inside the trainer (a bug or an engine failure).
    #[error("{0}")]
    Internal(String),
    /// A data-parallel collective failed (the message names the ranks responsible).
    #[error(transparent)]
    Distributed(#[from] ethos_dist::DistError),
}

impl ethos_core::Classify for TrainError {
    /// True for errors caused by the user's input (exit code 2).
    fn kind(&self) -> ethos_core::ErrorKind {
        let bad = {
            match self {
                TrainError::Checkpoint(e) => e.is_bad_input(),
                TrainError::BadInput(_) => true,
                TrainError::Distributed(e) => {
                    ethos_core::Classify::kind(e) == ethos_core::ErrorKind::BadInput
                }
                _ => false,
            }
        };
        if bad {
            ethos_core::ErrorKind::BadInput
        } else {
            ethos_core::ErrorKind::Internal
        }
    }
}

/// A batch on the host, as the data loader produces it (no tensor-engine types upstream).
#[derive(Debug, Clone)]
pub struct HostBatch {
    /// Float32 pixels, row-major in `shape` (the loader's buffer; it goes back to the loader's
    /// pool when the batch is dropped).
    pub inputs: ethos_data::loader::BatchBuffer,
    /// 5-d shape in `layout` order.
    pub shape: [usize; 5],
    /// Layout of `inputs`.
    pub layout: Layout,
    /// True class index per sample.
    pub labels: Vec<usize>,
    /// Event id per sample (for per-sample outputs).
    pub event_idx: Vec<u32>,
}

/// The boxed error a [`BatchSource`] reports.
pub type SourceError = Box<dyn std::error::Error + Send + Sync>;

/// One split's batches, deterministic in (seed, epoch, position).
pub trait BatchSource {
    /// Split name (for messages).
    fn split(&self) -> &str;
    /// Batches per epoch.
    fn num_batches(&self) -> usize;
    /// Samples per epoch.
    fn num_samples(&self) -> usize;
    /// The batches of `epoch` (0-based), starting at batch `start` (to resume inside an epoch).
    fn batches(
        &self,
        epoch: u64,
        start: usize,
    ) -> Box<dyn Iterator<Item = Result<HostBatch, SourceError>> + '_>;
    /// For an evaluation source of frame-level chunks (in sample order): which frames of which
    /// event each sample holds, so [`evaluate`] can average per-frame probabilities over the
    /// chunks covering each frame. `None`: every sample is its own clip.
    fn chunk_layout(&self) -> Option<&ChunkLayout> {
        None
    }
}

/// Converts a host batch to one tensor on `device` in the model's layout (one transfer per batch).
pub fn batch_tensor(b: &HostBatch, want: Layout, device: Device) -> Tensor {
    let shape: Vec<i64> = b.shape.iter().map(|&d| d as i64).collect();
    let t = Tensor::from_slice(&b.inputs[..]).view(shape.as_slice());
    let t = if b.layout == want {
        t
    } else {
        t.permute([0, 2, 1, 3, 4]).contiguous()
    };
    t.to_device(device)
}

/// Per-sample results of one pass over a split.
#[derive(Debug, Clone, Default)]
pub struct EvalOutput {
    /// Class probabilities per sample (clip level).
    pub probs: Vec<Vec<f64>>,
    /// True labels.
    pub labels: Vec<usize>,
    /// Event ids.
    pub event_idx: Vec<u32>,
    /// Per-sample loss.
    pub losses: Vec<f64>,
    /// `Σ numerator / Σ denominator` over the pass.
    pub mean_loss: f64,
    /// Per-frame probabilities of every frame of every clip (per-frame heads only).
    pub frames: Option<FrameScores>,
}

/// Per-frame probabilities after the chunk ensemble, with each frame's true class.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FrameScores {
    /// Row-major `(F, C)` probabilities, clip by clip, frame by frame.
    pub probs: Vec<f64>,
    /// True class of each frame (its clip's label).
    pub labels: Vec<usize>,
}

impl EvalOutput {
    /// Metrics of this pass, with `loss` set (and frame-level metrics for per-frame heads).
    pub fn metrics(&self, classes: &[String]) -> Result<MetricSet, TrainError> {
        let flat: Vec<f64> = self.probs.iter().flatten().copied().collect();
        let m = MetricSet::compute(classes, &flat, &self.labels)
            .map(|m| m.with_loss(self.mean_loss))
            .map_err(|e| TrainError::Internal(format!("metrics: {e}")))?;
        Ok(match &self.frames {
            Some(f) => m.with_frame_metrics(&f.probs, &f.labels),
            None => m,
        })
    }
}

/// FERAL's ensemble: per-sample per-frame probabilities `frame_probs[i]` (`(L, C)` row-major) of the
/// chunks described by `layout` become, per event, the mean over the chunks covering each frame
/// (a frame no chunk covers takes its nearest covered frame's value); the clip probability is then
/// the frames' mean probability or vote fraction (`agg`), the clip loss the mean of its chunks'.
/// `out` holds the chunk-level labels, event ids and losses; the result is one row per event.
pub fn ensemble_chunks(
    out: &EvalOutput,
    frame_probs: &[Vec<f64>],
    layout: &ChunkLayout,
    num_classes: usize,
    agg: ClipAggregation,
) -> Result<EvalOutput, TrainError> {
    let c = num_classes;
    let l = layout.chunk_length;
    let n = out.labels.len();
    if layout.groups.len() != n || frame_probs.len() != n || layout.starts.len() != n {
        return Err(TrainError::Internal(format!(
            "chunk layout has {} samples, the evaluation {n}",
            layout.groups.len()
        )));
    }
    if let Some(fp) = frame_probs.iter().find(|fp| fp.len() != l * c) {
        return Err(TrainError::BadInput(format!(
            "the model gives {} per-frame predictions per chunk, the chunks have {l} frames \
             (model.num_queries must equal data.chunk_length)",
            fp.len() / c.max(1)
        )));
    }
    let mut result = EvalOutput {
        mean_loss: out.mean_loss,
        ..EvalOutput::default()
    };
    let mut frames = FrameScores::default();
    let mut i = 0;
    while i < n {
        let g = layout.groups[i];
        let end = (i..n).find(|&j| layout.groups[j] != g).unwrap_or(n);
        let f = layout.group_frames.get(g).copied().unwrap_or(l).max(l);
        let mut sum = vec![0f64; f * c];
        let mut count = vec![0u32; f];
        for (probs, &start) in frame_probs[i..end].iter().zip(&layout.starts[i..end]) {
            for (t, row) in probs.chunks_exact(c).enumerate() {
                let frame = start + t;
                if frame < f {
                    count[frame] += 1;
                    for (acc, v) in sum[frame * c..(frame + 1) * c].iter_mut().zip(row) {
                        *acc += v;
                    }
                }
            }
        }
        let covered: Vec<usize> = (0..f).filter(|&t| count[t] > 0).collect();
        let mut per_frame = vec![0f64; f * c];
        for t in 0..f {
            let src = match covered.binary_search(&t) {
                Ok(_) => t,
                Err(pos) => {
                    let before = pos.checked_sub(1).map(|p| covered[p]);
                    let after = covered.get(pos).copied();
                    match (before, after) {
                        (Some(b), Some(a)) if t - b <= a - t => b,
                        (_, Some(a)) => a,
                        (Some(b), None) => b,
                        (None, None) => t,
                    }
                }
            };
            let k = count[src].max(1) as f64;
            for cls in 0..c {
                per_frame[t * c + cls] = sum[src * c + cls] / k;
            }
        }
        let mut clip = vec![0f64; c];
        for t in 0..f {
            let row = &per_frame[t * c..(t + 1) * c];
            match agg {
                ClipAggregation::MeanProb => {
                    for (acc, v) in clip.iter_mut().zip(row) {
                        *acc += v / f as f64;
                    }
                }
                ClipAggregation::MajorityVote => {
                    clip[ethos_eval::metrics::argmax(row)] += 1.0 / f as f64;
                }
            }
        }
        let label = out.labels[i];
        result.probs.push(clip);
        result.labels.push(label);
        result.event_idx.push(out.event_idx[i]);
        result
            .losses
            .push(out.losses[i..end].iter().sum::<f64>() / (end - i) as f64);
        frames.probs.extend(per_frame);
        frames.labels.extend(std::iter::repeat_n(label, f));
        i = end;
    }
    result.frames = Some(frames);
    Ok(result)
}

/// Logits `(B, C)` or per-frame `(B, T', C)` to (loss-ready logits, loss-ready targets, clip
/// probabilities `(B, C)`, frames per clip).
fn logits_for_loss(
    logits: &Tensor,
    targets: &Tensor,
    agg: ClipAggregation,
) -> (Tensor, Tensor, Tensor, i64) {
    if logits.dim() == 3 {
        let (b, t, c) = logits.size3().unwrap_or((0, 0, 0));
        let flat = logits.reshape([b * t, c]);
        let tg = targets
            .unsqueeze(1)
            .expand([b, t, c], false)
            .reshape([b * t, c]);
        let p = logits.to_kind(Kind::Float).softmax(-1, Kind::Float);
        let clip = match agg {
            ClipAggregation::MeanProb => p.mean_dim([1i64].as_slice(), false, Kind::Float),
            ClipAggregation::MajorityVote => p
                .argmax(-1, false)
                .one_hot(c)
                .to_kind(Kind::Float)
                .mean_dim([1i64].as_slice(), false, Kind::Float),
        };
        (flat, tg, clip, t)
    } else {
        let p = logits.to_kind(Kind::Float).softmax(-1, Kind::Float);
        (logits.shallow_clone(), targets.shallow_clone(), p, 1)
    }
}

fn to_rows(t: &Tensor) -> Vec<Vec<f64>> {
    let t = t.to_kind(Kind::Double).to_device(Device::Cpu).contiguous();
    let (n, c) = t.size2().unwrap_or((0, 0));
    let flat: Vec<f64> = Vec::<f64>::try_from(t.flatten(0, -1)).unwrap_or_default();
    (0..n as usize)
        .map(|i| flat[i * c as usize..(i + 1) * c as usize].to_vec())
        .collect()
}

fn to_vec_f64(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(
        t.to_kind(Kind::Double)
            .to_device(Device::Cpu)
            .flatten(0, -1),
    )
    .unwrap_or_default()
}

/// Evaluates `model` on every batch of `source` (eval mode, no gradients).
pub fn evaluate(
    model: &dyn VideoModel,
    source: &dyn BatchSource,
    loss: &FocalLoss,
    device: Device,
    amp: AmpMode,
    agg: ClipAggregation,
    progress: &Progress,
) -> Result<EvalOutput, TrainError> {
    evaluate_ranks(model, source, loss, device, amp, agg, progress, None)
}

/// [`evaluate`] on a data-parallel rank when `dp` is given: `source` holds this rank's block of
/// the split (`ethos_data::shard::Shard::Blocks`), and the per-sample outputs of every rank are
/// gathered in rank order, which is the split's order, before the chunk ensemble and the mean
/// loss; every rank returns what one process evaluating the whole split would.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_ranks(
    model: &dyn VideoModel,
    source: &dyn BatchSource,
    loss: &FocalLoss,
    device: Device,
    amp: AmpMode,
    agg: ClipAggregation,
    progress: &Progress,
    dp: Option<&DataParallel>,
) -> Result<EvalOutput, TrainError> {
    let mut out = EvalOutput::default();
    let mut frame_probs: Vec<Vec<f64>> = Vec::new();
    // A clip-level head on frame-level chunks: its chunk probability stands for every frame of
    // the chunk, so events still get the chunk ensemble and frame-level metrics.
    let chunk_len = source.chunk_layout().map(|l| l.chunk_length as i64);
    let (mut num, mut den) = (0f64, 0f64);
    let n = source.num_batches();
    let bar = progress.bar(n as u64, &format!("eval {}", source.split()));
    for (i, batch) in source.batches(0, 0).enumerate() {
        let b = batch.map_err(|source_err| TrainError::Data {
            split: source.split().into(),
            source: source_err,
        })?;
        let x = batch_tensor(&b, model.input_layout(), device);
        let labels = Tensor::from_slice(&b.labels.iter().map(|&l| l as i64).collect::<Vec<_>>());
        let targets = one_hot(&labels, loss.num_classes()).to_device(device);
        let (parts, clip_p, frames, frame_p) = tch::no_grad(|| {
            autocast(amp, || {
                let logits = model.forward_t(&x, false);
                let (l, t, p, frames) = logits_for_loss(&logits, &targets, agg);
                let frame_p = match (logits.dim(), chunk_len) {
                    (3, _) => Some(
                        logits
                            .to_kind(Kind::Float)
                            .softmax(-1, Kind::Float)
                            .flatten(1, 2),
                    ),
                    (2, Some(l)) => {
                        let (b, c) = logits.size2().unwrap_or((0, 0));
                        Some(p.unsqueeze(1).expand([b, l, c], false).flatten(1, 2))
                    }
                    _ => None,
                };
                (loss.parts(&l, &t), p, frames, frame_p)
            })
        });
        if let Some(fp) = frame_p {
            frame_probs.extend(to_rows(&fp));
        }
        num += parts.numerator.double_value(&[]);
        den += parts.denominator.double_value(&[]);
        let per = to_vec_f64(&parts.per_sample);
        let per: Vec<f64> = per
            .chunks(frames as usize)
            .map(|c| c.iter().sum::<f64>() / c.len() as f64)
            .collect();
        out.losses.extend(per);
        out.probs.extend(to_rows(&clip_p));
        out.labels.extend(&b.labels);
        out.event_idx.extend(&b.event_idx);
        bar.step(i + 1, n, None);
    }
    bar.finish();
    if let Some(dp) = dp {
        (num, den) = gather_evaluation(dp, &mut out, &mut frame_probs, (num, den), loss)?;
    }
    out.mean_loss = if den > 0.0 { num / den } else { f64::NAN };
    if frame_probs.is_empty() || frame_probs.len() != out.labels.len() {
        return Ok(out);
    }
    let c = loss.num_classes();
    let layout = match source.chunk_layout() {
        Some(l) => l.clone(),
        None => {
            // Whole clips: every sample is its own event of T frames.
            let t = frame_probs[0].len() / c.max(1);
            ChunkLayout {
                chunk_length: t,
                groups: (0..out.labels.len()).collect(),
                starts: vec![0; out.labels.len()],
                group_frames: vec![t; out.labels.len()],
            }
        }
    };
    ensemble_chunks(&out, &frame_probs, &layout, c, agg)
}

/// Replaces one rank's per-sample outputs by every rank's (in rank order) and returns the loss
/// sums over all ranks. Per sample: label, event id, loss and class probabilities in one row;
/// per-frame probabilities flat (ranks without samples contribute none).
fn gather_evaluation(
    dp: &DataParallel,
    out: &mut EvalOutput,
    frame_probs: &mut Vec<Vec<f64>>,
    (num, den): (f64, f64),
    loss: &FocalLoss,
) -> Result<(f64, f64), TrainError> {
    let c = loss.num_classes();
    let rows: Vec<Vec<f64>> = (0..out.labels.len())
        .map(|i| {
            let mut r = vec![
                out.labels[i] as f64,
                f64::from(out.event_idx[i]),
                out.losses[i],
            ];
            r.extend(&out.probs[i]);
            r
        })
        .collect();
    let all = dp.gather_rows(&rows, 3 + c)?;
    out.labels = all.iter().map(|r| r[0] as usize).collect();
    out.event_idx = all.iter().map(|r| r[1] as u32).collect();
    out.losses = all.iter().map(|r| r[2]).collect();
    out.probs = all.iter().map(|r| r[3..].to_vec()).collect();
    let flat: Vec<f64> = frame_probs.iter().flatten().copied().collect();
    let (frames, _) = dp.gather_f64(&flat)?;
    let n = out.labels.len();
    *frame_probs = if frames.is_empty() || n == 0 {
        Vec::new()
    } else if frames.len() % n == 0 {
        frames
            .chunks(frames.len() / n)
            .map(<[f64]>::to_vec)
            .collect()
    } else {
        return Err(TrainError::Internal(format!(
            "gathered {} per-frame values for {n} samples",
            frames.len()
        )));
    };
    let sums = dp.sum_f64(&[num, den])?;
    Ok((sums[0], sums[1]))
}

/// Progress reporting: an indicatif bar on a terminal, else one log line every N steps.
pub struct Progress {
    terminal: bool,
    every: usize,
}

/// One bar (or its line-logging stand-in).
pub struct Bar {
    bar: Option<indicatif::ProgressBar>,
    label: String,
    every: usize,
}

impl Progress {
    /// Bars when stderr is a terminal, else a line every `every` steps.
    pub fn new(every: usize) -> Self {
        Progress {
            terminal: std::io::stderr().is_terminal(),
            every: every.max(1),
        }
    }

    /// No bars and no lines (data-parallel ranks other than 0).
    pub fn silent() -> Self {
        Progress {
            terminal: false,
            every: 0,
        }
    }

    /// A new bar over `len` steps.
    pub fn bar(&self, len: u64, label: &str) -> Bar {
        let bar = self.terminal.then(|| {
            let b = indicatif::ProgressBar::new(len);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}<{eta})",
            ) {
                b.set_style(style.progress_chars("=> "));
            }
            b.set_prefix(label.to_string());
            b
        });
        Bar {
            bar,
            label: label.to_string(),
            every: self.every,
        }
    }
}

impl Bar {
    /// Marks step `pos` of `len` done; `msg` is shown on the bar or in the log line.
    pub fn step(&self, pos: usize, len: usize, msg: Option<String>) {
        match &self.bar {
            Some(b) => {
                b.set_position(pos as u64);
                if let Some(m) = msg {
                    b.set_message(m);
                }
            }
            None => {
                if self.every > 0 && (pos.is_multiple_of(self.every) || pos == len) {
                    let m = msg.unwrap_or_default();
                    let mut err = std::io::stderr().lock();
                    let _ = writeln!(err, "{} {pos}/{len} {m}", self.label);
                    let _ = err.flush();
                }
            }
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// A stop request flag set by SIGTERM, SIGUSR1 (SLURM's pre-timeout signal) or SIGINT.
pub fn install_stop_flag() -> Result<Arc<AtomicBool>, TrainError> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGUSR1,
        signal_hook::consts::SIGINT,
    ] {
        signal_hook::flag::register(sig, Arc::clone(&flag))
            .map_err(|e| TrainError::Internal(format!("installing the signal handler: {e}")))?;
    }
    Ok(flag)
}

/// How a call to [`Trainer::fit`] ended.
#[derive(Debug, Clone, PartialEq)]
pub enum FitOutcome {
    /// All epochs ran (or early stopping ended the run).
    Finished {
        /// Epochs completed in total.
        epochs: usize,
        /// True when early stopping ended the run.
        early_stopped: bool,
        /// Best value of the metric key and its epoch.
        best: Option<(f64, usize)>,
    },
    /// A stop signal (or `stop_after_epochs`) ended the run; `last.ckpt` resumes it.
    Interrupted {
        /// Completed epochs.
        epochs_done: usize,
        /// Batches done in the epoch in progress.
        batches_done: usize,
    },
}

/// Everything [`Trainer`] needs besides the model and the data.
pub struct TrainerSetup {
    /// Class names (metric names use them).
    pub classes: Vec<String>,
    /// The `train:` section.
    pub train: TrainConfig,
    /// The metric that selects `best.ckpt`.
    pub metric_key: MetricKey,
    /// The loss (class weights already computed from the train split).
    pub loss: FocalLoss,
    /// Mixup `alpha` when `augmentation.use_mixup`.
    pub mixup_alpha: Option<f64>,
    /// Optimiser steps per epoch grouping.
    pub accumulation: Accumulation,
    /// Learning-rate schedule (per optimiser step).
    pub schedule: Schedule,
    /// Global-norm clip.
    pub grad_clip: Option<f64>,
    /// Device the model lives on.
    pub device: Device,
    /// Clip aggregation of per-frame heads.
    pub clip_aggregation: ClipAggregation,
    /// Run directory.
    pub run_dir: PathBuf,
    /// The resolved config (stored in checkpoints).
    pub config_json: serde_json::Value,
    /// Its hash.
    pub config_hash: String,
    /// Stop (resumably) after this many epochs of this invocation.
    pub stop_after_epochs: Option<usize>,
}

/// The training loop over one model.
pub struct Trainer<'a> {
    setup: TrainerSetup,
    vs: &'a nn::VarStore,
    model: &'a dyn VideoModel,
    optim: AdamW,
    scaler: GradScaler,
    state: TrainState,
    stop: Arc<AtomicBool>,
    progress: Progress,
    stages: Option<crate::stages::TwoStage>,
    observers: Vec<Box<dyn crate::observer::TrainObserver + 'a>>,
    /// The process group of a data-parallel run (`None`: one process).
    dp: Option<&'a DataParallel>,
}

fn mix_seed(seed: u64, epoch: u64, batch: u64, purpose: u64) -> u64 {
    // SplitMix64 over the words: a cheap, well-spread hash of the tuple.
    let mut h = 0x9E37_79B9_7F4A_7C15u64;
    for w in [seed, epoch, batch, purpose] {
        let mut z = h ^ w.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        h = z ^ (z >> 31);
    }
    h
}

impl<'a> Trainer<'a> {
    /// A trainer starting fresh or from `resume` (a checkpoint read with [`checkpoint::load`]).
    pub fn new(
        setup: TrainerSetup,
        vs: &'a nn::VarStore,
        model: &'a dyn VideoModel,
        optim: AdamW,
        resume: Option<(PathBuf, checkpoint::Checkpoint)>,
        stop: Arc<AtomicBool>,
    ) -> Result<Self, TrainError> {
        let amp = if setup.device.is_cuda() {
            setup.train.amp
        } else {
            AmpMode::Off
        };
        let mut scaler = GradScaler::new(amp.needs_scaler());
        let mut optim = optim;
        let mut state = TrainState {
            format_version: CHECKPOINT_FORMAT,
            epochs_done: 0,
            global_step: 0,
            best_metric: None,
            best_epoch: None,
            epochs_without_improvement: 0,
            seed: setup.train.seed,
            config_hash: setup.config_hash.clone(),
            scheduler: serde_json::Value::Null,
            scaler: serde_json::Value::Null,
            optimizer: serde_json::Value::Null,
            history: Vec::new(),
            partial_epoch: None,
        };
        if let Some((path, ck)) = resume {
            checkpoint::copy_into_varstore(&path, vs, &ck.model)?;
            optim
                .load_state_dict(&ck.optim, &ck.state.optimizer)
                .map_err(|e| {
                    TrainError::BadInput(format!(
                        "checkpoint {}: optimiser state: {e}",
                        path.display()
                    ))
                })?;
            if let Ok(s) = serde_json::from_value::<GradScaler>(ck.state.scaler.clone()) {
                scaler = s;
            }
            if ck.state.config_hash != setup.config_hash {
                tracing::warn!(
                    "resuming from {} whose config hash differs from this config (changed keys apply from now on)",
                    path.display()
                );
            }
            if ck.state.seed != setup.train.seed {
                return Err(TrainError::BadInput(format!(
                    "checkpoint {} was trained with train.seed {}, the config says {}; an exact resume needs the same seed",
                    path.display(),
                    ck.state.seed,
                    setup.train.seed
                )));
            }
            state = ck.state;
            state.config_hash = setup.config_hash.clone();
            tracing::info!(
                "resuming from {} at epoch {} (step {}{})",
                path.display(),
                state.epochs_done + 1,
                state.global_step,
                state
                    .partial_epoch
                    .as_ref()
                    .map(|p| format!(", batch {}", p.batches_done))
                    .unwrap_or_default()
            );
        }
        let progress = Progress::new(setup.train.log_every_steps);
        Ok(Trainer {
            setup,
            vs,
            model,
            optim,
            scaler,
            state,
            stop,
            progress,
            stages: None,
            observers: Vec::new(),
            dp: None,
        })
    }

    /// Two-stage fine-tuning: the head alone for the first epochs, then the backbone too (see
    /// [`crate::stages`]); the stage is set at the start of every epoch, resumes included.
    pub fn set_stages(&mut self, stages: crate::stages::TwoStage) {
        self.stages = Some(stages);
    }

    /// Adds an observer of steps and epochs (TensorBoard, per-sample records).
    pub fn add_observer(&mut self, observer: Box<dyn crate::observer::TrainObserver + 'a>) {
        self.observers.push(observer);
    }

    /// Makes this trainer one rank of a data-parallel run: rank 0's weights (and buffers) are
    /// copied to every rank now, each step's gradients are summed over the ranks, validation is
    /// gathered, and only rank 0 writes checkpoints and history or shows progress. The batch
    /// sources must hold this rank's shards (`Shard::SplitBatches` for training,
    /// `Shard::Blocks` for validation).
    pub fn with_data_parallel(mut self, dp: &'a DataParallel) -> Result<Self, TrainError> {
        dp.broadcast_variables(self.vs, true)?;
        if !dp.is_main() {
            self.progress = Progress::silent();
        }
        self.dp = Some(dp);
        Ok(self)
    }

    /// True where this process writes the run's files (rank 0, or a single process).
    fn writes(&self) -> bool {
        self.dp.is_none_or(DataParallel::is_main)
    }

    fn amp(&self) -> AmpMode {
        if self.setup.device.is_cuda() {
            self.setup.train.amp
        } else {
            AmpMode::Off
        }
    }

    fn save(&mut self, name: &str) -> Result<(), TrainError> {
        if !self.writes() {
            return Ok(());
        }
        let (optim_tensors, optim_json) = self.optim.state_dict();
        self.state.optimizer = optim_json;
        self.state.scheduler = serde_json::json!({ "step": self.state.global_step });
        self.state.scaler = serde_json::to_value(&self.scaler).unwrap_or(serde_json::Value::Null);
        let model = checkpoint::varstore_tensors(self.vs);
        checkpoint::save(
            &self.setup.run_dir.join(name),
            &model,
            &optim_tensors,
            &self.state,
            &self.setup.config_json,
        )?;
        Ok(())
    }

    fn write_history(&self) -> Result<(), TrainError> {
        if !self.writes() {
            return Ok(());
        }
        let p = self.setup.run_dir.join("history.csv");
        write_history_csv(&p, &self.state.history)
            .map_err(|source| TrainError::Io { path: p, source })
    }

    fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Runs the remaining epochs. Returns how the run ended.
    pub fn fit(
        &mut self,
        train: &dyn BatchSource,
        val: &dyn BatchSource,
    ) -> Result<FitOutcome, TrainError> {
        let epochs = self.setup.train.epochs;
        let n_batches = train.num_batches();
        if n_batches == 0 {
            return Err(TrainError::BadInput(
                "the training split has no batches".into(),
            ));
        }
        let mut epochs_this_call = 0usize;
        let key = self.setup.metric_key.clone();
        while self.state.epochs_done < epochs {
            if self.setup.train.early_stopping_patience > 0
                && self.state.epochs_without_improvement >= self.setup.train.early_stopping_patience
            {
                break;
            }
            let epoch = self.state.epochs_done; // 0-based
            if let Some(st) = &self.stages
                && st.apply(epoch)
            {
                tracing::info!(
                    "epoch {}: {}",
                    epoch + 1,
                    if st.head_only(epoch) {
                        format!(
                            "training the head only (first {} epochs)",
                            st.freeze_epochs()
                        )
                    } else {
                        "the backbone trains too from here".to_string()
                    }
                );
            }
            let partial = self.state.partial_epoch.take().unwrap_or_default();
            let t0 = Instant::now();
            let pass = self.train_epoch(train, epoch, partial)?;
            let Some(pass) = pass else {
                self.write_history()?;
                return Ok(FitOutcome::Interrupted {
                    epochs_done: self.state.epochs_done,
                    batches_done: self
                        .state
                        .partial_epoch
                        .as_ref()
                        .map_or(0, |p| p.batches_done),
                });
            };
            let train_seconds = pass.seconds;
            if let Some(dp) = self.dp {
                // Every rank evaluates rank 0's model (BatchNorm statistics are per rank).
                dp.broadcast_variables(self.vs, false)?;
            }
            let val_out = evaluate_ranks(
                self.model,
                val,
                &self.setup.loss,
                self.setup.device,
                self.amp(),
                self.setup.clip_aggregation,
                &self.progress,
                self.dp,
            )?;
            let val_m = val_out.metrics(&self.setup.classes)?;
            let flat: Vec<f64> = pass.probs.iter().flatten().copied().collect();
            let train_m = MetricSet::compute(&self.setup.classes, &flat, &pass.labels)
                .map_err(|e| TrainError::Internal(format!("train metrics: {e}")))?;
            let epoch_seconds =
                (t0.elapsed().as_secs_f64()) + (pass.seconds - pass.seconds_this_call);
            let row = HistoryRow {
                epoch: epoch + 1,
                lr: pass.lr,
                train_loss: pass.loss,
                val_loss: val_out.mean_loss,
                val_metrics: val_m
                    .scalars()
                    .into_iter()
                    .filter(|(k, _)| k != "loss")
                    .collect(),
                train_macro_f1: train_m.macro_f1,
                train_val_gap: train_m.macro_f1 - val_m.macro_f1,
                epoch_seconds,
                samples_per_s: if train_seconds > 0.0 {
                    pass.samples as f64 / train_seconds
                } else {
                    0.0
                },
            };
            let value = val_m.value(&key);
            let improved = key.improves(value, self.state.best_metric, self.setup.train.min_delta);
            if improved {
                self.state.best_metric = value;
                self.state.best_epoch = Some(epoch + 1);
                self.state.epochs_without_improvement = 0;
            } else {
                self.state.epochs_without_improvement += 1;
            }
            let record = crate::observer::EpochRecord {
                epoch: epoch + 1,
                global_step: self.state.global_step,
                classes: &self.setup.classes,
                train_event_idx: &pass.event_idx,
                train_labels: &pass.labels,
                train_probs: &pass.probs,
                val: &val_out,
                train_metrics: &train_m,
                val_metrics: &val_m,
                history: &row,
            };
            for o in &mut self.observers {
                o.on_epoch(&record)?;
            }
            self.state.history.push(row.clone());
            self.state.epochs_done = epoch + 1;
            epochs_this_call += 1;
            if improved {
                self.save("best.ckpt")?;
            }
            self.save("last.ckpt")?;
            self.write_history()?;
            let fmt = |v: Option<f64>| v.map_or("n/a".to_string(), |x| format!("{x:.4}"));
            tracing::info!(
                "epoch {}/{epochs}: train_loss {:.4} val_loss {:.4} {} {} macro_f1 {:.4} gap {:+.3} lr {:.2e} \
                 ({:.1} s, {:.1} samples/s){}",
                epoch + 1,
                row.train_loss,
                row.val_loss,
                key.key,
                fmt(value),
                val_m.macro_f1,
                row.train_val_gap,
                row.lr,
                row.epoch_seconds,
                row.samples_per_s,
                if improved { " *best*" } else { "" }
            );
            if let Some(dp) = self.dp {
                tracing::info!(
                    "data parallel: {} ranks; {:.2} s of the train pass's {:.1} s in collectives ({:.1} %, waiting for slower ranks included)",
                    dp.world_size(),
                    pass.comm_seconds,
                    pass.seconds_this_call,
                    100.0 * pass.comm_seconds / pass.seconds_this_call.max(1e-9)
                );
            }
            let _ = std::io::stderr().flush();
            let stop = match self.dp {
                Some(dp) => dp.any(self.stop_requested())?,
                None => self.stop_requested(),
            };
            if stop
                || self
                    .setup
                    .stop_after_epochs
                    .is_some_and(|k| epochs_this_call >= k && self.state.epochs_done < epochs)
            {
                return Ok(FitOutcome::Interrupted {
                    epochs_done: self.state.epochs_done,
                    batches_done: 0,
                });
            }
        }
        let early_stopped = self.state.epochs_done < epochs;
        if early_stopped {
            tracing::info!(
                "early stopping: {} epochs without an improvement of {} > {}",
                self.state.epochs_without_improvement,
                key.key,
                self.setup.train.min_delta
            );
        }
        Ok(FitOutcome::Finished {
            epochs: self.state.epochs_done,
            early_stopped,
            best: self.state.best_metric.zip(self.state.best_epoch),
        })
    }

    /// One training pass; `None` when a stop was requested (state saved in `last.ckpt`).
    fn train_epoch(
        &mut self,
        src: &dyn BatchSource,
        epoch: usize,
        mut acc: PartialEpoch,
    ) -> Result<Option<TrainPass>, TrainError> {
        let n = src.num_batches();
        let seed = self.setup.train.seed;
        let device = self.setup.device;
        let amp = self.amp();
        let accum = self.setup.accumulation;
        let c = self.setup.classes.len();
        let bar = self.progress.bar(
            n as u64,
            &format!("epoch {}/{}", epoch + 1, self.setup.train.epochs),
        );
        let t0 = Instant::now();
        let seconds_before = acc.seconds;
        let (mut num, mut den) = split_loss_sum(&acc);
        let start = acc.batches_done;
        if start > 0 && !start.is_multiple_of(accum.steps) && start != n {
            return Err(TrainError::Internal(format!(
                "resume point (batch {start}) is not an optimiser-step boundary"
            )));
        }
        let dp = self.dp;
        let rank = dp.map_or(0, DataParallel::rank);
        if let Some(dp) = dp {
            dp.take_comm_seconds();
        }
        let checkpointing = self.setup.train.grad_checkpointing;
        self.optim.zero_grad();
        for (offset, batch) in src.batches(epoch as u64, start).enumerate() {
            let i = start + offset;
            let b = batch.map_err(|e| TrainError::Data {
                split: src.split().into(),
                source: e,
            })?;
            let local = b.labels.len();
            let x = batch_tensor(&b, self.model.input_layout(), device);
            let labels =
                Tensor::from_slice(&b.labels.iter().map(|&l| l as i64).collect::<Vec<_>>());
            let mut targets = one_hot(&labels, c).to_device(device);
            let mut x = x;
            if let Some(alpha) = self.setup.mixup_alpha {
                let mut rng = ChaCha12Rng::seed_from_u64(mix_seed(
                    seed,
                    epoch as u64,
                    i as u64,
                    0x006d_6978_7570,
                ));
                // A draw pairs samples across the whole global batch: ranks gather it, mix it
                // as one process would and keep their own rows.
                let (all_x, all_t, first) = match dp {
                    Some(dp) => {
                        let (gx, first) = dp.gather_tensor(&x)?;
                        (gx, dp.gather_tensor(&targets)?.0, first)
                    }
                    None => (x.shallow_clone(), targets.shallow_clone(), 0),
                };
                let draw = draw_mixup(alpha, all_x.size()[0] as usize, &mut rng)
                    .map_err(|e| TrainError::BadInput(format!("augmentation.mixup_alpha: {e}")))?;
                let (mx, mt) = apply_mixup(&all_x, &all_t, &draw);
                (x, targets) = match dp {
                    Some(_) => (
                        mx.narrow(0, first as i64, local as i64),
                        mt.narrow(0, first as i64, local as i64),
                    ),
                    None => (mx, mt),
                };
            }
            // Rank 0 draws the single-process stream; other ranks their own masks.
            tch::manual_seed(
                mix_seed(seed, epoch as u64, i as u64, 0x6472_6f70 + rank as u64) as i64 & i64::MAX,
            );
            let run = accum.run_len(i, n) as f64;
            let stop_here = self.stop_requested();
            let (loss_fn, agg, scaler) =
                (&self.setup.loss, self.setup.clip_aggregation, &self.scaler);
            let mut stash: Option<(crate::loss::LossParts, Tensor)> = None;
            // Data parallel: this batch's [Σ numerator, Σ denominator, stop requests] over ranks.
            let mut global: Option<Result<Vec<f64>, TrainError>> = None;
            if local > 0 {
                // The loss comes back through `stash`; the returned (scaled) copy is not needed.
                let _ = autocast(amp, || {
                    self.model
                        .forward_backward(&x, true, checkpointing, &mut |logits: &Tensor| {
                            let (l, t, p, _) = logits_for_loss(logits, &targets, agg);
                            let parts = loss_fn.parts(&l, &t);
                            let den = match dp {
                                None => parts.denominator.shallow_clone(),
                                Some(dp) => {
                                    let sums = dp.sum_f64(&[
                                        parts.numerator.double_value(&[]),
                                        parts.denominator.double_value(&[]),
                                        f64::from(u8::from(stop_here)),
                                    ]);
                                    // Every rank divides by the global denominator, so the
                                    // summed gradients are the single-process batch's.
                                    let den = match &sums {
                                        Ok(v) => Tensor::from(v[1] as f32)
                                            .to_device(parts.denominator.device()),
                                        Err(_) => parts.denominator.shallow_clone(),
                                    };
                                    global = Some(sums);
                                    den
                                }
                            };
                            let batch_loss = &parts.numerator / &den;
                            let scaled = scaler.scale_loss(&(batch_loss / run));
                            stash = Some((parts, p.detach()));
                            scaled
                        })
                });
            } else if let Some(dp) = dp {
                global = Some(dp.sum_f64(&[0.0, 0.0, f64::from(u8::from(stop_here))]));
            }
            let (batch_num, batch_den, value, stop_all) = match (dp, global, &stash) {
                (Some(_), Some(sums), _) => {
                    let v = sums?;
                    (v[0], v[1], v[0] / v[1], v[2] > 0.0)
                }
                (None, _, Some((parts, _))) => (
                    parts.numerator.double_value(&[]),
                    parts.denominator.double_value(&[]),
                    (&parts.numerator / &parts.denominator).double_value(&[]),
                    false,
                ),
                _ => {
                    return Err(TrainError::Internal(format!(
                        "batch {i} of epoch {} produced no loss",
                        epoch + 1
                    )));
                }
            };
            if !value.is_finite() {
                bar.finish();
                return Err(TrainError::NonFiniteLoss {
                    epoch: epoch + 1,
                    batch: i,
                    value,
                    last: self.setup.run_dir.join("last.ckpt").display().to_string(),
                });
            }
            if accum.is_step(i, n) {
                if let Some(dp) = dp {
                    dp.sum_gradients(&self.optim)?;
                }
                let lr = self.setup.schedule.lr_at(self.state.global_step);
                self.optim.set_lr(lr);
                if let Some(max) = self.setup.grad_clip.filter(|m| *m > 0.0)
                    && self.scaler.unscale(&mut self.optim)
                {
                    self.optim.clip_grad_norm(max);
                }
                self.scaler.step(&mut self.optim);
                self.optim.zero_grad();
                self.state.global_step += 1;
                acc.lr = lr;
                if self
                    .state
                    .global_step
                    .is_multiple_of(self.setup.train.log_every_steps.max(1) as u64)
                {
                    let step = crate::observer::StepRecord {
                        epoch: epoch + 1,
                        global_step: self.state.global_step,
                        batch_loss: value,
                        lr,
                    };
                    for o in &mut self.observers {
                        o.on_step(&step)?;
                    }
                }
            }
            num += batch_num;
            den += batch_den;
            let probs = stash.map(|(_, p)| to_rows(&p)).unwrap_or_default();
            match dp {
                None => {
                    acc.probs.extend(probs);
                    acc.labels.extend(&b.labels);
                    acc.event_idx.extend(&b.event_idx);
                    acc.samples += local;
                }
                Some(dp) => {
                    let rows: Vec<Vec<f64>> = probs
                        .into_iter()
                        .zip(b.labels.iter().zip(&b.event_idx))
                        .map(|(mut r, (&l, &e))| {
                            r.push(f64::from(e));
                            r.push(l as f64);
                            r
                        })
                        .collect();
                    for mut r in dp.gather_rows(&rows, c + 2)? {
                        let label = r.pop().unwrap_or_default() as usize;
                        let event = r.pop().unwrap_or_default() as u32;
                        acc.labels.push(label);
                        acc.event_idx.push(event);
                        acc.probs.push(r);
                        acc.samples += 1;
                    }
                }
            }
            acc.batches_done = i + 1;
            bar.step(
                i + 1,
                n,
                Some(format!(
                    "loss {:.4} lr {:.2e}",
                    if den > 0.0 { num / den } else { 0.0 },
                    acc.lr
                )),
            );
            let stop = match dp {
                Some(_) => stop_all,
                None => self.stop_requested(),
            };
            if accum.is_step(i, n) && i + 1 < n && stop {
                bar.finish();
                acc.seconds = seconds_before + t0.elapsed().as_secs_f64();
                acc.loss_sum = num;
                acc.loss_norm = den;
                self.state.partial_epoch = Some(acc);
                self.save("last.ckpt")?;
                return Ok(None);
            }
        }
        bar.finish();
        let seconds = seconds_before + t0.elapsed().as_secs_f64();
        Ok(Some(TrainPass {
            loss: if den > 0.0 { num / den } else { f64::NAN },
            probs: acc.probs,
            labels: acc.labels,
            event_idx: acc.event_idx,
            samples: acc.samples,
            seconds,
            seconds_this_call: t0.elapsed().as_secs_f64(),
            lr: acc.lr,
            comm_seconds: dp.map_or(0.0, DataParallel::take_comm_seconds),
        }))
    }

    /// The training state (epochs done, best metric, history).
    pub fn state(&self) -> &TrainState {
        &self.state
    }
}

fn split_loss_sum(p: &PartialEpoch) -> (f64, f64) {
    (p.loss_sum, p.loss_norm)
}

struct TrainPass {
    loss: f64,
    probs: Vec<Vec<f64>>,
    labels: Vec<usize>,
    event_idx: Vec<u32>,
    samples: usize,
    seconds: f64,
    seconds_this_call: f64,
    lr: f64,
    /// Seconds in data-parallel collectives during this call's pass.
    comm_seconds: f64,
}

/// Writes `per_sample_loss.csv` rows for one split (appending to `rows`).
pub fn per_sample_rows(
    split: &str,
    out: &EvalOutput,
    classes: &[String],
    rows: &mut Vec<Vec<String>>,
) {
    for i in 0..out.labels.len() {
        let p = &out.probs[i];
        let pred = ethos_eval::metrics::argmax(p);
        let mut r = vec![
            split.to_string(),
            out.event_idx[i].to_string(),
            format!("{}", out.losses[i]),
            classes[pred].clone(),
            classes[out.labels[i]].clone(),
            (pred == out.labels[i]).to_string(),
        ];
        r.extend(p.iter().map(|v| format!("{v}")));
        rows.push(r);
    }
}

/// Writes a per-sample CSV (`split, event_idx, loss, predicted, true, correct, prob_<class>...`)
/// atomically.
pub fn write_per_sample_csv(
    path: &Path,
    classes: &[String],
    rows: &[Vec<String>],
) -> Result<(), TrainError> {
    let mut header: Vec<String> = ["split", "event_idx", "loss", "predicted", "true", "correct"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    header.extend(classes.iter().map(|c| format!("prob_{c}")));
    ethos_core::fs::write_atomic(path, |w| {
        let mut csv = csv::Writer::from_writer(w);
        csv.write_record(&header).map_err(std::io::Error::other)?;
        for r in rows {
            csv.write_record(r).map_err(std::io::Error::other)?;
        }
        csv.flush()
    })
    .map_err(|source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_ensemble_averages_overlapping_frames() {
        // One event of 6 frames, chunks of 4 at starts 0 and 2 (2 classes), and one event of 4
        // frames in one chunk.
        let p = |v: &[f64]| v.iter().flat_map(|&x| [1.0 - x, x]).collect::<Vec<f64>>();
        let frame_probs = vec![
            p(&[0.1, 0.2, 0.3, 0.4]),
            p(&[0.5, 0.6, 0.7, 0.8]),
            p(&[0.9, 0.9, 0.9, 0.1]),
        ];
        let out = EvalOutput {
            probs: vec![vec![0.0; 2]; 3],
            labels: vec![1, 1, 0],
            event_idx: vec![7, 7, 9],
            losses: vec![1.0, 3.0, 0.5],
            mean_loss: 1.5,
            frames: None,
        };
        let layout = ChunkLayout {
            chunk_length: 4,
            groups: vec![0, 0, 1],
            starts: vec![0, 2, 0],
            group_frames: vec![6, 4],
        };
        let e = ensemble_chunks(&out, &frame_probs, &layout, 2, ClipAggregation::MeanProb).unwrap();
        assert_eq!(e.labels, vec![1, 0]);
        assert_eq!(e.event_idx, vec![7, 9]);
        assert_eq!(e.losses, vec![2.0, 0.5]);
        let f = e.frames.as_ref().unwrap();
        let class1: Vec<f64> = f.probs.chunks(2).map(|r| r[1]).collect();
        let want = [0.1, 0.2, 0.4, 0.5, 0.7, 0.8, 0.9, 0.9, 0.9, 0.1];
        for (a, b) in class1.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{class1:?}");
        }
        assert_eq!(f.labels, vec![1, 1, 1, 1, 1, 1, 0, 0, 0, 0]);
        assert!((e.probs[0][1] - 2.7 / 6.0).abs() < 1e-12);
        let v = ensemble_chunks(
            &out,
            &frame_probs,
            &layout,
            2,
            ClipAggregation::MajorityVote,
        )
        .unwrap();
        // Event 9: frames vote class 1, 1, 1, 0.
        assert_eq!(v.probs[1], vec![0.25, 0.75]);
        let m = e.metrics(&["a".to_string(), "b".to_string()]).unwrap();
        assert!(m.get("frame_map").is_some());
        // A model whose per-frame output count differs from the chunk length is bad input.
        let short = vec![p(&[0.1, 0.2]); 3];
        assert!(matches!(
            ensemble_chunks(&out, &short, &layout, 2, ClipAggregation::MeanProb),
            Err(TrainError::BadInput(_))
        ));
    }
}
