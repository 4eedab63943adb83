//! MViTv2 (Multiscale Vision Transformers v2) for video classification, built from a config.
//!
//! The layout of the parameters follows torchvision's `torchvision.models.video.MViT` exactly, so a
//! torchvision state dict (for example the Kinetics-400 `mvit_v2_s` checkpoint) loads by name:
//! `conv_proj.*`, `pos_encoding.class_token`, `blocks.{i}.{norm1,norm2,attn,mlp,project}.*`, `norm.*`,
//! `head.1.*`. Input is a video batch `(B, 3, T, H, W)`; tokens inside the model are `(B, 1 + T'H'W', C)`
//! with the class token at index 0 and patch tokens ordered t-major, then h, then w.
//!
//! The file reads top to bottom: configuration ([`MvitConfig`], presets, shape planning), building
//! blocks (pooling, relative positions, attention, block), then the model ([`Mvit`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::{Tensor, nn};

use crate::model::{Layout, VideoModel};

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// Errors from building or feeding an MViT: bad config files or values, or an input it cannot take.
#[derive(Debug, thiserror::Error)]
pub enum MvitError {
    /// A config file could not be read.
    #[error("cannot read MViT config {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A config file is not valid JSON or has a key of the wrong type.
    #[error("bad MViT config {path}: at `{key}`: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The JSON path of the offending key (`constructor.block_setting[2].stride_q`).
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A config value that cannot build a model (names the key and value).
    #[error("invalid MViT config: {0}")]
    Invalid(String),
    /// An input tensor the model cannot take (names the shape).
    #[error("MViT input {shape:?} rejected: {reason}")]
    Input {
        /// The input's shape.
        shape: Vec<i64>,
        /// Why it is rejected.
        reason: String,
    },
}

impl ethos_core::Classify for MvitError {
    /// True when the error comes from the user's file, config or input (every variant here).
    fn kind(&self) -> ethos_core::ErrorKind {
        ethos_core::ErrorKind::BadInput
    }
}

/// One multiscale block: torchvision's `MSBlockConfig`. Kernel and stride triples are `(T, H, W)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MvitBlockConfig {
    /// Attention heads; `head_dim = attention width / num_heads`.
    pub num_heads: i64,
    /// Channels entering the block.
    pub input_channels: i64,
    /// Channels leaving the block.
    pub output_channels: i64,
    /// Kernel of the depthwise Q pooling conv `(kT, kH, kW)`.
    pub kernel_q: [i64; 3],
    /// Kernel of the depthwise K/V pooling convs `(kT, kH, kW)`.
    pub kernel_kv: [i64; 3],
    /// Stride of Q pooling (the block's output token grid shrinks by it) `(sT, sH, sW)`.
    pub stride_q: [i64; 3],
    /// Stride of K/V pooling `(sT, sH, sW)`.
    pub stride_kv: [i64; 3],
}

fn default_dropout() -> f64 {
    0.5
}

fn default_norm_eps() -> f64 {
    1e-6
}

/// Architecture of an MViT: torchvision's `MViT(...)` constructor arguments (same key names) plus
/// the LayerNorm epsilon. Deserialises from the `constructor` object of a reference `case.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MvitConfig {
    /// Input frame size `(H, W)` in pixels the model is built for (sizes the rel-pos tables).
    pub spatial_size: [i64; 2],
    /// Input clip length in frames the model is built for (sizes the temporal rel-pos table).
    pub temporal_size: i64,
    /// The blocks, in order.
    pub block_setting: Vec<MvitBlockConfig>,
    /// MViTv2 pooling residual: add the pooled Q to the attention output.
    pub residual_pool: bool,
    /// Whether the pooling residual also covers the class token.
    pub residual_with_cls_embed: bool,
    /// Decomposed relative position embeddings (MViTv2); false = absolute embeddings (MViTv1).
    pub rel_pos_embed: bool,
    /// Project channels inside attention (MViTv2) rather than in the MLP (MViTv1).
    pub proj_after_attn: bool,
    /// Dropout probability before the classifier Linear (training only).
    #[serde(default = "default_dropout")]
    pub dropout: f64,
    /// Dropout after the attention projection and in the MLP (training only).
    #[serde(default)]
    pub attention_dropout: f64,
    /// Stochastic-depth probability of the last block; block i gets `p * i / (blocks - 1)`.
    #[serde(default)]
    pub stochastic_depth_prob: f64,
    /// Number of output classes.
    pub num_classes: i64,
    /// Patch-embedding Conv3d kernel `(kT, kH, kW)`.
    pub patch_embed_kernel: [i64; 3],
    /// Patch-embedding Conv3d stride `(sT, sH, sW)`.
    pub patch_embed_stride: [i64; 3],
    /// Patch-embedding Conv3d padding `(pT, pH, pW)`.
    pub patch_embed_padding: [i64; 3],
    /// Epsilon of every LayerNorm.
    #[serde(default = "default_norm_eps")]
    pub norm_eps: f64,
}

fn json_error(path: &Path, err: serde_path_to_error::Error<serde_json::Error>) -> MvitError {
    MvitError::Parse {
        path: path.to_path_buf(),
        key: err.path().to_string(),
        message: err.inner().to_string(),
    }
}

