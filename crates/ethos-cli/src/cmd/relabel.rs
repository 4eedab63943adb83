//! `ethos relabel --events events.csv --corrections FILE --out events.v2.csv`: applies a
//! corrections CSV (`event_idx,action,note`; action = a class name or `drop`) and records what
//! changed in `OUT_STEM.changes.csv` (see `ethos_annotations::relabel`).

use std::path::PathBuf;

use ethos_annotations::relabel::{RelabelRequest, relabel};

/// Arguments of `ethos relabel`.
#[derive(clap::Args)]
pub struct Args {
    /// The events CSV to correct.
    #[arg(long)]
    pub events: PathBuf,
    /// The corrections CSV (`event_idx,action,note`).
    #[arg(long)]
    pub corrections: PathBuf,
    /// The new events CSV.
    #[arg(long)]
    pub out: PathBuf,
    /// Allowed class names, comma-separated (default: the events' behaviours).
    #[arg(long, value_delimiter = ',')]
    pub classes: Vec<String>,
}

/// Runs `ethos relabel`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let summary = relabel(&RelabelRequest {
        events: args.events,
        corrections: args.corrections,
        out: args.out,
        classes: args.classes,
    })
    .map_err(ethos_core::Error::from)?;
    crate::output::line(format!(
        "relabel: {} relabelled, {} dropped, {} unchanged -> {} ({} events; changes in {})",
        summary.relabelled,
        summary.dropped,
        summary.unchanged,
        summary.out,
        summary.events_out,
        summary.changes
    ));
    crate::output::json(&summary)?;
    Ok(())
}
