//! `ethos extract`: cuts every event of an events CSV out of its source video into a clip folder
//! (`evt_{event_idx:04}_{behavior}.mp4`, full frame, source rate). Parallel, resumable, atomic.

use std::path::PathBuf;

use ethos_video::Codec;

/// Arguments of `ethos extract`.
#[derive(clap::Args)]
pub struct Args {
    /// Events CSV (columns event_idx, video, start_s, duration_s, behavior, ...).
    #[arg(long)]
    pub events: PathBuf,
    /// Folder the `video` column is relative to.
    #[arg(long)]
    pub videos: PathBuf,
    /// Clip folder to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Class names in order, comma separated (default: the sorted behaviors of the CSV).
    #[arg(long, value_delimiter = ',')]
    pub classes: Vec<String>,
    /// Clips extracted in parallel (default: the number of CPUs).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Clip codec: h264 (MPEG-4 when libx264 is missing), hevc or mpeg4.
    #[arg(long, default_value = "h264")]
    pub codec: Codec,
}

/// Runs `ethos extract`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let bar = crate::progress::Bar::new("extract", "clips");
    let result = ethos_pipeline::extract::extract(
        &ethos_pipeline::extract::ExtractOptions {
            events: args.events,
            videos: args.videos,
            out: args.out.clone(),
            classes: args.classes,
            jobs: args.jobs,
            codec: args.codec,
        },
        &bar,
    );
    bar.finish();
    let s = result?;
    crate::output::line(format!(
        "extract: {} extracted, {} skipped (already complete), {} failed of {} in {:.1} s -> {}",
        s.extracted,
        s.skipped,
        s.failed.len(),
        s.total,
        s.seconds,
        args.out.display()
    ));
    Ok(())
}
