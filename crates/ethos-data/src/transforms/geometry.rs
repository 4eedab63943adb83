//! Clip geometry: RandomResizedCrop (torchvision's parameter sampling), crop + resize, resize of
//! the short side, centre crop and horizontal flip. Every function applies one set of parameters
//! to all frames of a uint8 `(T, H, W, 3)` clip.

use ethos_video::{Clip, ClipView};
use fast_image_resize::images::{CroppedImage, Image, ImageRef};
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
pub fn resized_crop<'c>(
    resizer: &mut Resizer,
    clip: impl Into<ClipView<'c>>,
    crop: CropBox,
    out_h: usize,
    out_w: usize,
) -> Clip {
    let clip = clip.into();
    let mut out = Clip::zeros(clip.frames, out_h, out_w);
    resized_crop_into(resizer, clip, crop, out_h, out_w, &mut out.data);
    out
}

/// As [`resized_crop`], writing the `(T, out_h, out_w, 3)` result into `out` (exactly that many
/// bytes), so a worker can reuse one buffer for every sample.
pub fn resized_crop_into<'c>(
    resizer: &mut Resizer,
    clip: impl Into<ClipView<'c>>,
    crop: CropBox,
    out_h: usize,
    out_w: usize,
    out: &mut [u8],
) {
    let clip = clip.into();
    let mut tmp = Vec::new();
    resized_crop_frames(
        resizer,
        clip,
        0..clip.frames,
        crop,
        (out_h, out_w),
        &mut tmp,
        out,
    );
}

/// Crops `crop` out of frames `frames` of `clip` and resizes them to `out_h` x `out_w` into `out`
/// (`frames.len() * out_h * out_w * 3` bytes) exactly as torchvision's `resized_crop` with
/// `antialias=True` does on uint8 tensors: the crop is cut out first, so the filter is clamped at
/// its edges; bilinear (a triangle filter widened by the scale when shrinking); the horizontal
/// pass first, rounded to uint8, then the vertical pass. `tmp` holds the intermediate rows.
pub fn resized_crop_frames(
    resizer: &mut Resizer,
    clip: ClipView<'_>,
    frames: std::ops::Range<usize>,
    crop: CropBox,
    (out_h, out_w): (usize, usize),
    tmp: &mut Vec<u8>,
    out: &mut [u8],
) {
    let out_len = out_h * out_w * 3;
    assert_eq!(
        out.len(),
        frames.len() * out_len,
        "output has T*H*W*3 bytes"
    );
    assert!(
        crop.top + crop.height <= clip.height && crop.left + crop.width <= clip.width,
        "crop box lies inside the frame"
    );
    if out_len == 0 || crop.width == 0 || crop.height == 0 {
        return;
    }
    let convolution = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    let (horizontal, vertical) = (crop.width != out_w, crop.height != out_h);
    let n = frames.len();
    // Rows from the first frame's crop to the last one's, in the clip seen as one tall image.
    let spanned = (n - 1) * clip.height + crop.height;
    if horizontal && vertical && n > 1 && 5 * n * crop.height >= 4 * spanned {
        // Pass 1 for all the frames in one call (one set of coefficients): the horizontal pass
        // keeps rows apart, so running it over the rows between the crops too (at most a
        // fifth of the work; RandomResizedCrop's boxes are mostly near full height) changes
        // nothing in the crops' rows.
        let frame_len = clip.frame_len();
        let tall = ImageRef::new(
            clip.width as u32,
            (n * clip.height) as u32,
            &clip.data[frames.start * frame_len..frames.end * frame_len],
            PixelType::U8x3,
        )
        .expect("frames have exactly H*W*3 bytes each");
        let cropped = CroppedImage::new(
            &tall,
            crop.left as u32,
            crop.top as u32,
            crop.width as u32,
            spanned as u32,
        )
        .expect("crop box lies inside the frames");
        tmp.resize(out_w * spanned * 3, 0);
        let mut mid = Image::from_slice_u8(out_w as u32, spanned as u32, tmp, PixelType::U8x3)
            .expect("intermediate rows have exactly W*3 bytes each");
        resizer
            .resize(&cropped, &mut mid, &convolution)
            .expect("pixel types match");
        let row = out_w * 3;
        for (i, dst) in out.chunks_exact_mut(out_len).enumerate() {
            let rows = &tmp[i * clip.height * row..(i * clip.height + crop.height) * row];
            vertical_pass(resizer, rows, out_w, out_h, dst);
        }
        return;
    }
    tmp.resize(out_w * crop.height * 3, 0);
    for (t, dst) in frames.zip(out.chunks_exact_mut(out_len)) {
        let frame = ImageRef::new(
            clip.width as u32,
            clip.height as u32,
            clip.frame(t),
            PixelType::U8x3,
        )
        .expect("a frame has exactly H*W*3 bytes");
        let cropped = CroppedImage::new(
            &frame,
            crop.left as u32,
            crop.top as u32,
            crop.width as u32,
            crop.height as u32,
        )
        .expect("crop box lies inside the frame");
        // Pass 1 (columns; equal heights, so horizontal only) into `tmp`, or straight to `dst`.
        let mid: &mut [u8] = if vertical { &mut tmp[..] } else { &mut *dst };
        if horizontal {
            let mut mid =
                Image::from_slice_u8(out_w as u32, crop.height as u32, mid, PixelType::U8x3)
                    .expect("intermediate frame has exactly H*W*3 bytes");
            resizer
                .resize(&cropped, &mut mid, &convolution)
                .expect("pixel types match");
        } else {
            copy_crop(clip.frame(t), clip.width, crop, mid);
        }
        // Pass 2 (rows; equal widths, so vertical only).
        if vertical {
            vertical_pass(resizer, &tmp[..], out_w, out_h, dst);
        }
    }
}

