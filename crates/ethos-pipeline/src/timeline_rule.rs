//! Timelines after the model: `ethos calibrate --timeline` (the bout rule tuned on a labelled long
//! video, stored in `calibration.json`) and what `predict` does with each video's window
//! probabilities afterwards (the tuned rule's bouts, an ethogram PNG).

use std::path::{Path, PathBuf};

use ethos_core::{Error, ResultExt};
use ethos_data::manifest::EventsManifest;
use ethos_eval::calibration::{Calibration, TimelineRule};
use ethos_eval::plots::write_ethogram_png;
pub use ethos_eval::timeline::MergeRule;
use ethos_eval::timeline::{Bout, BoutEvaluation, evaluate_bouts, merge_windows};
use serde::Serialize;

use crate::Result;
use crate::calibrate::{
    calibrate_windows, calibration_path, read_windows, timeline_bouts, tune_timeline,
};
use crate::config::RunConfig;
use crate::predict::{PredictOptions, Thresholds, predict};

/// What `ethos calibrate --timeline` runs.
#[derive(Debug, Clone)]
pub struct TimelineCalibrateOptions {
    /// The checkpoint (its `calibration.json` must exist: the bout rule works on calibrated
    /// probabilities).
    pub checkpoint: PathBuf,
    /// A config to take the data settings from (default: the one stored in the checkpoint).
    pub config: Option<PathBuf>,
    /// `--set key=value` overrides.
    pub overrides: Vec<String>,
    /// The labelled long video.
    pub video: PathBuf,
    /// Its labelled events (events CSV).
    pub truth: PathBuf,
    /// Where predict writes the video's windows (default: `RUN/timeline_calibration`).
    pub out: Option<PathBuf>,
    /// Window stride, seconds (default: half the window).
    pub stride_s: Option<f64>,
    /// Classes that are never bouts.
    pub background: Vec<String>,
    /// Bout-matching tolerance, seconds.
    pub tolerance_s: f64,
    /// The rule it replaces (the reported "before"): thresholds on uncalibrated probabilities,
    /// minimum duration and gap merge, as `predict` flags give them.
    pub baseline: MergeRule,
}

/// What the timeline tuning found.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineCalibrateSummary {
    /// The stored rule.
    pub rule: TimelineRule,
    /// Bout scores on the tuning video with the baseline rule.
    pub before: BoutEvaluation,
    /// Bout scores on the tuning video with the tuned rule.
    pub after: BoutEvaluation,
    /// The calibration file it was stored in.
    pub path: PathBuf,
}

/// The labelled bouts of `video` in an events CSV (matched by file name), with class indices of
/// `classes`.
pub fn truth_bouts(truth: &Path, video: &Path, classes: &[String]) -> Result<Vec<Bout>> {
    let m = EventsManifest::load(truth, None, &[])
        .context(format!("reading labelled events {}", truth.display()))?;
    let name = video.file_name().map(|n| n.to_string_lossy().into_owned());
    let mut out = Vec::new();
    for e in &m.events {
        if e.video
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            != name
        {
            continue;
        }
        let k = classes
            .iter()
            .position(|c| *c == e.behavior)
            .ok_or_else(|| {
                Error::bad_input(format!(
                    "{}:{}: behavior `{}` is not a class of the model ({})",
                    truth.display(),
                    e.line,
                    e.behavior,
                    classes.join(", ")
                ))
            })?;
        out.push(Bout {
            video: video.display().to_string(),
            class_index: k,
            start_s: e.start_s,
            end_s: e.start_s + e.duration_s,
            score: 1.0,
        });
    }
    if out.is_empty() {
        return Err(Error::bad_input(format!(
            "{}: no labelled event of video `{}`",
            truth.display(),
            name.unwrap_or_default()
        )));
    }
    Ok(out)
}

