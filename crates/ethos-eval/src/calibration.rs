//! Calibration of clip probabilities and decision rules tuned on a validation split, without a
//! tensor engine (everything in `f64`).
//!
//! **Logits.** The inputs are per-sample logits, row-major `(N, C)`. When only probabilities are
//! known (what `predictions.csv` and the predictors store), [`logits_from_probs`] takes
//! `ln max(p, MIN_PROB)`: the log-softmax equals the logits minus a per-sample constant, which
//! softmax ignores, so temperature scaling of log-probabilities is temperature scaling of the
//! logits (exactly for clip-level heads; for per-frame heads averaged into a clip it treats the
//! clip's log-probabilities as its logits).
//!
//! **Temperature scaling** (Guo et al. 2017): one `T > 0` for all classes, `p = softmax(z / T)`,
//! fitted by minimising the mean negative log-likelihood of the true labels. With `β = 1/T` the
//! NLL `mean(logsumexp(β z) - β z_y)` is convex in `β` (its second derivative is the mean variance
//! of `z` under `p`), so the minimiser is the root of the derivative `mean(E_p[z] - z_y)`, found by
//! bisection in `ln β` over `[1/100, 100]` (T from 0.01 to 100) to 1e-10 relative.
//!
//! **ECE** (expected calibration error): samples binned by the top-class probability into
//! [`ECE_BINS`] equal-width bins (`(k/15, (k+1)/15]`, a confidence of 0 in the first bin);
//! `ECE = Σ_b |b|/N · |accuracy_b - confidence_b|`.
//!
//! **Decision rules.** `argmax`; `threshold` — one class `k` is predicted when `p_k ≥ t`, otherwise
//! the most probable other class (for two classes: the other class); `per_class` — one-vs-rest
//! thresholds `t_k`: among the classes with `p_k ≥ t_k` the one with the largest `p_k / t_k`, and
//! when no class reaches its threshold the argmax. Thresholds apply to calibrated probabilities.
//!
//! **Tuning** ([`tune_rule`]) maximises a decision metric (`f1_<class>`, `precision_<class>`,
//! `recall_<class>`, `macro_f1`, `accuracy`). The metric is piecewise constant in a threshold and
//! changes only at the samples' probabilities, so every distinct probability is a candidate; of the
//! best candidates the lowest wins (ties favour recall), and the stored threshold is the midpoint
//! between it and the next lower distinct probability (the same decisions on the tuning split, a
//! margin either side for new data). A target naming a class tunes a `threshold` rule for it; a
//! class-free target tunes a `threshold` rule for the split's rarest class when there are two
//! classes, and `per_class` thresholds (each class for its one-vs-rest F1) for more.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::metrics::{MetricSet, argmax};

/// Bins of the expected calibration error.
pub const ECE_BINS: usize = 15;
/// Smallest probability turned into a log-probability (float32's smallest subnormal).
pub const MIN_PROB: f64 = 1.4e-45;
/// Temperatures searched: `[1 / MAX_TEMPERATURE, MAX_TEMPERATURE]`.
pub const MAX_TEMPERATURE: f64 = 100.0;

/// Errors of calibration and rule tuning.
#[derive(Debug, thiserror::Error)]
pub enum CalibrationError {
    /// The inputs are not `N × C` for the labels and classes, or a label is out of range.
    #[error("calibration input: {0}")]
    Shape(String),
    /// A value is NaN or infinite.
    #[error("calibration input: sample {index}: value {value} is not finite")]
    NonFinite {
        /// Sample index.
        index: usize,
        /// The value.
        value: f64,
    },
    /// No samples.
    #[error("calibration input: no samples")]
    Empty,
    /// The target metric cannot be tuned by a threshold (names the key and what can).
    #[error(
        "--target {key}: not a decision metric; use f1_<class>, precision_<class>, recall_<class>, macro_f1 or accuracy (classes: {classes})"
    )]
    BadTarget {
        /// The key given.
        key: String,
        /// The class list.
        classes: String,
    },
}

