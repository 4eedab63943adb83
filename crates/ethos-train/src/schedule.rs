//! Learning-rate schedules, evaluated per optimiser step as pure functions of the step index, so a
//! resumed run needs only its step count.
//!
//! Time is measured in fractional epochs `e = step / steps_per_epoch` (`step` = 0-based index of
//! the optimiser step about to run; with gradient accumulation, optimiser steps, not micro-batches).
//! With `E` = total epochs, `W` = `warmup_epochs`, `lr` = `optim.lr`:
//!
//! ```text
//! warmup (every schedule, e < W):  lr(e) = warmup_start_lr + (lr − warmup_start_lr) · e / W
//! cosine_warmup (e ≥ W):           lr(e) = min_lr + (lr − min_lr) · (1 + cos(π · min(1, (e − W)/(E − W)))) / 2
//! constant (e ≥ W):                lr(e) = lr
//! step (e ≥ W):                    lr(e) = lr · gamma^floor((e − W) / step_size)
//! ```
//!
//! The cosine reaches `min_lr` at `e = E`, the end of the last epoch (the last step runs within one
//! step of it).

use serde::{Deserialize, Serialize};

/// Errors of the schedule configuration.
#[derive(Debug, thiserror::Error)]
#[error("sched.{key}: {message}")]
pub struct SchedError {
    /// Key inside the `sched` section (or `train.epochs`).
    pub key: &'static str,
    /// What is wrong.
    pub message: String,
}

impl ethos_core::Classify for SchedError {
    /// True: every schedule error comes from the config.
    fn kind(&self) -> ethos_core::ErrorKind {
        ethos_core::ErrorKind::BadInput
    }
}

/// The schedule family (`sched.name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchedName {
    /// Linear warmup, then cosine decay to `min_lr`.
    #[default]
    CosineWarmup,
    /// Constant (after an optional warmup).
    Constant,
    /// Multiply by `gamma` every `step_size` epochs (after an optional warmup).
    Step,
}

/// The `sched` config section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedConfig {
    /// Schedule family.
    pub name: SchedName,
    /// Warmup length in epochs (may be fractional).
    pub warmup_epochs: f64,
    /// Learning rate at step 0 of the warmup.
    pub warmup_start_lr: f64,
    /// Final learning rate of the cosine.
    pub min_lr: f64,
    /// Epochs between decays of `step`.
    pub step_size: f64,
    /// Decay factor of `step`.
    pub gamma: f64,
}

impl Default for SchedConfig {
    fn default() -> Self {
        SchedConfig {
            name: SchedName::CosineWarmup,
            warmup_epochs: 0.0,
            warmup_start_lr: 0.0,
            min_lr: 0.0,
            step_size: 1.0,
            gamma: 0.1,
        }
    }
}

impl SchedConfig {
    /// Builds the schedule for `base_lr` (`optim.lr`), `epochs` total epochs and
    /// `steps_per_epoch` optimiser steps per epoch.
    pub fn build(
        &self,
        base_lr: f64,
        epochs: usize,
        steps_per_epoch: usize,
    ) -> Result<Schedule, SchedError> {
        let err = |key, message: String| Err(SchedError { key, message });
        for (key, v) in [
            ("warmup_epochs", self.warmup_epochs),
            ("warmup_start_lr", self.warmup_start_lr),
            ("min_lr", self.min_lr),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return err(key, format!("must be a finite number >= 0 (got {v})"));
            }
        }
        if epochs == 0 {
            return err("epochs", "train.epochs must be >= 1".into());
        }
        if steps_per_epoch == 0 {
            return err(
                "steps_per_epoch",
                "an epoch has no optimiser steps (empty training split?)".into(),
            );
        }
        if self.name == SchedName::CosineWarmup && self.warmup_epochs >= epochs as f64 {
            return err(
                "warmup_epochs",
                format!(
                    "{} must be less than train.epochs ({epochs}) for cosine_warmup",
                    self.warmup_epochs
                ),
            );
        }
        if self.name == SchedName::Step {
            if !(self.step_size.is_finite() && self.step_size > 0.0) {
                return err("step_size", format!("must be > 0 (got {})", self.step_size));
            }
            if !(self.gamma.is_finite() && self.gamma > 0.0) {
                return err("gamma", format!("must be > 0 (got {})", self.gamma));
            }
        }
        Ok(Schedule {
            cfg: self.clone(),
            base_lr,
            epochs,
            steps_per_epoch,
        })
    }
}

/// A built schedule: the learning rate of every optimiser step.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    cfg: SchedConfig,
    base_lr: f64,
    epochs: usize,
    steps_per_epoch: usize,
}

impl Schedule {
    /// The learning rate for optimiser step `step` (0-based, counted over the whole run).
    pub fn lr_at(&self, step: u64) -> f64 {
        self.lr_at_epoch(step as f64 / self.steps_per_epoch as f64)
    }

