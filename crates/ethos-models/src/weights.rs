//! Weight import: reading safetensors / PyTorch files into named tensors and loading them into a
//! `VarStore` by name, with prefix renames, skipped prefixes and a report of what did not match.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use tch::{Kind, Tensor, nn};

/// Errors of weight reading and loading; each names the file and/or key concerned.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// The file could not be read.
    #[error("cannot read `{path}`: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A malformed or truncated safetensors file (or index).
    #[error("`{path}` is not a valid safetensors file: {msg}")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A weight file could not be written (the output path, a full disk).
    #[error("cannot write `{path}`: {source}")]
    Write {
        /// The output file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A malformed PyTorch file.
    #[error("`{path}` is not a readable PyTorch file: {msg}")]
    Pth {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// The pickle asked for a global outside the allow-list; nothing was executed.
    #[error(
        "`{path}` was refused: its pickle asks for the global `{global}`, which the safe reader does not \
         allow (only tensors, storages, ordered dicts and plain data); nothing was executed"
    )]
    UnsafeGlobal {
        /// The file.
        path: PathBuf,
        /// `module.name` of the refused global.
        global: String,
    },
    /// The file holds a tensor of a dtype ethos cannot represent.
    #[error("`{path}`: tensor `{key}` has unsupported dtype {dtype}")]
    UnsupportedDtype {
        /// The file.
        path: PathBuf,
        /// The tensor name.
        key: String,
        /// The dtype as the file names it.
        dtype: String,
    },
    /// The PyTorch file is readable but holds no state dict.
    #[error("`{path}`: {msg}")]
    NotAStateDict {
        /// The file.
        path: PathBuf,
        /// What was found instead.
        msg: String,
    },
    /// The path is neither a known weight format nor a folder holding one.
    #[error("`{path}`: {msg}")]
    UnknownFormat {
        /// The path.
        path: PathBuf,
        /// What was looked for.
        msg: String,
    },
    /// Two source tensors map to the same name (after renames), or a file lists a key twice.
    #[error("duplicate tensor `{key}` ({detail})")]
    DuplicateKey {
        /// The duplicated name.
        key: String,
        /// Where the duplicates come from.
        detail: String,
    },
    /// A strict load found missing, unexpected or shape-mismatched keys.
    #[error("weights do not match the model: {summary}")]
    Mismatch {
        /// Human summary listing the keys.
        summary: String,
        /// The full report.
        report: Box<LoadReport>,
    },
    /// libtorch failed on a well-formed tensor (internal error).
    #[error("tensor `{key}`: {source}")]
    Tensor {
        /// The tensor name.
        key: String,
        /// libtorch's error.
        source: tch::TchError,
    },
}

impl ethos_core::Classify for WeightsError {
    /// True when the error is caused by the input (file content, key names, options), false for
    /// internal failures.
    fn kind(&self) -> ethos_core::ErrorKind {
        if let WeightsError::Write { source, .. } = self {
            return ethos_core::ErrorKind::of_output_io(source);
        }
        let bad = {
            use std::io::ErrorKind as K;
            match self {
                WeightsError::Tensor { .. } | WeightsError::Write { .. } => false,
                WeightsError::Io { source, .. } => {
                    matches!(
                        source.kind(),
                        K::NotFound | K::PermissionDenied | K::InvalidData | K::UnexpectedEof
                    )
                }
                _ => true,
            }
        };
        if bad {
            ethos_core::ErrorKind::BadInput
        } else {
            ethos_core::ErrorKind::Internal
        }
    }
}

/// How `load_into` maps and checks the source tensors.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Fail on any missing, unexpected or mismatched key (default). Non-strict loads what matches.
    pub strict: bool,
    /// Prefix renames `(from, to)` applied to source keys; the first matching `from` wins
    /// (e.g. `("module.", "")`, `("backbone.", "")`).
    pub rename: Vec<(String, String)>,
    /// Model-side prefixes (after renames) neither loaded nor reported: e.g. `"head."` for a new head.
    pub skip_prefixes: Vec<String>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            strict: true,
            rename: Vec::new(),
            skip_prefixes: Vec::new(),
        }
    }
}

