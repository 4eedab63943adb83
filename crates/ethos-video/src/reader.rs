//! [`FrameReader`]: sequential, bounded-memory decode of a (long) video at a target rate.

#[cfg(feature = "ffmpeg")]
use std::path::Path;

#[cfg(feature = "ffmpeg")]
use ffmpeg_next::frame;

use crate::Decoder;
#[cfg(feature = "ffmpeg")]
use crate::VideoError;
#[cfg(feature = "ffmpeg")]
use crate::convert::FrameConverter;
use crate::convert::{Resize, Roi};
#[cfg(feature = "ffmpeg")]
use crate::decode::VideoInput;
#[cfg(feature = "ffmpeg")]
use crate::sampler::TIME_EPS;

/// Options of a [`FrameReader`].
#[derive(Clone, Debug, PartialEq)]
pub struct ReaderOptions {
    /// Output rate in frames per second; `None` returns every decoded frame.
    pub fps: Option<f64>,
    /// First time to read, seconds from the first frame.
    pub start_s: f64,
    /// End time (exclusive), seconds from the first frame; `None` reads to the end.
    pub end_s: Option<f64>,
    /// Optional crop in upright source pixels.
    pub roi: Option<Roi>,
    /// Output size.
    pub resize: Resize,
    /// Decoder frame threads (>= 1).
    pub threads: usize,
    /// Which decoder (`auto`: NVDEC when it opens, else the CPU).
    pub decoder: Decoder,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        Self {
            fps: None,
            start_s: 0.0,
            end_s: None,
            roi: None,
            resize: Resize::None,
            threads: 1,
            decoder: Decoder::default(),
        }
    }
}

/// Reads frames in order. With a target rate, output `k` is the frame shown at
/// `start_s + k / fps` (the sampler's time convention); reading stops at `end_s` or at the end of
/// the video. Holds at most three decoded frames.
#[cfg(feature = "ffmpeg")]
pub struct FrameReader {
    input: VideoInput,
    conv: FrameConverter,
    opts: ReaderOptions,
    out_fps: f64,
    /// Next output index (target-rate mode).
    k: u64,
    cand: Option<(f64, frame::Video)>,
    ahead: Option<(f64, frame::Video)>,
    spare: frame::Video,
    /// The first frame decoded while seeking, returned before decoding more.
    pending: Option<(f64, frame::Video)>,
    done: bool,
}

#[cfg(feature = "ffmpeg")]
impl FrameReader {
    /// Opens `path` and positions it at `opts.start_s`.
    pub fn open(path: &Path, opts: &ReaderOptions) -> Result<Self, VideoError> {
        let bad = |reason: String| VideoError::BadRequest {
            path: path.to_path_buf(),
            reason,
        };
        if !opts.start_s.is_finite() || opts.start_s < 0.0 {
            return Err(bad(format!(
                "start {} s must be a non-negative number",
                opts.start_s
            )));
        }
        if let Some(end) = opts.end_s
            && !(end.is_finite() && end > opts.start_s)
        {
            return Err(bad(format!(
                "end {end} s must be after start {} s",
                opts.start_s
            )));
        }
        if let Some(fps) = opts.fps
            && !(fps.is_finite() && fps > 0.0)
        {
            return Err(bad(format!("fps {fps} must be positive")));
        }
        let mut input = VideoInput::open(path, opts.threads, opts.decoder)?;
        let conv = FrameConverter::new(
            path,
            input.coded_width(),
            input.coded_height(),
            input.rotation,
            opts.roi,
            opts.resize,
        )?;
        let mut first = frame::Video::empty();
        let pending = input
            .seek_before(opts.start_s, &mut first)?
            .map(|t| (t, first));
        let out_fps = opts.fps.unwrap_or(input.real_fps);
        Ok(Self {
            input,
            conv,
            opts: opts.clone(),
            out_fps,
            k: 0,
            cand: None,
            ahead: None,
            spare: frame::Video::empty(),
            pending,
            done: false,
        })
    }

