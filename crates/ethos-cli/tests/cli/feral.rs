//! `ethos export-feral` end to end on a small synthetic dataset.

use std::path::Path;
use std::process::Command;

fn ethos() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ethos"))
}

/// (width, height, decoded frame count) by ffprobe decoding every frame.
fn ffprobe_counted(path: &Path) -> (u32, u32, usize) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-count_frames",
            "-show_entries",
        ])
        .args(["stream=width,height,nb_read_frames", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let f: Vec<&str> = text.trim().split(',').collect();
    assert_eq!(f.len(), 3, "ffprobe output {text:?}");
    (
        f[0].parse().unwrap(),
        f[1].parse().unwrap(),
        f[2].parse().unwrap(),
    )
}

#[test]
fn export_feral_clips_json_and_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("D");
    let e = tmp.path().join("E");
    let st = ethos()
        .args([
            "synth",
            "--events",
            "12",
            "--resolution",
            "160x96",
            "--minutes",
            "0.5",
        ])
        .args(["--imbalance", "2", "--out"])
        .arg(&d)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let export = || {
        ethos()
            .arg("export-feral")
            .arg("--config")
            .arg(d.join("config.yaml"))
            .arg("--out")
            .arg(&e)
            .args(["--size", "64", "--jobs", "2"])
            .output()
            .unwrap()
    };
    let out = export();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let json_path = e.join("feral.json");
    let py = Command::new("python3")
        .args(["-c", "import json,sys; json.load(open(sys.argv[1]))"])
        .arg(&json_path)
        .status()
        .unwrap();
    assert!(py.success(), "python json.load failed");

    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    assert_eq!(
        j["class_names"],
        serde_json::json!({"0": "ear", "1": "tail"})
    );
    assert_eq!(j["is_multilabel"], serde_json::json!(false));
    let splits = j["splits"].as_object().unwrap();
    let mut keys: Vec<&String> = splits.keys().collect();
    keys.sort();
    assert_eq!(keys, ["test", "train", "val"]);
    let names: Vec<String> = splits
        .values()
        .flat_map(|v| {
            v.as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(names.len(), 12);
    let labels = j["labels"].as_object().unwrap();
    assert_eq!(labels.len(), 12);
    for name in &names {
        let (w, h, n) = ffprobe_counted(&e.join("videos").join(name));
        assert_eq!((w, h), (64, 64), "{name}");
        let lab = labels[name].as_array().unwrap();
        assert!(n > 0);
        assert_eq!(lab.len(), n, "{name}: label length vs decoded frames");
        let class = if name.ends_with("_ear.mp4") { 0 } else { 1 };
        assert!(lab.iter().all(|v| v.as_u64() == Some(class)), "{name}");
    }

    let again = export();
    assert!(again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert_eq!(err.matches("skipped").count(), 12, "{err}");
}

#[test]
fn export_feral_bad_config_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("bad.yaml");
    std::fs::write(&cfg, "data:\n  no_such_key: 1\n").unwrap();
    let out = ethos()
        .args(["export-feral", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(tmp.path().join("E"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
