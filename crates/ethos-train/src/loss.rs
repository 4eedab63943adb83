//! The classification loss: focal loss on soft targets with class weights and label smoothing,
//! plus the mixup helper that makes the soft targets.
//!
//! For logits `z` of shape `(B, C)`, targets `y` of shape `(B, C)` (rows of class probabilities:
//! one-hot labels or mixup mixtures), class weights `w` (`C`), focal exponent `γ` and label
//! smoothing `ε`:
//!
//! ```text
//! p_ic    = softmax(z_i)_c                      (computed as exp(log_softmax), float32)
//! q_ic    = (1 − ε) · y_ic + ε / C              (label smoothing)
//! loss_i  = − Σ_c  w_c · (1 − p_ic)^γ · q_ic · log p_ic
//! norm_i  =   Σ_c  w_c · q_ic
//! batch   =   Σ_i loss_i / Σ_i norm_i           (weighted mean)
//! ```
//!
//! Why this form: with `γ = 0`, `ε = 0` and one-hot targets it is exactly PyTorch's
//! `F.cross_entropy(z, labels, weight=w)` (a weighted mean, `Σ w_yi · nll_i / Σ w_yi`), so the
//! class weights change which samples matter but not the scale of the loss (the learning rate keeps
//! its meaning whether weights are on or off). The same normaliser is used for soft targets, so a
//! mixup batch is the `λ`-mixture of the two hard-label losses' numerators and denominators rather
//! than PyTorch's unnormalised soft-target mean. The focal factor `(1 − p_ic)^γ` is applied per
//! class term (for one-hot targets this is the usual focal loss `−w_y (1 − p_y)^γ log p_y`); it is
//! not in the normaliser, so `γ > 0` lowers the loss of easy samples instead of rescaling all.
//! With uniform weights the normaliser is `B`, a plain mean. The per-sample loss reported in
//! `per_sample_loss.csv` is `loss_i / norm_i` (the sample's focal cross-entropy, independent of the
//! weight of its class).
//!
//! Class weights from the training-split class counts `N_c` (every class must occur):
//! `inv_freq`: `w_c = N_max / N_c` (the majority class gets 1, the reference minority 1199/175 =
//! 6.85); `inv_freq_sqrt`: `w_c = sqrt(N_max / N_c)` (2.617); an explicit list is used as given;
//! `none`: all 1. `use_class_weights: true` is shorthand for `inv_freq`.

use rand::Rng;
use rand::seq::SliceRandom;
use rand_distr::Distribution;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// Errors of the loss configuration.
#[derive(Debug, thiserror::Error)]
pub enum LossError {
    /// A configuration value is out of range or inconsistent.
    #[error("loss.{key}: {message}")]
    BadValue {
        /// Key inside the `loss` section.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A class has no training samples, so inverse-frequency weights are undefined.
    #[error(
        "loss.class_weights: class `{class}` has no samples in the training split, so `{scheme}` weights are undefined"
    )]
    EmptyClass {
        /// Class name.
        class: String,
        /// The weighting scheme.
        scheme: String,
    },
    /// `augmentation.mixup_alpha` is not a valid Beta parameter.
    #[error("augmentation.mixup_alpha must be > 0 (got {0})")]
    BadMixupAlpha(f64),
}

impl ethos_core::Classify for LossError {
    /// True when the error comes from the user's config or data (every variant does).
    fn kind(&self) -> ethos_core::ErrorKind {
        ethos_core::ErrorKind::BadInput
    }
}

/// How class weights are chosen (`loss.class_weights`).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum ClassWeights {
    /// All weights 1.
    #[default]
    None,
    /// `w_c = N_max / N_c`.
    InvFreq,
    /// `w_c = sqrt(N_max / N_c)`.
    InvFreqSqrt,
    /// Given weights, one per class in class-list order.
    Explicit(Vec<f64>),
}

