//! A safe reader for PyTorch `.pth`/`.pt` files written by `torch.save`.
//!
//! Both formats are read: the zip archive (`<root>/data.pkl` + `<root>/data/<key>` storages, torch >= 1.6;
//! `<root>` is `archive` or the file stem) and the legacy stream (magic number, protocol, sys info, the
//! pickle, the storage key list, then each storage as an 8-byte element count and its raw bytes).
//!
//! The pickle is interpreted by a small virtual machine that builds only plain data (None, bools, ints,
//! floats, strings, bytes, lists, tuples, dicts) and tensors. It knows a fixed allow-list of globals
//! (`collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`, `torch._utils._rebuild_parameter`,
//! the typed storage markers such as `torch.FloatStorage`, ...) and refuses every other global
//! (`os.system`, `builtins.eval`, ...) with an error naming it: nothing from the file is ever executed.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};

use tch::{Kind, Tensor};

use crate::weights::WeightsError;

/// Nesting limit for containers while extracting tensors (guards against self-referencing pickles).
const MAX_DEPTH: usize = 64;

/// Most levels of containers inside containers the pickle may build. `torch.save`d checkpoints nest
/// a handful of levels (checkpoint dict, state dict, tensor arguments); a deeper pickle is refused
/// before anything walks it, so no reader recursion and no drop can exhaust the stack.
pub const MAX_NESTING: usize = 256;

/// Values (container slots and string bytes) the pickle VM may copy per input byte, plus
/// [`WORK_BASE`]: DUP, GET and PUT copy strings, REDUCE copies its argument tuple, `OrderedDict` its
/// list of pairs, tensors their size and stride. A pickle that does this on one large value again
/// and again would need memory quadratic in its length; the budget keeps the memory of any input
/// linear in its size. `torch.save` files copy well under one value per byte.
const WORK_PER_BYTE: usize = 2;
/// Values the pickle VM may copy whatever the input length.
const WORK_BASE: usize = 1 << 16;

/// Largest tensor (bytes) a view may expand to beyond its storage (stride-0 broadcasts).
const MAX_EXPANDED_BYTES: i64 = 1 << 30;

/// Reads the tensors of a `torch.save`d state dict (or a checkpoint holding one under `state_dict`,
/// `model`, `model_state_dict`, `module` or `state`), in file order, with their stored dtypes.
///
/// Keys of nested dicts inside the state dict are joined with `.`.
pub fn read_pth(path: &Path) -> Result<Vec<(String, Tensor)>, WeightsError> {
    let io = |source| WeightsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let err = |msg: String| WeightsError::Pth {
        path: path.to_path_buf(),
        msg,
    };
    let containers = Containers::default();
    let mut head = [0u8; 4];
    let mut file = std::fs::File::open(path).map_err(io)?;
    let n = file.read(&mut head).map_err(io)?;
    // The zip format is read entry by entry from the file; the legacy stream needs all bytes.
    let (root, storages) = if n == 4 && &head == b"PK\x03\x04" {
        read_zip(path, file, &containers)?
    } else if n >= 1 && head[0] == 0x80 {
        drop(file);
        let bytes = std::fs::read(path).map_err(io)?;
        read_legacy(path, &bytes, &containers)?
    } else {
        return Err(err(
            "neither a zip archive nor a pickle stream (not a torch.save file)".into(),
        ));
    };
    tensors_of(path, &root, &storages)
}

/// Like [`read_pth`] on the bytes of a file already in memory; `path` only names it in messages.
/// Any bytes give tensors or an error, never a panic, and memory linear in `bytes.len()` (plus the
/// tensors themselves).
pub fn read_pth_bytes(path: &Path, bytes: &[u8]) -> Result<Vec<(String, Tensor)>, WeightsError> {
    let containers = Containers::default();
    let (root, storages) = if bytes.starts_with(b"PK\x03\x04") {
        read_zip(path, std::io::Cursor::new(bytes), &containers)?
    } else if bytes.first() == Some(&0x80) {
        read_legacy(path, bytes, &containers)?
    } else {
        return Err(WeightsError::Pth {
            path: path.to_path_buf(),
            msg: "neither a zip archive nor a pickle stream (not a torch.save file)".into(),
        });
    };
    tensors_of(path, &root, &storages)
}

fn tensors_of(
    path: &Path,
    root: &Value,
    storages: &Storages,
) -> Result<Vec<(String, Tensor)>, WeightsError> {
    let state = select_state_dict(path, root)?;
    let mut out = Vec::new();
    collect_tensors(path, &state, String::new(), storages, &mut out, 0)?;
    if out.is_empty() {
        return Err(WeightsError::Pth {
            path: path.to_path_buf(),
            msg: "the file holds no tensors".into(),
        });
    }
    Ok(out)
}

/// Raw bytes of every storage, by persistent-id key.
type Storages = HashMap<String, Vec<u8>>;

fn read_zip<R: Read + std::io::Seek>(
    path: &Path,
    file: R,
    containers: &Containers,
) -> Result<(Value, Storages), WeightsError> {
    let err = |msg: String| WeightsError::Pth {
        path: path.to_path_buf(),
        msg,
    };
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| err(format!("bad zip archive: {e}")))?;
    let names: Vec<String> = zip.file_names().map(str::to_owned).collect();
    let pkl = names
        .iter()
        .filter(|n| n.ends_with("/data.pkl") && n.matches('/').count() == 1)
        .min()
        .or_else(|| names.iter().find(|n| *n == "data.pkl"))
        .cloned()
        .ok_or_else(|| {
            err("zip archive without a `<root>/data.pkl` entry (not a torch.save file)".into())
        })?;
    let prefix = pkl.trim_end_matches("data.pkl").to_owned();
    let read_entry = |zip: &mut zip::ZipArchive<std::io::BufReader<R>>,
                      name: &str|
     -> Result<Vec<u8>, WeightsError> {
        let mut f = zip
            .by_name(name)
            .map_err(|e| err(format!("zip entry `{name}`: {e}")))?;
        // The size is the archive's claim: reserve at most 64 MiB up front, grow with the data.
        let mut v = Vec::with_capacity(f.size().min(1 << 26) as usize);
        f.read_to_end(&mut v)
            .map_err(|e| err(format!("zip entry `{name}`: {e}")))?;
        Ok(v)
    };
    if let Some(order) = names.iter().find(|n| **n == format!("{prefix}byteorder")) {
        let order = read_entry(&mut zip, order)?;
        if order.trim_ascii() != b"little" {
            return Err(err(format!(
                "byte order `{}` is not supported (only little-endian files)",
                String::from_utf8_lossy(&order)
            )));
        }
    }
    let pickle = read_entry(&mut zip, &pkl)?;
    let mut vm = Vm::new(path, &pickle, containers);
    let root = vm.run()?;
    let mut storages = Storages::new();
    for key in vm.storage_keys() {
        let name = format!("{prefix}data/{key}");
        if !names.contains(&name) {
            return Err(err(format!(
                "storage `{key}` is referenced by the pickle but `{name}` is missing"
            )));
        }
        storages.insert(key.clone(), read_entry(&mut zip, &name)?);
    }
    Ok((root, storages))
}

