//! V-JEPA 2 parity with Hugging Face transformers: `shared/reference/vjepa2_tiny` and the extra cases of
//! `tests/fixtures/vjepa2_*` (made by `tools/gen_vjepa2_reference.py`) are rebuilt from their
//! `config.json`, loaded by Hugging Face key names, and every stored tensor is compared in float32 on CPU
//! with |port - ref| <= 1e-4 + 1e-4 * |ref|.

use ethos_core::Classify;
use std::path::{Path, PathBuf};

use ethos_models::VideoModel;
use ethos_models::vjepa2::{
    Vjepa2Checkpoint, Vjepa2Config, Vjepa2ForVideoClassification, Vjepa2WeightLayout,
};
use ethos_models::weights::{LoadOptions, load_into, read_tensors};
use tch::{Device, Kind, Tensor, nn};

const ATOL: f64 = 1e-4;
const RTOL: f64 = 1e-4;

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn shared_case() -> PathBuf {
    manifest_dir().join("../../../shared/reference/vjepa2_tiny")
}

fn fixture_cases() -> Vec<PathBuf> {
    let dir = manifest_dir().join("tests/fixtures");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/fixtures exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("vjepa2_"))
        })
        .collect();
    cases.sort();
    cases
}

/// Builds the classifier from `dir/config.json` and loads `dir/weights.safetensors` strictly (every
/// model variable filled, every non-predictor key used).
fn load_model(dir: &Path) -> (nn::VarStore, Vjepa2ForVideoClassification, Vjepa2Config) {
    let cfg = Vjepa2Config::from_file(&dir.join("config.json")).expect("config parses");
    let mut vs = nn::VarStore::new(Device::Cpu);
    let model = Vjepa2ForVideoClassification::new(&vs.root(), &cfg).expect("model builds");
    let tensors = read_tensors(&dir.join("weights.safetensors")).expect("weights read");
    let keys: Vec<&str> = tensors.iter().map(|(k, _)| k.as_str()).collect();
    let layout = Vjepa2WeightLayout::detect(&keys);
    assert!(
        layout.has_classifier,
        "{}: classifier weights expected",
        dir.display()
    );
    let opts = LoadOptions {
        strict: true,
        rename: layout.rename.clone(),
        skip_prefixes: layout.skip_prefixes.clone(),
    };
    let report = load_into(&mut vs, tensors, &opts).expect("strict load");
    assert!(
        report.is_complete(),
        "{}: {}",
        dir.display(),
        report.summary()
    );
    (vs, model, cfg)
}

fn max_violation(port: &Tensor, reference: &Tensor) -> (f64, f64) {
    let port = port.to_kind(Kind::Double);
    let reference = reference.to_kind(Kind::Double);
    let diff = (&port - &reference).abs();
    let allowed = reference.abs() * RTOL + ATOL;
    let excess = (&diff - allowed).max().double_value(&[]);
    (diff.max().double_value(&[]), excess)
}

/// Compares every tensor the port names with the reference; returns the names compared.
fn check_case(dir: &Path) -> Vec<String> {
    let (_vs, model, cfg) = load_model(dir);
    let io: std::collections::HashMap<String, Tensor> =
        Tensor::read_safetensors(dir.join("io.safetensors"))
            .expect("io reads")
            .into_iter()
            .collect();
    let input = &io["input"];
    let named = tch::no_grad(|| model.forward_named(input));
    let mut compared = Vec::new();
    for (name, port) in &named {
        let reference = io
            .get(name)
            .unwrap_or_else(|| panic!("{}: reference lacks `{name}`", dir.display()));
        assert_eq!(
            port.size(),
            reference.size(),
            "{}: shape of `{name}`",
            dir.display()
        );
        let (max_diff, excess) = max_violation(port, reference);
        eprintln!(
            "{}: {name}: max |diff| {max_diff:.2e}",
            dir.file_name().and_then(|n| n.to_str()).unwrap_or("?")
        );
        assert!(
            excess <= 0.0,
            "{}: `{name}` differs by up to {max_diff:e} (over tolerance by {excess:e})",
            dir.display()
        );
        compared.push(name.clone());
    }
    // Everything the reference stores must have been produced, except what the classifier never runs.
    for key in io.keys() {
        let exempt =
            ["input", "logits_float64", "predictor.last_hidden_state"].contains(&key.as_str());
        assert!(
            exempt || compared.contains(key),
            "{}: reference tensor `{key}` was not compared",
            dir.display()
        );
    }
    let layers = cfg.num_hidden_layers as usize + cfg.num_pooler_layers as usize;
    assert_eq!(
        compared.len(),
        layers + 5,
        "{}: compared {compared:?}",
        dir.display()
    );
    assert_eq!(
        named.last().map(|(n, t)| (n.as_str(), t.size()[1])),
        Some(("logits", cfg.num_labels()))
    );
    compared
}