impl Serialize for ClassWeights {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ClassWeights::None => s.serialize_str("none"),
            ClassWeights::InvFreq => s.serialize_str("inv_freq"),
            ClassWeights::InvFreqSqrt => s.serialize_str("inv_freq_sqrt"),
            ClassWeights::Explicit(w) => w.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for ClassWeights {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ClassWeights;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "`none`, `inv_freq`, `inv_freq_sqrt` or a list of numbers (one per class)",
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ClassWeights, E> {
                match v {
                    "none" => Ok(ClassWeights::None),
                    "inv_freq" => Ok(ClassWeights::InvFreq),
                    "inv_freq_sqrt" => Ok(ClassWeights::InvFreqSqrt),
                    other => Err(E::unknown_variant(
                        other,
                        &["none", "inv_freq", "inv_freq_sqrt"],
                    )),
                }
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<ClassWeights, E> {
                Ok(ClassWeights::None)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<ClassWeights, A::Error> {
                let mut w = Vec::new();
                while let Some(x) = seq.next_element::<f64>()? {
                    w.push(x);
                }
                Ok(ClassWeights::Explicit(w))
            }
        }
        d.deserialize_any(V)
    }
}

/// The `loss` config section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LossConfig {
    /// Focal exponent `γ` (0 = cross-entropy).
    pub focal_gamma: f64,
    /// Class weighting scheme or explicit weights.
    pub class_weights: ClassWeights,
    /// Shorthand for `class_weights: inv_freq`.
    pub use_class_weights: bool,
    /// Label smoothing `ε` in `[0, 1)`.
    pub label_smoothing: f64,
    /// Upper bound on every class weight (FERAL's cap for very rare classes); `None` = no cap.
    /// Applied after the scheme, so `inv_freq` with a cap of 5 gives a 1:40 class weight 5.
    pub max_class_weight: Option<f64>,
}

impl Default for LossConfig {
    fn default() -> Self {
        LossConfig {
            focal_gamma: 0.0,
            class_weights: ClassWeights::None,
            use_class_weights: false,
            label_smoothing: 0.0,
            max_class_weight: None,
        }
    }
}

impl LossConfig {
    /// The effective weighting scheme (`use_class_weights: true` means `inv_freq`); an error when
    /// both keys are set to different schemes.
    pub fn scheme(&self) -> Result<ClassWeights, LossError> {
        match (&self.class_weights, self.use_class_weights) {
            (ClassWeights::None, true) => Ok(ClassWeights::InvFreq),
            (ClassWeights::InvFreq, true) => Ok(ClassWeights::InvFreq),
            (other, true) => Err(LossError::BadValue {
                key: "use_class_weights",
                message: format!(
                    "`use_class_weights: true` means `class_weights: inv_freq`, but class_weights is {}; set only one",
                    serde_json::to_string(other).unwrap_or_default()
                ),
            }),
            (other, false) => Ok(other.clone()),
        }
    }

    /// Checks the values for `num_classes` classes.
    pub fn validate(&self, num_classes: usize) -> Result<(), LossError> {
        if !(self.focal_gamma.is_finite() && self.focal_gamma >= 0.0) {
            return Err(LossError::BadValue {
                key: "focal_gamma",
                message: format!("must be a finite number >= 0 (got {})", self.focal_gamma),
            });
        }
        if !(self.label_smoothing >= 0.0 && self.label_smoothing < 1.0) {
            return Err(LossError::BadValue {
                key: "label_smoothing",
                message: format!("must be in [0, 1) (got {})", self.label_smoothing),
            });
        }
        if let Some(cap) = self.max_class_weight
            && !(cap.is_finite() && cap >= 1.0)
        {
            return Err(LossError::BadValue {
                key: "max_class_weight",
                message: format!("must be a finite number >= 1 (got {cap})"),
            });
        }
        if let ClassWeights::Explicit(w) = self.scheme()? {
            if w.len() != num_classes {
                return Err(LossError::BadValue {
                    key: "class_weights",
                    message: format!("{} weights given for {num_classes} classes", w.len()),
                });
            }
            if let Some(bad) = w.iter().find(|x| !(x.is_finite() && **x > 0.0)) {
                return Err(LossError::BadValue {
                    key: "class_weights",
                    message: format!("weights must be finite and > 0 (got {bad})"),
                });
            }
        }
        Ok(())
    }

