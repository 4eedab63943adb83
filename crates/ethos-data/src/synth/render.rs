//! Rendering of the synthetic barn: a static background per video (floor, straw, fence, walls,
//! lighting) and frames that draw the posed calves over it.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::raster::{Canvas, Paint};
use super::scene::{CalfLook, Camera, Pose, V2, calf_shapes};

/// What makes one camera look different from another: viewpoint, colours and lighting.
#[derive(Clone, Debug)]
pub struct CameraLook {
    /// Rotation of the pen in the image (radians).
    pub theta: f32,
    /// Perspective strength (0 = straight down).
    pub tilt: f32,
    /// Share of the frame the pen fills (scale).
    pub fill: f32,
    floor: [f32; 3],
    straw: [f32; 3],
    wall: [f32; 3],
    rail: [f32; 3],
    brightness: f32,
    grad_dir: f32,
    grad: f32,
    vignette: f32,
    straw_per_m2: f32,
    noise_amp: f32,
}

fn colour(rng: &mut ChaCha8Rng, base: [f32; 3], spread: f32) -> [f32; 3] {
    let shade: f32 = rng.random_range(-spread..spread);
    base.map(|c| (c + shade + rng.random_range(-spread * 0.5..spread * 0.5)).clamp(10.0, 245.0))
}

impl CameraLook {
    /// A random camera look.
    pub fn random(rng: &mut ChaCha8Rng) -> Self {
        let flip = if rng.random_bool(0.5) {
            std::f32::consts::PI
        } else {
            0.0
        };
        Self {
            theta: rng.random_range(-0.5..0.5) + flip,
            tilt: rng.random_range(0.0..0.35),
            fill: rng.random_range(0.82..0.98),
            floor: colour(rng, [140.0, 126.0, 104.0], 35.0),
            straw: colour(rng, [206.0, 178.0, 112.0], 22.0),
            wall: colour(rng, [96.0, 90.0, 84.0], 35.0),
            rail: colour(rng, [120.0, 88.0, 58.0], 25.0),
            brightness: rng.random_range(0.72..1.12),
            grad_dir: rng.random_range(0.0..std::f32::consts::TAU),
            grad: rng.random_range(0.0..0.45),
            vignette: rng.random_range(0.0..0.35),
            straw_per_m2: rng.random_range(8.0..45.0),
            noise_amp: rng.random_range(3.0..10.0),
        }
    }
}

/// Integer hash of three words (for value noise and per-pixel grain).
fn hash3(x: i32, y: i32, seed: u32) -> u32 {
    let mut h = (x as u32).wrapping_mul(0x8da6_b343)
        ^ (y as u32).wrapping_mul(0xd816_3841)
        ^ seed.wrapping_mul(0xcb1a_b31f);
    h ^= h >> 13;
    h = h.wrapping_mul(0x5bd1_e995);
    h ^= h >> 15;
    h
}

fn unit(h: u32) -> f32 {
    (h >> 8) as f32 / (1u32 << 24) as f32
}

/// Smooth value noise in [0, 1) at world point `p` (lattice spacing 1).
fn value_noise(p: V2, seed: u32) -> f32 {
    let (fx, fy) = (p.x.floor(), p.y.floor());
    let (ix, iy) = (fx as i32, fy as i32);
    let (tx, ty) = (p.x - fx, p.y - fy);
    let (sx, sy) = (tx * tx * (3.0 - 2.0 * tx), ty * ty * (3.0 - 2.0 * ty));
    let v = |dx: i32, dy: i32| unit(hash3(ix + dx, iy + dy, seed));
    let a = v(0, 0) + (v(1, 0) - v(0, 0)) * sx;
    let b = v(0, 1) + (v(1, 1) - v(0, 1)) * sx;
    a + (b - a) * sy
}

/// A video's static background and light map.
pub struct Background {
    /// `H * W * 3` RGB bytes (light applied).
    pub rgb: Vec<u8>,
    /// `H * W` light factors, 256 = 1.0 (applied to the calves as they are drawn).
    pub light: Vec<u16>,
}

