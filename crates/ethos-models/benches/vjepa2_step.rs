//! Training-step benchmark of the V-JEPA 2 classifier with partial freezing: forward (train mode),
//! cross-entropy, backward (`VideoModel::forward_backward`, with `--checkpointing` recomputing each
//! block's activations) and an AdamW step over the trainable variables only. Prints the median step
//! time, the trainable/frozen parameter counts and memory as one JSON line on stdout: the process's
//! peak RSS (`getrusage`), and, for the timed steps alone, the peak RSS after the warm-up steps
//! (`VmHWM` of `/proc/self/status` after resetting it through `/proc/self/clear_refs`) minus the RSS
//! at that reset, when weights, gradients and optimiser state already exist: what one step's
//! activations and temporaries add. Allocations of 1 MiB and more are mmap'ed (`mallopt`) and free
//! heap memory is trimmed before the reset, so RSS follows live memory rather than glibc's cache. `tools/bench_vjepa2_transformers.py` runs the same step in
//! PyTorch/transformers for a side-by-side.
//!
//! `--compare-checkpointing` runs the bench twice in child processes (peak RSS is per process),
//! without and with checkpointing, and prints both and their ratios.
//!
//! cargo bench -p ethos-models --bench vjepa2_step -- [--hidden 384] [--heads 6] [--layers 12]
//!     [--freeze 6] [--batch 2] [--frames 16] [--size 128] [--patch 16] [--iters 5] [--warmup 2]
//!     [--threads N] [--cuda] [--checkpointing | --compare-checkpointing]

use std::time::Instant;

use ethos_models::VideoModel;
use ethos_models::freeze::{freeze_prefixes, param_counts};
use ethos_models::vjepa2::{Vjepa2Config, Vjepa2ForVideoClassification};
use tch::nn::OptimizerConfig;
use tch::{Device, Kind, Tensor, nn};

struct Opts {
    hidden: i64,
    heads: i64,
    layers: i64,
    freeze: usize,
    batch: i64,
    frames: i64,
    size: i64,
    patch: i64,
    iters: usize,
    warmup: usize,
    threads: Option<i32>,
    cuda: bool,
    checkpointing: bool,
    compare: bool,
}

fn parse() -> Opts {
    let mut o = Opts {
        hidden: 384,
        heads: 6,
        layers: 12,
        freeze: 6,
        batch: 2,
        frames: 16,
        size: 128,
        patch: 16,
        iters: 5,
        warmup: 2,
        threads: None,
        cuda: false,
        checkpointing: false,
        compare: false,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = || -> i64 {
            args.get(i + 1)
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{} needs an integer value", args[i]))
        };
        match args[i].as_str() {
            "--bench" => {
                i += 1;
                continue;
            }
            "--cuda" => {
                o.cuda = true;
                i += 1;
                continue;
            }
            "--checkpointing" => {
                o.checkpointing = true;
                i += 1;
                continue;
            }
            "--compare-checkpointing" => {
                o.compare = true;
                i += 1;
                continue;
            }
            "--hidden" => o.hidden = value(),
            "--heads" => o.heads = value(),
            "--layers" => o.layers = value(),
            "--freeze" => o.freeze = value() as usize,
            "--batch" => o.batch = value(),
            "--frames" => o.frames = value(),
            "--size" => o.size = value(),
            "--patch" => o.patch = value(),
            "--iters" => o.iters = value() as usize,
            "--warmup" => o.warmup = value() as usize,
            "--threads" => o.threads = Some(value() as i32),
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    o
}

fn peak_rss_mib() -> f64 {
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    if rc == 0 {
        usage.ru_maxrss as f64 / 1024.0
    } else {
        f64::NAN
    }
}

/// Resident set size now, from `/proc/self/statm` (MiB).
fn current_rss_mib() -> f64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<f64>().ok());
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64;
    pages.map_or(f64::NAN, |p| p * page / (1024.0 * 1024.0))
}

