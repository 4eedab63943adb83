//! Long-video inference: decode each video once, sequentially, into sliding windows, run the model
//! on batches of windows while the next frames decode, and write per-window probabilities and merged
//! behaviour bouts.
//!
//! **Windows.** A window of `window_s` seconds starting at `k * stride` sees the `num_frames` frames
//! the training sampler would take from an event of that length: centred, at `fps`
//! (`ethos_video::ClipRequest` convention), so `window_s` must be at least `num_frames / fps`. The
//! stride is rounded to whole frames at `fps`, which puts the frames of every window on one grid: the
//! video is decoded once at `fps` starting at the first window's first frame time, every decoded
//! frame is resized (short side `short_side`, ROI first) and centre-cropped to the model input once,
//! and a window is `num_frames` consecutive grid frames. The last window ends at or before the end
//! of the video.
//!
//! **Memory** stays bounded for any video length: at most `max(num_frames, stride)` uint8 frames at
//! the model's input size in the ring, and two prepared batches in flight between the decode thread
//! and the model (`2 * batch * 3 * num_frames * size^2 * 4` bytes); per-window probabilities (a few
//! floats per window, ~86,400 rows for 24 h at a 1 s stride) are kept until the video's CSVs are written.
//!
//! **Outputs** per video, each written to a temporary name and renamed: `NAME.windows.csv`
//! (`start_s,end_s,prob_<class>...`), `NAME.events.csv` (events-CSV columns plus `score`), for
//! per-frame heads (FERAL) `NAME.frames.csv` (`frame,time_s,prob_<class>...`: each frame the mean
//! over the windows covering it, see [`FrameEnsemble`]), then
//! `NAME.done.json` (what produced them). A rerun skips a video whose `done.json` matches the same
//! checkpoint and settings, so a run killed at any moment redoes at most the video it was on.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::Instant;

use ethos_data::transforms::{ClipTransform, Layout, Resizer, TransformParams};
use ethos_video::{Clip, Decoder, FrameReader, ReaderOptions, Resize, Roi};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use ethos_eval::timeline::{Bout, MergeRule, WindowProbs, merge_windows};

/// Errors of long-video inference.
#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    /// Bad settings or input list (exit code 2).
    #[error("{0}")]
    BadInput(String),
    /// Decoding one video failed.
    #[error(transparent)]
    Video(#[from] ethos_video::VideoError),
    /// Writing outputs failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The model failed (shape mismatch, device error).
    #[error("model: {0}")]
    Model(String),
}

impl ethos_core::Classify for PredictError {
    /// True for errors the user's input caused.
    fn kind(&self) -> ethos_core::ErrorKind {
        let bad = {
            match self {
                PredictError::BadInput(_) => true,
                PredictError::Video(v) => v.is_bad_input(),
                _ => false,
            }
        };
        if bad {
            ethos_core::ErrorKind::BadInput
        } else {
            ethos_core::ErrorKind::Internal
        }
    }
}

/// How windows are cut and turned into model input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowSpec {
    /// Sampling rate of the model's frames (data.fps).
    pub fps: f64,
    /// Frames per window (data.num_frames).
    pub num_frames: usize,
    /// Window length, seconds (>= num_frames / fps).
    pub window_s: f64,
    /// Stride between window starts, seconds (rounded to whole frames at `fps`).
    pub stride_s: f64,
    /// Short side frames are scaled to before the centre crop (data.cache_short_side).
    pub short_side: u32,
    /// Model input side (data.input_size).
    pub input_size: usize,
    /// Normalisation mean per RGB channel.
    pub mean: [f32; 3],
    /// Normalisation std per RGB channel.
    pub std: [f32; 3],
    /// Optional crop in source pixels, applied before scaling.
    pub roi: Option<Roi>,
}

impl WindowSpec {
    /// Stride in frames at `fps` (at least 1).
    pub fn stride_frames(&self) -> usize {
        ((self.stride_s * self.fps).round() as usize).max(1)
    }

