//! A data-parallel process group: libtorch's TCPStore (hosted by rank 0) for the rendezvous, and
//! c10d's ProcessGroupGloo (CPU) or ProcessGroupNCCL (CUDA, through `libethos_nccl.so`) for the
//! collectives.
//!
//! Failures name ranks. Every rank bumps a heartbeat counter in the store once per
//! [`GroupOptions::heartbeat_interval`] and publishes how many collectives it has started. When a
//! collective fails, the reporting rank watches the counters for 2.5 intervals: ranks whose
//! heartbeat stood still died or exited ([`DistError::PeerFailed`]); if all are alive, those that
//! started fewer collectives are the ones it waited for ([`DistError::Timeout`]). An unreachable
//! store means rank 0, its host, is gone.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tch::{Device, Kind, Tensor};

use crate::error::{DistError, ranks_phrase};
use crate::ffi::{Pg, Store};
use crate::rendezvous::Rendezvous;

/// Which c10d backend carries the collectives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Gloo over TCP: CPU tensors (CUDA tensors are staged through host memory).
    Gloo,
    /// NCCL: CUDA tensors; needs `libethos_nccl.so` (`scripts/build_nccl_shim.sh`).
    Nccl,
}

impl Backend {
    /// Parses `auto | gloo | nccl` (`train.dist_backend`): `auto` is NCCL when the model trains
    /// on CUDA, Gloo on CPU.
    pub fn parse(value: &str, cuda: bool) -> Result<Backend, DistError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(if cuda { Backend::Nccl } else { Backend::Gloo }),
            "gloo" => Ok(Backend::Gloo),
            "nccl" => Ok(Backend::Nccl),
            _ => Err(DistError::BadValue {
                what: "dist_backend".into(),
                value: value.into(),
                reason: "expected auto, gloo or nccl".into(),
            }),
        }
    }

    /// `gloo` or `nccl`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Gloo => "gloo",
            Backend::Nccl => "nccl",
        }
    }
}

/// Settings of a process group beyond the rendezvous.
#[derive(Clone, Debug)]
pub struct GroupOptions {
    /// How long the rendezvous and each collective may wait for the other ranks.
    pub timeout: Duration,
    /// Network interface for Gloo across nodes (default: `GLOO_SOCKET_IFNAME`, else the address
    /// this host's name resolves to; loopback when all ranks share one node).
    pub interface: Option<String>,
    /// Period of the liveness counter each rank bumps in the store.
    pub heartbeat_interval: Duration,
    /// Largest flat buffer, in bytes, that many small tensors are packed into for one collective.
    pub bucket_bytes: usize,
    /// Gloo worker threads.
    pub gloo_threads: usize,
    /// CUDA device of this rank for NCCL (default: the rendezvous's local rank).
    pub cuda_device: Option<usize>,
}

impl GroupOptions {
    /// Defaults with the given timeout: 1 s heartbeat, 25 MiB buckets (as PyTorch's DDP), 2 Gloo
    /// threads.
    pub fn new(timeout: Duration) -> Self {
        GroupOptions {
            timeout,
            interface: None,
            heartbeat_interval: Duration::from_secs(1),
            bucket_bytes: 25 << 20,
            gloo_threads: 2,
            cuda_device: None,
        }
    }
}

