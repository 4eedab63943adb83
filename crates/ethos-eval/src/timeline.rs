//! Behaviour timelines: per-window class probabilities over a long video → merged behaviour bouts,
//! and bout-level evaluation of predicted bouts against labelled ones.
//!
//! **Merging.** Windows overlap when the stride is shorter than the window, so each window *owns*
//! only the stretch of time around its centre, `[centre - stride/2, centre + stride/2)`; owned
//! stretches tile the video without overlap. For each class with a threshold, the owned stretches of
//! windows whose probability reaches the threshold are joined into bouts; bouts closer than
//! `max_gap_s` are merged, then bouts shorter than `min_duration_s` are dropped. A bout's score is
//! the mean probability of its windows. Classes without a threshold (e.g. a background class) never
//! become bouts.
//!
//! **Bout-level matching** (`ethos eval-events`). A predicted bout and a true bout of the same class and
//! video *match* when their intervals, each widened by `tolerance_s` on both sides, overlap. Matching
//! is one-to-one and greedy by descending overlap (ties: earlier true bout first). Per class:
//! precision = matched predicted / predicted, recall = matched true / true, F1 their harmonic mean
//! (0 when undefined). **Frame-level agreement** discretises every video's span at `frame_step_s` and
//! compares the class (or background) of each step: accuracy and per-class frame F1.

use std::collections::BTreeMap;

/// Class probabilities of one sliding window (times in seconds from the video start).
#[derive(Debug, Clone, PartialEq)]
pub struct WindowProbs {
    /// Window start, seconds.
    pub start_s: f64,
    /// Window end, seconds.
    pub end_s: f64,
    /// One probability per class, in class-list order.
    pub probs: Vec<f32>,
}

/// How window probabilities become bouts.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeRule {
    /// Per class: the probability a window needs to count as that class; `None` = never a bout.
    pub thresholds: Vec<Option<f32>>,
    /// Bouts shorter than this (seconds) are dropped after gap merging.
    pub min_duration_s: f64,
    /// Bouts of one class separated by at most this gap (seconds) are merged.
    pub max_gap_s: f64,
}

/// A behaviour bout on a video's timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Bout {
    /// Video (as named in the events CSV).
    pub video: String,
    /// Class index in the class list.
    pub class_index: usize,
    /// Start, seconds.
    pub start_s: f64,
    /// End, seconds (exclusive).
    pub end_s: f64,
    /// Mean window probability of the class over the bout (1.0 for labelled bouts).
    pub score: f32,
}

impl Bout {
    /// Duration in seconds.
    pub fn duration_s(&self) -> f64 {
        self.end_s - self.start_s
    }
}

/// Merges the windows of one video (sorted by start, constant stride) into bouts, ordered by start.
pub fn merge_windows(video: &str, windows: &[WindowProbs], rule: &MergeRule) -> Vec<Bout> {
    let mut bouts = Vec::new();
    if windows.is_empty() {
        return bouts;
    }
    let centre = |w: &WindowProbs| 0.5 * (w.start_s + w.end_s);
    // Each window owns the half-way points to its neighbours; the ends own half a window.
    let owned = |i: usize| -> (f64, f64) {
        let c = centre(&windows[i]);
        let lo = if i == 0 {
            windows[i]
                .start_s
                .max(c - 0.5 * (windows[i].end_s - windows[i].start_s))
        } else {
            0.5 * (centre(&windows[i - 1]) + c)
        };
        let hi = if i + 1 == windows.len() {
            windows[i].end_s
        } else {
            0.5 * (c + centre(&windows[i + 1]))
        };
        (lo, hi)
    };
    for (class_index, threshold) in rule.thresholds.iter().enumerate() {
        let Some(threshold) = *threshold else {
            continue;
        };
        let mut runs: Vec<(f64, f64, f64, usize)> = Vec::new(); // start, end, prob sum, windows
        for (i, w) in windows.iter().enumerate() {
            let p = w.probs.get(class_index).copied().unwrap_or(0.0);
            if p < threshold {
                continue;
            }
            let (lo, hi) = owned(i);
            match runs.last_mut() {
                Some(run) if lo - run.1 <= rule.max_gap_s + 1e-9 => {
                    run.1 = hi;
                    run.2 += f64::from(p);
                    run.3 += 1;
                }
                _ => runs.push((lo, hi, f64::from(p), 1)),
            }
        }
        bouts.extend(
            runs.into_iter()
                .filter(|r| r.1 - r.0 + 1e-9 >= rule.min_duration_s)
                .map(|r| Bout {
                    video: video.to_string(),
                    class_index,
                    start_s: r.0,
                    end_s: r.1,
                    score: (r.2 / r.3 as f64) as f32,
                }),
        );
    }
    bouts.sort_by(|a, b| {
        a.start_s
            .total_cmp(&b.start_s)
            .then(a.class_index.cmp(&b.class_index))
    });
    bouts
}

