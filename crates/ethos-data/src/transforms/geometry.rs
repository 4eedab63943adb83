//! Clip geometry: RandomResizedCrop (torchvision's parameter sampling), crop + resize, resize of
//! the short side, centre crop and horizontal flip. Every function applies one set of parameters
//! to all frames of a uint8 `(T, H, W, 3)` clip.

use ethos_video::Clip;
use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use rand::Rng;

/// A crop rectangle in pixels of the frame it applies to: rows `top..top+height`, columns
/// `left..left+width`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropBox {
    /// First row.
    pub top: usize,
    /// First column.
    pub left: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

/// torchvision `RandomResizedCrop.get_params` on a `height` x `width` frame: up to 10 tries of an
/// area fraction uniform in `scale` and a log-uniform aspect ratio (w/h) in `ratio`, then the
/// largest centred crop whose ratio is inside `ratio`. Draws, in order: area, log-ratio (per try),
/// then row and column of the accepted box.
pub fn random_resized_crop_params(
    rng: &mut impl Rng,
    height: usize,
    width: usize,
    scale: [f64; 2],
    ratio: [f64; 2],
) -> CropBox {
    let area = (height * width) as f64;
    let (log_r0, log_r1) = (ratio[0].ln(), ratio[1].ln());
    for _ in 0..10 {
        let target_area = area * (scale[0] + (scale[1] - scale[0]) * rng.random::<f64>());
        let aspect = (log_r0 + (log_r1 - log_r0) * rng.random::<f64>()).exp();
        let w = (target_area * aspect).sqrt().round_ties_even() as usize;
        let h = (target_area / aspect).sqrt().round_ties_even() as usize;
        if 0 < w && w <= width && 0 < h && h <= height {
            let top = rng.random_range(0..=height - h);
            let left = rng.random_range(0..=width - w);
            return CropBox {
                top,
                left,
                height: h,
                width: w,
            };
        }
    }
    let in_ratio = width as f64 / height as f64;
    let (h, w) = if in_ratio < ratio[0] {
        ((width as f64 / ratio[0]).round_ties_even() as usize, width)
    } else if in_ratio > ratio[1] {
        (
            height,
            (height as f64 * ratio[1]).round_ties_even() as usize,
        )
    } else {
        (height, width)
    };
    CropBox {
        top: (height - h) / 2,
        left: (width - w) / 2,
        height: h,
        width: w,
    }
}

/// torchvision `CenterCrop` box of `out_h` x `out_w` in a `height` x `width` frame (rounded offsets).
/// The output must not be larger than the frame.
pub fn center_crop_box(height: usize, width: usize, out_h: usize, out_w: usize) -> CropBox {
    let top = ((height as f64 - out_h as f64) / 2.0)
        .round_ties_even()
        .max(0.0) as usize;
    let left = ((width as f64 - out_w as f64) / 2.0)
        .round_ties_even()
        .max(0.0) as usize;
    CropBox {
        top,
        left,
        height: out_h.min(height),
        width: out_w.min(width),
    }
}

/// torchvision `Resize(size)` output for a `height` x `width` frame: short side `short`, long side
/// truncated as torchvision does.
pub fn short_side_size(height: usize, width: usize, short: usize) -> (usize, usize) {
    if width <= height {
        (short * height / width, short)
    } else {
        (short, short * width / height)
    }
}

/// Crops `crop` out of every frame and resizes it to `out_h` x `out_w` (bilinear with antialias
/// when shrinking, as PIL and torchvision `antialias=True` do).
pub fn resized_crop(
    resizer: &mut Resizer,
    clip: &Clip,
    crop: CropBox,
    out_h: usize,
    out_w: usize,
) -> Clip {
    let mut out = Clip::zeros(clip.frames, out_h, out_w);
    resized_crop_into(resizer, clip, crop, out_h, out_w, &mut out.data);
    out
}

