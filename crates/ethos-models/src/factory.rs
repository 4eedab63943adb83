//! The one model factory of ethos: architecture + preset or config file (+ head, freezing, weights)
//! → a model on a VarStore. Training, evaluation, inference, `ethos model forward|summary` and the
//! benchmarks all build models here.
//!
//! - [`build_model`]: the bare architecture for a source, with shape checks and a per-layer summary
//!   (`ethos model`, benchmarks).
//! - [`build_from_config`]: what a run's `model:` section describes: the head (`linear` or the FERAL
//!   head), dropout, drop path, partial freezing and `model.weights`, loaded by name with the new
//!   head left fresh.
//!
//! Adding an architecture: one arm in [`build_model`] and [`build_from_config`] (and
//! [`infer_num_classes`] if its classifier key is known).

use std::path::{Path, PathBuf};

use tch::{Tensor, nn};

use crate::config::{Arch, HeadKind, ModelConfig};
use crate::feral_head::{FeralHeadConfig, Vjepa2FeralModel};
use crate::model::VideoModel;
use crate::mvit::{Mvit, MvitConfig, MvitError};
use crate::r3d::{R3D_PRESETS, R3d18, R3dConfig};
use crate::vjepa2::{
    Vjepa2Config, Vjepa2Encoder, Vjepa2Error, Vjepa2ForVideoClassification, Vjepa2WeightLayout,
};
use crate::weights::LoadOptions;
use ethos_core::{Classify, ErrorKind};

/// Errors of model building: unknown names, bad configs, arch/source combinations that do not exist.
#[derive(Debug, thiserror::Error)]
pub enum FactoryError {
    /// The architecture name is not known.
    #[error("unknown architecture `{0}` (known: mvit, r3d_18, vjepa2)")]
    UnknownArch(String),
    /// The preset name is not known for this architecture.
    #[error("unknown {arch} preset `{preset}` (known: {known})")]
    UnknownPreset {
        /// Architecture.
        arch: String,
        /// The requested preset.
        preset: String,
        /// Known presets, comma-separated.
        known: String,
    },
    /// A request that this architecture cannot serve (names what and why).
    #[error("{0}")]
    Unsupported(String),
    /// An MViT config or input problem.
    #[error(transparent)]
    Mvit(#[from] MvitError),
    /// A V-JEPA 2 config, weights or input problem.
    #[error(transparent)]
    Vjepa2(#[from] Vjepa2Error),
    /// `model.weights` could not be read or loaded.
    #[error("model.weights {path}: {source}")]
    Weights {
        /// The weights file.
        path: PathBuf,
        /// What failed.
        source: crate::weights::WeightsError,
    },
}

impl Classify for FactoryError {
    /// The user's names, files or values caused every variant, but for failures inside the models.
    fn kind(&self) -> ErrorKind {
        match self {
            FactoryError::Mvit(e) => e.kind(),
            FactoryError::Vjepa2(e) => e.kind(),
            FactoryError::Weights { source, .. } => source.kind(),
            _ => ErrorKind::BadInput,
        }
    }
}

/// Where a model's architecture comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelSource {
    /// A built-in preset (`mvit_v2_s`, `mvit_demo`, ...).
    Preset(String),
    /// A config file (MViT: a reference `case.json` or a bare config JSON).
    ConfigFile(PathBuf),
}

/// One row of `ethos model summary`: a layer or block, its output shape for one sample, the
/// VarStore prefixes whose parameters it owns, and its FLOPs (2 x multiply-accumulates).
#[derive(Clone, Debug, serde::Serialize)]
pub struct LayerInfo {
    /// Layer name (reference naming: `conv_proj`, `blocks.3`, `head`).
    pub name: String,
    /// Output shape for batch 1.
    pub output_shape: Vec<i64>,
    /// Parameter-name prefixes of this layer (`blocks.3.`); the CLI sums the VarStore over them.
    pub param_prefixes: Vec<String>,
    /// Estimated FLOPs for batch 1 (convolutions, matmuls and linears only).
    pub flops: f64,
    /// Short human description (token grid, heads, pooling).
    pub detail: String,
}

type InputCheck = Box<dyn Fn(&[i64]) -> Result<(), FactoryError> + Send>;
type Summarize = Box<dyn Fn(&[i64]) -> Result<Vec<LayerInfo>, FactoryError> + Send>;

/// A model built by [`build_model`] plus what the CLI needs around it.
pub struct BuiltModel {
    /// The model (parameters live in the VarStore passed to `build_model`).
    pub model: Box<dyn VideoModel>,
    /// The input shape the model is built for, batch 1, in its layout.
    pub default_input: Vec<i64>,
    /// Checks an input shape before running, with an error that names the shape.
    pub check_input: InputCheck,
    /// Per-layer shapes and FLOPs for an input shape.
    pub summarize: Summarize,
}

/// Parses an architecture name (`mvit`, `r3d_18`, `vjepa2`).
pub fn parse_arch(name: &str) -> Result<Arch, FactoryError> {
    serde_json::from_value(serde_json::Value::String(name.to_string()))
        .map_err(|_| FactoryError::UnknownArch(name.to_string()))
}

/// The class count stored in a checkpoint's classifier, when the architecture's key is known.
pub fn infer_num_classes(arch: Arch, tensors: &[(String, Tensor)]) -> Option<i64> {
    let key = match arch {
        Arch::Mvit => "head.1.weight",
        Arch::Vjepa2 => "classifier.weight",
        Arch::R3d18 => "fc.weight",
    };
    tensors
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, t)| t.size()[0])
}

