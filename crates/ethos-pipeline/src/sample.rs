//! What a model sees, for people and tools: the frames of one window of a video (`sample_video`),
//! or exactly what the loader feeds the model for one event of a config (`sample_event`), written
//! as `OUT.png` (a contact sheet) and `OUT.safetensors`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ethos_core::{Error, Layout, ResultExt};
use ethos_data::dataset::{ClipDataset, load_split_events};
use ethos_data::error::DataError;
use ethos_data::loader::{ClipSource, prepare_sample};
use ethos_data::transforms::ClipTransform;
use ethos_video::{Clip, ClipRequest, ClipSampler, Decoder, Resize, Roi};
use serde_json::{Value, json};

use crate::Result;
use crate::config::RunConfig;

/// Most frames one sample may have.
pub const MAX_FRAMES: usize = 4096;
/// Most decoder threads.
pub const MAX_THREADS: usize = 64;
/// Pixels of dark gap between frames of the contact sheet.
const GAP: usize = 2;

/// One window of a video to decode.
#[derive(Debug, Clone)]
pub struct VideoSampleOptions {
    /// The video file.
    pub video: PathBuf,
    /// Window start, seconds from the first frame (>= 0).
    pub start_s: f64,
    /// Window length, seconds (> 0).
    pub duration_s: f64,
    /// Sampling rate, frames per second.
    pub fps: f64,
    /// Number of frames (1..=[`MAX_FRAMES`]).
    pub frames: usize,
    /// Scale so the short side has this many pixels (aspect kept); full size when `None`.
    pub short_side: Option<u32>,
    /// Crop in source pixels before scaling.
    pub roi: Option<Roi>,
    /// Decoder threads (1..=[`MAX_THREADS`]).
    pub threads: usize,
    /// Which decoder (`--decoder`).
    pub decoder: Decoder,
    /// Output prefix: `OUT.png` and `OUT.safetensors`.
    pub out: PathBuf,
}

/// One event of a config, as the loader prepares it.
#[derive(Debug, Clone)]
pub struct EventSampleOptions {
    /// Split name (a key of `data.splits`).
    pub split: String,
    /// The event's `event_idx`.
    pub event: u32,
    /// Apply the training augmentation.
    pub augment: bool,
    /// Epoch whose random draws to use.
    pub epoch: u64,
    /// Position in the epoch whose random draws to use.
    pub position: usize,
    /// Input layout; default: the configured model's.
    pub layout: Option<Layout>,
    /// Output prefix: `OUT.png` and `OUT.safetensors`.
    pub out: PathBuf,
}

