//! Normalisation of a uint8 clip into the float32 layout a model asks for:
//! `(v / 255 - mean[c]) / std[c]`, per RGB channel.

use ethos_video::Clip;

pub use ethos_core::Layout;

/// Per-channel mean/std normalisation through a 256-entry lookup table per channel.
#[derive(Debug, Clone)]
pub struct Normalizer {
    lut: [[f32; 256]; 3],
    mean: [f32; 3],
    std: [f32; 3],
}

impl Normalizer {
    /// Mean and std on the [0, 1] scale (e.g. Kinetics 0.45 / 0.225).
    pub fn new(mean: [f32; 3], std: [f32; 3]) -> Self {
        let mut lut = [[0f32; 256]; 3];
        for c in 0..3 {
            for (v, slot) in lut[c].iter_mut().enumerate() {
                *slot = (v as f32 / 255.0 - mean[c]) / std[c];
            }
        }
        Self { lut, mean, std }
    }

    /// Writes one clip as float32 into `out` (`C*T*H*W` values) in `layout` order without the batch axis.
    pub fn write(&self, clip: &Clip, layout: Layout, out: &mut [f32]) {
        let (t_len, plane) = (clip.frames, clip.height * clip.width);
        assert_eq!(
            out.len(),
            3 * t_len * plane,
            "output slice has C*T*H*W values"
        );
        for t in 0..t_len {
            write_frame(
                clip.frame(t),
                clip.width,
                PixelSource::Direct,
                &self.lut,
                frame_planes(out, layout, t, t_len, plane),
            );
        }
    }

    /// The per-channel tables `v -> (v / 255 - mean) / std`.
    pub(crate) fn tables(&self) -> &[[f32; 256]; 3] {
        &self.lut
    }

    /// The tables of "apply the uint8 value map `maps[c]`, then normalise", so a point operation
    /// costs nothing per pixel.
    pub(crate) fn composed(&self, maps: &[[u8; 256]; 3]) -> [[f32; 256]; 3] {
        std::array::from_fn(|c| std::array::from_fn(|v| self.lut[c][maps[c][v] as usize]))
    }

    /// Inverse of [`Normalizer::write`] for one clip: float32 back to rounded, clamped uint8
    /// (for contact sheets of what the model sees).
    pub fn denormalize(
        &self,
        values: &[f32],
        layout: Layout,
        frames: usize,
        height: usize,
        width: usize,
    ) -> Clip {
        let mut clip = Clip::zeros(frames, height, width);
        let plane = height * width;
        for t in 0..frames {
            let frame = clip.frame_mut(t);
            for c in 0..3 {
                let base = match layout {
                    Layout::Bcthw => (c * frames + t) * plane,
                    Layout::Btchw => (t * 3 + c) * plane,
                };
                for (px, &v) in frame.chunks_exact_mut(3).zip(&values[base..base + plane]) {
                    px[c] = ((v * self.std[c] + self.mean[c]) * 255.0)
                        .round()
                        .clamp(0.0, 255.0) as u8;
                }
            }
        }
        clip
    }
}

/// Where each output pixel of a frame is read from in the uint8 frame.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PixelSource<'a> {
    /// The same position.
    Direct,
    /// The same row, mirrored left-right.
    Mirrored,
    /// `map[y * W + x]`: the source pixel index, or `OUTSIDE` for a zero pixel.
    Map(&'a [u32]),
}

/// The three channel planes (`H * W` values each) of frame `t` of one sample's `C*T*H*W` values
/// in `layout`.
pub(crate) fn frame_planes(
    out: &mut [f32],
    layout: Layout,
    t: usize,
    frames: usize,
    plane: usize,
) -> [&mut [f32]; 3] {
    let (r, g, b) = match layout {
        Layout::Btchw => {
            let (r, rest) = out[t * 3 * plane..(t + 1) * 3 * plane].split_at_mut(plane);
            let (g, b) = rest.split_at_mut(plane);
            (r, g, b)
        }
        Layout::Bcthw => {
            let (r, rest) = out.split_at_mut(frames * plane);
            let (g, b) = rest.split_at_mut(frames * plane);
            let at = t * plane..(t + 1) * plane;
            (&mut r[at.clone()], &mut g[at.clone()], &mut b[at])
        }
    };
    [r, g, b]
}

