//! The tensor engine (libtorch) at start-up: making its CUDA part visible, listing devices and
//! picking one from a user's `auto | cpu | cuda | cuda:N`.
//!
//! The linker drops `libtorch_cuda.so` from a binary that references none of its symbols, and then
//! libtorch never sees a GPU. [`Engine::init`] therefore `dlopen`s it (RTLD_NOW | RTLD_GLOBAL) from
//! the folder the loaded `libtorch_cpu.so` lives in; on CPU-only installs that fails harmlessly.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Serialize;
use tch::Device;

/// Errors of device selection.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The device string is not `auto`, `cpu`, `cuda` or `cuda:N`.
    #[error("unknown device `{0}` (expected auto, cpu, cuda or cuda:N)")]
    Unknown(String),
    /// A CUDA device was asked for but libtorch sees fewer devices.
    #[error("device `{spec}` requested but libtorch sees {count} CUDA device(s){hint}")]
    Unavailable {
        /// The requested device.
        spec: String,
        /// CUDA devices seen.
        count: i64,
        /// Why, when known (e.g. libtorch_cuda failed to load).
        hint: String,
    },
}

impl ethos_core::Classify for DeviceError {
    /// True for errors caused by the user's device choice (all of them).
    fn kind(&self) -> ethos_core::ErrorKind {
        ethos_core::ErrorKind::BadInput
    }
}

/// What [`Engine::init`] found and did.
#[derive(Clone, Debug, Serialize)]
pub struct EngineInfo {
    /// Folder of the loaded `libtorch_cpu.so`, when found.
    pub libtorch_dir: Option<PathBuf>,
    /// libtorch / PyTorch version read next to the library (`version.py` or `build-version`).
    pub libtorch_version: Option<String>,
    /// Whether `libtorch_cuda.so` is loaded in the process.
    pub cuda_library_loaded: bool,
    /// Why loading it failed (CPU-only installs), when it did.
    pub cuda_load_error: Option<String>,
}

/// Process-wide libtorch set-up.
pub struct Engine;

static INFO: OnceLock<EngineInfo> = OnceLock::new();

impl Engine {
    /// Loads `libtorch_cuda.so` if present (idempotent) and returns what was found. Call before the
    /// first device query.
    pub fn init() -> &'static EngineInfo {
        INFO.get_or_init(|| {
            let libtorch_dir = loaded_library_dir("libtorch_cpu.so");
            let libtorch_version = libtorch_dir.as_deref().and_then(read_version);
            let (cuda_library_loaded, cuda_load_error) = if loaded_library_dir("libtorch_cuda.so").is_some() {
                (true, None)
            } else {
                let candidate = libtorch_dir
                    .as_ref()
                    .map(|d| d.join("libtorch_cuda.so"))
                    .filter(|p| p.is_file())
                    .unwrap_or_else(|| PathBuf::from("libtorch_cuda.so"));
                match dlopen_global(&candidate) {
                    Ok(()) => {
                        tracing::debug!(path = %candidate.display(), "loaded libtorch_cuda");
                        (true, None)
                    }
                    Err(e) => {
                        tracing::debug!(path = %candidate.display(), "libtorch_cuda not loaded: {e}");
                        (false, Some(e))
                    }
                }
            };
            EngineInfo { libtorch_dir, libtorch_version, cuda_library_loaded, cuda_load_error }
        })
    }
}

/// Devices and threading as libtorch sees them.
#[derive(Clone, Debug, Serialize)]
pub struct DeviceReport {
    /// `torch.cuda.is_available()`.
    pub cuda_available: bool,
    /// Number of CUDA devices.
    pub cuda_device_count: i64,
    /// cuDNN usable.
    pub cudnn_available: bool,
    /// cuDNN version (0 when none).
    pub cudnn_version: i64,
    /// Apple MPS (never on the platforms ethos builds for; always false).
    pub mps_available: bool,
    /// Intra-op CPU threads.
    pub num_threads: i32,
    /// Inter-op CPU threads.
    pub num_interop_threads: i32,
}

