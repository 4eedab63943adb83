//! `ethos model ssl-step`: one V-JEPA 2 self-supervised step on a tensor file, without an optimiser
//! update (the parity check against transformers, and a debugging tool). The work is
//! `ethos_models::vjepa2_ssl_step::run_ssl_step_file`.

use std::path::PathBuf;

/// Arguments of `ethos model ssl-step`.
#[derive(clap::Args)]
pub struct Args {
    /// Hugging Face V-JEPA 2 config.json (or its folder); `model_type` must be "vjepa2".
    #[arg(long)]
    pub config: PathBuf,
    /// Weights: `encoder.*` (required) and `predictor.*` (fresh when absent), safetensors file, sharded
    /// index or folder.
    #[arg(long)]
    pub weights: PathBuf,
    /// safetensors file with `pixel_values_videos` (B, T, C, H, W) float32 and, per mask group g,
    /// `context_mask.g` / `target_mask.g` (B, K) int64 token indices.
    #[arg(long)]
    pub input: PathBuf,
    /// Output safetensors file: `context.g`, `prediction.g`, `target.g`, `loss`,
    /// `target_encoder.last_hidden_state` and `grad.<Hugging Face parameter name>`.
    #[arg(long)]
    pub output: PathBuf,
}

/// Runs the step; prints a JSON summary (loss, per-group losses and sizes) on stdout.
pub fn run(args: Args) -> anyhow::Result<()> {
    let summary = ethos_models::vjepa2_ssl_step::run_ssl_step_file(
        &args.config,
        &args.weights,
        &args.input,
        &args.output,
    )
    .map_err(ethos_core::Error::from)?;
    crate::output::line(format!(
        "ssl-step: loss {:.6} over {} mask group(s), batch {}, {} tokens; {} tensors -> {}",
        summary.loss,
        summary.group_losses.len(),
        summary.batch,
        summary.tokens,
        summary.tensors_written,
        summary.output.display()
    ));
    crate::output::json(&summary)
}
