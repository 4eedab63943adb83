//! The decoded-clip cache: each event's window decoded once (ROI applied, short side scaled to
//! `data.cache_short_side`) on the clip's sampling grid extended by `M` margin frames each side,
//! stored as raw uint8 frames, one file per event.
//!
//! **Grid.** The `N` times of [`ethos_video::ClipRequest::sample_times`] for the event window,
//! extended by `M` more times each side at the same spacing ([`extended_times`]). A clip shifted by
//! `j` whole frames (`-M <= j <= M`) is frames `M + j .. M + j + N` of the entry, which is exactly
//! what source mode decodes for the same shift.
//!
//! **Entry file** `<cache_dir>/<key>.clip`, little-endian:
//! `magic "ETHOSCLP"`, `version u32`, `frames u32`, `height u32`, `width u32`, `margin u32`,
//! `padded u32`, then one CRC-32 per frame, then the CRC-32 of all header bytes before it, then
//! `frames * height * width * 3` bytes of RGB. A reader checks the header CRC and the exact file
//! length whenever it meets a file it has not checked yet, and the CRC of each frame the first time
//! it reads it, so a truncated or corrupt entry is never used. Training reads entries in place
//! through a memory map of just the frames it needs ([`ClipCache::read_mapped`]): no copy, and the
//! checks are paid once per run, not once per epoch.
//!
//! **Key** (file name): SHA-256 over the source file's identity (size, modification time, SHA-256 of
//! its first and last 64 KiB) and every decode parameter (window start and length, ROI, fps, `N`,
//! `M`, short side, format version). Labels, splits and augmentation do not enter the key.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ethos_video::{Clip, ClipRequest, ClipSampler, ClipView, Decoder, Resize, Roi};
use sha2::{Digest, Sha256};

use crate::error::{BadVideo, DataError};
use crate::manifest::Event;

/// Version of the entry layout; part of every key.
pub const CACHE_FORMAT_VERSION: u32 = 1;
const MAGIC: &[u8; 8] = b"ETHOSCLP";
const FIXED_HEADER: usize = 32;
const IDENTITY_BYTES: u64 = 64 * 1024;

/// The decode parameters shared by all entries of a cache.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CacheParams {
    /// Sampling rate in frames per second.
    pub fps: f64,
    /// Frames per clip `N`.
    pub num_frames: usize,
    /// Margin frames `M` stored each side for temporal jitter.
    pub margin: usize,
    /// Short side of stored frames in pixels.
    pub short_side: u32,
    /// Frame-level (chunked) mode: an entry stores the event's whole window on the `fps` grid,
    /// `max(N, floor(duration * fps))` frames plus the margins, instead of `N` frames, so every
    /// chunk of the window is a range of one entry.
    pub whole_window: bool,
}

impl CacheParams {
    /// Frames stored per entry, `N + 2M`.
    pub fn stored_frames(&self) -> usize {
        self.num_frames + 2 * self.margin
    }

    /// Frames of an event's sampling grid before the margins: `N`, or with `whole_window` the
    /// window's whole frames at `fps` (at least `N`).
    pub fn grid_frames(&self, duration_s: f64) -> usize {
        if self.whole_window {
            window_frames(duration_s, self.fps).max(self.num_frames)
        } else {
            self.num_frames
        }
    }
}

/// Whole frames of a window of `duration_s` seconds at `fps`: `floor(duration * fps)` (with a
/// tolerance for times like 2.9999999 s).
pub fn window_frames(duration_s: f64, fps: f64) -> usize {
    (duration_s * fps + 1e-6).floor().max(0.0) as usize
}