    /// Output width in pixels.
    pub fn width(&self) -> u32 {
        self.conv.out_width
    }

    /// Output height in pixels.
    pub fn height(&self) -> u32 {
        self.conv.out_height
    }

    /// The NVDEC decoder's name (`h264_cuvid`, ...) when NVDEC decodes this video, `None` on the CPU.
    pub fn hardware_decoder(&self) -> Option<&'static str> {
        self.input.hardware
    }

    /// Output rate in frames per second (the target rate, or the video's real rate when reading
    /// every frame).
    pub fn fps(&self) -> f64 {
        self.out_fps
    }

    /// The next frame: its time in seconds from the first frame and `H * W * 3` RGB bytes; `None`
    /// after the end.
    pub fn next_frame(&mut self) -> Result<Option<(f64, Vec<u8>)>, VideoError> {
        if self.done {
            return Ok(None);
        }
        match self.opts.fps {
            None => self.next_every(),
            Some(fps) => self.next_at_rate(fps),
        }
    }

    fn decode(&mut self) -> Result<Option<(f64, frame::Video)>, VideoError> {
        if let Some(first) = self.pending.take() {
            return Ok(Some(first));
        }
        let mut f = std::mem::replace(&mut self.spare, frame::Video::empty());
        match self.input.next_frame(&mut f)? {
            Some(t) => Ok(Some((t, f))),
            None => {
                self.spare = f;
                Ok(None)
            }
        }
    }

    fn output(&mut self, frame: &frame::Video) -> Result<Vec<u8>, VideoError> {
        let mut out = vec![0u8; self.conv.frame_len()];
        let path = self.input.path.clone();
        self.conv.convert(&path, frame, &mut out)?;
        Ok(out)
    }

    fn next_every(&mut self) -> Result<Option<(f64, Vec<u8>)>, VideoError> {
        loop {
            let Some((t, f)) = self.decode()? else {
                self.done = true;
                return Ok(None);
            };
            if self.opts.end_s.is_some_and(|end| t >= end - TIME_EPS) {
                self.done = true;
                return Ok(None);
            }
            if t + TIME_EPS < self.opts.start_s {
                self.spare = f;
                continue;
            }
            let out = self.output(&f)?;
            self.spare = f;
            return Ok(Some((t, out)));
        }
    }

    fn next_at_rate(&mut self, fps: f64) -> Result<Option<(f64, Vec<u8>)>, VideoError> {
        let target = self.opts.start_s + self.k as f64 / fps;
        if self.opts.end_s.is_some_and(|end| target >= end - TIME_EPS) {
            self.done = true;
            return Ok(None);
        }
        loop {
            // The frame after the candidate is known: the candidate is shown at `target` unless
            // `target` already reaches the next frame.
            if let Some((ta, _)) = &self.ahead {
                if *ta <= target + TIME_EPS {
                    let next = self.ahead.take();
                    if let Some((_, old)) = std::mem::replace(&mut self.cand, next) {
                        self.spare = old;
                    }
                    continue;
                }
                if self.cand.is_some() {
                    break;
                }
                // Target before the first decoded frame: that frame is shown.
                self.cand = self.ahead.take();
                break;
            }
            match self.decode()? {
                Some(next) => self.ahead = Some(next),
                None => {
                    // End of stream: the candidate serves targets until its display time ends.
                    let Some((tc, _)) = &self.cand else {
                        self.done = true;
                        return Ok(None);
                    };
                    if target >= tc + 1.0 / self.input.real_fps - TIME_EPS {
                        self.done = true;
                        return Ok(None);
                    }
                    break;
                }
            }
        }
        let Some((tc, f)) = self.cand.take() else {
            self.done = true;
            return Ok(None);
        };
        let out = self.output(&f);
        self.cand = Some((tc, f));
        self.k += 1;
        Ok(Some((target, out?)))
    }
}
