//! `ethos synth`: writes a synthetic barn dataset (videos, events, splits, config) with known labels.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Context;
use ethos_data::synth::{self, SynthSpec};
use ethos_video::Codec;

use crate::exit::BadInput;

/// Arguments of `ethos synth`.
#[derive(clap::Args)]
pub struct Args {
    /// Output folder (created; existing dataset files in it are replaced).
    #[arg(long)]
    pub out: PathBuf,
    /// Seed of every random choice (same seed, same dataset).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Cameras; the last one is the unseen out-of-distribution test camera (`test_ood`).
    #[arg(long, default_value_t = 3)]
    pub cameras: usize,
    /// Source videos (pens) per camera.
    #[arg(long, default_value_t = 2)]
    pub videos_per_camera: usize,
    /// Labelled events in total.
    #[arg(long, default_value_t = 120)]
    pub events: usize,
    /// Frame size WxH (even numbers).
    #[arg(long, default_value = "640x360")]
    pub resolution: String,
    /// Frames per second.
    #[arg(long, default_value_t = 15)]
    pub fps: u32,
    /// Video codec: h264 (MPEG-4 when libx264 is missing), hevc or mpeg4.
    #[arg(long, default_value = "h264")]
    pub codec: String,
    /// Majority:minority (ear:tail) ratio.
    #[arg(long, default_value_t = 6.85)]
    pub imbalance: f64,
    /// Minimum minutes of video per camera (longer when the events need it).
    #[arg(long, default_value_t = 3.0)]
    pub minutes: f64,
    /// Background events (class `none`: 3-7 s with no contact in view, boxed like the contact
    /// regions) to add to the labelled ones; 0 keeps the classes `ear, tail`.
    #[arg(long, default_value_t = 0)]
    pub background_events: usize,
    /// Also write a long close-up test video of about this many seconds with known bouts
    /// (`long/closeup.mp4`, ground truth `long/closeup.events.csv`); 0 = none.
    #[arg(long = "long-video", value_name = "SECONDS", default_value_t = 0.0)]
    pub long_video: f64,
    /// Side in pixels of the long video's square frames.
    #[arg(long, default_value_t = 128)]
    pub long_video_size: u32,
}

fn parse_resolution(s: &str) -> Result<(u32, u32), BadInput> {
    let bad = || BadInput(format!("--resolution {s:?}: expected WxH, e.g. 640x360"));
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    Ok((
        w.trim().parse().map_err(|_| bad())?,
        h.trim().parse().map_err(|_| bad())?,
    ))
}

/// Runs `ethos synth`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let (width, height) = parse_resolution(&args.resolution)?;
    let codec: Codec = args
        .codec
        .parse()
        .map_err(|e: String| BadInput(format!("--codec: {e}")))?;
    if codec == Codec::Hevc && !ethos_video::encoder_available(Codec::Hevc) {
        return Err(BadInput("--codec hevc: this FFmpeg has no libx265 encoder".into()).into());
    }
    let spec = SynthSpec {
        seed: args.seed,
        cameras: args.cameras,
        videos_per_camera: args.videos_per_camera,
        events: args.events,
        width,
        height,
        fps: args.fps,
        codec,
        imbalance: args.imbalance,
        minutes: args.minutes,
        background_events: args.background_events,
        long_video_s: args.long_video,
        long_video_size: args.long_video_size,
        ..SynthSpec::default()
    };
    let started = Instant::now();
    let plan = synth::plan(&spec)?;
    let total = synth::total_frames(&plan);
    eprintln!(
        "synth: {} videos, {} events, {total} frames at {width}x{height} {} fps (planned in {:.1} s)",
        plan.videos.len(),
        plan.events.len(),
        spec.fps,
        started.elapsed().as_secs_f64()
    );
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "synth {bar:40} {pos}/{len} frames {per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let done = AtomicU64::new(0);
    let last_line = AtomicU64::new(0);
    let progress = |n: u64| {
        let now = done.fetch_add(n, Ordering::Relaxed) + n;
        match &bar {
            Some(bar) => bar.set_position(now),
            None => {
                // One flushed line per ~10% when stderr is a log file.
                let step = (total / 10).max(1);
                let prev = last_line.load(Ordering::Relaxed);
                if now / step > prev / step
                    && last_line
                        .compare_exchange(prev, now, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                {
                    let mut err = std::io::stderr().lock();
                    let _ = writeln!(
                        err,
                        "synth: {now}/{total} frames ({:.0} s)",
                        started.elapsed().as_secs_f64()
                    );
                    let _ = err.flush();
                }
            }
        }
    };
    let summary = synth::write_dataset(&plan, &args.out, &progress)
        .with_context(|| format!("writing the synthetic dataset to {}", args.out.display()))?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    for (split, counts) in &summary.split_counts {
        let per_class: Vec<String> = summary
            .classes
            .iter()
            .zip(counts)
            .map(|(c, n)| format!("{c} {n}"))
            .collect();
        eprintln!(
            "synth: {split}: {} events ({})",
            counts.iter().sum::<usize>(),
            per_class.join(", ")
        );
    }
    if let Some(long) = &summary.long_video {
        let bouts: Vec<String> = long.bouts.iter().map(|(c, n)| format!("{c} {n}")).collect();
        eprintln!(
            "synth: long video {} ({:.0} s, {}x{}, {} segments, bouts: {}; truth {})",
            args.out.join(&long.video).display(),
            long.seconds,
            long.size,
            long.size,
            long.segments,
            bouts.join(", "),
            args.out.join(&long.truth).display()
        );
    }
    eprintln!(
        "synth: wrote {} ({:.1} MB) in {:.1} s; train with: ethos train --config {}",
        args.out.display(),
        summary.bytes as f64 / 1e6,
        started.elapsed().as_secs_f64(),
        args.out.join("config.yaml").display()
    );
    println!("{}", serde_json::to_string(&summary)?);
    Ok(())
}
