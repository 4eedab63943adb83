//! `ethos pretrain-index --config F [--out RUN] [--jobs J]`: the unlabelled-footage clip index of
//! `ethos pretrain` (`ethos_pipeline::pretrain::pretrain_index`): lists, filters and samples
//! `pretrain.videos`, decodes every clip once into the decoded-clip cache, and writes the index
//! CSV, the skipped clips and a JSON summary (also printed to stdout: counts per skip reason,
//! video hours per CPU-hour).

use std::path::PathBuf;

use ethos_pipeline::pretrain::{IndexOptions, pretrain_index};

/// Arguments of `ethos pretrain-index`.
#[derive(clap::Args)]
pub struct Args {
    /// The run config (YAML) with a `pretrain` section.
    #[arg(long)]
    pub config: PathBuf,
    /// The run directory (default: `train.run_dir`): the index goes to `pretrain.index`, else
    /// `RUN/index.csv`; the clips to `pretrain.cache_dir`, else `RUN/cache/`.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Clips decoded in parallel (one decoder thread each); default: available cores.
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Override a config key, e.g. `--set pretrain.videos=/data/nvr` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// Runs `ethos pretrain-index`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = ethos_pipeline::RunConfig::load(&args.config, &args.set)?;
    let bar = crate::progress::Bar::new("pretrain-index", "clips");
    let s = pretrain_index(
        &cfg,
        &IndexOptions {
            out: args.out,
            threads: args.jobs,
        },
        &bar,
    )?;
    bar.finish();
    crate::output::line(format!(
        "pretrain-index: {} clips from {:.2} h of footage -> {} ({:.1} video hours per CPU-hour)",
        s.clips,
        s.hours_indexed,
        s.index.display(),
        s.video_hours_per_cpu_hour
    ));
    crate::output::json(&s)
}
