//! Clip-consistent transforms on uint8 `(T, H, W, 3)` clips: one set of random parameters per
//! clip, applied to every frame (a per-frame draw would make the clip flicker).
//!
//! Train: RandomResizedCrop -> RandomHorizontalFlip -> TrivialAugmentWide -> normalise.
//! Eval: resize short side to the input size -> CenterCrop -> normalise.

pub mod geometry;
pub mod normalize;
pub mod trivial_augment;

use ethos_video::Clip;
/// The resampler transforms use (one per worker thread; it keeps scratch buffers).
pub use fast_image_resize::Resizer;
use rand::Rng;

pub use geometry::CropBox;
pub use normalize::{Layout, Normalizer};
pub use trivial_augment::{AugmentOp, AugmentParams};

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
}
