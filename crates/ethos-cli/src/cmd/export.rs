//! `ethos export boris --events PRED.events.csv... --out project.boris`: events (predicted or
//! labelled) as a BORIS project to review and correct in (see `ethos_annotations::boris_export`).
//! `ethos export-feral` is a separate command.

use std::path::PathBuf;

use clap::Subcommand;
use ethos_annotations::boris_export::{ExportRequest, export_boris};

/// Arguments of `ethos export`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub to: To,
}

/// The export targets.
#[derive(Subcommand)]
pub enum To {
    /// Events CSVs → a BORIS project (one observation per video, classes as STATE behaviours).
    Boris(BorisArgs),
}

/// Arguments of `ethos export boris`.
#[derive(clap::Args)]
pub struct BorisArgs {
    /// Events CSVs (`NAME.events.csv` of `ethos predict`, or any events CSV); repeatable.
    #[arg(long, required = true, num_args = 1..)]
    pub events: Vec<PathBuf>,
    /// The project to write (`.boris`; `.boris.gz` for gzipped).
    #[arg(long)]
    pub out: PathBuf,
    /// Folder that relative `video` paths are under (videos are probed for fps and length).
    #[arg(long)]
    pub videos_root: Option<PathBuf>,
    /// Class order of the ethogram, comma-separated (default: the events' behaviours, sorted).
    #[arg(long, value_delimiter = ',')]
    pub classes: Vec<String>,
    /// Project name (default: the output's file name).
    #[arg(long)]
    pub name: Option<String>,
}

/// Runs `ethos export`.
pub fn run(args: Args) -> anyhow::Result<()> {
    ethos_video::init();
    match args.to {
        To::Boris(a) => {
            let summary = export_boris(&ExportRequest {
                events: a.events,
                out: a.out,
                videos_root: a.videos_root,
                classes: a.classes,
                name: a.name,
            })
            .map_err(ethos_core::Error::from)?;
            crate::output::line(format!(
                "export boris: {} events in {} observation(s) -> {}",
                summary.events, summary.observations, summary.out
            ));
            crate::output::json(&summary)?;
            Ok(())
        }
    }
}
