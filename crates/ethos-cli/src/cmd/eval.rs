//! `ethos eval --run DIR | --checkpoint C [--config F] --split S [--out DIR]`: metrics of a
//! checkpoint on a split (`metrics.json`, `predictions.csv`) and a report (`report.html` + PNG
//! plots: training curves, confusion matrix, ROC and PR curves, per-group and per-camera metrics).

use std::path::PathBuf;

use ethos_pipeline::evaluate::{EvalOptions, default_out, evaluate};
use ethos_pipeline::run_dir::run_checkpoint;

/// Arguments of `ethos eval`.
#[derive(clap::Args)]
pub struct Args {
    /// A run directory: evaluates its `best.ckpt` (else `last.ckpt`).
    #[arg(
        long,
        conflicts_with = "checkpoint",
        required_unless_present = "checkpoint"
    )]
    pub run: Option<PathBuf>,
    /// A checkpoint file.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Config to take the data settings from (default: the one stored in the checkpoint).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Split to evaluate (a key of data.splits: val, test_ood, ...).
    #[arg(long, default_value = "val")]
    pub split: String,
    /// Output folder (default: RUN/eval_<split>, or next to the checkpoint).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Override a config key (repeatable), e.g. `--set data.num_workers=4`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Ignore the run's calibration.json (report the argmax rule only).
    #[arg(long)]
    pub no_calibration: bool,
}

/// Runs `ethos eval`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let checkpoint = match (&args.run, &args.checkpoint) {
        (Some(run), _) => run_checkpoint(run)?,
        (None, Some(c)) => c.clone(),
        (None, None) => unreachable!("clap requires --run or --checkpoint"),
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| default_out(args.run.as_deref(), &checkpoint, &args.split));
    let s = evaluate(&EvalOptions {
        checkpoint,
        config: args.config,
        overrides: args.set,
        split: args.split.clone(),
        out,
        no_calibration: args.no_calibration,
    })?;
    crate::output::line(format!(
        "eval: {}: metrics and report in {}",
        args.split,
        s.out_dir.display()
    ));
    if let Some(c) = &s.calibrated {
        crate::output::line(format!(
            "eval: {}: argmax vs tuned rule (T = {:.3}, tuned on {} for {}): macro_f1 {:.4} / {:.4}, accuracy {:.4} / {:.4}; ECE {:.4} -> {:.4}; reliability diagram {}",
            args.split,
            c.temperature,
            c.tuned_on,
            c.target,
            s.metrics.macro_f1,
            c.tuned.macro_f1,
            s.metrics.accuracy,
            c.tuned.accuracy,
            c.ece_before,
            c.ece_after,
            c.reliability_png.display()
        ));
        let mut v = serde_json::to_value(&s.metrics)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("calibrated".into(), serde_json::to_value(c)?);
        }
        return crate::output::json(&v);
    }
    crate::output::json(&s.metrics)
}
