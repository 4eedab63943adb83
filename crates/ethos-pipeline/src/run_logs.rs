//! Run logs that other tools read, attached to a trainer as observers: TensorBoard event files
//! (`train.tensorboard: true`, in `RUN/tensorboard/`) and each sample's loss per epoch
//! (`train.per_sample_epochs: true`, `RUN/per_sample_epochs.csv`).

use std::path::Path;

use ethos_train::observer::{PerSampleObserver, TensorBoardObserver};
use ethos_train::trainer::Trainer;

use crate::Result;
use crate::config::RunConfig;

/// Adds the configured observers to `trainer`, writing into `run_dir`.
pub fn attach(trainer: &mut Trainer<'_>, cfg: &RunConfig, run_dir: &Path) -> Result<()> {
    if cfg.train.per_sample_epochs {
        trainer.add_observer(Box::new(PerSampleObserver::new(
            run_dir,
            &cfg.data.classes,
        )?));
    }
    if cfg.train.tensorboard {
        let tb = TensorBoardObserver::new(run_dir)?;
        tracing::info!(
            "tensorboard: event files in {}",
            run_dir.join("tensorboard").display()
        );
        trainer.add_observer(Box::new(tb));
    }
    Ok(())
}
