//! Clip-classification metrics with scikit-learn's conventions, computed exactly in `f64`.
//!
//! Inputs are per-sample class probabilities, row-major `(N, C)`, and true class indices.
//! The predicted class is the argmax of a row, ties going to the lower class index (NumPy's
//! `argmax`). Definitions (all with `zero_division = 0`):
//!
//! - `precision_c = TP / (TP + FP)`, `recall_c = TP / (TP + FN)`, `f1_c = 2TP / (2TP + FP + FN)`
//!   (sklearn's F1 form: a class present but never predicted has F1 0), a 0/0 gives 0;
//!   `support_c` = number of samples whose true class is `c`.
//! - `macro_f1` = unweighted mean of `f1_c` over every configured class; `accuracy` = correct / N.
//! - `auc_c`: one-vs-rest ROC AUC of `c` (positives: true class `c`, score: probability of `c`),
//!   the trapezoid over distinct score thresholds (tied scores form one threshold), equal to
//!   sklearn's `roc_auc_score`. Undefined (`None`, JSON `null`) when `c` has no positives or no
//!   negatives.
//! - `ap_c`: sklearn's `average_precision_score`, `Σ_n (R_n − R_{n−1}) · P_n` over distinct
//!   thresholds in decreasing score order (a step sum, not the trapezoidal PR-AUC). Undefined
//!   (`None`) when `c` has no positives.
//! - `confusion[i][j]` = number of samples of true class `i` predicted as `j`, in class-list order.
//! - Frame level (per-frame heads, [`MetricSet::with_frame_metrics`]): `frame_ap_c` is `ap_c` over
//!   every frame of the split (one-vs-rest, the frame's probability of `c`); `frame_map` is the
//!   mean of the defined `frame_ap_c` (classes with at least one positive frame), `None` when no
//!   class has one.
//!
//! Metric names (JSON keys, history columns, `train.metric_key`): `precision_<class>`,
//! `recall_<class>`, `f1_<class>`, `support_<class>`, `auc_<class>`, `ap_<class>`, `macro_f1`,
//! `accuracy`, `loss`, `confusion`; with frame-level metrics also `frame_map`, `frame_ap_<class>`.

use serde::ser::SerializeMap;

/// Errors of metric computation and of metric-key parsing.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The probability array is not `N × C` for the given labels and classes.
    #[error("probabilities have {got} values, expected {n} samples x {c} classes = {}", n * c)]
    ShapeMismatch {
        /// Values given.
        got: usize,
        /// Samples (labels) given.
        n: usize,
        /// Classes configured.
        c: usize,
    },
    /// A true label is not a valid class index.
    #[error("sample {index}: true class index {label} is out of range for {c} classes")]
    LabelOutOfRange {
        /// Sample index.
        index: usize,
        /// The label.
        label: usize,
        /// Classes configured.
        c: usize,
    },
    /// A probability is NaN or infinite.
    #[error("sample {index}: probability of class `{class}` is not finite ({value})")]
    NonFinite {
        /// Sample index.
        index: usize,
        /// Class name.
        class: String,
        /// The value.
        value: f64,
    },
    /// No classes were configured.
    #[error("no classes given")]
    NoClasses,
    /// `train.metric_key` names no metric for the configured classes.
    #[error("unknown metric key `{key}`{suggestion}; valid keys: {valid}")]
    UnknownKey {
        /// The key as given.
        key: String,
        /// `" (did you mean `x`?)"` or empty.
        suggestion: String,
        /// Comma-separated list of valid keys.
        valid: String,
    },
}

impl ethos_core::Classify for MetricsError {
    /// True when the error comes from user input (every variant does: data or config).
    fn kind(&self) -> ethos_core::ErrorKind {
        ethos_core::ErrorKind::BadInput
    }
}

/// Metrics of one class, one-vs-rest.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassMetrics {
    /// TP / (TP + FP), 0 when nothing was predicted as this class.
    pub precision: f64,
    /// TP / (TP + FN), 0 when the class is absent.
    pub recall: f64,
    /// 2TP / (2TP + FP + FN), 0 when the denominator is 0.
    pub f1: f64,
    /// Number of samples of this true class.
    pub support: u64,
    /// One-vs-rest ROC AUC; `None` when the class has no positives or no negatives.
    pub auc: Option<f64>,
    /// Average precision (step sum); `None` when the class has no positives.
    pub ap: Option<f64>,
}

