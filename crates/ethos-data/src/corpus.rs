//! The unlabelled-footage index of `ethos pretrain` (experiment E3): which clips of hundreds of
//! hours of long videos a self-supervised run trains on, decoded once into the decoded-clip cache.
//!
//! **Listing.** `pretrain.videos` is a folder (searched recursively for video files), a glob
//! (`/data/nvr/cam*/*.mp4`) or a list file (one path per line, relative to the list's folder;
//! blank lines and `#` comments skipped). Videos are taken in sorted path order.
//!
//! **Sampling.** Each video is cut into intervals of `every_s` seconds (`pretrain.every_minutes`,
//! or 3600 / `pretrain.clips_per_hour`); an interval at least `clip_seconds` long gives one clip
//! whose start is drawn uniformly inside it from a ChaCha stream keyed by (seed, video path,
//! interval), so an index is the same on every machine and thread count and covers the footage
//! evenly without aligning to NVR file boundaries.
//!
//! **Filters** (each skipped clip or video is counted with its reason):
//! - cameras: the camera of a video is its file stem up to the first `camera_separator` (as
//!   `ethos predict` names cameras), or the `camera` column of `pretrain.camera_csv` (columns
//!   `video,camera`; `video` matches the file name or the path as listed); `include` keeps only
//!   the named cameras, `exclude` drops them;
//! - time of day: a clip is kept when the wall-clock time of its middle lies in
//!   `[start, end)` (a window may wrap midnight). The recording's start comes from the file name
//!   (`from: file_name`: the last `YYYYMMDDHHMMSS` run of digits, else the last `HHMMSS` run, else
//!   the last `HH-MM-SS` / `HH.MM.SS` / `HH:MM:SS`) or from the file's modification time
//!   (`from: mtime`: taken as the END of the recording, in UTC shifted by `utc_offset_hours`);
//! - activity: the mean absolute difference of consecutive frames of the clip's decoded frames,
//!   as luma on a grid of at most `size` pixels on the short side, on the 0-1 scale
//!   ([`activity_score`]); a clip below `threshold` is skipped as near-static and its cache entry
//!   removed.
//!
//! **Decoding.** Every candidate clip is decoded once, straight into the decoded-clip cache
//! ([`crate::cache`]: ROI from `camera_rois`, short side, fps and frame count as for labelled
//! data; a clip is an [`Event`] without a label, see [`IndexRow::event`]). The activity score is
//! computed from those frames, so the filter costs no second decode. Only the frames a clip needs
//! are decoded (the sampler seeks to the keyframe before the clip).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use ethos_video::{ClipSampler, ClipView, Roi};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cache::{CacheParams, ClipCache, EntryStatus, IdentityCache};
use crate::error::DataError;
use crate::manifest::Event;

/// File extensions (lower case) a folder listing takes as videos.
pub const VIDEO_EXTENSIONS: [&str; 10] = [
    "mp4", "mkv", "avi", "mov", "m4v", "ts", "mts", "webm", "mpg", "mpeg",
];

/// Stream purpose of the clip-start draws (distinct from the loader's streams).
const START_STREAM: u64 = 0x636f_7270_7573;

/// Seconds in a day.
const DAY_S: f64 = 86_400.0;

/// Errors of the corpus index; each names the key, file, line or value it concerns.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    /// `pretrain.videos` names nothing usable.
    #[error("pretrain.videos = {path}: {reason}")]
    Videos {
        /// The configured folder, glob or list file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A line of a list file or camera CSV that cannot be used.
    #[error("{path}: line {line}: {reason}")]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        reason: String,
    },
    /// A file the config names cannot be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// No time of day in a video's file name (`pretrain.time_of_day.from: file_name`).
    #[error("pretrain.time_of_day.from = file_name: {video}: {reason}")]
    TimeOfDay {
        /// The video.
        video: PathBuf,
        /// What was expected.
        reason: String,
    },
    /// An index file that cannot be read back.
    #[error("index {path}: {reason}")]
    Index {
        /// The index CSV.
        path: PathBuf,
        /// What is wrong (with the line where known).
        reason: String,
    },
    /// A cache entry could not be written (disk full, permissions).
    #[error(transparent)]
    Data(#[from] DataError),
}

impl ethos_core::Classify for CorpusError {
    fn kind(&self) -> ethos_core::ErrorKind {
        match self {
            CorpusError::Data(e) => e.kind(),
            CorpusError::Read { source, .. } => ethos_core::ErrorKind::of_input_io(source),
            _ => ethos_core::ErrorKind::BadInput,
        }
    }
}

/// `pretrain.cameras`: cameras to keep (`include`, empty = all) and to drop (`exclude`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CameraFilter {
    /// Only these cameras (empty: every camera).
    pub include: Vec<String>,
    /// Never these cameras.
    pub exclude: Vec<String>,
}

impl CameraFilter {
    /// Whether `camera` passes.
    pub fn keeps(&self, camera: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|c| c == camera))
            && !self.exclude.iter().any(|c| c == camera)
    }
}

