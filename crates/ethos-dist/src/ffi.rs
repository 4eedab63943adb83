//! The C ABI of `cpp/ethos_c10d.cpp` and the thin owning wrappers around its handles. Every shim
//! function returns null on success or a malloc'ed message; [`take_error`] turns it into a String.

use std::ffi::{CStr, CString, c_char, c_int};
use std::ptr::NonNull;
use std::time::Duration;

use torch_sys::C_tensor;

/// Opaque `ethos_store` (a `c10::intrusive_ptr<c10d::Store>`).
#[repr(C)]
pub struct RawStore {
    _private: [u8; 0],
}

/// Opaque `ethos_pg` (a `c10::intrusive_ptr<c10d::Backend>`).
#[repr(C)]
pub struct RawPg {
    _private: [u8; 0],
}

unsafe extern "C" {
    fn ethos_c10d_free_string(message: *mut c_char);
    fn ethos_store_tcp_new(
        host: *const c_char,
        port: u16,
        is_server: c_int,
        timeout_ms: i64,
        out: *mut *mut RawStore,
    ) -> *mut c_char;
    fn ethos_store_clone(store: *mut RawStore, out: *mut *mut RawStore) -> *mut c_char;
    fn ethos_store_prefix(
        store: *mut RawStore,
        prefix: *const c_char,
        out: *mut *mut RawStore,
    ) -> *mut c_char;
    fn ethos_store_free(store: *mut RawStore);
    fn ethos_store_set(
        store: *mut RawStore,
        key: *const c_char,
        data: *const u8,
        len: usize,
    ) -> *mut c_char;
    fn ethos_store_add(
        store: *mut RawStore,
        key: *const c_char,
        delta: i64,
        value: *mut i64,
    ) -> *mut c_char;
    fn ethos_store_check(
        store: *mut RawStore,
        key: *const c_char,
        present: *mut c_int,
    ) -> *mut c_char;
    fn ethos_pg_gloo_new(
        store: *mut RawStore,
        rank: c_int,
        size: c_int,
        timeout_ms: i64,
        interface_name: *const c_char,
        hostname: *const c_char,
        threads: c_int,
        out: *mut *mut RawPg,
    ) -> *mut c_char;
    fn ethos_pg_free(pg: *mut RawPg);
    fn ethos_pg_allreduce_sum(pg: *mut RawPg, tensor: *mut C_tensor) -> *mut c_char;
    fn ethos_pg_broadcast(pg: *mut RawPg, tensor: *mut C_tensor, root: c_int) -> *mut c_char;
    fn ethos_pg_allgather(
        pg: *mut RawPg,
        input: *mut C_tensor,
        outputs: *mut *mut C_tensor,
        count: c_int,
    ) -> *mut c_char;
    fn ethos_pg_barrier(pg: *mut RawPg) -> *mut c_char;
}

/// Signature of `ethos_pg_nccl_new` in `libethos_nccl.so`.
pub(crate) type NcclNewFn = unsafe extern "C" fn(
    store: *mut RawStore,
    rank: c_int,
    size: c_int,
    timeout_ms: i64,
    device_index: c_int,
    out: *mut *mut RawPg,
) -> *mut c_char;

/// Converts a shim return value: null is success, anything else an owned message.
pub(crate) fn take_error(message: *mut c_char) -> Result<(), String> {
    if message.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null return is a NUL-terminated string malloc'ed by the shim, freed once here.
    let text = unsafe { CStr::from_ptr(message) }
        .to_string_lossy()
        .into_owned();
    unsafe { ethos_c10d_free_string(message) };
    Err(text)
}

fn cstring(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("{s:?} contains a NUL byte"))
}

fn millis(d: Duration) -> i64 {
    d.as_millis().clamp(1, i64::MAX as u128) as i64
}

/// A client (and on rank 0 the server) of a c10d key-value store.
pub(crate) struct Store {
    raw: NonNull<RawStore>,
}

// SAFETY: a c10d store client serialises its operations with an internal lock; ethos gives each
// thread its own clone anyway.
unsafe impl Send for Store {}

impl Store {
    /// Connects to (and with `server` hosts) libtorch's TCPStore at `host:port`.
    pub(crate) fn tcp(
        host: &str,
        port: u16,
        server: bool,
        timeout: Duration,
    ) -> Result<Self, String> {
        let host = cstring(host)?;
        let mut out = std::ptr::null_mut();
        // SAFETY: valid C string and out pointer; the shim writes a new handle on success.
        take_error(unsafe {
            ethos_store_tcp_new(
                host.as_ptr(),
                port,
                server as c_int,
                millis(timeout),
                &mut out,
            )
        })?;
        Self::wrap(out)
    }

    fn wrap(raw: *mut RawStore) -> Result<Self, String> {
        NonNull::new(raw)
            .map(|raw| Store { raw })
            .ok_or_else(|| "the shim returned no store".to_string())
    }

    /// A new client connection to the same store.
    pub(crate) fn try_clone(&self) -> Result<Self, String> {
        let mut out = std::ptr::null_mut();
        // SAFETY: self.raw is a live handle.
        take_error(unsafe { ethos_store_clone(self.raw.as_ptr(), &mut out) })?;
        Self::wrap(out)
    }