impl ethos_core::Classify for CalibrationError {
    /// Every variant comes from the caller's data or flags.
    fn kind(&self) -> ethos_core::ErrorKind {
        ethos_core::ErrorKind::BadInput
    }
}

fn check(logits: &[f64], labels: &[usize], c: usize) -> Result<usize, CalibrationError> {
    let n = labels.len();
    if n == 0 {
        return Err(CalibrationError::Empty);
    }
    if c == 0 || logits.len() != n * c {
        return Err(CalibrationError::Shape(format!(
            "{} values for {n} samples x {c} classes",
            logits.len()
        )));
    }
    if let Some((i, &l)) = labels.iter().enumerate().find(|(_, l)| **l >= c) {
        return Err(CalibrationError::Shape(format!(
            "sample {i}: label {l} out of range for {c} classes"
        )));
    }
    if let Some((i, &v)) = logits.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(CalibrationError::NonFinite {
            index: i / c,
            value: v,
        });
    }
    Ok(n)
}

/// Log-probabilities `ln max(p, MIN_PROB)` of row-major probabilities: logits up to a per-row
/// constant (see the module doc).
pub fn logits_from_probs(probs: &[f64]) -> Vec<f64> {
    probs.iter().map(|&p| p.max(MIN_PROB).ln()).collect()
}