/// Where a recording's wall-clock start comes from (`pretrain.time_of_day.from`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeSource {
    /// A time of day in the file name (NVR exports name files by their start time).
    #[default]
    FileName,
    /// The file's modification time, taken as the end of the recording (UTC + offset).
    Mtime,
}

/// `pretrain.time_of_day`: keep clips whose middle lies in `[start, end)` (wall clock, `HH:MM` or
/// `HH:MM:SS`; `end` before `start` wraps midnight).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeOfDay {
    /// Window start, `HH:MM[:SS]`.
    pub start: String,
    /// Window end (exclusive), `HH:MM[:SS]`.
    pub end: String,
    /// Where a recording's start time comes from.
    #[serde(default)]
    pub from: TimeSource,
    /// Hours added to modification times (UTC) to get local time (`from: mtime` only).
    #[serde(default)]
    pub utc_offset_hours: f64,
}

impl TimeOfDay {
    /// The window in seconds of the day, `(start, end)`; errors name the key and value.
    pub fn window(&self) -> Result<(f64, f64), String> {
        let start = parse_clock(&self.start)
            .map_err(|e| format!("pretrain.time_of_day.start = {:?}: {e}", self.start))?;
        let end = parse_clock(&self.end)
            .map_err(|e| format!("pretrain.time_of_day.end = {:?}: {e}", self.end))?;
        if start == end {
            return Err(format!(
                "pretrain.time_of_day: start = end = {:?} leaves no time (omit the key to keep every clip)",
                self.start
            ));
        }
        if !(self.utc_offset_hours.is_finite() && self.utc_offset_hours.abs() <= 14.0) {
            return Err(format!(
                "pretrain.time_of_day.utc_offset_hours = {}: must be in [-14, 14]",
                self.utc_offset_hours
            ));
        }
        Ok((start, end))
    }
}

/// `pretrain.activity`: skip near-static clips ([`activity_score`] below `threshold`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityFilter {
    /// Smallest mean absolute frame difference (0-1 scale) a kept clip has.
    pub threshold: f64,
    /// Short side in pixels of the luma grid the difference is taken on.
    #[serde(default = "default_activity_size")]
    pub size: u32,
}

fn default_activity_size() -> u32 {
    32
}

impl ActivityFilter {
    /// Checks the values; errors name the key and value.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.threshold.is_finite() && (0.0..1.0).contains(&self.threshold)) {
            return Err(format!(
                "pretrain.activity.threshold = {}: must be in [0, 1) (a mean absolute frame difference on the 0-1 scale)",
                self.threshold
            ));
        }
        if !(4..=1024).contains(&self.size) {
            return Err(format!(
                "pretrain.activity.size = {}: must be in 4..=1024 pixels",
                self.size
            ));
        }
        Ok(())
    }
}

/// Everything an index depends on besides the cache's decode parameters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CorpusSpec {
    /// Folder, glob or list file of the long videos.
    pub videos: PathBuf,
    /// Clip window in seconds.
    pub clip_seconds: f64,
    /// One clip per this many seconds of footage.
    pub every_s: f64,
    /// Camera include / exclude lists.
    pub cameras: CameraFilter,
    /// Optional `video,camera` CSV naming each video's camera.
    pub camera_csv: Option<PathBuf>,
    /// Separator ending the camera name in a file stem.
    pub camera_separator: String,
    /// Region of interest per camera (source pixels); cameras without one use the whole frame.
    pub camera_rois: BTreeMap<String, Roi>,
    /// Optional time-of-day window.
    pub time_of_day: Option<TimeOfDay>,
    /// Optional activity filter.
    pub activity: Option<ActivityFilter>,
    /// Seed of the clip-start draws.
    pub seed: u64,
}

impl CorpusSpec {
    /// Hex SHA-256 of the spec and the cache parameters: an index is reused only for the same
    /// value.
    pub fn fingerprint(&self, params: &CacheParams) -> String {
        let text = serde_json::json!({
            "spec": self,
            "fps": params.fps,
            "num_frames": params.num_frames,
            "margin": params.margin,
            "short_side": params.short_side,
        })
        .to_string();
        Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// One clip of the index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexRow {
    /// The long video (absolute path).
    pub video: PathBuf,
    /// Its camera.
    pub camera: String,
    /// Clip start in seconds from the video's first frame.
    pub start_s: f64,
    /// Clip window in seconds.
    pub duration_s: f64,
    /// [`activity_score`] of the clip's frames (0-1).
    pub activity: f64,
}

impl IndexRow {
    /// The clip as an unlabelled [`Event`] (class 0, no behaviour name), number `idx`, with the
    /// camera's ROI: what the cache keys and the loader read.
    pub fn event(&self, idx: usize, rois: &BTreeMap<String, Roi>) -> Event {
        Event {
            event_idx: idx as u32,
            video: self.video.clone(),
            start_s: self.start_s,
            duration_s: self.duration_s,
            behavior: String::new(),
            class_index: 0,
            group: None,
            camera: Some(self.camera.clone()),
            split: None,
            roi: rois.get(&self.camera).copied(),
            line: idx as u64 + 2,
        }
    }
}

/// A candidate clip that is not in the index, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SkippedClip {
    /// The video.
    pub video: PathBuf,
    /// Clip start, seconds.
    pub start_s: f64,
    /// `static` (activity below the threshold) or `decode failed`.
    pub reason: String,
    /// The activity score when it was computed.
    pub activity: Option<f64>,
    /// Details (the decoder's message).
    pub detail: String,
}

