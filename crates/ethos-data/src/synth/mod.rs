//! The synthetic barn dataset: procedural pen footage from several cameras with labelled calf
//! cross-sucking events (`ear` vs `tail`) and a known ground truth.
//!
//! Everything derives from one seed through ChaCha streams keyed by (seed, camera, video), and
//! frames are a pure function of the simulated poses, so a dataset is identical for a seed no
//! matter how many threads render it. The last camera is held out as the out-of-distribution
//! test split (`test_ood`); the others are split into `train`/`val` by event, stratified by class.
//!
//! Optional extras: background events of class `none` (windows with no contact in view, cropped
//! by the same rule as the contact regions, see [`background`]) and a long close-up test video
//! with known bouts from held-out pens (see [`closeup`]).

mod background;
mod closeup;
mod raster;
mod render;
mod scene;

use std::path::{Path, PathBuf};

use ethos_video::{ClipWriter, Codec, Roi, WriterOptions};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::manifest::{Event, write_events_csv};
pub use background::{Anchor, Region};
pub use closeup::{CLOSEUP_FILE, CLOSEUP_SEGMENTS, CLOSEUP_TRUTH, LongVideoPlan, Segment};
use ethos_core::fs::write_bytes_atomic as write_atomic;
pub use render::{Background, CameraLook};
pub use scene::{CalfLook, Camera, Part, Pose, SimEvent, V2, VideoSim};

/// Labelled (behaviour) class names of the synthetic dataset, in class-index order.
pub const CLASSES: [&str; 2] = ["ear", "tail"];

/// Name of the background class (index 2) of a dataset with background events.
pub const BACKGROUND_CLASS: &str = "none";

/// The class list of a dataset made with `spec`: `ear, tail`, plus `none` when it has background
/// events.
pub fn class_names(spec: &SynthSpec) -> Vec<&'static str> {
    let mut c = CLASSES.to_vec();
    if spec.background_events > 0 {
        c.push(BACKGROUND_CLASS);
    }
    c
}

/// Settings of a synthetic dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthSpec {
    /// Seed of every random choice.
    pub seed: u64,
    /// Number of cameras (the last is the out-of-distribution test camera when there are >= 2).
    pub cameras: usize,
    /// Source videos (pens) per camera.
    pub videos_per_camera: usize,
    /// Total labelled events.
    pub events: usize,
    /// Frame width in pixels (even).
    pub width: u32,
    /// Frame height in pixels (even).
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Video codec.
    pub codec: Codec,
    /// Majority:minority ratio (`ear`:`tail`), e.g. 6.85.
    pub imbalance: f64,
    /// Minimum minutes of video per camera (videos run longer when the events need it).
    pub minutes: f64,
    /// Share of the train/val cameras' events that go to `val`.
    pub val_fraction: f64,
    /// Background events (class `none`, no contact in view) added to the labelled ones; 0 = none.
    pub background_events: usize,
    /// Length in seconds of the long close-up test video (`long/closeup.mp4`); 0 = not written.
    pub long_video_s: f64,
    /// Side in pixels of the long close-up video's square frames (even).
    pub long_video_size: u32,
}

impl Default for SynthSpec {
    fn default() -> Self {
        Self {
            seed: 0,
            cameras: 3,
            videos_per_camera: 2,
            events: 120,
            width: 640,
            height: 360,
            fps: 15,
            codec: Codec::H264,
            imbalance: 6.85,
            minutes: 3.0,
            val_fraction: 0.2,
            background_events: 0,
            long_video_s: 0.0,
            long_video_size: 128,
        }
    }
}

