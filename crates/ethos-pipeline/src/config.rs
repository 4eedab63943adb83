//! Config composition: reads the YAML file into a JSON-like tree, applies `--set key=value`
//! overrides, hands each crate its typed section (`data`, `augmentation`, `model`, `loss`,
//! `optim`, `sched`, `train`, `predict`), makes relative paths absolute against the config file's folder and
//! identifies the result by a hash.
//!
//! Unknown keys are errors naming the key path with a "did you mean" from the keys that section
//! knows; wrong types name the key and the value; every rule that can be checked without running
//! is checked here, before a command writes anything. All of these are bad input (exit code 2).
//!
//! This is the one place where a run configuration is composed: from a YAML file
//! ([`RunConfig::load`]) or from the resolved config stored in a checkpoint
//! ([`RunConfig::for_checkpoint`]), each with `--set` overrides.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use ethos_core::Error;

/// Results of config composition.
pub type Result<T> = std::result::Result<T, Error>;

/// The top-level sections of a run configuration.
pub const SECTIONS: [&str; 9] = [
    "data",
    "augmentation",
    "model",
    "loss",
    "optim",
    "sched",
    "train",
    "predict",
    "pretrain",
];

/// A fully composed run configuration: every section typed, paths absolute.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// The config file it was read from.
    pub path: PathBuf,
    /// `data:` (ethos-data).
    pub data: ethos_data::config::DataConfig,
    /// `augmentation:` (ethos-data).
    pub augmentation: ethos_data::config::AugmentationConfig,
    /// `model:` (ethos-models).
    pub model: ethos_models::config::ModelConfig,
    /// `loss:` (ethos-train).
    pub loss: ethos_train::loss::LossConfig,
    /// `optim:` (ethos-train).
    pub optim: ethos_train::optim::OptimConfig,
    /// `sched:` (ethos-train).
    pub sched: ethos_train::schedule::SchedConfig,
    /// `train:` (ethos-train).
    pub train: ethos_train::config::TrainConfig,
    /// `predict:` (ethos-infer): per-camera ROIs for `ethos predict`.
    pub predict: ethos_infer::predict::PredictConfig,
    /// `pretrain:` (ethos-train): the unlabelled-footage index and the self-supervised run of
    /// `ethos pretrain`.
    pub pretrain: ethos_train::pretrain::PretrainConfig,
}

