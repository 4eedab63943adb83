//! Bad files and requests give a `VideoError` that names the file, never a panic.

#![cfg(feature = "ffmpeg")]

use crate::common;

use ethos_core::Classify;
use std::path::Path;

use ethos_video::{
    ClipRequest, ClipSampler, ClipWriter, FrameReader, ReaderOptions, Resize, Roi, VideoError,
    WriterOptions, probe,
};

fn assert_bad(err: VideoError, path: &Path) {
    assert!(err.is_bad_input(), "{err:?} should be bad input");
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "{msg:?} does not name {}",
        path.display()
    );
}

fn all_entry_points_fail(path: &Path) {
    assert_bad(probe(path).unwrap_err(), path);
    assert_bad(
        ClipSampler::new(1)
            .sample_times(path, &[0.0], None, Resize::None)
            .unwrap_err(),
        path,
    );
    assert_bad(
        FrameReader::open(path, &ReaderOptions::default())
            .err()
            .unwrap(),
        path,
    );
}

fn small_mp4(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("ok.mp4");
    let mut w = ClipWriter::create(&path, 64, 48, &WriterOptions::default()).unwrap();
    for t in 0..30u8 {
        w.write_frame(&vec![t.wrapping_mul(8); 64 * 48 * 3])
            .unwrap();
    }
    w.finish().unwrap();
    path
}

#[test]
fn missing_empty_text_and_truncated_files() {
    let dir = tempfile::tempdir().unwrap();
    all_entry_points_fail(&dir.path().join("missing.mp4"));
    let empty = dir.path().join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    all_entry_points_fail(&empty);
    let text = dir.path().join("notes.mp4");
    std::fs::write(&text, "this is not a video\n".repeat(50)).unwrap();
    all_entry_points_fail(&text);
    let good = small_mp4(dir.path());
    let bytes = std::fs::read(&good).unwrap();
    let truncated = dir.path().join("truncated.mp4");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    all_entry_points_fail(&truncated);
    // Truncated with the index up front (`+faststart`): the index points past the end of the file.
    let faststart = dir.path().join("faststart.mp4");
    common::ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x96:rate=15",
        "-t",
        "3",
        "-c:v",
        "libx264",
        "-movflags",
        "+faststart",
        &faststart.to_string_lossy(),
    ]);
    assert!(probe(&faststart).is_ok());
    let bytes = std::fs::read(&faststart).unwrap();
    let cut = dir.path().join("faststart_cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    all_entry_points_fail(&cut);
    // A directory is not a video either.
    all_entry_points_fail(dir.path());
}

#[test]
fn bad_requests_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = small_mp4(dir.path());
    let sampler = ClipSampler::new(1);
    let roi = Some(Roi {
        x: 40,
        y: 0,
        w: 40,
        h: 10,
    });
    assert_bad(
        sampler
            .sample_times(&good, &[0.0], roi, Resize::None)
            .unwrap_err(),
        &good,
    );
    assert_bad(
        sampler
            .sample_times(&good, &[1.0, 0.5], None, Resize::None)
            .unwrap_err(),
        &good,
    );
    assert_bad(
        sampler
            .sample_times(&good, &[f64::NAN], None, Resize::None)
            .unwrap_err(),
        &good,
    );
    let req = ClipRequest {
        start_s: 0.0,
        duration_s: 0.0,
        fps: 12.0,
        num_frames: 4,
        roi: None,
        resize: Resize::None,
    };
    assert_bad(sampler.sample(&good, &req).unwrap_err(), &good);
    let req = ClipRequest {
        duration_s: 1.0,
        num_frames: 0,
        ..req
    };
    assert_bad(sampler.sample(&good, &req).unwrap_err(), &good);
    let opts = ReaderOptions {
        start_s: 1.0,
        end_s: Some(0.5),
        ..Default::default()
    };
    assert_bad(FrameReader::open(&good, &opts).err().unwrap(), &good);
}
