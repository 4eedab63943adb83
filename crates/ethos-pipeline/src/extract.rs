//! Clip extraction: every event of an events CSV cut out of its source video into a clip folder
//! (`evt_{event_idx:04}_{behavior}.mp4`, full frame, source rate). Parallel, resumable (complete
//! clips are kept), atomic (a clip appears only when fully written).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use ethos_core::{Error, ErrorKind};
use ethos_data::manifest::{Event, EventsManifest, clip_file_name};
use ethos_video::{
    ClipWriter, Codec, FrameReader, ReaderOptions, Resize, Roi, TIME_EPS, VideoInfo, WriterOptions,
};
use rayon::prelude::*;
use serde::Serialize;

use crate::Result;
use crate::progress::Progress;

/// Most parallel extraction jobs.
pub const MAX_JOBS: usize = 256;

/// What to extract.
#[derive(Debug, Clone)]
pub struct ExtractOptions {
    /// Events CSV.
    pub events: PathBuf,
    /// Folder the `video` column is relative to.
    pub videos: PathBuf,
    /// Clip folder to write.
    pub out: PathBuf,
    /// Class names in order (empty: the sorted behaviours of the CSV).
    pub classes: Vec<String>,
    /// Clips extracted in parallel (default: the number of CPUs).
    pub jobs: Option<usize>,
    /// Clip codec.
    pub codec: Codec,
}

/// One clip that failed.
#[derive(Debug, Clone, Serialize)]
pub struct FailedClip {
    /// The event.
    pub event_idx: u32,
    /// Its source video.
    pub source: PathBuf,
    /// Why.
    pub reason: String,
    /// Whether the input caused it (a bad or missing video) or the machine.
    #[serde(skip)]
    pub kind: Option<ErrorKind>,
}

/// What an extraction did.
#[derive(Debug, Clone, Serialize)]
pub struct ExtractSummary {
    /// Events in the CSV.
    pub total: usize,
    /// Clips written now.
    pub extracted: usize,
    /// Clips already complete.
    pub skipped: usize,
    /// Clips that failed, by event.
    pub failed: Vec<FailedClip>,
    /// Wall seconds.
    pub seconds: f64,
}

enum Outcome {
    Extracted,
    Skipped,
}

/// Frames a clip of `event` holds: outputs at `start + k / fps` before the window's end and
/// before the end of the source's last frame (the reader's time convention).
fn expected_frames(event: &Event, info: &VideoInfo, fps: f64) -> u64 {
    let in_window = ((event.duration_s - TIME_EPS) * fps).ceil().max(0.0) as u64;
    let video_end = info.duration_s.max(info.frame_count as f64 / fps);
    let available = ((video_end - event.start_s - TIME_EPS) * fps)
        .ceil()
        .max(0.0) as u64;
    in_window.min(available)
}

fn source_fps(info: &VideoInfo) -> f64 {
    if info.real_fps > 0.0 {
        info.real_fps
    } else {
        info.avg_fps
    }
}

/// True when `path` is a readable clip with exactly `frames` frames.
fn clip_is_complete(path: &Path, frames: u64) -> bool {
    path.is_file() && ethos_video::probe(path).is_ok_and(|i| i.frame_count == frames)
}

fn extract_one(
    event: &Event,
    src: &Path,
    info: &VideoInfo,
    out: &Path,
    codec: Codec,
) -> Result<Outcome> {
    let fps = source_fps(info);
    let expected = expected_frames(event, info, fps);
    if clip_is_complete(out, expected) {
        return Ok(Outcome::Skipped);
    }
    // yuv420p needs even sizes: drop an odd last row/column.
    let (w, h) = info.upright_size();
    let roi = (w % 2 == 1 || h % 2 == 1).then_some(Roi {
        x: 0,
        y: 0,
        w: w & !1,
        h: h & !1,
    });
    let opts = ReaderOptions {
        fps: Some(fps),
        start_s: event.start_s,
        end_s: Some(event.start_s + event.duration_s),
        roi,
        resize: Resize::None,
        threads: 1,
        decoder: Default::default(),
    };
    let mut reader = FrameReader::open(src, &opts)?;
    let wopts = WriterOptions {
        codec,
        fps: fps.round().max(1.0) as u32,
        ..WriterOptions::default()
    };
    let mut writer = ClipWriter::create(out, reader.width(), reader.height(), &wopts)?;
    let mut n = 0u64;
    while let Some((_, rgb)) = reader.next_frame()? {
        writer.write_frame(&rgb)?;
        n += 1;
    }
    if n == 0 {
        return Err(Error::bad_input(format!(
            "no frames in [{:.3}, {:.3}) s",
            event.start_s,
            event.start_s + event.duration_s
        )));
    }
    writer.finish()?;
    if n != expected {
        tracing::warn!(
            "{}: wrote {n} frames, expected {expected}; it will be re-extracted on resume",
            out.display()
        );
    }
    Ok(Outcome::Extracted)
}