/// Scores bouts of the foreground classes (class indices of `classes`) against the truth.
pub fn score_bouts(
    pred: &[Bout],
    truth: &[Bout],
    classes: &[String],
    foreground: &[bool],
    tolerance_s: f64,
) -> BoutEvaluation {
    let scored: Vec<String> = classes
        .iter()
        .zip(foreground)
        .filter(|(_, f)| **f)
        .map(|(c, _)| c.clone())
        .collect();
    let remap = |b: &Bout| {
        scored
            .iter()
            .position(|c| *c == classes[b.class_index])
            .map(|k| Bout {
                class_index: k,
                ..b.clone()
            })
    };
    let p: Vec<Bout> = pred.iter().filter_map(remap).collect();
    let t: Vec<Bout> = truth.iter().filter_map(remap).collect();
    evaluate_bouts(&p, &t, &scored, tolerance_s, 0.1)
}

/// Runs the model over the labelled video once, tunes the bout rule on its windows (see
/// [`tune_timeline`]) and stores it in the checkpoint's `calibration.json`.
pub fn calibrate_timeline(o: &TimelineCalibrateOptions) -> Result<TimelineCalibrateSummary> {
    let (cfg, _) = RunConfig::for_checkpoint(&o.checkpoint, o.config.as_deref(), &o.overrides)?;
    let classes = cfg.data.classes.clone();
    let path = calibration_path(&o.checkpoint);
    let Some(mut cal) = crate::calibrate::load_for(&o.checkpoint, &classes, false)? else {
        return Err(Error::bad_input(format!(
            "{}: no calibration for this checkpoint; run `ethos calibrate --checkpoint {} --split val` first",
            path.display(),
            o.checkpoint.display()
        )));
    };
    let truth = truth_bouts(&o.truth, &o.video, &classes)?;
    let out = o.out.clone().unwrap_or_else(|| {
        o.checkpoint
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
            .join("timeline_calibration")
    });
    let thresholds = Thresholds::PerClass(
        classes
            .iter()
            .zip(&o.baseline.thresholds)
            .filter_map(|(c, t)| t.map(|t| (c.clone(), t)))
            .collect(),
    );
    predict(&PredictOptions {
        checkpoint: o.checkpoint.clone(),
        config: o.config.clone(),
        overrides: o.overrides.clone(),
        out: out.clone(),
        videos: vec![o.video.clone()],
        list: None,
        window_s: None,
        stride_s: o.stride_s,
        batch: None,
        thresholds,
        background: o.background.clone(),
        min_duration_s: o.baseline.min_duration_s,
        max_gap_s: o.baseline.max_gap_s,
        shard: None,
        roi: None,
        decoder_threads: 2,
        smooth_frames: 0,
        device: None,
        no_calibration: true,
    })?;
    let outputs = ethos_infer::predict::outputs_for(&out, &o.video);
    let raw = read_windows(&outputs.windows, &classes)?;
    let name = o.video.display().to_string();
    let foreground: Vec<bool> = o.baseline.thresholds.iter().map(Option::is_some).collect();
    let before = score_bouts(
        &merge_windows(&name, &raw, &o.baseline),
        &truth,
        &classes,
        &foreground,
        o.tolerance_s,
    );
    let windows = calibrate_windows(&raw, Some(&cal));
    let (mut rule, _) = tune_timeline(
        &name,
        &windows,
        &truth,
        &classes,
        &foreground,
        o.tolerance_s,
    );
    let after = score_bouts(
        &timeline_bouts(&name, &windows, &rule),
        &truth,
        &classes,
        &foreground,
        o.tolerance_s,
    );
    rule.tuned_from_f1 = before.macro_bout_f1;
    rule.tuned_f1 = after.macro_bout_f1;
    cal.timeline = Some(rule.clone());
    cal.write(&path).map_err(|e| Error::output_io(&path, e))?;
    tracing::info!(
        "calibrate --timeline: macro bout F1 on {} {:.3} -> {:.3} (thresholds {:?}, smoothing {} windows, min {} s, gap {} s); {}",
        o.video.display(),
        before.macro_bout_f1,
        after.macro_bout_f1,
        rule.thresholds,
        rule.smooth_windows,
        rule.min_duration_s,
        rule.max_gap_s,
        path.display()
    );
    Ok(TimelineCalibrateSummary {
        rule,
        before,
        after,
        path,
    })
}

