//! Training of ethos on libtorch: losses, the optimiser and schedules, checkpoints and the
//! resumable trainer (epochs, validation, early stopping, history). Metrics and reports are in
//! `ethos-eval`, long-video inference in `ethos-infer`.

pub mod checkpoint;
pub mod config;
pub mod data_parallel;
pub mod loss;
pub mod observer;
pub mod optim;
pub mod pretrain;
pub mod schedule;
pub mod stages;
pub mod trainer;