fn read_legacy(
    path: &Path,
    bytes: &[u8],
    containers: &Containers,
) -> Result<(Value, Storages), WeightsError> {
    let err = |msg: String| WeightsError::Pth {
        path: path.to_path_buf(),
        msg,
    };
    let mut pos = 0usize;
    let mut next = |what: &str| -> Result<(Value, Vec<String>), WeightsError> {
        let mut vm = Vm::new(path, &bytes[pos..], containers);
        let v = vm.run().map_err(|e| match e {
            WeightsError::Pth { path, msg } => WeightsError::Pth {
                path,
                msg: format!("{what}: {msg}"),
            },
            other => other,
        })?;
        pos += vm.pos;
        Ok((v, vm.storage_keys()))
    };
    let (magic, _) = next("magic number")?;
    const MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
    match magic {
        Value::BigInt(ref b) if b.as_slice() == MAGIC => {}
        _ => {
            return Err(err(
                "a pickle stream, but not a torch.save file (wrong magic number)".into(),
            ));
        }
    }
    let (proto, _) = next("protocol version")?;
    if !matches!(proto, Value::Int(1001)) {
        return Err(err(format!(
            "unsupported legacy protocol version ({}, expected the int 1001)",
            match proto {
                Value::Int(i) => i.to_string(),
                ref other => format!("a {}", other.type_name()),
            }
        )));
    }
    let (sys_info, _) = next("sys info")?;
    if let Value::Dict(d) = &sys_info {
        for (k, v) in d.borrow().iter() {
            if matches!(k, Value::Str(s) if s == "little_endian") && matches!(v, Value::Bool(false))
            {
                return Err(err("big-endian files are not supported".into()));
            }
        }
    }
    let (root, used) = next("state")?;
    let (keys, _) = next("storage key list")?;
    let keys: Vec<String> = match &keys {
        Value::List(l) => l
            .borrow()
            .iter()
            .map(|k| match k {
                Value::Str(s) => Ok(s.clone()),
                other => Err(err(format!(
                    "storage key list holds a {}, expected strings",
                    other.type_name()
                ))),
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(err(format!(
                "expected the storage key list, found a {}",
                other.type_name()
            )));
        }
    };
    let elt_sizes: HashMap<String, usize> = {
        let mut vm = Vm::new(path, &[], containers);
        vm.collect_storage_kinds(&root);
        vm.storages
            .iter()
            .map(|(k, s)| (k.clone(), s.kind.elt_size_in_bytes()))
            .collect()
    };
    let mut storages = Storages::new();
    for key in keys {
        let header = bytes
            .get(pos..pos + 8)
            .ok_or_else(|| err(format!("file ends before storage `{key}` (truncated?)")))?;
        let numel = u64::from_le_bytes(header.try_into().unwrap_or([0; 8]));
        pos += 8;
        let elt = *elt_sizes.get(&key).unwrap_or(&1);
        let len = usize::try_from(numel)
            .ok()
            .and_then(|n| n.checked_mul(elt))
            .ok_or_else(|| err(format!("storage `{key}` claims {numel} elements")))?;
        let data = bytes.get(pos..pos + len).ok_or_else(|| {
            err(format!(
                "file ends inside storage `{key}` ({len} bytes expected; truncated?)"
            ))
        })?;
        pos += len;
        storages.insert(key, data.to_vec());
    }
    for key in used {
        if !storages.contains_key(&key) {
            return Err(err(format!(
                "storage `{key}` is referenced by the pickle but not stored"
            )));
        }
    }
    Ok((root, storages))
}

/// Picks the state dict out of the unpickled root object.
fn select_state_dict(path: &Path, root: &Value) -> Result<Value, WeightsError> {
    let Value::Dict(d) = root else {
        return Err(WeightsError::NotAStateDict {
            path: path.to_path_buf(),
            msg: format!("the top-level object is {}, not a dict", root.type_name()),
        });
    };
    let d = d.borrow();
    let all_tensors = d.iter().all(|(_, v)| matches!(v, Value::Tensor(_)));
    if all_tensors && !d.is_empty() {
        return Ok(root.clone());
    }
    for key in ["state_dict", "model", "model_state_dict", "module", "state"] {
        if let Some((_, v)) = d
            .iter()
            .find(|(k, _)| matches!(k, Value::Str(s) if s == key))
            && let Value::Dict(inner) = v
            && inner
                .borrow()
                .iter()
                .any(|(_, t)| matches!(t, Value::Tensor(_) | Value::Dict(_)))
        {
            return Ok(v.clone());
        }
    }
    let keys: Vec<String> = d.iter().take(20).map(|(k, _)| k.key_string()).collect();
    Err(WeightsError::NotAStateDict {
        path: path.to_path_buf(),
        msg: format!(
            "no state dict found: the top-level dict has keys [{}] and none of `state_dict`, `model`, \
             `model_state_dict`, `module`, `state` holds tensors",
            keys.join(", ")
        ),
    })
}

fn collect_tensors(
    path: &Path,
    v: &Value,
    prefix: String,
    storages: &Storages,
    out: &mut Vec<(String, Tensor)>,
    depth: usize,
) -> Result<(), WeightsError> {
    if depth > MAX_DEPTH {
        return Err(WeightsError::Pth {
            path: path.to_path_buf(),
            msg: format!("nesting deeper than {MAX_DEPTH} at `{prefix}`"),
        });
    }
    match v {
        Value::Tensor(t) => out.push((prefix.clone(), build_tensor(path, &prefix, t, storages)?)),
        Value::Dict(d) => {
            for (k, v) in d.borrow().iter() {
                let k = k.key_string();
                let name = if prefix.is_empty() {
                    k
                } else {
                    format!("{prefix}.{k}")
                };
                collect_tensors(path, v, name, storages, out, depth + 1)?;
            }
        }
        // Non-tensor entries inside a state dict (e.g. `_extra_state` strings) carry no weights.
        _ => tracing::debug!(key = %prefix, "skipping non-tensor entry of type {}", v.type_name()),
    }
    Ok(())
}

fn build_tensor(
    path: &Path,
    key: &str,
    t: &TensorRef,
    storages: &Storages,
) -> Result<Tensor, WeightsError> {
    let err = |msg: String| WeightsError::Pth {
        path: path.to_path_buf(),
        msg: format!("tensor `{key}`: {msg}"),
    };
    let bytes = storages
        .get(&t.storage.key)
        .ok_or_else(|| err(format!("storage `{}` missing", t.storage.key)))?;
    let elt = t.storage.kind.elt_size_in_bytes();
    let numel = (bytes.len() / elt) as i64;
    if numel < t.storage.numel {
        return Err(err(format!(
            "storage `{}` has {} bytes, fewer than its {} elements of {:?} need (truncated?)",
            t.storage.key,
            bytes.len(),
            t.storage.numel,
            t.storage.kind
        )));
    }
    if t.size.len() != t.stride.len()
        || t.size.iter().any(|&s| s < 0)
        || t.stride.iter().any(|&s| s < 0)
        || t.offset < 0
    {
        return Err(err(format!(
            "invalid view: size {:?}, stride {:?}, offset {}",
            t.size, t.stride, t.offset
        )));
    }
    let count = t
        .size
        .iter()
        .try_fold(1i64, |a, &n| a.checked_mul(n))
        .filter(|&c| c <= t.storage.numel || c.saturating_mul(elt as i64) <= MAX_EXPANDED_BYTES)
        .ok_or_else(|| {
            err(format!(
                "a view of size {:?} over a storage of {} elements is implausibly large",
                t.size, t.storage.numel
            ))
        })?;
    if count > 0 {
        let last = t
            .size
            .iter()
            .zip(&t.stride)
            .map(|(&n, &s)| (n - 1).saturating_mul(s))
            .fold(t.offset, i64::saturating_add);
        if last >= t.storage.numel {
            return Err(err(format!(
                "view (size {:?}, stride {:?}, offset {}) reaches past its storage of {} elements",
                t.size, t.stride, t.offset, t.storage.numel
            )));
        }
    }
    let used = (t.storage.numel as usize) * elt;
    let flat = Tensor::f_from_data_size(&bytes[..used], &[t.storage.numel], t.storage.kind)
        .map_err(|e| WeightsError::Tensor {
            key: key.to_owned(),
            source: e,
        })?;
    if count == 0 {
        return Ok(Tensor::zeros(
            t.size.as_slice(),
            (t.storage.kind, tch::Device::Cpu),
        ));
    }
    flat.f_as_strided(t.size.as_slice(), t.stride.as_slice(), Some(t.offset))
        .and_then(|v| v.f_contiguous())
        .map_err(|e| WeightsError::Tensor {
            key: key.to_owned(),
            source: e,
        })
}

/// A typed storage referenced by a persistent id.
#[derive(Debug)]
struct StorageRef {
    key: String,
    kind: Kind,
    numel: i64,
}

/// A tensor view to be built from a storage once all storages are read.
#[derive(Debug)]
struct TensorRef {
    storage: Rc<StorageRef>,
    offset: i64,
    size: Vec<i64>,
    stride: Vec<i64>,
}

/// The allowed globals; everything else is refused when the pickle names it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Global {
    OrderedDict,
    RebuildTensorV2,
    RebuildParameter,
    RebuildParameterWithState,
    RebuildFromTypeV2,
    TensorType,
    ParameterType,
    StorageType(Kind),
    CodecsEncode,
}

