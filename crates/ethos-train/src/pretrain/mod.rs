//! Self-supervised domain adaptation (experiment E3): V-JEPA 2's own objective
//! ([`ethos_models::vjepa2_ssl`]) trained on clips of unlabelled footage.
//!
//! One optimiser step per batch: masks from (seed, step) ([`MultiBlockMasks`]), the step under
//! autocast (`train.amp`, CUDA only), backward (loss-scaled for fp16), AdamW with the
//! learning rate of the step (warmup + cosine, [`crate::schedule`]), gradient clipping, then the
//! EMA update of the target encoder with the momentum of the step ([`ema_momentum`]).
//!
//! **Exact resume.** Batches depend on (loader seed, epoch, position), masks on (seed, step), and
//! libtorch's generator (dropout, stochastic depth) is re-seeded from (seed, step) before every
//! step, so the random state of a run is its seed and step count. A checkpoint
//! ([`save_checkpoint`]: online encoder + predictor, target encoder, AdamW moments and step counts,
//! loss scaler, step, seed, history, the partial logging interval) resumes bit-exactly on the CPU.
//! Checkpoints are one safetensors file written atomically (temporary name, fsync, rename).
//!
//! **Data parallel** ([`Pretrainer::with_data_parallel`]). Each rank loads its contiguous part of
//! every global batch (`ethos_data::shard::Shard::SplitBatches`); the masks of the step are drawn
//! for the whole global batch and each rank takes its rows, so every sample gets the mask one
//! process would give it. A rank's loss is weighted by its share of the batch before the backward
//! and the gradients are summed over the ranks: every rank then holds the gradient of the global
//! batch's mean loss, clips and steps identically, and the EMA targets stay equal. Only rank 0
//! writes (history, checkpoints, `encoder/`); a stop signal on any rank stops them all at the
//! same step. Dropout and drop-path draws come from (seed, step, rank), so runs compared number
//! for number with one process need them off.

pub mod config;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use ethos_models::vjepa2_masks::{MaskError, MaskGroup, MultiBlockMasks};
use ethos_models::vjepa2_ssl::{ExportEncoder, SslError, SslMasks, Vjepa2Ssl, ema_momentum};
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use crate::checkpoint::CheckpointError;
use crate::data_parallel::DataParallel;
use crate::optim::{AdamW, AmpMode, GradScaler, autocast};
use crate::schedule::Schedule;
use crate::trainer::{BatchSource, Progress, batch_tensor};
pub use config::{ExportWhich, PretrainConfig, PretrainConfigError};

/// Version of the pretraining checkpoint layout.
pub const PRETRAIN_CHECKPOINT_FORMAT: u32 = 1;
/// The safetensors metadata value that marks a pretraining checkpoint.
pub const PRETRAIN_FORMAT_VALUE: &str = "ethos-pretrain-checkpoint";
const FORMAT_KEY: &str = "format";
const STATE_KEY: &str = "ethos_pretrain_state";
const CONFIG_KEY: &str = "ethos_config";
const ONLINE_PREFIX: &str = "online.";
const TARGET_PREFIX: &str = "target.";
const OPTIM_PREFIX: &str = "optim.";
/// The run's Hugging Face folder (`config.json` + `model.safetensors`).
pub const ENCODER_DIR: &str = "encoder";
/// The run's resumable checkpoint.
pub const PRETRAIN_CKPT: &str = "last.ckpt";
/// Purpose word of the per-step libtorch seed.
const DROPOUT_STREAM: u64 = 0x0073_736c_6472_6f70;

