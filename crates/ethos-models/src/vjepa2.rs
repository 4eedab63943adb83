//! V-JEPA 2 on libtorch: the video encoder of Hugging Face transformers' `VJEPA2Model` (encoder path)
//! and its `VJEPA2ForVideoClassification` head (attentive pooler + linear classifier).
//!
//! Inputs are `pixel_values_videos`, `(B, T, C, H, W)` float. Tokens are `(B, N, D)` with
//! `N = (T / tubelet) * (H / patch) * (W / patch)`, ordered t-major, then h, then w. Variables carry the
//! Hugging Face key names (`vjepa2.encoder.layer.3.attention.query.weight`, `pooler.query_tokens`, ...), so a
//! checkpoint's `model.safetensors` loads by name. The predictor (V-JEPA pre-training only) is not built:
//! its `vjepa2.predictor.*` / `predictor.*` keys are skipped when loading (see [`Vjepa2WeightLayout`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor, nn};

use crate::model::{Layout, VideoModel};
use crate::weights::{LoadOptions, LoadReport, WeightsError, load_into, read_tensors};

/// Errors building or running a V-JEPA 2 model; all are caused by the user's files or inputs.
#[derive(Debug, thiserror::Error)]
pub enum Vjepa2Error {
    /// The `config.json` could not be read.
    #[error("cannot read V-JEPA 2 config {path}: {source}")]
    ReadConfig {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The `config.json` is not valid JSON or a key has the wrong type (serde names line and column).
    #[error("invalid V-JEPA 2 config {path}: key `{key}`: {source}")]
    ParseConfig {
        /// The file.
        path: PathBuf,
        /// Dotted path of the offending key (`.` when the document itself is malformed).
        key: String,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// A config value is out of range or inconsistent with another.
    #[error("invalid V-JEPA 2 config {origin}: `{key}` = {value}: {reason}")]
    InvalidConfig {
        /// Where the config came from (a path, or "<in memory>").
        origin: String,
        /// The offending key.
        key: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An input tensor the model cannot take.
    #[error("V-JEPA 2 input of shape {shape:?}: {reason}")]
    BadInput {
        /// The input's shape.
        shape: Vec<i64>,
        /// What is wrong with it.
        reason: String,
    },
    /// The weights could not be read or do not fit the model built from the config.
    #[error("V-JEPA 2 weights {path}: {source}")]
    Weights {
        /// The weight file or folder.
        path: PathBuf,
        /// What went wrong.
        source: WeightsError,
    },
}

impl ethos_core::Classify for Vjepa2Error {
    /// True for errors caused by the user's input (config file, weights, tensors): every variant but
    /// an internal tensor failure while copying weights.
    fn kind(&self) -> ethos_core::ErrorKind {
        let bad = {
            match self {
                Vjepa2Error::Weights { source, .. } => source.is_bad_input(),
                _ => true,
            }
        };
        if bad {
            ethos_core::ErrorKind::BadInput
        } else {
            ethos_core::ErrorKind::Internal
        }
    }
}

fn default_patch_size() -> i64 {
    16
}
fn default_crop_size() -> i64 {
    256
}
fn default_frames_per_clip() -> i64 {
    64
}
fn default_tubelet_size() -> i64 {
    2
}
fn default_hidden_size() -> i64 {
    1024
}
fn default_in_chans() -> i64 {
    3
}
fn default_num_attention_heads() -> i64 {
    16
}
fn default_num_hidden_layers() -> i64 {
    24
}
fn default_mlp_ratio() -> f64 {
    4.0
}
fn default_layer_norm_eps() -> f64 {
    1e-6
}
fn default_true() -> bool {
    true
}
fn default_hidden_act() -> String {
    "gelu".to_string()
}
fn default_initializer_range() -> f64 {
    0.02
}
fn default_num_pooler_layers() -> i64 {
    3
}
fn default_pred_hidden_size() -> i64 {
    384
}
fn default_pred_num_attention_heads() -> i64 {
    12
}
fn default_pred_num_hidden_layers() -> i64 {
    12
}
fn default_pred_num_mask_tokens() -> i64 {
    10
}

/// A Hugging Face V-JEPA 2 `config.json` (`VJEPA2Config`), with transformers' defaults (ViT-L/16, 256 px,
/// 64 frames) for absent keys. Keys this port does not use (`architectures`, `label2id`, ...) are ignored,
/// as transformers ignores them. Sizes are in pixels, frames or channels as named.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Vjepa2Config {
    /// Spatial patch size in pixels (square patches).
    #[serde(default = "default_patch_size")]
    pub patch_size: i64,
    /// Training input resolution in pixels; sets the RoPE grid (`crop_size / patch_size`).
    #[serde(default = "default_crop_size")]
    pub crop_size: i64,
    /// Frames per clip used in pre-training (does not limit the input length).
    #[serde(default = "default_frames_per_clip")]
    pub frames_per_clip: i64,
    /// Frames per tubelet (temporal patch size).
    #[serde(default = "default_tubelet_size")]
    pub tubelet_size: i64,
    /// Token width D.
    #[serde(default = "default_hidden_size")]
    pub hidden_size: i64,
    /// Input channels.
    #[serde(default = "default_in_chans")]
    pub in_chans: i64,
    /// Attention heads of the encoder and the pooler.
    #[serde(default = "default_num_attention_heads")]
    pub num_attention_heads: i64,
    /// Encoder blocks.
    #[serde(default = "default_num_hidden_layers")]
    pub num_hidden_layers: i64,
    /// Maximum stochastic-depth rate (linearly increasing over the blocks, training only).
    #[serde(default)]
    pub drop_path_rate: f64,
    /// Encoder MLP width ratio: hidden = int(hidden_size * mlp_ratio).
    #[serde(default = "default_mlp_ratio")]
    pub mlp_ratio: f64,
    /// Epsilon of every LayerNorm.
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    /// Whether the encoder's q/k/v projections have a bias.
    #[serde(default = "default_true")]
    pub qkv_bias: bool,
    /// Attention dropout of the encoder blocks (training only).
    #[serde(default)]
    pub attention_probs_dropout_prob: f64,
    /// MLP activation (`gelu` = exact erf GELU).
    #[serde(default = "default_hidden_act")]
    pub hidden_act: String,
    /// Standard deviation of the initial weights of a freshly built model.
    #[serde(default = "default_initializer_range")]
    pub initializer_range: f64,
    /// Attention dropout of the pooler (training only).
    #[serde(default)]
    pub attention_dropout: f64,
    /// Self-attention layers of the attentive pooler.
    #[serde(default = "default_num_pooler_layers")]
    pub num_pooler_layers: i64,
    /// Predictor width (pre-training only; kept for completeness).
    #[serde(default = "default_pred_hidden_size")]
    pub pred_hidden_size: i64,
    /// Predictor heads (pre-training only).
    #[serde(default = "default_pred_num_attention_heads")]
    pub pred_num_attention_heads: i64,
    /// Predictor blocks (pre-training only).
    #[serde(default = "default_pred_num_hidden_layers")]
    pub pred_num_hidden_layers: i64,
    /// Predictor mask tokens (pre-training only).
    #[serde(default = "default_pred_num_mask_tokens")]
    pub pred_num_mask_tokens: i64,
    /// Predictor mask-token init (pre-training only).
    #[serde(default = "default_true")]
    pub pred_zero_init_mask_tokens: bool,
    /// Predictor MLP ratio (pre-training only).
    #[serde(default = "default_mlp_ratio")]
    pub pred_mlp_ratio: f64,
    /// Number of classifier outputs when `id2label` is absent (transformers' default: 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_labels: Option<i64>,
    /// Class names by index (as strings, like transformers writes them); its length sets the label count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id2label: Option<BTreeMap<String, String>>,
}

impl Default for Vjepa2Config {
    fn default() -> Self {
        // An empty JSON object takes every serde default, which are transformers' defaults.
        serde_json::from_str("{}").unwrap_or_else(|_| unreachable!("an empty object always parses"))
    }
}

impl Vjepa2Config {
    /// Reads and validates a Hugging Face `config.json` (or a folder holding one).
    pub fn from_file(path: &Path) -> Result<Self, Vjepa2Error> {
        let file = if path.is_dir() {
            path.join("config.json")
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read_to_string(&file).map_err(|source| Vjepa2Error::ReadConfig {
            path: file.clone(),
            source,
        })?;
        let mut de = serde_json::Deserializer::from_str(&text);
        let cfg: Self =
            serde_path_to_error::deserialize(&mut de).map_err(|e| Vjepa2Error::ParseConfig {
                path: file.clone(),
                key: e.path().to_string(),
                source: e.into_inner(),
            })?;
        cfg.validate(&file.display().to_string())?;
        Ok(cfg)
    }

    /// Checks every value the model uses; `origin` names the source in the error.
    pub fn validate(&self, origin: &str) -> Result<(), Vjepa2Error> {
        let bad = |key: &'static str, value: String, reason: &str| Vjepa2Error::InvalidConfig {
            origin: origin.to_string(),
            key,
            value,
            reason: reason.to_string(),
        };
        let positive: [(&'static str, i64); 8] = [
            ("patch_size", self.patch_size),
            ("crop_size", self.crop_size),
            ("frames_per_clip", self.frames_per_clip),
            ("tubelet_size", self.tubelet_size),
            ("hidden_size", self.hidden_size),
            ("in_chans", self.in_chans),
            ("num_attention_heads", self.num_attention_heads),
            ("num_hidden_layers", self.num_hidden_layers),
        ];
        for (key, value) in positive {
            if value < 1 {
                return Err(bad(key, value.to_string(), "must be at least 1"));
            }
        }
        if self.num_pooler_layers < 0 {
            return Err(bad(
                "num_pooler_layers",
                self.num_pooler_layers.to_string(),
                "must be >= 0",
            ));
        }
        if self.hidden_size % self.num_attention_heads != 0 {
            return Err(bad(
                "num_attention_heads",
                self.num_attention_heads.to_string(),
                &format!("must divide hidden_size {}", self.hidden_size),
            ));
        }
        if self.crop_size < self.patch_size {
            return Err(bad(
                "crop_size",
                self.crop_size.to_string(),
                &format!("must be >= patch_size {}", self.patch_size),
            ));
        }
        if !(self.mlp_ratio.is_finite() && self.mlp_hidden() >= 1) {
            return Err(bad(
                "mlp_ratio",
                self.mlp_ratio.to_string(),
                "int(hidden_size * mlp_ratio) must be at least 1",
            ));
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0) {
            return Err(bad(
                "layer_norm_eps",
                self.layer_norm_eps.to_string(),
                "must be > 0",
            ));
        }
        for (key, p) in [
            ("drop_path_rate", self.drop_path_rate),
            (
                "attention_probs_dropout_prob",
                self.attention_probs_dropout_prob,
            ),
            ("attention_dropout", self.attention_dropout),
        ] {
            if !(0.0..1.0).contains(&p) {
                return Err(bad(key, p.to_string(), "must be in [0, 1)"));
            }
        }
        if Activation::from_name(&self.hidden_act).is_none() {
            return Err(bad(
                "hidden_act",
                format!("{:?}", self.hidden_act),
                "supported: gelu, gelu_pytorch_tanh, gelu_new, relu, silu, swish",
            ));
        }
        if self.num_labels() < 1 {
            return Err(bad(
                "num_labels",
                self.num_labels().to_string(),
                "must be at least 1",
            ));
        }
        Ok(())
    }

    /// Number of classifier outputs: `len(id2label)` when present, else `num_labels`, else 2.
    pub fn num_labels(&self) -> i64 {
        match &self.id2label {
            Some(map) if !map.is_empty() => map.len() as i64,
            _ => self.num_labels.unwrap_or(2),
        }
    }

    /// Class names by index from `id2label` (`LABEL_i` where absent).
    pub fn class_names(&self) -> Vec<String> {
        (0..self.num_labels())
            .map(|i| {
                self.id2label
                    .as_ref()
                    .and_then(|m| m.get(&i.to_string()).cloned())
                    .unwrap_or_else(|| format!("LABEL_{i}"))
            })
            .collect()
    }

    /// Channels per attention head.
    pub fn head_dim(&self) -> i64 {
        self.hidden_size / self.num_attention_heads
    }

    /// Encoder MLP width: Python's `int(hidden_size * mlp_ratio)` (truncation).
    pub fn mlp_hidden(&self) -> i64 {
        (self.hidden_size as f64 * self.mlp_ratio) as i64
    }

    /// Channels per head rotated by each of the frame, height and width positions:
    /// `2 * ((head_dim // 3) // 2)`; the remaining `head_dim - 3 * d` channels are not rotated.
    pub fn rope_section_dim(&self) -> i64 {
        2 * ((self.head_dim() / 3) / 2)
    }

    /// Side of the RoPE position grid, `crop_size / patch_size` (from the config, never the input).
    pub fn rope_grid_size(&self) -> i64 {
        self.crop_size / self.patch_size
    }

    /// Checks that `shape` is a `(B, T, C, H, W)` video shape the encoder can embed: 5 dims, B and T at
    /// least 1, `C = in_chans`, H and W at least one patch. Other sizes than `crop_size` and
    /// `frames_per_clip` run, as in transformers (RoPE positions still come from the config grid).
    pub fn check_input_shape(&self, shape: &[i64]) -> Result<(), Vjepa2Error> {
        let err = |reason: String| Vjepa2Error::BadInput {
            shape: shape.to_vec(),
            reason,
        };
        if shape.len() != 5 {
            return Err(err("expected 5 dimensions (B, T, C, H, W)".into()));
        }
        if shape[0] < 1 || shape[1] < 1 {
            return Err(err("batch and frame counts must be at least 1".into()));
        }
        if shape[2] != self.in_chans {
            return Err(err(format!(
                "channel dim 2 is {}, the config says in_chans {}",
                shape[2], self.in_chans
            )));
        }
        if shape[3] < self.patch_size || shape[4] < self.patch_size {
            return Err(err(format!(
                "H and W must be at least patch_size {}",
                self.patch_size
            )));
        }
        Ok(())
    }

    /// Token grid `(T', H', W')` for an input of `frames` x `height` x `width`.
    pub fn token_grid(&self, frames: i64, height: i64, width: i64) -> [i64; 3] {
        let frames = frames.max(self.tubelet_size);
        [
            frames / self.tubelet_size,
            height / self.patch_size,
            width / self.patch_size,
        ]
    }
}

/// Which parts a V-JEPA 2 state dict holds and how its keys map onto this port's variable names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vjepa2WeightLayout {
    /// The attentive pooler and classifier are present (a `VJEPA2ForVideoClassification` checkpoint).
    pub has_classifier: bool,
    /// Prefix renames to apply (`from`, `to`): a bare `VJEPA2Model` checkpoint's `encoder.` becomes
    /// `vjepa2.encoder.`.
    pub rename: Vec<(String, String)>,
    /// Key prefixes to skip: the predictor, which this port does not build.
    pub skip_prefixes: Vec<String>,
}

impl Vjepa2WeightLayout {
    /// Inspects a checkpoint's key names.
    pub fn detect<S: AsRef<str>>(keys: &[S]) -> Self {
        let has = |prefix: &str| keys.iter().any(|k| k.as_ref().starts_with(prefix));
        let has_classifier = has("pooler.") && has("classifier.");
        let mut rename = Vec::new();
        if has("encoder.") && !has("vjepa2.encoder.") {
            rename.push(("encoder.".to_string(), "vjepa2.encoder.".to_string()));
        }
        Self {
            has_classifier,
            rename,
            skip_prefixes: vec!["vjepa2.predictor.".to_string(), "predictor.".to_string()],
        }
    }

    /// The variable name a checkpoint key loads into, or None for a skipped key.
    pub fn map_key(&self, key: &str) -> Option<String> {
        if self
            .skip_prefixes
            .iter()
            .any(|p| key.starts_with(p.as_str()))
        {
            return None;
        }
        for (from, to) in &self.rename {
            if let Some(rest) = key.strip_prefix(from.as_str()) {
                return Some(format!("{to}{rest}"));
            }
        }
        Some(key.to_string())
    }
}

/// Variable-name prefix of the encoder inside every model of this module (the Hugging Face
/// `VJEPA2ForVideoClassification` layout).
pub const ENCODER_PREFIX: &str = "vjepa2.encoder";

// ---------------------------------------------------------------------------------------------------
// Building blocks
// ---------------------------------------------------------------------------------------------------

/// MLP activations transformers' `ACT2FN` offers that V-JEPA 2 configs use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Activation {
    GeluErf,
    GeluTanh,
    Relu,
    Silu,
}

impl Activation {
    fn from_name(name: &str) -> Option<Self> {
        match name {
            "gelu" => Some(Self::GeluErf),
            "gelu_pytorch_tanh" | "gelu_new" => Some(Self::GeluTanh),
            "relu" => Some(Self::Relu),
            "silu" | "swish" => Some(Self::Silu),
            _ => None,
        }
    }