/// The `N + 2M` times (seconds from the first frame, ascending) of an event's extended grid:
/// index `M + i` is the `i`-th time of [`ClipRequest::sample_times`]. Times before 0 are left
/// for the sampler to clamp.
pub fn extended_times(
    start_s: f64,
    duration_s: f64,
    fps: f64,
    num_frames: usize,
    margin: usize,
) -> Vec<f64> {
    let (n, m) = (num_frames as f64, margin as i64);
    let req = ClipRequest {
        start_s,
        duration_s,
        fps,
        num_frames,
        roi: None,
        resize: Resize::None,
    };
    let base = req.sample_times();
    let centred = fps > 0.0 && duration_s >= n / fps;
    (-m..num_frames as i64 + m)
        .map(|k| {
            if (0..num_frames as i64).contains(&k) {
                base[k as usize]
            } else if centred {
                let c = start_s + duration_s / 2.0;
                c + (k as f64 - (n - 1.0) / 2.0) / fps
            } else {
                start_s + (k as f64 + 0.5) * duration_s / n
            }
        })
        .collect()
}

/// Identity of a source file: SHA-256 of its size, modification time and first/last 64 KiB.
pub fn source_identity(path: &Path) -> Result<[u8; 32], DataError> {
    let io = |e| DataError::io(path, e);
    let mut file = File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    let mtime = meta
        .modified()
        .map_err(io)?
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut h = Sha256::new();
    h.update(meta.len().to_le_bytes());
    h.update(mtime.as_secs().to_le_bytes());
    h.update(mtime.subsec_nanos().to_le_bytes());
    let mut buf = vec![0u8; IDENTITY_BYTES.min(meta.len()) as usize];
    file.read_exact(&mut buf).map_err(io)?;
    h.update(&buf);
    if meta.len() > IDENTITY_BYTES {
        let tail = IDENTITY_BYTES.min(meta.len() - IDENTITY_BYTES);
        file.seek(SeekFrom::End(-(tail as i64))).map_err(io)?;
        buf.resize(tail as usize, 0);
        file.read_exact(&mut buf).map_err(io)?;
        h.update(&buf);
    }
    Ok(h.finalize().into())
}

/// Source identities computed once per file (many events share a long video).
#[derive(Debug, Default)]
pub struct IdentityCache {
    known: Mutex<HashMap<PathBuf, [u8; 32]>>,
}

impl IdentityCache {
    /// The identity of `path`, computed on first use.
    pub fn get(&self, path: &Path) -> Result<[u8; 32], DataError> {
        if let Some(id) = self
            .known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(path)
        {
            return Ok(*id);
        }
        let id = source_identity(path)?;
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path.to_path_buf(), id);
        Ok(id)
    }
}

/// A folder of cache entries for one set of [`CacheParams`].
#[derive(Debug, Clone)]
pub struct ClipCache {
    dir: PathBuf,
    params: CacheParams,
    checked: Arc<CheckedEntries>,
    /// Decoder of [`build_entries`] (not part of the key: NVDEC and the CPU give the same frames).
    decoder: Decoder,
}

/// Most entries whose check state [`ClipCache`] remembers (a few bytes each); past it the table
/// starts over, which only costs re-checking frames.
const MAX_CHECKED_ENTRIES: usize = 1 << 16;

/// What is known of an entry file already opened: its header and which frames' CRCs passed.
/// Valid only for the same file ([`FileStamp`]): an entry rebuilt under the same key is a new
/// file (atomic rename), so it gets a new stamp and is checked again.
#[derive(Debug)]
struct CheckedEntry {
    stamp: FileStamp,
    header: Header,
    frame_ok: Vec<AtomicBool>,
}

/// Device, inode, length and modification time of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

impl FileStamp {
    fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
        }
    }
}

#[derive(Debug, Default)]
struct CheckedEntries(Mutex<HashMap<String, Arc<CheckedEntry>>>);

impl CheckedEntries {
    fn get(&self, key: &str, stamp: FileStamp) -> Option<Arc<CheckedEntry>> {
        let table = self.0.lock().unwrap_or_else(|e| e.into_inner());
        table.get(key).filter(|e| e.stamp == stamp).cloned()
    }

