//! Observers of a training run: called by the [`crate::trainer::Trainer`] after every
//! `train.log_every_steps` optimiser steps and at the end of each epoch's train and validation
//! passes (before the epoch's checkpoints are written). They write run logs that other tools read:
//! TensorBoard event files ([`TensorBoardObserver`]) and each sample's loss per epoch
//! ([`PerSampleObserver`], `per_sample_epochs.csv`).

use std::path::{Path, PathBuf};

use ethos_eval::history::HistoryRow;
use ethos_eval::metrics::MetricSet;
use ethos_eval::sample_history::{EpochSamples, SampleHistory};
use ethos_eval::tensorboard::{EventWriter, Value};

use crate::trainer::{EvalOutput, TrainError};

/// What the trainer reports every `train.log_every_steps` optimiser steps.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    /// Epoch in progress, 1-based.
    pub epoch: usize,
    /// Optimiser steps taken so far in the run.
    pub global_step: u64,
    /// Loss of the batch that completed the step.
    pub batch_loss: f64,
    /// Learning rate of the step.
    pub lr: f64,
}

/// What the trainer reports after an epoch's train and validation passes.
pub struct EpochRecord<'a> {
    /// The epoch, 1-based.
    pub epoch: usize,
    /// Optimiser steps taken so far in the run.
    pub global_step: u64,
    /// Class names.
    pub classes: &'a [String],
    /// Event id of every train-pass sample (pass order).
    pub train_event_idx: &'a [u32],
    /// Their labels.
    pub train_labels: &'a [usize],
    /// Their train-pass class probabilities (augmented input, dropout on).
    pub train_probs: &'a [Vec<f64>],
    /// The validation pass.
    pub val: &'a EvalOutput,
    /// Train-pass metrics.
    pub train_metrics: &'a MetricSet,
    /// Validation metrics.
    pub val_metrics: &'a MetricSet,
    /// The epoch's history row.
    pub history: &'a HistoryRow,
}

/// Something that watches a training run; errors stop the run.
pub trait TrainObserver {
    /// Called every `train.log_every_steps` optimiser steps.
    fn on_step(&mut self, _step: &StepRecord) -> Result<(), TrainError> {
        Ok(())
    }
    /// Called after each epoch's passes.
    fn on_epoch(&mut self, epoch: &EpochRecord<'_>) -> Result<(), TrainError>;
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes every train and val sample's loss each epoch to `per_sample_epochs.csv` (see
/// [`ethos_eval::sample_history`]). On a resumed run, records of epochs not yet completed again
/// are replaced.
pub struct PerSampleObserver {
    path: PathBuf,
    history: SampleHistory,
}

impl PerSampleObserver {
    /// Records into `run_dir/per_sample_epochs.csv`, continuing the file a resumed run left.
    pub fn new(run_dir: &Path, classes: &[String]) -> Result<Self, TrainError> {
        let path = run_dir.join(ethos_eval::sample_history::FILE_NAME);
        let history = match SampleHistory::read(&path, classes) {
            Ok(h) => h,
            Err(e) if !path.exists() => {
                let _ = e;
                SampleHistory::new(classes)
            }
            Err(e) => {
                tracing::warn!("{e}; starting a new per-sample record");
                SampleHistory::new(classes)
            }
        };
        Ok(PerSampleObserver { path, history })
    }
}

impl TrainObserver for PerSampleObserver {
    fn on_epoch(&mut self, e: &EpochRecord<'_>) -> Result<(), TrainError> {
        self.history.truncate_from(e.epoch);
        let train = EpochSamples {
            split: "train",
            event_idx: e.train_event_idx,
            labels: e.train_labels,
            probs: e.train_probs,
        };
        let val = EpochSamples {
            split: "val",
            event_idx: &e.val.event_idx,
            labels: &e.val.labels,
            probs: &e.val.probs,
        };
        self.history.push_epoch(e.epoch, &train);
        self.history.push_epoch(e.epoch, &val);
        self.history.write(&self.path).map_err(io(&self.path))
    }
}

/// Writes TensorBoard scalars (`train/batch_loss`, `train/lr` per logging interval; per epoch
/// `epoch/train_loss`, `epoch/val_loss`, `epoch/lr`, `epoch/train_macro_f1`, `epoch/train_val_gap`
/// and every validation metric as `val/<metric>`) and the validation confusion matrix as an image
/// (`val/confusion`) into `run_dir/tensorboard/`.
pub struct TensorBoardObserver {
    writer: EventWriter,
    dir: PathBuf,
}

impl TensorBoardObserver {
    /// A new event file in `run_dir/tensorboard/` (a resumed run adds a file; TensorBoard reads
    /// them together).
    pub fn new(run_dir: &Path) -> Result<Self, TrainError> {
        let dir = run_dir.join("tensorboard");
        let writer = EventWriter::create(&dir).map_err(io(&dir))?;
        Ok(TensorBoardObserver { writer, dir })
    }
}

impl TrainObserver for TensorBoardObserver {
    fn on_step(&mut self, s: &StepRecord) -> Result<(), TrainError> {
        let step = s.global_step as i64;
        self.writer
            .scalars(
                step,
                &[("train/batch_loss", s.batch_loss), ("train/lr", s.lr)],
            )
            .map_err(io(&self.dir))
    }

    fn on_epoch(&mut self, e: &EpochRecord<'_>) -> Result<(), TrainError> {
        let h = e.history;
        let step = e.epoch as i64;
        let mut values: Vec<(String, f64)> = vec![
            ("epoch/train_loss".into(), h.train_loss),
            ("epoch/val_loss".into(), h.val_loss),
            ("epoch/lr".into(), h.lr),
            ("epoch/train_macro_f1".into(), h.train_macro_f1),
            ("epoch/train_val_gap".into(), h.train_val_gap),
            ("epoch/seconds".into(), h.epoch_seconds),
        ];
        for (name, v) in e.val_metrics.scalars() {
            if let Some(v) = v
                && !name.starts_with("support_")
            {
                values.push((format!("val/{name}"), v));
            }
        }
        let refs: Vec<(&str, f64)> = values.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        self.writer.scalars(step, &refs).map_err(io(&self.dir))?;
        let png = ethos_eval::report::confusion_png(e.classes, &e.val_metrics.confusion)
            .map_err(|err| TrainError::Internal(format!("confusion image: {err}")))?;
        self.writer
            .write(
                step,
                &[(
                    "val/confusion",
                    Value::Image {
                        width: png.1,
                        height: png.2,
                        png: png.0,
                    },
                )],
            )
            .map_err(io(&self.dir))
    }
}
