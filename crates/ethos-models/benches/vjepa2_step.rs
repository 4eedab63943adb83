//! Training-step benchmark of the V-JEPA 2 classifier with partial freezing: forward (train mode),
//! cross-entropy, backward and an AdamW step over the trainable variables only. Prints the median step
//! time, the trainable/frozen parameter counts and the process's peak RSS as one JSON line on stdout.
//! `tools/bench_vjepa2_transformers.py` runs the same step in PyTorch/transformers for a side-by-side.
//!
//! cargo bench -p ethos-models --bench vjepa2_step -- [--hidden 384] [--heads 6] [--layers 12]
//!     [--freeze 6] [--batch 2] [--frames 16] [--size 128] [--patch 16] [--iters 5] [--warmup 2]
//!     [--threads N] [--cuda]

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

fn main() {
    let o = parse();
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
    for step in 0..o.warmup + o.iters {
        let start = Instant::now();
        let logits = model.forward_t(&input, true);
        let loss = logits.cross_entropy_for_logits(&labels);
        opt.backward_step(&loss);
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
        "step_ms_median": median,
        "step_ms": times,
        "peak_rss_mib": peak_rss_mib(),
    });
    println!("{report}");
}