/// How many videos and clips each filter removed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SkipCounts {
    /// Videos whose camera the camera filter drops.
    pub videos_camera_excluded: usize,
    /// Hours of those videos.
    pub hours_camera_excluded: f64,
    /// Videos that could not be opened or probed (listed in the log).
    pub videos_unreadable: usize,
    /// Videos shorter than one clip.
    pub videos_too_short: usize,
    /// Candidate clips outside the time-of-day window.
    pub clips_outside_time: usize,
    /// Clips below the activity threshold.
    pub clips_static: usize,
    /// Clips whose frames could not be decoded.
    pub clips_decode_failed: usize,
}

/// What [`build_index`] found.
#[derive(Debug, Clone)]
pub struct CorpusIndex {
    /// Kept clips, in (video path, start) order.
    pub rows: Vec<IndexRow>,
    /// Skipped candidate clips (static, undecodable), in the same order.
    pub skipped: Vec<SkippedClip>,
    /// Counts per reason.
    pub counts: SkipCounts,
    /// Videos listed.
    pub videos_listed: usize,
    /// Hours of the videos that passed the camera filter (the footage the index covers).
    pub hours_indexed: f64,
    /// Seconds of clip windows decoded (kept and skipped clips).
    pub clip_seconds_decoded: f64,
    /// Cache entries reused / newly decoded.
    pub entries_reused: usize,
    /// Cache entries decoded by this call.
    pub entries_built: usize,
}

/// Lists the videos `pretrain.videos` names (folder, glob or list file), sorted and unique.
pub fn list_videos(videos: &Path) -> Result<Vec<PathBuf>, CorpusError> {
    let bad = |reason: String| CorpusError::Videos {
        path: videos.to_path_buf(),
        reason,
    };
    let text = videos.to_string_lossy();
    let mut out = if text.contains(['*', '?', '[']) {
        let paths = glob::glob(&text).map_err(|e| bad(format!("not a valid glob: {e}")))?;
        let mut v = Vec::new();
        for p in paths {
            let p = p.map_err(|e| bad(format!("while matching: {e}")))?;
            if p.is_file() {
                v.push(p);
            }
        }
        v
    } else if videos.is_dir() {
        let mut v = Vec::new();
        walk(videos, &mut v).map_err(|source| CorpusError::Read {
            path: videos.to_path_buf(),
            source,
        })?;
        v
    } else if videos.is_file() {
        read_list(videos)?
    } else {
        return Err(bad(
            "no such folder or file (a folder of videos, a glob such as /data/*.mp4, or a list file with one path per line)".into(),
        ));
    };
    out.sort();
    out.dedup();
    if out.is_empty() {
        return Err(bad(format!(
            "no video files found (extensions: {})",
            VIDEO_EXTENSIONS.join(", ")
        )));
    }
    Ok(out)
}

fn is_video(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| VIDEO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let ty = entry.file_type()?;
        if ty.is_dir() {
            walk(&path, out)?;
        } else if is_video(&path) && path.is_file() {
            out.push(path);
        }
    }
    Ok(())
}

fn read_list(list: &Path) -> Result<Vec<PathBuf>, CorpusError> {
    let text = std::fs::read_to_string(list).map_err(|source| CorpusError::Read {
        path: list.to_path_buf(),
        source,
    })?;
    let base = list.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let p = Path::new(line);
        let p = if p.is_relative() {
            base.join(p)
        } else {
            p.to_path_buf()
        };
        if !p.is_file() {
            return Err(CorpusError::Line {
                path: list.to_path_buf(),
                line: i as u64 + 1,
                reason: format!("{}: no such file", p.display()),
            });
        }
        out.push(p);
    }
    Ok(out)
}

/// Reads a `video,camera` CSV: file name (or path as listed) → camera.
pub fn read_camera_csv(path: &Path) -> Result<HashMap<String, String>, CorpusError> {
    let line_err = |line: u64, reason: String| CorpusError::Line {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| match e.into_kind() {
            csv::ErrorKind::Io(source) => CorpusError::Read {
                path: path.to_path_buf(),
                source,
            },
            other => line_err(1, format!("{other:?}")),
        })?;
    let headers = rdr
        .headers()
        .map_err(|e| line_err(1, e.to_string()))?
        .clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| line_err(1, format!("no `{name}` column (columns: video, camera)")))
    };
    let (v, c) = (col("video")?, col("camera")?);
    let mut map = HashMap::new();
    for (i, rec) in rdr.records().enumerate() {
        let line = i as u64 + 2;
        let rec = rec.map_err(|e| line_err(line, e.to_string()))?;
        let (video, camera) = (rec.get(v).unwrap_or(""), rec.get(c).unwrap_or(""));
        if video.is_empty() || camera.is_empty() {
            return Err(line_err(line, "empty `video` or `camera`".into()));
        }
        if map.insert(video.to_string(), camera.to_string()).is_some() {
            return Err(line_err(line, format!("video `{video}` listed twice")));
        }
    }
    Ok(map)
}