/// Errors of a pretraining run.
#[derive(Debug, thiserror::Error)]
pub enum PretrainError {
    /// The V-JEPA 2 step, its weights or the export failed.
    #[error(transparent)]
    Ssl(#[from] SslError),
    /// The mask groups cannot be drawn on this token grid.
    #[error(transparent)]
    Masks(#[from] MaskError),
    /// The loader failed (a cache entry, a video).
    #[error("loading pretraining clips")]
    Data(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A collective of a data-parallel run failed (a rank died or timed out).
    #[error(transparent)]
    Distributed(#[from] crate::trainer::TrainError),
    /// A checkpoint could not be read or written.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A run file could not be written.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The loss became NaN or infinite.
    #[error(
        "the pretraining loss is not finite ({value}) at step {step}; stopping. The last good \
         checkpoint is {last}. Try a lower optim.lr, optim.grad_clip or train.amp: off"
    )]
    NonFiniteLoss {
        /// 0-based step.
        step: u64,
        /// The loss.
        value: f64,
        /// The checkpoint that stays valid.
        last: String,
    },
    /// A checkpoint that does not fit this run (seed, model).
    #[error("{0}")]
    BadInput(String),
}

impl ethos_core::Classify for PretrainError {
    fn kind(&self) -> ethos_core::ErrorKind {
        use ethos_core::ErrorKind;
        match self {
            PretrainError::Ssl(e) => e.kind(),
            PretrainError::Masks(e) => e.kind(),
            PretrainError::Checkpoint(e) => e.kind(),
            PretrainError::Distributed(e) => e.kind(),
            PretrainError::Io { source, .. } => ErrorKind::of_output_io(source),
            PretrainError::BadInput(_) => ErrorKind::BadInput,
            PretrainError::Data(_) | PretrainError::NonFiniteLoss { .. } => ErrorKind::Internal,
        }
    }
}

/// Floats in checkpoint JSON as their shortest decimal text: serde_json's default float parser
/// may round the last bit, and a resumed run must continue with the exact sums.
mod exact_f64 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(D::Error::custom)
    }
}

/// One `history.csv` row: the mean loss of a logging interval ending at `step`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PretrainRow {
    /// Optimiser steps done (1-based end of the interval).
    pub step: u64,
    /// Mean loss of the interval's steps.
    #[serde(with = "exact_f64")]
    pub loss: f64,
    /// Learning rate of the interval's last step.
    #[serde(with = "exact_f64")]
    pub lr: f64,
    /// EMA momentum of the interval's last step.
    #[serde(with = "exact_f64")]
    pub momentum: f64,
    /// Clips per second over the interval (wall time, loader included).
    #[serde(with = "exact_f64")]
    pub samples_per_s: f64,
    /// Wall seconds of the run so far (over every invocation).
    #[serde(with = "exact_f64")]
    pub elapsed_s: f64,
}

/// Sums of the logging interval in progress.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IntervalSums {
    /// Sum of the step losses.
    #[serde(with = "exact_f64")]
    pub loss_sum: f64,
    /// Steps in the interval so far.
    pub steps: u64,
    /// Clips in the interval so far.
    pub samples: u64,
    /// Wall seconds of the interval so far.
    #[serde(with = "exact_f64")]
    pub seconds: f64,
}

/// The JSON state of a pretraining checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PretrainState {
    /// Layout version ([`PRETRAIN_CHECKPOINT_FORMAT`]).
    pub format_version: u32,
    /// Optimiser steps done.
    pub step: u64,
    /// Steps of the whole run.
    pub total_steps: u64,
    /// Seed of masks and dropout.
    pub seed: u64,
    /// Hash of the resolved configuration.
    pub config_hash: String,
    /// AdamW scalars (per-parameter step counts, lr).
    pub optimizer: serde_json::Value,
    /// fp16 loss scaler.
    pub scaler: serde_json::Value,
    /// Rows written so far.
    pub history: Vec<PretrainRow>,
    /// The logging interval in progress.
    pub interval: IntervalSums,
    /// Wall seconds of the run so far.
    #[serde(with = "exact_f64")]
    pub elapsed_s: f64,
}

/// A pretraining checkpoint read back.
pub struct PretrainCheckpoint {
    /// The state.
    pub state: PretrainState,
    /// The resolved configuration it was written with.
    pub config: serde_json::Value,
    /// Online encoder + predictor tensors (`encoder.*`, `predictor.*`).
    pub online: Vec<(String, Tensor)>,
    /// Target encoder tensors (`encoder.*`).
    pub target: Vec<(String, Tensor)>,
    /// AdamW tensors.
    pub optim: Vec<(String, Tensor)>,
}

