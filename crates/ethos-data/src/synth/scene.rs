//! The synthetic barn: pen geometry, cameras (a planar homography per camera), calf appearance
//! and pose geometry, and the behaviour simulation that produces labelled sucking events.
//!
//! World units are metres on the pen floor, origin at the pen centre.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::raster::Paint;

/// A 2D vector (metres in the world, pixels in the image).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct V2 {
    /// x coordinate.
    pub x: f32,
    /// y coordinate.
    pub y: f32,
}

impl V2 {
    /// The vector (x, y).
    pub const fn new(x: f32, y: f32) -> Self {
        Self { x, y }
    }
    /// The unit vector at `angle` radians.
    pub fn from_angle(angle: f32) -> Self {
        Self::new(angle.cos(), angle.sin())
    }
    /// Vector sum.
    pub fn plus(self, o: V2) -> V2 {
        V2::new(self.x + o.x, self.y + o.y)
    }
    /// Vector difference.
    pub fn minus(self, o: V2) -> V2 {
        V2::new(self.x - o.x, self.y - o.y)
    }
    /// Vector times a scalar.
    pub fn scale(self, k: f32) -> V2 {
        V2::new(self.x * k, self.y * k)
    }
    /// Vector operation `dot`.
    pub fn dot(self, o: V2) -> f32 {
        self.x * o.x + self.y * o.y
    }
    /// Vector operation `len`.
    pub fn len(self) -> f32 {
        self.dot(self).sqrt()
    }
    /// Rotated by +90 degrees.
    /// Vector operation `perp`.
    pub fn perp(self) -> V2 {
        V2::new(-self.y, self.x)
    }
    /// Vector operation `angle`.
    pub fn angle(self) -> f32 {
        self.y.atan2(self.x)
    }
}

fn wrap_angle(a: f32) -> f32 {
    let tau = std::f32::consts::TAU;
    let mut a = a % tau;
    if a > std::f32::consts::PI {
        a -= tau;
    } else if a < -std::f32::consts::PI {
        a += tau;
    }
    a
}