/// The camera of `video`: the camera CSV's entry (by path as listed, else file name), else the
/// file stem up to the first `separator` (the whole stem without one).
pub fn camera_of(video: &Path, separator: &str, csv: Option<&HashMap<String, String>>) -> String {
    if let Some(map) = csv {
        let full = video.to_string_lossy();
        let name = video
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(c) = map.get(full.as_ref()).or_else(|| map.get(&name)) {
            return c.clone();
        }
    }
    let stem = video
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    match (separator.is_empty(), stem.split_once(separator)) {
        (false, Some((camera, _))) => camera.to_string(),
        _ => stem,
    }
}

/// Parses `HH:MM` or `HH:MM:SS` into seconds of the day.
pub fn parse_clock(s: &str) -> Result<f64, String> {
    let parts: Vec<&str> = s.trim().split(':').collect();
    if !(2..=3).contains(&parts.len()) {
        return Err("expected HH:MM or HH:MM:SS".into());
    }
    let mut v = [0u32; 3];
    for (i, p) in parts.iter().enumerate() {
        v[i] = p
            .parse()
            .map_err(|_| format!("`{p}` is not a number (expected HH:MM or HH:MM:SS)"))?;
    }
    if v[0] > 23 || v[1] > 59 || v[2] > 59 {
        return Err("hours 0-23, minutes and seconds 0-59".into());
    }
    Ok((v[0] * 3600 + v[1] * 60 + v[2]) as f64)
}

/// The time of day (seconds) a file name states: the last 14-digit run `YYYYMMDDHHMMSS`, else the
/// last 6-digit run `HHMMSS`, else the last `HH-MM-SS` (or `.`/`:` separated), each a valid clock
/// time; `None` when there is none.
pub fn time_in_file_name(name: &str) -> Option<f64> {
    let clock = |h: &str, m: &str, s: &str| -> Option<f64> {
        let (h, m, s): (u32, u32, u32) = (h.parse().ok()?, m.parse().ok()?, s.parse().ok()?);
        (h < 24 && m < 60 && s < 60).then_some((h * 3600 + m * 60 + s) as f64)
    };
    let bytes = name.as_bytes();
    let mut runs = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            runs.push((start, i));
        } else {
            i += 1;
        }
    }
    let run = |&(a, b): &(usize, usize)| &name[a..b];
    let hms = |r: &str| clock(&r[0..2], &r[2..4], &r[4..6]);
    if let Some(t) = runs
        .iter()
        .rev()
        .filter(|r| r.1 - r.0 == 14)
        .find_map(|r| hms(&run(r)[8..]))
    {
        return Some(t);
    }
    if let Some(t) = runs
        .iter()
        .rev()
        .filter(|r| r.1 - r.0 == 6)
        .find_map(|r| hms(run(r)))
    {
        return Some(t);
    }
    runs.windows(3).rev().find_map(|w| {
        let two_digits = w.iter().all(|r| r.1 - r.0 == 2);
        let sep = bytes[w[0].1];
        let separated = w[1].0 == w[0].1 + 1
            && w[2].0 == w[1].1 + 1
            && bytes[w[1].1] == sep
            && matches!(sep, b'-' | b'.' | b':');
        if two_digits && separated {
            clock(run(&w[0]), run(&w[1]), run(&w[2]))
        } else {
            None
        }
    })
}

/// The wall-clock time of day (seconds) at which `video` (of `duration_s` seconds) starts.
fn recording_start(video: &Path, duration_s: f64, tod: &TimeOfDay) -> Result<f64, CorpusError> {
    match tod.from {
        TimeSource::FileName => {
            let name = video
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            time_in_file_name(&name).ok_or_else(|| CorpusError::TimeOfDay {
                video: video.to_path_buf(),
                reason: "no time of day in the file name (expected YYYYMMDDHHMMSS, HHMMSS or HH-MM-SS); use from: mtime or drop pretrain.time_of_day".into(),
            })
        }
        TimeSource::Mtime => {
            let meta = std::fs::metadata(video).map_err(|source| CorpusError::Read {
                path: video.to_path_buf(),
                source,
            })?;
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0.0, |d| d.as_secs_f64());
            let local = mtime - duration_s + tod.utc_offset_hours * 3600.0;
            Ok(local.rem_euclid(DAY_S))
        }
    }
}

/// Whether time of day `t` (seconds, any value; taken modulo a day) lies in `[start, end)`, a
/// window that wraps midnight when `end < start`.
pub fn in_window(t: f64, (start, end): (f64, f64)) -> bool {
    let t = t.rem_euclid(DAY_S);
    if start < end {
        (start..end).contains(&t)
    } else {
        t >= start || t < end
    }
}

