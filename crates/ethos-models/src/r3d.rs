//! R3D-18 (torchvision `r3d_18`): an 18-layer 3-D ResNet on `(B, 3, T, H, W)` clips.
//!
//! Stem `Conv3d(3, 64, (3, 7, 7), stride (1, 2, 2), padding (1, 3, 3))` + BatchNorm + ReLU, then four
//! stages of two BasicBlocks (3x3x3 convolutions; stages 2-4 halve T, H and W and double the width to
//! 128, 256, 512, with a 1x1x1 conv + BatchNorm projection on the skip), global average pooling and
//! the classifier `fc`. Variable names and shapes equal torchvision's state-dict keys (BatchNorm
//! `running_mean`, `running_var` and the int64 `num_batches_tracked` included), so its weights load
//! by name.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor, nn};

use crate::heads::ClassifierHead;
use crate::model::{InputLayout, VideoModel};

/// Constructor arguments of [`R3d18`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct R3dConfig {
    /// Classes of the classifier `fc` (400 for the Kinetics-400 weights).
    pub num_classes: i64,
    /// Dropout before `fc` in training (torchvision's r3d_18 has none: 0.0).
    pub head_dropout: f64,
}

impl Default for R3dConfig {
    fn default() -> Self {
        R3dConfig {
            num_classes: 400,
            head_dropout: 0.0,
        }
    }
}

/// Width of the pooled features that enter `fc`.
pub const R3D_FEATURES: i64 = 512;

/// A bias-free 3-D convolution with torchvision's init (Kaiming normal, fan_out, ReLU gain).
#[derive(Debug)]
struct Conv3d {
    weight: Tensor,
    stride: [i64; 3],
    padding: [i64; 3],
}

impl Conv3d {
    fn new(
        p: &nn::Path,
        cin: i64,
        cout: i64,
        kernel: [i64; 3],
        stride: [i64; 3],
        padding: [i64; 3],
    ) -> Self {
        let fan_out = (cout * kernel.iter().product::<i64>()) as f64;
        let init = nn::Init::Randn {
            mean: 0.0,
            stdev: (2.0 / fan_out).sqrt(),
        };
        let weight = p.var(
            "weight",
            &[cout, cin, kernel[0], kernel[1], kernel[2]],
            init,
        );
        Conv3d {
            weight,
            stride,
            padding,
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        x.conv3d(
            &self.weight,
            None::<Tensor>,
            self.stride,
            self.padding,
            [1, 1, 1],
            1,
        )
    }
}

/// BatchNorm3d (eps 1e-5, momentum 0.1) with torchvision's buffers, `num_batches_tracked` included.
#[derive(Debug)]
struct BatchNorm3d {
    weight: Tensor,
    bias: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
    num_batches_tracked: Tensor,
}

impl BatchNorm3d {
    fn new(p: &nn::Path, c: i64) -> Self {
        BatchNorm3d {
            weight: p.var("weight", &[c], nn::Init::Const(1.0)),
            bias: p.var("bias", &[c], nn::Init::Const(0.0)),
            running_mean: p.zeros_no_train("running_mean", &[c]),
            running_var: p.ones_no_train("running_var", &[c]),
            num_batches_tracked: p.add(
                "num_batches_tracked",
                Tensor::zeros([], (Kind::Int64, p.device())),
                false,
            ),
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        if train {
            // torchvision counts training batches; the count only matters with momentum=None, but
            // keeping it makes checkpoints match PyTorch's.
            tch::no_grad(|| {
                let _ = self.num_batches_tracked.shallow_clone().g_add_scalar_(1);
            });
        }
        x.batch_norm(
            Some(&self.weight),
            Some(&self.bias),
            Some(&self.running_mean),
            Some(&self.running_var),
            train,
            0.1,
            1e-5,
            true,
        )
    }
}

/// Conv + BatchNorm, named `<p>.0` and `<p>.1` like torchvision's `nn.Sequential`s.
#[derive(Debug)]
struct ConvBn {
    conv: Conv3d,
    bn: BatchNorm3d,
}

impl ConvBn {
    fn new(
        p: &nn::Path,
        cin: i64,
        cout: i64,
        kernel: [i64; 3],
        stride: [i64; 3],
        padding: [i64; 3],
    ) -> Self {
        ConvBn {
            conv: Conv3d::new(&(p / "0"), cin, cout, kernel, stride, padding),
            bn: BatchNorm3d::new(&(p / "1"), cout),
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.bn.forward_t(&self.conv.forward(x), train)
    }
}

/// torchvision `BasicBlock` with `Conv3DSimple`: relu(bn(conv(relu(bn(conv(x))))) + skip(x)).
#[derive(Debug)]
struct BasicBlock {
    conv1: ConvBn,
    conv2: ConvBn,
    downsample: Option<ConvBn>,
}

impl BasicBlock {
    fn new(p: &nn::Path, cin: i64, cout: i64, stride: i64) -> Self {
        let s = [stride; 3];
        let downsample = (stride != 1 || cin != cout)
            .then(|| ConvBn::new(&(p / "downsample"), cin, cout, [1, 1, 1], s, [0, 0, 0]));
        BasicBlock {
            conv1: ConvBn::new(&(p / "conv1"), cin, cout, [3, 3, 3], s, [1, 1, 1]),
            conv2: ConvBn::new(&(p / "conv2"), cout, cout, [3, 3, 3], [1, 1, 1], [1, 1, 1]),
            downsample,
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let h = self.conv1.forward_t(x, train).relu();
        let h = self.conv2.forward_t(&h, train);
        let skip = match &self.downsample {
            Some(d) => d.forward_t(x, train),
            None => x.shallow_clone(),
        };
        (h + skip).relu()
    }
}

/// torchvision's `r3d_18`; input `(B, 3, T, H, W)`, logits `(B, num_classes)`.
#[derive(Debug)]
pub struct R3d18 {
    stem: ConvBn,
    layers: Vec<Vec<BasicBlock>>,
    /// The classifier on the pooled `(B, 512)` features, at `fc`.
    pub fc: ClassifierHead,
}

impl R3d18 {
    /// Creates the model's variables under `p` (use the var store root for torchvision key names).
    pub fn new(p: &nn::Path, cfg: &R3dConfig) -> Self {
        let stem = ConvBn::new(&(p / "stem"), 3, 64, [3, 7, 7], [1, 2, 2], [1, 3, 3]);
        let widths = [64, 128, 256, 512];
        let mut cin = 64;
        let mut layers = Vec::new();
        for (i, &w) in widths.iter().enumerate() {
            let lp = p / format!("layer{}", i + 1);
            let stride = if i == 0 { 1 } else { 2 };
            layers.push(vec![
                BasicBlock::new(&(&lp / "0"), cin, w, stride),
                BasicBlock::new(&(&lp / "1"), w, w, 1),
            ]);
            cin = w;
        }
        let fc = ClassifierHead::new(&(p / "fc"), R3D_FEATURES, cfg.num_classes, cfg.head_dropout);
        R3d18 { stem, layers, fc }
    }

