//! TrivialAugmentWide (Müller & Hutter 2021) as torchvision defines it for uint8 images: one of 14
//! operations with one of 31 magnitude bins (and a random sign for signed ops), drawn once per clip
//! and applied to every frame. Ops that use image statistics (Contrast, AutoContrast, Equalize)
//! compute them per frame, as torchvision does on a `(T, C, H, W)` video tensor.
//!
//! The arithmetic follows torchvision's tensor kernels (`transforms/v2/functional`): float32
//! intermediate values, truncation on the cast back to uint8, nearest-neighbour sampling on
//! torchvision's affine grid with zero fill.

use ethos_video::Clip;
use rand::Rng;

/// The 14 operations of TrivialAugmentWide, in torchvision's order (the op draw indexes this).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AugmentOp {
    /// No change.
    Identity,
    /// Shear along x about the top-left corner by `atan(m)` (m in [-0.99, 0.99]).
    ShearX,
    /// Shear along y about the top-left corner.
    ShearY,
    /// Shift by `int(m)` pixels along x (m in [-32, 32]).
    TranslateX,
    /// Shift by `int(m)` pixels along y.
    TranslateY,
    /// Rotate counter-clockwise by `m` degrees about the centre (m in [-135, 135]).
    Rotate,
    /// Multiply by `1 + m`.
    Brightness,
    /// Blend with the greyscale image by `1 + m` (saturation).
    Color,
    /// Blend with the frame's mean grey by `1 + m`.
    Contrast,
    /// Blend with a 3x3 smoothed image by `1 + m` (borders kept).
    Sharpness,
    /// Keep the top `m` bits (m in 8..=2).
    Posterize,
    /// Invert values >= `255 * m` (m in [1, 0]).
    Solarize,
    /// Stretch each channel of each frame to [0, 255].
    AutoContrast,
    /// PIL-style histogram equalisation per channel of each frame.
    Equalize,
}

/// All ops in torchvision's order.
pub const ALL_OPS: [AugmentOp; 14] = [
    AugmentOp::Identity,
    AugmentOp::ShearX,
    AugmentOp::ShearY,
    AugmentOp::TranslateX,
    AugmentOp::TranslateY,
    AugmentOp::Rotate,
    AugmentOp::Brightness,
    AugmentOp::Color,
    AugmentOp::Contrast,
    AugmentOp::Sharpness,
    AugmentOp::Posterize,
    AugmentOp::Solarize,
    AugmentOp::AutoContrast,
    AugmentOp::Equalize,
];

/// Number of magnitude bins of TrivialAugmentWide.
pub const NUM_BINS: usize = 31;

// torch.linspace(0, 0.99, 31), torch.linspace(0, 32, 31) and torch.linspace(1, 0, 31) in float32 as
// PyTorch's CPU kernel produces them. They differ from the exact values by an ulp in places, which
// matters: `int(15.999999)` is a 15-pixel translation in torchvision, not 16.
const LINSPACE_0_99: [f32; NUM_BINS] = [
    0.0, 0.033, 0.066, 0.099, 0.132, 0.16499999, 0.198, 0.231, 0.264, 0.297, 0.32999998, 0.363,
    0.396, 0.429, 0.462, 0.495, 0.528, 0.561, 0.594, 0.62700003, 0.66, 0.693, 0.726, 0.759, 0.792,
    0.825, 0.85800004, 0.89100003, 0.924, 0.957, 0.99,
];
const LINSPACE_32: [f32; NUM_BINS] = [
    0.0, 1.0666667, 2.1333334, 3.2000003, 4.266667, 5.3333335, 6.4000006, 7.466667, 8.533334, 9.6,
    10.666667, 11.733334, 12.800001, 13.866668, 14.933334, 15.999999, 17.066666, 18.133333,
    19.199999, 20.266666, 21.333332, 22.4, 23.466667, 24.533333, 25.6, 26.666666, 27.733334, 28.8,
    29.866667, 30.933332, 32.0,
];
const LINSPACE_1_0: [f32; NUM_BINS] = [
    1.0,
    0.96666664,
    0.93333334,
    0.9,
    0.8666667,
    0.8333333,
    0.8,
    0.76666665,
    0.73333335,
    0.7,
    0.6666666,
    0.6333333,
    0.59999996,
    0.56666666,
    0.5333333,
    0.5,
    0.4666667,
    0.43333337,
    0.40000004,
    0.36666667,
    0.33333334,
    0.3,
    0.26666668,
    0.23333335,
    0.20000002,
    0.16666667,
    0.13333334,
    0.10000001,
    0.06666667,
    0.033333335,
    0.0,
];

/// One drawn augmentation: the op and its signed magnitude (torchvision's `magnitude` argument).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AugmentParams {
    /// The operation.
    pub op: AugmentOp,
    /// Its magnitude, sign applied (0 for ops without magnitude).
    pub magnitude: f64,
}

/// The magnitude of `op` at `bin` (0..31), before the sign. Ops without magnitude give 0.
pub fn magnitude(op: AugmentOp, bin: usize) -> f64 {
    use AugmentOp::*;
    match op {
        Identity | AutoContrast | Equalize => 0.0,
        ShearX | ShearY | Brightness | Color | Contrast | Sharpness => LINSPACE_0_99[bin] as f64,
        TranslateX | TranslateY => LINSPACE_32[bin] as f64,
        // linspace(0, 135, 31) is exact in float32: multiples of 4.5.
        Rotate => 4.5 * bin as f64,
        // 8 - round(bin / 5): bins 0..=2 -> 8 bits, ..., 28..=30 -> 2 bits (no ties occur).
        Posterize => (8 - (bin as f64 / 5.0).round_ties_even() as i64) as f64,
        Solarize => LINSPACE_1_0[bin] as f64,
    }
}

fn is_signed(op: AugmentOp) -> bool {
    use AugmentOp::*;
    matches!(
        op,
        ShearX
            | ShearY
            | TranslateX
            | TranslateY
            | Rotate
            | Brightness
            | Color
            | Contrast
            | Sharpness
    )
}

/// Draws one TrivialAugmentWide setting. Always three draws, in order: op, bin, sign, so the
/// stream position after it does not depend on the op.
pub fn sample_params(rng: &mut impl Rng) -> AugmentParams {
    let op = ALL_OPS[rng.random_range(0..ALL_OPS.len())];
    let bin = rng.random_range(0..NUM_BINS);
    let negative = rng.random_bool(0.5);
    let mut m = magnitude(op, bin);
    if is_signed(op) && negative {
        m = -m;
    }
    AugmentParams { op, magnitude: m }
}

/// Marks an output pixel of a warp whose source lies outside the frame (zero fill).
pub(crate) const OUTSIDE: u32 = u32::MAX;

