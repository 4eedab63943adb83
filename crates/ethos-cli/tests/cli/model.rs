//! `ethos model forward|summary` on the shared mvit_tiny reference case, and bad input.

use std::path::PathBuf;
use std::process::Command;

use tch::{Kind, Tensor};

fn ethos() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ethos"))
}

fn reference() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/mvit_tiny")
}

#[test]
fn forward_reproduces_mvit_tiny_logits_and_intermediates() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("out.safetensors");
    let r = reference();
    let out = ethos()
        .args(["model", "forward", "--arch", "mvit", "--config"])
        .arg(r.join("case.json"))
        .arg("--weights")
        .arg(r.join("weights.safetensors"))
        .arg("--input")
        .arg(r.join("io.safetensors"))
        .arg("--output")
        .arg(&out_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["tensors"].as_array().unwrap().len(), 24);

    let got = Tensor::read_safetensors(&out_path).unwrap();
    let want = Tensor::read_safetensors(r.join("io.safetensors")).unwrap();
    let find = |v: &[(String, Tensor)], k: &str| {
        v.iter()
            .find(|(n, _)| n == k)
            .map(|(_, t)| t.shallow_clone())
    };
    for (name, reference) in want
        .iter()
        .filter(|(n, t)| n != "input" && t.kind() == Kind::Float)
    {
        let mine = find(&got, name).unwrap_or_else(|| panic!("output lacks {name}"));
        let excess = ((&mine - reference).abs() - (reference.abs() * 1e-4 + 1e-4))
            .max()
            .double_value(&[]);
        assert!(excess <= 0.0, "{name} out of tolerance");
    }
    // The stdout logits are the written ones.
    let logits: Vec<f64> = report["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let written: Vec<f32> = Vec::try_from(find(&got, "logits").unwrap().flatten(0, -1)).unwrap();
    assert_eq!(logits.len(), 4);
    for (a, b) in logits.iter().zip(&written) {
        assert!((a - *b as f64).abs() < 1e-6);
    }
}

#[test]
fn forward_rejects_bad_input_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let r = reference();
    // An input without the `input` tensor.
    let io = dir.path().join("io.safetensors");
    Tensor::write_safetensors(
        &[(
            "x",
            &Tensor::zeros([1, 3, 4, 32, 32], (Kind::Float, tch::Device::Cpu)),
        )],
        &io,
    )
    .unwrap();
    let out = ethos()
        .args(["model", "forward", "--arch", "mvit", "--config"])
        .arg(r.join("case.json"))
        .arg("--weights")
        .arg(r.join("weights.safetensors"))
        .arg("--input")
        .arg(&io)
        .arg("--output")
        .arg(dir.path().join("out.safetensors"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no tensor named `input`"));
    // An input with 1 channel.
    Tensor::write_safetensors(
        &[(
            "input",
            &Tensor::zeros([1, 1, 4, 32, 32], (Kind::Float, tch::Device::Cpu)),
        )],
        &io,
    )
    .unwrap();
    let out = ethos()
        .args(["model", "forward", "--arch", "mvit", "--config"])
        .arg(r.join("case.json"))
        .arg("--weights")
        .arg(r.join("weights.safetensors"))
        .arg("--input")
        .arg(&io)
        .arg("--output")
        .arg(dir.path().join("out.safetensors"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Unknown architecture and unknown preset.
    for args in [
        ["--arch", "resnet", "--preset", "mvit_v2_s"],
        ["--arch", "mvit", "--preset", "mvit_huge"],
    ] {
        let out = ethos()
            .args(["model", "summary"])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn summary_counts_mvit_v2_s_parameters_and_flops() {
    let out = ethos()
        .args([
            "model",
            "summary",
            "--arch",
            "mvit",
            "--preset",
            "mvit_v2_s",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["params_total"], 34_537_744);
    assert_eq!(s["params_frozen"], 0);
    assert_eq!(s["layers"].as_array().unwrap().len(), 2 + 16 + 2);
    // torchvision lists 64.224 G (multiply-accumulates) for mvit_v2_s at 16 x 224 x 224.
    let gmacs = s["flops"].as_f64().unwrap() / 2e9;
    assert!((gmacs - 64.224).abs() < 0.05, "{gmacs}");
    let out = ethos()
        .args([
            "model",
            "summary",
            "--arch",
            "mvit",
            "--preset",
            "mvit_demo",
            "--num-classes",
            "2",
            "--freeze",
        ])
        .args(["conv_proj.,pos_encoding.", "--frames", "8", "--size", "64"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["input_shape"], serde_json::json!([1, 3, 8, 64, 64]));
    assert_eq!(s["params_frozen"], 16 * 3 * 3 * 7 * 7 + 16 + 16);
}
