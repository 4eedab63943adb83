//! Background regions: stretches of a simulated pen, seen through the annotator's box rule, in
//! which no sucking contact is in view. They become the `none` events of a dataset with
//! background events and the gaps between bouts of the long close-up video, so a model learns
//! "no contact" on the same kind of crop it sees contact on.
//!
//! A region is centred on one calf's ear, tail or mouth (where a contact crop is centred on the
//! sucker's mouth at an ear or a tail), sized by the same rule as a contact region
//! ([`VideoPlan::annotator_square`]), and accepted when, in every frame of its window, every
//! sucker in contact is farther from the box centre than the box's half diagonal plus a head
//! length (so no contact and no sucking head is inside the crop). Among the candidates without
//! contact, the first whose anchor stays within half the box's half side of the centre is taken
//! (the crop keeps showing the part it is about), else the steadiest one.

use std::path::PathBuf;

use ethos_video::Roi;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::scene::{Anatomy, V2};
use super::{BACKGROUND_CLASS, CLASSES, SynthSpec, VideoPlan, stream};
use crate::manifest::Event;

/// The part of a calf a background region is centred on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Anchor {
    /// An ear: `+1.0` left, `-1.0` right (body terms).
    Ear(f32),
    /// The tail's contact point.
    Tail,
    /// The mouth tip.
    Mouth,
}

/// A stretch of a pen with no contact in view.
#[derive(Clone, Debug, PartialEq)]
pub struct Region {
    /// First frame.
    pub start_frame: usize,
    /// One past the last frame.
    pub end_frame: usize,
    /// The calf the box is centred on.
    pub calf: usize,
    /// Which part of it.
    pub anchor: Anchor,
    /// Box centre on the floor, world metres.
    pub centre: V2,
    /// Box half side, world metres.
    pub half_side: f32,
    /// The box in source pixels.
    pub roi: Roi,
}

/// Candidates tried per region before giving up.
const TRIES: usize = 64;
/// Extra clearance (metres, about a head length) between a sucker's mouth and the box corners.
const CLEARANCE: f32 = 0.35;

impl VideoPlan {
    /// World position of `anchor` of `calf` in frame `f`.
    fn anchor_point(&self, calf: usize, anchor: Anchor, f: usize) -> V2 {
        let pose = &self.sim.frames[f][calf];
        let size = self.calves[calf].size;
        let an = Anatomy::of(pose, size);
        match anchor {
            Anchor::Ear(side) => an.ear_point(side, size, pose.ear_flick),
            Anchor::Tail => an.tail_point(size),
            Anchor::Mouth => an.mouth,
        }
    }

    /// True when a sucker in contact during `start..end` has its mouth within `radius` metres of
    /// `c` in any of those frames.
    pub(super) fn contact_near(&self, start: usize, end: usize, c: V2, radius: f32) -> bool {
        self.sim.events.iter().any(|ev| {
            let (lo, hi) = (ev.start_frame.max(start), ev.end_frame.min(end));
            (lo..hi).any(|f| {
                let pose = &self.sim.frames[f][ev.sucker];
                let mouth = Anatomy::of(pose, self.calves[ev.sucker].size).mouth;
                mouth.minus(c).len() < radius
            })
        })
    }

    /// A background region of `frames` frames (see the module doc), or `None` when none of
    /// [`TRIES`] candidates is free of contact or the video is too short.
    pub fn background_region(&self, frames: usize, rng: &mut ChaCha8Rng) -> Option<Region> {
        let total = self.frame_count();
        if frames == 0 || frames > total || self.calves.is_empty() {
            return None;
        }
        let mut best: Option<(f32, Region)> = None;
        for _ in 0..TRIES {
            let start_frame = rng.random_range(0..=total - frames);
            let end_frame = start_frame + frames;
            let calf = rng.random_range(0..self.calves.len());
            let anchor = match rng.random_range(0..4u8) {
                0 => Anchor::Ear(1.0),
                1 => Anchor::Ear(-1.0),
                2 => Anchor::Tail,
                _ => Anchor::Mouth,
            };
            let mut mean = V2::default();
            for f in start_frame..end_frame {
                mean = mean.plus(self.anchor_point(calf, anchor, f));
            }
            let mean = mean.scale(1.0 / frames as f32);
            let (centre, half_side, roi) = self.annotator_square(mean, self.calves[calf].size, rng);
            let radius = half_side * std::f32::consts::SQRT_2 + CLEARANCE;
            if self.contact_near(start_frame, end_frame, centre, radius) {
                continue;
            }
            let drift = (start_frame..end_frame)
                .map(|f| self.anchor_point(calf, anchor, f).minus(centre).len())
                .fold(0.0f32, f32::max)
                / half_side;
            let region = Region {
                start_frame,
                end_frame,
                calf,
                anchor,
                centre,
                half_side,
                roi,
            };
            if drift <= 0.5 {
                return Some(region);
            }
            if best.as_ref().is_none_or(|(d, _)| drift < *d) {
                best = Some((drift, region));
            }
        }
        best.map(|(_, r)| r)
    }
}

/// The `spec.background_events` events of class `none` over `videos`, dealt round-robin over
/// the videos from a random first one, each 3-7 s like the labelled events, numbered from
/// `first_idx` in (camera, video, start) order. A video where no free region is found gets fewer
/// (with a warning).
pub(super) fn background_events(
    spec: &SynthSpec,
    videos: &[VideoPlan],
    first_idx: usize,
) -> Vec<Event> {
    let n = spec.background_events;
    if n == 0 || videos.is_empty() {
        return Vec::new();
    }
    let mut deal = stream(spec.seed, 0, 0, 6);
    let first = deal.random_range(0..videos.len());
    let mut per_video = vec![0usize; videos.len()];
    for i in 0..n {
        per_video[(first + i) % videos.len()] += 1;
    }
    let class_index = CLASSES.len();
    let fps = spec.fps as f64;
    let mut events = Vec::with_capacity(n);
    for (video, &count) in videos.iter().zip(&per_video) {
        let mut rng = stream(spec.seed, video.camera as u64, video.index as u64 + 1, 6);
        let mut regions: Vec<Region> = (0..count)
            .filter_map(|_| {
                let frames = (rng.random_range(3.0..7.0f64) * fps).round() as usize;
                video.background_region(frames.max(1), &mut rng)
            })
            .collect();
        if regions.len() < count {
            tracing::warn!(
                "synth: {} of {count} background events found no contact-free region in {}",
                count - regions.len(),
                video.file_name
            );
        }
        regions.sort_by_key(|r| (r.start_frame, r.calf));
        for r in regions {
            let idx = first_idx + events.len();
            events.push(Event {
                event_idx: idx as u32,
                video: PathBuf::from(&video.file_name),
                start_s: r.start_frame as f64 / fps,
                duration_s: (r.end_frame - r.start_frame) as f64 / fps,
                behavior: BACKGROUND_CLASS.to_string(),
                class_index,
                group: Some(video.group.clone()),
                camera: Some(format!("cam{}", video.camera)),
                split: None,
                roi: Some(r.roi),
                line: idx as u64 + 2,
            });
        }
    }
    events
}