    fn insert(&self, key: &str, entry: Arc<CheckedEntry>) {
        let mut table = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if table.len() >= MAX_CHECKED_ENTRIES {
            table.clear();
        }
        table.insert(key.to_string(), entry);
    }

    fn forget(&self, key: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }
}

/// Frames of a cache entry read in place from a read-only memory map of its file: no copy and
/// no zeroed buffer per read. The map covers just these frames and goes away with the value.
///
/// Entry files are only ever replaced by an atomic rename (a new file), which leaves a map of
/// the old one valid; truncating an entry in place while a training run reads it is not
/// supported (as with any memory-mapped file, the reader would get SIGBUS).
pub struct MappedClip {
    map: memmap2::Mmap,
    /// Offset of the first frame's byte in `map`.
    start: usize,
    frames: usize,
    height: usize,
    width: usize,
}

impl MappedClip {
    /// The frames, `(T, H, W, 3)`.
    pub fn view(&self) -> ClipView<'_> {
        let len = self.frames * self.height * self.width * 3;
        ClipView {
            frames: self.frames,
            height: self.height,
            width: self.width,
            data: &self.map[self.start..self.start + len],
        }
    }
}

impl std::fmt::Debug for MappedClip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedClip")
            .field("shape", &self.view().shape())
            .finish()
    }
}

/// Whether an entry can be used.
#[derive(Debug, Clone, PartialEq)]
pub enum EntryStatus {
    /// Present and its checks pass.
    Valid,
    /// No file.
    Missing,
    /// Present but truncated or corrupt (the reason says which check failed).
    Corrupt(String),
}

/// The parsed header of an entry.
#[derive(Debug, Clone, PartialEq)]
struct Header {
    frames: usize,
    height: usize,
    width: usize,
    margin: usize,
    padded: usize,
    frame_crcs: Vec<u32>,
}

impl Header {
    fn len(&self) -> usize {
        FIXED_HEADER + 4 * self.frames + 4
    }
    fn frame_bytes(&self) -> usize {
        self.height * self.width * 3
    }
}

impl ClipCache {
    /// A cache in `dir` (created on first write) for `params`.
    pub fn new(dir: &Path, params: CacheParams) -> Self {
        Self {
            dir: dir.to_path_buf(),
            params,
            checked: Arc::default(),
            decoder: Decoder::default(),
        }
    }

    /// The same cache building entries with `decoder` (`data.decoder`; `auto` by default).
    pub fn with_decoder(mut self, decoder: Decoder) -> Self {
        self.decoder = decoder;
        self
    }

    /// The cache folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The decode parameters.
    pub fn params(&self) -> CacheParams {
        self.params
    }

    /// The content key (64 hex digits) of `event` decoded from a source with `identity`.
    pub fn key(&self, identity: &[u8; 32], event: &Event) -> String {
        let p = &self.params;
        let mut h = Sha256::new();
        h.update(b"ethos-clip-cache");
        h.update(CACHE_FORMAT_VERSION.to_le_bytes());
        h.update(identity);
        h.update(event.start_s.to_le_bytes());
        h.update(event.duration_s.to_le_bytes());
        match event.roi {
            Some(Roi { x, y, w, h: rh }) => {
                h.update([1u8]);
                for v in [x, y, w, rh] {
                    h.update(v.to_le_bytes());
                }
            }
            None => h.update([0u8]),
        }
        h.update(p.fps.to_le_bytes());
        h.update((p.num_frames as u64).to_le_bytes());
        h.update((p.margin as u64).to_le_bytes());
        h.update(p.short_side.to_le_bytes());
        if p.whole_window {
            // Only in the chunked mode, so the keys of existing caches stay valid.
            h.update(b"whole-window");
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The entry file of `key`.
    pub fn entry_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.clip"))
    }

    /// Checks an entry: header and exact length always; with `full`, also every frame's CRC.
    pub fn status(&self, key: &str, full: bool) -> EntryStatus {
        let path = self.entry_path(key);
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return EntryStatus::Missing,
            Err(e) => return EntryStatus::Corrupt(e.to_string()),
        };
        let header = match self.read_header(&mut file) {
            Ok(h) => h,
            Err(reason) => return EntryStatus::Corrupt(reason),
        };
        if full {
            let mut buf = vec![0u8; header.frame_bytes()];
            for (t, &crc) in header.frame_crcs.iter().enumerate() {
                let offset = (header.len() + t * buf.len()) as u64;
                if let Err(e) = file.read_exact_at(&mut buf, offset) {
                    return EntryStatus::Corrupt(format!("frame {t}: {e}"));
                }
                if crc32fast::hash(&buf) != crc {
                    return EntryStatus::Corrupt(format!("frame {t} checksum mismatch"));
                }
            }
        }
        EntryStatus::Valid
    }

