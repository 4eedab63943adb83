use super::*;
use ethos_core::Classify;
use ethos_video::Roi;

fn tiny(seed: u64) -> SynthSpec {
    SynthSpec {
        seed,
        cameras: 2,
        videos_per_camera: 1,
        events: 8,
        width: 160,
        height: 96,
        fps: 10,
        codec: Codec::Mpeg4,
        imbalance: 3.0,
        minutes: 0.5,
        val_fraction: 0.25,
        ..SynthSpec::default()
    }
}

fn events_csv(plan: &SynthPlan) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.csv");
    write_events_csv(&path, &plan.events).unwrap();
    std::fs::read(&path).unwrap()
}

fn first_frame(plan: &SynthPlan) -> Vec<u8> {
    let v = &plan.videos[0];
    let bg = v.background();
    let mut out = vec![0u8; v.cam.width * v.cam.height * 3];
    v.render_frame(&bg, 0, &mut out);
    out
}

#[test]
fn same_seed_gives_identical_events_and_frames() {
    let a = plan(&tiny(7)).unwrap();
    let b = plan(&tiny(7)).unwrap();
    assert_eq!(events_csv(&a), events_csv(&b));
    assert_eq!(first_frame(&a), first_frame(&b));
    let mid = a.videos[1].frame_count() / 2;
    let (bg_a, bg_b) = (a.videos[1].background(), b.videos[1].background());
    let mut fa = vec![0u8; 160 * 96 * 3];
    let mut fb = vec![0u8; 160 * 96 * 3];
    a.videos[1].render_frame(&bg_a, mid, &mut fa);
    b.videos[1].render_frame(&bg_b, mid, &mut fb);
    assert_eq!(fa, fb);
}

#[test]
fn different_seed_gives_different_data() {
    let a = plan(&tiny(7)).unwrap();
    let b = plan(&tiny(8)).unwrap();
    assert_ne!(events_csv(&a), events_csv(&b));
    assert_ne!(first_frame(&a), first_frame(&b));
}

#[test]
fn class_ratio_and_splits_follow_the_spec() {
    let spec = SynthSpec {
        events: 40,
        imbalance: 6.85,
        cameras: 3,
        ..tiny(3)
    };
    let p = plan(&spec).unwrap();
    assert_eq!(p.events.len(), 40);
    let counts = crate::manifest::class_counts(&p.events, 2);
    // round(40 / 7.85) = 5 tail events, the rest ear.
    assert_eq!(counts, vec![35, 5]);
    for e in &p.events {
        let split = e.split.as_deref().unwrap();
        if e.camera.as_deref() == Some("cam2") {
            assert_eq!(split, "test_ood");
        } else {
            assert!(split == "train" || split == "val", "{split}");
        }
        assert!(
            e.duration_s >= 3.0 - 1e-9 && e.duration_s <= 7.0 + 1e-9,
            "{}",
            e.duration_s
        );
        let roi = e.roi.unwrap();
        assert!(
            roi.x + roi.w <= 160 && roi.y + roi.h <= 96 && roi.w >= 2 && roi.h >= 2,
            "{roi:?}"
        );
        let frames = p
            .videos
            .iter()
            .find(|v| v.file_name == e.video.to_str().unwrap())
            .unwrap()
            .frame_count();
        assert!(e.start_s + e.duration_s <= frames as f64 / 10.0 + 1e-9);
    }
    let val_tail = p
        .events
        .iter()
        .filter(|e| e.split.as_deref() == Some("val") && e.class_index == 1)
        .count();
    assert!(val_tail >= 1, "val must hold a minority event");
    let ids: Vec<u32> = p.events.iter().map(|e| e.event_idx).collect();
    assert_eq!(ids, (0..40).collect::<Vec<u32>>());
}

