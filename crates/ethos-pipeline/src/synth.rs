//! The synthetic barn dataset: `ethos synth` and the demo's first step.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use ethos_core::{Error, ResultExt};
use ethos_data::synth::{self, SynthSpec, SynthSummary};
use ethos_video::Codec;

use crate::Result;
use crate::progress::Progress;

/// Writes the synthetic dataset of `spec` into `out` (videos, events, splits, `config.yaml`);
/// progress counts frames.
pub fn synth(spec: &SynthSpec, out: &Path, progress: &dyn Progress) -> Result<SynthSummary> {
    if spec.codec == Codec::Hevc && !ethos_video::encoder_available(Codec::Hevc) {
        return Err(Error::bad_input(
            "--codec hevc: this FFmpeg has no libx265 encoder",
        ));
    }
    let plan = synth::plan(spec)?;
    let total = synth::total_frames(&plan);
    tracing::info!(
        "synth: {} videos, {} events, {total} frames at {}x{} {} fps",
        plan.videos.len(),
        plan.events.len(),
        spec.width,
        spec.height,
        spec.fps
    );
    let done = AtomicU64::new(0);
    let frames = |n: u64| {
        let now = done.fetch_add(n, Ordering::Relaxed) + n;
        progress.step(now as usize, total as usize, None);
    };
    synth::write_dataset(&plan, out, &frames).context(format!(
        "writing the synthetic dataset to {}",
        out.display()
    ))
}

/// True when `dir` holds a dataset that `ethos synth` wrote with `spec`'s settings (the demo reuses
/// it instead of writing it again).
pub fn same_dataset(dir: &Path, spec: &SynthSpec) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join("synth.json")) else {
        return false;
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
        return false;
    };
    dir.join("config.yaml").is_file()
        && v["seed"].as_u64() == Some(spec.seed)
        && v["events"].as_u64() == Some(spec.events as u64)
        && v["background_events"].as_u64() == Some(spec.background_events as u64)
        && v["long_video_s"].as_f64() == Some(spec.long_video_s)
        && v["long_video_size"].as_u64() == Some(u64::from(spec.long_video_size))
        && v["width"].as_u64() == Some(u64::from(spec.width))
        && v["height"].as_u64() == Some(u64::from(spec.height))
}