    /// Pooled features `(B, 512)` (the input of `fc`).
    pub fn features_t(&self, input: &Tensor, train: bool) -> Tensor {
        let mut h = self.stem.forward_t(input, train).relu();
        for layer in &self.layers {
            for block in layer {
                h = block.forward_t(&h, train);
            }
        }
        h.adaptive_avg_pool3d([1, 1, 1]).flatten(1, -1)
    }
}

impl VideoModel for R3d18 {
    fn forward_t(&self, input: &Tensor, train: bool) -> Tensor {
        self.fc.forward_t(&self.features_t(input, train), train)
    }

    /// `stem`, `layer1`..`layer4` (block outputs, `(B, C, T, H, W)`), `avgpool` `(B, 512, 1, 1, 1)`
    /// and `logits`.
    fn forward_named(&self, input: &Tensor) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        let mut h = self.stem.forward_t(input, false).relu();
        out.push(("stem".to_owned(), h.shallow_clone()));
        for (i, layer) in self.layers.iter().enumerate() {
            for block in layer {
                h = block.forward_t(&h, false);
            }
            out.push((format!("layer{}", i + 1), h.shallow_clone()));
        }
        let pooled = h.adaptive_avg_pool3d([1, 1, 1]);
        out.push(("avgpool".to_owned(), pooled.shallow_clone()));
        out.push((
            "logits".to_owned(),
            self.fc.forward_t(&pooled.flatten(1, -1), false),
        ));
        out
    }

    fn input_layout(&self) -> InputLayout {
        InputLayout::Bcthw
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn training_forward_counts_batches_and_updates_stats() {
        let vs = nn::VarStore::new(Device::Cpu);
        let m = R3d18::new(
            &vs.root(),
            &R3dConfig {
                num_classes: 3,
                head_dropout: 0.3,
            },
        );
        let x = Tensor::randn([2, 3, 2, 16, 16], (Kind::Float, Device::Cpu));
        let y = m.forward_t(&x, true);
        assert_eq!(y.size(), vec![2, 3]);
        let v = vs.variables();
        assert_eq!(v["stem.1.num_batches_tracked"].int64_value(&[]), 1);
        assert!(
            v["stem.1.running_mean"]
                .abs()
                .sum(Kind::Float)
                .double_value(&[])
                > 0.0
        );
        y.sum(Kind::Float).backward();
        assert!(v["layer1.0.conv1.0.weight"].grad().defined());
    }
}