#[test]
fn shared_vjepa2_tiny_matches_transformers() {
    let dir = shared_case();
    assert!(
        dir.join("io.safetensors").is_file(),
        "{} not found: the shared reference vectors must sit beside the repository (../shared)",
        dir.display()
    );
    let compared = check_case(&dir);
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
        assert!(compared.iter().any(|c| c == name), "`{name}` not compared");
    }
}

#[test]
fn fixture_cases_match_transformers() {
    let cases = fixture_cases();
    assert!(
        cases.len() >= 4,
        "expected the generated vjepa2_* fixtures, found {cases:?}"
    );
    for dir in cases {
        check_case(&dir);
    }
}

#[test]
fn parity_catches_a_broken_model() {
    // The comparison is meaningful: zeroing the pooler's query token (a bug the reference's sensitivity
    // table lists at 1.7) must fail the tolerance.
    let dir = fixture_cases().into_iter().next().expect("a fixture");
    let (vs, model, _) = load_model(&dir);
    let io: std::collections::HashMap<String, Tensor> =
        Tensor::read_safetensors(dir.join("io.safetensors"))
            .expect("io reads")
            .into_iter()
            .collect();
    tch::no_grad(|| {
        let mut q = vs.variables()["pooler.query_tokens"].shallow_clone();
        let _ = q.zero_();
    });
    let logits = tch::no_grad(|| model.forward_t(&io["input"], false));
    let (_, excess) = max_violation(&logits, &io["logits"]);
    assert!(excess > 0.0, "a broken model still matched");
}

#[test]
fn config_defaults_are_transformers_defaults() {
    let cfg = Vjepa2Config::default();
    assert_eq!(
        (
            cfg.patch_size,
            cfg.crop_size,
            cfg.frames_per_clip,
            cfg.tubelet_size
        ),
        (16, 256, 64, 2)
    );
    assert_eq!(
        (
            cfg.hidden_size,
            cfg.num_attention_heads,
            cfg.num_hidden_layers
        ),
        (1024, 16, 24)
    );
    assert_eq!(
        (
            cfg.num_pooler_layers,
            cfg.layer_norm_eps,
            cfg.hidden_act.as_str()
        ),
        (3, 1e-6, "gelu")
    );
    assert_eq!(
        (
            cfg.head_dim(),
            cfg.rope_section_dim(),
            cfg.mlp_hidden(),
            cfg.num_labels()
        ),
        (64, 20, 4096, 2)
    );
}

