//! [`ClipSampler`]: frame-accurate sampling of frames at given times.
//!
//! Time convention (shared by the whole project): times are seconds from the first video frame (a
//! stream's non-zero start time is subtracted); the frame shown at time `t` is the last frame whose
//! presentation time is `<= t + 1e-6`. Times before 0 are clamped to 0; times at or past the end of
//! the video (last frame time + one frame duration) are clamped to the last frame and counted in
//! [`SampledClip::padded`].
//!
//! Method: seek to the keyframe at or before the first needed time (`AVSEEK_FLAG_BACKWARD` on the
//! video stream), decode forward in presentation order (best-effort timestamps, so B-frames and
//! variable frame rates are handled), hold at most two decoded frames, and convert (crop + scale +
//! RGB) only the frames that are sampled. Frames come out upright (display-matrix rotation applied).

use std::path::Path;

#[cfg(feature = "ffmpeg")]
use ffmpeg_next::frame;

#[cfg(feature = "ffmpeg")]
use crate::convert::FrameConverter;
use crate::convert::{Resize, Roi};
#[cfg(feature = "ffmpeg")]
use crate::decode::VideoInput;
use crate::{Clip, Decoder, VideoError};

/// Tolerance of the time convention, in seconds.
pub const TIME_EPS: f64 = 1e-6;

/// A request for `num_frames` frames at `fps` inside the window `[start_s, start_s + duration_s)`.
#[derive(Clone, Debug, PartialEq)]
pub struct ClipRequest {
    /// Window start in seconds from the first frame.
    pub start_s: f64,
    /// Window length in seconds.
    pub duration_s: f64,
    /// Target sampling rate in frames per second.
    pub fps: f64,
    /// Number of frames `N` to return.
    pub num_frames: usize,
    /// Optional crop in upright source pixels, applied before resizing.
    pub roi: Option<Roi>,
    /// Output size.
    pub resize: Resize,
}

impl ClipRequest {
    /// The `N` sample times in seconds: centred at the window centre `c` and spaced `1/fps` apart
    /// (`t_i = c + (i - (N-1)/2)/fps`) when the window holds `N/fps` seconds, otherwise spread
    /// uniformly over the window (`t_i = start + (i + 0.5) * duration / N`).
    pub fn sample_times(&self) -> Vec<f64> {
        let n = self.num_frames;
        if n == 0 {
            return Vec::new();
        }
        let c = self.start_s + self.duration_s / 2.0;
        if self.fps > 0.0 && self.duration_s >= n as f64 / self.fps {
            (0..n)
                .map(|i| c + (i as f64 - (n as f64 - 1.0) / 2.0) / self.fps)
                .collect()
        } else {
            (0..n)
                .map(|i| self.start_s + (i as f64 + 0.5) * self.duration_s / n as f64)
                .collect()
        }
    }

    fn validate(&self, path: &Path) -> Result<(), VideoError> {
        let bad = |reason: String| {
            Err(VideoError::BadRequest {
                path: path.to_path_buf(),
                reason,
            })
        };
        if !(self.start_s.is_finite() && self.duration_s.is_finite() && self.fps.is_finite()) {
            return bad(format!(
                "non-finite start {} / duration {} / fps {}",
                self.start_s, self.duration_s, self.fps
            ));
        }
        if self.duration_s <= 0.0 {
            return bad(format!("duration {} s must be positive", self.duration_s));
        }
        if self.fps <= 0.0 {
            return bad(format!("fps {} must be positive", self.fps));
        }
        if self.num_frames == 0 {
            return bad("num_frames must be at least 1".into());
        }
        Ok(())
    }
}

/// Frames sampled from a video, with where they came from.
#[derive(Clone, Debug, PartialEq)]
pub struct SampledClip {
    /// The frames, uint8 RGB `(T, H, W, 3)`.
    pub clip: Clip,
    /// The sample time of each frame in seconds from the first frame (after clamping).
    pub times_s: Vec<f64>,
    /// Presentation index of each returned frame, `round(frame time * real fps)`: exact for
    /// constant-frame-rate video, an estimate on the real-rate grid for variable frame rates.
    pub frame_indices: Vec<u64>,
    /// How many samples fell past the end of the video and repeat the last frame.
    pub padded: usize,
}

/// Samples frames from video files; cheap to create, holds no file open between calls.
#[derive(Clone, Debug)]
pub struct ClipSampler {
    #[cfg_attr(not(feature = "ffmpeg"), allow(dead_code))]
    threads: usize,
    decoder: Decoder,
}

impl Default for ClipSampler {
    fn default() -> Self {
        Self::new(1)
    }
}

impl ClipSampler {
    /// A sampler whose decoders use `decoder_threads` frame threads (1 = single-threaded; parallelism
    /// normally comes from sampling several clips at once).
    pub fn new(decoder_threads: usize) -> Self {
        Self {
            threads: decoder_threads.max(1),
            decoder: Decoder::default(),
        }
    }

    /// The same sampler decoding with `decoder` (`auto` by default).
    pub fn with_decoder(mut self, decoder: Decoder) -> Self {
        self.decoder = decoder;
        self
    }

    /// The decoder this sampler asks for.
    pub fn decoder(&self) -> Decoder {
        self.decoder
    }

    /// Samples the frames of `req` (see [`ClipRequest::sample_times`]).
    pub fn sample(&self, path: &Path, req: &ClipRequest) -> Result<SampledClip, VideoError> {
        req.validate(path)?;
        self.sample_times(path, &req.sample_times(), req.roi, req.resize)
    }