impl MvitConfig {
    /// Reads a config from JSON: either a reference `case.json` (its `constructor` object, with the
    /// LayerNorm epsilon from `derived.layernorm_eps` when present) or a bare config object.
    pub fn from_case_json(path: &Path) -> Result<Self, MvitError> {
        let text = std::fs::read_to_string(path).map_err(|source| MvitError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut de = serde_json::Deserializer::from_str(&text);
        let value: serde_json::Value =
            serde_path_to_error::deserialize(&mut de).map_err(|e| json_error(path, e))?;
        let (mut object, prefix) = match value.get("constructor") {
            Some(c) => (c.clone(), "constructor."),
            None => (value.clone(), ""),
        };
        if let (Some(eps), Some(map)) = (
            value.pointer("/derived/layernorm_eps").cloned(),
            object.as_object_mut(),
        ) {
            map.entry("norm_eps").or_insert(eps);
        }
        let config: MvitConfig = serde_path_to_error::deserialize(object).map_err(|e| {
            let mut err = json_error(path, e);
            if let MvitError::Parse { key, .. } = &mut err {
                *key = format!("{prefix}{key}");
            }
            err
        })?;
        config.validate()?;
        Ok(config)
    }

    /// torchvision's `mvit_v2_s` (16 frames, 224 px, 16 blocks in stages of 1/2/11/2, widths
    /// 96/192/384/768), with `num_classes` outputs; 34,537,744 parameters with 400 classes.
    pub fn mvit_v2_s(num_classes: i64) -> Self {
        MvitConfig {
            spatial_size: [224, 224],
            temporal_size: 16,
            block_setting: staged_block_setting(96, 1, &[1, 2, 11, 2], 8),
            residual_pool: true,
            residual_with_cls_embed: false,
            rel_pos_embed: true,
            proj_after_attn: true,
            dropout: 0.5,
            attention_dropout: 0.0,
            stochastic_depth_prob: 0.2,
            num_classes,
            patch_embed_kernel: [3, 7, 7],
            patch_embed_stride: [2, 4, 4],
            patch_embed_padding: [1, 3, 3],
            norm_eps: 1e-6,
        }
    }

    /// A small MViTv2 that trains on a CPU: the `mvit_v2_s` design with 4 blocks (widths 16/32/64,
    /// heads 1/2/4) for 16-frame clips at 96x96 px.
    pub fn mvit_demo(num_classes: i64) -> Self {
        MvitConfig {
            spatial_size: [96, 96],
            temporal_size: 16,
            block_setting: staged_block_setting(16, 1, &[1, 2, 1], 4),
            stochastic_depth_prob: 0.1,
            ..Self::mvit_v2_s(num_classes)
        }
    }

    /// The preset called `name` (`mvit_v2_s`, `mvit_demo`), or `None`.
    pub fn preset(name: &str, num_classes: i64) -> Option<Self> {
        match name {
            "mvit_v2_s" => Some(Self::mvit_v2_s(num_classes)),
            "mvit_demo" => Some(Self::mvit_demo(num_classes)),
            _ => None,
        }
    }

    /// Names accepted by [`MvitConfig::preset`].
    pub const PRESETS: &'static [&'static str] = &["mvit_v2_s", "mvit_demo"];

    /// Checks every value that would otherwise fail deep inside libtorch, naming the key.
    pub fn validate(&self) -> Result<(), MvitError> {
        let bad = |msg: String| Err(MvitError::Invalid(msg));
        if self.block_setting.is_empty() {
            return bad("block_setting is empty".into());
        }
        if self.num_classes < 1 {
            return bad(format!("num_classes = {} (must be >= 1)", self.num_classes));
        }
        if self.temporal_size < 1 || self.spatial_size.iter().any(|&s| s < 1) {
            return bad(format!(
                "temporal_size = {}, spatial_size = {:?} (must be >= 1)",
                self.temporal_size, self.spatial_size
            ));
        }
        for (name, p) in [
            ("dropout", self.dropout),
            ("attention_dropout", self.attention_dropout),
        ]
        .into_iter()
        .chain([("stochastic_depth_prob", self.stochastic_depth_prob)])
        {
            if !(0.0..=1.0).contains(&p) {
                return bad(format!("{name} = {p} (must be in [0, 1])"));
            }
        }
        if self.norm_eps.is_nan() || self.norm_eps <= 0.0 {
            return bad(format!("norm_eps = {} (must be > 0)", self.norm_eps));
        }
        let positive = |name: &str, v: &[i64]| -> Result<(), MvitError> {
            if v.iter().any(|&x| x < 1) {
                return Err(MvitError::Invalid(format!(
                    "{name} = {v:?} (every entry must be >= 1)"
                )));
            }
            Ok(())
        };
        positive("patch_embed_kernel", &self.patch_embed_kernel)?;
        positive("patch_embed_stride", &self.patch_embed_stride)?;
        if self.patch_embed_padding.iter().any(|&p| p < 0) {
            return bad(format!(
                "patch_embed_padding = {:?} (must be >= 0)",
                self.patch_embed_padding
            ));
        }
        let mut channels = self.block_setting[0].input_channels;
        for (i, b) in self.block_setting.iter().enumerate() {
            let key = |k: &str| format!("block_setting[{i}].{k}");
            positive(&key("kernel_q"), &b.kernel_q)?;
            positive(&key("kernel_kv"), &b.kernel_kv)?;
            positive(&key("stride_q"), &b.stride_q)?;
            positive(&key("stride_kv"), &b.stride_kv)?;
            if b.input_channels < 1 || b.output_channels < 1 || b.num_heads < 1 {
                return bad(format!(
                    "{}: num_heads {}, input_channels {}, output_channels {} (must be >= 1)",
                    key(""),
                    b.num_heads,
                    b.input_channels,
                    b.output_channels
                ));
            }
            if b.input_channels != channels {
                return bad(format!(
                    "{} = {} but the previous block outputs {channels} channels",
                    key("input_channels"),
                    b.input_channels
                ));
            }
            let attn_dim = if self.proj_after_attn {
                b.output_channels
            } else {
                b.input_channels
            };
            if attn_dim % b.num_heads != 0 {
                return bad(format!(
                    "{}: attention width {attn_dim} is not divisible by num_heads {}",
                    key(""),
                    b.num_heads
                ));
            }
            channels = b.output_channels;
        }
        Ok(())
    }

    /// The token grid `(T', H', W')` torchvision assumes after the patch embedding
    /// (`size // stride`, from the constructor sizes; sizes the rel-pos tables).
    pub fn nominal_patch_grid(&self) -> [i64; 3] {
        let s = self.patch_embed_stride;
        [
            self.temporal_size / s[0],
            self.spatial_size[0] / s[1],
            self.spatial_size[1] / s[2],
        ]
    }

    /// The patch grid the conv actually produces for a `(T, H, W)` input.
    pub fn patch_grid_for(&self, thw: [i64; 3]) -> [i64; 3] {
        let (k, s, p) = (
            self.patch_embed_kernel,
            self.patch_embed_stride,
            self.patch_embed_padding,
        );
        std::array::from_fn(|d| conv_out(thw[d], k[d], s[d], p[d]))
    }

