//! The decoder choice (`auto | cpu | cuda`): `auto` gives the CPU decoder's frames byte for byte
//! (through NVDEC where it opens, through the CPU fallback elsewhere), `cuda` without NVDEC is an
//! error that names the setting, and NVDEC's frames equal the CPU decoder's at the same times,
//! after seeks, for H.264 and HEVC with B-frames (skipped, saying so, where no NVDEC decoder opens).

#![cfg(feature = "ffmpeg")]

use crate::common;

use std::path::{Path, PathBuf};

use common::*;
use ethos_core::Classify;
use ethos_video::{
    ClipSampler, Decoder, FrameReader, ReaderOptions, Resize, Roi, VideoError, nvdec_available,
};

/// Sample times that decode from the start, seek into the middle, repeat a frame and run past the end.
const TIMES: [f64; 7] = [0.0, 0.21, 0.9, 0.93, 1.6, 1.95, 2.5];

fn h264_with_b_frames(dir: &Path) -> PathBuf {
    make_video(
        dir,
        "b.mp4",
        15,
        2.0,
        &["-c:v", "libx264", "-bf", "2", "-g", "8"],
    )
}

fn sample(path: &Path, decoder: Decoder, times: &[f64], resize: Resize) -> Vec<u8> {
    ClipSampler::new(1)
        .with_decoder(decoder)
        .sample_times(path, times, None, resize)
        .unwrap_or_else(|e| panic!("{decoder} on {}: {e}", path.display()))
        .clip
        .data
}

fn read_all(path: &Path, decoder: Decoder, fps: Option<f64>) -> Vec<(f64, Vec<u8>)> {
    let opts = ReaderOptions {
        fps,
        start_s: 0.4,
        roi: Some(Roi {
            x: 8,
            y: 4,
            w: 120,
            h: 80,
        }),
        resize: Resize::ShortSide(40),
        decoder,
        ..Default::default()
    };
    let mut reader = FrameReader::open(path, &opts).unwrap();
    let mut frames = Vec::new();
    while let Some(f) = reader.next_frame().unwrap() {
        frames.push(f);
    }
    frames
}

#[test]
fn auto_gives_the_cpu_decoders_frames() {
    let dir = tempfile::tempdir().unwrap();
    let path = h264_with_b_frames(dir.path());
    match nvdec_available("h264") {
        Ok(name) => eprintln!("auto decodes with {name} here (NVDEC against the CPU)"),
        Err(reason) => eprintln!("auto falls back to the CPU here: {reason}"),
    }
    for resize in [Resize::None, Resize::ShortSide(48)] {
        assert!(
            sample(&path, Decoder::Auto, &TIMES, resize)
                == sample(&path, Decoder::Cpu, &TIMES, resize),
            "auto and cpu sample different bytes ({resize:?})"
        );
    }
    for fps in [None, Some(6.0)] {
        let auto = read_all(&path, Decoder::Auto, fps);
        let cpu = read_all(&path, Decoder::Cpu, fps);
        assert!(!cpu.is_empty());
        assert!(
            auto == cpu,
            "auto and cpu read different frames (fps {fps:?})"
        );
    }
}

fn assert_names_the_setting(err: &VideoError, path: &Path) {
    let msg = err.to_string();
    assert!(
        matches!(err, VideoError::HwDecoder { .. }),
        "not a decoder error: {msg}"
    );
    assert!(
        msg.contains("data.decoder") && msg.contains("--decoder") && msg.contains("`cuda`"),
        "{msg}"
    );
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert_eq!(err.kind(), ethos_core::ErrorKind::BadInput, "exit code 2");
}

#[test]
fn cuda_without_nvdec_for_the_codec_is_an_error_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    // FFV1 has no NVDEC decoder anywhere, so this holds on every machine.
    let path = make_video(dir.path(), "lossless.mkv", 10, 1.0, &["-c:v", "ffv1"]);
    let err = ClipSampler::new(1)
        .with_decoder(Decoder::Cuda)
        .sample_times(&path, &[0.2], None, Resize::None)
        .unwrap_err();
    assert_names_the_setting(&err, &path);
    assert!(err.to_string().contains("ffv1"), "{err}");
    let opts = ReaderOptions {
        decoder: Decoder::Cuda,
        ..Default::default()
    };
    assert_names_the_setting(&FrameReader::open(&path, &opts).err().unwrap(), &path);
    // auto decodes it on the CPU.
    let auto = sample(&path, Decoder::Auto, &[0.2, 0.5], Resize::None);
    assert_eq!(auto, sample(&path, Decoder::Cpu, &[0.2, 0.5], Resize::None));
}

