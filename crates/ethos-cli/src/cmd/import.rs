//! `ethos import boris|cvat|labelstudio FILE... --out events.csv`: annotation-tool files → the
//! events CSV ethos trains from (see `ethos_annotations::import`). The summary of what was read,
//! merged and skipped goes to stdout as JSON; every problem no policy handles is listed, exit 2.

use std::path::PathBuf;

use ethos_annotations::import::{ImportRequest, Tool, parse_splits, run_import};
use ethos_annotations::{OnBoundary, OnUnpaired, Policies};

/// The tool the files come from.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ToolArg {
    /// BORIS projects (.boris, .boris.gz) and tabular / aggregated event exports (TSV, CSV, XLSX).
    Boris,
    /// CVAT XML ("CVAT for video 1.1" tracks, "CVAT for images 1.1" tags).
    Cvat,
    /// Label Studio JSON exports of video tasks.
    Labelstudio,
}

/// What to do with a STATE event that is never stopped.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum UnpairedArg {
    /// Report it (exit 2).
    Error,
    /// Drop it.
    Drop,
    /// Close it at the end of its media file.
    CloseAtEnd,
}

/// What to do with an event that crosses from one media file into the next.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum BoundaryArg {
    /// Report it (exit 2).
    Error,
    /// One event per file.
    Split,
    /// Drop it.
    Drop,
}

/// What to do with media that has no file under --videos-root.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum MissingArg {
    /// Report it (exit 2).
    Error,
    /// Skip its events.
    Skip,
}

/// Arguments of `ethos import`.
#[derive(clap::Args)]
pub struct Args {
    /// The tool the files come from.
    #[arg(value_enum)]
    pub tool: ToolArg,
    /// Annotation files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The events CSV to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Folder of the videos: media paths are matched to its files by trailing path components,
    /// and videos are probed for fps and length. Without it, `video` is the path as written.
    #[arg(long)]
    pub videos_root: Option<PathBuf>,
    /// Split shares by whole videos, e.g. `train=0.8,val=0.2` (adds the `split` column and
    /// writes STEM.NAME.csv per split beside --out).
    #[arg(long)]
    pub splits: Option<String>,
    /// Seed of the split assignment.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// POINT events become windows of this many seconds centred on the point (default: skipped).
    #[arg(long)]
    pub point_seconds: Option<f64>,
    /// STATE events without a STOP (or STOP without START).
    #[arg(long, value_enum, default_value = "error")]
    pub on_unpaired: UnpairedArg,
    /// Events that cross a media-file boundary (several files in one BORIS player).
    #[arg(long, value_enum, default_value = "error")]
    pub on_boundary: BoundaryArg,
    /// Media with no file under --videos-root.
    #[arg(long, value_enum, default_value = "error")]
    pub on_missing_video: MissingArg,
    /// Drop records with invalid values, unknown behaviours or times outside their media
    /// (each is listed in the summary) instead of failing.
    #[arg(long)]
    pub skip_invalid: bool,
    /// Frame rate (CVAT when the video cannot be probed; Label Studio: overrides the others).
    #[arg(long)]
    pub fps: Option<f64>,
    /// CVAT: the video of files whose XML names none (no <source>).
    #[arg(long)]
    pub video: Option<String>,
    /// Label Studio: the labelling config (XML) with <Video frameRate="...">.
    #[arg(long)]
    pub label_config: Option<PathBuf>,
}

/// Runs `ethos import`.
pub fn run(args: Args) -> anyhow::Result<()> {
    ethos_video::init();
    let splits = match &args.splits {
        Some(s) => parse_splits(s).map_err(ethos_core::Error::from)?,
        None => Vec::new(),
    };
    let req = ImportRequest {
        tool: match args.tool {
            ToolArg::Boris => Tool::Boris,
            ToolArg::Cvat => Tool::Cvat,
            ToolArg::Labelstudio => Tool::LabelStudio,
        },
        files: args.files,
        out: args.out,
        videos_root: args.videos_root,
        policies: Policies {
            on_unpaired: match args.on_unpaired {
                UnpairedArg::Error => OnUnpaired::Error,
                UnpairedArg::Drop => OnUnpaired::Drop,
                UnpairedArg::CloseAtEnd => OnUnpaired::CloseAtEnd,
            },
            on_boundary: match args.on_boundary {
                BoundaryArg::Error => OnBoundary::Error,
                BoundaryArg::Split => OnBoundary::Split,
                BoundaryArg::Drop => OnBoundary::Drop,
            },
            point_seconds: args.point_seconds,
            skip_missing_video: matches!(args.on_missing_video, MissingArg::Skip),
            skip_invalid: args.skip_invalid,
        },
        fps: args.fps,
        video: args.video,
        label_config: args.label_config,
        splits,
        seed: args.seed,
    };
    let summary = run_import(&req).map_err(ethos_core::Error::from)?;
    crate::output::line(format!(
        "import: {} events of {} videos from {} file(s) -> {} (skipped: {:?})",
        summary.events,
        summary.videos,
        summary.files.len(),
        summary.out,
        summary.skipped
    ));
    crate::output::json(&summary)?;
    Ok(())
}