/// Builds `arch` from a preset or config file under `vs`, with `num_classes` outputs when given
/// (else the preset's default or the config file's value).
pub fn build_model(
    arch: Arch,
    source: &ModelSource,
    num_classes: Option<i64>,
    vs: &nn::Path,
) -> Result<BuiltModel, FactoryError> {
    match arch {
        Arch::Mvit => build_mvit(source, num_classes, vs),
        Arch::Vjepa2 => build_vjepa2(source, num_classes, vs, true),
        Arch::R3d18 => build_r3d(source, num_classes, vs),
    }
}

/// Like [`build_model`], for loading `tensors` into the result: also returns the [`LoadOptions`] that
/// map the checkpoint's key names onto the model's. V-JEPA 2 builds `VJEPA2ForVideoClassification` when
/// the weights hold the pooler and classifier, else the encoder alone (whose `forward_t` gives features
/// `(B, N, D)`, not logits); a bare `VJEPA2Model` checkpoint's `encoder.*` keys are renamed and the
/// predictor is skipped.
pub fn build_model_for_weights(
    arch: Arch,
    source: &ModelSource,
    num_classes: Option<i64>,
    vs: &nn::Path,
    tensors: &[(String, Tensor)],
) -> Result<(BuiltModel, LoadOptions), FactoryError> {
    match arch {
        Arch::Vjepa2 => {
            let keys: Vec<&str> = tensors.iter().map(|(k, _)| k.as_str()).collect();
            let layout = Vjepa2WeightLayout::detect(&keys);
            let built = build_vjepa2(source, num_classes, vs, layout.has_classifier)?;
            let opts = LoadOptions {
                rename: layout.rename,
                skip_prefixes: layout.skip_prefixes,
                ..LoadOptions::default()
            };
            Ok((built, opts))
        }
        _ => Ok((
            build_model(arch, source, num_classes, vs)?,
            LoadOptions::default(),
        )),
    }
}

/// V-JEPA 2 presets: `vjepa2_vitl` is transformers' default config (ViT-L/16, 256 px, 64 frames).
pub const VJEPA2_PRESETS: [&str; 1] = ["vjepa2_vitl"];

/// Loads a V-JEPA 2 config from a Hugging Face `config.json` (or a folder holding one) or a preset,
/// overriding the class count.
pub fn vjepa2_config(
    source: &ModelSource,
    num_classes: Option<i64>,
) -> Result<Vjepa2Config, FactoryError> {
    let mut config = match source {
        ModelSource::Preset(name) if name == "vjepa2_vitl" => Vjepa2Config::default(),
        ModelSource::Preset(name) => {
            return Err(FactoryError::UnknownPreset {
                arch: "vjepa2".into(),
                preset: name.clone(),
                known: VJEPA2_PRESETS.join(", "),
            });
        }
        ModelSource::ConfigFile(path) => Vjepa2Config::from_file(path)?,
    };
    if let Some(k) = num_classes {
        config.num_labels = Some(k);
        config.id2label = None;
    }
    config.validate("model")?;
    Ok(config)
}

