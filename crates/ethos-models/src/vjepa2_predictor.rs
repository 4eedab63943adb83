//! The V-JEPA 2 predictor (Hugging Face transformers' `VJEPA2Predictor`): it maps the context encoder's
//! tokens to its own width, adds a learnt mask token at every target position, runs its own pre-norm
//! RoPE blocks over context + target tokens sorted by position, and projects the target rows back to the
//! encoder width. Variables carry the Hugging Face names under the path it is built at
//! (`predictor.embeddings.predictor_embeddings.*`, `predictor.embeddings.mask_tokens`,
//! `predictor.layer.{i}.*`, `predictor.layernorm.*`, `predictor.proj.*`).

use tch::{Kind, Tensor, nn};

use crate::vjepa2::{EncoderLayer, Rope, Vjepa2Config, Vjepa2Error, layer_norm, linear};

/// The predictor's own transformer geometry read from a [`Vjepa2Config`] (`pred_*` keys): a config whose
/// width, heads, depth and MLP ratio are the predictor's, so the encoder's blocks and RoPE build it.
/// RoPE positions stay on the encoder's grid (`crop_size / patch_size`), as in transformers.
pub fn predictor_block_config(cfg: &Vjepa2Config) -> Vjepa2Config {
    let mut p = cfg.clone();
    p.hidden_size = cfg.pred_hidden_size;
    p.num_attention_heads = cfg.pred_num_attention_heads;
    p.num_hidden_layers = cfg.pred_num_hidden_layers;
    p.mlp_ratio = cfg.pred_mlp_ratio;
    p
}

/// Checks the `pred_*` keys of a config (the encoder keys are checked by [`Vjepa2Config::validate`]);
/// `origin` names the config in the error.
pub fn validate_predictor_config(cfg: &Vjepa2Config, origin: &str) -> Result<(), Vjepa2Error> {
    let bad = |key: &'static str, value: String, reason: String| Vjepa2Error::InvalidConfig {
        origin: origin.to_string(),
        key,
        value,
        reason,
    };
    for (key, value) in [
        ("pred_hidden_size", cfg.pred_hidden_size),
        ("pred_num_attention_heads", cfg.pred_num_attention_heads),
        ("pred_num_mask_tokens", cfg.pred_num_mask_tokens),
    ] {
        if value < 1 {
            return Err(bad(key, value.to_string(), "must be at least 1".into()));
        }
    }
    if cfg.pred_num_hidden_layers < 0 {
        return Err(bad(
            "pred_num_hidden_layers",
            cfg.pred_num_hidden_layers.to_string(),
            "must be >= 0".into(),
        ));
    }
    if cfg.pred_hidden_size % cfg.pred_num_attention_heads != 0 {
        return Err(bad(
            "pred_num_attention_heads",
            cfg.pred_num_attention_heads.to_string(),
            format!("must divide pred_hidden_size {}", cfg.pred_hidden_size),
        ));
    }
    let p = predictor_block_config(cfg);
    if !(p.mlp_ratio.is_finite() && p.mlp_hidden() >= 1) {
        return Err(bad(
            "pred_mlp_ratio",
            cfg.pred_mlp_ratio.to_string(),
            "int(pred_hidden_size * pred_mlp_ratio) must be at least 1".into(),
        ));
    }
    Ok(())
}

/// transformers' `VJEPA2Predictor`: `(B, K, D)` context tokens + their positions + the target positions ->
/// `(B, M, D)` predictions of the target tokens (D = the encoder width).
#[derive(Debug)]
pub struct Vjepa2Predictor {
    block_cfg: Vjepa2Config,
    predictor_embeddings: nn::Linear,
    mask_tokens: Tensor,
    layers: Vec<EncoderLayer>,
    layernorm: nn::LayerNorm,
    proj: nn::Linear,
}

