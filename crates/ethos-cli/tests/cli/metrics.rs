//! `ethos metrics`: scores a per-sample CSV built from the shared sklearn reference case, and
//! rejects bad CSVs with exit code 2 and a message naming file, line, column and value.

use std::path::{Path, PathBuf};
use std::process::Command;

fn ethos() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ethos"))
}

fn reference() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/reference/metrics/metrics.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Writes the case as `per_sample_loss.csv` rows (class names `ear`, `tail`).
fn write_case(dir: &Path, case: &serde_json::Value) -> PathBuf {
    let mut s = String::from("split,event_idx,loss,predicted,true,correct,prob_ear,prob_tail\n");
    let y = case["y_true"].as_array().unwrap();
    let score = case["y_score"].as_array().unwrap();
    for (i, (t, p)) in y.iter().zip(score).enumerate() {
        let p = p.as_f64().unwrap();
        let truth = if t.as_u64() == Some(1) { "tail" } else { "ear" };
        let pred = if p > 0.5 { "tail" } else { "ear" };
        // 17 significant digits round-trip every f64 exactly.
        s.push_str(&format!(
            "val,{i},0.5,{pred},{truth},{},{:.17e},{:.17e}\n",
            pred == truth,
            1.0 - p,
            p
        ));
    }
    let path = dir.join("per_sample_loss.csv");
    std::fs::write(&path, s).unwrap();
    path
}

#[test]
fn metrics_of_reference_cases_match_sklearn() {
    let doc = reference();
    let dir = tempfile::tempdir().unwrap();
    for case in doc["cases"].as_array().unwrap() {
        let path = write_case(dir.path(), case);
        let out = ethos()
            .args(["metrics", "--predictions"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let r = &case["metrics"];
        let close = |key: &str, want: f64| {
            let v = got[key]
                .as_f64()
                .unwrap_or_else(|| panic!("{key} missing in {got}"));
            assert!(
                (v - want).abs() <= 1e-9,
                "{} {key}: {v} vs {want}",
                case["name"]
            );
        };
        for (k, class) in ["ear", "tail"].iter().enumerate() {
            close(
                &format!("precision_{class}"),
                r["precision"][k].as_f64().unwrap(),
            );
            close(&format!("recall_{class}"), r["recall"][k].as_f64().unwrap());
            close(&format!("f1_{class}"), r["f1"][k].as_f64().unwrap());
            close(
                &format!("support_{class}"),
                r["support"][k].as_f64().unwrap(),
            );
        }
        close("macro_f1", r["macro_f1"].as_f64().unwrap());
        close("accuracy", r["accuracy"].as_f64().unwrap());
        close("auc_tail", r["roc_auc"].as_f64().unwrap());
        close("ap_tail", r["average_precision"].as_f64().unwrap());
        close("loss", 0.5);
        assert_eq!(got["confusion"], r["confusion_matrix"]);
        assert_eq!(got["classes"], serde_json::json!(["ear", "tail"]));
    }
}

#[test]
fn explicit_class_order_and_absent_class() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other_tool.csv");
    std::fs::write(
        &path,
        "id,prob_a,prob_b,prob_c,true\n1,0.7,0.2,0.1,a\n2,0.2,0.7,0.1,b\n3,0.6,0.3,0.1,b\n",
    )
    .unwrap();
    let out = ethos()
        .args(["metrics", "--classes", "c,b,a", "--predictions"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["classes"], serde_json::json!(["c", "b", "a"]));
    assert_eq!(
        got["confusion"],
        serde_json::json!([[0, 0, 0], [0, 1, 1], [0, 0, 1]])
    );
    assert!(got["auc_c"].is_null() && got["ap_c"].is_null());
    assert!(got["loss"].is_null());
}

#[test]
fn bad_csv_exits_2_naming_file_line_column_value() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "true,prob_ear,prob_tail\near,0.9,0.1\ntail,0.3,abc\n",
            vec!["bad.csv:3", "prob_tail", "abc"],
        ),
        (
            "true,prob_ear,prob_tail\near,0.9,0.1\nmane,0.3,0.7\n",
            vec!["bad.csv:3", "unknown class `mane`"],
        ),
        (
            "label,prob_ear\near,1\n",
            vec!["bad.csv", "missing column `true`"],
        ),
        (
            "split,true,prob_ear,prob_tail\ntrain,ear,0.9,0.1\nval,tail,0.3,0.7\n",
            vec!["several splits", "--split"],
        ),
        ("true,prob_ear,prob_tail\n", vec!["no prediction rows"]),
    ];
    for (text, needles) in cases {
        let path = dir.path().join("bad.csv");
        std::fs::write(&path, text).unwrap();
        let out = ethos()
            .args(["metrics", "--predictions"])
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text:?}: {stderr}");
        for n in needles {
            assert!(stderr.contains(n), "{text:?}: `{n}` not in {stderr}");
        }
    }
    let out = ethos()
        .args(["metrics", "--predictions", "/nonexistent/p.csv"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let path = dir.path().join("ok.csv");
    std::fs::write(&path, "true,prob_ear,prob_tail\near,0.9,0.1\n").unwrap();
    let out = ethos()
        .args(["metrics", "--classes", "ear,ear", "--predictions"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