/// Bout-level scores of one class.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BoutScores {
    /// Predicted bouts of the class.
    pub predicted: usize,
    /// True bouts of the class.
    pub truth: usize,
    /// One-to-one matches.
    pub matched: usize,
    /// matched / predicted (0 when nothing was predicted).
    pub precision: f64,
    /// matched / truth (0 when there is no true bout).
    pub recall: f64,
    /// Harmonic mean of precision and recall (0 when both are 0).
    pub f1: f64,
}

/// Result of [`evaluate_bouts`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BoutEvaluation {
    /// Tolerance used, seconds.
    pub tolerance_s: f64,
    /// Bout-level scores per class name.
    pub bouts: BTreeMap<String, BoutScores>,
    /// Mean bout F1 over the classes that have true or predicted bouts.
    pub macro_bout_f1: f64,
    /// Step of the frame-level comparison, seconds.
    pub frame_step_s: f64,
    /// Fraction of time steps whose class (or background) agrees.
    pub frame_accuracy: f64,
    /// Frame-level F1 per class name.
    pub frame_f1: BTreeMap<String, f64>,
}

fn f1(p: f64, r: f64) -> f64 {
    if p + r > 0.0 {
        2.0 * p * r / (p + r)
    } else {
        0.0
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Scores predicted bouts against true bouts (see the module doc for the matching rule).
pub fn evaluate_bouts(
    predicted: &[Bout],
    truth: &[Bout],
    classes: &[String],
    tolerance_s: f64,
    frame_step_s: f64,
) -> BoutEvaluation {
    let mut bouts = BTreeMap::new();
    let mut f1s = Vec::new();
    for (c, name) in classes.iter().enumerate() {
        let mut matched = 0;
        let mut n_pred = 0;
        let mut n_true = 0;
        for video in videos(predicted, truth) {
            let p: Vec<&Bout> = predicted
                .iter()
                .filter(|b| b.class_index == c && b.video == video)
                .collect();
            let t: Vec<&Bout> = truth
                .iter()
                .filter(|b| b.class_index == c && b.video == video)
                .collect();
            n_pred += p.len();
            n_true += t.len();
            matched += match_count(&p, &t, tolerance_s);
        }
        let precision = ratio(matched, n_pred);
        let recall = ratio(matched, n_true);
        if n_pred + n_true > 0 {
            f1s.push(f1(precision, recall));
        }
        bouts.insert(
            name.clone(),
            BoutScores {
                predicted: n_pred,
                truth: n_true,
                matched,
                precision,
                recall,
                f1: f1(precision, recall),
            },
        );
    }
    let (frame_accuracy, frame_f1) = frame_agreement(predicted, truth, classes, frame_step_s);
    BoutEvaluation {
        tolerance_s,
        bouts,
        macro_bout_f1: if f1s.is_empty() {
            0.0
        } else {
            f1s.iter().sum::<f64>() / f1s.len() as f64
        },
        frame_step_s,
        frame_accuracy,
        frame_f1,
    }
}

fn videos<'a>(a: &'a [Bout], b: &'a [Bout]) -> Vec<&'a str> {
    let mut v: Vec<&str> = a.iter().chain(b).map(|x| x.video.as_str()).collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn match_count(pred: &[&Bout], truth: &[&Bout], tol: f64) -> usize {
    let mut pairs: Vec<(f64, usize, usize)> = Vec::new();
    for (ti, t) in truth.iter().enumerate() {
        for (pi, p) in pred.iter().enumerate() {
            let overlap =
                (t.end_s + tol).min(p.end_s + tol) - (t.start_s - tol).max(p.start_s - tol);
            if overlap > 0.0 {
                pairs.push((overlap, ti, pi));
            }
        }
    }
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut used_t = vec![false; truth.len()];
    let mut used_p = vec![false; pred.len()];
    let mut n = 0;
    for (_, ti, pi) in pairs {
        if !used_t[ti] && !used_p[pi] {
            used_t[ti] = true;
            used_p[pi] = true;
            n += 1;
        }
    }
    n
}

/// Label of each time step: `classes.len()` = background; overlapping bouts: the last one listed wins.
fn rasterise(bouts: &[&Bout], n_classes: usize, steps: usize, step: f64) -> Vec<usize> {
    let mut labels = vec![n_classes; steps];
    for b in bouts {
        let lo = (b.start_s / step).ceil().max(0.0) as usize;
        let hi = ((b.end_s / step).ceil().max(0.0) as usize).min(steps);
        for l in labels.iter_mut().take(hi).skip(lo) {
            *l = b.class_index;
        }
    }
    labels
}

fn frame_agreement(
    predicted: &[Bout],
    truth: &[Bout],
    classes: &[String],
    step: f64,
) -> (f64, BTreeMap<String, f64>) {
    let n = classes.len();
    let mut agree = 0usize;
    let mut total = 0usize;
    let mut tp = vec![0usize; n];
    let mut fp = vec![0usize; n];
    let mut fn_ = vec![0usize; n];
    for video in videos(predicted, truth) {
        let p: Vec<&Bout> = predicted.iter().filter(|b| b.video == video).collect();
        let t: Vec<&Bout> = truth.iter().filter(|b| b.video == video).collect();
        let end = p.iter().chain(&t).map(|b| b.end_s).fold(0.0, f64::max);
        let steps = (end / step).ceil() as usize;
        let lp = rasterise(&p, n, steps, step);
        let lt = rasterise(&t, n, steps, step);
        for (a, b) in lp.iter().zip(&lt) {
            total += 1;
            if a == b {
                agree += 1;
                if *a < n {
                    tp[*a] += 1;
                }
            } else {
                if *a < n {
                    fp[*a] += 1;
                }
                if *b < n {
                    fn_[*b] += 1;
                }
            }
        }
    }
    let frame_f1 = classes
        .iter()
        .enumerate()
        .map(|(c, name)| {
            (
                name.clone(),
                f1(ratio(tp[c], tp[c] + fp[c]), ratio(tp[c], tp[c] + fn_[c])),
            )
        })
        .collect();
    (ratio(agree, total), frame_f1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows(probs_tail: &[f32]) -> Vec<WindowProbs> {
        // 2 s windows every 1 s: window i covers [i, i + 2), centre i + 1.
        probs_tail
            .iter()
            .enumerate()
            .map(|(i, &p)| WindowProbs {
                start_s: i as f64,
                end_s: i as f64 + 2.0,
                probs: vec![1.0 - p, p],
            })
            .collect()
    }

    fn bout(video: &str, c: usize, s: f64, e: f64) -> Bout {
        Bout {
            video: video.into(),
            class_index: c,
            start_s: s,
            end_s: e,
            score: 1.0,
        }
    }

    #[test]
    fn owned_stretches_tile_and_runs_merge() {
        let w = windows(&[0.1, 0.9, 0.8, 0.2, 0.1, 0.7, 0.1]);
        let rule = MergeRule {
            thresholds: vec![None, Some(0.5)],
            min_duration_s: 0.0,
            max_gap_s: 0.0,
        };
        let b = merge_windows("v", &w, &rule);
        // Window 1 owns [1.5, 2.5), window 2 [2.5, 3.5): one bout [1.5, 3.5); window 5 owns [5.5, 6.5).
        assert_eq!(b.len(), 2);
        assert_eq!((b[0].start_s, b[0].end_s), (1.5, 3.5));
        assert!((b[0].score - 0.85).abs() < 1e-6);
        assert_eq!((b[1].start_s, b[1].end_s), (5.5, 6.5));
        // A 2 s gap merges both; a 3 s minimum then keeps the merged bout only.
        let rule = MergeRule {
            thresholds: vec![None, Some(0.5)],
            min_duration_s: 3.0,
            max_gap_s: 2.0,
        };
        let b = merge_windows("v", &w, &rule);
        assert_eq!(b.len(), 1);
        assert_eq!((b[0].start_s, b[0].end_s), (1.5, 6.5));
        // Minimum duration alone drops both short bouts.
        let rule = MergeRule {
            thresholds: vec![None, Some(0.5)],
            min_duration_s: 2.5,
            max_gap_s: 0.0,
        };
        assert!(merge_windows("v", &w, &rule).is_empty());
    }

    #[test]
    fn first_and_last_windows_own_their_outer_halves() {
        let w = windows(&[0.9, 0.9]);
        let rule = MergeRule {
            thresholds: vec![None, Some(0.5)],
            min_duration_s: 0.0,
            max_gap_s: 0.0,
        };
        let b = merge_windows("v", &w, &rule);
        assert_eq!((b[0].start_s, b[0].end_s), (0.0, 3.0));
    }

    #[test]
    fn bout_matching_is_one_to_one_with_tolerance() {
        let classes = vec!["ear".to_string(), "tail".to_string()];
        let truth = vec![
            bout("v", 0, 10.0, 14.0),
            bout("v", 0, 30.0, 33.0),
            bout("v", 1, 50.0, 55.0),
        ];
        let pred = vec![
            bout("v", 0, 11.0, 13.0), // matches 10-14
            bout("v", 0, 13.5, 16.0), // overlaps 10-14 too, but it is taken: unmatched
            bout("v", 0, 33.5, 35.0), // 0.5 s after 30-33: matches only with tolerance >= 0.25
            bout("v", 1, 70.0, 72.0), // wrong place
        ];
        let e = evaluate_bouts(&pred, &truth, &classes, 0.0, 0.5);
        let ear = &e.bouts["ear"];
        assert_eq!((ear.predicted, ear.truth, ear.matched), (3, 2, 1));
        assert!((ear.precision - 1.0 / 3.0).abs() < 1e-12 && (ear.recall - 0.5).abs() < 1e-12);
        let e = evaluate_bouts(&pred, &truth, &classes, 0.5, 0.5);
        assert_eq!(e.bouts["ear"].matched, 2);
        assert!((e.bouts["ear"].f1 - 0.8).abs() < 1e-12);
        assert_eq!(e.bouts["tail"].matched, 0);
        assert_eq!(e.bouts["tail"].f1, 0.0);
        assert!((e.macro_bout_f1 - 0.4).abs() < 1e-12);
    }

    #[test]
    fn frame_agreement_counts_background() {
        let classes = vec!["ear".to_string()];
        let truth = vec![bout("v", 0, 0.0, 2.0)];
        let pred = vec![bout("v", 0, 1.0, 4.0)];
        let e = evaluate_bouts(&pred, &truth, &classes, 0.0, 1.0);
        // Steps [0,1) [1,2) [2,3) [3,4): truth E E B B, pred B E E E.
        assert!((e.frame_accuracy - 0.25).abs() < 1e-12);
        assert!((e.frame_f1["ear"] - 0.4).abs() < 1e-12); // tp 1, fp 2, fn 1
    }
}
