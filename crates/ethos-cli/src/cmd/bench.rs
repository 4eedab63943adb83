//! `ethos bench decode|model|predict`: benchmarks that report medians (machine-readable JSON on
//! stdout, a table on stderr). The work is in `ethos_pipeline::bench`.

use clap::Subcommand;
use ethos_pipeline::bench::{self, BenchOutput};

/// Arguments of `ethos bench`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub what: What,
}

/// The benchmarks.
#[derive(Subcommand)]
pub enum What {
    /// Video decode: one 16-frame sample at short side 256 vs decoding every 4K frame (CPU-s, peak RSS).
    Decode(bench::decode::DecodeBenchOptions),
    /// Model speed: eval forward and train forward+backward medians per batch size (random weights).
    Model(bench::model::ModelBenchOptions),
    /// Long-video inference: video hours per wall hour and per CPU-hour, decode vs model time, for
    /// generated 1080p/4K H.264 sources (small model, random weights).
    Predict(bench::predict::PredictBenchOptions),
    /// Internal: one measured decode in a fresh process (used by `bench decode`).
    #[command(hide = true)]
    DecodeChild(bench::decode::DecodeChildOptions),
}

/// Runs `ethos bench`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let out: BenchOutput = match &args.what {
        What::Decode(a) => {
            let exe = std::env::current_exe()?;
            bench::decode::run(a, &exe)?
        }
        What::Model(a) => bench::model::run(a)?,
        What::Predict(a) => bench::predict::run(a)?,
        What::DecodeChild(a) => return crate::output::stdout(&bench::decode::run_child(a)?),
    };
    crate::output::lines(&out.table);
    crate::output::json(&out.json)
}