    /// The learning rate at fractional epoch `e` (formulas in the module doc).
    pub fn lr_at_epoch(&self, e: f64) -> f64 {
        let c = &self.cfg;
        let w = c.warmup_epochs;
        if e < w {
            return c.warmup_start_lr + (self.base_lr - c.warmup_start_lr) * e / w;
        }
        match c.name {
            SchedName::Constant => self.base_lr,
            SchedName::Step => self.base_lr * c.gamma.powf(((e - w) / c.step_size).floor()),
            SchedName::CosineWarmup => {
                let progress = ((e - w) / (self.epochs as f64 - w)).min(1.0);
                c.min_lr
                    + (self.base_lr - c.min_lr) * (1.0 + (std::f64::consts::PI * progress).cos())
                        / 2.0
            }
        }
    }

    /// Optimiser steps per epoch.
    pub fn steps_per_epoch(&self) -> usize {
        self.steps_per_epoch
    }

    /// Total optimiser steps of the run.
    pub fn total_steps(&self) -> u64 {
        (self.epochs * self.steps_per_epoch) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() <= 1e-15 + 1e-12 * b.abs(), "{a} vs {b}");
    }

    #[test]
    fn cosine_warmup_values_at_chosen_steps() {
        // Reference local config: lr 5e-5, warmup 3 epochs from 1e-6, min 5e-7, 30 epochs.
        let cfg = SchedConfig {
            name: SchedName::CosineWarmup,
            warmup_epochs: 3.0,
            warmup_start_lr: 1e-6,
            min_lr: 5e-7,
            ..Default::default()
        };
        let s = cfg.build(5e-5, 30, 10).unwrap();
        close(s.lr_at(0), 1e-6);
        // step 15 = epoch 1.5: halfway through the warmup.
        close(s.lr_at(15), 1e-6 + (5e-5 - 1e-6) * 0.5);
        close(s.lr_at(30), 5e-5);
        // step 165 = epoch 16.5: halfway through the cosine (27 epochs), lr = (max + min) / 2.
        close(s.lr_at(165), (5e-5 + 5e-7) / 2.0);
        // epoch 9.75: progress 0.25.
        close(
            s.lr_at_epoch(9.75),
            5e-7 + (5e-5 - 5e-7) * (1.0 + (std::f64::consts::FRAC_PI_4).cos()) / 2.0,
        );
        close(s.lr_at(300), 5e-7);
        assert!(s.lr_at(299) > 5e-7 && s.lr_at(299) < 5.1e-7);
        // Monotone after warmup.
        assert!((30..300).all(|i| s.lr_at(i + 1) <= s.lr_at(i)));
        assert_eq!(s.total_steps(), 300);
    }

    #[test]
    fn constant_and_step() {
        let c = SchedConfig {
            name: SchedName::Constant,
            ..Default::default()
        }
        .build(1e-3, 5, 4)
        .unwrap();
        assert_eq!(c.lr_at(0), 1e-3);
        assert_eq!(c.lr_at(19), 1e-3);
        let s = SchedConfig {
            name: SchedName::Step,
            step_size: 2.0,
            gamma: 0.5,
            ..Default::default()
        }
        .build(1e-3, 10, 4)
        .unwrap();
        close(s.lr_at(7), 1e-3);
        close(s.lr_at(8), 5e-4);
        close(s.lr_at(17), 2.5e-4);
        // Warmup applies to every family.
        let w = SchedConfig {
            name: SchedName::Constant,
            warmup_epochs: 1.0,
            ..Default::default()
        }
        .build(1e-3, 5, 4)
        .unwrap();
        close(w.lr_at(0), 0.0);
        close(w.lr_at(2), 5e-4);
        close(w.lr_at(4), 1e-3);
    }

    #[test]
    fn bad_configs_name_the_key() {
        let e = SchedConfig {
            warmup_epochs: 5.0,
            ..Default::default()
        }
        .build(1e-3, 5, 4)
        .unwrap_err();
        assert!(e.to_string().starts_with("sched.warmup_epochs"), "{e}");
        let e = SchedConfig {
            name: SchedName::Step,
            step_size: 0.0,
            ..Default::default()
        }
        .build(1e-3, 5, 4)
        .unwrap_err();
        assert!(e.to_string().contains("sched.step_size"));
        assert!(serde_json::from_str::<SchedConfig>(r#"{"name": "cosine"}"#).is_err());
        assert!(serde_json::from_str::<SchedConfig>(r#"{"warmup": 3}"#).is_err());
        let ok: SchedConfig =
            serde_json::from_str(r#"{"name": "cosine_warmup", "warmup_epochs": 3}"#).unwrap();
        assert_eq!(ok.warmup_epochs, 3.0);
    }
}
