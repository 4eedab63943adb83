//! Benchmarks that report medians: decode (`decode`), model steps (`model`) and long-video
//! inference (`predict`). Each returns a table for people and JSON for machines.

pub mod decode;
pub mod model;
pub mod predict;

use std::path::Path;
use std::time::Instant;

use ethos_video::{ClipWriter, Codec, WriterOptions};
use tch::Device;

use crate::Result;

/// A benchmark's result: lines of a table for people, and the machine-readable JSON.
#[derive(Debug, Clone)]
pub struct BenchOutput {
    /// Lines for stderr.
    pub table: Vec<String>,
    /// The result.
    pub json: serde_json::Value,
}

/// The median of `v` (the mean of the two middle values for an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Waits for the device's queued work (CUDA timings need it).
pub fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Seconds of `reps` runs of `f` after `warmup` untimed runs, synchronising the device.
pub fn time_it(device: Device, warmup: usize, reps: usize, mut f: impl FnMut()) -> Vec<f64> {
    for _ in 0..warmup {
        f();
    }
    sync(device);
    (0..reps)
        .map(|_| {
            let start = Instant::now();
            f();
            sync(device);
            start.elapsed().as_secs_f64()
        })
        .collect()
}

/// A `/proc/self/status` field in MB (`VmRSS`, `VmHWM`).
pub fn proc_status_mb(key: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// CPU seconds (user + system, every thread) and peak RSS in MB of this process so far.
pub fn rusage() -> (f64, f64) {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    (
        secs(ru.ru_utime) + secs(ru.ru_stime),
        ru.ru_maxrss as f64 / 1024.0,
    )
}

/// Writes `seconds` of a `w`x`h` H.264 source at `fps`: a textured background (its features scale
/// with the frame, so every resolution shows the same scene) with six moving disks.
pub fn make_source(path: &Path, w: u32, h: u32, fps: u32, seconds: f64) -> Result<()> {
    let opts = WriterOptions {
        codec: Codec::H264,
        fps,
        gop: 2 * fps,
        quality: Some(23),
        b_frames: false,
    };
    // The writer encodes to a temporary name and renames it into place when finished.
    let mut writer = ClipWriter::create(path, w, h, &opts)?;
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
    Ok(())
}
