//! Per-epoch training history (`history.csv`): one row per epoch with the learning rate, train
//! and val loss, every scalar val metric, train macro F1, the train-val gap and timings.
//!
//! The rows also travel inside each checkpoint, so a resumed run rewrites exactly the rows of the
//! epochs it continues from.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// One epoch of history. Metric values are `None` where undefined (e.g. AUC with a class absent).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryRow {
    /// Epoch number, starting at 1.
    pub epoch: usize,
    /// Learning rate of the last optimiser step of the epoch.
    pub lr: f64,
    /// Mean training loss over the epoch's samples (with augmentation and mixup as trained).
    pub train_loss: f64,
    /// Mean validation loss.
    pub val_loss: f64,
    /// Every scalar validation metric, in a fixed order (`precision_<c>`, ..., `macro_f1`, ...).
    pub val_metrics: Vec<(String, Option<f64>)>,
    /// Macro F1 of the train-pass predictions.
    pub train_macro_f1: f64,
    /// `train_macro_f1 - val macro_f1` (a large gap means overfitting).
    pub train_val_gap: f64,
    /// Wall time of the epoch (train + val), seconds.
    pub epoch_seconds: f64,
    /// Training samples per second of wall time in the train pass.
    pub samples_per_s: f64,
}

impl HistoryRow {
    /// The value of a validation metric by its name (`val_loss` included).
    pub fn metric(&self, key: &str) -> Option<f64> {
        if key == "val_loss" || key == "loss" {
            return Some(self.val_loss);
        }
        self.val_metrics
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| *v)
    }
}

/// Names of the timing columns, which differ between otherwise identical runs.
pub const TIMING_COLUMNS: [&str; 2] = ["epoch_seconds", "samples_per_s"];

fn fmt_opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x}")).unwrap_or_default()
}

/// Writes `history.csv` atomically from all rows so far (columns from the first row).
pub fn write_history_csv(path: &Path, rows: &[HistoryRow]) -> std::io::Result<()> {
    let mut header = vec![
        "epoch".to_string(),
        "lr".into(),
        "train_loss".into(),
        "val_loss".into(),
    ];
    if let Some(first) = rows.first() {
        header.extend(first.val_metrics.iter().map(|(k, _)| k.clone()));
    }
    header.extend(
        [
            "train_macro_f1",
            "train_val_gap",
            "epoch_seconds",
            "samples_per_s",
        ]
        .map(String::from),
    );
    ethos_core::fs::write_atomic(path, |f| {
        let mut w = csv::Writer::from_writer(f);
        w.write_record(&header).map_err(std::io::Error::other)?;
        for r in rows {
            let mut cells = vec![
                r.epoch.to_string(),
                format!("{}", r.lr),
                format!("{}", r.train_loss),
                format!("{}", r.val_loss),
            ];
            cells.extend(r.val_metrics.iter().map(|(_, v)| fmt_opt(*v)));
            cells.push(format!("{}", r.train_macro_f1));
            cells.push(format!("{}", r.train_val_gap));
            cells.push(format!("{:.3}", r.epoch_seconds));
            cells.push(format!("{:.2}", r.samples_per_s));
            w.write_record(&cells).map_err(std::io::Error::other)?;
        }
        w.flush()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(epoch: usize) -> HistoryRow {
        HistoryRow {
            epoch,
            lr: 1e-4,
            train_loss: 0.5,
            val_loss: 0.25,
            val_metrics: vec![("f1_tail".into(), Some(0.75)), ("auc_tail".into(), None)],
            train_macro_f1: 0.9,
            train_val_gap: 0.15,
            epoch_seconds: 1.23456,
            samples_per_s: 10.0,
        }
    }

    #[test]
    fn writes_header_and_rows_with_empty_cells_for_undefined() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("history.csv");
        write_history_csv(&p, &[row(1), row(2)]).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "epoch,lr,train_loss,val_loss,f1_tail,auc_tail,train_macro_f1,train_val_gap,epoch_seconds,samples_per_s"
        );
        assert_eq!(lines[1], "1,0.0001,0.5,0.25,0.75,,0.9,0.15,1.235,10.00");
        assert_eq!(lines.len(), 3);
        assert_eq!(row(1).metric("val_loss"), Some(0.25));
        assert_eq!(row(1).metric("auc_tail"), None);
        assert_eq!(row(1).metric("f1_tail"), Some(0.75));
    }
}