/// All metrics of one evaluation (a split, a group), serialised as a flat JSON object with the
/// metric names of the module doc plus `classes` (the class list, fixing the order of `confusion`).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSet {
    /// Class names, in class-index order.
    pub classes: Vec<String>,
    /// Per-class metrics, in class-index order.
    pub per_class: Vec<ClassMetrics>,
    /// Mean of the per-class F1 over all classes.
    pub macro_f1: f64,
    /// Fraction of samples whose argmax equals the true class (0 for no samples).
    pub accuracy: f64,
    /// Mean loss when known (set by the trainer or from a `loss` column), else `None`.
    pub loss: Option<f64>,
    /// `confusion[true][predicted]`, class-list order.
    pub confusion: Vec<Vec<u64>>,
    /// Frame-level metrics of a per-frame head (`None` for clip-level evaluations).
    pub frame: Option<FrameMetrics>,
}

/// Frame-level metrics: one-vs-rest average precision over every evaluated frame.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameMetrics {
    /// Mean of the defined per-class frame APs (`None` when no class has a positive frame).
    pub map: Option<f64>,
    /// Per-class frame AP, class-index order (`None` without positive frames).
    pub ap: Vec<Option<f64>>,
    /// Frames evaluated.
    pub frames: u64,
}

impl FrameMetrics {
    /// Frame metrics from row-major `(F, C)` per-frame probabilities and per-frame true classes.
    pub fn compute(num_classes: usize, probs: &[f64], labels: &[usize]) -> FrameMetrics {
        let c = num_classes;
        let n = labels.len().min(probs.len() / c.max(1));
        let ap: Vec<Option<f64>> = (0..c)
            .map(|k| {
                let is_pos: Vec<bool> = labels[..n].iter().map(|&l| l == k).collect();
                let scores: Vec<f64> = (0..n).map(|i| probs[i * c + k]).collect();
                average_precision(&is_pos, &scores)
            })
            .collect();
        let defined: Vec<f64> = ap.iter().flatten().copied().collect();
        let map = (!defined.is_empty()).then(|| defined.iter().sum::<f64>() / defined.len() as f64);
        FrameMetrics {
            map,
            ap,
            frames: n as u64,
        }
    }
}

/// Index of the largest value, ties to the lower index (NumPy's `argmax` for finite values).
pub fn argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (j, &v) in row.iter().enumerate().skip(1) {
        if v > row[best] {
            best = j;
        }
    }
    best
}

impl MetricSet {
    /// Computes every metric from row-major `(N, C)` probabilities and true class indices.
    /// `loss` is left `None`; set it with [`MetricSet::with_loss`].
    pub fn compute<T: Copy + Into<f64>>(
        classes: &[String],
        probs: &[T],
        labels: &[usize],
    ) -> Result<MetricSet, MetricsError> {
        let c = classes.len();
        if c == 0 {
            return Err(MetricsError::NoClasses);
        }
        let n = labels.len();
        if probs.len() != n * c {
            return Err(MetricsError::ShapeMismatch {
                got: probs.len(),
                n,
                c,
            });
        }
        let p: Vec<f64> = probs.iter().map(|&v| v.into()).collect();
        for (i, &label) in labels.iter().enumerate() {
            if label >= c {
                return Err(MetricsError::LabelOutOfRange { index: i, label, c });
            }
            for (j, &v) in p[i * c..(i + 1) * c].iter().enumerate() {
                if !v.is_finite() {
                    return Err(MetricsError::NonFinite {
                        index: i,
                        class: classes[j].clone(),
                        value: v,
                    });
                }
            }
        }
        let mut confusion = vec![vec![0u64; c]; c];
        for (i, &label) in labels.iter().enumerate() {
            confusion[label][argmax(&p[i * c..(i + 1) * c])] += 1;
        }
        let mut per_class = Vec::with_capacity(c);
        for k in 0..c {
            let tp = confusion[k][k];
            let support: u64 = confusion[k].iter().sum();
            let predicted: u64 = (0..c).map(|t| confusion[t][k]).sum();
            let fp = predicted - tp;
            let fn_ = support - tp;
            let is_pos: Vec<bool> = labels.iter().map(|&l| l == k).collect();
            let scores: Vec<f64> = (0..n).map(|i| p[i * c + k]).collect();
            per_class.push(ClassMetrics {
                precision: ratio(tp, tp + fp),
                recall: ratio(tp, tp + fn_),
                f1: ratio(2 * tp, 2 * tp + fp + fn_),
                support,
                auc: roc_auc(&is_pos, &scores),
                ap: average_precision(&is_pos, &scores),
            });
        }
        let macro_f1 = per_class.iter().map(|m| m.f1).sum::<f64>() / c as f64;
        let correct: u64 = (0..c).map(|k| confusion[k][k]).sum();
        Ok(MetricSet {
            classes: classes.to_vec(),
            per_class,
            macro_f1,
            accuracy: ratio(correct, n as u64),
            loss: None,
            confusion,
            frame: None,
        })
    }

