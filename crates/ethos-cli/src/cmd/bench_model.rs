//! `ethos bench model`: median seconds of a model's eval forward (no grad) and of a training step's
//! forward + backward, per batch size, on random weights and inputs. `bench/mvit_torch.py` measures
//! the same steps in PyTorch for a side-by-side ratio.

use std::time::Instant;

use ethos_models::mvit::AttentionKernel;
use tch::{Device, Kind, Tensor, nn};

use super::model::ModelArgs;
use crate::exit::BadInput;

/// Arguments of `ethos bench model`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Batch sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub batch: Vec<i64>,
    /// Frames per clip (default: the model's own).
    #[arg(long)]
    pub frames: Option<i64>,
    /// Square frame size in pixels (default: the model's own).
    #[arg(long)]
    pub size: Option<i64>,
    /// Timed repetitions per measurement (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Untimed warm-up repetitions per measurement.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// libtorch intra-op threads (default: libtorch's choice).
    #[arg(long)]
    pub threads: Option<i32>,
    /// Device: cpu, cuda, cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// MViT attention: fused (scaled_dot_product_attention) or explicit (matmul + softmax).
    #[arg(long, value_parser = ["fused", "explicit"])]
    pub attention: Option<String>,
    /// Skip the forward+backward measurement.
    #[arg(long)]
    pub forward_only: bool,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

fn time_it(device: Device, warmup: usize, reps: usize, mut f: impl FnMut()) -> Vec<f64> {
    for _ in 0..warmup {
        f();
    }
    sync(device);
    (0..reps)
        .map(|_| {
            let start = Instant::now();
            f();
            sync(device);
            start.elapsed().as_secs_f64()
        })
        .collect()
}

/// Runs `ethos bench model`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.reps == 0 || args.batch.iter().any(|&b| b < 1) {
        return Err(BadInput(format!(
            "--reps {} and --batch {:?} must be >= 1",
            args.reps, args.batch
        ))
        .into());
    }
    if let Some(n) = args.threads {
        tch::set_num_threads(n);
    }
    let device = ethos_models::engine::pick_device(&args.device)?;
    tch::manual_seed(0);
    let vs = nn::VarStore::new(device);
    if let Some(kind) = &args.attention {
        let kernel = if kind == "fused" {
            AttentionKernel::Fused
        } else {
            AttentionKernel::Explicit
        };
        ethos_models::mvit::set_default_attention_kernel(kernel);
    }
    let built = super::model::build(&args.model, &vs, None)?;
    let mut shape = super::model::input_shape(
        &built.default_input,
        built.model.input_layout(),
        args.frames,
        args.size,
    );
    eprintln!(
        "bench model: {} {:?}, input {:?} per sample, {} threads, device {:?}, {} reps (median), {} warm-up",
        args.model.arch,
        args.model
            .preset
            .as_deref()
            .or(args.model.config.as_ref().and_then(|p| p.to_str())),
        &shape[1..],
        tch::get_num_threads(),
        device,
        args.reps,
        args.warmup
    );
    let mut results = Vec::new();
    for &b in &args.batch {
        shape[0] = b;
        (built.check_input)(&shape).map_err(|e| BadInput(e.to_string()))?;
        let x = Tensor::randn(shape.as_slice(), (Kind::Float, device));
        let fwd = time_it(device, args.warmup, args.reps, || {
            let _ = tch::no_grad(|| built.model.forward_t(&x, false));
        });
        let fwd_med = median(fwd.clone());
        eprintln!("B={b}: forward (eval, no_grad) median {fwd_med:.3} s  {fwd:.3?}");
        let mut row = serde_json::json!({ "batch": b, "forward_s": fwd_med, "forward_all_s": fwd });
        if !args.forward_only {
            let labels = Tensor::zeros([b], (Kind::Int64, device));
            let train = time_it(device, args.warmup, args.reps, || {
                let logits = built.model.forward_t(&x, true);
                let loss = logits.cross_entropy_for_logits(&labels);
                loss.backward();
                for mut v in vs.trainable_variables() {
                    v.zero_grad();
                }
            });
            let train_med = median(train.clone());
            eprintln!("B={b}: forward+backward (train) median {train_med:.3} s  {train:.3?}");
            row["train_step_s"] = serde_json::json!(train_med);
            row["train_step_all_s"] = serde_json::json!(train);
        }
        results.push(row);
    }
    let out = serde_json::json!({
        "arch": args.model.arch, "preset": args.model.preset, "input_per_sample": &shape[1..],
        "threads": tch::get_num_threads(), "device": format!("{device:?}"), "reps": args.reps,
        "results": results,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
