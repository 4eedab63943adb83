//! The demo: the whole pipeline on the CPU in minutes, with nothing to download. Synthesises a
//! barn dataset (ear/tail events; with the timeline, background `none` events and a long close-up
//! test video with known bouts), trains the small `r3d_demo` 3-D ResNet from scratch
//! (`configs/demo.yaml`, embedded), evaluates on `val` and on the unseen camera (`test_ood`), and
//! with the timeline runs long-video inference and scores the found bouts against the truth.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ethos_core::{Error, ResultExt};
use ethos_data::synth::{BACKGROUND_CLASS, CLASSES, CLOSEUP_FILE, CLOSEUP_TRUTH, SynthSpec};
use ethos_eval::metrics::MetricSet;
use ethos_eval::timeline::BoutEvaluation;
use ethos_video::Codec;
use serde_json::{Map, Value};

use crate::Result;
use crate::config::RunConfig;
use crate::evaluate::{EvalOptions, evaluate};
use crate::predict::{PredictOptions, Thresholds, predict};
use crate::progress::Quiet;
use crate::train::{TrainOptions, TrainSummary, train};

/// The demo's training sections, laid over the `config.yaml` that synth writes.
pub const DEMO_YAML: &str = include_str!("../../../configs/demo.yaml");

/// Side of the long close-up video's frames: the cache's short side in `configs/demo.yaml`, so the
/// close-up is scaled from its source pixels once, as the training crops are.
const LONG_VIDEO_SIZE: u32 = 80;
/// Stride of the sliding windows over the long video, seconds.
const LONG_STRIDE_S: f64 = 0.5;
/// Tolerance of the bout matching, seconds (see `ethos_eval::timeline`).
const LONG_TOLERANCE_S: f64 = 1.0;
/// Shortest predicted bout kept, seconds: synthetic bouts last 3-7 s, so a stretch of one to three
/// windows above threshold is noise, not a bout.
const LONG_MIN_DURATION_S: f64 = 2.0;

/// What the demo makes.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Folder for the dataset, the run and the reports.
    pub out: PathBuf,
    /// Labelled events to synthesise.
    pub events: usize,
    /// Frame size of the synthetic videos (width, height).
    pub resolution: (u32, u32),
    /// Also the timeline: a background class and bouts found in a long video.
    pub timeline: bool,
    /// Background events (default: a third of `events` with the timeline, else 0).
    pub background_events: Option<usize>,
    /// Length of the long video, seconds (default: 240 with the timeline, else none).
    pub long_video_s: Option<f64>,
    /// Seed of the dataset and the run.
    pub seed: u64,
    /// `--set key=value` overrides.
    pub overrides: Vec<String>,
}

/// What the demo found.
#[derive(Debug, Clone)]
pub struct DemoSummary {
    /// The training run.
    pub train: TrainSummary,
    /// `train.metric_key`.
    pub metric_key: String,
    /// Per split (`val`, `test_ood`): metrics and the report folder.
    pub splits: Vec<(String, MetricSet, PathBuf)>,
    /// With the timeline: the bout scores (hand-set rule) and where they were written.
    pub long_video: Option<(BoutEvaluation, PathBuf)>,
    /// The calibration tuned on val (temperature + rule for `train.metric_key`).
    pub calibration: Option<crate::calibrate::CalibrateSummary>,
    /// Per split: the metrics with the tuned rule on calibrated probabilities, and ECE before/after.
    pub tuned: Vec<(String, crate::calibrate::CalibratedMetrics)>,
    /// With the timeline: the bout rule tuned on a second labelled long video, scored on the
    /// held-out one.
    pub timeline_tuning: Option<TimelineTuning>,
    /// Wall seconds in all, and of training.
    pub seconds: f64,
    /// Wall seconds of training.
    pub train_seconds: f64,
}

