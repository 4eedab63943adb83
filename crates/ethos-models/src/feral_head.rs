//! The FERAL per-frame head on a V-JEPA 2 encoder: `num_queries` learnable queries (one per frame of the
//! chunk) cross-attend to the encoder tokens, then BatchNorm1d, Dropout and a Linear layer give one logit
//! vector per query. Clip-level predictions aggregate the frames by mean probability or majority vote.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor, nn};

pub use crate::config::ClipAggregation;
use crate::freeze::{self, ParamCounts};
use crate::model::{Layout, VideoModel};
use crate::vjepa2::{Vjepa2Config, Vjepa2Encoder, Vjepa2Error};

fn default_num_queries() -> i64 {
    64
}
fn default_num_heads() -> i64 {
    16
}
fn default_dropout() -> f64 {
    0.1
}
fn default_layer_norm_eps() -> f64 {
    1e-5
}

/// Shape of the FERAL head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeralHeadConfig {
    /// Learnable queries = predictions per chunk (one per frame of a `num_queries`-frame chunk).
    #[serde(default = "default_num_queries")]
    pub num_queries: i64,
    /// Cross-attention heads (16 for ViT-L); must divide the encoder width.
    #[serde(default = "default_num_heads")]
    pub num_heads: i64,
    /// Dropout before the classifier (training only).
    #[serde(default = "default_dropout")]
    pub dropout: f64,
    /// Epsilon of the query and token LayerNorms.
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    /// Output classes.
    pub num_classes: i64,
}

impl FeralHeadConfig {
    /// The FERAL defaults (64 queries, 16 heads, dropout 0.1, LayerNorm eps 1e-5) for `num_classes`.
    pub fn new(num_classes: i64) -> Self {
        Self {
            num_queries: default_num_queries(),
            num_heads: default_num_heads(),
            dropout: default_dropout(),
            layer_norm_eps: default_layer_norm_eps(),
            num_classes,
        }
    }

    /// The head for a V-JEPA 2 encoder: FERAL's 16 heads when they divide the encoder width, else the
    /// encoder's own head count (small test encoders); `dropout` is `model.head_dropout`.
    pub fn for_encoder(
        cfg: &Vjepa2Config,
        num_classes: i64,
        num_queries: i64,
        dropout: f64,
    ) -> Self {
        let heads = default_num_heads();
        let num_heads = if cfg.hidden_size % heads == 0 {
            heads
        } else {
            cfg.num_attention_heads
        };
        Self {
            num_queries,
            num_heads,
            dropout,
            num_classes,
            ..Self::new(num_classes)
        }
    }

    fn validate(&self, width: i64) -> Result<(), Vjepa2Error> {
        let bad = |key: &'static str, value: String, reason: String| Vjepa2Error::InvalidConfig {
            origin: "model (FERAL head)".into(),
            key,
            value,
            reason,
        };
        if self.num_queries < 1 {
            return Err(bad(
                "num_queries",
                self.num_queries.to_string(),
                "must be at least 1".into(),
            ));
        }
        if self.num_classes < 1 {
            return Err(bad(
                "num_classes",
                self.num_classes.to_string(),
                "must be at least 1".into(),
            ));
        }
        if self.num_heads < 1 || width % self.num_heads != 0 {
            return Err(bad(
                "num_heads",
                self.num_heads.to_string(),
                format!("must be >= 1 and divide the encoder width {width}"),
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(bad(
                "dropout",
                self.dropout.to_string(),
                "must be in [0, 1)".into(),
            ));
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0) {
            return Err(bad(
                "layer_norm_eps",
                self.layer_norm_eps.to_string(),
                "must be > 0".into(),
            ));
        }
        Ok(())
    }
}

/// The FERAL head: `(B, N, D)` tokens -> `(B * num_queries, C)` logits, row `b * num_queries + q` being
/// query (frame) `q` of sample `b`. Variables: `query_tokens` `(1, Q, D)`, `query_norm.*`, `token_norm.*`,
/// `attn.in_proj_weight` `(3D, D)` / `attn.in_proj_bias` / `attn.out_proj.*` (PyTorch
/// `nn.MultiheadAttention` layout, q|k|v stacked), `bn.*` (BatchNorm1d over D), `classifier.*`.
#[derive(Debug)]
pub struct FeralHead {
    cfg: FeralHeadConfig,
    query_tokens: Tensor,
    query_norm: nn::LayerNorm,
    token_norm: nn::LayerNorm,
    in_proj_weight: Tensor,
    in_proj_bias: Tensor,
    out_proj: nn::Linear,
    bn: nn::BatchNorm,
    classifier: nn::Linear,
}

impl FeralHead {
    /// Builds a freshly initialised head for tokens of width `width` under `p`: queries normal(0, 0.02),
    /// attention projections Xavier-uniform with zero biases (as `nn.MultiheadAttention`), BatchNorm
    /// identity, Linear layers with PyTorch's default init.
    pub fn new(p: &nn::Path, width: i64, cfg: &FeralHeadConfig) -> Result<Self, Vjepa2Error> {
        cfg.validate(width)?;
        let ln = nn::LayerNormConfig {
            eps: cfg.layer_norm_eps,
            ..Default::default()
        };
        let attn = p / "attn";
        let xavier = (6.0 / (width + 3 * width) as f64).sqrt();
        let bn = nn::BatchNormConfig {
            ws_init: nn::Init::Const(1.0),
            ..Default::default()
        };
        Ok(Self {
            cfg: cfg.clone(),
            query_tokens: p.var(
                "query_tokens",
                &[1, cfg.num_queries, width],
                nn::Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            ),
            query_norm: nn::layer_norm(p / "query_norm", vec![width], ln),
            token_norm: nn::layer_norm(p / "token_norm", vec![width], ln),
            in_proj_weight: attn.var(
                "in_proj_weight",
                &[3 * width, width],
                nn::Init::Uniform {
                    lo: -xavier,
                    up: xavier,
                },
            ),
            in_proj_bias: attn.var("in_proj_bias", &[3 * width], nn::Init::Const(0.0)),
            out_proj: nn::linear(
                &attn / "out_proj",
                width,
                width,
                nn::LinearConfig {
                    bs_init: Some(nn::Init::Const(0.0)),
                    ..Default::default()
                },
            ),
            bn: nn::batch_norm1d(p / "bn", width, bn),
            classifier: nn::linear(p / "classifier", width, cfg.num_classes, Default::default()),
        })
    }

