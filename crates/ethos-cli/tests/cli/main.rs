//! Integration tests of the `ethos` binary on small synthetic videos, one module per command
//! or concern. One test binary rather than one per file: each binary links libtorch, FFmpeg and the
//! whole workspace, and ~25 of them filled CI's disk.

mod annotations;
mod bench_predict;
mod common;
mod corpus;
mod data;
mod distributed;
mod eval_events;
mod feral;
mod feral_train;
mod kill;
mod long_video;
mod metrics;
mod model;
mod predict;
mod pretrain;
mod reliability;
mod review;
mod slurm;
mod slurm_signal_race;
mod synth;
mod train;
mod two_stage;
mod video;
mod vjepa2_model;
mod vjepa2_ssl;
mod weights;
