//! `ethos pretrain --config F [--set k=v]... [--out RUN] [--resume CKPT] [--force]`: continues
//! V-JEPA 2's self-supervised training on unlabelled footage (`ethos_pipeline::pretrain`): builds
//! the clip index when missing, then writes `RUN/history.csv`, `RUN/last.ckpt` and `RUN/encoder/`
//! (a Hugging Face folder for a FERAL fine-tune's `model.weights`). SIGTERM / SIGUSR1 / Ctrl-C stop
//! it resumably.

use std::path::PathBuf;

use ethos_pipeline::pretrain::{PretrainOptions, checkpoint_of, pretrain};

/// Arguments of `ethos pretrain`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The run configuration (YAML) with `model.arch: vjepa2` and a `pretrain` section.
    #[arg(long)]
    pub config: PathBuf,
    /// Override a config key, e.g. `--set pretrain.videos=DIR` (repeatable; values are YAML).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Continue from this checkpoint (RUN/last.ckpt) exactly where it stopped, in its own run
    /// directory unless `--out` names another.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// The run directory (overrides `train.run_dir`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Overwrite a run directory that already holds a run.
    #[arg(long)]
    pub force: bool,
    /// Stop resumably after this many steps of this invocation (to fit a time slot).
    #[arg(long, value_name = "N")]
    pub stop_after_steps: Option<u64>,
}

/// Runs `ethos pretrain`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = ethos_pipeline::RunConfig::load(&args.config, &args.set)?;
    let bar = crate::progress::Bar::new("pretrain-index", "clips");
    let s = pretrain(
        &cfg,
        &PretrainOptions {
            resume: args.resume,
            out: args.out,
            force: args.force,
            stop_after_steps: args.stop_after_steps,
        },
        &bar,
    )?;
    bar.finish();
    let loss = s
        .loss
        .map(|(a, b)| format!(", loss {a:.4} -> {b:.4}"))
        .unwrap_or_default();
    if s.finished {
        crate::output::line(format!(
            "pretrain: {} steps on {} clips{loss}; adapted model: {}",
            s.steps.0,
            s.clips,
            s.encoder.display()
        ));
    } else {
        crate::output::line(format!(
            "stopped at step {}/{}{loss}; the run is resumable: ethos pretrain --config {} --resume {}",
            s.steps.0,
            s.steps.1,
            args.config.display(),
            checkpoint_of(&s.run_dir).display()
        ));
    }
    Ok(())
}
