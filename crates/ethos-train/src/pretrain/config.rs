//! The `pretrain:` section of a run configuration: the unlabelled-footage index (videos, clip
//! length and spacing, camera / time-of-day / activity filters; see `ethos_data::corpus`) and the
//! self-supervised run (V-JEPA 2 mask groups, EMA momentum, length, logging and checkpoints).
//!
//! The rest of a pretraining run comes from the other sections: `data` (frames, fps, input size,
//! cache, batch size, workers, loader seed), `augmentation` (the clip transform when
//! `pretrain.augment`), `model` (`arch: vjepa2`, `config` / `preset`, `weights`,
//! `freeze_encoder_layers`, `drop_path`), `optim` (AdamW, `grad_clip`), `sched` (`warmup_start_lr`,
//! `min_lr`), `train` (`device`, `amp`, `seed` of masks and dropout, `run_dir`, `resume`) and
//! `predict` (`camera_separator`, `camera_rois`: cameras and ROIs as `ethos predict` sees them).

use std::path::{Path, PathBuf};

use ethos_data::corpus::{ActivityFilter, CameraFilter, TimeOfDay};
use ethos_models::vjepa2_masks::MaskConfig;
use serde::{Deserialize, Serialize};

/// Which encoder `RUN/encoder/` holds (`pretrain.export`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportWhich {
    /// The EMA target encoder (what V-JEPA 2 releases and evaluates).
    #[default]
    Target,
    /// The online (context) encoder.
    Online,
}

/// A `pretrain` value that cannot be used, naming the key and the value.
#[derive(Debug, thiserror::Error)]
#[error("config key `{key}` = {value}: {reason}")]
pub struct PretrainConfigError {
    /// Dotted key, e.g. `pretrain.clip_seconds`.
    pub key: String,
    /// The offending value.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ethos_core::Classify for PretrainConfigError {
    /// Always bad input: caused by the user's config (exit code 2).
    fn kind(&self) -> ethos_core::ErrorKind {
        ethos_core::ErrorKind::BadInput
    }
}

fn err(key: &str, value: impl std::fmt::Debug, reason: impl Into<String>) -> PretrainConfigError {
    PretrainConfigError {
        key: key.into(),
        value: format!("{value:?}"),
        reason: reason.into(),
    }
}

/// The `pretrain:` section (YAML keys in snake_case; unknown keys are errors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PretrainConfig {
    /// The long unlabelled videos: a folder (searched recursively), a glob or a list file (one
    /// path per line). Needed by `ethos pretrain-index` and `ethos pretrain`.
    pub videos: Option<PathBuf>,
    /// The index CSV (default: `index.csv` in the run directory).
    pub index: Option<PathBuf>,
    /// The decoded-clip cache of the pretraining clips (default: `cache/` in the run directory;
    /// put it on scratch storage for hundreds of hours). Frames, fps, short side and jitter
    /// margin come from the `data` section.
    pub cache_dir: Option<PathBuf>,
    /// Length of a clip window in seconds (the `data.num_frames` frames at `data.fps` are centred
    /// in it; a window shorter than `num_frames / fps` spreads them over the window).
    pub clip_seconds: f64,
    /// One clip per this many minutes of footage (default 1 when `clips_per_hour` is not set).
    pub every_minutes: Option<f64>,
    /// Clips per hour of footage (instead of `every_minutes`).
    pub clips_per_hour: Option<f64>,
    /// Cameras to keep or drop (camera = file stem up to `predict.camera_separator`).
    pub cameras: CameraFilter,
    /// A CSV (`video,camera`) naming the camera of each video, instead of the file-name rule.
    pub camera_csv: Option<PathBuf>,
    /// Keep only clips whose middle falls in a wall-clock window.
    pub time_of_day: Option<TimeOfDay>,
    /// Skip near-static clips (mean absolute frame difference below a threshold).
    pub activity: Option<ActivityFilter>,
    /// The mask groups (default: V-JEPA 2's 8 blocks at 0.15 + 2 blocks at 0.7).
    pub masks: Vec<MaskConfig>,
    /// EMA momentum `[start, end]`, linear over the run (V-JEPA 2: 0.99925 constant).
    pub ema: [f64; 2],
    /// Optimiser steps of the run (default 1000 when `epochs` is not set).
    pub steps: Option<u64>,
    /// Passes over the index instead of `steps` (fractional allowed).
    pub epochs: Option<f64>,
    /// Linear learning-rate warmup from `sched.warmup_start_lr` to `optim.lr`, in steps; then a
    /// cosine to `sched.min_lr` at the last step.
    pub warmup_steps: u64,
    /// One `history.csv` row (mean loss of the interval) every this many steps.
    pub log_every: u64,
    /// A resumable checkpoint (`last.ckpt`) and `encoder/` every this many steps (and at the end,
    /// and on SIGTERM / SIGUSR1 / SIGINT).
    pub checkpoint_every: u64,
    /// Train transform (the `augmentation` section: random resized crop, flip, ...) instead of
    /// the evaluation transform (resize + centre crop).
    pub augment: bool,
    /// The encoder written to `RUN/encoder/`: `target` (EMA) or `online`.
    pub export: ExportWhich,
}

