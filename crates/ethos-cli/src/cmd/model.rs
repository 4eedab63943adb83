//! `ethos model forward|summary`: run a model on a tensor file (weight-conversion and parity checks)
//! and describe a model's layers, shapes, parameter counts and FLOPs.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use ethos_models::registry::{self, BuiltModel, ModelSource};
use ethos_models::weights::{LoadOptions, load_into, read_tensors, write_safetensors_atomic};
use tch::{Device, Kind, Tensor, nn};

use crate::exit::BadInput;

/// Arguments of `ethos model`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub what: What,
}

/// The `ethos model` actions.
#[derive(Subcommand)]
pub enum What {
    /// Runs a model in eval mode on tensor `input` of a safetensors file; writes `logits` and every
    /// named intermediate to OUT (and compares with same-named tensors of the input file, if any).
    Forward(ForwardArgs),
    /// Layers and blocks with output shapes, parameter counts (trainable/frozen) and FLOPs.
    Summary(SummaryArgs),
    /// One V-JEPA 2 self-supervised step (no optimiser update) on a tensor file: context, predictions,
    /// targets, loss and gradients by Hugging Face name.
    SslStep(super::model_ssl::SslStepArgs),
}

/// Which model to build: architecture plus preset or config file.
#[derive(clap::Args, Clone, Debug)]
pub struct ModelArgs {
    /// Architecture: mvit, r3d_18, vjepa2.
    #[arg(long)]
    pub arch: String,
    /// Model description file (MViT: a reference case.json or a bare config JSON; V-JEPA 2: a Hugging
    /// Face config.json or its folder).
    #[arg(long, conflicts_with = "preset", required_unless_present = "preset")]
    pub config: Option<PathBuf>,
    /// Built-in preset (mvit_v2_s, mvit_demo, ...).
    #[arg(long)]
    pub preset: Option<String>,
    /// Output classes (default: the checkpoint's classifier, else the config's or preset's).
    #[arg(long)]
    pub num_classes: Option<i64>,
}

impl ModelArgs {
    fn source(&self) -> ModelSource {
        match (&self.config, &self.preset) {
            (Some(path), _) => ModelSource::ConfigFile(path.clone()),
            (None, Some(name)) => ModelSource::Preset(name.clone()),
            (None, None) => unreachable!("clap requires --config or --preset"),
        }
    }
}

/// Arguments of `ethos model forward`.
#[derive(clap::Args)]
pub struct ForwardArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Weights: safetensors file, sharded index or folder, or a PyTorch `.pth` state dict.
    #[arg(long)]
    pub weights: PathBuf,
    /// safetensors file holding the tensor `input` (other tensors are taken as references).
    #[arg(long)]
    pub input: PathBuf,
    /// Output safetensors file: `logits` and every named intermediate, float32.
    #[arg(long)]
    pub output: PathBuf,
}

/// Arguments of `ethos model summary`.
#[derive(clap::Args)]
pub struct SummaryArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Frames per clip (default: the model's own).
    #[arg(long)]
    pub frames: Option<i64>,
    /// Square frame size in pixels (default: the model's own).
    #[arg(long)]
    pub size: Option<i64>,
    /// Freeze parameters whose names start with these prefixes (comma-separated) before counting.
    #[arg(long, value_delimiter = ',')]
    pub freeze: Vec<String>,
}

/// Runs `ethos model`.
pub fn run(args: Args) -> anyhow::Result<()> {
    match args.what {
        What::Forward(a) => forward(a),
        What::Summary(a) => summary(a),
        What::SslStep(a) => super::model_ssl::run(a),
    }
}