    /// A view of this store whose keys all start with `prefix`.
    pub(crate) fn prefixed(&self, prefix: &str) -> Result<Self, String> {
        let prefix = cstring(prefix)?;
        let mut out = std::ptr::null_mut();
        // SAFETY: live handle, valid C string.
        take_error(unsafe { ethos_store_prefix(self.raw.as_ptr(), prefix.as_ptr(), &mut out) })?;
        Self::wrap(out)
    }

    pub(crate) fn set(&self, key: &str, value: &[u8]) -> Result<(), String> {
        let key = cstring(key)?;
        // SAFETY: live handle; `value` outlives the call.
        take_error(unsafe {
            ethos_store_set(self.raw.as_ptr(), key.as_ptr(), value.as_ptr(), value.len())
        })
    }

    /// Adds `delta` to the integer under `key` (created at 0) and returns the new value.
    pub(crate) fn add(&self, key: &str, delta: i64) -> Result<i64, String> {
        let key = cstring(key)?;
        let mut value = 0i64;
        // SAFETY: live handle, valid pointers.
        take_error(unsafe { ethos_store_add(self.raw.as_ptr(), key.as_ptr(), delta, &mut value) })?;
        Ok(value)
    }

    pub(crate) fn check(&self, key: &str) -> Result<bool, String> {
        let key = cstring(key)?;
        let mut present = 0;
        // SAFETY: live handle, valid pointers.
        take_error(unsafe { ethos_store_check(self.raw.as_ptr(), key.as_ptr(), &mut present) })?;
        Ok(present != 0)
    }

    pub(crate) fn as_raw(&self) -> *mut RawStore {
        self.raw.as_ptr()
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // SAFETY: the handle is owned and freed once.
        unsafe { ethos_store_free(self.raw.as_ptr()) }
    }
}

/// An owned c10d backend (Gloo or NCCL process group).
pub(crate) struct Pg {
    raw: NonNull<RawPg>,
}

// SAFETY: c10d backends are driven from one thread at a time; ProcessGroup is not Sync.
unsafe impl Send for Pg {}

impl Pg {
    pub(crate) fn wrap(raw: *mut RawPg) -> Result<Self, String> {
        NonNull::new(raw)
            .map(|raw| Pg { raw })
            .ok_or_else(|| "the shim returned no process group".to_string())
    }

    /// Creates libtorch's ProcessGroupGloo over `store`, on the named interface, else on the
    /// address `hostname` resolves to, else on the default device.
    pub(crate) fn gloo(
        store: &Store,
        rank: usize,
        size: usize,
        timeout: Duration,
        interface: Option<&str>,
        hostname: Option<&str>,
        threads: usize,
    ) -> Result<Self, String> {
        let interface = cstring(interface.unwrap_or(""))?;
        let hostname = cstring(hostname.unwrap_or(""))?;
        let mut out = std::ptr::null_mut();
        // SAFETY: live store handle, valid C strings; the shim writes a new handle on success.
        take_error(unsafe {
            ethos_pg_gloo_new(
                store.as_raw(),
                rank as c_int,
                size as c_int,
                millis(timeout),
                interface.as_ptr(),
                hostname.as_ptr(),
                threads as c_int,
                &mut out,
            )
        })?;
        Self::wrap(out)
    }

    pub(crate) fn allreduce_sum(&self, t: &tch::Tensor) -> Result<(), String> {
        // SAFETY: live handle; the shim copies the at::Tensor handle and writes into its storage.
        take_error(unsafe { ethos_pg_allreduce_sum(self.raw.as_ptr(), t.as_ptr() as *mut _) })
    }

    pub(crate) fn broadcast(&self, t: &tch::Tensor, root: usize) -> Result<(), String> {
        // SAFETY: as for allreduce_sum.
        take_error(unsafe {
            ethos_pg_broadcast(self.raw.as_ptr(), t.as_ptr() as *mut _, root as c_int)
        })
    }

    pub(crate) fn allgather(
        &self,
        input: &tch::Tensor,
        outputs: &[tch::Tensor],
    ) -> Result<(), String> {
        let mut ptrs: Vec<*mut C_tensor> = outputs.iter().map(|t| t.as_ptr() as *mut _).collect();
        // SAFETY: live handle; `ptrs` holds `outputs.len()` live tensor handles for the call.
        take_error(unsafe {
            ethos_pg_allgather(
                self.raw.as_ptr(),
                input.as_ptr() as *mut _,
                ptrs.as_mut_ptr(),
                ptrs.len() as c_int,
            )
        })
    }

    pub(crate) fn barrier(&self) -> Result<(), String> {
        // SAFETY: live handle.
        take_error(unsafe { ethos_pg_barrier(self.raw.as_ptr()) })
    }

    /// Leaves the backend allocated: after a peer failed, its destructor may wait on connections
    /// that never answer, and the process is about to report the error and exit.
    pub(crate) fn leak(self) {
        std::mem::forget(self);
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        // SAFETY: the handle is owned and freed once.
        unsafe { ethos_pg_free(self.raw.as_ptr()) }
    }
}
