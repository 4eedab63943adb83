//! The long-video inference benchmark: inference throughput — hours of video processed per wall hour
//! and per CPU-hour, and where the time goes (decode vs model), for generated H.264 sources at each
//! `--resolution`, through the same pipeline as `ethos predict` (`ethos_infer::predict::Predictor`,
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

use ethos_core::{Error, ResultExt};
use ethos_eval::timeline::MergeRule;
use ethos_infer::predict::{self, Predictor, WindowSpec};
use serde::Serialize;
use tch::nn;

use super::{BenchOutput, proc_status_mb, rusage};
use crate::Result;

/// What `ethos bench predict` measures.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct PredictBenchOptions {
    /// Source resolutions WxH, comma-separated.
    #[cfg_attr(feature = "clap", arg(long, value_delimiter = ',', default_value = "1920x1080,3840x2160", value_parser = parse_resolution))]
    pub resolution: Vec<(u32, u32)>,
    /// Length of each generated source, seconds.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 60.0))]
    pub seconds: f64,
    /// Frame rate of the generated sources.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 15))]
    pub source_fps: u32,
    /// Decoder thread counts to compare, comma-separated.
    #[cfg_attr(
        feature = "clap",
        arg(long, value_delimiter = ',', default_value = "2")
    )]
    pub decoder_threads: Vec<usize>,
    /// Windows per forward pass.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 8))]
    pub batch: usize,
    /// Model architecture (random weights).
    #[cfg_attr(feature = "clap", arg(long, default_value = "r3d_18"))]
    pub arch: String,
    /// Model preset.
    #[cfg_attr(feature = "clap", arg(long, default_value = "r3d_demo"))]
    pub preset: String,
    /// Model input side, pixels (frames are scaled to short side `input_size * 8 / 7`, then
    /// centre-cropped, as `data.cache_short_side` 128 does for 112).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 112))]
    pub input_size: usize,
    /// Frames per window.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 8))]
    pub frames: usize,
    /// Model frame rate (frames per second taken from the source).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 8.0))]
    pub fps: f64,
    /// Window length, seconds.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 1.0))]
    pub window: f64,
    /// Stride between windows, seconds.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0.5))]
    pub stride: f64,
    /// libtorch intra-op threads (default: libtorch's choice).
    #[cfg_attr(feature = "clap", arg(long))]
    pub torch_threads: Option<i32>,
    /// Device: cpu, cuda, cuda:N.
    #[cfg_attr(feature = "clap", arg(long, default_value = "cpu"))]
    pub device: String,
    /// Repetitions of each (resolution, decoder threads) run; the median run by wall time is reported.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 1))]
    pub reps: usize,
    /// Folder for the generated sources (kept between runs) and outputs (default: the temp dir's
    /// `ethos-bench-predict`).
    #[cfg_attr(feature = "clap", arg(long))]
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

/// Parses `WxH` (even sizes from 16 to 8192) for `--resolution`.
pub fn parse_resolution(s: &str) -> std::result::Result<(u32, u32), String> {
    let bad = || format!("`{s}`: expected WxH, e.g. 1920x1080 (even sizes from 16 to 8192)");
    let (w, h) = s.trim().split_once(['x', 'X']).ok_or_else(bad)?;
    let (w, h): (u32, u32) = (w.parse().map_err(|_| bad())?, h.parse().map_err(|_| bad())?);
    if w < 16 || h < 16 || w % 2 != 0 || h % 2 != 0 || w > 8192 || h > 8192 {
        return Err(bad());
    }
    Ok((w, h))
}

/// The cached source for one resolution, generated when missing or of the wrong shape.
fn source(
    dir: &Path,
    w: u32,
    h: u32,
    fps: u32,
    seconds: f64,
    table: &mut Vec<String>,
) -> Result<PathBuf> {
    let frames = (seconds * fps as f64).round().max(1.0) as u64;
    let path = dir.join(format!("src-{w}x{h}-{fps}fps-{frames}f-h264.mp4"));
    let reusable = ethos_video::probe(&path)
        .is_ok_and(|i| i.width == w && i.height == h && i.frame_count == frames);
    if !reusable {
        let t = Instant::now();
        super::make_source(&path, w, h, fps, seconds)
            .context(format!("writing the benchmark source {}", path.display()))?;
        table.push(format!(
            "bench predict: writing the source {} ({seconds} s, {w}x{h}, {fps} fps, H.264): {:.1} s",
            path.display(),
            t.elapsed().as_secs_f64()
        ));
    }
    Ok(path)
}