/// What `load_into` did, by model-side key name (sorted).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadReport {
    /// Keys copied into the model.
    pub loaded: Vec<String>,
    /// Model variables with no source tensor (left at their initial values).
    pub missing: Vec<String>,
    /// Source tensors with no model variable.
    pub unexpected: Vec<String>,
    /// `(key, model shape, source shape)` for keys present on both sides with different shapes.
    pub mismatched: Vec<(String, Vec<i64>, Vec<i64>)>,
}

impl LoadReport {
    /// True when every source tensor was loaded and no model variable is missing.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.mismatched.is_empty()
    }

    /// One line per problem category, each listing up to 20 keys.
    pub fn summary(&self) -> String {
        fn list(keys: &[String]) -> String {
            let mut s = keys.iter().take(20).cloned().collect::<Vec<_>>().join(", ");
            if keys.len() > 20 {
                s.push_str(&format!(", ... and {} more", keys.len() - 20));
            }
            s
        }
        let mut parts = Vec::new();
        if !self.missing.is_empty() {
            parts.push(format!(
                "{} missing [{}]",
                self.missing.len(),
                list(&self.missing)
            ));
        }
        if !self.unexpected.is_empty() {
            parts.push(format!(
                "{} unexpected [{}]",
                self.unexpected.len(),
                list(&self.unexpected)
            ));
        }
        if !self.mismatched.is_empty() {
            let m: Vec<String> = self
                .mismatched
                .iter()
                .map(|(k, want, got)| format!("{k}: model {want:?} vs file {got:?}"))
                .collect();
            parts.push(format!("{} shape-mismatched [{}]", m.len(), list(&m)));
        }
        if parts.is_empty() {
            format!("{} loaded", self.loaded.len())
        } else {
            parts.join("; ")
        }
    }
}

/// Reads every tensor of a weight file, converting bf16/f16 to f32 (other dtypes are kept).
///
/// Accepts a `.safetensors` file, a sharded `model.safetensors.index.json`, a folder holding
/// `model.safetensors` or that index (or `pytorch_model.bin`), and PyTorch `.pth`/`.pt`/`.bin` files
/// through the safe reader. Tensors come in file order.
pub fn read_tensors(path: &Path) -> Result<Vec<(String, Tensor)>, WeightsError> {
    let raw = read_tensors_raw(path)?;
    raw.into_iter()
        .map(|(k, t)| {
            if matches!(t.kind(), Kind::Half | Kind::BFloat16) {
                let t = t
                    .f_to_kind(Kind::Float)
                    .map_err(|source| WeightsError::Tensor {
                        key: k.clone(),
                        source,
                    })?;
                Ok((k, t))
            } else {
                Ok((k, t))
            }
        })
        .collect()
}

/// Like [`read_tensors`] but keeps every tensor in its stored dtype.
pub fn read_tensors_raw(path: &Path) -> Result<Vec<(String, Tensor)>, WeightsError> {
    let out = if path.is_dir() {
        let candidates = [
            "model.safetensors",
            "model.safetensors.index.json",
            "pytorch_model.bin",
        ];
        let found = candidates
            .iter()
            .map(|c| path.join(c))
            .find(|p| p.is_file())
            .ok_or_else(|| WeightsError::UnknownFormat {
                path: path.to_path_buf(),
                msg: format!("folder holds none of {}", candidates.join(", ")),
            })?;
        return read_tensors_raw(&found);
    } else {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".index.json") {
            read_sharded(path)?
        } else if name.ends_with(".safetensors") {
            read_safetensors(path)?
        } else {
            let mut head = [0u8; 4];
            let n = {
                use std::io::Read;
                let mut f = std::fs::File::open(path).map_err(|source| WeightsError::Io {
                    path: path.to_path_buf(),
                    source,
                })?;
                f.read(&mut head).map_err(|source| WeightsError::Io {
                    path: path.to_path_buf(),
                    source,
                })?
            };
            let is_pickle = n >= 1 && head[0] == 0x80;
            if (n == 4 && &head == b"PK\x03\x04") || is_pickle {
                crate::pth::read_pth(path)?
            } else {
                read_safetensors(path)?
            }
        }
    };
    let mut seen = HashSet::new();
    for (k, _) in &out {
        if !seen.insert(k.as_str()) {
            return Err(WeightsError::DuplicateKey {
                key: k.clone(),
                detail: format!("in `{}`", path.display()),
            });
        }
    }
    Ok(out)
}