/// The bout rule tuned on one labelled long video and scored on the demo's held-out one.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TimelineTuning {
    /// What tuning found on the tuning video (rule, scores before and after).
    pub tuning: crate::timeline_rule::TimelineCalibrateSummary,
    /// The held-out video's bout scores with the tuned rule (before: [`DemoSummary::long_video`]).
    pub heldout_after: BoutEvaluation,
    /// Where they were written.
    pub path: PathBuf,
}

impl DemoSummary {
    /// The machine-readable result: metrics per split (and `long_video`), as the CLI prints it.
    pub fn to_json(&self) -> Value {
        let mut out: Map<String, Value> = self
            .splits
            .iter()
            .map(|(s, m, _)| (s.clone(), serde_json::to_value(m).unwrap_or_default()))
            .collect();
        if let Some((eval, _)) = &self.long_video {
            out.insert(
                "long_video".into(),
                serde_json::to_value(eval).unwrap_or_default(),
            );
        }
        for (split, c) in &self.tuned {
            if let Some(m) = out.get_mut(split).and_then(Value::as_object_mut) {
                m.insert(
                    "calibrated".into(),
                    serde_json::to_value(c).unwrap_or_default(),
                );
            }
        }
        if let Some(t) = &self.timeline_tuning {
            out.insert(
                "long_video_tuned".into(),
                serde_json::json!({
                    "rule": t.tuning.rule,
                    "tuning_video_before": t.tuning.before.macro_bout_f1,
                    "tuning_video_after": t.tuning.after.macro_bout_f1,
                    "heldout_after": t.heldout_after,
                }),
            );
        }
        Value::Object(out)
    }
}

/// The `ethos synth` settings of the demo's dataset.
pub fn synth_spec(o: &DemoOptions) -> SynthSpec {
    let background_events =
        o.background_events
            .unwrap_or(if o.timeline { o.events / 3 } else { 0 });
    let long_video_s = o
        .long_video_s
        .unwrap_or(if o.timeline { 240.0 } else { 0.0 });
    SynthSpec {
        seed: o.seed,
        cameras: 3,
        videos_per_camera: 2,
        events: o.events,
        width: o.resolution.0,
        height: o.resolution.1,
        fps: 15,
        codec: Codec::H264,
        imbalance: 3.0,
        minutes: 6.0,
        background_events,
        long_video_s,
        long_video_size: LONG_VIDEO_SIZE,
        ..SynthSpec::default()
    }
}

/// The demo's config: synth's `config.yaml` in `data_dir` with the embedded `configs/demo.yaml`
/// laid over it, written to `data_dir/demo.yaml`.
pub fn demo_config(data_dir: &Path) -> Result<PathBuf> {
    let synth_cfg = data_dir.join("config.yaml");
    let text = std::fs::read_to_string(&synth_cfg).map_err(|e| Error::input_io(&synth_cfg, e))?;
    let mut tree: Value = serde_norway::from_str(&text)
        .map_err(|e| Error::internal(format!("parsing {}: {e}", synth_cfg.display())))?;
    let overlay: Value = serde_norway::from_str(DEMO_YAML)
        .map_err(|e| Error::internal(format!("parsing the embedded configs/demo.yaml: {e}")))?;
    overlay_sections(&mut tree, &overlay);
    let path = data_dir.join("demo.yaml");
    let yaml = serde_norway::to_string(&tree).unwrap_or_default();
    ethos_core::fs::write_bytes_atomic(&path, yaml.as_bytes())
        .map_err(|e| Error::output_io(&path, e))?;
    Ok(path)
}