/// The clip starts of a video of `duration_s` seconds: one per interval of `every_s` seconds that
/// holds a whole clip, drawn uniformly inside the interval from (seed, `video_key`, interval).
pub fn clip_starts(
    duration_s: f64,
    clip_seconds: f64,
    every_s: f64,
    seed: u64,
    video_key: &str,
) -> Vec<f64> {
    let key: [u8; 32] = Sha256::digest(video_key.as_bytes()).into();
    let video_word = u64::from_le_bytes(key[..8].try_into().unwrap_or([0; 8]));
    let mut starts = Vec::new();
    let mut k = 0u64;
    loop {
        let lo = k as f64 * every_s;
        let hi = ((k + 1) as f64 * every_s).min(duration_s);
        if hi - lo < clip_seconds || lo >= duration_s {
            break;
        }
        let mut seed_bytes = [0u8; 32];
        seed_bytes[0..8].copy_from_slice(&seed.to_le_bytes());
        seed_bytes[8..16].copy_from_slice(&video_word.to_le_bytes());
        seed_bytes[16..24].copy_from_slice(&k.to_le_bytes());
        seed_bytes[24..32].copy_from_slice(&START_STREAM.to_le_bytes());
        let u: f64 = ChaCha12Rng::from_seed(seed_bytes).random();
        // Millisecond starts: exact in the CSV and in the cache key.
        let start = ((lo + u * (hi - lo - clip_seconds)) * 1000.0).floor() / 1000.0;
        starts.push(start);
        k += 1;
    }
    starts
}

/// Activity of a clip: the mean absolute difference of consecutive frames, as luma (BT.601
/// weights) block-averaged to at most `size` pixels on the short side, on the 0-1 scale. 0 for a
/// clip of fewer than two frames or a static scene.
pub fn activity_score(clip: ClipView<'_>, size: u32) -> f64 {
    if clip.frames < 2 || clip.height == 0 || clip.width == 0 {
        return 0.0;
    }
    let block = (clip.height.min(clip.width) / size.max(1) as usize).max(1);
    let (gh, gw) = (clip.height / block, clip.width / block);
    let luma = |t: usize| -> Vec<f32> {
        let f = clip.frame(t);
        let mut g = vec![0f32; gh * gw];
        for y in 0..gh * block {
            for x in 0..gw * block {
                let p = 3 * (y * clip.width + x);
                let l = 0.299 * f[p] as f32 + 0.587 * f[p + 1] as f32 + 0.114 * f[p + 2] as f32;
                g[(y / block) * gw + x / block] += l;
            }
        }
        let n = (block * block) as f32;
        g.iter_mut().for_each(|v| *v /= n);
        g
    };
    let mut prev = luma(0);
    let mut sum = 0f64;
    for t in 1..clip.frames {
        let cur = luma(t);
        sum += prev
            .iter()
            .zip(&cur)
            .map(|(a, b)| (a - b).abs() as f64)
            .sum::<f64>()
            / (gh * gw) as f64;
        prev = cur;
    }
    sum / (clip.frames - 1) as f64 / 255.0
}

/// Progress of [`build_index`]: a phase name and `(done, total)` of it.
pub type IndexProgress<'a> = &'a (dyn Fn(&str, usize, usize) + Sync);

struct Candidate {
    row: IndexRow,
    source: PathBuf,
    key: String,
}

enum Outcome {
    Kept { activity: f64, reused: bool },
    Static { activity: f64, reused: bool },
    Failed(String),
}

