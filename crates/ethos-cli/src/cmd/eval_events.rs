//! `ethos eval-events --pred EVENTS --truth EVENTS`: bout-level and frame-level agreement of two
//! events CSVs (e.g. `ethos predict`'s merged events against labelled ones). The matching rule is
//! documented in `ethos_eval::timeline`; videos are matched as `ethos_pipeline::score` says.

use std::path::PathBuf;

/// Arguments of `ethos eval-events`.
#[derive(clap::Args)]
pub struct Args {
    /// Predicted events CSV (events-CSV columns; extra columns such as `score` are ignored).
    #[arg(long)]
    pub pred: PathBuf,
    /// Labelled events CSV.
    #[arg(long)]
    pub truth: PathBuf,
    /// Seconds by which both bouts are widened on each side before testing for overlap.
    #[arg(long, default_value_t = 1.0)]
    pub tolerance: f64,
    /// Step of the frame-level comparison, seconds.
    #[arg(long, default_value_t = 0.1)]
    pub frame_step: f64,
    /// Class list (comma-separated); default: the classes of the truth file, sorted.
    #[arg(long, value_delimiter = ',')]
    pub classes: Vec<String>,
}

/// Runs `ethos eval-events`: JSON to stdout, a table to stderr.
pub fn run(args: Args) -> anyhow::Result<()> {
    let eval = ethos_pipeline::score::evaluate_events(
        &args.pred,
        &args.truth,
        &args.classes,
        args.tolerance,
        args.frame_step,
    )?;
    let mut table = vec![format!(
        "{:<12} {:>6} {:>6} {:>7} {:>9} {:>7} {:>6} {:>8}",
        "class", "pred", "true", "matched", "precision", "recall", "F1", "frame F1"
    )];
    for (name, s) in &eval.bouts {
        table.push(format!(
            "{:<12} {:>6} {:>6} {:>7} {:>9.3} {:>7.3} {:>6.3} {:>8.3}",
            name,
            s.predicted,
            s.truth,
            s.matched,
            s.precision,
            s.recall,
            s.f1,
            eval.frame_f1.get(name).copied().unwrap_or(0.0)
        ));
    }
    table.push(format!(
        "macro bout F1 {:.3}, frame accuracy {:.3} (tolerance {} s)",
        eval.macro_bout_f1, eval.frame_accuracy, eval.tolerance_s
    ));
    crate::output::lines(&table);
    crate::output::json(&eval)
}
