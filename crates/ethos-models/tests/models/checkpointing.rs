//! Activation checkpointing gives the plain run's gradients (CPU float32, drop-path and dropout on):
//! V-JEPA 2 with the attentive-pooler + linear head and with the FERAL head (some blocks frozen),
//! and MViT. Two identical models (same seed) run `forward_backward` with and without
//! checkpointing from the same generator state; every gradient, the loss and every buffer
//! (BatchNorm statistics) must agree within 1e-6 relative.

use ethos_models::VideoModel;
use ethos_models::feral_head::{FeralHeadConfig, Vjepa2FeralModel};
use ethos_models::freeze::freeze_prefixes;
use ethos_models::mvit::{Mvit, MvitConfig};
use ethos_models::vjepa2::{Vjepa2Config, Vjepa2ForVideoClassification};
use tch::{Device, Kind, Tensor, nn};

fn vjepa2_config() -> Vjepa2Config {
    let cfg: Vjepa2Config = serde_json::from_str(
        r#"{"patch_size": 8, "crop_size": 32, "frames_per_clip": 4, "tubelet_size": 2,
            "hidden_size": 48, "num_attention_heads": 4, "num_hidden_layers": 4, "mlp_ratio": 2.0,
            "num_pooler_layers": 1, "drop_path_rate": 0.4, "attention_probs_dropout_prob": 0.1,
            "attention_dropout": 0.1, "num_labels": 3}"#,
    )
    .unwrap();
    cfg.validate("test").unwrap();
    cfg
}

/// A scalar that depends on every output element (logits of any shape, classes last).
fn loss_of(out: &Tensor) -> Tensor {
    -out.log_softmax(-1, Kind::Float)
        .select(-1, 0)
        .mean(Kind::Float)
}

struct Run {
    loss: f64,
    grads: Vec<(String, Tensor)>,
    values: Vec<(String, Tensor)>,
}

fn run(
    build: &dyn Fn(&nn::VarStore) -> Box<dyn VideoModel>,
    input: &Tensor,
    checkpointing: bool,
    seed: i64,
) -> Run {
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = build(&vs);
    tch::manual_seed(seed);
    let loss = model.forward_backward(input, true, checkpointing, &mut loss_of);
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    Run {
        loss: loss.double_value(&[]),
        grads: vars.iter().map(|(k, v)| (k.clone(), v.grad())).collect(),
        values: vars
            .iter()
            .map(|(k, v)| (k.clone(), v.detach().copy()))
            .collect(),
    }
}

fn max_rel(a: &Tensor, b: &Tensor) -> f64 {
    let scale = a.abs().max().double_value(&[]).max(1e-30);
    (a - b).abs().max().double_value(&[]) / scale
}

/// Checkpointed and plain runs agree; returns how many variables got a gradient.
fn assert_same_gradients(
    build: &dyn Fn(&nn::VarStore) -> Box<dyn VideoModel>,
    input: &Tensor,
) -> usize {
    let plain = run(build, input, false, 42);
    let ckpt = run(build, input, true, 42);
    assert!(
        (plain.loss - ckpt.loss).abs() <= 1e-6 * plain.loss.abs(),
        "loss {} vs {}",
        plain.loss,
        ckpt.loss
    );
    let mut with_grad = 0;
    for ((name, a), (_, b)) in plain.grads.iter().zip(&ckpt.grads) {
        assert_eq!(
            a.defined(),
            b.defined(),
            "{name}: gradient presence differs"
        );
        if a.defined() {
            with_grad += 1;
            let rel = max_rel(a, b);
            assert!(rel <= 1e-6, "{name}: gradients differ by {rel:e} relative");
        }
    }
    for ((name, a), (_, b)) in plain.values.iter().zip(&ckpt.values) {
        assert!(max_rel(a, b) <= 1e-6, "{name}: values/buffers differ");
    }
    // The randomness is real: another seed draws other drop-path and dropout masks.
    let other = run(build, input, true, 43);
    assert_ne!(other.loss, plain.loss, "dropout / drop-path must be active");
    with_grad
}

fn vjepa2_input() -> Tensor {
    tch::manual_seed(5);
    Tensor::randn([2, 4, 3, 32, 32], (Kind::Float, Device::Cpu))
}

fn classifier(frozen: usize) -> impl Fn(&nn::VarStore) -> Box<dyn VideoModel> {
    move |vs: &nn::VarStore| {
        let mut m = Vjepa2ForVideoClassification::new(&vs.root(), &vjepa2_config()).unwrap();
        freeze_prefixes(vs, &m.encoder().freeze_prefixes(frozen).unwrap());
        m.encoder_mut().set_frozen_blocks(frozen).unwrap();
        Box::new(m) as Box<dyn VideoModel>
    }
}

#[test]
fn vjepa2_linear_head_with_one_frozen_block() {
    let n = assert_same_gradients(&classifier(1), &vjepa2_input());
    // 3 trainable blocks x 12 tensors + final norm 2 + pooler (1 self + 1 cross layer) + classifier.
    assert!(n > 3 * 12, "only {n} variables got gradients");
}

#[test]
fn vjepa2_linear_head_all_blocks_trainable_reaches_the_patch_embedding() {
    let n = assert_same_gradients(&classifier(0), &vjepa2_input());
    assert!(n > 4 * 12 + 2, "only {n} variables got gradients");
}

#[test]
fn vjepa2_feral_head_with_two_frozen_blocks() {
    let build = |vs: &nn::VarStore| {
        let cfg = vjepa2_config();
        let head = FeralHeadConfig::for_encoder(&cfg, 3, 4, 0.2);
        let mut m = Vjepa2FeralModel::new(&vs.root(), &cfg, &head).unwrap();
        m.freeze_encoder_layers(vs, 2).unwrap();
        Box::new(m) as Box<dyn VideoModel>
    };
    let n = assert_same_gradients(&build, &vjepa2_input());
    assert!(n > 2 * 12, "only {n} variables got gradients");
}

#[test]
fn mvit_with_stochastic_depth_and_dropout() {
    let mut cfg = MvitConfig::mvit_demo(3);
    cfg.spatial_size = [32, 32];
    cfg.temporal_size = 4;
    cfg.stochastic_depth_prob = 0.4;
    cfg.attention_dropout = 0.1;
    let build = move |vs: &nn::VarStore| {
        Box::new(Mvit::new(&vs.root(), &cfg).unwrap()) as Box<dyn VideoModel>
    };
    tch::manual_seed(6);
    let input = Tensor::randn([2, 3, 4, 32, 32], (Kind::Float, Device::Cpu));
    let n = assert_same_gradients(&build, &input);
    assert!(n > 20, "only {n} variables got gradients");
}

#[test]
fn in_eval_mode_forward_backward_equals_forward_t_then_backward() {
    let input = vjepa2_input();
    // Trainable variables come in creation order, the same for two identical builds.
    let grads = |use_forward_t: bool| -> Vec<Tensor> {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let model = classifier(1)(&vs);
        if use_forward_t {
            loss_of(&model.forward_t(&input, false)).backward();
        } else {
            let _ = model.forward_backward(&input, false, true, &mut loss_of);
        }
        vs.trainable_variables().iter().map(Tensor::grad).collect()
    };
    let a = grads(true);
    let b = grads(false);
    assert!(a.len() > 3 * 12);
    for (i, (a, b)) in a.iter().zip(&b).enumerate() {
        assert!(a.defined() && b.defined(), "variable {i} has no gradient");
        assert!(max_rel(a, b) <= 1e-6, "variable {i}: {:e}", max_rel(a, b));
    }
}