fn fmt_err(path: &Path, msg: impl Into<String>) -> CheckpointError {
    CheckpointError::Format {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// Writes a pretraining checkpoint atomically.
pub fn save_checkpoint(
    path: &Path,
    ssl: &Vjepa2Ssl,
    optim: &AdamW,
    state: &PretrainState,
    config: &serde_json::Value,
) -> Result<(), PretrainError> {
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    for (prefix, vs) in [
        (ONLINE_PREFIX, ssl.online_vs()),
        (TARGET_PREFIX, ssl.target_vs()),
    ] {
        tensors.extend(
            vs.variables()
                .into_iter()
                .map(|(k, t)| (format!("{prefix}{k}"), t.detach())),
        );
    }
    let (optim_tensors, _) = optim.state_dict();
    tensors.extend(
        optim_tensors
            .into_iter()
            .map(|(k, t)| (format!("{OPTIM_PREFIX}{k}"), t)),
    );
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let state_json = serde_json::to_string(state).map_err(|e| fmt_err(path, e.to_string()))?;
    let config_json = serde_json::to_string(config).map_err(|e| fmt_err(path, e.to_string()))?;
    let metadata = [
        (FORMAT_KEY.to_string(), PRETRAIN_FORMAT_VALUE.to_string()),
        (STATE_KEY.to_string(), state_json),
        (CONFIG_KEY.to_string(), config_json),
    ]
    .into_iter()
    .collect();
    ethos_models::weights::write_safetensors_atomic_with_metadata(path, &tensors, Some(metadata))
        .map_err(|e| match e {
            ethos_models::weights::WeightsError::Io { path, source } => {
                PretrainError::Io { path, source }
            }
            other => PretrainError::Checkpoint(fmt_err(path, other.to_string())),
        })
}

/// Reads a pretraining checkpoint (tensors on the CPU). A training checkpoint of `ethos train`
/// or any other file is an error naming it.
pub fn load_checkpoint(path: &Path) -> Result<PretrainCheckpoint, CheckpointError> {
    let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| fmt_err(path, format!("not a valid safetensors file: {e}")))?;
    let meta = meta.metadata().clone().unwrap_or_default();
    match meta.get(FORMAT_KEY).map(String::as_str) {
        Some(PRETRAIN_FORMAT_VALUE) => {}
        Some("ethos-checkpoint") => {
            return Err(fmt_err(
                path,
                "a training checkpoint of `ethos train`, not of `ethos pretrain`",
            ));
        }
        _ => return Err(fmt_err(path, "not an ethos pretraining checkpoint")),
    }
    let state: PretrainState = serde_json::from_str(meta.get(STATE_KEY).map_or("", String::as_str))
        .map_err(|e| fmt_err(path, format!("pretraining state: {e}")))?;
    if state.format_version > PRETRAIN_CHECKPOINT_FORMAT {
        return Err(fmt_err(
            path,
            format!(
                "format version {} is newer than this build ({PRETRAIN_CHECKPOINT_FORMAT})",
                state.format_version
            ),
        ));
    }
    let config = serde_json::from_str(meta.get(CONFIG_KEY).map_or("null", String::as_str))
        .map_err(|e| fmt_err(path, format!("stored config: {e}")))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| fmt_err(path, format!("damaged tensor data: {e}")))?;
    let mut ck = PretrainCheckpoint {
        state,
        config,
        online: Vec::new(),
        target: Vec::new(),
        optim: Vec::new(),
    };
    for (name, view) in st.tensors() {
        let kind = match view.dtype() {
            safetensors::Dtype::F32 => tch::Kind::Float,
            safetensors::Dtype::F64 => tch::Kind::Double,
            safetensors::Dtype::BF16 => tch::Kind::BFloat16,
            safetensors::Dtype::F16 => tch::Kind::Half,
            safetensors::Dtype::I64 => tch::Kind::Int64,
            other => return Err(fmt_err(path, format!("tensor {name}: dtype {other:?}"))),
        };
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        let t = Tensor::from_data_size(view.data(), &shape, kind);
        let (list, rest) = if let Some(n) = name.strip_prefix(ONLINE_PREFIX) {
            (&mut ck.online, n)
        } else if let Some(n) = name.strip_prefix(TARGET_PREFIX) {
            (&mut ck.target, n)
        } else if let Some(n) = name.strip_prefix(OPTIM_PREFIX) {
            (&mut ck.optim, n)
        } else {
            return Err(fmt_err(path, format!("unexpected tensor {name}")));
        };
        list.push((rest.to_string(), t));
    }
    Ok(ck)
}

