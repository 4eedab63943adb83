//! One module per subcommand: each has an `Args` (clap) and a `run(args) -> anyhow::Result<()>`.

pub mod bench;
pub mod bench_decode;
pub mod bench_model;
pub mod bench_predict;
pub mod cache;
pub mod demo;
pub mod doctor;
pub mod eval;
pub mod eval_events;
pub mod export;
pub mod export_feral;
pub mod extract;
pub mod import;
pub mod metrics;
pub mod model;
pub mod predict;
pub mod probe;
pub mod relabel;
pub mod sample;
pub mod sample_config;
pub mod slurm;
pub mod synth;
pub mod train;
pub mod weights;
