//! `ethos calibrate`: a temperature and a tuned decision rule from a split's outputs (clips), or a
//! tuned bout rule from a labelled long video (timelines), stored in `RUN/calibration.json` and
//! applied by `evaluate` and `predict` (see [`ethos_eval::calibration`] for the math).
//!
//! Tuning uses the split it is given (val by default); other splits (OOD) are only ever scored
//! with the stored rule, never tuned on.

use std::path::{Path, PathBuf};

use ethos_core::{Error, ResultExt};
use ethos_eval::calibration::{
    CALIBRATION_FILE, Calibration, DecisionRule, ECE_BINS, TimelineRule, ece, metrics_with_rule,
    reliability,
};
use ethos_eval::metrics::MetricSet;
use ethos_eval::plots::write_reliability_png;
use ethos_eval::timeline::{
    Bout, BoutEvaluation, MergeRule, WindowProbs, evaluate_bouts, merge_windows,
};
use ethos_train::trainer::{self, EvalOutput, Progress};
use serde::Serialize;
use tch::nn;

use crate::Result;
use crate::config::RunConfig;
use crate::{source, train};

/// Where a checkpoint's calibration lives: `calibration.json` beside it (the run directory).
pub fn calibration_path(checkpoint: &Path) -> PathBuf {
    checkpoint
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
        .join(CALIBRATION_FILE)
}

/// Identity of a checkpoint file (size and modification time), so a calibration made for an
/// earlier `best.ckpt` of the run is not applied to a new one.
pub fn checkpoint_id(checkpoint: &Path) -> String {
    std::fs::metadata(checkpoint)
        .map(|m| {
            let t = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            format!("{}:{t}", m.len())
        })
        .unwrap_or_default()
}

/// The calibration to apply to `checkpoint`'s outputs: `None` with `disabled`, without a
/// `calibration.json`, or (with a warning) when it was made for another checkpoint or class list.
pub fn load_for(
    checkpoint: &Path,
    classes: &[String],
    disabled: bool,
) -> Result<Option<Calibration>> {
    if disabled {
        return Ok(None);
    }
    let path = calibration_path(checkpoint);
    let Some(cal) = Calibration::read(&path).map_err(Error::bad_input)? else {
        return Ok(None);
    };
    if cal.classes != classes {
        tracing::warn!(
            "{}: made for classes {:?}, the model has {:?}; not applied",
            path.display(),
            cal.classes,
            classes
        );
        return Ok(None);
    }
    if cal.checkpoint != checkpoint_id(checkpoint) {
        tracing::warn!(
            "{}: made for another version of {} (rerun `ethos calibrate`); not applied",
            path.display(),
            checkpoint.display()
        );
        return Ok(None);
    }
    Ok(Some(cal))
}

/// Runs `checkpoint` over every clip of `split` (eval transform, no gradients), as `evaluate` does.
pub fn split_outputs(checkpoint: &Path, cfg: &RunConfig, split: &str) -> Result<EvalOutput> {
    if !cfg.data.splits.contains_key(split) {
        let known: Vec<&String> = cfg.data.splits.keys().collect();
        return Err(Error::bad_input(format!(
            "--split {split}: not in data.splits ({known:?})"
        )));
    }
    let device = train::device_of(cfg)?;
    let mut vs = nn::VarStore::new(device);
    let model = crate::evaluate::load_checkpoint_model(checkpoint, cfg, &mut vs)?;
    vs.freeze();
    let train_events = ethos_data::dataset::load_split_events(&cfg.data, "train")
        .context("reading split `train`")?;
    let train_labels: Vec<usize> = train_events.iter().map(|e| e.class_index).collect();
    let loss = train::make_loss(cfg, &train_labels)?;
    let ds = source::open_split(&cfg.data, split)?;
    let src = source::eval_source(&cfg.data, std::sync::Arc::clone(&ds), model.input_layout());
    Ok(trainer::evaluate(
        model.as_ref(),
        &src,
        &loss,
        device,
        cfg.train.amp,
        cfg.model.clip_aggregation,
        &Progress::new(cfg.train.log_every_steps),
    )?)
}