    fn apply(self, x: &Tensor) -> Tensor {
        match self {
            Self::GeluErf => x.gelu("none"),
            Self::GeluTanh => x.gelu("tanh"),
            Self::Relu => x.relu(),
            Self::Silu => x.silu(),
        }
    }
}

pub(crate) fn linear(p: nn::Path, in_dim: i64, out_dim: i64, bias: bool, std: f64) -> nn::Linear {
    nn::linear(
        p,
        in_dim,
        out_dim,
        nn::LinearConfig {
            ws_init: nn::Init::Randn {
                mean: 0.0,
                stdev: std,
            },
            bs_init: Some(nn::Init::Const(0.0)),
            bias,
        },
    )
}

pub(crate) fn layer_norm(p: nn::Path, dim: i64, eps: f64) -> nn::LayerNorm {
    nn::layer_norm(
        p,
        vec![dim],
        nn::LayerNormConfig {
            eps,
            ..Default::default()
        },
    )
}

/// Stochastic depth: drops whole samples' residual branches with probability `rate` in training.
fn drop_path(x: &Tensor, rate: f64, train: bool) -> Tensor {
    if !train || rate == 0.0 {
        return x.shallow_clone();
    }
    let keep = 1.0 - rate;
    let mut shape = vec![x.size()[0]];
    shape.resize(x.dim(), 1);
    let mask = (Tensor::rand(shape.as_slice(), (x.kind(), x.device())) + keep).floor();
    x / keep * mask
}

/// `fc1 -> activation -> fc2`, the MLP of every V-JEPA 2 block.
#[derive(Debug)]
struct Mlp {
    fc1: nn::Linear,
    fc2: nn::Linear,
    act: Activation,
}

impl Mlp {
    fn new(p: nn::Path, dim: i64, hidden: i64, act: Activation, std: f64) -> Self {
        Self {
            fc1: linear(&p / "fc1", dim, hidden, true, std),
            fc2: linear(&p / "fc2", hidden, dim, true, std),
            act,
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        self.act.apply(&x.apply(&self.fc1)).apply(&self.fc2)
    }
}

/// Splits `(B, N, heads*hd)` into `(B, heads, N, hd)`.
fn split_heads(x: &Tensor, heads: i64) -> Tensor {
    let s = x.size();
    x.view([s[0], s[1], heads, s[2] / heads]).transpose(1, 2)
}

/// Merges `(B, heads, N, hd)` into `(B, N, heads*hd)`.
fn merge_heads(x: &Tensor) -> Tensor {
    let s = x.size();
    x.transpose(1, 2).reshape([s[0], s[2], s[1] * s[3]])
}

/// Fused scaled-dot-product attention over `(B, heads, N, hd)` tensors, softmax scale `hd^-0.5`, no mask.
fn attention(q: &Tensor, k: &Tensor, v: &Tensor, dropout: f64, train: bool) -> Tensor {
    let head_dim = q.size()[3];
    let p = if train { dropout } else { 0.0 };
    Tensor::scaled_dot_product_attention(
        q,
        k,
        v,
        None::<Tensor>,
        p,
        false,
        Some((head_dim as f64).powf(-0.5)),
        false,
    )
}

/// Rotary tables of the V-JEPA 2 3D RoPE for a set of token positions: `cos`, `sin` of shape `(N, R)`
/// (positions `0..N`) or `(B, 1, N, R)` (per-sample positions, broadcast over the heads) in float32,
/// `R` = the rotated width (head_dim, or 3*d when head_dim is odd).
///
/// Per head, channels `[0, d)` rotate with the frame position, `[d, 2d)` with the height position,
/// `[2d, 3d)` with the width position; within a section of width d, channel `e` uses frequency
/// `omega[e mod d/2]`, `omega[i] = 1 / 10000^(i / (d/2))` (sin/cos repeated, not interleaved) while the
/// partner of channel `2j` is `2j+1` (interleaved pairs). Channels past `3d` are left as they are
/// (cos 1, sin 0 when they are part of the table).
#[derive(Debug)]
pub struct Rope {
    cos: Tensor,
    sin: Tensor,
    rotated: i64,
    head_dim: i64,
}

impl Rope {
    /// Tables for tokens `0..tokens` (a whole clip).
    pub(crate) fn new(cfg: &Vjepa2Config, tokens: i64, device: tch::Device) -> Self {
        Self::at_positions(cfg, &Tensor::arange(tokens, (Kind::Int64, device)))
    }