impl RunConfig {
    /// Reads `path`, applies `overrides` (`key=value`, dotted keys, YAML values) and composes.
    pub fn load(path: &Path, overrides: &[String]) -> Result<RunConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::input_io(path, e).context(format!("config {}", path.display())))?;
        Self::from_yaml_str(&text, path, overrides)
    }

    /// Composes from YAML text; `path` names the file (for messages and relative paths).
    pub fn from_yaml_str(text: &str, path: &Path, overrides: &[String]) -> Result<RunConfig> {
        let tree = parse_yaml(text).map_err(|e| bad(path, e))?;
        let mut tree = match tree {
            Value::Object(m) => m,
            Value::Null => Map::new(),
            other => {
                return Err(bad(
                    path,
                    format!(
                        "the top level must be a mapping of sections ({}), found {}",
                        SECTIONS.join(", "),
                        short(&other)
                    ),
                ));
            }
        };
        check_top_level(path, &tree)?;
        for o in overrides {
            apply_override(&mut tree, o)?;
        }
        Self::compose(tree, path)
    }

    /// Composes the configuration stored in a checkpoint (or a run's `config.yaml`) with
    /// `overrides`; `origin` names it in messages. Paths in it are already absolute.
    pub fn from_stored(stored: &Value, origin: &Path, overrides: &[String]) -> Result<RunConfig> {
        let mut tree = match stored {
            Value::Object(m) => m.clone(),
            _ => {
                return Err(bad(
                    origin,
                    "the stored configuration is not a mapping of sections",
                ));
            }
        };
        for o in overrides {
            apply_override(&mut tree, o)?;
        }
        Self::compose(tree, origin)
    }

    /// The configuration of a command that runs a checkpoint (`eval`, `predict`, `calibrate`):
    /// `config` when given (with `overrides`), else the one stored in the checkpoint. The class
    /// list (names and order) must be the checkpoint's: a model scores its own classes, and
    /// another order would silently swap them.
    pub fn for_checkpoint(
        ckpt: &Path,
        config: Option<&Path>,
        overrides: &[String],
    ) -> Result<(RunConfig, ethos_train::checkpoint::TrainState)> {
        let (state, stored) = ethos_train::checkpoint::load_state(ckpt)
            .map_err(|e| Error::from(e).context(format!("checkpoint {}", ckpt.display())))?;
        let cfg = match config {
            Some(p) => RunConfig::load(p, overrides)?,
            None => RunConfig::from_stored(&stored, ckpt, overrides)?,
        };
        let stored_classes: Option<Vec<String>> = stored
            .get("data")
            .and_then(|d| d.get("classes"))
            .and_then(|c| serde_json::from_value(c.clone()).ok());
        if let Some(classes) = stored_classes
            && classes != cfg.data.classes
        {
            return Err(Error::bad_input(format!(
                "data.classes = [{}] does not match the checkpoint {}, trained on [{}] (names and order must be equal)",
                cfg.data.classes.join(", "),
                ckpt.display(),
                classes.join(", ")
            )));
        }
        Ok((cfg, state))
    }

    /// Types every section, resolves paths against the config's folder, and checks every rule
    /// that can be checked before running.
    fn compose(tree: Map<String, Value>, path: &Path) -> Result<RunConfig> {
        let base = path
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .unwrap_or(Path::new("."));
        let base = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
        let mut data: ethos_data::config::DataConfig = section(path, &tree, "data")?;
        data.resolve_paths(&base);
        data.validate().map_err(|e| bad(path, e))?;
        let augmentation: ethos_data::config::AugmentationConfig =
            section(path, &tree, "augmentation")?;
        augmentation.validate().map_err(|e| bad(path, e))?;
        let mut model: ethos_models::config::ModelConfig = section(path, &tree, "model")?;
        model.resolve_paths(&base);
        model
            .validate(data.classes.len())
            .map_err(|e| bad(path, e))?;
        check_model_data(&model, &data).map_err(|e| bad(path, e))?;
        if let Some(l) = data.chunk_length
            && tree
                .get("data")
                .and_then(|d| d.get("num_frames"))
                .is_some_and(|v| v.as_u64() != Some(l as u64))
        {
            // A synth or clip-level config carries num_frames; chunks replace it, say so.
            tracing::warn!(
                "config {}: data.num_frames = {} is not used: with data.chunk_length a sample is one chunk of {l} frames",
                path.display(),
                data.num_frames
            );
        }
        let loss: ethos_train::loss::LossConfig = section(path, &tree, "loss")?;
        loss.validate(data.classes.len())
            .map_err(|e| bad(path, format!("loss: {e}")))?;
        let optim: ethos_train::optim::OptimConfig = section(path, &tree, "optim")?;
        optim
            .validate()
            .map_err(|e| bad(path, format!("optim: {e}")))?;
        let sched: ethos_train::schedule::SchedConfig = section(path, &tree, "sched")?;
        let mut train: ethos_train::config::TrainConfig = section(path, &tree, "train")?;
        // The schedule's rules depend on the run length only, not on the batches per epoch.
        sched
            .build(optim.lr, train.epochs.max(1), 1)
            .map_err(|e| bad(path, format!("sched: {e}")))?;
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or("run".into());
        let run_dir = match train.run_dir.take() {
            Some(d) if d.is_relative() => base.join(d),
            Some(d) => d,
            None => base.join("runs").join(stem),
        };
        train.run_dir = Some(run_dir);
        if let Some(ethos_train::config::ResumeSpec::Path(p)) = train.resume.as_mut()
            && p.is_relative()
        {
            *p = base.join(&*p);
        }
        train.validate(&data.classes).map_err(|e| bad(path, e))?;
        check_train_model(&train, &model, &data).map_err(|e| bad(path, e))?;
        let predict: ethos_infer::predict::PredictConfig = section(path, &tree, "predict")?;
        predict.validate().map_err(|e| bad(path, e))?;
        let mut pretrain: ethos_train::pretrain::PretrainConfig = section(path, &tree, "pretrain")?;
        pretrain.resolve_paths(&base);
        pretrain.validate().map_err(|e| bad(path, e))?;
        Ok(RunConfig {
            path: path.to_path_buf(),
            data,
            augmentation,
            model,
            loss,
            optim,
            sched,
            train,
            predict,
            pretrain,
        })
    }

    /// The resolved configuration as a JSON tree (every key, defaults filled in, paths absolute).
    pub fn resolved(&self) -> Value {
        fn v<T: Serialize>(t: &T) -> Value {
            serde_json::to_value(t).unwrap_or(Value::Null)
        }
        let mut m = Map::new();
        m.insert("data".into(), v(&self.data));
        m.insert("augmentation".into(), v(&self.augmentation));
        m.insert("model".into(), v(&self.model));
        m.insert("loss".into(), v(&self.loss));
        m.insert("optim".into(), v(&self.optim));
        m.insert("sched".into(), v(&self.sched));
        m.insert("train".into(), v(&self.train));
        m.insert("predict".into(), v(&self.predict));
        m.insert("pretrain".into(), v(&self.pretrain));
        Value::Object(m)
    }

    /// Hex sha256 of the canonical (sorted-key, compact) JSON of the resolved configuration,
    /// without the keys that cannot change results (`train.resume`, `train.run_dir`,
    /// `train.log_every_steps`, `train.dist_backend`, `train.dist_timeout`, the inference-only
    /// `predict` section, `data.decoder` (NVDEC and the CPU decoder give the same frames), and a
    /// `pretrain` section left at its defaults, so configs without one keep their hash).
    pub fn hash(&self) -> String {
        let mut r = self.resolved();
        if let Some(m) = r.as_object_mut() {
            m.remove("predict");
            if self.pretrain == ethos_train::pretrain::PretrainConfig::default() {
                m.remove("pretrain");
            }
        }
        if let Some(d) = r.get_mut("data").and_then(Value::as_object_mut) {
            d.remove("decoder");
        }
        if let Some(t) = r.get_mut("train").and_then(Value::as_object_mut) {
            for k in [
                "resume",
                "run_dir",
                "log_every_steps",
                "dist_backend",
                "dist_timeout",
            ] {
                t.remove(k);
            }
        }
        let mut s = String::new();
        canonical_json(&r, &mut s);
        let digest = Sha256::digest(s.as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The resolved configuration as YAML (what `config.yaml` in the run directory holds).
    pub fn to_yaml(&self) -> String {
        serde_norway::to_string(&self.resolved()).unwrap_or_default()
    }

    /// The run directory (`train.run_dir`, always set after composition).
    pub fn run_dir(&self) -> PathBuf {
        self.train
            .run_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs/run"))
    }

    /// The file of a split (for messages), empty when the split is not configured.
    pub fn split_file(&self, split: &str) -> String {
        self.data
            .splits
            .get(split)
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    }
}

/// Parses YAML into a JSON tree, refusing what JSON cannot hold or YAML hides: duplicate keys
/// (YAML parsers keep the last silently) and non-finite numbers (`.nan`, `.inf`), each named by
/// its key path.
fn parse_yaml(text: &str) -> std::result::Result<Value, String> {
    let yaml: serde_norway::Value =
        serde_norway::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
    yaml_to_json(&yaml, "")
}

fn yaml_to_json(v: &serde_norway::Value, key: &str) -> std::result::Result<Value, String> {
    use serde_norway::Value as Y;
    let at = |k: &str| {
        if k.is_empty() {
            "the top level".to_string()
        } else {
            format!("key `{k}`")
        }
    };
    Ok(match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(*b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    .ok_or_else(|| format!("{}: {n} is not a finite number", at(key)))?
            }
        }
        Y::String(s) => Value::String(s.clone()),
        Y::Sequence(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, x)| yaml_to_json(x, &format!("{key}[{i}]")))
                .collect::<std::result::Result<_, _>>()?,
        ),
        Y::Mapping(m) => {
            let mut out = Map::new();
            for (k, x) in m {
                let name = match k {
                    Y::String(s) => s.clone(),
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    other => {
                        let found = match other {
                            Y::Null => "an empty key",
                            Y::Sequence(_) => "a list",
                            Y::Mapping(_) => "a mapping",
                            _ => "a tagged value",
                        };
                        return Err(format!(
                            "{}: keys must be plain names, found {found}",
                            at(key)
                        ));
                    }
                };
                let path = if key.is_empty() {
                    name.clone()
                } else {
                    format!("{key}.{name}")
                };
                if out.contains_key(&name) {
                    return Err(format!("key `{path}` appears twice"));
                }
                let value = yaml_to_json(x, &path)?;
                out.insert(name, value);
            }
            Value::Object(out)
        }
        Y::Tagged(t) => yaml_to_json(&t.value, key)?,
    })
}