impl Default for PretrainConfig {
    fn default() -> Self {
        Self {
            videos: None,
            index: None,
            cache_dir: None,
            clip_seconds: 8.0,
            every_minutes: None,
            clips_per_hour: None,
            cameras: CameraFilter::default(),
            camera_csv: None,
            time_of_day: None,
            activity: None,
            masks: MaskConfig::vjepa2_default(),
            ema: [0.99925, 0.99925],
            steps: None,
            epochs: None,
            warmup_steps: 0,
            log_every: 10,
            checkpoint_every: 100,
            augment: true,
            export: ExportWhich::Target,
        }
    }
}

/// Optimiser steps of a run without `pretrain.steps` / `pretrain.epochs`.
pub const DEFAULT_STEPS: u64 = 1000;

impl PretrainConfig {
    /// Makes relative paths (videos, index, cache, camera CSV) absolute against `base` (the
    /// config file's folder). A glob is joined as text.
    pub fn resolve_paths(&mut self, base: &Path) {
        for p in [
            &mut self.videos,
            &mut self.index,
            &mut self.cache_dir,
            &mut self.camera_csv,
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }

    /// Seconds of footage per clip: `every_minutes * 60` or `3600 / clips_per_hour`.
    pub fn every_s(&self) -> f64 {
        match (self.every_minutes, self.clips_per_hour) {
            (_, Some(c)) if c > 0.0 => 3600.0 / c,
            (Some(m), _) => m * 60.0,
            _ => 60.0,
        }
    }

    /// Optimiser steps for an index of `clips` clips and batches of `batch_size`.
    pub fn total_steps(&self, clips: usize, batch_size: usize) -> u64 {
        match (self.steps, self.epochs) {
            (Some(s), _) => s,
            (None, Some(e)) => {
                let per_epoch = clips.div_ceil(batch_size.max(1)) as f64;
                ((e * per_epoch).ceil() as u64).max(1)
            }
            (None, None) => DEFAULT_STEPS,
        }
    }

    /// Checks ranges and exclusive keys; the error names the key and value.
    pub fn validate(&self) -> Result<(), PretrainConfigError> {
        if !(self.clip_seconds.is_finite() && (0.25..=600.0).contains(&self.clip_seconds)) {
            return Err(err(
                "pretrain.clip_seconds",
                self.clip_seconds,
                "must be in [0.25, 600] seconds",
            ));
        }
        match (self.every_minutes, self.clips_per_hour) {
            (Some(_), Some(_)) => {
                return Err(err(
                    "pretrain.clips_per_hour",
                    self.clips_per_hour,
                    "set either pretrain.every_minutes or pretrain.clips_per_hour, not both",
                ));
            }
            (Some(m), None) if !(m.is_finite() && m > 0.0) => {
                return Err(err("pretrain.every_minutes", m, "must be > 0"));
            }
            (None, Some(c)) if !(c.is_finite() && c > 0.0) => {
                return Err(err("pretrain.clips_per_hour", c, "must be > 0"));
            }
            _ => {}
        }
        if self.every_s() < self.clip_seconds {
            let (key, value) = match self.clips_per_hour {
                Some(c) => ("pretrain.clips_per_hour", c),
                None => ("pretrain.every_minutes", self.every_s() / 60.0),
            };
            return Err(err(
                key,
                value,
                format!(
                    "one clip per {:.1} s of footage cannot hold clips of pretrain.clip_seconds = {} s",
                    self.every_s(),
                    self.clip_seconds
                ),
            ));
        }
        if let Some(t) = &self.time_of_day {
            t.window()
                .map_err(|reason| err("pretrain.time_of_day", t, reason))?;
        }
        if let Some(a) = &self.activity {
            a.validate()
                .map_err(|reason| err("pretrain.activity", a.threshold, reason))?;
        }
        for (key, list) in [
            ("pretrain.cameras.include", &self.cameras.include),
            ("pretrain.cameras.exclude", &self.cameras.exclude),
        ] {
            if let Some(c) = list.iter().find(|c| c.trim().is_empty()) {
                return Err(err(key, c, "camera names must not be empty"));
            }
        }
        if self.masks.is_empty() {
            return Err(err("pretrain.masks", "[]", "needs at least one mask group"));
        }
        for (i, m) in self.masks.iter().enumerate() {
            m.validate(i).map_err(|e| {
                let reason = e.to_string();
                err(&format!("pretrain.masks[{i}]"), m, reason)
            })?;
        }
        for (i, &m) in self.ema.iter().enumerate() {
            if !(m.is_finite() && (0.0..=1.0).contains(&m)) {
                return Err(err(
                    "pretrain.ema",
                    self.ema,
                    format!("{} momentum {m} must be in [0, 1]", ["start", "end"][i]),
                ));
            }
        }
        match (self.steps, self.epochs) {
            (Some(_), Some(_)) => {
                return Err(err(
                    "pretrain.epochs",
                    self.epochs,
                    "set either pretrain.steps or pretrain.epochs, not both",
                ));
            }
            (Some(0), None) => return Err(err("pretrain.steps", 0, "must be at least 1")),
            (None, Some(e)) if !(e.is_finite() && e > 0.0) => {
                return Err(err("pretrain.epochs", e, "must be > 0"));
            }
            _ => {}
        }
        let steps = self.steps.unwrap_or(DEFAULT_STEPS);
        if self.steps.is_some() && self.warmup_steps >= steps {
            return Err(err(
                "pretrain.warmup_steps",
                self.warmup_steps,
                format!("must be less than pretrain.steps ({steps})"),
            ));
        }
        for (key, v) in [
            ("pretrain.log_every", self.log_every),
            ("pretrain.checkpoint_every", self.checkpoint_every),
        ] {
            if v == 0 {
                return Err(err(key, v, "must be at least 1 step"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: serde_json::Value) -> Result<PretrainConfig, String> {
        let c: PretrainConfig = serde_json::from_value(v).map_err(|e| e.to_string())?;
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }

    #[test]
    fn defaults_are_the_vjepa2_recipe_and_validate() {
        let c = parse(serde_json::json!({})).unwrap();
        assert_eq!(c.masks, MaskConfig::vjepa2_default());
        assert_eq!(c.ema, [0.99925, 0.99925]);
        assert_eq!(c.every_s(), 60.0);
        assert_eq!(c.total_steps(100, 8), DEFAULT_STEPS);
        let c = parse(serde_json::json!({"clips_per_hour": 120, "epochs": 2.5})).unwrap();
        assert_eq!(c.every_s(), 30.0);
        assert_eq!(c.total_steps(100, 8), 33);
    }

    #[test]
    fn bad_values_name_the_key() {
        for (v, key) in [
            (
                serde_json::json!({"clip_seconds": 0}),
                "pretrain.clip_seconds",
            ),
            (
                serde_json::json!({"every_minutes": 1, "clips_per_hour": 4}),
                "pretrain.clips_per_hour",
            ),
            (
                serde_json::json!({"every_minutes": 0.1, "clip_seconds": 8}),
                "pretrain.every_minutes",
            ),
            (serde_json::json!({"ema": [0.99, 1.2]}), "pretrain.ema"),
            (serde_json::json!({"steps": 0}), "pretrain.steps"),
            (
                serde_json::json!({"steps": 5, "epochs": 1}),
                "pretrain.epochs",
            ),
            (
                serde_json::json!({"steps": 5, "warmup_steps": 5}),
                "pretrain.warmup_steps",
            ),
            (serde_json::json!({"log_every": 0}), "pretrain.log_every"),
            (
                serde_json::json!({"masks": [{"num_blocks": 0, "spatial_scale": [0.1, 0.1]}]}),
                "pretrain.masks[0]",
            ),
            (serde_json::json!({"masks": []}), "pretrain.masks"),
            (
                serde_json::json!({"activity": {"threshold": 2}}),
                "pretrain.activity",
            ),
            (
                serde_json::json!({"time_of_day": {"start": "6:00", "end": "25:00"}}),
                "pretrain.time_of_day",
            ),
        ] {
            let e = parse(v.clone()).unwrap_err();
            assert!(e.contains(key), "{v}: {e}");
        }
        assert!(parse(serde_json::json!({"clip_secs": 3})).is_err());
    }
}