fn kind_of(path: &Path, key: &str, dtype: safetensors::Dtype) -> Result<Kind, WeightsError> {
    use safetensors::Dtype as D;
    Ok(match dtype {
        D::BOOL => Kind::Bool,
        D::U8 => Kind::Uint8,
        D::I8 => Kind::Int8,
        D::I16 => Kind::Int16,
        D::I32 => Kind::Int,
        D::I64 => Kind::Int64,
        D::F16 => Kind::Half,
        D::BF16 => Kind::BFloat16,
        D::F32 => Kind::Float,
        D::F64 => Kind::Double,
        other => {
            return Err(WeightsError::UnsupportedDtype {
                path: path.to_path_buf(),
                key: key.to_owned(),
                dtype: format!("{other:?}"),
            });
        }
    })
}

/// Reads one safetensors file, checking first that the file is as long as its header says.
fn read_safetensors(path: &Path) -> Result<Vec<(String, Tensor)>, WeightsError> {
    let bytes = std::fs::read(path).map_err(|source| WeightsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    read_safetensors_bytes(path, &bytes)
}

/// Reads the tensors of a safetensors file already in memory (`path` only names it in messages),
/// after checking the header: its length, JSON, and that the data it describes is there. Any
/// bytes give tensors or an error, never a panic or an allocation beyond the tensors described.
pub fn read_safetensors_bytes(
    path: &Path,
    bytes: &[u8],
) -> Result<Vec<(String, Tensor)>, WeightsError> {
    let bad = |msg: String| WeightsError::Safetensors {
        path: path.to_path_buf(),
        msg,
    };
    if bytes.len() < 8 {
        return Err(bad(format!(
            "only {} bytes; truncated (a safetensors file starts with an 8-byte header length)",
            bytes.len()
        )));
    }
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap_or([0; 8]));
    if header_len > 100_000_000 {
        return Err(bad(format!(
            "header length {header_len} is implausible (not a safetensors file?)"
        )));
    }
    let header_end = 8 + header_len as usize;
    if bytes.len() < header_end {
        return Err(bad(format!(
            "truncated: the header needs {header_end} bytes but the file has {}",
            bytes.len()
        )));
    }
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..header_end])
        .map_err(|e| bad(format!("header is not valid JSON: {e}")))?;
    let data_end = header
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| *k != "__metadata__")
                .filter_map(|(_, v)| v.get("data_offsets")?.get(1)?.as_u64())
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0);
    // A hostile header can name offsets near u64::MAX: saturate instead of overflowing.
    let expected = (header_end as u64).saturating_add(data_end);
    if (bytes.len() as u64) < expected {
        return Err(bad(format!(
            "truncated: the header describes {expected} bytes but the file has {}",
            bytes.len()
        )));
    }
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| bad(e.to_string()))?;
    let mut views = st.tensors();
    views.sort_by_key(|(_, v)| v.data().as_ptr() as usize);
    let mut out = Vec::with_capacity(views.len());
    for (name, view) in views {
        let kind = kind_of(path, &name, view.dtype())?;
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        let t = Tensor::f_from_data_size(view.data(), &shape, kind).map_err(|source| {
            WeightsError::Tensor {
                key: name.clone(),
                source,
            }
        })?;
        out.push((name, t));
    }
    Ok(out)
}

