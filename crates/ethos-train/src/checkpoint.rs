//! Training checkpoints: one safetensors file holding the model weights (`model.<name>`), the
//! optimiser moments (`optim.<name>`) and, in the safetensors metadata, the JSON training state
//! (`ethos_state`) and the resolved run configuration (`ethos_config`).
//!
//! A single file makes the write atomic with one rename: it is written to a temporary name in the
//! same directory, fsynced, renamed over the target and the directory fsynced. A kill at any
//! moment leaves the previous good checkpoint in place (and at worst a stale temporary file, which
//! is ignored and cleaned up by the next save).

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, View};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use ethos_eval::history::HistoryRow;

/// Version of the checkpoint layout written by this build.
pub const CHECKPOINT_FORMAT: u32 = 1;
const STATE_KEY: &str = "ethos_state";
const CONFIG_KEY: &str = "ethos_config";
const FORMAT_KEY: &str = "format";
const FORMAT_VALUE: &str = "ethos-checkpoint";
/// Name prefix of the model tensors inside a checkpoint.
pub const MODEL_PREFIX: &str = "model.";
/// Name prefix of the optimiser tensors inside a checkpoint.
pub const OPTIM_PREFIX: &str = "optim.";

/// Errors reading or writing a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file could not be read or written.
    #[error("checkpoint {path}: {source}")]
    Io {
        /// The checkpoint path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not an ethos checkpoint or is damaged.
    #[error("checkpoint {path}: {msg}")]
    Format {
        /// The checkpoint path.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
}

impl ethos_core::Classify for CheckpointError {
    /// True when the error comes from the user's file (missing, damaged, not a checkpoint).
    fn kind(&self) -> ethos_core::ErrorKind {
        let bad = {
            match self {
                CheckpointError::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
                CheckpointError::Format { .. } => true,
            }
        };
        if bad {
            ethos_core::ErrorKind::BadInput
        } else {
            ethos_core::ErrorKind::Internal
        }
    }
}

/// State of an epoch interrupted by a signal, so a resume continues it exactly.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PartialEpoch {
    /// Batches of the epoch already trained.
    pub batches_done: usize,
    /// Sum of the batch loss numerators so far (see [`crate::loss::LossParts`]).
    pub loss_sum: f64,
    /// Sum of the batch loss denominators so far.
    pub loss_norm: f64,
    /// Samples trained so far.
    pub samples: usize,
    /// Train-pass class probabilities so far, one row per sample.
    pub probs: Vec<Vec<f64>>,
    /// Their true labels.
    pub labels: Vec<usize>,
    /// Train-pass wall time so far, seconds.
    pub seconds: f64,
    /// Learning rate of the last step taken.
    pub lr: f64,
    /// Event ids of the samples so far (per-sample records across epochs).
    #[serde(default)]
    pub event_idx: Vec<u32>,
}

/// The JSON training state stored in a checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Layout version ([`CHECKPOINT_FORMAT`]).
    pub format_version: u32,
    /// Fully completed epochs.
    pub epochs_done: usize,
    /// Optimiser steps taken so far (the scheduler position).
    pub global_step: u64,
    /// Best value of `train.metric_key` so far.
    pub best_metric: Option<f64>,
    /// Epoch (1-based) of the best value.
    pub best_epoch: Option<usize>,
    /// Epochs since the last improvement (early stopping counter).
    pub epochs_without_improvement: usize,
    /// The run seed (samplers, augmentation, mixup and dropout derive from seed, epoch, position).
    pub seed: u64,
    /// Hex sha256 of the canonical resolved configuration.
    pub config_hash: String,
    /// Scheduler state (opaque JSON from the scheduler).
    pub scheduler: serde_json::Value,
    /// Loss-scaler state for fp16 (opaque JSON).
    pub scaler: serde_json::Value,
    /// Non-tensor optimiser state (opaque JSON, e.g. step counts).
    pub optimizer: serde_json::Value,
    /// History rows of the completed epochs.
    pub history: Vec<HistoryRow>,
    /// Progress inside an epoch interrupted by a signal (`None` at epoch boundaries).
    pub partial_epoch: Option<PartialEpoch>,
}