    /// The head's config.
    pub fn config(&self) -> &FeralHeadConfig {
        &self.cfg
    }

    /// Attended query features `(B, Q, D)` (before BatchNorm).
    fn attend(&self, tokens: &Tensor) -> Tensor {
        let size = tokens.size();
        let (b, d) = (size[0], size[2]);
        let q_len = self.cfg.num_queries;
        let heads = self.cfg.num_heads;
        let queries = self
            .query_tokens
            .apply(&self.query_norm)
            .expand([b, q_len, d], false);
        let kv = tokens.apply(&self.token_norm);
        let w = self.in_proj_weight.chunk(3, 0);
        let bias = self.in_proj_bias.chunk(3, 0);
        let split = |x: Tensor| {
            let n = x.size()[1];
            x.view([b, n, heads, d / heads]).transpose(1, 2)
        };
        let q = split(queries.linear(&w[0], Some(&bias[0])));
        let k = split(kv.linear(&w[1], Some(&bias[1])));
        let v = split(kv.linear(&w[2], Some(&bias[2])));
        let scale = ((d / heads) as f64).powf(-0.5);
        let out = Tensor::scaled_dot_product_attention(
            &q,
            &k,
            &v,
            None::<Tensor>,
            0.0,
            false,
            Some(scale),
            false,
        );
        out.transpose(1, 2)
            .reshape([b, q_len, d])
            .apply(&self.out_proj)
    }

    /// `(B, N, D)` tokens -> `(B * num_queries, C)` logits.
    pub fn forward_t(&self, tokens: &Tensor, train: bool) -> Tensor {
        let d = tokens.size()[2];
        self.attend(tokens)
            .reshape([-1, d])
            .apply_t(&self.bn, train)
            .dropout(self.cfg.dropout, train)
            .apply(&self.classifier)
    }
}

/// `(B * Q, C)` flat head logits -> `(B, Q, C)` per-frame logits.
pub fn per_frame(flat: &Tensor, num_queries: i64) -> Tensor {
    let size = flat.size();
    flat.reshape([size[0] / num_queries, num_queries, size[1]])
}

/// Clip scores `(B, C)` from per-frame logits `(B, T, C)`: the mean softmax probability per class
/// (`MeanProb`), or the fraction of frames voting for each class (`MajorityVote`).
pub fn clip_scores(frame_logits: &Tensor, aggregation: ClipAggregation) -> Tensor {
    let probs = frame_logits.softmax(-1, Kind::Float);
    match aggregation {
        ClipAggregation::MeanProb => probs.mean_dim(1, false, Kind::Float),
        ClipAggregation::MajorityVote => {
            let classes = frame_logits.size()[2];
            probs
                .argmax(-1, false)
                .one_hot(classes)
                .to_kind(Kind::Float)
                .mean_dim(1, false, Kind::Float)
        }
    }
}

/// Clip class indices `(B,)` (int64) from per-frame logits `(B, T, C)`. `MajorityVote` picks the class with the
/// most frame votes; among tied classes the one with the higher mean probability wins (counts differ by
/// whole frames, the mean-probability term by less than one, so it only ever breaks ties).
pub fn clip_prediction(frame_logits: &Tensor, aggregation: ClipAggregation) -> Tensor {
    match aggregation {
        ClipAggregation::MeanProb => {
            clip_scores(frame_logits, ClipAggregation::MeanProb).argmax(-1, false)
        }
        ClipAggregation::MajorityVote => {
            let frames = frame_logits.size()[1] as f64;
            let votes = clip_scores(frame_logits, ClipAggregation::MajorityVote) * frames;
            let mean = clip_scores(frame_logits, ClipAggregation::MeanProb);
            (votes + mean * 0.5).argmax(-1, false)
        }
    }
}

/// A V-JEPA 2 encoder with the FERAL head: `(B, T, C, H, W)` -> per-frame logits `(B, Q, C)`.
/// Variables: `vjepa2.encoder.*` (Hugging Face names, so pretrained checkpoints load) and `feral_head.*`.
#[derive(Debug)]
pub struct Vjepa2FeralModel {
    encoder: Vjepa2Encoder,
    head: FeralHead,
}

impl Vjepa2FeralModel {
    /// Builds the model under `root`.
    pub fn new(
        root: &nn::Path,
        cfg: &Vjepa2Config,
        head: &FeralHeadConfig,
    ) -> Result<Self, Vjepa2Error> {
        let encoder = Vjepa2Encoder::new(&(root / "vjepa2" / "encoder"), cfg)?;
        let head = FeralHead::new(&(root / "feral_head"), cfg.hidden_size, head)?;
        Ok(Self { encoder, head })
    }