    /// Samples the frames shown at `times_s` (seconds from the first frame, ascending).
    #[cfg(feature = "ffmpeg")]
    pub fn sample_times(
        &self,
        path: &Path,
        times_s: &[f64],
        roi: Option<Roi>,
        resize: Resize,
    ) -> Result<SampledClip, VideoError> {
        let bad = |reason: String| VideoError::BadRequest {
            path: path.to_path_buf(),
            reason,
        };
        if times_s.is_empty() {
            return Err(bad("no sample times".into()));
        }
        if times_s.iter().any(|t| !t.is_finite()) {
            return Err(bad(format!("non-finite sample time in {times_s:?}")));
        }
        if times_s.windows(2).any(|w| w[1] < w[0]) {
            return Err(bad("sample times must be ascending".into()));
        }
        let targets: Vec<f64> = times_s.iter().map(|t| t.max(0.0)).collect();
        let mut input = VideoInput::open(path, self.threads, self.decoder)?;
        let mut conv = FrameConverter::new(
            path,
            input.coded_width(),
            input.coded_height(),
            input.rotation,
            roi,
            resize,
        )?;
        let n = targets.len();
        let frame_len = conv.frame_len();
        let mut clip = Clip::zeros(n, conv.out_height as usize, conv.out_width as usize);
        let mut out_times = targets.clone();
        let mut indices = vec![0u64; n];
        let mut padded = 0;

        let mut cand = frame::Video::empty();
        let mut cur = frame::Video::empty();
        let first_time =
            input
                .seek_before(targets[0], &mut cur)?
                .ok_or_else(|| VideoError::Invalid {
                    path: path.to_path_buf(),
                    reason: "no decodable frames".into(),
                })?;
        let mut cand_time: Option<f64> = None;
        let mut cur_time = Some(first_time);
        // The last converted frame's time and output slot, to copy instead of converting again.
        let mut last_emitted: Option<(f64, usize)> = None;
        let mut idx = 0;
        let fps = input.real_fps;
        let mut emit = |slot: usize,
                        time: f64,
                        frame: &frame::Video,
                        clip: &mut Clip|
         -> Result<(), VideoError> {
            match last_emitted {
                Some((t, s)) if t == time => {
                    let (a, b) = clip.data.split_at_mut(slot * frame_len);
                    b[..frame_len].copy_from_slice(&a[s * frame_len..(s + 1) * frame_len]);
                }
                _ => conv.convert(path, frame, clip.frame_mut(slot))?,
            }
            last_emitted = Some((time, slot));
            indices[slot] = (time.max(0.0) * fps).round() as u64;
            Ok(())
        };
        while let Some(t) = cur_time {
            while idx < n && t > targets[idx] + TIME_EPS {
                match cand_time {
                    Some(ct) => emit(idx, ct, &cand, &mut clip)?,
                    // Before the first decoded frame (a clamped time): that frame is shown.
                    None => emit(idx, t, &cur, &mut clip)?,
                }
                idx += 1;
            }
            if idx == n {
                break;
            }
            std::mem::swap(&mut cand, &mut cur);
            cand_time = Some(t);
            cur_time = input.next_frame(&mut cur)?;
        }
        if idx < n {
            let last = cand_time.ok_or_else(|| VideoError::Invalid {
                path: path.to_path_buf(),
                reason: "no decodable frames".into(),
            })?;
            let end = last + 1.0 / fps;
            for slot in idx..n {
                if targets[slot] >= end - TIME_EPS {
                    padded += 1;
                    out_times[slot] = last;
                }
                emit(slot, last, &cand, &mut clip)?;
            }
            if padded > 0 {
                tracing::debug!(
                    "{}: {padded} of {n} samples past the end ({end:.3}s) repeat the last frame",
                    path.display()
                );
            }
        }
        Ok(SampledClip {
            clip,
            times_s: out_times,
            frame_indices: indices,
            padded,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(start_s: f64, duration_s: f64, fps: f64, n: usize) -> ClipRequest {
        ClipRequest {
            start_s,
            duration_s,
            fps,
            num_frames: n,
            roi: None,
            resize: Resize::None,
        }
    }

    #[test]
    fn long_window_is_centred_at_target_rate() {
        let t = req(10.0, 6.0, 12.0, 16).sample_times();
        assert_eq!(t.len(), 16);
        let c = 13.0;
        for (i, ti) in t.iter().enumerate() {
            assert!((ti - (c + (i as f64 - 7.5) / 12.0)).abs() < 1e-12);
        }
        assert!(((t[0] + t[15]) / 2.0 - c).abs() < 1e-12);
    }

    #[test]
    fn short_window_is_spread_uniformly() {
        // 1 s window, 16 frames at 12 fps would need 1.33 s.
        let t = req(2.0, 1.0, 12.0, 16).sample_times();
        assert!((t[0] - (2.0 + 0.5 / 16.0)).abs() < 1e-12);
        assert!((t[15] - (2.0 + 15.5 / 16.0)).abs() < 1e-12);
        assert!(t.iter().all(|x| (2.0..3.0).contains(x)));
    }

    #[test]
    fn exact_fit_window_uses_centred_rule() {
        let t = req(0.0, 2.0, 4.0, 8).sample_times();
        assert!((t[0] - 0.125).abs() < 1e-12 && (t[7] - 1.875).abs() < 1e-12);
    }
}
