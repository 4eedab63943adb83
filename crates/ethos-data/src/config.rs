//! The `data` and `augmentation` sections of an ethos config (YAML, snake_case keys).
//!
//! Relative paths are relative to the config file: the CLI calls [`DataConfig::resolve_paths`]
//! with the config file's folder after parsing. [`DataConfig::validate`] and
//! [`AugmentationConfig::validate`] check value ranges and name the key and value of every problem.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A config value that cannot be used, naming the key (`data.fps`) and the offending value.
#[derive(Debug, thiserror::Error)]
#[error("config key `{key}` = {value}: {reason}")]
pub struct ConfigError {
    /// Dotted key, e.g. `data.num_frames`.
    pub key: String,
    /// The value as written (or as parsed).
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    fn new(key: &str, value: impl std::fmt::Debug, reason: impl Into<String>) -> Self {
        Self {
            key: key.to_string(),
            value: format!("{value:?}"),
            reason: reason.into(),
        }
    }
}

impl ethos_core::Classify for ConfigError {
    /// Always true: a config error is caused by the user's input (exit code 2).
    fn kind(&self) -> ethos_core::ErrorKind {
        ethos_core::ErrorKind::BadInput
    }
}

/// Where training and evaluation clips come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DataMode {
    /// The decoded-clip cache under `data.cache_dir` (built by `ethos cache`); the default.
    #[default]
    Cache,
    /// Seek into the long source videos every time (slow; no cache needed).
    Source,
    /// Pre-extracted clips `evt_{event_idx:04}_{behavior}.mp4` under `data.clip_dir` (time 0 = event start).
    ClipDir,
}

/// What to do with an event whose video cannot be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnBadVideo {
    /// Stop with an error listing every bad video (the default).
    #[default]
    Fail,
    /// Leave those events out (listed in the log) and go on.
    Skip,
}

/// The `data` section: manifests, dataset mode, temporal sampling and loader settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Class names; their order is the class index.
    pub classes: Vec<String>,
    /// Events CSV (relative to the config file until resolved).
    pub events: PathBuf,
    /// Folder the `video` column of the events CSV is relative to.
    pub videos_root: PathBuf,
    /// Split name -> split CSV (`train`, `val`, `test_ood`, ...).
    pub splits: BTreeMap<String, PathBuf>,
    /// Where clips come from: `cache`, `source` or `clip_dir`.
    pub mode: DataMode,
    /// Folder of pre-extracted clips (needed for `mode: clip_dir`).
    pub clip_dir: Option<PathBuf>,
    /// Folder of the decoded-clip cache.
    pub cache_dir: PathBuf,
    /// Short side of cached frames in pixels (aspect kept).
    pub cache_short_side: u32,
    /// Temporal sampling rate in frames per second.
    pub fps: f64,
    /// Frames per clip `T` (ignored when `chunk_length` is set: then a sample is one chunk).
    pub num_frames: usize,
    /// Frame-level training: when set, every sample is a chunk of this many consecutive frames
    /// (at `fps`) of an event's window, each frame labelled with the event's class. Training takes
    /// one chunk per event per epoch; evaluation takes every chunk and averages per-frame
    /// probabilities over the chunks covering each frame.
    pub chunk_length: Option<usize>,
    /// Stride in frames between consecutive chunks of an event (default: half of `chunk_length`,
    /// FERAL's overlap); the last chunk is aligned to the window's end so every frame is covered.
    pub chunk_shift: Option<usize>,
    /// Temporal jitter range `M` in whole frames: training clips shift by `j` in `[-M, M]` frames
    /// when `augmentation.temporal_jitter` is on; the cache stores `M` extra frames each side.
    pub jitter_frames: usize,
    /// Square model input size in pixels (crop side).
    pub input_size: u32,
    /// Clips per batch.
    pub batch_size: usize,
    /// Loader worker threads (0 = load on the calling thread).
    pub num_workers: usize,
    /// `fail` or `skip` events whose video cannot be decoded.
    pub on_bad_video: OnBadVideo,
    /// Video decoder: `auto` (NVDEC when a CUDA device is there, else the CPU), `cpu` or `cuda`.
    pub decoder: ethos_video::Decoder,
    /// Per-channel RGB mean on the [0, 1] scale (Kinetics 0.45; ImageNet 0.485, 0.456, 0.406).
    pub mean: [f32; 3],
    /// Per-channel RGB standard deviation on the [0, 1] scale.
    pub std: [f32; 3],
    /// Run seed: every random draw derives from (seed, epoch, position in epoch).
    pub seed: u64,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            classes: Vec::new(),
            events: PathBuf::from("events.csv"),
            videos_root: PathBuf::from("videos"),
            splits: BTreeMap::new(),
            mode: DataMode::Cache,
            clip_dir: None,
            cache_dir: PathBuf::from("cache"),
            cache_short_side: 256,
            fps: 12.0,
            num_frames: 16,
            chunk_length: None,
            chunk_shift: None,
            jitter_frames: 4,
            input_size: 224,
            batch_size: 4,
            num_workers: 2,
            on_bad_video: OnBadVideo::Fail,
            decoder: ethos_video::Decoder::Auto,
            mean: [0.45, 0.45, 0.45],
            std: [0.225, 0.225, 0.225],
            seed: 42,
        }
    }
}

