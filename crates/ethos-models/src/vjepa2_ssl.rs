//! The V-JEPA 2 self-supervised objective (its own pre-training, continued for domain adaptation):
//! an online encoder + predictor trained by gradient, and an EMA copy of the encoder as the target.
//!
//! For each mask group g of a step (see [`crate::vjepa2_masks`]):
//! - `context.g` = the online encoder on the context tokens only (RoPE at the kept positions);
//! - `prediction.g` = the predictor on `context.g`, predicting the target positions (mask token 0);
//! - `target.g` = `layer_norm(target_encoder(all tokens))` without affine parameters (eps 1e-5, as
//!   `F.layer_norm`), gathered at the target positions, with no gradient;
//!
//! and `loss = mean_g mean(|prediction.g - target.g|)`. The caller runs `loss.backward()`, its
//! optimiser step, then [`Vjepa2Ssl::ema_update`] with the momentum of the step ([`ema_momentum`]).
//!
//! Variables carry the Hugging Face names of a `VJEPA2Model` (`encoder.*`, `predictor.*`): the online
//! encoder and predictor share one `VarStore` (what the optimiser updates), the target encoder has its
//! own (`encoder.*`, never trainable), so checkpoints and the Hugging Face export are name-for-name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tch::{Device, Kind, Tensor, nn};

use crate::vjepa2::{Vjepa2Config, Vjepa2Encoder, Vjepa2Error};
use crate::vjepa2_masks::{MaskError, MaskGroup};
use crate::vjepa2_predictor::{Vjepa2Predictor, validate_predictor_config};
use crate::weights::{LoadOptions, WeightsError, load_into, read_tensors};

/// The predictor's mask token for every group: V-JEPA 2 indexes mask tokens by clip length (one
/// clip length here), not by mask group.
pub const MASK_TOKEN_INDEX: i64 = 0;

/// Epsilon of the target normalisation (`torch.nn.functional.layer_norm`'s default).
pub const TARGET_LAYER_NORM_EPS: f64 = 1e-5;