    fn read_header(&self, file: &mut File) -> Result<Header, String> {
        let mut fixed = [0u8; FIXED_HEADER];
        file.read_exact_at(&mut fixed, 0)
            .map_err(|e| format!("header: {e}"))?;
        if &fixed[..8] != MAGIC {
            return Err("bad magic".into());
        }
        let word = |i: usize| {
            u32::from_le_bytes(fixed[8 + 4 * i..12 + 4 * i].try_into().expect("4 bytes")) as usize
        };
        let (version, frames, height, width, margin, padded) =
            (word(0), word(1), word(2), word(3), word(4), word(5));
        if version != CACHE_FORMAT_VERSION as usize {
            return Err(format!(
                "format version {version}, expected {CACHE_FORMAT_VERSION}"
            ));
        }
        let p = &self.params;
        // Whole-window entries vary in length per event (the key fixes it; the header CRC
        // guards it), so only the minimum is known here; reads check their range.
        let frames_ok = if p.whole_window {
            frames >= p.stored_frames()
        } else {
            frames == p.stored_frames()
        };
        if !frames_ok || margin != p.margin {
            return Err(format!(
                "{frames} frames / margin {margin}, expected {} / {}",
                p.stored_frames(),
                p.margin
            ));
        }
        if height.min(width) != p.short_side as usize
            || height == 0
            || width == 0
            || height > 1 << 15
            || width > 1 << 15
        {
            return Err(format!(
                "frame size {width}x{height} does not have short side {}",
                p.short_side
            ));
        }
        let mut rest = vec![0u8; 4 * frames + 4];
        file.read_exact_at(&mut rest, FIXED_HEADER as u64)
            .map_err(|e| format!("header: {e}"))?;
        let frame_crcs: Vec<u32> = rest
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        let stored_crc = frame_crcs[frames];
        let mut h = crc32fast::Hasher::new();
        h.update(&fixed);
        h.update(&rest[..4 * frames]);
        if h.finalize() != stored_crc {
            return Err("header checksum mismatch".into());
        }
        let header = Header {
            frames,
            height,
            width,
            margin,
            padded,
            frame_crcs: frame_crcs[..frames].to_vec(),
        };
        let expected = (header.len() + frames * header.frame_bytes()) as u64;
        let actual = file.metadata().map_err(|e| e.to_string())?.len();
        if actual != expected {
            return Err(format!("length {actual} bytes, expected {expected}"));
        }
        Ok(header)
    }

    /// Reads `count` frames starting at stored frame `first` into an owned clip (a copy of
    /// [`Self::read_mapped`]).
    pub fn read_frames(&self, key: &str, first: usize, count: usize) -> Result<Clip, DataError> {
        Ok(self.read_mapped(key, first, count)?.view().to_clip())
    }