    /// Token grids and sizes of every block for an input of `(T, H, W)` frames/pixels.
    pub fn plan(&self, input_thw: [i64; 3]) -> Result<Vec<BlockPlan>, MvitError> {
        let mut thw = self.patch_grid_for(input_thw);
        if thw.iter().any(|&n| n < 1) {
            return Err(MvitError::Invalid(format!(
                "input (T, H, W) = {input_thw:?} is smaller than the patch embedding (kernel {:?}, padding {:?})",
                self.patch_embed_kernel, self.patch_embed_padding
            )));
        }
        let mut plans = Vec::with_capacity(self.block_setting.len());
        for (i, b) in self.block_setting.iter().enumerate() {
            let attn_dim = if self.proj_after_attn {
                b.output_channels
            } else {
                b.input_channels
            };
            let pool_q = has_pool(&b.kernel_q, &b.stride_q);
            let pool_kv = has_pool(&b.kernel_kv, &b.stride_kv);
            let pooled = |k: [i64; 3], s: [i64; 3]| -> [i64; 3] {
                std::array::from_fn(|d| conv_out(thw[d], k[d], s[d], k[d] / 2))
            };
            let thw_q = if pool_q {
                pooled(b.kernel_q, b.stride_q)
            } else {
                thw
            };
            let thw_kv = if pool_kv {
                pooled(b.kernel_kv, b.stride_kv)
            } else {
                thw
            };
            if b.stride_q.iter().product::<i64>() > 1 {
                let skip: [i64; 3] = std::array::from_fn(|d| {
                    let k = skip_kernel(b.stride_q[d]);
                    conv_out(thw[d], k, b.stride_q[d], k / 2)
                });
                if skip != thw_q {
                    return Err(MvitError::Invalid(format!(
                        "block {i}: pooled Q grid {thw_q:?} differs from the max-pool skip grid {skip:?} \
                         (kernel_q {:?}, stride_q {:?}, input grid {thw:?})",
                        b.kernel_q, b.stride_q
                    )));
                }
            }
            if thw_q.iter().chain(&thw_kv).any(|&n| n < 1) {
                return Err(MvitError::Invalid(format!(
                    "block {i}: token grid {thw:?} too small for its pooling (q {thw_q:?}, kv {thw_kv:?})"
                )));
            }
            plans.push(BlockPlan {
                index: i,
                thw_in: thw,
                thw_q,
                thw_kv,
                channels_in: b.input_channels,
                channels_out: b.output_channels,
                attn_dim,
                num_heads: b.num_heads,
            });
            thw = thw_q;
        }
        Ok(plans)
    }

    /// Per-sample multiply-accumulate count x2 (FLOPs) of the convolutions, matmuls and linears for
    /// an input of `(T, H, W)`: `(patch embedding, per block, head)`. Norms, softmax, GELU are not counted.
    pub fn flops(&self, input_thw: [i64; 3]) -> Result<(f64, Vec<f64>, f64), MvitError> {
        let plans = self.plan(input_thw)?;
        let grid = self.patch_grid_for(input_thw);
        let c0 = self.block_setting[0].input_channels as f64;
        let k: f64 = self.patch_embed_kernel.iter().product::<i64>() as f64;
        let patch = 2.0 * prod(grid) * c0 * 3.0 * k;
        let mut blocks = Vec::with_capacity(plans.len());
        for (p, b) in plans.iter().zip(&self.block_setting) {
            let (cin, cout, dim) = (
                p.channels_in as f64,
                p.channels_out as f64,
                p.attn_dim as f64,
            );
            let n_in = 1.0 + prod(p.thw_in);
            let (lq, lk) = (prod(p.thw_q), prod(p.thw_kv));
            let (nq, nk) = (1.0 + lq, 1.0 + lk);
            let mut f = 2.0 * n_in * cin * 3.0 * dim; // qkv
            if has_pool(&b.kernel_q, &b.stride_q) {
                f += 2.0 * lq * dim * b.kernel_q.iter().product::<i64>() as f64;
            }
            if has_pool(&b.kernel_kv, &b.stride_kv) {
                f += 2.0 * 2.0 * lk * dim * b.kernel_kv.iter().product::<i64>() as f64;
            }
            f += 2.0 * 2.0 * nq * nk * dim; // q k^T and attn v over all heads
            if self.rel_pos_embed {
                let head_dim = dim / p.num_heads as f64;
                let ksum = (p.thw_kv[0] + p.thw_kv[1] + p.thw_kv[2]) as f64;
                f += 2.0 * lq * p.num_heads as f64 * head_dim * ksum;
            }
            f += 2.0 * nq * dim * dim; // attn projection
            if cin != cout {
                f += if self.proj_after_attn {
                    2.0 * n_in * cin * cout
                } else {
                    2.0 * nq * dim * cout
                };
            }
            f += 2.0 * nq * dim * 4.0 * dim + 2.0 * nq * 4.0 * dim * cout; // mlp
            blocks.push(f);
        }
        let c_last = self.block_setting.last().map_or(0, |b| b.output_channels) as f64;
        let head = 2.0 * c_last * self.num_classes as f64;
        Ok((patch, blocks, head))
    }
}

/// Block settings of an MViTv2 laid out in stages the way `mvit_v2_s` is: stage s has width
/// `embed_dim * 2^s` and `base_heads * 2^s` heads; the first block of every stage after the first
/// changes the width and pools Q by (1, 2, 2); K/V pooling starts at `(1, kv, kv)` and is halved
/// (down to 1) whenever Q is pooled. All kernels are 3x3x3.
pub fn staged_block_setting(
    embed_dim: i64,
    base_heads: i64,
    depths: &[usize],
    initial_kv_stride: i64,
) -> Vec<MvitBlockConfig> {
    let mut blocks = Vec::new();
    let mut channels = embed_dim;
    let mut kv = initial_kv_stride;
    for (stage, &depth) in depths.iter().enumerate() {
        let width = embed_dim << stage;
        let heads = base_heads << stage;
        for j in 0..depth {
            let first = j == 0 && stage > 0;
            let stride_q = if first { [1, 2, 2] } else { [1, 1, 1] };
            if first {
                kv = (kv / 2).max(1);
            }
            blocks.push(MvitBlockConfig {
                num_heads: heads,
                input_channels: channels,
                output_channels: width,
                kernel_q: [3, 3, 3],
                kernel_kv: [3, 3, 3],
                stride_q,
                stride_kv: [1, kv, kv],
            });
            channels = width;
        }
    }
    blocks
}

/// Shapes of one block for a given input (see [`MvitConfig::plan`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BlockPlan {
    /// Block index.
    pub index: usize,
    /// Token grid `(T, H, W)` entering the block.
    pub thw_in: [i64; 3],
    /// Token grid after Q pooling (leaving the block).
    pub thw_q: [i64; 3],
    /// Token grid of keys and values after K/V pooling.
    pub thw_kv: [i64; 3],
    /// Channels entering the block.
    pub channels_in: i64,
    /// Channels leaving the block.
    pub channels_out: i64,
    /// Width of q/k/v and of the MLP input.
    pub attn_dim: i64,
    /// Attention heads.
    pub num_heads: i64,
}

fn conv_out(n: i64, k: i64, s: i64, p: i64) -> i64 {
    (n + 2 * p - k).div_euclid(s) + 1
}

fn skip_kernel(stride: i64) -> i64 {
    if stride > 1 { stride + 1 } else { stride }
}