/// Makes RSS follow live memory: allocations of 1 MiB and more are mmap'ed (and unmapped when
/// freed) instead of glibc's adaptive threshold keeping freed activations in the heap.
fn track_live_memory() {
    // SAFETY: mallopt only changes glibc's allocation policy for later allocations.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// Returns freed heap memory to the kernel, then resets the kernel's peak-RSS mark (`VmHWM`) of
/// this process; false where unsupported.
fn reset_peak_rss() -> bool {
    // SAFETY: malloc_trim only releases free memory at the top of glibc's heaps.
    unsafe {
        libc::malloc_trim(0);
    }
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// `VmHWM` (peak RSS since start or the last reset) in MiB.
fn vm_hwm_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Runs this bench without and with `--checkpointing` in child processes and prints both.
fn compare() {
    let exe = std::env::current_exe().expect("bench path");
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--compare-checkpointing")
        .collect();
    let run = |checkpointing: bool| -> serde_json::Value {
        let mut cmd = std::process::Command::new(&exe);
        cmd.args(&args);
        if checkpointing {
            cmd.arg("--checkpointing");
        }
        let out = cmd.output().expect("run the bench");
        assert!(
            out.status.success(),
            "bench failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().last().expect("a JSON line");
        serde_json::from_str(line).expect("bench JSON")
    };
    let plain = run(false);
    let ckpt = run(true);
    let ratio = |key: &str| {
        ckpt[key].as_f64().unwrap_or(f64::NAN) / plain[key].as_f64().unwrap_or(f64::NAN)
    };
    let report = serde_json::json!({
        "bench": "vjepa2_step checkpointing comparison (rust/tch)",
        "peak_rss_ratio": ratio("peak_rss_mib"),
        "step_added_rss_ratio": ratio("step_added_rss_mib"),
        "step_time_ratio": ratio("step_ms_median"),
        "plain": plain,
        "checkpointing": ckpt,
    });
    println!("{report}");
}

fn main() {
    let o = parse();
    if o.compare {
        compare();
        return;
    }
    track_live_memory();
    if let Some(n) = o.threads {
        tch::set_num_threads(n);
    }
    let device = if o.cuda { Device::Cuda(0) } else { Device::Cpu };
    let cfg: Vjepa2Config = serde_json::from_value(serde_json::json!({
        "hidden_size": o.hidden, "num_attention_heads": o.heads, "num_hidden_layers": o.layers,
        "patch_size": o.patch, "crop_size": o.size, "frames_per_clip": o.frames, "tubelet_size": 2,
        "num_labels": 2,
    }))
    .expect("bench config");
    cfg.validate("bench").expect("valid bench config");
    tch::manual_seed(0);
    let vs = nn::VarStore::new(device);
    let mut model = Vjepa2ForVideoClassification::new(&vs.root(), &cfg).expect("model builds");
    let prefixes = model
        .encoder()
        .freeze_prefixes(o.freeze)
        .expect("freeze count");
    freeze_prefixes(&vs, &prefixes);
    model
        .encoder_mut()
        .set_frozen_blocks(o.freeze)
        .expect("freeze count");
    let counts = param_counts(&vs);
    let mut opt = nn::AdamW::default().build(&vs, 1e-4).expect("optimiser");
    let input = Tensor::randn(
        [o.batch, o.frames, 3, o.size, o.size],
        (Kind::Float, device),
    );
    let labels = Tensor::zeros([o.batch], (Kind::Int64, device));
    let mut times = Vec::with_capacity(o.iters);
    let mut rss_at_reset = f64::NAN;
    for step in 0..o.warmup + o.iters {
        if step == o.warmup && reset_peak_rss() {
            rss_at_reset = current_rss_mib();
        }
        let start = Instant::now();
        let _loss = model.forward_backward(&input, true, o.checkpointing, &mut |logits| {
            logits.cross_entropy_for_logits(&labels)
        });
        opt.step();
        opt.zero_grad();
        if o.cuda {
            tch::Cuda::synchronize(0);
        }
        let ms = start.elapsed().as_secs_f64() * 1e3;
        if step >= o.warmup {
            times.push(ms);
        }
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let tokens = (o.frames / 2) * (o.size / o.patch) * (o.size / o.patch);
    let report = serde_json::json!({
        "bench": "vjepa2_step (rust/tch)",
        "device": format!("{device:?}"),
        "threads": tch::get_num_threads(),
        "config": {"hidden": o.hidden, "heads": o.heads, "layers": o.layers, "freeze": o.freeze,
                   "batch": o.batch, "frames": o.frames, "size": o.size, "patch": o.patch, "tokens": tokens},
        "trainable_params": counts.trainable_params,
        "frozen_params": counts.frozen_params,
        "checkpointing": o.checkpointing,
        "step_ms_median": median,
        "step_ms": times,
        "peak_rss_mib": peak_rss_mib(),
        "rss_after_warmup_mib": rss_at_reset,
        "timed_steps_peak_rss_mib": vm_hwm_mib(),
        "step_added_rss_mib": vm_hwm_mib() - rss_at_reset,
        "memory_method": "peak_rss: getrusage ru_maxrss; step_added: VmHWM after malloc_trim + /proc/self/clear_refs=5 at the end of warm-up minus RSS (statm) then; M_MMAP_THRESHOLD 1 MiB",
    });
    println!("{report}");
}