/// Extracts every event's clip; clips that fail are listed in the summary (and make the result
/// an error once the others are done).
pub fn extract(o: &ExtractOptions, progress: &dyn Progress) -> Result<ExtractSummary> {
    ethos_video::init();
    if let Some(j) = o.jobs
        && !(1..=MAX_JOBS).contains(&j)
    {
        return Err(Error::bad_input(format!(
            "--jobs {j}: must be in 1..={MAX_JOBS}"
        )));
    }
    if !o.videos.is_dir() {
        return Err(Error::bad_input(format!(
            "--videos {}: not a folder",
            o.videos.display()
        )));
    }
    let manifest = EventsManifest::load(&o.events, Some(&o.videos), &o.classes)?;
    crate::output_dir::prepare(&o.out, "--out")?;

    let mut infos: HashMap<PathBuf, VideoInfo> = HashMap::new();
    for e in &manifest.events {
        if !infos.contains_key(&e.video) {
            let path = o.videos.join(&e.video);
            let info = ethos_video::probe(&path)?;
            infos.insert(e.video.clone(), info);
        }
    }
    let total = manifest.events.len();
    let jobs = o
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .build()
        .map_err(|e| Error::internal(format!("starting the worker threads: {e}")))?;
    let started = Instant::now();
    let done = AtomicUsize::new(0);
    let failures: Mutex<Vec<FailedClip>> = Mutex::new(Vec::new());
    let (extracted, skipped) = (AtomicUsize::new(0), AtomicUsize::new(0));
    pool.install(|| {
        manifest.events.par_iter().for_each(|e| {
            let name = clip_file_name(e.event_idx, &e.behavior);
            let out = o.out.join(&name);
            let src = o.videos.join(&e.video);
            let result = match infos.get(&e.video) {
                Some(info) => extract_one(e, &src, info, &out, o.codec),
                None => Err(Error::internal(format!("no probe of {}", src.display()))),
            };
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            match result {
                Ok(Outcome::Extracted) => {
                    extracted.fetch_add(1, Ordering::Relaxed);
                    progress.step(n, total, None);
                }
                Ok(Outcome::Skipped) => {
                    skipped.fetch_add(1, Ordering::Relaxed);
                    progress.step(n, total, None);
                }
                Err(err) => {
                    let reason = chain(&err);
                    progress.step(n, total, Some(&format!("FAILED {name}: {reason}")));
                    failures
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(FailedClip {
                            event_idx: e.event_idx,
                            source: src.clone(),
                            reason,
                            kind: Some(err.kind()),
                        });
                }
            }
        });
    });
    let mut failed = failures.into_inner().unwrap_or_else(|p| p.into_inner());
    failed.sort_by_key(|f| f.event_idx);
    let summary = ExtractSummary {
        total,
        extracted: extracted.load(Ordering::Relaxed),
        skipped: skipped.load(Ordering::Relaxed),
        failed,
        seconds: started.elapsed().as_secs_f64(),
    };
    if !summary.failed.is_empty() {
        let list: Vec<String> = summary
            .failed
            .iter()
            .map(|f| {
                format!(
                    "event_idx {} ({}): {}",
                    f.event_idx,
                    f.source.display(),
                    f.reason
                )
            })
            .collect();
        let message = format!(
            "{} of {total} clips failed; rerun to retry them:\n  {}",
            summary.failed.len(),
            list.join("\n  ")
        );
        let all_input = summary
            .failed
            .iter()
            .all(|f| f.kind == Some(ErrorKind::BadInput));
        return Err(if all_input {
            Error::bad_input(message)
        } else {
            Error::internal(message)
        });
    }
    Ok(summary)
}

/// An error and its causes on one line.
pub(crate) fn chain(e: &Error) -> String {
    let mut s = e.to_string();
    let mut cur = std::error::Error::source(e);
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Parses a codec name for `--codec`.
pub fn parse_codec(name: &str) -> std::result::Result<Codec, String> {
    name.parse()
}
