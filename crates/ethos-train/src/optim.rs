//! The optimiser: AdamW with decoupled weight decay, written on tch tensors so that its whole
//! state (moments and step counts) can be saved and restored bit-exactly; global-norm gradient
//! clipping; gradient accumulation; fp16 loss scaling; bf16/fp16 autocast.
//!
//! AdamW step for a parameter `p` with gradient `g`, per-parameter step count `t` (PyTorch's and
//! libtorch's `AdamW` arithmetic, in the parameter's dtype):
//!
//! ```text
//! t   += 1
//! p   *= 1 − lr · wd                       (decoupled weight decay; wd = 0 for no-decay params)
//! m    = β1 · m + (1 − β1) · g
//! v    = β2 · v + (1 − β2) · g²
//! p   += −(lr / (1 − β1^t)) · m / (sqrt(v) / sqrt(1 − β2^t) + eps)
//! ```
//!
//! Parameters without a gradient are skipped (their `t` does not advance), as in PyTorch.
//! With `no_decay_norm_bias`, parameters that are 1-D or 0-D (biases, norm scales), whose name
//! ends in `.bias`, or whose name has a path segment containing `norm` get weight decay 0.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// Errors of the optimiser configuration and state.
#[derive(Debug, thiserror::Error)]
pub enum OptimError {
    /// A configuration value is out of range.
    #[error("optim.{key}: {message}")]
    BadValue {
        /// Key inside the `optim` section.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A saved optimiser state does not fit the model's parameters.
    #[error("optimiser state does not match the model: {0}")]
    StateMismatch(String),
}

impl ethos_core::Classify for OptimError {
    /// True when the error comes from the user's config or files (every variant does).
    fn kind(&self) -> ethos_core::ErrorKind {
        ethos_core::ErrorKind::BadInput
    }
}

/// The `optim` config section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    /// Peak learning rate (the schedule scales from/to it).
    pub lr: f64,
    /// Decoupled weight decay coefficient.
    pub weight_decay: f64,
    /// Adam `(β1, β2)`.
    pub betas: [f64; 2],
    /// Adam epsilon.
    pub eps: f64,
    /// Maximum global gradient norm; `null` or 0 disables clipping.
    pub grad_clip: Option<f64>,
    /// No weight decay on biases and norm parameters (see the module doc).
    pub no_decay_norm_bias: bool,
    /// Micro-batches whose gradients are summed before one optimiser step.
    pub accumulation_steps: usize,
    /// Peak learning rate of the backbone in two-stage fine-tuning (`train.freeze_backbone_epochs`;
    /// see `crate::stages`); `null`: `lr`. Scaled by the schedule like `lr`.
    pub backbone_lr: Option<f64>,
    /// Layer-wise learning-rate decay of the backbone (`crate::stages`): block `i` of `L` gets
    /// `layer_decay^(L - i)` times the backbone rate; `null`: none.
    pub layer_decay: Option<f64>,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            lr: 1e-3,
            weight_decay: 0.01,
            betas: [0.9, 0.999],
            eps: 1e-8,
            grad_clip: None,
            no_decay_norm_bias: true,
            accumulation_steps: 1,
            backbone_lr: None,
            layer_decay: None,
        }
    }
}

impl OptimConfig {
    /// Checks the values.
    pub fn validate(&self) -> Result<(), OptimError> {
        let bad = |key, message: String| Err(OptimError::BadValue { key, message });
        if !(self.lr.is_finite() && self.lr >= 0.0) {
            return bad(
                "lr",
                format!("must be a finite number >= 0 (got {})", self.lr),
            );
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(
                "weight_decay",
                format!("must be >= 0 (got {})", self.weight_decay),
            );
        }
        if self.betas.iter().any(|b| !(*b >= 0.0 && *b < 1.0)) {
            return bad(
                "betas",
                format!("both must be in [0, 1) (got {:?})", self.betas),
            );
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return bad("eps", format!("must be > 0 (got {})", self.eps));
        }
        if let Some(c) = self.grad_clip
            && !(c.is_finite() && c >= 0.0)
        {
            return bad("grad_clip", format!("must be >= 0 (got {c})"));
        }
        if self.accumulation_steps == 0 {
            return bad("accumulation_steps", "must be >= 1".into());
        }
        if let Some(b) = self.backbone_lr {
            if !(b.is_finite() && b >= 0.0) {
                return bad(
                    "backbone_lr",
                    format!("must be a finite number >= 0 (got {b})"),
                );
            }
            if self.lr <= 0.0 {
                return bad(
                    "backbone_lr",
                    format!(
                        "needs optim.lr > 0 (the backbone rate is a multiple of it; got lr {})",
                        self.lr
                    ),
                );
            }
        }
        if let Some(d) = self.layer_decay
            && !(d.is_finite() && d > 0.0 && d <= 1.0)
        {
            return bad("layer_decay", format!("must be in (0, 1] (got {d})"));
        }
        Ok(())
    }

