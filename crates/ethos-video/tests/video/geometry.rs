//! ROI crop + resize against known content, and rotation metadata.

#![cfg(feature = "ffmpeg")]

use crate::common;

use common::*;
use ethos_video::{ClipSampler, ClipWriter, Resize, Roi, WriterOptions, probe};

const W: usize = 128;
const H: usize = 96;
const RED: [u8; 3] = [230, 20, 20];
const GREEN: [u8; 3] = [20, 230, 20];
const BLUE: [u8; 3] = [20, 20, 230];
const WHITE: [u8; 3] = [235, 235, 235];

/// Quadrants: red top-left, green top-right, blue bottom-left, white bottom-right.
fn quadrants() -> Vec<u8> {
    let mut f = vec![0u8; W * H * 3];
    for y in 0..H {
        for x in 0..W {
            let c = match (x < W / 2, y < H / 2) {
                (true, true) => RED,
                (false, true) => GREEN,
                (true, false) => BLUE,
                (false, false) => WHITE,
            };
            f[(y * W + x) * 3..(y * W + x) * 3 + 3].copy_from_slice(&c);
        }
    }
    f
}

fn close(px: &[u8], c: [u8; 3]) -> bool {
    px.iter()
        .zip(c)
        .all(|(a, b)| (*a as i32 - b as i32).abs() <= 12)
}

fn pixel(data: &[u8], w: usize, x: usize, y: usize) -> &[u8] {
    &data[(y * w + x) * 3..(y * w + x) * 3 + 3]
}

#[test]
fn roi_and_short_side_pick_the_right_quadrants() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("quad.mp4");
    let opts = WriterOptions {
        quality: Some(5),
        ..Default::default()
    };
    let mut w = ClipWriter::create(&path, W as u32, H as u32, &opts).unwrap();
    for _ in 0..10 {
        w.write_frame(&quadrants()).unwrap();
    }
    w.finish().unwrap();
    // Right half (green over white), short side 16 -> 16x24 (aspect 32:48 kept).
    let roi = Some(Roi {
        x: 64,
        y: 0,
        w: 64,
        h: 96,
    });
    let got = ClipSampler::new(1)
        .sample_times(&path, &[0.2], roi, Resize::ShortSide(16))
        .unwrap();
    let c = &got.clip;
    assert_eq!((c.width, c.height), (16, 24));
    for x in [1, 8, 14] {
        assert!(
            close(pixel(c.frame(0), 16, x, 3), GREEN),
            "top {x}: {:?}",
            pixel(c.frame(0), 16, x, 3)
        );
        assert!(
            close(pixel(c.frame(0), 16, x, 20), WHITE),
            "bottom {x}: {:?}",
            pixel(c.frame(0), 16, x, 20)
        );
    }
    // Bottom-left quadrant only, exact size 10x6: all blue.
    let roi = Some(Roi {
        x: 4,
        y: 52,
        w: 56,
        h: 40,
    });
    let got = ClipSampler::new(1)
        .sample_times(
            &path,
            &[0.2],
            roi,
            Resize::Exact {
                width: 10,
                height: 6,
            },
        )
        .unwrap();
    assert_eq!((got.clip.width, got.clip.height), (10, 6));
    assert!(
        got.clip.frame(0).chunks(3).all(|p| close(p, BLUE)),
        "{:?}",
        got.clip.frame(0)
    );
    // An odd ROI origin still crops exactly: a 1-pixel-wide column inside the green quadrant.
    let roi = Some(Roi {
        x: 97,
        y: 11,
        w: 3,
        h: 5,
    });
    let got = ClipSampler::new(1)
        .sample_times(&path, &[0.0], roi, Resize::None)
        .unwrap();
    assert!(got.clip.frame(0).chunks(3).all(|p| close(p, GREEN)));
}

#[test]
fn rotation_metadata_gives_upright_frames_like_ffmpeg() {
    let dir = tempfile::tempdir().unwrap();
    let src = make_video(
        dir.path(),
        "src.mp4",
        15,
        1.0,
        &["-c:v", "libx264", "-g", "5"],
    );
    for rot in [90, 180, 270] {
        let rotated = dir.path().join(format!("rot{rot}.mp4"));
        // The mov muxer turns the `rotate` tag into a display matrix (counter-clockwise tag =
        // clockwise display rotation of 360 - rot as FFmpeg reads it back).
        ffmpeg(&[
            "-i",
            &src.to_string_lossy(),
            "-c",
            "copy",
            "-metadata:s:v:0",
            &format!("rotate={rot}"),
            &rotated.to_string_lossy(),
        ]);
        let info = probe(&rotated).unwrap();
        assert_eq!(info.rotation, (360 - rot) % 360, "probe rotation");
        let got = ClipSampler::new(1)
            .sample_times(&rotated, &[0.0, 0.4], None, Resize::None)
            .unwrap();
        let (uw, uh) = if rot == 180 { (160, 96) } else { (96, 160) };
        assert_eq!(
            (got.clip.width, got.clip.height),
            (uw, uh),
            "rotation {rot}"
        );
        // ffmpeg's CLI autorotates by default: the same upright pixels.
        let times = frame_times(&rotated);
        for (i, t) in [0.0, 0.4].iter().enumerate() {
            let want = ffmpeg_frame(&rotated, index_at(&times, *t));
            assert!(
                got.clip.frame(i) == want.as_slice(),
                "rotation {rot}: frame {i} differs from ffmpeg's autorotated frame"
            );
        }
    }
}
