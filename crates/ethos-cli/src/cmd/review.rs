//! `ethos review --run DIR [--split val] [--out DIR]`: a self-contained folder with an HTML page
//! of the split's clips ranked by how much they are worth a look (playable model-input clips,
//! probabilities before/after calibration, loss over epochs, confusion-matrix filters, corrections
//! download for `ethos relabel`).
//! `ethos review --predictions DIR [--truth EVENTS] [--out DIR]`: an HTML timeline per video of
//! an `ethos predict` folder (video, predicted and true bouts, click to seek).

use std::path::PathBuf;

use ethos_pipeline::review::{
    ReviewOptions, TimelineReviewOptions, review_clips, review_timelines,
};
use ethos_pipeline::run_dir::run_checkpoint;

/// Arguments of `ethos review`.
#[derive(clap::Args)]
pub struct Args {
    /// A run directory: reviews its `best.ckpt` (else `last.ckpt`) on --split.
    #[arg(long, conflicts_with_all = ["checkpoint", "predictions"])]
    pub run: Option<PathBuf>,
    /// A checkpoint file instead of a run directory.
    #[arg(long, conflicts_with = "predictions")]
    pub checkpoint: Option<PathBuf>,
    /// An `ethos predict` output folder: timeline pages instead of clips.
    #[arg(long)]
    pub predictions: Option<PathBuf>,
    /// With --predictions: labelled events to show as true bouts.
    #[arg(long, requires = "predictions")]
    pub truth: Option<PathBuf>,
    /// Config to take the data settings from (default: the one stored in the checkpoint).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The split to review.
    #[arg(long, default_value = "val")]
    pub split: String,
    /// Output folder (default: RUN/review_<split>, or PREDICTIONS/review).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Ignore the run's calibration.json.
    #[arg(long)]
    pub no_calibration: bool,
    /// Override a config key (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// Runs `ethos review`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(pred) = args.predictions {
        let out = args.out.unwrap_or_else(|| pred.join("review"));
        let s = review_timelines(&TimelineReviewOptions {
            predictions: pred,
            truth: args.truth,
            out,
        })?;
        crate::output::line(format!(
            "review: {} timeline page(s); open {}",
            s.pages.len(),
            s.index.display()
        ));
        return crate::output::json(&s);
    }
    let checkpoint = match (&args.run, &args.checkpoint) {
        (Some(run), _) => run_checkpoint(run)?,
        (None, Some(c)) => c.clone(),
        (None, None) => {
            return Err(ethos_core::Error::bad_input(
                "ethos review: give --run DIR (or --checkpoint C) for clips, or --predictions DIR for timelines",
            )
            .into());
        }
    };
    let out = args.out.unwrap_or_else(|| {
        checkpoint
            .parent()
            .map(|p| p.join(format!("review_{}", args.split)))
            .unwrap_or_else(|| PathBuf::from(format!("review_{}", args.split)))
    });
    let s = review_clips(&ReviewOptions {
        checkpoint,
        config: args.config,
        overrides: args.set,
        split: args.split,
        out,
        no_calibration: args.no_calibration,
    })?;
    crate::output::line(format!(
        "review: {} clips ({} misclassified, {} suspected label noise); open {}",
        s.clips,
        s.misclassified,
        s.suspected,
        s.page.display()
    ));
    crate::output::json(&s)
}
