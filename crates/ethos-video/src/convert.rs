//! Decoded frame -> uint8 RGB: ROI crop, scaling and pixel-format conversion in one swscale call,
//! then rotation to upright.
//!
//! Colour conversion matches the ffmpeg CLI (`-pix_fmt rgb24`, FFmpeg 5.1): swscale with the CLI's
//! default flags (`bicubic` only, no `accurate_rnd`/`full_chroma_int`), the input matrix taken from
//! the frame's colorspace (unspecified -> BT.601, as `vf_scale`'s `in_color_matrix=auto` does) and the
//! input range from the frame's `color_range`. At the source size this gives bit-identical RGB.

use std::path::Path;

use ffmpeg::{ffi, format, frame, software::scaling};
use ffmpeg_next as ffmpeg;

use crate::VideoError;

/// A rectangle in source pixels of the upright (rotation-applied) frame: top-left corner and size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Roi {
    /// Left edge in pixels.
    pub x: u32,
    /// Top edge in pixels.
    pub y: u32,
    /// Width in pixels.
    pub w: u32,
    /// Height in pixels.
    pub h: u32,
}

impl std::str::FromStr for Roi {
    type Err = String;

    /// Parses `x,y,w,h`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        let nums: Result<Vec<u32>, _> = parts.iter().map(|p| p.parse::<u32>()).collect();
        match nums {
            Ok(v) if v.len() == 4 && v[2] > 0 && v[3] > 0 => Ok(Roi {
                x: v[0],
                y: v[1],
                w: v[2],
                h: v[3],
            }),
            _ => Err(format!(
                "ROI {s:?} must be x,y,w,h with non-negative integers and positive w, h"
            )),
        }
    }
}

/// Output size of decoded frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Resize {
    /// Keep the (ROI) size.
    #[default]
    None,
    /// Scale so the shorter side has this many pixels, keeping the aspect ratio (other side rounded).
    ShortSide(u32),
    /// Scale to exactly `width` x `height` pixels.
    Exact {
        /// Output width in pixels.
        width: u32,
        /// Output height in pixels.
        height: u32,
    },
}

/// Output `(width, height)` for an input region of `w` x `h` pixels.
pub fn output_size(w: u32, h: u32, resize: Resize) -> (u32, u32) {
    match resize {
        Resize::None => (w, h),
        Resize::ShortSide(s) => {
            if w <= h {
                (s, ((h as f64 * s as f64 / w as f64).round() as u32).max(1))
            } else {
                (((w as f64 * s as f64 / h as f64).round() as u32).max(1), s)
            }
        }
        Resize::Exact { width, height } => (width, height),
    }
}

/// Maps an upright ROI to coded-frame pixels for a clockwise `rotation` of a `cw` x `ch` coded frame.
fn roi_to_coded(roi: Roi, rotation: u32, cw: u32, ch: u32) -> Roi {
    match rotation {
        90 => Roi {
            x: roi.y,
            y: ch - roi.x - roi.w,
            w: roi.h,
            h: roi.w,
        },
        180 => Roi {
            x: cw - roi.x - roi.w,
            y: ch - roi.y - roi.h,
            w: roi.w,
            h: roi.h,
        },
        270 => Roi {
            x: cw - roi.y - roi.h,
            y: roi.x,
            w: roi.h,
            h: roi.w,
        },
        _ => roi,
    }
}

/// Converts decoded frames of one stream to upright RGB with a fixed ROI and output size.
pub(crate) struct FrameConverter {
    /// ROI in coded pixels (whole frame when no ROI was asked).
    coded_roi: Roi,
    /// Output size before rotation.
    coded_out: (u32, u32),
    /// Output size after rotation, i.e. what callers get.
    pub out_width: u32,
    /// Output height after rotation.
    pub out_height: u32,
    rotation: u32,
    scaler: Option<(format::Pixel, scaling::Context)>,
    rgb: Option<frame::Video>,
}

// The swscale context is owned exclusively by the converter.
unsafe impl Send for FrameConverter {}

