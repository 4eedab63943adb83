//! `ethos sample VIDEO ...`: decodes the frames a model would see for one window and writes them as
//! `OUT.png` (contact sheet) and `OUT.safetensors` (uint8 `frames`, `(T, H, W, 3)`); a JSON summary
//! goes to stdout.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Context;
use ethos_video::{ClipRequest, ClipSampler, Resize, Roi, SampledClip};

/// Arguments of `ethos sample`.
#[derive(clap::Args)]
pub struct Args {
    /// The video file (not with `--config`).
    #[arg(required_unless_present = "config", conflicts_with = "config")]
    pub video: Option<PathBuf>,
    /// Window start in seconds from the first frame.
    #[arg(long, required_unless_present = "config", conflicts_with = "config")]
    pub start: Option<f64>,
    /// Window length in seconds.
    #[arg(long, required_unless_present = "config", conflicts_with = "config")]
    pub duration: Option<f64>,
    /// Sampling rate in frames per second.
    #[arg(long, default_value_t = 12.0)]
    pub fps: f64,
    /// Number of frames.
    #[arg(long, default_value_t = 16)]
    pub frames: usize,
    /// Scale so the short side has this many pixels (aspect kept); full size when absent.
    #[arg(long)]
    pub short_side: Option<u32>,
    /// Crop `x,y,w,h` in source pixels before scaling.
    #[arg(long)]
    pub roi: Option<Roi>,
    /// Decoder threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Output prefix: writes `OUT.png` and `OUT.safetensors`.
    #[arg(long)]
    pub out: PathBuf,
    /// `--config F --split S --event IDX [--augment]`: what the loader feeds the model instead.
    #[command(flatten)]
    pub from_config: super::sample_config::ConfigArgs,
}

/// Runs `ethos sample`.
pub fn run(args: Args) -> anyhow::Result<()> {
    ethos_video::init();
    if args.from_config.config.is_some() {
        return super::sample_config::run(&args.from_config, &args.out);
    }
    let (Some(video), Some(start), Some(duration)) =
        (args.video.clone(), args.start, args.duration)
    else {
        anyhow::bail!(crate::exit::BadInput(
            "ethos sample needs VIDEO --start --duration, or --config".into()
        ));
    };
    let req = ClipRequest {
        start_s: start,
        duration_s: duration,
        fps: args.fps,
        num_frames: args.frames,
        roi: args.roi,
        resize: args.short_side.map_or(Resize::None, Resize::ShortSide),
    };
    let sampled = ClipSampler::new(args.threads)
        .sample(&video, &req)
        .with_context(|| format!("sampling {}", video.display()))?;
    write_sampled(&sampled, &video, &args.out)
}

/// Writes a sampled clip as `OUT.png` + `OUT.safetensors` (with times, frame indices and padding in
/// the safetensors metadata), logs where, and prints a JSON summary to stdout.
pub fn write_sampled(
    sampled: &SampledClip,
    video: &std::path::Path,
    out: &std::path::Path,
) -> anyhow::Result<()> {
    let summary = serde_json::json!({
        "video": video,
        "shape": sampled.clip.shape(),
        "times_s": sampled.times_s,
        "frame_indices": sampled.frame_indices,
        "padded": sampled.padded,
    });
    let mut meta = HashMap::new();
    meta.insert("video".to_string(), video.display().to_string());
    meta.insert(
        "times_s".to_string(),
        serde_json::to_string(&sampled.times_s)?,
    );
    meta.insert(
        "frame_indices".to_string(),
        serde_json::to_string(&sampled.frame_indices)?,
    );
    meta.insert("padded".to_string(), sampled.padded.to_string());
    let (png, st) = crate::clip_out::write_clip(&sampled.clip, out, meta)?;
    if sampled.padded > 0 {
        tracing::warn!(
            "{} of {} frames are past the end of {} and repeat its last frame",
            sampled.padded,
            sampled.times_s.len(),
            video.display()
        );
    }
    tracing::info!("wrote {} and {}", png.display(), st.display());
    let mut summary = summary;
    summary["png"] = serde_json::json!(png);
    summary["safetensors"] = serde_json::json!(st);
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
