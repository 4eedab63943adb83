//! Long-video inference for a list of videos: one checkpoint, sliding windows, merged events per
//! video, resumable (finished videos are skipped when their outputs match the settings), sharded
//! (`--shard i/N`), with per-camera ROIs; `summary.json` covers every listed video.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

use ethos_core::{Error, ResultExt};
use ethos_eval::calibration::Calibration;
use ethos_eval::timeline::MergeRule;
use ethos_infer::predict::{self, Predictor, VideoSummary, WindowSpec};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tch::nn;

use crate::Result;
use crate::config::RunConfig;

/// Most windows in one forward pass.
pub const MAX_BATCH: usize = 1024;
/// Longest window, seconds.
pub const MAX_WINDOW_S: f64 = 3600.0;

/// Task `index` of `count` of a job array (`i/N`, 0-based `i < N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This task, 0-based.
    pub index: usize,
    /// Tasks in all.
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Shard, String> {
        let bad = || format!("`{s}`: expected i/N with 0 <= i < N (e.g. 0/4)");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (usize, usize) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Probability a window needs to count as a class.
#[derive(Debug, Clone, PartialEq)]
pub enum Thresholds {
    /// One value for every class.
    All(f32),
    /// Values for named classes; classes not named get 0.5.
    PerClass(Vec<(String, f32)>),
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds::All(0.5)
    }
}

