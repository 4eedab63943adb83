//! Weight import from files: the safe `.pth` reader (zip, legacy, nested checkpoints, refused
//! pickles), safetensors (single, sharded, truncated) and the atomic safetensors writer.
//! Fixtures come from `tools/gen_weights_fixtures.py` (torch 2.11).

use ethos_core::Classify;
use std::path::{Path, PathBuf};

use ethos_models::weights::{
    WeightsError, read_tensors, read_tensors_raw, write_safetensors_atomic,
};
use tch::{Kind, Tensor};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pth")
        .join(name)
}

fn expected() -> Vec<(String, Tensor)> {
    Tensor::read_safetensors(fixture("expected.safetensors")).unwrap()
}

fn get<'a>(ts: &'a [(String, Tensor)], key: &str) -> &'a Tensor {
    &ts.iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("key `{key}` missing"))
        .1
}

/// Every tensor of `plain.pth`'s state dict equals PyTorch's, with the stored dtypes kept by the raw
/// reader and bf16/f16 turned into f32 by `read_tensors`.
fn check_plain(path: &Path) {
    let exp = expected();
    let raw = read_tensors_raw(path).unwrap();
    let keys: Vec<&str> = raw.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "f32",
            "f64",
            "f16",
            "bf16",
            "i64",
            "i32",
            "u8",
            "i8",
            "i16",
            "bool",
            "scalar_i64",
            "view_t",
            "view_offset",
            "view_col",
            "empty",
            "param"
        ],
        "file order kept"
    );
    let kinds = [
        ("f32", Kind::Float),
        ("f64", Kind::Double),
        ("f16", Kind::Half),
        ("bf16", Kind::BFloat16),
        ("i64", Kind::Int64),
        ("i32", Kind::Int),
        ("u8", Kind::Uint8),
        ("i8", Kind::Int8),
        ("i16", Kind::Int16),
        ("bool", Kind::Bool),
    ];
    for (k, kind) in kinds {
        assert_eq!(get(&raw, k).kind(), kind, "{k}");
    }
    let conv = read_tensors(path).unwrap();
    assert_eq!(get(&conv, "f16").kind(), Kind::Float);
    assert_eq!(get(&conv, "bf16").kind(), Kind::Float);
    assert_eq!(get(&conv, "f64").kind(), Kind::Double);
    for (k, t) in &conv {
        let e = get(&exp, k);
        assert_eq!(t.size(), e.size(), "{k}");
        assert!(t.is_contiguous(), "{k}");
        let t = if t.is_floating_point() {
            t.to_kind(Kind::Float)
        } else {
            t.to_kind(Kind::Int64)
        };
        assert!(t.equal(e), "{k}: {t} vs {e}");
    }
    assert_eq!(get(&conv, "scalar_i64").size(), Vec::<i64>::new());
    assert_eq!(get(&conv, "view_offset").size(), vec![2, 3]);
}

#[test]
fn reads_zip_pth_with_all_dtypes_and_views() {
    check_plain(&fixture("plain.pth"));
}

#[test]
fn reads_legacy_non_zip_pth() {
    check_plain(&fixture("legacy.pth"));
}

#[test]
fn reads_zip_with_any_root_folder_name() {
    check_plain(&fixture("renamed_root.pth"));
}

#[test]
fn finds_state_dict_nested_in_a_checkpoint() {
    let exp = expected();
    for file in ["nested.pth", "nested_model.pth"] {
        let ts = read_tensors(&fixture(file)).unwrap();
        let keys: Vec<&str> = ts.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "0.weight",
                "0.bias",
                "1.weight",
                "1.bias",
                "1.running_mean",
                "1.running_var",
                "1.num_batches_tracked"
            ],
            "{file}"
        );
        for (k, t) in &ts {
            assert!(t.equal(get(&exp, &format!("lin.{k}"))), "{file}: {k}");
        }
        assert_eq!(get(&ts, "1.num_batches_tracked").kind(), Kind::Int64);
    }
}