    /// The clipping threshold, `None` when clipping is off.
    pub fn clip(&self) -> Option<f64> {
        self.grad_clip.filter(|&c| c > 0.0)
    }
}

/// Whether a parameter is exempt from weight decay under `no_decay_norm_bias`.
pub fn is_no_decay(name: &str, shape: &[i64]) -> bool {
    shape.len() <= 1
        || name.ends_with(".bias")
        || name
            .split(['.', '/'])
            .any(|seg| seg.to_ascii_lowercase().contains("norm"))
}

struct ParamState {
    name: String,
    param: Tensor,
    m: Tensor,
    v: Tensor,
    step: u64,
    weight_decay: f64,
    /// Multiplier of the optimiser's learning rate for this parameter (parameter groups).
    lr_scale: f64,
}

/// AdamW over named parameters, with savable state (see the module doc for the arithmetic).
pub struct AdamW {
    params: Vec<ParamState>,
    lr: f64,
    betas: [f64; 2],
    eps: f64,
}

impl AdamW {
    /// An optimiser over every trainable (requires-grad) variable of a var store, in name order.
    pub fn from_var_store(vs: &tch::nn::VarStore, cfg: &OptimConfig) -> Result<AdamW, OptimError> {
        let mut named: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        AdamW::new(named, cfg)
    }

    /// An optimiser over the given named parameters (shallow handles to the model's tensors).
    pub fn new(named: Vec<(String, Tensor)>, cfg: &OptimConfig) -> Result<AdamW, OptimError> {
        cfg.validate()?;
        let params = named
            .into_iter()
            .map(|(name, param)| {
                let wd = if cfg.no_decay_norm_bias && is_no_decay(&name, &param.size()) {
                    0.0
                } else {
                    cfg.weight_decay
                };
                let m = tch::no_grad(|| param.zeros_like());
                let v = tch::no_grad(|| param.zeros_like());
                ParamState {
                    name,
                    param,
                    m,
                    v,
                    step: 0,
                    weight_decay: wd,
                    lr_scale: 1.0,
                }
            })
            .collect();
        Ok(AdamW {
            params,
            lr: cfg.lr,
            betas: cfg.betas,
            eps: cfg.eps,
        })
    }

    /// Sets the learning rate used by the next steps (the schedule calls this every step).
    pub fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    /// The current learning rate.
    pub fn lr(&self) -> f64 {
        self.lr
    }

    /// Sets each parameter's learning-rate multiplier (parameter groups: a step uses
    /// `lr * scale` for it, weight decay included), `scale(name)`, in optimiser order.
    pub fn set_lr_scales(&mut self, scale: &dyn Fn(&str) -> f64) {
        for p in &mut self.params {
            p.lr_scale = scale(&p.name);
        }
    }

    /// The names of the parameters, in optimiser order.
    pub fn param_names(&self) -> Vec<String> {
        self.params.iter().map(|p| p.name.clone()).collect()
    }

    /// `(name, weight decay)` of every parameter, in optimiser order.
    pub fn weight_decays(&self) -> Vec<(String, f64)> {
        self.params
            .iter()
            .map(|p| (p.name.clone(), p.weight_decay))
            .collect()
    }

    /// The parameters, in optimiser order.
    pub fn parameters(&self) -> impl Iterator<Item = &Tensor> {
        self.params.iter().map(|p| &p.param)
    }