fn build_vjepa2(
    source: &ModelSource,
    num_classes: Option<i64>,
    vs: &nn::Path,
    with_head: bool,
) -> Result<BuiltModel, FactoryError> {
    let config = vjepa2_config(source, num_classes)?;
    let model: Box<dyn VideoModel> = if with_head {
        Box::new(Vjepa2ForVideoClassification::new(vs, &config)?)
    } else {
        Box::new(Vjepa2Encoder::new(&(vs / "vjepa2" / "encoder"), &config)?)
    };
    let c = &config;
    let default_input = vec![1, c.frames_per_clip, c.in_chans, c.crop_size, c.crop_size];
    let check_config = config.clone();
    let check_input: InputCheck =
        Box::new(move |shape: &[i64]| Ok(check_config.check_input_shape(shape)?));
    let summary_config = config.clone();
    let summarize: Summarize =
        Box::new(move |shape: &[i64]| vjepa2_summary(&summary_config, shape, with_head));
    Ok(BuiltModel {
        model,
        default_input,
        check_input,
        summarize,
    })
}

fn vjepa2_summary(
    c: &Vjepa2Config,
    shape: &[i64],
    with_head: bool,
) -> Result<Vec<LayerInfo>, FactoryError> {
    c.check_input_shape(shape)?;
    let [t, h, w] = c.token_grid(shape[1], shape[3], shape[4]);
    let (n, d, m) = (
        (t * h * w) as f64,
        c.hidden_size as f64,
        c.mlp_hidden() as f64,
    );
    let kernel = (c.in_chans * c.tubelet_size * c.patch_size * c.patch_size) as f64;
    let tokens = t * h * w;
    let enc = "vjepa2.encoder";
    let mut rows = vec![LayerInfo {
        name: "encoder.embeddings".into(),
        output_shape: vec![1, tokens, c.hidden_size],
        param_prefixes: vec![format!("{enc}.embeddings.")],
        flops: 2.0 * n * d * kernel,
        detail: format!(
            "Conv3d {}->{} k=s=({}, {}, {}), token grid [{t}, {h}, {w}]",
            c.in_chans, c.hidden_size, c.tubelet_size, c.patch_size, c.patch_size
        ),
    }];
    let block = 2.0 * (4.0 * n * d * d + 2.0 * n * n * d + 2.0 * n * d * m);
    for i in 0..c.num_hidden_layers {
        rows.push(LayerInfo {
            name: format!("encoder.layer.{i}"),
            output_shape: vec![1, tokens, c.hidden_size],
            param_prefixes: vec![format!("{enc}.layer.{i}.")],
            flops: block,
            detail: format!(
                "{} heads, 3D RoPE, MLP {}",
                c.num_attention_heads,
                c.mlp_hidden()
            ),
        });
    }
    rows.push(LayerInfo {
        name: "encoder.layernorm".into(),
        output_shape: vec![1, tokens, c.hidden_size],
        param_prefixes: vec![format!("{enc}.layernorm.")],
        flops: 0.0,
        detail: "LayerNorm".into(),
    });
    if with_head {
        let pool_block = 2.0 * (4.0 * n * d * d + 2.0 * n * n * d + 2.0 * n * d * 4.0 * d);
        let cross = 2.0 * (d * d + 2.0 * n * d * d + 2.0 * n * d + 2.0 * d * 4.0 * d);
        rows.push(LayerInfo {
            name: "pooler".into(),
            output_shape: vec![1, c.hidden_size],
            param_prefixes: vec!["pooler.".into()],
            flops: c.num_pooler_layers as f64 * pool_block + cross,
            detail: format!(
                "{} self-attention layers + 1-query cross-attention",
                c.num_pooler_layers
            ),
        });
        rows.push(LayerInfo {
            name: "classifier".into(),
            output_shape: vec![1, c.num_labels()],
            param_prefixes: vec!["classifier.".into()],
            flops: 2.0 * d * c.num_labels() as f64,
            detail: format!("Linear({}, {})", c.hidden_size, c.num_labels()),
        });
    }
    Ok(rows)
}

