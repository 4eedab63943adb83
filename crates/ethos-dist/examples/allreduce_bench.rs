//! All-reduce time of one large float32 tensor between local processes (default: 10 M floats,
//! 2 processes, Gloo on CPU). `--backend nccl` runs NCCL on `cuda:LOCAL_RANK` instead (needs
//! `libethos_nccl.so`, see scripts/build_nccl_shim.sh; one GPU hosts one rank: `--nproc 1`).
//! Prints one JSON line from rank 0.
//!
//! cargo run --release -p ethos-dist --example allreduce_bench -- [--nproc 2] [--numel 10000000]
//!     [--iters 10] [--warmup 2] [--backend gloo|nccl]

#[path = "common/launch_util.rs"]
mod launch_util;

use std::time::{Duration, Instant};

use ethos_dist::{Backend, ProcessGroup, Rendezvous};
use tch::{Device, Kind, Tensor};

fn main() {
    let nproc: usize = launch_util::arg("--nproc", 2);
    if std::env::var("RANK").is_err() {
        let threads = (std::thread::available_parallelism().map_or(1, |n| n.get()) / nproc).max(1);
        std::process::exit(if launch_util::launch_local(nproc, threads as i32) {
            0
        } else {
            1
        });
    }
    let numel: i64 = launch_util::arg("--numel", 10_000_000);
    let iters: usize = launch_util::arg("--iters", 10);
    let warmup: usize = launch_util::arg("--warmup", 2);
    let threads: i32 = launch_util::arg("--threads", 0);
    if let Some(n) = std::env::var("ETHOS_RANK_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        tch::set_num_threads(if threads > 0 { threads } else { n });
    }
    let backend: String = launch_util::arg("--backend", "gloo".to_string());
    let rdv = Rendezvous::from_env().expect("rendezvous");
    let (backend, device) = match backend.as_str() {
        "gloo" => (Backend::Gloo, Device::Cpu),
        "nccl" => {
            // Maps libtorch_cuda.so into the process, which the NCCL shim needs.
            ethos_models::engine::Engine::init();
            (Backend::Nccl, Device::Cuda(rdv.local_rank))
        }
        other => panic!("--backend must be gloo or nccl, got {other}"),
    };
    let pg = ProcessGroup::new(backend, &rdv, Duration::from_secs(120)).expect("group");
    let base = Tensor::full([numel], rdv.rank as f64 + 1.0, (Kind::Float, device));
    let mut times = Vec::new();
    for i in 0..warmup + iters {
        let mut t = vec![base.copy()];
        pg.barrier().expect("barrier");
        let start = Instant::now();
        pg.all_reduce_sum(&mut t).expect("all_reduce");
        if let Device::Cuda(d) = device {
            tch::Cuda::synchronize(d as i64);
        }
        let ms = start.elapsed().as_secs_f64() * 1e3;
        let expect = (rdv.world_size * (rdv.world_size + 1) / 2) as f64;
        assert_eq!(t[0].double_value(&[numel - 1]), expect, "wrong sum");
        if i >= warmup {
            times.push(ms);
        }
    }
    times.sort_by(f64::total_cmp);
    if rdv.rank == 0 {
        let median = times[times.len() / 2];
        let mb = numel as f64 * 4.0 / 1e6;
        println!(
            "{}",
            serde_json::json!({
                "bench": "all_reduce_sum (ethos-dist)",
                "backend": backend.name(),
                "device": format!("{device:?}"),
                "world_size": rdv.world_size,
                "numel": numel,
                "megabytes": mb,
                "threads_per_rank": tch::get_num_threads(),
                "median_ms": median,
                "min_ms": times[0],
                "max_ms": times[times.len() - 1],
                "algbw_gb_s": mb / median,
            })
        );
    }
}
