//! `ethos probe VIDEO`: JSON facts about a video on stdout.

use std::path::PathBuf;

use anyhow::Context;

/// Arguments of `ethos probe`.
#[derive(clap::Args)]
pub struct Args {
    /// The video file.
    pub video: PathBuf,
}

/// Runs `ethos probe`: codec, size, rates, exact frame count, duration, start time, keyframe
/// interval, rotation and B-frames as pretty JSON on stdout.
pub fn run(args: Args) -> anyhow::Result<()> {
    ethos_video::init();
    let info = ethos_video::probe(&args.video)
        .with_context(|| format!("probing {}", args.video.display()))?;
    println!("{}", serde_json::to_string_pretty(&info)?);
    Ok(())
}