impl std::str::FromStr for Thresholds {
    type Err = String;
    /// `0.7` or `class=p,...`, each p in [0, 1].
    fn from_str(spec: &str) -> std::result::Result<Thresholds, String> {
        let check = |p: &str, what: &str| -> std::result::Result<f32, String> {
            match p.trim().parse::<f32>() {
                Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
                Ok(v) => Err(format!("`{what}`: {v} is not in [0, 1]")),
                Err(_) => Err(format!("`{what}`: `{}` is not a number", p.trim())),
            }
        };
        if spec.trim().is_empty() {
            return Err("empty: expected a number or class=p,...".into());
        }
        if !spec.contains('=') {
            return Ok(Thresholds::All(check(spec, spec)?));
        }
        let mut out = Vec::new();
        for part in spec.split(',') {
            if part.trim().is_empty() {
                return Err(format!(
                    "`{spec}`: an empty item (a stray comma?); expected class=p,..."
                ));
            }
            let (c, p) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}`: expected class=p"))?;
            let c = c.trim();
            if c.is_empty() {
                return Err(format!("`{part}`: the class name is empty"));
            }
            out.push((c.to_string(), check(p, part)?));
        }
        Ok(Thresholds::PerClass(out))
    }
}

impl Thresholds {
    /// Per-class thresholds in class order; `background` classes get none (never an event).
    pub fn resolve(&self, classes: &[String], background: &[String]) -> Result<Vec<Option<f32>>> {
        for b in background {
            if !classes.contains(b) {
                return Err(Error::bad_input(format!(
                    "--background {b}: not a class ({})",
                    classes.join(", ")
                )));
            }
        }
        let mut out: Vec<Option<f32>> = match self {
            Thresholds::All(p) => vec![Some(*p); classes.len()],
            Thresholds::PerClass(list) => {
                let mut out = vec![Some(0.5); classes.len()];
                for (c, p) in list {
                    let i = classes.iter().position(|x| x == c).ok_or_else(|| {
                        Error::bad_input(format!(
                            "--threshold {c}={p}: `{c}` is not a class ({})",
                            classes.join(", ")
                        ))
                    })?;
                    out[i] = Some(*p);
                }
                out
            }
        };
        for (i, c) in classes.iter().enumerate() {
            if background.contains(c) {
                out[i] = None;
            }
        }
        Ok(out)
    }
}

/// What `predict` runs and how.
#[derive(Debug, Clone)]
pub struct PredictOptions {
    /// Checkpoint to run.
    pub checkpoint: PathBuf,
    /// Config to take data/model settings from (default: the one stored in the checkpoint).
    pub config: Option<PathBuf>,
    /// `--set key=value` overrides.
    pub overrides: Vec<String>,
    /// Output folder (created).
    pub out: PathBuf,
    /// Videos to process.
    pub videos: Vec<PathBuf>,
    /// A text file with one video path per line (relative to the file; `#` comments).
    pub list: Option<PathBuf>,
    /// Window length, seconds (default: the model's frames / fps).
    pub window_s: Option<f64>,
    /// Stride between windows, seconds (default: half the window).
    pub stride_s: Option<f64>,
    /// Windows per forward pass (default: data.batch_size).
    pub batch: Option<usize>,
    /// Probabilities a window needs to count as each class.
    pub thresholds: Thresholds,
    /// Classes that never become events (background).
    pub background: Vec<String>,
    /// Events shorter than this are dropped, seconds.
    pub min_duration_s: f64,
    /// Events of one class at most this far apart are merged, seconds.
    pub max_gap_s: f64,
    /// This task's part of the video list.
    pub shard: Option<Shard>,
    /// Crop every video to this region first (overrides `predict.camera_rois`).
    pub roi: Option<ethos_video::Roi>,
    /// Decoder threads per video.
    pub decoder_threads: usize,
    /// Per-frame heads: centred moving average over this many frames (0 = none).
    pub smooth_frames: usize,
    /// Device (`auto`, `cpu`, `cuda:N`; default: the config's `train.device`).
    pub device: Option<String>,
    /// Ignore the run's `calibration.json` (its temperature and tuned bout rule).
    pub no_calibration: bool,
}

/// The `summary.json` of a predict run (or shard).
#[derive(Debug, Clone, Serialize)]
pub struct PredictSummary {
    /// The checkpoint run.
    pub checkpoint: String,
    /// The shard, `i/N`.
    pub shard: Option<String>,
    /// Window settings.
    pub settings: WindowSpec,
    /// Videos in the (sharded) list.
    pub videos: usize,
    /// Videos processed by this invocation.
    pub ok: usize,
    /// Videos whose outputs an earlier invocation completed.
    pub skipped: usize,
    /// Videos that failed.
    pub failed: usize,
    /// Hours of video covered by the outputs (this and earlier invocations).
    pub hours_processed: f64,
    /// Bouts per class over all videos with outputs.
    pub events: BTreeMap<String, usize>,
    /// Wall seconds of this invocation.
    pub wall_s: f64,
    /// Decode seconds of this invocation.
    pub decode_s: f64,
    /// Model seconds of this invocation.
    pub model_s: f64,
    /// True when a stop signal ended this invocation before the end of the list.
    pub interrupted: bool,
    /// One entry per listed video.
    pub per_video: Vec<VideoSummary>,
    /// The calibration applied to the windows' probabilities before the bouts were made (the
    /// run's `calibration.json` at the time; `None` without one or with `--no-calibration`).
    /// `NAME.windows.csv` keeps the raw probabilities; a review page applies this to show what the
    /// bouts came from.
    pub calibration: Option<Calibration>,
    /// Where this summary was written.
    #[serde(skip)]
    pub path: PathBuf,
}

/// Checks the numeric options before anything is loaded, naming the flag and its bound.
fn check_options(o: &PredictOptions) -> Result<()> {
    let bad = |m: String| Err(Error::bad_input(m));
    if let Some(w) = o.window_s
        && !(w.is_finite() && w > 0.0 && w <= MAX_WINDOW_S)
    {
        return bad(format!(
            "--window {w}: must be a number of seconds in (0, {MAX_WINDOW_S}]"
        ));
    }
    if let Some(s) = o.stride_s
        && !(s.is_finite() && s > 0.0 && s <= MAX_WINDOW_S)
    {
        return bad(format!(
            "--stride {s}: must be a number of seconds in (0, {MAX_WINDOW_S}]"
        ));
    }
    if let Some(b) = o.batch
        && !(1..=MAX_BATCH).contains(&b)
    {
        return bad(format!("--batch {b}: must be in 1..={MAX_BATCH}"));
    }
    if !(o.min_duration_s.is_finite() && o.min_duration_s >= 0.0) {
        return bad(format!(
            "--min-duration {}: must be a number of seconds >= 0",
            o.min_duration_s
        ));
    }
    if !(o.max_gap_s.is_finite() && o.max_gap_s >= 0.0) {
        return bad(format!(
            "--max-gap {}: must be a number of seconds >= 0",
            o.max_gap_s
        ));
    }
    if !(1..=64).contains(&o.decoder_threads) {
        return bad(format!(
            "--decoder-threads {}: must be in 1..=64",
            o.decoder_threads
        ));
    }
    if o.smooth_frames > 100_000 {
        return bad(format!(
            "--smooth-frames {}: must be at most 100000",
            o.smooth_frames
        ));
    }
    Ok(())
}

/// Runs a checkpoint over every listed video (this shard's part), writing per-video outputs and
/// `summary.json` (`summary.shard-I-of-N.json` for a shard). Videos that fail are listed in the
/// summary and make the result an error after the others are done.
pub fn predict(o: &PredictOptions) -> Result<PredictSummary> {
    check_options(o)?;
    let (cfg, _) = RunConfig::for_checkpoint(&o.checkpoint, o.config.as_deref(), &o.overrides)?;
    let classes = cfg.data.classes.clone();
    let videos = video_list(&o.videos, o.list.as_deref())?;
    let videos = match o.shard {
        Some(s) => predict::shard(&videos, s.index, s.count),
        None => videos,
    };
    check_unique_names(&videos)?;

    let fps = cfg.data.fps;
    // Frames per model input: data.chunk_length for frame-level (FERAL-head) runs.
    let n = cfg.data.clip_frames();
    let window_s = o.window_s.unwrap_or(n as f64 / fps);
    let spec = WindowSpec {
        fps,
        num_frames: n,
        window_s,
        stride_s: o.stride_s.unwrap_or(window_s / 2.0),
        short_side: cfg.data.cache_short_side,
        input_size: cfg.data.input_size as usize,
        mean: cfg.data.mean,
        std: cfg.data.std,
        roi: o.roi,
    };
    spec.validate()?;
    let merge = MergeRule {
        thresholds: o.thresholds.resolve(&classes, &o.background)?,
        min_duration_s: o.min_duration_s,
        max_gap_s: o.max_gap_s,
    };
    let device_name = o
        .device
        .clone()
        .unwrap_or_else(|| cfg.train.device.to_string());
    let device =
        crate::train::pick_device(&device_name).context(format!("--device {device_name}"))?;
    let mut vs = nn::VarStore::new(device);
    let model = crate::evaluate::load_checkpoint_model(&o.checkpoint, &cfg, &mut vs)?;
    vs.freeze();

    let calibration = crate::calibrate::load_for(&o.checkpoint, &classes, o.no_calibration)?;
    let cameras = CameraRois::new(&cfg, o.roi.is_some());
    crate::output_dir::prepare(&o.out, "--out")?;
    let mut predictor = Predictor {
        model: model.as_ref(),
        device,
        spec: spec.clone(),
        classes: classes.clone(),
        batch_size: o.batch.unwrap_or(cfg.data.batch_size).clamp(1, MAX_BATCH),
        decoder_threads: o.decoder_threads,
        decoder: cfg.data.decoder,
        merge,
        smooth_frames: o.smooth_frames,
    };
    let stop = crate::signals::stop_flag()?;

    let t0 = Instant::now();
    let mut per_video = Vec::with_capacity(videos.len());
    let mut interrupted = false;
    for (i, video) in videos.iter().enumerate() {
        if stop.load(Ordering::SeqCst) {
            interrupted = true;
            break;
        }
        let name = video.display().to_string();
        let outputs = predict::outputs_for(&o.out, video);
        let camera = cameras.camera_of(video);
        predictor.spec.roi = match &camera {
            Some(c) => cfg.predict.roi_of(c),
            None => spec.roi,
        };
        let hash = settings_hash(&o.checkpoint, &predictor)?;
        let tag = format!("predict [{}/{}] {name}", i + 1, videos.len());
        if let Some(earlier) = predict::completed(&outputs, &hash) {
            tracing::info!("{tag}: outputs complete, skipped");
            let tuned = crate::timeline_rule::finish_video(
                &o.out,
                video,
                &name,
                &classes,
                calibration.as_ref(),
            )?;
            per_video.push(VideoSummary {
                events: tuned.map_or(earlier.events.clone(), |t| t.into_iter().collect()),
                video: name,
                status: "skipped".into(),
                camera,
                roi: predictor.spec.roi,
                wall_s: 0.0,
                decode_s: 0.0,
                model_s: 0.0,
                ..earlier
            });
            continue;
        }
        tracing::info!("{tag}: started");
        match predictor.predict_video(video, &name, &outputs, &hash) {
            Ok(mut s) => {
                s.camera = camera;
                if let Some(tuned) = crate::timeline_rule::finish_video(
                    &o.out,
                    video,
                    &name,
                    &classes,
                    calibration.as_ref(),
                )? {
                    s.events = tuned.into_iter().collect();
                }
                let events: Vec<String> =
                    s.events.iter().map(|(c, k)| format!("{c} {k}")).collect();
                tracing::info!(
                    "{tag}: {:.1} min of video, {} windows, events: {} ({:.1} s; decode {:.1} s, model {:.1} s)",
                    s.video_seconds / 60.0,
                    s.windows,
                    events.join(", "),
                    s.wall_s,
                    s.decode_s,
                    s.model_s
                );
                per_video.push(s);
            }
            // NVDEC asked for but unusable, or no FFmpeg: every video would fail the same way.
            Err(predict::PredictError::Video(e)) if e.is_setup_error() => {
                return Err(Error::from(e).context(tag));
            }
            Err(e) => {
                tracing::error!("{tag}: FAILED: {e}");
                per_video.push(VideoSummary {
                    video: name,
                    status: "failed".into(),
                    error: Some(e.to_string()),
                    camera,
                    roi: predictor.spec.roi,
                    ..Default::default()
                });
            }
        }
    }
    let summary = summarize(
        o,
        spec,
        videos.len(),
        per_video,
        interrupted,
        t0,
        calibration,
    );
    crate::write_json(&summary.path, &summary)?;
    if summary.failed > 0 {
        let failed: Vec<String> = summary
            .per_video
            .iter()
            .filter(|s| s.status == "failed")
            .map(|s| format!("{}: {}", s.video, s.error.as_deref().unwrap_or("?")))
            .collect();
        return Err(Error::bad_input(format!(
            "{} video(s) failed (summary {}):\n  {}",
            summary.failed,
            summary.path.display(),
            failed.join("\n  ")
        )));
    }
    Ok(summary)
}

fn summarize(
    o: &PredictOptions,
    spec: WindowSpec,
    videos: usize,
    per_video: Vec<VideoSummary>,
    interrupted: bool,
    t0: Instant,
    calibration: Option<Calibration>,
) -> PredictSummary {
    let mut events = BTreeMap::new();
    for s in &per_video {
        for (c, k) in &s.events {
            *events.entry(c.clone()).or_insert(0) += k;
        }
    }
    let count = |st: &str| per_video.iter().filter(|s| s.status == st).count();
    let name = match &o.shard {
        Some(s) => format!("summary.shard-{}-of-{}.json", s.index, s.count),
        None => "summary.json".to_string(),
    };
    PredictSummary {
        checkpoint: o.checkpoint.display().to_string(),
        shard: o.shard.map(|s| s.to_string()),
        settings: spec,
        videos,
        ok: count("ok"),
        skipped: count("skipped"),
        failed: count("failed"),
        hours_processed: per_video.iter().map(|s| s.video_seconds).sum::<f64>() / 3600.0,
        events,
        wall_s: t0.elapsed().as_secs_f64(),
        decode_s: per_video.iter().map(|s| s.decode_s).sum(),
        model_s: per_video.iter().map(|s| s.model_s).sum(),
        interrupted,
        per_video,
        calibration,
        path: o.out.join(name),
    }
}

/// Finds each video's camera for `predict.camera_rois`: its `camera` value in the events manifest
/// (matched by path under `data.videos_root`, else by file name when that name has one camera),
/// otherwise the file-name rule of [`ethos_infer::predict::PredictConfig`].
struct CameraRois {
    /// False when there are no camera ROIs or `--roi` overrides them.
    active: bool,
    config: ethos_infer::predict::PredictConfig,
    by_path: HashMap<PathBuf, String>,
    /// File name -> camera; `None` when the manifest gives that file name several cameras.
    by_name: HashMap<String, Option<String>>,
}

impl CameraRois {
    fn new(cfg: &RunConfig, cli_roi: bool) -> Self {
        let active = !cli_roi && !cfg.predict.camera_rois.is_empty();
        let mut by_path = HashMap::new();
        let mut by_name: HashMap<String, Option<String>> = HashMap::new();
        if active {
            match ethos_data::manifest::EventsManifest::load(&cfg.data.events, None, &[]) {
                Ok(m) => {
                    for e in &m.events {
                        let Some(camera) = &e.camera else { continue };
                        let path = cfg.data.videos_root.join(&e.video);
                        by_path.insert(canonical(&path), camera.clone());
                        if let Some(name) = e.video.file_name() {
                            let name = name.to_string_lossy().into_owned();
                            by_name
                                .entry(name)
                                .and_modify(|c| {
                                    if c.as_deref() != Some(camera.as_str()) {
                                        *c = None;
                                    }
                                })
                                .or_insert_with(|| Some(camera.clone()));
                        }
                    }
                }
                Err(e) => tracing::warn!(
                    "predict.camera_rois: cannot read the events manifest {} ({e}); cameras come from file names",
                    cfg.data.events.display()
                ),
            }
        }
        Self {
            active,
            config: cfg.predict.clone(),
            by_path,
            by_name,
        }
    }

