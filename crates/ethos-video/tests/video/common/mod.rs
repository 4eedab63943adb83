//! Helpers for integration tests: test videos made with the ffmpeg CLI, and FFmpeg's own decode.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs the ffmpeg CLI with `args`, panicking with its stderr on failure.
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "ffmpeg {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether the ffmpeg CLI has an encoder called `name`.
pub fn has_encoder(name: &str) -> bool {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-encoders"])
        .output()
        .expect("ffmpeg runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(name))
}

/// A 160x96 test pattern with motion (`testsrc2`), `secs` seconds at `fps`, encoded with `codec_args`.
pub fn make_video(dir: &Path, name: &str, fps: u32, secs: f64, codec_args: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let src = format!("testsrc2=size=160x96:rate={fps}");
    let secs = secs.to_string();
    let mut args = vec![
        "-f", "lavfi", "-i", &src, "-t", &secs, "-pix_fmt", "yuv420p",
    ];
    args.extend_from_slice(codec_args);
    let p = path.to_string_lossy().into_owned();
    args.push(&p);
    ffmpeg(&args);
    path
}

/// Presentation times (seconds, as ffprobe reports them) of every decoded frame, in output order.
pub fn frame_times(path: &Path) -> Vec<f64> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "frame=best_effort_timestamp_time",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.split(',')
                .next()
                .and_then(|v| v.trim().parse::<f64>().ok())
        })
        .collect()
}

/// The index of the frame shown at `t` seconds from the first frame (the project's time convention).
pub fn index_at(times: &[f64], t: f64) -> usize {
    let t0 = times[0];
    let t = t.max(0.0);
    times.iter().rposition(|x| x - t0 <= t + 1e-6).unwrap_or(0)
}

/// FFmpeg's own RGB decode of frame `k` (`select=eq(n,k)`, `-pix_fmt rgb24`).
pub fn ffmpeg_frame(path: &Path, k: usize) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(path)
        .args([
            "-vf",
            &format!("select=eq(n\\,{k})"),
            "-vframes",
            "1",
            "-pix_fmt",
            "rgb24",
            "-f",
            "rawvideo",
            "-",
        ])
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// FFmpeg's own RGB decode of every frame, no frames dropped or duplicated.
pub fn ffmpeg_all_frames(path: &Path) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(path)
        .args([
            "-vsync",
            "passthrough",
            "-pix_fmt",
            "rgb24",
            "-f",
            "rawvideo",
            "-",
        ])
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