    /// Zeroes every gradient (sets defined gradients to 0 in place).
    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            p.param.zero_grad();
        }
    }

    /// One AdamW step with the current gradients.
    pub fn step(&mut self) {
        let [b1, b2] = self.betas;
        let (base_lr, eps) = (self.lr, self.eps);
        tch::no_grad(|| {
            for s in &mut self.params {
                let g = s.param.grad();
                if !g.defined() {
                    continue;
                }
                let lr = base_lr * s.lr_scale;
                s.step += 1;
                let t = s.step as i32;
                if s.weight_decay != 0.0 {
                    let _ = s.param.g_mul_scalar_(1.0 - lr * s.weight_decay);
                }
                let _ = s.m.g_mul_scalar_(b1);
                let _ = s.m.g_add_(&(&g * (1.0 - b1)));
                let _ = s.v.g_mul_scalar_(b2);
                let _ = s.v.addcmul_(&g, &(&g * (1.0 - b2)));
                let bc1 = 1.0 - b1.powi(t);
                let bc2 = 1.0 - b2.powi(t);
                let step_size = lr / bc1;
                let denom = s.v.sqrt() / bc2.sqrt() + eps;
                let update = (&s.m * (-step_size)) / denom;
                let _ = s.param.g_add_(&update);
            }
        });
    }

    /// Clips gradients by their global L2 norm (over all parameters with a gradient): when the norm
    /// exceeds `max_norm` every gradient is multiplied by `max_norm / (norm + 1e-6)`. Returns the
    /// norm before clipping. A non-finite norm leaves the gradients unchanged (the caller skips the
    /// step or stops the run).
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> f64 {
        let norm = self.grad_norm();
        if norm.is_finite() && norm > max_norm {
            let coef = max_norm / (norm + 1e-6);
            tch::no_grad(|| {
                for s in &self.params {
                    let mut g = s.param.grad();
                    if g.defined() {
                        let _ = g.g_mul_scalar_(coef);
                    }
                }
            });
        }
        norm
    }

    /// The global L2 norm of all defined gradients, `sqrt(Σ ‖g‖²)` (per-tensor norms in float32,
    /// combined in float64). 0 when no gradient is defined.
    pub fn grad_norm(&self) -> f64 {
        tch::no_grad(|| {
            self.params
                .iter()
                .map(|s| s.param.grad())
                .filter(|g| g.defined())
                .map(|g| g.to_kind(Kind::Float).norm().double_value(&[]).powi(2))
                .sum::<f64>()
                .sqrt()
        })
    }

    /// Multiplies every defined gradient by `factor` (loss-scale unscaling).
    pub fn scale_grads(&mut self, factor: f64) {
        tch::no_grad(|| {
            for s in &self.params {
                let mut g = s.param.grad();
                if g.defined() {
                    let _ = g.g_mul_scalar_(factor);
                }
            }
        });
    }

    /// True when every defined gradient is finite.
    pub fn grads_finite(&self) -> bool {
        tch::no_grad(|| {
            self.params
                .iter()
                .map(|s| s.param.grad())
                .filter(|g| g.defined())
                .all(|g| g.isfinite().all().int64_value(&[]) != 0)
        })
    }

    /// The state as named tensors (`adamw.m.<param>`, `adamw.v.<param>`, on the CPU) plus JSON
    /// scalars (`lr`, per-parameter `steps`).
    pub fn state_dict(&self) -> (Vec<(String, Tensor)>, serde_json::Value) {
        let mut tensors = Vec::with_capacity(2 * self.params.len());
        let mut steps = serde_json::Map::new();
        for s in &self.params {
            tensors.push((
                format!("adamw.m.{}", s.name),
                s.m.to_device(tch::Device::Cpu).copy(),
            ));
            tensors.push((
                format!("adamw.v.{}", s.name),
                s.v.to_device(tch::Device::Cpu).copy(),
            ));
            steps.insert(s.name.clone(), serde_json::Value::from(s.step));
        }
        let json = serde_json::json!({ "lr": self.lr, "steps": steps });
        (tensors, json)
    }

    /// Restores a state written by [`AdamW::state_dict`]; every parameter must be present with
    /// the same shape and dtype.
    pub fn load_state_dict(
        &mut self,
        tensors: &[(String, Tensor)],
        json: &serde_json::Value,
    ) -> Result<(), OptimError> {
        let find = |key: &str| tensors.iter().find(|(n, _)| n == key).map(|(_, t)| t);
        let steps = json
            .get("steps")
            .and_then(|s| s.as_object())
            .ok_or_else(|| OptimError::StateMismatch("missing `steps`".into()))?;
        for s in &self.params {
            for key in [format!("adamw.m.{}", s.name), format!("adamw.v.{}", s.name)] {
                let t = find(&key)
                    .ok_or_else(|| OptimError::StateMismatch(format!("missing tensor `{key}`")))?;
                if t.size() != s.param.size() || t.kind() != s.param.kind() {
                    return Err(OptimError::StateMismatch(format!(
                        "`{key}` is {:?} {:?}, the parameter is {:?} {:?}",
                        t.kind(),
                        t.size(),
                        s.param.kind(),
                        s.param.size()
                    )));
                }
            }
            if !steps.get(&s.name).is_some_and(|v| v.is_u64()) {
                return Err(OptimError::StateMismatch(format!(
                    "missing step count of `{}`",
                    s.name
                )));
            }
        }
        if steps.len() != self.params.len() {
            return Err(OptimError::StateMismatch(format!(
                "state has {} parameters, the model has {} trainable",
                steps.len(),
                self.params.len()
            )));
        }
        tch::no_grad(|| {
            for s in &mut self.params {
                let dev = s.param.device();
                s.m.copy_(
                    &find(&format!("adamw.m.{}", s.name))
                        .expect("checked")
                        .to_device(dev),
                );
                s.v.copy_(
                    &find(&format!("adamw.v.{}", s.name))
                        .expect("checked")
                        .to_device(dev),
                );
                s.step = steps[&s.name].as_u64().expect("checked");
            }
        });
        if let Some(lr) = json.get("lr").and_then(|v| v.as_f64()) {
            self.lr = lr;
        }
        Ok(())
    }
}