/// Seconds per window of the model's forward pass alone: the median of 3 timed batches of
/// `--batch` random windows after one warm-up batch.
fn model_alone_s_per_window(
    model: &dyn ethos_models::VideoModel,
    device: tch::Device,
    args: &PredictBenchOptions,
) -> Result<f64> {
    let (b, t, s) = (
        args.batch as i64,
        args.frames as i64,
        args.input_size as i64,
    );
    let shape = match model.input_layout() {
        ethos_core::Layout::Bcthw => [b, 3, t, s, s],
        ethos_core::Layout::Btchw => [b, t, 3, s, s],
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
pub fn run(args: &PredictBenchOptions) -> Result<BenchOutput> {
    ethos_video::init();
    if !(args.seconds > 0.0 && args.seconds <= 3600.0) {
        return Err(Error::bad_input(format!(
            "--seconds {}: must be in (0, 3600]",
            args.seconds
        )));
    }
    if !(1..=crate::predict::MAX_BATCH).contains(&args.batch)
        || !(1..=100).contains(&args.reps)
        || args.decoder_threads.iter().any(|t| !(1..=64).contains(t))
        || !(1..=240).contains(&args.source_fps)
    {
        return Err(Error::bad_input(format!(
            "--batch (1..={}), --reps (1..=100), --decoder-threads (1..=64) and --source-fps (1..=240) out of range",
            crate::predict::MAX_BATCH
        )));
    }
    let mut table = Vec::new();
    let resolutions = args.resolution.clone();
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
    spec.validate().context("bench predict")?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("ethos-bench-predict"));
    std::fs::create_dir_all(&dir).map_err(|e| Error::output_io(&dir, e))?;
    if let Some(n) = args.torch_threads {
        tch::set_num_threads(n);
    }
    let device =
        crate::train::pick_device(&args.device).context(format!("--device {}", args.device))?;
    tch::manual_seed(0);
    let mut vs = nn::VarStore::new(device);
    // The same builder `ethos train` and `ethos predict` use, so every architecture they run is here.
    let arch = ethos_models::factory::parse_arch(&args.arch).context("--arch")?;
    let model_cfg = ethos_models::config::ModelConfig {
        arch,
        preset: Some(args.preset.clone()),
        ..Default::default()
    };
    let classes: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
    let model = ethos_models::factory::build_from_config(&model_cfg, classes.len(), &mut vs)?;
    vs.freeze();
    let model_s_per_window = model_alone_s_per_window(model.as_ref(), device, args)?;

    let sources: Vec<(String, PathBuf)> = resolutions
        .iter()
        .map(|&(w, h)| {
            Ok((
                format!("{w}x{h}"),
                source(&dir, w, h, args.source_fps, args.seconds, &mut table)?,
            ))
        })
        .collect::<Result<_>>()?;
    tracing::info!(
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
    std::fs::create_dir_all(&out_dir).map_err(|e| Error::output_io(&out_dir, e))?;
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
                decoder: ethos_video::Decoder::Cpu,
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
                    .context(format!("predicting {}", video.display()))?;
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
            tracing::info!(
                "  {label} decoder threads {threads}: {:.1} s of video in {:.1} s wall, {:.1} CPU-s (decode {:.1} s, model {:.1} s)",
                row.video_s,
                row.wall_s,
                row.cpu_s,
                row.decode_s,
                row.model_s
            );
            rows.push(row);
        }
    }

    table.push(format!(
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
    ));
    for r in &rows {
        table.push(format!(
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
        ));
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
    Ok(BenchOutput { table, json })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolutions_parse_and_bad_ones_are_refused() {
        assert_eq!(parse_resolution("1920x1080").unwrap(), (1920, 1080));
        assert_eq!(parse_resolution(" 3840X2160").unwrap(), (3840, 2160));
        for bad in ["1920", "1921x1080", "x", "0x0", "1920x1080x3", "99999x2"] {
            assert!(parse_resolution(bad).is_err(), "{bad}");
        }
    }
}