/// Loads an R3D config from a preset (`r3d_18`, `r3d_demo`; default 400 classes). R3D models are
/// built from block settings only, so a config file is refused.
pub fn r3d_config(
    source: &ModelSource,
    num_classes: Option<i64>,
    head_dropout: f64,
) -> Result<R3dConfig, FactoryError> {
    match source {
        ModelSource::Preset(name) => {
            R3dConfig::preset(name, num_classes.unwrap_or(400), head_dropout).ok_or_else(|| {
                FactoryError::UnknownPreset {
                    arch: "r3d_18".into(),
                    preset: name.clone(),
                    known: R3D_PRESETS.join(", "),
                }
            })
        }
        ModelSource::ConfigFile(path) => Err(FactoryError::Unsupported(format!(
            "model.config {}: the r3d_18 architecture is built from a preset ({}), not a config file",
            path.display(),
            R3D_PRESETS.join(", ")
        ))),
    }
}

fn build_r3d(
    source: &ModelSource,
    num_classes: Option<i64>,
    vs: &nn::Path,
) -> Result<BuiltModel, FactoryError> {
    let config = r3d_config(source, num_classes, 0.0)?;
    let model = R3d18::new(vs, &config);
    let check: InputCheck = Box::new(|shape: &[i64]| {
        if shape.len() == 5 && shape[0] >= 1 && shape[1] == 3 && shape[2..].iter().all(|&d| d >= 1)
        {
            Ok(())
        } else {
            Err(FactoryError::Unsupported(format!(
                "input shape {shape:?}: R3D expects (B >= 1, 3, T, H, W)"
            )))
        }
    });
    let summary_config = config.clone();
    Ok(BuiltModel {
        model: Box::new(model),
        // torchvision's R3D-18 Kinetics-400 input: 16 frames at 112x112.
        default_input: vec![1, 3, 16, 112, 112],
        check_input: check,
        summarize: Box::new(move |shape: &[i64]| Ok(r3d_summary(&summary_config, shape))),
    })
}

/// Output size of a convolution along one axis.
fn conv_out(size: i64, kernel: i64, stride: i64, padding: i64) -> i64 {
    (size + 2 * padding - kernel) / stride + 1
}

fn r3d_summary(c: &R3dConfig, shape: &[i64]) -> Vec<LayerInfo> {
    let [t, h, w] = [shape[2], shape[3], shape[4]];
    let volume = |g: [i64; 3]| (g[0] * g[1] * g[2]) as f64;
    // Stem: (3, 7, 7) kernel, stride (1, 2, 2), padding (1, 3, 3).
    let mut grid = [
        conv_out(t, 3, 1, 1),
        conv_out(h, 7, 2, 3),
        conv_out(w, 7, 2, 3),
    ];
    let mut rows = vec![LayerInfo {
        name: "stem".into(),
        output_shape: vec![1, c.stem_width, grid[0], grid[1], grid[2]],
        param_prefixes: vec!["stem.".into()],
        flops: 2.0 * volume(grid) * (3 * 3 * 7 * 7 * c.stem_width) as f64,
        detail: format!(
            "Conv3d 3->{} k(3, 7, 7) s(1, 2, 2) + BN + ReLU",
            c.stem_width
        ),
    }];
    let mut cin = c.stem_width;
    for (stage, &cout) in c.widths.iter().enumerate() {
        let stride = if stage == 0 { 1 } else { 2 };
        let mut flops = 0.0;
        for b in 0..c.blocks_per_stage {
            let (s, block_in) = if b == 0 { (stride, cin) } else { (1, cout) };
            grid = grid.map(|g| conv_out(g, 3, s, 1));
            flops += 2.0 * volume(grid) * (27 * block_in * cout + 27 * cout * cout) as f64;
            if b == 0 && (s != 1 || block_in != cout) {
                flops += 2.0 * volume(grid) * (block_in * cout) as f64;
            }
        }
        rows.push(LayerInfo {
            name: format!("layer{}", stage + 1),
            output_shape: vec![1, cout, grid[0], grid[1], grid[2]],
            param_prefixes: vec![format!("layer{}.", stage + 1)],
            flops,
            detail: format!(
                "{} BasicBlock(s) {cin}->{cout}, stride {stride}",
                c.blocks_per_stage
            ),
        });
        cin = cout;
    }
    rows.push(LayerInfo {
        name: "fc".into(),
        output_shape: vec![1, c.num_classes],
        param_prefixes: vec!["fc.".into()],
        flops: 2.0 * (c.features() * c.num_classes) as f64,
        detail: format!("avg pool + Linear({}, {})", c.features(), c.num_classes),
    });
    rows
}

