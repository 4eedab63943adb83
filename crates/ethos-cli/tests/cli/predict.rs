//! `ethos predict` through the real binary: a tiny model trained on `ethos synth` data runs over the
//! synthetic long videos. Kill -9 and rerun gives the same outputs as one uninterrupted run without
//! redoing finished videos; shards cover a list exactly once; a corrupt video is reported and does not
//! stop the others.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::common;
use common::{ethos, ok};

/// A synthetic dataset and a checkpoint of a tiny model trained on it for one epoch (built once).
fn trained() -> &'static (PathBuf, PathBuf) {
    static DIR: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ethos-predict-cli-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        common::synth_small(&dir.join("data"), &["--imbalance", "2", "--seed", "5"]);
        let run = dir.join("run");
        let sets = [
            "data.input_size=32",
            "data.cache_short_side=40",
            "data.num_frames=4",
            "data.fps=4",
            "data.batch_size=4",
            "model.arch=mvit",
            "model.preset=mvit_demo",
            "train.epochs=1",
            "train.device=cpu",
        ];
        let mut cmd = ethos();
        cmd.args(["train", "--config"])
            .arg(dir.join("data/config.yaml"));
        for s in sets {
            cmd.args(["--set", s]);
        }
        cmd.arg("--set")
            .arg(format!("train.run_dir={}", run.display()));
        ok(&cmd.output().unwrap());
        let ckpt = if run.join("best.ckpt").is_file() {
            run.join("best.ckpt")
        } else {
            run.join("last.ckpt")
        };
        (dir.join("data"), ckpt)
    })
}

fn videos(data: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(data.join("videos"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

fn predict(out: &Path, extra: &[&str], videos: &[PathBuf]) -> Command {
    let (_, ckpt) = trained();
    let mut c = ethos();
    c.args(["predict", "--checkpoint"])
        .arg(ckpt)
        .arg("--out")
        .arg(out);
    c.args([
        "--window",
        "2",
        "--stride",
        "1",
        "--batch",
        "4",
        "--min-duration",
        "0",
    ]);
    c.args(extra).args(videos);
    c
}

fn outputs(dir: &Path, videos: &[PathBuf]) -> Vec<(String, String)> {
    let mut v = Vec::new();
    for video in videos {
        let name = video.file_name().unwrap().to_string_lossy().into_owned();
        for ext in ["windows.csv", "events.csv"] {
            let p = dir.join(format!("{name}.{ext}"));
            v.push((
                p.display().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            ));
        }
    }
    v
}

#[test]
fn kill_9_then_rerun_gives_the_uninterrupted_outputs_and_skips_finished_videos() {
    let (data, _) = trained();
    let vids = videos(data);
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full");
    let err = ok(&predict(&full, &[], &vids).output().unwrap());
    assert!(err.contains("0 failed"), "{err}");
    let reference = outputs(&full, &vids);
    // Every window row has one probability per class, summing to 1.
    let windows = &reference[0].1;
    let mut lines = windows.lines();
    assert_eq!(lines.next().unwrap(), "start_s,end_s,prob_ear,prob_tail");
    let rows: Vec<&str> = lines.collect();
    assert!(
        rows.len() > 20,
        "a 30 s video at a 1 s stride has ~29 windows: {}",
        rows.len()
    );
    for r in &rows {
        let f: Vec<f64> = r.split(',').map(|x| x.parse().unwrap()).collect();
        assert!((f[2] + f[3] - 1.0).abs() < 1e-4, "{r}");
        assert!((f[1] - f[0] - 2.0).abs() < 1e-9, "{r}");
    }

    let cut = tmp.path().join("cut");
    let mut child = predict(&cut, &[], &vids)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let first_done = cut.join(format!(
        "{}.done.json",
        vids[0].file_name().unwrap().to_string_lossy()
    ));
    let t0 = Instant::now();
    while !first_done.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "first video never finished"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let err = ok(&predict(&cut, &[], &vids).output().unwrap());
    let name0 = vids[0].display().to_string();
    assert!(
        err.contains(&format!("{name0}: outputs complete, skipped")),
        "{err}"
    );
    let again: Vec<String> = outputs(&cut, &vids).into_iter().map(|(_, t)| t).collect();
    let want: Vec<String> = reference.into_iter().map(|(_, t)| t).collect();
    assert_eq!(
        again, want,
        "resumed outputs differ from the uninterrupted run"
    );
    // No temporary files are left behind.
    for e in std::fs::read_dir(&cut).unwrap() {
        let n = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!n.ends_with(".tmp"), "{n}");
    }
}

#[test]
fn shards_cover_the_list_exactly_once() {
    let (data, _) = trained();
    let vids = videos(data);
    let tmp = tempfile::tempdir().unwrap();
    let list = tmp.path().join("videos.txt");
    let text: String = vids.iter().map(|v| format!("{}\n", v.display())).collect();
    std::fs::write(&list, format!("# all synthetic videos\n{text}")).unwrap();
    let out = tmp.path().join("out");
    let mut seen = Vec::new();
    for i in 0..3 {
        let shard = format!("{i}/3");
        let o = predict(
            &out,
            &["--list", list.to_str().unwrap(), "--shard", &shard],
            &[],
        )
        .output()
        .unwrap();
        ok(&o);
        let s: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.join(format!("summary.shard-{i}-of-3.json"))).unwrap(),
        )
        .unwrap();
        for v in s["per_video"].as_array().unwrap() {
            assert_eq!(v["status"], "ok");
            seen.push(v["video"].as_str().unwrap().to_string());
        }
    }
    seen.sort();
    let mut want: Vec<String> = vids.iter().map(|v| v.display().to_string()).collect();
    want.sort();
    assert_eq!(seen, want);
}