    /// Tables for the token indices `positions` (int64, `(N,)` shared by the batch or `(B, N)` per
    /// sample; index = t*G*G + h*G + w on the config's RoPE grid G), as V-JEPA 2 places the kept
    /// tokens of a masked clip and the predictor's context + target tokens.
    pub(crate) fn at_positions(cfg: &Vjepa2Config, positions: &Tensor) -> Self {
        let device = positions.device();
        let head_dim = cfg.head_dim();
        let d = cfg.rope_section_dim();
        let g = cfg.rope_grid_size();
        let per_frame = g * g;
        let ids = positions.to_kind(Kind::Int64);
        let frame = ids.floor_divide_scalar(per_frame);
        let rest = &ids - &frame * per_frame;
        let height = rest.floor_divide_scalar(g);
        let width = &rest - &height * g;
        // The table covers the whole head when head_dim is even (unrotated tail: cos 1, sin 0, exact);
        // an odd head_dim cannot be split into pairs, so then only the rotated 3d channels are tabled.
        let rotated = if head_dim % 2 == 0 { head_dim } else { 3 * d };
        let tail = rotated - 3 * d;
        let mut cos_parts = Vec::with_capacity(4);
        let mut sin_parts = Vec::with_capacity(4);
        if d > 0 {
            let half = d / 2;
            let omega = Tensor::arange(half, (Kind::Float, device)) / (half as f64);
            let omega = Tensor::pow_scalar(10000.0, &omega).reciprocal();
            for pos in [&frame, &height, &width] {
                let freq = pos.to_kind(Kind::Float).unsqueeze(-1) * &omega;
                let (cos, sin) = (freq.cos(), freq.sin());
                cos_parts.push(Tensor::cat(&[&cos, &cos], -1));
                sin_parts.push(Tensor::cat(&[&sin, &sin], -1));
            }
        }
        let mut shape = ids.size();
        if tail > 0 {
            shape.push(tail);
            cos_parts.push(Tensor::ones(shape.as_slice(), (Kind::Float, device)));
            sin_parts.push(Tensor::zeros(shape.as_slice(), (Kind::Float, device)));
        }
        let (cos, sin) = if cos_parts.is_empty() {
            let mut shape = ids.size();
            shape.push(0);
            let empty = Tensor::zeros(shape.as_slice(), (Kind::Float, device));
            (empty.shallow_clone(), empty)
        } else {
            (Tensor::cat(&cos_parts, -1), Tensor::cat(&sin_parts, -1))
        };
        // Per-sample tables get a heads axis so they broadcast against (B, heads, N, head_dim).
        let (cos, sin) = if ids.dim() == 2 {
            (cos.unsqueeze(1), sin.unsqueeze(1))
        } else {
            (cos, sin)
        };
        Self {
            cos,
            sin,
            rotated,
            head_dim,
        }
    }