/// Runs the demo.
pub fn demo(o: &DemoOptions) -> Result<DemoSummary> {
    let t0 = Instant::now();
    let data_dir = o.out.join("data");
    let spec = synth_spec(o);
    let steps = if spec.long_video_s > 0.0 { 6 } else { 4 };
    if crate::synth::same_dataset(&data_dir, &spec) {
        tracing::info!(
            "demo: reusing the synthetic dataset in {}",
            data_dir.display()
        );
    } else {
        tracing::info!(
            "demo: [1/{steps}] synthesising a barn dataset in {}",
            data_dir.display()
        );
        crate::synth::synth(&spec, &data_dir, &Quiet)?;
    }
    let demo_cfg = demo_config(&data_dir)?;
    let mut overrides = vec![format!("train.seed={}", o.seed)];
    overrides.extend(o.overrides.iter().cloned());
    let cfg = RunConfig::load(&demo_cfg, &overrides)?;

    tracing::info!(
        "demo: [2/{steps}] training {} on the CPU (run directory {})",
        cfg.model.preset.as_deref().unwrap_or("?"),
        cfg.run_dir().display()
    );
    let t_train = Instant::now();
    let summary = train(
        &cfg,
        &TrainOptions {
            force: true,
            ..TrainOptions::default()
        },
    )?;
    let train_seconds = t_train.elapsed().as_secs_f64();
    let ckpt = crate::run_dir::run_checkpoint(&summary.run_dir)?;

    tracing::info!(
        "demo: calibrating on val (temperature, rule for {})",
        cfg.train.metric_key
    );
    let calibration = crate::calibrate::calibrate(&crate::calibrate::CalibrateOptions {
        checkpoint: ckpt.clone(),
        config: Some(demo_cfg.clone()),
        overrides: overrides.clone(),
        split: "val".into(),
        target: None,
    })?;
    let mut splits = Vec::new();
    let mut tuned = Vec::new();
    for (i, split) in ["val", "test_ood"].iter().enumerate() {
        tracing::info!("demo: [{}/{steps}] evaluating on {split}", 3 + i);
        let s = evaluate(&EvalOptions {
            checkpoint: ckpt.clone(),
            config: Some(demo_cfg.clone()),
            overrides: overrides.clone(),
            split: split.to_string(),
            out: o.out.join(format!("eval_{split}")),
            no_calibration: false,
        })?;
        splits.push((split.to_string(), s.metrics, s.out_dir));
        if let Some(c) = s.calibrated {
            tuned.push((split.to_string(), c));
        }
    }
    let long_video = long_video_step(o, &data_dir, &demo_cfg, &overrides, &ckpt)?;
    let timeline_tuning = match &long_video {
        Some(_) => Some(timeline_tuning_step(
            o, &spec, &data_dir, &demo_cfg, &overrides, &ckpt,
        )?),
        None => None,
    };
    Ok(DemoSummary {
        train: summary,
        metric_key: cfg.train.metric_key.clone(),
        splits,
        long_video,
        calibration: Some(calibration),
        tuned,
        timeline_tuning,
        seconds: t0.elapsed().as_secs_f64(),
        train_seconds,
    })
}

/// Steps 5 and 6: long-video inference over the close-up video (window = the model's clip,
/// stride [`LONG_STRIDE_S`], thresholds 0.5 for ear and tail, `none` a background class, bouts of
/// at least [`LONG_MIN_DURATION_S`], gaps up to 1 s merged), then the bout scores against its
/// ground truth, written to `OUT/long_video/eval_events.json`. `None` without a long video.
fn long_video_step(
    o: &DemoOptions,
    data_dir: &Path,
    demo_cfg: &Path,
    overrides: &[String],
    ckpt: &Path,
) -> Result<Option<(BoutEvaluation, PathBuf)>> {
    let video = data_dir.join("long").join(CLOSEUP_FILE);
    let truth = data_dir.join("long").join(CLOSEUP_TRUTH);
    if !video.is_file() || !truth.is_file() {
        return Ok(None);
    }
    let out = o.out.join("long_video");
    tracing::info!(
        "demo: [5/6] predicting bouts on the long video {}",
        video.display()
    );
    predict(&PredictOptions {
        checkpoint: ckpt.to_path_buf(),
        config: Some(demo_cfg.to_path_buf()),
        overrides: overrides.to_vec(),
        out: out.clone(),
        videos: vec![video.clone()],
        list: None,
        window_s: None,
        stride_s: Some(LONG_STRIDE_S),
        batch: None,
        thresholds: Thresholds::PerClass(CLASSES.iter().map(|c| (c.to_string(), 0.5)).collect()),
        background: vec![BACKGROUND_CLASS.to_string()],
        min_duration_s: LONG_MIN_DURATION_S,
        max_gap_s: 1.0,
        shard: None,
        roi: None,
        decoder_threads: 2,
        smooth_frames: 0,
        device: None,
        no_calibration: true,
    })?;
    tracing::info!("demo: [6/6] scoring the found bouts against the ground truth");
    let pred = ethos_infer::predict::outputs_for(&out, &video).events;
    let classes: Vec<String> = CLASSES.iter().map(|c| c.to_string()).collect();
    let eval = crate::score::evaluate_events(&pred, &truth, &classes, LONG_TOLERANCE_S, 0.1)
        .context("scoring the long video")?;
    let path = out.join("eval_events.json");
    crate::write_json(&path, &eval)?;
    Ok(Some((eval, path)))
}

