//! R3D-18 against torchvision: key names, shapes and parameter totals from
//! `shared/reference/r3d_18_keys.txt`, and outputs on deterministic closed-form weights (the same
//! formula as `tools/gen_weights_fixtures.py`; 33M parameters are too many to store as a fixture).

use std::path::{Path, PathBuf};

use ethos_models::VideoModel;
use ethos_models::r3d::{R3d18, R3dConfig};
use ethos_models::weights::{LoadOptions, load_into};
use tch::{Device, Kind, Tensor, nn};

fn keys_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/r3d_18_keys.txt")
}

struct Entry {
    key: String,
    dtype: String,
    shape: Vec<i64>,
    param: bool,
}

fn reference() -> (Vec<Entry>, i64, i64) {
    let text = std::fs::read_to_string(keys_file()).unwrap();
    let mut entries = Vec::new();
    let (mut total_params, mut total_elements) = (0, 0);
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# total_parameters ") {
            total_params = rest.split_whitespace().next().unwrap().parse().unwrap();
        } else if let Some(rest) = line.strip_prefix("# state_dict_entries ") {
            total_elements = rest
                .split("state_dict_elements ")
                .nth(1)
                .unwrap()
                .trim()
                .parse()
                .unwrap();
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let cols: Vec<&str> = line.split('\t').collect();
            entries.push(Entry {
                key: cols[0].to_owned(),
                dtype: cols[1].to_owned(),
                shape: serde_json::from_str(cols[2]).unwrap(),
                param: cols[3] == "param",
            });
        }
    }
    (entries, total_params, total_elements)
}

#[test]
fn keys_shapes_and_totals_match_torchvision() {
    let (entries, total_params, total_elements) = reference();
    assert_eq!(entries.len(), 122);
    let vs = nn::VarStore::new(Device::Cpu);
    let _model = R3d18::new(&vs.root(), &R3dConfig::default());
    let vars = vs.variables();
    assert_eq!(vars.len(), entries.len());
    let mut elements = 0;
    for e in &entries {
        let v = vars
            .get(&e.key)
            .unwrap_or_else(|| panic!("missing {}", e.key));
        assert_eq!(v.size(), e.shape, "{}", e.key);
        let kind = if e.dtype == "int64" {
            Kind::Int64
        } else {
            Kind::Float
        };
        assert_eq!(v.kind(), kind, "{}", e.key);
        assert_eq!(v.requires_grad(), e.param, "{}", e.key);
        elements += v.numel() as i64;
    }
    assert_eq!(elements, total_elements);
    let params: i64 = vs
        .trainable_variables()
        .iter()
        .map(|t| t.numel() as i64)
        .sum();
    assert_eq!(params, total_params);
    assert_eq!(params, 33_371_472);
}

/// Key-dependent phase of the closed-form weights.
fn seed(key: &str) -> f64 {
    let s: u64 = key
        .bytes()
        .enumerate()
        .map(|(j, b)| (j as u64 + 1) * b as u64)
        .sum();
    (s % 1000) as f64 * 0.01
}

/// sin(0.731 i + seed(key)), scaled per tensor role exactly as the Python generator does.
fn formula(key: &str, shape: &[i64]) -> Tensor {
    let n: i64 = shape.iter().product();
    let s = seed(key);
    let base: Vec<f64> = (0..n).map(|i| (0.731 * i as f64 + s).sin()).collect();
    let vals: Vec<f64> = if key.ends_with("running_mean") {
        base.iter().map(|w| 0.1 * w).collect()
    } else if key.ends_with("running_var") {
        base.iter().map(|w| 1.0 + 0.5 * w * w).collect()
    } else if key.ends_with("bias") {
        base.iter().map(|w| 0.2 * w).collect()
    } else if key.ends_with("weight") && shape.len() == 1 {
        base.iter().map(|w| 1.0 + 0.2 * w).collect()
    } else {
        let fan_in = (n / shape[0]) as f64;
        base.iter().map(|w| w / fan_in.sqrt()).collect()
    };
    let v: Vec<f32> = vals.iter().map(|&x| x as f32).collect();
    Tensor::from_slice(&v).reshape(shape)
}

#[test]
fn outputs_match_torchvision_on_closed_form_weights() {
    let (entries, _, _) = reference();
    let mut vs = nn::VarStore::new(Device::Cpu);
    let model = R3d18::new(&vs.root(), &R3dConfig::default());
    let tensors: Vec<(String, Tensor)> = entries
        .iter()
        .map(|e| {
            let t = if e.dtype == "int64" {
                Tensor::zeros(&e.shape[..], (Kind::Int64, Device::Cpu))
            } else {
                formula(&e.key, &e.shape)
            };
            (e.key.clone(), t)
        })
        .collect();
    let report = load_into(&mut vs, tensors, &LoadOptions::default()).unwrap();
    assert_eq!(report.loaded.len(), 122);

    let io = Tensor::read_safetensors(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/r3d/io.safetensors"),
    )
    .unwrap();
    let get = |k: &str| io.iter().find(|(n, _)| n == k).unwrap().1.shallow_clone();
    let input = get("input");
    let named = tch::no_grad(|| model.forward_named(&input));
    let names: Vec<&str> = named.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "stem", "layer1", "layer2", "layer3", "layer4", "avgpool", "logits"
        ]
    );
    for (name, got) in &named {
        let want = get(name);
        assert_eq!(got.size(), want.size(), "{name}");
        let diff = (got - &want).abs();
        let tol = want.abs() * 1e-4 + 1e-4;
        let worst = (&diff - &tol).max().double_value(&[]);
        assert!(
            worst <= 0.0,
            "{name}: max |diff| {} exceeds atol/rtol 1e-4",
            diff.max().double_value(&[])
        );
    }
    let logits = tch::no_grad(|| model.forward_t(&input, false));
    assert!(logits.allclose(&get("logits"), 1e-4, 1e-4, false));
    assert!(
        get("logits").abs().max().double_value(&[]) > 0.1,
        "reference logits are not trivially small"
    );
}