/// Liveness publisher: bumps `hb/<rank>` and publishes the collective count `op/<rank>`.
struct Heartbeat {
    stop: Option<mpsc::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl Heartbeat {
    fn spawn(store: Store, rank: usize, interval: Duration, ops: Arc<AtomicU64>) -> Heartbeat {
        let (tx, rx) = mpsc::channel::<()>();
        let handle = std::thread::Builder::new()
            .name(format!("ethos-dist-heartbeat-{rank}"))
            .spawn(move || {
                let mut published = 0u64;
                loop {
                    if store.add(&format!("hb/{rank}"), 1).is_err() {
                        break;
                    }
                    let now = ops.load(Ordering::Relaxed);
                    if now > published {
                        if store
                            .add(&format!("op/{rank}"), (now - published) as i64)
                            .is_err()
                        {
                            break;
                        }
                        published = now;
                    }
                    match rx.recv_timeout(interval) {
                        Err(mpsc::RecvTimeoutError::Timeout) => continue,
                        _ => break,
                    }
                }
            })
            .ok();
        Heartbeat {
            stop: Some(tx),
            handle,
        }
    }

    /// Stops the thread; waits for it unless `detach` (its store may be unreachable).
    fn stop(&mut self, detach: bool) {
        self.stop.take();
        if let Some(h) = self.handle.take()
            && !detach
        {
            let _ = h.join();
        }
    }
}

/// A process group of `world_size` ranks. Collectives must be called in the same order on every
/// rank. Not `Sync`: drive it from one thread.
pub struct ProcessGroup {
    pg: Option<Pg>,
    backend: Backend,
    rank: usize,
    world_size: usize,
    addr: String,
    timeout: Duration,
    heartbeat_interval: Duration,
    bucket_bytes: usize,
    ops: Arc<AtomicU64>,
    heartbeat: Option<Heartbeat>,
    /// A separate store connection, used only to find out who failed.
    diag: Option<Store>,
    /// The store connection (on rank 0 also the server): kept for the life of the group.
    _root: Store,
    failed: std::cell::Cell<bool>,
}

impl std::fmt::Debug for ProcessGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessGroup")
            .field("backend", &self.backend)
            .field("rank", &self.rank)
            .field("world_size", &self.world_size)
            .field("addr", &self.addr)
            .finish()
    }
}

impl ProcessGroup {
    /// Joins the group described by `rendezvous` with default options and `timeout`.
    pub fn new(
        backend: Backend,
        rendezvous: &Rendezvous,
        timeout: Duration,
    ) -> Result<Self, DistError> {
        Self::with_options(backend, rendezvous, &GroupOptions::new(timeout))
    }

