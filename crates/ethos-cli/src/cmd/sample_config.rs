//! `ethos sample --config F --split S --event IDX [--augment] [--epoch E] [--position P] --out OUT`:
//! writes exactly what the loader feeds the model for one event: the clip from the configured
//! dataset mode, the temporal offset and spatial transform drawn from the RNG of
//! (`data.seed`, epoch, position) when `--augment` (the eval transform otherwise), normalised to
//! float32 in the model's layout. Outputs `OUT.png` (contact sheet of the normalised input
//! de-normalised back to uint8) and `OUT.safetensors` with `inputs` (float32, `(1, C, T, H, W)` or
//! `(1, T, C, H, W)`) and `frames` (uint8 `(T, H, W, 3)`, the de-normalised input); a JSON summary
//! with the drawn parameters goes to stdout.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use ethos_data::dataset::{ClipDataset, load_split_events};
use ethos_data::error::DataError;
use ethos_data::loader::{ClipSource, prepare_sample};
use ethos_data::transforms::{ClipTransform, Layout};

/// The `--config` form of `ethos sample`.
#[derive(clap::Args, Debug, Default)]
pub struct ConfigArgs {
    /// Run config (YAML): sample what its loader would feed the model.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Split name (a key of `data.splits`).
    #[arg(long, requires = "config", default_value = "train")]
    pub split: String,
    /// The event's `event_idx`.
    #[arg(long, requires = "config")]
    pub event: Option<u32>,
    /// Apply the training augmentation (temporal jitter, crop, flip, TrivialAugmentWide).
    #[arg(long, requires = "config")]
    pub augment: bool,
    /// Epoch whose random draws to use.
    #[arg(long, requires = "config", default_value_t = 0)]
    pub epoch: u64,
    /// Position in the epoch whose random draws to use (the loader seeds each sample's RNG with
    /// (seed, epoch, position)).
    #[arg(long, requires = "config", default_value_t = 0)]
    pub position: usize,
    /// Input layout; default: the configured model's (`btchw` for V-JEPA 2, else `bcthw`).
    #[arg(long, requires = "config", value_parser = ["bcthw", "btchw"])]
    pub layout: Option<String>,
    /// Override a config key (repeatable), as for `ethos train`.
    #[arg(long = "set", requires = "config", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// Runs the `--config` form of `ethos sample`.
pub fn run(args: &ConfigArgs, out: &Path) -> anyhow::Result<()> {
    let path = args.config.as_deref().context("--config is required")?;
    let cfg = crate::config::RunConfig::load(path, &args.set)?;
    let Some(event_idx) = args.event else {
        anyhow::bail!(crate::exit::BadInput(
            "ethos sample --config needs --event IDX".into()
        ));
    };
    let data = &cfg.data;
    let events = load_split_events(data, &args.split)?;
    let Some(event) = events.into_iter().find(|e| e.event_idx == event_idx) else {
        return Err(DataError::UnknownEvent {
            event_idx,
            split: args.split.clone(),
        }
        .into());
    };
    let dataset = ClipDataset::from_events(data, &args.split, vec![event.clone()], data.mode)?;
    let size = data.input_size as usize;
    let transform = if args.augment {
        ClipTransform::train(&cfg.augmentation, size, data.mean, data.std)
    } else {
        ClipTransform::eval(size, data.mean, data.std)
    };
    let layout = match args.layout.as_deref() {
        Some("btchw") => Layout::Btchw,
        Some(_) => Layout::Bcthw,
        None if cfg.model.arch == ethos_models::config::Arch::Vjepa2 => Layout::Btchw,
        None => Layout::Bcthw,
    };
    let mut resizer = ethos_data::transforms::Resizer::new();
    let sample = prepare_sample(
        &dataset,
        &transform,
        &mut resizer,
        data.seed,
        args.epoch,
        args.position,
        0,
    )
    .with_context(|| format!("event {event_idx} of split {}", args.split))?;
    let t = sample.clip.frames;
    let mut inputs = vec![0f32; 3 * t * size * size];
    transform.normalize_into(&sample.clip, layout, &mut inputs);
    let shape = layout.shape(1, t, size, size);
    let shown = transform
        .normalizer()
        .denormalize(&inputs, layout, t, size, size);

    let (png, st) = crate::clip_out::output_paths(out);
    if let Some(dir) = png.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    crate::clip_out::write_contact_sheet(&shown, &png)?;
    let params = serde_json::json!({
        "event_idx": event_idx,
        "split": args.split,
        "label": dataset.label(0),
        "behavior": event.behavior,
        "mode": format!("{:?}", data.mode),
        "augment": args.augment,
        "seed": data.seed,
        "epoch": args.epoch,
        "position": args.position,
        "temporal_offset_frames": sample.offset,
        "crop": sample.params.crop.map(|c| [c.top, c.left, c.height, c.width]),
        "flip": sample.params.flip,
        "trivial_augment": sample.params.augment.map(|a| serde_json::json!({"op": format!("{:?}", a.op), "magnitude": a.magnitude})),
        "layout": format!("{layout:?}"),
        "shape": shape,
        "mean": data.mean,
        "std": data.std,
    });
    let bytes: Vec<u8> = inputs.iter().flat_map(|v| v.to_le_bytes()).collect();
    let inputs_view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.to_vec(), &bytes)
            .context("building the inputs tensor")?;
    let frames_view = safetensors::tensor::TensorView::new(
        safetensors::Dtype::U8,
        shown.shape().to_vec(),
        &shown.data,
    )
    .context("building the frames tensor")?;
    let meta = HashMap::from([("sample".to_string(), params.to_string())]);
    let file = safetensors::serialize(
        [("inputs", inputs_view), ("frames", frames_view)],
        Some(meta),
    )
    .context("serialising safetensors")?;
    crate::clip_out::write_atomic(&st, &file)?;
    tracing::info!("wrote {} and {}", png.display(), st.display());
    let mut summary = params;
    summary["png"] = serde_json::json!(png);
    summary["safetensors"] = serde_json::json!(st);
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