/// Reads a sharded checkpoint through its `*.index.json` (`weight_map`: key -> shard file).
fn read_sharded(index: &Path) -> Result<Vec<(String, Tensor)>, WeightsError> {
    let text = std::fs::read_to_string(index).map_err(|source| WeightsError::Io {
        path: index.to_path_buf(),
        source,
    })?;
    let bad = |msg: String| WeightsError::Safetensors {
        path: index.to_path_buf(),
        msg,
    };
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("invalid JSON: {e}")))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| bad("no `weight_map` object (not a sharded-checkpoint index)".into()))?;
    let mut by_shard: BTreeMap<String, HashSet<String>> = BTreeMap::new();
    for (key, shard) in map {
        let shard = shard
            .as_str()
            .ok_or_else(|| bad(format!("weight_map[`{key}`] is not a file name")))?;
        if shard.contains("..") || Path::new(shard).is_absolute() {
            return Err(bad(format!(
                "weight_map[`{key}`] = `{shard}` leaves the index's folder"
            )));
        }
        by_shard
            .entry(shard.to_owned())
            .or_default()
            .insert(key.clone());
    }
    let dir = index.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    for (shard, keys) in by_shard {
        let shard_path = dir.join(&shard);
        let tensors = read_safetensors(&shard_path)?;
        let mut found = HashSet::new();
        for (k, t) in tensors {
            if keys.contains(&k) {
                found.insert(k.clone());
                out.push((k, t));
            } else {
                tracing::warn!(shard = %shard_path.display(), key = %k, "tensor not listed in the index; ignored");
            }
        }
        if let Some(k) = keys.iter().find(|k| !found.contains(*k)) {
            return Err(WeightsError::Safetensors {
                path: shard_path,
                msg: format!("the index lists `{k}` in this shard but the shard does not hold it"),
            });
        }
    }
    Ok(out)
}

/// Copies named tensors into the variables of `vs` (under no_grad; dtype and device follow the
/// variable), after applying `opts.rename` to the source keys and dropping `opts.skip_prefixes`.
///
/// Strict (default): any missing, unexpected or shape-mismatched key is an error listing them, and
/// nothing is copied. Non-strict: copies what matches and returns the report.
pub fn load_into(
    vs: &mut nn::VarStore,
    tensors: Vec<(String, Tensor)>,
    opts: &LoadOptions,
) -> Result<LoadReport, WeightsError> {
    let vars = vs.variables();
    let skipped = |k: &str| opts.skip_prefixes.iter().any(|p| k.starts_with(p.as_str()));
    let mut source: HashMap<String, (String, Tensor)> = HashMap::new();
    for (orig, t) in tensors {
        let key = match opts
            .rename
            .iter()
            .find(|(from, _)| orig.starts_with(from.as_str()))
        {
            Some((from, to)) => format!("{to}{}", &orig[from.len()..]),
            None => orig.clone(),
        };
        if skipped(&key) {
            continue;
        }
        if let Some((prev, _)) = source.get(&key) {
            return Err(WeightsError::DuplicateKey {
                key,
                detail: format!("source tensors `{prev}` and `{orig}` both map to it"),
            });
        }
        source.insert(key, (orig, t));
    }
    let mut report = LoadReport::default();
    let mut to_copy = Vec::new();
    for (key, (_, t)) in &source {
        match vars.get(key) {
            None => report.unexpected.push(key.clone()),
            Some(var) => {
                let (want, got) = (var.size(), t.size());
                if want != got {
                    report.mismatched.push((key.clone(), want, got));
                } else {
                    to_copy.push((key.clone(), var, t));
                }
            }
        }
    }
    report.missing = vars
        .keys()
        .filter(|k| !skipped(k) && !source.contains_key(*k))
        .cloned()
        .collect();
    report.missing.sort();
    report.unexpected.sort();
    report.mismatched.sort();
    if opts.strict && !report.is_complete() {
        return Err(WeightsError::Mismatch {
            summary: report.summary(),
            report: Box::new(report),
        });
    }
    tch::no_grad(|| -> Result<(), WeightsError> {
        for (key, var, t) in &to_copy {
            let mut var = var.shallow_clone();
            var.f_copy_(t).map_err(|source| WeightsError::Tensor {
                key: key.clone(),
                source,
            })?;
        }
        Ok(())
    })?;
    report.loaded = to_copy.into_iter().map(|(k, _, _)| k).collect();
    report.loaded.sort();
    if !report.is_complete() {
        tracing::warn!("partial weight load: {}", report.summary());
    }
    Ok(report)
}

/// Writes named tensors as a safetensors file atomically (temporary file in the same folder, fsync,
/// rename), so a crash leaves either the old file or the complete new one.
pub fn write_safetensors_atomic(
    path: &Path,
    tensors: &[(String, Tensor)],
) -> Result<(), WeightsError> {
    write_safetensors_atomic_with_metadata(path, tensors, None)
}