/// Gradient accumulation over micro-batches. Within an epoch of `n` micro-batches, batches are
/// grouped in runs of `steps`; the last run may be shorter. Each micro-batch loss is divided by
/// the size of its run, so every optimiser step uses the mean gradient of its run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accumulation {
    /// Micro-batches per optimiser step.
    pub steps: usize,
}

impl Accumulation {
    /// True when the optimiser steps after micro-batch `index` (0-based) of `n` in the epoch.
    pub fn is_step(&self, index: usize, n: usize) -> bool {
        (index + 1).is_multiple_of(self.steps) || index + 1 == n
    }

    /// The number of micro-batches in the run containing `index` (divide its loss by this).
    pub fn run_len(&self, index: usize, n: usize) -> usize {
        let start = index / self.steps * self.steps;
        (start + self.steps).min(n) - start
    }

    /// Optimiser steps in an epoch of `n` micro-batches (what the schedule calls steps per epoch).
    pub fn steps_per_epoch(&self, n: usize) -> usize {
        n.div_ceil(self.steps)
    }
}

/// Dynamic loss scaling for fp16 training (PyTorch's `GradScaler` rules): the loss is multiplied
/// by `scale` before backward; gradients are unscaled before clipping; a step with an inf/NaN
/// gradient is skipped and the scale multiplied by `backoff_factor`; after `growth_interval`
/// consecutive good steps the scale is multiplied by `growth_factor`. Disabled, every method is a
/// pass-through (bf16 and fp32 need no scaling).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GradScaler {
    /// Whether scaling is active.
    pub enabled: bool,
    /// Current scale.
    pub scale: f64,
    /// Scale multiplier after `growth_interval` good steps.
    pub growth_factor: f64,
    /// Scale multiplier after a step with non-finite gradients.
    pub backoff_factor: f64,
    /// Good steps needed before growing the scale.
    pub growth_interval: u64,
    /// Good steps since the last growth or backoff.
    pub growth_tracker: u64,
    #[serde(skip)]
    unscaled: bool,
    #[serde(skip)]
    found_inf: bool,
}

impl GradScaler {
    /// A scaler with PyTorch's defaults (scale 2^16, growth 2, backoff 0.5, interval 2000).
    pub fn new(enabled: bool) -> GradScaler {
        GradScaler {
            enabled,
            scale: 65536.0,
            growth_factor: 2.0,
            backoff_factor: 0.5,
            growth_interval: 2000,
            growth_tracker: 0,
            unscaled: false,
            found_inf: false,
        }
    }