    /// The camera of `video`, or `None` when camera ROIs are not in use.
    fn camera_of(&self, video: &Path) -> Option<String> {
        if !self.active {
            return None;
        }
        if let Some(c) = self.by_path.get(&canonical(video)) {
            return Some(c.clone());
        }
        let name = video
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(Some(c)) = self.by_name.get(&name) {
            return Some(c.clone());
        }
        Some(self.config.camera_from_file_name(video))
    }
}

fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p)
        .or_else(|_| std::path::absolute(p))
        .unwrap_or_else(|_| p.to_path_buf())
}

/// The listed videos: arguments, then the lines of `list` (relative paths against the list's
/// folder; blank lines and `#` comments skipped; a UTF-8 byte-order mark ignored).
pub fn video_list(videos: &[PathBuf], list: Option<&Path>) -> Result<Vec<PathBuf>> {
    let mut out = videos.to_vec();
    if let Some(list) = list {
        let text = std::fs::read_to_string(list)
            .map_err(|e| Error::input_io(list, e).context(format!("--list {}", list.display())))?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let base = list.parent().unwrap_or(Path::new("."));
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let p = PathBuf::from(line);
            out.push(if p.is_absolute() { p } else { base.join(p) });
        }
    }
    if out.is_empty() {
        return Err(Error::bad_input(
            "no videos: give VIDEO arguments or --list FILE",
        ));
    }
    Ok(out)
}