/// Writes `history.csv` (`step,loss,lr,momentum,samples_per_s,elapsed_s`) atomically.
pub fn write_history(path: &Path, rows: &[PretrainRow]) -> std::io::Result<()> {
    ethos_core::fs::write_atomic(path, |w| {
        let mut csv = csv::Writer::from_writer(w);
        csv.write_record([
            "step",
            "loss",
            "lr",
            "momentum",
            "samples_per_s",
            "elapsed_s",
        ])
        .map_err(std::io::Error::other)?;
        for r in rows {
            csv.write_record([
                r.step.to_string(),
                format!("{}", r.loss),
                format!("{}", r.lr),
                format!("{}", r.momentum),
                format!("{:.3}", r.samples_per_s),
                format!("{:.3}", r.elapsed_s),
            ])
            .map_err(std::io::Error::other)?;
        }
        csv.flush()
    })
}

/// Everything a [`Pretrainer`] needs besides the model and the data.
pub struct PretrainSetup {
    /// The `pretrain:` section.
    pub cfg: PretrainConfig,
    /// Optimiser steps of the run.
    pub total_steps: u64,
    /// Seed of masks and dropout (`train.seed`).
    pub seed: u64,
    /// Learning rate per step.
    pub schedule: Schedule,
    /// Global-norm clip (`optim.grad_clip`).
    pub grad_clip: Option<f64>,
    /// Mixed precision on CUDA.
    pub amp: AmpMode,
    /// The model's device.
    pub device: Device,
    /// The run directory.
    pub run_dir: PathBuf,
    /// The resolved config (stored in checkpoints).
    pub config_json: serde_json::Value,
    /// Its hash.
    pub config_hash: String,
    /// Stop (resumably) after this many steps of this invocation.
    pub stop_after_steps: Option<u64>,
}

/// How a [`Pretrainer::run`] ended.
#[derive(Debug, Clone, PartialEq)]
pub enum PretrainOutcome {
    /// Every step ran; `encoder/` holds the final model.
    Finished {
        /// Steps done.
        steps: u64,
    },
    /// A stop signal (or `stop_after_steps`) ended the call; `last.ckpt` resumes it.
    Interrupted {
        /// Steps done.
        steps: u64,
    },
}

/// The pretraining loop over one [`Vjepa2Ssl`].
pub struct Pretrainer<'a> {
    setup: PretrainSetup,
    ssl: &'a Vjepa2Ssl,
    masks: MultiBlockMasks,
    optim: AdamW,
    scaler: GradScaler,
    state: PretrainState,
    stop: Arc<AtomicBool>,
    dp: Option<&'a DataParallel>,
}

/// libtorch's seed for step `step`: SplitMix64 over (seed, step, purpose).
fn step_seed(seed: u64, step: u64) -> i64 {
    let mut h = 0x9E37_79B9_7F4A_7C15u64;
    for w in [seed, step, DROPOUT_STREAM] {
        let mut z = h ^ w.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        h = z ^ (z >> 31);
    }
    (h & i64::MAX as u64) as i64
}