    /// The same set with `loss` set.
    pub fn with_loss(mut self, loss: f64) -> MetricSet {
        self.loss = Some(loss);
        self
    }

    /// The same set with frame-level metrics (see [`FrameMetrics::compute`]).
    pub fn with_frame_metrics(mut self, probs: &[f64], labels: &[usize]) -> MetricSet {
        self.frame = Some(FrameMetrics::compute(self.classes.len(), probs, labels));
        self
    }

    /// Number of samples evaluated.
    pub fn n_samples(&self) -> u64 {
        self.per_class.iter().map(|m| m.support).sum()
    }

    /// Value of a scalar metric by name (`f1_tail`, `macro_f1`, `loss`, `support_ear`, ...).
    /// `None` for an unknown name, for `confusion`, and for an undefined value (AUC of an absent
    /// class, a loss that was not recorded).
    pub fn get(&self, name: &str) -> Option<f64> {
        match name {
            "macro_f1" => return Some(self.macro_f1),
            "accuracy" => return Some(self.accuracy),
            "loss" => return self.loss,
            "frame_map" => return self.frame.as_ref()?.map,
            _ => {}
        }
        if let Some(class) = name.strip_prefix("frame_ap_") {
            let k = self.classes.iter().position(|c| c == class)?;
            return self.frame.as_ref()?.ap[k];
        }
        for (prefix, field) in PER_CLASS {
            if let Some(class) = name.strip_prefix(prefix).and_then(|r| r.strip_prefix('_')) {
                let k = self.classes.iter().position(|c| c == class)?;
                return field(&self.per_class[k]);
            }
        }
        None
    }

    /// Value of the metric a [`MetricKey`] selects.
    pub fn value(&self, key: &MetricKey) -> Option<f64> {
        self.get(&key.metric)
    }

    /// Every scalar metric as `(name, value)`, in the JSON order: per-class metrics class by class,
    /// then `macro_f1`, `accuracy`, `loss`.
    pub fn scalars(&self) -> Vec<(String, Option<f64>)> {
        let mut out = Vec::new();
        for (k, class) in self.classes.iter().enumerate() {
            for (prefix, field) in PER_CLASS {
                out.push((format!("{prefix}_{class}"), field(&self.per_class[k])));
            }
        }
        out.push(("macro_f1".into(), Some(self.macro_f1)));
        out.push(("accuracy".into(), Some(self.accuracy)));
        out.push(("loss".into(), self.loss));
        if let Some(f) = &self.frame {
            out.push(("frame_map".into(), f.map));
            for (class, ap) in self.classes.iter().zip(&f.ap) {
                out.push((format!("frame_ap_{class}"), *ap));
            }
        }
        out
    }

    /// Reads a set back from its JSON form (as written by `serde_json::to_value`).
    pub fn from_json(value: &serde_json::Value) -> Result<MetricSet, String> {
        let obj = value.as_object().ok_or("metrics JSON is not an object")?;
        let classes: Vec<String> = obj
            .get("classes")
            .and_then(|v| v.as_array())
            .ok_or("missing `classes` list")?
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or("`classes` must hold strings")
            })
            .collect::<Result<_, _>>()?;
        let num = |key: &str| -> Result<Option<f64>, String> {
            match obj.get(key) {
                None => Err(format!("missing `{key}`")),
                Some(serde_json::Value::Null) => Ok(None),
                Some(v) => v
                    .as_f64()
                    .map(Some)
                    .ok_or_else(|| format!("`{key}` is not a number")),
            }
        };
        let req = |key: &str| num(key)?.ok_or_else(|| format!("`{key}` is null"));
        let mut per_class = Vec::new();
        for class in &classes {
            per_class.push(ClassMetrics {
                precision: req(&format!("precision_{class}"))?,
                recall: req(&format!("recall_{class}"))?,
                f1: req(&format!("f1_{class}"))?,
                support: req(&format!("support_{class}"))? as u64,
                auc: num(&format!("auc_{class}"))?,
                ap: num(&format!("ap_{class}"))?,
            });
        }
        let confusion: Vec<Vec<u64>> =
            serde_json::from_value(obj.get("confusion").cloned().ok_or("missing `confusion`")?)
                .map_err(|e| format!("`confusion`: {e}"))?;
        let frame = match obj.get("frame_map") {
            None => None,
            Some(_) => Some(FrameMetrics {
                map: num("frame_map")?,
                ap: classes
                    .iter()
                    .map(|c| num(&format!("frame_ap_{c}")))
                    .collect::<Result<_, _>>()?,
                frames: obj.get("frames").and_then(|v| v.as_u64()).unwrap_or(0),
            }),
        };
        Ok(MetricSet {
            frame,
            classes,
            per_class,
            macro_f1: req("macro_f1")?,
            accuracy: req("accuracy")?,
            loss: obj.get("loss").and_then(|v| v.as_f64()),
            confusion,
        })
    }
}