/// Cross-section rules of the model and data sections: the FERAL head and partial freezing need
/// V-JEPA 2, and the FERAL head predicts one frame per query, so its query count must equal the
/// frames per sample (`data.chunk_length`, else `data.num_frames`).
fn check_model_data(
    model: &ethos_models::config::ModelConfig,
    data: &ethos_data::config::DataConfig,
) -> std::result::Result<(), String> {
    use ethos_models::config::{Arch, HeadKind};
    if model.head == HeadKind::Feral && model.arch != Arch::Vjepa2 {
        return Err(format!(
            "model.head: feral needs model.arch: vjepa2 (model.arch is {})",
            model.arch
        ));
    }
    if model.freeze_encoder_layers > 0 && model.arch != Arch::Vjepa2 {
        return Err(format!(
            "model.freeze_encoder_layers = {}: partial freezing is implemented for model.arch: vjepa2 only (model.arch is {})",
            model.freeze_encoder_layers, model.arch
        ));
    }
    if model.head == HeadKind::Feral && model.num_queries != data.clip_frames() {
        let key = if data.chunk_length.is_some() {
            "data.chunk_length"
        } else {
            "data.num_frames"
        };
        return Err(format!(
            "model.num_queries = {} must equal {key} = {} (the FERAL head predicts one frame per query)",
            model.num_queries,
            data.clip_frames()
        ));
    }
    Ok(())
}