    /// Time of the first frame of window 0, seconds.
    pub fn first_frame_time(&self) -> f64 {
        0.5 * self.window_s - 0.5 * (self.num_frames as f64 - 1.0) / self.fps
    }

    /// Checks the settings, naming the offending value.
    pub fn validate(&self) -> Result<(), PredictError> {
        let bad = |m: String| Err(PredictError::BadInput(m));
        if !(self.fps.is_finite() && self.fps > 0.0) {
            return bad(format!("fps {} must be positive", self.fps));
        }
        if self.num_frames == 0 {
            return bad("num_frames must be at least 1".into());
        }
        let span = self.num_frames as f64 / self.fps;
        if !(self.window_s.is_finite() && self.window_s + 1e-9 >= span) {
            return bad(format!(
                "--window {} s is shorter than the model's {} frames at {} fps ({span:.3} s)",
                self.window_s, self.num_frames, self.fps
            ));
        }
        if !(self.stride_s.is_finite() && self.stride_s > 0.0) {
            return bad(format!("--stride {} s must be positive", self.stride_s));
        }
        Ok(())
    }
}

/// The `predict:` section of a run configuration: settings of long-video inference that belong to
/// the recording setup rather than to a command line.
///
/// A video's camera is its `camera` value in the events manifest (`data.events`) when the video is
/// listed there, else the part of its file name before the first `camera_separator` (`cam0` for
/// `cam0_pen1.mp4`, as `ethos synth` names videos). A camera without an entry in `camera_rois` is
/// processed uncropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PredictConfig {
    /// Crop per camera name: `[x, y, w, h]` in source pixels, applied before scaling.
    pub camera_rois: BTreeMap<String, [u32; 4]>,
    /// Separator ending the camera name in a video's file name (non-empty).
    pub camera_separator: String,
}

impl Default for PredictConfig {
    fn default() -> Self {
        Self {
            camera_rois: BTreeMap::new(),
            camera_separator: "_".into(),
        }
    }
}

impl PredictConfig {
    /// Checks every ROI has a positive size and the separator is non-empty, naming the key.
    pub fn validate(&self) -> Result<(), PredictError> {
        for (camera, r) in &self.camera_rois {
            if r[2] == 0 || r[3] == 0 {
                return Err(PredictError::BadInput(format!(
                    "predict.camera_rois.{camera} = {r:?}: expected [x, y, w, h] with w, h > 0"
                )));
            }
        }
        if self.camera_separator.is_empty() {
            return Err(PredictError::BadInput(
                "predict.camera_separator must not be empty".into(),
            ));
        }
        Ok(())
    }

    /// The ROI configured for `camera`, if any.
    pub fn roi_of(&self, camera: &str) -> Option<Roi> {
        self.camera_rois
            .get(camera)
            .map(|&[x, y, w, h]| Roi { x, y, w, h })
    }

    /// The camera named by `video`'s file name: the stem up to the first `camera_separator` (the
    /// whole stem when there is none).
    pub fn camera_from_file_name(&self, video: &Path) -> String {
        let stem = video
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        match stem.split_once(self.camera_separator.as_str()) {
            Some((camera, _)) => camera.to_string(),
            None => stem,
        }
    }
}

/// Everything `predict_video` needs besides the video.
pub struct Predictor<'a> {
    /// The model, in eval mode on `device`.
    pub model: &'a dyn ethos_models::VideoModel,
    /// Device of the model.
    pub device: Device,
    /// Window settings.
    pub spec: WindowSpec,
    /// Class names, in the model's output order.
    pub classes: Vec<String>,
    /// Windows per forward pass.
    pub batch_size: usize,
    /// Decoder threads.
    pub decoder_threads: usize,
    /// Which decoder reads the videos (`data.decoder`).
    pub decoder: Decoder,
    /// How windows become bouts.
    pub merge: MergeRule,
    /// Centred moving average over this many frames of the per-frame probabilities of a per-frame
    /// head (`NAME.frames.csv`); 0 or 1 = none.
    pub smooth_frames: usize,
}