#[test]
fn cuda_without_a_device_is_an_error_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let path = h264_with_b_frames(dir.path());
    if let Ok(name) = nvdec_available("h264") {
        eprintln!("SKIPPED: {name} opens on this machine, so `cuda` is not an error here");
        return;
    }
    let err = ClipSampler::new(1)
        .with_decoder(Decoder::Cuda)
        .sample_times(&path, &[0.5], None, Resize::None)
        .unwrap_err();
    assert_names_the_setting(&err, &path);
}

/// Mean and maximum absolute difference of two equally long byte strings.
fn diff(a: &[u8], b: &[u8]) -> (f64, u8) {
    assert_eq!(a.len(), b.len());
    let mut sum = 0u64;
    let mut max = 0u8;
    for (x, y) in a.iter().zip(b) {
        let d = x.abs_diff(*y);
        sum += d as u64;
        max = max.max(d);
    }
    (sum as f64 / a.len().max(1) as f64, max)
}

/// NVDEC against the CPU decoder on one file: the same frame at every sample time (each NVDEC
/// frame is closest to the CPU frame of the same index) and the same bytes, up to colour noise.
fn check_nvdec_matches_cpu(path: &Path, codec: &str) {
    let name = match nvdec_available(codec) {
        Ok(name) => name,
        Err(reason) => {
            eprintln!("SKIPPED {codec}: no NVDEC decoder opens here ({reason})");
            return;
        }
    };
    let cuda = ClipSampler::new(1)
        .with_decoder(Decoder::Cuda)
        .sample_times(path, &TIMES, None, Resize::None)
        .unwrap();
    let cpu = ClipSampler::new(1)
        .with_decoder(Decoder::Cpu)
        .sample_times(path, &TIMES, None, Resize::None)
        .unwrap();
    assert_eq!(
        cuda.frame_indices, cpu.frame_indices,
        "{name}: frame indices"
    );
    assert_eq!(cuda.times_s, cpu.times_s, "{name}: sample times");
    let all = ffmpeg_all_frames(path);
    let frame_len = cpu.clip.frame_len();
    for (i, t) in TIMES.iter().enumerate() {
        let got = cuda.clip.frame(i);
        let closest = all
            .chunks_exact(frame_len)
            .enumerate()
            .min_by(|(_, a), (_, b)| diff(got, a).0.total_cmp(&diff(got, b).0))
            .map(|(k, _)| k)
            .unwrap();
        assert_eq!(
            closest as u64, cpu.frame_indices[i],
            "{name}: sample {i} at {t}s is another frame"
        );
    }
    let (mean, max) = diff(&cuda.clip.data, &cpu.clip.data);
    eprintln!(
        "{name} vs CPU on {}: mean |diff| {mean:.4}, max {max} (levels of 255)",
        path.display()
    );
    assert!(max <= 2 && mean < 0.05, "{name}: colour noise too large");
    let cuda_frames = read_all(path, Decoder::Cuda, Some(6.0));
    let cpu_frames = read_all(path, Decoder::Cpu, Some(6.0));
    assert_eq!(cuda_frames.len(), cpu_frames.len(), "{name}: reader frames");
    for ((tc, a), (tp, b)) in cuda_frames.iter().zip(&cpu_frames) {
        assert_eq!(tc, tp);
        assert!(diff(a, b).1 <= 2, "{name}: reader frame at {tc}s");
    }
}

#[test]
fn nvdec_frames_match_the_cpu_decoder() {
    let dir = tempfile::tempdir().unwrap();
    check_nvdec_matches_cpu(&h264_with_b_frames(dir.path()), "h264");
    if has_encoder("libx265") {
        let hevc = make_video(
            dir.path(),
            "h.mp4",
            15,
            2.0,
            &[
                "-c:v",
                "libx265",
                "-x265-params",
                "bframes=2:keyint=8:log-level=error",
            ],
        );
        check_nvdec_matches_cpu(&hevc, "hevc");
    }
}
