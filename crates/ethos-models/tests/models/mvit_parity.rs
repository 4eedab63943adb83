//! MViT parity with torchvision: every reference case (the shared `mvit_tiny` plus the extra cases in
//! `tests/fixtures/mvit_*`, made by `tools/gen_reference.py`) is rebuilt from its `case.json` alone,
//! loads its `weights.safetensors` by name, and must reproduce `logits` and every stored float32
//! intermediate of `io.safetensors` within atol 1e-4 + rtol 1e-4 on CPU.

use std::path::{Path, PathBuf};

use ethos_models::VideoModel;
use ethos_models::mvit::{AttentionKernel, Mvit, MvitConfig};
use ethos_models::weights::{LoadOptions, load_into, read_tensors};
use tch::{Device, Kind, Tensor, nn};

const ATOL: f64 = 1e-4;
const RTOL: f64 = 1e-4;

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn shared_case() -> PathBuf {
    manifest_dir().join("../../../shared/reference/mvit_tiny")
}

fn fixture_cases() -> Vec<PathBuf> {
    let dir = manifest_dir().join("tests/fixtures");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("mvit_")
                && p.join("case.json").is_file()
        })
        .collect();
    cases.sort();
    cases
}

fn build(case: &Path) -> (nn::VarStore, Mvit) {
    let config = MvitConfig::from_case_json(&case.join("case.json")).unwrap();
    let mut vs = nn::VarStore::new(Device::Cpu);
    let model = Mvit::new(&vs.root(), &config).unwrap();
    let tensors = read_tensors(&case.join("weights.safetensors")).unwrap();
    let report = load_into(&mut vs, tensors, &LoadOptions::default()).unwrap();
    assert!(
        report.is_complete(),
        "{}: {}",
        case.display(),
        report.summary()
    );
    (vs, model)
}

/// Compares every float32 reference tensor; returns the number compared.
fn check_case(case: &Path, kernel: AttentionKernel) -> usize {
    let (_vs, mut model) = build(case);
    model.set_attention_kernel(kernel);
    let io = Tensor::read_safetensors(case.join("io.safetensors")).unwrap();
    let input = &io
        .iter()
        .find(|(k, _)| k == "input")
        .expect("io has `input`")
        .1;
    model.check_input(&input.size()).unwrap();
    let outputs = model.forward_named(input);
    let mut compared = 0;
    let mut failures = Vec::new();
    for (name, want) in &io {
        if name == "input" || want.kind() != Kind::Float {
            continue;
        }
        let got = outputs
            .iter()
            .find(|(k, _)| k == name)
            .unwrap_or_else(|| panic!("{}: the port does not produce `{name}`", case.display()));
        assert_eq!(
            got.1.size(),
            want.size(),
            "{}: shape of `{name}`",
            case.display()
        );
        let diff = (&got.1 - want).abs();
        let excess = &diff - (want.abs() * RTOL + ATOL);
        let worst = excess.max().double_value(&[]);
        eprintln!(
            "{} {kernel:?} {name}: max |diff| {:.2e}",
            case.display(),
            diff.max().double_value(&[])
        );
        if worst > 0.0 {
            failures.push(format!(
                "{name}: max |diff| {:.3e}",
                diff.max().double_value(&[])
            ));
        }
        compared += 1;
    }
    assert!(
        failures.is_empty(),
        "{} ({kernel:?}) out of tolerance: {failures:?}",
        case.display()
    );
    assert!(compared > 1, "{}: nothing compared", case.display());
    compared
}

#[test]
fn mvit_tiny_reference_matches_every_intermediate() {
    // conv_proj, patch_embed, 4 x (block, attn, pool_q/k/v), norm, logits.
    for kernel in [AttentionKernel::Explicit, AttentionKernel::Fused] {
        assert_eq!(check_case(&shared_case(), kernel), 24);
    }
}

#[test]
fn generated_cases_match_every_intermediate() {
    let cases = fixture_cases();
    assert!(
        cases.len() >= 3,
        "expected the generated fixtures, found {cases:?}"
    );
    for case in &cases {
        for kernel in [AttentionKernel::Explicit, AttentionKernel::Fused] {
            check_case(case, kernel);
        }
    }
}

#[test]
fn broken_weights_are_detected() {
    // The comparison must be able to fail: zeroing the rel-pos tables moves the logits past tolerance.
    let case = shared_case();
    let (vs, model) = build(&case);
    tch::no_grad(|| {
        for (name, mut var) in vs.variables() {
            if name.contains("rel_pos_") {
                let _ = var.zero_();
            }
        }
    });
    let io = Tensor::read_safetensors(case.join("io.safetensors")).unwrap();
    let want = &io.iter().find(|(k, _)| k == "logits").unwrap().1;
    let got = model.forward_t(&io.iter().find(|(k, _)| k == "input").unwrap().1, false);
    let diff = (got - want).abs().max().double_value(&[]);
    assert!(
        diff > 10.0 * ATOL,
        "zeroed rel-pos tables changed the logits by only {diff}"
    );
}
