//! `ethos model forward|summary --arch vjepa2` on the shared vjepa2_tiny reference case (full
//! classifier), on a bare encoder checkpoint (no head), and with weights that do not fit the config.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tch::{Kind, Tensor};

fn ethos(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ethos"))
        .args(args)
        .output()
        .expect("run ethos")
}

fn reference() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/vjepa2_tiny")
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../ethos-models/tests/fixtures")
        .join(name)
}

fn forward(config: &Path, weights: &Path, input: &Path, output: &Path) -> Output {
    ethos(&[
        "model".as_ref(),
        "forward".as_ref(),
        "--arch".as_ref(),
        "vjepa2".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--weights".as_ref(),
        weights.as_os_str(),
        "--input".as_ref(),
        input.as_os_str(),
        "--output".as_ref(),
        output.as_os_str(),
    ])
}

fn read(path: &Path) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(path)
        .expect("safetensors")
        .into_iter()
        .collect()
}

fn assert_close(name: &str, port: &Tensor, reference: &Tensor) {
    assert_eq!(port.size(), reference.size(), "shape of {name}");
    let (p, r) = (port.to_kind(Kind::Double), reference.to_kind(Kind::Double));
    let excess = ((&p - &r).abs() - (r.abs() * 1e-4 + 1e-4))
        .max()
        .double_value(&[]);
    assert!(excess <= 0.0, "{name} over tolerance by {excess:e}");
}

#[test]
fn forward_reproduces_vjepa2_tiny() {
    let r = reference();
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("out.safetensors");
    let out = forward(
        &r.join("config.json"),
        &r.join("weights.safetensors"),
        &r.join("io.safetensors"),
        &out_path,
    );
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(json["logits"].as_array().map(Vec::len), Some(4));
    let outputs = read(&out_path);
    let reference = read(&r.join("io.safetensors"));
    for name in [
        "encoder.embeddings",
        "encoder.layer.0",
        "encoder.layer.1",
        "encoder.last_hidden_state",
        "pooler.self_attention_layers.0",
        "pooler.self_attention_layers.1",
        "pooler.cross_attention_layer",
        "pooler_output",
        "logits",
    ] {
        let port = outputs
            .get(name)
            .unwrap_or_else(|| panic!("output lacks {name}"));
        assert_close(name, port, &reference[name]);
    }
}

#[test]
fn forward_runs_the_encoder_alone_for_headless_weights() {
    // A bare `VJEPA2Model` state dict: `encoder.*` + `predictor.*`, no pooler or classifier.
    let case = fixture("vjepa2_deep_3labels");
    let dir = tempfile::tempdir().unwrap();
    let full = Tensor::read_safetensors(case.join("weights.safetensors")).unwrap();
    let bare: Vec<(String, Tensor)> = full
        .into_iter()
        .filter_map(|(k, t)| k.strip_prefix("vjepa2.").map(|k| (k.to_string(), t)))
        .collect();
    let weights = dir.path().join("model.safetensors");
    Tensor::write_safetensors(&bare, &weights).unwrap();
    let out_path = dir.path().join("out.safetensors");
    let out = forward(&case, dir.path(), &case.join("io.safetensors"), &out_path);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let outputs = read(&out_path);
    let reference = read(&case.join("io.safetensors"));
    assert!(!outputs.contains_key("logits") && !outputs.contains_key("pooler_output"));
    for name in [
        "encoder.embeddings",
        "encoder.layer.3",
        "encoder.last_hidden_state",
    ] {
        assert_close(name, &outputs[name], &reference[name]);
    }
}

#[test]
fn weights_of_another_size_exit_2() {
    let other = fixture("vjepa2_odd_head");
    let r = reference();
    let dir = tempfile::tempdir().unwrap();
    let out = forward(
        &r.join("config.json"),
        &other.join("weights.safetensors"),
        &r.join("io.safetensors"),
        &dir.path().join("out.safetensors"),
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("weights.safetensors"), "{stderr}");
    let bad_config = dir.path().join("config.json");
    std::fs::write(
        &bad_config,
        r#"{"hidden_size": 64, "num_attention_heads": 5}"#,
    )
    .unwrap();
    let out = forward(
        &bad_config,
        &r.join("weights.safetensors"),
        &r.join("io.safetensors"),
        &dir.path().join("o"),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("num_attention_heads"));
}

#[test]
fn summary_lists_blocks_and_parameter_counts() {
    let r = reference();
    let out = ethos(&[
        "model".as_ref(),
        "summary".as_ref(),
        "--arch".as_ref(),
        "vjepa2".as_ref(),
        "--config".as_ref(),
        r.join("config.json").as_os_str(),
        "--freeze".as_ref(),
        "vjepa2.encoder.embeddings.,vjepa2.encoder.layer.0.".as_ref(),
    ]);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // case.json: 270722 parameters on the classifier path (no predictor).
    assert_eq!(json["params_total"], 270722);
    let names: Vec<&str> = json["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["name"].as_str())
        .collect();
    assert_eq!(names.first(), Some(&"encoder.embeddings"));
    assert!(names.contains(&"encoder.layer.1") && names.contains(&"classifier"));
    assert!(json["params_frozen"].as_i64().unwrap() > 0);
}
