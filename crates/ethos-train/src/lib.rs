//! Training and evaluation of ethos: losses, optimiser and schedules, the resumable trainer,
//! metrics, reports, and long-video inference into behaviour timelines.

pub mod atomic;
pub mod checkpoint;
pub mod config;
pub mod history;
pub mod loss;
pub mod metrics;
pub mod optim;
pub mod predict;
pub mod predictions_csv;
pub mod report;
pub mod schedule;
pub mod timeline;
pub mod trainer;
