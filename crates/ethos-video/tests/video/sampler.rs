//! The sampler and reader against FFmpeg's own decode: full-resolution frames are bit-identical to
//! `ffmpeg -vf select=eq(n,K) -pix_fmt rgb24` for the frames the time convention names, across codecs,
//! containers, B-frames, a non-zero start time and a variable frame rate. Probe counts match.

#![cfg(feature = "ffmpeg")]

use crate::common;

use std::path::{Path, PathBuf};

use common::*;
use ethos_video::{ClipRequest, ClipSampler, FrameReader, ReaderOptions, Resize, probe};

/// Checks sampled frames and probe facts of `path` against FFmpeg.
fn check_against_ffmpeg(path: &Path) {
    let times = frame_times(path);
    let n = times.len();
    assert!(n > 10, "{} has only {n} frames", path.display());
    let info = probe(path).unwrap();
    assert_eq!(
        info.frame_count as usize,
        n,
        "probe frame count of {}",
        path.display()
    );
    assert!(info.frame_count_exact);
    let rel_last = times[n - 1] - times[0];
    // Between frames, exactly on frames, the first and the last frame, and past the end.
    let sample = [
        0.0,
        0.01,
        times[3] - times[0],
        (times[5] - times[0]) - 1e-3,
        rel_last * 0.5,
        rel_last,
        rel_last + 5.0,
    ];
    let sampler = ClipSampler::new(1);
    let got = sampler
        .sample_times(path, &sample, None, Resize::None)
        .unwrap();
    assert_eq!((got.clip.width, got.clip.height), (160, 96));
    assert_eq!(got.padded, 1, "only the time 5 s past the end is padding");
    for (i, t) in sample.iter().enumerate() {
        let k = index_at(&times, *t);
        let want = ffmpeg_frame(path, k);
        assert!(
            got.clip.frame(i) == want.as_slice(),
            "{}: sample {i} at {t:.4}s (frame {k}) differs from ffmpeg",
            path.display()
        );
    }
    // A sample starting in the middle (a seek, not a decode from the start) with several threads.
    let mid = [rel_last * 0.6, rel_last * 0.6 + 0.07, rel_last * 0.8];
    let got = ClipSampler::new(2)
        .sample_times(path, &mid, None, Resize::None)
        .unwrap();
    for (i, t) in mid.iter().enumerate() {
        let want = ffmpeg_frame(path, index_at(&times, *t));
        assert!(
            got.clip.frame(i) == want.as_slice(),
            "{}: mid sample {i} at {t:.4}s differs",
            path.display()
        );
    }
    // The reader returns every frame exactly as ffmpeg decodes them.
    let all = ffmpeg_all_frames(path);
    let mut reader = FrameReader::open(path, &ReaderOptions::default()).unwrap();
    let mut count = 0;
    while let Some((t, rgb)) = reader.next_frame().unwrap() {
        let len = rgb.len();
        assert!(
            (t - (times[count] - times[0])).abs() < 1e-3,
            "reader time {t} vs {}",
            times[count] - times[0]
        );
        assert!(
            rgb == all[count * len..(count + 1) * len],
            "reader frame {count} differs"
        );
        count += 1;
    }
    assert_eq!(count, n);
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn h264_mp4_with_b_frames_is_bit_identical() {
    let dir = tmp();
    let p = make_video(
        dir.path(),
        "h264.mp4",
        15,
        3.0,
        &[
            "-c:v", "libx264", "-bf", "2", "-g", "12", "-preset", "veryfast",
        ],
    );
    assert!(probe(&p).unwrap().has_b_frames);
    check_against_ffmpeg(&p);
}

#[test]
fn hevc_mp4_is_bit_identical() {
    assert!(
        has_encoder("libx265"),
        "libx265 missing: install FFmpeg with scripts/setup.sh"
    );
    let dir = tmp();
    let p = make_video(
        dir.path(),
        "hevc.mp4",
        15,
        3.0,
        &[
            "-c:v",
            "libx265",
            "-x265-params",
            "log-level=error:keyint=10",
            "-preset",
            "ultrafast",
        ],
    );
    assert_eq!(probe(&p).unwrap().codec, "hevc");
    check_against_ffmpeg(&p);
}

#[test]
fn mpeg4_avi_is_bit_identical() {
    let dir = tmp();
    let p = make_video(
        dir.path(),
        "mpeg4.avi",
        15,
        3.0,
        &["-c:v", "mpeg4", "-q:v", "4", "-g", "10"],
    );
    assert_eq!(probe(&p).unwrap().codec, "mpeg4");
    check_against_ffmpeg(&p);
}

#[test]
fn non_zero_start_time_is_subtracted() {
    let dir = tmp();
    let p = make_video(
        dir.path(),
        "offset.mp4",
        15,
        3.0,
        &[
            "-c:v",
            "libx264",
            "-bf",
            "2",
            "-g",
            "10",
            "-output_ts_offset",
            "2.5",
        ],
    );
    let info = probe(&p).unwrap();
    assert!(
        (info.start_time_s - 2.5).abs() < 0.01,
        "start {}",
        info.start_time_s
    );
    check_against_ffmpeg(&p);
}

#[test]
fn variable_frame_rate_mkv_is_bit_identical() {
    let dir = tmp();
    // Every 4th frame gap is 3x longer: irregular timestamps.
    let p = make_video(
        dir.path(),
        "vfr.mkv",
        15,
        4.0,
        &[
            "-vf",
            "setpts='(N+2*floor(N/4))/15/TB'",
            "-vsync",
            "vfr",
            "-c:v",
            "libx264",
            "-g",
            "8",
            "-bf",
            "2",
        ],
    );
    let times = frame_times(&p);
    let gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.iter().any(|g| *g > 0.15) && gaps.iter().any(|g| *g < 0.1),
        "not VFR: {gaps:?}"
    );
    let info = probe(&p).unwrap();
    assert_eq!(info.frame_count_source, "packets");
    check_against_ffmpeg(&p);
}