/// Buffers one worker reuses from clip to clip, so applying an op allocates nothing once warm.
#[derive(Debug, Default, Clone)]
pub struct AugmentScratch {
    /// Warp: source pixel index of each output pixel, or [`OUTSIDE`].
    pub(crate) map: Vec<u32>,
    /// Color / Sharpness: `blend[a * 256 + v]`, the op's result for grey (Color) or smoothed
    /// value (Sharpness) `a` and input value `v`.
    blend: Vec<u8>,
    /// Sharpness: the previous and current input rows.
    rows: Vec<u8>,
    /// Sharpness: per byte of a row, the sum of the three rows around it.
    col_sums: Vec<u16>,
    /// Warp output of one frame (uint8 path).
    frame: Vec<u8>,
}

/// How a clip's op is carried out once it is set up by [`prepare`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[expect(
    clippy::large_enum_variant,
    reason = "one short-lived value per clip; the 256-byte table is cheaper inline than boxed"
)]
pub(crate) enum Prepared {
    /// Nothing changes.
    Identity,
    /// One value map for every channel of every frame (Brightness, Posterize, Solarize).
    Lut([u8; 256]),
    /// A value map per channel computed from each frame's statistics ([`frame_luts`]).
    FrameLuts,
    /// Nearest-neighbour gather through `scratch.map` (Shear, Translate, Rotate).
    Warp,
    /// A per-pixel rewrite in place ([`blend_frame`]: Color, Sharpness).
    Blend,
}

/// Sets up `params` for `h` x `w` frames: builds the warp map or the blend table in `scratch`.
pub(crate) fn prepare(
    params: AugmentParams,
    h: usize,
    w: usize,
    scratch: &mut AugmentScratch,
) -> Prepared {
    use AugmentOp::*;
    let m = params.magnitude;
    match params.op {
        Identity => Prepared::Identity,
        Brightness | Posterize | Solarize => Prepared::Lut(value_lut(params.op, m)),
        Contrast | AutoContrast | Equalize => Prepared::FrameLuts,
        ShearX | ShearY | TranslateX | TranslateY | Rotate => {
            if warp_map(params.op, m, h, w, &mut scratch.map) {
                Prepared::Warp
            } else {
                Prepared::Identity
            }
        }
        Color => {
            // torchvision `_blend`: image * ratio, then `add_(grey, alpha=1 - ratio)`, which the
            // vectorised kernel computes as one fused multiply-add.
            let ratio = (1.0 + m) as f32;
            let alpha = (1.0 - (1.0 + m)) as f32;
            fill_blend(&mut scratch.blend, |grey, v| fused(grey, alpha, v * ratio));
            Prepared::Blend
        }
        Sharpness => {
            // `x + (1 - factor) * (blur - x)` in float32, fused.
            let alpha = (1.0 - (1.0 + m)) as f32;
            fill_blend(&mut scratch.blend, |blur, v| fused(blur - v, alpha, v));
            Prepared::Blend
        }
    }
}

/// Tabulates `f(a, v)` (then clamped and truncated to uint8) for every pair of uint8 values, so
/// the per-pixel work is a lookup computed with exactly the reference arithmetic.
fn fill_blend(table: &mut Vec<u8>, f: impl Fn(f32, f32) -> f32) {
    table.resize(256 * 256, 0);
    for (a, row) in table.chunks_exact_mut(256).enumerate() {
        for (v, slot) in row.iter_mut().enumerate() {
            *slot = to_u8(f(a as f32, v as f32));
        }
    }
}

/// The value map of an op whose result depends only on the input value.
fn value_lut(op: AugmentOp, m: f64) -> [u8; 256] {
    let mut lut = [0u8; 256];
    match op {
        AugmentOp::Brightness => {
            let f = (1.0 + m) as f32;
            for (v, slot) in lut.iter_mut().enumerate() {
                *slot = to_u8(v as f32 * f);
            }
        }
        AugmentOp::Posterize => {
            let bits = (m as u32).min(8);
            let mask = (((1u32 << bits) - 1) << (8 - bits)) as u8;
            for (v, slot) in lut.iter_mut().enumerate() {
                *slot = v as u8 & mask;
            }
        }
        AugmentOp::Solarize => {
            let threshold = (255.0 * m) as f32;
            for (v, slot) in lut.iter_mut().enumerate() {
                *slot = if v as f32 >= threshold {
                    255 - v as u8
                } else {
                    v as u8
                };
            }
        }
        _ => {
            for (v, slot) in lut.iter_mut().enumerate() {
                *slot = v as u8;
            }
        }
    }
    lut
}

/// The identity value map.
pub(crate) const IDENTITY_LUT: [u8; 256] = {
    let mut lut = [0u8; 256];
    let mut v = 0;
    while v < 256 {
        lut[v] = v as u8;
        v += 1;
    }
    lut
};

/// Per-channel value maps of the ops that use the statistics of one `(H, W, 3)` frame
/// (Contrast: mean grey; AutoContrast: per-channel min/max; Equalize: per-channel histogram).
/// Other ops give identity maps.
pub(crate) fn frame_luts(params: AugmentParams, frame: &[u8]) -> [[u8; 256]; 3] {
    let mut luts = [IDENTITY_LUT; 3];
    let pixels = frame.len() / 3;
    if pixels == 0 {
        return luts;
    }
    match params.op {
        AugmentOp::Contrast => {
            let g = grey_tables();
            let sum: u64 = frame
                .chunks_exact(3)
                .map(|px| g.grey(px[0], px[1], px[2]) as u64)
                .sum();
            // The sum of integer greys is exact in f64, as torch's float sum is on these sizes.
            let mean = (sum as f64 / pixels as f64) as f32;
            let ratio = (1.0 + params.magnitude) as f32;
            let alpha = (1.0 - (1.0 + params.magnitude)) as f32;
            for (v, slot) in luts[0].iter_mut().enumerate() {
                *slot = to_u8(fused(mean, alpha, v as f32 * ratio));
            }
            luts[1] = luts[0];
            luts[2] = luts[0];
        }
        AugmentOp::AutoContrast => {
            // torchvision v2 arithmetic: per channel, `(v - min) / ((max - min) / 255)`.
            // Per byte lane of 16-pixel blocks (vectorises), then per channel: lane i is channel i % 3.
            let (mut lo48, mut hi48) = ([255u8; 48], [0u8; 48]);
            let blocks = frame.chunks_exact(48);
            let rest = blocks.remainder();
            for block in blocks {
                for i in 0..48 {
                    lo48[i] = lo48[i].min(block[i]);
                    hi48[i] = hi48[i].max(block[i]);
                }
            }
            for (i, &v) in rest.iter().enumerate() {
                lo48[i] = lo48[i].min(v);
                hi48[i] = hi48[i].max(v);
            }
            let (mut lo, mut hi) = ([255u8; 3], [0u8; 3]);
            for i in 0..48 {
                lo[i % 3] = lo[i % 3].min(lo48[i]);
                hi[i % 3] = hi[i % 3].max(hi48[i]);
            }
            for c in 0..3 {
                if lo[c] == hi[c] {
                    continue;
                }
                let inv_scale = (hi[c] - lo[c]) as f32 * (1.0f64 / 255.0) as f32;
                let low = lo[c] as f32;
                for (v, slot) in luts[c].iter_mut().enumerate() {
                    *slot = to_u8((v as f32 - low) / inv_scale);
                }
            }
        }
        AugmentOp::Equalize => {
            // PIL / torchvision: `lut[k] = (cum[k-1] + step/2) / step` with
            // `step = (pixels - count of the largest value) / 255`; unchanged when step is 0.
            let mut hist = [[0u32; 256]; 3];
            for px in frame.chunks_exact(3) {
                hist[0][px[0] as usize] += 1;
                hist[1][px[1] as usize] += 1;
                hist[2][px[2] as usize] += 1;
            }
            for c in 0..3 {
                let hist = &hist[c];
                let last = hist.iter().rposition(|&n| n > 0).unwrap_or(0);
                let step = (pixels - hist[last] as usize) / 255;
                if step == 0 {
                    continue;
                }
                let lut = &mut luts[c];
                lut[0] = 0;
                let mut cum = 0usize;
                for k in 1..256 {
                    cum += hist[k - 1] as usize;
                    lut[k] = ((cum + step / 2) / step).min(255) as u8;
                }
            }
        }
        _ => {}
    }
    luts
}