/// The hand-set bout rule of [`long_video_step`].
fn hand_set_rule() -> (Thresholds, Vec<String>, ethos_eval::timeline::MergeRule) {
    let mut classes: Vec<String> = CLASSES.iter().map(|c| c.to_string()).collect();
    classes.push(BACKGROUND_CLASS.to_string());
    let thresholds: Vec<Option<f32>> = classes
        .iter()
        .map(|c| (c != BACKGROUND_CLASS).then_some(0.5))
        .collect();
    (
        Thresholds::PerClass(CLASSES.iter().map(|c| (c.to_string(), 0.5)).collect()),
        vec![BACKGROUND_CLASS.to_string()],
        ethos_eval::timeline::MergeRule {
            thresholds,
            min_duration_s: LONG_MIN_DURATION_S,
            max_gap_s: 1.0,
        },
    )
}

/// With the timeline: a second labelled close-up video from other held-out pens (synth variant 1,
/// `data/long_tune/`), the bout rule tuned on it (`ethos calibrate --timeline`), then the demo's
/// held-out close-up predicted with the tuned rule and scored (`OUT/long_video_tuned/`).
fn timeline_tuning_step(
    o: &DemoOptions,
    spec: &SynthSpec,
    data_dir: &Path,
    demo_cfg: &Path,
    overrides: &[String],
    ckpt: &Path,
) -> Result<TimelineTuning> {
    let tune_dir = data_dir.join("long_tune");
    let tune_video = tune_dir.join(CLOSEUP_FILE);
    let tune_truth = tune_dir.join(CLOSEUP_TRUTH);
    if !tune_video.is_file() || !tune_truth.is_file() {
        tracing::info!(
            "demo: synthesising a second labelled long video (other held-out pens) in {}",
            tune_dir.display()
        );
        ethos_data::synth::write_long_video(spec, 1, &tune_dir, &|_| {})?;
    }
    let (_, background, baseline) = hand_set_rule();
    tracing::info!("demo: tuning the bout rule on {}", tune_video.display());
    let tuning = crate::timeline_rule::calibrate_timeline(
        &crate::timeline_rule::TimelineCalibrateOptions {
            checkpoint: ckpt.to_path_buf(),
            config: Some(demo_cfg.to_path_buf()),
            overrides: overrides.to_vec(),
            video: tune_video,
            truth: tune_truth,
            out: Some(o.out.join("long_tune")),
            stride_s: Some(LONG_STRIDE_S),
            background: background.clone(),
            tolerance_s: LONG_TOLERANCE_S,
            baseline: baseline.clone(),
        },
    )?;
    let video = data_dir.join("long").join(CLOSEUP_FILE);
    let truth = data_dir.join("long").join(CLOSEUP_TRUTH);
    let out = o.out.join("long_video_tuned");
    tracing::info!(
        "demo: predicting the held-out long video with the tuned rule ({})",
        out.display()
    );
    predict(&PredictOptions {
        checkpoint: ckpt.to_path_buf(),
        config: Some(demo_cfg.to_path_buf()),
        overrides: overrides.to_vec(),
        out: out.clone(),
        videos: vec![video.clone()],
        list: None,
        window_s: None,
        stride_s: Some(LONG_STRIDE_S),
        batch: None,
        thresholds: hand_set_rule().0,
        background,
        min_duration_s: baseline.min_duration_s,
        max_gap_s: baseline.max_gap_s,
        shard: None,
        roi: None,
        decoder_threads: 2,
        smooth_frames: 0,
        device: None,
        no_calibration: false,
    })?;
    let pred = ethos_infer::predict::outputs_for(&out, &video).events;
    let classes: Vec<String> = CLASSES.iter().map(|c| c.to_string()).collect();
    let heldout_after =
        crate::score::evaluate_events(&pred, &truth, &classes, LONG_TOLERANCE_S, 0.1)
            .context("scoring the long video with the tuned rule")?;
    let path = out.join("eval_events.json");
    crate::write_json(&path, &heldout_after)?;
    Ok(TimelineTuning {
        tuning,
        heldout_after,
        path,
    })
}