/// A standard normal draw (Box-Muller), so no fallible distribution constructors are needed.
pub fn gauss(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f32 = rng.random_range(1e-7f32..1.0);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// Maps the pen floor to image pixels: rotation, a perspective tilt along the image's vertical
/// axis (rows lower in the image are closer, so larger), then scale and offset.
#[derive(Clone, Debug)]
pub struct Camera {
    /// Image width in pixels.
    pub width: usize,
    /// Image height in pixels.
    pub height: usize,
    cos: f32,
    sin: f32,
    tilt: f32,
    ext: f32,
    scale: f32,
    cx: f32,
    cy: f32,
}

impl Camera {
    /// A camera looking at a pen of half extents `half` (metres) rotated by `theta` radians, with
    /// perspective `tilt` (0 = orthographic, 0.35 strong), scaled so the pen plus its fence fills
    /// `fill` (<= 1) of the frame.
    pub fn fit(width: usize, height: usize, theta: f32, tilt: f32, fill: f32, half: V2) -> Self {
        let ext = 1.6 * half.len();
        let mut cam = Camera {
            width,
            height,
            cos: theta.cos(),
            sin: theta.sin(),
            tilt,
            ext,
            scale: 1.0,
            cx: 0.0,
            cy: 0.0,
        };
        let m = 0.3;
        let corners = [
            V2::new(-half.x - m, -half.y - m),
            V2::new(half.x + m, -half.y - m),
            V2::new(half.x + m, half.y + m),
            V2::new(-half.x - m, half.y + m),
        ];
        let (mut x0, mut x1, mut y0, mut y1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
        for c in corners {
            let (u, v) = cam.project(c);
            x0 = x0.min(u);
            x1 = x1.max(u);
            y0 = y0.min(v);
            y1 = y1.max(v);
        }
        cam.scale = fill * (width as f32 / (x1 - x0)).min(height as f32 / (y1 - y0));
        cam.cx = width as f32 / 2.0 - cam.scale * (x0 + x1) / 2.0;
        cam.cy = height as f32 / 2.0 - cam.scale * (y0 + y1) / 2.0;
        cam
    }

    /// Image position (pixels) of the world point `p`.
    pub fn project(&self, p: V2) -> (f32, f32) {
        let xr = self.cos * p.x - self.sin * p.y;
        let yr = self.sin * p.x + self.cos * p.y;
        let w = (1.0 - self.tilt * yr / self.ext).max(0.05);
        (self.cx + self.scale * xr / w, self.cy + self.scale * yr / w)
    }

    /// World point seen at image position (u, v); `None` beyond the horizon.
    pub fn unproject(&self, u: f32, v: f32) -> Option<V2> {
        let a = (u - self.cx) / self.scale;
        let b = (v - self.cy) / self.scale;
        let denom = 1.0 + self.tilt * b / self.ext;
        if denom <= 0.05 {
            return None;
        }
        let yr = b / denom;
        let xr = a * (1.0 - self.tilt * yr / self.ext);
        Some(V2::new(
            self.cos * xr + self.sin * yr,
            -self.sin * xr + self.cos * yr,
        ))
    }

    fn polygon(&self, pts: impl Iterator<Item = V2>) -> Vec<(f32, f32)> {
        pts.map(|p| self.project(p)).collect()
    }
}

/// How one calf looks: size and colours of coat, patches, head, ears, muzzle and tail tuft.
#[derive(Clone, Debug)]
pub struct CalfLook {
    /// Length factor (1.0 = a 1.1 m body).
    pub size: f32,
    coat: [u8; 3],
    head: [u8; 3],
    ear: [u8; 3],
    muzzle: [u8; 3],
    tuft: [u8; 3],
    /// Patches: centre in body units (x along the body), radii in metres at size 1, colour.
    patches: Vec<(V2, f32, f32, [u8; 3])>,
}

const COATS: [[u8; 3]; 6] = [
    [236, 232, 222],
    [34, 30, 30],
    [122, 72, 42],
    [188, 148, 100],
    [150, 82, 52],
    [92, 88, 84],
];

impl CalfLook {
    /// A random calf: coat and patch colours from a small palette of cattle coats.
    pub fn random(rng: &mut ChaCha8Rng) -> Self {
        let jitter = |c: [u8; 3], rng: &mut ChaCha8Rng| {
            let d: i32 = rng.random_range(-14..=14);
            c.map(|v| (v as i32 + d).clamp(0, 255) as u8)
        };
        let coat = jitter(COATS[rng.random_range(0..COATS.len())], rng);
        let patch_base = COATS[rng.random_range(0..COATS.len())];
        let n_patches = rng.random_range(0..=3);
        let patches = (0..n_patches)
            .map(|_| {
                let c = V2::new(rng.random_range(-0.45..0.45), rng.random_range(-0.3..0.3));
                let rx = rng.random_range(0.08..0.2);
                let ry = rng.random_range(0.06..0.12);
                (c, rx, ry, jitter(patch_base, rng))
            })
            .collect();
        // Faces contrast with the coat (a Hereford-style white face on a dark coat, a dark face on a
        // light one): the head end of a calf must be told from its rear end, which is what separates
        // ear from tail sucking.
        let luma = |c: [u8; 3]| 0.299 * c[0] as f32 + 0.587 * c[1] as f32 + 0.114 * c[2] as f32;
        let head = if luma(coat) > 150.0 {
            jitter([48, 40, 38], rng)
        } else {
            jitter([240, 236, 228], rng)
        };
        let ear = head.map(|v| (v as f32 * 0.85) as u8);
        let muzzle = if rng.random_bool(0.5) {
            [205, 160, 150]
        } else {
            [45, 38, 36]
        };
        let tuft = coat.map(|v| (v as f32 * 0.6) as u8);
        Self {
            size: rng.random_range(0.88..1.12),
            coat,
            head,
            ear,
            muzzle,
            tuft,
            patches,
        }
    }
}

/// Which layer a calf is drawn in: suckers over their targets over everyone else.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Layer {
    /// Not in an event.
    #[default]
    Free,
    /// Being sucked.
    Target,
    /// Sucking.
    Sucker,
}

/// The pose of one calf in one frame.
#[derive(Clone, Copy, Debug, Default)]
pub struct Pose {
    /// Body centre on the floor (metres).
    pub pos: V2,
    /// Body direction (radians).
    pub heading: f32,
    /// Head angle relative to the body (radians).
    pub head_yaw: f32,
    /// Extra head reach along the head direction (metres; the sucking rhythm).
    pub head_ext: f32,
    /// Tail angle relative to straight back (radians).
    pub tail: f32,
    /// Ear flick angle (radians).
    pub ear_flick: f32,
    /// Drawing layer.
    pub layer: Layer,
}

/// Body-frame geometry of a calf, in metres at size 1.
mod body {
    pub const A: f32 = 0.55; // half length
    pub const B: f32 = 0.24; // half width
    pub const NECK: f32 = 0.42;
    pub const HEAD_OFF: f32 = 0.2;
    pub const HEAD_A: f32 = 0.18;
    pub const HEAD_B: f32 = 0.13;
    pub const MOUTH: f32 = 0.19;
    pub const REAR: f32 = 0.52;
    pub const TAIL: f32 = 0.38;
    pub const TAIL_CONTACT: f32 = 0.24;
}

/// Points of interest of a posed calf, in world metres.
pub struct Anatomy {
    head_c: V2,
    head_dir: V2,
    rear: V2,
    tail_dir: V2,
    /// Mouth tip (the sucker's contact point).
    pub mouth: V2,
}

impl Anatomy {
    /// The anatomy of `pose` for a calf of `size`.
    pub fn of(pose: &Pose, size: f32) -> Self {
        let d = V2::from_angle(pose.heading);
        let head_dir = V2::from_angle(pose.heading + pose.head_yaw);
        let neck = pose.pos.plus(d.scale(body::NECK * size));
        let head_c = neck.plus(head_dir.scale(body::HEAD_OFF * size + pose.head_ext));
        let mouth = head_c.plus(head_dir.scale(body::MOUTH * size));
        let rear = pose.pos.minus(d.scale(body::REAR * size));
        let tail_dir = V2::from_angle(pose.heading + std::f32::consts::PI + pose.tail);
        Self {
            head_c,
            head_dir,
            rear,
            tail_dir,
            mouth,
        }
    }

    fn ear_base(&self, side: f32, size: f32) -> V2 {
        self.head_c
            .minus(self.head_dir.scale(0.04 * size))
            .plus(self.head_dir.perp().scale(side * 0.09 * size))
    }

    /// Direction an ear points (`side` = +1 left, -1 right in body terms).
    fn ear_dir(&self, side: f32, flick: f32) -> V2 {
        let lat = self.head_dir.perp().scale(side);
        let back = self.head_dir.scale(-0.35 + flick);
        let v = lat.plus(back);
        v.scale(1.0 / v.len())
    }

    /// Contact point on the ear of `side` (its middle, where a sucker's mouth holds it).
    pub fn ear_point(&self, side: f32, size: f32, flick: f32) -> V2 {
        self.ear_base(side, size)
            .plus(self.ear_dir(side, flick).scale(0.1 * size))
    }

    /// Contact point on the tail.
    pub fn tail_point(&self, size: f32) -> V2 {
        self.rear
            .plus(self.tail_dir.scale(body::TAIL_CONTACT * size))
    }
}

fn ellipse(c: V2, axis: V2, a: f32, b: f32, n: usize) -> impl Iterator<Item = V2> {
    let perp = axis.perp();
    (0..n).map(move |i| {
        let phi = std::f32::consts::TAU * i as f32 / n as f32;
        c.plus(axis.scale(a * phi.cos()))
            .plus(perp.scale(b * phi.sin()))
    })
}

/// The filled polygons (image pixels) that draw `look` in `pose`, back to front.
pub fn calf_shapes(pose: &Pose, look: &CalfLook, cam: &Camera) -> Vec<(Vec<(f32, f32)>, Paint)> {
    let k = look.size;
    let d = V2::from_angle(pose.heading);
    let an = Anatomy::of(pose, k);
    let mut out = Vec::with_capacity(12);
    // Shadow: the body ellipse shifted away from the (overhead) light.
    out.push((
        cam.polygon(ellipse(
            pose.pos.plus(V2::new(0.07, 0.09)),
            d,
            body::A * k * 1.08,
            body::B * k * 1.15,
            14,
        )),
        Paint::Darken(170),
    ));
    // Tail: a thin quad and a tuft.
    let tl = an.tail_dir.perp().scale(0.022 * k);
    let tail_end = an.rear.plus(an.tail_dir.scale(body::TAIL * k));
    out.push((
        cam.polygon(
            [
                an.rear.plus(tl),
                tail_end.plus(tl),
                tail_end.minus(tl),
                an.rear.minus(tl),
            ]
            .into_iter(),
        ),
        Paint::Solid(look.coat),
    ));
    out.push((
        cam.polygon(ellipse(tail_end, an.tail_dir, 0.06 * k, 0.035 * k, 8)),
        Paint::Solid(look.tuft),
    ));
    out.push((
        cam.polygon(ellipse(pose.pos, d, body::A * k, body::B * k, 20)),
        Paint::Solid(look.coat),
    ));
    for &(c, rx, ry, colour) in &look.patches {
        let centre = pose
            .pos
            .plus(d.scale(c.x * body::A * k))
            .plus(d.perp().scale(c.y * body::B * k));
        out.push((
            cam.polygon(ellipse(centre, d, rx * k, ry * k, 10)),
            Paint::Solid(colour),
        ));
    }
    // Neck joins body and head.
    let neck = pose.pos.plus(d.scale(body::NECK * k));
    let nl = an.head_dir.perp().scale(0.085 * k);
    out.push((
        cam.polygon(
            [
                neck.plus(nl),
                an.head_c.plus(nl),
                an.head_c.minus(nl),
                neck.minus(nl),
            ]
            .into_iter(),
        ),
        Paint::Solid(look.head),
    ));
    for side in [-1.0f32, 1.0] {
        let flick = if side > 0.0 {
            pose.ear_flick
        } else {
            -pose.ear_flick
        };
        let dir = an.ear_dir(side, flick);
        let c = an.ear_base(side, k).plus(dir.scale(0.09 * k));
        out.push((
            cam.polygon(ellipse(c, dir, 0.1 * k, 0.042 * k, 10)),
            Paint::Solid(look.ear),
        ));
    }
    out.push((
        cam.polygon(ellipse(
            an.head_c,
            an.head_dir,
            body::HEAD_A * k,
            body::HEAD_B * k,
            14,
        )),
        Paint::Solid(look.head),
    ));
    out.push((
        cam.polygon(ellipse(
            an.head_c.plus(an.head_dir.scale(0.12 * k)),
            an.head_dir,
            0.055 * k,
            0.07 * k,
            10,
        )),
        Paint::Solid(look.muzzle),
    ));
    out
}

/// Body part a sucker holds: the class of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// An ear (head end of the target).
    Ear,
    /// The tail (rear end of the target).
    Tail,
}