impl FrameConverter {
    /// A converter for coded frames of `cw` x `ch` pixels shown rotated clockwise by `rotation`.
    pub fn new(
        path: &Path,
        cw: u32,
        ch: u32,
        rotation: u32,
        roi: Option<Roi>,
        resize: Resize,
    ) -> Result<Self, VideoError> {
        let bad = |reason: String| VideoError::BadRequest {
            path: path.to_path_buf(),
            reason,
        };
        let (uw, uh) = if rotation % 180 == 90 {
            (ch, cw)
        } else {
            (cw, ch)
        };
        let roi = roi.unwrap_or(Roi {
            x: 0,
            y: 0,
            w: uw,
            h: uh,
        });
        if roi.w == 0
            || roi.h == 0
            || roi.x as u64 + roi.w as u64 > uw as u64
            || roi.y as u64 + roi.h as u64 > uh as u64
        {
            return Err(bad(format!(
                "ROI x={} y={} w={} h={} is not inside the {uw}x{uh} frame",
                roi.x, roi.y, roi.w, roi.h
            )));
        }
        let (ow, oh) = output_size(roi.w, roi.h, resize);
        if ow == 0 || oh == 0 || ow > 16384 || oh > 16384 {
            return Err(bad(format!("output size {ow}x{oh} is not usable")));
        }
        let coded_out = if rotation % 180 == 90 {
            (oh, ow)
        } else {
            (ow, oh)
        };
        Ok(Self {
            coded_roi: roi_to_coded(roi, rotation, cw, ch),
            coded_out,
            out_width: ow,
            out_height: oh,
            rotation,
            scaler: None,
            rgb: None,
        })
    }

    /// Bytes of one output frame (`H * W * 3`).
    pub fn frame_len(&self) -> usize {
        self.out_width as usize * self.out_height as usize * 3
    }

    /// Converts `src` into `out` (`frame_len()` bytes, upright RGB rows).
    pub fn convert(
        &mut self,
        path: &Path,
        src: &frame::Video,
        out: &mut [u8],
    ) -> Result<(), VideoError> {
        let err = |reason: String| VideoError::Decode {
            path: path.to_path_buf(),
            reason,
        };
        let r = self.coded_roi;
        if src.width() < r.x + r.w || src.height() < r.y + r.h {
            return Err(err(format!(
                "frame size changed mid-stream to {}x{}",
                src.width(),
                src.height()
            )));
        }
        // Crop by reference: a new AVFrame sharing the buffers, with its plane pointers moved.
        // SAFETY: av_frame_ref takes a new reference on src's buffers; the wrapped frame frees it.
        let cropped = unsafe {
            let f = ffi::av_frame_alloc();
            if f.is_null() {
                return Err(err("out of memory".into()));
            }
            let mut cropped = frame::Video::wrap(f);
            if ffi::av_frame_ref(f, src.as_ptr()) < 0 {
                return Err(err("cannot reference the decoded frame".into()));
            }
            (*f).crop_left = r.x as usize;
            (*f).crop_top = r.y as usize;
            (*f).crop_right = (src.width() - r.x - r.w) as usize;
            (*f).crop_bottom = (src.height() - r.y - r.h) as usize;
            if ffi::av_frame_apply_cropping(f, ffi::AV_FRAME_CROP_UNALIGNED as i32) < 0 {
                return Err(err("cannot crop the decoded frame".into()));
            }
            cropped.set_width(r.w);
            cropped.set_height(r.h);
            cropped
        };
        let fmt = cropped.format();
        if self.scaler.as_ref().is_none_or(|(f, _)| *f != fmt) {
            let mut ctx = scaling::Context::get(
                fmt,
                r.w,
                r.h,
                format::Pixel::RGB24,
                self.coded_out.0,
                self.coded_out.1,
                scaling::Flags::BICUBIC,
            )
            .map_err(|e| err(format!("swscale from {fmt:?}: {e}")))?;
            set_colorspace_like_cli(&mut ctx, &cropped);
            self.scaler = Some((fmt, ctx));
        }
        let rgb = self.rgb.get_or_insert_with(|| {
            frame::Video::new(format::Pixel::RGB24, self.coded_out.0, self.coded_out.1)
        });
        let (_, scaler) = self.scaler.as_mut().expect("scaler set above");
        scaler
            .run(&cropped, rgb)
            .map_err(|e| err(format!("swscale: {e}")))?;
        let (w, h) = (self.coded_out.0 as usize, self.coded_out.1 as usize);
        let stride = rgb.stride(0);
        let data = rgb.data(0);
        let row = |y: usize| &data[y * stride..y * stride + w * 3];
        match self.rotation {
            90 => {
                // Upright (u, v) <- coded (x = v, y = h - 1 - u); upright width is h.
                for v in 0..w {
                    for u in 0..h {
                        let s = &row(h - 1 - u)[v * 3..v * 3 + 3];
                        out[(v * h + u) * 3..(v * h + u) * 3 + 3].copy_from_slice(s);
                    }
                }
            }
            180 => {
                for v in 0..h {
                    let src_row = row(h - 1 - v);
                    for u in 0..w {
                        let s = &src_row[(w - 1 - u) * 3..(w - u) * 3];
                        out[(v * w + u) * 3..(v * w + u) * 3 + 3].copy_from_slice(s);
                    }
                }
            }
            270 => {
                // Upright (u, v) <- coded (x = w - 1 - v, y = u).
                for v in 0..w {
                    for u in 0..h {
                        let s = &row(u)[(w - 1 - v) * 3..(w - v) * 3];
                        out[(v * h + u) * 3..(v * h + u) * 3 + 3].copy_from_slice(s);
                    }
                }
            }
            _ => {
                for y in 0..h {
                    out[y * w * 3..(y + 1) * w * 3].copy_from_slice(row(y));
                }
            }
        }
        Ok(())
    }
}

