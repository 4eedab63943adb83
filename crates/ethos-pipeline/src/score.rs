//! Scoring files that other steps or tools wrote, with no model: per-sample prediction CSVs
//! (`ethos metrics`) and predicted events against labelled events (`ethos eval-events`).

use std::path::Path;

use ethos_core::{Error, ResultExt};
use ethos_data::manifest::{Event, EventsManifest};
use ethos_eval::metrics::MetricSet;
use ethos_eval::predictions_csv::Predictions;
use ethos_eval::timeline::{Bout, BoutEvaluation, evaluate_bouts};

use crate::Result;

/// Most samples of a frame-level comparison (duration of the videos / frame step).
pub const MAX_FRAME_STEPS: f64 = 1e8;

/// Metrics of a per-sample predictions CSV (`true` + `prob_<class>` columns), for the given class
/// list (default: the `prob_` columns in file order) and split (required when the file mixes
/// splits).
pub fn score_predictions(
    path: &Path,
    classes: Option<&[String]>,
    split: Option<&str>,
) -> Result<(MetricSet, usize)> {
    if let Some(list) = classes {
        let dup = list
            .iter()
            .enumerate()
            .find(|(i, c)| list[..*i].contains(c))
            .map(|(_, c)| c);
        if list.iter().any(|c| c.is_empty()) || dup.is_some() {
            return Err(Error::bad_input(format!(
                "--classes: class names must be non-empty and distinct (got `{}`)",
                list.join(",")
            )));
        }
    }
    let preds = Predictions::read(path, classes, split)?;
    let metrics = preds.metrics()?;
    Ok((metrics, preds.labels.len()))
}

/// Scores the events CSV `pred` against `truth` (class list `classes`, or the truth's classes
/// sorted when empty) with the bout tolerance and frame step of `ethos_eval::timeline`.
///
/// Videos are matched by name, and a predicted video also matches the labelled video whose path
/// is a whole-component suffix of its own (or the other way round): `ethos predict` writes the
/// video as it was given (`/data/long/closeup.mp4`), a labelled events CSV relative to its videos
/// root (`closeup.mp4`).
pub fn evaluate_events(
    pred: &Path,
    truth: &Path,
    classes: &[String],
    tolerance_s: f64,
    frame_step_s: f64,
) -> Result<BoutEvaluation> {
    if !(tolerance_s.is_finite() && tolerance_s >= 0.0) {
        return Err(Error::bad_input(format!(
            "--tolerance {tolerance_s}: must be a number of seconds >= 0"
        )));
    }
    if !(frame_step_s.is_finite() && frame_step_s >= 1e-3) {
        return Err(Error::bad_input(format!(
            "--frame-step {frame_step_s}: must be a number of seconds >= 0.001"
        )));
    }
    let truth_m = EventsManifest::load(truth, None, classes)
        .context(format!("reading labelled events {}", truth.display()))?;
    // `ethos predict` writes a header-only events CSV when it finds no bout: that scores as no
    // predictions, where a labelled file without events is an error.
    let pred_events = if has_rows(pred)? {
        EventsManifest::load(pred, None, &truth_m.classes)
            .context(format!("reading predicted events {}", pred.display()))?
            .events
    } else {
        Vec::new()
    };
    let end = truth_m
        .events
        .iter()
        .chain(&pred_events)
        .map(|e| e.start_s + e.duration_s)
        .fold(0.0, f64::max);
    let videos = truth_m.events.len() + pred_events.len();
    if end / frame_step_s * videos.max(1) as f64 > MAX_FRAME_STEPS {
        return Err(Error::bad_input(format!(
            "--frame-step {frame_step_s}: too fine for events up to {end:.0} s (more than {MAX_FRAME_STEPS:e} steps); use a larger step"
        )));
    }
    let truth_videos: Vec<&Path> = truth_m.events.iter().map(|e| e.video.as_path()).collect();
    let bouts = |events: &[Event], rename: bool| -> Vec<Bout> {
        events
            .iter()
            .map(|e| Bout {
                video: if rename {
                    same_video(&e.video, &truth_videos)
                } else {
                    e.video.as_path()
                }
                .display()
                .to_string(),
                class_index: e.class_index,
                start_s: e.start_s,
                end_s: e.start_s + e.duration_s,
                score: 1.0,
            })
            .collect()
    };
    Ok(evaluate_bouts(
        &bouts(&pred_events, true),
        &bouts(&truth_m.events, false),
        &truth_m.classes,
        tolerance_s,
        frame_step_s,
    ))
}

/// True when the CSV `path` has a record after its header.
fn has_rows(path: &Path) -> Result<bool> {
    let mut r = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .map_err(|e| match e.into_kind() {
            csv::ErrorKind::Io(io) => Error::input_io(path, io),
            other => Error::bad_input(format!("{}: {other:?}", path.display())),
        })?;
    Ok(r.records().next().is_some())
}

/// The labelled video `video` refers to: an exact match, else the only labelled video one of
/// whose paths ends (whole components) with the other; `video` itself when none or several do.
fn same_video<'a>(video: &'a Path, truth: &[&'a Path]) -> &'a Path {
    if truth.contains(&video) {
        return video;
    }
    let mut found: Option<&Path> = None;
    for &t in truth {
        if (video.ends_with(t) || t.ends_with(video)) && found != Some(t) {
            if found.is_some() {
                return video;
            }
            found = Some(t);
        }
    }
    found.unwrap_or(video)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predicted_paths_match_labelled_videos_by_whole_component_suffix() {
        let truth = [
            Path::new("closeup.mp4"),
            Path::new("cam1/a.mp4"),
            Path::new("cam2/a.mp4"),
        ];
        assert_eq!(
            same_video(Path::new("/data/long/closeup.mp4"), &truth),
            Path::new("closeup.mp4")
        );
        assert_eq!(
            same_video(Path::new("closeup.mp4"), &truth),
            Path::new("closeup.mp4")
        );
        // Not a whole component.
        assert_eq!(
            same_video(Path::new("/data/xcloseup.mp4"), &truth),
            Path::new("/data/xcloseup.mp4")
        );
        // Ambiguous: both cam1/a.mp4 and cam2/a.mp4 end with a.mp4.
        assert_eq!(same_video(Path::new("a.mp4"), &truth), Path::new("a.mp4"));
        assert_eq!(
            same_video(Path::new("/v/cam2/a.mp4"), &truth),
            Path::new("cam2/a.mp4")
        );
    }
}