/// Sets every `section.key` of `overlay` in `tree` (both YAML mappings of sections).
fn overlay_sections(tree: &mut Value, overlay: &Value) {
    let (Some(tree), Some(overlay)) = (tree.as_object_mut(), overlay.as_object()) else {
        return;
    };
    for (section, keys) in overlay {
        let target = tree
            .entry(section.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        match (target.as_object_mut(), keys.as_object()) {
            (Some(t), Some(k)) => {
                for (key, value) in k {
                    t.insert(key.clone(), value.clone());
                }
            }
            _ => *target = keys.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_replaces_keys_and_keeps_the_rest() {
        let mut tree: Value =
            serde_norway::from_str("data: {fps: 12, events: e.csv}\nmodel: {arch: r3d_18}")
                .unwrap();
        let overlay: Value = serde_norway::from_str("data: {fps: 8}\ntrain: {epochs: 3}").unwrap();
        overlay_sections(&mut tree, &overlay);
        assert_eq!(tree["data"]["fps"], 8);
        assert_eq!(tree["data"]["events"], "e.csv");
        assert_eq!(tree["model"]["arch"], "r3d_18");
        assert_eq!(tree["train"]["epochs"], 3);
    }

    #[test]
    fn a_dataset_is_reused_only_when_synth_wrote_it_with_the_same_settings() {
        let dir = tempfile::tempdir().unwrap();
        let demo = DemoOptions {
            out: dir.path().to_path_buf(),
            events: 480,
            resolution: (320, 192),
            timeline: true,
            background_events: None,
            long_video_s: None,
            seed: 0,
            overrides: Vec::new(),
        };
        let spec = |background_events, long_video_s| SynthSpec {
            background_events,
            long_video_s,
            ..synth_spec(&demo)
        };
        assert!(!crate::synth::same_dataset(dir.path(), &spec(160, 240.0)));
        std::fs::write(dir.path().join("config.yaml"), "data: {}\n").unwrap();
        std::fs::write(
            dir.path().join("synth.json"),
            r#"{"seed": 0, "events": 480, "width": 320, "height": 192, "background_events": 160,
                "long_video_s": 240.0, "long_video_size": 80}"#,
        )
        .unwrap();
        assert!(crate::synth::same_dataset(dir.path(), &spec(160, 240.0)));
        assert_eq!(synth_spec(&demo).background_events, 160);
        // A dataset from before background events and the long video is not reused.
        assert!(!crate::synth::same_dataset(dir.path(), &spec(0, 240.0)));
        assert!(!crate::synth::same_dataset(dir.path(), &spec(160, 0.0)));
    }

    #[test]
    fn embedded_demo_config_composes() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = ethos_data::synth::config_yaml(&Default::default());
        std::fs::write(dir.path().join("config.yaml"), yaml).unwrap();
        let path = demo_config(dir.path()).unwrap();
        RunConfig::load(&path, &[]).unwrap();
    }
}
