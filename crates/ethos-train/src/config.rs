//! The `train:` section of a run configuration: epochs, seed, metric selection, early stopping,
//! precision, device and run-directory handling.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use crate::optim::AmpMode;

/// Where the model runs (`train.device`): `auto` (CUDA 0 when libtorch sees a GPU, else CPU),
/// `cpu`, `cuda` or `cuda:N`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceSpec {
    /// CUDA device 0 when available, else the CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// CUDA device N.
    Cuda(usize),
}

impl DeviceSpec {
    /// The tch device this resolves to on the current machine.
    pub fn resolve(self) -> tch::Device {
        match self {
            DeviceSpec::Auto => {
                if tch::Cuda::is_available() {
                    tch::Device::Cuda(0)
                } else {
                    tch::Device::Cpu
                }
            }
            DeviceSpec::Cpu => tch::Device::Cpu,
            DeviceSpec::Cuda(i) => tch::Device::Cuda(i),
        }
    }
}

impl std::str::FromStr for DeviceSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(DeviceSpec::Auto),
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse::<usize>().ok())
                .map(DeviceSpec::Cuda)
                .ok_or_else(|| format!("invalid device {s:?}: expected auto, cpu, cuda or cuda:N")),
        }
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceSpec::Auto => write!(f, "auto"),
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl Serialize for DeviceSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for DeviceSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// `train.resume`: where to continue from. `auto` picks `last.ckpt` in the run directory when it
/// exists (and starts fresh otherwise); a path names a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResumeSpec {
    /// `last.ckpt` of the run directory when present.
    Auto,
    /// An explicit checkpoint file.
    Path(PathBuf),
}

impl Serialize for ResumeSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ResumeSpec::Auto => s.serialize_str("auto"),
            ResumeSpec::Path(p) => s.serialize_str(&p.to_string_lossy()),
        }
    }
}

impl<'de> Deserialize<'de> for ResumeSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(if s == "auto" {
            ResumeSpec::Auto
        } else {
            ResumeSpec::Path(PathBuf::from(s))
        })
    }
}

/// Order of the training samples in an epoch (`train.sampler`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SamplerKind {
    /// Every training sample once per epoch, shuffled by (seed, epoch).
    #[default]
    Shuffle,
    /// Each draw picks a class uniformly, then a sample of it (epoch length = dataset size).
    Balanced,
}

/// The `train:` section (YAML keys in snake_case; unknown keys are errors).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Number of epochs (one pass of the train sampler each).
    pub epochs: usize,
    /// Run seed: every random choice (order, augmentation, mixup, dropout) derives from it.
    pub seed: u64,
    /// Validation metric that selects `best.ckpt` and drives early stopping (`f1_tail`,
    /// `macro_f1`, `auc_tail`, `val_loss`, ...); its direction is known from its name.
    pub metric_key: String,
    /// Epochs without an improvement of at least `min_delta` before stopping; 0 disables it.
    pub early_stopping_patience: usize,
    /// Smallest change of the metric that counts as an improvement.
    pub min_delta: f64,
    /// Mixed precision on CUDA (`bf16`, `fp16`, `off`); ignored on the CPU.
    pub amp: AmpMode,
    /// `auto`, `cpu`, `cuda` or `cuda:N`.
    pub device: DeviceSpec,
    /// The run directory (config, history, checkpoints, reports); relative to the config file.
    /// `null` means `runs/<config file stem>` next to the config.
    #[serde(alias = "out_dir")]
    pub run_dir: Option<PathBuf>,
    /// `auto` (continue from `last.ckpt` in the run directory when present), a checkpoint path,
    /// or `null` (start fresh).
    pub resume: Option<ResumeSpec>,
    /// Log one line every this many optimiser steps when stderr is not a terminal.
    pub log_every_steps: usize,
    /// Recompute activations block by block in the backward pass (saves memory, costs time).
    pub grad_checkpointing: bool,
    /// Training sample order: `shuffle` (class weights handle imbalance) or `balanced`.
    pub sampler: SamplerKind,
    /// Write `per_sample_loss.csv` (train and val, with the best checkpoint) after training.
    pub save_per_sample_loss: bool,
    /// Two-stage fine-tuning: train only the head for the first N epochs, then the backbone too
    /// (its part not frozen by `model.freeze_encoder_layers`), at `optim.backbone_lr` /
    /// `optim.layer_decay` (see `crate::stages`); 0 = one stage.
    pub freeze_backbone_epochs: usize,
    /// Write TensorBoard event files into `RUN/tensorboard/` (scalars per logging interval and
    /// per epoch, the validation confusion matrix as an image per epoch).
    pub tensorboard: bool,
    /// Record every train and val sample's loss each epoch in `RUN/per_sample_epochs.csv`
    /// (label-noise signals, `ethos review`).
    pub per_sample_epochs: bool,
    /// Collective backend of a data-parallel run (`ethos launch`, torchrun or SLURM variables):
    /// `auto` (NCCL on CUDA, Gloo on the CPU), `nccl` or `gloo`. Ignored by one process.
    pub dist_backend: String,
    /// Seconds a data-parallel rank waits for the others (rendezvous, each collective) before it
    /// stops with an error naming the ranks it waited for. A rank that dies is reported sooner.
    pub dist_timeout: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 30,
            seed: 42,
            metric_key: "macro_f1".to_string(),
            early_stopping_patience: 10,
            min_delta: 0.0,
            amp: AmpMode::Off,
            device: DeviceSpec::Auto,
            run_dir: None,
            resume: None,
            log_every_steps: 10,
            grad_checkpointing: false,
            sampler: SamplerKind::Shuffle,
            save_per_sample_loss: true,
            freeze_backbone_epochs: 0,
            tensorboard: false,
            per_sample_epochs: true,
            dist_backend: "auto".to_string(),
            dist_timeout: 1800.0,
        }
    }
}

