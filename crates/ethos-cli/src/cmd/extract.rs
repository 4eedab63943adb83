//! `ethos extract`: cuts every event of an events CSV out of its source video into a clip folder
//! (`evt_{event_idx:04}_{behavior}.mp4`, full frame, source rate). Parallel, resumable, atomic.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::Context;
use ethos_data::manifest::{Event, EventsManifest, clip_file_name};
use ethos_video::{
    ClipWriter, Codec, FrameReader, ReaderOptions, Resize, Roi, TIME_EPS, VideoInfo, WriterOptions,
};
use rayon::prelude::*;

use crate::exit::BadInput;

/// Arguments of `ethos extract`.
#[derive(clap::Args)]
pub struct Args {
    /// Events CSV (columns event_idx, video, start_s, duration_s, behavior, ...).
    #[arg(long)]
    pub events: PathBuf,
    /// Folder the `video` column is relative to.
    #[arg(long)]
    pub videos: PathBuf,
    /// Clip folder to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Class names in order, comma separated (default: the sorted behaviors of the CSV).
    #[arg(long, value_delimiter = ',')]
    pub classes: Vec<String>,
    /// Clips extracted in parallel (default: the number of CPUs).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Clip codec: h264 (MPEG-4 when libx264 is missing), hevc or mpeg4.
    #[arg(long, default_value = "h264")]
    pub codec: String,
}

/// What happened to one event.
enum Outcome {
    Extracted(u64),
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
) -> anyhow::Result<Outcome> {
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
        anyhow::bail!(
            "no frames in [{:.3}, {:.3}) s",
            event.start_s,
            event.start_s + event.duration_s
        );
    }
    writer.finish()?;
    if n != expected {
        tracing::warn!(
            "{}: wrote {n} frames, expected {expected}; it will be re-extracted on resume",
            out.display()
        );
    }
    Ok(Outcome::Extracted(n))
}

/// Runs `ethos extract`.
pub fn run(args: Args) -> anyhow::Result<()> {
    ethos_video::init();
    let codec: Codec = args
        .codec
        .parse()
        .map_err(|e: String| BadInput(format!("--codec: {e}")))?;
    if args.jobs == Some(0) {
        return Err(BadInput("--jobs must be at least 1".into()).into());
    }
    if !args.videos.is_dir() {
        return Err(BadInput(format!("--videos {}: not a folder", args.videos.display())).into());
    }
    let manifest = EventsManifest::load(&args.events, Some(&args.videos), &args.classes)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;

    let mut infos: HashMap<PathBuf, VideoInfo> = HashMap::new();
    for e in &manifest.events {
        if !infos.contains_key(&e.video) {
            let path = args.videos.join(&e.video);
            let info = ethos_video::probe(&path)?;
            infos.insert(e.video.clone(), info);
        }
    }
    let total = manifest.events.len();
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .build()
        .context("starting the worker threads")?;
    let started = Instant::now();
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(total as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "extract {bar:40} {pos}/{len} clips {per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let done = AtomicUsize::new(0);
    let failures: Mutex<Vec<(u32, PathBuf, String)>> = Mutex::new(Vec::new());
    let (extracted, skipped) = (AtomicUsize::new(0), AtomicUsize::new(0));
    pool.install(|| {
        manifest.events.par_iter().for_each(|e| {
            let name = clip_file_name(e.event_idx, &e.behavior);
            let out = args.out.join(&name);
            let src = args.videos.join(&e.video);
            let result = match infos.get(&e.video) {
                Some(info) => extract_one(e, &src, info, &out, codec),
                None => Err(anyhow::anyhow!("no probe of {}", src.display())),
            };
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            let line = match &result {
                Ok(Outcome::Extracted(frames)) => {
                    extracted.fetch_add(1, Ordering::Relaxed);
                    format!("extracted {name} ({frames} frames)")
                }
                Ok(Outcome::Skipped) => {
                    skipped.fetch_add(1, Ordering::Relaxed);
                    format!("skipped {name} (complete)")
                }
                Err(err) => {
                    let msg = format!("{err:#}");
                    if let Ok(mut f) = failures.lock() {
                        f.push((e.event_idx, src.clone(), msg.clone()));
                    }
                    format!("FAILED {name}: {msg}")
                }
            };
            match &bar {
                Some(bar) => {
                    bar.set_position(n as u64);
                    if result.is_err() {
                        bar.println(line);
                    }
                }
                None => {
                    let mut err = std::io::stderr().lock();
                    let _ = writeln!(err, "extract [{n}/{total}] {line}");
                    let _ = err.flush();
                }
            }
        });
    });
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let mut failures = failures.into_inner().unwrap_or_else(|p| p.into_inner());
    failures.sort_by_key(|f| f.0);
    eprintln!(
        "extract: {} extracted, {} skipped (already complete), {} failed of {total} in {:.1} s -> {}",
        extracted.load(Ordering::Relaxed),
        skipped.load(Ordering::Relaxed),
        failures.len(),
        started.elapsed().as_secs_f64(),
        args.out.display()
    );
    if !failures.is_empty() {
        eprintln!("extract: failed clips:");
        for (idx, src, msg) in &failures {
            eprintln!("  event_idx {idx} ({}): {msg}", src.display());
        }
        anyhow::bail!(
            "{} of {total} clips failed (listed above); rerun to retry them",
            failures.len()
        );
    }
    Ok(())
}