/// What `ethos calibrate --split` runs.
#[derive(Debug, Clone)]
pub struct CalibrateOptions {
    /// The checkpoint.
    pub checkpoint: PathBuf,
    /// A config to take the data settings from (default: the one stored in the checkpoint).
    pub config: Option<PathBuf>,
    /// `--set key=value` overrides.
    pub overrides: Vec<String>,
    /// The tuning split.
    pub split: String,
    /// The metric the rule maximises (default: `train.metric_key` when it is a decision metric,
    /// else `macro_f1`).
    pub target: Option<String>,
}

/// What a calibration found.
#[derive(Debug, Clone, Serialize)]
pub struct CalibrateSummary {
    /// The stored calibration.
    pub calibration: Calibration,
    /// Where it was written.
    pub path: PathBuf,
    /// The reliability diagram of the tuning split.
    pub reliability_png: PathBuf,
}

/// Fits the temperature and tunes the rule on `split`, writing `calibration.json` beside the
/// checkpoint (a bout rule tuned earlier is dropped: it was tuned on the old probabilities) and
/// `reliability_<split>.png`.
pub fn calibrate(o: &CalibrateOptions) -> Result<CalibrateSummary> {
    if !o.checkpoint.is_file() {
        return Err(Error::bad_input(format!(
            "{}: no such checkpoint",
            o.checkpoint.display()
        )));
    }
    let (cfg, _) = RunConfig::for_checkpoint(&o.checkpoint, o.config.as_deref(), &o.overrides)?;
    let classes = cfg.data.classes.clone();
    let target = match &o.target {
        Some(t) => t.clone(),
        None => {
            let key = cfg.train.metric_key.clone();
            let decision = ["f1_", "precision_", "recall_"]
                .iter()
                .any(|p| key.starts_with(p))
                || key == "macro_f1"
                || key == "accuracy";
            if decision { key } else { "macro_f1".into() }
        }
    };
    let out = split_outputs(&o.checkpoint, &cfg, &o.split)?;
    let probs: Vec<f64> = out.probs.iter().flatten().copied().collect();
    let cal = Calibration::fit(
        &classes,
        &probs,
        &out.labels,
        &target,
        &o.split,
        &checkpoint_id(&o.checkpoint),
    )?;
    let path = calibration_path(&o.checkpoint);
    if let Ok(Some(old)) = Calibration::read(&path)
        && old.timeline.is_some()
    {
        tracing::warn!(
            "calibrate: the bout rule in {} was tuned on the previous calibration and is dropped; rerun `ethos calibrate --timeline`",
            path.display()
        );
    }
    cal.write(&path).map_err(|e| Error::output_io(&path, e))?;
    let png = path.with_file_name(format!("reliability_{}.png", o.split));
    let c = classes.len();
    let calibrated = cal.apply(&probs);
    write_reliability_png(
        &png,
        (
            &reliability(&probs, &out.labels, c, ECE_BINS),
            cal.fit.ece_before,
        ),
        (
            &reliability(&calibrated, &out.labels, c, ECE_BINS),
            cal.fit.ece_after,
        ),
    )
    .context(format!("writing {}", png.display()))?;
    tracing::info!(
        "calibrate: {}: T = {:.3}, {} {:.4} (argmax) -> {:.4} (tuned), ECE {:.4} -> {:.4}; {}",
        o.split,
        cal.temperature,
        cal.target,
        cal.fit.target_argmax,
        cal.fit.target_tuned,
        cal.fit.ece_before,
        cal.fit.ece_after,
        path.display()
    );
    Ok(CalibrateSummary {
        calibration: cal,
        path,
        reliability_png: png,
    })
}

/// A split's metrics under a stored calibration, beside the argmax ones.
#[derive(Debug, Clone, Serialize)]
pub struct CalibratedMetrics {
    /// Temperature applied.
    pub temperature: f64,
    /// The tuned rule.
    pub rule: DecisionRule,
    /// The metric it was tuned for, on which split.
    pub target: String,
    /// The tuning split.
    pub tuned_on: String,
    /// Metrics with the tuned rule on calibrated probabilities.
    pub tuned: MetricSet,
    /// ECE of the model's probabilities.
    pub ece_before: f64,
    /// ECE after temperature scaling.
    pub ece_after: f64,
    /// The reliability diagram (before / after).
    pub reliability_png: PathBuf,
}

