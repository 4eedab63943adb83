//! The `mvit_v2_s` preset has exactly torchvision's state-dict keys and shapes
//! (`shared/reference/mvit_v2_s_keys.txt`, 400 classes), so official checkpoints load by name.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ethos_models::mvit::{Mvit, MvitConfig};
use tch::{Device, nn};

#[test]
fn mvit_v2_s_preset_has_torchvision_keys_and_shapes() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/reference/mvit_v2_s_keys.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut want: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut total = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# total_parameters ") {
            total = Some(
                rest.split_whitespace()
                    .next()
                    .unwrap()
                    .parse::<i64>()
                    .unwrap(),
            );
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols.len(), 4, "line {line:?}");
        assert_eq!((cols[1], cols[3]), ("float32", "param"), "line {line:?}");
        let shape: Vec<i64> = serde_json::from_str(cols[2]).unwrap();
        assert!(
            want.insert(cols[0].to_string(), shape).is_none(),
            "duplicate {}",
            cols[0]
        );
    }
    assert_eq!(total, Some(34_537_744));
    assert_eq!(want.len(), 397);

    let vs = nn::VarStore::new(Device::Cpu);
    let _model = Mvit::new(&vs.root(), &MvitConfig::mvit_v2_s(400)).unwrap();
    let got: BTreeMap<String, Vec<i64>> = vs
        .variables()
        .into_iter()
        .map(|(k, v)| (k, v.size()))
        .collect();
    let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra {extra:?}"
    );
    for (key, shape) in &want {
        assert_eq!(&got[key], shape, "shape of {key}");
    }
    let params: i64 = got.values().map(|s| s.iter().product::<i64>()).sum();
    assert_eq!(params, 34_537_744);
    assert_eq!(vs.trainable_variables().len(), 397);
}
