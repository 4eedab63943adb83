//! Data-parallel process groups for ethos on libtorch's own c10d: the rendezvous `TCPStore`, Gloo
//! for CPUs and NCCL for GPUs, reached through a small C++ shim (`cpp/ethos_c10d.cpp`, built by
//! `build.rs`; NCCL through an optional `libethos_nccl.so`, see [`nccl`]).
//!
//! ```no_run
//! use std::time::Duration;
//! use ethos_dist::{Backend, ProcessGroup, Rendezvous};
//! # fn main() -> Result<(), ethos_dist::DistError> {
//! let rdv = Rendezvous::from_env()?; // torchrun / `ethos launch` / SLURM variables
//! let pg = ProcessGroup::new(Backend::Gloo, &rdv, Duration::from_secs(300))?;
//! let mut grads = vec![tch::Tensor::ones([3], (tch::Kind::Float, tch::Device::Cpu))];
//! pg.all_reduce_mean(&mut grads)?; // every rank now holds the average
//! # Ok(()) }
//! ```

pub mod error;
mod ffi;
pub mod group;
pub mod hostlist;
pub mod nccl;
pub mod rendezvous;

pub use error::DistError;
pub use group::{Backend, GroupOptions, ProcessGroup};
pub use hostlist::{expand_hostlist, first_host};
pub use rendezvous::{Rendezvous, RendezvousSource};