fn has_pool(kernel: &[i64; 3], stride: &[i64; 3]) -> bool {
    kernel.iter().product::<i64>() > 1 || stride.iter().product::<i64>() > 1
}

fn prod(thw: [i64; 3]) -> f64 {
    (thw[0] * thw[1] * thw[2]) as f64
}

// ---------------------------------------------------------------------------------------------
// Building blocks
// ---------------------------------------------------------------------------------------------

/// How attention scores are computed; both give the same numbers within float rounding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttentionKernel {
    /// libtorch's fused `scaled_dot_product_attention`, the rel-pos terms passed as an additive mask.
    Fused,
    /// `softmax(q k^T * scale + rel) v` with explicit matmuls.
    Explicit,
}

static DEFAULT_KERNEL: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Sets the attention kernel of MViTs built after this call (process-wide; benchmarks use it).
pub fn set_default_attention_kernel(kernel: AttentionKernel) {
    let v = match kernel {
        AttentionKernel::Explicit => 0,
        AttentionKernel::Fused => 1,
    };
    DEFAULT_KERNEL.store(v, std::sync::atomic::Ordering::Relaxed);
}

fn default_attention_kernel() -> AttentionKernel {
    match DEFAULT_KERNEL.load(std::sync::atomic::Ordering::Relaxed) {
        1 => AttentionKernel::Fused,
        _ => AttentionKernel::Explicit,
    }
}

/// `torch.nn.Linear` with PyTorch's `weight` (out, in) / `bias` names.
#[derive(Debug)]
struct Linear {
    weight: Tensor,
    bias: Tensor,
}

impl Linear {
    /// torchvision's MViT init: weight trunc-normal(std 0.02), bias 0.
    fn new(vs: nn::Path, input: i64, output: i64) -> Self {
        let weight = vs.var(
            "weight",
            &[output, input],
            nn::Init::Randn {
                mean: 0.0,
                stdev: 0.02,
            },
        );
        let bias = vs.var("bias", &[output], nn::Init::Const(0.0));
        Linear { weight, bias }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        x.linear(&self.weight, Some(&self.bias))
    }
}

/// `torch.nn.LayerNorm` over the last dimension.
#[derive(Debug)]
struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    dim: i64,
    eps: f64,
}

impl LayerNorm {
    fn new(vs: nn::Path, dim: i64, eps: f64) -> Self {
        let weight = vs.var("weight", &[dim], nn::Init::Const(1.0));
        let bias = vs.var("bias", &[dim], nn::Init::Const(0.0));
        LayerNorm {
            weight,
            bias,
            dim,
            eps,
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        x.layer_norm(
            [self.dim],
            Some(&self.weight),
            Some(&self.bias),
            self.eps,
            true,
        )
    }
}

/// PyTorch's default conv init (kaiming-uniform with a = sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
fn conv_init(fan_in: i64) -> nn::Init {
    let bound = 1.0 / (fan_in as f64).sqrt();
    nn::Init::Uniform {
        lo: -bound,
        up: bound,
    }
}

/// Token pooling of torchvision's `Pool`: the class token (index 0 of the token axis) is split off,
/// the other tokens are pooled on their `(T, H, W)` grid, the class token is put back in front, then
/// an optional LayerNorm runs over every token.
#[derive(Debug)]
enum PoolOp {
    /// Depthwise Conv3d without bias (`pool.weight` is `(C, 1, kT, kH, kW)`).
    Conv {
        weight: Tensor,
        stride: [i64; 3],
        padding: [i64; 3],
    },
    /// MaxPool3d (the residual skip of a Q-pooling block).
    Max {
        kernel: [i64; 3],
        stride: [i64; 3],
        padding: [i64; 3],
    },
}

#[derive(Debug)]
struct Pool {
    op: PoolOp,
    norm: Option<LayerNorm>,
}

impl Pool {
    /// Q/K/V pooling: `pool.weight` (depthwise conv, padding kernel // 2) and `norm_act.0` (LayerNorm).
    fn conv(vs: nn::Path, dim: i64, kernel: [i64; 3], stride: [i64; 3], eps: f64) -> Self {
        let fan_in = kernel.iter().product::<i64>();
        let weight = vs.sub("pool").var(
            "weight",
            &[dim, 1, kernel[0], kernel[1], kernel[2]],
            conv_init(fan_in),
        );
        let padding = kernel.map(|k| k / 2);
        let norm = Some(LayerNorm::new(vs.sub("norm_act").sub("0"), dim, eps));
        Pool {
            op: PoolOp::Conv {
                weight,
                stride,
                padding,
            },
            norm,
        }
    }

    /// The max-pool skip of a block with Q stride: kernel stride+1 where stride > 1, no norm.
    fn max_skip(stride: [i64; 3]) -> Self {
        let kernel = stride.map(skip_kernel);
        let padding = kernel.map(|k| k / 2);
        Pool {
            op: PoolOp::Max {
                kernel,
                stride,
                padding,
            },
            norm: None,
        }
    }

