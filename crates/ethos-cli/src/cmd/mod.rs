//! One module per subcommand: each has an `Args` (clap) and a `run(args) -> anyhow::Result<()>`
//! that parses, calls one function of `ethos-pipeline` and prints. Commands never call each other.

pub mod bench;
pub mod cache;
pub mod calibrate;
pub mod demo;
pub mod demo_ssl;
pub mod doctor;
pub mod eval;
pub mod eval_events;
pub mod export;
pub mod export_feral;
pub mod extract;
pub mod import;
pub mod launch;
pub mod metrics;
pub mod model;
pub mod model_ssl;
pub mod predict;
pub mod pretrain;
pub mod pretrain_index;
pub mod probe;
pub mod relabel;
pub mod review;
pub mod sample;
pub mod slurm;
pub mod synth;
pub mod train;
pub mod weights;
