//! `ethos eval-events --pred EVENTS --truth EVENTS`: bout-level and frame-level agreement of two
//! events CSVs (e.g. `ethos predict`'s merged events against labelled ones). The matching rule is
//! documented in `ethos_train::timeline`.

use std::path::PathBuf;

use anyhow::Context;
use ethos_data::manifest::{Event, EventsManifest};
use ethos_train::timeline::{Bout, evaluate_bouts};

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
    if !(args.tolerance >= 0.0 && args.tolerance.is_finite()) {
        return Err(
            crate::exit::BadInput(format!("--tolerance {}: must be >= 0", args.tolerance)).into(),
        );
    }
    if !(args.frame_step > 0.0 && args.frame_step.is_finite()) {
        return Err(crate::exit::BadInput(format!(
            "--frame-step {}: must be > 0",
            args.frame_step
        ))
        .into());
    }
    let truth = EventsManifest::load(&args.truth, None, &args.classes)
        .with_context(|| format!("reading labelled events {}", args.truth.display()))?;
    let pred = EventsManifest::load(&args.pred, None, &truth.classes)
        .with_context(|| format!("reading predicted events {}", args.pred.display()))?;
    let bouts = |events: &[Event]| -> Vec<Bout> {
        events
            .iter()
            .map(|e| Bout {
                video: e.video.display().to_string(),
                class_index: e.class_index,
                start_s: e.start_s,
                end_s: e.start_s + e.duration_s,
                score: 1.0,
            })
            .collect()
    };
    let eval = evaluate_bouts(
        &bouts(&pred.events),
        &bouts(&truth.events),
        &truth.classes,
        args.tolerance,
        args.frame_step,
    );
    eprintln!(
        "{:<12} {:>6} {:>6} {:>7} {:>9} {:>7} {:>6} {:>8}",
        "class", "pred", "true", "matched", "precision", "recall", "F1", "frame F1"
    );
    for (name, s) in &eval.bouts {
        eprintln!(
            "{:<12} {:>6} {:>6} {:>7} {:>9.3} {:>7.3} {:>6.3} {:>8.3}",
            name, s.predicted, s.truth, s.matched, s.precision, s.recall, s.f1, eval.frame_f1[name]
        );
    }
    eprintln!(
        "macro bout F1 {:.3}, frame accuracy {:.3} (tolerance {} s)",
        eval.macro_bout_f1, eval.frame_accuracy, eval.tolerance_s
    );
    println!("{}", serde_json::to_string_pretty(&eval)?);
    Ok(())
}