    /// `x` is `(B, heads, 1 + L, C)` (or `(B, 1 + L, C)`), `thw` the grid of its L tokens.
    fn forward(&self, x: &Tensor, thw: [i64; 3]) -> (Tensor, [i64; 3]) {
        let three_d = x.dim() == 3;
        let x4 = if three_d {
            x.unsqueeze(1)
        } else {
            x.shallow_clone()
        };
        let (b, n, l1, c) = x4.size4().expect("4-d tokens by construction");
        let cls = x4.narrow(2, 0, 1);
        let grid =
            x4.narrow(2, 1, l1 - 1)
                .transpose(2, 3)
                .reshape([b * n, c, thw[0], thw[1], thw[2]]);
        let pooled = match &self.op {
            PoolOp::Conv {
                weight,
                stride,
                padding,
            } => grid.conv3d::<Tensor>(weight, None, stride, padding, [1, 1, 1], c),
            PoolOp::Max {
                kernel,
                stride,
                padding,
            } => grid.max_pool3d(kernel, stride, padding, [1, 1, 1], false),
        };
        let size = pooled.size();
        let new_thw = [size[2], size[3], size[4]];
        let tokens = pooled.reshape([b, n, c, -1]).transpose(2, 3);
        let mut out = Tensor::cat(&[cls, tokens], 2);
        if let Some(norm) = &self.norm {
            out = norm.forward(&out);
        }
        if three_d {
            out = out.squeeze_dim(1);
        }
        (out, new_thw)
    }
}

/// Resizes a `(L, C)` rel-pos table to `(len, C)` by linear interpolation along L
/// (`F.interpolate(mode="linear", align_corners=False)`), as torchvision does when the run-time grid
/// needs a different length than the table was built for.
fn resize_table(table: &Tensor, len: i64) -> Tensor {
    if table.size()[0] == len {
        return table.shallow_clone();
    }
    table
        .permute([1, 0])
        .unsqueeze(0)
        .upsample_linear1d([len], false, None)
        .squeeze_dim(0)
        .permute([1, 0])
}

/// Rows of a rel-pos table for every (query, key) position pair along one axis: `(q, k, C)`.
/// The distance arithmetic reproduces torchvision's float32 computation and truncation exactly.
fn rel_pos_rows(table: &Tensor, q: i64, k: i64) -> Tensor {
    let len = 2 * q.max(k) - 1;
    let table = resize_table(table, len);
    let q_ratio = ((k as f64) / (q as f64)).max(1.0) as f32;
    let k_ratio = ((q as f64) / (k as f64)).max(1.0) as f32;
    let offset = (1.0 - k as f64) as f32;
    let mut idx = Vec::with_capacity((q * k) as usize);
    for i in 0..q {
        for j in 0..k {
            let d = (i as f32) * q_ratio - ((j as f32) + offset) * k_ratio;
            idx.push(d as i64);
        }
    }
    let idx = Tensor::from_slice(&idx).to_device(table.device());
    table.index_select(0, &idx).reshape([q, k, -1])
}

/// Decomposed relative-position bias `(B, heads, Lq, Lk)` from the pooled (unscaled) queries
/// `q_tokens` `(B, heads, Lq, C)` without the class token.
fn rel_pos_bias(
    q_tokens: &Tensor,
    q_thw: [i64; 3],
    k_thw: [i64; 3],
    tables: &RelPosTables,
) -> Tensor {
    let (b, heads, _, c) = q_tokens.size4().expect("4-d q by construction");
    let rt = rel_pos_rows(&tables.t, q_thw[0], k_thw[0]);
    let rh = rel_pos_rows(&tables.h, q_thw[1], k_thw[1]);
    let rw = rel_pos_rows(&tables.w, q_thw[2], k_thw[2]);
    let r_q = q_tokens.reshape([b, heads, q_thw[0], q_thw[1], q_thw[2], c]);
    let rel_h = Tensor::einsum("bythwc,hkc->bythwk", &[&r_q, &rh], None::<i64>);
    let rel_w = Tensor::einsum("bythwc,wkc->bythwk", &[&r_q, &rw], None::<i64>);
    let rel_t = Tensor::einsum("bythwc,tkc->bythwk", &[&r_q, &rt], None::<i64>);
    let lq = q_thw[0] * q_thw[1] * q_thw[2];
    let lk = k_thw[0] * k_thw[1] * k_thw[2];
    // (.., kt, kh, kw) broadcast sum, key index = kt*kh*kw ordering like the tokens.
    let sum = rel_t.unsqueeze(-1).unsqueeze(-1)
        + rel_h.unsqueeze(-2).unsqueeze(-1)
        + rel_w.unsqueeze(-2).unsqueeze(-2);
    sum.reshape([b, heads, lq, lk])
}

/// The three rel-pos tables of one attention layer: `(2*max(q,k)-1, head_dim)` each.
#[derive(Debug)]
struct RelPosTables {
    h: Tensor,
    w: Tensor,
    t: Tensor,
}

/// Stochastic depth in torchvision's "row" mode: drops whole samples with probability `p` in training.
fn drop_path(x: &Tensor, p: f64, train: bool) -> Tensor {
    if !train || p == 0.0 {
        return x.shallow_clone();
    }
    let survival = 1.0 - p;
    let mut shape = vec![x.size()[0]];
    shape.resize(x.dim(), 1);
    let mut noise = Tensor::empty(shape.as_slice(), (x.kind(), x.device()));
    let _ = noise.bernoulli_float_(survival);
    if survival > 0.0 {
        noise /= survival;
    }
    x * noise
}

/// torchvision's `MultiscaleAttention`: pooled Q/K/V attention with decomposed rel-pos bias and the
/// pooling residual.
#[derive(Debug)]
struct MultiscaleAttention {
    qkv: Linear,
    project: Linear,
    pool_q: Option<Pool>,
    pool_k: Option<Pool>,
    pool_v: Option<Pool>,
    rel_pos: Option<RelPosTables>,
    num_heads: i64,
    head_dim: i64,
    output_dim: i64,
    residual_pool: bool,
    residual_with_cls_embed: bool,
    dropout: f64,
}

impl MultiscaleAttention {
    fn new(
        vs: nn::Path,
        cfg: &MvitConfig,
        block: &MvitBlockConfig,
        nominal_thw: [i64; 3],
        output_dim: i64,
    ) -> Self {
        let head_dim = output_dim / block.num_heads;
        let eps = cfg.norm_eps;
        let pool_q = has_pool(&block.kernel_q, &block.stride_q).then(|| {
            Pool::conv(
                &vs / "pool_q",
                head_dim,
                block.kernel_q,
                block.stride_q,
                eps,
            )
        });
        let (pool_k, pool_v) = if has_pool(&block.kernel_kv, &block.stride_kv) {
            (
                Some(Pool::conv(
                    &vs / "pool_k",
                    head_dim,
                    block.kernel_kv,
                    block.stride_kv,
                    eps,
                )),
                Some(Pool::conv(
                    &vs / "pool_v",
                    head_dim,
                    block.kernel_kv,
                    block.stride_kv,
                    eps,
                )),
            )
        } else {
            (None, None)
        };
        // Table sizes follow torchvision's constructor bookkeeping: the larger nominal spatial side
        // divided by the H stride, even for non-square grids (the other axis is resized at run time).
        let rel_pos = cfg.rel_pos_embed.then(|| {
            let size = nominal_thw[1].max(nominal_thw[2]);
            let q_size = size / block.stride_q[1];
            let kv_size = size / block.stride_kv[1];
            let spatial = 2 * q_size.max(kv_size) - 1;
            let temporal = 2 * nominal_thw[0] - 1;
            let init = nn::Init::Randn {
                mean: 0.0,
                stdev: 0.02,
            };
            RelPosTables {
                h: vs.var("rel_pos_h", &[spatial, head_dim], init),
                w: vs.var("rel_pos_w", &[spatial, head_dim], init),
                t: vs.var("rel_pos_t", &[temporal, head_dim], init),
            }
        });
        MultiscaleAttention {
            qkv: Linear::new(&vs / "qkv", block.input_channels, 3 * output_dim),
            project: Linear::new(&vs / "project" / 0, output_dim, output_dim),
            pool_q,
            pool_k,
            pool_v,
            rel_pos,
            num_heads: block.num_heads,
            head_dim,
            output_dim,
            residual_pool: cfg.residual_pool,
            residual_with_cls_embed: cfg.residual_with_cls_embed,
            dropout: cfg.attention_dropout,
        }
    }