/// [`write_safetensors_atomic`] with a `__metadata__` map (Hugging Face writes `{"format": "pt"}`).
///
/// Written through [`ethos_core::fs::AtomicFile`]: the file gets the mode the umask gives, like
/// any other file, and a killed writer leaves only a temporary name that the next run removes.
pub fn write_safetensors_atomic_with_metadata(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: Option<HashMap<String, String>>,
) -> Result<(), WeightsError> {
    let mut views = Vec::with_capacity(tensors.len());
    for (k, t) in tensors {
        views.push((k.as_str(), TensorBytes::new(k, t)?));
    }
    let write_err = |source| WeightsError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut f = ethos_core::fs::AtomicFile::create(path).map_err(write_err)?;
    write_safetensors_stream(&mut f, &views, metadata.as_ref()).map_err(write_err)?;
    f.commit().map_err(write_err)
}

/// Writes tensors in the safetensors format to `w`, one tensor at a time (no copy of the whole
/// file in memory): an 8-byte little-endian header length, the JSON header (`__metadata__`, then
/// per tensor its dtype, shape and `data_offsets` into the data section) padded with spaces to a
/// multiple of 8 bytes, then the tensors' bytes in the given order.
pub fn write_safetensors_stream<S: AsRef<str>, V: safetensors::View>(
    w: &mut dyn std::io::Write,
    tensors: &[(S, V)],
    metadata: Option<&HashMap<String, String>>,
) -> std::io::Result<()> {
    let mut header = serde_json::Map::new();
    if let Some(m) = metadata {
        let m: serde_json::Map<String, serde_json::Value> = m
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        header.insert("__metadata__".into(), serde_json::Value::Object(m));
    }
    let mut offset = 0usize;
    for (name, view) in tensors {
        if header.contains_key(name.as_ref()) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("tensor name `{}` appears twice", name.as_ref()),
            ));
        }
        let end = offset + view.data_len();
        let dtype = serde_json::to_value(view.dtype()).map_err(std::io::Error::other)?;
        header.insert(
            name.as_ref().to_string(),
            serde_json::json!({ "dtype": dtype, "shape": view.shape(), "data_offsets": [offset, end] }),
        );
        offset = end;
    }
    let mut json =
        serde_json::to_vec(&serde_json::Value::Object(header)).map_err(std::io::Error::other)?;
    json.resize(json.len().next_multiple_of(8), b' ');
    w.write_all(&(json.len() as u64).to_le_bytes())?;
    w.write_all(&json)?;
    for (_, view) in tensors {
        w.write_all(&view.data())?;
    }
    w.flush()
}

/// A CPU-contiguous tensor seen as safetensors bytes; the bytes are copied out one tensor at a
/// time while the file is written, so writing needs no second copy of the whole model.
struct TensorBytes {
    tensor: Tensor,
    dtype: safetensors::Dtype,
    shape: Vec<usize>,
    len: usize,
}

impl TensorBytes {
    fn new(key: &str, t: &Tensor) -> Result<Self, WeightsError> {
        use safetensors::Dtype as D;
        let dtype = match t.kind() {
            Kind::Bool => D::BOOL,
            Kind::Uint8 => D::U8,
            Kind::Int8 => D::I8,
            Kind::Int16 => D::I16,
            Kind::Int => D::I32,
            Kind::Int64 => D::I64,
            Kind::Half => D::F16,
            Kind::BFloat16 => D::BF16,
            Kind::Float => D::F32,
            Kind::Double => D::F64,
            other => {
                return Err(WeightsError::UnsupportedDtype {
                    path: PathBuf::from("<output>"),
                    key: key.to_owned(),
                    dtype: format!("{other:?}"),
                });
            }
        };
        let tensor = t.to_device(tch::Device::Cpu).contiguous();
        let shape = tensor.size().iter().map(|&d| d as usize).collect();
        let len = tensor.numel() * t.kind().elt_size_in_bytes();
        Ok(TensorBytes {
            tensor,
            dtype,
            shape,
            len,
        })
    }
}