/// After `predict` wrote a video's windows: with a tuned bout rule in `cal`, replaces its
/// `NAME.events.csv` by the tuned rule's bouts (returning the count per class); in any case draws
/// `NAME.ethogram.png` (bouts over time above the window probabilities, calibrated when `cal` is
/// given).
pub fn finish_video(
    out_dir: &Path,
    video: &Path,
    video_name: &str,
    classes: &[String],
    cal: Option<&Calibration>,
) -> Result<Option<Vec<(String, usize)>>> {
    let outputs = ethos_infer::predict::outputs_for(out_dir, video);
    let raw = read_windows(&outputs.windows, classes)?;
    let windows = calibrate_windows(&raw, cal);
    let tuned = cal.and_then(|c| c.timeline.as_ref());
    let (bouts, counts) = match tuned {
        Some(rule) => {
            let bouts = timeline_bouts(video_name, &windows, rule);
            ethos_infer::predict::write_events_csv(&outputs.events, &bouts, classes)?;
            let counts = classes
                .iter()
                .enumerate()
                .map(|(k, c)| {
                    (
                        c.clone(),
                        bouts.iter().filter(|b| b.class_index == k).count(),
                    )
                })
                .collect();
            (bouts, Some(counts))
        }
        None => (read_bouts(&outputs.events, classes)?, None),
    };
    let png = ethogram_path(out_dir, video);
    write_ethogram_png(&png, video_name, classes, &windows, &bouts, &[])
        .context(format!("writing {}", png.display()))?;
    Ok(counts)
}

/// `NAME.ethogram.png` in `out_dir`.
pub fn ethogram_path(out_dir: &Path, video: &Path) -> PathBuf {
    let name = video
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "video".into());
    out_dir.join(format!("{name}.ethogram.png"))
}

/// The bouts of a predicted `NAME.events.csv` (class indices of `classes`).
pub fn read_bouts(path: &Path, classes: &[String]) -> Result<Vec<Bout>> {
    let mut r = csv::Reader::from_path(path).map_err(|e| match e.into_kind() {
        csv::ErrorKind::Io(io) => Error::input_io(path, io),
        other => Error::bad_input(format!("{}: {other:?}", path.display())),
    })?;
    let header = r
        .headers()
        .map_err(|e| Error::bad_input(format!("{}: {e}", path.display())))?
        .clone();
    let col = |n: &str| {
        header
            .iter()
            .position(|h| h == n)
            .ok_or_else(|| Error::bad_input(format!("{}: missing column `{n}`", path.display())))
    };
    let (cv, cs, cd, cb) = (
        col("video")?,
        col("start_s")?,
        col("duration_s")?,
        col("behavior")?,
    );
    let cscore = header.iter().position(|h| h == "score");
    let mut out = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let line = i + 2;
        let rec = rec.map_err(|e| Error::bad_input(format!("{}:{line}: {e}", path.display())))?;
        let f = |c: usize| -> Result<f64> {
            rec.get(c)
                .unwrap_or("")
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| {
                    Error::bad_input(format!(
                        "{}:{line}: column `{}`: not a finite number",
                        path.display(),
                        &header[c]
                    ))
                })
        };
        let behavior = rec.get(cb).unwrap_or("");
        let k = classes.iter().position(|c| c == behavior).ok_or_else(|| {
            Error::bad_input(format!(
                "{}:{line}: behavior `{behavior}` is not a class ({})",
                path.display(),
                classes.join(", ")
            ))
        })?;
        let start = f(cs)?;
        out.push(Bout {
            video: rec.get(cv).unwrap_or("").to_string(),
            class_index: k,
            start_s: start,
            end_s: start + f(cd)?,
            score: cscore.map_or(Ok(1.0), f)? as f32,
        });
    }
    Ok(out)
}