/// Builds the index of `spec`: lists and probes the videos (`threads` in parallel), applies the
/// camera and time filters, draws the clip starts, decodes every candidate into `cache` (entries
/// already valid are reused), scores its activity and applies the activity filter. Deterministic
/// for a spec and cache parameters. Videos that cannot be probed and clips that cannot be decoded
/// are counted and logged, not fatal (one bad file in hundreds of hours must not stop a run);
/// a cache write failure is.
pub fn build_index(
    spec: &CorpusSpec,
    cache: &ClipCache,
    threads: usize,
    progress: IndexProgress<'_>,
) -> Result<CorpusIndex, CorpusError> {
    let window = match &spec.time_of_day {
        Some(t) => Some(t.window().map_err(|reason| CorpusError::Videos {
            path: spec.videos.clone(),
            reason,
        })?),
        None => None,
    };
    let csv = spec
        .camera_csv
        .as_deref()
        .map(read_camera_csv)
        .transpose()?;
    let videos = list_videos(&spec.videos)?;
    let mut counts = SkipCounts::default();
    let listed = videos.len();
    let probed = parallel_map(
        &videos,
        threads,
        &|_, v: &PathBuf| ethos_video::probe(v),
        &|d, n| progress("probe", d, n),
    );
    let identities = IdentityCache::default();
    let mut candidates = Vec::new();
    let mut hours_indexed = 0.0;
    for (video, info) in videos.iter().zip(probed) {
        let info = match info {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!("pretrain index: skipping {}: {e}", video.display());
                counts.videos_unreadable += 1;
                continue;
            }
        };
        let duration = info.duration_s;
        let camera = camera_of(video, &spec.camera_separator, csv.as_ref());
        if !spec.cameras.keeps(&camera) {
            counts.videos_camera_excluded += 1;
            counts.hours_camera_excluded += duration / 3600.0;
            continue;
        }
        hours_indexed += duration / 3600.0;
        let starts = clip_starts(
            duration,
            spec.clip_seconds,
            spec.every_s,
            spec.seed,
            &video.to_string_lossy(),
        );
        if starts.is_empty() {
            counts.videos_too_short += 1;
            continue;
        }
        let wall0 = match (&spec.time_of_day, window) {
            (Some(tod), Some(_)) => Some(recording_start(video, duration, tod)?),
            _ => None,
        };
        let identity = identities.get(video)?;
        for start in starts {
            if let (Some(w0), Some(win)) = (wall0, window)
                && !in_window(w0 + start + spec.clip_seconds / 2.0, win)
            {
                counts.clips_outside_time += 1;
                continue;
            }
            let row = IndexRow {
                video: video.clone(),
                camera: camera.clone(),
                start_s: start,
                duration_s: spec.clip_seconds,
                activity: 0.0,
            };
            let key = cache.key(&identity, &row.event(0, &spec.camera_rois));
            candidates.push(Candidate {
                row,
                source: video.clone(),
                key,
            });
        }
    }
    let sampler = ClipSampler::new(1);
    let fatal: Mutex<Option<DataError>> = Mutex::new(None);
    let frames = cache.params().stored_frames();
    let size = spec.activity.as_ref().map_or(32, |a| a.size);
    let threshold = spec.activity.as_ref().map(|a| a.threshold);
    let outcomes = parallel_map(
        &candidates,
        threads,
        &|_, c: &Candidate| -> Outcome {
            if fatal.lock().unwrap_or_else(|e| e.into_inner()).is_some() {
                return Outcome::Failed("stopped".into());
            }
            let event = c.row.event(0, &spec.camera_rois);
            let reused = cache.status(&c.key, false) == EntryStatus::Valid;
            let activity = if reused {
                cache
                    .read_mapped(&c.key, 0, frames)
                    .map(|m| activity_score(m.view(), size))
            } else {
                cache
                    .build(&sampler, &c.source, &event, &c.key)
                    .map(|clip| activity_score(clip.view(), size))
            };
            match activity {
                Ok(a) if threshold.is_some_and(|th| a < th) => {
                    // A skipped clip's frames are never read: free the space.
                    let _ = std::fs::remove_file(cache.entry_path(&c.key));
                    Outcome::Static {
                        activity: a,
                        reused,
                    }
                }
                Ok(a) => Outcome::Kept {
                    activity: a,
                    reused,
                },
                Err(DataError::Video { source, .. }) => Outcome::Failed(source.to_string()),
                Err(DataError::CorruptCache { reason, .. }) => Outcome::Failed(reason),
                Err(e) => {
                    fatal
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_or_insert(e);
                    Outcome::Failed("stopped".into())
                }
            }
        },
        &|d, n| progress("decode", d, n),
    );
    if let Some(e) = fatal.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e.into());
    }
    let mut index = CorpusIndex {
        rows: Vec::new(),
        skipped: Vec::new(),
        counts,
        videos_listed: listed,
        hours_indexed,
        clip_seconds_decoded: candidates.len() as f64 * spec.clip_seconds,
        entries_reused: 0,
        entries_built: 0,
    };
    for (c, outcome) in candidates.into_iter().zip(outcomes) {
        let mut tally = |reused: bool| {
            if reused {
                index.entries_reused += 1;
            } else {
                index.entries_built += 1;
            }
        };
        match outcome {
            Outcome::Kept { activity, reused } => {
                tally(reused);
                index.rows.push(IndexRow { activity, ..c.row });
            }
            Outcome::Static { activity, reused } => {
                tally(reused);
                index.counts.clips_static += 1;
                index.skipped.push(SkippedClip {
                    video: c.row.video,
                    start_s: c.row.start_s,
                    reason: "static".into(),
                    activity: Some(activity),
                    detail: format!(
                        "activity {activity:.5} < pretrain.activity.threshold {}",
                        threshold.unwrap_or(0.0)
                    ),
                });
            }
            Outcome::Failed(detail) => {
                tracing::warn!(
                    "pretrain index: {} at {:.3} s: cannot decode: {detail}",
                    c.row.video.display(),
                    c.row.start_s
                );
                index.counts.clips_decode_failed += 1;
                index.skipped.push(SkippedClip {
                    video: c.row.video,
                    start_s: c.row.start_s,
                    reason: "decode failed".into(),
                    activity: None,
                    detail,
                });
            }
        }
    }
    Ok(index)
}

/// `f` over `items` with `threads` threads; results in item order; `progress(done, total)`.
fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: &(dyn Fn(usize, &T) -> R + Sync),
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Vec<R> {
    let n = items.len();
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let slots: Mutex<Vec<Option<R>>> = Mutex::new((0..n).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads.clamp(1, n.max(1)) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { return };
                    let r = f(i, item);
                    slots.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
                    progress(done.fetch_add(1, Ordering::Relaxed) + 1, n);
                }
            });
        }
    });
    slots
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|r| r.expect("every slot is filled"))
        .collect()
}

