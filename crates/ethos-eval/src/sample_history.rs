//! Each sample's loss over the epochs of a training run (`RUN/per_sample_epochs.csv`) and the
//! label-noise signals derived from it.
//!
//! **File.** One row per sample per epoch per split: `epoch,split,event_idx,true,predicted,loss,margin`
//! (`true`/`predicted` are class names). `loss` is the cross-entropy of the sample's clip
//! probability against its own label, `-ln p_true` (not the training objective: no class weights,
//! focal term, smoothing or mixup, so train and val rows are comparable and a sample's row does not
//! depend on its batch mates); `margin` is `ln p_true - max_{k≠true} ln p_k`, the logit margin
//! of the true class (positive when the true class wins). Train rows come from the training pass
//! itself (augmented input, dropout on); val rows from the validation pass. A sample drawn twice in
//! an epoch (balanced sampler) has two rows.
//!
//! **Signals** ([`SampleHistory::signals`]) per sample of a split, over the epochs recorded
//! (`E` = the last one; *late* epochs are those after `E/2`, rounded down; *early* the others):
//!
//! - `late_loss`: mean loss over the late epochs (the "hardest" ranking);
//! - `late_miss_rate`: fraction of late rows where the predicted class is not the label;
//! - `aum`: area under the margin (Pleiss et al. 2020), the mean margin over all epochs; negative
//!   when the model keeps preferring another class;
//! - `stuck_high`: the class's mean loss falls (late mean < early mean) while this sample's late
//!   loss stays above the class's late mean + 2 standard deviations (of its samples' late losses)
//!   and does not fall with it (late loss ≥ 0.8 × its early loss);
//! - `suspect` (suspected label noise): `aum < 0` and `late_miss_rate ≥ 0.5`, or `stuck_high`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::calibration::MIN_PROB;

/// File name in the run directory.
pub const FILE_NAME: &str = "per_sample_epochs.csv";

/// Errors reading a per-sample history.
#[derive(Debug, thiserror::Error)]
pub enum SampleHistoryError {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A row cannot be used (names the line and the problem).
    #[error("{path}:{line}: {message}")]
    Row {
        /// The file.
        path: PathBuf,
        /// 1-based line (the header is line 1).
        line: u64,
        /// What is wrong.
        message: String,
    },
}

impl ethos_core::Classify for SampleHistoryError {
    /// A bad row is the user's file; an unreadable file too.
    fn kind(&self) -> ethos_core::ErrorKind {
        ethos_core::ErrorKind::BadInput
    }
}

/// One sample in one epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleRecord {
    /// Epoch, 1-based.
    pub epoch: usize,
    /// Split (`train`, `val`).
    pub split: String,
    /// Event id.
    pub event_idx: u32,
    /// True class index.
    pub label: usize,
    /// Predicted (argmax) class index.
    pub predicted: usize,
    /// `-ln p_true`.
    pub loss: f64,
    /// `ln p_true - max_{k≠true} ln p_k`.
    pub margin: f64,
}

/// One split's samples of one epoch, as the trainer has them.
pub struct EpochSamples<'a> {
    /// Split name.
    pub split: &'a str,
    /// Event id per sample.
    pub event_idx: &'a [u32],
    /// True class per sample.
    pub labels: &'a [usize],
    /// Class probabilities per sample.
    pub probs: &'a [Vec<f64>],
}

/// The records of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleHistory {
    classes: Vec<String>,
    rows: Vec<SampleRecord>,
}

/// Label-noise signals of one sample (see the module doc).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NoiseSignals {
    /// Event id.
    pub event_idx: u32,
    /// True class index.
    pub label: usize,
    /// Rows recorded.
    pub rows: usize,
    /// Mean loss over all epochs.
    pub mean_loss: f64,
    /// Mean loss over the late epochs.
    pub late_loss: f64,
    /// Fraction of late rows misclassified.
    pub late_miss_rate: f64,
    /// Mean margin over all epochs.
    pub aum: f64,
    /// Loss stuck high while the class's mean falls.
    pub stuck_high: bool,
    /// Suspected label noise.
    pub suspect: bool,
}

