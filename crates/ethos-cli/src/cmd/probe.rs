//! `ethos probe VIDEO`: JSON facts about a video on stdout.

use std::path::PathBuf;

/// Arguments of `ethos probe`.
#[derive(clap::Args)]
pub struct Args {
    /// The video file.
    pub video: PathBuf,
}

/// Runs `ethos probe`.
pub fn run(args: Args) -> anyhow::Result<()> {
    ethos_video::init();
    anyhow::bail!("probe of {} is not implemented yet", args.video.display())
}
