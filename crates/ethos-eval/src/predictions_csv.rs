//! Reading per-sample prediction CSVs (the `per_sample_loss.csv` format, or any other tool's
//! output) for scoring with [`crate::metrics`].
//!
//! Required columns: `true` (the true class name) and one `prob_<class>` column per class (a
//! probability in [0, 1]; larger = more likely). Optional: `split` (rows of several splits must
//! be narrowed with a split filter, never silently pooled; a split filter on a file without the
//! column is an error, not "every row") and `loss` (its mean becomes the `loss` metric). Other
//! columns are ignored. Line numbers count the header as line 1.

use std::path::{Path, PathBuf};

use crate::metrics::{MetricSet, MetricsError};

/// Errors reading a predictions CSV; each names the file and, where it applies, line, column and value.
#[derive(Debug, thiserror::Error)]
pub enum PredictionsCsvError {
    /// The file cannot be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The CSV is malformed (e.g. a row with the wrong number of fields).
    #[error("{path}:{line}: malformed CSV: {message}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// The parser's message.
        message: String,
    },
    /// A required column is missing.
    #[error("{path}: missing column `{column}` (have: {have})")]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The column.
        column: String,
        /// The header's columns.
        have: String,
    },
    /// The file has no `prob_<class>` columns and no class list was given.
    #[error("{path}: no `prob_<class>` columns; expected one per class")]
    NoProbColumns {
        /// The file.
        path: PathBuf,
    },
    /// A `prob_<class>` column names a class outside the given class list.
    #[error("{path}: column `{column}` is for a class not in --classes ({classes})")]
    ExtraProbColumn {
        /// The file.
        path: PathBuf,
        /// The column.
        column: String,
        /// The class list.
        classes: String,
    },
    /// A cell is not a finite number.
    #[error("{path}:{line}: column `{column}`: `{value}` is not a finite number")]
    BadNumber {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// The column.
        column: String,
        /// The cell text.
        value: String,
    },
    /// A `prob_<class>` cell is a number outside [0, 1].
    #[error("{path}:{line}: column `{column}`: {value} is not a probability in [0, 1]")]
    NotAProbability {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// The column.
        column: String,
        /// The value.
        value: f64,
    },
    /// A split filter was asked for but the file has no `split` column.
    #[error("{path}: no `split` column, so split `{split}` cannot be selected (have: {have})")]
    NoSplitColumn {
        /// The file.
        path: PathBuf,
        /// The split asked for.
        split: String,
        /// The header's columns.
        have: String,
    },
    /// A `true` cell names an unknown class.
    #[error("{path}:{line}: column `true`: unknown class `{value}` (classes: {classes})")]
    UnknownClass {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// The cell text.
        value: String,
        /// The class list.
        classes: String,
    },
    /// No data rows (after the split filter).
    #[error("{path}: no prediction rows{filter}")]
    NoRows {
        /// The file.
        path: PathBuf,
        /// `" for split `x`"` or empty.
        filter: String,
    },
    /// Rows of several splits and no split chosen.
    #[error("{path}: rows of several splits ({splits}); choose one with --split")]
    MixedSplits {
        /// The file.
        path: PathBuf,
        /// The splits found.
        splits: String,
    },
    /// The metrics could not be computed.
    #[error("{path}: {source}")]
    Metrics {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: MetricsError,
    },
}

impl ethos_core::Classify for PredictionsCsvError {
    /// True for every variant: each is a problem with the user's file or arguments.
    fn kind(&self) -> ethos_core::ErrorKind {
        ethos_core::ErrorKind::BadInput
    }
}

/// The parsed rows of a predictions CSV.
#[derive(Debug, Clone, PartialEq)]
pub struct Predictions {
    /// Class names, in class-index order.
    pub classes: Vec<String>,
    /// True class index per row.
    pub labels: Vec<usize>,
    /// Scores, row-major `(rows, classes)`.
    pub probs: Vec<f64>,
    /// Mean of the `loss` column when the file has one.
    pub mean_loss: Option<f64>,
    /// Where the rows came from.
    pub path: PathBuf,
}

