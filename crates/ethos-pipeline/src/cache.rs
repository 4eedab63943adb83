//! Building the decoded-clip cache of a config: every event of every split, decoded once (ROI,
//! short side `data.cache_short_side`, the clip's frames at `data.fps` plus `data.jitter_frames`
//! margin frames each side). Resumable: valid entries are kept, missing, truncated or corrupt ones
//! are (re)built.

use std::path::PathBuf;
use std::time::Instant;

use ethos_core::Error;
use ethos_data::cache::{CacheJob, ClipCache, build_entries};
use ethos_data::config::{DataMode, OnBadVideo};
use ethos_data::dataset::{ClipDataset, cache_params, load_split_events};
use ethos_data::error::{BadVideo, DataError};
use serde::Serialize;

use crate::Result;
use crate::config::RunConfig;
use crate::progress::Progress;

/// Most clips decoded in parallel.
pub const MAX_JOBS: usize = 256;

/// What a cache build did.
#[derive(Debug, Clone, Serialize)]
pub struct CacheSummary {
    /// The cache folder.
    pub cache_dir: PathBuf,
    /// Entries considered.
    pub total: usize,
    /// Valid entries kept.
    pub kept: usize,
    /// Entries built (missing before).
    pub built: usize,
    /// Corrupt entries built again.
    pub rebuilt: usize,
    /// Wall seconds.
    pub seconds: f64,
    /// Events whose video failed to decode.
    pub bad_videos: Vec<BadVideoRow>,
    /// With `data.on_bad_video: fail`, the error the bad videos make (after the summary is shown).
    #[serde(skip)]
    pub failure: Option<Vec<BadVideo>>,
}

/// One event whose video failed to decode.
#[derive(Debug, Clone, Serialize)]
pub struct BadVideoRow {
    /// The event.
    pub event_idx: u32,
    /// The file that failed.
    pub path: PathBuf,
    /// Why.
    pub reason: String,
}

impl CacheSummary {
    /// The error of the bad videos under `data.on_bad_video: fail`, if any.
    pub fn into_result(self) -> Result<CacheSummary> {
        match self.failure {
            Some(bad) => Err(DataError::BadVideos(bad).into()),
            None => Ok(self),
        }
    }
}

/// Builds every entry of every split of `cfg` with `jobs` threads (default: the CPUs); with
/// `full_check`, existing entries have every frame checksum verified (else header and length).
pub fn build_cache(
    cfg: &RunConfig,
    jobs: Option<usize>,
    full_check: bool,
    progress: &dyn Progress,
) -> Result<CacheSummary> {
    let data = &cfg.data;
    if let Some(j) = jobs
        && !(1..=MAX_JOBS).contains(&j)
    {
        return Err(Error::bad_input(format!(
            "--jobs {j}: must be in 1..={MAX_JOBS}"
        )));
    }
    crate::output_dir::prepare(&data.cache_dir, "data.cache_dir")?;
    ethos_video::init();
    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mut all: Vec<CacheJob> = Vec::new();
    for split in data.splits.keys() {
        let events = load_split_events(data, split)
            .map_err(|e| crate::source::split_error(e, data, split))?;
        let ds = ClipDataset::from_events(data, split, events, DataMode::Cache)?;
        tracing::info!("split {split}: {} events", ds.len());
        all.extend(ds.cache_jobs());
    }
    let cache = ClipCache::new(&data.cache_dir, cache_params(data)).with_decoder(data.decoder);
    tracing::info!(
        "caching {} clips into {} with {jobs} job(s): {} frames at {} fps (+{} margin each side), short side {}",
        all.len(),
        data.cache_dir.display(),
        data.clip_frames(),
        data.fps,
        data.jitter_frames,
        data.cache_short_side
    );
    let start = Instant::now();
    let report = build_entries(&cache, &all, jobs, full_check, &|done, total| {
        progress.step(done, total, None)
    })?;
    let bad_videos = report
        .bad
        .iter()
        .map(|b| BadVideoRow {
            event_idx: b.event_idx,
            path: b.path.clone(),
            reason: b.reason.clone(),
        })
        .collect();
    let failure = match data.on_bad_video {
        _ if report.bad.is_empty() => None,
        OnBadVideo::Fail => Some(report.bad.clone()),
        OnBadVideo::Skip => {
            tracing::warn!(
                "{} event(s) left out (data.on_bad_video: skip); training runs without them",
                report.bad.len()
            );
            None
        }
    };
    Ok(CacheSummary {
        cache_dir: data.cache_dir.clone(),
        total: report.total,
        kept: report.reused,
        built: report.built,
        rebuilt: report.rebuilt,
        seconds: start.elapsed().as_secs_f64(),
        bad_videos,
        failure,
    })
}