/// The calibrated view of a split's outputs (for `evaluate`): tuned-rule metrics, ECE before and
/// after, and `reliability.png` in `out`.
pub fn calibrated_metrics(
    cal: &Calibration,
    probs: &[f64],
    labels: &[usize],
    out: &Path,
) -> Result<CalibratedMetrics> {
    let c = cal.classes.len();
    let calibrated = cal.apply(probs);
    let tuned = metrics_with_rule(&cal.classes, &calibrated, labels, &cal.rule)
        .context("metrics with the tuned rule")?;
    let (ece_before, ece_after) = (ece(probs, labels, c), ece(&calibrated, labels, c));
    let png = out.join("reliability.png");
    write_reliability_png(
        &png,
        (&reliability(probs, labels, c, ECE_BINS), ece_before),
        (&reliability(&calibrated, labels, c, ECE_BINS), ece_after),
    )
    .context(format!("writing {}", png.display()))?;
    Ok(CalibratedMetrics {
        temperature: cal.temperature,
        rule: cal.rule.clone(),
        target: cal.target.clone(),
        tuned_on: cal.split.clone(),
        tuned,
        ece_before,
        ece_after,
        reliability_png: png,
    })
}

/// Reads a `NAME.windows.csv` of `ethos predict` (`start_s,end_s,prob_<class>...` in `classes`
/// order).
pub fn read_windows(path: &Path, classes: &[String]) -> Result<Vec<WindowProbs>> {
    let mut r = csv::Reader::from_path(path).map_err(|e| match e.into_kind() {
        csv::ErrorKind::Io(io) => Error::input_io(path, io),
        other => Error::bad_input(format!("{}: {other:?}", path.display())),
    })?;
    let header = r
        .headers()
        .map_err(|e| Error::bad_input(format!("{}: {e}", path.display())))?
        .clone();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| Error::bad_input(format!("{}: missing column `{name}`", path.display())))
    };
    let (cs, ce) = (col("start_s")?, col("end_s")?);
    let cp: Vec<usize> = classes
        .iter()
        .map(|c| col(&format!("prob_{c}")))
        .collect::<Result<_>>()?;
    let mut out = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let line = i + 2;
        let rec = rec.map_err(|e| Error::bad_input(format!("{}:{line}: {e}", path.display())))?;
        let num = |c: usize| -> Result<f64> {
            let s = rec.get(c).unwrap_or("").trim();
            s.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| {
                    Error::bad_input(format!(
                        "{}:{line}: column `{}`: `{s}` is not a finite number",
                        path.display(),
                        &header[c]
                    ))
                })
        };
        out.push(WindowProbs {
            start_s: num(cs)?,
            end_s: num(ce)?,
            probs: cp
                .iter()
                .map(|&c| num(c).map(|v| v as f32))
                .collect::<Result<_>>()?,
        });
    }
    Ok(out)
}

/// Calibrated window probabilities (temperature of `cal`; the input when `None`).
pub fn calibrate_windows(windows: &[WindowProbs], cal: Option<&Calibration>) -> Vec<WindowProbs> {
    let Some(cal) = cal else {
        return windows.to_vec();
    };
    windows
        .iter()
        .map(|w| {
            let p: Vec<f64> = w.probs.iter().map(|&v| f64::from(v)).collect();
            WindowProbs {
                probs: cal.apply(&p).into_iter().map(|v| v as f32).collect(),
                ..w.clone()
            }
        })
        .collect()
}

/// Centred moving average over `k` windows (shorter at the ends); `k <= 1` leaves them.
pub fn smooth_windows(windows: &[WindowProbs], k: usize) -> Vec<WindowProbs> {
    if k <= 1 {
        return windows.to_vec();
    }
    let half = k / 2;
    (0..windows.len())
        .map(|i| {
            let lo = i.saturating_sub(half);
            let hi = (i + half + 1).min(windows.len());
            let c = windows[i].probs.len();
            let mut p = vec![0f32; c];
            for w in &windows[lo..hi] {
                for (a, v) in p.iter_mut().zip(&w.probs) {
                    *a += v / (hi - lo) as f32;
                }
            }
            WindowProbs {
                probs: p,
                ..windows[i].clone()
            }
        })
        .collect()
}