    /// The class weights for the training-split class counts (class-list order).
    pub fn class_weights_for(
        &self,
        counts: &[u64],
        classes: &[String],
    ) -> Result<Vec<f64>, LossError> {
        self.validate(counts.len())?;
        let weights = self.uncapped_class_weights(counts, classes)?;
        Ok(match self.max_class_weight {
            Some(cap) => weights.into_iter().map(|w| w.min(cap)).collect(),
            None => weights,
        })
    }

    fn uncapped_class_weights(
        &self,
        counts: &[u64],
        classes: &[String],
    ) -> Result<Vec<f64>, LossError> {
        let scheme = self.scheme()?;
        let inverse = |sqrt: bool, name: &str| -> Result<Vec<f64>, LossError> {
            if let Some(k) = counts.iter().position(|&n| n == 0) {
                return Err(LossError::EmptyClass {
                    class: classes.get(k).cloned().unwrap_or_else(|| format!("#{k}")),
                    scheme: name.to_string(),
                });
            }
            let max = *counts.iter().max().unwrap_or(&1) as f64;
            Ok(counts
                .iter()
                .map(|&n| {
                    let r = max / n as f64;
                    if sqrt { r.sqrt() } else { r }
                })
                .collect())
        };
        match scheme {
            ClassWeights::None => Ok(vec![1.0; counts.len()]),
            ClassWeights::InvFreq => inverse(false, "inv_freq"),
            ClassWeights::InvFreqSqrt => inverse(true, "inv_freq_sqrt"),
            ClassWeights::Explicit(w) => Ok(w),
        }
    }

    /// Builds the loss with the given class weights (from [`LossConfig::class_weights_for`]).
    pub fn build(&self, class_weights: Vec<f64>) -> Result<FocalLoss, LossError> {
        self.validate(class_weights.len())?;
        Ok(FocalLoss {
            gamma: self.focal_gamma,
            label_smoothing: self.label_smoothing,
            class_weights,
        })
    }
}

/// Focal loss on soft targets with class weights and label smoothing (formula in the module doc).
#[derive(Debug, Clone, PartialEq)]
pub struct FocalLoss {
    /// Focal exponent `γ`.
    pub gamma: f64,
    /// Label smoothing `ε`.
    pub label_smoothing: f64,
    /// Class weights `w_c`, class-list order.
    pub class_weights: Vec<f64>,
}

/// The two sums of a batch loss: `Σ_i loss_i` and `Σ_i norm_i` (0-dim float32 tensors with grad).
/// Several batches combine exactly as `Σ numerator / Σ denominator`.
pub struct LossParts {
    /// `Σ_i loss_i`.
    pub numerator: Tensor,
    /// `Σ_i norm_i`.
    pub denominator: Tensor,
    /// `loss_i / norm_i`, shape `(B,)`, detached (for per-sample reports).
    pub per_sample: Tensor,
}

impl FocalLoss {
    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.class_weights.len()
    }

    /// Both sums and the per-sample losses for logits `(B, C)` and soft targets `(B, C)`.
    /// Logits are used in float32 whatever their dtype (so bf16/fp16 autocast does not lose
    /// precision in the log-softmax).
    pub fn parts(&self, logits: &Tensor, targets: &Tensor) -> LossParts {
        let c = self.num_classes() as i64;
        let logits = logits.to_kind(Kind::Float);
        let targets = targets.to_kind(Kind::Float).to_device(logits.device());
        let q = if self.label_smoothing > 0.0 {
            targets * (1.0 - self.label_smoothing) + self.label_smoothing / c as f64
        } else {
            targets
        };
        let w = Tensor::from_slice(&self.class_weights)
            .to_kind(Kind::Float)
            .to_device(logits.device())
            .view([1, c]);
        let log_p = logits.log_softmax(-1, Kind::Float);
        let mut term = &w * &q * &log_p;
        if self.gamma != 0.0 {
            let focal = (log_p.exp().neg() + 1.0)
                .clamp_min(0.0)
                .pow_tensor_scalar(self.gamma);
            term *= focal;
        }
        let loss_i = -term.sum_dim_intlist([-1i64].as_slice(), false, Kind::Float);
        let norm_i = (&w * &q).sum_dim_intlist([-1i64].as_slice(), false, Kind::Float);
        let per_sample = (&loss_i / &norm_i).detach();
        LossParts {
            numerator: loss_i.sum(Kind::Float),
            denominator: norm_i.sum(Kind::Float),
            per_sample,
        }
    }

    /// The batch loss `Σ loss_i / Σ norm_i` (0-dim float32).
    pub fn forward(&self, logits: &Tensor, targets: &Tensor) -> Tensor {
        let parts = self.parts(logits, targets);
        parts.numerator / parts.denominator
    }

    /// The batch loss for hard labels (class indices, `(B,)` int64).
    pub fn forward_labels(&self, logits: &Tensor, labels: &Tensor) -> Tensor {
        self.forward(logits, &one_hot(labels, self.num_classes()))
    }
}

