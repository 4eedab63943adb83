//! `ethos cache --config F [--jobs J]`: builds the decoded-clip cache of every event of every split
//! of a config. Resumable; progress on stderr, a JSON report on stdout; videos that fail to decode
//! are listed and, with `data.on_bad_video: fail`, make the exit code 2.

use std::path::PathBuf;

/// Arguments of `ethos cache`.
#[derive(clap::Args)]
pub struct Args {
    /// The run config (YAML); its `data` section says what to cache and where.
    #[arg(long)]
    pub config: PathBuf,
    /// Clips decoded in parallel (one decoder thread each); default: available cores.
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Only check the header and length of existing entries (default: every frame checksum too).
    #[arg(long)]
    pub quick: bool,
    /// Override a config key, e.g. `--set data.cache_short_side=320` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Video decoder: auto (NVDEC when a CUDA device is there, else the CPU), cpu or cuda;
    /// sets `data.decoder`.
    #[arg(long, value_name = "auto|cpu|cuda")]
    pub decoder: Option<ethos_video::Decoder>,
}

/// Runs `ethos cache`.
pub fn run(mut args: Args) -> anyhow::Result<()> {
    args.set
        .extend(args.decoder.map(|d| format!("data.decoder={d}")));
    let cfg = ethos_pipeline::RunConfig::load(&args.config, &args.set)?;
    let bar = crate::progress::Bar::new("cache", "clips");
    let s = ethos_pipeline::cache::build_cache(&cfg, args.jobs, !args.quick, &bar)?;
    bar.finish();
    let mut lines = vec![format!(
        "cache: {} clips: {} kept, {} built, {} rebuilt (corrupt), {} failed in {:.1} s",
        s.total,
        s.kept,
        s.built,
        s.rebuilt,
        s.bad_videos.len(),
        s.seconds
    )];
    for b in &s.bad_videos {
        lines.push(format!(
            "  bad video: event {} ({}): {}",
            b.event_idx,
            b.path.display(),
            b.reason
        ));
    }
    crate::output::lines(&lines);
    crate::output::json(&s)?;
    s.into_result()?;
    Ok(())
}