/// Builds the model of `args` on `device`; `weights` decide the class count when not given.
pub fn build(
    args: &ModelArgs,
    vs: &nn::VarStore,
    weights: Option<&[(String, Tensor)]>,
) -> anyhow::Result<BuiltModel> {
    let arch = registry::parse_arch(&args.arch).map_err(|e| BadInput(format!("--arch: {e}")))?;
    let num_classes = args
        .num_classes
        .or_else(|| weights.and_then(|w| registry::infer_num_classes(arch, w)));
    let built =
        registry::build_model(arch, &args.source(), num_classes, &vs.root()).map_err(|e| {
            if e.is_bad_input() {
                anyhow::Error::new(BadInput(e.to_string()))
            } else {
                e.into()
            }
        })?;
    Ok(built)
}

/// Builds the model a checkpoint needs (V-JEPA 2: the classifier, or the encoder alone when the
/// weights have no head) and the options that map the checkpoint's key names onto it.
fn build_for_weights(
    args: &ModelArgs,
    vs: &nn::VarStore,
    tensors: &[(String, Tensor)],
) -> anyhow::Result<(BuiltModel, LoadOptions)> {
    let arch = registry::parse_arch(&args.arch).map_err(|e| BadInput(format!("--arch: {e}")))?;
    let num_classes = args
        .num_classes
        .or_else(|| registry::infer_num_classes(arch, tensors));
    registry::build_model_for_weights(arch, &args.source(), num_classes, &vs.root(), tensors)
        .map_err(|e| {
            if e.is_bad_input() {
                anyhow::Error::new(BadInput(e.to_string()))
            } else {
                e.into()
            }
        })
}

fn forward(args: ForwardArgs) -> anyhow::Result<()> {
    registry::parse_arch(&args.model.arch).map_err(|e| BadInput(format!("--arch: {e}")))?;
    let tensors = read_tensors(&args.weights)
        .with_context(|| format!("reading weights {}", args.weights.display()))?;
    let mut vs = nn::VarStore::new(Device::Cpu);
    let (built, load_opts) = build_for_weights(&args.model, &vs, &tensors)?;
    let report = load_into(&mut vs, tensors, &load_opts).with_context(|| {
        format!(
            "loading {} into {}",
            args.weights.display(),
            args.model.arch
        )
    })?;
    tracing::info!(
        "weights: {} tensors loaded from {}",
        report.loaded.len(),
        args.weights.display()
    );

    let io = read_io(&args.input)?;
    let input = io
        .iter()
        .find(|(k, _)| k == "input")
        .map(|(_, t)| t.to_kind(Kind::Float))
        .ok_or_else(|| BadInput(format!("{}: no tensor named `input`", args.input.display())))?;
    (built.check_input)(&input.size())
        .map_err(|e| BadInput(format!("{}: {e}", args.input.display())))?;
    let start = std::time::Instant::now();
    let outputs = built.model.forward_named(&input);
    let seconds = start.elapsed().as_secs_f64();
    let outputs: Vec<(String, Tensor)> = outputs
        .into_iter()
        .map(|(k, t)| (k, t.to_kind(Kind::Float).contiguous()))
        .collect();
    write_safetensors_atomic(&args.output, &outputs)
        .with_context(|| format!("writing {}", args.output.display()))?;

    let mut rows = Vec::new();
    for (name, t) in &outputs {
        let reference = io.iter().find(|(k, r)| k == name && r.size() == t.size());
        let diff =
            reference.map(|(_, r)| (t - r.to_kind(Kind::Float)).abs().max().double_value(&[]));
        match diff {
            Some(d) => eprintln!(
                "{name:<28} {:<18} max |diff| vs input file {d:.3e}",
                format!("{:?}", t.size())
            ),
            None => eprintln!("{name:<28} {:?}", t.size()),
        }
        rows.push(serde_json::json!({ "name": name, "shape": t.size(), "max_abs_diff": diff }));
    }
    let logits = outputs.iter().find(|(k, _)| k == "logits").map(|(_, t)| {
        let flat: Vec<f32> = Vec::try_from(t.flatten(0, -1)).unwrap_or_default();
        flat
    });
    let result = serde_json::json!({
        "output": args.output,
        "forward_seconds": seconds,
        "logits": logits,
        "tensors": rows,
    });
    println!("{}", serde_json::to_string_pretty(&result)?);
    Ok(())
}