/// A checkpoint read back from disk.
pub struct Checkpoint {
    /// Training state.
    pub state: TrainState,
    /// The resolved configuration it was trained with.
    pub config: serde_json::Value,
    /// Model tensors by their model names (prefix stripped).
    pub model: Vec<(String, Tensor)>,
    /// Optimiser tensors by their optimiser names (prefix stripped).
    pub optim: Vec<(String, Tensor)>,
}

fn kind_to_dtype(kind: Kind) -> Option<Dtype> {
    Some(match kind {
        Kind::Float => Dtype::F32,
        Kind::Double => Dtype::F64,
        Kind::Half => Dtype::F16,
        Kind::BFloat16 => Dtype::BF16,
        Kind::Int64 => Dtype::I64,
        Kind::Int => Dtype::I32,
        Kind::Int16 => Dtype::I16,
        Kind::Int8 => Dtype::I8,
        Kind::Uint8 => Dtype::U8,
        Kind::Bool => Dtype::BOOL,
        _ => return None,
    })
}

fn dtype_to_kind(dtype: Dtype) -> Option<Kind> {
    Some(match dtype {
        Dtype::F32 => Kind::Float,
        Dtype::F64 => Kind::Double,
        Dtype::F16 => Kind::Half,
        Dtype::BF16 => Kind::BFloat16,
        Dtype::I64 => Kind::Int64,
        Dtype::I32 => Kind::Int,
        Dtype::I16 => Kind::Int16,
        Dtype::I8 => Kind::Int8,
        Dtype::U8 => Kind::Uint8,
        Dtype::BOOL => Kind::Bool,
        _ => return None,
    })
}

/// A tensor seen through safetensors' `View`; its bytes are copied to the CPU only when the
/// writer asks for them, so one tensor at a time is held twice.
struct TensorBytes<'a> {
    tensor: &'a Tensor,
    dtype: Dtype,
    shape: Vec<usize>,
}

impl View for TensorBytes<'_> {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        let t = self
            .tensor
            .detach()
            .to_device(tch::Device::Cpu)
            .contiguous();
        let numel = t.numel();
        let mut buf = vec![0u8; self.data_len()];
        t.copy_data_u8(&mut buf, numel);
        Cow::Owned(buf)
    }
    fn data_len(&self) -> usize {
        self.shape.iter().product::<usize>() * self.tensor.kind().elt_size_in_bytes()
    }
}

fn fmt_err(path: &Path, msg: impl Into<String>) -> CheckpointError {
    CheckpointError::Format {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes the checkpoint to its temporary name and fsyncs it, without renaming it into place.
/// Returns the temporary path. [`save`] = this + [`ethos_core::fs::commit_temp`].
pub fn write_temp(
    path: &Path,
    model: &[(String, Tensor)],
    optim: &[(String, Tensor)],
    state: &TrainState,
    config: &serde_json::Value,
) -> Result<PathBuf, CheckpointError> {
    let mut views = Vec::with_capacity(model.len() + optim.len());
    for (prefix, list) in [(MODEL_PREFIX, model), (OPTIM_PREFIX, optim)] {
        for (name, t) in list {
            let dtype = kind_to_dtype(t.kind()).ok_or_else(|| {
                fmt_err(
                    path,
                    format!("tensor {name}: unsupported dtype {:?}", t.kind()),
                )
            })?;
            let shape = t.size().iter().map(|&d| d as usize).collect();
            views.push((
                format!("{prefix}{name}"),
                TensorBytes {
                    tensor: t,
                    dtype,
                    shape,
                },
            ));
        }
    }
    let state_json = serde_json::to_string(state).map_err(|e| fmt_err(path, e.to_string()))?;
    let config_json = serde_json::to_string(config).map_err(|e| fmt_err(path, e.to_string()))?;
    let meta: HashMap<String, String> = [
        (FORMAT_KEY.to_string(), FORMAT_VALUE.to_string()),
        (STATE_KEY.to_string(), state_json),
        (CONFIG_KEY.to_string(), config_json),
    ]
    .into_iter()
    .collect();
    let tmp = ethos_core::fs::temp_path(path);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io_err(path))?;
    }
    // Streamed into a file named by `temp_path` (mode from the umask; a killed writer's file is
    // recognised and removed by the next run). An I/O error here (a full disk) is not the user's.
    let written = std::fs::File::create(&tmp).and_then(|f| {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        ethos_models::weights::write_safetensors_stream(&mut w, &views, Some(&meta))?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err(path)(e));
    }
    Ok(tmp)
}

