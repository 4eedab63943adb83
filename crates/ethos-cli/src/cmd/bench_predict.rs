//! `ethos bench predict`: long-video inference throughput — hours of video processed per wall hour
//! and per CPU-hour, and where the time goes (decode vs model), for generated H.264 sources at each
//! `--resolution`, through the same pipeline as `ethos predict` (`ethos_train::predict::Predictor`,
//! called in-process) with a small model on random weights.
//!
//! Sources are generated once with the project's `ClipWriter` (H.264 veryfast, CRF 23, GOP 2 s,
//! no B-frames: like an IP camera stream) and cached in `--dir`. The scene is a static textured
//! background with moving disks, so the per-frame cost of decoding is realistic for inter frames;
//! real footage with sensor noise has more residual data and decodes somewhat slower.
//!
//! Per run: wall seconds; CPU seconds of the whole process (`getrusage`, every thread: decoder,
//! preprocessing, libtorch); `decode_s` (the decode thread busy decoding and preparing windows) and
//! `model_s` (forward passes) from the predictor; peak RSS during the run (`VmHWM` after resetting
//! it through `/proc/self/clear_refs`). The pipeline is decode-bound when decoding takes longer
//! than the model: the model then runs while the next frames decode, and `hidden` — the share of
//! model time overlapped with decoding, `(decode_s + model_s - wall_s) / model_s` — is near 1.
//! `model_alone_s` times the same number of forward passes on random input with nothing else
//! running in the process, so a model stretched by sharing cores with the decoder shows as such.
//! With `--reps N` the run with the median wall time is reported (every wall time is kept).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use ethos_train::predict::{self, Predictor, WindowSpec};
use ethos_train::timeline::MergeRule;
use ethos_video::{ClipWriter, Codec, WriterOptions};
use serde::Serialize;
use tch::nn;

use super::bench_decode::{proc_status_mb, rusage};
use crate::exit::BadInput;

