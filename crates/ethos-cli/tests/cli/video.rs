//! `ethos probe` and `ethos sample` on small generated videos, and their bad-input behaviour.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ethos(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ethos"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("ethos runs")
}

fn make_video(dir: &Path) -> PathBuf {
    let path = dir.join("clip.mp4");
    let status = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x96:rate=15",
            "-t",
            "2",
        ])
        .args([
            "-c:v", "libx264", "-g", "10", "-bf", "2", "-pix_fmt", "yuv420p",
        ])
        .arg(&path)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success());
    path
}

fn assert_bad_input(out: &Output, name: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "exit code for {name}; stderr: {stderr}"
    );
    assert!(
        stderr.contains(name),
        "stderr does not name {name}: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
}

#[test]
fn probe_prints_json_facts() {
    let dir = tempfile::tempdir().unwrap();
    let video = make_video(dir.path());
    let out = ethos(&["probe", &video.to_string_lossy()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["codec"], "h264");
    assert_eq!(v["width"], 160);
    assert_eq!(v["height"], 96);
    assert_eq!(v["frame_count"], 30);
    assert_eq!(v["frame_count_exact"], true);
    assert_eq!(v["keyframe_interval"], 10);
    assert_eq!(v["has_b_frames"], true);
    assert_eq!(v["rotation"], 0);
    assert!((v["avg_fps"].as_f64().unwrap() - 15.0).abs() < 1e-9);
    assert!((v["duration_s"].as_f64().unwrap() - 2.0).abs() < 0.01);
}

#[test]
fn sample_writes_png_and_safetensors() {
    let dir = tempfile::tempdir().unwrap();
    let video = make_video(dir.path());
    let out_prefix = dir.path().join("s");
    let out = ethos(&[
        "sample",
        &video.to_string_lossy(),
        "--start",
        "0.5",
        "--duration",
        "1.0",
        "--fps",
        "6",
        "--frames",
        "5",
        "--short-side",
        "48",
        "--roi",
        "0,0,80,96",
        "--out",
        &out_prefix.to_string_lossy(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["shape"], serde_json::json!([5, 58, 48, 3]));
    let png = image::open(dir.path().join("s.png")).unwrap().to_rgb8();
    // 5 frames -> 3 columns, 2 rows, 2-pixel gaps.
    assert_eq!((png.width(), png.height()), (3 * 48 + 4, 2 * 58 + 2));
    let bytes = std::fs::read(dir.path().join("s.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let frames = st.tensor("frames").unwrap();
    assert_eq!(frames.dtype(), safetensors::Dtype::U8);
    assert_eq!(frames.shape(), &[5, 58, 48, 3]);
    // The first frame of the sheet is the first tensor frame.
    let data = frames.data();
    for (x, y) in [(0u32, 0u32), (47, 57), (20, 30)] {
        let i = ((y * 48 + x) * 3) as usize;
        assert_eq!(png.get_pixel(x, y).0, [data[i], data[i + 1], data[i + 2]]);
    }
}

#[test]
fn bad_videos_exit_2_and_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let video = make_video(dir.path());
    let bytes = std::fs::read(&video).unwrap();
    let truncated = dir.path().join("truncated.mp4");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let empty = dir.path().join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    let text = dir.path().join("text.mp4");
    std::fs::write(&text, "hello, not a video\n").unwrap();
    let missing = dir.path().join("missing.mp4");
    for (path, name) in [
        (&truncated, "truncated.mp4"),
        (&empty, "empty.mp4"),
        (&text, "text.mp4"),
        (&missing, "missing.mp4"),
    ] {
        let p = path.to_string_lossy();
        assert_bad_input(&ethos(&["probe", &p]), name);
        let out_prefix = dir.path().join("o").to_string_lossy().into_owned();
        assert_bad_input(
            &ethos(&[
                "sample",
                &p,
                "--start",
                "0",
                "--duration",
                "1",
                "--out",
                &out_prefix,
            ]),
            name,
        );
    }
    // A ROI outside the frame is a bad request naming the file.
    let out_prefix = dir.path().join("o").to_string_lossy().into_owned();
    let out = ethos(&[
        "sample",
        &video.to_string_lossy(),
        "--start",
        "0",
        "--duration",
        "1",
        "--roi",
        "100,0,100,10",
        "--out",
        &out_prefix,
    ]);
    assert_bad_input(&out, "clip.mp4");
    // A malformed ROI is a usage error (exit 2).
    let out = ethos(&[
        "sample",
        &video.to_string_lossy(),
        "--start",
        "0",
        "--duration",
        "1",
        "--roi",
        "1,2",
        "--out",
        &out_prefix,
    ]);
    assert_eq!(out.status.code(), Some(2));
}