/// A completed labelled event of one simulated video.
#[derive(Clone, Debug, PartialEq)]
pub struct SimEvent {
    /// Calf that sucks.
    pub sucker: usize,
    /// Calf that is sucked.
    pub target: usize,
    /// Body part held.
    pub part: Part,
    /// First frame with mouth contact.
    pub start_frame: usize,
    /// One past the last frame of contact.
    pub end_frame: usize,
}

/// A simulated video: every calf's pose in every frame, and the completed events.
pub struct VideoSim {
    /// `frames[i][calf]`.
    pub frames: Vec<Vec<Pose>>,
    /// Completed events in the order they started.
    pub events: Vec<SimEvent>,
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    Wander,
    Approach { ev: usize, stage: u8 },
    Hold { ev: usize },
    Suck { ev: usize },
    Release { until: f32 },
}

struct Agent {
    pose: Pose,
    v: f32,
    omega: f32,
    target_v: f32,
    yaw_target: f32,
    next_decision: f32,
    cooldown_until: f32,
    tail_phase: f32,
    tail_rate: f32,
    mode: Mode,
}

struct Active {
    sucker: usize,
    target: usize,
    part: Part,
    side: f32,
    /// Angle between the sucker's final body axis and the straight approach (radians).
    offset: f32,
    started_s: f32,
    contact_frame: Option<usize>,
    duration_frames: usize,
    bob_freq: f32,
    bob_phase: f32,
    done: bool,
}

