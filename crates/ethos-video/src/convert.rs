//! Decoded frame -> uint8 RGB: ROI crop, scaling and pixel-format conversion in one swscale call,
//! then rotation to upright.
//!
//! Colour conversion matches the ffmpeg CLI (`-pix_fmt rgb24`, FFmpeg 5.1): swscale with the CLI's
//! default flags (`bicubic` only, no `accurate_rnd`/`full_chroma_int`), the input matrix taken from
//! the frame's colorspace (unspecified -> BT.601, as `vf_scale`'s `in_color_matrix=auto` does) and the
//! input range from the frame's `color_range`. At the source size this gives bit-identical RGB.

#[cfg(feature = "ffmpeg")]
use std::path::Path;

#[cfg(feature = "ffmpeg")]
use ffmpeg::{ffi, format, frame, software::scaling};
#[cfg(feature = "ffmpeg")]
use ffmpeg_next as ffmpeg;

#[cfg(feature = "ffmpeg")]
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
#[cfg_attr(not(feature = "ffmpeg"), allow(dead_code))]
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
#[cfg(feature = "ffmpeg")]
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
    /// Planar copy of an NV12 (NVDEC) frame.
    planar: Option<frame::Video>,
}

// The swscale context is owned exclusively by the converter.
#[cfg(feature = "ffmpeg")]
unsafe impl Send for FrameConverter {}