impl Predictions {
    /// Reads `path`. `classes`: the class list (else the `prob_` columns in file order);
    /// `split`: keep only rows whose `split` column equals it.
    pub fn read(
        path: &Path,
        classes: Option<&[String]>,
        split: Option<&str>,
    ) -> Result<Predictions, PredictionsCsvError> {
        let p = || path.to_path_buf();
        let file = std::fs::File::open(path)
            .map_err(|source| PredictionsCsvError::Io { path: p(), source })?;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(std::io::BufReader::new(file));
        let csv_err = |e: csv::Error| {
            let line = e.position().map(|pos| pos.line()).unwrap_or(1);
            match e.into_kind() {
                csv::ErrorKind::Io(source) => PredictionsCsvError::Io { path: p(), source },
                other => PredictionsCsvError::Csv {
                    path: p(),
                    line,
                    message: csv_message(&other),
                },
            }
        };
        let header: Vec<String> = reader
            .headers()
            .map_err(csv_err)?
            .iter()
            .map(|h| h.trim().to_string())
            .collect();
        let have = header.join(", ");
        let col = |name: &str| header.iter().position(|h| h == name);
        let true_col = col("true").ok_or_else(|| PredictionsCsvError::MissingColumn {
            path: p(),
            column: "true".into(),
            have: have.clone(),
        })?;
        let prob_cols: Vec<(String, usize)> = header
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.strip_prefix("prob_").map(|c| (c.to_string(), i)))
            .collect();
        let classes: Vec<String> = match classes {
            Some(list) => {
                if let Some((c, _)) = prob_cols.iter().find(|(c, _)| !list.contains(c)) {
                    return Err(PredictionsCsvError::ExtraProbColumn {
                        path: p(),
                        column: format!("prob_{c}"),
                        classes: list.join(", "),
                    });
                }
                list.to_vec()
            }
            None if prob_cols.is_empty() => {
                return Err(PredictionsCsvError::NoProbColumns { path: p() });
            }
            None => prob_cols.iter().map(|(c, _)| c.clone()).collect(),
        };
        let class_cols: Vec<usize> = classes
            .iter()
            .map(|c| {
                col(&format!("prob_{c}")).ok_or_else(|| PredictionsCsvError::MissingColumn {
                    path: p(),
                    column: format!("prob_{c}"),
                    have: have.clone(),
                })
            })
            .collect::<Result<_, _>>()?;
        let split_col = col("split");
        if let (Some(want), None) = (split, split_col) {
            return Err(PredictionsCsvError::NoSplitColumn {
                path: p(),
                split: want.to_string(),
                have: have.clone(),
            });
        }
        let loss_col = col("loss");
        let mut labels = Vec::new();
        let mut probs = Vec::new();
        let mut loss_sum = 0.0;
        let mut splits_seen: Vec<String> = Vec::new();
        let number = |line: u64, column: &str, value: &str| -> Result<f64, PredictionsCsvError> {
            value
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| PredictionsCsvError::BadNumber {
                    path: p(),
                    line,
                    column: column.to_string(),
                    value: value.to_string(),
                })
        };
        for record in reader.records() {
            let record = record.map_err(csv_err)?;
            let line = record.position().map(|pos| pos.line()).unwrap_or(0);
            let cell = |i: usize| record.get(i).unwrap_or("");
            if let Some(sc) = split_col {
                let s = cell(sc).trim();
                if split.is_some_and(|want| want != s) {
                    continue;
                }
                if !splits_seen.iter().any(|x| x == s) {
                    splits_seen.push(s.to_string());
                }
            }
            let truth = cell(true_col).trim();
            let label = classes.iter().position(|c| c == truth).ok_or_else(|| {
                PredictionsCsvError::UnknownClass {
                    path: p(),
                    line,
                    value: truth.to_string(),
                    classes: classes.join(", "),
                }
            })?;
            for (k, &ci) in class_cols.iter().enumerate() {
                let column = format!("prob_{}", classes[k]);
                let v = number(line, &column, cell(ci))?;
                if !(0.0..=1.0).contains(&v) {
                    return Err(PredictionsCsvError::NotAProbability {
                        path: p(),
                        line,
                        column,
                        value: v,
                    });
                }
                probs.push(v);
            }
            if let Some(lc) = loss_col {
                loss_sum += number(line, "loss", cell(lc))?;
            }
            labels.push(label);
        }
        if labels.is_empty() {
            let filter = split
                .map(|s| format!(" for split `{s}`"))
                .unwrap_or_default();
            return Err(PredictionsCsvError::NoRows { path: p(), filter });
        }
        if split.is_none() && splits_seen.len() > 1 {
            return Err(PredictionsCsvError::MixedSplits {
                path: p(),
                splits: splits_seen.join(", "),
            });
        }
        let mean_loss = loss_col.map(|_| loss_sum / labels.len() as f64);
        Ok(Predictions {
            classes,
            labels,
            probs,
            mean_loss,
            path: p(),
        })
    }

    /// The metrics of these rows (`loss` = mean of the `loss` column when present).
    pub fn metrics(&self) -> Result<MetricSet, PredictionsCsvError> {
        let m = MetricSet::compute(&self.classes, &self.probs, &self.labels).map_err(|source| {
            PredictionsCsvError::Metrics {
                path: self.path.clone(),
                source,
            }
        })?;
        Ok(match self.mean_loss {
            Some(l) => m.with_loss(l),
            None => m,
        })
    }
}