impl<'de> serde::Deserialize<'de> for MetricSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        MetricSet::from_json(&value).map_err(serde::de::Error::custom)
    }
}

type FieldFn = fn(&ClassMetrics) -> Option<f64>;

/// Per-class metric prefixes and their accessors, in JSON order.
const PER_CLASS: [(&str, FieldFn); 6] = [
    ("precision", |m| Some(m.precision)),
    ("recall", |m| Some(m.recall)),
    ("f1", |m| Some(m.f1)),
    ("support", |m| Some(m.support as f64)),
    ("auc", |m| m.auc),
    ("ap", |m| m.ap),
];

impl serde::Serialize for MetricSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("classes", &self.classes)?;
        for (k, class) in self.classes.iter().enumerate() {
            let m = &self.per_class[k];
            map.serialize_entry(&format!("precision_{class}"), &m.precision)?;
            map.serialize_entry(&format!("recall_{class}"), &m.recall)?;
            map.serialize_entry(&format!("f1_{class}"), &m.f1)?;
            map.serialize_entry(&format!("support_{class}"), &m.support)?;
            map.serialize_entry(&format!("auc_{class}"), &m.auc)?;
            map.serialize_entry(&format!("ap_{class}"), &m.ap)?;
        }
        map.serialize_entry("macro_f1", &self.macro_f1)?;
        map.serialize_entry("accuracy", &self.accuracy)?;
        map.serialize_entry("loss", &self.loss)?;
        map.serialize_entry("confusion", &self.confusion)?;
        if let Some(f) = &self.frame {
            map.serialize_entry("frame_map", &f.map)?;
            for (class, ap) in self.classes.iter().zip(&f.ap) {
                map.serialize_entry(&format!("frame_ap_{class}"), ap)?;
            }
            map.serialize_entry("frames", &f.frames)?;
        }
        map.end()
    }
}

fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// Cumulative (false positives, true positives) at each distinct threshold, scores descending:
/// entry `n` counts the samples whose score is >= the `n`-th largest distinct score.
fn cumulative_counts(is_pos: &[bool], scores: &[f64]) -> (Vec<f64>, Vec<(u64, u64)>) {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    // total_cmp: a total order even for NaN, so sorting never panics on bad scores.
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut thresholds = Vec::new();
    let mut counts = Vec::new();
    let (mut fp, mut tp) = (0u64, 0u64);
    for (idx, &i) in order.iter().enumerate() {
        if is_pos[i] {
            tp += 1;
        } else {
            fp += 1;
        }
        let last_of_group = idx + 1 == order.len() || scores[order[idx + 1]] != scores[i];
        if last_of_group {
            thresholds.push(scores[i]);
            counts.push((fp, tp));
        }
    }
    (thresholds, counts)
}

/// ROC curve points `(fpr, tpr)` from `(0, 0)` through every distinct threshold (descending) to
/// `(1, 1)`; empty when there are no positives or no negatives.
pub fn roc_curve(is_pos: &[bool], scores: &[f64]) -> Vec<(f64, f64)> {
    let n_pos = is_pos.iter().filter(|&&p| p).count() as f64;
    let n_neg = is_pos.len() as f64 - n_pos;
    if n_pos == 0.0 || n_neg == 0.0 {
        return Vec::new();
    }
    let (_, counts) = cumulative_counts(is_pos, scores);
    let mut pts = vec![(0.0, 0.0)];
    pts.extend(
        counts
            .iter()
            .map(|&(fp, tp)| (fp as f64 / n_neg, tp as f64 / n_pos)),
    );
    pts
}