impl DataConfig {
    /// Frames per sample: `chunk_length` in frame-level mode, else `num_frames`.
    pub fn clip_frames(&self) -> usize {
        self.chunk_length.unwrap_or(self.num_frames)
    }

    /// The chunking `(length, shift)` in frames when `chunk_length` is set.
    pub fn chunking(&self) -> Option<(usize, usize)> {
        self.chunk_length
            .map(|l| (l, self.chunk_shift.unwrap_or((l / 2).max(1))))
    }

    /// Makes every relative path absolute by joining it to `base_dir` (the config file's folder).
    pub fn resolve_paths(&mut self, base_dir: &Path) {
        let join = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base_dir.join(&*p);
            }
        };
        join(&mut self.events);
        join(&mut self.videos_root);
        join(&mut self.cache_dir);
        if let Some(dir) = self.clip_dir.as_mut() {
            join(dir);
        }
        for path in self.splits.values_mut() {
            join(path);
        }
    }

    /// Checks ranges and cross-key requirements; the first problem is returned naming key and value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.classes.len() < 2 {
            return Err(ConfigError::new(
                "data.classes",
                &self.classes,
                "needs at least two class names",
            ));
        }
        for (i, name) in self.classes.iter().enumerate() {
            if name.trim().is_empty() {
                return Err(ConfigError::new(
                    "data.classes",
                    name,
                    format!("class {i} has an empty name"),
                ));
            }
            if self.classes[..i].contains(name) {
                return Err(ConfigError::new(
                    "data.classes",
                    name,
                    "duplicate class name",
                ));
            }
        }
        if !(self.fps.is_finite() && self.fps > 0.0 && self.fps <= 1000.0) {
            return Err(ConfigError::new(
                "data.fps",
                self.fps,
                "must be a rate in (0, 1000] frames per second",
            ));
        }
        if self.num_frames == 0 || self.num_frames > 1024 {
            return Err(ConfigError::new(
                "data.num_frames",
                self.num_frames,
                "must be in 1..=1024",
            ));
        }
        if let Some(l) = self.chunk_length
            && (l == 0 || l > 1024)
        {
            return Err(ConfigError::new(
                "data.chunk_length",
                l,
                "must be in 1..=1024 frames",
            ));
        }
        if let Some(s) = self.chunk_shift {
            match self.chunk_length {
                None => {
                    return Err(ConfigError::new(
                        "data.chunk_shift",
                        s,
                        "needs data.chunk_length (frame-level chunks)",
                    ));
                }
                Some(l) if s == 0 || s > l => {
                    return Err(ConfigError::new(
                        "data.chunk_shift",
                        s,
                        format!("must be in 1..=data.chunk_length ({l}) frames"),
                    ));
                }
                Some(_) => {}
            }
        }
        if self.jitter_frames > 256 {
            return Err(ConfigError::new(
                "data.jitter_frames",
                self.jitter_frames,
                "must be at most 256",
            ));
        }
        if self.input_size < 8 || self.input_size > 4096 {
            return Err(ConfigError::new(
                "data.input_size",
                self.input_size,
                "must be in 8..=4096 pixels",
            ));
        }
        if self.cache_short_side < self.input_size.min(8) || self.cache_short_side > 4096 {
            return Err(ConfigError::new(
                "data.cache_short_side",
                self.cache_short_side,
                "must be in 8..=4096 pixels",
            ));
        }
        if self.batch_size == 0 {
            return Err(ConfigError::new(
                "data.batch_size",
                self.batch_size,
                "must be at least 1",
            ));
        }
        if self.num_workers > 256 {
            return Err(ConfigError::new(
                "data.num_workers",
                self.num_workers,
                "must be at most 256",
            ));
        }
        for (c, (&m, &s)) in self.mean.iter().zip(&self.std).enumerate() {
            if !m.is_finite() {
                return Err(ConfigError::new(
                    "data.mean",
                    self.mean,
                    format!("channel {c} is not finite"),
                ));
            }
            if !(s.is_finite() && s > 0.0) {
                return Err(ConfigError::new(
                    "data.std",
                    self.std,
                    format!("channel {c} must be > 0"),
                ));
            }
        }
        if self.mode == DataMode::ClipDir && self.clip_dir.is_none() {
            return Err(ConfigError::new(
                "data.clip_dir",
                &self.clip_dir,
                "must be set when data.mode is clip_dir",
            ));
        }
        for name in self.splits.keys() {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(ConfigError::new(
                    "data.splits",
                    name,
                    "split names use letters, digits, '_' or '-'",
                ));
            }
        }
        Ok(())
    }
}