/// `softmax(z / temperature)` of one row.
pub fn softmax_row(z: &[f64], temperature: f64) -> Vec<f64> {
    let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = z.iter().map(|&v| ((v - max) / temperature).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

/// Row-major probabilities `softmax(z / temperature)` of row-major `(N, C)` logits.
pub fn softmax_rows(logits: &[f64], c: usize, temperature: f64) -> Vec<f64> {
    logits
        .chunks_exact(c.max(1))
        .flat_map(|row| softmax_row(row, temperature))
        .collect()
}

/// Mean negative log-likelihood of the true labels under `softmax(z / temperature)`.
pub fn nll(logits: &[f64], labels: &[usize], c: usize, temperature: f64) -> f64 {
    let beta = 1.0 / temperature;
    let mut sum = 0.0;
    for (row, &y) in logits.chunks_exact(c).zip(labels) {
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = max * beta
            + row
                .iter()
                .map(|&v| ((v - max) * beta).exp())
                .sum::<f64>()
                .ln();
        sum += lse - beta * row[y];
    }
    sum / labels.len().max(1) as f64
}

/// d NLL / d β at `β = 1/T`: `mean(E_p[z] - z_y)`.
fn nll_slope(logits: &[f64], labels: &[usize], c: usize, beta: f64) -> f64 {
    let mut sum = 0.0;
    for (row, &y) in logits.chunks_exact(c).zip(labels) {
        let p = softmax_row(row, 1.0 / beta);
        let expected: f64 = p.iter().zip(row).map(|(p, z)| p * z).sum();
        sum += expected - row[y];
    }
    sum / labels.len().max(1) as f64
}

/// The temperature minimising the NLL of `labels` under `softmax(z / T)` (see the module doc),
/// clamped to `[1/MAX_TEMPERATURE, MAX_TEMPERATURE]`.
pub fn fit_temperature(
    logits: &[f64],
    labels: &[usize],
    c: usize,
) -> Result<f64, CalibrationError> {
    check(logits, labels, c)?;
    let (mut lo, mut hi) = ((1.0 / MAX_TEMPERATURE).ln(), MAX_TEMPERATURE.ln());
    // The slope rises with β (convexity): negative below the optimum, positive above.
    if nll_slope(logits, labels, c, lo.exp()) >= 0.0 {
        return Ok(MAX_TEMPERATURE);
    }
    if nll_slope(logits, labels, c, hi.exp()) <= 0.0 {
        return Ok(1.0 / MAX_TEMPERATURE);
    }
    while hi - lo > 1e-10 {
        let mid = 0.5 * (lo + hi);
        if nll_slope(logits, labels, c, mid.exp()) < 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(1.0 / (0.5 * (lo + hi)).exp())
}

/// One bin of a reliability diagram.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    /// Lower edge (exclusive, except the first bin), probability.
    pub lo: f64,
    /// Upper edge (inclusive), probability.
    pub hi: f64,
    /// Samples whose top-class probability falls in the bin.
    pub count: usize,
    /// Fraction of them whose top class is the true class (0 when empty).
    pub accuracy: f64,
    /// Their mean top-class probability (0 when empty).
    pub confidence: f64,
}

/// Reliability bins of row-major probabilities (top-class confidence, `bins` equal-width bins).
pub fn reliability(probs: &[f64], labels: &[usize], c: usize, bins: usize) -> Vec<ReliabilityBin> {
    let bins = bins.max(1);
    let mut count = vec![0usize; bins];
    let mut correct = vec![0usize; bins];
    let mut conf = vec![0f64; bins];
    for (row, &y) in probs.chunks_exact(c.max(1)).zip(labels) {
        let k = argmax(row);
        let p = row[k];
        let b = ((p * bins as f64).ceil() as usize).clamp(1, bins) - 1;
        count[b] += 1;
        conf[b] += p;
        if k == y {
            correct[b] += 1;
        }
    }
    (0..bins)
        .map(|b| ReliabilityBin {
            lo: b as f64 / bins as f64,
            hi: (b + 1) as f64 / bins as f64,
            count: count[b],
            accuracy: if count[b] > 0 {
                correct[b] as f64 / count[b] as f64
            } else {
                0.0
            },
            confidence: if count[b] > 0 {
                conf[b] / count[b] as f64
            } else {
                0.0
            },
        })
        .collect()
}

/// Expected calibration error over [`ECE_BINS`] bins of row-major probabilities.
pub fn ece(probs: &[f64], labels: &[usize], c: usize) -> f64 {
    let n = labels.len();
    if n == 0 {
        return 0.0;
    }
    reliability(probs, labels, c, ECE_BINS)
        .iter()
        .map(|b| b.count as f64 / n as f64 * (b.accuracy - b.confidence).abs())
        .sum()
}

/// How calibrated probabilities become a predicted class (see the module doc).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DecisionRule {
    /// The most probable class.
    Argmax,
    /// `class` when its probability reaches `threshold`, else the most probable other class.
    Threshold {
        /// Class index.
        class: usize,
        /// Probability threshold in `(0, 1]`.
        threshold: f64,
    },
    /// One-vs-rest thresholds, class-index order.
    PerClass {
        /// One threshold per class.
        thresholds: Vec<f64>,
    },
}

impl DecisionRule {
    /// The predicted class of one row of probabilities.
    pub fn predict(&self, p: &[f64]) -> usize {
        match self {
            DecisionRule::Argmax => argmax(p),
            DecisionRule::Threshold { class, threshold } => {
                if p.get(*class).is_some_and(|&v| v >= *threshold) {
                    *class
                } else {
                    let mut best = None::<usize>;
                    for (j, &v) in p.iter().enumerate() {
                        if j != *class && best.is_none_or(|b| v > p[b]) {
                            best = Some(j);
                        }
                    }
                    best.unwrap_or(*class)
                }
            }
            DecisionRule::PerClass { thresholds } => {
                let mut best = None::<(usize, f64)>;
                for (j, (&v, &t)) in p.iter().zip(thresholds).enumerate() {
                    let ratio = v / t.max(f64::MIN_POSITIVE);
                    if v >= t && best.is_none_or(|(_, r)| ratio > r) {
                        best = Some((j, ratio));
                    }
                }
                best.map_or_else(|| argmax(p), |(j, _)| j)
            }
        }
    }

    /// Predicted classes of row-major probabilities.
    pub fn predict_all(&self, probs: &[f64], c: usize) -> Vec<usize> {
        probs
            .chunks_exact(c.max(1))
            .map(|r| self.predict(r))
            .collect()
    }
}

/// A metric that a decision rule changes: confusion-matrix metrics only.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Target {
    F1(usize),
    Precision(usize),
    Recall(usize),
    MacroF1,
    Accuracy,
}

