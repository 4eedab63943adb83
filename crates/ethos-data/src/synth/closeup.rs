//! The long close-up test video (`long/closeup.mp4`): several minutes of footage with known bouts
//! for testing long-video inference and event-level evaluation.
//!
//! It is a montage of *segments* of held-out pens (pens simulated from their own seed streams,
//! never used for train/val/test events, seen by the train/val cameras). Each segment is a run of
//! consecutive pen frames seen through a fixed virtual camera: a square of source pixels scaled to
//! `long_video_size` x `long_video_size`.
//!
//! - A *bout* segment shows one sucking event through its contact region (the annotator's box of
//!   the event, as for the training events), from 0.5-1.5 s before the contact starts (the
//!   approach) to 0.5-1.5 s after it ends (the release); its contact stretch is a ground-truth
//!   event. Bouts last 3-7 s like the events; ear and tail bouts are equally many (in a seeded
//!   random order) so both classes can be scored.
//! - A *gap* segment (3-15 s) shows a region with no contact in view, chosen like the background
//!   events ([`super::background`]). The video starts and ends with a gap.
//!
//! The square is the centred square of the box (side = the box's short side): the part of a
//! training crop that the evaluation transform (short side to the input size, centre crop) keeps,
//! so a model sees bouts the way it saw its training events. Frames are a pure function of the
//! seed. The ground truth (`closeup.events.csv`, events-CSV columns, video `closeup.mp4`) holds
//! only the ear/tail bouts; `closeup.segments.csv` lists every segment for review.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ethos_video::{ClipWriter, Roi, WriterOptions};
use fast_image_resize::Resizer;
use rand::Rng;
use rand::seq::SliceRandom;
use rayon::prelude::*;

use super::scene::{Part, SimEvent};
use super::{CLASSES, CameraLook, SynthError, SynthSpec, VideoPlan, simulate_pen, stream};
use crate::manifest::{Event, write_events_csv};
use crate::transforms::geometry::{CropBox, resized_crop_frame};
use ethos_core::fs::write_bytes_atomic as write_atomic;

/// File name of the close-up video (under `long/`).
pub const CLOSEUP_FILE: &str = "closeup.mp4";
/// File name of its ground-truth events CSV (under `long/`).
pub const CLOSEUP_TRUTH: &str = "closeup.events.csv";
/// File name of its segment list (under `long/`).
pub const CLOSEUP_SEGMENTS: &str = "closeup.segments.csv";

/// Events simulated per held-out pen.
const EVENTS_PER_PEN: usize = 12;

/// One stretch of the close-up video.
#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    /// Index of the held-out pen in [`LongVideoPlan::pens`].
    pub pen: usize,
    /// First source frame of the pen.
    pub first_frame: usize,
    /// Frames.
    pub frames: usize,
    /// First frame in the close-up video.
    pub start_frame: usize,
    /// The virtual camera: a square in source pixels.
    pub crop: Roi,
    /// For a bout: its class, the offset of the contact from the segment start and the contact
    /// length (frames); `None` for a gap.
    pub bout: Option<(Part, usize, usize)>,
}

/// The planned close-up video.
pub struct LongVideoPlan {
    /// Frame side in pixels (square frames).
    pub size: u32,
    /// Frames per second.
    pub fps: u32,
    /// The held-out pens the segments come from.
    pub pens: Vec<VideoPlan>,
    /// The segments in playing order.
    pub segments: Vec<Segment>,
    /// Ground truth: one event per bout segment (its contact stretch), times in the close-up video.
    pub truth: Vec<Event>,
}

/// What [`LongVideoPlan::write`] wrote (paths relative to the dataset folder).
#[derive(Debug, Clone, serde::Serialize)]
pub struct LongVideoSummary {
    /// The video.
    pub video: PathBuf,
    /// Its ground-truth events CSV.
    pub truth: PathBuf,
    /// Its segment list CSV.
    pub segments_csv: PathBuf,
    /// Length in seconds.
    pub seconds: f64,
    /// Frames.
    pub frames: u64,
    /// Frame side in pixels.
    pub size: u32,
    /// Segments (gaps and bouts).
    pub segments: usize,
    /// Ground-truth bouts per class.
    pub bouts: BTreeMap<String, usize>,
}

