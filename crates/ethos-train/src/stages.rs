//! Two-stage fine-tuning (`train.freeze_backbone_epochs: N`): the first N epochs train only the
//! head, then the backbone (its part not frozen by `model.freeze_encoder_layers`) joins with its
//! own learning rate, the schedule continuing. The reference study's remedy for minority-class
//! collapse, and the usual way to fine-tune an adapted encoder.
//!
//! **How.** The optimiser is built over every trainable parameter (head and backbone) once. During
//! the head-only epochs the backbone's parameters have `requires_grad` off, so they get no
//! gradient, AdamW skips them (their step counts stay 0, their moments 0, no weight decay) and
//! they stay bit-identical; the backbone runs without a graph. From epoch N on they require
//! gradients again. Which stage an epoch is in depends on the epoch alone, so a resume on either
//! side of the switch continues exactly. (Batch-norm running statistics of a backbone in train
//! mode still update in the head-only epochs; V-JEPA 2 and MViT use layer norm.)
//!
//! **Learning rates.** A parameter's learning rate is the schedule's `lr(step)` times its scale
//! ([`lr_scales`]): 1 for the head; for the backbone `optim.backbone_lr / optim.lr` (1 when
//! unset) times `optim.layer_decay^(L + 1 - depth)` (1 when unset), where `L` is the number of
//! backbone blocks, `depth` is 0 for the patch / stem embedding, `i + 1` for block `i` and `L`
//! for anything after the blocks (a final norm) — BEiT's layer-wise decay.

use tch::{Tensor, nn};

/// Parameters of the backbone (everything but the head) that the optimiser trains.
pub struct TwoStage {
    freeze_epochs: usize,
    backbone: Vec<(String, Tensor)>,
}

/// True when `name` belongs to the head (starts with one of `head_prefixes`).
pub fn is_head(name: &str, head_prefixes: &[&str]) -> bool {
    head_prefixes.iter().any(|p| name.starts_with(p))
}

/// The block index in a parameter name: `layer.3.` / `blocks.3.` / `layers.3.` (V-JEPA 2, MViT)
/// or `layer3.` (R3D stages).
pub fn block_index(name: &str) -> Option<usize> {
    let parts: Vec<&str> = name.split('.').collect();
    for (i, p) in parts.iter().enumerate() {
        if matches!(*p, "layer" | "layers" | "blocks" | "block")
            && let Some(n) = parts.get(i + 1).and_then(|n| n.parse().ok())
        {
            return Some(n);
        }
        if let Some(n) = p.strip_prefix("layer").and_then(|n| n.parse().ok()) {
            return Some(n);
        }
    }
    None
}

/// Whether a backbone parameter sits below the first block (patch / stem embedding, positions).
fn is_embedding(name: &str) -> bool {
    name.split('.').any(|seg| {
        let s = seg.to_ascii_lowercase();
        s.contains("embed")
            || s.contains("stem")
            || s.contains("patch")
            || s == "conv_proj"
            || s.starts_with("pos")
    })
}

/// The learning-rate scale of every named parameter (see the module doc): `backbone_ratio` is
/// `optim.backbone_lr / optim.lr` (1 when unset), `layer_decay` `optim.layer_decay`.
pub fn lr_scales(
    names: &[String],
    head_prefixes: &[&str],
    backbone_ratio: f64,
    layer_decay: Option<f64>,
) -> Vec<f64> {
    let blocks = names
        .iter()
        .filter(|n| !is_head(n, head_prefixes))
        .filter_map(|n| block_index(n))
        .max()
        .map_or(0, |m| m + 1);
    names
        .iter()
        .map(|n| {
            if is_head(n, head_prefixes) {
                return 1.0;
            }
            let depth = match block_index(n) {
                Some(i) => i + 1,
                None if is_embedding(n) => 0,
                None => blocks,
            };
            let decay = layer_decay.map_or(1.0, |d| d.powi((blocks + 1 - depth) as i32));
            backbone_ratio * decay
        })
        .collect()
}

