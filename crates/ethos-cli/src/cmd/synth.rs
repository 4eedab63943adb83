//! `ethos synth --out DIR`: writes a synthetic barn dataset with known labels (see
//! `ethos_data::synth`): videos per camera, `events.csv`, split CSVs, `config.yaml`, `synth.json`.

use std::path::PathBuf;

use ethos_data::synth::SynthSpec;
use ethos_video::Codec;

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
    #[arg(long, default_value = "640x360", value_parser = parse_resolution)]
    pub resolution: (u32, u32),
    /// Frames per second.
    #[arg(long, default_value_t = 15)]
    pub fps: u32,
    /// Video codec: h264 (MPEG-4 when libx264 is missing), hevc or mpeg4.
    #[arg(long, default_value = "h264")]
    pub codec: Codec,
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

/// Parses `WxH` for `--resolution`.
fn parse_resolution(s: &str) -> Result<(u32, u32), String> {
    let bad = || format!("`{s}`: expected WxH, e.g. 640x360");
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    Ok((
        w.trim().parse().map_err(|_| bad())?,
        h.trim().parse().map_err(|_| bad())?,
    ))
}

/// Runs `ethos synth`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let spec = SynthSpec {
        seed: args.seed,
        cameras: args.cameras,
        videos_per_camera: args.videos_per_camera,
        events: args.events,
        width: args.resolution.0,
        height: args.resolution.1,
        fps: args.fps,
        codec: args.codec,
        imbalance: args.imbalance,
        minutes: args.minutes,
        background_events: args.background_events,
        long_video_s: args.long_video,
        long_video_size: args.long_video_size,
        ..SynthSpec::default()
    };
    let bar = crate::progress::Bar::new("synth", "frames");
    let started = std::time::Instant::now();
    let summary = ethos_pipeline::synth::synth(&spec, &args.out, &bar)?;
    bar.finish();
    let mut lines = Vec::new();
    for (split, counts) in &summary.split_counts {
        let per_class: Vec<String> = summary
            .classes
            .iter()
            .zip(counts)
            .map(|(c, n)| format!("{c} {n}"))
            .collect();
        lines.push(format!(
            "synth: {split}: {} events ({})",
            counts.iter().sum::<usize>(),
            per_class.join(", ")
        ));
    }
    if let Some(long) = &summary.long_video {
        let bouts: Vec<String> = long.bouts.iter().map(|(c, n)| format!("{c} {n}")).collect();
        lines.push(format!(
            "synth: long video {} ({:.0} s, {}x{}, {} segments, bouts: {}; truth {})",
            args.out.join(&long.video).display(),
            long.seconds,
            long.size,
            long.size,
            long.segments,
            bouts.join(", "),
            args.out.join(&long.truth).display()
        ));
    }
    lines.push(format!(
        "synth: wrote {} ({:.1} MB) in {:.1} s; train with: ethos train --config {}",
        args.out.display(),
        summary.bytes as f64 / 1e6,
        started.elapsed().as_secs_f64(),
        args.out.join("config.yaml").display()
    ));
    crate::output::lines(&lines);
    crate::output::stdout(&serde_json::to_string(&summary)?)
}
