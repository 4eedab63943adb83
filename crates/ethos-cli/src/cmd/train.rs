//! `ethos train --config F [--set k=v]... [--resume PATH] [--out DIR] [--force]`: trains a model
//! into a run directory (resolved `config.yaml`, `history.csv`, `best.ckpt`, `last.ckpt`,
//! `per_sample_loss.csv`, `metrics.json`).

use std::path::PathBuf;

use ethos_pipeline::train::{TrainOptions, train};

/// Arguments of `ethos train`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The run configuration (YAML).
    #[arg(long)]
    pub config: PathBuf,
    /// Override a config key, e.g. `--set optim.lr=2e-5` (repeatable; values are YAML).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Continue from this checkpoint (e.g. RUN/last.ckpt) exactly where it stopped, in its own run
    /// directory unless `--out` names another.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// The run directory (overrides `train.run_dir`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Overwrite a run directory that already holds a run.
    #[arg(long)]
    pub force: bool,
    /// Stop resumably after this many epochs of this invocation (to fit a time slot).
    #[arg(long, value_name = "N")]
    pub stop_after_epochs: Option<usize>,
}

/// Runs `ethos train`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = ethos_pipeline::RunConfig::load(&args.config, &args.set)?;
    let s = train(
        &cfg,
        &TrainOptions {
            resume: args.resume,
            out: args.out,
            force: args.force,
            stop_after_epochs: args.stop_after_epochs,
        },
    )?;
    if s.finished {
        crate::output::line(format!("run directory: {}", s.run_dir.display()));
    } else {
        crate::output::line(format!(
            "stopped; the run is resumable: ethos train --config {} --resume {}",
            args.config.display(),
            s.run_dir.join(ethos_pipeline::run_dir::LAST_CKPT).display()
        ));
    }
    Ok(())
}
