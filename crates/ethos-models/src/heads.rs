//! Classification heads that replace a backbone's classifier: `Dropout(p) + Linear(features, classes)`.

use tch::{Tensor, nn};

pub use crate::freeze::{ParamCounts, param_counts};

/// Dropout then a linear layer: `(B, features)` -> `(B, classes)` logits. Variables are
/// `<path>.weight` `(classes, features)` and `<path>.bias` `(classes)`, so a head created at
/// `fc` or `head.1` has the key names of the torchvision classifier it replaces.
#[derive(Debug)]
pub struct ClassifierHead {
    /// Dropout probability applied to the features in training (`model.head_dropout`).
    pub dropout: f64,
    /// The linear layer.
    pub linear: nn::Linear,
}

impl ClassifierHead {
    /// A new head with weights ~ N(0, 0.01²) and zero bias (torchvision's video-model classifier init).
    pub fn new(path: &nn::Path, features: i64, num_classes: i64, dropout: f64) -> Self {
        let cfg = nn::LinearConfig {
            ws_init: nn::Init::Randn {
                mean: 0.0,
                stdev: 0.01,
            },
            bs_init: Some(nn::Init::Const(0.0)),
            bias: true,
        };
        ClassifierHead {
            dropout,
            linear: nn::linear(path, features, num_classes, cfg),
        }
    }

    /// Logits for `(B, features)` features; dropout is active only when `train`.
    pub fn forward_t(&self, features: &Tensor, train: bool) -> Tensor {
        let x = if train && self.dropout > 0.0 {
            features.dropout(self.dropout, true)
        } else {
            features.shallow_clone()
        };
        x.apply(&self.linear)
    }

    /// Number of classes this head predicts.
    pub fn num_classes(&self) -> i64 {
        self.linear.ws.size()[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn head_shapes_names_and_dropout() {
        let vs = nn::VarStore::new(Device::Cpu);
        let head = ClassifierHead::new(&(vs.root() / "fc"), 8, 3, 0.5);
        let names: Vec<String> = {
            let mut v: Vec<String> = vs.variables().into_keys().collect();
            v.sort();
            v
        };
        assert_eq!(names, vec!["fc.bias".to_string(), "fc.weight".to_string()]);
        assert_eq!(head.num_classes(), 3);
        let x = Tensor::ones([2, 8], (Kind::Float, Device::Cpu));
        let eval1 = head.forward_t(&x, false);
        let eval2 = head.forward_t(&x, false);
        assert_eq!(eval1.size(), vec![2, 3]);
        assert!(eval1.equal(&eval2), "eval mode must be deterministic");
        tch::manual_seed(0);
        let train = head.forward_t(&Tensor::ones([64, 8], (Kind::Float, Device::Cpu)), true);
        let ref_out = head.forward_t(&Tensor::ones([64, 8], (Kind::Float, Device::Cpu)), false);
        assert!(
            !train.allclose(&ref_out, 1e-6, 1e-6, false),
            "dropout must change training outputs"
        );
        let counts = param_counts(&vs);
        assert_eq!(counts.trainable_params, 8 * 3 + 3);
        assert_eq!(counts.frozen_params, 0);
    }
}
