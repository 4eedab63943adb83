//! The decode benchmark: the cost of sampling one clip from a 4K source vs decoding it all.
//!
//! Each measurement runs in a fresh child process (this binary re-executed with the hidden
//! `bench decode-child`), so peak RSS belongs to one mode only. CPU time is the process's user +
//! system time (`getrusage(RUSAGE_SELF)`) across the decode call alone. Memory: the binary's
//! start-up (libtorch libraries) has its own high-water mark, so the child resets the peak
//! (`/proc/self/clear_refs` = 5) right before decoding and reports `VmHWM` afterwards (peak RSS
//! during the decode, including what was already resident), the resident size before decoding,
//! their difference (what decoding added), and the whole-process `ru_maxrss`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use ethos_core::{Error, ResultExt};
use ethos_video::{ClipRequest, ClipSampler, FrameReader, ReaderOptions, Resize};
use serde::{Deserialize, Serialize};

use super::{BenchOutput, median, proc_status_mb, rusage};
use crate::Result;

/// What `ethos bench decode` measures.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct DecodeBenchOptions {
    /// Source video; default: a generated 6 s 3840x2160 15 fps H.264 clip (GOP 30) in the temp dir.
    #[cfg_attr(feature = "clap", arg(long))]
    pub video: Option<PathBuf>,
    /// Repetitions of each mode (the median is reported).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 3))]
    pub reps: usize,
}

/// One measurement of the hidden child process.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct DecodeChildOptions {
    /// `sample` (16 frames at 12 fps, short side 256) or `full` (every frame, full size RGB).
    #[cfg_attr(feature = "clap", arg(long))]
    pub mode: String,
    /// The source video.
    #[cfg_attr(feature = "clap", arg(long))]
    pub video: PathBuf,
}

/// One child measurement.
#[derive(Serialize, Deserialize, Clone, Debug)]
struct Measure {
    mode: String,
    cpu_s: f64,
    wall_s: f64,
    /// Peak RSS during the decode (VmHWM after a reset), MB.
    peak_rss_mb: f64,
    /// Resident size right before decoding, MB.
    startup_rss_mb: f64,
    /// Whole-process peak RSS including start-up (`ru_maxrss`), MB.
    process_peak_rss_mb: f64,
    frames_out: usize,
}

/// The window sampled: 16 frames at 12 fps centred in the 6 s clip, short side 256, one thread.
fn sample_request() -> ClipRequest {
    ClipRequest {
        start_s: 0.0,
        duration_s: 6.0,
        fps: 12.0,
        num_frames: 16,
        roi: None,
        resize: Resize::ShortSide(256),
    }
}

/// Runs one mode in this process and returns its [`Measure`] as JSON (the parent reads it from
/// the child's stdout).
pub fn run_child(args: &DecodeChildOptions) -> Result<String> {
    ethos_video::init();
    // Reset the RSS high-water mark so it covers the decode only.
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let startup_rss = proc_status_mb("VmRSS:").unwrap_or(f64::NAN);
    let (cpu0, _) = rusage();
    let t0 = Instant::now();
    let frames_out = match args.mode.as_str() {
        "sample" => {
            ClipSampler::new(1)
                .sample(&args.video, &sample_request())?
                .clip
                .frames
        }
        "full" => {
            let mut reader = FrameReader::open(&args.video, &ReaderOptions::default())?;
            let mut n = 0;
            while let Some((_, rgb)) = reader.next_frame()? {
                std::hint::black_box(&rgb);
                n += 1;
            }
            n
        }
        other => {
            return Err(Error::bad_input(format!(
                "--mode {other:?}: expected sample or full"
            )));
        }
    };
    let wall_s = t0.elapsed().as_secs_f64();
    let (cpu1, process_peak) = rusage();
    let peak = if reset {
        proc_status_mb("VmHWM:").unwrap_or(process_peak)
    } else {
        process_peak
    };
    let m = Measure {
        mode: args.mode.clone(),
        cpu_s: cpu1 - cpu0,
        wall_s,
        peak_rss_mb: peak,
        startup_rss_mb: startup_rss,
        process_peak_rss_mb: process_peak,
        frames_out,
    };
    Ok(serde_json::to_string(&m).unwrap_or_default())
}

