//! `ethos export-feral --config F --out DIR [--size 256]`: FERAL-format clips (`DIR/videos/`,
//! square H.264, short side scaled then centre crop) and `DIR/feral.json`.

use std::path::PathBuf;

/// Arguments of `ethos export-feral`.
#[derive(clap::Args)]
pub struct Args {
    /// The run config (YAML): its data section names the events, splits and videos.
    #[arg(long)]
    pub config: PathBuf,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Clip side in pixels (even).
    #[arg(long, default_value_t = 256)]
    pub size: u32,
    /// Clips exported in parallel.
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
}

/// Runs `ethos export-feral`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = ethos_pipeline::RunConfig::load(&args.config, &[])?;
    let bar = crate::progress::Bar::new("export-feral", "clips");
    let result =
        ethos_pipeline::export_feral::export_feral(&cfg, &args.out, args.size, args.jobs, &bar);
    bar.finish();
    let s = result?;
    crate::output::line(format!("wrote {} clips and {}", s.clips, s.json.display()));
    Ok(())
}
