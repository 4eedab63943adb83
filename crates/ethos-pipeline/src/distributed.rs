//! Data-parallel runs: one process per device, started by `ethos launch`, torchrun or `srun`
//! (see `docs/distributed.md`). This module reads the launcher's variables, checks what a
//! data-parallel run needs from the config, joins the process group, and lets rank 0 make the
//! decisions that touch files (where the run starts, building cache entries) while the other
//! ranks wait for its outcome.

use std::path::Path;
use std::time::Duration;

use ethos_core::Error;
use ethos_dist::{Backend, GroupOptions, ProcessGroup, Rendezvous};
use ethos_train::data_parallel::DataParallel;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tch::Device;

use crate::Result;
use crate::config::RunConfig;
use crate::run_dir::{self, RunStart};

/// This process's place in a run, from the launcher's variables (one process when there are
/// none). A bad or incomplete set of variables is bad input naming the variable.
pub fn rendezvous() -> Result<Rendezvous> {
    Rendezvous::from_env().map_err(|e| {
        Error::from(e).context("reading the data-parallel launch variables (RANK, WORLD_SIZE, ...)")
    })
}

/// True when the launcher's variables name a rank other than 0: such a process logs only
/// warnings and errors, so a run's log reads like one process's.
pub fn is_secondary_rank() -> bool {
    Rendezvous::from_env().is_ok_and(|r| r.rank != 0)
}

/// The device a rank trains on: with several ranks on CUDA, the GPU of its local rank (one
/// process per GPU), whatever `train.device` names.
pub fn rank_device(device: Device, rdv: &Rendezvous) -> Result<Device> {
    if !device.is_cuda() || !rdv.is_distributed() {
        return Ok(device);
    }
    let count = tch::Cuda::device_count().max(0) as usize;
    if rdv.local_rank >= count {
        return Err(Error::bad_input(format!(
            "rank {} has local rank {} but this node has {count} GPU(s): start one process per GPU",
            rdv.rank, rdv.local_rank
        )));
    }
    Ok(Device::Cuda(rdv.local_rank))
}

/// Checks what a data-parallel run of `world` ranks needs from the config: the global batch
/// `data.batch_size` splits evenly over the ranks, and the backend name is known.
pub fn check_config(cfg: &RunConfig, world: usize) -> Result<()> {
    if world > 1 && !cfg.data.batch_size.is_multiple_of(world) {
        return Err(Error::bad_input(format!(
            "config {}: data.batch_size = {} must be a multiple of the world size {world}: it is \
             the global batch, split evenly over the ranks (so one config trains the same model \
             at any world size)",
            cfg.path.display(),
            cfg.data.batch_size
        )));
    }
    Ok(())
}

/// Joins the process group of a data-parallel run (`None` for one process), after
/// [`check_config`]: backend from `train.dist_backend`, timeout from `train.dist_timeout`.
pub fn join(cfg: &RunConfig, rdv: &Rendezvous, device: Device) -> Result<Option<DataParallel>> {
    if !rdv.is_distributed() {
        return Ok(None);
    }
    check_config(cfg, rdv.world_size)?;
    let backend = Backend::parse(&cfg.train.dist_backend, device.is_cuda())
        .map_err(|e| Error::from(e).context(format!("config {}", cfg.path.display())))?;
    if backend == Backend::Nccl && !device.is_cuda() {
        return Err(Error::bad_input(format!(
            "config {}: train.dist_backend = nccl needs a CUDA device (train.device is {})",
            cfg.path.display(),
            cfg.train.device
        )));
    }
    let mut opts = GroupOptions::new(Duration::from_secs_f64(cfg.train.dist_timeout));
    if let Device::Cuda(i) = device {
        opts.cuda_device = Some(i);
    }
    tracing::info!(
        "data parallel: rank {} of {} ({} node(s)), {} backend, rendezvous at {} (timeout {} s)",
        rdv.rank,
        rdv.world_size,
        rdv.nodes,
        backend.name(),
        rdv.addr(),
        cfg.train.dist_timeout
    );
    let pg = ProcessGroup::with_options(backend, rdv, &opts)?;
    Ok(Some(DataParallel::new(pg, device)))
}

/// Runs `f` as this process's part of a run: in a single process, or as one rank of a
/// data-parallel run (launcher variables read, config checked, group joined on the rank's
/// device, and left once `f` succeeded). `f` gets the device and the group (`None` alone).
pub fn run_as_rank<T>(
    cfg: &RunConfig,
    f: impl FnOnce(Device, Option<&DataParallel>) -> Result<T>,
) -> Result<T> {
    let rdv = rendezvous()?;
    check_config(cfg, rdv.world_size)?;
    let device = rank_device(crate::train::device_of(cfg)?, &rdv)?;
    let group = join(cfg, &rdv, device)?;
    let out = f(device, group.as_ref())?;
    if let Some(g) = group {
        g.shutdown()?;
    }
    Ok(out)
}

/// Where a run starts ([`run_dir::plan_start`]: `--resume`, `--out`, `train.resume`, `--force`),
/// decided by rank 0 alone (it may copy or remove run files) and sent to every rank.
pub fn plan_start(
    dp: Option<&DataParallel>,
    cfg: &RunConfig,
    resume: Option<&Path>,
    out: Option<&Path>,
    force: bool,
) -> Result<RunStart> {
    on_main(dp, || run_dir::plan_start(cfg, resume, out, force))
}

/// What rank 0 sends the others: its value, or its error.
#[derive(serde::Serialize, serde::Deserialize)]
enum Outcome<T> {
    Ok(T),
    Err { message: String, bad_input: bool },
}

/// Runs `f` on rank 0 only (or in a single process) and hands its result to every rank: for
/// decisions with side effects on shared files, such as where a run starts. An error on rank 0
/// becomes an error of the same kind on every rank.
pub fn on_main<T: Serialize + DeserializeOwned>(
    dp: Option<&DataParallel>,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let Some(dp) = dp else { return f() };
    if dp.is_main() {
        let result = f();
        let outcome = match &result {
            Ok(v) => Outcome::Ok(v),
            Err(e) => Outcome::Err {
                message: e.to_string(),
                bad_input: e.is_bad_input(),
            },
        };
        let bytes = serde_json::to_vec(&outcome)
            .map_err(|e| Error::internal(format!("encoding rank 0's decision: {e}")))?;
        dp.broadcast_bytes(Some(bytes))?;
        result
    } else {
        let bytes = dp.broadcast_bytes(None)?;
        match serde_json::from_slice::<Outcome<T>>(&bytes)
            .map_err(|e| Error::internal(format!("decoding rank 0's decision: {e}")))?
        {
            Outcome::Ok(v) => Ok(v),
            Outcome::Err { message, bad_input } => {
                let message = format!("rank 0 stopped the run: {message}");
                Err(if bad_input {
                    Error::bad_input(message)
                } else {
                    Error::internal(message)
                })
            }
        }
    }
}

/// Runs `f` on rank 0 first, then, once it succeeded, on the other ranks (opening a split
/// builds missing cache entries: one rank builds them, the others find them).
pub fn main_first<T>(dp: Option<&DataParallel>, f: impl Fn() -> Result<T>) -> Result<T> {
    let Some(dp) = dp else { return f() };
    let mut mine = None;
    on_main(Some(dp), || {
        mine = Some(f()?);
        Ok(())
    })?;
    match mine {
        Some(v) => Ok(v),
        None => f(),
    }
}