/// The vertical pass of [`resized_crop_frames`]: `rows` (`width` wide, uint8 RGB) resized to
/// `out_h` rows into `out` (equal widths, so fast_image_resize runs only this pass).
fn vertical_pass(resizer: &mut Resizer, rows: &[u8], width: usize, out_h: usize, out: &mut [u8]) {
    let src = ImageRef::new(
        width as u32,
        (rows.len() / (3 * width)) as u32,
        rows,
        PixelType::U8x3,
    )
    .expect("intermediate frame has exactly H*W*3 bytes");
    let mut dst = Image::from_slice_u8(width as u32, out_h as u32, out, PixelType::U8x3)
        .expect("output frame has exactly H*W*3 bytes");
    let convolution = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    resizer
        .resize(&src, &mut dst, &convolution)
        .expect("pixel types match");
}

/// [`resized_crop`] of one `height` x `width` frame into `out` (`out_h * out_w * 3` bytes).
pub(crate) fn resized_crop_frame(
    resizer: &mut Resizer,
    frame: &[u8],
    height: usize,
    width: usize,
    crop: CropBox,
    out_size: (usize, usize),
    out: &mut [u8],
) {
    let clip = ClipView {
        frames: 1,
        height,
        width,
        data: frame,
    };
    let mut tmp = Vec::new();
    resized_crop_frames(resizer, clip, 0..1, crop, out_size, &mut tmp, out);
}

/// Resizes every frame so that its short side is `short` (torchvision `Resize(short)`).
pub fn resize_short_side<'c>(
    resizer: &mut Resizer,
    clip: impl Into<ClipView<'c>>,
    short: usize,
) -> Clip {
    let clip = clip.into();
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

    /// torchvision v2 `resized_crop(antialias=True)` on the image formula of
    /// `bench/resized_crop_golden.py`: crop first, then resize, so the filter is clamped at the
    /// crop's edges; horizontal pass, uint8 rounding, vertical pass. Bit-exact.
    #[test]
    fn crop_then_resize_matches_torchvision() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/resized_crop_golden.bin");
        let bytes = std::fs::read(&path).unwrap();
        let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let mut at = 4;
        let mut resizer = Resizer::new();
        for case in 0..word(0) {
            let [h, w, top, left, ch, cw, oh, ow] = std::array::from_fn(|i| word(at + 4 * i));
            at += 32;
            let want = &bytes[at..at + oh * ow * 3];
            at += oh * ow * 3;
            // The image twice, as two frames: frames must not leak into each other.
            let mut clip = Clip::zeros(2, h, w);
            for f in 0..2 {
                for (i, px) in clip.frame_mut(f).chunks_exact_mut(3).enumerate() {
                    let (y, x) = (i / w, i % w);
                    for (c, v) in px.iter_mut().enumerate() {
                        *v = ((x * 7 + y * 13 + c * 50 + ((x * y) % 31) * 5) % 256) as u8;
                    }
                }
            }
            let crop = CropBox {
                top,
                left,
                height: ch,
                width: cw,
            };
            let got = resized_crop(&mut resizer, &clip, crop, oh, ow);
            for f in 0..2 {
                let diffs: Vec<u8> = got
                    .frame(f)
                    .iter()
                    .zip(want)
                    .map(|(a, b)| a.abs_diff(*b))
                    .collect();
                let max = diffs.iter().copied().max().unwrap();
                let exact = diffs.iter().filter(|d| **d == 0).count() as f64 / diffs.len() as f64;
                assert!(
                    max == 0,
                    "case {case} frame {f}: max difference {max}, {:.1}% exact",
                    100.0 * exact
                );
            }
        }
    }

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
