//! Models outside a run: `forward` (a model on a tensor file, for weight-conversion and parity
//! checks) and `summary` (layers, output shapes, parameter counts, FLOPs), built by the factory.

use std::path::{Path, PathBuf};

use ethos_core::{Error, Layout, ResultExt};
use ethos_models::config::Arch;
use ethos_models::factory::{self, BuiltModel, ModelSource};
use ethos_models::weights::{load_into, read_tensors, write_safetensors_atomic};
use serde::Serialize;
use tch::{Device, Kind, Tensor, nn};

use crate::Result;

/// Which model to build: architecture plus preset or config file.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    /// Architecture.
    pub arch: Arch,
    /// Preset or config file.
    pub source: ModelSource,
    /// Output classes (default: the checkpoint's classifier, else the config's or preset's).
    pub num_classes: Option<i64>,
}

impl ModelSpec {
    /// `preset NAME` or `config FILE`, for messages.
    pub fn describe(&self) -> String {
        match &self.source {
            ModelSource::Preset(p) => format!("preset {p}"),
            ModelSource::ConfigFile(c) => format!("config {}", c.display()),
        }
    }
}

/// Parses an architecture name for `--arch`.
pub fn parse_arch(name: &str) -> std::result::Result<Arch, String> {
    factory::parse_arch(name).map_err(|e| e.to_string())
}

/// Builds the model of `spec` under `vs`; `weights` decide the class count when not given.
pub fn build(
    spec: &ModelSpec,
    vs: &nn::VarStore,
    weights: Option<&[(String, Tensor)]>,
) -> Result<BuiltModel> {
    let num_classes = spec
        .num_classes
        .or_else(|| weights.and_then(|w| factory::infer_num_classes(spec.arch, w)));
    Ok(factory::build_model(
        spec.arch,
        &spec.source,
        num_classes,
        &vs.root(),
    )?)
}

/// One output tensor of `forward`.
#[derive(Debug, Clone, Serialize)]
pub struct OutputRow {
    /// Reference name (`logits`, `blocks.3`, ...).
    pub name: String,
    /// Shape.
    pub shape: Vec<i64>,
    /// Largest absolute difference to the same-named tensor of the input file, when it has one.
    pub max_abs_diff: Option<f64>,
}

/// What `forward` wrote and found.
#[derive(Debug, Clone, Serialize)]
pub struct ForwardReport {
    /// The output safetensors file.
    pub output: PathBuf,
    /// Seconds of the forward pass.
    pub forward_seconds: f64,
    /// The logits, flattened.
    pub logits: Option<Vec<f32>>,
    /// Every output tensor.
    pub tensors: Vec<OutputRow>,
}

/// Runs the model of `spec` with `weights` in eval mode on tensor `input` of the safetensors file
/// `input`; writes `logits` and every named intermediate to `output` and compares them with the
/// same-named tensors of the input file.
pub fn forward(
    spec: &ModelSpec,
    weights: &Path,
    input: &Path,
    output: &Path,
) -> Result<ForwardReport> {
    let tensors =
        read_tensors(weights).context(format!("reading weights {}", weights.display()))?;
    let mut vs = nn::VarStore::new(Device::Cpu);
    let num_classes = spec
        .num_classes
        .or_else(|| factory::infer_num_classes(spec.arch, &tensors));
    let (built, load_opts) = factory::build_model_for_weights(
        spec.arch,
        &spec.source,
        num_classes,
        &vs.root(),
        &tensors,
    )?;
    let report = load_into(&mut vs, tensors, &load_opts).context(format!(
        "loading {} into {}",
        weights.display(),
        spec.arch
    ))?;
    tracing::info!(
        "weights: {} tensors loaded from {}",
        report.loaded.len(),
        weights.display()
    );
    let io = read_io(input)?;
    let x = io
        .iter()
        .find(|(k, _)| k == "input")
        .map(|(_, t)| t.to_kind(Kind::Float))
        .ok_or_else(|| Error::bad_input(format!("{}: no tensor named `input`", input.display())))?;
    (built.check_input)(&x.size()).context(input.display().to_string())?;
    let start = std::time::Instant::now();
    let outputs = built.model.forward_named(&x);
    let forward_seconds = start.elapsed().as_secs_f64();
    let outputs: Vec<(String, Tensor)> = outputs
        .into_iter()
        .map(|(k, t)| (k, t.to_kind(Kind::Float).contiguous()))
        .collect();
    write_safetensors_atomic(output, &outputs).context(format!("writing {}", output.display()))?;
    let tensors = outputs
        .iter()
        .map(|(name, t)| OutputRow {
            name: name.clone(),
            shape: t.size(),
            max_abs_diff: io
                .iter()
                .find(|(k, r)| k == name && r.size() == t.size())
                .map(|(_, r)| (t - r.to_kind(Kind::Float)).abs().max().double_value(&[])),
        })
        .collect();
    let logits = outputs
        .iter()
        .find(|(k, _)| k == "logits")
        .map(|(_, t)| Vec::<f32>::try_from(t.flatten(0, -1)).unwrap_or_default());
    Ok(ForwardReport {
        output: output.to_path_buf(),
        forward_seconds,
        logits,
        tensors,
    })
}