/// Errors of the synthetic dataset generator.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// A setting that cannot be used (names the option and value).
    #[error("synth option {option} = {value}: {reason}")]
    BadSpec {
        /// Option name, e.g. `--resolution`.
        option: &'static str,
        /// The value given.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// Writing an output file failed.
    #[error("{path}: cannot write: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Encoding a video failed.
    #[error(transparent)]
    Video(#[from] ethos_video::VideoError),
    /// The simulation could not give what the plan needs (e.g. a contact-free stretch).
    #[error("synth: {0}")]
    Plan(String),
}

impl ethos_core::Classify for SynthError {
    /// True for bad settings (exit code 2); write and encode failures are internal.
    fn kind(&self) -> ethos_core::ErrorKind {
        let bad = { matches!(self, SynthError::BadSpec { .. }) };
        if bad {
            ethos_core::ErrorKind::BadInput
        } else {
            ethos_core::ErrorKind::Internal
        }
    }
}

impl SynthSpec {
    /// Checks every setting; the error names the option and value.
    pub fn validate(&self) -> Result<(), SynthError> {
        let bad = |option, value: String, reason: &str| {
            Err(SynthError::BadSpec {
                option,
                value,
                reason: reason.into(),
            })
        };
        if self.cameras == 0 || self.cameras > 64 {
            return bad("--cameras", self.cameras.to_string(), "must be in 1..=64");
        }
        if self.videos_per_camera == 0 || self.videos_per_camera > 16 {
            return bad(
                "--videos-per-camera",
                self.videos_per_camera.to_string(),
                "must be in 1..=16",
            );
        }
        if self.events == 0 || self.events > 100_000 {
            return bad("--events", self.events.to_string(), "must be in 1..=100000");
        }
        if self.width < 32
            || self.height < 32
            || !self.width.is_multiple_of(2)
            || !self.height.is_multiple_of(2)
            || self.width > 7680
            || self.height > 4320
        {
            return bad(
                "--resolution",
                format!("{}x{}", self.width, self.height),
                "needs even sizes from 32x32 to 7680x4320",
            );
        }
        if self.fps == 0 || self.fps > 120 {
            return bad("--fps", self.fps.to_string(), "must be in 1..=120");
        }
        if !(self.imbalance.is_finite() && self.imbalance > 0.0) {
            return bad(
                "--imbalance",
                self.imbalance.to_string(),
                "must be a positive ratio (majority:minority)",
            );
        }
        if !(self.minutes.is_finite() && self.minutes > 0.0 && self.minutes <= 600.0) {
            return bad("--minutes", self.minutes.to_string(), "must be in (0, 600]");
        }
        if !(0.0..1.0).contains(&self.val_fraction) {
            return bad(
                "val_fraction",
                self.val_fraction.to_string(),
                "must be in [0, 1)",
            );
        }
        if self.background_events > 100_000 {
            return bad(
                "--background-events",
                self.background_events.to_string(),
                "must be in 0..=100000",
            );
        }
        if !(self.long_video_s == 0.0
            || (self.long_video_s.is_finite() && (10.0..=86_400.0).contains(&self.long_video_s)))
        {
            return bad(
                "--long-video",
                self.long_video_s.to_string(),
                "must be 0 (none) or in [10, 86400] seconds",
            );
        }
        if self.long_video_size < 32
            || self.long_video_size > 2048
            || !self.long_video_size.is_multiple_of(2)
        {
            return bad(
                "--long-video-size",
                self.long_video_size.to_string(),
                "needs an even size from 32 to 2048",
            );
        }
        Ok(())
    }

    /// Number of `tail` (minority) events: `round(events / (1 + imbalance))`.
    pub fn minority_count(&self) -> usize {
        ((self.events as f64 / (1.0 + self.imbalance)).round() as usize).min(self.events)
    }
}

/// A ChaCha stream for (seed, a, b, purpose).
fn stream(seed: u64, a: u64, b: u64, purpose: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[0..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&a.to_le_bytes());
    key[16..24].copy_from_slice(&b.to_le_bytes());
    key[24..32].copy_from_slice(&purpose.to_le_bytes());
    ChaCha8Rng::from_seed(key)
}

/// One simulated source video: its camera, pen, calves and the poses of every frame.
pub struct VideoPlan {
    /// Camera index.
    pub camera: usize,
    /// Video index within the camera.
    pub index: usize,
    /// File name under `videos/`.
    pub file_name: String,
    /// Group (pen) name.
    pub group: String,
    /// The camera geometry for this pen.
    pub cam: Camera,
    /// The camera's look.
    pub look: CameraLook,
    /// Pen half extents in metres.
    pub half: V2,
    /// The calves.
    pub calves: Vec<CalfLook>,
    /// Poses and events.
    pub sim: VideoSim,
    bg_seed: u64,
}

impl VideoPlan {
    /// Number of frames of the video.
    pub fn frame_count(&self) -> usize {
        self.sim.frames.len()
    }

    /// The static background (computed once per video).
    pub fn background(&self) -> Background {
        render::background(&self.cam, &self.look, self.half, self.bg_seed)
    }

    /// Renders frame `i` into `out` (`H * W * 3` RGB bytes).
    pub fn render_frame(&self, bg: &Background, i: usize, out: &mut [u8]) {
        render::render_frame(bg, &self.cam, &self.calves, &self.sim.frames[i], out);
    }

    /// The annotator's box of an event: the contact region, a square of about 1.5 body lengths
    /// (world metres, projected) around the sucker's mouth, with a little jitter of size and centre.
    /// A box of the pair's whole extent would hold most of a crowded pen at this camera distance,
    /// and the crop would no longer show what the label is about.
    fn event_roi(&self, ev: &SimEvent, rng: &mut ChaCha8Rng) -> Roi {
        let frames = ev.start_frame
            ..ev.end_frame
                .min(self.sim.frames.len())
                .max(ev.start_frame + 1);
        let (mut cx, mut cy, mut n) = (0.0f32, 0.0f32, 0.0f32);
        for f in frames {
            let Some(pose) = self.sim.frames.get(f).map(|p| &p[ev.sucker]) else {
                continue;
            };
            let m = scene::Anatomy::of(pose, self.calves[ev.sucker].size).mouth;
            cx += m.x;
            cy += m.y;
            n += 1.0;
        }
        let centre = if n > 0.0 {
            V2::new(cx / n, cy / n)
        } else {
            V2::default()
        };
        self.annotator_square(centre, self.calves[ev.target].size, rng)
            .2
    }

    /// The annotator's box rule around the world point `centre` for a calf of length factor
    /// `size`: a square of 1.6 body lengths (x 0.9-1.15) whose centre is shifted by up to 12% of
    /// its half side, projected into the frame and clamped to it. Returns the shifted centre and
    /// the half side (world metres) and the box (source pixels).
    fn annotator_square(&self, centre: V2, size: f32, rng: &mut ChaCha8Rng) -> (V2, f32, Roi) {
        let half_side = 0.5 * 1.6 * size * rng.random_range(0.9..1.15);
        let shift = V2::new(
            rng.random_range(-0.12..0.12) * half_side,
            rng.random_range(-0.12..0.12) * half_side,
        );
        let c = centre.plus(shift);
        (c, half_side, self.square_box(c, half_side))
    }

    /// The image box (source pixels, clamped to the frame, at least 2x2) of the world square of
    /// half side `half_side` metres around `c`.
    fn square_box(&self, c: V2, half_side: f32) -> Roi {
        let mut b = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
        for (sx, sy) in [(-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0)] {
            let (u, v) = self
                .cam
                .project(c.plus(V2::new(sx * half_side, sy * half_side)));
            b = (b.0.min(u), b.1.min(v), b.2.max(u), b.3.max(v));
        }
        let (x0, x1, y0, y1) = (b.0, b.2, b.1, b.3);
        let (fw, fh) = (self.cam.width as f32, self.cam.height as f32);
        let x0 = x0.clamp(0.0, fw - 2.0).floor();
        let y0 = y0.clamp(0.0, fh - 2.0).floor();
        let x1 = x1.clamp(x0 + 2.0, fw).ceil();
        let y1 = y1.clamp(y0 + 2.0, fh).ceil();
        Roi {
            x: x0 as u32,
            y: y0 as u32,
            w: (x1 - x0) as u32,
            h: (y1 - y0) as u32,
        }
    }
}

/// A whole planned dataset: videos (with simulated poses), the events and the long video.
pub struct SynthPlan {
    /// The settings.
    pub spec: SynthSpec,
    /// Every source video.
    pub videos: Vec<VideoPlan>,
    /// Every event with its split: the labelled ones numbered from 0 in (camera, video, start)
    /// order, then the background (`none`) events numbered on in the same order, so adding
    /// background events leaves the labelled events' ids unchanged.
    pub events: Vec<Event>,
    /// The long close-up test video, when `spec.long_video_s > 0`.
    pub long: Option<LongVideoPlan>,
}

/// Simulates one pen seen by `camera` with `look`: extents, camera geometry, calves and poses,
/// all drawn from `rng` in a fixed order.
#[allow(clippy::too_many_arguments)]
fn simulate_pen(
    spec: &SynthSpec,
    camera: usize,
    index: usize,
    file_name: String,
    group: String,
    look: CameraLook,
    rng: &mut ChaCha8Rng,
    queue: Vec<Part>,
    min_len_s: f32,
) -> VideoPlan {
    let half = V2::new(rng.random_range(3.0..3.8), rng.random_range(1.9..2.5));
    let cam = Camera::fit(
        spec.width as usize,
        spec.height as usize,
        look.theta,
        look.tilt,
        look.fill,
        half,
    );
    let n_calves = rng.random_range(4..=6);
    let calves: Vec<CalfLook> = (0..n_calves).map(|_| CalfLook::random(rng)).collect();
    let params = scene::SimParams {
        half,
        fps: spec.fps as f32,
        min_len_s,
        queue,
    };
    let sim = scene::simulate(rng, &calves, &params);
    VideoPlan {
        camera,
        index,
        file_name,
        group,
        cam,
        look,
        half,
        calves,
        sim,
        bg_seed: rng.random(),
    }
}

/// Plans a dataset: camera looks, pens, calves, simulation, events, ROIs, background events,
/// splits and the long video. Cheap next to rendering; deterministic for a spec.
pub fn plan(spec: &SynthSpec) -> Result<SynthPlan, SynthError> {
    spec.validate()?;
    let n_videos = spec.cameras * spec.videos_per_camera;
    // Classes dealt round-robin over videos (minority first) so every pen gets its share.
    let n_tail = spec.minority_count();
    let mut queues: Vec<Vec<Part>> = vec![Vec::new(); n_videos];
    let mut deal = stream(spec.seed, 0, 0, 1);
    let first = deal.random_range(0..n_videos);
    for i in 0..spec.events {
        let part = if i < n_tail { Part::Tail } else { Part::Ear };
        queues[(first + i) % n_videos].push(part);
    }
    for q in &mut queues {
        q.shuffle(&mut deal);
    }
    let minutes_per_video = spec.minutes / spec.videos_per_camera as f64;
    let videos: Vec<VideoPlan> = queues
        .into_par_iter()
        .enumerate()
        .map(|(v, queue)| {
            let camera = v / spec.videos_per_camera;
            let index = v % spec.videos_per_camera;
            let look = CameraLook::random(&mut stream(spec.seed, camera as u64, 0, 2));
            let mut rng = stream(spec.seed, camera as u64, index as u64 + 1, 3);
            simulate_pen(
                spec,
                camera,
                index,
                format!("cam{camera}_pen{index}.mp4"),
                format!("pen{}", v + 1),
                look,
                &mut rng,
                queue,
                (minutes_per_video * 60.0) as f32,
            )
        })
        .collect();

    let mut events = Vec::new();
    for video in &videos {
        let mut roi_rng = stream(spec.seed, video.camera as u64, video.index as u64 + 1, 4);
        let mut sims: Vec<&SimEvent> = video.sim.events.iter().collect();
        sims.sort_by_key(|e| (e.start_frame, e.sucker));
        for ev in sims {
            let class_index = match ev.part {
                Part::Ear => 0,
                Part::Tail => 1,
            };
            events.push(Event {
                event_idx: events.len() as u32,
                video: PathBuf::from(&video.file_name),
                start_s: ev.start_frame as f64 / spec.fps as f64,
                duration_s: (ev.end_frame - ev.start_frame) as f64 / spec.fps as f64,
                behavior: CLASSES[class_index].to_string(),
                class_index,
                group: Some(video.group.clone()),
                camera: Some(format!("cam{}", video.camera)),
                split: None,
                roi: Some(video.event_roi(ev, &mut roi_rng)),
                line: events.len() as u64 + 2,
            });
        }
    }
    if events.len() != spec.events {
        tracing::warn!(
            "synth planned {} events but the simulation completed {}",
            spec.events,
            events.len()
        );
    }
    events.extend(background::background_events(spec, &videos, events.len()));
    assign_splits(spec, &mut events);
    let long = closeup::plan_long(spec)?;
    Ok(SynthPlan {
        spec: spec.clone(),
        videos,
        events,
        long,
    })
}

/// Last camera -> `test_ood` (with >= 2 cameras); the rest split into `train`/`val` by event,
/// stratified by class (at least one `val` event per class that has two or more).
fn assign_splits(spec: &SynthSpec, events: &mut [Event]) {
    let ood = (spec.cameras >= 2).then(|| format!("cam{}", spec.cameras - 1));
    let mut rng = stream(spec.seed, 0, 0, 5);
    for class in 0..class_names(spec).len() {
        let mut idx: Vec<usize> = events
            .iter()
            .enumerate()
            .filter(|(_, e)| e.class_index == class && e.camera != ood)
            .map(|(i, _)| i)
            .collect();
        idx.shuffle(&mut rng);
        let mut n_val = (idx.len() as f64 * spec.val_fraction).round() as usize;
        if n_val == 0 && idx.len() >= 2 && spec.val_fraction > 0.0 {
            n_val = 1;
        }
        for (k, &i) in idx.iter().enumerate() {
            events[i].split = Some(if k < n_val { "val" } else { "train" }.to_string());
        }
    }
    for e in events.iter_mut() {
        if e.camera == ood {
            e.split = Some("test_ood".to_string());
        }
    }
}

/// What [`write_dataset`] wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SynthSummary {
    /// Output folder.
    pub out_dir: PathBuf,
    /// Video files written (relative to `out_dir`).
    pub videos: Vec<PathBuf>,
    /// Frames rendered in total.
    pub frames: u64,
    /// Class names, in class-index order.
    pub classes: Vec<String>,
    /// Events per split and class: `(split, [ear, tail(, none)])`.
    pub split_counts: Vec<(String, Vec<usize>)>,
    /// Total events (labelled and background).
    pub events: usize,
    /// The long close-up test video, when one was written.
    pub long_video: Option<closeup::LongVideoSummary>,
    /// Bytes written under `out_dir`.
    pub bytes: u64,
}