/// One-hot float32 targets `(B, C)` from class indices `(B,)`.
pub fn one_hot(labels: &Tensor, num_classes: usize) -> Tensor {
    labels
        .to_kind(Kind::Int64)
        .one_hot(num_classes as i64)
        .to_kind(Kind::Float)
}

/// What one mixup draw did: `mixed_i = λ · x_i + (1 − λ) · x_{partner[i]}`.
#[derive(Debug, Clone, PartialEq)]
pub struct MixupDraw {
    /// Mixing weight `λ ~ Beta(α, α)` of the sample itself.
    pub lambda: f64,
    /// Partner of each sample: a random permutation of `0..B` (a sample may be its own partner).
    pub partner: Vec<usize>,
}

/// Draws `λ ~ Beta(α, α)` and then a partner permutation, in that order, from `rng` (derive the
/// RNG from run seed, epoch and batch index for reproducibility).
pub fn draw_mixup<R: Rng + ?Sized>(
    alpha: f64,
    batch: usize,
    rng: &mut R,
) -> Result<MixupDraw, LossError> {
    if !(alpha.is_finite() && alpha > 0.0) {
        return Err(LossError::BadMixupAlpha(alpha));
    }
    let beta = rand_distr::Beta::new(alpha, alpha).map_err(|_| LossError::BadMixupAlpha(alpha))?;
    let lambda = beta.sample(rng);
    let mut partner: Vec<usize> = (0..batch).collect();
    partner.shuffle(rng);
    Ok(MixupDraw { lambda, partner })
}