/// What one video took and gave.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VideoSummary {
    /// The video as listed.
    pub video: String,
    /// `ok`, `skipped` (outputs complete from an earlier run) or `failed`.
    pub status: String,
    /// The error, for failed videos.
    pub error: Option<String>,
    /// Seconds of video covered by decoding.
    pub video_seconds: f64,
    /// Windows scored.
    pub windows: usize,
    /// Bouts per class name.
    pub events: BTreeMap<String, usize>,
    /// Wall seconds spent.
    pub wall_s: f64,
    /// Seconds the decode thread spent decoding and preparing windows (not counting time it waited
    /// for the model to take a batch).
    pub decode_s: f64,
    /// Seconds spent in the model (including host/device transfer).
    pub model_s: f64,
    /// The video's camera (from the events manifest or its file name), when a camera ROI was looked up.
    pub camera: Option<String>,
    /// The crop applied before scaling, source pixels (`--roi`, else the camera's configured ROI).
    pub roi: Option<Roi>,
}

/// The marker written after a video's outputs: identifies what produced them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoneMarker {
    /// Hash of checkpoint identity and every setting that changes the outputs.
    pub settings_hash: String,
    /// The summary of the run that wrote the outputs.
    pub windows: usize,
    /// Whether `NAME.frames.csv` was written (per-frame heads).
    #[serde(default)]
    pub frames: bool,
    /// What the run that wrote the outputs reported for this video.
    #[serde(default)]
    pub summary: Option<VideoSummary>,
}

/// Output paths of one video in `out_dir`.
pub struct VideoOutputs {
    /// `NAME.windows.csv`.
    pub windows: PathBuf,
    /// `NAME.events.csv`.
    pub events: PathBuf,
    /// `NAME.frames.csv` (per-frame heads only).
    pub frames: PathBuf,
    /// `NAME.done.json`.
    pub done: PathBuf,
}

/// The output names of `video`: its file name with the extension, in `out_dir`.
pub fn outputs_for(out_dir: &Path, video: &Path) -> VideoOutputs {
    let name = video
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "video".into());
    VideoOutputs {
        windows: out_dir.join(format!("{name}.windows.csv")),
        events: out_dir.join(format!("{name}.events.csv")),
        frames: out_dir.join(format!("{name}.frames.csv")),
        done: out_dir.join(format!("{name}.done.json")),
    }
}

/// Task `index` of `count`: the videos at list positions `index, index + count, ...`, so N tasks
/// together cover the list exactly once.
pub fn shard<T: Clone>(list: &[T], index: usize, count: usize) -> Vec<T> {
    list.iter()
        .skip(index)
        .step_by(count.max(1))
        .cloned()
        .collect()
}

/// The summary stored with a video's outputs when they are complete and were made with
/// `settings_hash` (so a resumed run reports the whole list), else `None`.
pub fn completed(outputs: &VideoOutputs, settings_hash: &str) -> Option<VideoSummary> {
    let text = std::fs::read_to_string(&outputs.done).ok()?;
    let marker = serde_json::from_str::<DoneMarker>(&text).ok()?;
    let complete = marker.settings_hash == settings_hash
        && outputs.windows.is_file()
        && outputs.events.is_file()
        && (!marker.frames || outputs.frames.is_file());
    complete.then(|| {
        marker.summary.unwrap_or_else(|| VideoSummary {
            windows: marker.windows,
            ..Default::default()
        })
    })
}

/// A batch of prepared windows leaving the decode thread.
struct WindowBatch {
    /// Normalised float32 input in the model's layout.
    data: Vec<f32>,
    /// Window indices in the video.
    windows: Vec<usize>,
}