    /// Rotates `(B, heads, N, head_dim)` queries or keys.
    fn apply(&self, x: &Tensor) -> Tensor {
        if self.rotated == 0 {
            return x.shallow_clone();
        }
        let cos = self.cos.to_kind(x.kind());
        let sin = self.sin.to_kind(x.kind());
        let rotate = |part: &Tensor| {
            let pairs = part.unflatten(-1, [-1, 2]);
            let even = pairs.select(-1, 0);
            let odd = pairs.select(-1, 1);
            let partner = Tensor::stack(&[-odd, even], -1).flatten(-2, -1);
            part * &cos + partner * &sin
        };
        if self.rotated == self.head_dim {
            rotate(x)
        } else {
            let head = x.narrow(-1, 0, self.rotated);
            let tail = x.narrow(-1, self.rotated, self.head_dim - self.rotated);
            Tensor::cat(&[rotate(&head), tail], -1)
        }
    }
}

/// Multi-head self-attention with separate q/k/v projections and 3D RoPE (`VJEPA2RopeAttention`).
#[derive(Debug)]
struct RopeAttention {
    query: nn::Linear,
    key: nn::Linear,
    value: nn::Linear,
    proj: nn::Linear,
    heads: i64,
    dropout: f64,
}

impl RopeAttention {
    fn new(p: nn::Path, cfg: &Vjepa2Config) -> Self {
        let d = cfg.hidden_size;
        let std = cfg.initializer_range;
        Self {
            query: linear(&p / "query", d, d, cfg.qkv_bias, std),
            key: linear(&p / "key", d, d, cfg.qkv_bias, std),
            value: linear(&p / "value", d, d, cfg.qkv_bias, std),
            proj: linear(&p / "proj", d, d, true, std),
            heads: cfg.num_attention_heads,
            dropout: cfg.attention_probs_dropout_prob,
        }
    }

