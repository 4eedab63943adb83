//! V-JEPA 2 self-supervised step parity with transformers: `shared/reference/vjepa2_ssl_tiny` and the
//! extra cases `tests/fixtures/ssl_vjepa2_*` (made by `tools/gen_vjepa2_ssl_reference.py`) are rebuilt
//! from their `config.json`, loaded by Hugging Face names, and every stored tensor (`context.g`,
//! `prediction.g`, `target.g`, `loss`, `target_encoder.last_hidden_state`, every `grad.*`) is compared in
//! float32 on the CPU with |port - ref| <= 1e-4 + 1e-4 * |ref|, both through the library API and through
//! the file-to-file step that `ethos model ssl-step` runs.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use ethos_models::vjepa2_ssl::{SslMasks, Vjepa2Ssl};
use ethos_models::vjepa2_ssl_step::{read_ssl_inputs, run_ssl_step_file};
use tch::{Device, Kind, Tensor};

const ATOL: f64 = 1e-4;
const RTOL: f64 = 1e-4;

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn shared_case() -> PathBuf {
    manifest_dir().join("../../../shared/reference/vjepa2_ssl_tiny")
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
                    .is_some_and(|n| n.starts_with("ssl_vjepa2_"))
        })
        .collect();
    cases.sort();
    cases
}

fn read(path: &Path) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_iter()
        .collect()
}

/// `(max |diff|, max excess over the tolerance)`.
fn compare(port: &Tensor, reference: &Tensor) -> (f64, f64) {
    let port = port.to_kind(Kind::Double);
    let reference = reference.to_kind(Kind::Double);
    let diff = (&port - &reference).abs();
    let allowed = reference.abs() * RTOL + ATOL;
    (
        diff.max().double_value(&[]),
        (&diff - allowed).max().double_value(&[]),
    )
}

/// The kind of a stored tensor for the report: `context`, `grad`, ...
fn kind_of(name: &str) -> &str {
    name.split('.').next().unwrap_or(name)
}

/// Checks every tensor of `reference` except the inputs against `port`; returns the largest
/// difference per tensor kind.
fn check_all(
    case: &Path,
    port: &HashMap<String, Tensor>,
    reference: &HashMap<String, Tensor>,
) -> BTreeMap<String, f64> {
    let mut worst = BTreeMap::new();
    let mut names: Vec<&String> = reference.keys().collect();
    names.sort();
    for name in names {
        if name == "pixel_values_videos" || name.contains("_mask.") {
            continue;
        }
        let port_t = port
            .get(name)
            .unwrap_or_else(|| panic!("{}: the port did not produce `{name}`", case.display()));
        let ref_t = &reference[name];
        assert_eq!(
            port_t.size(),
            ref_t.size(),
            "{}: shape of `{name}`",
            case.display()
        );
        let (max_diff, excess) = compare(port_t, ref_t);
        assert!(
            excess <= 0.0,
            "{}: `{name}` differs by up to {max_diff:e} (over tolerance by {excess:e})",
            case.display()
        );
        let w = worst.entry(kind_of(name).to_string()).or_insert(0.0f64);
        *w = w.max(max_diff);
    }
    worst
}

/// The library API: build, load, step, backward, and gather every output by its reference name.
fn run_library(case: &Path) -> HashMap<String, Tensor> {
    let cfg = Vjepa2Ssl::read_config(&case.join("config.json")).expect("config");
    let mut ssl = Vjepa2Ssl::new(&cfg, Device::Cpu).expect("model builds");
    let report = ssl
        .load_weights(&case.join("weights.safetensors"))
        .expect("weights load");
    assert!(
        report.predictor_tensors > 0,
        "{}: predictor weights",
        case.display()
    );
    let (video, masks): (Tensor, Vec<SslMasks>) =
        read_ssl_inputs(&case.join("io.safetensors")).expect("inputs");
    let out = ssl.step(&video, &masks, false).expect("step");
    out.loss.backward();
    let mut port = HashMap::new();
    for (g, ((c, p), t)) in out
        .context
        .iter()
        .zip(&out.prediction)
        .zip(&out.target)
        .enumerate()
    {
        port.insert(format!("context.{g}"), c.detach());
        port.insert(format!("prediction.{g}"), p.detach());
        port.insert(format!("target.{g}"), t.detach());
    }
    port.insert("loss".into(), out.loss.detach());
    port.insert("target_encoder.last_hidden_state".into(), out.target_hidden);
    for (name, g) in ssl.named_gradients() {
        port.insert(format!("grad.{name}"), g);
    }
    // Every online parameter has a reference gradient and vice versa.
    let reference = read(&case.join("io.safetensors"));
    let ref_grads: Vec<&String> = reference
        .keys()
        .filter(|k| k.starts_with("grad."))
        .collect();
    let port_grads: Vec<&String> = port.keys().filter(|k| k.starts_with("grad.")).collect();
    assert_eq!(
        ref_grads.len(),
        port_grads.len(),
        "{}: gradient count",
        case.display()
    );
    port
}