/// As [`resized_crop`], writing the `(T, out_h, out_w, 3)` result into `out` (exactly that many
/// bytes), so a worker can reuse one buffer for every sample.
pub fn resized_crop_into(
    resizer: &mut Resizer,
    clip: &Clip,
    crop: CropBox,
    out_h: usize,
    out_w: usize,
    out: &mut [u8],
) {
    let out_len = out_h * out_w * 3;
    assert_eq!(out.len(), clip.frames * out_len, "output has T*H*W*3 bytes");
    if out_len == 0 {
        return;
    }
    for (t, dst) in out.chunks_exact_mut(out_len).enumerate() {
        resized_crop_frame(
            resizer,
            clip.frame(t),
            clip.height,
            clip.width,
            crop,
            (out_h, out_w),
            dst,
        );
    }
}

/// [`resized_crop`] of one `height` x `width` frame into `out` (`out_h * out_w * 3` bytes).
pub(crate) fn resized_crop_frame(
    resizer: &mut Resizer,
    frame: &[u8],
    height: usize,
    width: usize,
    crop: CropBox,
    (out_h, out_w): (usize, usize),
    out: &mut [u8],
) {
    if crop.height == out_h && crop.width == out_w {
        // A pure crop needs no resampling (and must be exact).
        copy_crop(frame, width, crop, out);
        return;
    }
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Bilinear))
        .crop(
            crop.left as f64,
            crop.top as f64,
            crop.width as f64,
            crop.height as f64,
        );
    let src = ImageRef::new(width as u32, height as u32, frame, PixelType::U8x3)
        .expect("a Clip frame has exactly H*W*3 bytes");
    let mut dst = Image::from_slice_u8(out_w as u32, out_h as u32, out, PixelType::U8x3)
        .expect("output frame has exactly H*W*3 bytes");
    resizer
        .resize(&src, &mut dst, &options)
        .expect("crop box lies inside the frame and pixel types match");
}

/// Resizes every frame so that its short side is `short` (torchvision `Resize(short)`).
pub fn resize_short_side(resizer: &mut Resizer, clip: &Clip, short: usize) -> Clip {
    let (h, w) = short_side_size(clip.height, clip.width, short);
    let full = CropBox {
        top: 0,
        left: 0,
        height: clip.height,
        width: clip.width,
    };
    resized_crop(resizer, clip, full, h, w)
}

/// Copies `crop` out of every frame (no resampling).
pub fn crop(clip: &Clip, crop: CropBox) -> Clip {
    let mut out = Clip::zeros(clip.frames, crop.height, crop.width);
    crop_into(clip, crop, &mut out.data);
    out
}

/// As [`crop`], into `out` (exactly `T * crop.height * crop.width * 3` bytes).
pub fn crop_into(clip: &Clip, crop: CropBox, out: &mut [u8]) {
    let out_len = crop.height * crop.width * 3;
    assert_eq!(out.len(), clip.frames * out_len, "output has T*H*W*3 bytes");
    if out_len == 0 {
        return;
    }
    for (t, dst) in out.chunks_exact_mut(out_len).enumerate() {
        copy_crop(clip.frame(t), clip.width, crop, dst);
    }
}

pub(crate) fn copy_crop(frame: &[u8], width: usize, crop: CropBox, out: &mut [u8]) {
    let row_bytes = crop.width * 3;
    for (r, dst) in out.chunks_exact_mut(row_bytes).enumerate() {
        let start = ((crop.top + r) * width + crop.left) * 3;
        dst.copy_from_slice(&frame[start..start + row_bytes]);
    }
}