fn read_io(path: &Path) -> anyhow::Result<Vec<(String, Tensor)>> {
    if !path.is_file() {
        return Err(BadInput(format!("{}: no such file", path.display())).into());
    }
    Tensor::read_safetensors(path).map_err(|e| {
        BadInput(format!(
            "{}: not a readable safetensors file: {e}",
            path.display()
        ))
        .into()
    })
}

/// The model's default input shape with the frame count and the (square) frame size replaced where
/// given; T sits at axis 2 of (B, C, T, H, W) and axis 1 of (B, T, C, H, W).
pub fn input_shape(
    default: &[i64],
    layout: ethos_models::InputLayout,
    frames: Option<i64>,
    size: Option<i64>,
) -> Vec<i64> {
    let mut shape = default.to_vec();
    let n = shape.len();
    if let Some(t) = frames {
        let t_axis = if matches!(layout, ethos_models::InputLayout::Btchw) {
            1
        } else {
            2
        };
        shape[t_axis] = t;
    }
    if let Some(s) = size {
        shape[n - 2] = s;
        shape[n - 1] = s;
    }
    shape
}

fn summary(args: SummaryArgs) -> anyhow::Result<()> {
    let vs = nn::VarStore::new(Device::Cpu);
    let built = build(&args.model, &vs, None)?;
    let shape = input_shape(
        &built.default_input,
        built.model.input_layout(),
        args.frames,
        args.size,
    );
    (built.check_input)(&shape).map_err(|e| BadInput(e.to_string()))?;
    if !args.freeze.is_empty() {
        for (name, var) in vs.variables() {
            if args.freeze.iter().any(|p| name.starts_with(p.as_str())) {
                let _ = var.set_requires_grad(false);
            }
        }
    }
    let layers = (built.summarize)(&shape).map_err(|e| BadInput(e.to_string()))?;
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
    let all_prefix = vec![String::new()];
    let total = count(&all_prefix, None);
    let trainable = count(&all_prefix, Some(true));
    let total_flops: f64 = layers.iter().map(|l| l.flops).sum();
    eprintln!(
        "{} ({}), input {:?}",
        args.model.arch,
        describe(&args.model),
        shape
    );
    eprintln!(
        "{:<12} {:<22} {:>12} {:>11}  detail",
        "layer", "output (B=1)", "params", "GFLOPs"
    );
    let mut rows = Vec::new();
    for l in &layers {
        let params = count(&l.param_prefixes, None);
        eprintln!(
            "{:<12} {:<22} {:>12} {:>11.3}  {}",
            l.name,
            format!("{:?}", l.output_shape),
            params,
            l.flops / 1e9,
            l.detail
        );
        rows.push(serde_json::json!({
            "name": l.name, "output_shape": l.output_shape, "params": params,
            "trainable_params": count(&l.param_prefixes, Some(true)), "flops": l.flops, "detail": l.detail,
        }));
    }
    eprintln!(
        "parameters: {total} total, {trainable} trainable, {} frozen; FLOPs per clip: {:.2} G ({:.2} G multiply-accumulates)",
        total - trainable,
        total_flops / 1e9,
        total_flops / 2e9
    );
    let result = serde_json::json!({
        "arch": args.model.arch, "input_shape": shape, "layers": rows,
        "params_total": total, "params_trainable": trainable, "params_frozen": total - trainable,
        "flops": total_flops,
    });
    println!("{}", serde_json::to_string_pretty(&result)?);
    Ok(())
}

fn describe(m: &ModelArgs) -> String {
    match (&m.preset, &m.config) {
        (Some(p), _) => format!("preset {p}"),
        (None, Some(c)) => format!("config {}", c.display()),
        (None, None) => String::new(),
    }
}
