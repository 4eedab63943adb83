//! `ethos predict --checkpoint C [--config F] --out DIR VIDEO... | --list FILE`: sliding-window
//! inference over long videos into per-window probabilities and merged behaviour events
//! (see `ethos_train::predict` for the windowing, outputs and resume rules).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tch::nn;

use ethos_models::VideoModel;
use ethos_train::checkpoint;
use ethos_train::predict::{self, Predictor, VideoSummary, WindowSpec};
use ethos_train::timeline::MergeRule;

use crate::config::{RunConfig, from_resolved};
use crate::exit::BadInput;

/// Arguments of `ethos predict`.
#[derive(clap::Args)]
pub struct Args {
    /// Checkpoint to run (`best.ckpt` of a run).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Config to take data/model settings from (default: the one stored in the checkpoint).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override a config key (`key=value`, repeatable), e.g. `predict.camera_rois.cam0=[0,0,1920,1080]`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Output folder (created).
    #[arg(long)]
    pub out: PathBuf,
    /// Videos to process.
    pub videos: Vec<PathBuf>,
    /// A text file with one video path per line (relative paths are relative to the file; `#` comments).
    #[arg(long)]
    pub list: Option<PathBuf>,
    /// Window length in seconds (default: the model's frames per input / fps: data.num_frames, or
    /// data.chunk_length for frame-level runs).
    #[arg(long)]
    pub window: Option<f64>,
    /// Stride between windows in seconds, rounded to whole frames (default: half the window).
    #[arg(long)]
    pub stride: Option<f64>,
    /// Windows per forward pass (default: data.batch_size).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Probability a window needs to count as a class: one number for every class, or
    /// `class=p,...` (classes not named get 0.5).
    #[arg(long, default_value = "0.5")]
    pub threshold: String,
    /// A class that never becomes an event (e.g. a background class); repeatable.
    #[arg(long = "background")]
    pub background: Vec<String>,
    /// Events shorter than this (seconds) are dropped.
    #[arg(long, default_value_t = 1.0)]
    pub min_duration: f64,
    /// Events of one class at most this far apart (seconds) are merged.
    #[arg(long, default_value_t = 1.0)]
    pub max_gap: f64,
    /// Take shard i of N of the video list (`i/N`, 0-based): list positions i, i+N, ...
    #[arg(long)]
    pub shard: Option<String>,
    /// Crop every video to this region first (x,y,w,h in source pixels); overrides the config's
    /// per-camera `predict.camera_rois`.
    #[arg(long)]
    pub roi: Option<String>,
    /// Decoder threads per video.
    #[arg(long, default_value_t = 2)]
    pub decoder_threads: usize,
    /// Per-frame heads (FERAL): centred moving average of `NAME.frames.csv` over this many frames
    /// (0 = none).
    #[arg(long, default_value_t = 0)]
    pub smooth_frames: usize,
    /// Device: auto, cpu or cuda:N (default: the config's train.device).
    #[arg(long)]
    pub device: Option<String>,
}

#[derive(Serialize)]
struct RunSummary<'a> {
    checkpoint: String,
    shard: Option<String>,
    settings: &'a WindowSpec,
    videos: usize,
    ok: usize,
    skipped: usize,
    failed: usize,
    hours_processed: f64,
    events: std::collections::BTreeMap<String, usize>,
    wall_s: f64,
    decode_s: f64,
    model_s: f64,
    per_video: &'a [VideoSummary],
}

/// Builds the model stored in a checkpoint: architecture from its config, weights from its tensors.
pub fn load_checkpoint_model(
    ckpt: &Path,
    cfg: &RunConfig,
    vs: &mut nn::VarStore,
) -> Result<Box<dyn VideoModel>> {
    let mut model_cfg = cfg.model.clone();
    // The checkpoint holds every weight; the pretrained file the run started from is not needed.
    model_cfg.weights = None;
    let model = super::train::build_model(&model_cfg, cfg.data.classes.len(), vs)?;
    let ck = checkpoint::load(ckpt).with_context(|| format!("--checkpoint {}", ckpt.display()))?;
    checkpoint::copy_into_varstore(ckpt, vs, &ck.model)?;
    Ok(model)
}

