//! `ethos bench ...`: benchmarks that report medians (machine-readable JSON on stdout, a table on
//! stderr). One sub-subcommand per benchmark.

use clap::Subcommand;

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
    Decode(super::bench_decode::Args),
    /// Model speed: eval forward and train forward+backward medians per batch size (random weights).
    Model(super::bench_model::Args),
    /// Long-video inference: video hours per wall hour and per CPU-hour, decode vs model time, for
    /// generated 1080p/4K H.264 sources (small model, random weights).
    Predict(super::bench_predict::Args),
    /// Internal: one measured decode in a fresh process (used by `bench decode`).
    #[command(hide = true)]
    DecodeChild(super::bench_decode::ChildArgs),
}

/// Runs `ethos bench`.
pub fn run(args: Args) -> anyhow::Result<()> {
    match args.what {
        What::Decode(a) => super::bench_decode::run(a),
        What::Model(a) => super::bench_model::run(a),
        What::Predict(a) => super::bench_predict::run(a),
        What::DecodeChild(a) => super::bench_decode::run_child(a),
    }
}