/// Columns of the index CSV.
pub const INDEX_COLUMNS: [&str; 6] = [
    "clip",
    "video",
    "camera",
    "start_s",
    "duration_s",
    "activity",
];

/// Writes the index CSV (`clip,video,camera,start_s,duration_s,activity`) atomically.
pub fn write_index_csv(path: &Path, rows: &[IndexRow]) -> std::io::Result<()> {
    ethos_core::fs::write_atomic(path, |w| {
        let mut csv = csv::Writer::from_writer(w);
        csv.write_record(INDEX_COLUMNS)
            .map_err(std::io::Error::other)?;
        for (i, r) in rows.iter().enumerate() {
            csv.write_record([
                i.to_string(),
                r.video.to_string_lossy().into_owned(),
                r.camera.clone(),
                format!("{}", r.start_s),
                format!("{}", r.duration_s),
                format!("{:.6}", r.activity),
            ])
            .map_err(std::io::Error::other)?;
        }
        csv.flush()
    })
}

/// Writes the skipped clips (`video,start_s,reason,activity,detail`) atomically.
pub fn write_skipped_csv(path: &Path, rows: &[SkippedClip]) -> std::io::Result<()> {
    ethos_core::fs::write_atomic(path, |w| {
        let mut csv = csv::Writer::from_writer(w);
        csv.write_record(["video", "start_s", "reason", "activity", "detail"])
            .map_err(std::io::Error::other)?;
        for r in rows {
            csv.write_record([
                r.video.to_string_lossy().into_owned(),
                format!("{}", r.start_s),
                r.reason.clone(),
                r.activity.map(|a| format!("{a:.6}")).unwrap_or_default(),
                r.detail.clone(),
            ])
            .map_err(std::io::Error::other)?;
        }
        csv.flush()
    })
}