fn lookup_global(module: &str, name: &str) -> Option<Global> {
    Some(match (module, name) {
        ("collections", "OrderedDict") => Global::OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensorV2,
        ("torch._utils", "_rebuild_parameter") => Global::RebuildParameter,
        ("torch._utils", "_rebuild_parameter_with_state") => Global::RebuildParameterWithState,
        ("torch._tensor", "_rebuild_from_type_v2") => Global::RebuildFromTypeV2,
        ("torch", "Tensor") => Global::TensorType,
        ("torch.nn.parameter", "Parameter") => Global::ParameterType,
        ("_codecs", "encode") => Global::CodecsEncode,
        ("torch", s) => Global::StorageType(match s {
            "FloatStorage" => Kind::Float,
            "DoubleStorage" => Kind::Double,
            "HalfStorage" => Kind::Half,
            "BFloat16Storage" => Kind::BFloat16,
            "LongStorage" => Kind::Int64,
            "IntStorage" => Kind::Int,
            "ShortStorage" => Kind::Int16,
            "CharStorage" => Kind::Int8,
            "ByteStorage" => Kind::Uint8,
            "BoolStorage" => Kind::Bool,
            _ => return None,
        }),
        _ => return None,
    })
}

/// A value on the pickle VM's stack. Containers are shared (`Rc`) because the memo refers to the same
/// object that later opcodes fill.
#[derive(Clone, Debug)]
enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// A LONG that does not fit in i64: little-endian two's complement bytes.
    BigInt(Vec<u8>),
    #[allow(dead_code)] // kept so that checkpoint metadata parses; no state-dict value needs it
    Float(f64),
    Str(String),
    #[allow(dead_code)] // as for Float
    Bytes(Vec<u8>),
    List(Rc<ListItems>),
    Tuple(Rc<Vec<Value>>),
    Dict(Rc<DictItems>),
    Global(Global),
    Storage(Rc<StorageRef>),
    Tensor(Rc<TensorRef>),
    Mark,
}

/// The items of a pickled list (shared and mutable, as Python's).
type ListItems = RefCell<Vec<Value>>;
/// The items of a pickled dict, in insertion order.
type DictItems = RefCell<Vec<(Value, Value)>>;

/// Dropping a value frees its children in a loop, not by recursion: however deep a malicious
/// pickle nests (the nesting check sees only what the opcodes build directly; lists filled through
/// the memo can nest further), dropping it cannot overflow the stack.
impl Drop for Value {
    fn drop(&mut self) {
        fn take_children(v: &mut Value, out: &mut Vec<Value>) {
            match v {
                // The last strong owner empties it (weak references of the read's
                // `Containers` make `Rc::get_mut` refuse, so it is not used here).
                Value::List(l) => {
                    if Rc::strong_count(l) == 1
                        && let Ok(mut items) = l.try_borrow_mut()
                    {
                        out.append(&mut items);
                    }
                }
                Value::Tuple(t) => {
                    if let Some(items) = Rc::get_mut(t) {
                        out.append(items);
                    }
                }
                Value::Dict(d) => {
                    if Rc::strong_count(d) == 1
                        && let Ok(mut items) = d.try_borrow_mut()
                    {
                        for (k, v) in items.drain(..) {
                            out.push(k);
                            out.push(v);
                        }
                    }
                }
                _ => {}
            }
        }
        let mut pending = Vec::new();
        take_children(self, &mut pending);
        while let Some(mut v) = pending.pop() {
            take_children(&mut v, &mut pending);
        }
    }
}