/// Errors of the self-supervised step, its weights and its files.
#[derive(Debug, thiserror::Error)]
pub enum SslError {
    /// The model config is invalid.
    #[error(transparent)]
    Model(#[from] Vjepa2Error),
    /// A mask config is invalid or cannot leave any context.
    #[error(transparent)]
    Masks(#[from] MaskError),
    /// A config file that is not a Hugging Face V-JEPA 2 `config.json`.
    #[error("{path}: not a Hugging Face V-JEPA 2 config: {reason}")]
    NotVjepa2 {
        /// The file.
        path: PathBuf,
        /// What was found instead.
        reason: String,
    },
    /// The weights could not be read.
    #[error("V-JEPA 2 weights {path}: {error}")]
    Weights {
        /// The weight file or folder.
        path: PathBuf,
        /// What went wrong.
        error: WeightsError,
    },
    /// The weights do not fit the model built from the config.
    #[error("V-JEPA 2 weights {path} do not fit the config: {reason}")]
    WeightsMismatch {
        /// The weight file or folder.
        path: PathBuf,
        /// Which keys are missing, unexpected or of the wrong shape.
        reason: String,
    },
    /// A tensor file could not be read.
    #[error("cannot read tensors from {path}: {error}")]
    ReadTensors {
        /// The file.
        path: PathBuf,
        /// libtorch's error.
        error: tch::TchError,
    },
    /// A required tensor is absent from a tensor file.
    #[error("{path}: no tensor `{key}` ({hint})")]
    MissingKey {
        /// The file.
        path: PathBuf,
        /// The missing tensor name.
        key: String,
        /// What it should hold.
        hint: String,
    },
    /// The video or a mask does not fit the model or the other tensors.
    #[error("{what}: {reason}")]
    BadInput {
        /// The tensor (`pixel_values_videos`, `context_mask.1`, ...), with its file when known.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An output file or folder could not be written.
    #[error("cannot write {path}: {error}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// libtorch failed on well-formed input.
    #[error(transparent)]
    Tensor(#[from] tch::TchError),
}

impl ethos_core::Classify for SslError {
    fn kind(&self) -> ethos_core::ErrorKind {
        use ethos_core::ErrorKind;
        match self {
            SslError::Model(e) if !e.is_bad_input() => ErrorKind::Internal,
            SslError::Weights { error, .. } if !error.is_bad_input() => ErrorKind::Internal,
            SslError::Write { error, .. } => ErrorKind::of_output_io(error),
            SslError::Tensor(_) => ErrorKind::Internal,
            _ => ErrorKind::BadInput,
        }
    }
}

/// EMA momentum of step `step` (0-based) of a run of `total_steps` optimiser steps, linear from
/// `start` to `end` as V-JEPA 2's schedule (`start + step * (end - start) / total_steps`; V-JEPA 2 itself
/// uses a constant 0.99925). Steps past the end keep `end`.
pub fn ema_momentum([start, end]: [f64; 2], step: u64, total_steps: u64) -> f64 {
    if total_steps == 0 {
        return end;
    }
    let step = step.min(total_steps) as f64;
    start + step * (end - start) / total_steps as f64
}

/// The token indices of one mask group as tensors: `context` `(B, K)` and `target` `(B, M)`, int64.
#[derive(Debug)]
pub struct SslMasks {
    /// Context (visible) token indices.
    pub context: Tensor,
    /// Target token indices.
    pub target: Tensor,
}

impl SslMasks {
    /// The tensors of a generated mask group on `device`.
    pub fn from_group(group: &MaskGroup, device: Device) -> Self {
        let (context, target) = group.to_tensors(device);
        Self { context, target }
    }
}

/// What one step computed; `loss` carries the graph to the online encoder and predictor.
#[derive(Debug)]
pub struct SslOutput {
    /// Scalar loss, mean over groups of the mean absolute error.
    pub loss: Tensor,
    /// Per group: the context encoder's output, `(B, K, D)`.
    pub context: Vec<Tensor>,
    /// Per group: the predictor's output at the target positions, `(B, M, D)`.
    pub prediction: Vec<Tensor>,
    /// Per group: the normalised target-encoder tokens at the target positions, `(B, M, D)`.
    pub target: Vec<Tensor>,
    /// The target encoder's output on all tokens before the target normalisation, `(B, N, D)`.
    pub target_hidden: Tensor,
}

/// Which encoder an export writes as `encoder.*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportEncoder {
    /// The EMA target encoder (what V-JEPA 2 releases and evaluates).
    Target,
    /// The online (context) encoder.
    Online,
}

/// What [`Vjepa2Ssl::load_weights`] took from a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SslLoadReport {
    /// Encoder tensors loaded (online and target encoder both start from them).
    pub encoder_tensors: usize,
    /// Predictor tensors loaded; 0 when the checkpoint has none and the predictor starts fresh.
    pub predictor_tensors: usize,
    /// Checkpoint prefixes ignored (`pooler.`, `classifier.`), with their tensor counts.
    pub ignored: BTreeMap<String, usize>,
}

/// Online encoder + predictor + EMA target encoder of V-JEPA 2's self-supervised objective.
#[derive(Debug)]
pub struct Vjepa2Ssl {
    cfg: Vjepa2Config,
    online: nn::VarStore,
    target: nn::VarStore,
    encoder: Vjepa2Encoder,
    predictor: Vjepa2Predictor,
    target_encoder: Vjepa2Encoder,
}

impl Vjepa2Ssl {
    /// Builds a fresh model on `device` (transformers' initialisation); the target encoder starts as a
    /// copy of the online encoder. Load released weights with [`Self::load_weights`].
    pub fn new(cfg: &Vjepa2Config, device: Device) -> Result<Self, SslError> {
        cfg.validate("<in memory>")?;
        validate_predictor_config(cfg, "<in memory>")?;
        let online = nn::VarStore::new(device);
        let encoder = Vjepa2Encoder::new(&(online.root() / "encoder"), cfg)?;
        let predictor = Vjepa2Predictor::new(&(online.root() / "predictor"), cfg)?;
        let target = nn::VarStore::new(device);
        let target_encoder = Vjepa2Encoder::new(&(target.root() / "encoder"), cfg)?;
        crate::freeze::freeze_prefixes(&target, &["encoder.".to_string()]);
        let ssl = Self {
            cfg: cfg.clone(),
            online,
            target,
            encoder,
            predictor,
            target_encoder,
        };
        ssl.reset_target()?;
        Ok(ssl)
    }

    /// Reads a Hugging Face `config.json` (or its folder), checking that it is a V-JEPA 2 config
    /// (`model_type` "vjepa2") with valid encoder and predictor keys.
    pub fn read_config(path: &Path) -> Result<Vjepa2Config, SslError> {
        let file = if path.is_dir() {
            path.join("config.json")
        } else {
            path.to_path_buf()
        };
        let not = |reason: String| SslError::NotVjepa2 {
            path: file.clone(),
            reason,
        };
        let text = std::fs::read_to_string(&file).map_err(|e| not(format!("cannot read: {e}")))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| not(format!("invalid JSON: {e}")))?;
        match value.get("model_type").and_then(|v| v.as_str()) {
            Some("vjepa2") => {}
            Some(other) => return Err(not(format!("`model_type` is \"{other}\", not \"vjepa2\""))),
            None => return Err(not("no `model_type` key (expected \"vjepa2\")".into())),
        }
        let cfg = Vjepa2Config::from_file(&file)?;
        validate_predictor_config(&cfg, &file.display().to_string())?;
        Ok(cfg)
    }

    /// The config.
    pub fn config(&self) -> &Vjepa2Config {
        &self.cfg
    }

    /// The device of every variable.
    pub fn device(&self) -> Device {
        self.online.device()
    }

    /// The online encoder + predictor variables (`encoder.*`, `predictor.*`): what the optimiser updates.
    pub fn online_vs(&self) -> &nn::VarStore {
        &self.online
    }

    /// The online variables, mutable (loading a training checkpoint).
    pub fn online_vs_mut(&mut self) -> &mut nn::VarStore {
        &mut self.online
    }

    /// The target encoder's variables (`encoder.*`, never trainable).
    pub fn target_vs(&self) -> &nn::VarStore {
        &self.target
    }

    /// The target encoder's variables, mutable (loading a training checkpoint).
    pub fn target_vs_mut(&mut self) -> &mut nn::VarStore {
        &mut self.target
    }

    /// The online encoder.
    pub fn encoder(&self) -> &Vjepa2Encoder {
        &self.encoder
    }

    /// The predictor.
    pub fn predictor(&self) -> &Vjepa2Predictor {
        &self.predictor
    }

    /// The target encoder.
    pub fn target_encoder(&self) -> &Vjepa2Encoder {
        &self.target_encoder
    }

    /// Freezes the online encoder's patch embedding and first `n` blocks (`model.freeze_encoder_layers`):
    /// they run without a graph and leave the trainable list. Call before building the optimiser.
    /// Returns the frozen variable names.
    pub fn freeze_encoder_layers(&mut self, n: usize) -> Result<Vec<String>, SslError> {
        let prefixes = self.encoder.freeze_prefixes(n)?;
        self.encoder.set_frozen_blocks(n)?;
        Ok(crate::freeze::freeze_prefixes(&self.online, &prefixes))
    }

    /// Sets the target encoder to the online encoder's current weights.
    pub fn reset_target(&self) -> Result<(), SslError> {
        let online = self.online.variables();
        tch::no_grad(|| -> Result<(), SslError> {
            for (name, mut t) in self.target.variables() {
                let src = online.get(&name).ok_or_else(|| SslError::BadInput {
                    what: name.clone(),
                    reason: "target variable without an online twin".into(),
                })?;
                t.f_copy_(src)?;
            }
            Ok(())
        })
    }

    /// Loads a Hugging Face checkpoint (file, sharded index or folder): `encoder.*` (or
    /// `vjepa2.encoder.*`) is required and fills both encoders; `predictor.*` (or `vjepa2.predictor.*`)
    /// is loaded when present (all of it) and otherwise the predictor stays fresh; a classifier's
    /// `pooler.*` / `classifier.*` are ignored. Anything else is an error naming the keys.
    pub fn load_weights(&mut self, weights: &Path) -> Result<SslLoadReport, SslError> {
        let werr = |error| SslError::Weights {
            path: weights.to_path_buf(),
            error,
        };
        let mismatch = |reason: String| SslError::WeightsMismatch {
            path: weights.to_path_buf(),
            reason,
        };
        let tensors = read_tensors(weights).map_err(werr)?;
        let mut ignored = BTreeMap::new();
        let mut kept = Vec::with_capacity(tensors.len());
        for (key, t) in tensors {
            if let Some(prefix) = ["pooler.", "classifier."]
                .into_iter()
                .find(|p| key.starts_with(p))
            {
                *ignored.entry(prefix.to_string()).or_insert(0) += 1;
            } else {
                kept.push((key, t));
            }
        }
        let has_predictor = kept
            .iter()
            .any(|(k, _)| k.starts_with("predictor.") || k.starts_with("vjepa2.predictor."));
        let opts = LoadOptions {
            strict: true,
            rename: vec![
                ("vjepa2.encoder.".into(), "encoder.".into()),
                ("vjepa2.predictor.".into(), "predictor.".into()),
            ],
            skip_prefixes: if has_predictor {
                Vec::new()
            } else {
                vec!["predictor.".into()]
            },
        };
        let report = load_into(&mut self.online, kept, &opts).map_err(|e| match e {
            WeightsError::Mismatch { summary, .. } => mismatch(summary),
            other => werr(other),
        })?;
        self.reset_target()?;
        let predictor_tensors = report
            .loaded
            .iter()
            .filter(|k| k.starts_with("predictor."))
            .count();
        Ok(SslLoadReport {
            encoder_tensors: report.loaded.len() - predictor_tensors,
            predictor_tensors,
            ignored,
        })
    }

    /// Checks a video and its masks: `(B, T, C, H, W)` float; per group int64 `(B, K)` context and
    /// `(B, M)` target indices with K, M >= 1, in `0..N` for the video's token grid.
    pub fn check_inputs(&self, video: &Tensor, masks: &[SslMasks]) -> Result<(), SslError> {
        self.encoder.check_input(video)?;
        if masks.is_empty() {
            return Err(SslError::BadInput {
                what: "masks".into(),
                reason: "no mask group given".into(),
            });
        }
        let s = video.size();
        let [t, h, w] = self.cfg.token_grid(s[1], s[3], s[4]);
        let tokens = t * h * w;
        let batch = s[0];
        for (g, m) in masks.iter().enumerate() {
            for (name, idx) in [("context_mask", &m.context), ("target_mask", &m.target)] {
                let bad = |reason: String| SslError::BadInput {
                    what: format!("{name}.{g}"),
                    reason,
                };
                if idx.kind() != Kind::Int64 {
                    return Err(bad(format!("expected int64 indices, got {:?}", idx.kind())));
                }
                let size = idx.size();
                if size.len() != 2 || size[0] != batch {
                    return Err(bad(format!(
                        "shape {size:?}, expected (B, count) with B = {batch} (the video's batch)"
                    )));
                }
                if size[1] < 1 {
                    return Err(bad("no token indices (count 0)".into()));
                }
                let (lo, hi) = (idx.min().int64_value(&[]), idx.max().int64_value(&[]));
                if lo < 0 || hi >= tokens {
                    return Err(bad(format!(
                        "indices span {lo}..={hi}, outside the {tokens} tokens of the \
                         {t}x{h}x{w} grid of a {}x{}x{} clip",
                        s[1], s[3], s[4]
                    )));
                }
            }
        }
        Ok(())
    }

    /// One forward of the objective on `video` `(B, T, C, H, W)` with one [`SslMasks`] per mask group.
    /// `train` enables dropout / stochastic depth in the online encoder and predictor; the target
    /// encoder always runs in eval mode without a graph. Backward and the optimiser step are the
    /// caller's.
    pub fn step(
        &self,
        video: &Tensor,
        masks: &[SslMasks],
        train: bool,
    ) -> Result<SslOutput, SslError> {
        self.check_inputs(video, masks)?;
        let device = self.device();
        let video = video.to_device(device);
        let (target_hidden, normed) = tch::no_grad(|| {
            let h = self.target_encoder.forward_t(&video, false);
            let d = h.size()[2];
            let n = h.layer_norm(
                [d],
                None::<&Tensor>,
                None::<&Tensor>,
                TARGET_LAYER_NORM_EPS,
                false,
            );
            (h, n)
        });
        let d = normed.size()[2];
        let mut context = Vec::with_capacity(masks.len());
        let mut prediction = Vec::with_capacity(masks.len());
        let mut target = Vec::with_capacity(masks.len());
        let mut loss: Option<Tensor> = None;
        for m in masks {
            let ctx_idx = m.context.to_device(device);
            let tgt_idx = m.target.to_device(device);
            let z = self.encoder.forward_at(&video, &ctx_idx, train);
            let p = self
                .predictor
                .forward_t(&z, &ctx_idx, &tgt_idx, MASK_TOKEN_INDEX, train);
            let index = tgt_idx.unsqueeze(-1).expand([-1, -1, d], false);
            let h = normed.gather(1, &index, false);
            let term = (&p - &h).abs().mean(Kind::Float);
            loss = Some(match loss {
                None => term,
                Some(sum) => sum + term,
            });
            context.push(z);
            prediction.push(p);
            target.push(h);
        }
        let loss = loss.unwrap_or_else(|| unreachable!("check_inputs requires a mask group"))
            / masks.len() as f64;
        Ok(SslOutput {
            loss,
            context,
            prediction,
            target,
            target_hidden,
        })
    }

    /// EMA update of the target encoder after an optimiser step:
    /// `target = momentum * target + (1 - momentum) * online`, variable by variable.
    pub fn ema_update(&self, momentum: f64) -> Result<(), SslError> {
        let online = self.online.variables();
        tch::no_grad(|| -> Result<(), SslError> {
            for (name, mut t) in self.target.variables() {
                let q = online.get(&name).ok_or_else(|| SslError::BadInput {
                    what: name.clone(),
                    reason: "target variable without an online twin".into(),
                })?;
                let _ = t.f_mul_scalar_(momentum)?;
                let _ = t.f_add_(&(q * (1.0 - momentum)))?;
            }
            Ok(())
        })
    }

    /// The online variables' gradients by Hugging Face name (`encoder.*`, `predictor.*`), sorted; a
    /// variable without a gradient (frozen, or unused by the step) gives zeros.
    pub fn named_gradients(&self) -> Vec<(String, Tensor)> {
        let mut out: Vec<(String, Tensor)> = self
            .online
            .variables()
            .into_iter()
            .map(|(name, t)| {
                let g = t.grad();
                let g = if g.defined() { g } else { t.zeros_like() };
                (name, g)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The tensors of a Hugging Face `VJEPA2Model` state dict, sorted by name: `encoder.*` from the
    /// chosen encoder, `predictor.*` from the predictor, on the CPU.
    pub fn hf_state_dict(&self, which: ExportEncoder) -> Vec<(String, Tensor)> {
        let encoder_vs = match which {
            ExportEncoder::Target => &self.target,
            ExportEncoder::Online => &self.online,
        };
        let mut out: Vec<(String, Tensor)> = encoder_vs
            .variables()
            .into_iter()
            .filter(|(k, _)| k.starts_with("encoder."))
            .chain(
                self.online
                    .variables()
                    .into_iter()
                    .filter(|(k, _)| k.starts_with("predictor.")),
            )
            .map(|(k, t)| (k, t.detach().to_device(Device::Cpu).contiguous()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Writes a Hugging Face folder `dir/config.json` + `dir/model.safetensors` (`encoder.*` from
    /// `which`, `predictor.*`) that `transformers.VJEPA2Model.from_pretrained(dir)` loads and a FERAL
    /// fine-tune's `model.weights` points at. Each file is written atomically.
    pub fn export_hf(&self, dir: &Path, which: ExportEncoder) -> Result<(), SslError> {
        std::fs::create_dir_all(dir).map_err(|error| SslError::Write {
            path: dir.to_path_buf(),
            error,
        })?;
        let mut config = serde_json::to_value(&self.cfg).map_err(|e| SslError::Write {
            path: dir.join("config.json"),
            error: std::io::Error::other(e),
        })?;
        if let Some(map) = config.as_object_mut() {
            map.insert("model_type".into(), "vjepa2".into());
            map.insert("architectures".into(), serde_json::json!(["VJEPA2Model"]));
            map.insert("torch_dtype".into(), "float32".into());
        }
        let mut text = serde_json::to_string_pretty(&config).unwrap_or_default();
        text.push('\n');
        let config_path = dir.join("config.json");
        ethos_core::fs::write_bytes_atomic(&config_path, text.as_bytes()).map_err(|error| {
            SslError::Write {
                path: config_path.clone(),
                error,
            }
        })?;
        let weights_path = dir.join("model.safetensors");
        let metadata = [("format".to_string(), "pt".to_string())].into();
        crate::weights::write_safetensors_atomic_with_metadata(
            &weights_path,
            &self.hf_state_dict(which),
            Some(metadata),
        )
        .map_err(|e| match e {
            WeightsError::Io { path, source } => SslError::Write {
                path,
                error: source,
            },
            other => SslError::Weights {
                path: weights_path.clone(),
                error: other,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Vjepa2Config {
        serde_json::from_str(
            r#"{"patch_size": 4, "crop_size": 8, "frames_per_clip": 4, "tubelet_size": 2,
                "hidden_size": 16, "num_attention_heads": 2, "num_hidden_layers": 2,
                "pred_hidden_size": 8, "pred_num_attention_heads": 2, "pred_num_hidden_layers": 1,
                "pred_num_mask_tokens": 2}"#,
        )
        .unwrap()
    }

    fn masks(device: Device) -> Vec<SslMasks> {
        let ctx = Tensor::from_slice(&[0i64, 1, 4, 5, 2, 3, 6, 7]).reshape([2, 4]);
        let tgt = Tensor::from_slice(&[2i64, 3, 6, 7, 0, 1, 4, 5]).reshape([2, 4]);
        vec![SslMasks {
            context: ctx.to_device(device),
            target: tgt.to_device(device),
        }]
    }

    #[test]
    fn momentum_schedule_is_linear_and_clamped() {
        assert_eq!(ema_momentum([0.99, 1.0], 0, 10), 0.99);
        assert!((ema_momentum([0.99, 1.0], 5, 10) - 0.995).abs() < 1e-15);
        assert_eq!(ema_momentum([0.99, 1.0], 10, 10), 1.0);
        assert_eq!(ema_momentum([0.99, 1.0], 20, 10), 1.0);
        assert_eq!(ema_momentum([0.99925, 0.99925], 3, 10), 0.99925);
    }

    #[test]
    fn ema_after_k_steps_is_the_momentum_formula_applied_k_times() {
        tch::manual_seed(0);
        let ssl = Vjepa2Ssl::new(&tiny(), Device::Cpu).unwrap();
        let video = Tensor::randn([2, 4, 3, 8, 8], (Kind::Float, Device::Cpu));
        let m = masks(Device::Cpu);
        // The formula on copies, in float64, from the same start.
        let mut expected: BTreeMap<String, Tensor> = ssl
            .target_vs()
            .variables()
            .into_iter()
            .map(|(k, t)| (k, t.to_kind(Kind::Double)))
            .collect();
        let k = 4;
        for step in 0..k {
            let out = ssl.step(&video, &m, true).unwrap();
            out.loss.backward();
            // A plain SGD step on the online weights, so they move between EMA updates.
            tch::no_grad(|| {
                for (_, mut t) in ssl.online_vs().variables() {
                    let g = t.grad();
                    if g.defined() {
                        let _ = t.f_sub_(&(g * 0.5)).unwrap();
                        t.zero_grad();
                    }
                }
            });
            let mom = ema_momentum([0.9, 0.99], step, k);
            ssl.ema_update(mom).unwrap();
            let online = ssl.online_vs().variables();
            for (name, e) in expected.iter_mut() {
                *e = &*e * mom + online[name].to_kind(Kind::Double) * (1.0 - mom);
            }
        }
        let online = ssl.online_vs().variables();
        let mut moved = 0.0f64;
        for (name, t) in ssl.target_vs().variables() {
            let e = &expected[&name];
            let diff = (t.to_kind(Kind::Double) - e).abs().max().double_value(&[]);
            assert!(
                diff < 1e-6,
                "{name}: target differs from the formula by {diff}"
            );
            let gap = (t - &online[&name]).abs().max().double_value(&[]);
            moved = moved.max(gap);
        }
        assert!(moved > 1e-3, "the target must lag the online encoder");
        // The target never becomes trainable.
        assert!(ssl.target_vs().trainable_variables().is_empty());
    }

    #[test]
    fn step_gives_loss_and_gradients_for_encoder_and_predictor() {
        tch::manual_seed(1);
        let ssl = Vjepa2Ssl::new(&tiny(), Device::Cpu).unwrap();
        let video = Tensor::randn([2, 4, 3, 8, 8], (Kind::Float, Device::Cpu));
        let out = ssl.step(&video, &masks(Device::Cpu), false).unwrap();
        assert_eq!(out.context[0].size(), vec![2, 4, 16]);
        assert_eq!(out.prediction[0].size(), vec![2, 4, 16]);
        assert_eq!(out.target_hidden.size(), vec![2, 8, 16]);
        // Targets are normalised per token without affine parameters.
        let mean = out.target[0].mean_dim(-1, false, Kind::Float).abs().max();
        assert!(mean.double_value(&[]) < 1e-5);
        out.loss.backward();
        let grads = ssl.named_gradients();
        let norm = |prefix: &str| {
            grads
                .iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .map(|(_, g)| g.abs().sum(Kind::Float).double_value(&[]))
                .sum::<f64>()
        };
        assert!(norm("encoder.layer.0.") > 0.0);
        assert!(norm("predictor.layer.0.") > 0.0);
        assert!(
            ssl.target_vs()
                .variables()
                .values()
                .all(|t| !t.grad().defined())
        );
    }

    #[test]
    fn bad_masks_are_named() {
        let ssl = Vjepa2Ssl::new(&tiny(), Device::Cpu).unwrap();
        let video = Tensor::zeros([2, 4, 3, 8, 8], (Kind::Float, Device::Cpu));
        let mut m = masks(Device::Cpu);
        m[0].target = Tensor::from_slice(&[0i64, 8]).reshape([1, 2]);
        let err = ssl.step(&video, &m, false).unwrap_err();
        assert!(err.to_string().contains("target_mask.0"), "{err}");
        m[0].target = Tensor::from_slice(&[0i64, 8, 1, 2]).reshape([2, 2]);
        let err = ssl.step(&video, &m, false).unwrap_err();
        assert!(err.to_string().contains("outside the 8 tokens"), "{err}");
        assert!(ssl.step(&video, &[], false).is_err());
    }

    #[test]
    fn frozen_layers_get_no_gradient() {
        let mut ssl = Vjepa2Ssl::new(&tiny(), Device::Cpu).unwrap();
        let frozen = ssl.freeze_encoder_layers(1).unwrap();
        assert!(frozen.iter().any(|k| k.starts_with("encoder.layer.0.")));
        let video = Tensor::randn([2, 4, 3, 8, 8], (Kind::Float, Device::Cpu));
        ssl.step(&video, &masks(Device::Cpu), false)
            .unwrap()
            .loss
            .backward();
        for (name, t) in ssl.online_vs().variables() {
            let has = t.grad().defined();
            let is_frozen = frozen.contains(&name);
            assert_eq!(has, !is_frozen, "{name}");
        }
    }
}
