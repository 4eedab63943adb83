//! [`ClipDataset`]: the uint8 clip of each event of a split, from one of three places that agree
//! (within codec noise):
//!
//! - **source**: [`ClipSampler`] seeks into the long source video;
//! - **clip_dir**: the extracted clip `evt_XXXX_behavior.mp4`, whose time 0 is the event start;
//! - **cache**: the decoded-clip cache ([`crate::cache`]); missing or corrupt entries are decoded
//!   from the source and written (so a run never uses a bad entry).
//!
//! Every mode samples the same times: the `N` times of the event's [`ClipRequest`] grid shifted by
//! a whole number of frames `j` (`|j| <= M`, the temporal jitter), scales the short side to
//! `data.cache_short_side` and crops the manifest ROI (in all modes: extracted clips are expected
//! to be full-frame).
//!
//! [`ClipRequest`]: ethos_video::ClipRequest

use std::path::{Path, PathBuf};

use ethos_video::{Clip, ClipSampler, ClipView, Resize};

use crate::cache::{
    BuildReport, CacheJob, CacheParams, ClipCache, EntryStatus, IdentityCache, MappedClip,
    build_entries, extended_times,
};
use crate::config::{DataConfig, DataMode, OnBadVideo};
use crate::error::DataError;
use crate::manifest::{Event, EventsManifest, clip_file_name, load_split};

/// One event of a dataset with where its frames come from.
#[derive(Debug, Clone)]
pub struct DatasetItem {
    /// The event (window, label, ROI).
    pub event: Event,
    /// Its source video (videos root joined).
    pub source: PathBuf,
    /// Its extracted clip (clip_dir mode).
    pub clip_file: Option<PathBuf>,
    /// Its cache key (cache mode).
    pub cache_key: Option<String>,
    /// Frame rate of the extracted clip, probed on first use (clip_dir mode).
    clip_fps: std::sync::OnceLock<f64>,
}

/// The frames of a dataset item: owned (decoded from a video), or read in place from the cache.
#[derive(Debug)]
pub enum LoadedClip {
    /// Decoded frames.
    Owned(Clip),
    /// Frames of a cache entry, memory-mapped.
    Mapped(MappedClip),
}

impl LoadedClip {
    /// The frames, `(T, H, W, 3)`.
    pub fn view(&self) -> ClipView<'_> {
        match self {
            LoadedClip::Owned(clip) => clip.view(),
            LoadedClip::Mapped(clip) => clip.view(),
        }
    }

    /// The frames as an owned clip (a copy when mapped).
    pub fn into_clip(self) -> Clip {
        match self {
            LoadedClip::Owned(clip) => clip,
            LoadedClip::Mapped(clip) => clip.view().to_clip(),
        }
    }
}

/// The events of one split as uint8 clips `(N, H, W, 3)` with short side `data.cache_short_side`.
#[derive(Debug)]
pub struct ClipDataset {
    split: String,
    mode: DataMode,
    items: Vec<DatasetItem>,
    cache: ClipCache,
    sampler: ClipSampler,
    num_classes: usize,
}

/// Loads the events of `split` named in the config (events CSV + split CSV, all validated).
pub fn load_split_events(cfg: &DataConfig, split: &str) -> Result<Vec<Event>, DataError> {
    let Some(split_csv) = cfg.splits.get(split) else {
        return Err(DataError::UnknownSplit {
            split: split.to_string(),
            known: cfg.splits.keys().cloned().collect::<Vec<_>>().join(", "),
        });
    };
    let manifest = EventsManifest::load(&cfg.events, Some(&cfg.videos_root), &cfg.classes)?;
    Ok(load_split(split_csv, &manifest)?)
}

/// The cache parameters a config implies.
pub fn cache_params(cfg: &DataConfig) -> CacheParams {
    CacheParams {
        fps: cfg.fps,
        num_frames: cfg.clip_frames(),
        margin: cfg.jitter_frames,
        short_side: cfg.cache_short_side,
        whole_window: cfg.chunk_length.is_some(),
    }
}

impl ClipDataset {
    /// Opens `split` in `cfg.mode`. In cache mode, missing or corrupt entries are built first
    /// (with `cfg.num_workers` threads); events whose video fails to decode stop it with every one
    /// listed (`on_bad_video: fail`) or are left out with a warning (`skip`).
    pub fn open(cfg: &DataConfig, split: &str) -> Result<Self, DataError> {
        Self::open_with_mode(cfg, split, cfg.mode)
    }

