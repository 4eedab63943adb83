//! The Hugging Face export of the self-supervised model: `config.json` + `model.safetensors` with exactly
//! the key names and shapes of a transformers `VJEPA2Model` state dict (the shared reference's
//! `weights.safetensors`), reloaded into the Rust model tensor for tensor, and loadable by the
//! fine-tuning path (`Vjepa2Checkpoint`). Whether transformers loads it is checked by
//! `tools/check_vjepa2_hf_export.py` (set `ETHOS_SSL_EXPORT_DIR` to keep the folder this test writes).

use std::collections::BTreeMap;
use std::path::PathBuf;

use ethos_models::vjepa2::Vjepa2Checkpoint;
use ethos_models::vjepa2_masks::{MaskConfig, MultiBlockMasks};
use ethos_models::vjepa2_ssl::{ExportEncoder, SslMasks, Vjepa2Ssl};
use tch::{Device, Kind, Tensor, nn};

fn shared_case() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/vjepa2_ssl_tiny")
}

fn shapes(tensors: &[(String, Tensor)]) -> BTreeMap<String, Vec<i64>> {
    tensors.iter().map(|(k, t)| (k.clone(), t.size())).collect()
}

#[test]
fn export_has_the_hugging_face_keys_and_reloads_exactly() {
    let case = shared_case();
    let cfg = Vjepa2Ssl::read_config(&case.join("config.json")).expect("config");
    let mut ssl = Vjepa2Ssl::new(&cfg, Device::Cpu).unwrap();
    ssl.load_weights(&case.join("weights.safetensors")).unwrap();

    // A few training steps so that the target encoder differs from the online one.
    let masks =
        MultiBlockMasks::new(cfg.token_grid(8, 32, 32), MaskConfig::vjepa2_default()).unwrap();
    tch::manual_seed(5);
    let video = Tensor::randn([2, 8, 3, 32, 32], (Kind::Float, Device::Cpu));
    let mut opt = {
        use tch::nn::OptimizerConfig;
        nn::Sgd::default().build(ssl.online_vs(), 0.05).unwrap()
    };
    for step in 0..3 {
        let groups: Vec<SslMasks> = masks
            .generate(0, step, 2)
            .unwrap()
            .iter()
            .map(|g| SslMasks::from_group(g, Device::Cpu))
            .collect();
        let out = ssl.step(&video, &groups, true).unwrap();
        opt.backward_step(&out.loss);
        ssl.ema_update(0.9).unwrap();
    }

    let dir = match std::env::var_os("ETHOS_SSL_EXPORT_DIR") {
        Some(d) => {
            let d = PathBuf::from(d);
            std::fs::create_dir_all(&d).unwrap();
            (None, d)
        }
        None => {
            let t = tempfile::tempdir().unwrap();
            let p = t.path().join("encoder");
            (Some(t), p)
        }
    };
    let (_keep, dir) = dir;
    ssl.export_hf(&dir, ExportEncoder::Target).expect("export");

    // Key names and shapes = the transformers VJEPA2Model state dict of the reference.
    let reference = ethos_models::weights::read_tensors(&case.join("weights.safetensors")).unwrap();
    let exported = ethos_models::weights::read_tensors(&dir.join("model.safetensors")).unwrap();
    assert_eq!(shapes(&exported), shapes(&reference));

    // The config round-trips.
    let cfg2 = Vjepa2Ssl::read_config(&dir).expect("exported config reads");
    assert_eq!(cfg2, cfg);

    // Reloaded into the Rust model: the online encoder = the exported target encoder, bit for bit.
    let mut reloaded = Vjepa2Ssl::new(&cfg2, Device::Cpu).unwrap();
    let report = reloaded.load_weights(&dir).unwrap();
    assert!(report.predictor_tensors > 0 && report.encoder_tensors > 0);
    let target = ssl.target_vs().variables();
    let online = ssl.online_vs().variables();
    let mut target_differs_from_online = false;
    for (name, t) in reloaded.online_vs().variables() {
        let want = if name.starts_with("encoder.") {
            let differs = (&target[&name] - &online[&name])
                .abs()
                .max()
                .double_value(&[])
                > 0.0;
            target_differs_from_online |= differs;
            &target[&name]
        } else {
            &online[&name]
        };
        assert!(t.equal(want), "{name} differs after the round trip");
    }
    assert!(
        target_differs_from_online,
        "the test must tell the two encoders apart"
    );
    for (name, t) in reloaded.target_vs().variables() {
        assert!(t.equal(&target[&name]), "target {name}");
    }

    // The fine-tuning path loads it as an encoder checkpoint (predictor skipped).
    let mut vs = nn::VarStore::new(Device::Cpu);
    let (model, report) = Vjepa2Checkpoint::load(&mut vs, &cfg2, &dir).expect("checkpoint load");
    assert!(matches!(model, Vjepa2Checkpoint::Encoder(_)));
    assert!(report.is_complete(), "{}", report.summary());
    let vars = vs.variables();
    let w = &vars["vjepa2.encoder.layer.1.mlp.fc2.weight"];
    assert!(w.equal(&target["encoder.layer.1.mlp.fc2.weight"]));
}

#[test]
fn weights_without_predictor_start_a_fresh_predictor_and_bad_keys_are_named() {
    let case = shared_case();
    let cfg = Vjepa2Ssl::read_config(&case.join("config.json")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let all = ethos_models::weights::read_tensors(&case.join("weights.safetensors")).unwrap();

    // An encoder-only checkpoint under a classifier's names.
    let encoder_only: Vec<(String, Tensor)> = all
        .iter()
        .filter(|(k, _)| k.starts_with("encoder."))
        .map(|(k, t)| (format!("vjepa2.{k}"), t.shallow_clone()))
        .collect();
    let path = dir.path().join("encoder_only.safetensors");
    ethos_models::weights::write_safetensors_atomic(&path, &encoder_only).unwrap();
    let mut ssl = Vjepa2Ssl::new(&cfg, Device::Cpu).unwrap();
    let report = ssl.load_weights(&path).unwrap();
    assert_eq!(report.predictor_tensors, 0);
    assert_eq!(report.encoder_tensors, encoder_only.len());
    // Fresh predictor: transformers' zero-initialised mask tokens.
    let vars = ssl.online_vs().variables();
    assert_eq!(
        vars["predictor.embeddings.mask_tokens"]
            .abs()
            .sum(Kind::Float)
            .double_value(&[]),
        0.0
    );

    // Half a predictor is an error naming a missing key.
    let partial: Vec<(String, Tensor)> = all
        .iter()
        .filter(|(k, _)| !k.starts_with("predictor.layer.1."))
        .map(|(k, t)| (k.clone(), t.shallow_clone()))
        .collect();
    let path = dir.path().join("partial.safetensors");
    ethos_models::weights::write_safetensors_atomic(&path, &partial).unwrap();
    let err = Vjepa2Ssl::new(&cfg, Device::Cpu)
        .unwrap()
        .load_weights(&path)
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("predictor.layer.1.") && msg.contains("partial.safetensors"),
        "{msg}"
    );
    assert!(ethos_core::Classify::is_bad_input(&err));
}