impl<'a> Pretrainer<'a> {
    /// A loop starting fresh, or from `resume` (its weights, optimiser and state are loaded into
    /// `ssl` and `optim`). `masks` is the generator for the clips' token grid.
    pub fn new(
        setup: PretrainSetup,
        ssl: &'a Vjepa2Ssl,
        masks: MultiBlockMasks,
        mut optim: AdamW,
        resume: Option<(PathBuf, PretrainCheckpoint)>,
        stop: Arc<AtomicBool>,
    ) -> Result<Self, PretrainError> {
        let amp = if setup.device.is_cuda() {
            setup.amp
        } else {
            AmpMode::Off
        };
        let mut scaler = GradScaler::new(amp.needs_scaler());
        let mut state = PretrainState {
            format_version: PRETRAIN_CHECKPOINT_FORMAT,
            step: 0,
            total_steps: setup.total_steps,
            seed: setup.seed,
            config_hash: setup.config_hash.clone(),
            optimizer: serde_json::Value::Null,
            scaler: serde_json::Value::Null,
            history: Vec::new(),
            interval: IntervalSums::default(),
            elapsed_s: 0.0,
        };
        if let Some((path, ck)) = resume {
            if ck.state.seed != setup.seed {
                return Err(PretrainError::BadInput(format!(
                    "checkpoint {} was pretrained with train.seed {}, the config says {}; an exact resume needs the same seed",
                    path.display(),
                    ck.state.seed,
                    setup.seed
                )));
            }
            if ck.state.total_steps != setup.total_steps {
                tracing::warn!(
                    "resuming {} (a run of {} steps) as a run of {} steps: the schedule and EMA momentum change from here",
                    path.display(),
                    ck.state.total_steps,
                    setup.total_steps
                );
            }
            if ck.state.config_hash != setup.config_hash {
                tracing::warn!(
                    "resuming from {} whose config hash differs from this config (changed keys apply from now on)",
                    path.display()
                );
            }
            crate::checkpoint::copy_into_varstore(&path, ssl.online_vs(), &ck.online)?;
            crate::checkpoint::copy_into_varstore(&path, ssl.target_vs(), &ck.target)?;
            optim
                .load_state_dict(&ck.optim, &ck.state.optimizer)
                .map_err(|e| {
                    PretrainError::BadInput(format!(
                        "checkpoint {}: optimiser state: {e} (was model.freeze_encoder_layers changed?)",
                        path.display()
                    ))
                })?;
            if let Ok(s) = serde_json::from_value::<GradScaler>(ck.state.scaler.clone()) {
                scaler = s;
            }
            state = ck.state;
            state.total_steps = setup.total_steps;
            state.config_hash = setup.config_hash.clone();
            tracing::info!(
                "resuming pretraining from {} at step {}",
                path.display(),
                state.step
            );
        }
        Ok(Pretrainer {
            setup,
            ssl,
            masks,
            optim,
            scaler,
            state,
            stop,
            dp: None,
        })
    }

    /// Makes this loop one rank of a data-parallel run (see the module doc): rank 0's online and
    /// target weights are sent to every rank, so all start equal.
    pub fn with_data_parallel(mut self, dp: &'a DataParallel) -> Result<Self, PretrainError> {
        dp.broadcast_variables(self.ssl.online_vs(), true)?;
        dp.broadcast_variables(self.ssl.target_vs(), true)?;
        self.dp = Some(dp);
        Ok(self)
    }

    /// True on the rank that writes the run's files (rank 0, or a single process).
    fn writes(&self) -> bool {
        self.dp.is_none_or(DataParallel::is_main)
    }

    /// The state (step, history).
    pub fn state(&self) -> &PretrainState {
        &self.state
    }

    fn amp(&self) -> AmpMode {
        if self.setup.device.is_cuda() {
            self.setup.amp
        } else {
            AmpMode::Off
        }
    }

    fn checkpoint_path(&self) -> PathBuf {
        self.setup.run_dir.join(PRETRAIN_CKPT)
    }

    /// Writes `last.ckpt`, then `encoder/` (the Hugging Face folder).
    fn save(&mut self) -> Result<(), PretrainError> {
        if !self.writes() {
            return Ok(());
        }
        self.state.optimizer = self.optim.state_dict().1;
        self.state.scaler = serde_json::to_value(&self.scaler).unwrap_or_default();
        save_checkpoint(
            &self.checkpoint_path(),
            self.ssl,
            &self.optim,
            &self.state,
            &self.setup.config_json,
        )?;
        let which = match self.setup.cfg.export {
            ExportWhich::Target => ExportEncoder::Target,
            ExportWhich::Online => ExportEncoder::Online,
        };
        self.ssl
            .export_hf(&self.setup.run_dir.join(ENCODER_DIR), which)?;
        tracing::info!(
            "pretrain: checkpoint at step {}/{} ({} and {}/)",
            self.state.step,
            self.setup.total_steps,
            self.checkpoint_path().display(),
            self.setup.run_dir.join(ENCODER_DIR).display()
        );
        Ok(())
    }