/// Writes the default benchmark source: 6 s of 3840x2160 at 15 fps, H.264, GOP 30, textured
/// background with moving shapes (so motion compensation and residuals are realistic).
fn make_source(path: &Path) -> Result<()> {
    super::make_source(path, 3840, 2160, 15, 6.0)
}

/// Runs `ethos bench decode`: each mode `reps` times in a fresh child process (`exe bench
/// decode-child`).
pub fn run(args: &DecodeBenchOptions, exe: &Path) -> Result<BenchOutput> {
    ethos_video::init();
    if !(1..=100).contains(&args.reps) {
        return Err(Error::bad_input(format!(
            "--reps {}: must be in 1..=100",
            args.reps
        )));
    }
    let mut table = Vec::new();
    let video = match args.video.clone() {
        Some(v) => v,
        None => {
            let path = std::env::temp_dir().join("ethos-bench-decode-3840x2160-15fps-gop30.mp4");
            let reusable =
                ethos_video::probe(&path).is_ok_and(|i| i.width == 3840 && i.frame_count == 90);
            if !reusable {
                tracing::info!(
                    "writing the benchmark source {} (6 s, 3840x2160, 15 fps, H.264, GOP 30)...",
                    path.display()
                );
                make_source(&path).context("writing the benchmark source video")?;
            }
            path
        }
    };
    let info = ethos_video::probe(&video).context(format!("probing {}", video.display()))?;
    let mut results = Vec::new();
    for mode in ["sample", "full"] {
        let mut runs: Vec<Measure> = Vec::new();
        for rep in 0..args.reps {
            let out = Command::new(exe)
                .args(["bench", "decode-child", "--mode", mode, "--video"])
                .arg(&video)
                .env("RUST_LOG", "warn")
                .output()
                .map_err(|e| Error::internal(format!("running the benchmark child: {e}")))?;
            if !out.status.success() {
                return Err(Error::internal(format!(
                    "benchmark child ({mode}) failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                )));
            }
            let m: Measure = serde_json::from_slice(&out.stdout)
                .map_err(|e| Error::internal(format!("reading the child's measurement: {e}")))?;
            tracing::info!(
                "  {mode:<6} rep {}: {:.3} CPU-s, peak RSS {:.1} MB during decode ({:.1} MB added)",
                rep + 1,
                m.cpu_s,
                m.peak_rss_mb,
                m.peak_rss_mb - m.startup_rss_mb
            );
            runs.push(m);
        }
        let med = |f: fn(&Measure) -> f64| median(runs.iter().map(f).collect());
        results.push(serde_json::json!({
            "mode": mode,
            "frames_out": runs[0].frames_out,
            "cpu_s_median": med(|m| m.cpu_s),
            "wall_s_median": med(|m| m.wall_s),
            "peak_rss_mb_median": med(|m| m.peak_rss_mb),
            "startup_rss_mb_median": med(|m| m.startup_rss_mb),
            "decode_rss_mb_median": med(|m| m.peak_rss_mb - m.startup_rss_mb),
            "process_peak_rss_mb_median": med(|m| m.process_peak_rss_mb),
            "runs": runs,
        }));
    }
    table.push(format!(
        "\n{}: {}x{} {} {:.2} fps, {} frames, GOP {:?}; reps {}",
        video.display(),
        info.width,
        info.height,
        info.codec,
        info.avg_fps,
        info.frame_count,
        info.keyframe_interval,
        args.reps
    ));
    table.push(format!(
        "{:<44} {:>7} {:>7} {:>13} {:>13} {:>13} {:>6}",
        "mode (median)", "CPU-s", "wall-s", "peak RSS MB", "added by dec", "process peak", "frames"
    ));
    for (r, label) in results.iter().zip([
        "sample: 16 fr @12 fps, short side 256, 1 thr",
        "full: every frame, full-res RGB, 1 thr",
    ]) {
        let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
        table.push(format!(
            "{:<44} {:>7.3} {:>7.3} {:>13.1} {:>13.1} {:>13.1} {:>6}",
            label,
            f("cpu_s_median"),
            f("wall_s_median"),
            f("peak_rss_mb_median"),
            f("decode_rss_mb_median"),
            f("process_peak_rss_mb_median"),
            r["frames_out"]
        ));
    }
    let json =
        serde_json::json!({ "video": video, "info": info, "reps": args.reps, "results": results });
    Ok(BenchOutput { table, json })
}
