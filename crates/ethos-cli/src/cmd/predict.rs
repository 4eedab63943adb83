//! `ethos predict --checkpoint C [--config F] --out DIR VIDEO... | --list FILE`: sliding-window
//! inference over long videos into per-window probabilities and merged behaviour events
//! (see `ethos_pipeline::predict` and `ethos_infer::predict` for the windowing, outputs and
//! resume rules).

use std::path::PathBuf;

use ethos_pipeline::predict::{PredictOptions, Shard, Thresholds, predict};
use ethos_video::Roi;

/// Arguments of `ethos predict`.
#[derive(clap::Args)]
pub struct Args {
    /// Checkpoint to run (`best.ckpt` of a run).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Config to take data/model settings from (default: the one stored in the checkpoint).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override a config key (`key=value`, repeatable), e.g. `predict.camera_rois.cam0=[0,0,1920,1080]`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Output folder (created).
    #[arg(long)]
    pub out: PathBuf,
    /// Videos to process.
    pub videos: Vec<PathBuf>,
    /// A text file with one video path per line (relative paths are relative to the file; `#` comments).
    #[arg(long)]
    pub list: Option<PathBuf>,
    /// Window length in seconds (default: the model's frames per input / fps: data.num_frames, or
    /// data.chunk_length for frame-level runs).
    #[arg(long)]
    pub window: Option<f64>,
    /// Stride between windows in seconds, rounded to whole frames (default: half the window).
    #[arg(long)]
    pub stride: Option<f64>,
    /// Windows per forward pass (default: data.batch_size).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Probability a window needs to count as a class: one number for every class, or
    /// `class=p,...` (classes not named get 0.5).
    #[arg(long, default_value = "0.5")]
    pub threshold: Thresholds,
    /// A class that never becomes an event (e.g. a background class); repeatable.
    #[arg(long = "background")]
    pub background: Vec<String>,
    /// Events shorter than this (seconds) are dropped.
    #[arg(long, default_value_t = 1.0)]
    pub min_duration: f64,
    /// Events of one class at most this far apart (seconds) are merged.
    #[arg(long, default_value_t = 1.0)]
    pub max_gap: f64,
    /// Take shard i of N of the video list (`i/N`, 0-based): list positions i, i+N, ...
    #[arg(long)]
    pub shard: Option<Shard>,
    /// Crop every video to this region first (x,y,w,h in source pixels); overrides the config's
    /// per-camera `predict.camera_rois`.
    #[arg(long)]
    pub roi: Option<Roi>,
    /// Decoder threads per video.
    #[arg(long, default_value_t = 2)]
    pub decoder_threads: usize,
    /// Video decoder: auto (NVDEC when a CUDA device is there, else the CPU), cpu or cuda;
    /// sets `data.decoder`.
    #[arg(long, value_name = "auto|cpu|cuda")]
    pub decoder: Option<ethos_video::Decoder>,
    /// Per-frame heads (FERAL): centred moving average of `NAME.frames.csv` over this many frames
    /// (0 = none).
    #[arg(long, default_value_t = 0)]
    pub smooth_frames: usize,
    /// Device: auto, cpu or cuda:N (default: the config's train.device).
    #[arg(long)]
    pub device: Option<String>,
    /// Ignore the run's calibration.json (temperature and the bout rule `ethos calibrate
    /// --timeline` tuned); use the thresholds and durations given here.
    #[arg(long)]
    pub no_calibration: bool,
}

/// Runs `ethos predict`.
pub fn run(mut args: Args) -> anyhow::Result<()> {
    args.set
        .extend(args.decoder.map(|d| format!("data.decoder={d}")));
    let s = predict(&PredictOptions {
        checkpoint: args.checkpoint,
        config: args.config,
        overrides: args.set,
        out: args.out,
        videos: args.videos,
        list: args.list,
        window_s: args.window,
        stride_s: args.stride,
        batch: args.batch,
        thresholds: args.threshold,
        background: args.background,
        min_duration_s: args.min_duration,
        max_gap_s: args.max_gap,
        shard: args.shard,
        roi: args.roi,
        decoder_threads: args.decoder_threads,
        smooth_frames: args.smooth_frames,
        device: args.device,
        no_calibration: args.no_calibration,
    })?;
    crate::output::line(format!(
        "predict: {} ok, {} skipped, {} failed; {:.2} h of video in {:.1} s; summary {}",
        s.ok,
        s.skipped,
        s.failed,
        s.hours_processed,
        s.wall_s,
        s.path.display()
    ));
    if s.interrupted {
        crate::output::line(
            "predict: stopped by a signal; rerun the same command to continue (finished videos are skipped)",
        );
    }
    Ok(())
}