    fn forward(&self, x: &Tensor, rope: &Rope, train: bool) -> Tensor {
        let q = rope.apply(&split_heads(&x.apply(&self.query), self.heads));
        let k = rope.apply(&split_heads(&x.apply(&self.key), self.heads));
        let v = split_heads(&x.apply(&self.value), self.heads);
        merge_heads(&attention(&q, &k, &v, self.dropout, train)).apply(&self.proj)
    }
}

/// One pre-norm encoder block (`VJEPA2Layer`): `h = x + attn(norm1(x)); out = h + mlp(norm2(h))`.
#[derive(Debug)]
pub(crate) struct EncoderLayer {
    norm1: nn::LayerNorm,
    attention: RopeAttention,
    norm2: nn::LayerNorm,
    mlp: Mlp,
    drop_path: f64,
}

impl EncoderLayer {
    pub(crate) fn new(p: nn::Path, cfg: &Vjepa2Config, drop_path: f64) -> Self {
        let act = Activation::from_name(&cfg.hidden_act).unwrap_or(Activation::GeluErf);
        Self {
            norm1: layer_norm(&p / "norm1", cfg.hidden_size, cfg.layer_norm_eps),
            attention: RopeAttention::new(&p / "attention", cfg),
            norm2: layer_norm(&p / "norm2", cfg.hidden_size, cfg.layer_norm_eps),
            mlp: Mlp::new(
                &p / "mlp",
                cfg.hidden_size,
                cfg.mlp_hidden(),
                act,
                cfg.initializer_range,
            ),
            drop_path,
        }
    }

    pub(crate) fn forward(&self, x: &Tensor, rope: &Rope, train: bool) -> Tensor {
        let attn = self.attention.forward(&x.apply(&self.norm1), rope, train);
        let h = x + drop_path(&attn, self.drop_path, train);
        let mlp = self.mlp.forward(&h.apply(&self.norm2));
        h + drop_path(&mlp, self.drop_path, train)
    }
}

/// 3D tubelet patch embedding (`VJEPA2PatchEmbeddings3D`): Conv3d with kernel = stride =
/// `(tubelet, patch, patch)` on `(B, C, T, H, W)`, flattened to `(B, N, D)`.
#[derive(Debug)]
struct PatchEmbeddings {
    weight: Tensor,
    bias: Tensor,
    tubelet: i64,
    patch: i64,
}

impl PatchEmbeddings {
    fn new(p: nn::Path, cfg: &Vjepa2Config) -> Self {
        let p = &p / "patch_embeddings" / "proj";
        let shape = [
            cfg.hidden_size,
            cfg.in_chans,
            cfg.tubelet_size,
            cfg.patch_size,
            cfg.patch_size,
        ];
        Self {
            weight: p.var(
                "weight",
                &shape,
                nn::Init::Randn {
                    mean: 0.0,
                    stdev: cfg.initializer_range,
                },
            ),
            bias: p.var("bias", &[cfg.hidden_size], nn::Init::Const(0.0)),
            tubelet: cfg.tubelet_size,
            patch: cfg.patch_size,
        }
    }

    /// `(B, T, C, H, W)` pixels -> `(B, N, D)` tokens (a clip shorter than a tubelet is repeated
    /// `tubelet` times along T first, as transformers does).
    fn forward(&self, video: &Tensor) -> Tensor {
        let mut x = video.permute([0, 2, 1, 3, 4]);
        if x.size()[2] < self.tubelet {
            x = x.repeat([1, 1, self.tubelet, 1, 1]);
        }
        let x = x.to_kind(self.weight.kind());
        let stride = [self.tubelet, self.patch, self.patch];
        x.conv3d(
            &self.weight,
            Some(&self.bias),
            stride,
            [0, 0, 0],
            [1, 1, 1],
            1,
        )
        .flatten(2, -1)
        .transpose(1, 2)
    }
}

// ---------------------------------------------------------------------------------------------------
// Encoder
// ---------------------------------------------------------------------------------------------------

/// The V-JEPA 2 video encoder (`VJEPA2Encoder`): tubelet embedding, pre-norm RoPE blocks, final LayerNorm.
/// `(B, T, C, H, W)` -> `(B, N, D)`.
#[derive(Debug)]
pub struct Vjepa2Encoder {
    cfg: Vjepa2Config,
    prefix: String,
    embeddings: PatchEmbeddings,
    layers: Vec<EncoderLayer>,
    layernorm: nn::LayerNorm,
    frozen_blocks: usize,
}

impl Vjepa2Encoder {
    /// Builds the encoder under `p` (variables `{p}.embeddings.patch_embeddings.proj.*`, `{p}.layer.{i}.*`,
    /// `{p}.layernorm.*`), initialised as transformers does (normal(0, initializer_range) weights, zero
    /// biases, identity LayerNorms); load a checkpoint to use it.
    pub fn new(p: &nn::Path, cfg: &Vjepa2Config) -> Result<Self, Vjepa2Error> {
        cfg.validate("<in memory>")?;
        let n = cfg.num_hidden_layers;
        let layers = (0..n)
            .map(|i| {
                // transformers' linear stochastic-depth schedule over the blocks.
                let rate = if n > 1 {
                    cfg.drop_path_rate * i as f64 / (n - 1) as f64
                } else {
                    0.0
                };
                EncoderLayer::new(p / "layer" / i, cfg, rate)
            })
            .collect();
        Ok(Self {
            cfg: cfg.clone(),
            prefix: p.components().collect::<Vec<_>>().join("."),
            embeddings: PatchEmbeddings::new(p / "embeddings", cfg),
            layers,
            layernorm: layer_norm(p / "layernorm", cfg.hidden_size, cfg.layer_norm_eps),
            frozen_blocks: 0,
        })
    }

    /// The config the encoder was built from.
    pub fn config(&self) -> &Vjepa2Config {
        &self.cfg
    }

    /// Variable-name prefix of the encoder (e.g. `vjepa2.encoder`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Number of blocks.
    pub fn num_blocks(&self) -> usize {
        self.layers.len()
    }

    /// Checks that `input` is a `(B, T, C, H, W)` float video this encoder can embed.
    pub fn check_input(&self, input: &Tensor) -> Result<(), Vjepa2Error> {
        if !input.is_floating_point() {
            return Err(Vjepa2Error::BadInput {
                shape: input.size(),
                reason: format!("expected a float tensor, got {:?}", input.kind()),
            });
        }
        self.cfg.check_input_shape(&input.size())
    }

    /// Variable-name prefixes of the patch embedding and the first `n` blocks (what
    /// `freeze_encoder_layers: n` freezes; the final LayerNorm is never included).
    pub fn freeze_prefixes(&self, n: usize) -> Result<Vec<String>, Vjepa2Error> {
        if n > self.layers.len() {
            return Err(Vjepa2Error::InvalidConfig {
                origin: "model".into(),
                key: "freeze_encoder_layers",
                value: n.to_string(),
                reason: format!("the encoder has only {} blocks", self.layers.len()),
            });
        }
        let mut prefixes = Vec::with_capacity(n + 1);
        if n > 0 {
            prefixes.push(format!("{}.embeddings.", self.prefix));
        }
        prefixes.extend((0..n).map(|i| format!("{}.layer.{i}.", self.prefix)));
        Ok(prefixes)
    }