/// Writes close-up video number `variant` of `spec` (see [`LongVideoPlan`]; variant 0 is the one
/// [`write_dataset`] writes under `long/`) with its ground truth and segment list into `dir`.
pub fn write_long_video(
    spec: &SynthSpec,
    variant: u64,
    dir: &Path,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<closeup::LongVideoSummary, SynthError> {
    spec.validate()?;
    let plan = closeup::plan_long_variant(spec, variant)?.ok_or_else(|| SynthError::BadSpec {
        option: "--long-video",
        value: spec.long_video_s.to_string(),
        reason: "must be > 0 seconds for a long video".into(),
    })?;
    std::fs::create_dir_all(dir).map_err(|source| SynthError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let opts = WriterOptions {
        codec: spec.codec,
        fps: spec.fps,
        gop: spec.fps * 2,
        quality: None,
        b_frames: false,
    };
    plan.write(dir, &opts, progress)
}

/// Total frames a plan renders (the long video's included).
pub fn total_frames(plan: &SynthPlan) -> u64 {
    plan.videos
        .iter()
        .map(|v| v.frame_count() as u64)
        .sum::<u64>()
        + plan.long.as_ref().map_or(0, |l| l.frame_count() as u64)
}

/// Renders and encodes every video of `plan` (videos in parallel) and writes `events.csv`,
/// `splits/{train,val,test_ood}.csv` and `config.yaml` under `out_dir`, and the long close-up
/// video with its ground truth under `out_dir/long/` when planned. `progress` is called with the
/// number of frames just encoded.
pub fn write_dataset(
    plan: &SynthPlan,
    out_dir: &Path,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<SynthSummary, SynthError> {
    let spec = &plan.spec;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SynthError::Io { path, source }
    };
    let videos_dir = out_dir.join("videos");
    let splits_dir = out_dir.join("splits");
    std::fs::create_dir_all(&videos_dir).map_err(io(&videos_dir))?;
    std::fs::create_dir_all(&splits_dir).map_err(io(&splits_dir))?;
    let opts = WriterOptions {
        codec: spec.codec,
        fps: spec.fps,
        gop: spec.fps * 2,
        quality: None,
        b_frames: false,
    };
    let long_dir = out_dir.join("long");
    let write_long = || -> Result<Option<closeup::LongVideoSummary>, SynthError> {
        match &plan.long {
            Some(long) => {
                std::fs::create_dir_all(&long_dir).map_err(io(&long_dir))?;
                long.write(&long_dir, &opts, progress).map(Some)
            }
            None => Ok(None),
        }
    };
    let write_pens = || {
        plan.videos
            .par_iter()
            .try_for_each(|video| -> Result<(), SynthError> {
                let path = videos_dir.join(&video.file_name);
                let mut writer = ClipWriter::create(&path, spec.width, spec.height, &opts)?;
                let bg = video.background();
                let mut frame = vec![0u8; spec.width as usize * spec.height as usize * 3];
                let mut pending = 0u64;
                for i in 0..video.frame_count() {
                    video.render_frame(&bg, i, &mut frame);
                    writer.write_frame(&frame)?;
                    pending += 1;
                    if pending == 30 {
                        progress(pending);
                        pending = 0;
                    }
                }
                writer.finish()?;
                progress(pending);
                Ok(())
            })
    };
    // The long video is one sequential encode: it runs beside the pens, not after them.
    let (pens, long_video) = rayon::join(write_pens, write_long);
    pens?;
    let long_video = long_video?;

    let events_path = out_dir.join("events.csv");
    write_events_csv(&events_path, &plan.events).map_err(io(&events_path))?;
    let classes = class_names(spec);
    let mut split_counts = Vec::new();
    for split in ["train", "val", "test_ood"] {
        let subset: Vec<Event> = plan
            .events
            .iter()
            .filter(|e| e.split.as_deref() == Some(split))
            .cloned()
            .collect();
        let path = splits_dir.join(format!("{split}.csv"));
        write_events_csv(&path, &subset).map_err(io(&path))?;
        split_counts.push((
            split.to_string(),
            crate::manifest::class_counts(&subset, classes.len()),
        ));
    }
    let config_path = out_dir.join("config.yaml");
    write_atomic(&config_path, config_yaml(spec).as_bytes()).map_err(io(&config_path))?;
    let summary = SynthSummary {
        out_dir: out_dir.to_path_buf(),
        videos: plan
            .videos
            .iter()
            .map(|v| Path::new("videos").join(&v.file_name))
            .collect(),
        frames: total_frames(plan),
        classes: classes.iter().map(|c| c.to_string()).collect(),
        split_counts,
        events: plan.events.len(),
        long_video,
        bytes: dir_size(out_dir),
    };
    let summary_path = out_dir.join("synth.json");
    let json = serde_json::to_vec_pretty(&serde_json::json!({
        "seed": spec.seed, "cameras": spec.cameras, "videos_per_camera": spec.videos_per_camera,
        "events": spec.events, "width": spec.width, "height": spec.height, "fps": spec.fps,
        "codec": spec.codec.to_string(), "imbalance": spec.imbalance, "minutes": spec.minutes,
        "background_events": spec.background_events, "long_video_s": spec.long_video_s,
        "long_video_size": spec.long_video_size, "classes": classes, "summary": &summary,
    }))
    .map_err(|e| SynthError::Io {
        path: summary_path.clone(),
        source: std::io::Error::other(e),
    })?;
    write_atomic(&summary_path, &json).map_err(io(&summary_path))?;
    Ok(summary)
}

fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

/// The training config written next to a synthetic dataset: the `data` and `augmentation`
/// sections of the config schema (paths relative to the config file) plus model and train hints.
pub fn config_yaml(spec: &SynthSpec) -> String {
    let fps = (spec.fps as f64).min(12.0);
    let classes = class_names(spec).join(", ");
    format!(
        "# Written by `ethos synth` (seed {seed}). Paths are relative to this file.\n\
data:\n\
\x20 classes: [{classes}]\n\
\x20 events: events.csv\n\
\x20 videos_root: videos\n\
\x20 splits: {{train: splits/train.csv, val: splits/val.csv, test_ood: splits/test_ood.csv}}\n\
\x20 mode: cache\n\
\x20 clip_dir: null\n\
\x20 cache_dir: cache\n\
\x20 cache_short_side: 112\n\
\x20 fps: {fps}\n\
\x20 num_frames: 16\n\
\x20 input_size: 96\n\
\x20 batch_size: 8\n\
\x20 num_workers: 2\n\
\x20 on_bad_video: fail\n\
\x20 mean: [0.45, 0.45, 0.45]\n\
\x20 std: [0.225, 0.225, 0.225]\n\
\x20 seed: {seed}\n\
augmentation:\n\
\x20 random_resized_crop: true\n\
\x20 rrc_scale: [0.7, 1.0]\n\
\x20 rrc_ratio: [0.75, 1.3333333]\n\
\x20 hflip_prob: 0.5\n\
\x20 trivial_augment: true\n\
\x20 temporal_jitter: true\n\
\x20 use_mixup: false\n\
\x20 mixup_alpha: 0.4\n\
model:\n\
\x20 arch: r3d_18\n\
\x20 preset: r3d_demo\n\
train:\n\
\x20 epochs: 8\n",
        seed = spec.seed,
    )
}

#[cfg(test)]
mod tests;