/// Writes one uint8 `(H, W, 3)` frame of width `width` as three float32 planes through the
/// per-channel tables `luts`, reading pixels as `source` says (flip and warps happen here, in the
/// same pass).
pub(crate) fn write_frame(
    frame: &[u8],
    width: usize,
    source: PixelSource,
    luts: &[[f32; 256]; 3],
    planes: [&mut [f32]; 3],
) {
    let [r, g, b] = planes;
    let [l0, l1, l2] = luts;
    if width == 0 {
        return;
    }
    match source {
        PixelSource::Direct => {
            for (((px, r), g), b) in frame.chunks_exact(3).zip(r).zip(g).zip(b) {
                *r = l0[px[0] as usize];
                *g = l1[px[1] as usize];
                *b = l2[px[2] as usize];
            }
        }
        PixelSource::Mirrored => {
            let rows = frame
                .chunks_exact(3 * width)
                .zip(r.chunks_exact_mut(width))
                .zip(g.chunks_exact_mut(width))
                .zip(b.chunks_exact_mut(width));
            for (((row, r), g), b) in rows {
                for (((px, r), g), b) in row.chunks_exact(3).rev().zip(r).zip(g).zip(b) {
                    *r = l0[px[0] as usize];
                    *g = l1[px[1] as usize];
                    *b = l2[px[2] as usize];
                }
            }
        }
        PixelSource::Map(map) => {
            let fill = [l0[0], l1[0], l2[0]];
            for (((&i, r), g), b) in map.iter().zip(r).zip(g).zip(b) {
                if i == super::trivial_augment::OUTSIDE {
                    [*r, *g, *b] = fill;
                } else {
                    let px = &frame[i as usize * 3..i as usize * 3 + 3];
                    *r = l0[px[0] as usize];
                    *g = l1[px[1] as usize];
                    *b = l2[px[2] as usize];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_place_channels_where_stated() {
        // 2 frames of 1x2 pixels; pixel value encodes (t, x, c).
        let mut clip = Clip::zeros(2, 1, 2);
        for t in 0..2 {
            for x in 0..2 {
                for c in 0..3 {
                    clip.data[(t * 2 + x) * 3 + c] = (100 * t + 10 * x + c) as u8;
                }
            }
        }
        let norm = Normalizer::new([0.5, 0.25, 0.0], [0.5, 0.25, 1.0]);
        let mut a = vec![0f32; 12];
        norm.write(&clip, Layout::Bcthw, &mut a);
        // (C, T, H, W): index c*4 + t*2 + x.
        let expect = |t: usize, x: usize, c: usize| {
            let v = (100 * t + 10 * x + c) as f32 / 255.0;
            [(v - 0.5) / 0.5, (v - 0.25) / 0.25, v][c]
        };
        for (t, x, c) in [(0, 0, 0), (1, 1, 2), (0, 1, 1), (1, 0, 0)] {
            assert!((a[c * 4 + t * 2 + x] - expect(t, x, c)).abs() < 1e-6);
        }
        let mut b = vec![0f32; 12];
        norm.write(&clip, Layout::Btchw, &mut b);
        for (t, x, c) in [(0, 0, 0), (1, 1, 2), (0, 1, 1), (1, 0, 0)] {
            assert!((b[t * 6 + c * 2 + x] - expect(t, x, c)).abs() < 1e-6);
        }
        assert_eq!(norm.denormalize(&a, Layout::Bcthw, 2, 1, 2), clip);
        assert_eq!(norm.denormalize(&b, Layout::Btchw, 2, 1, 2), clip);
        assert_eq!(Layout::Btchw.shape(4, 16, 224, 224), [4, 16, 3, 224, 224]);
    }
}