    fn forward(
        &self,
        x: &Tensor,
        thw: [i64; 3],
        train: bool,
        kernel: AttentionKernel,
        capture: &mut Capture<'_>,
    ) -> (Tensor, [i64; 3]) {
        let (b, n, _) = x.size3().expect("3-d tokens by construction");
        let qkv = self
            .qkv
            .forward(x)
            .reshape([b, n, 3, self.num_heads, self.head_dim])
            .permute([2, 0, 3, 1, 4]);
        let (mut q, mut k, mut v) = (qkv.get(0), qkv.get(1), qkv.get(2));
        let mut k_thw = thw;
        if let Some(pool) = &self.pool_k {
            (k, k_thw) = pool.forward(&k, thw);
            capture.put("attn.pool_k", &k);
        }
        if let Some(pool) = &self.pool_v {
            v = pool.forward(&v, thw).0;
            capture.put("attn.pool_v", &v);
        }
        let mut q_thw = thw;
        if let Some(pool) = &self.pool_q {
            (q, q_thw) = pool.forward(&q, thw);
            capture.put("attn.pool_q", &q);
        }
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let nq = q.size()[2];
        let bias = self.rel_pos.as_ref().map(|tables| {
            let rel = rel_pos_bias(&q.narrow(2, 1, nq - 1), q_thw, k_thw, tables);
            // The class token row and column get no rel-pos term.
            rel.constant_pad_nd([1, 0, 1, 0])
        });
        let mut out = match kernel {
            AttentionKernel::Fused => Tensor::scaled_dot_product_attention(
                &q,
                &k,
                &v,
                bias.as_ref(),
                0.0,
                false,
                scale,
                false,
            ),
            AttentionKernel::Explicit => {
                let mut attn = (&q * scale).matmul(&k.transpose(2, 3));
                if let Some(bias) = &bias {
                    attn += bias;
                }
                attn.softmax(-1, attn.kind()).matmul(&v)
            }
        };
        if self.residual_pool {
            out = if self.residual_with_cls_embed {
                out + &q
            } else {
                let tail = out.narrow(2, 1, nq - 1) + q.narrow(2, 1, nq - 1);
                Tensor::cat(&[out.narrow(2, 0, 1), tail], 2)
            };
        }
        let out = out.transpose(1, 2).reshape([b, -1, self.output_dim]);
        let out = self.project.forward(&out).dropout(self.dropout, train);
        (out, q_thw)
    }
}

/// torchvision's `MultiscaleBlock`: norm -> pooled attention (+ projected, max-pooled residual),
/// norm -> MLP (Linear, exact GELU, Linear) + residual; stochastic depth on both branches.
#[derive(Debug)]
struct MultiscaleBlock {
    norm1: LayerNorm,
    norm2: LayerNorm,
    attn: MultiscaleAttention,
    mlp_fc1: Linear,
    mlp_fc2: Linear,
    project: Option<Linear>,
    pool_skip: Option<Pool>,
    proj_after_attn: bool,
    drop_path: f64,
    dropout: f64,
}

impl MultiscaleBlock {
    fn new(
        vs: nn::Path,
        cfg: &MvitConfig,
        block: &MvitBlockConfig,
        nominal_thw: [i64; 3],
        drop_path: f64,
    ) -> Self {
        let attn_dim = if cfg.proj_after_attn {
            block.output_channels
        } else {
            block.input_channels
        };
        let pool_skip =
            (block.stride_q.iter().product::<i64>() > 1).then(|| Pool::max_skip(block.stride_q));
        let project = (block.input_channels != block.output_channels)
            .then(|| Linear::new(&vs / "project", block.input_channels, block.output_channels));
        MultiscaleBlock {
            norm1: LayerNorm::new(&vs / "norm1", block.input_channels, cfg.norm_eps),
            norm2: LayerNorm::new(&vs / "norm2", attn_dim, cfg.norm_eps),
            attn: MultiscaleAttention::new(&vs / "attn", cfg, block, nominal_thw, attn_dim),
            mlp_fc1: Linear::new(&vs / "mlp" / 0, attn_dim, 4 * attn_dim),
            mlp_fc2: Linear::new(&vs / "mlp" / 3, 4 * attn_dim, block.output_channels),
            project,
            pool_skip,
            proj_after_attn: cfg.proj_after_attn,
            drop_path,
            dropout: cfg.attention_dropout,
        }
    }

    fn forward(
        &self,
        x: &Tensor,
        thw: [i64; 3],
        train: bool,
        kernel: AttentionKernel,
        capture: &mut Capture<'_>,
    ) -> (Tensor, [i64; 3]) {
        let x_norm1 = self.norm1.forward(x);
        let (x_attn, thw_new) = self.attn.forward(&x_norm1, thw, train, kernel, capture);
        capture.put("attn", &x_attn);
        let residual = match (&self.project, self.proj_after_attn) {
            (Some(project), true) => project.forward(&x_norm1),
            _ => x.shallow_clone(),
        };
        let skip = match &self.pool_skip {
            Some(pool) => pool.forward(&residual, thw).0,
            None => residual,
        };
        let x = skip + drop_path(&x_attn, self.drop_path, train);
        let x_norm2 = self.norm2.forward(&x);
        let x_proj = match (&self.project, self.proj_after_attn) {
            (Some(project), false) => project.forward(&x_norm2),
            _ => x,
        };
        let mlp = self
            .mlp_fc1
            .forward(&x_norm2)
            .gelu("none")
            .dropout(self.dropout, train);
        let mlp = self.mlp_fc2.forward(&mlp).dropout(self.dropout, train);
        (x_proj + drop_path(&mlp, self.drop_path, train), thw_new)
    }
}

/// Collects named intermediates when asked to (`forward_named`); a no-op otherwise.
struct Capture<'a> {
    out: Option<&'a mut Vec<(String, Tensor)>>,
    prefix: String,
}

impl Capture<'_> {
    fn put(&mut self, name: &str, t: &Tensor) {
        if let Some(out) = self.out.as_deref_mut() {
            let full = if self.prefix.is_empty() {
                name.to_string()
            } else {
                format!("{}.{name}", self.prefix)
            };
            out.push((full, t.shallow_clone()));
        }
    }
}

/// Absolute positional embeddings of MViTv1 (`rel_pos_embed = false`).
#[derive(Debug)]
struct AbsolutePositions {
    spatial: Tensor,
    temporal: Tensor,
    class: Tensor,
}

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