/// The `augmentation` section: training-time transforms (eval uses resize + centre crop only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AugmentationConfig {
    /// RandomResizedCrop to `data.input_size`; off: resize short side + centre crop as in eval.
    pub random_resized_crop: bool,
    /// RandomResizedCrop area fraction range `(min, max)`.
    pub rrc_scale: [f64; 2],
    /// RandomResizedCrop aspect-ratio range `(min, max)`, width / height.
    pub rrc_ratio: [f64; 2],
    /// Probability of a horizontal flip of the whole clip.
    pub hflip_prob: f64,
    /// TrivialAugmentWide (one op and magnitude per clip).
    pub trivial_augment: bool,
    /// Random whole-frame temporal offset in `[-M, M]` (M = margin frames of the cache).
    pub temporal_jitter: bool,
    /// Mixup of batch pairs (applied by the trainer, which sees the labels).
    pub use_mixup: bool,
    /// Mixup Beta(alpha, alpha) parameter.
    pub mixup_alpha: f64,
}

impl Default for AugmentationConfig {
    fn default() -> Self {
        Self {
            random_resized_crop: true,
            rrc_scale: [0.7, 1.0],
            rrc_ratio: [0.75, 4.0 / 3.0],
            hflip_prob: 0.5,
            trivial_augment: true,
            temporal_jitter: true,
            use_mixup: false,
            mixup_alpha: 0.4,
        }
    }
}

impl AugmentationConfig {
    /// Checks ranges; the first problem is returned naming key and value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let [s0, s1] = self.rrc_scale;
        if !(s0.is_finite() && s1.is_finite() && 0.0 < s0 && s0 <= s1 && s1 <= 1.0) {
            return Err(ConfigError::new(
                "augmentation.rrc_scale",
                self.rrc_scale,
                "needs 0 < min <= max <= 1",
            ));
        }
        let [r0, r1] = self.rrc_ratio;
        if !(r0.is_finite() && r1.is_finite() && 0.0 < r0 && r0 <= r1) {
            return Err(ConfigError::new(
                "augmentation.rrc_ratio",
                self.rrc_ratio,
                "needs 0 < min <= max",
            ));
        }
        if !(0.0..=1.0).contains(&self.hflip_prob) {
            return Err(ConfigError::new(
                "augmentation.hflip_prob",
                self.hflip_prob,
                "must be in [0, 1]",
            ));
        }
        if !(self.mixup_alpha.is_finite() && self.mixup_alpha > 0.0) {
            return Err(ConfigError::new(
                "augmentation.mixup_alpha",
                self.mixup_alpha,
                "must be > 0",
            ));
        }
        Ok(())
    }

    /// No augmentation at all (what evaluation uses).
    pub fn none() -> Self {
        Self {
            random_resized_crop: false,
            hflip_prob: 0.0,
            trivial_augment: false,
            temporal_jitter: false,
            use_mixup: false,
            ..Self::default()
        }
    }
}