#[test]
fn request_windows_follow_the_time_convention() {
    let dir = tmp();
    let p: PathBuf = make_video(
        dir.path(),
        "conv.mp4",
        15,
        2.0,
        &["-c:v", "libx264", "-g", "15"],
    );
    let times = frame_times(&p);
    let sampler = ClipSampler::default();
    // Centred: 8 frames at 5 fps in a 2 s window starting at 0.2 s -> centre 1.2 s.
    let req = ClipRequest {
        start_s: 0.2,
        duration_s: 2.0,
        fps: 5.0,
        num_frames: 8,
        roi: None,
        resize: Resize::None,
    };
    let got = sampler.sample(&p, &req).unwrap();
    assert_eq!(got.times_s.len(), 8);
    assert!((got.times_s[0] - (1.2 - 3.5 / 5.0)).abs() < 1e-9);
    for (i, t) in req.sample_times().iter().enumerate() {
        let k = index_at(&times, *t);
        assert_eq!(got.frame_indices[i], k as u64, "sample {i}");
    }
    // Past the end: a window at 1.5 s of a 2 s video pads with the last frame.
    let req = ClipRequest {
        start_s: 1.5,
        duration_s: 2.0,
        fps: 5.0,
        num_frames: 8,
        roi: None,
        resize: Resize::None,
    };
    let got = sampler.sample(&p, &req).unwrap();
    let expect_pad = req
        .sample_times()
        .iter()
        .filter(|t| **t >= 2.0 - 1e-6)
        .count();
    assert!(expect_pad > 0);
    assert_eq!(got.padded, expect_pad);
    let last = got.clip.frame(7).to_vec();
    assert_eq!(got.clip.frame(7 - expect_pad + 1), last.as_slice());
    assert_eq!(*got.frame_indices.last().unwrap(), (times.len() - 1) as u64);
    // Negative times clamp to the first frame.
    let got = sampler
        .sample_times(&p, &[-1.0, 0.0], None, Resize::None)
        .unwrap();
    assert_eq!(got.clip.frame(0), got.clip.frame(1));
    assert_eq!(got.times_s[0], 0.0);
    // Short side scaling keeps the aspect: 160x96 -> short side 48 -> 80x48.
    let got = sampler
        .sample_times(&p, &[0.5], None, Resize::ShortSide(48))
        .unwrap();
    assert_eq!((got.clip.width, got.clip.height), (80, 48));
}

#[test]
fn reader_at_target_rate_matches_the_sampler() {
    let dir = tmp();
    let p = make_video(
        dir.path(),
        "rate.mp4",
        15,
        2.0,
        &["-c:v", "libx264", "-bf", "2", "-g", "10"],
    );
    let opts = ReaderOptions {
        fps: Some(6.0),
        start_s: 0.3,
        end_s: Some(1.6),
        ..Default::default()
    };
    let mut reader = FrameReader::open(&p, &opts).unwrap();
    assert_eq!(reader.fps(), 6.0);
    let mut times = Vec::new();
    let mut frames = Vec::new();
    while let Some((t, f)) = reader.next_frame().unwrap() {
        times.push(t);
        frames.push(f);
    }
    let want: Vec<f64> = (0..)
        .map(|k| 0.3 + k as f64 / 6.0)
        .take_while(|t| *t < 1.6 - 1e-6)
        .collect();
    assert_eq!(times.len(), want.len());
    let sampled = ClipSampler::new(1)
        .sample_times(&p, &want, None, Resize::None)
        .unwrap();
    for (i, f) in frames.iter().enumerate() {
        assert!((times[i] - want[i]).abs() < 1e-9);
        assert!(
            f.as_slice() == sampled.clip.frame(i),
            "reader frame {i} differs from the sampler"
        );
    }
    // Without an end, the reader stops at the end of the video (2 s).
    let mut reader = FrameReader::open(
        &p,
        &ReaderOptions {
            fps: Some(4.0),
            ..Default::default()
        },
    )
    .unwrap();
    let mut n = 0;
    while reader.next_frame().unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 8);
}