/// Runs `ethos predict`.
pub fn run(args: Args) -> Result<()> {
    let (_, stored) = checkpoint::load_state(&args.checkpoint)
        .with_context(|| format!("--checkpoint {}", args.checkpoint.display()))?;
    let cfg = match &args.config {
        Some(p) => RunConfig::load(p, &args.set)?,
        None if args.set.is_empty() => from_resolved(&stored, &args.checkpoint)?,
        None => {
            let text =
                serde_norway::to_string(&stored).context("re-serialising the stored config")?;
            RunConfig::from_yaml_str(&text, &args.checkpoint, &args.set)?
        }
    };
    let classes = cfg.data.classes.clone();
    let videos = video_list(&args)?;
    let videos = match &args.shard {
        Some(s) => {
            let (i, n) = predict::parse_shard(s)?;
            predict::shard(&videos, i, n)
        }
        None => videos,
    };
    check_unique_names(&videos)?;

    let fps = cfg.data.fps;
    // Frames per model input: data.chunk_length for frame-level (FERAL-head) runs.
    let n = cfg.data.clip_frames();
    let window_s = args.window.unwrap_or(n as f64 / fps);
    let spec = WindowSpec {
        fps,
        num_frames: n,
        window_s,
        stride_s: args.stride.unwrap_or(window_s / 2.0),
        short_side: cfg.data.cache_short_side,
        input_size: cfg.data.input_size as usize,
        mean: cfg.data.mean,
        std: cfg.data.std,
        roi: args.roi.as_deref().map(parse_roi).transpose()?,
    };
    spec.validate()?;
    let merge = MergeRule {
        thresholds: thresholds(&args.threshold, &classes, &args.background)?,
        min_duration_s: args.min_duration,
        max_gap_s: args.max_gap,
    };

    ethos_models::engine::Engine::init();
    let device_name = args
        .device
        .clone()
        .unwrap_or_else(|| cfg.train.device.to_string());
    let device = ethos_models::engine::pick_device(&device_name)
        .map_err(|e| BadInput(format!("--device {device_name}: {e}")))?;
    let mut vs = nn::VarStore::new(device);
    let model = load_checkpoint_model(&args.checkpoint, &cfg, &mut vs)?;
    vs.freeze();

    let cameras = CameraRois::new(&cfg, args.roi.is_some());
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut predictor = Predictor {
        model: model.as_ref(),
        device,
        spec: spec.clone(),
        classes: classes.clone(),
        batch_size: args.batch.unwrap_or(cfg.data.batch_size as usize).max(1),
        decoder_threads: args.decoder_threads.max(1),
        merge,
        smooth_frames: args.smooth_frames,
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGUSR1] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }

    let t0 = Instant::now();
    let mut per_video = Vec::with_capacity(videos.len());
    let mut interrupted = false;
    for (i, video) in videos.iter().enumerate() {
        if stop.load(Ordering::SeqCst) {
            interrupted = true;
            break;
        }
        let name = video.display().to_string();
        let outputs = predict::outputs_for(&args.out, video);
        let camera = cameras.camera_of(video);
        predictor.spec.roi = match &camera {
            Some(c) => cfg.predict.roi_of(c),
            None => spec.roi,
        };
        let settings_hash = settings_hash(
            &args.checkpoint,
            &predictor.spec,
            &predictor.merge,
            &classes,
            predictor.smooth_frames,
        )?;
        if predict::is_complete(&outputs, &settings_hash) {
            eprintln!(
                "predict [{}/{}] {name}: outputs complete, skipped",
                i + 1,
                videos.len()
            );
            per_video.push(VideoSummary {
                video: name,
                status: "skipped".into(),
                camera,
                roi: predictor.spec.roi,
                ..Default::default()
            });
            continue;
        }
        match predictor.predict_video(video, &name, &outputs, &settings_hash) {
            Ok(mut s) => {
                s.camera = camera;
                let events: Vec<String> =
                    s.events.iter().map(|(c, k)| format!("{c} {k}")).collect();
                eprintln!(
                    "predict [{}/{}] {name}: {:.1} min of video, {} windows, events: {} ({:.1} s; decode {:.1} s, model {:.1} s)",
                    i + 1,
                    videos.len(),
                    s.video_seconds / 60.0,
                    s.windows,
                    events.join(", "),
                    s.wall_s,
                    s.decode_s,
                    s.model_s
                );
                per_video.push(s);
            }
            Err(e) => {
                eprintln!("predict [{}/{}] {name}: FAILED: {e}", i + 1, videos.len());
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

    let mut events = std::collections::BTreeMap::new();
    for s in &per_video {
        for (c, k) in &s.events {
            *events.entry(c.clone()).or_insert(0) += k;
        }
    }
    let count = |st: &str| per_video.iter().filter(|s| s.status == st).count();
    let summary = RunSummary {
        checkpoint: args.checkpoint.display().to_string(),
        shard: args.shard.clone(),
        settings: &spec,
        videos: videos.len(),
        ok: count("ok"),
        skipped: count("skipped"),
        failed: count("failed"),
        hours_processed: per_video.iter().map(|s| s.video_seconds).sum::<f64>() / 3600.0,
        events,
        wall_s: t0.elapsed().as_secs_f64(),
        decode_s: per_video.iter().map(|s| s.decode_s).sum(),
        model_s: per_video.iter().map(|s| s.model_s).sum(),
        per_video: &per_video,
    };
    let summary_name = match &args.shard {
        Some(s) => format!("summary.shard-{}.json", s.replace('/', "-of-")),
        None => "summary.json".to_string(),
    };
    let summary_path = args.out.join(summary_name);
    ethos_train::atomic::write_bytes_atomic(
        &summary_path,
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )
    .with_context(|| format!("writing {}", summary_path.display()))?;
    eprintln!(
        "predict: {} ok, {} skipped, {} failed; {:.2} h of video in {:.1} s; summary {}",
        summary.ok,
        summary.skipped,
        summary.failed,
        summary.hours_processed,
        summary.wall_s,
        summary_path.display()
    );
    if summary.failed > 0 {
        let failed: Vec<String> = per_video
            .iter()
            .filter(|s| s.status == "failed")
            .map(|s| format!("{}: {}", s.video, s.error.as_deref().unwrap_or("?")))
            .collect();
        return Err(BadInput(format!(
            "{} video(s) failed:\n  {}",
            summary.failed,
            failed.join("\n  ")
        ))
        .into());
    }
    if interrupted {
        eprintln!(
            "predict: stopped by a signal; rerun the same command to continue (finished videos are skipped)"
        );
    }
    Ok(())
}

/// Finds each video's camera for `predict.camera_rois`: its `camera` value in the events manifest
/// (matched by path under `data.videos_root`, else by file name when that name has one camera),
/// otherwise the file-name rule of [`ethos_train::predict::PredictConfig`].
struct CameraRois {
    /// False when there are no camera ROIs or `--roi` overrides them.
    active: bool,
    config: ethos_train::predict::PredictConfig,
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

fn video_list(args: &Args) -> Result<Vec<PathBuf>> {
    let mut videos = args.videos.clone();
    if let Some(list) = &args.list {
        let text = std::fs::read_to_string(list)
            .map_err(|e| BadInput(format!("--list {}: cannot read: {e}", list.display())))?;
        let base = list.parent().unwrap_or(Path::new("."));
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let p = PathBuf::from(line);
            videos.push(if p.is_absolute() { p } else { base.join(p) });
        }
    }
    if videos.is_empty() {
        return Err(BadInput("no videos: give VIDEO arguments or --list FILE".into()).into());
    }
    Ok(videos)
}

/// Outputs are named after the video's file name, so two listed videos may not share one.
fn check_unique_names(videos: &[PathBuf]) -> Result<()> {
    let mut seen = std::collections::HashMap::new();
    for v in videos {
        let name = v
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(first) = seen.insert(name.clone(), v.clone()) {
            return Err(BadInput(format!(
                "{} and {} share the file name {name}: their outputs would collide; process them into different --out folders",
                first.display(),
                v.display()
            ))
            .into());
        }
    }
    Ok(())
}

fn parse_roi(s: &str) -> Result<ethos_video::Roi> {
    let v: Vec<u32> = s
        .split(',')
        .map(|p| p.trim().parse::<u32>())
        .collect::<Result<_, _>>()
        .map_err(|_| BadInput(format!("--roi {s}: expected x,y,w,h in pixels")))?;
    match v[..] {
        [x, y, w, h] if w > 0 && h > 0 => Ok(ethos_video::Roi { x, y, w, h }),
        _ => Err(BadInput(format!("--roi {s}: expected x,y,w,h with w, h > 0")).into()),
    }
}

fn thresholds(spec: &str, classes: &[String], background: &[String]) -> Result<Vec<Option<f32>>> {
    for b in background {
        if !classes.contains(b) {
            return Err(BadInput(format!(
                "--background {b}: not a class ({})",
                classes.join(", ")
            ))
            .into());
        }
    }
    let check = |p: f32, what: &str| -> Result<f32> {
        if (0.0..=1.0).contains(&p) {
            Ok(p)
        } else {
            Err(BadInput(format!("--threshold {what}: must be in [0, 1]")).into())
        }
    };
    let mut out: Vec<Option<f32>> = vec![Some(0.5); classes.len()];
    if let Ok(p) = spec.trim().parse::<f32>() {
        out = vec![Some(check(p, spec)?); classes.len()];
    } else {
        for part in spec.split(',') {
            let (c, p) = part.split_once('=').ok_or_else(|| {
                BadInput(format!("--threshold {part}: expected a number or class=p"))
            })?;
            let i = classes.iter().position(|x| x == c.trim()).ok_or_else(|| {
                BadInput(format!(
                    "--threshold {part}: `{c}` is not a class ({})",
                    classes.join(", ")
                ))
            })?;
            let p: f32 = p
                .trim()
                .parse()
                .map_err(|_| BadInput(format!("--threshold {part}: `{p}` is not a number")))?;
            out[i] = Some(check(p, part)?);
        }
    }
    for (i, c) in classes.iter().enumerate() {
        if background.contains(c) {
            out[i] = None;
        }
    }
    Ok(out)
}

/// Identifies the outputs: checkpoint bytes' identity and every setting that changes them.
fn settings_hash(
    ckpt: &Path,
    spec: &WindowSpec,
    merge: &MergeRule,
    classes: &[String],
    smooth_frames: usize,
) -> Result<String> {
    let meta =
        std::fs::metadata(ckpt).with_context(|| format!("--checkpoint {}", ckpt.display()))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos());
    let mut h = Sha256::new();
    h.update(format!(
        "{}|{}|{:?}",
        std::path::absolute(ckpt)?.display(),
        meta.len(),
        mtime
    ));
    h.update(serde_json::to_string(spec)?);
    h.update(format!(
        "{:?}|{}|{}|{:?}|{smooth_frames}",
        merge.thresholds, merge.min_duration_s, merge.max_gap_s, classes
    ));
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_forms() {
        let classes = vec!["ear".to_string(), "tail".to_string(), "none".to_string()];
        assert_eq!(
            thresholds("0.7", &classes, &[]).unwrap(),
            vec![Some(0.7); 3]
        );
        assert_eq!(
            thresholds("tail=0.3", &classes, &["none".to_string()]).unwrap(),
            vec![Some(0.5), Some(0.3), None]
        );
        assert!(thresholds("nose=0.3", &classes, &[]).is_err());
        assert!(thresholds("1.5", &classes, &[]).is_err());
        assert!(thresholds("0.5", &classes, &["nose".to_string()]).is_err());
    }

    #[test]
    fn roi_parsing() {
        assert_eq!(
            parse_roi("1,2,3,4").unwrap(),
            ethos_video::Roi {
                x: 1,
                y: 2,
                w: 3,
                h: 4
            }
        );
        assert!(parse_roi("1,2,3").is_err());
        assert!(parse_roi("1,2,0,4").is_err());
    }
}