/// The bouts of one video's (calibrated) windows under a tuned timeline rule.
pub fn timeline_bouts(video: &str, windows: &[WindowProbs], rule: &TimelineRule) -> Vec<Bout> {
    merge_windows(
        video,
        &smooth_windows(windows, rule.smooth_windows),
        &MergeRule {
            thresholds: rule.thresholds.clone(),
            min_duration_s: rule.min_duration_s,
            max_gap_s: rule.max_gap_s,
        },
    )
}

/// The values the bout-rule search tries.
pub const THRESHOLDS: [f32; 8] = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95];
/// Moving-average lengths tried, windows.
pub const SMOOTHING: [usize; 4] = [1, 3, 5, 9];
/// Minimum bout durations tried, seconds.
pub const MIN_DURATIONS: [f64; 6] = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0];
/// Gap merges tried, seconds.
pub const MAX_GAPS: [f64; 4] = [0.0, 0.5, 1.0, 2.0];

/// Grid search of the bout rule for macro bout F1 on one labelled video: for each smoothing,
/// minimum duration and gap merge, each class's threshold maximises its own bout F1 (classes are
/// merged and matched independently); of equal scores the first in grid order wins (less
/// smoothing, shorter minimum, smaller gap, lower threshold). `foreground[k]` is false for
/// background classes (never bouts). Returns the rule and its evaluation.
pub fn tune_timeline(
    video: &str,
    windows: &[WindowProbs],
    truth: &[Bout],
    classes: &[String],
    foreground: &[bool],
    tolerance_s: f64,
) -> (TimelineRule, BoutEvaluation) {
    let scored: Vec<String> = classes
        .iter()
        .zip(foreground)
        .filter(|(_, f)| **f)
        .map(|(c, _)| c.clone())
        .collect();
    let remap = |k: usize| scored.iter().position(|c| *c == classes[k]);
    let to_scored = |bouts: Vec<Bout>| -> Vec<Bout> {
        bouts
            .into_iter()
            .filter_map(|b| {
                remap(b.class_index).map(|k| Bout {
                    class_index: k,
                    ..b
                })
            })
            .collect()
    };
    let truth_s = to_scored(truth.to_vec());
    let mut best: Option<(f64, TimelineRule)> = None;
    for &smooth in &SMOOTHING {
        let sm = smooth_windows(windows, smooth);
        for &min_d in &MIN_DURATIONS {
            for &gap in &MAX_GAPS {
                let mut thresholds: Vec<Option<f32>> = vec![None; classes.len()];
                for (k, _) in foreground.iter().enumerate().filter(|(_, f)| **f) {
                    // (F1, fewer predicted bouts): a class without true bouts gets as few as it can.
                    let mut best_k: Option<(f64, usize, f32)> = None;
                    for &t in &THRESHOLDS {
                        let mut th = vec![None; classes.len()];
                        th[k] = Some(t);
                        let rule = MergeRule {
                            thresholds: th,
                            min_duration_s: min_d,
                            max_gap_s: gap,
                        };
                        let pred = to_scored(merge_windows(video, &sm, &rule));
                        let e = evaluate_bouts(&pred, &truth_s, &scored, tolerance_s, 0.5);
                        let (f, n) = e
                            .bouts
                            .get(&classes[k])
                            .map_or((0.0, 0), |b| (b.f1, b.predicted));
                        if best_k.is_none_or(|(bf, bn, _)| f > bf || (f == bf && n < bn)) {
                            best_k = Some((f, n, t));
                        }
                    }
                    thresholds[k] = Some(best_k.map_or(0.5, |b| b.2));
                }
                let rule = MergeRule {
                    thresholds: thresholds.clone(),
                    min_duration_s: min_d,
                    max_gap_s: gap,
                };
                let pred = to_scored(merge_windows(video, &sm, &rule));
                let macro_f1 =
                    evaluate_bouts(&pred, &truth_s, &scored, tolerance_s, 0.5).macro_bout_f1;
                if best.as_ref().is_none_or(|(b, _)| macro_f1 > *b) {
                    best = Some((
                        macro_f1,
                        TimelineRule {
                            thresholds,
                            smooth_windows: smooth,
                            min_duration_s: min_d,
                            max_gap_s: gap,
                            tuned_from_f1: 0.0,
                            tuned_f1: macro_f1,
                            video: video.to_string(),
                        },
                    ));
                }
            }
        }
    }
    let rule = best.map(|b| b.1).unwrap_or(TimelineRule {
        thresholds: foreground.iter().map(|&f| f.then_some(0.5)).collect(),
        smooth_windows: 1,
        min_duration_s: 0.0,
        max_gap_s: 0.0,
        tuned_from_f1: 0.0,
        tuned_f1: 0.0,
        video: video.to_string(),
    });
    let pred = to_scored(timeline_bouts(video, windows, &rule));
    let eval = evaluate_bouts(&pred, &truth_s, &scored, tolerance_s, 0.1);
    (rule, eval)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        ["ear", "tail", "none"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn bout(k: usize, s: f64, e: f64) -> Bout {
        Bout {
            video: "v.mp4".into(),
            class_index: k,
            start_s: s,
            end_s: e,
            score: 1.0,
        }
    }

    #[test]
    fn tuned_bout_rule_beats_a_bad_fixed_one_and_is_a_grid_optimum() {
        // Tail bouts at 10-15 s and 40-46 s show a tail probability of 0.65, with a one-window
        // dip inside; spurious 0.55 blips elsewhere. Threshold 0.5 without a minimum duration
        // finds the blips; the tuned rule should not.
        let mut windows = Vec::new();
        for i in 0..140 {
            let t = i as f64 * 0.5;
            let c = t + 0.5;
            let in_bout = (10.0..15.0).contains(&c) || (40.0..46.0).contains(&c);
            let tail = if in_bout && i % 7 != 3 {
                0.65
            } else if i % 17 == 0 {
                0.55
            } else {
                0.1
            };
            windows.push(WindowProbs {
                start_s: t,
                end_s: t + 1.0,
                probs: vec![0.05, tail, 0.95 - tail],
            });
        }
        let truth = vec![bout(1, 10.0, 15.0), bout(1, 40.0, 46.0)];
        let fg = [true, true, false];
        let (rule, eval) = tune_timeline("v.mp4", &windows, &truth, &names(), &fg, 1.0);
        assert_eq!(eval.bouts["tail"].f1, 1.0, "{rule:?} {eval:?}");
        assert_eq!(rule.thresholds[2], None);
        let fixed = MergeRule {
            thresholds: vec![Some(0.5), Some(0.5), None],
            min_duration_s: 0.0,
            max_gap_s: 0.0,
        };
        let pred = merge_windows("v.mp4", &windows, &fixed);
        let classes2 = vec!["ear".to_string(), "tail".to_string()];
        let before = evaluate_bouts(&pred, &truth, &classes2, 1.0, 0.5);
        assert!(before.bouts["tail"].f1 < 1.0);
        // Brute force over the whole grid (thresholds of both classes jointly) finds nothing better.
        let mut brute = 0.0f64;
        for &s in &SMOOTHING {
            for &m in &MIN_DURATIONS {
                for &g in &MAX_GAPS {
                    for &a in &THRESHOLDS {
                        for &b in &THRESHOLDS {
                            let r = TimelineRule {
                                thresholds: vec![Some(a), Some(b), None],
                                smooth_windows: s,
                                min_duration_s: m,
                                max_gap_s: g,
                                tuned_from_f1: 0.0,
                                tuned_f1: 0.0,
                                video: String::new(),
                            };
                            let p = timeline_bouts("v.mp4", &windows, &r);
                            let p: Vec<Bout> =
                                p.into_iter().filter(|b| b.class_index < 2).collect();
                            brute = brute
                                .max(evaluate_bouts(&p, &truth, &classes2, 1.0, 0.5).macro_bout_f1);
                        }
                    }
                }
            }
        }
        assert!(
            (eval.macro_bout_f1 - brute).abs() < 1e-12,
            "{} vs {brute}",
            eval.macro_bout_f1
        );
    }

    #[test]
    fn smoothing_is_a_centred_mean() {
        let w: Vec<WindowProbs> = [0.0f32, 0.0, 0.9, 0.0, 0.0]
            .iter()
            .enumerate()
            .map(|(i, &p)| WindowProbs {
                start_s: i as f64,
                end_s: i as f64 + 1.0,
                probs: vec![p],
            })
            .collect();
        let s = smooth_windows(&w, 3);
        assert!((s[1].probs[0] - 0.3).abs() < 1e-6 && (s[0].probs[0] - 0.0).abs() < 1e-6);
        assert_eq!(smooth_windows(&w, 1), w);
    }
}