/// Loads an MViT config from a preset (default 400 classes) or file, overriding the class count.
pub fn mvit_config(
    source: &ModelSource,
    num_classes: Option<i64>,
) -> Result<MvitConfig, FactoryError> {
    let mut config = match source {
        ModelSource::Preset(name) => MvitConfig::preset(name, num_classes.unwrap_or(400))
            .ok_or_else(|| FactoryError::UnknownPreset {
                arch: "mvit".into(),
                preset: name.clone(),
                known: MvitConfig::PRESETS.join(", "),
            })?,
        ModelSource::ConfigFile(path) => MvitConfig::from_case_json(Path::new(path))?,
    };
    if let Some(k) = num_classes {
        config.num_classes = k;
    }
    config.validate()?;
    Ok(config)
}

fn build_mvit(
    source: &ModelSource,
    num_classes: Option<i64>,
    vs: &nn::Path,
) -> Result<BuiltModel, FactoryError> {
    let config = mvit_config(source, num_classes)?;
    let model = Mvit::new(vs, &config)?;
    let default_input = vec![
        1,
        3,
        config.temporal_size,
        config.spatial_size[0],
        config.spatial_size[1],
    ];
    let check_config = config.clone();
    // The closure checks shapes without the model (which moves into the Box): a throwaway model on
    // an unused VarStore would allocate all parameters again, so mirror Mvit::check_input's rules.
    let check_input: InputCheck = Box::new(move |shape: &[i64]| {
        let reject = |reason: String| {
            Err(FactoryError::Mvit(MvitError::Input {
                shape: shape.to_vec(),
                reason,
            }))
        };
        if shape.len() != 5 || shape[0] < 1 || shape[1] != 3 {
            return reject("expected (B >= 1, 3, T, H, W)".into());
        }
        let thw = [shape[2], shape[3], shape[4]];
        if let Err(e) = check_config.plan(thw) {
            return reject(e.to_string());
        }
        if !check_config.rel_pos_embed
            && check_config.patch_grid_for(thw) != check_config.nominal_patch_grid()
        {
            return reject(format!(
                "absolute position embeddings need the patch grid {:?}",
                check_config.nominal_patch_grid()
            ));
        }
        Ok(())
    });
    let summary_config = config.clone();
    let summarize: Summarize = Box::new(move |shape: &[i64]| mvit_summary(&summary_config, shape));
    Ok(BuiltModel {
        model: Box::new(model),
        default_input,
        check_input,
        summarize,
    })
}

fn mvit_summary(config: &MvitConfig, shape: &[i64]) -> Result<Vec<LayerInfo>, FactoryError> {
    if shape.len() != 5 {
        return Err(MvitError::Input {
            shape: shape.to_vec(),
            reason: "expected (B, 3, T, H, W)".into(),
        }
        .into());
    }
    let thw = [shape[2], shape[3], shape[4]];
    let plans = config.plan(thw)?;
    let (patch_flops, block_flops, head_flops) = config.flops(thw)?;
    let grid = config.patch_grid_for(thw);
    let c0 = config.block_setting[0].input_channels;
    let tokens = |g: [i64; 3]| 1 + g[0] * g[1] * g[2];
    let mut rows = vec![
        LayerInfo {
            name: "conv_proj".into(),
            output_shape: vec![1, c0, grid[0], grid[1], grid[2]],
            param_prefixes: vec!["conv_proj.".into()],
            flops: patch_flops,
            detail: format!(
                "Conv3d 3->{c0} k{:?} s{:?} p{:?}",
                config.patch_embed_kernel, config.patch_embed_stride, config.patch_embed_padding
            ),
        },
        LayerInfo {
            name: "patch_embed".into(),
            output_shape: vec![1, tokens(grid), c0],
            param_prefixes: vec!["pos_encoding.".into()],
            flops: 0.0,
            detail: format!("tokens t*h*w = {grid:?} + cls"),
        },
    ];
    for (p, flops) in plans.iter().zip(block_flops) {
        rows.push(LayerInfo {
            name: format!("blocks.{}", p.index),
            output_shape: vec![1, tokens(p.thw_q), p.channels_out],
            param_prefixes: vec![format!("blocks.{}.", p.index)],
            flops,
            detail: format!(
                "{}->{} ch, {} heads, q {:?}->{:?}, kv {:?}",
                p.channels_in, p.channels_out, p.num_heads, p.thw_in, p.thw_q, p.thw_kv
            ),
        });
    }
    let last = plans.last().map_or(grid, |p| p.thw_q);
    let c_last = config.block_setting[config.block_setting.len() - 1].output_channels;
    rows.push(LayerInfo {
        name: "norm".into(),
        output_shape: vec![1, tokens(last), c_last],
        param_prefixes: vec!["norm.".into()],
        flops: 0.0,
        detail: "LayerNorm".into(),
    });
    rows.push(LayerInfo {
        name: "head".into(),
        output_shape: vec![1, config.num_classes],
        param_prefixes: vec!["head.".into()],
        flops: head_flops,
        detail: format!(
            "Dropout({}) + Linear({c_last}, {})",
            config.dropout, config.num_classes
        ),
    });
    Ok(rows)
}

