//! Normalisation of a uint8 clip into the float32 layout a model asks for:
//! `(v / 255 - mean[c]) / std[c]`, per RGB channel.

use ethos_video::Clip;
use serde::{Deserialize, Serialize};

/// Memory layout of a float32 batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Layout {
    /// `(B, C, T, H, W)`: torchvision video models (MViTv2, R3D-18).
    #[default]
    Bcthw,
    /// `(B, T, C, H, W)`: V-JEPA 2 and image-style encoders.
    Btchw,
}

impl Layout {
    /// The 5-d shape of a batch of `b` clips of `t` frames of `h` x `w` RGB pixels.
    pub fn shape(self, b: usize, t: usize, h: usize, w: usize) -> [usize; 5] {
        match self {
            Layout::Bcthw => [b, 3, t, h, w],
            Layout::Btchw => [b, t, 3, h, w],
        }
    }
}

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
            let frame = clip.frame(t);
            for c in 0..3 {
                let base = match layout {
                    Layout::Bcthw => (c * t_len + t) * plane,
                    Layout::Btchw => (t * 3 + c) * plane,
                };
                let lut = &self.lut[c];
                for (dst, px) in out[base..base + plane]
                    .iter_mut()
                    .zip(frame.chunks_exact(3))
                {
                    *dst = lut[px[c] as usize];
                }
            }
        }
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