/// Reads a safetensors file of tensors (a model input and references).
pub fn read_io(path: &Path) -> Result<Vec<(String, Tensor)>> {
    if !path.is_file() {
        return Err(Error::bad_input(format!(
            "{}: no such file",
            path.display()
        )));
    }
    Tensor::read_safetensors(path).map_err(|e| {
        Error::bad_input(format!(
            "{}: not a readable safetensors file: {e}",
            path.display()
        ))
    })
}

/// The model's default input shape with the frame count and the (square) frame size replaced where
/// given; T sits at axis 2 of (B, C, T, H, W) and axis 1 of (B, T, C, H, W).
pub fn input_shape(
    default: &[i64],
    layout: Layout,
    frames: Option<i64>,
    size: Option<i64>,
) -> Vec<i64> {
    let mut shape = default.to_vec();
    let n = shape.len();
    if let Some(t) = frames {
        let t_axis = if layout == Layout::Btchw { 1 } else { 2 };
        shape[t_axis] = t;
    }
    if let Some(s) = size {
        shape[n - 2] = s;
        shape[n - 1] = s;
    }
    shape
}

/// One layer of a model summary.
#[derive(Debug, Clone, Serialize)]
pub struct LayerRow {
    /// Layer name.
    pub name: String,
    /// Output shape for batch 1.
    pub output_shape: Vec<i64>,
    /// Parameters.
    pub params: i64,
    /// Trainable parameters.
    pub trainable_params: i64,
    /// FLOPs for batch 1.
    pub flops: f64,
    /// Description.
    pub detail: String,
}

/// A model's layers, parameters and FLOPs for one input shape.
#[derive(Debug, Clone, Serialize)]
pub struct ModelSummary {
    /// Architecture.
    pub arch: String,
    /// `preset NAME` or `config FILE`.
    #[serde(skip)]
    pub source: String,
    /// The input shape summarised.
    pub input_shape: Vec<i64>,
    /// Layers in order.
    pub layers: Vec<LayerRow>,
    /// Parameters in all.
    pub params_total: i64,
    /// Trainable parameters.
    pub params_trainable: i64,
    /// Frozen parameters.
    pub params_frozen: i64,
    /// FLOPs per clip.
    pub flops: f64,
}

/// Layers with output shapes, parameter counts (trainable/frozen after freezing the parameters
/// whose names start with `freeze`) and FLOPs, for the model's own input or `frames` x `size`.
pub fn summary(
    spec: &ModelSpec,
    frames: Option<i64>,
    size: Option<i64>,
    freeze: &[String],
) -> Result<ModelSummary> {
    let vs = nn::VarStore::new(Device::Cpu);
    let built = build(spec, &vs, None)?;
    let shape = input_shape(
        &built.default_input,
        built.model.input_layout(),
        frames,
        size,
    );
    (built.check_input)(&shape)?;
    for (name, var) in vs.variables() {
        if freeze.iter().any(|p| name.starts_with(p.as_str())) {
            let _ = var.set_requires_grad(false);
        }
    }
    let layers = (built.summarize)(&shape)?;
    let vars = vs.variables();
    let count = |prefixes: &[String], trainable: Option<bool>| -> i64 {
        vars.iter()
            .filter(|(k, v)| {
                prefixes.iter().any(|p| k.starts_with(p.as_str()))
                    && trainable.is_none_or(|t| v.requires_grad() == t)
            })
            .map(|(_, v)| v.numel() as i64)
            .sum()
    };
    let all = vec![String::new()];
    let total = count(&all, None);
    let trainable = count(&all, Some(true));
    Ok(ModelSummary {
        arch: spec.arch.to_string(),
        source: spec.describe(),
        input_shape: shape,
        flops: layers.iter().map(|l| l.flops).sum(),
        layers: layers
            .iter()
            .map(|l| LayerRow {
                name: l.name.clone(),
                output_shape: l.output_shape.clone(),
                params: count(&l.param_prefixes, None),
                trainable_params: count(&l.param_prefixes, Some(true)),
                flops: l.flops,
                detail: l.detail.clone(),
            })
            .collect(),
        params_total: total,
        params_trainable: trainable,
        params_frozen: total - trainable,
    })
}