/// The source a run's `model:` section names: `model.config` when set, else `model.preset`.
pub fn source_of(cfg: &ModelConfig) -> Result<ModelSource, FactoryError> {
    match (&cfg.config, &cfg.preset) {
        (Some(p), _) => Ok(ModelSource::ConfigFile(p.clone())),
        (None, Some(n)) => Ok(ModelSource::Preset(n.clone())),
        (None, None) => Err(FactoryError::Unsupported(
            "model.preset or model.config must be set".into(),
        )),
    }
}

/// Builds the model a run's `model:` section describes under `vs`, with `num_classes` outputs:
/// the architecture with its head (`model.head`, `head_dropout`, `drop_path`,
/// `num_queries`), the first `model.freeze_encoder_layers` blocks frozen (V-JEPA 2), and
/// `model.weights` loaded by name with the new head left fresh (`head.` for MViT, `fc.` for R3D,
/// `classifier.` or `feral_head.` for V-JEPA 2; Hugging Face `VJEPA2ForVideoClassification` and
/// `VJEPA2Model` names are both understood).
pub fn build_from_config(
    cfg: &ModelConfig,
    num_classes: usize,
    vs: &mut nn::VarStore,
) -> Result<Box<dyn VideoModel>, FactoryError> {
    let k = num_classes as i64;
    let source = source_of(cfg)?;
    let root = vs.root();
    let (model, head_prefix): (Box<dyn VideoModel>, &str) = match cfg.arch {
        Arch::Mvit => {
            let mut mc = mvit_config(&source, Some(k))?;
            mc.dropout = cfg.head_dropout;
            if let Some(p) = cfg.drop_path {
                mc.stochastic_depth_prob = p;
            }
            (Box::new(Mvit::new(&root, &mc)?), "head.")
        }
        Arch::R3d18 => {
            let rc = r3d_config(&source, Some(k), cfg.head_dropout)?;
            (Box::new(R3d18::new(&root, &rc)), "fc.")
        }
        Arch::Vjepa2 => vjepa2_with_head(cfg, &source, k, vs)?,
    };
    if let Some(w) = &cfg.weights {
        let werr = |source| FactoryError::Weights {
            path: w.clone(),
            source,
        };
        let tensors = crate::weights::read_tensors(w).map_err(werr)?;
        let mut opts = LoadOptions {
            strict: true,
            rename: Vec::new(),
            skip_prefixes: vec![head_prefix.to_string()],
        };
        if cfg.arch == Arch::Vjepa2 {
            // A checkpoint's own pooler/classifier are unused under the FERAL head, and an
            // encoder-only checkpoint leaves the HF pooler freshly initialised.
            let keys: Vec<&str> = tensors.iter().map(|(k, _)| k.as_str()).collect();
            let has_pooler = keys.iter().any(|k| k.starts_with("pooler."));
            let wl = Vjepa2WeightLayout::detect(&keys);
            opts.rename = wl.rename;
            opts.skip_prefixes.extend(wl.skip_prefixes);
            if cfg.head == HeadKind::Feral || !has_pooler {
                opts.skip_prefixes
                    .extend(["pooler.".to_string(), "classifier.".to_string()]);
            }
        }
        let report = crate::weights::load_into(vs, tensors, &opts).map_err(werr)?;
        tracing::info!(
            "loaded {} tensors from {} (new head `{head_prefix}`)",
            report.loaded.len(),
            w.display()
        );
    }
    Ok(model)
}

