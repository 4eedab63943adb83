//! `ethos eval-events --pred EVENTS --truth EVENTS`: bout-level and frame-level agreement of two
//! events CSVs (e.g. `ethos predict`'s merged events against labelled ones). The matching rule is
//! documented in `ethos_train::timeline`.
//!
//! Videos are matched by name, and a predicted video also matches the labelled video whose path
//! is a whole-component suffix of its own (or the other way round): `ethos predict` writes the
//! video as it was given (`/data/long/closeup.mp4`), a labelled events CSV relative to its videos
//! root (`closeup.mp4`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use ethos_data::manifest::{Event, EventsManifest};
use ethos_train::timeline::{Bout, BoutEvaluation, evaluate_bouts};

/// Arguments of `ethos eval-events`.
#[derive(clap::Args)]
pub struct Args {
    /// Predicted events CSV (events-CSV columns; extra columns such as `score` are ignored).
    #[arg(long)]
    pub pred: PathBuf,
    /// Labelled events CSV.
    #[arg(long)]
    pub truth: PathBuf,
    /// Seconds by which both bouts are widened on each side before testing for overlap.
    #[arg(long, default_value_t = 1.0)]
    pub tolerance: f64,
    /// Step of the frame-level comparison, seconds.
    #[arg(long, default_value_t = 0.1)]
    pub frame_step: f64,
    /// Class list (comma-separated); default: the classes of the truth file, sorted.
    #[arg(long, value_delimiter = ',')]
    pub classes: Vec<String>,
}

/// Runs `ethos eval-events`: JSON to stdout, a table to stderr.
pub fn run(args: Args) -> anyhow::Result<()> {
    if !(args.tolerance >= 0.0 && args.tolerance.is_finite()) {
        return Err(
            crate::exit::BadInput(format!("--tolerance {}: must be >= 0", args.tolerance)).into(),
        );
    }
    if !(args.frame_step > 0.0 && args.frame_step.is_finite()) {
        return Err(crate::exit::BadInput(format!(
            "--frame-step {}: must be > 0",
            args.frame_step
        ))
        .into());
    }
    let eval = evaluate(
        &args.pred,
        &args.truth,
        &args.classes,
        args.tolerance,
        args.frame_step,
    )?;
    eprintln!(
        "{:<12} {:>6} {:>6} {:>7} {:>9} {:>7} {:>6} {:>8}",
        "class", "pred", "true", "matched", "precision", "recall", "F1", "frame F1"
    );
    for (name, s) in &eval.bouts {
        eprintln!(
            "{:<12} {:>6} {:>6} {:>7} {:>9.3} {:>7.3} {:>6.3} {:>8.3}",
            name, s.predicted, s.truth, s.matched, s.precision, s.recall, s.f1, eval.frame_f1[name]
        );
    }
    eprintln!(
        "macro bout F1 {:.3}, frame accuracy {:.3} (tolerance {} s)",
        eval.macro_bout_f1, eval.frame_accuracy, eval.tolerance_s
    );
    println!("{}", serde_json::to_string_pretty(&eval)?);
    Ok(())
}

/// Scores the events CSV `pred` against `truth` (class list `classes`, or the truth's classes
/// sorted when empty) with the bout tolerance and frame step of `ethos_train::timeline`.
pub fn evaluate(
    pred: &Path,
    truth: &Path,
    classes: &[String],
    tolerance_s: f64,
    frame_step_s: f64,
) -> anyhow::Result<BoutEvaluation> {
    let truth_m = EventsManifest::load(truth, None, classes)
        .with_context(|| format!("reading labelled events {}", truth.display()))?;
    // `ethos predict` writes a header-only events CSV when it finds no bout: that scores as no
    // predictions, where a labelled file without events is an error.
    let pred_events = if has_rows(pred)? {
        EventsManifest::load(pred, None, &truth_m.classes)
            .with_context(|| format!("reading predicted events {}", pred.display()))?
            .events
    } else {
        Vec::new()
    };
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

/// True when the CSV `path` has a line after its header.
fn has_rows(path: &Path) -> anyhow::Result<bool> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| crate::exit::BadInput(format!("{}: cannot read: {e}", path.display())))?;
    Ok(text.lines().skip(1).any(|l| !l.trim().is_empty()))
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
