//! `ethos model ssl-step` on the shared `vjepa2_ssl_tiny` case (every output within the reference
//! tolerance) and on bad input: a missing mask key, masks that do not fit the video, and a config that
//! is not V-JEPA 2 all exit with code 2 and name the key or file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tch::{Kind, Tensor};

fn reference() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/vjepa2_ssl_tiny")
}

fn ssl_step(config: &Path, weights: &Path, input: &Path, output: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ethos"))
        .args(["model", "ssl-step", "--config"])
        .arg(config)
        .arg("--weights")
        .arg(weights)
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(output)
        .output()
        .expect("run ethos")
}

fn read(path: &Path) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(path)
        .expect("safetensors")
        .into_iter()
        .collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn ssl_step_reproduces_the_shared_case() {
    let r = reference();
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("out.safetensors");
    let out = ssl_step(
        &r.join("config.json"),
        &r.join("weights.safetensors"),
        &r.join("io.safetensors"),
        &out_path,
    );
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(summary["group_losses"].as_array().map(Vec::len), Some(2));
    let port = read(&out_path);
    let reference = read(&r.join("io.safetensors"));
    let mut compared = 0;
    for (name, want) in &reference {
        if name == "pixel_values_videos" || name.contains("_mask.") {
            continue;
        }
        let got = port
            .get(name)
            .unwrap_or_else(|| panic!("output lacks `{name}`"));
        assert_eq!(got.size(), want.size(), "shape of {name}");
        let (g, w) = (got.to_kind(Kind::Double), want.to_kind(Kind::Double));
        let excess = ((&g - &w).abs() - (w.abs() * 1e-4 + 1e-4))
            .max()
            .double_value(&[]);
        assert!(excess <= 0.0, "{name} over tolerance by {excess:e}");
        compared += 1;
    }
    // 2 groups x (context, prediction, target) + loss + target encoder output + 75 gradients.
    assert_eq!(compared, 6 + 2 + 75);
    let loss = summary["loss"].as_f64().unwrap();
    assert!((loss - reference["loss"].double_value(&[])).abs() < 1e-4);
}

/// Writes a copy of the shared io file with `edit` applied to its tensors.
fn edited_io(dir: &Path, edit: impl FnOnce(&mut Vec<(String, Tensor)>)) -> PathBuf {
    let mut tensors = Tensor::read_safetensors(reference().join("io.safetensors")).unwrap();
    edit(&mut tensors);
    let path = dir.join("io.safetensors");
    Tensor::write_safetensors(&tensors, &path).unwrap();
    path
}

#[test]
fn a_missing_mask_key_exits_2_naming_it() {
    let r = reference();
    let dir = tempfile::tempdir().unwrap();
    let io = edited_io(dir.path(), |t| t.retain(|(k, _)| k != "target_mask.1"));
    let out = ssl_step(
        &r.join("config.json"),
        &r.join("weights.safetensors"),
        &io,
        &dir.path().join("out.safetensors"),
    );
    assert_eq!(out.status.code(), Some(2), "stderr: {}", stderr(&out));
    assert!(stderr(&out).contains("target_mask.1"), "{}", stderr(&out));
    assert!(!dir.path().join("out.safetensors").exists());
}

#[test]
fn masks_that_do_not_fit_the_video_exit_2() {
    let r = reference();
    let dir = tempfile::tempdir().unwrap();
    // A batch of 1 against the video's batch of 2.
    let io = edited_io(dir.path(), |t| {
        for (k, v) in t.iter_mut() {
            if k == "context_mask.0" {
                *v = v.narrow(0, 0, 1);
            }
        }
    });
    let out = ssl_step(
        &r.join("config.json"),
        &r.join("weights.safetensors"),
        &io,
        &dir.path().join("out.safetensors"),
    );
    assert_eq!(out.status.code(), Some(2), "stderr: {}", stderr(&out));
    let msg = stderr(&out);
    assert!(
        msg.contains("context_mask.0") && msg.contains("io.safetensors"),
        "{msg}"
    );

    // A token index past the 64 tokens of the clip.
    let io = edited_io(dir.path(), |t| {
        for (k, v) in t.iter_mut() {
            if k == "target_mask.0" {
                *v = v.full_like(64);
            }
        }
    });
    let out = ssl_step(
        &r.join("config.json"),
        &r.join("weights.safetensors"),
        &io,
        &dir.path().join("out.safetensors"),
    );
    assert_eq!(out.status.code(), Some(2), "stderr: {}", stderr(&out));
    assert!(stderr(&out).contains("target_mask.0"), "{}", stderr(&out));
}

#[test]
fn a_config_that_is_not_vjepa2_exits_2_naming_the_file() {
    let r = reference();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mvit_config.json");
    std::fs::write(&config, r#"{"model_type": "mvit", "hidden_size": 64}"#).unwrap();
    let out = ssl_step(
        &config,
        &r.join("weights.safetensors"),
        &r.join("io.safetensors"),
        &dir.path().join("out.safetensors"),
    );
    assert_eq!(out.status.code(), Some(2), "stderr: {}", stderr(&out));
    let msg = stderr(&out);
    assert!(
        msg.contains("mvit_config.json") && msg.contains("model_type"),
        "{msg}"
    );

    // A V-JEPA 2 config whose sizes do not fit the weights names the weights and a key.
    let wrong = dir.path().join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(r.join("config.json")).unwrap()).unwrap();
    cfg["pred_hidden_size"] = 48.into();
    std::fs::write(&wrong, cfg.to_string()).unwrap();
    let out = ssl_step(
        &wrong,
        &r.join("weights.safetensors"),
        &r.join("io.safetensors"),
        &dir.path().join("out.safetensors"),
    );
    assert_eq!(out.status.code(), Some(2), "stderr: {}", stderr(&out));
    let msg = stderr(&out);
    assert!(
        msg.contains("weights.safetensors") && msg.contains("predictor."),
        "{msg}"
    );
}