impl SampleHistory {
    /// An empty history for these classes.
    pub fn new(classes: &[String]) -> Self {
        SampleHistory {
            classes: classes.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Every record, in file order.
    pub fn rows(&self) -> &[SampleRecord] {
        &self.rows
    }

    /// Drops the records of `epoch` and later (a resumed run redoes them).
    pub fn truncate_from(&mut self, epoch: usize) {
        self.rows.retain(|r| r.epoch < epoch);
    }

    /// Appends one split's samples of `epoch`.
    pub fn push_epoch(&mut self, epoch: usize, s: &EpochSamples<'_>) {
        for ((&idx, &label), p) in s.event_idx.iter().zip(s.labels).zip(s.probs) {
            let ln = |k: usize| p.get(k).copied().unwrap_or(0.0).max(MIN_PROB).ln();
            let other = (0..p.len())
                .filter(|&k| k != label)
                .map(ln)
                .fold(f64::NEG_INFINITY, f64::max);
            let margin = if other.is_finite() {
                ln(label) - other
            } else {
                0.0
            };
            self.rows.push(SampleRecord {
                epoch,
                split: s.split.to_string(),
                event_idx: idx,
                label,
                predicted: crate::metrics::argmax(p),
                loss: -ln(label),
                margin,
            });
        }
    }

    /// Writes the CSV atomically.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        ethos_core::fs::write_atomic(path, |w| {
            let mut csv = csv::Writer::from_writer(w);
            csv.write_record([
                "epoch",
                "split",
                "event_idx",
                "true",
                "predicted",
                "loss",
                "margin",
            ])
            .map_err(std::io::Error::other)?;
            for r in &self.rows {
                csv.write_record([
                    r.epoch.to_string(),
                    r.split.clone(),
                    r.event_idx.to_string(),
                    self.classes[r.label].clone(),
                    self.classes[r.predicted].clone(),
                    format!("{:.6}", r.loss),
                    format!("{:.6}", r.margin),
                ])
                .map_err(std::io::Error::other)?;
            }
            csv.flush()
        })
    }

    /// Reads a file written by [`SampleHistory::write`]; every problem names the line.
    pub fn read(path: &Path, classes: &[String]) -> Result<SampleHistory, SampleHistoryError> {
        let file = std::fs::File::open(path).map_err(|source| SampleHistoryError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut reader = csv::Reader::from_reader(std::io::BufReader::new(file));
        let row_err = |line: u64, message: String| SampleHistoryError::Row {
            path: path.to_path_buf(),
            line,
            message,
        };
        let header = reader
            .headers()
            .map_err(|e| row_err(1, e.to_string()))?
            .clone();
        let col = |name: &str| {
            header
                .iter()
                .position(|h| h == name)
                .ok_or_else(|| row_err(1, format!("missing column `{name}`")))
        };
        let (c_epoch, c_split, c_idx, c_true, c_pred, c_loss, c_margin) = (
            col("epoch")?,
            col("split")?,
            col("event_idx")?,
            col("true")?,
            col("predicted")?,
            col("loss")?,
            col("margin")?,
        );
        let mut rows = Vec::new();
        for (i, rec) in reader.records().enumerate() {
            let line = i as u64 + 2;
            let rec = rec.map_err(|e| row_err(line, e.to_string()))?;
            let get = |c: usize| rec.get(c).unwrap_or("").trim();
            let class = |c: usize| {
                classes.iter().position(|k| k == get(c)).ok_or_else(|| {
                    row_err(
                        line,
                        format!(
                            "unknown class `{}` (classes: {})",
                            get(c),
                            classes.join(", ")
                        ),
                    )
                })
            };
            let num = |c: usize| {
                get(c)
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| row_err(line, format!("`{}` is not a finite number", get(c))))
            };
            rows.push(SampleRecord {
                epoch: get(c_epoch)
                    .parse()
                    .map_err(|_| row_err(line, format!("epoch `{}`", get(c_epoch))))?,
                split: get(c_split).to_string(),
                event_idx: get(c_idx)
                    .parse()
                    .map_err(|_| row_err(line, format!("event_idx `{}`", get(c_idx))))?,
                label: class(c_true)?,
                predicted: class(c_pred)?,
                loss: num(c_loss)?,
                margin: num(c_margin)?,
            });
        }
        Ok(SampleHistory {
            classes: classes.to_vec(),
            rows,
        })
    }

    /// Mean loss per epoch of one sample of a split: `(epoch, loss)` in epoch order.
    pub fn loss_series(&self, split: &str) -> BTreeMap<u32, Vec<(usize, f64)>> {
        let mut acc: BTreeMap<u32, BTreeMap<usize, (f64, usize)>> = BTreeMap::new();
        for r in self.rows.iter().filter(|r| r.split == split) {
            let e = acc
                .entry(r.event_idx)
                .or_default()
                .entry(r.epoch)
                .or_insert((0.0, 0));
            e.0 += r.loss;
            e.1 += 1;
        }
        acc.into_iter()
            .map(|(k, m)| {
                (
                    k,
                    m.into_iter()
                        .map(|(ep, (s, n))| (ep, s / n as f64))
                        .collect(),
                )
            })
            .collect()
    }

    /// The label-noise signals of every sample of `split` (see the module doc), by event id.
    pub fn signals(&self, split: &str) -> BTreeMap<u32, NoiseSignals> {
        let rows: Vec<&SampleRecord> = self.rows.iter().filter(|r| r.split == split).collect();
        let last = rows.iter().map(|r| r.epoch).max().unwrap_or(0);
        let half = last / 2;
        let late = |r: &SampleRecord| r.epoch > half;
        #[derive(Default)]
        struct Acc {
            label: usize,
            n: usize,
            loss: f64,
            margin: f64,
            late_n: usize,
            late_loss: f64,
            late_miss: usize,
            early_n: usize,
            early_loss: f64,
        }
        let mut per: BTreeMap<u32, Acc> = BTreeMap::new();
        for r in &rows {
            let a = per.entry(r.event_idx).or_default();
            a.label = r.label;
            a.n += 1;
            a.loss += r.loss;
            a.margin += r.margin;
            if late(r) {
                a.late_n += 1;
                a.late_loss += r.loss;
                a.late_miss += usize::from(r.predicted != r.label);
            } else {
                a.early_n += 1;
                a.early_loss += r.loss;
            }
        }
        let mean = |s: f64, n: usize| if n > 0 { s / n as f64 } else { 0.0 };
        // Per class: early and late mean loss over rows; spread of the samples' late losses.
        let c = self.classes.len();
        let mut class_early = vec![(0.0, 0usize); c];
        let mut class_late = vec![(0.0, 0usize); c];
        for r in &rows {
            let slot = if late(r) {
                &mut class_late[r.label]
            } else {
                &mut class_early[r.label]
            };
            slot.0 += r.loss;
            slot.1 += 1;
        }
        let mut late_by_class: Vec<Vec<f64>> = vec![Vec::new(); c];
        for a in per.values() {
            if a.late_n > 0 {
                late_by_class[a.label].push(mean(a.late_loss, a.late_n));
            }
        }
        let sd: Vec<f64> = late_by_class
            .iter()
            .map(|v| {
                let m = mean(v.iter().sum(), v.len());
                mean(v.iter().map(|x| (x - m) * (x - m)).sum(), v.len()).sqrt()
            })
            .collect();
        per.into_iter()
            .map(|(idx, a)| {
                let late_loss = mean(a.late_loss, a.late_n);
                let late_miss_rate = mean(a.late_miss as f64, a.late_n);
                let aum = mean(a.margin, a.n);
                let (ce, cl) = (class_early[a.label], class_late[a.label]);
                let class_falls = ce.1 > 0 && cl.1 > 0 && mean(cl.0, cl.1) < mean(ce.0, ce.1);
                let stuck_high = class_falls
                    && a.early_n > 0
                    && late_loss > mean(cl.0, cl.1) + 2.0 * sd[a.label]
                    && late_loss >= 0.8 * mean(a.early_loss, a.early_n);
                let suspect = (aum < 0.0 && late_miss_rate >= 0.5) || stuck_high;
                (
                    idx,
                    NoiseSignals {
                        event_idx: idx,
                        label: a.label,
                        rows: a.n,
                        mean_loss: mean(a.loss, a.n),
                        late_loss,
                        late_miss_rate,
                        aum,
                        stuck_high,
                        suspect,
                    },
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes() -> Vec<String> {
        vec!["ear".into(), "tail".into()]
    }

    /// 20 ear samples whose loss falls, one (id 99) that stays wrong: a mislabelled clip.
    fn run() -> SampleHistory {
        let mut h = SampleHistory::new(&classes());
        for epoch in 1..=10 {
            let mut idx = Vec::new();
            let mut probs = Vec::new();
            for i in 0..20u32 {
                idx.push(i);
                let p = 0.5 + 0.045 * epoch as f64 + 0.001 * i as f64;
                probs.push(vec![p.min(0.99), 1.0 - p.min(0.99)]);
            }
            idx.push(99);
            probs.push(vec![0.3, 0.7]);
            let labels = vec![0; idx.len()];
            h.push_epoch(
                epoch,
                &EpochSamples {
                    split: "train",
                    event_idx: &idx,
                    labels: &labels,
                    probs: &probs,
                },
            );
        }
        h
    }

    #[test]
    fn a_sample_that_stays_wrong_is_suspected() {
        let h = run();
        let s = h.signals("train");
        let bad = &s[&99];
        assert!(bad.suspect && bad.stuck_high, "{bad:?}");
        assert!(bad.aum < 0.0 && bad.late_miss_rate == 1.0);
        assert!((bad.late_loss - -(0.3f64).ln()).abs() < 1e-12);
        assert!(s.values().filter(|x| x.suspect).count() == 1);
        let good = &s[&3];
        assert!(!good.suspect && good.aum > 0.0 && good.late_miss_rate == 0.0);
        // The margin is the logit margin: ln(0.3 / 0.7).
        assert!((h.rows()[20].margin - (0.3f64 / 0.7).ln()).abs() < 1e-12);
    }

    #[test]
    fn round_trips_and_truncates_for_a_resume() {
        let mut h = run();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        h.write(&path).unwrap();
        let back = SampleHistory::read(&path, &classes()).unwrap();
        assert_eq!(back.rows().len(), h.rows().len());
        assert!((back.rows()[5].loss - h.rows()[5].loss).abs() < 1e-6);
        h.truncate_from(4);
        assert_eq!(h.rows().len(), 3 * 21);
        assert_eq!(h.loss_series("train")[&99].len(), 3);
        std::fs::write(
            &path,
            "epoch,split,event_idx,true,predicted,loss,margin\n1,train,3,cow,ear,0.1,0.2\n",
        )
        .unwrap();
        let e = SampleHistory::read(&path, &classes())
            .unwrap_err()
            .to_string();
        assert!(e.contains(":2:") && e.contains("cow"), "{e}");
    }
}