    /// As [`ClipDataset::open`] with another mode.
    pub fn open_with_mode(
        cfg: &DataConfig,
        split: &str,
        mode: DataMode,
    ) -> Result<Self, DataError> {
        let events = load_split_events(cfg, split)?;
        let mut ds = Self::from_events(cfg, split, events, mode)?;
        if mode == DataMode::Cache {
            let report = ds.ensure_cache(cfg.num_workers.max(1), false, &|_, _| {})?;
            ds.apply_bad_videos(&report, cfg.on_bad_video)?;
        }
        Ok(ds)
    }

    /// A dataset of `events` (already validated) without touching the cache.
    pub fn from_events(
        cfg: &DataConfig,
        split: &str,
        events: Vec<Event>,
        mode: DataMode,
    ) -> Result<Self, DataError> {
        let cache = ClipCache::new(&cfg.cache_dir, cache_params(cfg)).with_decoder(cfg.decoder);
        let identities = IdentityCache::default();
        let mut items = Vec::with_capacity(events.len());
        for event in events {
            let source = cfg.videos_root.join(&event.video);
            let clip_file = match (mode, &cfg.clip_dir) {
                (DataMode::ClipDir, Some(dir)) => {
                    Some(dir.join(clip_file_name(event.event_idx, &event.behavior)))
                }
                _ => None,
            };
            let cache_key = match mode {
                DataMode::Cache => Some(cache.key(&identities.get(&source)?, &event)),
                _ => None,
            };
            items.push(DatasetItem {
                event,
                source,
                clip_file,
                cache_key,
                clip_fps: Default::default(),
            });
        }
        if mode == DataMode::ClipDir {
            let missing: Vec<String> = items
                .iter()
                .filter_map(|i| {
                    i.clip_file
                        .as_ref()
                        .filter(|p| !p.is_file())
                        .map(|p| p.display().to_string())
                })
                .collect();
            if !missing.is_empty() {
                return Err(DataError::BadVideos(
                    items
                        .iter()
                        .filter(|i| i.clip_file.as_ref().is_some_and(|p| !p.is_file()))
                        .map(|i| crate::error::BadVideo {
                            event_idx: i.event.event_idx,
                            path: i.clip_file.clone().unwrap_or_default(),
                            reason: "extracted clip is missing (run `ethos extract`)".into(),
                        })
                        .collect(),
                ));
            }
        }
        Ok(Self {
            split: split.to_string(),
            mode,
            items,
            cache,
            sampler: ClipSampler::new(1).with_decoder(cfg.decoder),
            num_classes: cfg.classes.len(),
        })
    }

