//! The model benchmark: median seconds of a model's eval forward (no grad) and of a training step's
//! forward + backward, per batch size, on random weights and inputs. `bench/mvit_torch.py` measures
//! the same steps in PyTorch for a side-by-side ratio.

use ethos_models::mvit::AttentionKernel;
use tch::{Kind, Tensor, nn};

use super::{BenchOutput, median, time_it};
use crate::Result;
use crate::model::ModelSpec;
use ethos_core::Error;
use ethos_models::factory::ModelSource;

/// What `ethos bench model` measures.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct ModelBenchOptions {
    /// Architecture: mvit, r3d_18, vjepa2.
    #[cfg_attr(feature = "clap", arg(long, value_parser = crate::model::parse_arch))]
    pub arch: ethos_models::config::Arch,
    /// Model description file (MViT case.json or config JSON; V-JEPA 2 config.json).
    #[cfg_attr(
        feature = "clap",
        arg(long, conflicts_with = "preset", required_unless_present = "preset")
    )]
    pub config: Option<std::path::PathBuf>,
    /// Built-in preset (mvit_v2_s, mvit_demo, r3d_18, r3d_demo, vjepa2_vitl).
    #[cfg_attr(feature = "clap", arg(long))]
    pub preset: Option<String>,
    /// Batch sizes, comma-separated.
    #[cfg_attr(
        feature = "clap",
        arg(long, value_delimiter = ',', default_value = "1")
    )]
    pub batch: Vec<i64>,
    /// Frames per clip (default: the model's own).
    #[cfg_attr(feature = "clap", arg(long))]
    pub frames: Option<i64>,
    /// Square frame size in pixels (default: the model's own).
    #[cfg_attr(feature = "clap", arg(long))]
    pub size: Option<i64>,
    /// Timed repetitions per measurement (the median is reported).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 3))]
    pub reps: usize,
    /// Untimed warm-up repetitions per measurement.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 1))]
    pub warmup: usize,
    /// libtorch intra-op threads (default: libtorch's choice).
    #[cfg_attr(feature = "clap", arg(long))]
    pub threads: Option<i32>,
    /// Device: cpu, cuda, cuda:N.
    #[cfg_attr(feature = "clap", arg(long, default_value = "cpu"))]
    pub device: String,
    /// MViT attention: fused (scaled_dot_product_attention) or explicit (matmul + softmax).
    #[cfg_attr(feature = "clap", arg(long, value_parser = ["fused", "explicit"]))]
    pub attention: Option<String>,
    /// Skip the forward+backward measurement.
    #[cfg_attr(feature = "clap", arg(long))]
    pub forward_only: bool,
}

/// Runs `ethos bench model`.
pub fn run(args: &ModelBenchOptions) -> Result<BenchOutput> {
    if !(1..=1000).contains(&args.reps) || args.batch.iter().any(|&b| !(1..=4096).contains(&b)) {
        return Err(Error::bad_input(format!(
            "--reps {} must be in 1..=1000 and --batch {:?} in 1..=4096",
            args.reps, args.batch
        )));
    }
    let mut table = Vec::new();
    if let Some(n) = args.threads {
        tch::set_num_threads(n);
    }
    let device = crate::train::pick_device(&args.device)?;
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
    let source = match (&args.config, &args.preset) {
        (Some(p), _) => ModelSource::ConfigFile(p.clone()),
        (_, Some(n)) => ModelSource::Preset(n.clone()),
        (None, None) => return Err(Error::bad_input("give --preset or --config")),
    };
    let spec = ModelSpec {
        arch: args.arch,
        source,
        num_classes: None,
    };
    let built = crate::model::build(&spec, &vs, None)?;
    let mut shape = crate::model::input_shape(
        &built.default_input,
        built.model.input_layout(),
        args.frames,
        args.size,
    );
    table.push(format!(
        "bench model: {} {}, input {:?} per sample, {} threads, device {:?}, {} reps (median), {} warm-up",
        args.arch,
        spec.describe(),
        &shape[1..],
        tch::get_num_threads(),
        device,
        args.reps,
        args.warmup
    ));
    let mut results = Vec::new();
    for &b in &args.batch {
        shape[0] = b;
        (built.check_input)(&shape)?;
        let x = Tensor::randn(shape.as_slice(), (Kind::Float, device));
        let fwd = time_it(device, args.warmup, args.reps, || {
            let _ = tch::no_grad(|| built.model.forward_t(&x, false));
        });
        let fwd_med = median(fwd.clone());
        table.push(format!(
            "B={b}: forward (eval, no_grad) median {fwd_med:.3} s  {fwd:.3?}"
        ));
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
            table.push(format!(
                "B={b}: forward+backward (train) median {train_med:.3} s  {train:.3?}"
            ));
            row["train_step_s"] = serde_json::json!(train_med);
            row["train_step_all_s"] = serde_json::json!(train);
        }
        results.push(row);
    }
    let out = serde_json::json!({
        "arch": args.arch.to_string(), "preset": args.preset, "input_per_sample": &shape[1..],
        "threads": tch::get_num_threads(), "device": format!("{device:?}"), "reps": args.reps,
        "results": results,
    });
    Ok(BenchOutput { table, json: out })
}