fn parse_target(key: &str, classes: &[String]) -> Result<Target, CalibrationError> {
    let bad = || CalibrationError::BadTarget {
        key: key.to_string(),
        classes: classes.join(", "),
    };
    let class = |rest: &str| classes.iter().position(|c| c == rest).ok_or_else(bad);
    Ok(match key {
        "macro_f1" => Target::MacroF1,
        "accuracy" => Target::Accuracy,
        _ => {
            if let Some(r) = key.strip_prefix("f1_") {
                Target::F1(class(r)?)
            } else if let Some(r) = key.strip_prefix("precision_") {
                Target::Precision(class(r)?)
            } else if let Some(r) = key.strip_prefix("recall_") {
                Target::Recall(class(r)?)
            } else {
                return Err(bad());
            }
        }
    })
}

fn confusion(pred: &[usize], labels: &[usize], c: usize) -> Vec<Vec<u64>> {
    let mut m = vec![vec![0u64; c]; c];
    for (&p, &y) in pred.iter().zip(labels) {
        m[y][p] += 1;
    }
    m
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

fn class_prf(m: &[Vec<u64>], k: usize) -> (f64, f64, f64) {
    let tp = m[k][k];
    let support: u64 = m[k].iter().sum();
    let predicted: u64 = m.iter().map(|r| r[k]).sum();
    (
        ratio(tp, predicted),
        ratio(tp, support),
        ratio(2 * tp, predicted + support),
    )
}

fn target_value(t: Target, m: &[Vec<u64>]) -> f64 {
    let c = m.len();
    match t {
        Target::F1(k) => class_prf(m, k).2,
        Target::Precision(k) => class_prf(m, k).0,
        Target::Recall(k) => class_prf(m, k).1,
        Target::MacroF1 => (0..c).map(|k| class_prf(m, k).2).sum::<f64>() / c as f64,
        Target::Accuracy => {
            let n: u64 = m.iter().flatten().sum();
            ratio((0..c).map(|k| m[k][k]).sum(), n)
        }
    }
}

/// The value of a decision-metric key (`f1_tail`, `macro_f1`, ...) for `rule` on row-major
/// probabilities.
pub fn rule_metric(
    key: &str,
    rule: &DecisionRule,
    probs: &[f64],
    labels: &[usize],
    classes: &[String],
) -> Result<f64, CalibrationError> {
    let c = classes.len();
    check(probs, labels, c)?;
    let t = parse_target(key, classes)?;
    Ok(target_value(
        t,
        &confusion(&rule.predict_all(probs, c), labels, c),
    ))
}

/// The best threshold for `class` under `metric` (see the module doc), and its metric value.
fn best_threshold(
    class: usize,
    target: Target,
    probs: &[f64],
    labels: &[usize],
    c: usize,
) -> (f64, f64) {
    let mut values: Vec<f64> = probs.chunks_exact(c).map(|r| r[class]).collect();
    values.sort_by(|a, b| a.total_cmp(b));
    values.dedup();
    let mut best: Option<(usize, f64)> = None;
    // Ascending candidates with a strict `>`: the lowest of the best thresholds wins.
    for (i, &t) in values.iter().enumerate() {
        let rule = DecisionRule::Threshold {
            class,
            threshold: t,
        };
        let v = target_value(target, &confusion(&rule.predict_all(probs, c), labels, c));
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    let (i, v) = best.unwrap_or((0, 0.0));
    let below = if i == 0 { 0.0 } else { values[i - 1] };
    (0.5 * (below + values[i]), v)
}

/// Tunes a decision rule on row-major calibrated probabilities for the metric `key` (see the
/// module doc). Returns the rule and its value of `key` on these samples.
pub fn tune_rule(
    key: &str,
    probs: &[f64],
    labels: &[usize],
    classes: &[String],
) -> Result<(DecisionRule, f64), CalibrationError> {
    let c = classes.len();
    check(probs, labels, c)?;
    let target = parse_target(key, classes)?;
    let single = match target {
        Target::F1(k) | Target::Precision(k) | Target::Recall(k) => Some(k),
        Target::MacroF1 | Target::Accuracy if c == 2 => {
            let mut support = vec![0usize; c];
            for &y in labels {
                support[y] += 1;
            }
            // The rarest class (ties: the later one, the usual minority position).
            (0..c).rev().min_by_key(|&k| support[k])
        }
        _ => None,
    };
    let rule = match single {
        Some(k) => {
            let (threshold, _) = best_threshold(k, target, probs, labels, c);
            DecisionRule::Threshold {
                class: k,
                threshold,
            }
        }
        None => {
            // One-vs-rest: each class's threshold maximises its own F1 as a binary problem.
            let thresholds = (0..c)
                .map(|k| {
                    let binary: Vec<f64> = probs
                        .chunks_exact(c)
                        .flat_map(|r| [1.0 - r[k], r[k]])
                        .collect();
                    let is_k: Vec<usize> = labels.iter().map(|&y| usize::from(y == k)).collect();
                    best_threshold(1, Target::F1(1), &binary, &is_k, 2).0
                })
                .collect();
            DecisionRule::PerClass { thresholds }
        }
    };
    let value = target_value(target, &confusion(&rule.predict_all(probs, c), labels, c));
    Ok((rule, value))
}

/// Every metric of row-major probabilities with the predicted class taken from `rule`: the
/// confusion matrix, precision, recall, F1, macro F1 and accuracy follow the rule; AUC and AP
/// (threshold-free) are those of the probabilities.
pub fn metrics_with_rule(
    classes: &[String],
    probs: &[f64],
    labels: &[usize],
    rule: &DecisionRule,
) -> Result<MetricSet, crate::metrics::MetricsError> {
    let mut m = MetricSet::compute(classes, probs, labels)?;
    let c = classes.len();
    let cm = confusion(&rule.predict_all(probs, c), labels, c);
    for (k, pc) in m.per_class.iter_mut().enumerate() {
        let (p, r, f) = class_prf(&cm, k);
        pc.precision = p;
        pc.recall = r;
        pc.f1 = f;
    }
    m.macro_f1 = m.per_class.iter().map(|x| x.f1).sum::<f64>() / c as f64;
    m.accuracy = target_value(Target::Accuracy, &cm);
    m.confusion = cm;
    Ok(m)
}

/// `RUN/calibration.json`: the temperature and decision rule tuned on a split (and, once
/// `ethos calibrate --timeline` ran, the timeline's bout rule).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Format version of this file.
    pub format: u32,
    /// Class names, class-index order (a rule is only applied to a model with the same list).
    pub classes: Vec<String>,
    /// The split it was tuned on.
    pub split: String,
    /// The checkpoint whose outputs it was tuned on.
    pub checkpoint: String,
    /// Samples it was tuned on.
    pub samples: usize,
    /// Temperature `T`: calibrated probabilities are `softmax(ln p / T)`.
    pub temperature: f64,
    /// The metric the rule was tuned for.
    pub target: String,
    /// The decision rule on calibrated probabilities.
    pub rule: DecisionRule,
    /// Fit diagnostics on the tuning split.
    pub fit: CalibrationFit,
    /// The bout rule for long videos, when tuned.
    #[serde(default)]
    pub timeline: Option<TimelineRule>,
}

/// Diagnostics of a calibration on its tuning split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationFit {
    /// Mean NLL before temperature scaling.
    pub nll_before: f64,
    /// Mean NLL after.
    pub nll_after: f64,
    /// ECE before.
    pub ece_before: f64,
    /// ECE after.
    pub ece_after: f64,
    /// The target metric with the argmax rule (uncalibrated probabilities).
    pub target_argmax: f64,
    /// The target metric with the tuned rule (calibrated probabilities).
    pub target_tuned: f64,
}