/// Outputs are named after the video's file name, so two listed videos may not share one.
fn check_unique_names(videos: &[PathBuf]) -> Result<()> {
    let mut seen = HashMap::new();
    for v in videos {
        let name = v
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(first) = seen.insert(name.clone(), v.clone()) {
            return Err(Error::bad_input(format!(
                "{} and {} share the file name {name}: their outputs would collide; process them into different --out folders",
                first.display(),
                v.display()
            )));
        }
    }
    Ok(())
}

/// Identifies the outputs: the checkpoint's identity and every setting that changes them.
fn settings_hash(ckpt: &Path, p: &Predictor) -> Result<String> {
    let meta = std::fs::metadata(ckpt).map_err(|e| Error::input_io(ckpt, e))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos());
    let mut h = Sha256::new();
    h.update(format!(
        "{}|{}|{:?}",
        std::path::absolute(ckpt)
            .unwrap_or_else(|_| ckpt.to_path_buf())
            .display(),
        meta.len(),
        mtime
    ));
    h.update(serde_json::to_string(&p.spec).unwrap_or_default());
    h.update(format!(
        "{:?}|{}|{}|{:?}|{}",
        p.merge.thresholds, p.merge.min_duration_s, p.merge.max_gap_s, p.classes, p.smooth_frames
    ));
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes() -> Vec<String> {
        ["ear", "tail", "none"].map(String::from).to_vec()
    }

    #[test]
    fn threshold_forms() {
        let t: Thresholds = "0.7".parse().unwrap();
        assert_eq!(t.resolve(&classes(), &[]).unwrap(), vec![Some(0.7); 3]);
        let t: Thresholds = "tail=0.3".parse().unwrap();
        assert_eq!(
            t.resolve(&classes(), &["none".to_string()]).unwrap(),
            vec![Some(0.5), Some(0.3), None]
        );
        let t: Thresholds = "nose=0.3".parse().unwrap();
        assert!(t.resolve(&classes(), &[]).is_err());
        for bad in [
            "1.5",
            "tail=1.5",
            "tail=x",
            "",
            " ",
            "tail=0.3,",
            "=0.2",
            "nan",
        ] {
            let e = bad.parse::<Thresholds>().unwrap_err();
            assert!(!e.is_empty(), "{bad}");
        }
        for stray in ["tail=0.3,", ",tail=0.3", "ear=0.2,,tail=0.3"] {
            let e = stray.parse::<Thresholds>().unwrap_err();
            assert!(e.contains("empty item") && e.contains(stray), "{e}");
        }
        assert!(
            Thresholds::All(0.5)
                .resolve(&classes(), &["nose".to_string()])
                .is_err()
        );
    }

    #[test]
    fn shards_parse_and_refuse_nonsense() {
        assert_eq!(
            "1/4".parse::<Shard>().unwrap(),
            Shard { index: 1, count: 4 }
        );
        for bad in ["x", "5/3", "3/3", "1/0", "-1/2", "1", "a/b"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_list_with_a_byte_order_mark_reads_its_first_path() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("list.txt");
        std::fs::write(&list, "\u{feff}a.mp4\n# comment\n\n/abs/b.mp4\n").unwrap();
        let v = video_list(&[], Some(&list)).unwrap();
        assert_eq!(
            v,
            vec![dir.path().join("a.mp4"), PathBuf::from("/abs/b.mp4")]
        );
        assert!(video_list(&[], None).is_err());
    }
}