/// Sets the YUV->RGB matrix and ranges the way FFmpeg 5.1's `vf_scale` does for the CLI.
fn set_colorspace_like_cli(ctx: &mut scaling::Context, frame: &frame::Video) {
    // SAFETY: the context is valid; sws_getCoefficients returns a static table.
    unsafe {
        let sws = ctx.as_mut_ptr();
        let (mut inv_table, mut table): (*mut i32, *mut i32) =
            (std::ptr::null_mut(), std::ptr::null_mut());
        let (mut src_range, mut dst_range, mut brightness, mut contrast, mut saturation) =
            (0, 0, 0, 0, 0);
        if ffi::sws_getColorspaceDetails(
            sws,
            &mut inv_table,
            &mut src_range,
            &mut table,
            &mut dst_range,
            &mut brightness,
            &mut contrast,
            &mut saturation,
        ) < 0
        {
            return; // not a YUV input: nothing to set
        }
        let raw = frame.as_ptr();
        let mut space = (*raw).colorspace as i32;
        // vf_scale's parse_yuv_type: outside 1..=10 or 8 (YCgCo) falls back to BT.470BG (= BT.601).
        if !(1..=10).contains(&space) || space == 8 {
            space = ffi::AVColorSpace::AVCOL_SPC_BT470BG as i32;
        }
        let coeffs = ffi::sws_getCoefficients(space);
        let range = (*raw).color_range;
        if range != ffi::AVColorRange::AVCOL_RANGE_UNSPECIFIED {
            src_range = (range == ffi::AVColorRange::AVCOL_RANGE_JPEG) as i32;
        }
        ffi::sws_setColorspaceDetails(
            sws, coeffs, src_range, coeffs, dst_range, brightness, contrast, saturation,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_side_keeps_aspect() {
        assert_eq!(output_size(3840, 2160, Resize::ShortSide(256)), (455, 256));
        assert_eq!(output_size(100, 300, Resize::ShortSide(50)), (50, 150));
        assert_eq!(output_size(64, 48, Resize::None), (64, 48));
        assert_eq!(
            output_size(
                64,
                48,
                Resize::Exact {
                    width: 7,
                    height: 9
                }
            ),
            (7, 9)
        );
    }

    #[test]
    fn roi_maps_through_rotations() {
        // A 10x4 coded frame; upright it is 4x10 for 90/270.
        let roi = Roi {
            x: 1,
            y: 2,
            w: 2,
            h: 3,
        };
        assert_eq!(roi_to_coded(roi, 0, 10, 4), roi);
        assert_eq!(
            roi_to_coded(
                Roi {
                    x: 1,
                    y: 0,
                    w: 2,
                    h: 3
                },
                180,
                10,
                4
            ),
            Roi {
                x: 7,
                y: 1,
                w: 2,
                h: 3
            }
        );
        assert_eq!(
            roi_to_coded(roi, 90, 10, 4),
            Roi {
                x: 2,
                y: 1,
                w: 3,
                h: 2
            }
        );
        assert_eq!(
            roi_to_coded(roi, 270, 10, 4),
            Roi {
                x: 5,
                y: 1,
                w: 3,
                h: 2
            }
        );
    }

    #[test]
    fn roi_parses() {
        assert_eq!(
            "1,2,3,4".parse::<Roi>().unwrap(),
            Roi {
                x: 1,
                y: 2,
                w: 3,
                h: 4
            }
        );
        assert!("1,2,3".parse::<Roi>().is_err());
        assert!("1,2,0,4".parse::<Roi>().is_err());
        assert!("a,2,3,4".parse::<Roi>().is_err());
    }
}