/// Rewrites one `h` x `w` frame in place with the table [`prepare`] built (Color or Sharpness).
pub(crate) fn blend_frame(
    op: AugmentOp,
    frame: &mut [u8],
    h: usize,
    w: usize,
    scratch: &mut AugmentScratch,
) {
    let blend = &scratch.blend[..];
    match op {
        AugmentOp::Color => {
            let g = grey_tables();
            for px in frame.chunks_exact_mut(3) {
                let row = &blend[(g.grey(px[0], px[1], px[2]) as usize) << 8..][..256];
                px[0] = row[px[0] as usize];
                px[1] = row[px[1] as usize];
                px[2] = row[px[2] as usize];
            }
        }
        AugmentOp::Sharpness => {
            sharpen(frame, h, w, blend, &mut scratch.rows, &mut scratch.col_sums)
        }
        _ => {}
    }
}

/// torchvision `adjust_sharpness` inside the border: the 3x3 [1 1 1; 1 5 1; 1 1 1]/13 smoothing
/// (rounded to uint8) blended through `blend`; border rows and columns are kept.
fn sharpen(
    frame: &mut [u8],
    h: usize,
    w: usize,
    blend: &[u8],
    rows: &mut Vec<u8>,
    sums: &mut Vec<u16>,
) {
    if h <= 2 || w <= 2 {
        return;
    }
    let rb = w * 3;
    rows.resize(2 * rb, 0);
    sums.resize(rb, 0);
    let (prev, cur) = rows.split_at_mut(rb);
    let (mut prev, mut cur) = (prev, cur);
    prev.copy_from_slice(&frame[..rb]);
    for y in 1..h - 1 {
        let (head, tail) = frame.split_at_mut((y + 1) * rb);
        let out = &mut head[y * rb..];
        let next = &tail[..rb];
        cur.copy_from_slice(out);
        for (((s, &a), &b), &c) in sums.iter_mut().zip(&*prev).zip(&*cur).zip(next) {
            *s = a as u16 + b as u16 + c as u16;
        }
        let inner = out[3..rb - 3]
            .iter_mut()
            .zip(&cur[3..rb - 3])
            .zip(sums.windows(7));
        for ((o, &v), s) in inner {
            let sum = s[0] as u32 + s[3] as u32 + s[6] as u32 + 4 * v as u32;
            // sum / 13 is never exactly halfway, so integer rounding equals torch's float32 round.
            let blur = (2 * sum + 13) / 26;
            *o = blend[((blur as usize) << 8 | v as usize) & 0xffff];
        }
        std::mem::swap(&mut prev, &mut cur);
    }
}

/// Applies `params` to every frame of `clip`.
pub fn apply(clip: &mut Clip, params: AugmentParams) {
    apply_with(clip, params, &mut AugmentScratch::default());
}

/// As [`apply`], reusing `scratch`'s buffers.
pub fn apply_with(clip: &mut Clip, params: AugmentParams, scratch: &mut AugmentScratch) {
    let (h, w) = (clip.height, clip.width);
    if clip.frames == 0 || h == 0 || w == 0 {
        return;
    }
    match prepare(params, h, w, scratch) {
        Prepared::Identity => {}
        Prepared::Lut(lut) => {
            for v in clip.data.iter_mut() {
                *v = lut[*v as usize];
            }
        }
        Prepared::FrameLuts => {
            for t in 0..clip.frames {
                let luts = frame_luts(params, clip.frame(t));
                for px in clip.frame_mut(t).chunks_exact_mut(3) {
                    px[0] = luts[0][px[0] as usize];
                    px[1] = luts[1][px[1] as usize];
                    px[2] = luts[2][px[2] as usize];
                }
            }
        }
        Prepared::Warp => {
            let mut out = std::mem::take(&mut scratch.frame);
            out.resize(h * w * 3, 0);
            for t in 0..clip.frames {
                let frame = clip.frame_mut(t);
                for (dst, &i) in out.chunks_exact_mut(3).zip(&scratch.map) {
                    if i == OUTSIDE {
                        dst.fill(0);
                    } else {
                        let i = i as usize * 3;
                        dst.copy_from_slice(&frame[i..i + 3]);
                    }
                }
                frame.copy_from_slice(&out);
            }
            scratch.frame = out;
        }
        Prepared::Blend => {
            for t in 0..clip.frames {
                blend_frame(params.op, clip.frame_mut(t), h, w, scratch);
            }
        }
    }
}

/// `a.mul_add(b, c)` (one rounding) without the libm call `mul_add` becomes on x86-64 builds
/// without FMA: the f64 product of two f32 is exact, and when its f64 sum with `c` is exact too
/// (Fast2Sum's error term is zero) one rounding to f32 gives the fused result. Otherwise it
/// falls back to `mul_add`.
#[inline]
fn fused(a: f32, b: f32, c: f32) -> f32 {
    let p = a as f64 * b as f64;
    let c = c as f64;
    let s = p + c;
    let (big, small) = if p.abs() >= c.abs() { (p, c) } else { (c, p) };
    if small - (s - big) == 0.0 {
        s as f32
    } else {
        a.mul_add(b, c as f32)
    }
}

/// float32 -> uint8 as torch's `clamp(0, 255).to(uint8)`: clamp, then truncate.
fn to_u8(v: f32) -> u8 {
    v.clamp(0.0, 255.0) as u8
}

