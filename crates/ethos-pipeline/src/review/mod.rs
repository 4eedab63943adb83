//! `ethos review`: self-contained HTML pages a person opens in a browser (no network: the CSS and
//! JS are inline, the videos are files beside the page).
//!
//! - [`review_clips`] (`--run DIR --split S`): the split's clips ranked by how much they are worth a
//!   look, each with a small H.264 MP4 of exactly what the model saw (the eval transform's ROI crop
//!   at the sampled frames, the crop of [`crate::sample::sample_event`]), its label, probabilities before and
//!   after calibration, its loss over the training epochs (sparkline), group and camera; filters,
//!   sorting, a confusion matrix whose cells filter the list, and marks ("relabel as X", "drop")
//!   downloaded as the corrections CSV `ethos relabel` reads (`event_idx,action,note`).
//! - [`timeline::review_timelines`] (`--predictions DIR [--truth EVENTS]`): per video, the video
//!   with its predicted (and true) bouts on a scrubbable track.
//!
//! **Worth a look** (the default order): `2·misclassified + 2·suspected label noise + 1·low
//! margin + loss/(1 + loss)`, where misclassified uses the tuned rule on calibrated
//! probabilities (argmax without a calibration), low margin means the top two calibrated
//! probabilities are less than 0.2 apart, suspected label noise is
//! [`ethos_eval::sample_history`]'s rule on the run's `per_sample_epochs.csv` (for the split's
//! rows; none for splits training did not record), and loss is `-ln p_true` (calibrated).

pub mod timeline;

pub use timeline::{TimelineReviewOptions, TimelineReviewSummary, review_timelines};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ethos_core::{Error, ResultExt};
use ethos_data::dataset::{ClipDataset, load_split_events};
use ethos_data::loader::prepare_sample;
use ethos_data::transforms::{ClipTransform, Resizer};
use ethos_eval::calibration::{DecisionRule, MIN_PROB};
use ethos_eval::sample_history::{FILE_NAME as HISTORY_FILE, SampleHistory};
use ethos_video::{ClipWriter, Codec, WriterOptions};
use serde::Serialize;
use serde_json::json;

use crate::Result;
use crate::calibrate::{load_for, split_outputs};
use crate::config::RunConfig;

/// The clip page's template (inline CSS and JS; the data replaces `/*REVIEW_DATA*/`).
const CLIPS_HTML: &str = include_str!("clips.html");

/// Margin (difference of the top two calibrated probabilities) below which a clip counts as
/// low-margin.
pub const LOW_MARGIN: f64 = 0.2;

/// What `ethos review --run` builds.
#[derive(Debug, Clone)]
pub struct ReviewOptions {
    /// The checkpoint.
    pub checkpoint: PathBuf,
    /// A config to take the data settings from (default: the one stored in the checkpoint).
    pub config: Option<PathBuf>,
    /// `--set key=value` overrides.
    pub overrides: Vec<String>,
    /// The split to review.
    pub split: String,
    /// Output folder (`index.html`, `clips/`).
    pub out: PathBuf,
    /// Ignore the run's calibration.
    pub no_calibration: bool,
}

/// What a review page holds.
#[derive(Debug, Clone, Serialize)]
pub struct ReviewSummary {
    /// The page.
    pub page: PathBuf,
    /// Clips on it.
    pub clips: usize,
    /// Clips the decision rule gets wrong.
    pub misclassified: usize,
    /// Clips suspected of label noise.
    pub suspected: usize,
    /// Whether a calibration was applied.
    pub calibrated: bool,
}

/// One clip on the page (serialised into the page's data).
#[derive(Debug, Clone, Serialize)]
struct ClipRow {
    event_idx: u32,
    clip: String,
    label: usize,
    predicted: usize,
    probs: Vec<f64>,
    calibrated: Vec<f64>,
    loss: f64,
    margin: f64,
    worth: f64,
    reasons: Vec<&'static str>,
    epochs: Vec<(usize, f64)>,
    group: String,
    camera: String,
    video: String,
    start_s: f64,
    aum: Option<f64>,
    late_miss_rate: Option<f64>,
}

