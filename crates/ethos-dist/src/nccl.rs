//! The NCCL backend, loaded at run time. `libethos_nccl.so` (built by `scripts/build_nccl_shim.sh`
//! where CUDA and NCCL headers exist) links libtorch_cuda; ethos itself never does, so CPU-only
//! machines start. It is looked for, in order, at `$ETHOS_NCCL_SHIM`, next to the executable, in
//! `../nccl/` beside it (the script's `target/nccl/`), and beside the loaded `libtorch_cpu.so`.

use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use crate::error::DistError;
use crate::ffi::{NcclNewFn, Pg, Store, take_error};

/// File name of the NCCL shim.
pub const NCCL_SHIM_FILE: &str = "libethos_nccl.so";

static CONSTRUCTOR: OnceLock<Result<NcclNewFn, String>> = OnceLock::new();

/// Where the NCCL shim would be loaded from, in search order.
pub fn nccl_shim_candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os("ETHOS_NCCL_SHIM") {
        out.push(PathBuf::from(p));
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        out.push(dir.join(NCCL_SHIM_FILE));
        if let Some(up) = dir.parent() {
            out.push(up.join("nccl").join(NCCL_SHIM_FILE));
        }
    }
    if let Some(dir) = loaded_library_dir("libtorch_cpu.so") {
        out.push(dir.join(NCCL_SHIM_FILE));
    }
    out
}

/// Creates libtorch's ProcessGroupNCCL over `store` on CUDA device `device`.
pub(crate) fn new_backend(
    store: &Store,
    rank: usize,
    world: usize,
    timeout: Duration,
    device: usize,
) -> Result<Pg, DistError> {
    let ctor =
        CONSTRUCTOR
            .get_or_init(load)
            .as_ref()
            .map_err(|reason| DistError::NcclUnavailable {
                reason: reason.clone(),
            })?;
    let mut out = std::ptr::null_mut();
    // SAFETY: `ctor` is `ethos_pg_nccl_new` from a shim built against the same libtorch headers;
    // the store handle is live for the call.
    let result = unsafe {
        ctor(
            store.as_raw(),
            rank as i32,
            world as i32,
            timeout.as_millis().clamp(1, i64::MAX as u128) as i64,
            device as i32,
            &mut out,
        )
    };
    take_error(result)
        .and_then(|()| Pg::wrap(out))
        .map_err(|detail| DistError::Collective {
            rank,
            op: "connect (nccl)",
            detail,
        })
}

fn load() -> Result<NcclNewFn, String> {
    if loaded_library_dir("libtorch_cuda.so").is_none() {
        return Err(
            "libtorch_cuda.so is not loaded (a CPU-only libtorch, or Engine::init was not called \
             before creating the group); use dist_backend gloo"
                .into(),
        );
    }
    let candidates = nccl_shim_candidates();
    let Some(path) = candidates.iter().find(|p| p.is_file()) else {
        return Err(format!(
            "{NCCL_SHIM_FILE} not found (looked at {}); build it with scripts/build_nccl_shim.sh \
             on a machine with CUDA, or set ETHOS_NCCL_SHIM",
            candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    };
    use std::os::unix::ffi::OsStrExt;
    let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: valid path; the handle stays open for the life of the process because the group's
    // code lives in it.
    let handle = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        return Err(format!("cannot load {}: {}", path.display(), dl_error()));
    }
    let name = c"ethos_pg_nccl_new";
    // SAFETY: live handle, NUL-terminated symbol name.
    let sym = unsafe { libc::dlsym(handle, name.as_ptr()) };
    if sym.is_null() {
        return Err(format!(
            "{} has no ethos_pg_nccl_new: {}",
            path.display(),
            dl_error()
        ));
    }
    tracing::debug!(path = %path.display(), "loaded the NCCL shim");
    // SAFETY: the symbol is the shim's `ethos_pg_nccl_new`, whose C signature NcclNewFn mirrors.
    Ok(unsafe { std::mem::transmute::<*mut libc::c_void, NcclNewFn>(sym) })
}

fn dl_error() -> String {
    // SAFETY: dlerror returns a thread-local C string or null.
    unsafe {
        let e = libc::dlerror();
        if e.is_null() {
            "unknown dlopen error".into()
        } else {
            CStr::from_ptr(e).to_string_lossy().into_owned()
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_libtorch_cuda_nccl_is_a_clear_bad_input_error() {
        if loaded_library_dir("libtorch_cuda.so").is_some() {
            return; // a CUDA machine: covered by the GPU check instead
        }
        let err = load().expect_err("no libtorch_cuda here");
        assert!(err.contains("libtorch_cuda.so is not loaded"), "{err}");
        let candidates = nccl_shim_candidates();
        assert!(candidates.iter().any(|p| p.ends_with(NCCL_SHIM_FILE)));
    }
}