/// Decodes one window of a video; returns the JSON summary (times, frame indices, padding, files).
pub fn sample_video(o: &VideoSampleOptions) -> Result<Value> {
    let bad = |m: String| Err(Error::bad_input(m));
    if !(o.start_s.is_finite() && o.start_s >= 0.0) {
        return bad(format!("--start {}: must be >= 0 seconds", o.start_s));
    }
    if !(o.duration_s.is_finite() && o.duration_s > 0.0) {
        return bad(format!("--duration {}: must be > 0 seconds", o.duration_s));
    }
    if !(o.fps.is_finite() && o.fps > 0.0 && o.fps <= 1000.0) {
        return bad(format!("--fps {}: must be in (0, 1000]", o.fps));
    }
    if !(1..=MAX_FRAMES).contains(&o.frames) {
        return bad(format!(
            "--frames {}: must be in 1..={MAX_FRAMES}",
            o.frames
        ));
    }
    if !(1..=MAX_THREADS).contains(&o.threads) {
        return bad(format!(
            "--threads {}: must be in 1..={MAX_THREADS}",
            o.threads
        ));
    }
    if o.short_side == Some(0) || o.short_side.is_some_and(|s| s > 8192) {
        return bad(format!(
            "--short-side {}: must be in 1..=8192",
            o.short_side.unwrap_or(0)
        ));
    }
    ethos_video::init();
    let req = ClipRequest {
        start_s: o.start_s,
        duration_s: o.duration_s,
        fps: o.fps,
        num_frames: o.frames,
        roi: o.roi,
        resize: o.short_side.map_or(Resize::None, Resize::ShortSide),
    };
    let sampled = ClipSampler::new(o.threads)
        .with_decoder(o.decoder)
        .sample(&o.video, &req)
        .context(format!("sampling {}", o.video.display()))?;
    let mut meta = HashMap::new();
    meta.insert("video".to_string(), o.video.display().to_string());
    meta.insert("times_s".to_string(), json!(sampled.times_s).to_string());
    meta.insert(
        "frame_indices".to_string(),
        json!(sampled.frame_indices).to_string(),
    );
    meta.insert("padded".to_string(), sampled.padded.to_string());
    let (png, st) = output_paths(&o.out);
    create_parent(&png)?;
    write_contact_sheet(&sampled.clip, &png)?;
    let view = tensor(
        safetensors::Dtype::U8,
        sampled.clip.shape().to_vec(),
        &sampled.clip.data,
    )?;
    write_safetensors(&st, vec![("frames", view)], meta)?;
    if sampled.padded > 0 {
        tracing::warn!(
            "{} of {} frames are past the end of {} and repeat its last frame",
            sampled.padded,
            sampled.times_s.len(),
            o.video.display()
        );
    }
    Ok(json!({
        "video": o.video,
        "shape": sampled.clip.shape(),
        "times_s": sampled.times_s,
        "frame_indices": sampled.frame_indices,
        "padded": sampled.padded,
        "png": png,
        "safetensors": st,
    }))
}

/// Writes exactly what the loader feeds the model for one event: the clip from the configured
/// dataset mode, the temporal offset and spatial transform drawn from (`data.seed`, epoch,
/// position) when `augment` (the eval transform otherwise), normalised in the model's layout.
/// `OUT.safetensors` holds `inputs` (float32, `(1, C, T, H, W)` or `(1, T, C, H, W)`) and `frames`
/// (uint8 `(T, H, W, 3)`, the input de-normalised). Returns the drawn parameters as JSON.
pub fn sample_event(cfg: &RunConfig, o: &EventSampleOptions) -> Result<Value> {
    ethos_video::init();
    let data = &cfg.data;
    let events = load_split_events(data, &o.split)?;
    let Some(event) = events.into_iter().find(|e| e.event_idx == o.event) else {
        return Err(DataError::UnknownEvent {
            event_idx: o.event,
            split: o.split.clone(),
        }
        .into());
    };
    let dataset = ClipDataset::from_events(data, &o.split, vec![event.clone()], data.mode)?;
    let size = data.input_size as usize;
    let transform = if o.augment {
        ClipTransform::train(&cfg.augmentation, size, data.mean, data.std)
    } else {
        ClipTransform::eval(size, data.mean, data.std)
    };
    let layout = o.layout.unwrap_or(match cfg.model.arch {
        ethos_models::config::Arch::Vjepa2 => Layout::Btchw,
        _ => Layout::Bcthw,
    });
    let mut resizer = ethos_data::transforms::Resizer::new();
    let sample = prepare_sample(
        &dataset,
        &transform,
        &mut resizer,
        data.seed,
        o.epoch,
        o.position,
        0,
    )
    .context(format!("event {} of split {}", o.event, o.split))?;
    let t = sample.clip.frames;
    let mut inputs = vec![0f32; 3 * t * size * size];
    transform.normalize_into(&sample.clip, layout, &mut inputs);
    let shape = layout.shape(1, t, size, size);
    let shown = transform
        .normalizer()
        .denormalize(&inputs, layout, t, size, size);

    let (png, st) = output_paths(&o.out);
    create_parent(&png)?;
    write_contact_sheet(&shown, &png)?;
    let params = json!({
        "event_idx": o.event,
        "split": o.split,
        "label": dataset.label(0),
        "behavior": event.behavior,
        "mode": format!("{:?}", data.mode),
        "augment": o.augment,
        "seed": data.seed,
        "epoch": o.epoch,
        "position": o.position,
        "temporal_offset_frames": sample.offset,
        "crop": sample.params.crop.map(|c| [c.top, c.left, c.height, c.width]),
        "flip": sample.params.flip,
        "trivial_augment": sample.params.augment.map(|a| json!({"op": format!("{:?}", a.op), "magnitude": a.magnitude})),
        "layout": format!("{layout:?}"),
        "shape": shape,
        "mean": data.mean,
        "std": data.std,
    });
    let bytes: Vec<u8> = inputs.iter().flat_map(|v| v.to_le_bytes()).collect();
    let tensors = vec![
        (
            "inputs",
            tensor(safetensors::Dtype::F32, shape.to_vec(), &bytes)?,
        ),
        (
            "frames",
            tensor(safetensors::Dtype::U8, shown.shape().to_vec(), &shown.data)?,
        ),
    ];
    let meta = HashMap::from([("sample".to_string(), params.to_string())]);
    write_safetensors(&st, tensors, meta)?;
    let mut summary = params;
    summary["png"] = json!(png);
    summary["safetensors"] = json!(st);
    Ok(summary)
}

