//! `ethos metrics --predictions CSV [--classes a,b,...] [--split NAME]`: scores a per-sample
//! predictions CSV (a `true` column and one `prob_<class>` column per class, e.g. a run's
//! `per_sample_loss.csv` or another tool's output) and prints the metrics JSON to stdout.

use std::path::PathBuf;

/// Arguments of `ethos metrics`.
#[derive(clap::Args)]
pub struct Args {
    /// Per-sample CSV with a `true` column (class name) and `prob_<class>` columns.
    #[arg(long)]
    pub predictions: PathBuf,
    /// Class list in class-index order (default: the `prob_<class>` columns in file order).
    #[arg(long, value_delimiter = ',')]
    pub classes: Option<Vec<String>>,
    /// Score only the rows whose `split` column equals this (required when the file mixes splits).
    #[arg(long)]
    pub split: Option<String>,
}

/// Runs `ethos metrics`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let classes: Option<Vec<String>> = args
        .classes
        .map(|list| list.into_iter().map(|c| c.trim().to_string()).collect());
    let (metrics, n) = ethos_pipeline::score::score_predictions(
        &args.predictions,
        classes.as_deref(),
        args.split.as_deref(),
    )?;
    tracing::info!("{}: {n} samples", args.predictions.display());
    crate::output::json(&metrics)
}