/// Rules across the `train` section and the model: frame-level metric keys need per-frame
/// outputs, and activation checkpointing needs a model that supports it.
fn check_train_model(
    train: &ethos_train::config::TrainConfig,
    model: &ethos_models::config::ModelConfig,
    data: &ethos_data::config::DataConfig,
) -> std::result::Result<(), String> {
    use ethos_models::config::HeadKind;
    let metric = ethos_eval::metrics::MetricKey::parse(&train.metric_key, &data.classes)
        .map_err(|e| format!("train.metric_key: {e}"))?;
    if metric.is_frame_level() && model.head != HeadKind::Feral && data.chunk_length.is_none() {
        return Err(format!(
            "train.metric_key = {}: frame-level metrics need a per-frame head (model.head: feral) or frame-level chunks (data.chunk_length)",
            train.metric_key
        ));
    }
    if train.grad_checkpointing && !checkpointing_archs().contains(&model.arch) {
        return Err(format!(
            "train.grad_checkpointing = true: model.arch {} has no per-block activation \
             checkpointing (it exists for {}); set it to false and reduce data.batch_size instead",
            model.arch,
            checkpointing_archs()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" and ")
        ));
    }
    Ok(())
}

/// Architectures whose models recompute activations block by block
/// (`VideoModel::supports_checkpointing`): the transformer models.
fn checkpointing_archs() -> [ethos_models::config::Arch; 2] {
    use ethos_models::config::Arch;
    [Arch::Vjepa2, Arch::Mvit]
}