    /// The `count` frames starting at stored frame `first`, read in place (memory-mapped).
    ///
    /// The header CRC and the file length are checked whenever the file is new to this cache
    /// (first read, or rebuilt since); each frame's CRC is checked the first time a read covers
    /// it, so a truncated or corrupt entry is never used, and a training run pays for the
    /// checks once per frame instead of once per epoch.
    pub fn read_mapped(
        &self,
        key: &str,
        first: usize,
        count: usize,
    ) -> Result<MappedClip, DataError> {
        let path = self.entry_path(key);
        let corrupt = |reason: String| DataError::CorruptCache {
            path: path.clone(),
            reason,
        };
        let mut file = File::open(&path).map_err(|e| DataError::io(&path, e))?;
        let stamp = FileStamp::of(&file.metadata().map_err(|e| DataError::io(&path, e))?);
        let entry = match self.checked.get(key, stamp) {
            Some(entry) => entry,
            None => {
                let header = self.read_header(&mut file).map_err(corrupt)?;
                let entry = Arc::new(CheckedEntry {
                    stamp,
                    frame_ok: (0..header.frames).map(|_| AtomicBool::new(false)).collect(),
                    header,
                });
                self.checked.insert(key, Arc::clone(&entry));
                entry
            }
        };
        let header = &entry.header;
        if first + count > header.frames {
            return Err(corrupt(format!(
                "frames {first}..{} requested of {}",
                first + count,
                header.frames
            )));
        }
        let n = header.frame_bytes();
        let offset = (header.len() + first * n) as u64;
        // Map from the page holding the first byte; MAP_POPULATE fills the page table in one
        // call instead of one fault per few pages.
        let page = page_size();
        let aligned = offset - offset % page;
        let start = (offset - aligned) as usize;
        // SAFETY: a read-only private map of a file we just opened and checked the length of.
        // The cache replaces entries only by renaming a new file over them, which leaves this
        // map (of the old file) valid; see [`MappedClip`] for in-place truncation.
        let map = unsafe {
            memmap2::MmapOptions::new()
                .offset(aligned)
                .len((start + count * n).max(1))
                .populate()
                .map(&file)
        }
        .map_err(|e| DataError::io(&path, e))?;
        let clip = MappedClip {
            map,
            start,
            frames: count,
            height: header.height,
            width: header.width,
        };
        let view = clip.view();
        for t in 0..count {
            let ok = &entry.frame_ok[first + t];
            if !ok.load(Ordering::Acquire) {
                if crc32fast::hash(view.frame(t)) != header.frame_crcs[first + t] {
                    self.checked.forget(key);
                    return Err(corrupt(format!("frame {} checksum mismatch", first + t)));
                }
                ok.store(true, Ordering::Release);
            }
        }
        Ok(clip)
    }

    /// Decodes `event`'s extended grid from `source` and writes the entry atomically.
    /// Returns the stored clip (`N + 2M` frames; whole-window: `grid_frames + 2M`).
    pub fn build(
        &self,
        sampler: &ClipSampler,
        source: &Path,
        event: &Event,
        key: &str,
    ) -> Result<Clip, DataError> {
        let p = &self.params;
        let times = extended_times(
            event.start_s,
            event.duration_s,
            p.fps,
            p.grid_frames(event.duration_s),
            p.margin,
        );
        let sampled = sampler
            .sample_times(source, &times, event.roi, Resize::ShortSide(p.short_side))
            .map_err(|source| DataError::Video {
                event_idx: event.event_idx,
                source,
            })?;
        if sampled.padded > 0 {
            tracing::debug!(
                event = event.event_idx,
                padded = sampled.padded,
                "cache entry repeats the last frame"
            );
        }
        self.write_entry(key, &sampled.clip, sampled.padded)?;
        Ok(sampled.clip)
    }