    /// The encoder.
    pub fn encoder(&self) -> &Vjepa2Encoder {
        &self.encoder
    }

    /// The head.
    pub fn head(&self) -> &FeralHead {
        &self.head
    }

    /// Freezes the patch embedding and the first `n` encoder blocks (`model.freeze_encoder_layers`; the
    /// final LayerNorm stays trainable): their variables in `vs` stop receiving gradients and leave the
    /// trainable list, and they run without building a graph. Call before building the optimiser.
    /// Returns the resulting trainable/frozen counts.
    pub fn freeze_encoder_layers(
        &mut self,
        vs: &nn::VarStore,
        n: usize,
    ) -> Result<ParamCounts, Vjepa2Error> {
        let prefixes = self.encoder.freeze_prefixes(n)?;
        freeze::freeze_prefixes(vs, &prefixes);
        self.encoder.set_frozen_blocks(n)?;
        Ok(freeze::param_counts(vs))
    }

    /// Flat logits `(B * Q, C)`, as the FERAL loss takes them.
    pub fn forward_flat(&self, input: &Tensor, train: bool) -> Tensor {
        self.head
            .forward_t(&self.encoder.forward_t(input, train), train)
    }

    /// Checks an input before a forward pass (see [`Vjepa2Encoder::check_input`]).
    pub fn check_input(&self, input: &Tensor) -> Result<(), Vjepa2Error> {
        self.encoder.check_input(input)
    }
}

impl VideoModel for Vjepa2FeralModel {
    fn forward_t(&self, input: &Tensor, train: bool) -> Tensor {
        per_frame(&self.forward_flat(input, train), self.head.cfg.num_queries)
    }

    fn forward_named(&self, input: &Tensor) -> Vec<(String, Tensor)> {
        let (tokens, mut named) = self.encoder.forward_named(input);
        let flat = self.head.forward_t(&tokens, false);
        named.push(("logits".into(), per_frame(&flat, self.head.cfg.num_queries)));
        named
    }

    fn input_layout(&self) -> Layout {
        Layout::Btchw
    }

    fn forward_backward(
        &self,
        input: &Tensor,
        train: bool,
        checkpointing: bool,
        loss_of: &mut dyn FnMut(&Tensor) -> Tensor,
    ) -> Tensor {
        let queries = self.head.cfg.num_queries;
        self.encoder
            .forward_backward_with(input, train, checkpointing, &mut |tokens| {
                loss_of(&per_frame(&self.head.forward_t(tokens, train), queries))
            })
    }

    fn supports_checkpointing(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vote_and_mean_aggregation() {
        // Sample 0: 3 frames favour class 1 slightly, 1 frame favours class 0 strongly.
        let logits =
            Tensor::from_slice(&[0.0f32, 0.1, 0.0, 0.1, 0.0, 0.1, 5.0, 0.0]).reshape([1, 4, 2]);
        let vote = clip_scores(&logits, ClipAggregation::MajorityVote);
        assert_eq!(
            Vec::<f32>::try_from(vote.reshape([-1])).unwrap(),
            vec![0.25, 0.75]
        );
        assert_eq!(
            clip_prediction(&logits, ClipAggregation::MajorityVote).int64_value(&[0]),
            1
        );
        assert_eq!(
            clip_prediction(&logits, ClipAggregation::MeanProb).int64_value(&[0]),
            0
        );
        // A 2-2 tie goes to the class with the higher mean probability.
        let tie =
            Tensor::from_slice(&[0.0f32, 0.1, 0.0, 0.1, 3.0, 0.0, 3.0, 0.0]).reshape([1, 4, 2]);
        assert_eq!(
            clip_prediction(&tie, ClipAggregation::MajorityVote).int64_value(&[0]),
            0
        );
    }
}