/// An MViT video classifier (torchvision layout). Input `(B, 3, T, H, W)` float, output logits
/// `(B, num_classes)`. Any input whose patch grid pools cleanly through the blocks runs; rel-pos
/// tables are resized when the grid differs from the constructor's.
#[derive(Debug)]
pub struct Mvit {
    config: MvitConfig,
    conv_proj_weight: Tensor,
    conv_proj_bias: Tensor,
    class_token: Tensor,
    abs_pos: Option<AbsolutePositions>,
    blocks: Vec<MultiscaleBlock>,
    norm: LayerNorm,
    head: Linear,
    kernel: AttentionKernel,
}

impl Mvit {
    /// Creates the parameters under `vs` (names as torchvision's state dict) with torchvision's
    /// initialisation. The config is validated first.
    pub fn new(vs: &nn::Path, config: &MvitConfig) -> Result<Self, MvitError> {
        config.validate()?;
        let nominal = config.nominal_patch_grid();
        if nominal.iter().any(|&n| n < 1) {
            return Err(MvitError::Invalid(format!(
                "temporal_size {} / spatial_size {:?} give an empty patch grid with stride {:?}",
                config.temporal_size, config.spatial_size, config.patch_embed_stride
            )));
        }
        let c0 = config.block_setting[0].input_channels;
        let k = config.patch_embed_kernel;
        let fan_in = 3 * k.iter().product::<i64>();
        let conv = vs / "conv_proj";
        let conv_proj_weight = conv.var("weight", &[c0, 3, k[0], k[1], k[2]], conv_init(fan_in));
        let conv_proj_bias = conv.var("bias", &[c0], conv_init(fan_in));
        let pe = vs / "pos_encoding";
        let init = nn::Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        };
        let class_token = pe.var("class_token", &[c0], init);
        let abs_pos = (!config.rel_pos_embed).then(|| AbsolutePositions {
            spatial: pe.var("spatial_pos", &[nominal[1] * nominal[2], c0], init),
            temporal: pe.var("temporal_pos", &[nominal[0], c0], init),
            class: pe.var("class_pos", &[c0], init),
        });
        let n = config.block_setting.len();
        let mut blocks = Vec::with_capacity(n);
        let mut thw = nominal;
        for (i, b) in config.block_setting.iter().enumerate() {
            let p = if n > 1 {
                config.stochastic_depth_prob * i as f64 / (n as f64 - 1.0)
            } else {
                0.0
            };
            blocks.push(MultiscaleBlock::new(vs / "blocks" / i, config, b, thw, p));
            thw = std::array::from_fn(|d| thw[d] / b.stride_q[d]);
        }
        let c_last = config.block_setting[n - 1].output_channels;
        Ok(Mvit {
            config: config.clone(),
            conv_proj_weight,
            conv_proj_bias,
            class_token,
            abs_pos,
            blocks,
            norm: LayerNorm::new(vs / "norm", c_last, config.norm_eps),
            head: Linear::new(vs / "head" / 1, c_last, config.num_classes),
            kernel: default_attention_kernel(),
        })
    }

    /// The config this model was built from.
    pub fn config(&self) -> &MvitConfig {
        &self.config
    }

    /// Chooses how attention is computed (default: [`set_default_attention_kernel`]'s, else explicit).
    pub fn set_attention_kernel(&mut self, kernel: AttentionKernel) {
        self.kernel = kernel;
    }

    /// Checks that an input of this shape runs: `(B, 3, T, H, W)` with a patch grid that pools
    /// cleanly through every block; with absolute positions the grid must equal the constructor's.
    pub fn check_input(&self, shape: &[i64]) -> Result<(), MvitError> {
        let reject = |reason: String| {
            Err(MvitError::Input {
                shape: shape.to_vec(),
                reason,
            })
        };
        if shape.len() != 5 {
            return reject("expected 5 dimensions (B, 3, T, H, W)".into());
        }
        if shape[0] < 1 || shape[1] != 3 {
            return reject("expected B >= 1 and 3 channels in dimension 1 (B, C, T, H, W)".into());
        }
        let thw = [shape[2], shape[3], shape[4]];
        if let Err(e) = self.config.plan(thw) {
            return reject(e.to_string());
        }
        let grid = self.config.patch_grid_for(thw);
        if self.abs_pos.is_some() && grid != self.config.nominal_patch_grid() {
            return reject(format!(
                "absolute position embeddings need the patch grid {:?}, this input gives {grid:?}",
                self.config.nominal_patch_grid()
            ));
        }
        Ok(())
    }

    fn forward_impl(
        &self,
        input: &Tensor,
        train: bool,
        out: Option<&mut Vec<(String, Tensor)>>,
    ) -> Tensor {
        let mut capture = Capture {
            out,
            prefix: String::new(),
        };
        let (mut x, mut thw) = self.embed(input, &mut capture);
        for (i, block) in self.blocks.iter().enumerate() {
            capture.prefix = format!("blocks.{i}");
            let (y, new_thw) = block.forward(&x, thw, train, self.kernel, &mut capture);
            capture.prefix.clear();
            capture.put(&format!("blocks.{i}"), &y);
            x = y;
            thw = new_thw;
        }
        self.classify(&x, train, &mut capture)
    }

    /// Patch embedding, class token and positions: `(B, 1 + T'H'W', C0)` tokens and their grid
    /// `(T', H', W')`.
    fn embed(&self, input: &Tensor, capture: &mut Capture<'_>) -> (Tensor, [i64; 3]) {
        let x = input.conv3d(
            &self.conv_proj_weight,
            Some(&self.conv_proj_bias),
            self.config.patch_embed_stride,
            self.config.patch_embed_padding,
            [1, 1, 1],
            1,
        );
        capture.put("conv_proj", &x);
        let size = x.size();
        let thw = [size[2], size[3], size[4]];
        let b = size[0];
        let c0 = size[1];
        let tokens = x.flatten(2, -1).transpose(1, 2);
        let cls = self.class_token.expand([b, c0], false).unsqueeze(1);
        let mut x = Tensor::cat(&[cls, tokens], 1);
        if let Some(pos) = &self.abs_pos {
            let hw = pos.spatial.size()[0];
            let t = pos.temporal.size()[0];
            let grid = pos.temporal.repeat_interleave_self_int(hw, 0, None)
                + pos
                    .spatial
                    .unsqueeze(0)
                    .expand([t, hw, c0], false)
                    .reshape([-1, c0]);
            let all = Tensor::cat(&[pos.class.unsqueeze(0), grid], 0).unsqueeze(0);
            x += all;
        }
        capture.put("patch_embed", &x);
        (x, thw)
    }

    /// Final norm, class token, dropout and the classifier: logits `(B, num_classes)`.
    fn classify(&self, x: &Tensor, train: bool, capture: &mut Capture<'_>) -> Tensor {
        let x = self.norm.forward(x);
        capture.put("norm", &x);
        let cls = x.select(1, 0).dropout(self.config.dropout, train);
        let logits = self.head.forward(&cls);
        capture.put("logits", &logits);
        logits
    }
}