    fn write_entry(&self, key: &str, clip: &Clip, padded: usize) -> Result<(), DataError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| DataError::io(&self.dir, e))?;
        let path = self.entry_path(key);
        let mut header = Vec::with_capacity(FIXED_HEADER + 4 * clip.frames + 4);
        header.extend_from_slice(MAGIC);
        for v in [
            CACHE_FORMAT_VERSION as usize,
            clip.frames,
            clip.height,
            clip.width,
            self.params.margin,
            padded,
        ] {
            header.extend_from_slice(&(v as u32).to_le_bytes());
        }
        for t in 0..clip.frames {
            header.extend_from_slice(&crc32fast::hash(clip.frame(t)).to_le_bytes());
        }
        let crc = crc32fast::hash(&header);
        header.extend_from_slice(&crc.to_le_bytes());
        self.checked.forget(key);
        ethos_core::fs::write_atomic(&path, |f| {
            f.write_all(&header)?;
            f.write_all(&clip.data)
        })
        .map_err(|e| DataError::io(&path, e))
    }
}

/// The memory page size (map offsets must be multiples of it).
fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 { size as u64 } else { 4096 }
}

/// One entry to build: an event, its source video and its key.
#[derive(Debug, Clone)]
pub struct CacheJob {
    /// The event (window, ROI).
    pub event: Event,
    /// Its source video (absolute or relative to the working directory).
    pub source: PathBuf,
    /// Its content key.
    pub key: String,
}

/// What a cache build did.
#[derive(Debug, Default, Clone)]
pub struct BuildReport {
    /// Entries considered (after removing duplicates).
    pub total: usize,
    /// Valid entries kept as they were.
    pub reused: usize,
    /// Entries decoded and written (missing before).
    pub built: usize,
    /// Corrupt entries decoded and written again.
    pub rebuilt: usize,
    /// Events whose video failed to decode.
    pub bad: Vec<BadVideo>,
}

