//! Property tests of the pure logic of evaluation: window merging (bouts of one class never
//! overlap, lie inside the windows, last at least the minimum, score in [threshold, 1]), bout
//! matching (counts and scores in range, a prediction set equal to the truth scores 1), and the
//! predictions-CSV reader on any bytes (rows or an error, never a panic).

use ethos_eval::predictions_csv::Predictions;
use ethos_eval::timeline::{Bout, MergeRule, WindowProbs, evaluate_bouts, merge_windows};
use proptest::prelude::*;

const CLASSES: usize = 3;

/// Sliding windows with a constant stride and length >= stride, probabilities in [0, 1].
fn windows() -> impl Strategy<Value = Vec<WindowProbs>> {
    (
        0.05f64..3.0,
        1.0f64..4.0,
        0.0f64..100.0,
        proptest::collection::vec(proptest::collection::vec(0.0f32..=1.0, CLASSES), 0..120),
    )
        .prop_map(|(stride, ratio, t0, probs)| {
            probs
                .into_iter()
                .enumerate()
                .map(|(i, p)| {
                    let start_s = t0 + i as f64 * stride;
                    WindowProbs {
                        start_s,
                        end_s: start_s + stride * ratio,
                        probs: p,
                    }
                })
                .collect()
        })
}

fn rule() -> impl Strategy<Value = MergeRule> {
    (
        proptest::collection::vec(proptest::option::weighted(0.8, 0.0f32..=1.0), CLASSES),
        0.0f64..5.0,
        0.0f64..5.0,
    )
        .prop_map(|(thresholds, min_duration_s, max_gap_s)| MergeRule {
            thresholds,
            min_duration_s,
            max_gap_s,
        })
}

fn bouts(video: &'static str) -> impl Strategy<Value = Vec<Bout>> {
    proptest::collection::vec((0..CLASSES, 0.0f64..200.0, 0.01f64..20.0), 0..30).prop_map(
        move |v| {
            v.into_iter()
                .map(|(class_index, start_s, d)| Bout {
                    video: video.into(),
                    class_index,
                    start_s,
                    end_s: start_s + d,
                    score: 1.0,
                })
                .collect()
        },
    )
}

fn names() -> Vec<String> {
    (0..CLASSES).map(|c| format!("c{c}")).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn merged_bouts_never_overlap_and_respect_the_rule(w in windows(), r in rule()) {
        let out = merge_windows("v.mp4", &w, &r);
        for pair in out.windows(2) {
            prop_assert!(pair[0].start_s <= pair[1].start_s, "ordered by start");
        }
        for c in 0..CLASSES {
            let mine: Vec<&Bout> = out.iter().filter(|b| b.class_index == c).collect();
            if r.thresholds[c].is_none() {
                prop_assert!(mine.is_empty());
                continue;
            }
            for b in &mine {
                prop_assert!(b.end_s > b.start_s);
                prop_assert!(b.duration_s() + 1e-9 >= r.min_duration_s);
                prop_assert!(b.start_s >= w[0].start_s - 1e-9);
                prop_assert!(b.end_s <= w[w.len() - 1].end_s + 1e-9);
                let t = r.thresholds[c].unwrap();
                prop_assert!(b.score >= t - 1e-6 && b.score <= 1.0 + 1e-6, "score {}", b.score);
            }
            for pair in mine.windows(2) {
                // Separate bouts of a class are further apart than the merge gap: never overlapping.
                prop_assert!(pair[1].start_s - pair[0].end_s > r.max_gap_s - 1e-9,
                    "{:?} and {:?} with max_gap {}", pair[0], pair[1], r.max_gap_s);
            }
        }
    }

    #[test]
    fn bout_scores_stay_in_range(p in bouts("v.mp4"), t in bouts("v.mp4"), tol in 0.0f64..3.0) {
        let e = evaluate_bouts(&p, &t, &names(), tol, 0.5);
        for s in e.bouts.values() {
            prop_assert!(s.matched <= s.predicted.min(s.truth));
            for v in [s.precision, s.recall, s.f1] {
                prop_assert!((0.0..=1.0).contains(&v), "{:?}", s);
            }
        }
        prop_assert_eq!(e.bouts.values().map(|s| s.predicted).sum::<usize>(), p.len());
        prop_assert_eq!(e.bouts.values().map(|s| s.truth).sum::<usize>(), t.len());
        prop_assert!((0.0..=1.0).contains(&e.macro_bout_f1));
        prop_assert!((0.0..=1.0).contains(&e.frame_accuracy));
        for f in e.frame_f1.values() {
            prop_assert!((0.0..=1.0).contains(f));
        }
        // Predicting exactly the truth matches every bout.
        let same = evaluate_bouts(&t, &t, &names(), tol, 0.5);
        for s in same.bouts.values() {
            prop_assert_eq!(s.matched, s.truth);
        }
    }

    #[test]
    fn predictions_csv_any_bytes_give_rows_or_an_error(
        bytes in proptest::collection::vec(any::<u8>(), 0..2048),
        split in proptest::option::of("[a-z]{1,4}"),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.csv");
        std::fs::write(&p, &bytes).unwrap();
        if let Ok(pr) = Predictions::read(&p, None, split.as_deref()) {
            prop_assert_eq!(pr.probs.len(), pr.labels.len() * pr.classes.len());
            prop_assert!(pr.probs.iter().all(|v| (0.0..=1.0).contains(v)));
            let _ = pr.metrics();
        }
    }

    #[test]
    fn predictions_csv_of_numbers_scores_in_range(
        rows in proptest::collection::vec((0usize..2, 0.0f64..=1.0), 1..60),
    ) {
        let mut text = String::from("true,prob_a,prob_b\n");
        for (l, p) in &rows {
            text.push_str(&format!("{},{},{}\n", ["a", "b"][*l], p, 1.0 - p));
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.csv");
        std::fs::write(&path, text).unwrap();
        let pr = Predictions::read(&path, None, None).unwrap();
        prop_assert_eq!(pr.labels.len(), rows.len());
        if let Ok(m) = pr.metrics() {
            for (k, v) in m.scalars() {
                if let Some(v) = v {
                    // Supports are counts; every other scalar is a rate or a score.
                    if k != "loss" && !k.starts_with("support_") {
                        prop_assert!((0.0..=1.0).contains(&v), "{} = {}", k, v);
                    }
                }
            }
        }
    }
}