    /// Marks the patch embedding and the first `n` blocks as frozen for the forward pass: they then run
    /// under `no_grad` (no graph is built). Use [`crate::freeze::freeze_prefixes`] with
    /// [`Self::freeze_prefixes`] to stop their gradients and keep them out of the optimiser.
    pub fn set_frozen_blocks(&mut self, n: usize) -> Result<(), Vjepa2Error> {
        self.freeze_prefixes(n)?;
        self.frozen_blocks = n;
        Ok(())
    }

    /// Number of frozen leading blocks.
    pub fn frozen_blocks(&self) -> usize {
        self.frozen_blocks
    }

    /// `(B, T, C, H, W)` -> `(B, N, D)` after the final LayerNorm.
    pub fn forward_t(&self, input: &Tensor, train: bool) -> Tensor {
        self.run(input, None, train, None)
    }

    /// The encoder on a subset of the tokens, as V-JEPA 2's context encoder: patch embedding, keep the
    /// tokens at `positions` (int64 `(B, K)` token indices, t-major order on the input's token grid),
    /// the blocks with RoPE at those positions, final LayerNorm. `(B, T, C, H, W)` -> `(B, K, D)`.
    /// Positions must be in `0..N` (see [`Vjepa2Config::token_grid`]); callers validate them.
    pub fn forward_at(&self, input: &Tensor, positions: &Tensor, train: bool) -> Tensor {
        self.run(input, Some(positions), train, None)
    }

    /// Eval-mode forward that also returns `encoder.embeddings`, `encoder.layer.{i}` and
    /// `encoder.last_hidden_state` (the reference names).
    pub fn forward_named(&self, input: &Tensor) -> (Tensor, Vec<(String, Tensor)>) {
        let mut named = Vec::new();
        let out = self.run(input, None, false, Some(&mut named));
        (out, named)
    }

    fn run(
        &self,
        input: &Tensor,
        positions: Option<&Tensor>,
        train: bool,
        mut named: Option<&mut Vec<(String, Tensor)>>,
    ) -> Tensor {
        let frozen = self.frozen_blocks.min(self.layers.len());
        // The frozen prefix (patch embedding + first blocks) never needs a graph.
        let head = |named: &mut Option<&mut Vec<(String, Tensor)>>| {
            let x = self.embeddings.forward(input);
            if let Some(n) = named {
                n.push(("encoder.embeddings".into(), x.shallow_clone()));
            }
            let (mut x, rope) = match positions {
                None => {
                    let rope = Rope::new(&self.cfg, x.size()[1], x.device());
                    (x, rope)
                }
                Some(pos) => {
                    let pos = pos.to_device(x.device());
                    let index = pos.unsqueeze(-1).expand([-1, -1, x.size()[2]], false);
                    (
                        x.gather(1, &index, false),
                        Rope::at_positions(&self.cfg, &pos),
                    )
                }
            };
            for (i, layer) in self.layers[..frozen].iter().enumerate() {
                x = layer.forward(&x, &rope, train);
                if let Some(n) = named {
                    n.push((format!("encoder.layer.{i}"), x.shallow_clone()));
                }
            }
            (x, rope)
        };
        let (mut x, rope) = if frozen > 0 {
            tch::no_grad(|| head(&mut named))
        } else {
            head(&mut named)
        };
        for (i, layer) in self.layers.iter().enumerate().skip(frozen) {
            x = layer.forward(&x, &rope, train);
            if let Some(n) = &mut named {
                n.push((format!("encoder.layer.{i}"), x.shallow_clone()));
            }
        }
        let out = x.apply(&self.layernorm);
        if let Some(n) = &mut named {
            n.push(("encoder.last_hidden_state".into(), out.shallow_clone()));
        }
        out
    }
}

/// The encoder's pieces for code that runs its blocks itself (activation checkpointing,
/// [`crate::checkpointing`]).
impl Vjepa2Encoder {
    /// Patch embedding and the frozen blocks (without a graph when any block is frozen): the
    /// `(B, N, D)` tokens entering the first trainable block, and the RoPE tables for them.
    pub fn embed_frozen(&self, input: &Tensor, train: bool) -> (Tensor, Rope) {
        let frozen = self.frozen_blocks.min(self.layers.len());
        let stem = || {
            let mut x = self.embeddings.forward(input);
            let rope = Rope::new(&self.cfg, x.size()[1], x.device());
            for layer in &self.layers[..frozen] {
                x = layer.forward(&x, &rope, train);
            }
            (x, rope)
        };
        if frozen > 0 {
            tch::no_grad(stem)
        } else {
            stem()
        }
    }

    /// Block `i` on `(B, N, D)` tokens.
    pub fn block_forward(&self, i: usize, x: &Tensor, rope: &Rope, train: bool) -> Tensor {
        self.layers[i].forward(x, rope, train)
    }