/// Reads the `data` and `augmentation` sections of a YAML config file (other sections are left
/// to their crates), resolves relative paths against the file's folder and validates both.
/// Errors name the file and the key path (`data.num_frames: invalid type ...`).
pub fn load_data_sections(
    path: &Path,
) -> Result<(DataConfig, AugmentationConfig), crate::error::DataError> {
    use crate::error::DataError;
    let file_err = |reason: String| DataError::ConfigFile {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_err(format!("cannot read: {e}")))?;
    let root: serde_norway::Value =
        serde_norway::from_str(&text).map_err(|e| file_err(e.to_string()))?;
    let section = |name: &str| match &root {
        serde_norway::Value::Mapping(m) => {
            m.get(name).cloned().unwrap_or(serde_norway::Value::Null)
        }
        _ => serde_norway::Value::Null,
    };
    fn parse<T: serde::de::DeserializeOwned + Default>(
        name: &str,
        v: serde_norway::Value,
    ) -> Result<T, String> {
        if v.is_null() {
            return Ok(T::default());
        }
        serde_path_to_error::deserialize(v).map_err(|e| {
            let at = e.path().to_string();
            let at = if at == "." {
                name.to_string()
            } else {
                format!("{name}.{at}")
            };
            format!("{at}: {}", e.into_inner())
        })
    }
    let mut data: DataConfig = parse("data", section("data")).map_err(file_err)?;
    let aug: AugmentationConfig =
        parse("augmentation", section("augmentation")).map_err(file_err)?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    data.resolve_paths(base);
    data.validate()?;
    aug.validate()?;
    Ok((data, aug))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_sections_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, "model: {name: r3d}\ndata:\n  classes: [a, b]\n  fps: 8\naugmentation:\n  hflip_prob: 0.25\n")
            .unwrap();
        let (data, aug) = load_data_sections(&path).unwrap();
        assert_eq!(data.fps, 8.0);
        assert_eq!(data.events, dir.path().join("events.csv"));
        assert_eq!(aug.hflip_prob, 0.25);
        std::fs::write(&path, "data:\n  classes: [a, b]\n  num_frames: many\n").unwrap();
        let err = load_data_sections(&path).unwrap_err().to_string();
        assert!(
            err.contains("data.num_frames") && err.contains("c.yaml"),
            "{err}"
        );
        std::fs::write(
            &path,
            "data:\n  classes: [a, b]\naugmentation:\n  hflip: 1\n",
        )
        .unwrap();
        let err = load_data_sections(&path).unwrap_err().to_string();
        assert!(err.contains("hflip"), "{err}");
    }

    const YAML: &str = "classes: [ear, tail]\nevents: events.csv\nvideos_root: videos\n\
        splits: {train: splits/train.csv, val: /abs/val.csv}\nmode: clip_dir\nclip_dir: clips\nfps: 12\n";

    #[test]
    fn parses_defaults_and_resolves_paths() {
        let mut cfg: DataConfig = serde_norway::from_str(YAML).unwrap();
        assert_eq!(cfg.mode, DataMode::ClipDir);
        assert_eq!(cfg.num_frames, 16);
        assert_eq!(cfg.cache_short_side, 256);
        assert_eq!(cfg.on_bad_video, OnBadVideo::Fail);
        cfg.resolve_paths(Path::new("/cfg"));
        assert_eq!(cfg.events, PathBuf::from("/cfg/events.csv"));
        assert_eq!(cfg.splits["train"], PathBuf::from("/cfg/splits/train.csv"));
        assert_eq!(cfg.splits["val"], PathBuf::from("/abs/val.csv"));
        assert_eq!(cfg.clip_dir, Some(PathBuf::from("/cfg/clips")));
        assert_eq!(cfg.cache_dir, PathBuf::from("/cfg/cache"));
        cfg.validate().unwrap();
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let err =
            serde_norway::from_str::<DataConfig>("classes: [a, b]\nnum_frame: 8\n").unwrap_err();
        assert!(err.to_string().contains("num_frame"), "{err}");
        let err = serde_norway::from_str::<DataConfig>("mode: cached\n").unwrap_err();
        assert!(err.to_string().contains("cached"), "{err}");
        let cfg: DataConfig = serde_norway::from_str("classes: [a, b]\nfps: -3\n").unwrap();
        let err = cfg.validate().unwrap_err();
        assert_eq!(err.key, "data.fps");
        assert!(err.to_string().contains("-3"), "{err}");
        let cfg: DataConfig = serde_norway::from_str("classes: [a, b]\nmode: clip_dir\n").unwrap();
        assert_eq!(cfg.validate().unwrap_err().key, "data.clip_dir");
        let aug: AugmentationConfig = serde_norway::from_str("rrc_scale: [0.9, 0.5]\n").unwrap();
        assert_eq!(aug.validate().unwrap_err().key, "augmentation.rrc_scale");
        assert!(serde_norway::from_str::<AugmentationConfig>("flip: 0.5\n").is_err());
    }
}