/// Builds the clip review page of a split.
pub fn review_clips(o: &ReviewOptions) -> Result<ReviewSummary> {
    if !o.checkpoint.is_file() {
        return Err(Error::bad_input(format!(
            "{}: no such checkpoint",
            o.checkpoint.display()
        )));
    }
    let (cfg, state) = RunConfig::for_checkpoint(&o.checkpoint, o.config.as_deref(), &o.overrides)?;
    let classes = cfg.data.classes.clone();
    let c = classes.len();
    let out = split_outputs(&o.checkpoint, &cfg, &o.split)?;
    let cal = load_for(&o.checkpoint, &classes, o.no_calibration)?;
    let rule = cal
        .as_ref()
        .map_or(DecisionRule::Argmax, |c| c.rule.clone());

    let run_dir = o
        .checkpoint
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let history_path = run_dir.join(HISTORY_FILE);
    let history = if history_path.is_file() {
        Some(SampleHistory::read(&history_path, &classes)?)
    } else {
        tracing::info!(
            "review: no {} (train with train.per_sample_epochs: true); no loss curves",
            history_path.display()
        );
        None
    };
    let series = history
        .as_ref()
        .map(|h| h.loss_series(&o.split))
        .unwrap_or_default();
    let signals = history
        .as_ref()
        .map(|h| h.signals(&o.split))
        .unwrap_or_default();

    let events =
        load_split_events(&cfg.data, &o.split).context(format!("reading split `{}`", o.split))?;
    let by_idx: BTreeMap<u32, &ethos_data::manifest::Event> =
        events.iter().map(|e| (e.event_idx, e)).collect();

    std::fs::create_dir_all(o.out.join("clips")).map_err(|e| Error::output_io(&o.out, e))?;
    write_clips(&cfg, &o.split, &events, &o.out.join("clips"))?;

    let mut rows = Vec::new();
    let mut confusion = vec![vec![0u64; c]; c];
    for (i, &idx) in out.event_idx.iter().enumerate() {
        let probs = &out.probs[i];
        let calibrated = cal
            .as_ref()
            .map_or_else(|| probs.clone(), |k| k.apply(probs));
        let label = out.labels[i];
        let predicted = rule.predict(&calibrated);
        confusion[label][predicted] += 1;
        let mut sorted = calibrated.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let margin = sorted[0] - sorted.get(1).copied().unwrap_or(0.0);
        let loss = -calibrated[label].max(MIN_PROB).ln();
        let sig = signals.get(&idx);
        let mut reasons = Vec::new();
        if predicted != label {
            reasons.push("misclassified");
        }
        if sig.is_some_and(|s| s.suspect) {
            reasons.push("suspected label noise");
        }
        if margin < LOW_MARGIN {
            reasons.push("low margin");
        }
        let worth = 2.0 * f64::from(u8::from(predicted != label))
            + 2.0 * f64::from(u8::from(sig.is_some_and(|s| s.suspect)))
            + f64::from(u8::from(margin < LOW_MARGIN))
            + loss / (1.0 + loss);
        let e = by_idx.get(&idx);
        rows.push(ClipRow {
            event_idx: idx,
            clip: format!("clips/{}", clip_name(idx)),
            label,
            predicted,
            probs: probs.clone(),
            calibrated,
            loss,
            margin,
            worth,
            reasons,
            epochs: series.get(&idx).cloned().unwrap_or_default(),
            group: e.and_then(|e| e.group.clone()).unwrap_or_default(),
            camera: e.and_then(|e| e.camera.clone()).unwrap_or_default(),
            video: e.map(|e| e.video.display().to_string()).unwrap_or_default(),
            start_s: e.map_or(0.0, |e| e.start_s),
            aum: sig.map(|s| s.aum),
            late_miss_rate: sig.map(|s| s.late_miss_rate),
        });
    }
    rows.sort_by(|a, b| {
        b.worth
            .total_cmp(&a.worth)
            .then(a.event_idx.cmp(&b.event_idx))
    });
    let misclassified = rows.iter().filter(|r| r.label != r.predicted).count();
    let suspected = rows
        .iter()
        .filter(|r| r.reasons.contains(&"suspected label noise"))
        .count();
    let data = json!({
        "title": format!("{} — {}", o.split, o.checkpoint.display()),
        "split": o.split,
        "checkpoint": o.checkpoint.display().to_string(),
        "epochs_done": state.epochs_done,
        "classes": classes,
        "calibration": cal.as_ref().map(|c| json!({
            "temperature": c.temperature, "rule": c.rule, "target": c.target, "split": c.split,
        })),
        "confusion": confusion,
        "has_history": history.is_some(),
        "clips": rows,
    });
    let page = o.out.join("index.html");
    write_page(&page, CLIPS_HTML, "/*REVIEW_DATA*/", &data)?;
    tracing::info!(
        "review: {} clips ({misclassified} misclassified, {suspected} suspected label noise): {}",
        rows.len(),
        page.display()
    );
    Ok(ReviewSummary {
        page,
        clips: rows.len(),
        misclassified,
        suspected,
        calibrated: cal.is_some(),
    })
}

