//! `ethos cache --config F [--jobs J]`: builds the decoded-clip cache of every event of every split
//! of a config (decode once, ROI, short side `data.cache_short_side`, `data.num_frames` at
//! `data.fps` plus `data.jitter_frames` margin frames each side). Resumable: valid entries are
//! kept, missing, truncated or corrupt ones are (re)built. Progress on stderr, a JSON report on
//! stdout; videos that fail to decode are listed at the end and, with `data.on_bad_video: fail`,
//! make the exit code 2.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::Context;
use ethos_data::cache::{CacheJob, ClipCache, build_entries};
use ethos_data::config::{DataMode, OnBadVideo};
use ethos_data::dataset::{ClipDataset, cache_params, load_split_events};
use ethos_data::error::DataError;

/// Arguments of `ethos cache`.
#[derive(clap::Args)]
pub struct Args {
    /// The run config (YAML); its `data` section says what to cache and where.
    #[arg(long)]
    pub config: PathBuf,
    /// Clips decoded in parallel (one decoder thread each); default: available cores.
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Only check the header and length of existing entries (default: every frame checksum too).
    #[arg(long)]
    pub quick: bool,
    /// Override a config key, e.g. `--set data.cache_short_side=320` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// Progress for people: an indicatif bar on a terminal, else one flushed line per ~5%.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    start: Instant,
    last_line: Mutex<usize>,
}

impl Progress {
    fn new(total: usize) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "cache {bar:40} {pos}/{len} clips {per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
        Self {
            bar,
            start: Instant::now(),
            last_line: Mutex::new(0),
        }
    }

    fn update(&self, done: usize, total: usize) {
        if let Some(bar) = &self.bar {
            bar.set_position(done as u64);
            return;
        }
        let step = total.div_ceil(20).max(1);
        let mut last = self.last_line.lock().unwrap_or_else(|e| e.into_inner());
        if done == total || done >= *last + step {
            *last = done;
            let secs = self.start.elapsed().as_secs_f64();
            eprintln!(
                "cache: {done}/{total} clips ({:.1} clips/s)",
                done as f64 / secs.max(1e-9)
            );
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Runs `ethos cache`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = crate::config::RunConfig::load(&args.config, &args.set)?;
    let data = &cfg.data;
    ethos_video::init();
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let mut all: Vec<CacheJob> = Vec::new();
    for split in data.splits.keys() {
        let events = load_split_events(data, split).with_context(|| format!("split `{split}`"))?;
        let ds = ClipDataset::from_events(data, split, events, DataMode::Cache)?;
        tracing::info!("split {split}: {} events", ds.len());
        all.extend(ds.cache_jobs());
    }
    let cache = ClipCache::new(&data.cache_dir, cache_params(data));
    tracing::info!(
        "caching {} clips into {} with {jobs} job(s): {} frames at {} fps (+{} margin each side), short side {}",
        all.len(),
        data.cache_dir.display(),
        data.clip_frames(),
        data.fps,
        data.jitter_frames,
        data.cache_short_side
    );
    let progress = Progress::new(all.len());
    let start = Instant::now();
    let report = build_entries(&cache, &all, jobs, !args.quick, &|done, total| {
        progress.update(done, total)
    })?;
    progress.finish();
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "cache: {} clips: {} kept, {} built, {} rebuilt (corrupt), {} failed in {secs:.1} s",
        report.total,
        report.reused,
        report.built,
        report.rebuilt,
        report.bad.len()
    );
    for b in &report.bad {
        eprintln!("  bad video: {b}");
    }
    let summary = serde_json::json!({
        "cache_dir": data.cache_dir,
        "total": report.total,
        "kept": report.reused,
        "built": report.built,
        "rebuilt": report.rebuilt,
        "seconds": secs,
        "bad_videos": report.bad.iter().map(|b| serde_json::json!({
            "event_idx": b.event_idx, "path": b.path, "reason": b.reason,
        })).collect::<Vec<_>>(),
    });
    println!("{}", serde_json::to_string_pretty(&summary)?);
    if !report.bad.is_empty() {
        match data.on_bad_video {
            OnBadVideo::Fail => return Err(DataError::BadVideos(report.bad).into()),
            OnBadVideo::Skip => tracing::warn!(
                "{} event(s) left out (data.on_bad_video: skip); training runs without them",
                report.bad.len()
            ),
        }
    }
    Ok(())
}
