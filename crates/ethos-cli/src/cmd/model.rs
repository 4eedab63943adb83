//! `ethos model forward|summary`: run a model on a tensor file (weight-conversion and parity checks)
//! and describe a model's layers, shapes, parameter counts and FLOPs.

use std::path::PathBuf;

use clap::Subcommand;
use ethos_models::config::Arch;
use ethos_models::factory::ModelSource;
use ethos_pipeline::model::ModelSpec;

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
    SslStep(super::model_ssl::Args),
}

/// Which model to build: architecture plus preset or config file.
#[derive(clap::Args, Clone, Debug)]
pub struct ModelArgs {
    /// Architecture: mvit, r3d_18, vjepa2.
    #[arg(long, value_parser = ethos_pipeline::model::parse_arch)]
    pub arch: Arch,
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
    fn spec(&self) -> ModelSpec {
        let source = match (&self.config, &self.preset) {
            (Some(path), _) => ModelSource::ConfigFile(path.clone()),
            (None, Some(name)) => ModelSource::Preset(name.clone()),
            (None, None) => unreachable!("clap requires --config or --preset"),
        };
        ModelSpec {
            arch: self.arch,
            source,
            num_classes: self.num_classes,
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
        What::SslStep(a) => super::model_ssl::run(a),
        What::Forward(a) => {
            let r =
                ethos_pipeline::model::forward(&a.model.spec(), &a.weights, &a.input, &a.output)?;
            let lines: Vec<String> = r
                .tensors
                .iter()
                .map(|t| match t.max_abs_diff {
                    Some(d) => format!(
                        "{:<28} {:<18} max |diff| vs input file {d:.3e}",
                        t.name,
                        format!("{:?}", t.shape)
                    ),
                    None => format!("{:<28} {:?}", t.name, t.shape),
                })
                .collect();
            crate::output::lines(&lines);
            crate::output::json(&r)
        }
        What::Summary(a) => {
            let s = ethos_pipeline::model::summary(&a.model.spec(), a.frames, a.size, &a.freeze)?;
            let mut lines = vec![
                format!("{} ({}), input {:?}", s.arch, s.source, s.input_shape),
                format!(
                    "{:<12} {:<22} {:>12} {:>11}  detail",
                    "layer", "output (B=1)", "params", "GFLOPs"
                ),
            ];
            for l in &s.layers {
                lines.push(format!(
                    "{:<12} {:<22} {:>12} {:>11.3}  {}",
                    l.name,
                    format!("{:?}", l.output_shape),
                    l.params,
                    l.flops / 1e9,
                    l.detail
                ));
            }
            lines.push(format!(
                "parameters: {} total, {} trainable, {} frozen; FLOPs per clip: {:.2} G ({:.2} G multiply-accumulates)",
                s.params_total,
                s.params_trainable,
                s.params_frozen,
                s.flops / 1e9,
                s.flops / 2e9
            ));
            crate::output::lines(&lines);
            crate::output::json(&s)
        }
    }
}