/// Lists the devices libtorch sees (calls [`Engine::init`] first).
pub fn devices() -> DeviceReport {
    Engine::init();
    let cuda_available = tch::Cuda::is_available();
    let cudnn_available = cuda_available && tch::Cuda::cudnn_is_available();
    DeviceReport {
        cuda_available,
        cuda_device_count: if cuda_available {
            tch::Cuda::device_count()
        } else {
            0
        },
        cudnn_available,
        cudnn_version: if cudnn_available {
            tch::utils::version_cudnn()
        } else {
            0
        },
        mps_available: false,
        num_threads: tch::get_num_threads(),
        num_interop_threads: tch::get_num_interop_threads(),
    }
}

/// Parses `auto` (first CUDA device if any, else CPU), `cpu`, `cuda` (= `cuda:0`) or `cuda:N`,
/// checking that the device exists.
pub fn pick_device(spec: &str) -> Result<Device, DeviceError> {
    let info = Engine::init();
    let count = if tch::Cuda::is_available() {
        tch::Cuda::device_count()
    } else {
        0
    };
    let s = spec.trim().to_ascii_lowercase();
    let index = match s.as_str() {
        "auto" => {
            return Ok(if count > 0 {
                Device::Cuda(0)
            } else {
                Device::Cpu
            });
        }
        "cpu" => return Ok(Device::Cpu),
        "cuda" | "gpu" => 0,
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => n,
            _ => return Err(DeviceError::Unknown(spec.to_owned())),
        },
    };
    if (index as i64) < count {
        Ok(Device::Cuda(index))
    } else {
        let hint = match &info.cuda_load_error {
            Some(e) => format!(" (libtorch_cuda could not be loaded: {e})"),
            None if !info.cuda_library_loaded => " (libtorch_cuda is not loaded)".to_owned(),
            None => String::new(),
        };
        Err(DeviceError::Unavailable {
            spec: spec.to_owned(),
            count,
            hint,
        })
    }
}

/// Folder of a shared library mapped into this process, from `/proc/self/maps`.
fn loaded_library_dir(file_name: &str) -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(Path::new)
        .find(|p| p.file_name().and_then(|n| n.to_str()) == Some(file_name))
        .and_then(|p| p.parent().map(Path::to_path_buf))
}

/// `<lib>/../version.py` (PyPI wheel: `__version__ = '2.11.0+cpu'`) or `<lib>/../build-version`.
fn read_version(lib_dir: &Path) -> Option<String> {
    let root = lib_dir.parent()?;
    if let Ok(text) = std::fs::read_to_string(root.join("version.py")) {
        for line in text.lines() {
            if let Some(rest) = line.trim().strip_prefix("__version__") {
                let v = rest
                    .trim_start_matches([' ', '=', ':'])
                    .trim()
                    .trim_matches(['\'', '"']);
                let v = v.split(['\'', '"']).next().unwrap_or(v);
                if !v.is_empty() {
                    return Some(v.to_owned());
                }
            }
        }
    }
    std::fs::read_to_string(root.join("build-version"))
        .ok()
        .map(|s| s.trim().to_owned())
}

fn dlopen_global(path: &Path) -> Result<(), String> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: `c` is a valid NUL-terminated path; the handle is intentionally kept open for the
    // life of the process (libtorch registers its CUDA hooks in static initialisers).
    let handle = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    if handle.is_null() {
        // SAFETY: dlerror returns a thread-local C string or null.
        let msg = unsafe {
            let e = libc::dlerror();
            if e.is_null() {
                "unknown dlopen error".to_owned()
            } else {
                std::ffi::CStr::from_ptr(e).to_string_lossy().into_owned()
            }
        };
        return Err(msg);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_finds_libtorch_and_cpu_is_always_available() {
        let info = Engine::init();
        assert!(
            info.libtorch_dir.is_some(),
            "libtorch_cpu.so must be mapped: {info:?}"
        );
        assert_eq!(pick_device("cpu").unwrap(), Device::Cpu);
        let auto = pick_device("auto").unwrap();
        assert_eq!(auto == Device::Cpu, !tch::Cuda::is_available());
        assert!(matches!(pick_device("tpu"), Err(DeviceError::Unknown(_))));
        assert!(matches!(
            pick_device("cuda:99"),
            Err(DeviceError::Unavailable { .. })
        ));
        let d = devices();
        assert!(d.num_threads >= 1);
        assert_eq!(d.cuda_device_count > 0, d.cuda_available);
    }
}
