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
use crate::model::{Layout, VideoModel};

/// Constructor arguments of [`R3d18`]: the classifier and the block settings (torchvision's
/// `r3d_18` by default; [`R3dConfig::preset`] names the others).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct R3dConfig {
    /// Classes of the classifier `fc` (400 for the Kinetics-400 weights).
    pub num_classes: i64,
    /// Dropout before `fc` in training (torchvision's r3d_18 has none: 0.0).
    pub head_dropout: f64,
    /// Output channels of the stem (64 in r3d_18).
    pub stem_width: i64,
    /// Channels of the four stages (64, 128, 256, 512 in r3d_18).
    pub widths: [i64; 4],
    /// BasicBlocks per stage (2 in r3d_18).
    pub blocks_per_stage: usize,
}

impl Default for R3dConfig {
    fn default() -> Self {
        R3dConfig {
            num_classes: 400,
            head_dropout: 0.0,
            stem_width: 64,
            widths: [64, 128, 256, 512],
            blocks_per_stage: 2,
        }
    }
}

/// Names accepted by [`R3dConfig::preset`].
pub const R3D_PRESETS: [&str; 2] = ["r3d_18", "r3d_demo"];

impl R3dConfig {
    /// Block settings by name: `r3d_18` (torchvision's, 33.2 M parameters) or `r3d_demo` (stem 16,
    /// stages 16-32-64-128, one block each: 0.9 M parameters, trains from scratch on a CPU in
    /// minutes). `None` for other names.
    pub fn preset(name: &str, num_classes: i64, head_dropout: f64) -> Option<Self> {
        let base = R3dConfig {
            num_classes,
            head_dropout,
            ..R3dConfig::default()
        };
        match name {
            "r3d_18" => Some(base),
            "r3d_demo" => Some(R3dConfig {
                stem_width: 16,
                widths: [16, 32, 64, 128],
                blocks_per_stage: 1,
                ..base
            }),
            _ => None,
        }
    }

    /// Width of the pooled features that enter `fc` (the last stage's channels).
    pub fn features(&self) -> i64 {
        self.widths[3]
    }
}

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

/// torchvision's `r3d_18` (or smaller block settings, see [`R3dConfig::preset`]); input
/// `(B, 3, T, H, W)`, logits `(B, num_classes)`.
#[derive(Debug)]
pub struct R3d18 {
    stem: ConvBn,
    layers: Vec<Vec<BasicBlock>>,
    /// The classifier on the pooled `(B, widths[3])` features, at `fc`.
    pub fc: ClassifierHead,
}

impl R3d18 {
    /// Creates the model's variables under `p` (use the var store root for torchvision key names).
    pub fn new(p: &nn::Path, cfg: &R3dConfig) -> Self {
        let stem = ConvBn::new(
            &(p / "stem"),
            3,
            cfg.stem_width,
            [3, 7, 7],
            [1, 2, 2],
            [1, 3, 3],
        );
        let mut cin = cfg.stem_width;
        let mut layers = Vec::new();
        for (i, &w) in cfg.widths.iter().enumerate() {
            let lp = p / format!("layer{}", i + 1);
            let stride = if i == 0 { 1 } else { 2 };
            let blocks = (0..cfg.blocks_per_stage.max(1))
                .map(|b| {
                    let (c, s) = if b == 0 { (cin, stride) } else { (w, 1) };
                    BasicBlock::new(&(&lp / b.to_string()), c, w, s)
                })
                .collect();
            layers.push(blocks);
            cin = w;
        }
        let fc = ClassifierHead::new(
            &(p / "fc"),
            cfg.features(),
            cfg.num_classes,
            cfg.head_dropout,
        );
        R3d18 { stem, layers, fc }
    }

    /// Pooled features `(B, widths[3])` (the input of `fc`).
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

    fn input_layout(&self) -> Layout {
        Layout::Bcthw
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
                ..R3dConfig::default()
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

    fn param_count(vs: &nn::VarStore) -> i64 {
        vs.trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum()
    }

    #[test]
    fn presets_have_their_block_settings() {
        let vs = nn::VarStore::new(Device::Cpu);
        let _ = R3d18::new(&vs.root(), &R3dConfig::preset("r3d_18", 400, 0.0).unwrap());
        // torchvision's r3d_18: 33,371,472 parameters (BatchNorm weights and biases included).
        assert_eq!(param_count(&vs), 33_371_472);

        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = R3dConfig::preset("r3d_demo", 2, 0.2).unwrap();
        let m = R3d18::new(&vs.root(), &cfg);
        let names: Vec<String> = vs.variables().into_keys().collect();
        assert!(names.iter().any(|k| k == "layer4.0.conv1.0.weight"));
        assert!(
            !names.iter().any(|k| k.starts_with("layer1.1.")),
            "one block per stage"
        );
        assert_eq!(vs.variables()["fc.weight"].size(), vec![2, 128]);
        let y = m.forward_t(
            &Tensor::zeros([1, 3, 8, 64, 64], (Kind::Float, Device::Cpu)),
            false,
        );
        assert_eq!(y.size(), vec![1, 2]);
        assert!(R3dConfig::preset("r3d_50", 2, 0.0).is_none());
    }
}