/// What copying `v` costs: one slot, plus the bytes of a string (containers are shared, not
/// copied).
fn copy_cost(v: &Value) -> usize {
    1 + match v {
        Value::Str(s) => s.len(),
        Value::Bytes(b) | Value::BigInt(b) => b.len(),
        _ => 0,
    }
}

/// The identity of a container value (its shared allocation), `None` for scalars.
fn container_id(v: &Value) -> Option<usize> {
    match v {
        Value::List(l) => Some(Rc::as_ptr(l) as *const () as usize),
        Value::Tuple(t) => Some(Rc::as_ptr(t) as *const () as usize),
        Value::Dict(d) => Some(Rc::as_ptr(d) as *const () as usize),
        _ => None,
    }
}

impl Value {
    fn type_name(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::BigInt(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::List(_) => "list",
            Value::Tuple(_) => "tuple",
            Value::Dict(_) => "dict",
            Value::Global(_) => "global",
            Value::Storage(_) => "storage",
            Value::Tensor(_) => "tensor",
            Value::Mark => "mark",
        }
    }

    fn key_string(&self) -> String {
        match self {
            Value::Str(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            other => format!("<{}>", other.type_name()),
        }
    }

    fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }

    fn as_int_seq(&self) -> Option<Vec<i64>> {
        match self {
            Value::Tuple(t) => t.iter().map(Value::as_int).collect(),
            Value::List(l) => l.borrow().iter().map(Value::as_int).collect(),
            _ => None,
        }
    }
}

/// The lists and dicts one read created. Opcodes can put a container inside itself (`DUP` then
/// `APPEND`, or through the memo), and such a cycle of `Rc`s is never freed; dropping this after
/// the read (when the values it returned are gone) empties every container still alive, which
/// frees the cycles. Found by the `pickle` fuzz target (a leak on a hostile file).
#[derive(Default)]
struct Containers {
    lists: RefCell<Vec<Weak<ListItems>>>,
    dicts: RefCell<Vec<Weak<DictItems>>>,
}

impl Containers {
    fn register(&self, v: &Value) {
        match v {
            Value::List(l) => self.lists.borrow_mut().push(Rc::downgrade(l)),
            Value::Dict(d) => self.dicts.borrow_mut().push(Rc::downgrade(d)),
            _ => {}
        }
    }
}

impl Drop for Containers {
    fn drop(&mut self) {
        for l in self.lists.get_mut().drain(..).filter_map(|w| w.upgrade()) {
            let items = std::mem::take(&mut *l.borrow_mut());
            drop(items);
        }
        for d in self.dicts.get_mut().drain(..).filter_map(|w| w.upgrade()) {
            let items = std::mem::take(&mut *d.borrow_mut());
            drop(items);
        }
    }
}

/// The pickle interpreter: data-only opcodes plus the allow-listed globals.
struct Vm<'a> {
    path: PathBuf,
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    memo: HashMap<u64, Value>,
    storages: HashMap<String, Rc<StorageRef>>,
    /// Levels of nesting of each live container (by [`container_id`]); 1 for an empty one.
    heights: HashMap<usize, usize>,
    /// Container slots the VM may still copy (see [`WORK_PER_BYTE`]).
    work_left: usize,
    /// Position of each string or int key in its dict (by [`container_id`]).
    dict_keys: HashMap<usize, HashMap<DictKey, usize>>,
    /// Every list and dict made, emptied when the read is over.
    containers: &'a Containers,
}

/// A dict key that Python compares by value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum DictKey {
    Str(String),
    Int(i64),
}

impl<'a> Vm<'a> {
    fn new(path: &Path, data: &'a [u8], containers: &'a Containers) -> Self {
        Vm {
            path: path.to_path_buf(),
            data,
            pos: 0,
            stack: Vec::new(),
            memo: HashMap::new(),
            storages: HashMap::new(),
            heights: HashMap::new(),
            work_left: data.len().saturating_mul(WORK_PER_BYTE) + WORK_BASE,
            dict_keys: HashMap::new(),
            containers,
        }
    }

    /// Levels of containers in `v` (0 for a scalar).
    fn height(&self, v: &Value) -> usize {
        container_id(v).map_or(0, |id| self.heights.get(&id).copied().unwrap_or(1))
    }