/// Name prefixes of the head that [`build_from_config`] puts on the backbone (what two-stage
/// fine-tuning trains alone first): `head.` (MViT), `fc.` (R3D), `feral_head.` (V-JEPA 2 + FERAL),
/// `pooler.` and `classifier.` (V-JEPA 2 with the Hugging Face attentive pooler).
pub fn head_prefixes(cfg: &ModelConfig) -> Vec<&'static str> {
    match (cfg.arch, cfg.head) {
        (Arch::Mvit, _) => vec!["head."],
        (Arch::R3d18, _) => vec!["fc."],
        (Arch::Vjepa2, HeadKind::Feral) => vec!["feral_head."],
        (Arch::Vjepa2, HeadKind::Linear) => vec!["pooler.", "classifier."],
    }
}

/// V-JEPA 2 with the configured head (`model.head`: the HF attentive pooler + linear classifier,
/// or the FERAL head with `model.num_queries` queries), its patch embedding and first
/// `model.freeze_encoder_layers` blocks frozen (out of the optimiser, run without a graph).
/// Returns the model and the prefix of its new head.
fn vjepa2_with_head(
    cfg: &ModelConfig,
    source: &ModelSource,
    k: i64,
    vs: &nn::VarStore,
) -> Result<(Box<dyn VideoModel>, &'static str), FactoryError> {
    let vc = vjepa2_config(source, Some(k))?;
    let n = cfg.freeze_encoder_layers;
    let root = vs.root();
    Ok(match cfg.head {
        HeadKind::Feral => {
            let hc = FeralHeadConfig::for_encoder(&vc, k, cfg.num_queries as i64, cfg.head_dropout);
            let mut m = Vjepa2FeralModel::new(&root, &vc, &hc)?;
            m.freeze_encoder_layers(vs, n)?;
            (Box::new(m), "feral_head.")
        }
        HeadKind::Linear => {
            let mut m = Vjepa2ForVideoClassification::new(&root, &vc)?;
            let prefixes = m.encoder().freeze_prefixes(n)?;
            crate::freeze::freeze_prefixes(vs, &prefixes);
            m.encoder_mut().set_frozen_blocks(n)?;
            (Box::new(m), "classifier.")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn builds_mvit_presets_and_rejects_unknown_names() {
        let vs = nn::VarStore::new(Device::Cpu);
        let built = build_model(
            Arch::Mvit,
            &ModelSource::Preset("mvit_demo".into()),
            Some(3),
            &vs.root(),
        )
        .unwrap();
        assert_eq!(built.default_input, vec![1, 3, 16, 96, 96]);
        assert!((built.check_input)(&[2, 3, 16, 96, 96]).is_ok());
        assert!((built.check_input)(&[2, 1, 16, 96, 96]).is_err());
        let rows = (built.summarize)(&built.default_input).unwrap();
        assert_eq!(rows.last().unwrap().output_shape, vec![1, 3]);
        let vs2 = nn::VarStore::new(Device::Cpu);
        let err = build_model(
            Arch::Mvit,
            &ModelSource::Preset("mvit_xl".into()),
            None,
            &vs2.root(),
        );
        assert!(matches!(err, Err(FactoryError::UnknownPreset { .. })));
        assert!(matches!(
            parse_arch("resnet"),
            Err(FactoryError::UnknownArch(_))
        ));
        assert_eq!(parse_arch("mvit").unwrap(), Arch::Mvit);
    }

    #[test]
    fn mvit_v2_s_flops_are_in_the_published_range() {
        // torchvision lists 64.22 GFLOPs (multiply-accumulates) for mvit_v2_s at 16x224x224.
        let cfg = MvitConfig::mvit_v2_s(400);
        let (p, blocks, h) = cfg.flops([16, 224, 224]).unwrap();
        let gmacs = (p + blocks.iter().sum::<f64>() + h) / 2e9;
        assert!((60.0..70.0).contains(&gmacs), "{gmacs} GMACs");
    }
}