    /// The final LayerNorm on `(B, N, D)` tokens.
    pub fn final_norm(&self, x: &Tensor) -> Tensor {
        x.apply(&self.layernorm)
    }
}

// ---------------------------------------------------------------------------------------------------
// Attentive pooler + classifier
// ---------------------------------------------------------------------------------------------------

/// Pooler self-attention block (`VJEPA2PoolerSelfAttentionLayer`): pre-norm MHA with q/k/v/out
/// projections (no RoPE) and an MLP of width `4 * hidden_size` whatever `mlp_ratio` is.
#[derive(Debug)]
struct PoolerSelfAttentionLayer {
    layer_norm1: nn::LayerNorm,
    q_proj: nn::Linear,
    k_proj: nn::Linear,
    v_proj: nn::Linear,
    out_proj: nn::Linear,
    layer_norm2: nn::LayerNorm,
    mlp: Mlp,
    heads: i64,
    dropout: f64,
}

impl PoolerSelfAttentionLayer {
    fn new(p: nn::Path, cfg: &Vjepa2Config) -> Self {
        let (d, std) = (cfg.hidden_size, cfg.initializer_range);
        let a = &p / "self_attn";
        let act = Activation::from_name(&cfg.hidden_act).unwrap_or(Activation::GeluErf);
        Self {
            layer_norm1: layer_norm(&p / "layer_norm1", d, cfg.layer_norm_eps),
            q_proj: linear(&a / "q_proj", d, d, true, std),
            k_proj: linear(&a / "k_proj", d, d, true, std),
            v_proj: linear(&a / "v_proj", d, d, true, std),
            out_proj: linear(&a / "out_proj", d, d, true, std),
            layer_norm2: layer_norm(&p / "layer_norm2", d, cfg.layer_norm_eps),
            mlp: Mlp::new(&p / "mlp", d, 4 * d, act, std),
            heads: cfg.num_attention_heads,
            dropout: cfg.attention_dropout,
        }
    }

    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let n = x.apply(&self.layer_norm1);
        let q = split_heads(&n.apply(&self.q_proj), self.heads);
        let k = split_heads(&n.apply(&self.k_proj), self.heads);
        let v = split_heads(&n.apply(&self.v_proj), self.heads);
        let h = x + merge_heads(&attention(&q, &k, &v, self.dropout, train)).apply(&self.out_proj);
        let mlp = self.mlp.forward(&h.apply(&self.layer_norm2));
        h + mlp
    }
}

/// Pooler cross-attention block (`VJEPA2PoolerCrossAttentionLayer`): queries (not normed) attend to
/// `layer_norm1(tokens)`; no output projection; `h = queries + attn; out = h + mlp(layer_norm2(h))`.
#[derive(Debug)]
struct PoolerCrossAttentionLayer {
    layer_norm1: nn::LayerNorm,
    q_proj: nn::Linear,
    k_proj: nn::Linear,
    v_proj: nn::Linear,
    layer_norm2: nn::LayerNorm,
    mlp: Mlp,
    heads: i64,
    dropout: f64,
}

impl PoolerCrossAttentionLayer {
    fn new(p: nn::Path, cfg: &Vjepa2Config) -> Self {
        let (d, std) = (cfg.hidden_size, cfg.initializer_range);
        let a = &p / "cross_attn";
        let act = Activation::from_name(&cfg.hidden_act).unwrap_or(Activation::GeluErf);
        Self {
            layer_norm1: layer_norm(&p / "layer_norm1", d, cfg.layer_norm_eps),
            q_proj: linear(&a / "q_proj", d, d, true, std),
            k_proj: linear(&a / "k_proj", d, d, true, std),
            v_proj: linear(&a / "v_proj", d, d, true, std),
            layer_norm2: layer_norm(&p / "layer_norm2", d, cfg.layer_norm_eps),
            mlp: Mlp::new(&p / "mlp", d, 4 * d, act, std),
            heads: cfg.num_attention_heads,
            dropout: cfg.attention_dropout,
        }
    }

    fn forward(&self, queries: &Tensor, tokens: &Tensor, train: bool) -> Tensor {
        let kv = tokens.apply(&self.layer_norm1);
        let q = split_heads(&queries.apply(&self.q_proj), self.heads);
        let k = split_heads(&kv.apply(&self.k_proj), self.heads);
        let v = split_heads(&kv.apply(&self.v_proj), self.heads);
        let h = queries + merge_heads(&attention(&q, &k, &v, self.dropout, train));
        let mlp = self.mlp.forward(&h.apply(&self.layer_norm2));
        h + mlp
    }
}

/// transformers' `VJEPA2AttentivePooler`: `num_pooler_layers` self-attention blocks over the tokens, then
/// one learnable query token cross-attends to them. `(B, N, D)` -> `(B, D)`.
#[derive(Debug)]
pub struct Vjepa2AttentivePooler {
    query_tokens: Tensor,
    cross_attention_layer: PoolerCrossAttentionLayer,
    self_attention_layers: Vec<PoolerSelfAttentionLayer>,
}

impl Vjepa2AttentivePooler {
    /// Builds the pooler under `p` (`{p}.query_tokens` of shape `(1, 1, D)`, `{p}.cross_attention_layer.*`,
    /// `{p}.self_attention_layers.{i}.*`).
    pub fn new(p: &nn::Path, cfg: &Vjepa2Config) -> Self {
        let std = cfg.initializer_range;
        Self {
            query_tokens: p.var(
                "query_tokens",
                &[1, 1, cfg.hidden_size],
                nn::Init::Randn {
                    mean: 0.0,
                    stdev: std,
                },
            ),
            cross_attention_layer: PoolerCrossAttentionLayer::new(p / "cross_attention_layer", cfg),
            self_attention_layers: (0..cfg.num_pooler_layers)
                .map(|i| PoolerSelfAttentionLayer::new(p / "self_attention_layers" / i, cfg))
                .collect(),
        }
    }

    /// `(B, N, D)` encoder tokens -> `(B, D)` pooled vector.
    pub fn forward_t(&self, tokens: &Tensor, train: bool) -> Tensor {
        self.run(tokens, train, None)
    }

    fn run(
        &self,
        tokens: &Tensor,
        train: bool,
        mut named: Option<&mut Vec<(String, Tensor)>>,
    ) -> Tensor {
        let mut x = tokens.shallow_clone();
        for (i, layer) in self.self_attention_layers.iter().enumerate() {
            x = layer.forward(&x, train);
            if let Some(n) = &mut named {
                n.push((
                    format!("pooler.self_attention_layers.{i}"),
                    x.shallow_clone(),
                ));
            }
        }
        let batch = x.size()[0];
        let queries = self.query_tokens.repeat([batch, 1, 1]);
        let out = self.cross_attention_layer.forward(&queries, &x, train);
        if let Some(n) = &mut named {
            n.push(("pooler.cross_attention_layer".into(), out.shallow_clone()));
        }
        let pooled = out.squeeze_dim(1);
        if let Some(n) = &mut named {
            n.push(("pooler_output".into(), pooled.shallow_clone()));
        }
        pooled
    }
}

/// The pooler's pieces for code that runs its layers itself (activation checkpointing).
impl Vjepa2AttentivePooler {
    /// Number of self-attention layers (blocks over all tokens, before the cross-attention).
    pub fn num_self_attention_layers(&self) -> usize {
        self.self_attention_layers.len()
    }

    /// Self-attention layer `i` on `(B, N, D)` tokens.
    pub fn self_attention_forward(&self, i: usize, x: &Tensor, train: bool) -> Tensor {
        self.self_attention_layers[i].forward(x, train)
    }