fn bad(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::bad_input(format!("config {}: {e}", path.display()))
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 60 {
        format!("{}...", &s[..s.floor_char_boundary(57)])
    } else {
        s
    }
}

fn suggestion(word: &str, candidates: &[&str]) -> String {
    let best = candidates
        .iter()
        .map(|c| (*c, strsim::levenshtein(word, c)))
        .min_by_key(|&(_, d)| d);
    match best {
        Some((c, d)) if d <= (word.chars().count() / 3).max(2) => format!(" (did you mean `{c}`?)"),
        _ => String::new(),
    }
}

fn check_top_level(path: &Path, tree: &Map<String, Value>) -> Result<()> {
    for key in tree.keys() {
        if !SECTIONS.contains(&key.as_str()) {
            return Err(Error::bad_input(format!(
                "config {}: unknown section `{key}`{}; sections: {}",
                path.display(),
                suggestion(key, &SECTIONS),
                SECTIONS.join(", ")
            )));
        }
    }
    Ok(())
}

/// Applies one `key=value` override: dotted key, value parsed as YAML (`2e-5`, `true`, `[a, b]`,
/// `null`, or a plain string).
pub fn apply_override(tree: &mut Map<String, Value>, spec: &str) -> Result<()> {
    let (key, raw) = spec.split_once('=').ok_or_else(|| {
        Error::bad_input(format!(
            "--set {spec:?}: expected key=value (e.g. optim.lr=2e-5)"
        ))
    })?;
    let parts: Vec<&str> = key.trim().split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(Error::bad_input(format!(
            "--set {spec:?}: key `{key}` has an empty part"
        )));
    }
    if !SECTIONS.contains(&parts[0]) {
        return Err(Error::bad_input(format!(
            "--set {spec:?}: unknown section `{}`{}; sections: {}",
            parts[0],
            suggestion(parts[0], &SECTIONS),
            SECTIONS.join(", ")
        )));
    }
    if parts.len() < 2 {
        return Err(Error::bad_input(format!(
            "--set {spec:?}: name a key inside the section, e.g. {key}.x=..."
        )));
    }
    let value = parse_yaml(raw)
        .map_err(|e| Error::bad_input(format!("--set {spec:?}: value {raw:?}: {e}")))?;
    let mut node = tree;
    for (i, part) in parts[..parts.len() - 1].iter().enumerate() {
        let entry = node
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if entry.is_null() {
            *entry = Value::Object(Map::new());
        }
        node = entry.as_object_mut().ok_or_else(|| {
            Error::bad_input(format!(
                "--set {spec:?}: `{}` is a value, not a section",
                parts[..=i].join(".")
            ))
        })?;
    }
    node.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

/// Deserialises one section, turning serde's errors into messages with the full key path.
fn section<T: DeserializeOwned>(path: &Path, tree: &Map<String, Value>, name: &str) -> Result<T> {
    let value = match tree.get(name) {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(v) => v.clone(),
    };
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let inner = e.inner().to_string();
        let sub = e.path().to_string();
        let key = if sub == "." || sub.is_empty() {
            name.to_string()
        } else {
            format!("{name}.{sub}")
        };
        Error::bad_input(format!(
            "config {}: {}",
            path.display(),
            describe(&key, &inner)
        ))
    })
}