impl Predictor<'_> {
    /// Scores every window of `video` and writes its outputs to `outputs` (atomically), the done
    /// marker last.
    pub fn predict_video(
        &self,
        video: &Path,
        video_name: &str,
        outputs: &VideoOutputs,
        settings_hash: &str,
    ) -> Result<VideoSummary, PredictError> {
        self.spec.validate()?;
        let t0 = Instant::now();
        let spec = self.spec.clone();
        let layout = self.model.input_layout();
        let batch_size = self.batch_size.max(1);
        let threads = self.decoder_threads.max(1);
        let (tx, rx) = crossbeam_channel::bounded::<Result<WindowBatch, PredictError>>(2);
        let video_path = video.to_path_buf();
        let decoder = self.decoder;
        let decode = std::thread::spawn(move || -> (f64, f64) {
            let t = Instant::now();
            let (covered, blocked_s) = decode_windows(
                &video_path,
                &spec,
                layout,
                batch_size,
                threads,
                decoder,
                &tx,
            );
            // Time spent waiting for the model to take a batch is not decoding.
            ((t.elapsed().as_secs_f64() - blocked_s).max(0.0), covered)
        });

        let n = self.spec.num_frames;
        let size = self.spec.input_size;
        let mut probs: Vec<(usize, Vec<f32>)> = Vec::new();
        let mut per_frame = FrameEnsemble::new(self.classes.len());
        let mut model_s = 0.0;
        let mut failure = None;
        for msg in rx.iter() {
            let batch = match msg {
                Ok(b) => b,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            let tm = Instant::now();
            let b = batch.windows.len();
            let shape = layout.shape(b, n, size, size).map(|d| d as i64);
            let out = tch::no_grad(|| {
                let x = Tensor::from_slice(&batch.data)
                    .reshape(shape)
                    .to_device(self.device);
                let logits = self.model.forward_t(&x, false);
                // Per-frame heads give (B, T', C): a window's probability is their mean.
                let p = logits
                    .to_kind(Kind::Float)
                    .softmax(-1, Kind::Float)
                    .to_device(Device::Cpu)
                    .contiguous();
                // Per-frame heads give (B, T', C): a window's probability is their mean, and the
                // frames go on to the per-frame ensemble.
                if p.dim() == 3 {
                    (p.mean_dim(1, false, Kind::Float), Some(p))
                } else {
                    (p, None)
                }
            });
            let (out, frames) = out;
            let c = self.classes.len();
            if out.size() != [b as i64, c as i64] {
                failure = Some(PredictError::Model(format!(
                    "model output {:?} does not match {b} windows x {c} classes",
                    out.size()
                )));
                break;
            }
            let flat: Vec<f32> = Vec::<f32>::try_from(out.view(-1))
                .map_err(|e| PredictError::Model(e.to_string()))?;
            for (j, w) in batch.windows.iter().enumerate() {
                probs.push((*w, flat[j * c..(j + 1) * c].to_vec()));
            }
            if let Some(f) = frames {
                // One prediction per window frame (FERAL: one query per frame of the chunk).
                let t = f.size()[1] as usize;
                if t != n {
                    failure = Some(PredictError::Model(format!(
                        "per-frame output {:?} has {t} frames per window, the window has {n}",
                        f.size()
                    )));
                    break;
                }
                let fl: Vec<f32> = Vec::<f32>::try_from(f.view(-1))
                    .map_err(|e| PredictError::Model(e.to_string()))?;
                let stride_frames = self.spec.stride_frames();
                for (j, w) in batch.windows.iter().enumerate() {
                    per_frame.add(w * stride_frames, &fl[j * t * c..(j + 1) * t * c]);
                }
            }
            model_s += tm.elapsed().as_secs_f64();
        }
        drop(rx);
        let (decode_s, covered) = decode
            .join()
            .map_err(|_| PredictError::Model("decode thread panicked".into()))?;
        if let Some(e) = failure {
            return Err(e);
        }

        if probs.is_empty() {
            // A file that opens but yields no frame (truncated, empty stream) has no windows:
            // that is a failure, not an empty timeline.
            return Err(PredictError::BadInput(format!(
                "{}: no frame could be decoded (a video shorter than one window, or a truncated file)",
                video.display()
            )));
        }
        let stride = self.spec.stride_frames() as f64 / self.spec.fps;
        let windows: Vec<WindowProbs> = probs
            .into_iter()
            .map(|(k, p)| WindowProbs {
                start_s: k as f64 * stride,
                end_s: k as f64 * stride + self.spec.window_s,
                probs: p,
            })
            .collect();
        let bouts = merge_windows(video_name, &windows, &self.merge);
        write_windows_csv(&outputs.windows, &windows, &self.classes)?;
        write_events_csv(&outputs.events, &bouts, &self.classes)?;
        let has_frames = !per_frame.is_empty();
        if has_frames {
            let rows = per_frame.finish(self.smooth_frames);
            write_frames_csv(
                &outputs.frames,
                &rows,
                self.spec.first_frame_time(),
                self.spec.fps,
                &self.classes,
            )?;
        }
        let mut events = BTreeMap::new();
        for c in &self.classes {
            events.insert(c.clone(), 0);
        }
        for b in &bouts {
            *events
                .entry(self.classes[b.class_index].clone())
                .or_default() += 1;
        }
        let summary = VideoSummary {
            video: video_name.to_string(),
            status: "ok".into(),
            error: None,
            video_seconds: covered,
            windows: windows.len(),
            events,
            wall_s: t0.elapsed().as_secs_f64(),
            decode_s,
            model_s,
            camera: None,
            roi: self.spec.roi,
        };
        let marker = DoneMarker {
            settings_hash: settings_hash.to_string(),
            windows: windows.len(),
            frames: has_frames,
            summary: Some(summary.clone()),
        };
        let json = serde_json::to_string_pretty(&marker).unwrap_or_default();
        ethos_core::fs::write_bytes_atomic(&outputs.done, json.as_bytes()).map_err(|source| {
            PredictError::Io {
                path: outputs.done.clone(),
                source,
            }
        })?;
        Ok(summary)
    }
}