/// Pen half extents (metres) and the simulation limits of one video.
pub struct SimParams {
    /// Pen half extents in metres.
    pub half: V2,
    /// Frames per second.
    pub fps: f32,
    /// Minimum video length in seconds (the video runs longer until every event completes).
    pub min_len_s: f32,
    /// Event classes to produce, in scheduling order.
    pub queue: Vec<Part>,
}

const WALL_MARGIN: f32 = 0.45;

/// Simulates one pen: calves wander with inertia and avoid walls and each other; at scheduled
/// moments a free calf walks to another's ear or tail and sucks it for 3-7 s.
pub fn simulate(rng: &mut ChaCha8Rng, looks: &[CalfLook], p: &SimParams) -> VideoSim {
    let dt = 1.0 / p.fps;
    let n = looks.len();
    let mut agents: Vec<Agent> = (0..n)
        .map(|i| {
            // Spread calves on a jittered grid so they do not start overlapping.
            let cols = (n as f32).sqrt().ceil() as usize;
            let rows = n.div_ceil(cols);
            let gx = (i % cols) as f32 + 0.5;
            let gy = (i / cols) as f32 + 0.5;
            let ix = p.half.x - WALL_MARGIN - 0.3;
            let iy = p.half.y - WALL_MARGIN - 0.3;
            let pos = V2::new(
                -ix + 2.0 * ix * gx / cols as f32 + rng.random_range(-0.2..0.2),
                -iy + 2.0 * iy * gy / rows as f32 + rng.random_range(-0.2..0.2),
            );
            Agent {
                pose: Pose {
                    pos,
                    heading: rng.random_range(-std::f32::consts::PI..std::f32::consts::PI),
                    ..Pose::default()
                },
                v: 0.0,
                omega: 0.0,
                target_v: 0.0,
                yaw_target: 0.0,
                next_decision: rng.random_range(0.0..2.0),
                cooldown_until: rng.random_range(0.0..3.0),
                tail_phase: rng.random_range(0.0..std::f32::consts::TAU),
                tail_rate: rng.random_range(0.3..1.1),
                mode: Mode::Wander,
            }
        })
        .collect();
    let mut queue: std::collections::VecDeque<Part> = p.queue.iter().copied().collect();
    let spacing =
        ((p.min_len_s - 10.0).max(p.min_len_s * 0.5) / queue.len().max(1) as f32).max(1.0);
    let mut next_trigger = rng.random_range(0.5..2.0f32);
    let max_active = (n / 2).clamp(1, 3);
    let mut active: Vec<Active> = Vec::new();
    let mut done: Vec<SimEvent> = Vec::new();
    let mut frames: Vec<Vec<Pose>> = Vec::new();
    let cap_s = p.min_len_s * 4.0 + 120.0;
    let mut end_at: Option<f32> = None;
    let mut frame = 0usize;
    loop {
        let t = frame as f32 * dt;
        if let Some(end) = end_at {
            if t >= end {
                break;
            }
        } else if t >= p.min_len_s && queue.is_empty() && active.iter().all(|a| a.done) {
            end_at = Some(t + 1.0);
        } else if t >= cap_s {
            tracing::warn!(
                "synthetic pen: {} event(s) could not be completed in {cap_s:.0} s",
                queue.len()
            );
            break;
        }

        // Start events.
        if !queue.is_empty()
            && t >= next_trigger
            && active.iter().filter(|a| !a.done).count() < max_active
        {
            let part = queue[0];
            if let Some(ev) = try_start(rng, &agents, looks, p, part, t) {
                let idx = active.len();
                agents[ev.sucker].mode = Mode::Approach { ev: idx, stage: 0 };
                agents[ev.target].mode = Mode::Hold { ev: idx };
                active.push(ev);
                queue.pop_front();
                next_trigger = t + spacing * rng.random_range(0.5..1.5);
            } else {
                next_trigger = t + 0.5;
            }
        }

        // Targets first, so suckers follow their current contact point.
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| matches!(agents[i].mode, Mode::Approach { .. } | Mode::Suck { .. }));
        for i in order {
            step_agent(rng, i, &mut agents, looks, &mut active, p, t, frame, dt);
        }
        // Finish events whose contact time is over.
        for (idx, ev) in active.iter_mut().enumerate() {
            if ev.done {
                continue;
            }
            let timed_out = ev.contact_frame.is_none() && t - ev.started_s > 25.0;
            let finished = ev
                .contact_frame
                .is_some_and(|c| frame + 1 >= c + ev.duration_frames);
            if timed_out || finished {
                ev.done = true;
                if finished && let Some(c) = ev.contact_frame {
                    done.push(SimEvent {
                        sucker: ev.sucker,
                        target: ev.target,
                        part: ev.part,
                        start_frame: c,
                        end_frame: c + ev.duration_frames,
                    });
                }
                if timed_out {
                    queue.push_back(ev.part);
                }
                let s = &mut agents[ev.sucker];
                s.mode = Mode::Release { until: t + 1.2 };
                s.cooldown_until = t + 5.0;
                let tg = &mut agents[ev.target];
                tg.mode = Mode::Wander;
                tg.cooldown_until = t + 3.0;
                tg.next_decision = t + 0.5;
                let _ = idx;
            }
        }
        frames.push(agents.iter().map(|a| a.pose).collect());
        frame += 1;
    }
    VideoSim {
        frames,
        events: done,
    }
}