/// torchvision's greyscale `floor(0.2989 r + 0.587 g + 0.114 b)` in float32 with fused adds, as
/// its vectorised kernel computes it, without a libm `fmaf` per pixel.
///
/// Fast path: the exact sum in fixed point (the three float32 weights are integers times 2^-27,
/// so the sum is exact in a u64); its floor is the float result unless the fraction lies within
/// 2^-14 of an integer, more than the float path's three roundings (< 2^-15) can move it.
/// Otherwise, the float path by table: `g * 0.587f` and `b * 0.114f` are exact in f64 and so are
/// the sums with the float32 partial results (at most 35 significant bits), so one rounding to
/// f32 gives the fused result. Values are >= 0, so truncation is the floor. (Checked against
/// `mul_add` for all 2^24 colours in a test.)
struct GreyTables {
    r: [f32; 256],
    g: [f64; 256],
    b: [f64; 256],
    fixed: [[u64; 256]; 3],
}

/// Fixed-point scale of [`GreyTables::fixed`]: 2^27 units per grey level.
const GREY_SHIFT: u32 = 27;
/// How close to an integer the exact sum may come before the float path decides: 2^-14.
const GREY_MARGIN: u64 = 1 << (GREY_SHIFT - 14);

impl GreyTables {
    #[inline]
    fn grey(&self, r: u8, g: u8, b: u8) -> u8 {
        let exact =
            self.fixed[0][r as usize] + self.fixed[1][g as usize] + self.fixed[2][b as usize];
        let frac = exact & ((1 << GREY_SHIFT) - 1);
        if frac.wrapping_sub(GREY_MARGIN) < (1 << GREY_SHIFT) - 2 * GREY_MARGIN {
            (exact >> GREY_SHIFT) as u8
        } else {
            self.grey_float(r, g, b)
        }
    }

    #[inline(never)]
    fn grey_float(&self, r: u8, g: u8, b: u8) -> u8 {
        let l = (self.g[g as usize] + self.r[r as usize] as f64) as f32;
        ((self.b[b as usize] + l as f64) as f32) as u8
    }
}

fn grey_tables() -> &'static GreyTables {
    static TABLES: std::sync::LazyLock<GreyTables> = std::sync::LazyLock::new(|| {
        let weights = [0.2989f32, 0.587f32, 0.114f32];
        GreyTables {
            r: std::array::from_fn(|v| v as f32 * weights[0]),
            g: std::array::from_fn(|v| v as f64 * weights[1] as f64),
            b: std::array::from_fn(|v| v as f64 * weights[2] as f64),
            // Exact: each weight has no bits below 2^-27.
            fixed: weights.map(|wt| {
                let units = (wt as f64 * (1u64 << GREY_SHIFT) as f64) as u64;
                std::array::from_fn(|v| v as u64 * units)
            }),
        }
    });
    &TABLES
}

/// torchvision `_get_inverse_affine_matrix(center, angle, translate, scale=1, shear)`: the 2x3
/// matrix mapping output coordinates (relative to the image centre) to input coordinates.
fn inverse_affine(
    center: [f64; 2],
    angle_deg: f64,
    translate: [f64; 2],
    shear_deg: [f64; 2],
) -> [f64; 6] {
    let rot = angle_deg.to_radians();
    let sx = shear_deg[0].to_radians();
    let sy = shear_deg[1].to_radians();
    let [cx, cy] = center;
    let [tx, ty] = translate;
    let a = (rot - sy).cos() / sy.cos();
    let b = -(rot - sy).cos() * sx.tan() / sy.cos() - rot.sin();
    let c = (rot - sy).sin() / sy.cos();
    let d = -(rot - sy).sin() * sx.tan() / sy.cos() + rot.cos();
    let mut m = [d, -b, 0.0, -c, a, 0.0];
    m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty);
    m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty);
    m[2] += cx;
    m[5] += cy;
    m
}

/// The source pixel of every output pixel of a geometric op on `h` x `w` frames, into `map`
/// (row-major, [`OUTSIDE`] for zero fill). False (map untouched) when `op` moves nothing.
pub(crate) fn warp_map(op: AugmentOp, m: f64, h: usize, w: usize, map: &mut Vec<u32>) -> bool {
    use AugmentOp::*;
    let centre = [-(w as f64) * 0.5, -(h as f64) * 0.5];
    let matrix = match op {
        ShearX => inverse_affine(centre, 0.0, [0.0, 0.0], [m.atan().to_degrees(), 0.0]),
        ShearY => inverse_affine(centre, 0.0, [0.0, 0.0], [0.0, m.atan().to_degrees()]),
        TranslateX => inverse_affine([0.0, 0.0], 0.0, [m.trunc(), 0.0], [0.0, 0.0]),
        TranslateY => inverse_affine([0.0, 0.0], 0.0, [0.0, m.trunc()], [0.0, 0.0]),
        Rotate => {
            // torchvision `rotate(angle)` without expand: exact transposes for multiples of 90
            // degrees where torchvision takes them, otherwise the affine warp, negated angle.
            let angle = m.rem_euclid(360.0);
            let quarter_turns = match angle {
                0.0 => return false,
                180.0 => 2,
                90.0 if h == w => 1,
                270.0 if h == w => 3,
                _ => {
                    let matrix = inverse_affine([0.0, 0.0], -angle, [0.0, 0.0], [0.0, 0.0]);
                    affine_map(h, w, matrix, map);
                    return true;
                }
            };
            map.clear();
            for y in 0..h {
                for x in 0..w {
                    // Counter-clockwise quarter turns (torch.rot90 on dims (H, W)).
                    let (sy, sx) = match quarter_turns {
                        1 => (x, w - 1 - y),
                        2 => (h - 1 - y, w - 1 - x),
                        _ => (h - 1 - x, y),
                    };
                    map.push((sy * w + sx) as u32);
                }
            }
            return true;
        }
        _ => return false,
    };
    affine_map(h, w, matrix, map);
    true
}

/// Nearest-neighbour sampling on torchvision's grid (`_affine_grid` + `grid_sample(align_corners=False)`,
/// float32) as a source index per output pixel. Computed once per clip with the reference
/// per-pixel arithmetic (an incremental form would round differently at ties).
fn affine_map(h: usize, w: usize, matrix: [f64; 6], map: &mut Vec<u32>) {
    let (hw, hh) = (0.5 * w as f32, 0.5 * h as f32);
    // rescaled_theta = theta^T / [w/2, h/2]
    let t: [f32; 6] = matrix.map(|v| v as f32);
    let (x0, x1, x2) = (t[0] / hw, t[1] / hw, t[2] / hw);
    let (y0, y1, y2) = (t[3] / hh, t[4] / hh, t[5] / hh);
    let (wf, hf) = (w as f32, h as f32);
    map.clear();
    for oy in 0..h {
        let by = oy as f32 + 0.5 - hh;
        for ox in 0..w {
            let bx = ox as f32 + 0.5 - hw;
            let gx = bx * x0 + by * x1 + x2;
            let gy = bx * y0 + by * y1 + y2;
            let ix = rint(((gx + 1.0) * wf - 1.0) / 2.0);
            let iy = rint(((gy + 1.0) * hf - 1.0) / 2.0);
            map.push(if ix >= 0.0 && iy >= 0.0 && ix < wf && iy < hf {
                (iy as usize * w + ix as usize) as u32
            } else {
                OUTSIDE
            });
        }
    }
}

