//! `ethos sample`: what a model sees. `ethos sample VIDEO --start S --duration D ...` decodes the
//! frames of one window; `ethos sample --config F --split S --event IDX [--augment]` writes exactly
//! what the loader feeds the model for one event. Both write `OUT.png` (contact sheet) and
//! `OUT.safetensors`; a JSON summary goes to stdout.

use std::path::PathBuf;

use ethos_core::{Error, Layout};
use ethos_pipeline::sample::{EventSampleOptions, VideoSampleOptions, sample_event, sample_video};
use ethos_video::Roi;

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
    /// Video decoder: auto (NVDEC when a CUDA device is there, else the CPU), cpu or cuda; with
    /// `--config`, sets `data.decoder`.
    #[arg(long, value_name = "auto|cpu|cuda")]
    pub decoder: Option<ethos_video::Decoder>,
    /// Output prefix: writes `OUT.png` and `OUT.safetensors`.
    #[arg(long)]
    pub out: PathBuf,
    /// `--config F --split S --event IDX [--augment]`: what the loader feeds the model instead.
    #[command(flatten)]
    pub from_config: ConfigArgs,
}

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
    #[arg(long, requires = "config", value_parser = parse_layout)]
    pub layout: Option<Layout>,
    /// Override a config key (repeatable), as for `ethos train`.
    #[arg(long = "set", requires = "config", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

fn parse_layout(s: &str) -> Result<Layout, String> {
    match s {
        "bcthw" => Ok(Layout::Bcthw),
        "btchw" => Ok(Layout::Btchw),
        _ => Err(format!("`{s}`: expected bcthw or btchw")),
    }
}

/// Runs `ethos sample`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let mut c = args.from_config;
    c.set
        .extend(args.decoder.map(|d| format!("data.decoder={d}")));
    let summary = match &c.config {
        Some(config) => {
            let Some(event) = c.event else {
                return Err(Error::bad_input("ethos sample --config needs --event IDX").into());
            };
            let cfg = ethos_pipeline::RunConfig::load(config, &c.set)?;
            sample_event(
                &cfg,
                &EventSampleOptions {
                    split: c.split,
                    event,
                    augment: c.augment,
                    epoch: c.epoch,
                    position: c.position,
                    layout: c.layout,
                    out: args.out,
                },
            )?
        }
        None => {
            let (Some(video), Some(start_s), Some(duration_s)) =
                (args.video, args.start, args.duration)
            else {
                return Err(Error::bad_input(
                    "ethos sample needs VIDEO --start --duration, or --config",
                )
                .into());
            };
            sample_video(&VideoSampleOptions {
                video,
                start_s,
                duration_s,
                fps: args.fps,
                frames: args.frames,
                short_side: args.short_side,
                roi: args.roi,
                threads: args.threads,
                decoder: args.decoder.unwrap_or_default(),
                out: args.out,
            })?
        }
    };
    crate::output::json(&summary)
}