fn inside(p: V2, half: V2, margin: f32) -> bool {
    p.x.abs() <= half.x - margin && p.y.abs() <= half.y - margin
}

/// The contact point on the target and the direction the sucker stands away from it.
fn contact(target: &Pose, look: &CalfLook, part: Part, side: f32, offset: f32) -> (V2, V2) {
    let an = Anatomy::of(target, look.size);
    match part {
        Part::Ear => {
            let lat = an.head_dir.perp().scale(side);
            let away = V2::from_angle(lat.angle() + offset);
            (an.ear_point(side, look.size, target.ear_flick), away)
        }
        Part::Tail => (
            an.tail_point(look.size),
            V2::from_angle(an.tail_dir.angle() + offset),
        ),
    }
}

/// Distance from a calf's body centre to its mouth with a straight head.
fn mouth_reach(size: f32) -> f32 {
    (body::NECK + body::HEAD_OFF + body::MOUTH) * size
}

fn try_start(
    rng: &mut ChaCha8Rng,
    agents: &[Agent],
    looks: &[CalfLook],
    p: &SimParams,
    part: Part,
    t: f32,
) -> Option<Active> {
    let free: Vec<usize> = agents
        .iter()
        .enumerate()
        .filter(|(_, a)| matches!(a.mode, Mode::Wander) && a.cooldown_until <= t)
        .map(|(i, _)| i)
        .collect();
    if free.len() < 2 {
        return None;
    }
    for _ in 0..8 {
        let sucker = free[rng.random_range(0..free.len())];
        let target = free[rng.random_range(0..free.len())];
        if sucker == target {
            continue;
        }
        let tp = &agents[target].pose;
        let sp = &agents[sucker].pose;
        let lat = V2::from_angle(tp.heading).perp();
        let side = match part {
            Part::Ear => {
                if sp.pos.minus(tp.pos).dot(lat) >= 0.0 {
                    1.0
                } else {
                    -1.0
                }
            }
            Part::Tail => 1.0,
        };
        let offset = match part {
            // Ear: toward the target's front or back a little; tail: nearly in line behind.
            Part::Ear => rng.random_range(-0.45..0.45),
            Part::Tail => rng.random_range(-0.3..0.3),
        };
        let (pt, away) = contact(tp, &looks[target], part, side, offset);
        let reach = mouth_reach(looks[sucker].size);
        let final_pos = pt.plus(away.scale(reach));
        let final_tail =
            final_pos.minus(away.scale(-(body::REAR + body::TAIL) * looks[sucker].size));
        if !inside(final_pos, p.half, WALL_MARGIN) || !inside(final_tail, p.half, 0.1) {
            continue;
        }
        return Some(Active {
            sucker,
            target,
            part,
            side,
            offset,
            started_s: t,
            contact_frame: None,
            duration_frames: (rng.random_range(3.0..7.0f32) * p.fps).round() as usize,
            bob_freq: rng.random_range(1.6..2.6),
            bob_phase: rng.random_range(0.0..std::f32::consts::TAU),
            done: false,
        });
    }
    None
}