    /// The loss to call `backward` on.
    pub fn scale_loss(&self, loss: &Tensor) -> Tensor {
        if self.enabled {
            loss * self.scale
        } else {
            loss.shallow_clone()
        }
    }

    /// Divides the gradients by the scale (once per step) and records whether any is non-finite.
    /// Returns true when all are finite. Call before clipping.
    pub fn unscale(&mut self, opt: &mut AdamW) -> bool {
        if !self.enabled {
            return true;
        }
        if !self.unscaled {
            opt.scale_grads(1.0 / self.scale);
            self.found_inf = !opt.grads_finite();
            self.unscaled = true;
        }
        !self.found_inf
    }

    /// Steps the optimiser unless the gradients are non-finite, then updates the scale. Returns
    /// true when the optimiser stepped. Disabled, it always steps.
    pub fn step(&mut self, opt: &mut AdamW) -> bool {
        if !self.enabled {
            opt.step();
            return true;
        }
        let ok = self.unscale(opt);
        if ok {
            opt.step();
        }
        self.update();
        ok
    }

    fn update(&mut self) {
        if self.found_inf {
            self.scale *= self.backoff_factor;
            self.growth_tracker = 0;
        } else {
            self.growth_tracker += 1;
            if self.growth_tracker == self.growth_interval {
                self.scale *= self.growth_factor;
                self.growth_tracker = 0;
            }
        }
        self.unscaled = false;
        self.found_inf = false;
    }
}

/// Mixed-precision mode (`train.amp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AmpMode {
    /// Float32 everywhere.
    #[default]
    Off,
    /// bfloat16 autocast (no loss scaling needed).
    Bf16,
    /// float16 autocast with [`GradScaler`] loss scaling.
    Fp16,
}

impl AmpMode {
    /// Whether this mode needs loss scaling.
    pub fn needs_scaler(self) -> bool {
        self == AmpMode::Fp16
    }
}

// libtorch's per-device autocast dtype setter/getter, which tch does not wrap. Signatures from
// ATen/autocast_mode.h (libtorch 2.11): `void set_autocast_dtype(DeviceType, ScalarType)`,
// `ScalarType get_autocast_dtype(DeviceType)`; both enums are `int8_t`.
unsafe extern "C" {
    #[link_name = "_ZN2at8autocast18set_autocast_dtypeEN3c1010DeviceTypeENS1_10ScalarTypeE"]
    fn at_set_autocast_dtype(device_type: i8, dtype: i8);
    #[link_name = "_ZN2at8autocast18get_autocast_dtypeEN3c1010DeviceTypeE"]
    fn at_get_autocast_dtype(device_type: i8) -> i8;
}

const DEVICE_CUDA: i8 = 1;
const SCALAR_HALF: i8 = 5;
const SCALAR_BFLOAT16: i8 = 15;

/// The dtype CUDA autocast currently uses (`Kind::Half` by default).
pub fn cuda_autocast_kind() -> Kind {
    // SAFETY: a plain getter of a global in libtorch, valid for any DeviceType value.
    match unsafe { at_get_autocast_dtype(DEVICE_CUDA) } {
        SCALAR_BFLOAT16 => Kind::BFloat16,
        SCALAR_HALF => Kind::Half,
        _ => Kind::Float,
    }
}