/// A CSV parse error in words (the `csv` crate's `Debug` output is Rust syntax).
fn csv_message(kind: &csv::ErrorKind) -> String {
    match kind {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("the row has {len} fields, the header has {expected_len}"),
        csv::ErrorKind::Utf8 { err, .. } => {
            format!("field {} is not valid UTF-8", err.field() + 1)
        }
        csv::ErrorKind::Io(e) => e.to_string(),
        _ => "unreadable CSV".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ethos_core::Classify;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.csv");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn reads_per_sample_loss_format() {
        let (_d, path) = write(
            "split,event_idx,loss,predicted,true,correct,prob_ear,prob_tail\n\
             val,1,0.1,ear,ear,true,0.9,0.1\n\
             val,2,0.5,ear,tail,false,0.6,0.4\n\
             val,3,0.3,tail,tail,true,0.2,0.8\n",
        );
        let p = Predictions::read(&path, None, None).unwrap();
        assert_eq!(p.classes, vec!["ear", "tail"]);
        assert_eq!(p.labels, vec![0, 1, 1]);
        let m = p.metrics().unwrap();
        assert_eq!(m.get("recall_tail"), Some(0.5));
        assert!((m.loss.unwrap() - 0.3).abs() < 1e-12);
        assert_eq!(m.get("auc_tail"), Some(1.0));
    }

    #[test]
    fn errors_name_file_line_column_value() {
        let (_d, path) = write("true,prob_a,prob_b\na,0.5,0.5\nb,zero,1\n");
        let e = Predictions::read(&path, None, None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("p.csv:3") && e.contains("`prob_a`") && e.contains("`zero`"),
            "{e}"
        );
        let (_d, path) = write("true,prob_a,prob_b\na,0.5,0.5\nc,0.1,0.9\n");
        let e = Predictions::read(&path, None, None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("p.csv:3") && e.contains("unknown class `c`"),
            "{e}"
        );
        let (_d, path) = write("label,prob_a\na,1\n");
        let e = Predictions::read(&path, None, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing column `true`"), "{e}");
        let (_d, path) = write("true,prob_a,prob_b\na,0.5\n");
        let e = Predictions::read(&path, None, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("p.csv:2") && e.contains("malformed"), "{e}");
        // In words, not the csv crate's Debug output.
        assert!(
            e.contains("the row has 2 fields, the header has 3") && !e.contains("UnequalLengths"),
            "{e}"
        );
        let (_d, path) = write("true,prob_a,prob_b\na,nan,0.5\n");
        assert!(Predictions::read(&path, None, None).is_err());
        let e = Predictions::read(Path::new("/nonexistent/x.csv"), None, None).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/x.csv") && e.is_bad_input());
    }

    #[test]
    fn probabilities_outside_0_1_are_refused() {
        for bad in ["1.5", "-0.5"] {
            let (_d, path) = write(&format!("true,prob_a,prob_b\na,0.5,0.5\nb,{bad},0.5\n"));
            let e = Predictions::read(&path, None, None).unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.contains("p.csv:3") && msg.contains("`prob_a`") && msg.contains(bad),
                "{msg}"
            );
            assert!(e.is_bad_input());
        }
        let (_d, path) = write("true,prob_a,prob_b\na,1,0\nb,0,1\n");
        assert!(Predictions::read(&path, None, None).is_ok());
    }

    #[test]
    fn a_split_filter_needs_a_split_column() {
        let (_d, path) = write("true,prob_a,prob_b\na,0.9,0.1\nb,0.2,0.8\n");
        let e = Predictions::read(&path, None, Some("val"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no `split` column") && e.contains("`val`"),
            "{e}"
        );
    }

    #[test]
    fn class_list_and_splits() {
        let (_d, path) = write("split,true,prob_b,prob_a\ntrain,a,0.2,0.8\nval,b,0.7,0.3\n");
        let e = Predictions::read(&path, None, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("several splits (train, val)"), "{e}");
        let classes = vec!["a".to_string(), "b".to_string()];
        let p = Predictions::read(&path, Some(&classes), Some("val")).unwrap();
        assert_eq!(p.classes, classes);
        assert_eq!(p.probs, vec![0.3, 0.7]);
        let only_a = vec!["a".to_string()];
        let e = Predictions::read(&path, Some(&only_a), Some("val"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`prob_b`"), "{e}");
        let abc: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let e = Predictions::read(&path, Some(&abc), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing column `prob_c`"), "{e}");
        let e = Predictions::read(&path, Some(&classes), Some("test"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no prediction rows for split `test`"), "{e}");
    }
}