/// Format version of [`Calibration`].
pub const CALIBRATION_FORMAT: u32 = 1;

/// File name of a run's calibration.
pub const CALIBRATION_FILE: &str = "calibration.json";

impl Calibration {
    /// Fits the temperature and tunes the rule for `target` on a split's probabilities (row-major
    /// `(N, C)`, as the model gives them) and true labels.
    pub fn fit(
        classes: &[String],
        probs: &[f64],
        labels: &[usize],
        target: &str,
        split: &str,
        checkpoint: &str,
    ) -> Result<Calibration, CalibrationError> {
        let c = classes.len();
        check(probs, labels, c)?;
        let logits = logits_from_probs(probs);
        let temperature = fit_temperature(&logits, labels, c)?;
        let calibrated = softmax_rows(&logits, c, temperature);
        let target_argmax = rule_metric(target, &DecisionRule::Argmax, probs, labels, classes)?;
        let (rule, target_tuned) = tune_rule(target, &calibrated, labels, classes)?;
        Ok(Calibration {
            format: CALIBRATION_FORMAT,
            classes: classes.to_vec(),
            split: split.to_string(),
            checkpoint: checkpoint.to_string(),
            samples: labels.len(),
            temperature,
            target: target.to_string(),
            rule,
            fit: CalibrationFit {
                nll_before: nll(&logits, labels, c, 1.0),
                nll_after: nll(&logits, labels, c, temperature),
                ece_before: ece(probs, labels, c),
                ece_after: ece(&calibrated, labels, c),
                target_argmax,
                target_tuned,
            },
            timeline: None,
        })
    }

