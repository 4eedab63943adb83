//! `ethos eval-events`: bout-level scores of hand-made event files, and bad input.

use std::path::Path;
use std::process::Command;

fn ethos() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ethos"))
}

fn write(path: &Path, rows: &[(u32, &str, f64, f64, &str)]) {
    let mut s = String::from("event_idx,video,start_s,duration_s,behavior,score\n");
    for (i, v, start, dur, b) in rows {
        s.push_str(&format!("{i},{v},{start},{dur},{b},0.9\n"));
    }
    std::fs::write(path, s).unwrap();
}

fn eval(pred: &Path, truth: &Path, tolerance: &str) -> serde_json::Value {
    let out = ethos()
        .args(["eval-events", "--tolerance", tolerance, "--pred"])
        .arg(pred)
        .arg("--truth")
        .arg(truth)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn scores_bouts_with_tolerance() {
    let dir = tempfile::tempdir().unwrap();
    let truth = dir.path().join("truth.csv");
    let pred = dir.path().join("pred.csv");
    write(
        &truth,
        &[
            (1, "a.mp4", 10.0, 4.0, "ear"),
            (2, "a.mp4", 30.0, 3.0, "ear"),
            (3, "b.mp4", 5.0, 5.0, "tail"),
        ],
    );
    // Perfect copy: every score is 1.
    let e = eval(&truth, &truth, "0");
    assert_eq!(e["bouts"]["ear"]["f1"], 1.0);
    assert_eq!(e["bouts"]["tail"]["f1"], 1.0);
    assert_eq!(e["frame_accuracy"], 1.0);
    // Second ear bout late by 0.5 s (no overlap), the tail bout on the wrong video.
    write(
        &pred,
        &[
            (1, "a.mp4", 11.0, 2.0, "ear"),
            (2, "a.mp4", 33.5, 2.0, "ear"),
            (3, "a.mp4", 5.0, 5.0, "tail"),
        ],
    );
    let e = eval(&pred, &truth, "0");
    assert_eq!(e["bouts"]["ear"]["matched"], 1);
    assert_eq!(e["bouts"]["tail"]["matched"], 0);
    let e = eval(&pred, &truth, "0.5");
    assert_eq!(e["bouts"]["ear"]["matched"], 2);
    assert_eq!(e["bouts"]["ear"]["f1"], 1.0);
    assert_eq!(e["bouts"]["tail"]["f1"], 0.0);
}

#[test]
fn unknown_class_in_predictions_exits_2_naming_file_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let truth = dir.path().join("truth.csv");
    let pred = dir.path().join("pred.csv");
    write(&truth, &[(1, "a.mp4", 10.0, 4.0, "ear")]);
    write(&pred, &[(1, "a.mp4", 10.0, 4.0, "nose")]);
    let out = ethos()
        .args(["eval-events", "--pred"])
        .arg(&pred)
        .arg("--truth")
        .arg(&truth)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pred.csv") && err.contains("nose"), "{err}");
}

#[test]
fn a_prediction_file_without_events_scores_zero_recall() {
    let dir = tempfile::tempdir().unwrap();
    let truth = dir.path().join("truth.csv");
    let pred = dir.path().join("pred.csv");
    write(&truth, &[(1, "a.mp4", 10.0, 4.0, "ear")]);
    // What `ethos predict` writes when it finds no bout: the header only.
    write(&pred, &[]);
    let e = eval(&pred, &truth, "1");
    assert_eq!(e["bouts"]["ear"]["predicted"], 0);
    assert_eq!(e["bouts"]["ear"]["truth"], 1);
    assert_eq!(e["bouts"]["ear"]["recall"], 0.0);
    // A labelled file without events is still an error.
    let out = ethos()
        .args(["eval-events", "--pred"])
        .arg(&truth)
        .arg("--truth")
        .arg(&pred)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