/// The centred square of `roi` (side = its short side).
fn centred_square(roi: Roi) -> Roi {
    let side = roi.w.min(roi.h);
    Roi {
        x: roi.x + (roi.w - side) / 2,
        y: roi.y + (roi.h - side) / 2,
        w: side,
        h: side,
    }
}

/// Plans the close-up video of `spec` (`None` when `spec.long_video_s` is 0).
pub(super) fn plan_long(spec: &SynthSpec) -> Result<Option<LongVideoPlan>, SynthError> {
    plan_long_variant(spec, 0)
}

/// Plans close-up video number `variant` of `spec`: variant 0 is the dataset's own
/// (`long/closeup.mp4`); other variants take other held-out pens (their own seed streams, the same
/// cameras' looks) and another order of bouts and gaps, so one can tune on one labelled long
/// video and score on another.
pub(super) fn plan_long_variant(
    spec: &SynthSpec,
    variant: u64,
) -> Result<Option<LongVideoPlan>, SynthError> {
    if spec.long_video_s <= 0.0 {
        return Ok(None);
    }
    let fps = spec.fps as f64;
    // A gap and a bout take at least 6 s, so this many events never run out.
    let n_events = (spec.long_video_s / 6.0).ceil() as usize + 1;
    let n_pens = n_events.div_ceil(EVENTS_PER_PEN);
    let train_cameras = if spec.cameras >= 2 {
        spec.cameras - 1
    } else {
        1
    };
    let mut deal = stream(spec.seed, variant, 0, 7);
    let mut parts: Vec<Part> = (0..n_events)
        .map(|i| if i % 2 == 0 { Part::Ear } else { Part::Tail })
        .collect();
    parts.shuffle(&mut deal);
    let mut queues: Vec<Vec<Part>> = vec![Vec::new(); n_pens];
    for (i, part) in parts.into_iter().enumerate() {
        queues[i % n_pens].push(part);
    }
    let pens: Vec<VideoPlan> = queues
        .into_par_iter()
        .enumerate()
        .map(|(k, queue)| {
            let camera = k % train_cameras;
            let look = CameraLook::random(&mut stream(spec.seed, camera as u64, 0, 2));
            // Purpose 8: held-out pens have their own streams, apart from the dataset's pens.
            let mut rng = stream(spec.seed, camera as u64, k as u64 + (variant << 32), 8);
            let min_len_s = (queue.len() as f32 * 10.0).max(60.0);
            simulate_pen(
                spec,
                camera,
                k,
                format!("heldout{k}_cam{camera}"),
                format!("heldout{k}"),
                look,
                &mut rng,
                queue,
                min_len_s,
            )
        })
        .collect();

    // Bouts in playing order: each pen's events by start, the pens taking turns.
    let mut per_pen: Vec<Vec<&SimEvent>> = pens
        .iter()
        .map(|p| {
            let mut evs: Vec<&SimEvent> = p.sim.events.iter().collect();
            evs.sort_by_key(|e| (e.start_frame, e.sucker));
            evs
        })
        .collect();
    let mut bouts = Vec::new();
    while per_pen.iter().any(|v| !v.is_empty()) {
        for (p, evs) in per_pen.iter_mut().enumerate() {
            if !evs.is_empty() {
                bouts.push((p, evs.remove(0)));
            }
        }
    }

    let mut rng = stream(spec.seed, variant, 0, 9);
    let target = (spec.long_video_s * fps).round() as usize;
    let min_gap = (3.0 * fps).round().max(1.0) as usize;
    let mut segments: Vec<Segment> = Vec::new();
    let mut truth: Vec<Event> = Vec::new();
    let mut t = 0usize;
    let mut bouts = bouts.into_iter();
    loop {
        let mut gap = (rng.random_range(3.0..15.0) * fps).round().max(1.0) as usize;
        let last = t + gap >= target;
        if last {
            gap = target.saturating_sub(t).max(min_gap);
        }
        let first = rng.random_range(0..pens.len());
        let region = (0..pens.len())
            .map(|k| (first + k) % pens.len())
            .find_map(|p| pens[p].background_region(gap, &mut rng).map(|r| (p, r)))
            .ok_or_else(|| {
                SynthError::Plan(format!(
                    "the close-up video found no contact-free region of {gap} frames in the held-out pens"
                ))
            })?;
        segments.push(Segment {
            pen: region.0,
            first_frame: region.1.start_frame,
            frames: gap,
            start_frame: t,
            crop: centred_square(region.1.roi),
            bout: None,
        });
        t += gap;
        if last {
            break;
        }
        let Some((p, ev)) = bouts.next() else {
            tracing::warn!(
                "synth: the close-up video ran out of bouts at {:.0} s",
                t as f64 / fps
            );
            break;
        };
        let pen = &pens[p];
        let pre = ((rng.random_range(0.5..1.5) * fps).round() as usize).min(ev.start_frame);
        let post = ((rng.random_range(0.5..1.5) * fps).round() as usize)
            .min(pen.frame_count() - ev.end_frame);
        let contact = ev.end_frame - ev.start_frame;
        let roi = pen.event_roi(ev, &mut rng);
        let class_index = match ev.part {
            Part::Ear => 0,
            Part::Tail => 1,
        };
        let idx = truth.len();
        truth.push(Event {
            event_idx: idx as u32,
            video: PathBuf::from(CLOSEUP_FILE),
            start_s: (t + pre) as f64 / fps,
            duration_s: contact as f64 / fps,
            behavior: CLASSES[class_index].to_string(),
            class_index,
            group: None,
            camera: None,
            split: None,
            roi: None,
            line: idx as u64 + 2,
        });
        segments.push(Segment {
            pen: p,
            first_frame: ev.start_frame - pre,
            frames: pre + contact + post,
            start_frame: t,
            crop: centred_square(roi),
            bout: Some((ev.part, pre, contact)),
        });
        t += pre + contact + post;
    }
    Ok(Some(LongVideoPlan {
        size: spec.long_video_size,
        fps: spec.fps,
        pens,
        segments,
        truth,
    }))
}