fn check_case(case: &Path) {
    let reference = read(&case.join("io.safetensors"));
    let worst = check_all(case, &run_library(case), &reference);
    let name = case.file_name().and_then(|n| n.to_str()).unwrap_or("?");
    for (kind, diff) in &worst {
        eprintln!("{name}: library {kind}: max |diff| {diff:.2e}");
    }
    for kind in ["context", "prediction", "target", "loss", "grad"] {
        assert!(
            worst.contains_key(kind),
            "{name}: no `{kind}` tensors compared"
        );
    }

    // The file-to-file step of `ethos model ssl-step`.
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("out.safetensors");
    let summary = run_ssl_step_file(
        &case.join("config.json"),
        &case.join("weights.safetensors"),
        &case.join("io.safetensors"),
        &out_path,
    )
    .expect("ssl step on files");
    let written = read(&out_path);
    let worst = check_all(case, &written, &reference);
    for (kind, diff) in &worst {
        eprintln!("{name}: file step {kind}: max |diff| {diff:.2e}");
    }
    assert_eq!(summary.tensors_written, written.len());
    let ref_loss = reference["loss"].double_value(&[]);
    assert!((summary.loss - ref_loss).abs() <= ATOL + RTOL * ref_loss.abs());
}

#[test]
fn shared_vjepa2_ssl_tiny_matches_transformers() {
    let dir = shared_case();
    assert!(
        dir.join("io.safetensors").is_file(),
        "{} not found: the shared reference vectors must sit beside the repository (../shared)",
        dir.display()
    );
    check_case(&dir);
}

#[test]
fn fixture_ssl_cases_match_transformers() {
    let cases = fixture_cases();
    assert!(
        cases.len() >= 3,
        "expected the ssl_vjepa2_* fixtures of tools/gen_vjepa2_ssl_reference.py, found {cases:?}"
    );
    for case in &cases {
        check_case(case);
    }
}

/// The comparison is sharp enough to see the details that are easy to get wrong: predicting with mask
/// token 1 (transformers' default) instead of 0, or RoPE at 0..K instead of the kept positions.
#[test]
fn parity_catches_a_wrong_mask_token_or_context_positions() {
    let case = shared_case();
    let reference = read(&case.join("io.safetensors"));
    let cfg = Vjepa2Ssl::read_config(&case.join("config.json")).unwrap();
    let mut ssl = Vjepa2Ssl::new(&cfg, Device::Cpu).unwrap();
    ssl.load_weights(&case.join("weights.safetensors")).unwrap();
    let (video, masks) = read_ssl_inputs(&case.join("io.safetensors")).unwrap();

    // Mask token 1 in place of 0.
    tch::no_grad(|| {
        let vars = ssl.online_vs().variables();
        let tokens = vars["predictor.embeddings.mask_tokens"].shallow_clone();
        let second = tokens.get(1).copy();
        tokens.get(0).copy_(&second);
    });
    let out = tch::no_grad(|| ssl.step(&video, &masks, false).unwrap());
    let (diff, excess) = compare(&out.prediction[0], &reference["prediction.0"]);
    assert!(
        excess > 0.0,
        "mask token 1 moved the predictions by only {diff:e}"
    );

    // The encoder with RoPE at 0..K instead of the kept token positions.
    ssl.load_weights(&case.join("weights.safetensors")).unwrap();
    let k = masks[0].context.size()[1];
    let dense = Tensor::arange(k, (Kind::Int64, Device::Cpu))
        .unsqueeze(0)
        .repeat([masks[0].context.size()[0], 1]);
    let embedded_at_kept =
        tch::no_grad(|| ssl.encoder().forward_at(&video, &masks[0].context, false));
    let (diff, _) = compare(&embedded_at_kept, &reference["context.0"]);
    assert!(diff < 1e-5);
    let wrong = tch::no_grad(|| ssl.encoder().forward_at(&video, &dense, false));
    let (diff, excess) = compare(&wrong, &reference["context.0"]);
    assert!(
        excess > 0.0,
        "RoPE positions moved the context by only {diff:e}"
    );
}