impl VideoModel for Mvit {
    fn forward_t(&self, input: &Tensor, train: bool) -> Tensor {
        self.forward_impl(input, train, None)
    }

    fn forward_named(&self, input: &Tensor) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        tch::no_grad(|| {
            let _logits = self.forward_impl(input, false, Some(&mut out));
        });
        out
    }

    fn input_layout(&self) -> Layout {
        Layout::Bcthw
    }

    fn forward_backward(
        &self,
        input: &Tensor,
        train: bool,
        checkpointing: bool,
        loss_of: &mut dyn FnMut(&Tensor) -> Tensor,
    ) -> Tensor {
        let quiet = || Capture {
            out: None,
            prefix: String::new(),
        };
        let (x, thw) = self.embed(input, &mut quiet());
        let blocks: Vec<crate::checkpointing::Block<'_, [i64; 3]>> = self
            .blocks
            .iter()
            .map(|block| {
                Box::new(move |x: &Tensor, thw: &[i64; 3]| {
                    block.forward(x, *thw, train, self.kernel, &mut quiet())
                }) as crate::checkpointing::Block<'_, [i64; 3]>
            })
            .collect();
        crate::checkpointing::forward_backward(
            x,
            thw,
            &blocks,
            &mut |x, _| loss_of(&self.classify(x, train, &mut quiet())),
            train,
            checkpointing,
        )
    }

    fn supports_checkpointing(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn torchvision_v2_s_blocks() -> Vec<MvitBlockConfig> {
        let heads = [1, 2, 2, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 8, 8];
        let cin = [
            96, 96, 192, 192, 384, 384, 384, 384, 384, 384, 384, 384, 384, 384, 384, 768,
        ];
        let cout = [
            96, 192, 192, 384, 384, 384, 384, 384, 384, 384, 384, 384, 384, 384, 768, 768,
        ];
        let q2 = [1, 3, 14];
        let kv = [8, 4, 4, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1];
        (0..16)
            .map(|i| MvitBlockConfig {
                num_heads: heads[i],
                input_channels: cin[i],
                output_channels: cout[i],
                kernel_q: [3, 3, 3],
                kernel_kv: [3, 3, 3],
                stride_q: if q2.contains(&i) {
                    [1, 2, 2]
                } else {
                    [1, 1, 1]
                },
                stride_kv: [1, kv[i], kv[i]],
            })
            .collect()
    }

    #[test]
    fn staged_setting_reproduces_torchvision_v2_s_table() {
        assert_eq!(
            MvitConfig::mvit_v2_s(400).block_setting,
            torchvision_v2_s_blocks()
        );
    }

    #[test]
    fn rel_pos_distances_match_torchvision_formula() {
        // q 8 x k 2 (k pooled by 4): dist = i - (j - 1) * 4, table length 15.
        let table = Tensor::arange(15, (Kind::Float, Device::Cpu)).unsqueeze(1);
        let rows = rel_pos_rows(&table, 8, 2).squeeze_dim(-1);
        let got: Vec<f32> = Vec::try_from(rows.flatten(0, -1)).unwrap();
        let want: Vec<f32> = (0..8)
            .flat_map(|i| (0..2).map(move |j| (i - (j - 1) * 4) as f32))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn plan_tracks_token_grids_and_rejects_bad_pooling() {
        let cfg = MvitConfig::mvit_v2_s(400);
        let plan = cfg.plan([16, 224, 224]).unwrap();
        assert_eq!(plan[0].thw_in, [8, 56, 56]);
        assert_eq!(plan[0].thw_kv, [8, 7, 7]);
        assert_eq!(plan[15].thw_q, [8, 7, 7]);
        let mut odd = cfg.clone();
        // An even kernel with padding k // 2 pools 56 -> 29 while the max-pool skip gives 28.
        odd.block_setting[1].kernel_q = [3, 2, 2];
        assert!(matches!(
            odd.plan([16, 224, 224]),
            Err(MvitError::Invalid(_))
        ));
    }

    #[test]
    fn validate_names_the_bad_key() {
        let mut cfg = MvitConfig::mvit_demo(3);
        cfg.block_setting[2].input_channels = 7;
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("block_setting[2].input_channels"), "{err}");
    }

    #[test]
    fn case_json_errors_name_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("case.json");
        let mut v = serde_json::to_value(MvitConfig::mvit_demo(2)).unwrap();
        v["block_setting"][1]["stride_q"] = serde_json::json!([1, 2]);
        std::fs::write(&path, serde_json::json!({ "constructor": v }).to_string()).unwrap();
        let err = MvitConfig::from_case_json(&path).unwrap_err().to_string();
        assert!(
            err.contains("constructor.block_setting[1].stride_q"),
            "{err}"
        );
        assert!(err.contains("case.json"), "{err}");
    }

    #[test]
    fn check_input_rejects_wrong_channels_and_tiny_inputs() {
        let vs = nn::VarStore::new(Device::Cpu);
        let model = Mvit::new(&vs.root(), &MvitConfig::mvit_demo(2)).unwrap();
        assert!(model.check_input(&[1, 3, 16, 96, 96]).is_ok());
        assert!(model.check_input(&[1, 1, 16, 96, 96]).is_err());
        assert!(model.check_input(&[1, 3, 16, 96]).is_err());
        assert!(model.check_input(&[1, 3, 16, 0, 96]).is_err());
        assert!(model.check_input(&[1, 3, 1, 2, 2]).is_ok());
    }

    #[test]
    fn train_mode_runs_backward_and_eval_is_deterministic() {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let model = Mvit::new(&vs.root(), &MvitConfig::mvit_demo(3)).unwrap();
        let x = Tensor::randn([2, 3, 8, 48, 64], (Kind::Float, Device::Cpu));
        let y = model.forward_t(&x, true);
        assert_eq!(y.size(), [2, 3]);
        y.sum(Kind::Float).backward();
        let grad = model.class_token.grad();
        assert!(grad.defined() && grad.abs().sum(Kind::Float).double_value(&[]) > 0.0);
        let a = tch::no_grad(|| model.forward_t(&x, false));
        let b = tch::no_grad(|| model.forward_t(&x, false));
        assert!(a.equal(&b));
    }
}