/// Saves a checkpoint atomically (temporary file, fsync, rename, directory fsync).
pub fn save(
    path: &Path,
    model: &[(String, Tensor)],
    optim: &[(String, Tensor)],
    state: &TrainState,
    config: &serde_json::Value,
) -> Result<(), CheckpointError> {
    remove_stale_temps(path);
    let tmp = write_temp(path, model, optim, state, config)?;
    ethos_core::fs::commit_temp(&tmp, path).map_err(io_err(path))
}

/// Removes temporary files next to `path` left by killed writers (processes that are gone).
fn remove_stale_temps(path: &Path) {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Err(e) = ethos_core::fs::clean_stale_temps(dir) {
        tracing::warn!("cleaning stale temporary files in {}: {e}", dir.display());
    }
}

fn read_meta(path: &Path, bytes: &[u8]) -> Result<HashMap<String, String>, CheckpointError> {
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| fmt_err(path, format!("not a valid safetensors file: {e}")))?;
    let meta = meta.metadata().clone().unwrap_or_default();
    check_format(path, &meta)?;
    Ok(meta)
}

fn check_format(path: &Path, meta: &HashMap<String, String>) -> Result<(), CheckpointError> {
    if meta.get(FORMAT_KEY).map(String::as_str) != Some(FORMAT_VALUE) {
        return Err(fmt_err(path, "not an ethos checkpoint (no ethos metadata)"));
    }
    Ok(())
}

/// Largest safetensors header read, bytes (the bound of the `safetensors` crate).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// The `__metadata__` of a safetensors file, reading only its header: a checkpoint's state and
/// configuration without reading gigabytes of weights. The tensor data is not checked here;
/// [`load`] checks it.
pub fn header_metadata(path: &Path) -> Result<HashMap<String, String>, CheckpointError> {
    use std::io::Read;
    let bad = |msg: &str| fmt_err(path, format!("not a valid safetensors file: {msg}"));
    let mut file = std::fs::File::open(path).map_err(io_err(path))?;
    let file_len = file.metadata().map_err(io_err(path))?.len();
    let mut len = [0u8; 8];
    file.read_exact(&mut len)
        .map_err(|_| bad("header too small"))?;
    let n = u64::from_le_bytes(len);
    if n > MAX_HEADER_BYTES || n > file_len.saturating_sub(8) {
        return Err(bad("header too large"));
    }
    let mut header = vec![0u8; n as usize];
    file.read_exact(&mut header).map_err(io_err(path))?;
    #[derive(Deserialize)]
    struct Header {
        #[serde(rename = "__metadata__", default)]
        metadata: HashMap<String, String>,
    }
    let h: Header = serde_json::from_slice(&header).map_err(|e| bad(&e.to_string()))?;
    Ok(h.metadata)
}

/// What kind of ethos checkpoint a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointKind {
    /// A checkpoint of `ethos train` ([`save`]).
    Train,
    /// A checkpoint of `ethos pretrain` ([`crate::pretrain::save_checkpoint`]).
    Pretrain,
}

/// The kind of the ethos checkpoint at `path` (header only), or an error naming the file when it
/// is none.
pub fn kind_of(path: &Path) -> Result<CheckpointKind, CheckpointError> {
    let meta = header_metadata(path)?;
    match meta.get(FORMAT_KEY).map(String::as_str) {
        Some(FORMAT_VALUE) => Ok(CheckpointKind::Train),
        Some(crate::pretrain::PRETRAIN_FORMAT_VALUE) => Ok(CheckpointKind::Pretrain),
        _ => Err(fmt_err(path, "not an ethos checkpoint (no ethos metadata)")),
    }
}