/// The decode side: reads the video once at the window grid, prepares each frame once, and sends
/// batches of normalised windows. Returns the seconds of video covered and the seconds spent
/// blocked on a full channel (waiting for the model).
fn decode_windows(
    video: &Path,
    spec: &WindowSpec,
    layout: Layout,
    batch_size: usize,
    threads: usize,
    decoder: Decoder,
    tx: &crossbeam_channel::Sender<Result<WindowBatch, PredictError>>,
) -> (f64, f64) {
    let mut blocked_s = 0.0;
    let mut send = |msg: Result<WindowBatch, PredictError>| {
        let t = Instant::now();
        let sent = tx.send(msg).is_ok();
        blocked_s += t.elapsed().as_secs_f64();
        sent
    };
    let opts = ReaderOptions {
        fps: Some(spec.fps),
        start_s: spec.first_frame_time().max(0.0),
        end_s: None,
        roi: spec.roi,
        resize: Resize::ShortSide(spec.short_side),
        threads,
        decoder,
    };
    let mut reader = match FrameReader::open(video, &opts) {
        Ok(r) => r,
        Err(e) => {
            send(Err(e.into()));
            return (0.0, blocked_s);
        }
    };
    let transform = ClipTransform::eval(spec.input_size, spec.mean, spec.std);
    let eval_params = TransformParams {
        crop: None,
        flip: false,
        augment: None,
    };
    let mut resizer = Resizer::new();
    let n = spec.num_frames;
    let size = spec.input_size;
    let stride = spec.stride_frames();
    let window_len = 3 * n * size * size;
    let (h, w) = (reader.height() as usize, reader.width() as usize);
    // Grid frames from `ring_start` on, prepared to the model input (uint8).
    let mut ring: VecDeque<Vec<u8>> = VecDeque::with_capacity(n.max(stride) + 1);
    let mut ring_start = 0usize;
    let mut next_window = 0usize;
    let mut grid = 0usize;
    let mut last_t = 0.0;
    let mut batch = WindowBatch {
        data: Vec::with_capacity(batch_size * window_len),
        windows: Vec::new(),
    };
    let mut window_clip = Clip::zeros(n, size, size);
    loop {
        let frame = match reader.next_frame() {
            Ok(Some((t, rgb))) => {
                last_t = t;
                rgb
            }
            Ok(None) => break,
            Err(e) => {
                send(Err(e.into()));
                return (last_t, blocked_s);
            }
        };
        // Frames before the next window's first frame are never needed (stride > num_frames).
        let first_needed = next_window * stride;
        if grid < first_needed {
            ring.clear();
            grid += 1;
            ring_start = grid;
            continue;
        }
        let one = Clip {
            frames: 1,
            height: h,
            width: w,
            data: frame,
        };
        ring.push_back(transform.apply(&mut resizer, &one, &eval_params).data);
        grid += 1;
        while ring_start < first_needed {
            ring.pop_front();
            ring_start += 1;
        }
        if ring_start == next_window * stride && ring.len() >= n {
            for (i, f) in ring.iter().take(n).enumerate() {
                window_clip.frame_mut(i).copy_from_slice(f);
            }
            let at = batch.data.len();
            batch.data.resize(at + window_len, 0.0);
            transform.normalize_into(&window_clip, layout, &mut batch.data[at..]);
            batch.windows.push(next_window);
            next_window += 1;
            if batch.windows.len() == batch_size {
                let full = std::mem::replace(
                    &mut batch,
                    WindowBatch {
                        data: Vec::with_capacity(batch_size * window_len),
                        windows: Vec::new(),
                    },
                );
                if !send(Ok(full)) {
                    return (last_t, blocked_s);
                }
            }
        }
    }
    if !batch.windows.is_empty() {
        send(Ok(batch));
    }
    (last_t + 1.0 / spec.fps, blocked_s)
}

