//! ClipWriter round trips: every codec/container writes a file that the ffprobe CLI reads back
//! with the right codec, size, frame count and keyframe interval.

#![cfg(feature = "ffmpeg")]

use ethos_core::Classify;
use std::path::Path;
use std::process::Command;

use ethos_video::{ClipWriter, Codec, WriterOptions, encoder_available};

fn gradient_frame(w: usize, h: usize, t: usize) -> Vec<u8> {
    let mut f = vec![0u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            let i = (y * w + x) * 3;
            f[i] = (x * 255 / w) as u8;
            f[i + 1] = (y * 255 / h) as u8;
            f[i + 2] = ((t * 20) % 256) as u8;
        }
    }
    f
}

fn ffprobe(path: &Path, entries: &str) -> String {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-count_frames",
            "-show_entries",
            entries,
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn keyframe_indices(path: &Path) -> Vec<usize> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "frame=key_frame",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .filter(|(_, l)| l.split(',').next() == Some("1"))
        .map(|(i, _)| i)
        .collect()
}

fn write_clip(path: &Path, opts: &WriterOptions, frames: usize) {
    let (w, h) = (64, 48);
    let mut writer = ClipWriter::create(path, w as u32, h as u32, opts).unwrap();
    for t in 0..frames {
        writer.write_frame(&gradient_frame(w, h, t)).unwrap();
    }
    writer.finish().unwrap();
}

#[test]
fn writes_every_codec_and_container() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (Codec::H264, "a.mp4", "h264", true),
        (Codec::H264, "b.mkv", "h264", false),
        (Codec::Hevc, "c.mp4", "hevc", true),
        (Codec::Mpeg4, "d.avi", "mpeg4", false),
        (Codec::Mpeg4, "e.mp4", "mpeg4", false),
    ];
    for (codec, name, expect, b_frames) in cases {
        assert!(
            encoder_available(codec),
            "{codec}: encoder missing; install FFmpeg with scripts/setup.sh"
        );
        let path = dir.path().join(name);
        let opts = WriterOptions {
            codec,
            fps: 15,
            gop: 10,
            quality: None,
            b_frames,
        };
        write_clip(&path, &opts, 25);
        assert_eq!(
            ffprobe(&path, "stream=codec_name,width,height,nb_read_frames"),
            format!("{expect},64,48,25"),
            "{name}"
        );
        assert_eq!(keyframe_indices(&path), vec![0, 10, 20], "{name}");
        // No temporary file remains next to the output.
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty());
    }
}

#[test]
fn rejects_odd_sizes_and_wrong_frame_lengths() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.mp4");
    let err = ClipWriter::create(&path, 63, 48, &WriterOptions::default())
        .err()
        .unwrap();
    assert!(
        err.is_bad_input() && err.to_string().contains("x.mp4"),
        "{err}"
    );
    let mut w = ClipWriter::create(&path, 64, 48, &WriterOptions::default()).unwrap();
    let err = w.write_frame(&[0u8; 10]).unwrap_err();
    assert!(err.to_string().contains("x.mp4"), "{err}");
    drop(w);
    assert!(!path.exists(), "an unfinished writer leaves no file");
}

#[test]
fn codec_names_parse() {
    assert_eq!("h264".parse::<Codec>().unwrap(), Codec::H264);
    assert_eq!("HEVC".parse::<Codec>().unwrap(), Codec::Hevc);
    assert_eq!("mpeg4".parse::<Codec>().unwrap(), Codec::Mpeg4);
    assert!("vp9".parse::<Codec>().is_err());
}