impl safetensors::View for TensorBytes {
    fn dtype(&self) -> safetensors::Dtype {
        self.dtype
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        let mut buf = vec![0u8; self.len];
        if self.len > 0 {
            // Cannot fail: the tensor is contiguous on the CPU and `buf` has exactly its byte size.
            let _ = self.tensor.f_copy_data_u8(&mut buf, self.tensor.numel());
        }
        std::borrow::Cow::Owned(buf)
    }

    fn data_len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ethos_core::Classify;
    use tch::Device;

    fn small_store() -> nn::VarStore {
        let vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        let _ = nn::linear(&root / "backbone", 3, 4, Default::default());
        let _ = nn::linear(&root / "head", 4, 2, Default::default());
        vs
    }

    fn tensors() -> Vec<(String, Tensor)> {
        vec![
            (
                "module.backbone.weight".into(),
                Tensor::ones([4, 3], (Kind::Float, Device::Cpu)),
            ),
            (
                "module.backbone.bias".into(),
                Tensor::full([4], 2.0, (Kind::Double, Device::Cpu)),
            ),
            (
                "module.head.weight".into(),
                Tensor::ones([5, 4], (Kind::Float, Device::Cpu)),
            ),
            (
                "module.head.bias".into(),
                Tensor::ones([5], (Kind::Float, Device::Cpu)),
            ),
            (
                "module.extra".into(),
                Tensor::ones([1], (Kind::Float, Device::Cpu)),
            ),
        ]
    }

    #[test]
    fn strict_load_lists_every_problem_and_copies_nothing() {
        let mut vs = small_store();
        let opts = LoadOptions {
            rename: vec![("module.".into(), "".into())],
            ..Default::default()
        };
        let err = load_into(&mut vs, tensors(), &opts).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("unexpected [extra]"), "{msg}");
        assert!(
            msg.contains("head.weight: model [2, 4] vs file [5, 4]"),
            "{msg}"
        );
        assert!(err.is_bad_input());
        let w = vs.variables()["backbone.weight"].shallow_clone();
        assert!(
            w.ne(1.0).any().int64_value(&[]) == 1,
            "strict failure must not copy"
        );
    }

    #[test]
    fn partial_load_with_skip_and_rename() {
        let mut vs = small_store();
        let mut ts = tensors();
        ts.pop();
        let opts = LoadOptions {
            strict: true,
            rename: vec![("module.".into(), "".into())],
            skip_prefixes: vec!["head.".into()],
        };
        let report = load_into(&mut vs, ts, &opts).unwrap();
        assert_eq!(
            report.loaded,
            vec!["backbone.bias".to_string(), "backbone.weight".to_string()]
        );
        assert!(report.is_complete());
        let v = vs.variables();
        assert_eq!(v["backbone.bias"].kind(), Kind::Float);
        assert_eq!(v["backbone.bias"].double_value(&[1]), 2.0);
        assert_eq!(v["backbone.weight"].double_value(&[3, 2]), 1.0);
        assert!(
            v["backbone.weight"].requires_grad(),
            "copy must keep the variable trainable"
        );
    }

    #[test]
    fn non_strict_reports() {
        let mut vs = small_store();
        let opts = LoadOptions {
            strict: false,
            rename: vec![("module.".into(), "".into())],
            skip_prefixes: vec![],
        };
        let report = load_into(&mut vs, tensors(), &opts).unwrap();
        assert_eq!(report.unexpected, vec!["extra".to_string()]);
        assert_eq!(report.mismatched.len(), 2);
        assert!(report.missing.is_empty());
        assert_eq!(report.loaded.len(), 2);
    }

    #[test]
    fn duplicate_after_rename_is_an_error() {
        let mut vs = small_store();
        let ts = vec![
            (
                "a.weight".into(),
                Tensor::ones([4, 3], (Kind::Float, Device::Cpu)),
            ),
            (
                "b.weight".into(),
                Tensor::ones([4, 3], (Kind::Float, Device::Cpu)),
            ),
        ];
        let opts = LoadOptions {
            strict: false,
            rename: vec![
                ("a.".into(), "backbone.".into()),
                ("b.".into(), "backbone.".into()),
            ],
            skip_prefixes: vec![],
        };
        let err = load_into(&mut vs, ts, &opts).unwrap_err();
        assert!(matches!(err, WeightsError::DuplicateKey { .. }), "{err}");
    }
}