/// One-vs-rest ROC AUC (trapezoid over distinct thresholds), `None` when a class is missing.
pub fn roc_auc(is_pos: &[bool], scores: &[f64]) -> Option<f64> {
    let pts = roc_curve(is_pos, scores);
    if pts.is_empty() {
        return None;
    }
    Some(
        pts.windows(2)
            .map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0)
            .sum(),
    )
}

/// Precision-recall points `(recall, precision)` at each distinct threshold in decreasing score
/// order, up to the first threshold that reaches full recall (sklearn's `precision_recall_curve`
/// without its final `(0, 1)` point); empty when there are no positives.
pub fn pr_curve(is_pos: &[bool], scores: &[f64]) -> Vec<(f64, f64)> {
    let n_pos = is_pos.iter().filter(|&&p| p).count() as u64;
    if n_pos == 0 {
        return Vec::new();
    }
    let (_, counts) = cumulative_counts(is_pos, scores);
    let mut pts = Vec::new();
    for (fp, tp) in counts {
        pts.push((tp as f64 / n_pos as f64, tp as f64 / (tp + fp) as f64));
        if tp == n_pos {
            break;
        }
    }
    pts
}

/// Average precision `Σ (R_n − R_{n−1}) P_n` (sklearn's step sum), `None` without positives.
pub fn average_precision(is_pos: &[bool], scores: &[f64]) -> Option<f64> {
    let pts = pr_curve(is_pos, scores);
    if pts.is_empty() {
        return None;
    }
    let mut prev_recall = 0.0;
    let mut ap = 0.0;
    for (r, p) in pts {
        ap += (r - prev_recall) * p;
        prev_recall = r;
    }
    Some(ap)
}

/// Whether larger or smaller values of a metric are better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Larger is better (F1, AUC, accuracy, ...).
    HigherIsBetter,
    /// Smaller is better (loss).
    LowerIsBetter,
}

/// A validated `train.metric_key`: the metric (evaluated on the validation split) and its direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricKey {
    /// The key as configured (`val_loss`, `f1_tail`, `val_macro_f1`, ...).
    pub key: String,
    /// The metric name inside a [`MetricSet`] (`loss`, `f1_tail`, `macro_f1`, ...).
    pub metric: String,
    /// Whether higher or lower values are better.
    pub direction: Direction,
}

impl MetricKey {
    /// Parses a metric key for the configured classes. Accepted: every metric name except
    /// `support_*` and `confusion`, optionally prefixed `val_` (metrics are always those of the
    /// validation split), plus the frame-level `frame_map` / `frame_ap_<class>` (per-frame heads).
    /// `loss`/`val_loss` are lower-is-better, all others higher-is-better.
    pub fn parse(key: &str, classes: &[String]) -> Result<MetricKey, MetricsError> {
        let valid = Self::valid_keys(classes);
        let metric = key.strip_prefix("val_").unwrap_or(key);
        if valid.iter().any(|v| v == metric) {
            let direction = if metric == "loss" {
                Direction::LowerIsBetter
            } else {
                Direction::HigherIsBetter
            };
            return Ok(MetricKey {
                key: key.to_string(),
                metric: metric.to_string(),
                direction,
            });
        }
        let mut all = valid.clone();
        all.push("val_loss".into());
        let suggestion = closest(key, &all)
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        Err(MetricsError::UnknownKey {
            key: key.to_string(),
            suggestion,
            valid: all.join(", "),
        })
    }

    /// The metric names a key may select for these classes (without the optional `val_` prefix).
    pub fn valid_keys(classes: &[String]) -> Vec<String> {
        let mut v = Vec::new();
        for class in classes {
            for prefix in ["precision", "recall", "f1", "auc", "ap"] {
                v.push(format!("{prefix}_{class}"));
            }
        }
        v.extend(["macro_f1", "accuracy", "loss", "frame_map"].map(String::from));
        v.extend(classes.iter().map(|c| format!("frame_ap_{c}")));
        v
    }

    /// True for the frame-level keys (`frame_map`, `frame_ap_<class>`), which need a per-frame head.
    pub fn is_frame_level(&self) -> bool {
        self.metric.starts_with("frame_")
    }

    /// True when `candidate` is strictly better than `best` by more than `min_delta`.
    /// `None` values (undefined metrics) are never better; anything beats a `None` best.
    pub fn improves(&self, candidate: Option<f64>, best: Option<f64>, min_delta: f64) -> bool {
        match (candidate, best) {
            (None, _) => false,
            (Some(c), None) => !c.is_nan(),
            (Some(c), Some(b)) => match self.direction {
                Direction::HigherIsBetter => c > b + min_delta,
                Direction::LowerIsBetter => c < b - min_delta,
            },
        }
    }
}