    /// Calibrated probabilities of row-major model probabilities.
    pub fn apply(&self, probs: &[f64]) -> Vec<f64> {
        softmax_rows(
            &logits_from_probs(probs),
            self.classes.len(),
            self.temperature,
        )
    }

    /// Reads a calibration file; `Ok(None)` when it does not exist.
    pub fn read(path: &Path) -> Result<Option<Calibration>, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let cal: Calibration =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if cal.format != CALIBRATION_FORMAT {
            return Err(format!(
                "{}: format {} (this ethos reads {CALIBRATION_FORMAT})",
                path.display(),
                cal.format
            ));
        }
        if !(cal.temperature.is_finite() && cal.temperature > 0.0) {
            return Err(format!(
                "{}: temperature {} must be > 0",
                path.display(),
                cal.temperature
            ));
        }
        Ok(Some(cal))
    }

    /// Writes the file atomically.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        ethos_core::fs::write_bytes_atomic(path, &json)
    }
}

/// How a long video's window probabilities become bouts, tuned by `ethos calibrate --timeline`:
/// calibrated window probabilities, a centred moving average over `smooth_windows` windows, then
/// [`crate::timeline::merge_windows`] with these thresholds, gap and minimum duration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineRule {
    /// Per class (class-index order): the threshold, `None` for a background class.
    pub thresholds: Vec<Option<f32>>,
    /// Windows in the centred moving average (1 = none).
    pub smooth_windows: usize,
    /// Shortest bout kept, seconds.
    pub min_duration_s: f64,
    /// Bouts of one class at most this far apart are merged, seconds.
    pub max_gap_s: f64,
    /// Macro bout F1 on the tuning video with the rule it replaced.
    pub tuned_from_f1: f64,
    /// Macro bout F1 on the tuning video with this rule.
    pub tuned_f1: f64,
    /// The tuning video.
    pub video: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn names(c: usize) -> Vec<String> {
        ["ear", "tail", "none", "other"][..c]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    /// Labels drawn from `softmax(z)` (a calibrated model), and the logits scaled by 3.
    fn overconfident(n: usize, c: usize, seed: u64) -> (Vec<f64>, Vec<usize>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut logits = Vec::with_capacity(n * c);
        let mut labels = Vec::with_capacity(n);
        for _ in 0..n {
            let z: Vec<f64> = (0..c).map(|_| rng.random_range(-2.0..2.0)).collect();
            let p = softmax_row(&z, 1.0);
            let u: f64 = rng.random();
            let mut acc = 0.0;
            let mut y = c - 1;
            for (k, pk) in p.iter().enumerate() {
                acc += pk;
                if u < acc {
                    y = k;
                    break;
                }
            }
            labels.push(y);
            logits.extend(z.iter().map(|v| 3.0 * v));
        }
        (logits, labels)
    }

    #[test]
    fn temperature_recovers_a_scale_of_three_and_ece_drops() {
        for c in [2, 3] {
            let (logits, labels) = overconfident(20_000, c, 7 + c as u64);
            let t = fit_temperature(&logits, &labels, c).unwrap();
            assert!((t - 3.0).abs() / 3.0 < 0.05, "{c} classes: T = {t}");
            let before = ece(&softmax_rows(&logits, c, 1.0), &labels, c);
            let after = ece(&softmax_rows(&logits, c, t), &labels, c);
            assert!(after < before / 3.0, "ECE {before} -> {after}");
            assert!(after < 0.02, "ECE after {after}");
            // The NLL is minimal at the fitted temperature.
            let at = nll(&logits, &labels, c, t);
            assert!(at <= nll(&logits, &labels, c, t * 1.02));
            assert!(at <= nll(&logits, &labels, c, t / 1.02));
            assert!(at < nll(&logits, &labels, c, 1.0));
        }
    }

    #[test]
    fn log_probabilities_stand_for_logits() {
        let (logits, labels) = overconfident(5_000, 3, 3);
        let probs = softmax_rows(&logits, 3, 1.0);
        let from_logits = fit_temperature(&logits, &labels, 3).unwrap();
        let from_probs = fit_temperature(&logits_from_probs(&probs), &labels, 3).unwrap();
        assert!(
            (from_logits - from_probs).abs() < 1e-6,
            "{from_logits} vs {from_probs}"
        );
    }

    #[test]
    fn ece_of_a_known_case() {
        // Two bins used: 0.9 confidence with 1/2 right, 0.6 confidence with 1/1 right.
        let probs = [0.9, 0.1, 0.1, 0.9, 0.6, 0.4];
        let labels = [0, 0, 0];
        let e = ece(&probs, &labels, 2);
        let want = 2.0 / 3.0 * (0.9f64 - 0.5).abs() + 1.0 / 3.0 * (0.6f64 - 1.0).abs();
        assert!((e - want).abs() < 1e-12, "{e} vs {want}");
        let bins = reliability(&probs, &labels, 2, ECE_BINS);
        assert_eq!(bins.len(), 15);
        assert_eq!(bins.iter().map(|b| b.count).sum::<usize>(), 3);
    }

    /// Brute force: the metric at every threshold on a fine grid and at every sample value.
    fn brute_force(key: &str, class: usize, probs: &[f64], labels: &[usize], c: usize) -> f64 {
        let classes = names(c);
        let mut grid: Vec<f64> = (0..=10_000).map(|i| i as f64 / 10_000.0).collect();
        grid.extend(probs.chunks_exact(c).map(|r| r[class]));
        grid.iter()
            .map(|&t| {
                let rule = DecisionRule::Threshold {
                    class,
                    threshold: t,
                };
                rule_metric(key, &rule, probs, labels, &classes).unwrap()
            })
            .fold(f64::NEG_INFINITY, f64::max)
    }

    #[test]
    fn tuned_threshold_is_the_brute_force_optimum() {
        for (seed, c, key, class) in [
            (1, 2, "f1_tail", 1),
            (2, 2, "macro_f1", 1),
            (3, 3, "f1_tail", 1),
            (4, 2, "recall_ear", 0),
        ] {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let n = 400;
            let mut probs = Vec::new();
            let mut labels = Vec::new();
            for _ in 0..n {
                // A rare class 1 (about 1 in 7), noisy scores.
                let y = usize::from(rng.random_bool(0.15));
                let mut z: Vec<f64> = (0..c).map(|_| rng.random_range(-1.0..1.0)).collect();
                z[y] += 1.2;
                probs.extend(softmax_row(&z, 1.0));
                labels.push(y.min(c - 1));
            }
            let classes = names(c);
            let (rule, value) = tune_rule(key, &probs, &labels, &classes).unwrap();
            let DecisionRule::Threshold { class: k, .. } = rule else {
                panic!("{rule:?}")
            };
            assert_eq!(k, class, "{key}");
            let best = brute_force(key, class, &probs, &labels, c);
            assert!(
                (value - best).abs() < 1e-12,
                "{key}: tuned {value}, brute {best}"
            );
            assert_eq!(
                rule_metric(key, &rule, &probs, &labels, &classes).unwrap(),
                value
            );
            let argmax =
                rule_metric(key, &DecisionRule::Argmax, &probs, &labels, &classes).unwrap();
            assert!(value >= argmax);
        }
    }

    #[test]
    fn per_class_thresholds_for_a_class_free_target_with_three_classes() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let mut probs = Vec::new();
        let mut labels = Vec::new();
        for _ in 0..300 {
            let y = rng.random_range(0..3);
            let mut z: Vec<f64> = (0..3).map(|_| rng.random_range(-1.0..1.0)).collect();
            z[y] += 1.0;
            probs.extend(softmax_row(&z, 1.0));
            labels.push(y);
        }
        let classes = names(3);
        let (rule, _) = tune_rule("macro_f1", &probs, &labels, &classes).unwrap();
        let DecisionRule::PerClass { thresholds } = &rule else {
            panic!("{rule:?}")
        };
        assert_eq!(thresholds.len(), 3);
        // Each threshold is its class's one-vs-rest F1 optimum.
        for (k, &t) in thresholds.iter().enumerate() {
            let f1_at = |t: f64| {
                let (mut tp, mut fp, mut fn_) = (0, 0, 0);
                for (r, &y) in probs.chunks_exact(3).zip(&labels) {
                    match (r[k] >= t, y == k) {
                        (true, true) => tp += 1,
                        (true, false) => fp += 1,
                        (false, true) => fn_ += 1,
                        _ => {}
                    }
                }
                2.0 * tp as f64 / (2 * tp + fp + fn_) as f64
            };
            let best = (0..=1000)
                .map(|i| f1_at(i as f64 / 1000.0))
                .chain(probs.chunks_exact(3).map(|r| f1_at(r[k])))
                .fold(0.0, f64::max);
            assert!((f1_at(t) - best).abs() < 1e-12, "class {k}");
        }
        assert!(matches!(
            tune_rule("auc_tail", &probs, &labels, &classes),
            Err(CalibrationError::BadTarget { .. })
        ));
    }

    #[test]
    fn rules_predict_as_documented() {
        let t = DecisionRule::Threshold {
            class: 1,
            threshold: 0.3,
        };
        assert_eq!(t.predict(&[0.65, 0.35]), 1);
        assert_eq!(t.predict(&[0.75, 0.25]), 0);
        assert_eq!(t.predict(&[0.2, 0.25, 0.55]), 2);
        let pc = DecisionRule::PerClass {
            thresholds: vec![0.8, 0.3, 0.5],
        };
        assert_eq!(pc.predict(&[0.6, 0.35, 0.05]), 1);
        assert_eq!(pc.predict(&[0.45, 0.1, 0.45]), 0);
        let m = metrics_with_rule(&names(2), &[0.65, 0.35, 0.9, 0.1], &[1, 0], &t).unwrap();
        assert_eq!(m.confusion, vec![vec![1, 0], vec![0, 1]]);
        assert_eq!(m.accuracy, 1.0);
    }

    #[test]
    fn calibration_round_trips_and_rejects_bad_files() {
        let (logits, labels) = overconfident(2_000, 2, 5);
        let probs = softmax_rows(&logits, 2, 1.0);
        let cal =
            Calibration::fit(&names(2), &probs, &labels, "f1_tail", "val", "best.ckpt").unwrap();
        assert!(cal.fit.ece_after < cal.fit.ece_before);
        assert!(cal.fit.nll_after < cal.fit.nll_before);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CALIBRATION_FILE);
        assert_eq!(Calibration::read(&path).unwrap(), None);
        cal.write(&path).unwrap();
        let back = Calibration::read(&path).unwrap().unwrap();
        assert_eq!(back.rule, cal.rule);
        assert!((back.temperature - cal.temperature).abs() < 1e-12);
        assert!((back.fit.nll_after - cal.fit.nll_after).abs() < 1e-12);
        std::fs::write(&path, "{\"format\": 1}").unwrap();
        assert!(
            Calibration::read(&path)
                .unwrap_err()
                .contains("calibration.json")
        );
    }
}