impl Vjepa2Predictor {
    /// Builds the predictor under `p`, initialised as transformers does for a fresh model (normal
    /// weights of std `initializer_range`, zero biases, identity LayerNorms, mask tokens zero when
    /// `pred_zero_init_mask_tokens`, else normal); load a checkpoint's `predictor.*` to use released
    /// weights.
    pub fn new(p: &nn::Path, cfg: &Vjepa2Config) -> Result<Self, Vjepa2Error> {
        cfg.validate("<in memory>")?;
        validate_predictor_config(cfg, "<in memory>")?;
        let block_cfg = predictor_block_config(cfg);
        let (width, std) = (cfg.pred_hidden_size, cfg.initializer_range);
        let embeddings = p / "embeddings";
        let mask_init = if cfg.pred_zero_init_mask_tokens {
            nn::Init::Const(0.0)
        } else {
            nn::Init::Randn {
                mean: 0.0,
                stdev: std,
            }
        };
        let n = cfg.pred_num_hidden_layers;
        let layers = (0..n)
            .map(|i| {
                // transformers' linear stochastic-depth schedule over the predictor's blocks.
                let rate = if n > 1 {
                    cfg.drop_path_rate * i as f64 / (n - 1) as f64
                } else {
                    0.0
                };
                EncoderLayer::new(p / "layer" / i, &block_cfg, rate)
            })
            .collect();
        Ok(Self {
            predictor_embeddings: linear(
                &embeddings / "predictor_embeddings",
                cfg.hidden_size,
                width,
                true,
                std,
            ),
            mask_tokens: embeddings.var(
                "mask_tokens",
                &[cfg.pred_num_mask_tokens, 1, 1, width],
                mask_init,
            ),
            layers,
            layernorm: layer_norm(p / "layernorm", width, cfg.layer_norm_eps),
            proj: linear(p / "proj", width, cfg.hidden_size, true, std),
            block_cfg,
        })
    }

    /// Number of predictor blocks.
    pub fn num_blocks(&self) -> usize {
        self.layers.len()
    }

    /// Number of learnt mask tokens.
    pub fn num_mask_tokens(&self) -> i64 {
        self.mask_tokens.size()[0]
    }

    /// Predicts the target tokens of one mask group.
    ///
    /// `context`: `(B, K, D)` context-encoder output; `context_positions`: `(B, K)` int64 token indices
    /// of those tokens; `target_positions`: `(B, M)` int64 token indices to predict. Every target
    /// position gets mask token `mask_index % pred_num_mask_tokens` (V-JEPA 2's pre-training uses 0 for
    /// every mask group of a clip length). Tokens are sorted by position (stable) before the blocks, so
    /// RoPE and attention see them in clip order; the output rows follow `target_positions`' order.
    /// Returns `(B, M, D)`.
    pub fn forward_t(
        &self,
        context: &Tensor,
        context_positions: &Tensor,
        target_positions: &Tensor,
        mask_index: i64,
        train: bool,
    ) -> Tensor {
        let device = context.device();
        let context_positions = context_positions.to_device(device).to_kind(Kind::Int64);
        let target_positions = target_positions.to_device(device).to_kind(Kind::Int64);
        let (batch, n_context) = (context.size()[0], context.size()[1]);
        let n_target = target_positions.size()[1];
        let x = context.apply(&self.predictor_embeddings);
        let width = x.size()[2];
        let token = self
            .mask_tokens
            .get(mask_index.rem_euclid(self.num_mask_tokens()))
            .reshape([1, 1, width]);
        let targets = token.expand([batch, n_target, width], false);
        let x = Tensor::cat(&[&x, &targets.to_kind(x.kind())], 1);
        let positions = Tensor::cat(&[&context_positions, &target_positions], 1);
        let order = positions.argsort_stable(true, 1, false);
        let positions = positions.gather(1, &order, false);
        let gather_index = order.unsqueeze(-1).expand([-1, -1, width], false);
        let mut x = x.gather(1, &gather_index, false);
        let rope = Rope::at_positions(&self.block_cfg, &positions);
        for layer in &self.layers {
            x = layer.forward(&x, &rope, train);
        }
        let x = x.apply(&self.layernorm);
        // Back to context-then-target order: row order[i] of the input went to sorted row i.
        let unsorted = x.zeros_like().scatter(1, &gather_index, &x);
        unsorted.narrow(1, n_context, n_target).apply(&self.proj)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn tiny() -> Vjepa2Config {
        serde_json::from_str(
            r#"{"patch_size": 8, "crop_size": 16, "frames_per_clip": 4, "tubelet_size": 2,
                "hidden_size": 24, "num_attention_heads": 2, "num_hidden_layers": 1,
                "pred_hidden_size": 12, "pred_num_attention_heads": 2, "pred_num_hidden_layers": 2,
                "pred_num_mask_tokens": 3, "pred_zero_init_mask_tokens": false}"#,
        )
        .unwrap()
    }

