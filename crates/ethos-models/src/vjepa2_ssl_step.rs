//! One V-JEPA 2 self-supervised step on a tensor file, without an optimiser update (what
//! `ethos model ssl-step` runs): the parity check against transformers and a debugging tool.
//!
//! Input file (safetensors): `pixel_values_videos` `(B, T, C, H, W)` float32 and, per mask group
//! `g = 0, 1, ...`, `context_mask.g` / `target_mask.g` int64 `(B, K)` / `(B, M)` token indices.
//! Output file (safetensors, float32): `context.g`, `prediction.g`, `target.g`, `loss` (a scalar),
//! `target_encoder.last_hidden_state` and `grad.<Hugging Face parameter name>` for every online parameter
//! (`encoder.*`, `predictor.*`). The step runs in eval mode (no dropout or stochastic depth), on the CPU.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Serialize;
use tch::{Device, Kind, Tensor};

use crate::vjepa2::Vjepa2Error;
use crate::vjepa2_ssl::{SslError, SslMasks, Vjepa2Ssl};
use crate::weights::write_safetensors_atomic;

/// What an SSL step on a file did (printed as JSON by the CLI).
#[derive(Debug, Clone, Serialize)]
pub struct SslStepSummary {
    /// The loss, mean over groups of the mean absolute error.
    pub loss: f64,
    /// Per group: its mean absolute error.
    pub group_losses: Vec<f64>,
    /// Batch size.
    pub batch: i64,
    /// Tokens per clip.
    pub tokens: i64,
    /// Per group: `(context count, target count)`.
    pub group_sizes: Vec<(i64, i64)>,
    /// Predictor tensors loaded from the weights (0: the predictor started fresh).
    pub predictor_tensors_loaded: usize,
    /// Tensors written to the output file.
    pub tensors_written: usize,
    /// The output file.
    pub output: PathBuf,
}

/// Reads `pixel_values_videos` and the mask groups of a tensor file.
pub fn read_ssl_inputs(path: &Path) -> Result<(Tensor, Vec<SslMasks>), SslError> {
    let tensors: HashMap<String, Tensor> = Tensor::read_safetensors(path)
        .map_err(|error| SslError::ReadTensors {
            path: path.to_path_buf(),
            error,
        })?
        .into_iter()
        .collect();
    let missing = |key: &str, hint: &str| SslError::MissingKey {
        path: path.to_path_buf(),
        key: key.to_string(),
        hint: hint.to_string(),
    };
    let video = tensors
        .get("pixel_values_videos")
        .ok_or_else(|| missing("pixel_values_videos", "the video, (B, T, C, H, W) float32"))?
        .shallow_clone();
    // Groups are numbered 0..G without gaps; either list of a group alone is an error.
    let mut last_group: Option<usize> = None;
    for key in tensors.keys() {
        for prefix in ["context_mask.", "target_mask."] {
            if let Some(g) = key
                .strip_prefix(prefix)
                .and_then(|g| g.parse::<usize>().ok())
            {
                last_group = Some(last_group.map_or(g, |l| l.max(g)));
            }
        }
    }
    let Some(last) = last_group else {
        return Err(missing(
            "context_mask.0",
            "mask group 0's context token indices, (B, K) int64; no `context_mask.g` / `target_mask.g` found",
        ));
    };
    let mut masks = Vec::with_capacity(last + 1);
    for g in 0..=last {
        let get = |name: &str, what: &str| {
            let key = format!("{name}.{g}");
            tensors
                .get(&key)
                .map(Tensor::shallow_clone)
                .ok_or_else(|| missing(&key, what))
        };
        masks.push(SslMasks {
            context: get(
                "context_mask",
                "the group's context token indices, (B, K) int64",
            )?,
            target: get(
                "target_mask",
                "the group's target token indices, (B, M) int64",
            )?,
        });
    }
    Ok((video, masks))
}

/// Runs one SSL step (eval mode, CPU, no optimiser update) of the model `config` + `weights` on the
/// tensors of `input` and writes every output to `output` atomically.
pub fn run_ssl_step_file(
    config: &Path,
    weights: &Path,
    input: &Path,
    output: &Path,
) -> Result<SslStepSummary, SslError> {
    let cfg = Vjepa2Ssl::read_config(config)?;
    let (video, masks) = read_ssl_inputs(input)?;
    // A checkpoint without `predictor.*` gets a fresh predictor: the same one on every run.
    tch::manual_seed(0);
    let mut ssl = Vjepa2Ssl::new(&cfg, Device::Cpu)?;
    let loaded = ssl.load_weights(weights)?;
    // Name the input file in every complaint about its tensors.
    ssl.check_inputs(&video, &masks).map_err(|e| match e {
        SslError::BadInput { what, reason } => SslError::BadInput {
            what: format!("{}: `{what}`", input.display()),
            reason,
        },
        SslError::Model(Vjepa2Error::BadInput { shape, reason }) => SslError::BadInput {
            what: format!(
                "{}: `pixel_values_videos` of shape {shape:?}",
                input.display()
            ),
            reason,
        },
        other => other,
    })?;
    let out = ssl.step(&video, &masks, false)?;
    out.loss.f_backward()?;
    let mut written: BTreeMap<String, Tensor> = BTreeMap::new();
    let mut group_losses = Vec::with_capacity(masks.len());
    let mut group_sizes = Vec::with_capacity(masks.len());
    for (g, ((c, p), t)) in out
        .context
        .iter()
        .zip(&out.prediction)
        .zip(&out.target)
        .enumerate()
    {
        group_losses.push((p - t).abs().mean(Kind::Float).f_double_value(&[])?);
        group_sizes.push((c.size()[1], t.size()[1]));
        written.insert(format!("context.{g}"), c.detach());
        written.insert(format!("prediction.{g}"), p.detach());
        written.insert(format!("target.{g}"), t.detach());
    }
    written.insert("loss".into(), out.loss.detach());
    written.insert(
        "target_encoder.last_hidden_state".into(),
        out.target_hidden.detach(),
    );
    for (name, grad) in ssl.named_gradients() {
        written.insert(format!("grad.{name}"), grad);
    }
    let tensors: Vec<(String, Tensor)> = written
        .into_iter()
        .map(|(k, t)| (k, t.to_kind(Kind::Float).contiguous()))
        .collect();
    write_safetensors_atomic(output, &tensors).map_err(|e| match e {
        crate::weights::WeightsError::Io { path, source } => SslError::Write {
            path,
            error: source,
        },
        other => SslError::Weights {
            path: output.to_path_buf(),
            error: other,
        },
    })?;
    let s = video.size();
    let [t, h, w] = cfg.token_grid(s[1], s[3], s[4]);
    Ok(SslStepSummary {
        loss: out.loss.f_double_value(&[])?,
        group_losses,
        batch: s[0],
        tokens: t * h * w,
        group_sizes,
        predictor_tensors_loaded: loaded.predictor_tensors,
        tensors_written: tensors.len(),
        output: output.to_path_buf(),
    })
}
