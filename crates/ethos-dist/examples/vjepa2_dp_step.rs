//! Data-parallel training steps of a V-JEPA 2 classifier over Gloo: each of `--nproc` local
//! processes takes its share of the global batch, runs forward + backward, averages the gradients
//! with `all_reduce_mean` (bucketed) and steps AdamW. Rank 0 prints one JSON line: median step time,
//! the part spent in the gradient all-reduce, and throughput. The CPU cores are split between the
//! ranks (`--nproc 1` gets all of them) unless `--threads` sets the libtorch threads per rank. With
//! one process there is nothing to reduce: the step runs without a collective, as a trainer would.
//!
//! cargo run --release -p ethos-dist --example vjepa2_dp_step -- --nproc 2 [--layers 8]
//!     [--hidden 384] [--heads 6] [--frames 16] [--size 128] [--global-batch 4] [--iters 3]
//!     [--warmup 1] [--threads N]

#[path = "common/launch_util.rs"]
mod launch_util;

use std::time::{Duration, Instant};

use ethos_dist::{Backend, ProcessGroup, Rendezvous};
use ethos_models::VideoModel;
use ethos_models::vjepa2::{Vjepa2Config, Vjepa2ForVideoClassification};
use tch::nn::OptimizerConfig;
use tch::{Device, Kind, Tensor, nn};

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

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
    let layers: i64 = launch_util::arg("--layers", 8);
    let hidden: i64 = launch_util::arg("--hidden", 384);
    let heads: i64 = launch_util::arg("--heads", 6);
    let frames: i64 = launch_util::arg("--frames", 16);
    let size: i64 = launch_util::arg("--size", 128);
    let global_batch: i64 = launch_util::arg("--global-batch", 4);
    let iters: usize = launch_util::arg("--iters", 3);
    let warmup: usize = launch_util::arg("--warmup", 1);
    let threads: i32 = launch_util::arg("--threads", 0);
    if threads > 0 {
        tch::set_num_threads(threads);
    } else if let Some(n) = std::env::var("ETHOS_RANK_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        tch::set_num_threads(n);
    }
    let rdv = Rendezvous::from_env().expect("rendezvous");
    let world = rdv.world_size as i64;
    assert!(
        global_batch % world == 0,
        "--global-batch must divide by the process count"
    );
    let local_batch = global_batch / world;
    let pg = ProcessGroup::new(Backend::Gloo, &rdv, Duration::from_secs(600)).expect("group");

    let cfg: Vjepa2Config = serde_json::from_value(serde_json::json!({
        "hidden_size": hidden, "num_attention_heads": heads, "num_hidden_layers": layers,
        "patch_size": 16, "crop_size": size, "frames_per_clip": frames, "tubelet_size": 2,
        "num_labels": 2, "drop_path_rate": 0.1,
    }))
    .expect("config");
    // Different seeds per rank: the broadcast below makes the weights identical.
    tch::manual_seed(rdv.rank as i64);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = Vjepa2ForVideoClassification::new(&vs.root(), &cfg).expect("model");
    let mut params: Vec<Tensor> = vs.trainable_variables();
    tch::no_grad(|| pg.broadcast(&mut params, 0)).expect("broadcast the initial weights");
    let grad_numel: i64 = params.iter().map(|p| p.numel() as i64).sum();
    let mut opt = nn::AdamW::default().build(&vs, 1e-4).expect("optimiser");
    let input = Tensor::randn(
        [local_batch, frames, 3, size, size],
        (Kind::Float, Device::Cpu),
    );
    let labels = Tensor::zeros([local_batch], (Kind::Int64, Device::Cpu));

    let (mut step_ms, mut comm_ms) = (Vec::new(), Vec::new());
    for i in 0..warmup + iters {
        pg.barrier().expect("barrier");
        let start = Instant::now();
        let _ = model.forward_backward(&input, true, false, &mut |logits| {
            logits.cross_entropy_for_logits(&labels)
        });
        let reduce_start = Instant::now();
        if world > 1 {
            let mut grads: Vec<Tensor> = params.iter().map(Tensor::grad).collect();
            pg.all_reduce_mean(&mut grads).expect("gradient all-reduce");
        }
        let comm = reduce_start.elapsed().as_secs_f64() * 1e3;
        opt.step();
        opt.zero_grad();
        let total = start.elapsed().as_secs_f64() * 1e3;
        if i >= warmup {
            step_ms.push(total);
            comm_ms.push(comm);
        }
    }
    // Weights stay identical across ranks (same averaged gradients, same optimiser).
    let probe = params[0].reshape([-1]).narrow(0, 0, 4);
    let gathered = pg.all_gather(&probe.unsqueeze(0)).expect("gather a probe");
    let same = gathered.iter().all(|g| g.squeeze_dim(0).equal(&probe));
    pg.barrier().expect("final barrier");
    if rdv.rank == 0 {
        let step = median(&mut step_ms);
        let comm = median(&mut comm_ms);
        println!(
            "{}",
            serde_json::json!({
                "bench": "vjepa2 data-parallel step over gloo (ethos-dist)",
                "world_size": world,
                "threads_per_rank": tch::get_num_threads(),
                "config": {"layers": layers, "hidden": hidden, "heads": heads, "frames": frames,
                           "size": size, "global_batch": global_batch, "local_batch": local_batch},
                "gradient_floats": grad_numel,
                "gradient_megabytes": grad_numel as f64 * 4.0 / 1e6,
                "step_ms_median": step,
                "allreduce_ms_median": comm,
                "communication_fraction": comm / step,
                "samples_per_s": global_batch as f64 / (step / 1e3),
                "weights_identical_across_ranks": same,
            })
        );
    }
}