#[test]
fn malicious_pickle_is_refused_without_running_it() {
    let marker = Path::new("ETHOS_PWNED_MARKER");
    let _ = std::fs::remove_file(marker);
    for file in ["malicious.pth", "malicious_p4.pth"] {
        let err = read_tensors(&fixture(file)).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, WeightsError::UnsafeGlobal { .. }),
            "{file}: {msg}"
        );
        assert!(
            msg.contains("posix.system") || msg.contains("os.system"),
            "{msg}"
        );
        assert!(msg.contains(file), "error names the file: {msg}");
        assert!(err.is_bad_input());
    }
    assert!(!marker.exists(), "the pickle's command ran");
}

#[test]
fn truncated_files_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let full = std::fs::read(fixture("expected.safetensors")).unwrap();
    let cut = dir.path().join("cut.safetensors");
    for len in [full.len() - 10, 100, 4] {
        std::fs::write(&cut, &full[..len]).unwrap();
        let err = read_tensors(&cut).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("cut.safetensors") && msg.contains("truncated"),
            "{len}: {msg}"
        );
        assert!(err.is_bad_input());
    }
    let pth = std::fs::read(fixture("plain.pth")).unwrap();
    let cut = dir.path().join("cut.pth");
    std::fs::write(&cut, &pth[..pth.len() / 2]).unwrap();
    let err = read_tensors(&cut).unwrap_err();
    assert!(err.to_string().contains("cut.pth"), "{err}");
    let legacy = std::fs::read(fixture("legacy.pth")).unwrap();
    std::fs::write(&cut, &legacy[..legacy.len() - 7]).unwrap();
    let err = read_tensors(&cut).unwrap_err();
    assert!(
        err.to_string().contains("cut.pth") && err.to_string().contains("truncated"),
        "{err}"
    );
}

#[test]
fn sharded_safetensors_via_index_or_folder() {
    let dir = tempfile::tempdir().unwrap();
    let exp = expected();
    let (a, b) = exp.split_at(exp.len() / 2);
    Tensor::write_safetensors(a, dir.path().join("model-00001-of-00002.safetensors")).unwrap();
    Tensor::write_safetensors(b, dir.path().join("model-00002-of-00002.safetensors")).unwrap();
    let mut map = serde_json::Map::new();
    for (k, _) in a {
        map.insert(k.clone(), "model-00001-of-00002.safetensors".into());
    }
    for (k, _) in b {
        map.insert(k.clone(), "model-00002-of-00002.safetensors".into());
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": map});
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    for path in [
        dir.path().join("model.safetensors.index.json"),
        dir.path().to_path_buf(),
    ] {
        let ts = read_tensors(&path).unwrap();
        assert_eq!(ts.len(), exp.len());
        for (k, e) in &exp {
            assert!(get(&ts, k).equal(e), "{k}");
        }
    }
    // A key the index promises but its shard lacks.
    map.insert("ghost".into(), "model-00001-of-00002.safetensors".into());
    let index = serde_json::json!({"weight_map": map});
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    let err = read_tensors(dir.path()).unwrap_err();
    assert!(err.to_string().contains("ghost"), "{err}");
}

#[test]
fn pth_to_safetensors_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("plain.safetensors");
    let ts = read_tensors(&fixture("plain.pth")).unwrap();
    write_safetensors_atomic(&out, &ts).unwrap();
    let back = read_tensors(&out).unwrap();
    assert_eq!(back.len(), ts.len());
    for (k, t) in &ts {
        assert!(get(&back, k).equal(t), "{k}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "no temporary file left: {leftovers:?}");
}

#[test]
fn missing_or_unknown_paths() {
    let dir = tempfile::tempdir().unwrap();
    let err = read_tensors(&dir.path().join("nope.safetensors")).unwrap_err();
    assert!(
        err.is_bad_input() && err.to_string().contains("nope.safetensors"),
        "{err}"
    );
    let err = read_tensors(dir.path()).unwrap_err();
    assert!(err.to_string().contains("model.safetensors"), "{err}");
    let junk = dir.path().join("junk.pth");
    std::fs::write(&junk, b"hello world, not weights").unwrap();
    let err = read_tensors(&junk).unwrap_err();
    assert!(
        err.is_bad_input() && err.to_string().contains("junk.pth"),
        "{err}"
    );
}