/// `evt_NNNN.mp4`.
fn clip_name(event_idx: u32) -> String {
    format!("evt_{event_idx:04}.mp4")
}

/// Writes each event's model input (eval transform: the ROI crop at the sampled frames, at the
/// model's input size) as an H.264 MP4 at `data.fps`; existing clips are rewritten.
fn write_clips(
    cfg: &RunConfig,
    split: &str,
    events: &[ethos_data::manifest::Event],
    dir: &Path,
) -> Result<()> {
    ethos_video::init();
    let data = &cfg.data;
    let ds = ClipDataset::from_events(data, split, events.to_vec(), data.mode)?;
    let size = data.input_size as usize;
    let transform = ClipTransform::eval(size, data.mean, data.std);
    let mut resizer = Resizer::new();
    let opts = WriterOptions {
        codec: Codec::H264,
        fps: data.fps.round().max(1.0) as u32,
        gop: 30,
        quality: Some(20),
        b_frames: false,
    };
    for (i, e) in events.iter().enumerate() {
        let sample = prepare_sample(&ds, &transform, &mut resizer, data.seed, 0, i, i)
            .context(format!("event {} of split {split}", e.event_idx))?;
        let clip = &sample.clip;
        // yuv420p needs even sides: drop a last odd row / column.
        let (w, h) = (clip.width & !1, clip.height & !1);
        let path = dir.join(clip_name(e.event_idx));
        let mut writer = ClipWriter::create(&path, w as u32, h as u32, &opts)
            .map_err(|err| Error::from(err).context(format!("writing {}", path.display())))?;
        let mut frame = vec![0u8; w * h * 3];
        let fb = clip.height * clip.width * 3;
        for t in 0..clip.frames {
            let src = &clip.data[t * fb..(t + 1) * fb];
            for y in 0..h {
                let row = &src[y * clip.width * 3..y * clip.width * 3 + w * 3];
                frame[y * w * 3..(y + 1) * w * 3].copy_from_slice(row);
            }
            writer.write_frame(&frame)?;
        }
        writer.finish()?;
    }
    Ok(())
}

/// Writes a page: `template` with `marker` replaced by `data` as JSON (`<` escaped so no string
/// in it can close the script element), atomically.
pub fn write_page(
    path: &Path,
    template: &str,
    marker: &str,
    data: &serde_json::Value,
) -> Result<()> {
    let json = serde_json::to_string(data)
        .map_err(|e| Error::internal(format!("review data: {e}")))?
        .replace('<', "\\u003c");
    let html = template.replacen(marker, &json, 1);
    ethos_core::fs::write_bytes_atomic(path, html.as_bytes()).map_err(|e| Error::output_io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_data_cannot_close_its_script() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.html");
        write_page(
            &p,
            "<script>const D = /*X*/;</script>",
            "/*X*/",
            &json!({"video": "</script><b>"}),
        )
        .unwrap();
        let html = std::fs::read_to_string(&p).unwrap();
        assert_eq!(html.matches("</script>").count(), 1, "{html}");
        assert!(html.contains("\\u003c/script>"));
    }

    #[test]
    fn templates_hold_their_data_marker_and_load_nothing_from_the_network() {
        for (t, m) in [
            (CLIPS_HTML, "/*REVIEW_DATA*/"),
            (timeline::TIMELINE_HTML, "/*TIMELINE_DATA*/"),
        ] {
            assert_eq!(t.matches(m).count(), 1);
            // The SVG namespace is a name, not a request.
            let t = t.replace("http://www.w3.org/2000/svg", "");
            assert!(!t.contains("http://") && !t.contains("https://") && !t.contains("<link"));
        }
    }
}