    /// The query token's cross-attention over `(B, N, D)` tokens: the pooled `(B, D)`.
    pub fn cross_attention_forward(&self, tokens: &Tensor, train: bool) -> Tensor {
        let queries = self.query_tokens.repeat([tokens.size()[0], 1, 1]);
        self.cross_attention_layer
            .forward(&queries, tokens, train)
            .squeeze_dim(1)
    }
}

/// transformers' `VJEPA2ForVideoClassification`: encoder -> attentive pooler -> Linear.
/// `(B, T, C, H, W)` -> logits `(B, num_labels)`.
#[derive(Debug)]
pub struct Vjepa2ForVideoClassification {
    encoder: Vjepa2Encoder,
    pooler: Vjepa2AttentivePooler,
    classifier: nn::Linear,
}

impl Vjepa2ForVideoClassification {
    /// Builds the model under `root` with Hugging Face names (`vjepa2.encoder.*`, `pooler.*`,
    /// `classifier.*`).
    pub fn new(root: &nn::Path, cfg: &Vjepa2Config) -> Result<Self, Vjepa2Error> {
        let encoder = Vjepa2Encoder::new(&(root / "vjepa2" / "encoder"), cfg)?;
        Ok(Self {
            encoder,
            pooler: Vjepa2AttentivePooler::new(&(root / "pooler"), cfg),
            classifier: linear(
                root / "classifier",
                cfg.hidden_size,
                cfg.num_labels(),
                true,
                cfg.initializer_range,
            ),
        })
    }

    /// The encoder.
    pub fn encoder(&self) -> &Vjepa2Encoder {
        &self.encoder
    }

    /// The encoder, for freezing.
    pub fn encoder_mut(&mut self) -> &mut Vjepa2Encoder {
        &mut self.encoder
    }

    /// Checks an input before a forward pass (see [`Vjepa2Encoder::check_input`]).
    pub fn check_input(&self, input: &Tensor) -> Result<(), Vjepa2Error> {
        self.encoder.check_input(input)
    }
}

impl VideoModel for Vjepa2ForVideoClassification {
    fn forward_t(&self, input: &Tensor, train: bool) -> Tensor {
        let tokens = self.encoder.forward_t(input, train);
        self.pooler
            .forward_t(&tokens, train)
            .apply(&self.classifier)
    }

    fn forward_named(&self, input: &Tensor) -> Vec<(String, Tensor)> {
        let (tokens, mut named) = self.encoder.forward_named(input);
        let pooled = self.pooler.run(&tokens, false, Some(&mut named));
        named.push(("logits".into(), pooled.apply(&self.classifier)));
        named
    }

    fn input_layout(&self) -> Layout {
        Layout::Btchw
    }

    fn forward_backward(
        &self,
        input: &Tensor,
        train: bool,
        checkpointing: bool,
        loss_of: &mut dyn FnMut(&Tensor) -> Tensor,
    ) -> Tensor {
        // The pooler's self-attention layers are blocks over all tokens too: checkpoint them.
        let pooler = &self.pooler;
        let layers = (0..pooler.num_self_attention_layers())
            .map(|i| {
                Box::new(move |x: &Tensor, _: &()| (pooler.self_attention_forward(i, x, train), ()))
                    as crate::checkpointing::Block<'_, ()>
            })
            .collect();
        self.encoder.forward_backward_with_head_blocks(
            input,
            train,
            checkpointing,
            layers,
            &mut |tokens| {
                loss_of(
                    &pooler
                        .cross_attention_forward(tokens, train)
                        .apply(&self.classifier),
                )
            },
        )
    }

    fn supports_checkpointing(&self) -> bool {
        true
    }
}

/// The encoder alone as a [`VideoModel`] (a `VJEPA2Model` checkpoint without a head): `forward_t`
/// returns the features `(B, N, D)` (`encoder.last_hidden_state`), not logits; `forward_named` has no
/// `logits` entry.
impl VideoModel for Vjepa2Encoder {
    fn forward_t(&self, input: &Tensor, train: bool) -> Tensor {
        Vjepa2Encoder::forward_t(self, input, train)
    }

    fn forward_named(&self, input: &Tensor) -> Vec<(String, Tensor)> {
        Vjepa2Encoder::forward_named(self, input).1
    }

    fn input_layout(&self) -> Layout {
        Layout::Btchw
    }

    fn forward_backward(
        &self,
        input: &Tensor,
        train: bool,
        checkpointing: bool,
        loss_of: &mut dyn FnMut(&Tensor) -> Tensor,
    ) -> Tensor {
        self.forward_backward_with(input, train, checkpointing, loss_of)
    }

    fn supports_checkpointing(&self) -> bool {
        true
    }
}

/// A V-JEPA 2 checkpoint loaded for inference: the full classifier when the weights hold the attentive
/// pooler and classifier (`VJEPA2ForVideoClassification`), else the encoder alone (`VJEPA2Model`
/// checkpoints such as `facebook/vjepa2-vitl-fpc64-256`, whose predictor is skipped).
#[derive(Debug)]
pub enum Vjepa2Checkpoint {
    /// Encoder + attentive pooler + classifier.
    Classifier(Box<Vjepa2ForVideoClassification>),
    /// The encoder alone (no head in the weights).
    Encoder(Box<Vjepa2Encoder>),
}

impl Vjepa2Checkpoint {
    /// Builds the model the weights describe under `vs.root()` and loads them strictly by Hugging Face
    /// key names (`weights`: a safetensors file, a sharded index or a folder holding either).
    pub fn load(
        vs: &mut nn::VarStore,
        cfg: &Vjepa2Config,
        weights: &Path,
    ) -> Result<(Self, LoadReport), Vjepa2Error> {
        let werr = |source| Vjepa2Error::Weights {
            path: weights.to_path_buf(),
            source,
        };
        let tensors = read_tensors(weights).map_err(werr)?;
        let keys: Vec<&str> = tensors.iter().map(|(k, _)| k.as_str()).collect();
        let layout = Vjepa2WeightLayout::detect(&keys);
        let model = if layout.has_classifier {
            Self::Classifier(Box::new(Vjepa2ForVideoClassification::new(
                &vs.root(),
                cfg,
            )?))
        } else {
            let path = vs.root() / "vjepa2" / "encoder";
            Self::Encoder(Box::new(Vjepa2Encoder::new(&path, cfg)?))
        };
        let opts = LoadOptions {
            strict: true,
            rename: layout.rename,
            skip_prefixes: layout.skip_prefixes,
        };
        let report = load_into(vs, tensors, &opts).map_err(werr)?;
        Ok((model, report))
    }

    /// Checks an input before a forward pass (see [`Vjepa2Encoder::check_input`]).
    pub fn check_input(&self, input: &Tensor) -> Result<(), Vjepa2Error> {
        match self {
            Self::Classifier(m) => m.check_input(input),
            Self::Encoder(e) => e.check_input(input),
        }
    }

    /// Eval-mode forward with every reference-named intermediate (`logits` only for the classifier).
    pub fn forward_named(&self, input: &Tensor) -> Vec<(String, Tensor)> {
        match self {
            Self::Classifier(m) => m.forward_named(input),
            Self::Encoder(e) => e.forward_named(input).1,
        }
    }
}