    /// Joins the group: rank 0 hosts the store at `MASTER_ADDR:MASTER_PORT`, every rank announces
    /// itself and waits (up to the timeout) for the others, then the backend connects.
    pub fn with_options(
        backend: Backend,
        rdv: &Rendezvous,
        opts: &GroupOptions,
    ) -> Result<Self, DistError> {
        if opts.timeout.is_zero() {
            return Err(DistError::BadValue {
                what: "dist_timeout".into(),
                value: "0".into(),
                reason: "must be positive".into(),
            });
        }
        let (rank, world) = (rdv.rank, rdv.world_size);
        let addr = rdv.addr();
        let store_err = |detail: String| DistError::Store {
            rank,
            addr: addr.clone(),
            detail,
        };
        let root = Store::tcp(&rdv.master_addr, rdv.master_port, rank == 0, opts.timeout)
            .map_err(&store_err)?;
        let store = root.prefixed("ethos").map_err(&store_err)?;
        join(&store, rank, world, opts.timeout, &addr)?;
        let gloo_store = root.prefixed("c10d").map_err(&store_err)?;
        let pg = match backend {
            Backend::Gloo => {
                let (interface, hostname) = gloo_endpoint(rdv, opts)?;
                Pg::gloo(
                    &gloo_store,
                    rank,
                    world,
                    opts.timeout,
                    interface.as_deref(),
                    hostname.as_deref(),
                    opts.gloo_threads.max(1),
                )
                .map_err(|detail| DistError::Collective {
                    rank,
                    op: "connect (gloo)",
                    detail,
                })?
            }
            Backend::Nccl => crate::nccl::new_backend(
                &gloo_store,
                rank,
                world,
                opts.timeout,
                opts.cuda_device.unwrap_or(rdv.local_rank),
            )?,
        };
        let ops = Arc::new(AtomicU64::new(0));
        let (heartbeat, diag) = if world > 1 {
            let connect = || {
                root.try_clone()
                    .and_then(|s| s.prefixed("ethos"))
                    .map_err(&store_err)
            };
            let hb_store = connect()?;
            let diag = connect()?;
            let hb = Heartbeat::spawn(hb_store, rank, opts.heartbeat_interval, ops.clone());
            (Some(hb), Some(diag))
        } else {
            (None, None)
        };
        tracing::debug!(rank, world, backend = backend.name(), %addr, "process group ready");
        Ok(ProcessGroup {
            pg: Some(pg),
            backend,
            rank,
            world_size: world,
            addr,
            timeout: opts.timeout,
            heartbeat_interval: opts.heartbeat_interval,
            bucket_bytes: opts.bucket_bytes.max(1),
            ops,
            heartbeat,
            diag,
            _root: root,
            failed: std::cell::Cell::new(false),
        })
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Number of ranks.
    pub fn world_size(&self) -> usize {
        self.world_size
    }

    /// The backend carrying the collectives.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Sums each tensor over all ranks, in place. Tensors of any shapes; runs of tensors with the
    /// same dtype and device are packed into flat buckets of at most
    /// [`GroupOptions::bucket_bytes`] so that many small gradients cost few collectives.
    pub fn all_reduce_sum(&self, tensors: &mut [Tensor]) -> Result<(), DistError> {
        self.reduce(tensors, false, "all_reduce")
    }

    /// Averages each tensor over all ranks, in place: the sum divided by the world size (Gloo has
    /// no average). Floating-point tensors only.
    pub fn all_reduce_mean(&self, tensors: &mut [Tensor]) -> Result<(), DistError> {
        self.reduce(tensors, true, "all_reduce_mean")
    }

    /// Copies each tensor of rank `root` into the same tensors of every other rank, in place
    /// (initial weights, for instance). Shapes and dtypes must match across ranks.
    pub fn broadcast(&self, tensors: &mut [Tensor], root: usize) -> Result<(), DistError> {
        if root >= self.world_size {
            return Err(DistError::BadValue {
                what: "broadcast root".into(),
                value: root.to_string(),
                reason: format!("must be below the world size {}", self.world_size),
            });
        }
        let op = "broadcast";
        self.check_defined(tensors, op)?;
        for bucket in buckets(tensors, self.bucket_bytes) {
            let group = &mut tensors[bucket];
            if group.len() == 1 && group[0].is_contiguous() {
                self.collective(op, |pg| pg.broadcast(&group[0], root))?;
            } else {
                let flat = flatten(group);
                self.collective(op, |pg| pg.broadcast(&flat, root))?;
                if self.rank != root {
                    unflatten(&flat, group);
                }
            }
        }
        Ok(())
    }

    /// Gathers `tensor` from every rank: element r of the result is rank r's tensor. Lengths along
    /// dimension 0 may differ between ranks (validation predictions of unequal shards); the other
    /// dimensions and the dtype must agree. Gloo gathers on the CPU, NCCL on the tensor's device.
    pub fn all_gather(&self, tensor: &Tensor) -> Result<Vec<Tensor>, DistError> {
        let op = "all_gather";
        let invalid = |reason: String| DistError::InvalidTensors {
            rank: self.rank,
            op,
            reason,
        };
        let size = tensor.size();
        if size.is_empty() || size.len() > MAX_GATHER_DIMS {
            return Err(invalid(format!(
                "needs 1 to {MAX_GATHER_DIMS} dimensions, got shape {size:?}"
            )));
        }
        let device = match self.backend {
            Backend::Gloo => Device::Cpu,
            Backend::Nccl => tensor.device(),
        };
        let kind = tensor.kind();
        // First the shapes, so that every rank can size its receive buffers.
        let mut header = vec![-1i64; 2 + MAX_GATHER_DIMS];
        header[0] = size.len() as i64;
        header[1] = kind_code(kind);
        header[2..2 + size.len()].copy_from_slice(&size);
        let header = Tensor::from_slice(&header).to_device(device);
        let headers: Vec<Tensor> = (0..self.world_size).map(|_| header.empty_like()).collect();
        self.collective(op, |pg| pg.allgather(&header, &headers))?;
        let headers: Vec<Vec<i64>> = headers
            .iter()
            .map(|h| Vec::<i64>::try_from(h.to_device(Device::Cpu)).unwrap_or_default())
            .collect();
        let mine = &headers[self.rank];
        let differing: Vec<usize> = (0..self.world_size)
            .filter(|&r| {
                let h = &headers[r];
                h.len() != mine.len() || h[0] != mine[0] || h[1] != mine[1] || h[3..] != mine[3..]
            })
            .collect();
        if !differing.is_empty() {
            return Err(invalid(format!(
                "{} gathered tensors of another dtype or trailing shape than this rank's {size:?} ({kind:?})",
                ranks_phrase(&differing)
            )));
        }
        let lengths: Vec<i64> = headers.iter().map(|h| h[2]).collect();
        let longest = lengths.iter().copied().max().unwrap_or(0);
        let mut padded_size = size.clone();
        padded_size[0] = longest;
        let mine = tensor.to_device(device);
        let padded = if size[0] == longest {
            mine.contiguous()
        } else {
            let p = Tensor::zeros(padded_size.as_slice(), (kind, device));
            p.narrow(0, 0, size[0]).copy_(&mine);
            p
        };
        let outputs: Vec<Tensor> = (0..self.world_size)
            .map(|_| Tensor::empty(padded_size.as_slice(), (kind, device)))
            .collect();
        self.collective(op, |pg| pg.allgather(&padded, &outputs))?;
        Ok(outputs
            .into_iter()
            .zip(lengths)
            .map(|(t, n)| t.narrow(0, 0, n))
            .collect())
    }

    /// Waits until every rank has reached this call.
    pub fn barrier(&self) -> Result<(), DistError> {
        self.collective("barrier", |pg| pg.barrier())
    }

    /// Leaves the group cleanly: stops this rank's heartbeat, then waits for every rank to do the
    /// same, so that rank 0 does not close the store while others still use it. Call it at the
    /// end of a run on every rank; dropping the group without it is fine after a failure.
    pub fn shutdown(mut self) -> Result<(), DistError> {
        if let Some(hb) = &mut self.heartbeat {
            hb.stop(false);
        }
        self.barrier()
    }

    fn reduce(
        &self,
        tensors: &mut [Tensor],
        mean: bool,
        op: &'static str,
    ) -> Result<(), DistError> {
        self.check_defined(tensors, op)?;
        if mean && let Some(t) = tensors.iter().find(|t| !t.is_floating_point()) {
            return Err(DistError::InvalidTensors {
                rank: self.rank,
                op,
                reason: format!("cannot average a {:?} tensor", t.kind()),
            });
        }
        let world = self.world_size as f64;
        for bucket in buckets(tensors, self.bucket_bytes) {
            let group = &mut tensors[bucket];
            if group.len() == 1 && group[0].is_contiguous() {
                self.collective(op, |pg| pg.allreduce_sum(&group[0]))?;
                if mean {
                    let _ = group[0].g_div_scalar_(world);
                }
            } else {
                let mut flat = flatten(group);
                self.collective(op, |pg| pg.allreduce_sum(&flat))?;
                if mean {
                    let _ = flat.g_div_scalar_(world);
                }
                unflatten(&flat, group);
            }
        }
        Ok(())
    }

    fn check_defined(&self, tensors: &[Tensor], op: &'static str) -> Result<(), DistError> {
        match tensors.iter().position(|t| !t.defined()) {
            Some(i) => Err(DistError::InvalidTensors {
                rank: self.rank,
                op,
                reason: format!("tensor {i} is undefined (a gradient that was never computed?)"),
            }),
            None => Ok(()),
        }
    }

    /// Runs one collective; a failure marks the group failed and is diagnosed into an error that
    /// names the ranks responsible.
    fn collective<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Pg) -> Result<T, String>,
    ) -> Result<T, DistError> {
        let pg = match (&self.pg, self.failed.get()) {
            (Some(pg), false) => pg,
            _ => {
                return Err(DistError::Collective {
                    rank: self.rank,
                    op,
                    detail: "the group failed earlier and cannot be used".into(),
                });
            }
        };
        self.ops.fetch_add(1, Ordering::Relaxed);
        f(pg).map_err(|detail| {
            self.failed.set(true);
            self.diagnose(op, detail)
        })
    }

    fn diagnose(&self, op: &'static str, detail: String) -> DistError {
        let rank = self.rank;
        let Some(diag) = &self.diag else {
            return DistError::Collective { rank, op, detail };
        };
        let others: Vec<usize> = (0..self.world_size).filter(|&r| r != rank).collect();
        let read = |prefix: &str| -> Result<Vec<i64>, String> {
            others
                .iter()
                .map(|r| diag.add(&format!("{prefix}/{r}"), 0))
                .collect()
        };
        let store_gone = |why: String| DistError::PeerFailed {
            rank,
            op,
            failed: vec![0],
            detail: format!("{detail}; the store rank 0 hosts is unreachable: {why}"),
        };
        let before = match read("hb") {
            Ok(v) => v,
            Err(why) if rank != 0 => return store_gone(why),
            Err(why) => {
                return DistError::Collective {
                    rank,
                    op,
                    detail: format!("{detail}; heartbeats unreadable: {why}"),
                };
            }
        };
        std::thread::sleep(self.heartbeat_interval.mul_f64(2.5));
        let after = match read("hb") {
            Ok(v) => v,
            Err(why) if rank != 0 => return store_gone(why),
            Err(_) => before.clone(),
        };
        let dead: Vec<usize> = others
            .iter()
            .zip(before.iter().zip(&after))
            .filter(|(_, (b, a))| a == b)
            .map(|(r, _)| *r)
            .collect();
        if !dead.is_empty() {
            return DistError::PeerFailed {
                rank,
                op,
                failed: dead,
                detail,
            };
        }
        let started = self.ops.load(Ordering::Relaxed) as i64;
        let laggards: Vec<usize> = match read("op") {
            Ok(counts) => others
                .iter()
                .zip(counts)
                .filter(|(_, c)| *c < started)
                .map(|(r, _)| *r)
                .collect(),
            Err(_) => Vec::new(),
        };
        if laggards.is_empty() {
            DistError::Collective { rank, op, detail }
        } else {
            DistError::Timeout {
                rank,
                op,
                laggards,
                timeout_s: self.timeout.as_secs_f64(),
                detail,
            }
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        let failed = self.failed.get();
        if let Some(hb) = &mut self.heartbeat {
            hb.stop(failed);
        }
        if let Some(pg) = self.pg.take()
            && failed
        {
            pg.leak();
        }
    }
}