/// Arguments of `ethos bench predict`.
#[derive(clap::Args)]
pub struct Args {
    /// Source resolutions WxH, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1920x1080,3840x2160")]
    pub resolution: Vec<String>,
    /// Length of each generated source, seconds.
    #[arg(long, default_value_t = 60.0)]
    pub seconds: f64,
    /// Frame rate of the generated sources.
    #[arg(long, default_value_t = 15)]
    pub source_fps: u32,
    /// Decoder thread counts to compare, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "2")]
    pub decoder_threads: Vec<usize>,
    /// Windows per forward pass.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Model architecture (random weights).
    #[arg(long, default_value = "r3d_18")]
    pub arch: String,
    /// Model preset.
    #[arg(long, default_value = "r3d_demo")]
    pub preset: String,
    /// Model input side, pixels (frames are scaled to short side `input_size * 8 / 7`, then
    /// centre-cropped, as `data.cache_short_side` 128 does for 112).
    #[arg(long, default_value_t = 112)]
    pub input_size: usize,
    /// Frames per window.
    #[arg(long, default_value_t = 8)]
    pub frames: usize,
    /// Model frame rate (frames per second taken from the source).
    #[arg(long, default_value_t = 8.0)]
    pub fps: f64,
    /// Window length, seconds.
    #[arg(long, default_value_t = 1.0)]
    pub window: f64,
    /// Stride between windows, seconds.
    #[arg(long, default_value_t = 0.5)]
    pub stride: f64,
    /// libtorch intra-op threads (default: libtorch's choice).
    #[arg(long)]
    pub torch_threads: Option<i32>,
    /// Device: cpu, cuda, cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Repetitions of each (resolution, decoder threads) run; the median run by wall time is reported.
    #[arg(long, default_value_t = 1)]
    pub reps: usize,
    /// Folder for the generated sources (kept between runs) and outputs (default: the temp dir's
    /// `ethos-bench-predict`).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// One measured predict run.
#[derive(Serialize, Debug, Clone)]
struct Row {
    resolution: String,
    decoder_threads: usize,
    video_s: f64,
    windows: usize,
    wall_s: f64,
    cpu_s: f64,
    decode_s: f64,
    model_s: f64,
    /// Video hours per wall-clock hour.
    video_h_per_wall_h: f64,
    /// Video hours per CPU hour (all threads).
    video_h_per_cpu_h: f64,
    /// `decode` when decoding took longer than the model, else `model`.
    bound: &'static str,
    /// Share of model time overlapped with decoding (0..1).
    hidden: f64,
    /// Peak RSS during the run, MB.
    peak_rss_mb: f64,
    /// What the forward passes of this many windows take with nothing else running in this
    /// process (random input, same batch size), seconds.
    model_alone_s: f64,
    /// Wall seconds of every repetition.
    wall_all_s: Vec<f64>,
}

fn parse_resolution(s: &str) -> anyhow::Result<(u32, u32)> {
    let bad = || {
        BadInput(format!(
            "--resolution {s}: expected WxH, e.g. 1920x1080 (even sizes)"
        ))
    };
    let (w, h) = s.trim().split_once(['x', 'X']).ok_or_else(bad)?;
    let (w, h): (u32, u32) = (w.parse().map_err(|_| bad())?, h.parse().map_err(|_| bad())?);
    if w < 16 || h < 16 || w % 2 != 0 || h % 2 != 0 || w > 8192 || h > 8192 {
        return Err(bad().into());
    }
    Ok((w, h))
}

/// Writes `seconds` of a `w`x`h` H.264 source at `fps`: a textured background (its features scale
/// with the frame, so every resolution shows the same scene) with six moving disks.
pub(super) fn make_source(
    path: &Path,
    w: u32,
    h: u32,
    fps: u32,
    seconds: f64,
) -> anyhow::Result<()> {
    let opts = WriterOptions {
        codec: Codec::H264,
        fps,
        gop: 2 * fps,
        quality: Some(23),
        b_frames: false,
    };
    let tmp = path.with_extension("partial.mp4");
    let mut writer = ClipWriter::create(&tmp, w, h, &opts)?;
    let (w, h) = (w as usize, h as usize);
    let scale = w as f32 / 3840.0;
    let mut bg = vec![0u8; w * h * 3];
    let mut state: u32 = 0x9E37_79B9;
    for y in 0..h {
        for x in 0..w {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let noise = (state >> 28) as i32 - 8;
            let base = 90.0
                + 40.0 * ((x as f32 / (97.0 * scale)).sin() * (y as f32 / (61.0 * scale)).cos());
            let v = (base as i32 + noise).clamp(0, 255) as u8;
            let i = (y * w + x) * 3;
            bg[i] = v;
            bg[i + 1] = v.saturating_add(12);
            bg[i + 2] = v.saturating_sub(10);
        }
    }
    let mut frame = vec![0u8; w * h * 3];
    let n = (seconds * fps as f64).round().max(1.0) as usize;
    let margin = (w.min(h) / 5).max(2);
    for t in 0..n {
        frame.copy_from_slice(&bg);
        for k in 0..6usize {
            let speed = |a: usize| ((a as f32 * scale).round() as usize).max(1);
            let cx = ((t * speed(12 + 5 * k) + k * w / 6) % (w - 2 * margin) + margin) as i64;
            let cy = ((t * speed(7 + 3 * k) + k * h / 6) % (h - 2 * margin) + margin) as i64;
            let r = (((120 + 20 * k) as f32 * scale) as i64).max(1);
            for y in (cy - r).max(0)..(cy + r).min(h as i64) {
                for x in (cx - r).max(0)..(cx + r).min(w as i64) {
                    if (x - cx).pow(2) + (y - cy).pow(2) <= r * r {
                        let i = (y as usize * w + x as usize) * 3;
                        frame[i] = 200 - 20 * k as u8;
                        frame[i + 1] = 150 + 10 * k as u8;
                        frame[i + 2] = 60;
                    }
                }
            }
        }
        writer.write_frame(&frame)?;
    }
    writer.finish()?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {}", tmp.display()))?;
    Ok(())
}

/// The cached source for one resolution, generated when missing or of the wrong shape.
fn source(dir: &Path, w: u32, h: u32, fps: u32, seconds: f64) -> anyhow::Result<PathBuf> {
    let frames = (seconds * fps as f64).round().max(1.0) as u64;
    let path = dir.join(format!("src-{w}x{h}-{fps}fps-{frames}f-h264.mp4"));
    let reusable = ethos_video::probe(&path)
        .is_ok_and(|i| i.width == w && i.height == h && i.frame_count == frames);
    if !reusable {
        eprintln!(
            "bench predict: writing {} ({seconds} s, {w}x{h}, {fps} fps, H.264)...",
            path.display()
        );
        let t = Instant::now();
        make_source(&path, w, h, fps, seconds)
            .with_context(|| format!("writing the benchmark source {}", path.display()))?;
        eprintln!("  written in {:.1} s", t.elapsed().as_secs_f64());
    }
    Ok(path)
}

/// Seconds per window of the model's forward pass alone: the median of 3 timed batches of
/// `--batch` random windows after one warm-up batch.
fn model_alone_s_per_window(
    model: &dyn ethos_models::VideoModel,
    device: tch::Device,
    args: &Args,
) -> anyhow::Result<f64> {
    let (b, t, s) = (
        args.batch as i64,
        args.frames as i64,
        args.input_size as i64,
    );
    let shape = match model.input_layout() {
        ethos_models::InputLayout::Bcthw => [b, 3, t, s, s],
        ethos_models::InputLayout::Btchw => [b, t, 3, s, s],
    };
    let x = tch::Tensor::randn(shape, (tch::Kind::Float, device));
    let mut times = Vec::new();
    for rep in 0..4 {
        let t0 = Instant::now();
        let y = tch::no_grad(|| model.forward_t(&x, false));
        let _ = y.to_device(tch::Device::Cpu);
        if rep > 0 {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2] / b as f64)
}

/// Runs `ethos bench predict`.
pub fn run(args: Args) -> anyhow::Result<()> {
    ethos_video::init();
    if !(args.seconds > 0.0 && args.seconds <= 3600.0) {
        return Err(BadInput(format!("--seconds {}: must be in (0, 3600]", args.seconds)).into());
    }
    if args.batch == 0
        || args.reps == 0
        || args.decoder_threads.contains(&0)
        || args.source_fps == 0
    {
        return Err(BadInput(
            "--batch, --reps, --decoder-threads and --source-fps must be >= 1".to_string(),
        )
        .into());
    }
    let resolutions: Vec<(u32, u32)> = args
        .resolution
        .iter()
        .map(|r| parse_resolution(r))
        .collect::<anyhow::Result<_>>()?;
    let spec = WindowSpec {
        fps: args.fps,
        num_frames: args.frames,
        window_s: args.window,
        stride_s: args.stride,
        short_side: (args.input_size * 8).div_ceil(7) as u32,
        input_size: args.input_size,
        mean: [0.45, 0.45, 0.45],
        std: [0.225, 0.225, 0.225],
        roi: None,
    };
    spec.validate()
        .map_err(|e| BadInput(format!("bench predict: {e}")))?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("ethos-bench-predict"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;

    ethos_models::engine::Engine::init();
    if let Some(n) = args.torch_threads {
        tch::set_num_threads(n);
    }
    let device = ethos_models::engine::pick_device(&args.device)
        .map_err(|e| BadInput(format!("--device {}: {e}", args.device)))?;
    tch::manual_seed(0);
    let mut vs = nn::VarStore::new(device);
    // The same builder `ethos train` and `ethos predict` use, so every architecture they run is here.
    let arch = ethos_models::registry::parse_arch(&args.arch)
        .map_err(|e| BadInput(format!("--arch: {e}")))?;
    let model_cfg = ethos_models::config::ModelConfig {
        arch,
        preset: Some(args.preset.clone()),
        ..Default::default()
    };
    let classes: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
    let model = super::train::build_model(&model_cfg, classes.len(), &mut vs)?;
    vs.freeze();
    let model_s_per_window = model_alone_s_per_window(model.as_ref(), device, &args)?;

    let sources: Vec<(String, PathBuf)> = resolutions
        .iter()
        .map(|&(w, h)| {
            Ok((
                format!("{w}x{h}"),
                source(&dir, w, h, args.source_fps, args.seconds)?,
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    eprintln!(
        "bench predict: {} {} on {:?} (random weights), input {} frames at {} fps, {}x{} px, window {} s, stride {} s, batch {}, libtorch threads {}",
        args.arch,
        args.preset,
        device,
        args.frames,
        args.fps,
        args.input_size,
        args.input_size,
        args.window,
        args.stride,
        args.batch,
        tch::get_num_threads()
    );

    let out_dir = dir.join("out");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let mut rows = Vec::new();
    for (label, video) in &sources {
        for &threads in &args.decoder_threads {
            let predictor = Predictor {
                model: model.as_ref(),
                device,
                spec: spec.clone(),
                classes: classes.clone(),
                batch_size: args.batch,
                decoder_threads: threads,
                merge: MergeRule {
                    thresholds: vec![Some(0.5); classes.len()],
                    min_duration_s: 1.0,
                    max_gap_s: 1.0,
                },
                smooth_frames: 0,
            };
            let outputs = predict::outputs_for(&out_dir, video);
            let mut runs = Vec::with_capacity(args.reps);
            for _ in 0..args.reps {
                let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
                let cpu0 = rusage().0;
                let t0 = Instant::now();
                let s = predictor
                    .predict_video(video, &video.display().to_string(), &outputs, "bench")
                    .with_context(|| format!("predicting {}", video.display()))?;
                let wall_s = t0.elapsed().as_secs_f64();
                let cpu_s = rusage().0 - cpu0;
                let peak_rss_mb = if reset {
                    proc_status_mb("VmHWM:").unwrap_or(f64::NAN)
                } else {
                    f64::NAN
                };
                let hidden = if s.model_s > 0.0 {
                    ((s.decode_s + s.model_s - wall_s) / s.model_s).clamp(0.0, 1.0)
                } else {
                    1.0
                };
                runs.push(Row {
                    resolution: label.clone(),
                    decoder_threads: threads,
                    video_s: s.video_seconds,
                    windows: s.windows,
                    wall_s,
                    cpu_s,
                    decode_s: s.decode_s,
                    model_s: s.model_s,
                    video_h_per_wall_h: s.video_seconds / wall_s,
                    video_h_per_cpu_h: s.video_seconds / cpu_s.max(1e-9),
                    bound: if s.decode_s >= s.model_s {
                        "decode"
                    } else {
                        "model"
                    },
                    hidden,
                    peak_rss_mb,
                    model_alone_s: model_s_per_window * s.windows as f64,
                    wall_all_s: Vec::new(),
                });
            }
            let wall_all_s: Vec<f64> = runs.iter().map(|r| r.wall_s).collect();
            runs.sort_by(|a, b| a.wall_s.total_cmp(&b.wall_s));
            let mut row = runs.swap_remove(runs.len() / 2);
            row.wall_all_s = wall_all_s;
            eprintln!(
                "  {label} decoder threads {threads}: {:.1} s of video in {:.1} s wall, {:.1} CPU-s (decode {:.1} s, model {:.1} s)",
                row.video_s, row.wall_s, row.cpu_s, row.decode_s, row.model_s
            );
            rows.push(row);
        }
    }

    eprintln!(
        "\n{:<10} {:>4} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>7} {:>7} {:>9}",
        "source",
        "dthr",
        "video-s",
        "wall-s",
        "CPU-s",
        "decode-s",
        "model-s",
        "alone-s",
        "vh/wall-h",
        "vh/CPU-h",
        "bound",
        "hidden",
        "peak MB"
    );
    for r in &rows {
        eprintln!(
            "{:<10} {:>4} {:>7.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>9.2} {:>9.2} {:>7} {:>7.2} {:>9.0}",
            r.resolution,
            r.decoder_threads,
            r.video_s,
            r.wall_s,
            r.cpu_s,
            r.decode_s,
            r.model_s,
            r.model_alone_s,
            r.video_h_per_wall_h,
            r.video_h_per_cpu_h,
            r.bound,
            r.hidden,
            r.peak_rss_mb
        );
    }
    let json = serde_json::json!({
        "model": { "arch": args.arch, "preset": args.preset, "device": format!("{device:?}"),
                   "torch_threads": tch::get_num_threads() },
        "settings": spec,
        "batch": args.batch,
        "reps": args.reps,
        "model_alone_s_per_window": model_s_per_window,
        "source": { "seconds": args.seconds, "fps": args.source_fps, "codec": "h264",
                    "crf": 23, "gop": 2 * args.source_fps, "b_frames": false },
        "machine": { "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0) },
        "results": rows,
    });
    println!("{}", serde_json::to_string_pretty(&json)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolutions_parse_and_bad_ones_are_input_errors() {
        assert_eq!(parse_resolution("1920x1080").unwrap(), (1920, 1080));
        assert_eq!(parse_resolution(" 3840X2160").unwrap(), (3840, 2160));
        for bad in ["1920", "1921x1080", "x", "0x0", "1920x1080x3", "99999x2"] {
            let e = parse_resolution(bad).unwrap_err();
            assert_eq!(crate::exit::code(&e), 2, "{bad}");
        }
    }
}
