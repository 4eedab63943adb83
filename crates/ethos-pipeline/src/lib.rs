//! The pipeline layer of ethos: everything a command, the demo or a test runs, as typed library
//! calls that take typed options and return typed summaries. The `ethos` binary only parses flags,
//! calls one of these and prints.
//!
//! - [`config`]: the one place a run configuration is composed (YAML + `--set` + the config stored
//!   in a checkpoint), with every rule checked before a run starts.
//! - [`run_dir`]: which checkpoint a run offers, where a run starts or resumes.
//! - [`source`]: the loader → trainer adapter.
//! - One module per step: [`train`], [`evaluate`], [`predict`], [`cache`], [`extract`],
//!   [`export_feral`], [`synth`], [`sample`], [`score`] (metrics, eval-events), [`inspect`]
//!   (probe, doctor), [`model`] (forward, summary), [`weights`], [`bench`], [`slurm`], and
//!   [`demo`], which composes the others.
//!
//! Errors are [`ethos_core::Error`]: each says whether the user's input caused it (exit code 2) or
//! not (exit code 1).

pub mod bench;
pub mod cache;
pub mod calibrate;
pub mod config;
pub mod demo;
pub mod demo_ssl;
pub mod distributed;
pub mod evaluate;
pub mod export_feral;
pub mod extract;
pub mod inspect;
pub mod launch;
pub mod model;
pub mod output_dir;
pub mod predict;
pub mod pretrain;
pub mod progress;
pub mod review;
pub mod run_dir;
pub mod run_logs;
pub mod sample;
pub mod score;
pub mod signals;
pub mod slurm;
pub mod slurm_checks;
pub mod slurm_parallel;
pub mod source;
pub mod synth;
pub mod timeline_rule;
pub mod train;
pub mod weights;

use std::path::Path;

pub use config::RunConfig;
pub use ethos_core::{Error, ErrorKind};

/// Results of the pipeline.
pub type Result<T> = std::result::Result<T, Error>;

/// Writes `value` as pretty JSON to `path`, atomically.
pub fn write_json<T: serde::Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::internal(format!("serialising {}: {e}", path.display())))?;
    ethos_core::fs::write_bytes_atomic(path, text.as_bytes()).map_err(|e| Error::output_io(path, e))
}