/// Builds every missing or corrupt entry of `jobs` with `threads` threads in parallel. With
/// `full_check`, existing entries have every frame checksum verified (else header and length).
/// `progress(done, total)` is called after each job. Decode failures are collected in
/// [`BuildReport::bad`]; write failures stop the build.
pub fn build_entries(
    cache: &ClipCache,
    jobs: &[CacheJob],
    threads: usize,
    full_check: bool,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<BuildReport, DataError> {
    // Entries half-written by a killed build are never used; their files go.
    ethos_core::fs::clean_stale_temps(&cache.dir).map_err(|e| DataError::io(&cache.dir, e))?;
    let mut seen = std::collections::HashSet::new();
    let jobs: Vec<&CacheJob> = jobs.iter().filter(|j| seen.insert(j.key.clone())).collect();
    let total = jobs.len();
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let report = Mutex::new(BuildReport {
        total,
        ..BuildReport::default()
    });
    let fatal: Mutex<Option<DataError>> = Mutex::new(None);
    let sampler = ClipSampler::new(1).with_decoder(cache.decoder);
    std::thread::scope(|scope| {
        for _ in 0..threads.clamp(1, total.max(1)) {
            scope.spawn(|| {
                loop {
                    if fatal.lock().unwrap_or_else(|e| e.into_inner()).is_some() {
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else { return };
                    let status = cache.status(&job.key, full_check);
                    let outcome = match &status {
                        EntryStatus::Valid => Ok(None),
                        _ => cache.build(&sampler, &job.source, &job.event, &job.key).map(Some),
                    };
                    let mut r = report.lock().unwrap_or_else(|e| e.into_inner());
                    match (outcome, status) {
                        (Ok(None), _) => r.reused += 1,
                        (Ok(Some(_)), EntryStatus::Corrupt(reason)) => {
                            tracing::warn!(event = job.event.event_idx, %reason, "corrupt cache entry rebuilt");
                            r.rebuilt += 1;
                        }
                        (Ok(Some(_)), _) => r.built += 1,
                        (Err(DataError::Video { source, .. }), _) if !source.is_setup_error() => r.bad.push(BadVideo {
                            event_idx: job.event.event_idx,
                            path: job.source.clone(),
                            reason: source.to_string(),
                        }),
                        (Err(e), _) => {
                            fatal.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(e);
                            return;
                        }
                    }
                    drop(r);
                    progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
                }
            });
        }
    });
    if let Some(e) = fatal.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    let mut report = report.into_inner().unwrap_or_else(|e| e.into_inner());
    report.bad.sort_by_key(|b| b.event_idx);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> CacheParams {
        CacheParams {
            fps: 4.0,
            num_frames: 3,
            margin: 1,
            short_side: 4,
            whole_window: false,
        }
    }

    fn event() -> Event {
        Event {
            event_idx: 7,
            video: PathBuf::from("v.mp4"),
            start_s: 1.0,
            duration_s: 2.0,
            behavior: "ear".into(),
            class_index: 0,
            group: None,
            camera: None,
            split: None,
            roi: None,
            line: 2,
        }
    }

    #[test]
    fn extended_grid_contains_the_clip_grid() {
        let base = ClipRequest {
            start_s: 1.0,
            duration_s: 2.0,
            fps: 4.0,
            num_frames: 3,
            roi: None,
            resize: Resize::None,
        }
        .sample_times();
        let ext = extended_times(1.0, 2.0, 4.0, 3, 2);
        assert_eq!(ext.len(), 7);
        assert_eq!(&ext[2..5], &base[..]);
        assert!(
            (ext[0] - (base[0] - 0.5)).abs() < 1e-12 && (ext[6] - (base[2] + 0.5)).abs() < 1e-12
        );
        // Short window: spread grid, margin at the same spacing (duration / N).
        let ext = extended_times(0.0, 0.3, 10.0, 6, 1);
        assert!((ext[1] - 0.025).abs() < 1e-12 && (ext[0] + 0.025).abs() < 1e-12);
    }

    #[test]
    fn keys_change_with_decode_parameters_only() {
        let dir = tempfile::tempdir().unwrap();
        let id = [3u8; 32];
        let c = ClipCache::new(dir.path(), params());
        let k = c.key(&id, &event());
        let mut relabelled = event();
        relabelled.behavior = "tail".into();
        relabelled.class_index = 1;
        relabelled.event_idx = 99;
        assert_eq!(c.key(&id, &relabelled), k);
        let mut moved = event();
        moved.start_s = 1.5;
        assert_ne!(c.key(&id, &moved), k);
        for p in [
            CacheParams {
                fps: 5.0,
                ..params()
            },
            CacheParams {
                num_frames: 4,
                ..params()
            },
            CacheParams {
                margin: 2,
                ..params()
            },
            CacheParams {
                short_side: 8,
                ..params()
            },
        ] {
            assert_ne!(ClipCache::new(dir.path(), p).key(&id, &event()), k);
        }
        assert_ne!(c.key(&[4u8; 32], &event()), k);
    }

    #[test]
    fn whole_window_entries_hold_every_frame_of_the_window() {
        let whole = CacheParams {
            whole_window: true,
            ..params()
        };
        // 4 fps, N = 3: a 2.6 s window has 10 whole frames; a 0.5 s one still stores one clip.
        assert_eq!(whole.grid_frames(2.6), 10);
        assert_eq!(whole.grid_frames(0.5), 3);
        assert_eq!(params().grid_frames(2.6), 3);
        let id = [3u8; 32];
        let k = ClipCache::new(Path::new("/x"), params()).key(&id, &event());
        assert_ne!(ClipCache::new(Path::new("/x"), whole).key(&id, &event()), k);
        // The grid is the window's frames at 1/fps, centred, extended by the margins.
        let t = extended_times(1.0, 2.6, 4.0, whole.grid_frames(2.6), 1);
        assert_eq!(t.len(), 12);
        for w in t.windows(2) {
            assert!((w[1] - w[0] - 0.25).abs() < 1e-9);
        }
        assert!(t[1] >= 1.0 && t[10] <= 3.6);
        // An entry of a longer window reads back by range.
        let dir = tempfile::tempdir().unwrap();
        let c = ClipCache::new(dir.path(), whole);
        let clip = Clip::zeros(12, 4, 6);
        c.write_entry("w", &clip, 0).unwrap();
        assert_eq!(c.status("w", true), EntryStatus::Valid);
        assert_eq!(c.read_frames("w", 7, 3).unwrap().frames, 3);
        assert!(c.read_frames("w", 10, 3).is_err());
    }

    #[test]
    fn reads_in_place_and_checks_a_rebuilt_entry_again() {
        let dir = tempfile::tempdir().unwrap();
        let c = ClipCache::new(dir.path(), params());
        let mut first = Clip::zeros(5, 4, 6);
        for (i, v) in first.data.iter_mut().enumerate() {
            *v = (i % 251) as u8;
        }
        let n = first.frame_len();
        c.write_entry("k", &first, 0).unwrap();
        let mapped = c.read_mapped("k", 1, 3).unwrap();
        assert_eq!(mapped.view().shape(), [3, 4, 6, 3]);
        assert_eq!(mapped.view().data, &first.data[n..4 * n]);
        // Rebuilt under the same key (a new file): read afresh, while the old map stays valid.
        let mut second = first.clone();
        second.data.iter_mut().for_each(|v| *v = v.wrapping_add(7));
        c.write_entry("k", &second, 0).unwrap();
        assert_eq!(c.read_frames("k", 0, 5).unwrap(), second);
        assert_eq!(mapped.view().data, &first.data[n..4 * n]);
        // A corrupt file renamed over it is a new file too: its frames are checked again, even
        // those a read had already checked in the previous file.
        let path = c.entry_path("k");
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.len() - 4 * n + 5; // a byte of frame 1
        bytes[at] ^= 0x55;
        let tmp = dir.path().join("replacement");
        std::fs::write(&tmp, &bytes).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert!(matches!(
            c.read_mapped("k", 0, 3),
            Err(DataError::CorruptCache { reason, .. }) if reason.contains("frame 1")
        ));
        assert!(c.read_mapped("k", 2, 3).is_ok()); // untouched frames still read
    }

    #[test]
    fn corrupt_or_truncated_entries_are_detected() {
        let dir = tempfile::tempdir().unwrap();
        let c = ClipCache::new(dir.path(), params());
        let mut clip = Clip::zeros(5, 4, 6);
        for (i, v) in clip.data.iter_mut().enumerate() {
            *v = (i % 253) as u8;
        }
        assert_eq!(c.status("k", true), EntryStatus::Missing);
        c.write_entry("k", &clip, 0).unwrap();
        assert_eq!(c.status("k", true), EntryStatus::Valid);
        let read = c.read_frames("k", 1, 3).unwrap();
        assert_eq!(read.data, clip.data[clip.frame_len()..4 * clip.frame_len()]);
        let path = c.entry_path("k");
        // Flip one payload byte: the quick check passes, the full check and the reader do not.
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x55;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(c.status("k", false), EntryStatus::Valid);
        assert!(matches!(c.status("k", true), EntryStatus::Corrupt(r) if r.contains("frame 4")));
        assert!(matches!(
            c.read_frames("k", 2, 3),
            Err(DataError::CorruptCache { .. })
        ));
        assert!(c.read_frames("k", 0, 3).is_ok()); // untouched frames still read
        // Truncation is caught by the length check.
        std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
        assert!(matches!(c.status("k", false), EntryStatus::Corrupt(r) if r.contains("length")));
        // A header from other parameters is rejected.
        c.write_entry("k", &clip, 0).unwrap();
        let other = ClipCache::new(
            dir.path(),
            CacheParams {
                margin: 2,
                num_frames: 1,
                ..params()
            },
        );
        assert!(matches!(other.status("k", false), EntryStatus::Corrupt(_)));
    }
}