/// A readable message for a serde error at `key`, with a "did you mean" for unknown keys/variants.
fn describe(key: &str, inner: &str) -> String {
    let names = |s: &str| -> Vec<String> {
        s.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    };
    if let Some(rest) = inner.strip_prefix("unknown field `") {
        let (field, tail) = rest.split_once('`').unwrap_or((rest, ""));
        let known = names(tail);
        let refs: Vec<&str> = known.iter().map(String::as_str).collect();
        let parent = key.rsplit_once('.').map_or(key, |(p, _)| p);
        let path = if key.ends_with(field) {
            key.to_string()
        } else {
            format!("{key}.{field}")
        };
        return format!(
            "unknown key `{path}`{}; keys of `{parent}`: {}",
            suggestion(field, &refs),
            known.join(", ")
        );
    }
    if let Some(rest) = inner.strip_prefix("unknown variant `") {
        let (variant, tail) = rest.split_once('`').unwrap_or((rest, ""));
        let known = names(tail);
        let refs: Vec<&str> = known.iter().map(String::as_str).collect();
        return format!(
            "key `{key}`: unknown value `{variant}`{}; expected one of: {}",
            suggestion(variant, &refs),
            known.join(", ")
        );
    }
    format!("key `{key}`: {inner}")
}

/// Compact JSON with object keys sorted at every level (independent of map ordering features).
fn canonical_json(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                canonical_json(&m[*k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "data:\n  classes: [ear, tail]\n  events: events.csv\n  splits: {train: s/train.csv, val: s/val.csv}\n\
model:\n  arch: mvit\n  preset: mvit_demo\ntrain:\n  epochs: 3\n  metric_key: f1_tail\n";

    fn load(text: &str, sets: &[&str]) -> Result<RunConfig> {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        RunConfig::from_yaml_str(text, Path::new("/cfg/dir/exp.yaml"), &sets)
    }

    fn msg(r: Result<RunConfig>) -> String {
        let Err(e) = r else {
            panic!("expected an error")
        };
        assert!(e.is_bad_input(), "{e:?}");
        format!("{e:?}")
    }

    #[test]
    fn composes_resolves_paths_and_hashes() {
        let c = load(BASE, &[]).unwrap();
        assert_eq!(c.data.events, PathBuf::from("/cfg/dir/events.csv"));
        assert_eq!(c.data.splits["val"], PathBuf::from("/cfg/dir/s/val.csv"));
        assert_eq!(c.run_dir(), PathBuf::from("/cfg/dir/runs/exp"));
        assert_eq!(c.train.epochs, 3);
        let h = c.hash();
        assert_eq!(h.len(), 64);
        assert_eq!(load(BASE, &[]).unwrap().hash(), h);
        assert_ne!(load(BASE, &["train.epochs=4"]).unwrap().hash(), h);
        // Keys that cannot change results do not change the hash.
        assert_eq!(load(BASE, &["train.resume=auto"]).unwrap().hash(), h);
        // The resolved YAML composes again to the same config.
        let again = RunConfig::from_stored(&c.resolved(), Path::new("/elsewhere/config.yaml"), &[])
            .unwrap();
        assert_eq!(again.hash(), h);
        assert_eq!(again.data.events, c.data.events);
    }

    #[test]
    fn overrides_parse_yaml_values_and_create_sections() {
        let c = load(
            BASE,
            &[
                "train.epochs=7",
                "data.classes=[a, b, c]",
                "train.metric_key=f1_c",
                "augmentation.use_mixup=true",
            ],
        )
        .unwrap();
        assert_eq!(c.train.epochs, 7);
        assert_eq!(c.data.classes.len(), 3);
        assert!(c.augmentation.use_mixup);
        let c = load(
            BASE,
            &["train.run_dir=out/r1", "data.splits.test_ood=t.csv"],
        )
        .unwrap();
        assert_eq!(c.run_dir(), PathBuf::from("/cfg/dir/out/r1"));
        assert_eq!(c.data.splits["test_ood"], PathBuf::from("/cfg/dir/t.csv"));
    }

    #[test]
    fn unknown_keys_name_the_path_and_suggest() {
        let m = msg(load(&format!("{BASE}  epochz: 3\n"), &[]));
        assert!(
            m.contains("train.epochz") && m.contains("did you mean `epochs`"),
            "{m}"
        );
        let m = msg(load(BASE, &["train.seeed=1"]));
        assert!(m.contains("train.seeed") && m.contains("`seed`"), "{m}");
        let m = msg(load(&format!("{BASE}trian:\n  epochs: 1\n"), &[]));
        assert!(
            m.contains("`trian`") && m.contains("did you mean `train`"),
            "{m}"
        );
        let m = msg(load(BASE, &["optimm.lr=1"]));
        assert!(m.contains("optimm") && m.contains("`optim`"), "{m}");
        let m = msg(load(BASE, &["train.amp=bf61"]));
        assert!(m.contains("train.amp") && m.contains("bf16"), "{m}");
    }

    #[test]
    fn checkpointing_needs_a_transformer_and_dist_keys_leave_the_hash() {
        let c = load(BASE, &["train.grad_checkpointing=true"]).unwrap();
        assert!(c.train.grad_checkpointing);
        let m = msg(load(
            BASE,
            &[
                "train.grad_checkpointing=true",
                "model.arch=r3d_18",
                "model.preset=r3d_demo",
            ],
        ));
        assert!(
            m.contains("train.grad_checkpointing") && m.contains("r3d_18"),
            "{m}"
        );
        let h = load(BASE, &[]).unwrap().hash();
        let c = load(BASE, &["train.dist_backend=gloo", "train.dist_timeout=60"]).unwrap();
        assert_eq!(c.train.dist_timeout, 60.0);
        assert_eq!(c.hash(), h);
        let m = msg(load(BASE, &["train.dist_backend=mpi"]));
        assert!(m.contains("train.dist_backend"), "{m}");
    }

    #[test]
    fn feral_head_and_chunks_are_checked_against_each_other() {
        let vjepa = [
            "model.arch=vjepa2",
            "model.preset=vjepa2_vitl",
            "model.head=feral",
        ];
        let with = |extra: &[&str]| -> Vec<String> {
            vjepa.iter().chain(extra).map(|s| s.to_string()).collect()
        };
        let sets = with(&["data.chunk_length=64", "data.chunk_shift=32"]);
        let refs: Vec<&str> = sets.iter().map(String::as_str).collect();
        let c = load(BASE, &refs).unwrap();
        assert_eq!(c.data.chunking(), Some((64, 32)));
        assert_eq!(c.data.clip_frames(), 64);
        let sets = with(&["data.chunk_length=32"]);
        let refs: Vec<&str> = sets.iter().map(String::as_str).collect();
        let m = msg(load(BASE, &refs));
        assert!(
            m.contains("model.num_queries") && m.contains("data.chunk_length"),
            "{m}"
        );
        let m = msg(load(BASE, &vjepa));
        assert!(
            m.contains("model.num_queries") && m.contains("data.num_frames"),
            "{m}"
        );
        let m = msg(load(BASE, &["model.head=feral"]));
        assert!(m.contains("model.head") && m.contains("vjepa2"), "{m}");
        let m = msg(load(BASE, &["model.freeze_encoder_layers=2"]));
        assert!(m.contains("model.freeze_encoder_layers"), "{m}");
        let m = msg(load(BASE, &["data.chunk_shift=2"]));
        assert!(
            m.contains("data.chunk_shift") && m.contains("chunk_length"),
            "{m}"
        );
        let m = msg(load(BASE, &["data.chunk_length=4", "data.chunk_shift=5"]));
        assert!(m.contains("data.chunk_shift"), "{m}");
    }

    #[test]
    fn wrong_types_and_values_name_key_and_value() {
        let m = msg(load(BASE, &["train.epochs=three"]));
        assert!(m.contains("train.epochs") && m.contains("three"), "{m}");
        let m = msg(load(BASE, &["data.fps=-2"]));
        assert!(m.contains("data.fps") && m.contains("-2"), "{m}");
        let m = msg(load(BASE, &["train.metric_key=f1_tial"]));
        assert!(
            m.contains("train.metric_key") && m.contains("f1_tail"),
            "{m}"
        );
        let m = msg(load(BASE, &["train.epochs"]));
        assert!(m.contains("key=value"), "{m}");
        let m = msg(load(BASE, &["train.epochs.x=1"]));
        assert!(m.contains("train.epochs"), "{m}");
        let m = msg(load("- a\n- b\n", &[]));
        assert!(m.contains("mapping"), "{m}");
    }

    #[test]
    fn data_decoder_is_checked_at_load_and_leaves_the_hash_alone() {
        let c = load(BASE, &[]).unwrap();
        assert_eq!(c.data.decoder, ethos_video::Decoder::Auto);
        let cuda = load(BASE, &["data.decoder=cuda"]).unwrap();
        assert_eq!(cuda.data.decoder, ethos_video::Decoder::Cuda);
        assert_eq!(cuda.hash(), c.hash());
        let text = BASE
            .to_string()
            .replace("data:\n", "data:\n  decoder: cpu\n");
        assert_eq!(
            load(&text, &[]).unwrap().data.decoder,
            ethos_video::Decoder::Cpu
        );
        let m = msg(load(BASE, &["data.decoder=nvidia"]));
        assert!(
            m.contains("data.decoder") && m.contains("nvidia") && m.contains("cuda"),
            "{m}"
        );
        let again =
            RunConfig::from_stored(&cuda.resolved(), Path::new("/x/config.yaml"), &[]).unwrap();
        assert_eq!(again.data.decoder, ethos_video::Decoder::Cuda);
    }

    #[test]
    fn predict_section_holds_camera_rois_and_leaves_the_hash_alone() {
        let h = load(BASE, &[]).unwrap().hash();
        let c = load(BASE, &["predict.camera_rois.cam0=[0, 0, 640, 360]"]).unwrap();
        assert_eq!(c.predict.camera_rois["cam0"], [0, 0, 640, 360]);
        assert_eq!(c.hash(), h);
        let again =
            RunConfig::from_stored(&c.resolved(), Path::new("/x/config.yaml"), &[]).unwrap();
        assert_eq!(again.predict, c.predict);
        let m = msg(load(BASE, &["predict.camera_rois.cam0=[0, 0, 0, 360]"]));
        assert!(m.contains("predict.camera_rois.cam0"), "{m}");
        let m = msg(load(BASE, &["predict.camera_rois.cam0=[0, 0, 10]"]));
        assert!(m.contains("predict.camera_rois.cam0"), "{m}");
        let m = msg(load(BASE, &["predict.camera_rois.cam0=[0, -1, 10, 10]"]));
        assert!(m.contains("predict.camera_rois.cam0"), "{m}");
        let m = msg(load(BASE, &["predict.camera_roi.cam0=[0, 0, 10, 10]"]));
        assert!(
            m.contains("predict.camera_roi") && m.contains("did you mean `camera_rois`"),
            "{m}"
        );
    }

    #[test]
    fn every_config_in_configs_composes() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            // demo.yaml is an overlay without data paths; cmd::demo tests it composed with synth's config.
            let overlay = p.file_name().is_some_and(|n| n == "demo.yaml");
            if !overlay && p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                RunConfig::load(&p, &[]).unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
                n += 1;
            }
        }
        assert!(
            n >= 3,
            "expected the reference configs in {}",
            dir.display()
        );
    }
}
