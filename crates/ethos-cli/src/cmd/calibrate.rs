//! `ethos calibrate --run DIR [--split val] [--target f1_tail]`: temperature scaling and a decision
//! rule tuned on a split, stored as `RUN/calibration.json` (used by `eval` and `predict` unless
//! `--no-calibration`), with a reliability diagram.
//! `ethos calibrate --run DIR --timeline VIDEO --truth EVENTS`: the bout rule (per-class
//! thresholds, smoothing, minimum duration, gap merge) tuned for macro bout F1 on a labelled long
//! video, added to the same file.

use std::path::PathBuf;

use ethos_pipeline::calibrate::{CalibrateOptions, calibrate};
use ethos_pipeline::predict::Thresholds;
use ethos_pipeline::run_dir::run_checkpoint;
use ethos_pipeline::timeline_rule::{MergeRule, TimelineCalibrateOptions, calibrate_timeline};

/// Arguments of `ethos calibrate`.
#[derive(clap::Args)]
pub struct Args {
    /// A run directory: calibrates its `best.ckpt` (else `last.ckpt`).
    #[arg(
        long,
        conflicts_with = "checkpoint",
        required_unless_present = "checkpoint"
    )]
    pub run: Option<PathBuf>,
    /// A checkpoint file (the calibration goes beside it).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Config to take the data settings from (default: the one stored in the checkpoint).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The split to tune on (never an OOD split: those are only scored).
    #[arg(long, default_value = "val")]
    pub split: String,
    /// The metric the rule maximises: f1_<class>, precision_<class>, recall_<class>, macro_f1 or
    /// accuracy (default: train.metric_key when it is one of these, else macro_f1).
    #[arg(long)]
    pub target: Option<String>,
    /// Tune the bout rule on this labelled long video instead (needs --truth).
    #[arg(long, requires = "truth")]
    pub timeline: Option<PathBuf>,
    /// The labelled events of the --timeline video (events CSV).
    #[arg(long, requires = "timeline")]
    pub truth: Option<PathBuf>,
    /// Timeline: classes that never become bouts (e.g. `none`).
    #[arg(long, value_delimiter = ',')]
    pub background: Vec<String>,
    /// Timeline: window stride, seconds (default: half the window).
    #[arg(long)]
    pub stride: Option<f64>,
    /// Timeline: bout-matching tolerance, seconds.
    #[arg(long, default_value_t = 1.0)]
    pub tolerance: f64,
    /// Timeline: the rule being replaced (reported as "before"): thresholds as in `predict`.
    #[arg(long, default_value = "0.5")]
    pub threshold: Thresholds,
    /// Timeline: the replaced rule's minimum bout duration, seconds.
    #[arg(long, default_value_t = 0.0)]
    pub min_duration: f64,
    /// Timeline: the replaced rule's gap merge, seconds.
    #[arg(long, default_value_t = 0.0)]
    pub max_gap: f64,
    /// Override a config key (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// Runs `ethos calibrate`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let checkpoint = match (&args.run, &args.checkpoint) {
        (Some(run), _) => run_checkpoint(run)?,
        (None, Some(c)) => c.clone(),
        (None, None) => unreachable!("clap requires --run or --checkpoint"),
    };
    if let (Some(video), Some(truth)) = (args.timeline, args.truth) {
        let (cfg, _) = ethos_pipeline::config::RunConfig::for_checkpoint(
            &checkpoint,
            args.config.as_deref(),
            &args.set,
        )?;
        let thresholds = args
            .threshold
            .resolve(&cfg.data.classes, &args.background)?;
        let s = calibrate_timeline(&TimelineCalibrateOptions {
            checkpoint,
            config: args.config,
            overrides: args.set,
            video,
            truth,
            out: None,
            stride_s: args.stride,
            background: args.background,
            tolerance_s: args.tolerance,
            baseline: MergeRule {
                thresholds,
                min_duration_s: args.min_duration,
                max_gap_s: args.max_gap,
            },
        })?;
        crate::output::line(format!(
            "calibrate: macro bout F1 on the tuning video {:.3} -> {:.3}; rule stored in {}",
            s.before.macro_bout_f1,
            s.after.macro_bout_f1,
            s.path.display()
        ));
        return crate::output::json(&s);
    }
    let s = calibrate(&CalibrateOptions {
        checkpoint,
        config: args.config,
        overrides: args.set,
        split: args.split.clone(),
        target: args.target,
    })?;
    let f = &s.calibration.fit;
    crate::output::line(format!(
        "calibrate: {}: temperature {:.3}; {} {:.4} (argmax) -> {:.4} (tuned rule); ECE {:.4} -> {:.4}; {} and {}",
        args.split,
        s.calibration.temperature,
        s.calibration.target,
        f.target_argmax,
        f.target_tuned,
        f.ece_before,
        f.ece_after,
        s.path.display(),
        s.reliability_png.display()
    ));
    crate::output::json(&s.calibration)
}