impl LongVideoPlan {
    /// Frames of the close-up video.
    pub fn frame_count(&self) -> usize {
        self.segments.iter().map(|s| s.frames).sum()
    }

    /// Renders frame `f` of `segment` (an offset into it) into `out` (`size * size * 3` RGB
    /// bytes), using `full` (the pen's `H * W * 3` bytes) as scratch; `bg` is the pen's background.
    fn render_into(
        &self,
        resizer: &mut Resizer,
        bg: &super::Background,
        segment: &Segment,
        f: usize,
        full: &mut [u8],
        out: &mut [u8],
    ) {
        let pen = &self.pens[segment.pen];
        pen.render_frame(bg, segment.first_frame + f, full);
        let crop = CropBox {
            top: segment.crop.y as usize,
            left: segment.crop.x as usize,
            height: segment.crop.h as usize,
            width: segment.crop.w as usize,
        };
        let size = self.size as usize;
        resized_crop_frame(
            resizer,
            full,
            pen.cam.height,
            pen.cam.width,
            crop,
            (size, size),
            out,
        );
    }

    /// Every frame of the close-up video in order, `size * size * 3` RGB bytes each, passed to
    /// `sink`.
    pub fn render_frames(
        &self,
        mut sink: impl FnMut(&[u8]) -> Result<(), SynthError>,
    ) -> Result<(), SynthError> {
        // Backgrounds of the pens in use, computed once each.
        let mut backgrounds: Vec<Option<super::Background>> =
            (0..self.pens.len()).map(|_| None).collect();
        let (w, h) = self
            .pens
            .first()
            .map_or((0, 0), |p| (p.cam.width, p.cam.height));
        let mut full = vec![0u8; w * h * 3];
        let size = self.size as usize;
        let mut out = vec![0u8; size * size * 3];
        let mut resizer = Resizer::new();
        for segment in &self.segments {
            let bg =
                backgrounds[segment.pen].get_or_insert_with(|| self.pens[segment.pen].background());
            for f in 0..segment.frames {
                self.render_into(&mut resizer, bg, segment, f, &mut full, &mut out);
                sink(&out)?;
            }
        }
        Ok(())
    }