/// Round half to even (`nearbyint`, as grid_sample's nearest mode) without a libm call: adding
/// and subtracting 1.5 * 2^23 rounds in the FPU's default mode for |v| < 2^22; larger values
/// are far outside any frame and only need to stay out of range.
#[inline]
fn rint(v: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    if v.abs() < 4_194_304.0 {
        (v + MAGIC) - MAGIC
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The per-pixel implementation these ops had before the table-driven one: the oracle the
    /// fast paths are checked against (and itself checked against torchvision by the golden test's
    /// history).
    mod reference {
        use super::super::{AugmentOp, AugmentParams, inverse_affine, rint, to_u8};
        use ethos_video::Clip;

        // Applies `params` to every frame of `clip`.
        pub(super) fn apply(clip: &mut Clip, params: AugmentParams) {
            let (h, w) = (clip.height, clip.width);
            if clip.frames == 0 || h == 0 || w == 0 {
                return;
            }
            let m = params.magnitude;
            let mut scratch = vec![0u8; h * w * 3];
            for t in 0..clip.frames {
                let frame = clip.frame_mut(t);
                use AugmentOp::*;
                match params.op {
                    Identity => {}
                    ShearX => {
                        let s = m.atan().to_degrees();
                        let matrix = inverse_affine(
                            [-(w as f64) * 0.5, -(h as f64) * 0.5],
                            0.0,
                            [0.0, 0.0],
                            [s, 0.0],
                        );
                        affine_nearest(frame, &mut scratch, h, w, matrix);
                    }
                    ShearY => {
                        let s = m.atan().to_degrees();
                        let matrix = inverse_affine(
                            [-(w as f64) * 0.5, -(h as f64) * 0.5],
                            0.0,
                            [0.0, 0.0],
                            [0.0, s],
                        );
                        affine_nearest(frame, &mut scratch, h, w, matrix);
                    }
                    TranslateX => {
                        let matrix = inverse_affine([0.0, 0.0], 0.0, [m.trunc(), 0.0], [0.0, 0.0]);
                        affine_nearest(frame, &mut scratch, h, w, matrix);
                    }
                    TranslateY => {
                        let matrix = inverse_affine([0.0, 0.0], 0.0, [0.0, m.trunc()], [0.0, 0.0]);
                        affine_nearest(frame, &mut scratch, h, w, matrix);
                    }
                    Rotate => rotate(frame, &mut scratch, h, w, m),
                    Brightness => {
                        let f = (1.0 + m) as f32;
                        for v in frame.iter_mut() {
                            *v = to_u8(*v as f32 * f);
                        }
                    }
                    Color => {
                        // torchvision `_blend`: image * ratio, then `add_(grey, alpha=1 - ratio)`, which the
                        // vectorised kernel computes as one fused multiply-add.
                        let ratio = (1.0 + m) as f32;
                        let alpha = (1.0 - (1.0 + m)) as f32;
                        for px in frame.chunks_exact_mut(3) {
                            let grey = grey_floor(px);
                            for v in px.iter_mut() {
                                *v = to_u8(grey.mul_add(alpha, *v as f32 * ratio));
                            }
                        }
                    }
                    Contrast => {
                        let sum: f64 = frame.chunks_exact(3).map(|px| grey_floor(px) as f64).sum();
                        let mean = (sum / (h * w) as f64) as f32;
                        let ratio = (1.0 + m) as f32;
                        let alpha = (1.0 - (1.0 + m)) as f32;
                        for v in frame.iter_mut() {
                            *v = to_u8(mean.mul_add(alpha, *v as f32 * ratio));
                        }
                    }
                    Sharpness => sharpness(frame, &mut scratch, h, w, 1.0 + m),
                    Posterize => {
                        let bits = m as u32;
                        let mask = (((1u32 << bits) - 1) << (8 - bits)) as u8;
                        for v in frame.iter_mut() {
                            *v &= mask;
                        }
                    }
                    Solarize => {
                        let threshold = (255.0 * m) as f32;
                        for v in frame.iter_mut() {
                            if *v as f32 >= threshold {
                                *v = 255 - *v;
                            }
                        }
                    }
                    AutoContrast => autocontrast(frame),
                    Equalize => equalize(frame),
                }
            }
        }

        /// torchvision's greyscale `floor(0.2989 r + 0.587 g + 0.114 b)` in float32 (fused adds, as the
        /// vectorised kernel computes them).
        pub(super) fn grey_floor(px: &[u8]) -> f32 {
            let l = px[0] as f32 * 0.2989f32;
            let l = (px[1] as f32).mul_add(0.587f32, l);
            (px[2] as f32).mul_add(0.114f32, l).floor()
        }

        /// Nearest-neighbour warp on torchvision's grid (`_affine_grid` + `grid_sample(align_corners=False)`,
        /// float32), zero outside the frame.
        fn affine_nearest(
            frame: &mut [u8],
            scratch: &mut [u8],
            h: usize,
            w: usize,
            matrix: [f64; 6],
        ) {
            let (hw, hh) = (0.5 * w as f32, 0.5 * h as f32);
            // rescaled_theta = theta^T / [w/2, h/2]
            let t: [f32; 6] = matrix.map(|v| v as f32);
            let (x0, x1, x2) = (t[0] / hw, t[1] / hw, t[2] / hw);
            let (y0, y1, y2) = (t[3] / hh, t[4] / hh, t[5] / hh);
            let (wf, hf) = (w as f32, h as f32);
            for oy in 0..h {
                let by = oy as f32 + 0.5 - hh;
                for ox in 0..w {
                    let bx = ox as f32 + 0.5 - hw;
                    let gx = bx * x0 + by * x1 + x2;
                    let gy = bx * y0 + by * y1 + y2;
                    let ix = rint(((gx + 1.0) * wf - 1.0) / 2.0);
                    let iy = rint(((gy + 1.0) * hf - 1.0) / 2.0);
                    let o = (oy * w + ox) * 3;
                    if ix >= 0.0 && iy >= 0.0 && ix < wf && iy < hf {
                        let i = (iy as usize * w + ix as usize) * 3;
                        scratch[o..o + 3].copy_from_slice(&frame[i..i + 3]);
                    } else {
                        scratch[o..o + 3].fill(0);
                    }
                }
            }
            frame.copy_from_slice(scratch);
        }

        /// torchvision `rotate(angle)` without expand: exact transposes for multiples of 90 degrees where
        /// torchvision takes them, otherwise the affine warp with the negated angle.
        fn rotate(frame: &mut [u8], scratch: &mut [u8], h: usize, w: usize, angle: f64) {
            let angle = angle.rem_euclid(360.0);
            let quarter_turns = match angle {
                0.0 => return,
                180.0 => 2,
                90.0 if h == w => 1,
                270.0 if h == w => 3,
                _ => {
                    let matrix = inverse_affine([0.0, 0.0], -angle, [0.0, 0.0], [0.0, 0.0]);
                    return affine_nearest(frame, scratch, h, w, matrix);
                }
            };
            for y in 0..h {
                for x in 0..w {
                    // Counter-clockwise quarter turns (torch.rot90 on dims (H, W)).
                    let (sy, sx) = match quarter_turns {
                        1 => (x, w - 1 - y),
                        2 => (h - 1 - y, w - 1 - x),
                        _ => (h - 1 - x, y),
                    };
                    let (o, i) = ((y * w + x) * 3, (sy * w + sx) * 3);
                    scratch[o..o + 3].copy_from_slice(&frame[i..i + 3]);
                }
            }
            frame.copy_from_slice(scratch);
        }

        /// torchvision `adjust_sharpness`: blend with the 3x3 [1 1 1; 1 5 1; 1 1 1]/13 smoothing (rounded to
        /// uint8) inside the border, `x + (1 - factor) * (blur - x)` in float32, truncated.
        fn sharpness(frame: &mut [u8], scratch: &mut [u8], h: usize, w: usize, factor: f64) {
            if h <= 2 || w <= 2 {
                return;
            }
            let alpha = (1.0 - factor) as f32;
            scratch.copy_from_slice(frame);
            for y in 1..h - 1 {
                for x in 1..w - 1 {
                    for c in 0..3 {
                        let at = |yy: usize, xx: usize| scratch[(yy * w + xx) * 3 + c] as u32;
                        let mut sum = 4 * at(y, x);
                        for yy in y - 1..=y + 1 {
                            for xx in x - 1..=x + 1 {
                                sum += at(yy, xx);
                            }
                        }
                        // sum / 13 is never exactly halfway, so integer rounding equals torch's float32 round.
                        let blur = ((2 * sum + 13) / 26) as f32;
                        let v = at(y, x) as f32;
                        frame[(y * w + x) * 3 + c] = to_u8((blur - v).mul_add(alpha, v));
                    }
                }
            }
        }

        /// torchvision `autocontrast` (v2 arithmetic): per channel, `(v - min) / ((max - min) / 255)`.
        fn autocontrast(frame: &mut [u8]) {
            for c in 0..3 {
                let (mut lo, mut hi) = (255u8, 0u8);
                for px in frame.chunks_exact(3) {
                    lo = lo.min(px[c]);
                    hi = hi.max(px[c]);
                }
                if lo == hi {
                    continue;
                }
                let inv_scale = (hi - lo) as f32 * (1.0f64 / 255.0) as f32;
                let lo = lo as f32;
                for px in frame.chunks_exact_mut(3) {
                    px[c] = to_u8((px[c] as f32 - lo) / inv_scale);
                }
            }
        }

        /// PIL / torchvision `equalize` per channel: `lut[k] = (cum[k-1] + step/2) / step` with
        /// `step = (pixels - count of the largest value) / 255`; unchanged when step is 0.
        fn equalize(frame: &mut [u8]) {
            let pixels = frame.len() / 3;
            for c in 0..3 {
                let mut hist = [0usize; 256];
                for px in frame.chunks_exact(3) {
                    hist[px[c] as usize] += 1;
                }
                let last = hist.iter().rposition(|&n| n > 0).unwrap_or(0);
                let step = (pixels - hist[last]) / 255;
                if step == 0 {
                    continue;
                }
                let mut lut = [0u8; 256];
                let mut cum = 0usize;
                for k in 1..256 {
                    cum += hist[k - 1];
                    lut[k] = ((cum + step / 2) / step).min(255) as u8;
                }
                for px in frame.chunks_exact_mut(3) {
                    px[c] = lut[px[c] as usize];
                }
            }
        }
    }

    #[test]
    fn grey_tables_equal_the_fused_float_formula_for_every_colour() {
        let g = grey_tables();
        for r in 0..=255u8 {
            for gg in 0..=255u8 {
                for b in 0..=255u8 {
                    let want = reference::grey_floor(&[r, gg, b]);
                    assert_eq!(g.grey(r, gg, b) as f32, want, "rgb ({r}, {gg}, {b})");
                }
            }
        }
    }

    #[test]
    fn fused_equals_mul_add() {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let mut cases = vec![
            (1.0f32, 1.0f32, -1.0f32),
            (0.1, 10.0, -1.0),
            (3.0, 1e-30, 1e30),
            (1e-20, 1e-20, 1.0),
            (f32::MAX, 2.0, -f32::MAX),
            (255.0, -0.99, 254.99),
        ];
        for _ in 0..200_000 {
            let r = next();
            let a = f32::from_bits(r as u32 & 0xbfff_ffff);
            let b = ((r >> 32) % 512) as f32 - 255.0;
            cases.push((a, f32::from_bits((next() as u32) & 0x3fff_ffff), b));
            cases.push((b, a.clamp(-2.0, 2.0), (next() % 70_000) as f32 / 256.0));
        }
        for (a, b, c) in cases {
            let (want, got) = (a.mul_add(b, c), fused(a, b, c));
            assert!(
                want.to_bits() == got.to_bits() || (want.is_nan() && got.is_nan()),
                "fma({a:e}, {b:e}, {c:e}) = {want:e}, got {got:e}"
            );
        }
    }

    /// Pseudo-random clip content (xorshift) with flat patches, so Equalize and AutoContrast see
    /// uneven histograms and narrow ranges as well as full ones.
    fn noise_clip(frames: usize, h: usize, w: usize, seed: u64) -> Clip {
        let mut s = seed | 1;
        let mut data = Vec::with_capacity(frames * h * w * 3);
        for t in 0..frames {
            for y in 0..h {
                for x in 0..w {
                    for c in 0..3 {
                        s ^= s << 13;
                        s ^= s >> 7;
                        s ^= s << 17;
                        let v = match (t + c) % 3 {
                            0 => (s >> 24) as u8,
                            1 => 40 + ((s >> 24) % 60) as u8,
                            _ => {
                                ((x * 5 + y * 3) % 97) as u8
                                    + if (x / 4 + y / 4) % 2 == 0 { 0 } else { 120 }
                            }
                        };
                        data.push(v);
                    }
                }
            }
        }
        Clip {
            frames,
            height: h,
            width: w,
            data,
        }
    }

    #[test]
    fn table_driven_ops_equal_the_per_pixel_reference() {
        let mut scratch = AugmentScratch::default();
        for (k, &(h, w)) in [(37usize, 29usize), (24, 24), (3, 5), (2, 7)]
            .iter()
            .enumerate()
        {
            let clip = noise_clip(3, h, w, 11 + k as u64);
            for op in ALL_OPS {
                for bin in 0..NUM_BINS {
                    for neg in [false, true] {
                        let m = magnitude(op, bin);
                        let params = AugmentParams {
                            op,
                            magnitude: if neg && is_signed(op) { -m } else { m },
                        };
                        let mut want = clip.clone();
                        reference::apply(&mut want, params);
                        let mut got = clip.clone();
                        apply_with(&mut got, params, &mut scratch);
                        assert_eq!(got, want, "{op:?} bin {bin} neg {neg} on {h}x{w}");
                    }
                }
            }
        }
    }

    /// A 1-frame clip from rows of RGB pixels.
    fn clip_of(h: usize, w: usize, pixels: &[[u8; 3]]) -> Clip {
        assert_eq!(pixels.len(), h * w);
        Clip {
            frames: 1,
            height: h,
            width: w,
            data: pixels.iter().flatten().copied().collect(),
        }
    }

    /// A 4x4 grey-level ramp (v, v, v) with v = 10 * (4y + x) + 20: 20..170.
    fn ramp() -> Clip {
        let px: Vec<[u8; 3]> = (0..16).map(|i| [(10 * i + 20) as u8; 3]).collect();
        clip_of(4, 4, &px)
    }

    fn grey(clip: &Clip) -> Vec<u8> {
        clip.data.chunks_exact(3).map(|p| p[0]).collect()
    }

    fn run(op: AugmentOp, magnitude: f64, clip: &Clip) -> Clip {
        let mut out = clip.clone();
        apply(&mut out, AugmentParams { op, magnitude });
        // Two frames with the same content stay identical (one parameter set per clip).
        let mut two = Clip {
            frames: 2,
            height: clip.height,
            width: clip.width,
            data: clip.data.repeat(2),
        };
        apply(&mut two, AugmentParams { op, magnitude });
        assert_eq!(two.frame(0), two.frame(1));
        assert_eq!(two.frame(0), out.frame(0));
        out
    }

    #[test]
    fn magnitude_tables_match_torchvision() {
        assert_eq!(magnitude(AugmentOp::ShearX, 30), 0.99f32 as f64);
        assert_eq!(magnitude(AugmentOp::TranslateX, 15) as i64, 15); // torch gives 15.999999
        assert_eq!(magnitude(AugmentOp::TranslateX, 30), 32.0);
        assert_eq!(magnitude(AugmentOp::Rotate, 20), 90.0);
        let bits: Vec<i64> = (0..31)
            .map(|b| magnitude(AugmentOp::Posterize, b) as i64)
            .collect();
        assert_eq!(&bits[..9], &[8, 8, 8, 7, 7, 7, 7, 7, 6]);
        assert_eq!(bits[30], 2);
        assert_eq!(magnitude(AugmentOp::Solarize, 0), 1.0);
        assert_eq!(magnitude(AugmentOp::Solarize, 30), 0.0);
        for b in 0..31 {
            let exact = 1.0 - b as f64 / 30.0;
            assert!((magnitude(AugmentOp::Solarize, b) - exact).abs() < 1e-6);
            assert!((magnitude(AugmentOp::Brightness, b) - 0.99 * b as f64 / 30.0).abs() < 1e-6);
        }
    }

    #[test]
    fn identity_and_draws() {
        let c = ramp();
        assert_eq!(run(AugmentOp::Identity, 0.0, &c), c);
        let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(3);
        use rand::SeedableRng;
        let mut seen = std::collections::HashSet::new();
        for _ in 0..2000 {
            let p = sample_params(&mut rng);
            seen.insert(format!("{:?}", p.op));
            if !is_signed(p.op) {
                assert!(p.magnitude >= 0.0);
            }
        }
        assert_eq!(seen.len(), 14);
    }

    #[test]
    fn translate_shifts_with_zero_fill() {
        let c = ramp();
        // TranslateX by int(2.13) = 2: output x reads input x - 2.
        let out = grey(&run(AugmentOp::TranslateX, 2.1333334, &c));
        assert_eq!(
            out,
            vec![0, 0, 20, 30, 0, 0, 60, 70, 0, 0, 100, 110, 0, 0, 140, 150]
        );
        // Negative: int(-1.07) = -1 moves content up by one row.
        let out = grey(&run(AugmentOp::TranslateY, -1.0666667, &c));
        assert_eq!(
            out,
            vec![
                60, 70, 80, 90, 100, 110, 120, 130, 140, 150, 160, 170, 0, 0, 0, 0
            ]
        );
    }

    #[test]
    fn shear_is_about_the_top_left_corner() {
        let c = ramp();
        // ShearX, m = 0.5: torchvision's inverse map about the top-left corner reads
        // x_in = x_out + m * y_out (pixel centres, y = row + 0.5): row shifts 0.25, 0.75, 1.25, 1.75
        // round (half to even on the source index) to 0, 1, 1, 2; zero fill on the right.
        let out = grey(&run(AugmentOp::ShearX, 0.5, &c));
        assert_eq!(
            out,
            vec![
                20, 30, 40, 50, 70, 80, 90, 0, 110, 120, 130, 0, 160, 170, 0, 0
            ]
        );
        // ShearY: y_in = y_out + m * x_out, column shifts 0, 1, 1, 2.
        let out = grey(&run(AugmentOp::ShearY, 0.5, &c));
        assert_eq!(
            out,
            vec![
                20, 70, 80, 130, 60, 110, 120, 170, 100, 150, 160, 0, 140, 0, 0, 0
            ]
        );
    }

    #[test]
    fn rotate_turns_counter_clockwise() {
        let c = ramp();
        let out = grey(&run(AugmentOp::Rotate, 90.0, &c));
        // Counter-clockwise: the top row becomes the left column, read bottom to top.
        assert_eq!(&out[..4], &[50, 90, 130, 170]);
        assert_eq!(out[12], 20);
        let out = grey(&run(AugmentOp::Rotate, -90.0, &c));
        assert_eq!(&out[..4], &[140, 100, 60, 20]);
        // 45 degrees on a 4x4: corners fall outside (zero fill), the centre 2x2 stays inside.
        let out = grey(&run(AugmentOp::Rotate, 45.0, &c));
        assert_eq!(
            out,
            vec![
                0, 40, 90, 0, 30, 80, 120, 130, 60, 110, 120, 160, 0, 100, 150, 0
            ]
        );
        // A non-square frame at 90 degrees uses the affine warp; the centre row/col stays in place.
        let px: Vec<[u8; 3]> = (0..6).map(|i| [(i * 10 + 10) as u8; 3]).collect();
        let r = grey(&run(AugmentOp::Rotate, 180.0, &clip_of(2, 3, &px)));
        assert_eq!(r, vec![60, 50, 40, 30, 20, 10]);
    }

    #[test]
    fn colour_ops_match_their_definitions() {
        let c = clip_of(1, 3, &[[100, 50, 200], [0, 255, 10], [30, 30, 30]]);
        // Brightness 1 + 0.5: 100*1.5=150, 50*1.5=75, 200*1.5=300->255; 255*1.5->255; 10*1.5=15, 30*1.5=45.
        assert_eq!(
            run(AugmentOp::Brightness, 0.5, &c).data,
            vec![150, 75, 255, 0, 255, 15, 45, 45, 45]
        );
        // Color factor 0.5: grey = floor(.2989*100+.587*50+.114*200) = floor(82.04) = 82;
        // 0.5*v + 0.5*82 -> 91, 66, 141.  Pixel 2: grey floor(150.82)=150 -> 75, 202(.5), 80.
        let out = run(AugmentOp::Color, -0.5, &c).data;
        assert_eq!(&out[..6], &[91, 66, 141, 75, 202, 80]);
        assert_eq!(&out[6..], &[29, 29, 29]); // grey pixel: floor(29.99...)=29 -> 0.5*30+14.5 = 29.5 -> 29
        // Contrast factor 2: greys 82, 150, 29 -> mean 87; 2v - 87.
        let out = run(AugmentOp::Contrast, 1.0, &c).data;
        assert_eq!(out, vec![113, 13, 255, 0, 255, 0, 0, 0, 0]);
        // Posterize 3 bits: mask 0b1110_0000.
        assert_eq!(
            run(AugmentOp::Posterize, 3.0, &c).data,
            vec![96, 32, 192, 0, 224, 0, 0, 0, 0]
        );
        // Solarize at 255 * 0.5 = 127.5: values >= 127.5 are inverted.
        assert_eq!(
            run(AugmentOp::Solarize, 0.5, &c).data,
            vec![100, 50, 55, 0, 0, 10, 30, 30, 30]
        );
    }

    #[test]
    fn solarize_threshold_one_inverts_only_255() {
        let c = clip_of(1, 2, &[[255, 254, 0], [128, 127, 1]]);
        assert_eq!(
            run(AugmentOp::Solarize, 1.0, &c).data,
            vec![0, 254, 0, 128, 127, 1]
        );
        assert_eq!(
            run(AugmentOp::Solarize, 0.0, &c).data,
            vec![0, 1, 255, 127, 128, 254]
        );
    }

    #[test]
    fn sharpness_blends_interior_with_the_smoothed_image() {
        // 3x3 with a bright centre: smoothed centre = (8*10 + 5*140)/13 = 60; borders unchanged.
        let mut px = [[10u8; 3]; 9];
        px[4] = [140; 3];
        let c = clip_of(3, 3, &px);
        // factor 2 (m = 1): centre = 140 + (1 - 2) * (60 - 140) = 220.
        let out = grey(&run(AugmentOp::Sharpness, 1.0, &c));
        assert_eq!(out, vec![10, 10, 10, 10, 220, 10, 10, 10, 10]);
        // factor 0.5: 140 - 0.5 * 80 = 100.
        assert_eq!(grey(&run(AugmentOp::Sharpness, -0.5, &c))[4], 100);
    }

    #[test]
    fn autocontrast_stretches_each_channel() {
        // Red 50..150 -> 0..255; green constant stays; blue 0..255 unchanged.
        let c = clip_of(1, 3, &[[50, 7, 0], [100, 7, 128], [150, 7, 255]]);
        // Red 100: (100-50)/(100/255) = 127.5 -> 127. Red 150: 100 / (100 * f32(1/255)) is
        // 254.99998 in float32, so torchvision gives 254, not 255.
        assert_eq!(
            run(AugmentOp::AutoContrast, 0.0, &c).data,
            vec![0, 7, 0, 127, 7, 128, 254, 7, 255]
        );
    }

    #[test]
    fn equalize_follows_pil() {
        // 510 pixels: 255 of value 10, 170 of value 20, 85 of value 30 (the largest).
        // step = (510 - 85) / 255 = 1; lut[10] = 0, lut[20] = (255 + 0) / 1 = 255 -> clamp 255,
        // lut[30] = 425 -> 255. So 10 -> 0, 20 -> 255, 30 -> 255.
        let mut px = vec![[10u8; 3]; 255];
        px.extend(vec![[20u8; 3]; 170]);
        px.extend(vec![[30u8; 3]; 85]);
        let out = grey(&run(AugmentOp::Equalize, 0.0, &clip_of(1, 510, &px)));
        assert_eq!(out[0], 0);
        assert_eq!(out[300], 255);
        assert_eq!(out[509], 255);
        // 1020 pixels, values 0..=3 (255 each): step = 765/255 = 3; lut[k] = (255k + 1)/3 = 85k.
        let px: Vec<[u8; 3]> = (0..1020).map(|i| [(i / 255) as u8; 3]).collect();
        let out = grey(&run(AugmentOp::Equalize, 0.0, &clip_of(1, 1020, &px)));
        assert_eq!((out[0], out[255], out[510], out[765]), (0, 85, 170, 255));
        // Too few pixels (step 0): unchanged.
        let c = ramp();
        assert_eq!(run(AugmentOp::Equalize, 0.0, &c), c);
    }

    /// Cross-check against torchvision on random images: every op, bin and sign. The fixture is
    /// written by `bench/ta_golden.py` (torchvision 0.26, torch 2.11).
    #[test]
    fn matches_torchvision_golden() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ta_golden.bin");
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut at = 0usize;
        let mut take = |n: usize| {
            at += n;
            &bytes[at - n..at]
        };
        let (mut cases, mut exact, mut worst) = (0, 0, 0u8);
        for _ in 0..2 {
            let hw = take(4);
            let (h, w) = (
                u16::from_le_bytes([hw[0], hw[1]]) as usize,
                u16::from_le_bytes([hw[2], hw[3]]) as usize,
            );
            let input = Clip {
                frames: 1,
                height: h,
                width: w,
                data: take(h * w * 3).to_vec(),
            };
            let n = u32::from_le_bytes(take(4).try_into().unwrap());
            for _ in 0..n {
                let c = take(3).to_vec();
                let (op, bin, neg) = (ALL_OPS[c[0] as usize], c[1] as usize, c[2] == 1);
                let want = take(h * w * 3).to_vec();
                let m = magnitude(op, bin);
                let params = AugmentParams {
                    op,
                    magnitude: if neg && is_signed(op) { -m } else { m },
                };
                let mut got = input.clone();
                apply(&mut got, params);
                let diff = got
                    .data
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| a.abs_diff(*b))
                    .max()
                    .unwrap_or(0);
                cases += 1;
                if diff == 0 {
                    exact += 1;
                } else {
                    eprintln!("{op:?} bin {bin} neg {neg} ({h}x{w}): max diff {diff}");
                }
                worst = worst.max(diff);
            }
        }
        eprintln!("{exact} of {cases} cases bit-exact, worst difference {worst}");
        assert!(cases > 1000, "fixture holds only {cases} cases");
        assert_eq!(exact, cases);
    }
}
