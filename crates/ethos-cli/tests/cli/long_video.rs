//! The long-video path end to end through the real binary at tiny sizes: `ethos synth` with
//! background events and a long close-up video, a one-epoch model on the three classes,
//! `ethos predict` over the close-up video (`none` a background class) and `ethos eval-events`
//! against its ground truth. Checks that the outputs are consistent with each other and with the
//! synth plan; the learned bout F1 is measured by `ethos demo`, not here.

use std::path::Path;

use crate::common;
use common::{ethos, ok, tmp};

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Rows of a CSV as maps from column name to value.
fn csv_rows(text: &str) -> Vec<std::collections::HashMap<String, String>> {
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    lines
        .map(|l| {
            header
                .iter()
                .cloned()
                .zip(l.split(',').map(str::to_string))
                .collect()
        })
        .collect()
}

fn num(row: &std::collections::HashMap<String, String>, key: &str) -> f64 {
    row[key]
        .parse()
        .unwrap_or_else(|_| panic!("{key} = {:?}", row[key]))
}

#[test]
fn synth_long_video_predict_and_eval_events_agree() {
    let dir = tmp("long-video-cli", "all");
    let data = dir.join("data");
    let out = ethos()
        .args(["synth", "--out"])
        .arg(&data)
        .args([
            "--events",
            "12",
            "--background-events",
            "6",
            "--long-video",
            "30",
            "--long-video-size",
            "64",
            "--resolution",
            "160x96",
            "--fps",
            "10",
            "--minutes",
            "0.5",
            "--imbalance",
            "2",
            "--codec",
            "mpeg4",
            "--seed",
            "3",
        ])
        .output()
        .unwrap();
    let err = ok(&out);
    assert!(err.contains("long video"), "{err}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    // Background events: class `none`, listed in the config's classes and the events CSV.
    let config = read(&data.join("config.yaml"));
    assert!(config.contains("classes: [ear, tail, none]"), "{config}");
    let events = csv_rows(&read(&data.join("events.csv")));
    let none = events.iter().filter(|r| r["behavior"] == "none").count();
    assert_eq!(none, 6);
    assert_eq!(events.len(), 18);
    assert!(
        events
            .iter()
            .all(|r| !r["split"].is_empty() && !r["roi_w"].is_empty())
    );

    // The long video, its ground truth and its segment list agree with each other.
    let long = &summary["long_video"];
    let video = data.join("long/closeup.mp4");
    let truth_path = data.join("long/closeup.events.csv");
    let truth = csv_rows(&read(&truth_path));
    let segments = csv_rows(&read(&data.join("long/closeup.segments.csv")));
    let bouts: Vec<_> = segments.iter().filter(|s| s["kind"] != "none").collect();
    assert!(!truth.is_empty());
    assert_eq!(truth.len(), bouts.len());
    let n_true = |c: &str| truth.iter().filter(|r| r["behavior"] == c).count() as u64;
    assert_eq!(long["bouts"]["ear"].as_u64(), Some(n_true("ear")));
    assert_eq!(long["bouts"]["tail"].as_u64(), Some(n_true("tail")));
    for (t, s) in truth.iter().zip(&bouts) {
        assert_eq!(t["video"], "closeup.mp4");
        assert_eq!(t["behavior"], s["kind"]);
        assert!((num(t, "start_s") - num(s, "contact_start_s")).abs() < 1e-3);
        assert!((num(t, "duration_s") - num(s, "contact_duration_s")).abs() < 1e-3);
        // The contact lies inside its segment.
        assert!(num(t, "start_s") >= num(s, "start_s") - 1e-3);
        assert!(
            num(t, "start_s") + num(t, "duration_s")
                <= num(s, "start_s") + num(s, "duration_s") + 1e-3
        );
    }
    let seconds = long["seconds"].as_f64().unwrap();
    let last = segments.last().unwrap();
    assert!((num(last, "start_s") + num(last, "duration_s") - seconds).abs() < 1e-3);
    assert!(seconds >= 30.0, "{seconds}");
    // Seed 3 gives one bout of each class (the synth plan is deterministic).
    assert!(n_true("ear") >= 1 && n_true("tail") >= 1, "{truth:?}");
    let probe: serde_json::Value =
        serde_json::from_slice(&ok_out(ethos().arg("probe").arg(&video))).unwrap();
    assert_eq!(probe["width"], 64);
    assert_eq!(probe["height"], 64);
    assert_eq!(
        probe["frame_count"].as_u64(),
        long["frames"].as_u64(),
        "{probe}"
    );

    // A one-epoch model on the three classes.
    let run = dir.join("run");
    let mut train = ethos();
    train
        .args(["train", "--config"])
        .arg(data.join("config.yaml"));
    for s in [
        "data.input_size=32",
        "data.cache_short_side=40",
        "data.num_frames=4",
        "data.fps=4",
        "data.batch_size=4",
        "model.arch=r3d_18",
        "model.preset=r3d_demo",
        "train.epochs=1",
        "train.device=cpu",
    ] {
        train.args(["--set", s]);
    }
    train
        .arg("--set")
        .arg(format!("train.run_dir={}", run.display()));
    ok(&train.output().unwrap());
    let ckpt = ["best.ckpt", "last.ckpt"]
        .iter()
        .map(|f| run.join(f))
        .find(|p| p.is_file())
        .expect("a checkpoint");

    // Predict over the close-up video: one probability per class per window, `none` never an event.
    let pred_dir = dir.join("pred");
    let err = ok(&ethos()
        .args(["predict", "--checkpoint"])
        .arg(&ckpt)
        .arg("--out")
        .arg(&pred_dir)
        .args([
            "--stride",
            "0.5",
            "--threshold",
            "ear=0.3,tail=0.3",
            "--background",
            "none",
            "--min-duration",
            "0",
        ])
        .arg(&video)
        .output()
        .unwrap());
    assert!(err.contains("1 ok"), "{err}");
    let windows = read(&pred_dir.join("closeup.mp4.windows.csv"));
    assert_eq!(
        windows.lines().next(),
        Some("start_s,end_s,prob_ear,prob_tail,prob_none")
    );
    let rows = csv_rows(&windows);
    // Window = 4 frames at 4 fps = 1 s, stride 0.5 s over the whole video.
    let expected = ((seconds - 1.0) / 0.5).floor() as usize + 1;
    assert!(
        rows.len().abs_diff(expected) <= 1,
        "{} windows, expected about {expected}",
        rows.len()
    );
    for r in &rows {
        let p = num(r, "prob_ear") + num(r, "prob_tail") + num(r, "prob_none");
        assert!((p - 1.0).abs() < 1e-3, "{r:?}");
    }
    let pred_path = pred_dir.join("closeup.mp4.events.csv");
    let pred = csv_rows(&read(&pred_path));
    assert!(
        pred.iter()
            .all(|r| r["behavior"] == "ear" || r["behavior"] == "tail")
    );
    // Every predicted bout is the union of windows at or above its class threshold.
    for p in &pred {
        let (s, e) = (num(p, "start_s"), num(p, "start_s") + num(p, "duration_s"));
        let key = format!("prob_{}", p["behavior"]);
        assert!(
            rows.iter().any(|w| {
                let c = 0.5 * (num(w, "start_s") + num(w, "end_s"));
                c >= s - 1e-6 && c <= e + 1e-6 && num(w, &key) >= 0.3
            }),
            "{p:?}"
        );
    }

    // eval-events: the counts are those of the two files; predict's absolute video path matches
    // the truth's `closeup.mp4`.
    let eval: serde_json::Value = serde_json::from_slice(&ok_out(
        ethos()
            .args(["eval-events", "--classes", "ear,tail", "--pred"])
            .arg(&pred_path)
            .arg("--truth")
            .arg(&truth_path),
    ))
    .unwrap();
    for c in ["ear", "tail"] {
        let b = &eval["bouts"][c];
        assert_eq!(b["truth"].as_u64(), Some(n_true(c)), "{eval}");
        let n_pred = pred.iter().filter(|r| r["behavior"] == c).count() as u64;
        assert_eq!(b["predicted"].as_u64(), Some(n_pred), "{eval}");
        assert!(b["matched"].as_u64().unwrap() <= n_pred.min(n_true(c)));
    }
    // The truth itself, listed under predict's absolute path, scores perfectly.
    let abs_truth = dir.join("abs_truth.csv");
    let text = read(&truth_path).replace(",closeup.mp4,", &format!(",{},", video.display()));
    std::fs::write(&abs_truth, text).unwrap();
    let eval: serde_json::Value = serde_json::from_slice(&ok_out(
        ethos()
            .args([
                "eval-events",
                "--classes",
                "ear,tail",
                "--tolerance",
                "0",
                "--pred",
            ])
            .arg(&abs_truth)
            .arg("--truth")
            .arg(&truth_path),
    ))
    .unwrap();
    assert_eq!(eval["macro_bout_f1"], 1.0, "{eval}");
    assert_eq!(eval["frame_accuracy"], 1.0, "{eval}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `cmd`, asserts success and returns its stdout.
fn ok_out(cmd: &mut std::process::Command) -> Vec<u8> {
    let out = cmd.output().unwrap();
    ok(&out);
    out.stdout
}
