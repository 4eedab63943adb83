//! The `model:` section of a run configuration: which architecture, which preset or config file,
//! which weights, and the classification head.
//!
//! Relative paths are relative to the config file: the CLI calls [`ModelConfig::resolve_paths`]
//! with the config file's folder after parsing.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Model family (`model.arch`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Arch {
    /// MViTv2 built from block settings (`preset` such as `mvit_v2_s`, `mvit_demo`, or a
    /// `config` JSON in the reference `case.json` format).
    #[default]
    #[serde(rename = "mvit")]
    Mvit,
    /// torchvision R3D-18 (`preset: r3d_18`, or a smaller R3D-style preset).
    #[serde(rename = "r3d_18")]
    R3d18,
    /// V-JEPA 2 encoder from a Hugging Face `config.json` (`config`), with a head.
    #[serde(rename = "vjepa2")]
    Vjepa2,
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Arch::Mvit => "mvit",
            Arch::R3d18 => "r3d_18",
            Arch::Vjepa2 => "vjepa2",
        })
    }
}

/// Which classification head sits on the backbone (`model.head`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeadKind {
    /// The architecture's own classifier replaced by `Dropout(head_dropout) + Linear(features,
    /// num_classes)` (V-JEPA 2: the attentive pooler + linear classifier of transformers).
    #[default]
    Linear,
    /// The FERAL head: `num_queries` learnable queries cross-attending to the encoder tokens,
    /// one logit vector per query (= per frame of the chunk).
    Feral,
}

/// How per-frame predictions of a frame-level head become one clip prediction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClipAggregation {
    /// Mean of the per-frame probabilities.
    #[default]
    MeanProb,
    /// The class most frames predict (ties to the lower class index).
    MajorityVote,
}

/// The `model:` section (YAML keys in snake_case; unknown keys are errors).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Model family: `mvit`, `r3d_18` or `vjepa2`.
    pub arch: Arch,
    /// A named built-in configuration (`mvit_v2_s`, `mvit_demo`, `r3d_18`, ...).
    pub preset: Option<String>,
    /// A JSON model description instead of a preset (MViT `case.json`, HF `config.json`).
    pub config: Option<PathBuf>,
    /// Pretrained weights (safetensors file, sharded index or folder, or a `.pth` state dict);
    /// the classifier is replaced when its class count differs.
    pub weights: Option<PathBuf>,
    /// Number of classes; derived from `data.classes` when `null` (must agree when given).
    pub num_classes: Option<usize>,
    /// Dropout probability before the final linear layer.
    pub head_dropout: f64,
    /// Classification head kind: `linear` or `feral`.
    pub head: HeadKind,
    /// Freeze the patch embedding and the first N encoder blocks (0 = train everything).
    pub freeze_encoder_layers: usize,
    /// Learnable queries of the FERAL head (one per frame of the chunk).
    pub num_queries: usize,
    /// Clip-level prediction from per-frame outputs: `mean_prob` or `majority_vote`.
    pub clip_aggregation: ClipAggregation,
    /// Stochastic depth rate of the backbone (`null`: the preset's own value).
    pub drop_path: Option<f64>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            arch: Arch::Mvit,
            preset: None,
            config: None,
            weights: None,
            num_classes: None,
            head_dropout: 0.0,
            head: HeadKind::Linear,
            freeze_encoder_layers: 0,
            num_queries: 64,
            clip_aggregation: ClipAggregation::MeanProb,
            drop_path: None,
        }
    }
}

/// A model config value that cannot be used, naming the key and the value.
#[derive(Debug, thiserror::Error)]
#[error("config key `{key}` = {value}: {reason}")]
pub struct ModelConfigError {
    /// Dotted key, e.g. `model.head_dropout`.
    pub key: String,
    /// The offending value.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ModelConfigError {
    fn new(key: &str, value: impl std::fmt::Debug, reason: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: format!("{value:?}"),
            reason: reason.into(),
        }
    }
}

impl ethos_core::Classify for ModelConfigError {
    /// Always true: caused by the user's config (exit code 2).
    fn kind(&self) -> ethos_core::ErrorKind {
        ethos_core::ErrorKind::BadInput
    }
}

impl ModelConfig {
    /// Makes relative `config` and `weights` paths absolute against `base_dir`.
    pub fn resolve_paths(&mut self, base_dir: &Path) {
        for p in [&mut self.config, &mut self.weights].into_iter().flatten() {
            if p.is_relative() {
                *p = base_dir.join(&*p);
            }
        }
    }

    /// Checks ranges and agreement with the number of data classes.
    pub fn validate(&self, data_classes: usize) -> Result<(), ModelConfigError> {
        if let Some(n) = self.num_classes
            && n != data_classes
        {
            return Err(ModelConfigError::new(
                "model.num_classes",
                n,
                format!("data.classes lists {data_classes} classes"),
            ));
        }
        if !(0.0..1.0).contains(&self.head_dropout) {
            return Err(ModelConfigError::new(
                "model.head_dropout",
                self.head_dropout,
                "must be in [0, 1)",
            ));
        }
        if let Some(p) = self.drop_path
            && !(0.0..1.0).contains(&p)
        {
            return Err(ModelConfigError::new(
                "model.drop_path",
                p,
                "must be in [0, 1)",
            ));
        }
        if self.preset.is_none() && self.config.is_none() {
            return Err(ModelConfigError::new(
                "model.preset",
                &self.preset,
                "set model.preset (e.g. mvit_v2_s, mvit_demo, r3d_18) or model.config",
            ));
        }
        if self.num_queries == 0 {
            return Err(ModelConfigError::new(
                "model.num_queries",
                self.num_queries,
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_validates() {
        let mut c: ModelConfig = serde_json::from_value(
            serde_json::json!({"arch": "r3d_18", "preset": "r3d_18", "weights": "w.pth"}),
        )
        .unwrap();
        assert_eq!(c.arch, Arch::R3d18);
        c.resolve_paths(Path::new("/cfg"));
        assert_eq!(c.weights, Some(PathBuf::from("/cfg/w.pth")));
        c.validate(2).unwrap();
        c.num_classes = Some(3);
        assert_eq!(c.validate(2).unwrap_err().key, "model.num_classes");
        assert!(serde_json::from_value::<ModelConfig>(serde_json::json!({"arch": "vit"})).is_err());
        assert!(
            serde_json::from_value::<ModelConfig>(serde_json::json!({"head_dropot": 0.1})).is_err()
        );
    }
}