/// A `train` value that cannot be used, naming the key and the value.
#[derive(Debug, thiserror::Error)]
#[error("config key `{key}` = {value}: {reason}")]
pub struct TrainConfigError {
    /// Dotted key, e.g. `train.epochs`.
    pub key: String,
    /// The offending value.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ethos_core::Classify for TrainConfigError {
    /// Always true: caused by the user's config (exit code 2).
    fn kind(&self) -> ethos_core::ErrorKind {
        ethos_core::ErrorKind::BadInput
    }
}

impl TrainConfig {
    /// Checks ranges and that `metric_key` names a metric of these classes.
    pub fn validate(&self, classes: &[String]) -> Result<(), TrainConfigError> {
        let err = |key: &str, value: &dyn std::fmt::Debug, reason: String| TrainConfigError {
            key: key.into(),
            value: format!("{value:?}"),
            reason,
        };
        if self.epochs == 0 {
            return Err(err(
                "train.epochs",
                &self.epochs,
                "must be at least 1".into(),
            ));
        }
        if self.log_every_steps == 0 {
            return Err(err(
                "train.log_every_steps",
                &self.log_every_steps,
                "must be at least 1".into(),
            ));
        }
        if !(self.min_delta.is_finite() && self.min_delta >= 0.0) {
            return Err(err(
                "train.min_delta",
                &self.min_delta,
                "must be >= 0".into(),
            ));
        }
        ethos_eval::metrics::MetricKey::parse(&self.metric_key, classes)
            .map_err(|e| err("train.metric_key", &self.metric_key, e.to_string()))?;
        if self.freeze_backbone_epochs > 0 && self.freeze_backbone_epochs >= self.epochs {
            return Err(err(
                "train.freeze_backbone_epochs",
                &self.freeze_backbone_epochs,
                format!(
                    "must be less than train.epochs ({}): the backbone would never train",
                    self.epochs
                ),
            ));
        }
        if !matches!(self.dist_backend.as_str(), "auto" | "nccl" | "gloo") {
            return Err(err(
                "train.dist_backend",
                &self.dist_backend,
                "expected auto, nccl or gloo".into(),
            ));
        }
        if !(self.dist_timeout.is_finite() && self.dist_timeout > 0.0) {
            return Err(err(
                "train.dist_timeout",
                &self.dist_timeout,
                "must be a positive number of seconds".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices_and_rejects_bad_ones() {
        assert_eq!("auto".parse::<DeviceSpec>().unwrap(), DeviceSpec::Auto);
        assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("cuda:3".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(3));
        assert!("gpu".parse::<DeviceSpec>().is_err());
        assert!("cuda:x".parse::<DeviceSpec>().is_err());
    }

    #[test]
    fn unknown_keys_are_rejected_and_defaults_fill_in() {
        let v = serde_json::json!({"epochs": 3, "amp": "bf16", "resume": "auto"});
        let c: TrainConfig = serde_json::from_value(v).unwrap();
        assert_eq!(c.epochs, 3);
        assert_eq!(c.amp, AmpMode::Bf16);
        assert_eq!(c.resume, Some(ResumeSpec::Auto));
        assert_eq!(c.seed, 42);
        let bad = serde_json::json!({"epochz": 3});
        assert!(serde_json::from_value::<TrainConfig>(bad).is_err());
    }

    #[test]
    fn validates_metric_key_against_classes() {
        let classes = vec!["ear".to_string(), "tail".to_string()];
        let mut c = TrainConfig {
            metric_key: "f1_tail".into(),
            ..TrainConfig::default()
        };
        c.validate(&classes).unwrap();
        c.metric_key = "f1_tial".into();
        let e = c.validate(&classes).unwrap_err();
        assert_eq!(e.key, "train.metric_key");
        assert!(e.to_string().contains("f1_tail"), "{e}");
    }

    #[test]
    fn validates_the_data_parallel_keys() {
        let classes = vec!["ear".to_string(), "tail".to_string()];
        let c = TrainConfig {
            dist_backend: "mpi".into(),
            ..TrainConfig::default()
        };
        assert_eq!(c.validate(&classes).unwrap_err().key, "train.dist_backend");
        let c = TrainConfig {
            dist_timeout: 0.0,
            ..TrainConfig::default()
        };
        assert_eq!(c.validate(&classes).unwrap_err().key, "train.dist_timeout");
        TrainConfig::default().validate(&classes).unwrap();
    }
}