/// Turns toward `dir` (radians) and moves at up to `speed`, slower while facing away.
fn steer(a: &mut Agent, dir: f32, speed: f32, dt: f32) {
    let diff = wrap_angle(dir - a.pose.heading);
    a.omega = (4.0 * diff).clamp(-2.5, 2.5);
    let want = speed * diff.cos().max(0.0);
    a.v += (want - a.v) * (4.0 * dt).min(1.0);
}

#[allow(clippy::too_many_arguments)]
fn step_agent(
    rng: &mut ChaCha8Rng,
    i: usize,
    agents: &mut [Agent],
    looks: &[CalfLook],
    active: &mut [Active],
    p: &SimParams,
    t: f32,
    frame: usize,
    dt: f32,
) {
    let k = looks[i].size;
    let mode = agents[i].mode;
    // Where the others are (for avoidance), before borrowing this agent mutably.
    let others: Vec<V2> = agents
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != i)
        .map(|(_, a)| a.pose.pos)
        .collect();
    let mut layer = Layer::Free;
    let mut head_ext = 0.0;
    let mut snap: Option<(V2, f32, usize)> = None;
    match mode {
        Mode::Wander | Mode::Release { .. } => {
            let a = &mut agents[i];
            if t >= a.next_decision {
                a.target_v = if rng.random_bool(0.35) {
                    0.0
                } else {
                    rng.random_range(0.12..0.45)
                };
                a.yaw_target = rng.random_range(-0.5..0.5);
                a.next_decision = t + rng.random_range(1.0..4.0);
            }
            // Heading: an Ornstein-Uhlenbeck turn rate (inertia), pushed back from walls and calves.
            a.omega += -a.omega * 1.5 * dt + gauss(rng) * 1.2 * dt.sqrt();
            let d = V2::from_angle(a.pose.heading);
            let ahead = a.pose.pos.plus(d.scale(0.9));
            let mut want_v = a.target_v;
            if !inside(ahead, p.half, WALL_MARGIN + 0.3) {
                let to_centre = V2::new(0.0, 0.0).minus(a.pose.pos);
                let diff = wrap_angle(to_centre.angle() - a.pose.heading);
                a.omega = a.omega * 0.7 + 0.3 * 2.0 * diff;
                want_v = want_v.min(0.15);
            }
            for o in &others {
                let rel = o.minus(a.pose.pos);
                let dist = rel.len();
                if dist < 1.3 && rel.dot(d) > 0.3 * dist {
                    let cross = d.x * rel.y - d.y * rel.x;
                    a.omega += if cross > 0.0 { -2.0 } else { 2.0 } * dt * 3.0;
                    want_v *= 0.3;
                }
            }
            a.omega = a.omega.clamp(-1.5, 1.5);
            if let Mode::Release { until } = mode {
                want_v = -0.22;
                a.omega *= 0.3;
                if t >= until {
                    a.mode = Mode::Wander;
                    a.next_decision = t;
                }
            }
            a.v += (want_v - a.v) * (2.5 * dt).min(1.0);
        }
        Mode::Hold { ev } => {
            let a = &mut agents[i];
            layer = if active[ev].contact_frame.is_some() {
                Layer::Target
            } else {
                Layer::Free
            };
            a.omega = a.omega * 0.9 + gauss(rng) * 0.15 * dt.sqrt();
            a.v += (0.0 - a.v) * (3.0 * dt).min(1.0);
            if active[ev].contact_frame.is_some() {
                // Being sucked: small shuffles forward now and then.
                if rng.random_bool((0.3 * dt) as f64) {
                    a.v = 0.06;
                }
                if active[ev].part == Part::Ear {
                    a.yaw_target = 0.0;
                }
            }
        }
        Mode::Approach { ev, stage } => {
            let e = &active[ev];
            let (pt, away) = contact(
                &agents[e.target].pose,
                &looks[e.target],
                e.part,
                e.side,
                e.offset,
            );
            let tpos = agents[e.target].pose.pos;
            let reach = mouth_reach(k);
            let goal = pt.plus(away.scale(reach));
            let a = &mut agents[i];
            a.yaw_target = 0.0;
            let mut stage = stage;
            if stage == 0 {
                // On the wrong side of the target: walk around it first.
                let rel = a.pose.pos.minus(tpos);
                if rel.dot(away) > 0.2 {
                    stage = 1;
                } else {
                    let side = if rel.dot(away.perp()) >= 0.0 {
                        1.0
                    } else {
                        -1.0
                    };
                    let detour = tpos
                        .plus(away.perp().scale(side * 1.5 * k))
                        .plus(away.scale(0.4));
                    steer(a, detour.minus(a.pose.pos).angle(), 0.45, dt);
                    if detour.minus(a.pose.pos).len() < 0.3 {
                        stage = 1;
                    }
                }
            }
            if stage == 1 {
                let way = goal.plus(away.scale(0.7 * k));
                steer(a, way.minus(a.pose.pos).angle(), 0.45, dt);
                if way.minus(a.pose.pos).len() < 0.25 {
                    stage = 2;
                }
            }
            if stage == 2 {
                let to = goal.minus(a.pose.pos);
                let dist = to.len();
                let dir = if dist > 0.15 {
                    to.angle()
                } else {
                    away.scale(-1.0).angle()
                };
                steer(a, dir, (1.2 * dist).clamp(0.06, 0.3), dt);
                if dist < 0.1 {
                    // Contact (and the label) starts once the mouth is settled on the part.
                    a.mode = Mode::Suck { ev };
                    a.v = 0.0;
                    a.omega = 0.0;
                }
            }
            if let Mode::Approach { .. } = a.mode {
                a.mode = Mode::Approach { ev, stage };
            }
        }
        Mode::Suck { ev } => {
            let e = &active[ev];
            let tlook = &looks[e.target];
            let (pt, away) = contact(&agents[e.target].pose, tlook, e.part, e.side, e.offset);
            let tt = t - e.contact_frame.map_or(0.0, |c| c as f32 * dt);
            let rhythm = 0.5 + 0.5 * (std::f32::consts::TAU * e.bob_freq * tt + e.bob_phase).sin();
            head_ext = 0.035 * k * rhythm;
            layer = Layer::Sucker;
            let heading = away.scale(-1.0).angle();
            snap = Some((pt, heading, ev));
            let a = &mut agents[i];
            a.v = 0.0;
            a.omega = 0.0;
            a.yaw_target = 0.0;
        }
    }

    let a = &mut agents[i];
    a.pose.heading = wrap_angle(a.pose.heading + a.omega * dt);
    let d = V2::from_angle(a.pose.heading);
    a.pose.pos = a.pose.pos.plus(d.scale(a.v * dt));
    a.pose.head_yaw += (a.yaw_target - a.pose.head_yaw).clamp(-1.2 * dt, 1.2 * dt);
    a.pose.head_ext = head_ext;
    a.pose.layer = layer;
    if let Some((pt, heading, ev)) = snap {
        // Hold the mouth on the contact point; ease into the exact pose over a few frames.
        let blend = 0.35;
        let dh = wrap_angle(heading - a.pose.heading);
        a.pose.heading = wrap_angle(a.pose.heading + dh * blend);
        // The body holds still while the head pushes in and out with the sucking rhythm.
        let mut probe = a.pose;
        probe.pos = V2::default();
        probe.head_ext = 0.0;
        let mouth_off = Anatomy::of(&probe, k).mouth;
        let want = pt.minus(mouth_off);
        let step = if dh.abs() < 0.05 || active[ev].contact_frame.is_some() {
            1.0
        } else {
            blend
        };
        a.pose.pos = a.pose.pos.plus(want.minus(a.pose.pos).scale(step));
        if step == 1.0 && active[ev].contact_frame.is_none() {
            active[ev].contact_frame = Some(frame);
        }
    } else {
        a.pose.pos.x = a
            .pose
            .pos
            .x
            .clamp(-p.half.x + WALL_MARGIN, p.half.x - WALL_MARGIN);
        a.pose.pos.y = a
            .pose
            .pos
            .y
            .clamp(-p.half.y + WALL_MARGIN, p.half.y - WALL_MARGIN);
    }
    // Tail swish; a held tail moves less.
    let held_tail = matches!(mode, Mode::Hold { ev } if active[ev].part == Part::Tail && active[ev].contact_frame.is_some());
    let amp = if held_tail { 0.06 } else { 0.3 };
    a.pose.tail = amp * (std::f32::consts::TAU * a.tail_rate * t + a.tail_phase).sin();
    a.pose.ear_flick = 0.15 * (std::f32::consts::TAU * 0.7 * t + a.tail_phase * 1.7).sin();
}