/// Sets up the parameter groups of a fine-tuning run on `optim` (built over every trainable
/// parameter of `vs`): the backbone's learning-rate scales from `optim.backbone_lr` /
/// `optim.layer_decay` (the head keeps the schedule's rate), and with `freeze_epochs > 0` the
/// [`TwoStage`] switch the trainer applies at every epoch start. Returns `None` for one stage.
pub fn configure(
    vs: &nn::VarStore,
    optim: &mut crate::optim::AdamW,
    head_prefixes: &[&str],
    cfg: &crate::optim::OptimConfig,
    freeze_epochs: usize,
) -> Option<TwoStage> {
    if cfg.backbone_lr.is_some() || cfg.layer_decay.is_some() {
        let ratio = match cfg.backbone_lr {
            Some(b) if cfg.lr > 0.0 => b / cfg.lr,
            _ => 1.0,
        };
        let names = optim.param_names();
        let scales = lr_scales(&names, head_prefixes, ratio, cfg.layer_decay);
        let by_name: std::collections::HashMap<&str, f64> =
            names.iter().map(String::as_str).zip(scales).collect();
        optim.set_lr_scales(&|n| by_name.get(n).copied().unwrap_or(1.0));
        let backbone = names.iter().filter(|n| !is_head(n, head_prefixes)).count();
        tracing::info!(
            "backbone learning rate: {} x the schedule's ({} parameters{})",
            ratio,
            backbone,
            cfg.layer_decay
                .map(|d| format!(", layer-wise decay {d}"))
                .unwrap_or_default()
        );
    }
    (freeze_epochs > 0).then(|| TwoStage::new(vs, head_prefixes, freeze_epochs))
}

impl TwoStage {
    /// The backbone's trainable parameters of `vs` (those requiring gradients now, i.e. after
    /// `model.freeze_encoder_layers`), head-only for the first `freeze_epochs` epochs.
    pub fn new(vs: &nn::VarStore, head_prefixes: &[&str], freeze_epochs: usize) -> Self {
        let mut backbone: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(n, t)| t.requires_grad() && !is_head(n, head_prefixes))
            .collect();
        backbone.sort_by(|a, b| a.0.cmp(&b.0));
        Self {
            freeze_epochs,
            backbone,
        }
    }

    /// Head-only epochs.
    pub fn freeze_epochs(&self) -> usize {
        self.freeze_epochs
    }

    /// The backbone parameters switched by the stages, by name.
    pub fn backbone_names(&self) -> Vec<&str> {
        self.backbone.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// Whether `epoch` (0-based) trains the head only.
    pub fn head_only(&self, epoch: usize) -> bool {
        epoch < self.freeze_epochs
    }

    /// Puts the backbone in `epoch`'s stage: no gradients in the head-only epochs, gradients from
    /// then on. Returns true when this call changed the stage.
    pub fn apply(&self, epoch: usize) -> bool {
        let want = !self.head_only(epoch);
        let mut changed = false;
        for (_, t) in &self.backbone {
            if t.requires_grad() != want {
                let _ = t.set_requires_grad(want);
                changed = true;
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_indices_and_scales_follow_the_layer_decay_rule() {
        assert_eq!(
            block_index("vjepa2.encoder.layer.3.attention.query.weight"),
            Some(3)
        );
        assert_eq!(block_index("blocks.11.mlp.0.weight"), Some(11));
        assert_eq!(block_index("layer2.0.conv1.0.weight"), Some(2));
        assert_eq!(
            block_index("vjepa2.encoder.embeddings.patch_embeddings.proj.weight"),
            None
        );
        let names: Vec<String> = [
            "vjepa2.encoder.embeddings.patch_embeddings.proj.weight",
            "vjepa2.encoder.layer.0.mlp.fc1.weight",
            "vjepa2.encoder.layer.1.mlp.fc1.weight",
            "vjepa2.encoder.layernorm.weight",
            "feral_head.queries",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let s = lr_scales(&names, &["feral_head."], 0.1, Some(0.5));
        let want = [0.1 * 0.125, 0.1 * 0.25, 0.1 * 0.5, 0.1 * 0.5, 1.0];
        for (a, b) in s.iter().zip(want) {
            assert!((a - b).abs() < 1e-15, "{s:?}");
        }
        assert_eq!(lr_scales(&names, &["feral_head."], 1.0, None), vec![1.0; 5]);
    }

    #[test]
    fn stages_switch_gradients_by_epoch() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let root = vs.root();
        let _b = root.sub("backbone").var("w", &[2], nn::Init::Const(1.0));
        let _h = root.sub("head").var("w", &[2], nn::Init::Const(1.0));
        let st = TwoStage::new(&vs, &["head."], 2);
        assert_eq!(st.backbone_names(), vec!["backbone.w"]);
        let vars = vs.variables();
        assert!(st.apply(0));
        assert!(!vars["backbone.w"].requires_grad());
        assert!(vars["head.w"].requires_grad());
        assert!(!st.apply(1));
        assert!(st.apply(2));
        assert!(vars["backbone.w"].requires_grad());
        // A resume at epoch 1 puts a fresh model in the head-only stage.
        assert!(st.apply(1));
        assert!(!vars["backbone.w"].requires_grad());
    }
}