/// Dimensions an [`ProcessGroup::all_gather`] header can describe.
const MAX_GATHER_DIMS: usize = 8;

fn kind_code(kind: Kind) -> i64 {
    match kind {
        Kind::Uint8 => 0,
        Kind::Int8 => 1,
        Kind::Int16 => 2,
        Kind::Int => 3,
        Kind::Int64 => 4,
        Kind::Half => 5,
        Kind::Float => 6,
        Kind::Double => 7,
        Kind::Bool => 11,
        Kind::BFloat16 => 15,
        _ => 99,
    }
}

/// Consecutive runs of tensors with one dtype and device, cut so that a run holds at most
/// `max_bytes` (a single larger tensor is a run of its own).
fn buckets(tensors: &[Tensor], max_bytes: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0usize;
    for (i, t) in tensors.iter().enumerate() {
        let size = t.numel() * t.kind().elt_size_in_bytes();
        let same =
            i > start && t.kind() == tensors[start].kind() && t.device() == tensors[start].device();
        if i > start && (!same || bytes + size > max_bytes) {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < tensors.len() {
        out.push(start..tensors.len());
    }
    out
}

/// One contiguous 1-d copy of the tensors, in order.
fn flatten(tensors: &[Tensor]) -> Tensor {
    let parts: Vec<Tensor> = tensors.iter().map(|t| t.reshape([-1])).collect();
    Tensor::cat(&parts, 0)
}

/// Copies the consecutive slices of `flat` back into the tensors.
fn unflatten(flat: &Tensor, tensors: &mut [Tensor]) {
    let mut offset = 0i64;
    for t in tensors.iter_mut() {
        let n = t.numel() as i64;
        let src = flat.narrow(0, offset, n).view(t.size().as_slice());
        t.copy_(&src);
        offset += n;
    }
}

/// Every rank announces itself under `joined/<rank>` and bumps `joined`; all wait until the count
/// reaches the world size, naming the ranks still missing at the timeout.
fn join(
    store: &Store,
    rank: usize,
    world: usize,
    timeout: Duration,
    addr: &str,
) -> Result<(), DistError> {
    let store_err = |detail: String| DistError::Store {
        rank,
        addr: addr.to_string(),
        detail,
    };
    store
        .set(&format!("joined/{rank}"), b"1")
        .map_err(store_err)?;
    store.add("joined", 1).map_err(store_err)?;
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        let count = store.add("joined", 0).map_err(store_err)?;
        if count as usize >= world {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let mut missing = Vec::new();
            for r in 0..world {
                if !store.check(&format!("joined/{r}")).map_err(store_err)? {
                    missing.push(r);
                }
            }
            return Err(DistError::JoinTimeout {
                rank,
                missing,
                world_size: world,
                addr: addr.to_string(),
                timeout_s: timeout.as_secs_f64(),
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// The Gloo endpoint: an interface (option or `GLOO_SOCKET_IFNAME`), else loopback on one node,
/// else the non-loopback address this host's name resolves to.
fn gloo_endpoint(
    rdv: &Rendezvous,
    opts: &GroupOptions,
) -> Result<(Option<String>, Option<String>), DistError> {
    let from_env = std::env::var("GLOO_SOCKET_IFNAME")
        .ok()
        .map(|v| v.split(',').next().unwrap_or("").trim().to_string())
        .filter(|v| !v.is_empty());
    if let Some(iface) = opts.interface.clone().or(from_env) {
        return Ok((Some(iface), None));
    }
    if rdv.nodes <= 1 {
        return Ok((None, Some("127.0.0.1".into())));
    }
    let host = local_hostname().ok_or_else(|| DistError::BadEnv {
        name: "GLOO_SOCKET_IFNAME".into(),
        value: String::new(),
        reason: "this host's name is unknown; name the network interface to use".into(),
    })?;
    use std::net::ToSocketAddrs;
    let routable = (host.as_str(), 0)
        .to_socket_addrs()
        .map(|mut addrs| addrs.any(|a| !a.ip().is_loopback()))
        .unwrap_or(false);
    if !routable {
        return Err(DistError::BadEnv {
            name: "GLOO_SOCKET_IFNAME".into(),
            value: String::new(),
            reason: format!(
                "the run spans {} nodes but this host's name `{host}` resolves only to loopback; \
                 set GLOO_SOCKET_IFNAME to the interface that reaches the other nodes (e.g. ib0, eth0)",
                rdv.nodes
            ),
        });
    }
    Ok((None, Some(host)))
}

fn local_hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into the buffer.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).into_owned();
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_split_on_size_dtype_and_keep_order() {
        let f = |n: i64| Tensor::zeros([n], (Kind::Float, Device::Cpu));
        let d = |n: i64| Tensor::zeros([n], (Kind::Double, Device::Cpu));
        let ts = [f(10), f(10), f(30), d(2), d(2), f(1)];
        // 40 bytes per 10 floats; a 100-byte bucket holds the first two, the 120-byte one alone.
        assert_eq!(buckets(&ts, 100), vec![0..2, 2..3, 3..5, 5..6]);
        assert_eq!(buckets(&ts, 1 << 20), vec![0..3, 3..5, 5..6]);
        assert!(buckets(&[], 10).is_empty());
    }

    #[test]
    fn flatten_and_unflatten_round_trip_non_contiguous_tensors() {
        let a = Tensor::arange(6, (Kind::Float, Device::Cpu))
            .view([2, 3])
            .tr();
        let b = Tensor::arange(4, (Kind::Float, Device::Cpu)) + 10.0;
        let mut ts = [a.copy(), b.copy()];
        let flat = flatten(&ts) * 2.0;
        unflatten(&flat, &mut ts);
        assert!(ts[0].allclose(&(a * 2.0), 0.0, 0.0, false));
        assert!(ts[1].allclose(&(b * 2.0), 0.0, 0.0, false));
    }

    #[test]
    fn backend_names_parse() {
        assert_eq!(Backend::parse("auto", true).unwrap(), Backend::Nccl);
        assert_eq!(Backend::parse("AUTO", false).unwrap(), Backend::Gloo);
        assert_eq!(Backend::parse("gloo", true).unwrap(), Backend::Gloo);
        assert!(Backend::parse("mpi", false).is_err());
    }

    #[test]
    fn a_single_rank_group_runs_every_collective() {
        let pg = ProcessGroup::new(
            Backend::Gloo,
            &Rendezvous::single(),
            Duration::from_secs(30),
        )
        .expect("world-1 gloo group");
        let mut ts = [
            Tensor::from_slice(&[1.0f32, 2.0]),
            Tensor::from_slice(&[3.0f64]),
        ];
        pg.all_reduce_mean(&mut ts).unwrap();
        assert_eq!(Vec::<f32>::try_from(&ts[0]).unwrap(), [1.0, 2.0]);
        pg.broadcast(&mut ts, 0).unwrap();
        assert!(pg.broadcast(&mut ts, 1).is_err());
        let g = pg.all_gather(&Tensor::from_slice(&[7i64, 8, 9])).unwrap();
        assert_eq!(Vec::<i64>::try_from(&g[0]).unwrap(), [7, 8, 9]);
        pg.barrier().unwrap();
        let mut ints = [Tensor::from_slice(&[1i64])];
        assert!(pg.all_reduce_mean(&mut ints).is_err());
        pg.all_reduce_sum(&mut ints).unwrap();
    }
}