/// Mirrors every frame left-right in place.
pub fn hflip(clip: &mut Clip) {
    let w = clip.width;
    for row in clip.data.chunks_exact_mut(w * 3) {
        for x in 0..w / 2 {
            let (a, b) = (x * 3, (w - 1 - x) * 3);
            for c in 0..3 {
                row.swap(a + c, b + c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// A clip whose pixel (t, y, x) is (x, y, t) so any geometric mapping can be read back.
    fn coordinate_clip(t: usize, h: usize, w: usize) -> Clip {
        let mut clip = Clip::zeros(t, h, w);
        for f in 0..t {
            for y in 0..h {
                for x in 0..w {
                    let i = ((f * h + y) * w + x) * 3;
                    clip.data[i..i + 3].copy_from_slice(&[x as u8, y as u8, f as u8]);
                }
            }
        }
        clip
    }

    #[test]
    fn hflip_is_exact_mirror() {
        let clip = coordinate_clip(2, 3, 5);
        let mut flipped = clip.clone();
        hflip(&mut flipped);
        for f in 0..2 {
            for y in 0..3 {
                for x in 0..5 {
                    let i = ((f * 3 + y) * 5 + x) * 3;
                    assert_eq!(&flipped.data[i..i + 3], &[(4 - x) as u8, y as u8, f as u8]);
                }
            }
        }
        hflip(&mut flipped);
        assert_eq!(flipped, clip);
    }

    #[test]
    fn crop_box_maps_where_it_should() {
        let clip = coordinate_clip(2, 20, 30);
        let b = CropBox {
            top: 3,
            left: 7,
            height: 10,
            width: 12,
        };
        let mut resizer = Resizer::new();
        for out in [crop(&clip, b), resized_crop(&mut resizer, &clip, b, 10, 12)] {
            assert_eq!(out.shape(), [2, 10, 12, 3]);
            for f in 0..2 {
                for y in 0..10 {
                    for x in 0..12 {
                        let i = ((f * 10 + y) * 12 + x) * 3;
                        assert_eq!(
                            &out.data[i..i + 3],
                            &[(x + 7) as u8, (y + 3) as u8, f as u8]
                        );
                    }
                }
            }
        }
        // Resampling a crop by 2x: output pixel (y, x) centres on source (top + 2y + 0.5, left + 2x + 0.5),
        // so the coordinate ramp reads back as that average.
        let out = resized_crop(&mut resizer, &clip, b, 5, 6);
        for y in 0..5 {
            for x in 0..6 {
                let i = (y * 6 + x) * 3;
                let (sx, sy) = (7.0 + 2.0 * x as f64 + 0.5, 3.0 + 2.0 * y as f64 + 0.5);
                assert!(
                    (out.data[i] as f64 - sx).abs() <= 1.0,
                    "x at ({y},{x}) = {}",
                    out.data[i]
                );
                assert!(
                    (out.data[i + 1] as f64 - sy).abs() <= 1.0,
                    "y at ({y},{x}) = {}",
                    out.data[i + 1]
                );
            }
        }
    }

    #[test]
    fn rrc_params_follow_torchvision_rules() {
        let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(7);
        for _ in 0..2000 {
            let b = random_resized_crop_params(&mut rng, 256, 341, [0.7, 1.0], [0.75, 4.0 / 3.0]);
            assert!(b.top + b.height <= 256 && b.left + b.width <= 341);
            let area = (b.height * b.width) as f64 / (256.0 * 341.0);
            assert!((0.69..=1.01).contains(&area), "area {area}");
            let r = b.width as f64 / b.height as f64;
            assert!((0.74..=1.345).contains(&r), "ratio {r}");
        }
        // Impossible scale: falls back to the centred crop with the ratio clamped.
        let b = random_resized_crop_params(&mut rng, 100, 400, [1.0, 1.0], [0.75, 4.0 / 3.0]);
        assert_eq!(
            b,
            CropBox {
                top: 0,
                left: 133,
                height: 100,
                width: 133
            }
        );
        assert_eq!(
            center_crop_box(256, 341, 224, 224),
            CropBox {
                top: 16,
                left: 58,
                height: 224,
                width: 224
            }
        );
        assert_eq!(short_side_size(480, 640, 224), (224, 298));
        assert_eq!(short_side_size(640, 480, 224), (298, 224));
    }
}
