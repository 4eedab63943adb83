//! Evaluation of ethos, with no tensor engine: clip-level metrics that match scikit-learn
//! ([`metrics`]), per-sample prediction CSVs ([`predictions_csv`]), the training history
//! ([`history`]), HTML reports with plots ([`report`]), and behaviour timelines: window
//! probabilities merged into bouts and bout-level scoring against labelled events ([`timeline`]).
//!
//! Commands that only score files (`ethos metrics`, `ethos eval-events`) need nothing else.

pub mod calibration;
pub mod history;
pub mod metrics;
pub mod plots;
pub mod predictions_csv;
pub mod report;
pub mod sample_history;
pub mod tensorboard;
pub mod timeline;