#[cfg(feature = "ffmpeg")]
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
            planar: None,
        })
    }

    /// Bytes of one output frame (`H * W * 3`).
    pub fn frame_len(&self) -> usize {
        self.out_width as usize * self.out_height as usize * 3
    }

    /// Converts `src` into `out` (`frame_len()` bytes, upright RGB rows).
    ///
    /// NV12 frames (NVDEC's 8-bit output) are first re-planarised to YUV420P, losslessly, so they
    /// take the same swscale path as the CPU decoder's frames and give the same bytes.
    pub fn convert(
        &mut self,
        path: &Path,
        src: &frame::Video,
        out: &mut [u8],
    ) -> Result<(), VideoError> {
        if src.format() != format::Pixel::NV12 {
            return self.convert_planar(path, src, out);
        }
        let mut planar = self
            .planar
            .take()
            .filter(|f| f.width() == src.width() && f.height() == src.height())
            .unwrap_or_else(|| {
                frame::Video::new(format::Pixel::YUV420P, src.width(), src.height())
            });
        nv12_to_yuv420p(src, &mut planar).map_err(|reason| VideoError::Decode {
            path: path.to_path_buf(),
            reason,
        })?;
        let result = self.convert_planar(path, &planar, out);
        self.planar = Some(planar);
        result
    }

    fn convert_planar(
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

/// Copies an NV12 frame into a YUV420P frame of the same size: the luma rows as they are, the
/// interleaved chroma pairs split into the U and V planes; frame properties (colour space, range,
/// timestamps) are copied too.
#[cfg(feature = "ffmpeg")]
fn nv12_to_yuv420p(src: &frame::Video, dst: &mut frame::Video) -> Result<(), String> {
    let (w, h) = (src.width() as usize, src.height() as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    // SAFETY: both frames are valid; av_frame_copy_props copies metadata only.
    if unsafe { ffi::av_frame_copy_props(dst.as_mut_ptr(), src.as_ptr()) } < 0 {
        return Err("cannot copy the frame's properties".into());
    }
    let (ys, uvs) = (src.stride(0), src.stride(1));
    let (yd, ud, vd) = (dst.stride(0), dst.stride(1), dst.stride(2));
    for y in 0..h {
        let row = &src.data(0)[y * ys..y * ys + w];
        dst.data_mut(0)[y * yd..y * yd + w].copy_from_slice(row);
    }
    let mut u_row = vec![0u8; cw];
    let mut v_row = vec![0u8; cw];
    for y in 0..ch {
        let pairs = &src.data(1)[y * uvs..y * uvs + 2 * cw];
        for (x, uv) in pairs.chunks_exact(2).enumerate() {
            u_row[x] = uv[0];
            v_row[x] = uv[1];
        }
        dst.data_mut(1)[y * ud..y * ud + cw].copy_from_slice(&u_row);
        dst.data_mut(2)[y * vd..y * vd + cw].copy_from_slice(&v_row);
    }
    Ok(())
}

/// Sets the YUV->RGB matrix and ranges the way FFmpeg 5.1's `vf_scale` does for the CLI.
#[cfg(feature = "ffmpeg")]
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

    /// A `w` x `h` YUV420P frame of pseudo-random samples, BT.709 limited range, and the same
    /// samples as NV12 (NVDEC's layout).
    #[cfg(feature = "ffmpeg")]
    fn yuv_and_nv12(w: u32, h: u32) -> (frame::Video, frame::Video) {
        crate::init();
        let mut planar = frame::Video::new(format::Pixel::YUV420P, w, h);
        let mut nv12 = frame::Video::new(format::Pixel::NV12, w, h);
        let mut state = 0x2545_f491_u32;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            16 + (state % 220) as u8
        };
        let (w, h) = (w as usize, h as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        for y in 0..h {
            for x in 0..w {
                let v = next();
                let (ps, ns) = (planar.stride(0), nv12.stride(0));
                planar.data_mut(0)[y * ps + x] = v;
                nv12.data_mut(0)[y * ns + x] = v;
            }
        }
        for y in 0..ch {
            for x in 0..cw {
                let (u, v) = (next(), next());
                let (us, vs, ns) = (planar.stride(1), planar.stride(2), nv12.stride(1));
                planar.data_mut(1)[y * us + x] = u;
                planar.data_mut(2)[y * vs + x] = v;
                nv12.data_mut(1)[y * ns + 2 * x] = u;
                nv12.data_mut(1)[y * ns + 2 * x + 1] = v;
            }
        }
        for f in [&mut planar, &mut nv12] {
            f.set_color_space(ffmpeg::color::Space::BT709);
            f.set_color_range(ffmpeg::color::Range::MPEG);
        }
        (planar, nv12)
    }

    #[cfg(feature = "ffmpeg")]
    #[test]
    fn nv12_frames_convert_to_the_same_bytes_as_planar_ones() {
        let path = Path::new("test");
        for (w, h) in [(64, 48), (37, 23)] {
            let (planar, nv12) = yuv_and_nv12(w, h);
            let mut back = frame::Video::new(format::Pixel::YUV420P, w, h);
            nv12_to_yuv420p(&nv12, &mut back).unwrap();
            for plane in 0..3 {
                let rows = if plane == 0 { h } else { h.div_ceil(2) } as usize;
                let cols = if plane == 0 { w } else { w.div_ceil(2) } as usize;
                for y in 0..rows {
                    let (a, b) = (planar.stride(plane), back.stride(plane));
                    assert_eq!(
                        planar.data(plane)[y * a..y * a + cols],
                        back.data(plane)[y * b..y * b + cols],
                        "plane {plane} row {y} of {w}x{h}"
                    );
                }
            }
            let roi = Some(Roi {
                x: 3,
                y: 2,
                w: w - 9,
                h: h - 5,
            });
            for (roi, resize, rotation) in [
                (None, Resize::None, 0),
                (roi, Resize::ShortSide(11), 0),
                (
                    None,
                    Resize::Exact {
                        width: 20,
                        height: 30,
                    },
                    90,
                ),
            ] {
                let mut a = FrameConverter::new(path, w, h, rotation, roi, resize).unwrap();
                let mut b = FrameConverter::new(path, w, h, rotation, roi, resize).unwrap();
                let mut out_a = vec![0u8; a.frame_len()];
                let mut out_b = vec![0u8; b.frame_len()];
                a.convert(path, &planar, &mut out_a).unwrap();
                b.convert(path, &nv12, &mut out_b).unwrap();
                // Twice: the planar buffer is reused.
                b.convert(path, &nv12, &mut out_b).unwrap();
                assert!(out_a == out_b, "{w}x{h} {roi:?} {resize:?} {rotation}");
            }
        }
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