/// Writes a CSV atomically through the `csv` crate (any video path or class name round-trips).
fn write_csv_atomic(
    path: &Path,
    header: &[String],
    rows: impl Iterator<Item = Vec<String>>,
) -> Result<(), PredictError> {
    ethos_core::fs::write_atomic(path, |f| {
        let mut w = csv::Writer::from_writer(f);
        w.write_record(header).map_err(std::io::Error::other)?;
        for r in rows {
            w.write_record(&r).map_err(std::io::Error::other)?;
        }
        w.flush()
    })
    .map_err(|source| PredictError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn prob_header(first: &[&str], classes: &[String]) -> Vec<String> {
    first
        .iter()
        .map(|s| s.to_string())
        .chain(classes.iter().map(|c| format!("prob_{c}")))
        .collect()
}

fn write_windows_csv(
    path: &Path,
    windows: &[WindowProbs],
    classes: &[String],
) -> Result<(), PredictError> {
    let rows = windows.iter().map(|w| {
        let mut r = vec![format!("{:.4}", w.start_s), format!("{:.4}", w.end_s)];
        r.extend(w.probs.iter().map(|p| format!("{p:.6}")));
        r
    });
    write_csv_atomic(path, &prob_header(&["start_s", "end_s"], classes), rows)
}

/// Per-frame probabilities of a per-frame head over one video, on the window grid (frame `g` at
/// `first_frame_time + g / fps`): FERAL's ensemble, the mean over every window that covers a frame.
/// Holds `C` sums and a count per grid frame (about 10 MB for 24 h at 15 fps and 2 classes).
#[derive(Debug, Clone, Default)]
pub struct FrameEnsemble {
    classes: usize,
    sums: Vec<f32>,
    counts: Vec<u32>,
}

impl FrameEnsemble {
    /// An empty ensemble over `classes` classes.
    pub fn new(classes: usize) -> Self {
        FrameEnsemble {
            classes,
            sums: Vec::new(),
            counts: Vec::new(),
        }
    }

    /// True before any window was added.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// Adds one window's `(T, C)` row-major probabilities whose first frame is grid frame `first`.
    pub fn add(&mut self, first: usize, probs: &[f32]) {
        let c = self.classes.max(1);
        let t = probs.len() / c;
        if self.counts.len() < first + t {
            self.counts.resize(first + t, 0);
            self.sums.resize((first + t) * c, 0.0);
        }
        for j in 0..t {
            self.counts[first + j] += 1;
            for k in 0..c {
                self.sums[(first + j) * c + k] += probs[j * c + k];
            }
        }
    }

    /// Row-major `(F, C)` probabilities, one row per grid frame from 0 to the last covered frame:
    /// the mean over the windows covering it; frames no window covers (a stride longer than the
    /// window) are interpolated linearly between the nearest covered frames; then a centred moving
    /// average over `smooth` frames (shrunk at the ends; 0 or 1 = none).
    pub fn finish(&self, smooth: usize) -> Vec<f32> {
        let c = self.classes.max(1);
        let n = self.counts.len();
        let mut rows = vec![0f32; n * c];
        let mut prev: Option<usize> = None;
        for g in 0..n {
            if self.counts[g] == 0 {
                continue;
            }
            let w = self.counts[g] as f32;
            for k in 0..c {
                rows[g * c + k] = self.sums[g * c + k] / w;
            }
            // Fill the uncovered run since the previous covered frame (window 0 starts at frame 0,
            // and the last frame is covered, so every gap has both ends).
            if let Some(a) = prev.filter(|&a| g > a + 1) {
                for m in a + 1..g {
                    let u = (m - a) as f32 / (g - a) as f32;
                    for k in 0..c {
                        let (x, y) = (rows[a * c + k], rows[g * c + k]);
                        rows[m * c + k] = x + u * (y - x);
                    }
                }
            }
            prev = Some(g);
        }
        if smooth <= 1 || n == 0 {
            return rows;
        }
        let (before, after) = ((smooth - 1) / 2, smooth / 2);
        let mut out = vec![0f32; n * c];
        for g in 0..n {
            let (lo, hi) = (g.saturating_sub(before), (g + after).min(n - 1));
            let w = (hi - lo + 1) as f32;
            for k in 0..c {
                out[g * c + k] = (lo..=hi).map(|m| rows[m * c + k]).sum::<f32>() / w;
            }
        }
        out
    }
}

fn write_frames_csv(
    path: &Path,
    rows: &[f32],
    first_time: f64,
    fps: f64,
    classes: &[String],
) -> Result<(), PredictError> {
    let rows = rows.chunks(classes.len().max(1)).enumerate().map(|(g, r)| {
        let mut row = vec![g.to_string(), format!("{:.4}", first_time + g as f64 / fps)];
        row.extend(r.iter().map(|p| format!("{p:.6}")));
        row
    });
    write_csv_atomic(path, &prob_header(&["frame", "time_s"], classes), rows)
}

/// Writes `NAME.events.csv` (events-CSV columns plus `score`) atomically.
pub fn write_events_csv(
    path: &Path,
    bouts: &[Bout],
    classes: &[String],
) -> Result<(), PredictError> {
    let header: Vec<String> = [
        "event_idx",
        "video",
        "start_s",
        "duration_s",
        "behavior",
        "score",
    ]
    .map(String::from)
    .to_vec();
    let rows = bouts.iter().enumerate().map(|(i, b)| {
        vec![
            (i + 1).to_string(),
            b.video.clone(),
            format!("{:.4}", b.start_s),
            format!("{:.4}", b.duration_s()),
            classes[b.class_index].clone(),
            format!("{:.4}", b.score),
        ]
    });
    write_csv_atomic(path, &header, rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_ensemble_averages_overlaps_interpolates_gaps_and_smooths() {
        // Two classes; windows of 2 frames. Window A covers frames 0-1, window B frames 1-2, and
        // window C frames 5-6 (frames 3-4 uncovered).
        let mut e = FrameEnsemble::new(2);
        assert!(e.is_empty());
        e.add(0, &[1.0, 0.0, 0.8, 0.2]);
        e.add(1, &[0.4, 0.6, 0.2, 0.8]);
        e.add(5, &[0.8, 0.2, 1.0, 0.0]);
        let flat = e.finish(0);
        let rows: Vec<&[f32]> = flat.chunks(2).collect();
        let want = [
            [1.0, 0.0],
            [0.6, 0.4], // mean of 0.8 and 0.4
            [0.2, 0.8],
            [0.4, 0.6], // a third of the way from frame 2 (0.2) to frame 5 (0.8)
            [0.6, 0.4],
            [0.8, 0.2],
            [1.0, 0.0],
        ];
        assert_eq!(rows.len(), want.len());
        for (r, w) in rows.iter().zip(&want) {
            assert!(
                (r[0] - w[0]).abs() < 1e-6 && (r[1] - w[1]).abs() < 1e-6,
                "{r:?} vs {w:?}"
            );
        }
        // A 3-frame centred moving average; the ends average what exists.
        let sm_flat = e.finish(3);
        let sm: Vec<&[f32]> = sm_flat.chunks(2).collect();
        assert!((sm[0][0] - (1.0 + 0.6) / 2.0).abs() < 1e-6);
        assert!((sm[1][0] - (1.0 + 0.6 + 0.2) / 3.0).abs() < 1e-6);
        assert!((sm[6][0] - (0.8 + 1.0) / 2.0).abs() < 1e-6);
        assert_eq!(e.finish(1), flat);
    }

    #[test]
    fn shards_cover_the_list_exactly_once() {
        let list: Vec<usize> = (0..10).collect();
        let mut all: Vec<usize> = (0..3).flat_map(|i| shard(&list, i, 3)).collect();
        all.sort_unstable();
        assert_eq!(all, list);
        assert_eq!(shard(&list, 1, 3), vec![1, 4, 7]);
    }

    #[test]
    fn camera_names_and_rois_from_the_predict_section() {
        let mut cfg = PredictConfig::default();
        cfg.camera_rois.insert("cam0".into(), [10, 20, 300, 200]);
        cfg.validate().unwrap();
        assert_eq!(
            cfg.camera_from_file_name(Path::new("/v/cam0_pen1.mp4")),
            "cam0"
        );
        assert_eq!(cfg.camera_from_file_name(Path::new("barn3.mkv")), "barn3");
        assert_eq!(
            cfg.roi_of("cam0"),
            Some(Roi {
                x: 10,
                y: 20,
                w: 300,
                h: 200
            })
        );
        assert_eq!(cfg.roi_of("cam1"), None);
        cfg.camera_separator = "-".into();
        assert_eq!(cfg.camera_from_file_name(Path::new("a-b_c.mp4")), "a");
        cfg.camera_rois.insert("cam9".into(), [0, 0, 0, 5]);
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("predict.camera_rois.cam9"), "{e}");
        cfg.camera_rois.remove("cam9");
        cfg.camera_separator.clear();
        assert!(cfg.validate().is_err());
    }

    #[test]
    fn window_grid_matches_the_training_sampler() {
        let spec = WindowSpec {
            fps: 12.0,
            num_frames: 16,
            window_s: 2.0,
            stride_s: 1.0,
            short_side: 64,
            input_size: 56,
            mean: [0.45; 3],
            std: [0.225; 3],
            roi: None,
        };
        spec.validate().unwrap();
        assert_eq!(spec.stride_frames(), 12);
        // Window k's frames are grid frames k*12 .. k*12+16, at first_frame_time + j/12; the training
        // sampler's times for an event [k, k+2) are centred: c + (i - 7.5)/12 with c = k + 1.
        for k in 0..3 {
            let req = ethos_video::ClipRequest {
                start_s: k as f64,
                duration_s: 2.0,
                fps: 12.0,
                num_frames: 16,
                roi: None,
                resize: ethos_video::Resize::None,
            };
            for (i, t) in req.sample_times().iter().enumerate() {
                let grid = spec.first_frame_time() + (k * 12 + i) as f64 / 12.0;
                assert!(
                    (grid - t).abs() < 1e-9,
                    "window {k} frame {i}: {grid} vs {t}"
                );
            }
        }
        let short = WindowSpec {
            window_s: 1.0,
            ..spec
        };
        assert!(short.validate().is_err());
    }
}