    /// Builds missing (and, with `full_check`, corrupt) cache entries of this dataset.
    pub fn ensure_cache(
        &self,
        threads: usize,
        full_check: bool,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<BuildReport, DataError> {
        build_entries(
            &self.cache,
            &self.cache_jobs(),
            threads,
            full_check,
            progress,
        )
    }

    /// The cache jobs of this dataset (cache mode only; empty otherwise).
    pub fn cache_jobs(&self) -> Vec<CacheJob> {
        self.items
            .iter()
            .filter_map(|i| {
                i.cache_key.as_ref().map(|key| CacheJob {
                    event: i.event.clone(),
                    source: i.source.clone(),
                    key: key.clone(),
                })
            })
            .collect()
    }

    /// Applies `on_bad_video` to the failures of a cache build: an error listing them all, or
    /// leaving those events out with a warning.
    pub fn apply_bad_videos(
        &mut self,
        report: &BuildReport,
        policy: OnBadVideo,
    ) -> Result<(), DataError> {
        if report.bad.is_empty() {
            return Ok(());
        }
        match policy {
            OnBadVideo::Fail => Err(DataError::BadVideos(report.bad.clone())),
            OnBadVideo::Skip => {
                for b in &report.bad {
                    tracing::warn!(split = %self.split, "skipping {b}");
                }
                self.items
                    .retain(|i| !report.bad.iter().any(|b| b.event_idx == i.event.event_idx));
                Ok(())
            }
        }
    }

    /// The split name.
    pub fn split(&self) -> &str {
        &self.split
    }

    /// Where clips come from.
    pub fn mode(&self) -> DataMode {
        self.mode
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when the split has no events.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The events with their files.
    pub fn items(&self) -> &[DatasetItem] {
        &self.items
    }

    /// Number of classes of the config.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// Class index of every item (sampler input).
    pub fn labels(&self) -> Vec<usize> {
        self.items.iter().map(|i| i.event.class_index).collect()
    }

    /// Position of the event with id `event_idx`.
    pub fn position_of(&self, event_idx: u32) -> Result<usize, DataError> {
        self.items
            .iter()
            .position(|i| i.event.event_idx == event_idx)
            .ok_or_else(|| DataError::UnknownEvent {
                event_idx,
                split: self.split.clone(),
            })
    }

    /// The temporal jitter range `M` in frames.
    pub fn margin(&self) -> usize {
        self.cache.params().margin
    }

    /// Frames of item `index`'s sampling grid (margins excluded): `N`, or in the chunked mode
    /// (`data.chunk_length`) the whole window at `fps`, at least one chunk.
    pub fn grid_frames(&self, index: usize) -> usize {
        self.cache
            .params()
            .grid_frames(self.items[index].event.duration_s)
    }

    /// The uint8 clip of item `index` shifted by `offset` whole frames (`|offset| <= M`).
    pub fn load(&self, index: usize, offset: i32) -> Result<Clip, DataError> {
        self.load_chunk(index, 0, offset)
    }

    /// As [`Self::load`], but cache-mode frames are read in place (memory-mapped), not copied.
    pub fn load_frames(&self, index: usize, offset: i32) -> Result<LoadedClip, DataError> {
        self.load_chunk_frames(index, 0, offset)
    }

    /// The `N` frames of item `index` starting at grid frame `start` (a chunk start, `start + N <=`
    /// [`Self::grid_frames`]), shifted by `offset` whole frames (`|offset| <= M`).
    pub fn load_chunk(&self, index: usize, start: usize, offset: i32) -> Result<Clip, DataError> {
        Ok(self.load_chunk_frames(index, start, offset)?.into_clip())
    }

    /// As [`Self::load_chunk`], with cache-mode frames read in place.
    pub fn load_chunk_frames(
        &self,
        index: usize,
        start: usize,
        offset: i32,
    ) -> Result<LoadedClip, DataError> {
        let item = &self.items[index];
        let p = self.cache.params();
        let m = p.margin as i64;
        let n = p.num_frames;
        let grid = p.grid_frames(item.event.duration_s);
        let start = start.min(grid - n);
        let first = (m + start as i64 + (offset as i64).clamp(-m, m)) as usize;
        let times = || {
            let e = &item.event;
            extended_times(e.start_s, e.duration_s, p.fps, grid, p.margin)[first..first + n]
                .to_vec()
        };
        let video_err = |source| DataError::Video {
            event_idx: item.event.event_idx,
            source,
        };
        match self.mode {
            DataMode::Source => Ok(LoadedClip::Owned(
                self.sampler
                    .sample_times(
                        &item.source,
                        &times(),
                        item.event.roi,
                        Resize::ShortSide(p.short_side),
                    )
                    .map_err(video_err)?
                    .clip,
            )),
            DataMode::ClipDir => {
                // `ethos extract` writes, as clip frame k, the source frame shown at
                // start + k / fps, i.e. source frame n0 + k with n0 = the frame shown at start.
                // So the source frame shown at t is clip frame floor(t * fps) - n0; sampling the
                // middle of that frame's display interval keeps the three modes on the same frames.
                let path = item.clip_file.as_deref().unwrap_or(Path::new(""));
                let fps = match item.clip_fps.get() {
                    Some(&f) => f,
                    None => {
                        let info = ethos_video::probe(path).map_err(video_err)?;
                        let f = if info.real_fps > 0.0 {
                            info.real_fps
                        } else {
                            info.avg_fps
                        };
                        *item.clip_fps.get_or_init(|| f)
                    }
                };
                let eps = ethos_video::TIME_EPS;
                let n0 = (item.event.start_s * fps + eps).floor();
                let local: Vec<f64> = times()
                    .iter()
                    .map(|t| (((t * fps + eps).floor() - n0).max(0.0) + 0.5) / fps)
                    .collect();
                Ok(LoadedClip::Owned(
                    self.sampler
                        .sample_times(
                            path,
                            &local,
                            item.event.roi,
                            Resize::ShortSide(p.short_side),
                        )
                        .map_err(video_err)?
                        .clip,
                ))
            }
            DataMode::Cache => {
                let key = item.cache_key.as_deref().unwrap_or_default();
                match self.cache.read_mapped(key, first, n) {
                    Ok(clip) => Ok(LoadedClip::Mapped(clip)),
                    Err(err @ (DataError::CorruptCache { .. } | DataError::Io { .. })) => {
                        if !matches!(self.cache.status(key, false), EntryStatus::Missing) {
                            tracing::warn!("{err}; rebuilding it");
                        }
                        let full =
                            self.cache
                                .build(&self.sampler, &item.source, &item.event, key)?;
                        let len = full.frame_len();
                        Ok(LoadedClip::Owned(Clip {
                            frames: n,
                            height: full.height,
                            width: full.width,
                            data: full.data[first * len..(first + n) * len].to_vec(),
                        }))
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }
}