/// Applies a mixup draw to a batch: inputs of shape `(B, ...)` and targets `(B, C)` are mixed with
/// the same `λ` and partners. Returns `(mixed inputs, mixed targets)`.
pub fn apply_mixup(inputs: &Tensor, targets: &Tensor, draw: &MixupDraw) -> (Tensor, Tensor) {
    let idx: Vec<i64> = draw.partner.iter().map(|&i| i as i64).collect();
    let idx = Tensor::from_slice(&idx).to_device(inputs.device());
    let mix = |t: &Tensor| -> Tensor {
        let kind = t.kind();
        let partner = t.index_select(0, &idx.to_device(t.device()));
        let mixed = t.to_kind(Kind::Float) * draw.lambda
            + partner.to_kind(Kind::Float) * (1.0 - draw.lambda);
        if matches!(
            kind,
            Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16
        ) {
            mixed.to_kind(kind)
        } else {
            mixed
        }
    };
    (mix(inputs), mix(targets))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn t2(rows: &[[f32; 2]]) -> Tensor {
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        Tensor::from_slice(&flat).view([rows.len() as i64, 2])
    }

    fn scalar(t: &Tensor) -> f64 {
        t.double_value(&[])
    }

    fn names() -> Vec<String> {
        vec!["ear".into(), "tail".into()]
    }

    #[test]
    fn class_weights_reference_counts() {
        let counts = [1199, 175];
        let cfg = LossConfig {
            use_class_weights: true,
            ..Default::default()
        };
        let w = cfg.class_weights_for(&counts, &names()).unwrap();
        assert_eq!(w[0], 1.0);
        assert!((w[1] - 6.851428571428571).abs() < 1e-12, "{w:?}");
        let cfg = LossConfig {
            class_weights: ClassWeights::InvFreqSqrt,
            ..Default::default()
        };
        let w = cfg.class_weights_for(&counts, &names()).unwrap();
        assert!((w[1] - 2.617523366).abs() < 1e-8, "{w:?}");
        let none = LossConfig::default()
            .class_weights_for(&counts, &names())
            .unwrap();
        assert_eq!(none, vec![1.0, 1.0]);
        let err = cfg
            .class_weights_for(&[10, 0], &names())
            .unwrap_err()
            .to_string();
        assert!(err.contains("`tail` has no samples"), "{err}");
        let capped = LossConfig {
            use_class_weights: true,
            max_class_weight: Some(5.0),
            ..Default::default()
        };
        assert_eq!(
            capped.class_weights_for(&counts, &names()).unwrap(),
            vec![1.0, 5.0]
        );
        let bad_cap = LossConfig {
            max_class_weight: Some(0.5),
            ..Default::default()
        };
        assert!(
            bad_cap
                .class_weights_for(&counts, &names())
                .unwrap_err()
                .to_string()
                .contains("max_class_weight")
        );
        let both = LossConfig {
            use_class_weights: true,
            class_weights: ClassWeights::InvFreqSqrt,
            ..Default::default()
        };
        assert!(both.scheme().is_err());
    }

    #[test]
    fn config_parses_names_lists_and_rejects_unknown() {
        let cfg: LossConfig = serde_json::from_str(
            r#"{"focal_gamma": 2, "class_weights": "inv_freq_sqrt", "label_smoothing": 0.1}"#,
        )
        .unwrap();
        assert_eq!(cfg.class_weights, ClassWeights::InvFreqSqrt);
        let cfg: LossConfig = serde_json::from_str(r#"{"class_weights": [1.0, 3.5]}"#).unwrap();
        assert_eq!(cfg.class_weights, ClassWeights::Explicit(vec![1.0, 3.5]));
        assert!(cfg.validate(3).is_err());
        let err =
            serde_json::from_str::<LossConfig>(r#"{"class_weights": "inverse"}"#).unwrap_err();
        assert!(err.to_string().contains("inv_freq"), "{err}");
        assert!(serde_json::from_str::<LossConfig>(r#"{"focal_gama": 2}"#).is_err());
        let bad = LossConfig {
            label_smoothing: 1.0,
            ..Default::default()
        };
        assert!(
            bad.validate(2)
                .unwrap_err()
                .to_string()
                .contains("loss.label_smoothing")
        );
    }

    #[test]
    fn cross_entropy_matches_hand_values() {
        // logits [0, ln 3] -> p = [1/4, 3/4]; logits [ln 4, 0] -> p = [4/5, 1/5].
        let logits = t2(&[[0.0, 3f32.ln()], [4f32.ln(), 0.0]]);
        let labels = Tensor::from_slice(&[1i64, 0]);
        let plain = LossConfig::default().build(vec![1.0, 1.0]).unwrap();
        let expect = -((0.75f64).ln() + (0.8f64).ln()) / 2.0;
        assert!((scalar(&plain.forward_labels(&logits, &labels)) - expect).abs() < 1e-6);
        // Weighted mean like PyTorch's cross_entropy(weight=w): (3·(−ln .75) + 1·(−ln .8)) / 4.
        let weighted = LossConfig::default().build(vec![1.0, 3.0]).unwrap();
        let expect = (3.0 * -(0.75f64).ln() + -(0.8f64).ln()) / 4.0;
        assert!((scalar(&weighted.forward_labels(&logits, &labels)) - expect).abs() < 1e-6);
    }

    #[test]
    fn focal_term_matches_hand_values() {
        let logits = t2(&[[0.0, 3f32.ln()], [4f32.ln(), 0.0]]);
        let labels = Tensor::from_slice(&[1i64, 0]);
        let focal = LossConfig {
            focal_gamma: 2.0,
            ..Default::default()
        }
        .build(vec![1.0, 1.0])
        .unwrap();
        let l1 = 0.25f64.powi(2) * -(0.75f64).ln();
        let l2 = 0.2f64.powi(2) * -(0.8f64).ln();
        let got = scalar(&focal.forward_labels(&logits, &labels));
        assert!((got - (l1 + l2) / 2.0).abs() < 1e-7, "{got}");
        let parts = focal.parts(&logits, &one_hot(&labels, 2));
        let per: Vec<f32> = Vec::try_from(&parts.per_sample).unwrap();
        assert!((per[0] as f64 - l1).abs() < 1e-7 && (per[1] as f64 - l2).abs() < 1e-7);
    }

    #[test]
    fn smoothing_and_soft_targets_match_hand_values() {
        // One sample, p = [1/4, 3/4], target class 1, ε = 0.1 -> q = [0.05, 0.95].
        let logits = t2(&[[0.0, 3f32.ln()]]);
        let target = t2(&[[0.0, 1.0]]);
        let smooth = LossConfig {
            label_smoothing: 0.1,
            ..Default::default()
        }
        .build(vec![1.0, 1.0])
        .unwrap();
        let expect = -(0.05 * 0.25f64.ln() + 0.95 * 0.75f64.ln());
        assert!((scalar(&smooth.forward(&logits, &target)) - expect).abs() < 1e-6);
        // Soft target [0.3, 0.7], weights [1, 2], γ = 1, ε = 0:
        // loss = −(1·0.75·0.3·ln .25 + 2·0.25·0.7·ln .75), norm = 0.3 + 1.4.
        let soft = t2(&[[0.3, 0.7]]);
        let all = LossConfig {
            focal_gamma: 1.0,
            ..Default::default()
        }
        .build(vec![1.0, 2.0])
        .unwrap();
        let num = -(0.75 * 0.3 * 0.25f64.ln() + 2.0 * 0.25 * 0.7 * 0.75f64.ln());
        let got = scalar(&all.forward(&logits, &soft));
        assert!((got - num / 1.7).abs() < 1e-6, "{got} vs {}", num / 1.7);
        // Everything together: ε = 0.2 on the soft target -> q = [0.34, 0.66].
        let cfg = LossConfig {
            focal_gamma: 1.0,
            label_smoothing: 0.2,
            ..Default::default()
        };
        let l = cfg.build(vec![1.0, 2.0]).unwrap();
        let num = -(0.75 * 0.34 * 0.25f64.ln() + 2.0 * 0.25 * 0.66 * 0.75f64.ln());
        let got = scalar(&l.forward(&logits, &soft));
        assert!((got - num / (0.34 + 1.32)).abs() < 1e-6);
    }

    #[test]
    fn loss_has_gradient() {
        let logits = t2(&[[0.2, -0.1], [1.0, 0.5]]).set_requires_grad(true);
        let l = LossConfig {
            focal_gamma: 2.0,
            ..Default::default()
        }
        .build(vec![1.0, 6.85])
        .unwrap();
        let loss = l.forward_labels(&logits, &Tensor::from_slice(&[1i64, 0]));
        loss.backward();
        let g = logits.grad();
        assert!(g.abs().sum(Kind::Float).double_value(&[]) > 0.0);
    }

    #[test]
    fn mixup_is_reproducible_and_mixes_inputs_and_targets_alike() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let d1 = draw_mixup(0.4, 4, &mut rng).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let d2 = draw_mixup(0.4, 4, &mut rng).unwrap();
        assert_eq!(d1, d2);
        assert!(d1.lambda > 0.0 && d1.lambda < 1.0);
        let mut sorted = d1.partner.clone();
        sorted.sort();
        assert_eq!(sorted, vec![0, 1, 2, 3]);
        let inputs = Tensor::from_slice(&[0f32, 10., 20., 30.]).view([4, 1, 1]);
        let targets = one_hot(&Tensor::from_slice(&[0i64, 1, 1, 0]), 2);
        let (x, y) = apply_mixup(&inputs, &targets, &d1);
        let x: Vec<f32> = Vec::try_from(&x.flatten(0, -1)).unwrap();
        let y: Vec<f32> = Vec::try_from(&y.select(1, 1)).unwrap();
        let cls = [0f64, 1., 1., 0.];
        for i in 0..4 {
            let j = d1.partner[i];
            let ex = d1.lambda * (10 * i) as f64 + (1.0 - d1.lambda) * (10 * j) as f64;
            assert!((x[i] as f64 - ex).abs() < 1e-4);
            let ey = d1.lambda * cls[i] + (1.0 - d1.lambda) * cls[j];
            assert!((y[i] as f64 - ey).abs() < 1e-6);
        }
        assert!(draw_mixup(0.0, 4, &mut rng).is_err());
    }
}