    #[test]
    fn builds_with_hugging_face_names_and_shapes() {
        let vs = nn::VarStore::new(Device::Cpu);
        let pred = Vjepa2Predictor::new(&(vs.root() / "predictor"), &tiny()).unwrap();
        assert_eq!(pred.num_blocks(), 2);
        let vars = vs.variables();
        assert_eq!(
            vars["predictor.embeddings.mask_tokens"].size(),
            vec![3, 1, 1, 12]
        );
        assert_eq!(
            vars["predictor.embeddings.predictor_embeddings.weight"].size(),
            vec![12, 24]
        );
        assert_eq!(
            vars["predictor.layer.1.mlp.fc1.weight"].size(),
            vec![48, 12]
        );
        assert_eq!(vars["predictor.proj.weight"].size(), vec![24, 12]);
        assert_eq!(vars["predictor.layernorm.bias"].size(), vec![12]);
    }

    #[test]
    fn output_follows_target_order_and_ignores_input_order() {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let pred = Vjepa2Predictor::new(&(vs.root() / "predictor"), &tiny()).unwrap();
        let context = Tensor::randn([1, 3, 24], (Kind::Float, Device::Cpu));
        let ctx = Tensor::from_slice(&[5i64, 1, 6]).unsqueeze(0);
        let tgt = Tensor::from_slice(&[0i64, 7, 2]).unsqueeze(0);
        let out = pred.forward_t(&context, &ctx, &tgt, 0, false);
        assert_eq!(out.size(), vec![1, 3, 24]);
        // Permuting the context rows with their positions and the targets changes nothing but the
        // order of the output rows: the blocks see the same sorted sequence.
        let perm = Tensor::from_slice(&[2i64, 0, 1]);
        let out2 = pred.forward_t(
            &context.index_select(1, &perm),
            &ctx.index_select(1, &perm),
            &tgt.index_select(1, &perm),
            0,
            false,
        );
        let diff = (out.index_select(1, &perm) - out2)
            .abs()
            .max()
            .double_value(&[]);
        assert!(diff < 1e-6, "{diff}");
        // Another mask token gives other predictions; the index wraps around.
        let other = pred.forward_t(&context, &ctx, &tgt, 1, false);
        assert!((&out - &other).abs().max().double_value(&[]) > 1e-4);
        let wrapped = pred.forward_t(&context, &ctx, &tgt, 3, false);
        assert_eq!((&out - &wrapped).abs().max().double_value(&[]), 0.0);
    }

    #[test]
    fn rejects_bad_predictor_keys() {
        let mut cfg = tiny();
        cfg.pred_num_attention_heads = 5;
        let err = validate_predictor_config(&cfg, "c.json").unwrap_err();
        assert!(
            err.to_string().contains("pred_num_attention_heads"),
            "{err}"
        );
        let mut cfg = tiny();
        cfg.pred_num_mask_tokens = 0;
        let err = validate_predictor_config(&cfg, "c.json").unwrap_err();
        assert!(err.to_string().contains("pred_num_mask_tokens"), "{err}");
    }
}