/// Runs `f` (the forward pass and loss) under CUDA autocast in the given mode. On a machine
/// without CUDA, or with `AmpMode::Off`, `f` runs in float32 unchanged.
pub fn autocast<T>(mode: AmpMode, f: impl FnOnce() -> T) -> T {
    let dtype = match mode {
        AmpMode::Off => return f(),
        AmpMode::Bf16 => SCALAR_BFLOAT16,
        AmpMode::Fp16 => SCALAR_HALF,
    };
    if !tch::Cuda::is_available() {
        return f();
    }
    // SAFETY: sets a global of libtorch's autocast state to a valid (device, dtype) pair.
    unsafe { at_set_autocast_dtype(DEVICE_CUDA, dtype) };
    tch::autocast(true, f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::{self, OptimizerConfig};

    fn grads_from(params: &[Tensor], data: &Tensor, step: i64) -> Tensor {
        // A loss with different gradient magnitudes per parameter and per step.
        let x = data * (1.0 + step as f64 * 0.3);
        let w = &params[0];
        let b = &params[1];
        (x.matmul(&w.tr()) + b)
            .tanh()
            .pow_tensor_scalar(2)
            .sum(Kind::Float)
    }

    #[test]
    fn adamw_matches_libtorch_adamw() {
        tch::manual_seed(3);
        let data = Tensor::randn([5, 40], (Kind::Float, tch::Device::Cpu));
        let init_w = Tensor::randn([67, 40], (Kind::Float, tch::Device::Cpu));
        let init_b = Tensor::randn([67], (Kind::Float, tch::Device::Cpu));

        // libtorch's AdamW, weight decay on both tensors.
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let w1 = vs.root().var_copy("w", &init_w);
        let b1 = vs.root().var_copy("b", &init_b);
        let mut reference = nn::AdamW {
            beta1: 0.9,
            beta2: 0.99,
            wd: 0.1,
            eps: 1e-8,
            amsgrad: false,
        }
        .build(&vs, 0.01)
        .unwrap();

        let w2 = init_w.copy().set_requires_grad(true);
        let b2 = init_b.copy().set_requires_grad(true);
        let cfg = OptimConfig {
            lr: 0.01,
            weight_decay: 0.1,
            betas: [0.9, 0.99],
            no_decay_norm_bias: false,
            ..Default::default()
        };
        let mut ours = AdamW::new(
            vec![
                ("w".into(), w2.shallow_clone()),
                ("b".into(), b2.shallow_clone()),
            ],
            &cfg,
        )
        .unwrap();
        for step in 0..6 {
            reference.zero_grad();
            grads_from(&[w1.shallow_clone(), b1.shallow_clone()], &data, step).backward();
            reference.step();
            ours.zero_grad();
            grads_from(&[w2.shallow_clone(), b2.shallow_clone()], &data, step).backward();
            ours.step();
        }
        let dw = (&w1 - &w2).abs().max().double_value(&[]);
        let db = (&b1 - &b2).abs().max().double_value(&[]);
        assert!(dw < 1e-6 && db < 1e-6, "max diff w {dw}, b {db}");
        // The parameters really moved (not a vacuous comparison).
        assert!((&w2 - &init_w).abs().max().double_value(&[]) > 0.01);
    }

    #[test]
    fn adamw_first_step_hand_values() {
        // Step 1: m = 0.1 g, v = 0.001 g², m̂ = g, v̂ = g² -> p -= lr·g/(|g| + eps) after decay.
        let p = Tensor::from_slice(&[1.0f32, -2.0]).set_requires_grad(true);
        let cfg = OptimConfig {
            lr: 0.1,
            weight_decay: 0.5,
            no_decay_norm_bias: false,
            ..Default::default()
        };
        let mut opt = AdamW::new(vec![("w.weight".into(), p.shallow_clone())], &cfg).unwrap();
        (&p * Tensor::from_slice(&[3.0f32, -0.5]))
            .sum(Kind::Float)
            .backward();
        opt.step();
        let got: Vec<f32> = Vec::try_from(&p.detach()).unwrap();
        let e0 = 1.0 * (1.0 - 0.1 * 0.5) - 0.1 * 3.0 / (3.0 + 1e-8);
        let e1 = -2.0 * (1.0 - 0.1 * 0.5) + 0.1 * 0.5 / (0.5 + 1e-8);
        assert!(
            (got[0] as f64 - e0).abs() < 1e-6 && (got[1] as f64 - e1).abs() < 1e-6,
            "{got:?}"
        );
    }

    #[test]
    fn no_decay_rules() {
        assert!(is_no_decay("head.bias", &[2, 3]));
        assert!(is_no_decay("blocks.0.norm1.weight", &[16, 1]));
        assert!(is_no_decay("cls_scale", &[16]));
        assert!(!is_no_decay("blocks.0.attn.qkv.weight", &[48, 16]));
        let w = Tensor::zeros([2, 2], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
        let b = Tensor::zeros([2], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
        let cfg = OptimConfig {
            weight_decay: 0.05,
            ..Default::default()
        };
        let opt = AdamW::new(vec![("fc.weight".into(), w), ("fc.bias".into(), b)], &cfg).unwrap();
        assert_eq!(
            opt.weight_decays(),
            vec![("fc.weight".into(), 0.05), ("fc.bias".into(), 0.0)]
        );
    }

    #[test]
    fn clipping_uses_the_global_norm() {
        let a = Tensor::zeros([2], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
        let b = Tensor::zeros([1], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
        // Gradients (3, 4) and (12): global norm 13.
        ((&a * Tensor::from_slice(&[3.0f32, 4.0])).sum(Kind::Float) + (&b * 12.0).sum(Kind::Float))
            .backward();
        let mut opt = AdamW::new(
            vec![
                ("a".into(), a.shallow_clone()),
                ("b".into(), b.shallow_clone()),
            ],
            &OptimConfig::default(),
        )
        .unwrap();
        let norm = opt.clip_grad_norm(1.0);
        assert!((norm - 13.0).abs() < 1e-5);
        let coef = 1.0 / (13.0 + 1e-6);
        let ga: Vec<f32> = Vec::try_from(&a.grad()).unwrap();
        let gb: Vec<f32> = Vec::try_from(&b.grad()).unwrap();
        assert!(
            (ga[0] as f64 - 3.0 * coef).abs() < 1e-6 && (ga[1] as f64 - 4.0 * coef).abs() < 1e-6
        );
        assert!((gb[0] as f64 - 12.0 * coef).abs() < 1e-6);
        assert!((opt.grad_norm() - 1.0).abs() < 1e-5);
        // Below the threshold nothing changes.
        let before = opt.clip_grad_norm(100.0);
        assert!((before - opt.grad_norm()).abs() < 1e-12);
    }

    #[test]
    fn state_roundtrip_resumes_bit_exactly() {
        tch::manual_seed(5);
        let data = Tensor::randn([5, 4], (Kind::Float, tch::Device::Cpu));
        let init_w = Tensor::randn([3, 4], (Kind::Float, tch::Device::Cpu));
        let init_b = Tensor::randn([3], (Kind::Float, tch::Device::Cpu));
        let cfg = OptimConfig {
            lr: 0.02,
            weight_decay: 0.05,
            ..Default::default()
        };
        let make = |w: &Tensor, b: &Tensor| {
            let w = w.copy().set_requires_grad(true);
            let b = b.copy().set_requires_grad(true);
            let opt = AdamW::new(
                vec![
                    ("fc.weight".into(), w.shallow_clone()),
                    ("fc.bias".into(), b.shallow_clone()),
                ],
                &cfg,
            )
            .unwrap();
            (w, b, opt)
        };
        let run = |w: &Tensor, b: &Tensor, opt: &mut AdamW, steps: std::ops::Range<i64>| {
            for s in steps {
                opt.zero_grad();
                grads_from(&[w.shallow_clone(), b.shallow_clone()], &data, s).backward();
                opt.step();
            }
        };
        let (w1, b1, mut o1) = make(&init_w, &init_b);
        run(&w1, &b1, &mut o1, 0..6);

        let (w2, b2, mut o2) = make(&init_w, &init_b);
        run(&w2, &b2, &mut o2, 0..3);
        let (tensors, json) = o2.state_dict();
        // Round-trip through a safetensors file, as a checkpoint does.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("opt.safetensors");
        Tensor::write_safetensors(&tensors, &path).unwrap();
        let loaded = Tensor::read_safetensors(&path).unwrap();
        let json: serde_json::Value = serde_json::from_str(&json.to_string()).unwrap();
        let (w3, b3, mut o3) = make(&w2.detach(), &b2.detach());
        o3.load_state_dict(&loaded, &json).unwrap();
        run(&w3, &b3, &mut o3, 3..6);
        assert!(w1.equal(&w3) && b1.equal(&b3), "resumed run differs");

        let mut wrong = AdamW::new(vec![("other".into(), w3.shallow_clone())], &cfg).unwrap();
        assert!(wrong.load_state_dict(&loaded, &json).is_err());
    }

    #[test]
    fn accumulation_runs() {
        let acc = Accumulation { steps: 3 };
        let steps: Vec<usize> = (0..7).filter(|&i| acc.is_step(i, 7)).collect();
        assert_eq!(steps, vec![2, 5, 6]);
        assert_eq!(
            (0..7).map(|i| acc.run_len(i, 7)).collect::<Vec<_>>(),
            vec![3, 3, 3, 3, 3, 3, 1]
        );
        assert_eq!(acc.steps_per_epoch(7), 3);
    }

    #[test]
    fn accumulated_gradients_equal_the_full_batch_gradient() {
        tch::manual_seed(9);
        let x = Tensor::randn([6, 4], (Kind::Float, tch::Device::Cpu));
        let mut w = Tensor::randn([4], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
        x.matmul(&w).tanh().mean(Kind::Float).backward();
        let full = w.grad().copy();
        w.zero_grad();
        let acc = Accumulation { steps: 2 };
        for (i, chunk) in x.split(3, 0).iter().enumerate() {
            let loss = chunk.matmul(&w).tanh().mean(Kind::Float) / acc.run_len(i, 2) as f64;
            loss.backward();
        }
        assert!((full - w.grad()).abs().max().double_value(&[]) < 1e-6);
    }

    #[test]
    fn grad_scaler_skips_non_finite_steps_and_adapts_the_scale() {
        let p = Tensor::from_slice(&[1.0f32]).set_requires_grad(true);
        let cfg = OptimConfig {
            lr: 0.1,
            weight_decay: 0.0,
            ..Default::default()
        };
        let mut opt = AdamW::new(vec![("p".into(), p.shallow_clone())], &cfg).unwrap();
        let mut scaler = GradScaler::new(true);
        scaler.growth_interval = 2;
        // An overflowing gradient: step skipped, scale halved.
        opt.zero_grad();
        scaler
            .scale_loss(&(&p * f64::INFINITY).sum(Kind::Float))
            .backward();
        assert!(!scaler.step(&mut opt));
        assert_eq!(scaler.scale, 32768.0);
        assert_eq!(p.double_value(&[0]), 1.0);
        // Good steps: the unscaled gradient is the true one, and the scale grows after 2.
        for _ in 0..2 {
            opt.zero_grad();
            scaler.scale_loss(&(&p * 2.0).sum(Kind::Float)).backward();
            assert!(scaler.unscale(&mut opt));
            assert_eq!(p.grad().double_value(&[0]), 2.0);
            assert!(scaler.step(&mut opt));
        }
        assert_eq!(scaler.scale, 65536.0);
        assert!(p.double_value(&[0]) < 1.0);
        let json = serde_json::to_string(&scaler).unwrap();
        let back: GradScaler = serde_json::from_str(&json).unwrap();
        assert_eq!(back, scaler);
        // Disabled: pass-through.
        let off = GradScaler::new(false);
        assert_eq!(off.scale_loss(&Tensor::from(3.0f32)).double_value(&[]), 3.0);
    }

    #[test]
    fn autocast_links_and_is_a_no_op_without_cuda() {
        // Links against libtorch's autocast dtype getter (default fp16).
        let kind = cuda_autocast_kind();
        assert!(matches!(kind, Kind::Half | Kind::BFloat16), "{kind:?}");
        let a = Tensor::ones([2, 2], (Kind::Float, tch::Device::Cpu));
        let out = autocast(AmpMode::Bf16, || a.matmul(&a));
        assert_eq!(out.kind(), Kind::Float);
        assert_eq!(
            serde_json::from_str::<AmpMode>("\"bf16\"").unwrap(),
            AmpMode::Bf16
        );
    }

    #[test]
    fn config_validation_names_keys() {
        let cfg: OptimConfig =
            serde_json::from_str(r#"{"lr": 5e-5, "weight_decay": 0.05, "grad_clip": 1.0}"#)
                .unwrap();
        assert_eq!(cfg.clip(), Some(1.0));
        assert!(cfg.validate().is_ok());
        assert!(serde_json::from_str::<OptimConfig>(r#"{"learning_rate": 1}"#).is_err());
        let bad = OptimConfig {
            accumulation_steps: 0,
            ..Default::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("optim.accumulation_steps")
        );
    }
}
