//! The FERAL head on a V-JEPA 2 encoder with random weights: output shapes, partial freezing (counts,
//! no graph through frozen blocks, frozen weights bit-identical after an AdamW step while the others move).

use ethos_models::VideoModel;
use ethos_models::feral_head::{FeralHeadConfig, Vjepa2FeralModel};
use ethos_models::freeze::{param_counts, trainable_variables};
use ethos_models::vjepa2::Vjepa2Config;
use tch::nn::OptimizerConfig;
use tch::{Device, Kind, Tensor, nn};

fn tiny_config() -> Vjepa2Config {
    let cfg: Vjepa2Config = serde_json::from_str(
        r#"{"patch_size": 8, "crop_size": 32, "frames_per_clip": 4, "tubelet_size": 2, "hidden_size": 64,
            "num_attention_heads": 4, "num_hidden_layers": 3, "mlp_ratio": 2.0, "num_pooler_layers": 1}"#,
    )
    .unwrap();
    cfg.validate("test").unwrap();
    cfg
}

fn input(batch: i64) -> Tensor {
    Tensor::randn([batch, 4, 3, 32, 32], (Kind::Float, Device::Cpu))
}

fn numel(vs: &nn::VarStore, prefix: &str) -> i64 {
    vs.variables()
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, t)| t.numel() as i64)
        .sum()
}

#[test]
fn feral_head_gives_one_logit_vector_per_query() {
    tch::manual_seed(0);
    let cfg = tiny_config();
    let vs = nn::VarStore::new(Device::Cpu);
    let head = FeralHeadConfig::for_encoder(&cfg, 3, 64, 0.1);
    assert_eq!(head.num_heads, 16);
    let model = Vjepa2FeralModel::new(&vs.root(), &cfg, &head).unwrap();
    let x = input(2);
    let flat = model.forward_flat(&x, true);
    assert_eq!(flat.size(), vec![2 * 64, 3]);
    let per_frame = tch::no_grad(|| model.forward_t(&x, false));
    assert_eq!(per_frame.size(), vec![2, 64, 3]);
    let named = tch::no_grad(|| model.forward_named(&x));
    let names: Vec<&str> = named.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"encoder.embeddings"));
    assert_eq!(names.last(), Some(&"logits"));
    assert!(per_frame.allclose(&named.last().unwrap().1, 1e-6, 1e-6, false));
    // Every variable name is under the encoder (Hugging Face names) or the head.
    assert!(
        vs.variables()
            .keys()
            .all(|k| k.starts_with("vjepa2.encoder.") || k.starts_with("feral_head."))
    );
}

#[test]
fn freezing_counts_and_graph() {
    tch::manual_seed(1);
    let cfg = tiny_config();
    let vs = nn::VarStore::new(Device::Cpu);
    let mut model = Vjepa2FeralModel::new(
        &vs.root(),
        &cfg,
        &FeralHeadConfig::for_encoder(&cfg, 2, 8, 0.0),
    )
    .unwrap();
    let x = input(2);
    let before = tch::no_grad(|| model.forward_t(&x, false));
    let all = param_counts(&vs);
    let counts = model.freeze_encoder_layers(&vs, 2).unwrap();
    let frozen = numel(&vs, "vjepa2.encoder.embeddings.")
        + numel(&vs, "vjepa2.encoder.layer.0.")
        + numel(&vs, "vjepa2.encoder.layer.1.");
    assert_eq!(counts.frozen_params, frozen);
    assert_eq!(counts.trainable_params, all.trainable_params - frozen);
    assert!(counts.trainable_params > 0);
    eprintln!(
        "tiny FERAL model: {} trainable, {} frozen parameters",
        counts.trainable_params, counts.frozen_params
    );
    let trainable = trainable_variables(&vs);
    assert!(
        trainable
            .iter()
            .all(|(n, _)| !n.starts_with("vjepa2.encoder.layer.0.")
                && !n.starts_with("vjepa2.encoder.layer.1.")
                && !n.starts_with("vjepa2.encoder.embeddings."))
    );
    assert!(
        trainable
            .iter()
            .any(|(n, _)| n == "vjepa2.encoder.layernorm.weight"),
        "final norm stays trainable"
    );
    assert!(
        trainable
            .iter()
            .any(|(n, _)| n.starts_with("vjepa2.encoder.layer.2."))
    );
    // Freezing changes no numbers, and the frozen blocks build no graph.
    let after = tch::no_grad(|| model.forward_t(&x, false));
    assert!(before.equal(&after));
    let named = model.encoder().forward_named(&x).1;
    let grad = |name: &str| {
        named
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.requires_grad())
            .unwrap()
    };
    assert!(!grad("encoder.embeddings") && !grad("encoder.layer.0") && !grad("encoder.layer.1"));
    assert!(grad("encoder.layer.2") && grad("encoder.last_hidden_state"));
    let err = model.freeze_encoder_layers(&vs, 4).unwrap_err().to_string();
    assert!(
        err.contains("freeze_encoder_layers") && err.contains('4'),
        "{err}"
    );
}

#[test]
fn adamw_step_moves_only_unfrozen_weights() {
    tch::manual_seed(2);
    let cfg = tiny_config();
    let vs = nn::VarStore::new(Device::Cpu);
    let mut model = Vjepa2FeralModel::new(
        &vs.root(),
        &cfg,
        &FeralHeadConfig::for_encoder(&cfg, 3, 8, 0.1),
    )
    .unwrap();
    model.freeze_encoder_layers(&vs, 1).unwrap();
    let trainable: Vec<String> = trainable_variables(&vs)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let snapshot: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .map(|(n, t)| (n, t.detach().copy()))
        .collect();
    let mut opt = nn::AdamW::default().build(&vs, 1e-3).unwrap();
    assert_eq!(
        vs.trainable_variables().len(),
        trainable.len(),
        "the optimiser sees only trainable variables"
    );
    let logits = model.forward_flat(&input(2), true);
    let targets = Tensor::randint(3, [logits.size()[0]], (Kind::Int64, Device::Cpu));
    let loss = logits.cross_entropy_for_logits(&targets);
    opt.backward_step(&loss);
    let now = vs.variables();
    let mut moved = 0;
    for (name, old) in &snapshot {
        let new = &now[name];
        let frozen = name.starts_with("vjepa2.encoder.embeddings.")
            || name.starts_with("vjepa2.encoder.layer.0.");
        if frozen {
            assert!(new.equal(old), "frozen `{name}` changed");
            assert!(!new.grad().defined(), "frozen `{name}` got a gradient");
        } else if trainable.contains(name) {
            assert!(!new.equal(old), "trainable `{name}` did not change");
            moved += 1;
        }
    }
    assert_eq!(moved, trainable.len());
}