#[test]
fn sucker_mouth_touches_the_labelled_part_during_events() {
    let p = plan(&tiny(11)).unwrap();
    let mut checked = 0;
    for v in &p.videos {
        for ev in &v.sim.events {
            for f in [
                ev.start_frame + 5,
                (ev.start_frame + ev.end_frame) / 2,
                ev.end_frame - 1,
            ] {
                let s = &v.sim.frames[f][ev.sucker];
                let t = &v.sim.frames[f][ev.target];
                let (ks, kt) = (v.calves[ev.sucker].size, v.calves[ev.target].size);
                let mouth = scene::Anatomy::of(s, ks).mouth;
                let an = scene::Anatomy::of(t, kt);
                let ear =
                    [-1.0, 1.0].map(|side| an.ear_point(side, kt, t.ear_flick).minus(mouth).len());
                let tail = an.tail_point(kt).minus(mouth).len();
                let near_ear = ear[0].min(ear[1]);
                match ev.part {
                    Part::Ear => {
                        assert!(near_ear < 0.12 && tail > 0.5, "ear {near_ear} tail {tail}")
                    }
                    Part::Tail => {
                        assert!(tail < 0.12 && near_ear > 0.5, "ear {near_ear} tail {tail}")
                    }
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 8 * 3);
}

#[test]
fn config_yaml_names_the_written_files() {
    let yaml = config_yaml(&tiny(1));
    let v: serde_norway::Value = serde_norway::from_str(&yaml).unwrap();
    assert_eq!(v["data"]["events"].as_str(), Some("events.csv"));
    assert_eq!(
        v["data"]["splits"]["test_ood"].as_str(),
        Some("splits/test_ood.csv")
    );
    assert_eq!(v["model"]["preset"].as_str(), Some("r3d_demo"));
    // The sections parse (unknown keys are errors there) and validate.
    let data: crate::config::DataConfig = serde_norway::from_value(v["data"].clone()).unwrap();
    data.validate().unwrap();
    assert_eq!(data.classes, CLASSES.map(String::from).to_vec());
    let aug: crate::config::AugmentationConfig =
        serde_norway::from_value(v["augmentation"].clone()).unwrap();
    aug.validate().unwrap();
}

#[test]
fn bad_settings_name_the_option() {
    let err = plan(&SynthSpec {
        width: 161,
        ..tiny(1)
    })
    .err()
    .unwrap();
    assert!(err.is_bad_input());
    assert!(
        err.to_string().contains("--resolution") && err.to_string().contains("161x96"),
        "{err}"
    );
    let err = plan(&SynthSpec {
        imbalance: 0.0,
        ..tiny(1)
    })
    .err()
    .unwrap();
    assert!(err.to_string().contains("--imbalance"), "{err}");
}

/// True when the image position of `p` (world) lies inside `roi`, grown by `pad` pixels.
fn in_box(cam: &Camera, p: V2, roi: Roi, pad: f32) -> bool {
    let (u, v) = cam.project(p);
    u >= roi.x as f32 - pad
        && u <= (roi.x + roi.w) as f32 + pad
        && v >= roi.y as f32 - pad
        && v <= (roi.y + roi.h) as f32 + pad
}

/// Asserts no sucker in contact has its mouth inside `roi` during frames `start..end` of `v`.
fn assert_no_contact_in_box(v: &VideoPlan, start: usize, end: usize, roi: Roi, what: &str) {
    for ev in &v.sim.events {
        for f in ev.start_frame.max(start)..ev.end_frame.min(end) {
            let mouth =
                scene::Anatomy::of(&v.sim.frames[f][ev.sucker], v.calves[ev.sucker].size).mouth;
            assert!(
                !in_box(&v.cam, mouth, roi, 2.0),
                "{what}: contact of calf {} at frame {f} inside {roi:?}",
                ev.sucker
            );
        }
    }
}

fn with_background(seed: u64, n: usize) -> SynthSpec {
    SynthSpec {
        background_events: n,
        events: 12,
        ..tiny(seed)
    }
}

#[test]
fn background_events_have_class_none_and_no_contact_in_view() {
    let p = plan(&with_background(21, 9)).unwrap();
    let labelled: Vec<&Event> = p.events.iter().filter(|e| e.class_index < 2).collect();
    let bg: Vec<&Event> = p.events.iter().filter(|e| e.class_index == 2).collect();
    assert_eq!(bg.len(), 9);
    assert_eq!(labelled.len(), 12);
    // Labelled ids come first, background ids continue after them.
    assert!(labelled.iter().all(|e| (e.event_idx as usize) < 12));
    let ids: Vec<u32> = p.events.iter().map(|e| e.event_idx).collect();
    assert_eq!(ids, (0..21).collect::<Vec<u32>>());
    for e in &bg {
        assert_eq!(e.behavior, BACKGROUND_CLASS);
        assert!(
            e.duration_s >= 3.0 - 1e-9 && e.duration_s <= 7.0 + 1e-9,
            "{}",
            e.duration_s
        );
        let split = e.split.as_deref().unwrap();
        if e.camera.as_deref() == Some("cam1") {
            assert_eq!(split, "test_ood");
        } else {
            assert!(split == "train" || split == "val", "{split}");
        }
        let v = p
            .videos
            .iter()
            .find(|v| v.file_name == e.video.to_str().unwrap())
            .unwrap();
        let fps = p.spec.fps as f64;
        let start = (e.start_s * fps).round() as usize;
        let end = ((e.start_s + e.duration_s) * fps).round() as usize;
        assert!(end <= v.frame_count());
        let roi = e.roi.unwrap();
        assert!(roi.x + roi.w <= 160 && roi.y + roi.h <= 96, "{roi:?}");
        assert_no_contact_in_box(v, start, end, roi, &format!("event {}", e.event_idx));
    }
    // The background box follows the contact-box size rule: sides within the range of the
    // labelled boxes' sides (same 1.6 body-length rule, same camera scale).
    let side = |e: &&Event| {
        let r = e.roi.unwrap();
        r.w.max(r.h) as f32
    };
    let max_labelled = labelled.iter().map(side).fold(0.0f32, f32::max);
    assert!(
        bg.iter().all(|e| side(e) <= max_labelled * 1.4),
        "background boxes too large"
    );
}

#[test]
fn background_events_leave_the_labelled_events_and_videos_unchanged() {
    let a = plan(&with_background(4, 0)).unwrap();
    let b = plan(&with_background(4, 6)).unwrap();
    assert_eq!(a.events[..], b.events[..a.events.len()]);
    assert_eq!(first_frame(&a), first_frame(&b));
    assert_eq!(class_names(&a.spec), vec!["ear", "tail"]);
    assert_eq!(class_names(&b.spec), vec!["ear", "tail", "none"]);
    let v: serde_norway::Value = serde_norway::from_str(&config_yaml(&b.spec)).unwrap();
    let data: crate::config::DataConfig = serde_norway::from_value(v["data"].clone()).unwrap();
    assert_eq!(data.classes, vec!["ear", "tail", "none"]);
}

fn long_spec(seed: u64) -> SynthSpec {
    SynthSpec {
        long_video_s: 40.0,
        long_video_size: 64,
        ..tiny(seed)
    }
}

#[test]
fn long_video_truth_matches_its_segments() {
    let p = plan(&long_spec(13)).unwrap();
    let long = p.long.as_ref().unwrap();
    let fps = p.spec.fps as usize;
    // Segments tile the video, start and end with a gap, and alternate gap / bout.
    let mut t = 0;
    for (i, s) in long.segments.iter().enumerate() {
        assert_eq!(s.start_frame, t, "segment {i}");
        t += s.frames;
        assert_eq!(s.bout.is_some(), i % 2 == 1, "segment {i}");
        assert_eq!(s.crop.w, s.crop.h, "square crop");
        let pen = &long.pens[s.pen];
        assert!(s.crop.x + s.crop.w <= 160 && s.crop.y + s.crop.h <= 96);
        assert!(s.first_frame + s.frames <= pen.frame_count());
        match s.bout {
            None => {
                assert!(
                    s.frames >= 3 * fps && s.frames <= 15 * fps,
                    "gap {}",
                    s.frames
                );
                assert_no_contact_in_box(
                    pen,
                    s.first_frame,
                    s.first_frame + s.frames,
                    s.crop,
                    "gap",
                );
            }
            Some((part, pre, contact)) => {
                assert!(pre <= 15 && s.frames - pre - contact <= 15);
                // The contact stretch is exactly a simulated event of that class.
                let start = s.first_frame + pre;
                assert!(pen.sim.events.iter().any(|e| e.start_frame == start
                    && e.end_frame == start + contact
                    && e.part == part));
            }
        }
    }
    assert_eq!(t, long.frame_count());
    assert!(long.segments.last().unwrap().bout.is_none());
    assert!(t >= 40 * fps, "{t} frames");
    // One truth event per bout segment, at the contact's time in the close-up video.
    let bouts: Vec<&Segment> = long.segments.iter().filter(|s| s.bout.is_some()).collect();
    assert_eq!(long.truth.len(), bouts.len());
    assert!(bouts.len() >= 2);
    for (e, s) in long.truth.iter().zip(&bouts) {
        let (part, pre, contact) = s.bout.unwrap();
        assert_eq!(e.video.to_str(), Some(CLOSEUP_FILE));
        assert!((e.start_s - (s.start_frame + pre) as f64 / fps as f64).abs() < 1e-9);
        assert!((e.duration_s - contact as f64 / fps as f64).abs() < 1e-9);
        assert!(e.duration_s >= 3.0 - 1e-9 && e.duration_s <= 7.0 + 1e-9);
        assert_eq!(e.behavior, if part == Part::Ear { "ear" } else { "tail" });
    }
    // Held-out pens are not the dataset's pens.
    for pen in &long.pens {
        for v in &p.videos {
            assert_ne!(pen.sim.frames[0][0].pos, v.sim.frames[0][0].pos);
        }
    }
}

fn long_frames_digest(p: &SynthPlan) -> (usize, u64) {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let mut n = 0;
    p.long
        .as_ref()
        .unwrap()
        .render_frames(|f| {
            assert_eq!(f.len(), 64 * 64 * 3);
            f.hash(&mut h);
            n += 1;
            Ok(())
        })
        .unwrap();
    (n, h.finish())
}

#[test]
fn long_video_is_a_pure_function_of_the_seed() {
    let spec = SynthSpec {
        long_video_s: 12.0,
        ..long_spec(5)
    };
    let a = plan(&spec).unwrap();
    let b = plan(&spec).unwrap();
    let c = plan(&SynthSpec {
        seed: 6,
        ..spec.clone()
    })
    .unwrap();
    let (la, lb) = (a.long.as_ref().unwrap(), b.long.as_ref().unwrap());
    assert_eq!(la.segments, lb.segments);
    assert_eq!(la.truth, lb.truth);
    assert_eq!(la.segments_csv(), lb.segments_csv());
    let da = long_frames_digest(&a);
    assert_eq!(da.0, la.frame_count());
    assert_eq!(da, long_frames_digest(&b));
    assert_ne!(da.1, long_frames_digest(&c).1);
    // The dataset itself does not depend on the long video.
    let plain = plan(&SynthSpec {
        long_video_s: 0.0,
        ..spec
    })
    .unwrap();
    assert!(plain.long.is_none());
    assert_eq!(plain.events, a.events);
}

#[test]
fn bad_extra_settings_name_the_option() {
    for (spec, option) in [
        (
            SynthSpec {
                long_video_s: 5.0,
                ..tiny(1)
            },
            "--long-video",
        ),
        (
            SynthSpec {
                long_video_s: f64::NAN,
                ..tiny(1)
            },
            "--long-video",
        ),
        (
            SynthSpec {
                long_video_size: 63,
                ..tiny(1)
            },
            "--long-video-size",
        ),
        (
            SynthSpec {
                background_events: 200_000,
                ..tiny(1)
            },
            "--background-events",
        ),
    ] {
        let err = plan(&spec).err().unwrap();
        assert!(
            err.is_bad_input() && err.to_string().contains(option),
            "{err}"
        );
    }
}