    /// Encodes the video into `dir/closeup.mp4` and writes `closeup.events.csv` and
    /// `closeup.segments.csv` next to it. `progress` gets the frames just encoded.
    pub fn write(
        &self,
        dir: &Path,
        opts: &WriterOptions,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<LongVideoSummary, SynthError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SynthError::Io { path, source }
        };
        let path = dir.join(CLOSEUP_FILE);
        let mut writer = ClipWriter::create(&path, self.size, self.size, opts)?;
        let mut pending = 0u64;
        self.render_frames(|frame| {
            writer.write_frame(frame)?;
            pending += 1;
            if pending == 30 {
                progress(pending);
                pending = 0;
            }
            Ok(())
        })?;
        writer.finish()?;
        progress(pending);

        let truth_path = dir.join(CLOSEUP_TRUTH);
        write_events_csv(&truth_path, &self.truth).map_err(io(&truth_path))?;
        let segments_path = dir.join(CLOSEUP_SEGMENTS);
        write_atomic(&segments_path, self.segments_csv().as_bytes()).map_err(io(&segments_path))?;
        let mut bouts: BTreeMap<String, usize> =
            CLASSES.iter().map(|c| (c.to_string(), 0)).collect();
        for e in &self.truth {
            *bouts.entry(e.behavior.clone()).or_insert(0) += 1;
        }
        let frames = self.frame_count() as u64;
        Ok(LongVideoSummary {
            video: Path::new("long").join(CLOSEUP_FILE),
            truth: Path::new("long").join(CLOSEUP_TRUTH),
            segments_csv: Path::new("long").join(CLOSEUP_SEGMENTS),
            seconds: frames as f64 / self.fps as f64,
            frames,
            size: self.size,
            segments: self.segments.len(),
            bouts,
        })
    }

    /// The segment list: one row per segment with its times in the close-up video, kind (`none`
    /// for a gap, else the bout's class), source pen and time, crop square, and the contact
    /// stretch of a bout (seconds in the close-up video).
    pub fn segments_csv(&self) -> String {
        let fps = self.fps as f64;
        let mut w = csv::Writer::from_writer(Vec::new());
        let header = [
            "segment",
            "start_s",
            "duration_s",
            "kind",
            "pen",
            "source_start_s",
            "crop_x",
            "crop_y",
            "crop_w",
            "crop_h",
            "contact_start_s",
            "contact_duration_s",
        ];
        // Writing CSV into memory cannot fail.
        let _ = w.write_record(header);
        for (i, seg) in self.segments.iter().enumerate() {
            let (kind, contact) = match seg.bout {
                Some((part, pre, n)) => (
                    match part {
                        Part::Ear => CLASSES[0],
                        Part::Tail => CLASSES[1],
                    },
                    [
                        format!("{:.3}", (seg.start_frame + pre) as f64 / fps),
                        format!("{:.3}", n as f64 / fps),
                    ],
                ),
                None => (super::BACKGROUND_CLASS, [String::new(), String::new()]),
            };
            let _ = w.write_record([
                i.to_string(),
                format!("{:.3}", seg.start_frame as f64 / fps),
                format!("{:.3}", seg.frames as f64 / fps),
                kind.to_string(),
                self.pens[seg.pen].file_name.clone(),
                format!("{:.3}", seg.first_frame as f64 / fps),
                seg.crop.x.to_string(),
                seg.crop.y.to_string(),
                seg.crop.w.to_string(),
                seg.crop.h.to_string(),
                contact[0].clone(),
                contact[1].clone(),
            ]);
        }
        String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
    }
}