/// The two files written for an output prefix `OUT`: `OUT.png` and `OUT.safetensors`.
pub fn output_paths(out: &Path) -> (PathBuf, PathBuf) {
    let s = out.as_os_str().to_string_lossy();
    (
        PathBuf::from(format!("{s}.png")),
        PathBuf::from(format!("{s}.safetensors")),
    )
}

fn create_parent(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::output_io(dir, e))?;
    }
    Ok(())
}

fn tensor<'a>(
    dtype: safetensors::Dtype,
    shape: Vec<usize>,
    bytes: &'a [u8],
) -> Result<safetensors::tensor::TensorView<'a>> {
    safetensors::tensor::TensorView::new(dtype, shape, bytes)
        .map_err(|e| Error::internal(format!("building a tensor: {e}")))
}

fn write_safetensors(
    path: &Path,
    tensors: Vec<(&str, safetensors::tensor::TensorView<'_>)>,
    metadata: HashMap<String, String>,
) -> Result<()> {
    let bytes = safetensors::serialize(tensors, Some(metadata))
        .map_err(|e| Error::internal(format!("serialising {}: {e}", path.display())))?;
    ethos_core::fs::write_bytes_atomic(path, &bytes).map_err(|e| Error::output_io(path, e))
}

/// Writes the frames of `clip` as a grid (about square, `ceil(sqrt(T))` columns) to a PNG file.
pub fn write_contact_sheet(clip: &Clip, path: &Path) -> Result<()> {
    if clip.frames == 0 {
        return Err(Error::internal(format!(
            "cannot write an empty clip to {}",
            path.display()
        )));
    }
    let cols = (clip.frames as f64).sqrt().ceil() as usize;
    let rows = clip.frames.div_ceil(cols);
    let (w, h) = (clip.width, clip.height);
    let sheet_w = cols * w + (cols - 1) * GAP;
    let sheet_h = rows * h + (rows - 1) * GAP;
    let mut img =
        image::RgbImage::from_pixel(sheet_w as u32, sheet_h as u32, image::Rgb([16, 16, 16]));
    let buf: &mut [u8] = &mut img;
    for t in 0..clip.frames {
        let (r, c) = (t / cols, t % cols);
        let frame = clip.frame(t);
        for y in 0..h {
            let dst = ((r * (h + GAP) + y) * sheet_w + c * (w + GAP)) * 3;
            buf[dst..dst + w * 3].copy_from_slice(&frame[y * w * 3..(y + 1) * w * 3]);
        }
    }
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .map_err(|e| Error::internal(format!("encoding PNG for {}: {e}", path.display())))?;
    ethos_core::fs::write_bytes_atomic(path, &bytes).map_err(|e| Error::output_io(path, e))
}