    /// Records that `container` now holds `children`, refusing nesting deeper than
    /// [`MAX_NESTING`].
    fn nest<'v>(
        &mut self,
        container: &Value,
        children: impl IntoIterator<Item = &'v Value>,
    ) -> Result<(), WeightsError> {
        let Some(id) = container_id(container) else {
            return Ok(());
        };
        let inner = children
            .into_iter()
            .map(|c| self.height(c))
            .max()
            .unwrap_or(0);
        let h = self.heights.get(&id).copied().unwrap_or(1).max(inner + 1);
        if h > MAX_NESTING {
            return Err(self.err(format!(
                "containers nested more than {MAX_NESTING} levels deep; refused (a torch.save file \
                 nests a few levels)"
            )));
        }
        self.heights.insert(id, h);
        Ok(())
    }

    /// A new container value, after checking its nesting.
    fn container(&mut self, v: Value) -> Result<Value, WeightsError> {
        self.containers.register(&v);
        let id = container_id(&v);
        // A new allocation may reuse a freed container's address: start from its own height.
        if let Some(id) = id {
            self.heights.remove(&id);
            self.dict_keys.remove(&id);
        }
        match &v {
            Value::List(l) => self.nest(&v, l.borrow().iter())?,
            Value::Tuple(t) => self.nest(&v, t.iter())?,
            Value::Dict(d) => {
                let d = d.borrow();
                self.nest(&v, d.iter().flat_map(|(k, x)| [k, x]))?
            }
            _ => {}
        }
        Ok(v)
    }

    /// A copy of `v`, paid from the copy budget.
    fn copy_of(&mut self, v: &Value) -> Result<Value, WeightsError> {
        self.spend(copy_cost(v))?;
        Ok(v.clone())
    }

    /// Spends `n` of the copy budget.
    fn spend(&mut self, n: usize) -> Result<(), WeightsError> {
        match self.work_left.checked_sub(n) {
            Some(left) => {
                self.work_left = left;
                Ok(())
            }
            None => Err(self.err(
                "the pickle copies its containers far more often than a torch.save file does; refused",
            )),
        }
    }

    fn storage_keys(&self) -> Vec<String> {
        self.storages.keys().cloned().collect()
    }

    /// Records the storages referenced by an already-built value (used by the legacy reader, whose
    /// storage sizes follow the pickle).
    fn collect_storage_kinds(&mut self, v: &Value) {
        let mut todo = vec![(v.clone(), 0usize)];
        while let Some((v, depth)) = todo.pop() {
            if depth > MAX_DEPTH {
                continue;
            }
            match &v {
                Value::Tensor(t) => {
                    self.storages
                        .insert(t.storage.key.clone(), t.storage.clone());
                }
                Value::Dict(d) => {
                    todo.extend(d.borrow().iter().map(|(_, v)| (v.clone(), depth + 1)))
                }
                Value::List(l) => todo.extend(l.borrow().iter().map(|v| (v.clone(), depth + 1))),
                Value::Tuple(t) => todo.extend(t.iter().map(|v| (v.clone(), depth + 1))),
                _ => {}
            }
        }
    }

    fn err(&self, msg: impl Into<String>) -> WeightsError {
        WeightsError::Pth {
            path: self.path.clone(),
            msg: format!("pickle at byte {}: {}", self.pos, msg.into()),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WeightsError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        match end {
            Some(end) => {
                let s = &self.data[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(self.err(format!(
                "needs {n} more bytes but the data ends (truncated?)"
            ))),
        }
    }

    fn u8(&mut self) -> Result<u8, WeightsError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, WeightsError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, WeightsError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, WeightsError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn line(&mut self) -> Result<&'a str, WeightsError> {
        let rest = &self.data[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| self.err("unterminated text line"))?;
        let s = std::str::from_utf8(&rest[..n]).map_err(|_| self.err("text line is not UTF-8"))?;
        self.pos += n + 1;
        Ok(s)
    }

    fn string(&mut self, n: usize) -> Result<String, WeightsError> {
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| self.err("string is not valid UTF-8"))
    }

    fn pop(&mut self) -> Result<Value, WeightsError> {
        match self.stack.pop() {
            Some(Value::Mark) | None => Err(self.err("stack underflow")),
            Some(v) => Ok(v),
        }
    }

    fn top(&mut self) -> Result<&mut Value, WeightsError> {
        let pos = self.pos;
        match self.stack.last_mut() {
            Some(Value::Mark) | None => Err(WeightsError::Pth {
                path: self.path.clone(),
                msg: format!("pickle at byte {pos}: stack underflow"),
            }),
            Some(v) => Ok(v),
        }
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>, WeightsError> {
        let at = self
            .stack
            .iter()
            .rposition(|v| matches!(v, Value::Mark))
            .ok_or_else(|| self.err("no MARK on the stack"))?;
        let items = self.stack.split_off(at + 1);
        self.stack.pop();
        Ok(items)
    }

    fn memo_get(&mut self, idx: u64) -> Result<Value, WeightsError> {
        let v = self
            .memo
            .get(&idx)
            .cloned()
            .ok_or_else(|| self.err(format!("memo index {idx} was never stored")))?;
        self.spend(copy_cost(&v))?;
        Ok(v)
    }

    fn memo_put(&mut self, idx: u64) -> Result<(), WeightsError> {
        let v = self
            .stack
            .last()
            .cloned()
            .ok_or_else(|| self.err("memoize on an empty stack"))?;
        self.spend(copy_cost(&v))?;
        self.memo.insert(idx, v);
        Ok(())
    }

    fn global(&self, module: &str, name: &str) -> Result<Value, WeightsError> {
        lookup_global(module, name)
            .map(Value::Global)
            .ok_or_else(|| WeightsError::UnsafeGlobal {
                path: self.path.clone(),
                global: format!("{module}.{name}"),
            })
    }

    fn set_items(&mut self, target: &Value, items: Vec<Value>) -> Result<(), WeightsError> {
        let Value::Dict(d) = target else {
            return Err(self.err(format!("SETITEM(S) on a {}", target.type_name())));
        };
        if !items.len().is_multiple_of(2) {
            return Err(self.err("SETITEMS with an odd number of items"));
        }
        self.nest(target, items.iter())?;
        let id = Rc::as_ptr(d) as *const () as usize;
        let index = self.dict_keys.entry(id).or_default();
        let mut d = d.borrow_mut();
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            // Python dict semantics: a repeated key replaces the earlier value in place. The
            // index keeps this linear in the number of items (a scan would be quadratic).
            let key = match &k {
                Value::Str(s) => Some(DictKey::Str(s.clone())),
                Value::Int(i) => Some(DictKey::Int(*i)),
                _ => None,
            };
            match key.as_ref().and_then(|key| index.get(key)) {
                Some(&slot) => d[slot].1 = v,
                None => {
                    if let Some(key) = key {
                        index.insert(key, d.len());
                    }
                    d.push((k, v));
                }
            }
        }
        Ok(())
    }

    /// Applies an allowed callable to its arguments (REDUCE / NEWOBJ).
    fn call(&mut self, func: Value, args: Value) -> Result<Value, WeightsError> {
        let Value::Global(g) = func else {
            return Err(self.err(format!(
                "REDUCE on a {} (only allowed globals are callable)",
                func.type_name()
            )));
        };
        let args: Vec<Value> = match &args {
            Value::Tuple(t) => {
                self.spend(t.iter().map(copy_cost).sum())?;
                t.as_ref().clone()
            }
            other => {
                return Err(self.err(format!(
                    "REDUCE arguments are a {}, expected a tuple",
                    other.type_name()
                )));
            }
        };
        match g {
            Global::OrderedDict => {
                let dict = self.container(Value::Dict(Rc::new(RefCell::new(Vec::new()))))?;
                if let Some(items) = args.first() {
                    let pairs: Vec<Value> = match items {
                        Value::List(l) => l.borrow().clone(),
                        Value::Tuple(t) => t.as_ref().clone(),
                        _ => return Err(self.err("OrderedDict argument is not a list of pairs")),
                    };
                    self.spend(pairs.len().saturating_mul(3))?;
                    self.spend(pairs.iter().map(copy_cost).sum())?;
                    let mut flat = Vec::new();
                    for p in &pairs {
                        match p {
                            Value::Tuple(t) if t.len() == 2 => flat.extend(t.iter().cloned()),
                            _ => {
                                return Err(self.err("OrderedDict argument is not a list of pairs"));
                            }
                        }
                    }
                    self.set_items(&dict, flat)?;
                }
                Ok(dict)
            }
            Global::RebuildTensorV2 => {
                if args.len() < 4 {
                    return Err(self.err(format!(
                        "_rebuild_tensor_v2 with {} arguments, expected >= 4",
                        args.len()
                    )));
                }
                let Value::Storage(storage) = &args[0] else {
                    return Err(self.err(format!(
                        "_rebuild_tensor_v2 storage argument is a {}",
                        args[0].type_name()
                    )));
                };
                let offset = args[1]
                    .as_int()
                    .ok_or_else(|| self.err("_rebuild_tensor_v2 offset is not an int"))?;
                let size = args[2]
                    .as_int_seq()
                    .ok_or_else(|| self.err("_rebuild_tensor_v2 size is not a tuple of ints"))?;
                let stride = args[3]
                    .as_int_seq()
                    .ok_or_else(|| self.err("_rebuild_tensor_v2 stride is not a tuple of ints"))?;
                self.spend(size.len() + stride.len())?;
                Ok(Value::Tensor(Rc::new(TensorRef {
                    storage: storage.clone(),
                    offset,
                    size,
                    stride,
                })))
            }
            Global::RebuildParameter | Global::RebuildParameterWithState => match args.first() {
                Some(t @ Value::Tensor(_)) => Ok(t.clone()),
                _ => Err(self.err("_rebuild_parameter without a tensor argument")),
            },
            Global::RebuildFromTypeV2 => {
                // (func, type, args, state): only plain tensors / parameters rebuilt by _rebuild_tensor_v2.
                match (args.first(), args.get(1), args.get(2)) {
                    (
                        Some(Value::Global(Global::RebuildTensorV2)),
                        Some(Value::Global(Global::TensorType | Global::ParameterType)),
                        Some(inner @ Value::Tuple(_)),
                    ) => self.call(Value::Global(Global::RebuildTensorV2), inner.clone()),
                    _ => Err(self.err("_rebuild_from_type_v2 with arguments other than (_rebuild_tensor_v2, Tensor, args, state)")),
                }
            }
            Global::CodecsEncode => match (args.first(), args.get(1)) {
                (Some(Value::Str(s)), Some(Value::Str(enc)))
                    if enc == "latin1" || enc == "latin-1" =>
                {
                    self.spend(s.len())?;
                    Ok(Value::Bytes(s.chars().map(|c| c as u32 as u8).collect()))
                }
                _ => Err(self.err("_codecs.encode with arguments other than (str, 'latin1')")),
            },
            Global::TensorType | Global::ParameterType | Global::StorageType(_) => {
                Err(self.err(format!("{g:?} is a type marker and cannot be called")))
            }
        }
    }

    fn persistent_load(&mut self, pid: Value) -> Result<Value, WeightsError> {
        let Value::Tuple(t) = &pid else {
            return Err(self.err(format!(
                "persistent id is a {}, expected a tuple",
                pid.type_name()
            )));
        };
        match t.as_slice() {
            [
                Value::Str(tag),
                Value::Global(Global::StorageType(kind)),
                key,
                _location,
                numel,
                rest @ ..,
            ] if tag == "storage" => {
                // Legacy files may describe a view into a larger storage; torch stopped writing them
                // (tensors carry their own offset), and reading one as a whole storage would be wrong.
                if rest.first().is_some_and(|v| !matches!(v, Value::None)) {
                    return Err(self.err("storage views (legacy view metadata) are not supported"));
                }
                let key = match key {
                    Value::Str(s) => s.clone(),
                    Value::Int(i) => i.to_string(),
                    other => {
                        return Err(self.err(format!("storage key is a {}", other.type_name())));
                    }
                };
                let numel = numel
                    .as_int()
                    .filter(|&n| n >= 0)
                    .ok_or_else(|| self.err("storage size is not a non-negative int"))?;
                if let Some(existing) = self.storages.get(&key) {
                    return Ok(Value::Storage(existing.clone()));
                }
                let s = Rc::new(StorageRef {
                    key: key.clone(),
                    kind: *kind,
                    numel,
                });
                self.storages.insert(key, s.clone());
                Ok(Value::Storage(s))
            }
            [Value::Str(tag), Value::Global(g), ..] if tag == "storage" => {
                Err(self.err(format!("storage of unsupported type {g:?}")))
            }
            _ => Err(self.err(
                "persistent id is not ('storage', <torch storage type>, key, location, size)",
            )),
        }
    }

    /// Runs until STOP and returns the unpickled object.
    fn run(&mut self) -> Result<Value, WeightsError> {
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    let p = self.u8()?;
                    if p > 5 {
                        return Err(self.err(format!("unsupported pickle protocol {p}")));
                    }
                }
                0x95 => {
                    self.u64()?;
                }
                b'.' => return self.pop(),
                b'(' => self.stack.push(Value::Mark),
                b'0' => {
                    self.stack
                        .pop()
                        .ok_or_else(|| self.err("POP on an empty stack"))?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let top = self.top()?.clone();
                    let v = self.copy_of(&top)?;
                    self.stack.push(v);
                }
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'J' => {
                    let v = self.u32()? as i32;
                    self.stack.push(Value::Int(v as i64));
                }
                b'K' => {
                    let v = self.u8()?;
                    self.stack.push(Value::Int(v as i64));
                }
                b'M' => {
                    let v = self.u16()?;
                    self.stack.push(Value::Int(v as i64));
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        self.u8()? as usize
                    } else {
                        self.u32()? as usize
                    };
                    let b = self.take(n)?.to_vec();
                    self.stack.push(long_value(b));
                }
                b'I' => {
                    let s = self.line()?;
                    let v = match s {
                        "00" => Value::Bool(false),
                        "01" => Value::Bool(true),
                        _ => Value::Int(
                            s.trim()
                                .parse()
                                .map_err(|_| self.err(format!("bad INT `{s}`")))?,
                        ),
                    };
                    self.stack.push(v);
                }
                b'L' => {
                    let s = self.line()?;
                    let v = s
                        .trim_end_matches('L')
                        .parse()
                        .map_err(|_| self.err(format!("unsupported LONG `{s}`")))?;
                    self.stack.push(Value::Int(v));
                }
                b'G' => {
                    let b = self.take(8)?;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    self.stack.push(Value::Float(f64::from_be_bytes(a)));
                }
                b'F' => {
                    let s = self.line()?;
                    let v = s
                        .trim()
                        .parse()
                        .map_err(|_| self.err(format!("bad FLOAT `{s}`")))?;
                    self.stack.push(Value::Float(v));
                }
                b'X' | 0x8c | 0x8d => {
                    let n = match op {
                        b'X' => self.u32()? as usize,
                        0x8c => self.u8()? as usize,
                        _ => {
                            usize::try_from(self.u64()?).map_err(|_| self.err("string too long"))?
                        }
                    };
                    let s = self.string(n)?;
                    self.stack.push(Value::Str(s));
                }
                b'T' | b'U' => {
                    // Python 2 `str`: bytes, read as Latin-1 text.
                    let n = if op == b'T' {
                        self.u32()? as usize
                    } else {
                        self.u8()? as usize
                    };
                    let b = self.take(n)?;
                    self.stack
                        .push(Value::Str(b.iter().map(|&c| c as char).collect()));
                }
                b'B' | b'C' | 0x8e | 0x96 => {
                    let n = match op {
                        b'B' => self.u32()? as usize,
                        b'C' => self.u8()? as usize,
                        _ => {
                            usize::try_from(self.u64()?).map_err(|_| self.err("bytes too long"))?
                        }
                    };
                    let b = self.take(n)?.to_vec();
                    self.stack.push(Value::Bytes(b));
                }
                b'}' => {
                    let d = self.container(Value::Dict(Rc::new(RefCell::new(Vec::new()))))?;
                    self.stack.push(d);
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let d = self.container(Value::Dict(Rc::new(RefCell::new(Vec::new()))))?;
                    self.set_items(&d, items)?;
                    self.stack.push(d);
                }
                b']' => {
                    let l = self.container(Value::List(Rc::new(RefCell::new(Vec::new()))))?;
                    self.stack.push(l);
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    let l = self.container(Value::List(Rc::new(RefCell::new(items))))?;
                    self.stack.push(l);
                }
                b')' => {
                    let t = self.container(Value::Tuple(Rc::new(Vec::new())))?;
                    self.stack.push(t);
                }
                b't' => {
                    let items = self.pop_mark()?;
                    let t = self.container(Value::Tuple(Rc::new(items)))?;
                    self.stack.push(t);
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n
                        || self.stack[self.stack.len() - n..]
                            .iter()
                            .any(|v| matches!(v, Value::Mark))
                    {
                        return Err(self.err("stack underflow in TUPLEn"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    let t = self.container(Value::Tuple(Rc::new(items)))?;
                    self.stack.push(t);
                }
                b'a' => {
                    let v = self.pop()?;
                    let target = self.top()?.clone();
                    match &target {
                        Value::List(l) => {
                            self.nest(&target, [&v])?;
                            l.borrow_mut().push(v);
                        }
                        other => {
                            let t = other.type_name();
                            return Err(self.err(format!("APPEND on a {t}")));
                        }
                    }
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    let target = self.top()?.clone();
                    match &target {
                        Value::List(l) => {
                            self.nest(&target, items.iter())?;
                            l.borrow_mut().extend(items);
                        }
                        other => {
                            let t = other.type_name();
                            return Err(self.err(format!("APPENDS on a {t}")));
                        }
                    }
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    let target = self.top()?.clone();
                    self.set_items(&target, vec![k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let target = self.top()?.clone();
                    self.set_items(&target, items)?;
                }
                b'p' => {
                    let s = self.line()?;
                    let idx = s
                        .trim()
                        .parse()
                        .map_err(|_| self.err(format!("bad PUT index `{s}`")))?;
                    self.memo_put(idx)?;
                }
                b'q' => {
                    let idx = self.u8()? as u64;
                    self.memo_put(idx)?;
                }
                b'r' => {
                    let idx = self.u32()? as u64;
                    self.memo_put(idx)?;
                }
                0x94 => {
                    let idx = self.memo.len() as u64;
                    self.memo_put(idx)?;
                }
                b'g' => {
                    let s = self.line()?;
                    let idx = s
                        .trim()
                        .parse()
                        .map_err(|_| self.err(format!("bad GET index `{s}`")))?;
                    let v = self.memo_get(idx)?;
                    self.stack.push(v);
                }
                b'h' => {
                    let idx = self.u8()? as u64;
                    let v = self.memo_get(idx)?;
                    self.stack.push(v);
                }
                b'j' => {
                    let idx = self.u32()? as u64;
                    let v = self.memo_get(idx)?;
                    self.stack.push(v);
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    let g = self.global(module, name)?;
                    self.stack.push(g);
                }
                b'i' => {
                    // INST both imports and instantiates; every class it could name is refused.
                    let module = self.line()?;
                    let name = self.line()?;
                    self.global(module, name)?;
                    return Err(self.err(format!("INST of `{module}.{name}` is not supported")));
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (&module, &name) {
                        (Value::Str(m), Value::Str(n)) => {
                            let g = self.global(m, n)?;
                            self.stack.push(g);
                        }
                        _ => return Err(self.err("STACK_GLOBAL with non-string module/name")),
                    }
                }
                b'R' | 0x81 => {
                    let args = self.pop()?;
                    let func = self.pop()?;
                    let v = self.call(func, args)?;
                    self.stack.push(v);
                }
                b'b' => {
                    // BUILD sets object state; the only objects here are dicts (OrderedDict `_metadata`
                    // attributes) and tensors (parameter state), neither of which needs it.
                    let _state = self.pop()?;
                    match self.top()? {
                        Value::Dict(_) | Value::Tensor(_) => {}
                        other => {
                            let t = other.type_name();
                            return Err(self.err(format!("BUILD on a {t}")));
                        }
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = self.persistent_load(pid)?;
                    self.stack.push(v);
                }
                b'P' => {
                    return Err(self.err("text persistent ids (PERSID) are not used by torch.save"));
                }
                other => {
                    return Err(self.err(format!("unsupported pickle opcode 0x{other:02x}")));
                }
            }
        }
    }
}

fn long_value(b: Vec<u8>) -> Value {
    if b.is_empty() {
        return Value::Int(0);
    }
    if b.len() <= 8 {
        let neg = b[b.len() - 1] & 0x80 != 0;
        let mut a = if neg { [0xffu8; 8] } else { [0u8; 8] };
        a[..b.len()].copy_from_slice(&b);
        return Value::Int(i64::from_le_bytes(a));
    }
    Value::BigInt(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ethos_core::Classify;

    fn run(bytes: &[u8]) -> Result<Value, WeightsError> {
        // The tests inspect the returned values: their containers outlive the test.
        let containers: &'static Containers = Box::leak(Box::default());
        Vm::new(Path::new("t.pkl"), bytes, containers).run()
    }

    #[test]
    fn a_list_inside_itself_is_freed_after_the_read() {
        // EMPTY_LIST, DUP, APPEND (the list into itself), then the same through the memo:
        // EMPTY_DICT, BINPUT 0, BINUNICODE "k", BINGET 0, SETITEM; a tuple of both; STOP.
        let pickle: &[u8] = b"\x80\x02]2a}q\x00X\x01\x00\x00\x00kh\x00s\x86.";
        let containers = Containers::default();
        let root = Vm::new(Path::new("t.pkl"), pickle, &containers)
            .run()
            .unwrap();
        let Value::Tuple(t) = &root else {
            panic!("not a tuple: {}", root.type_name())
        };
        let (Value::List(l), Value::Dict(d)) = (&t[0], &t[1]) else {
            panic!("not (list, dict)");
        };
        let (l, d) = (Rc::downgrade(l), Rc::downgrade(d));
        drop(root);
        // Each cycle keeps its container alive until the read's containers are dropped.
        assert!(l.upgrade().is_some() && d.upgrade().is_some());
        drop(containers);
        assert!(l.upgrade().is_none(), "the self-containing list leaked");
        assert!(d.upgrade().is_none(), "the self-containing dict leaked");
    }

    #[test]
    fn refuses_global_by_name_in_protocol_0() {
        let e = run(b"cos\nsystem\n(S'echo hi'\ntR.").unwrap_err();
        assert!(e.to_string().contains("os.system"), "{e}");
        assert!(e.is_bad_input());
    }

    #[test]
    fn refuses_stack_global() {
        // protocol 4: SHORT_BINUNICODE 'builtins', SHORT_BINUNICODE 'eval', STACK_GLOBAL
        let mut p = vec![0x80, 4, 0x8c, 8];
        p.extend_from_slice(b"builtins");
        p.extend_from_slice(&[0x8c, 4]);
        p.extend_from_slice(b"eval");
        p.extend_from_slice(&[0x93, b'.']);
        let e = run(&p).unwrap_err();
        assert!(e.to_string().contains("builtins.eval"), "{e}");
    }

    #[test]
    fn plain_data_and_memo_sharing() {
        // {'a': [1, -2, 3.5], 'b': <same list via memo>} built with EMPTY_DICT/BINPUT/BINGET/APPENDS.
        let mut p = vec![
            0x80, 2, b'}', b'q', 0, b'(', 0x8c, 1, b'a', b']', b'q', 1, b'(', b'K', 1, b'J',
        ];
        p.extend_from_slice(&(-2i32).to_le_bytes());
        p.push(b'G');
        p.extend_from_slice(&3.5f64.to_be_bytes());
        p.extend_from_slice(&[b'e', 0x8c, 1, b'b', b'h', 1, b'u', b'.']);
        let v = run(&p).unwrap();
        let Value::Dict(d) = &v else {
            panic!("not a dict")
        };
        let d = d.borrow();
        assert_eq!(d.len(), 2);
        let (Value::List(a), Value::List(b)) = (&d[0].1, &d[1].1) else {
            panic!("not lists")
        };
        assert!(Rc::ptr_eq(a, b));
        let a = a.borrow();
        assert!(matches!(a[0], Value::Int(1)) && matches!(a[1], Value::Int(-2)));
        assert!(matches!(a[2], Value::Float(x) if x == 3.5));
    }

    #[test]
    fn truncated_pickle_is_an_error() {
        let e = run(&[0x80, 2, b'X', 10, 0, 0, 0, b'a']).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
    }

    /// `n` lists nested on the stack: EMPTY_LIST n times, then APPEND n-1 times.
    fn nested_on_the_stack(n: usize) -> Vec<u8> {
        let mut p = vec![0x80, 2];
        p.extend(std::iter::repeat_n(b']', n));
        p.extend(std::iter::repeat_n(b'a', n - 1));
        p.push(b'.');
        p
    }

    /// `n` lists nested through the memo: each new list is appended to the previous one fetched
    /// from the memo, so no opcode ever sees more than two levels.
    fn nested_through_the_memo(n: u32) -> Vec<u8> {
        let mut p = vec![0x80, 2, b']', b'r'];
        p.extend_from_slice(&0u32.to_le_bytes());
        for i in 1..n {
            p.push(b'j');
            p.extend_from_slice(&(i - 1).to_le_bytes());
            p.extend_from_slice(b"]r");
            p.extend_from_slice(&i.to_le_bytes());
            p.extend_from_slice(b"a0");
        }
        p.push(b'j');
        p.extend_from_slice(&0u32.to_le_bytes());
        p.push(b'.');
        p
    }

    /// Runs `f` on a thread with a small stack: recursion proportional to the nesting would
    /// overflow it.
    fn on_a_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(f)
            .unwrap()
            .join()
            .unwrap()
    }

    #[test]
    fn deeply_nested_pickles_are_refused_without_overflowing_the_stack() {
        for n in [MAX_NESTING + 1, 100_000, 1_000_000] {
            let e = on_a_small_stack(move || {
                read_pth_bytes(Path::new("deep.pth"), &nested_on_the_stack(n))
                    .unwrap_err()
                    .to_string()
            });
            assert!(
                e.contains("deep.pth") && e.contains("nested more than"),
                "{e}"
            );
        }
        // Just inside the limit: the pickle is read, then refused for what it holds (a bare
        // list, not a torch.save file), not for its nesting.
        let e = on_a_small_stack(|| {
            read_pth_bytes(Path::new("ok.pth"), &nested_on_the_stack(MAX_NESTING))
                .unwrap_err()
                .to_string()
        });
        assert!(
            e.contains("ok.pth") && !e.contains("nested more than"),
            "{e}"
        );
        // Nesting the checks do not see (built through the memo) is still dropped and reported
        // without recursion: the small stack survives, and the error names the file.
        let e = on_a_small_stack(|| {
            read_pth_bytes(Path::new("memo.pth"), &nested_through_the_memo(300_000))
                .unwrap_err()
                .to_string()
        });
        assert!(e.contains("memo.pth"), "{e}");
    }

    #[test]
    fn repeated_copies_of_a_large_value_are_refused() {
        // OrderedDict of one memoized list of 5000 pairs, called again and again and kept on the
        // stack: memory quadratic in the file's length unless copying is budgeted.
        let mut p = vec![0x80, 2, b'c'];
        p.extend_from_slice(b"collections\nOrderedDict\n");
        p.extend_from_slice(&[b'q', 0, b'(']);
        for i in 0..5_000u16 {
            p.push(b'M');
            p.extend_from_slice(&i.to_le_bytes());
            p.extend_from_slice(&[b'N', 0x86]);
        }
        p.extend_from_slice(&[b'l', 0x85, b'q', 1, b'0']);
        for _ in 0..50_000 {
            p.extend_from_slice(&[b'h', 0, b'h', 1, b'R']);
        }
        p.push(b'.');
        let e = run(&p).unwrap_err().to_string();
        assert!(e.contains("refused"), "{e}");
        // A 1 MB string duplicated a million times.
        let mut p = vec![0x80, 2, b'X'];
        p.extend_from_slice(&(1u32 << 20).to_le_bytes());
        p.extend(std::iter::repeat_n(b'x', 1 << 20));
        p.extend(std::iter::repeat_n(b'2', 1 << 20));
        p.push(b'.');
        let e = run(&p).unwrap_err().to_string();
        assert!(e.contains("refused"), "{e}");
    }

    #[test]
    fn long1_values() {
        assert!(matches!(long_value(vec![0xff]), Value::Int(-1)));
        assert!(matches!(long_value(vec![0x00, 0x01]), Value::Int(256)));
        assert!(matches!(long_value(vec![1; 10]), Value::BigInt(_)));
    }
}