#[test]
fn a_corrupt_video_is_reported_and_the_others_still_run() {
    let (data, _) = trained();
    let vids = videos(data);
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("broken.mp4");
    std::fs::write(&bad, b"this is not a video").unwrap();
    let list = vec![vids[0].clone(), bad.clone(), vids[1].clone()];
    let out = tmp.path().join("out");
    let o = predict(&out, &[], &list).output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("broken.mp4"), "{err}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["ok"], 2);
    assert_eq!(s["failed"], 1);
    let failed = &s["per_video"][1];
    assert_eq!(failed["status"], "failed");
    assert!(failed["error"].as_str().unwrap().contains("broken.mp4"));
    assert!(
        out.join(format!(
            "{}.events.csv",
            vids[1].file_name().unwrap().to_string_lossy()
        ))
        .is_file()
    );
}

fn summary_of(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn camera_rois_from_the_config_crop_each_camera_and_roi_overrides_them() {
    let (data, _) = trained();
    let vids = videos(data);
    let named = |prefix: &str| {
        vids.iter()
            .find(|v| v.file_name().unwrap().to_string_lossy().starts_with(prefix))
            .unwrap()
            .clone()
    };
    let (cam0, cam1) = (named("cam0_"), named("cam1_"));
    let tmp = tempfile::tempdir().unwrap();
    // Copies under names the manifest does not list: their camera comes from the file name.
    let renamed = tmp.path().join("cam1_copy.mp4");
    std::fs::copy(&cam1, &renamed).unwrap();
    let door = tmp.path().join("door.mp4");
    std::fs::copy(&cam0, &door).unwrap();
    let sets = [
        "--set",
        "predict.camera_rois.cam0=[0, 0, 80, 96]",
        "--set",
        "predict.camera_rois.cam1=[80, 0, 80, 96]",
    ];
    let out = tmp.path().join("out");
    ok(&predict(
        &out,
        &sets,
        &[cam0.clone(), cam1.clone(), renamed.clone(), door.clone()],
    )
    .output()
    .unwrap());
    let s = summary_of(&out);
    let per: Vec<(serde_json::Value, serde_json::Value)> = s["per_video"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            assert_eq!(v["status"], "ok", "{v}");
            (v["camera"].clone(), v["roi"].clone())
        })
        .collect();
    let roi = |x: u32| serde_json::json!({"x": x, "y": 0, "w": 80, "h": 96});
    assert_eq!(per[0], (serde_json::json!("cam0"), roi(0)));
    assert_eq!(per[1], (serde_json::json!("cam1"), roi(80)));
    assert_eq!(per[2], (serde_json::json!("cam1"), roi(80)));
    assert_eq!(per[3], (serde_json::json!("door"), serde_json::Value::Null));
    let read = |dir: &Path, v: &Path| {
        let name = v.file_name().unwrap().to_string_lossy().into_owned();
        std::fs::read_to_string(dir.join(format!("{name}.windows.csv"))).unwrap()
    };
    // Same video, same camera ROI: same probabilities; the uncropped copy of cam0 differs.
    assert_eq!(read(&out, &cam1), read(&out, &renamed));
    assert_ne!(read(&out, &cam0), read(&out, &door));

    // --roi overrides the per-camera ROIs for every video.
    let over = tmp.path().join("override");
    let mut extra = sets.to_vec();
    extra.extend(["--roi", "0,0,160,96"]);
    ok(&predict(&over, &extra, std::slice::from_ref(&cam0))
        .output()
        .unwrap());
    let v = &summary_of(&over)["per_video"][0];
    assert_eq!(v["camera"], serde_json::Value::Null);
    assert_eq!(
        v["roi"],
        serde_json::json!({"x": 0, "y": 0, "w": 160, "h": 96})
    );
    assert_eq!(read(&over, &cam0), read(&out, &door));

    // A bad ROI is an input error naming the key.
    let o = predict(
        &tmp.path().join("bad"),
        &["--set", "predict.camera_rois.cam0=[0, 0, 0, 96]"],
        &[cam0],
    )
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("predict.camera_rois.cam0"), "{err}");
}

#[test]
fn a_video_path_with_commas_quotes_and_spaces_round_trips_through_the_csvs() {
    let (data, _) = trained();
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("my videos");
    std::fs::create_dir_all(&folder).unwrap();
    let video = folder.join("pen, \"A\".mp4");
    std::fs::copy(&videos(data)[0], &video).unwrap();
    let out = dir.path().join("out");
    // Every window counts, so the events CSV has rows that name the video.
    ok(
        &predict(&out, &["--threshold", "0"], std::slice::from_ref(&video))
            .output()
            .unwrap(),
    );
    let events = out.join("pen, \"A\".mp4.events.csv");
    let mut r = csv::Reader::from_path(&events).unwrap();
    let headers = r.headers().unwrap().clone();
    let col = headers.iter().position(|h| h == "video").unwrap();
    let rows: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
    assert!(!rows.is_empty(), "no events in {}", events.display());
    for row in &rows {
        assert_eq!(row.len(), headers.len());
        assert_eq!(&row[col], video.to_str().unwrap());
    }
    // ethos's own events reader (eval-events) reads it back: scored against itself, every bout
    // matches.
    let scored = ethos()
        .args(["eval-events", "--pred"])
        .arg(&events)
        .arg("--truth")
        .arg(&events)
        .output()
        .unwrap();
    ok(&scored);
    let json: serde_json::Value = serde_json::from_slice(&scored.stdout).unwrap();
    assert_eq!(json["macro_bout_f1"], 1.0, "{json}");
}