fn parse_meta(
    path: &Path,
    meta: &HashMap<String, String>,
) -> Result<(TrainState, serde_json::Value), CheckpointError> {
    let state: TrainState = serde_json::from_str(meta.get(STATE_KEY).map_or("", String::as_str))
        .map_err(|e| fmt_err(path, format!("training state: {e}")))?;
    if state.format_version > CHECKPOINT_FORMAT {
        return Err(fmt_err(
            path,
            format!(
                "format version {} is newer than this build ({CHECKPOINT_FORMAT})",
                state.format_version
            ),
        ));
    }
    let config = serde_json::from_str(meta.get(CONFIG_KEY).map_or("", String::as_str))
        .map_err(|e| fmt_err(path, format!("stored config: {e}")))?;
    Ok((state, config))
}

/// Reads only the training state and configuration from the file's header (no tensor data is
/// read).
pub fn load_state(path: &Path) -> Result<(TrainState, serde_json::Value), CheckpointError> {
    let meta = header_metadata(path)?;
    check_format(path, &meta)?;
    parse_meta(path, &meta)
}

/// Reads a whole checkpoint (tensors on the CPU).
pub fn load(path: &Path) -> Result<Checkpoint, CheckpointError> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    let meta = read_meta(path, &bytes)?;
    let (state, config) = parse_meta(path, &meta)?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| fmt_err(path, format!("damaged tensor data: {e}")))?;
    let mut model = Vec::new();
    let mut optim = Vec::new();
    for (name, view) in st.tensors() {
        let kind = dtype_to_kind(view.dtype()).ok_or_else(|| {
            fmt_err(
                path,
                format!("tensor {name}: unsupported dtype {:?}", view.dtype()),
            )
        })?;
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        let t = Tensor::from_data_size(view.data(), &shape, kind);
        if let Some(n) = name.strip_prefix(MODEL_PREFIX) {
            model.push((n.to_string(), t));
        } else if let Some(n) = name.strip_prefix(OPTIM_PREFIX) {
            optim.push((n.to_string(), t));
        } else {
            return Err(fmt_err(path, format!("unexpected tensor {name}")));
        }
    }
    model.sort_by(|a, b| a.0.cmp(&b.0));
    optim.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Checkpoint {
        state,
        config,
        model,
        optim,
    })
}

/// Copies checkpoint model tensors into a var store's variables by name; every variable must be
/// present with the same shape (strict), and no checkpoint tensor may be left over.
pub fn copy_into_varstore(
    path: &Path,
    vs: &tch::nn::VarStore,
    tensors: &[(String, Tensor)],
) -> Result<(), CheckpointError> {
    let mut vars = vs.variables();
    let mut problems = Vec::new();
    tch::no_grad(|| {
        for (name, t) in tensors {
            match vars.remove(name) {
                Some(mut v) => {
                    if v.size() != t.size() {
                        problems.push(format!(
                            "{name}: shape {:?} in checkpoint, {:?} in model",
                            t.size(),
                            v.size()
                        ));
                    } else {
                        v.copy_(&t.to_kind(v.kind()).to_device(v.device()));
                    }
                }
                None => problems.push(format!("{name}: not in the model")),
            }
        }
    });
    let mut missing: Vec<_> = vars.keys().cloned().collect();
    missing.sort();
    problems.extend(
        missing
            .into_iter()
            .map(|n| format!("{n}: missing from the checkpoint")),
    );
    if problems.is_empty() {
        Ok(())
    } else {
        let n = problems.len();
        problems.truncate(10);
        Err(fmt_err(
            path,
            format!(
                "does not match the model ({n} problems): {}",
                problems.join("; ")
            ),
        ))
    }
}