    fn write_history(&self) -> Result<(), PretrainError> {
        if !self.writes() {
            return Ok(());
        }
        let p = self.setup.run_dir.join("history.csv");
        write_history(&p, &self.state.history)
            .map_err(|source| PretrainError::Io { path: p, source })
    }

    fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Runs the remaining steps over `source` (batches of `(B, T, C, H, W)` clips; its epochs are
    /// passes over the index).
    pub fn run(&mut self, source: &dyn BatchSource) -> Result<PretrainOutcome, PretrainError> {
        let total = self.setup.total_steps;
        let per_epoch = source.num_batches() as u64;
        if per_epoch == 0 {
            return Err(PretrainError::BadInput(
                "the pretraining index has no clips".into(),
            ));
        }
        // Rows a killed run wrote after its last checkpoint go: the resumed run writes them again.
        self.write_history()?;
        let progress = if self.writes() {
            Progress::new(self.setup.cfg.log_every as usize)
        } else {
            Progress::silent()
        };
        let bar = progress.bar(total, "pretrain");
        let start_step = self.state.step;
        let seed = self.setup.seed;
        let device = self.setup.device;
        let amp = self.amp();
        let mut t_interval = Instant::now();
        let mut t_total = Instant::now();
        while self.state.step < total {
            let epoch = self.state.step / per_epoch;
            let start = (self.state.step % per_epoch) as usize;
            for batch in source.batches(epoch, start) {
                let step = self.state.step;
                let b = batch.map_err(PretrainError::Data)?;
                let x = batch_tensor(&b, ethos_models::Layout::Btchw, device);
                let here = b.labels.len();
                // The global batch (this rank's rows of it, its share of the mean loss) and the
                // stop requests, in one reduction: every rank stops after the same step.
                let (global, rows, share, signalled) = match self.dp {
                    Some(dp) => {
                        let stop = if self.stop_requested() { 1.0 } else { 0.0 };
                        let sums = dp.sum_f64(&[here as f64, stop])?;
                        let n = sums[0] as usize;
                        // The rows the loader's `Shard::SplitBatches` gave this rank.
                        let rows = ethos_data::shard::part(0..n, dp.rank(), dp.world_size());
                        (n, rows, here as f64 / n.max(1) as f64, sums[1] > 0.0)
                    }
                    None => (here, 0..here, 1.0, false),
                };
                let groups: Vec<SslMasks> = self
                    .masks
                    .generate(seed, step, global)?
                    .iter()
                    .map(|g| {
                        let mine = MaskGroup {
                            context: g.context[rows.clone()].to_vec(),
                            target: g.target[rows.clone()].to_vec(),
                        };
                        SslMasks::from_group(&mine, device)
                    })
                    .collect();
                let rank = self.dp.map_or(0, DataParallel::rank) as i64;
                tch::manual_seed(step_seed(seed, step) ^ rank);
                let out = autocast(amp, || self.ssl.step(&x, &groups, true))?;
                let local = out.loss.double_value(&[]);
                let value = match self.dp {
                    Some(dp) => dp.sum_f64(&[local * share])?[0],
                    None => local,
                };
                if !value.is_finite() {
                    bar.finish();
                    return Err(PretrainError::NonFiniteLoss {
                        step,
                        value,
                        last: self.checkpoint_path().display().to_string(),
                    });
                }
                // Exact for one process (share 1).
                self.scaler.scale_loss(&(&out.loss * share)).backward();
                drop(out);
                if let Some(dp) = self.dp {
                    dp.sum_gradients(&self.optim)?;
                }
                let lr = self.setup.schedule.lr_at(step);
                self.optim.set_lr(lr);
                if let Some(max) = self.setup.grad_clip.filter(|m| *m > 0.0)
                    && self.scaler.unscale(&mut self.optim)
                {
                    self.optim.clip_grad_norm(max);
                }
                self.scaler.step(&mut self.optim);
                self.optim.zero_grad();
                let momentum = ema_momentum(self.setup.cfg.ema, step, total);
                self.ssl.ema_update(momentum)?;
                self.state.step += 1;
                let iv = &mut self.state.interval;
                iv.loss_sum += value;
                iv.steps += 1;
                iv.samples += global as u64;
                let done = self.state.step;
                bar.step(
                    done as usize,
                    total as usize,
                    Some(format!("loss {value:.4} lr {lr:.2e} m {momentum:.5}")),
                );
                let log_now = done.is_multiple_of(self.setup.cfg.log_every) || done == total;
                if log_now {
                    self.close_interval(&mut t_interval, &mut t_total, (lr, momentum))?;
                }
                // One process reads its flag after the step; ranks use the agreed one.
                let stop = signalled
                    || (self.dp.is_none() && self.stop_requested())
                    || self
                        .setup
                        .stop_after_steps
                        .is_some_and(|k| done - start_step >= k && done < total);
                if done.is_multiple_of(self.setup.cfg.checkpoint_every) || done == total || stop {
                    self.flush_time(&mut t_interval, &mut t_total);
                    self.save()?;
                }
                if stop {
                    bar.finish();
                    return Ok(PretrainOutcome::Interrupted { steps: done });
                }
                if done >= total {
                    break;
                }
            }
        }
        bar.finish();
        Ok(PretrainOutcome::Finished {
            steps: self.state.step,
        })
    }

    /// Adds the wall time since the last call to the interval and the run.
    fn flush_time(&mut self, t_interval: &mut Instant, t_total: &mut Instant) {
        self.state.interval.seconds += t_interval.elapsed().as_secs_f64();
        self.state.elapsed_s += t_total.elapsed().as_secs_f64();
        *t_interval = Instant::now();
        *t_total = Instant::now();
    }

    /// Ends the logging interval: one history row, `history.csv` rewritten.
    fn close_interval(
        &mut self,
        t_interval: &mut Instant,
        t_total: &mut Instant,
        (lr, momentum): (f64, f64),
    ) -> Result<(), PretrainError> {
        self.flush_time(t_interval, t_total);
        let iv = std::mem::take(&mut self.state.interval);
        let row = PretrainRow {
            step: self.state.step,
            loss: iv.loss_sum / iv.steps.max(1) as f64,
            lr,
            momentum,
            samples_per_s: if iv.seconds > 0.0 {
                iv.samples as f64 / iv.seconds
            } else {
                0.0
            },
            elapsed_s: self.state.elapsed_s,
        };
        tracing::info!(
            "pretrain step {}/{}: loss {:.5} lr {:.2e} momentum {:.5} ({:.1} clips/s)",
            row.step,
            self.setup.total_steps,
            row.loss,
            row.lr,
            row.momentum,
            row.samples_per_s
        );
        self.state.history.push(row);
        self.write_history()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_seeds_differ_by_step_and_seed() {
        assert_ne!(step_seed(1, 0), step_seed(1, 1));
        assert_ne!(step_seed(1, 0), step_seed(2, 0));
        assert_eq!(step_seed(3, 7), step_seed(3, 7));
        assert!(step_seed(u64::MAX, u64::MAX) >= 0);
    }

    #[test]
    fn state_floats_survive_json_exactly() {
        let row = PretrainRow {
            step: 3,
            loss: 1.1442787420182001,
            lr: 0.1 + 0.2,
            momentum: 0.99925,
            samples_per_s: f64::MIN_POSITIVE,
            elapsed_s: 1e300,
        };
        let back: PretrainRow =
            serde_json::from_str(&serde_json::to_string(&row).unwrap()).unwrap();
        assert_eq!(back, row);
        for v in [back.loss, back.lr, back.samples_per_s, back.elapsed_s] {
            assert!(
                [row.loss, row.lr, row.samples_per_s, row.elapsed_s]
                    .iter()
                    .any(|x| x.to_bits() == v.to_bits())
            );
        }
    }

    #[test]
    fn history_csv_has_the_documented_columns() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("history.csv");
        let rows = vec![PretrainRow {
            step: 10,
            loss: 0.5,
            lr: 1e-3,
            momentum: 0.99,
            samples_per_s: 12.25,
            elapsed_s: 3.0,
        }];
        write_history(&p, &rows).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(
            text,
            "step,loss,lr,momentum,samples_per_s,elapsed_s\n10,0.5,0.001,0.99,12.250,3.000\n"
        );
    }
}
