//! Clip-consistent transforms on uint8 `(T, H, W, 3)` clips: one set of random parameters per
//! clip, applied to every frame (a per-frame draw would make the clip flicker).
//!
//! Train: RandomResizedCrop -> RandomHorizontalFlip -> TrivialAugmentWide -> normalise.
//! Eval: resize short side to the input size -> CenterCrop -> normalise.

pub mod geometry;
pub mod normalize;
pub mod trivial_augment;

use ethos_video::{Clip, ClipView};
/// The resampler transforms use (one per worker thread; it keeps scratch buffers).
pub use fast_image_resize::Resizer;
use rand::Rng;

pub use geometry::CropBox;
pub use normalize::{Layout, Normalizer};
pub use trivial_augment::{AugmentOp, AugmentParams, AugmentScratch};

use normalize::PixelSource;
use trivial_augment::{OUTSIDE, Prepared};

use crate::config::AugmentationConfig;

/// The random parameters of one clip's transform, drawn once by [`ClipTransform::sample_params`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TransformParams {
    /// RandomResizedCrop box in the input frame; `None`: resize short side + centre crop.
    pub crop: Option<CropBox>,
    /// Mirror left-right.
    pub flip: bool,
    /// TrivialAugmentWide op and magnitude.
    pub augment: Option<AugmentParams>,
}

/// Frames that [`ClipTransform::apply_normalized`] crops and resizes in one call before it
/// augments and writes them.
const FRAME_GROUP: usize = 4;

/// One worker's buffers for [`ClipTransform::apply_normalized`]: the resampler, a few cropped and
/// resized uint8 frames, the resampler's intermediate rows and the augmentation's tables, reused
/// from sample to sample.
pub struct TransformScratch {
    resizer: Resizer,
    frame: Vec<u8>,
    mid: Vec<u8>,
    augment: AugmentScratch,
}

impl Default for TransformScratch {
    fn default() -> Self {
        Self {
            resizer: Resizer::new(),
            frame: Vec::new(),
            mid: Vec::new(),
            augment: AugmentScratch::default(),
        }
    }
}

impl std::fmt::Debug for TransformScratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransformScratch")
            .field("frame_bytes", &self.frame.len())
            .finish_non_exhaustive()
    }
}

/// The spatial transform of the pipeline: train (augmenting) or eval (deterministic).
#[derive(Debug, Clone)]
pub struct ClipTransform {
    augmentation: Option<AugmentationConfig>,
    input_size: usize,
    normalizer: Normalizer,
}

impl ClipTransform {
    /// Training transform with the given augmentation settings; output `input_size` squared.
    pub fn train(
        aug: &AugmentationConfig,
        input_size: usize,
        mean: [f32; 3],
        std: [f32; 3],
    ) -> Self {
        Self {
            augmentation: Some(aug.clone()),
            input_size,
            normalizer: Normalizer::new(mean, std),
        }
    }

    /// Evaluation transform: resize short side to `input_size`, centre crop, normalise.
    pub fn eval(input_size: usize, mean: [f32; 3], std: [f32; 3]) -> Self {
        Self {
            augmentation: None,
            input_size,
            normalizer: Normalizer::new(mean, std),
        }
    }

    /// Output side in pixels.
    pub fn input_size(&self) -> usize {
        self.input_size
    }

    /// The normaliser (mean/std) used by [`ClipTransform::normalize_into`].
    pub fn normalizer(&self) -> &Normalizer {
        &self.normalizer
    }

    /// Whether this is a training (augmenting) transform.
    pub fn is_train(&self) -> bool {
        self.augmentation.is_some()
    }

    /// The augmentation settings (train only).
    pub fn augmentation(&self) -> Option<&AugmentationConfig> {
        self.augmentation.as_ref()
    }

    /// Draws the clip's parameters for an input of `height` x `width`, in a fixed order:
    /// crop (if enabled), flip (one draw), augmentation (three draws, if enabled). Eval draws nothing.
    pub fn sample_params(
        &self,
        rng: &mut impl Rng,
        height: usize,
        width: usize,
    ) -> TransformParams {
        let Some(aug) = &self.augmentation else {
            return TransformParams {
                crop: None,
                flip: false,
                augment: None,
            };
        };
        let crop = aug.random_resized_crop.then(|| {
            geometry::random_resized_crop_params(rng, height, width, aug.rrc_scale, aug.rrc_ratio)
        });
        let flip = rng.random_bool(aug.hflip_prob);
        let augment = aug
            .trivial_augment
            .then(|| trivial_augment::sample_params(rng));
        TransformParams {
            crop,
            flip,
            augment,
        }
    }

