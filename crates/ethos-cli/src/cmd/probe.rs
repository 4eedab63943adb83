//! `ethos probe VIDEO`: JSON facts about a video on stdout.

use std::path::PathBuf;

/// Arguments of `ethos probe`.
#[derive(clap::Args)]
pub struct Args {
    /// The video file.
    pub video: PathBuf,
}

/// Runs `ethos probe`: codec, size, rates, exact frame count, duration, start time, keyframe
/// interval, rotation and B-frames as pretty JSON on stdout.
pub fn run(args: Args) -> anyhow::Result<()> {
    let info = ethos_pipeline::inspect::probe(&args.video)?;
    crate::output::json(&info)
}