#[test]
fn bad_configs_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, r#"{"hidden_size": 64, "num_attention_heads": 5}"#).unwrap();
    let err = Vjepa2Config::from_file(&path).unwrap_err().to_string();
    assert!(
        err.contains("num_attention_heads") && err.contains("config.json"),
        "{err}"
    );
    std::fs::write(&path, r#"{"hidden_act": "mish"}"#).unwrap();
    let err = Vjepa2Config::from_file(&path).unwrap_err().to_string();
    assert!(err.contains("hidden_act") && err.contains("mish"), "{err}");
    std::fs::write(&path, r#"{"patch_size": "big"}"#).unwrap();
    let err = Vjepa2Config::from_file(&path).unwrap_err();
    assert!(
        err.is_bad_input()
            && err.to_string().contains("line 1")
            && err.to_string().contains("`patch_size`"),
        "{err}"
    );
    let missing = Vjepa2Config::from_file(&dir.path().join("nope.json"))
        .unwrap_err()
        .to_string();
    assert!(missing.contains("nope.json"), "{missing}");
}

#[test]
fn bad_inputs_are_rejected_before_the_forward() {
    let cfg = Vjepa2Config::from_file(&fixture_cases()[0].join("config.json")).unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    let model = Vjepa2ForVideoClassification::new(&vs.root(), &cfg).unwrap();
    let s = cfg.crop_size;
    assert!(
        model
            .check_input(&Tensor::zeros([1, 2, 3, s, s], (Kind::Float, Device::Cpu)))
            .is_ok()
    );
    for (shape, what) in [
        (vec![1, 3, s, s], "4-d"),
        (vec![1, 2, 4, s, s], "4 channels"),
        (vec![1, 2, 3, 1, s], "H below patch"),
    ] {
        let err = model.check_input(&Tensor::zeros(shape.as_slice(), (Kind::Float, Device::Cpu)));
        assert!(err.is_err(), "{what} accepted");
    }
    let ints = Tensor::zeros([1, 2, 3, s, s], (Kind::Int64, Device::Cpu));
    assert!(model.check_input(&ints).is_err());
}

#[test]
fn bare_encoder_checkpoints_are_renamed_and_predictor_skipped() {
    let layout = Vjepa2WeightLayout::detect(&["encoder.layernorm.weight", "predictor.proj.weight"]);
    assert!(!layout.has_classifier);
    assert_eq!(
        layout.map_key("encoder.layer.0.norm1.weight").as_deref(),
        Some("vjepa2.encoder.layer.0.norm1.weight")
    );
    assert_eq!(layout.map_key("predictor.proj.weight"), None);
    let full = Vjepa2WeightLayout::detect(&[
        "vjepa2.encoder.layernorm.weight",
        "pooler.query_tokens",
        "classifier.bias",
    ]);
    assert!(full.has_classifier && full.rename.is_empty());
    assert_eq!(full.map_key("vjepa2.predictor.proj.weight"), None);
}

#[test]
fn encoder_only_checkpoint_loads_and_matches() {
    // A bare `VJEPA2Model` state dict (`encoder.*`, `predictor.*`, no head), made from a fixture.
    let dir = fixture_cases().into_iter().next().expect("a fixture");
    let tmp = tempfile::tempdir().unwrap();
    let bare: Vec<(String, Tensor)> = read_tensors(&dir.join("weights.safetensors"))
        .unwrap()
        .into_iter()
        .filter_map(|(k, t)| k.strip_prefix("vjepa2.").map(|rest| (rest.to_string(), t)))
        .collect();
    assert!(bare.iter().any(|(k, _)| k.starts_with("predictor.")));
    let path = tmp.path().join("model.safetensors");
    Tensor::write_safetensors(&bare, &path).unwrap();
    let cfg = Vjepa2Config::from_file(&dir.join("config.json")).unwrap();
    let mut vs = nn::VarStore::new(Device::Cpu);
    let (model, report) = Vjepa2Checkpoint::load(&mut vs, &cfg, tmp.path()).unwrap();
    assert!(matches!(model, Vjepa2Checkpoint::Encoder(_)));
    assert!(report.is_complete(), "{}", report.summary());
    let io: std::collections::HashMap<String, Tensor> =
        Tensor::read_safetensors(dir.join("io.safetensors"))
            .unwrap()
            .into_iter()
            .collect();
    let named = tch::no_grad(|| model.forward_named(&io["input"]));
    assert_eq!(named.len(), cfg.num_hidden_layers as usize + 2);
    for (name, port) in &named {
        let (max_diff, excess) = max_violation(port, &io[name]);
        assert!(excess <= 0.0, "`{name}` differs by {max_diff:e}");
    }
    // The full checkpoint through the same entry point gives the classifier.
    let mut vs = nn::VarStore::new(Device::Cpu);
    let (model, _) =
        Vjepa2Checkpoint::load(&mut vs, &cfg, &dir.join("weights.safetensors")).unwrap();
    assert!(matches!(model, Vjepa2Checkpoint::Classifier(_)));
    // Weights of another size are a bad-input error naming the file.
    let other = fixture_cases()
        .into_iter()
        .nth(1)
        .expect("a second fixture");
    let mut vs = nn::VarStore::new(Device::Cpu);
    let err =
        Vjepa2Checkpoint::load(&mut vs, &cfg, &other.join("weights.safetensors")).unwrap_err();
    assert!(
        err.is_bad_input() && err.to_string().contains("weights.safetensors"),
        "{err}"
    );
}