/// Renders the background of a pen of half extents `half` seen by `cam` with `look`.
pub fn background(cam: &Camera, look: &CameraLook, half: V2, seed: u64) -> Background {
    let (w, h) = (cam.width, cam.height);
    let s32 = (seed ^ (seed >> 32)) as u32;
    let mut rgb = vec![0u8; w * h * 3];
    let mut light = vec![0u16; w * h];
    let (gc, gs) = (look.grad_dir.cos(), look.grad_dir.sin());
    let fence = 0.16f32;
    for y in 0..h {
        for x in 0..w {
            let (un, vn) = (x as f32 / w as f32 - 0.5, y as f32 / h as f32 - 0.5);
            let l = look.brightness
                * (1.0 + look.grad * 2.0 * (un * gc + vn * gs))
                * (1.0 - look.vignette * (un * un + vn * vn) * 2.0);
            let l = l.clamp(0.25, 1.6);
            let li = (l * 256.0) as u16;
            light[y * w + x] = li;
            let world = cam.unproject(x as f32 + 0.5, y as f32 + 0.5);
            let grain = (unit(hash3(x as i32, y as i32, s32)) - 0.5) * 2.0 * look.noise_amp;
            let c: [f32; 3] = match world {
                None => look.wall,
                Some(p) if p.x.abs() < half.x && p.y.abs() < half.y => {
                    let n = 0.82
                        + 0.3 * value_noise(p.scale(1.6), s32 ^ 1)
                        + 0.08 * value_noise(p.scale(6.0), s32 ^ 2);
                    look.floor.map(|c| c * n)
                }
                Some(p) if p.x.abs() < half.x + fence && p.y.abs() < half.y + fence => {
                    // Fence boards: bands along the pen edge.
                    let along = if p.x.abs() - half.x > p.y.abs() - half.y {
                        p.y
                    } else {
                        p.x
                    };
                    let n = 0.85 + 0.25 * value_noise(V2::new(along * 1.3, 0.5), s32 ^ 3);
                    look.rail.map(|c| c * n)
                }
                Some(p) => {
                    let n = 0.8 + 0.25 * value_noise(p.scale(0.8), s32 ^ 4);
                    look.wall.map(|c| c * n)
                }
            };
            let o = (y * w + x) * 3;
            for ch in 0..3 {
                rgb[o + ch] = ((c[ch] + grain) * l).clamp(0.0, 255.0) as u8;
            }
        }
    }
    let mut canvas = Canvas {
        width: w,
        height: h,
        rgb: &mut rgb,
        light: &light,
    };
    let mut rng = <ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed ^ 0x5742_4157);
    // Straw: short thin strokes lying on the floor, seen in the camera's perspective.
    let n_straw = (look.straw_per_m2 * 4.0 * half.x * half.y) as usize;
    for _ in 0..n_straw {
        let c = V2::new(
            rng.random_range(-half.x..half.x),
            rng.random_range(-half.y..half.y),
        );
        let d = V2::from_angle(rng.random_range(0.0..std::f32::consts::TAU))
            .scale(rng.random_range(0.06..0.18));
        let wdt = V2::new(-d.y, d.x).scale(rng.random_range(0.05..0.12));
        let shade = rng.random_range(0.75..1.15f32);
        let col = look.straw.map(|v| (v * shade).clamp(0.0, 255.0) as u8);
        let pts = [
            c.plus(d).plus(wdt),
            c.minus(d).plus(wdt),
            c.minus(d).minus(wdt),
            c.plus(d).minus(wdt),
        ];
        let poly: Vec<(f32, f32)> = pts.iter().map(|&p| cam.project(p)).collect();
        canvas.fill_polygon(&poly, Paint::Solid(col));
    }
    // Fence posts every metre along the pen edge.
    let post = look.rail.map(|v| (v * 0.6) as u8);
    let mut posts = Vec::new();
    let (nx, ny) = ((2.0 * half.x).ceil() as i32, (2.0 * half.y).ceil() as i32);
    for i in 0..=nx {
        let x = -half.x + 2.0 * half.x * i as f32 / nx as f32;
        posts.push(V2::new(x, -half.y - fence / 2.0));
        posts.push(V2::new(x, half.y + fence / 2.0));
    }
    for j in 0..=ny {
        let y = -half.y + 2.0 * half.y * j as f32 / ny as f32;
        posts.push(V2::new(-half.x - fence / 2.0, y));
        posts.push(V2::new(half.x + fence / 2.0, y));
    }
    for c in posts {
        let r = 0.1;
        let pts = [
            V2::new(c.x - r, c.y - r),
            V2::new(c.x + r, c.y - r),
            V2::new(c.x + r, c.y + r),
            V2::new(c.x - r, c.y + r),
        ];
        let poly: Vec<(f32, f32)> = pts.iter().map(|&p| cam.project(p)).collect();
        canvas.fill_polygon(&poly, Paint::Solid(post));
    }
    Background { rgb, light }
}

/// Draws one frame: the background, then the calves (free ones by depth, then sucked targets,
/// then suckers, so a sucker's head lies on the ear or tail it holds).
pub fn render_frame(
    bg: &Background,
    cam: &Camera,
    looks: &[CalfLook],
    poses: &[Pose],
    out: &mut [u8],
) {
    out.copy_from_slice(&bg.rgb);
    let mut order: Vec<usize> = (0..poses.len()).collect();
    let depth = |i: usize| cam.project(poses[i].pos).1;
    order.sort_by(|&a, &b| {
        (poses[a].layer, depth(a))
            .partial_cmp(&(poses[b].layer, depth(b)))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut canvas = Canvas {
        width: cam.width,
        height: cam.height,
        rgb: out,
        light: &bg.light,
    };
    for i in order {
        for (poly, paint) in calf_shapes(&poses[i], &looks[i], cam) {
            canvas.fill_polygon(&poly, paint);
        }
    }
}
