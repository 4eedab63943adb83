use super::*;

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
