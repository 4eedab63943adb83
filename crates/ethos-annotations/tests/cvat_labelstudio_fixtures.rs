//! CVAT XML written by Datumaro's CVAT exporter (video tracks with `outside` keyframes, image
//! tags) and a Label Studio video export written from its documented format
//! (tools/gen_annotation_fixtures.py).

use std::path::{Path, PathBuf};

use ethos_annotations::import::{ImportRequest, Tool, import};
use ethos_annotations::{AnnotEvent, Policies, ProblemKind};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn request(tool: Tool, file: &str) -> ImportRequest {
    ImportRequest {
        tool,
        files: vec![fixture(file)],
        out: PathBuf::from("unused.csv"),
        videos_root: None,
        policies: Policies::default(),
        fps: None,
        video: None,
        label_config: None,
        splits: Vec::new(),
        seed: 0,
    }
}

fn spans(events: &[AnnotEvent]) -> Vec<(String, f64, f64)> {
    let mut v: Vec<(String, f64, f64)> = events
        .iter()
        .map(|e| (e.behavior.clone(), e.start_s, e.end_s()))
        .collect();
    v.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    v
}

fn close(got: &[(String, f64, f64)], want: &[(&str, f64, f64)]) {
    assert_eq!(got.len(), want.len(), "{got:?}");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.0, w.0, "{got:?}");
        assert!(
            (g.1 - w.1).abs() < 1e-9 && (g.2 - w.2).abs() < 1e-9,
            "{got:?} vs {want:?}"
        );
    }
}

#[test]
fn cvat_video_tracks_become_intervals_per_stretch_in_view() {
    let mut req = request(Tool::Cvat, "cvat_video_tracks.xml");
    req.fps = Some(10.0);
    req.video = Some("barn.mp4".into());
    let (events, summary) = import(&req).unwrap();
    // ear: frames 5..15 and 25..30 (the track comes back); tail: 10..20.
    close(
        &spans(&events),
        &[("ear", 0.5, 1.5), ("tail", 1.0, 2.0), ("ear", 2.5, 3.0)],
    );
    assert!(events.iter().all(|e| e.video == "barn.mp4"));
    assert_eq!(summary.read.get("CVAT tracks"), Some(&2));
}

#[test]
fn cvat_without_a_frame_rate_or_video_is_a_problem_naming_the_file() {
    let mut req = request(Tool::Cvat, "cvat_video_tracks.xml");
    req.video = Some("barn.mp4".into());
    let err = import(&req).unwrap_err();
    let p = err.problems();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].kind, ProblemKind::NoFrameRate);
    assert!(err.to_string().contains("cvat_video_tracks.xml"), "{err}");
    assert!(err.to_string().contains("--fps"), "{err}");

    let mut req = request(Tool::Cvat, "cvat_video_tracks.xml");
    req.fps = Some(10.0);
    let err = import(&req).unwrap_err();
    assert!(err.to_string().contains("--video"), "{err}");
}

#[test]
fn cvat_image_tags_become_per_frame_labels() {
    let mut req = request(Tool::Cvat, "cvat_images_tags.xml");
    req.fps = Some(10.0);
    req.video = Some("barn.mp4".into());
    let (events, summary) = import(&req).unwrap();
    close(&spans(&events), &[("ear", 0.2, 0.6), ("tail", 0.8, 1.0)]);
    assert_eq!(summary.read.get("CVAT frame tags"), Some(&6));
}

#[test]
fn label_studio_timeline_rectangles_and_choices() {
    let mut req = request(Tool::LabelStudio, "labelstudio_video.json");
    req.label_config = Some(fixture("labelstudio_config.xml"));
    // Task 2's whole-video choice needs the video's length, which only a probe gives.
    let err = import(&req).unwrap_err();
    assert_eq!(err.problems().len(), 1, "{err}");
    assert!(err.to_string().contains("task 2"), "{err}");
    assert_eq!(err.problems()[0].kind, ProblemKind::NoFrameRate);

    // Task 1 alone: config frameRate 15; ranges are inclusive 1-based frames.
    let tasks: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("labelstudio_video.json")).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let one = dir.path().join("task1.json");
    std::fs::write(&one, serde_json::to_vec(&[&tasks[0]]).unwrap()).unwrap();
    req.files = vec![one];
    let (events, _) = import(&req).unwrap();
    close(
        &spans(&events),
        &[
            ("ear", 1.0, 3.0),
            ("groom", 2.0, 2.0 + 31.0 / 15.0),
            ("tail", 4.0, 6.0),
            ("tail", 8.0, 9.0),
            ("groom", 10.0, 10.0 + 31.0 / 15.0),
        ],
    );
    // Label Studio's upload prefix is gone from the video name.
    assert!(events.iter().all(|e| e.video == "day1.mp4"), "{events:?}");
    assert!(
        events
            .iter()
            .all(|e| e.observation.as_deref() == Some("task 1"))
    );

    // Without the config the rate comes from the rectangle's framesCount / duration (15).
    req.label_config = None;
    let (again, _) = import(&req).unwrap();
    assert_eq!(spans(&again).len(), 5);
    assert!((again[0].start_s - events[0].start_s).abs() < 1e-9);
}

#[test]
fn label_studio_choices_span_the_probed_video() {
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("farm/cam2/day2.mp4");
    std::fs::create_dir_all(video.parent().unwrap()).unwrap();
    let opts = ethos_video::WriterOptions {
        fps: 10,
        codec: ethos_video::Codec::Mpeg4,
        ..Default::default()
    };
    let mut w = ethos_video::ClipWriter::create(&video, 32, 32, &opts).unwrap();
    for _ in 0..25 {
        w.write_frame(&[128u8; 32 * 32 * 3]).unwrap();
    }
    w.finish().unwrap();
    let tasks: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("labelstudio_video.json")).unwrap()).unwrap();
    let two = dir.path().join("task2.json");
    std::fs::write(&two, serde_json::to_vec(&[&tasks[1]]).unwrap()).unwrap();
    let mut req = request(Tool::LabelStudio, "unused");
    req.files = vec![two];
    req.videos_root = Some(dir.path().to_path_buf());
    let (events, _) = import(&req).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].video, "farm/cam2/day2.mp4");
    assert_eq!(events[0].behavior, "tail");
    assert_eq!(events[0].start_s, 0.0);
    assert!((events[0].duration_s - 2.5).abs() < 0.11, "{:?}", events[0]);
}