/// The closest candidate by edit distance, if it is close enough to be a plausible typo.
pub fn closest<'a>(word: &str, candidates: &'a [String]) -> Option<&'a str> {
    let (best, dist) = candidates
        .iter()
        .map(|c| (c.as_str(), edit_distance(word, c)))
        .min_by_key(|&(_, d)| d)?;
    (dist <= (word.chars().count() / 3).max(2)).then_some(best)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn reference() -> serde_json::Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/reference/metrics/metrics.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        serde_json::from_str(&text).expect("metrics.json parses")
    }

    fn f64s(v: &serde_json::Value) -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    }

    fn close(a: f64, b: f64, what: &str) {
        assert!((a - b).abs() <= 1e-9, "{what}: got {a}, expected {b}");
    }

    #[test]
    fn matches_every_sklearn_reference_case() {
        let doc = reference();
        let cases = doc["cases"].as_array().unwrap();
        assert_eq!(cases.len(), 4);
        let names = classes(&["neg", "pos"]);
        for case in cases {
            let name = case["name"].as_str().unwrap();
            let y_true: Vec<usize> = f64s(&case["y_true"])
                .into_iter()
                .map(|v| v as usize)
                .collect();
            let score = f64s(&case["y_score"]);
            let y_pred: Vec<usize> = f64s(&case["y_pred"])
                .into_iter()
                .map(|v| v as usize)
                .collect();
            // Scores are float32 values, so 1 - score is exact in f64 and the order is kept.
            let probs: Vec<f64> = score.iter().flat_map(|&s| [1.0 - s, s]).collect();
            for (i, pair) in probs.chunks(2).enumerate() {
                assert_eq!(argmax(pair), y_pred[i], "{name}: prediction of sample {i}");
            }
            let m = MetricSet::compute(&names, &probs, &y_true).unwrap();
            let r = &case["metrics"];
            for k in 0..2 {
                close(
                    m.per_class[k].precision,
                    f64s(&r["precision"])[k],
                    &format!("{name} precision {k}"),
                );
                close(
                    m.per_class[k].recall,
                    f64s(&r["recall"])[k],
                    &format!("{name} recall {k}"),
                );
                close(
                    m.per_class[k].f1,
                    f64s(&r["f1"])[k],
                    &format!("{name} f1 {k}"),
                );
                assert_eq!(m.per_class[k].support as f64, f64s(&r["support"])[k]);
            }
            close(
                m.macro_f1,
                r["macro_f1"].as_f64().unwrap(),
                &format!("{name} macro_f1"),
            );
            close(
                m.accuracy,
                r["accuracy"].as_f64().unwrap(),
                &format!("{name} accuracy"),
            );
            close(
                m.get("auc_pos").unwrap(),
                r["roc_auc"].as_f64().unwrap(),
                &format!("{name} auc"),
            );
            close(
                m.get("ap_pos").unwrap(),
                r["average_precision"].as_f64().unwrap(),
                &format!("{name} ap"),
            );
            // The negative class scored by 1 - p ranks the samples in reverse: same AUC.
            close(
                m.get("auc_neg").unwrap(),
                r["roc_auc"].as_f64().unwrap(),
                &format!("{name} auc neg"),
            );
            let cm: Vec<Vec<u64>> = serde_json::from_value(r["confusion_matrix"].clone()).unwrap();
            assert_eq!(m.confusion, cm, "{name} confusion");
        }
    }

    #[test]
    fn degenerate_case_has_zero_precision_not_nan() {
        let doc = reference();
        let case = doc["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "degenerate_class1_never_predicted")
            .unwrap();
        let y_true: Vec<usize> = f64s(&case["y_true"])
            .into_iter()
            .map(|v| v as usize)
            .collect();
        let probs: Vec<f64> = f64s(&case["y_score"])
            .iter()
            .flat_map(|&s| [1.0 - s, s])
            .collect();
        let m = MetricSet::compute(&classes(&["ear", "tail"]), &probs, &y_true).unwrap();
        assert_eq!(m.get("precision_tail"), Some(0.0));
        assert_eq!(m.get("f1_tail"), Some(0.0));
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["precision_tail"], 0.0);
        assert!(json["auc_tail"].as_f64().unwrap() > 0.88);
    }

    #[test]
    fn absent_class_gives_null_auc_and_ap_not_a_crash() {
        let names = classes(&["a", "b", "c"]);
        let probs = [0.7, 0.2, 0.1, 0.3, 0.6, 0.1, 0.5, 0.5, 0.0];
        let labels = [0, 1, 0];
        let m = MetricSet::compute(&names, &probs, &labels).unwrap();
        assert_eq!(m.per_class[2].auc, None);
        assert_eq!(m.per_class[2].ap, None);
        assert_eq!(m.per_class[2].support, 0);
        assert_eq!(m.per_class[2].f1, 0.0);
        // Sample 2 ties a/b at 0.5: argmax goes to the lower index, `a`, which is correct.
        assert_eq!(
            m.confusion,
            vec![vec![2, 0, 0], vec![0, 1, 0], vec![0, 0, 0]]
        );
        assert_eq!(m.accuracy, 1.0);
        assert_eq!(m.macro_f1, 2.0 / 3.0);
        let json = serde_json::to_value(&m).unwrap();
        assert!(json["auc_c"].is_null() && json["ap_c"].is_null());
        assert_eq!(MetricSet::from_json(&json).unwrap(), m);
        // Only one class present in the labels: every AUC is undefined, AP of `a` is 1.
        let m = MetricSet::compute(&names, &probs, &[0, 0, 0]).unwrap();
        assert!(m.per_class.iter().all(|c| c.auc.is_none()));
        assert_eq!(m.per_class[0].ap, Some(1.0));
        // No samples at all.
        let m = MetricSet::compute::<f64>(&names, &[], &[]).unwrap();
        assert_eq!(m.accuracy, 0.0);
        assert_eq!(m.n_samples(), 0);
    }

    #[test]
    fn three_class_hand_computed() {
        let names = classes(&["a", "b", "c"]);
        // predictions: a, b, c, b, a ; truth: a, b, c, c, b
        let probs = [
            0.8, 0.1, 0.1, //
            0.2, 0.7, 0.1, //
            0.1, 0.2, 0.7, //
            0.1, 0.5, 0.4, //
            0.6, 0.3, 0.1,
        ];
        let m = MetricSet::compute(&names, &probs, &[0, 1, 2, 2, 1]).unwrap();
        assert_eq!(
            m.confusion,
            vec![vec![1, 0, 0], vec![1, 1, 0], vec![0, 1, 1]]
        );
        assert_eq!(m.get("precision_a"), Some(0.5));
        assert_eq!(m.get("recall_c"), Some(0.5));
        assert_eq!(m.get("f1_b"), Some(0.5));
        assert_eq!(m.get("f1_c"), Some(2.0 / 3.0));
        assert_eq!(m.accuracy, 0.6);
        // class c scores: positives {0.7, 0.4}, negatives {0.1, 0.1, 0.1}: AUC 1, AP 1.
        assert_eq!(m.get("auc_c"), Some(1.0));
        assert_eq!(m.get("ap_c"), Some(1.0));
        // class b scores: pos {0.7, 0.3}, neg {0.1, 0.2, 0.5}: pairs won 3 + 2 = 5 of 6.
        assert!((m.get("auc_b").unwrap() - 5.0 / 6.0).abs() < 1e-15);
        // ranking 0.7(+) 0.5(-) 0.3(+): AP = 0.5*1 + 0.5*(2/3).
        assert!((m.get("ap_b").unwrap() - (0.5 + 1.0 / 3.0)).abs() < 1e-15);
    }

    #[test]
    fn ties_count_half_in_auc() {
        let auc = roc_auc(&[true, false], &[0.5, 0.5]).unwrap();
        assert_eq!(auc, 0.5);
        let ap = average_precision(&[true, false, true], &[0.5, 0.5, 0.1]).unwrap();
        // threshold 0.5: R=1/2, P=1/2; threshold 0.1: R=1, P=2/3.
        assert!((ap - (0.25 + 0.5 * 2.0 / 3.0)).abs() < 1e-15);
        // NaN scores (rejected by MetricSet::compute) must not make the curve code panic.
        assert!(roc_auc(&[true, false, true], &[f64::NAN, 0.1, 0.2]).is_some());
    }

    #[test]
    fn bad_inputs_are_errors() {
        let names = classes(&["a", "b"]);
        assert!(matches!(
            MetricSet::compute(&names, &[0.5, 0.5, 0.1], &[0, 1]),
            Err(MetricsError::ShapeMismatch { .. })
        ));
        assert!(matches!(
            MetricSet::compute(&names, &[0.5, 0.5], &[2]),
            Err(MetricsError::LabelOutOfRange { .. })
        ));
        assert!(matches!(
            MetricSet::compute(&names, &[f64::NAN, 0.5], &[0]),
            Err(MetricsError::NonFinite { .. })
        ));
    }

    #[test]
    fn metric_keys_parse_with_direction_and_suggestions() {
        let names = classes(&["ear", "tail"]);
        let k = MetricKey::parse("f1_tail", &names).unwrap();
        assert_eq!(
            (k.metric.as_str(), k.direction),
            ("f1_tail", Direction::HigherIsBetter)
        );
        let k = MetricKey::parse("val_loss", &names).unwrap();
        assert_eq!(
            (k.metric.as_str(), k.direction),
            ("loss", Direction::LowerIsBetter)
        );
        assert_eq!(
            MetricKey::parse("val_macro_f1", &names).unwrap().metric,
            "macro_f1"
        );
        let err = MetricKey::parse("f1_tial", &names).unwrap_err().to_string();
        assert!(err.contains("did you mean `f1_tail`"), "{err}");
        assert!(err.contains("auc_ear") && err.contains("val_loss"), "{err}");
        let err = MetricKey::parse("support_tail", &names)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown metric key `support_tail`"), "{err}");
        assert!(MetricKey::parse("confusion", &names).is_err());
        assert!(k.improves(Some(0.5), Some(0.6), 0.0));
        assert!(!k.improves(Some(0.59), Some(0.6), 0.05));
        let f1 = MetricKey::parse("f1_tail", &names).unwrap();
        assert!(f1.improves(Some(0.7), Some(0.6), 0.05));
        assert!(!f1.improves(None, Some(0.6), 0.0));
        assert!(f1.improves(Some(0.0), None, 0.0));
    }

    #[test]
    fn json_has_every_metric_name() {
        let names = classes(&["ear", "tail"]);
        let m = MetricSet::compute(&names, &[0.9f32, 0.1, 0.2, 0.8], &[0, 1])
            .unwrap()
            .with_loss(0.25);
        let json = serde_json::to_value(&m).unwrap();
        for key in [
            "precision_ear",
            "recall_ear",
            "f1_ear",
            "support_ear",
            "auc_ear",
            "ap_ear",
            "precision_tail",
            "recall_tail",
            "f1_tail",
            "support_tail",
            "auc_tail",
            "ap_tail",
            "macro_f1",
            "accuracy",
            "loss",
            "confusion",
            "classes",
        ] {
            assert!(json.get(key).is_some(), "missing {key}");
        }
        assert_eq!(json["loss"], 0.25);
        assert_eq!(m.scalars().len(), 2 * 6 + 3);
        assert_eq!(MetricSet::from_json(&json).unwrap(), m);
        let back: MetricSet = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn frame_map_is_the_mean_of_defined_frame_aps() {
        // Class 1 scores [0.1, 0.9, 0.4, 0.6] for labels [0, 1, 1, 0]: ranked pos, neg, pos, neg,
        // AP = 0.5 * 1 + 0.5 * 2/3 (sklearn: 0.8333...); class 0 ranks the same way.
        let names = classes(&["ear", "tail", "rest"]);
        let probs = [
            0.9, 0.1, 0.0, 0.1, 0.9, 0.0, 0.6, 0.4, 0.0, 0.4, 0.6, 0.0f64,
        ];
        let labels = [0, 1, 1, 0];
        let m = MetricSet::compute(&names, &probs, &labels)
            .unwrap()
            .with_frame_metrics(&probs, &labels);
        let ap = 0.5 + 0.5 * 2.0 / 3.0;
        assert!((m.get("frame_ap_tail").unwrap() - ap).abs() < 1e-12);
        assert!((m.get("frame_ap_ear").unwrap() - ap).abs() < 1e-12);
        assert_eq!(m.get("frame_ap_rest"), None);
        assert!((m.get("frame_map").unwrap() - ap).abs() < 1e-12);
        let key = MetricKey::parse("frame_map", &names).unwrap();
        assert_eq!(key.direction, Direction::HigherIsBetter);
        assert!(key.is_frame_level());
        assert!(MetricKey::parse("val_frame_ap_tail", &names).is_ok());
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["frames"], 4);
        assert_eq!(MetricSet::from_json(&json).unwrap(), m);
        assert!(m.scalars().iter().any(|(k, _)| k == "frame_map"));
    }
}