/// Reads an index CSV written by [`write_index_csv`]; errors name the line and column.
pub fn read_index_csv(path: &Path) -> Result<Vec<IndexRow>, CorpusError> {
    let bad = |reason: String| CorpusError::Index {
        path: path.to_path_buf(),
        reason,
    };
    let mut rdr = csv::Reader::from_path(path).map_err(|e| match e.into_kind() {
        csv::ErrorKind::Io(source) => CorpusError::Read {
            path: path.to_path_buf(),
            source,
        },
        other => bad(format!("{other:?}")),
    })?;
    let headers = rdr.headers().map_err(|e| bad(e.to_string()))?.clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| bad(format!("no `{name}` column")))
    };
    let (v, c, s, d, a) = (
        col("video")?,
        col("camera")?,
        col("start_s")?,
        col("duration_s")?,
        col("activity")?,
    );
    let mut rows = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let line = i + 2;
        let rec = rec.map_err(|e| bad(format!("line {line}: {e}")))?;
        let num = |col: usize, name: &str| -> Result<f64, CorpusError> {
            let text = rec.get(col).unwrap_or("");
            text.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| bad(format!("line {line}: {name} = {text:?} is not a number")))
        };
        rows.push(IndexRow {
            video: PathBuf::from(rec.get(v).unwrap_or("")),
            camera: rec.get(c).unwrap_or("").to_string(),
            start_s: num(s, "start_s")?,
            duration_s: num(d, "duration_s")?,
            activity: num(a, "activity")?,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_starts_cover_the_footage_deterministically() {
        let a = clip_starts(600.0, 8.0, 60.0, 7, "cam0_x.mp4");
        assert_eq!(a.len(), 10);
        assert_eq!(a, clip_starts(600.0, 8.0, 60.0, 7, "cam0_x.mp4"));
        assert_ne!(a, clip_starts(600.0, 8.0, 60.0, 8, "cam0_x.mp4"));
        assert_ne!(a, clip_starts(600.0, 8.0, 60.0, 7, "cam1_x.mp4"));
        for (k, s) in a.iter().enumerate() {
            let lo = k as f64 * 60.0;
            assert!(*s >= lo && s + 8.0 <= lo + 60.0, "clip {k} at {s}");
            assert!(((s * 1000.0).round() - s * 1000.0).abs() < 1e-6, "{s}");
        }
        // A short last interval that still holds a clip gives one; one that does not, none.
        assert_eq!(clip_starts(130.0, 8.0, 60.0, 0, "v").len(), 3);
        assert_eq!(clip_starts(125.0, 8.0, 60.0, 0, "v").len(), 2);
        assert!(clip_starts(5.0, 8.0, 60.0, 0, "v").is_empty());
    }

    #[test]
    fn cameras_come_from_the_file_name_or_the_csv() {
        assert_eq!(camera_of(Path::new("/a/cam3_pen1.mp4"), "_", None), "cam3");
        assert_eq!(camera_of(Path::new("barn.mkv"), "_", None), "barn");
        let mut map = HashMap::new();
        map.insert("barn.mkv".to_string(), "north".to_string());
        assert_eq!(
            camera_of(Path::new("/x/barn.mkv"), "_", Some(&map)),
            "north"
        );
        let f = CameraFilter {
            include: vec![],
            exclude: vec!["cam2".into()],
        };
        assert!(f.keeps("cam1") && !f.keeps("cam2"));
        let f = CameraFilter {
            include: vec!["cam1".into()],
            exclude: vec![],
        };
        assert!(f.keeps("cam1") && !f.keeps("cam0"));
    }

    #[test]
    fn times_of_day_parse_from_file_names_and_windows_wrap() {
        assert_eq!(time_in_file_name("cam1_20240301143005"), Some(52205.0));
        assert_eq!(time_in_file_name("N884A6_ch3_143005"), Some(52205.0));
        assert_eq!(time_in_file_name("cam1_2024-03-01_14-30-05"), Some(52205.0));
        assert_eq!(time_in_file_name("cam1_pen2"), None);
        // 6 digits that are no clock time are not taken.
        assert_eq!(time_in_file_name("cam_996699"), None);
        assert_eq!(parse_clock("06:30").unwrap(), 23400.0);
        assert!(parse_clock("25:00").is_err());
        assert!(parse_clock("6h").is_err());
        assert!(in_window(10.0 * 3600.0, (6.0 * 3600.0, 20.0 * 3600.0)));
        assert!(!in_window(21.0 * 3600.0, (6.0 * 3600.0, 20.0 * 3600.0)));
        assert!(in_window(23.0 * 3600.0, (22.0 * 3600.0, 6.0 * 3600.0)));
        assert!(in_window(DAY_S + 3600.0, (22.0 * 3600.0, 6.0 * 3600.0)));
        assert!(!in_window(12.0 * 3600.0, (22.0 * 3600.0, 6.0 * 3600.0)));
        let tod = TimeOfDay {
            start: "10:00".into(),
            end: "10:00".into(),
            from: TimeSource::FileName,
            utc_offset_hours: 0.0,
        };
        assert!(tod.window().unwrap_err().contains("start = end"));
    }

    #[test]
    fn activity_is_zero_for_a_static_clip_and_grows_with_motion() {
        let (t, h, w) = (4, 64, 96);
        let mut data = vec![100u8; t * h * w * 3];
        let still = ClipView {
            frames: t,
            height: h,
            width: w,
            data: &data,
        };
        assert_eq!(activity_score(still, 32), 0.0);
        // A bright square moving by 8 px per frame.
        for f in 0..t {
            for y in 16..32 {
                for x in 8 * f..8 * f + 16 {
                    let p = 3 * ((f * h + y) * w + x);
                    data[p..p + 3].copy_from_slice(&[255, 255, 255]);
                }
            }
        }
        let moving = ClipView {
            frames: t,
            height: h,
            width: w,
            data: &data,
        };
        let a = activity_score(moving, 32);
        // Per frame pair: 2 x 8x16 changed pixels of 64x96 by 155/255 (before block averaging).
        let exact = 2.0 * 8.0 * 16.0 / (64.0 * 96.0) * 155.0 / 255.0;
        assert!((a - exact).abs() < 0.01, "{a} vs {exact}");
    }

    #[test]
    fn index_csv_round_trips_and_bad_rows_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let rows = vec![IndexRow {
            video: PathBuf::from("/v/cam0, odd.mp4"),
            camera: "cam0".into(),
            start_s: 12.345,
            duration_s: 8.0,
            activity: 0.0123,
        }];
        let p = dir.path().join("index.csv");
        write_index_csv(&p, &rows).unwrap();
        assert_eq!(read_index_csv(&p).unwrap(), rows);
        std::fs::write(
            &p,
            "clip,video,camera,start_s,duration_s,activity\n0,a.mp4,c,x,8,0\n",
        )
        .unwrap();
        let e = read_index_csv(&p).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("start_s"), "{e}");
    }

    #[test]
    fn list_files_globs_and_folders_name_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("day1");
        std::fs::create_dir_all(&sub).unwrap();
        for f in ["cam0_a.mp4", "cam1_b.MKV", "notes.txt"] {
            std::fs::write(sub.join(f), b"x").unwrap();
        }
        let found = list_videos(dir.path()).unwrap();
        assert_eq!(found.len(), 2, "{found:?}");
        let pattern = dir.path().join("*/cam0*");
        assert_eq!(list_videos(&pattern).unwrap().len(), 1);
        let list = dir.path().join("list.txt");
        std::fs::write(&list, "# videos\nday1/cam0_a.mp4\n\nday1/missing.mp4\n").unwrap();
        let e = list_videos(&list).unwrap_err().to_string();
        assert!(e.contains("line 4") && e.contains("missing.mp4"), "{e}");
        let e = list_videos(&dir.path().join("nope"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("pretrain.videos"), "{e}");
        std::fs::write(
            dir.path().join("cams.csv"),
            "video,camera\ncam0_a.mp4,north\n",
        )
        .unwrap();
        let map = read_camera_csv(&dir.path().join("cams.csv")).unwrap();
        assert_eq!(map["cam0_a.mp4"], "north");
        std::fs::write(dir.path().join("bad.csv"), "file,camera\n").unwrap();
        let e = read_camera_csv(&dir.path().join("bad.csv"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`video` column"), "{e}");
    }
}