    /// Applies `params` to a uint8 clip, giving an `input_size` x `input_size` uint8 clip.
    pub fn apply(&self, resizer: &mut Resizer, clip: &Clip, params: &TransformParams) -> Clip {
        let size = self.input_size;
        let mut out = match params.crop {
            Some(crop) => geometry::resized_crop(resizer, clip, crop, size, size),
            None => {
                let resized = if clip.height.min(clip.width) == size {
                    clip.clone()
                } else {
                    geometry::resize_short_side(resizer, clip, size)
                };
                let b = geometry::center_crop_box(resized.height, resized.width, size, size);
                geometry::crop(&resized, b)
            }
        };
        if params.flip {
            geometry::hflip(&mut out);
        }
        if let Some(a) = params.augment {
            trivial_augment::apply(&mut out, a);
        }
        out
    }

    /// Normalises a transformed clip into `out` (`3 * T * size * size` float32) in `layout`.
    pub fn normalize_into(&self, clip: &Clip, layout: Layout, out: &mut [f32]) {
        self.normalizer.write(clip, layout, out);
    }

    /// [`ClipTransform::apply`] then [`ClipTransform::normalize_into`] in one go, bit for bit the
    /// same values: `out` gets `3 * T * size * size` float32 in `layout`. The crop is resampled
    /// into `scratch`; point operations are folded into the normalisation tables, flips and warps
    /// into the pass that writes `out`, so each pixel is read and written once after resizing.
    /// Panics if `out` has another length.
    pub fn apply_normalized<'c>(
        &self,
        scratch: &mut TransformScratch,
        clip: impl Into<ClipView<'c>>,
        params: &TransformParams,
        layout: Layout,
        out: &mut [f32],
    ) {
        let clip = clip.into();
        let (size, frames) = (self.input_size, clip.frames);
        let plane = size * size;
        assert_eq!(
            out.len(),
            3 * frames * plane,
            "output slice has C*T*H*W values"
        );
        if out.is_empty() {
            return;
        }
        let TransformScratch {
            resizer,
            frame: buf,
            mid,
            augment: aug_scratch,
        } = scratch;
        let prepared = match params.augment {
            Some(a) if frames > 0 && size > 0 => {
                trivial_augment::prepare(a, size, size, aug_scratch)
            }
            _ => Prepared::Identity,
        };
        let fixed = match prepared {
            Prepared::Lut(lut) => self.normalizer.composed(&[lut; 3]),
            _ => *self.normalizer.tables(),
        };
        if prepared == Prepared::Warp && params.flip {
            // The warp reads the mirrored frame: mirror its source columns instead.
            for i in aug_scratch.map.iter_mut().filter(|i| **i != OUTSIDE) {
                let (y, x) = (*i as usize / size, *i as usize % size);
                *i = (y * size + size - 1 - x) as u32;
            }
        }
        // Eval: resize the short side of the whole clip first (rare path; allocates).
        let resized = match params.crop {
            None if clip.height.min(clip.width) != size => {
                Some(geometry::resize_short_side(resizer, clip, size))
            }
            _ => None,
        };
        // A few frames at a time: the resampling setup is shared, and the resized frames are
        // still in cache when they are augmented and written.
        let frame_len = plane * 3;
        buf.resize(frame_len * FRAME_GROUP.min(frames), 0);
        for first in (0..frames).step_by(FRAME_GROUP) {
            let group = first..(first + FRAME_GROUP).min(frames);
            let group_buf = &mut buf[..group.len() * frame_len];
            match (params.crop, &resized) {
                (Some(crop), _) => geometry::resized_crop_frames(
                    resizer,
                    clip,
                    group.clone(),
                    crop,
                    (size, size),
                    mid,
                    group_buf,
                ),
                (None, src) => {
                    let src = src.as_ref().map_or(clip, Clip::view);
                    let b = geometry::center_crop_box(src.height, src.width, size, size);
                    for (t, frame) in group.clone().zip(group_buf.chunks_exact_mut(frame_len)) {
                        geometry::copy_crop(src.frame(t), src.width, b, frame);
                    }
                }
            }
            for (t, frame) in group.zip(group_buf.chunks_exact_mut(frame_len)) {
                self.write_frame(frame, t, prepared, fixed, params, aug_scratch, layout, out);
            }
        }
    }

    /// Augments one cropped and resized frame `t` (in place where the op needs it) and writes it
    /// normalised into its planes of `out`.
    #[allow(clippy::too_many_arguments)]
    fn write_frame(
        &self,
        frame: &mut [u8],
        t: usize,
        prepared: Prepared,
        fixed: [[f32; 256]; 3],
        params: &TransformParams,
        aug_scratch: &mut AugmentScratch,
        layout: Layout,
        out: &mut [f32],
    ) {
        let size = self.input_size;
        let plane = size * size;
        let frames = out.len() / (3 * plane);
        let luts = match (prepared, params.augment) {
            (Prepared::Blend, Some(a)) => {
                // Color and Sharpness commute with the flip (per pixel / symmetric kernel).
                trivial_augment::blend_frame(a.op, frame, size, size, aug_scratch);
                fixed
            }
            // Frame statistics do not depend on the flip.
            (Prepared::FrameLuts, Some(a)) => self
                .normalizer
                .composed(&trivial_augment::frame_luts(a, frame)),
            _ => fixed,
        };
        let source = match prepared {
            Prepared::Warp => PixelSource::Map(&aug_scratch.map),
            _ if params.flip => PixelSource::Mirrored,
            _ => PixelSource::Direct,
        };
        normalize::write_frame(
            frame,
            size,
            source,
            &luts,
            normalize::frame_planes(out, layout, t, frames, plane),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn one_parameter_set_for_all_frames() {
        // Three identical frames must stay identical through every random transform.
        let mut frame = vec![0u8; 40 * 60 * 3];
        for (i, v) in frame.iter_mut().enumerate() {
            *v = ((i * 7919) % 251) as u8;
        }
        let clip = Clip {
            frames: 3,
            height: 40,
            width: 60,
            data: frame.repeat(3),
        };
        let tr = ClipTransform::train(&AugmentationConfig::default(), 32, [0.45; 3], [0.225; 3]);
        let mut resizer = Resizer::new();
        for seed in 0..50 {
            let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(seed);
            let p = tr.sample_params(&mut rng, 40, 60);
            let out = tr.apply(&mut resizer, &clip, &p);
            assert_eq!(out.shape(), [3, 32, 32, 3]);
            assert_eq!(out.frame(0), out.frame(1));
            assert_eq!(out.frame(0), out.frame(2));
        }
        let ev = ClipTransform::eval(32, [0.45; 3], [0.225; 3]);
        let p = ev.sample_params(&mut rand_chacha::ChaCha12Rng::seed_from_u64(0), 40, 60);
        assert_eq!(
            p,
            TransformParams {
                crop: None,
                flip: false,
                augment: None
            }
        );
        assert_eq!(ev.apply(&mut resizer, &clip, &p).shape(), [3, 32, 32, 3]);
    }

    #[test]
    fn fused_path_equals_apply_then_normalize() {
        let (t, h, w) = (3, 41, 57);
        let mut clip = Clip::zeros(t, h, w);
        for (i, v) in clip.data.iter_mut().enumerate() {
            let (px, c) = (i / 3, i % 3);
            let (y, x) = ((px / w) % h, px % w);
            *v = match c {
                0 => ((i * 7919) % 251) as u8,
                1 => (x * 4 + y) as u8,
                _ => 60 + ((x / 5 + y / 7) % 3) as u8 * 50,
            };
        }
        let tr = ClipTransform::train(
            &AugmentationConfig::default(),
            32,
            [0.485, 0.456, 0.406],
            [0.229, 0.224, 0.225],
        );
        let mut resizer = Resizer::new();
        let mut scratch = TransformScratch::default();
        let n = 3 * t * 32 * 32;
        let check = |params: &TransformParams,
                     tr: &ClipTransform,
                     resizer: &mut Resizer,
                     scratch: &mut TransformScratch| {
            for layout in [Layout::Bcthw, Layout::Btchw] {
                let mut want = vec![0f32; n];
                tr.normalize_into(&tr.apply(resizer, &clip, params), layout, &mut want);
                let mut got = vec![f32::NAN; n];
                tr.apply_normalized(scratch, &clip, params, layout, &mut got);
                let same = want
                    .iter()
                    .zip(&got)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{params:?} {layout:?}");
            }
        };
        let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(5);
        for _ in 0..40 {
            let p = tr.sample_params(&mut rng, h, w);
            check(&p, &tr, &mut resizer, &mut scratch);
        }
        // Every op at a low, middle and top bin, both signs, with and without the flip, on a
        // crop that needs resampling and on an exact-size crop.
        let crops = [
            CropBox {
                top: 2,
                left: 5,
                height: 36,
                width: 44,
            },
            CropBox {
                top: 4,
                left: 9,
                height: 32,
                width: 32,
            },
        ];
        for op in trivial_augment::ALL_OPS {
            for bin in [1, 15, 20, 30] {
                for neg in [false, true] {
                    for (flip, crop) in [(false, crops[0]), (true, crops[0]), (true, crops[1])] {
                        let m = trivial_augment::magnitude(op, bin);
                        let p = TransformParams {
                            crop: Some(crop),
                            flip,
                            augment: Some(AugmentParams {
                                op,
                                magnitude: if neg { -m } else { m },
                            }),
                        };
                        check(&p, &tr, &mut resizer, &mut scratch);
                    }
                }
            }
        }
        // Eval: resize short side + centre crop, and an input already at the size.
        let ev = ClipTransform::eval(32, [0.45; 3], [0.225; 3]);
        let p = ev.sample_params(&mut rng, h, w);
        check(&p, &ev, &mut resizer, &mut scratch);
        let small = Clip {
            frames: t,
            height: 32,
            width: 40,
            data: clip.data[..t * 32 * 40 * 3].to_vec(),
        };
        for layout in [Layout::Bcthw, Layout::Btchw] {
            let mut want = vec![0f32; n];
            ev.normalize_into(&ev.apply(&mut resizer, &small, &p), layout, &mut want);
            let mut got = vec![0f32; n];
            ev.apply_normalized(&mut scratch, &small, &p, layout, &mut got);
            assert_eq!(want, got);
        }
    }
}