/// The model variables of a var store, sorted by name (for saving).
pub fn varstore_tensors(vs: &tch::nn::VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use ethos_core::Classify;

    fn state(epoch: usize) -> TrainState {
        TrainState {
            format_version: CHECKPOINT_FORMAT,
            epochs_done: epoch,
            global_step: 10 * epoch as u64,
            best_metric: Some(0.5),
            best_epoch: Some(1),
            epochs_without_improvement: 0,
            seed: 7,
            config_hash: "abc".into(),
            scheduler: serde_json::json!({"step": 3}),
            scaler: serde_json::Value::Null,
            optimizer: serde_json::json!({"t": 3}),
            history: vec![],
            partial_epoch: None,
        }
    }

    fn tensors(v: f32) -> Vec<(String, Tensor)> {
        vec![
            (
                "w".into(),
                Tensor::from_slice(&[v, v + 1.0, v + 2.0, v + 3.0]).reshape([2, 2]),
            ),
            ("count".into(), Tensor::from_slice(&[5i64])),
        ]
    }

    #[test]
    fn round_trips_tensors_state_and_config() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("last.ckpt");
        let cfg = serde_json::json!({"train": {"epochs": 3}});
        save(
            &p,
            &tensors(1.5),
            &[("m.w".into(), Tensor::from_slice(&[0.25f32]))],
            &state(2),
            &cfg,
        )
        .unwrap();
        let ck = load(&p).unwrap();
        assert_eq!(ck.state, state(2));
        assert_eq!(ck.config, cfg);
        assert_eq!(ck.model.len(), 2);
        let w = ck.model.iter().find(|(n, _)| n == "w").unwrap();
        assert_eq!(
            Vec::<f32>::try_from(w.1.flatten(0, -1)).unwrap(),
            vec![1.5, 2.5, 3.5, 4.5]
        );
        assert_eq!(w.1.size(), vec![2, 2]);
        let c = ck.model.iter().find(|(n, _)| n == "count").unwrap();
        assert_eq!(c.1.kind(), Kind::Int64);
        assert_eq!(ck.optim[0].0, "m.w");
        let (s, _) = load_state(&p).unwrap();
        assert_eq!(s.epochs_done, 2);
    }

    #[test]
    fn a_write_interrupted_before_the_rename_keeps_the_previous_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("last.ckpt");
        let cfg = serde_json::json!({});
        save(&p, &tensors(1.0), &[], &state(1), &cfg).unwrap();
        // A writer killed after writing its temporary file: the rename never happens. The file is
        // given the name a process that has exited would have left.
        let mine = write_temp(&p, &tensors(9.0), &[], &state(2), &cfg).unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let name = mine
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace(&format!(".{}.", std::process::id()), &format!(".{dead}."));
        let tmp = mine.with_file_name(name);
        // ...killed half-way through writing: a truncated temporary file.
        let bytes = std::fs::read(&mine).unwrap();
        std::fs::write(&tmp, &bytes[..bytes.len() / 2]).unwrap();
        std::fs::remove_file(&mine).unwrap();
        let ck = load(&p).unwrap();
        assert_eq!(ck.state.epochs_done, 1);
        // The next save cleans the stale temporary file up.
        save(&p, &tensors(3.0), &[], &state(3), &cfg).unwrap();
        assert_eq!(load(&p).unwrap().state.epochs_done, 3);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn damaged_or_foreign_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.ckpt");
        std::fs::write(&p, b"garbage").unwrap();
        let e = load(&p).err().unwrap();
        assert!(e.is_bad_input());
        assert!(e.to_string().contains("x.ckpt"));
        let plain = dir.path().join("plain.safetensors");
        Tensor::write_safetensors(&[("a", &Tensor::from_slice(&[1f32]))], &plain).unwrap();
        assert!(
            load(&plain)
                .err()
                .unwrap()
                .to_string()
                .contains("not an ethos checkpoint")
        );
        let missing = load(&dir.path().join("nope.ckpt")).err().unwrap();
        assert!(missing.is_bad_input());
    }

    #[test]
    fn the_state_and_kind_come_from_the_header_alone() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("last.ckpt");
        let cfg = serde_json::json!({"train": {"epochs": 3}});
        save(&p, &tensors(1.5), &[], &state(2), &cfg).unwrap();
        assert_eq!(kind_of(&p).unwrap(), CheckpointKind::Train);
        // Cut inside the tensor data: the state still reads (no data is read), a full load fails.
        let bytes = std::fs::read(&p).unwrap();
        let cut = dir.path().join("cut.ckpt");
        std::fs::write(&cut, &bytes[..bytes.len() - 4]).unwrap();
        assert_eq!(load_state(&cut).unwrap(), (state(2), cfg));
        assert!(load(&cut).is_err());
        // Cut inside the header, a huge header length, garbage, a plain safetensors file: errors
        // naming the file.
        let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        std::fs::write(&cut, &bytes[..8 + header_len / 2]).unwrap();
        let mut huge = bytes.clone();
        huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        let huge_path = dir.path().join("huge.ckpt");
        std::fs::write(&huge_path, &huge).unwrap();
        let garbage = dir.path().join("garbage.ckpt");
        std::fs::write(&garbage, b"garb").unwrap();
        let plain = dir.path().join("plain.safetensors");
        Tensor::write_safetensors(&[("a", &Tensor::from_slice(&[1f32]))], &plain).unwrap();
        for bad in [&cut, &huge_path, &garbage, &plain] {
            let e = kind_of(bad).unwrap_err();
            let name = bad.file_name().unwrap().to_string_lossy().into_owned();
            assert!(e.is_bad_input() && e.to_string().contains(&name), "{e}");
            assert!(load_state(bad).is_err());
        }
    }

    /// Child half of the kill -9 test: saves checkpoints in a loop until killed.
    #[test]
    fn kill_child_writer_loop() {
        let Ok(p) = std::env::var("ETHOS_CKPT_KILL_CHILD") else {
            return;
        };
        let p = PathBuf::from(p);
        let big: Vec<(String, Tensor)> = (0..8)
            .map(|i| {
                (
                    format!("w{i}"),
                    Tensor::ones([256, 1024], (Kind::Float, tch::Device::Cpu)),
                )
            })
            .collect();
        for epoch in 2.. {
            save(&p, &big, &big, &state(epoch), &serde_json::json!({})).unwrap();
        }
    }

    /// The checkpoint writer killed with SIGKILL at moments spread over its writes: the file at
    /// `last.ckpt` is always a whole checkpoint, and one the child wrote (the parent's own first
    /// checkpoint does not satisfy the test). Killing a real trainer mid-epoch and resuming it to
    /// bit-identical weights is `tests/trainer_reliability.rs`.
    #[test]
    fn kill_9_during_checkpoint_writes_leaves_a_loadable_last_ckpt() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("last.ckpt");
        save(&p, &tensors(1.0), &[], &state(1), &serde_json::json!({})).unwrap();
        let exe = std::env::current_exe().unwrap();
        let mut killed_mid_write = 0;
        for delay_ms in [0u64, 7, 19, 41, 83] {
            let mut child = std::process::Command::new(&exe)
                .args([
                    "--exact",
                    "checkpoint::tests::kill_child_writer_loop",
                    "--nocapture",
                ])
                .env("ETHOS_CKPT_KILL_CHILD", &p)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            // Wait until the child has replaced the checkpoint at least once, then let it go on
            // writing for `delay_ms` before the kill.
            let t0 = std::time::Instant::now();
            while load_state(&p).map_or(true, |(s, _)| s.epochs_done < 2) {
                assert!(
                    t0.elapsed() < std::time::Duration::from_secs(60),
                    "the child never wrote a checkpoint"
                );
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            std::thread::sleep(std::time::Duration::from_millis(delay_ms));
            // SIGKILL: no destructors, no cleanup, possibly in the middle of a write.
            child.kill().unwrap();
            child.wait().unwrap();
            let ck = load(&p).expect("last.ckpt must stay loadable after kill -9");
            assert!(ck.state.epochs_done >= 2, "the child's checkpoint");
            let temps = std::fs::read_dir(dir.path())
                .unwrap()
                .filter(|e| e.as_ref().unwrap().file_name() != "last.ckpt")
                .count();
            killed_mid_write += usize::from(temps > 0);
            // The next save removes what the killed writer left.
            save(&p, &tensors(1.0), &[], &state(1), &serde_json::json!({})).unwrap();
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        }
        // The loop writes ~8 MB per checkpoint: most kills land inside a write.
        assert!(killed_mid_write > 0, "no kill landed inside a write");
    }
}
