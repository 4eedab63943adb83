//! [`ClipWriter`]: encodes RGB frames to H.264 / HEVC / MPEG-4 Part 2 in mp4, avi or mkv.

#[cfg(feature = "ffmpeg")]
use std::path::{Path, PathBuf};
use std::str::FromStr;

#[cfg(feature = "ffmpeg")]
use ffmpeg::{Dictionary, Packet, Rational, codec, encoder, format, frame, software::scaling};
#[cfg(feature = "ffmpeg")]
use ffmpeg_next as ffmpeg;

#[cfg(feature = "ffmpeg")]
use crate::VideoError;

/// Video codec of a [`ClipWriter`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// H.264 through libx264; falls back to [`Codec::Mpeg4`] (with a warning) when libx264 is missing.
    H264,
    /// HEVC through libx265 (an error when libx265 is missing).
    Hevc,
    /// MPEG-4 Part 2 (FFmpeg's native encoder, always present).
    Mpeg4,
}

impl FromStr for Codec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "h264" | "avc" | "x264" => Ok(Codec::H264),
            "hevc" | "h265" | "x265" => Ok(Codec::Hevc),
            "mpeg4" => Ok(Codec::Mpeg4),
            other => Err(format!(
                "unknown codec {other:?} (expected h264, hevc or mpeg4)"
            )),
        }
    }
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Codec::H264 => "h264",
            Codec::Hevc => "hevc",
            Codec::Mpeg4 => "mpeg4",
        })
    }
}

/// Encoding settings of a [`ClipWriter`].
#[derive(Clone, Debug, PartialEq)]
pub struct WriterOptions {
    /// Codec (H.264 by default).
    pub codec: Codec,
    /// Constant frame rate in frames per second (15 by default).
    pub fps: u32,
    /// Keyframe interval in frames (30 by default); scene-cut keyframes are disabled so it is exact.
    pub gop: u32,
    /// Quality: CRF for H.264/HEVC (default 23 / 28), qscale 1-31 for MPEG-4 (default 3). Lower is better.
    pub quality: Option<u32>,
    /// Allow B-frames (2 consecutive at most for x264/x265 and MPEG-4).
    pub b_frames: bool,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            codec: Codec::H264,
            fps: 15,
            gop: 30,
            quality: None,
            b_frames: false,
        }
    }
}

/// Encodes uint8 RGB frames `(H, W, 3)` into a video file; the container follows the extension
/// (`.mp4`, `.avi`, `.mkv`, ...). Writes to a temporary file next to `path`, renamed over `path` by
/// [`ClipWriter::finish`], so a crash never leaves a half-written file under the final name.
#[cfg(feature = "ffmpeg")]
pub struct ClipWriter {
    path: PathBuf,
    tmp_path: PathBuf,
    octx: format::context::Output,
    encoder: encoder::Video,
    scaler: scaling::Context,
    rgb: frame::Video,
    yuv: frame::Video,
    enc_time_base: Rational,
    stream_time_base: Rational,
    width: u32,
    height: u32,
    stream_index: usize,
    next_pts: i64,
    finished: bool,
}

// The FFmpeg contexts are owned exclusively by the writer and never shared.
#[cfg(feature = "ffmpeg")]
unsafe impl Send for ClipWriter {}

#[cfg(feature = "ffmpeg")]
impl ClipWriter {
    /// Creates a writer for frames of `width` x `height` pixels (both even, as yuv420p needs).
    pub fn create(
        path: &Path,
        width: u32,
        height: u32,
        opts: &WriterOptions,
    ) -> Result<Self, VideoError> {
        crate::init();
        let bad = |reason: String| VideoError::BadRequest {
            path: path.to_path_buf(),
            reason,
        };
        if width == 0 || height == 0 || !width.is_multiple_of(2) || !height.is_multiple_of(2) {
            return Err(bad(format!(
                "frame size {width}x{height} must be positive and even"
            )));
        }
        if opts.fps == 0 || opts.gop == 0 {
            return Err(bad(format!(
                "fps ({}) and gop ({}) must be positive",
                opts.fps, opts.gop
            )));
        }
        let enc_err = |reason: String| VideoError::Encode {
            path: path.to_path_buf(),
            reason,
        };
        let tmp_path = ethos_core::fs::temp_path(path);
        let mut octx = format::output(&tmp_path).map_err(|e| {
            if path.extension().is_none() {
                bad(format!("no container for a file without extension ({e})"))
            } else {
                enc_err(format!("cannot create output: {e}"))
            }
        })?;
        let global_header = octx.format().flags().contains(format::Flags::GLOBAL_HEADER);

        let (codec, codec_used) = find_encoder(opts.codec)
            .ok_or_else(|| enc_err(format!("no {} encoder in this FFmpeg", opts.codec)))?;
        let mut ost = octx
            .add_stream(codec)
            .map_err(|e| enc_err(format!("add stream: {e}")))?;
        let ost_index = ost.index();
        let mut ctx = codec::context::Context::new_with_codec(codec)
            .encoder()
            .video()
            .map_err(|e| enc_err(format!("encoder context: {e}")))?;
        let enc_time_base = Rational::new(1, opts.fps as i32);
        ctx.set_width(width);
        ctx.set_height(height);
        ctx.set_format(format::Pixel::YUV420P);
        ctx.set_time_base(enc_time_base);
        ctx.set_frame_rate(Some(Rational::new(opts.fps as i32, 1)));
        ctx.set_gop(opts.gop);
        ctx.set_max_b_frames(if opts.b_frames { 2 } else { 0 });
        if global_header {
            ctx.set_flags(codec::Flags::GLOBAL_HEADER);
        }
        let mut dict = Dictionary::new();
        match codec_used {
            Codec::H264 => {
                dict.set("preset", "veryfast");
                dict.set("crf", &opts.quality.unwrap_or(23).to_string());
                dict.set("x264-params", "scenecut=0");
            }
            Codec::Hevc => {
                dict.set("preset", "veryfast");
                dict.set("crf", &opts.quality.unwrap_or(28).to_string());
                dict.set("x265-params", "scenecut=0:log-level=error");
            }
            Codec::Mpeg4 => {
                let q = opts.quality.unwrap_or(3).clamp(1, 31) as i32;
                ctx.set_flags(if global_header {
                    codec::Flags::GLOBAL_HEADER | codec::Flags::QSCALE
                } else {
                    codec::Flags::QSCALE
                });
                // FF_QP2LAMBDA: qscale is given to the encoder in lambda units.
                ctx.set_global_quality(q * ffmpeg::ffi::FF_QP2LAMBDA);
                // Keyframes only every `gop` frames, never on scene changes.
                dict.set("sc_threshold", "1000000000");
            }
        }
        let encoder = ctx
            .open_with(dict)
            .map_err(|e| enc_err(format!("open {codec_used} encoder: {e}")))?;
        ost.set_parameters(&encoder);
        ost.set_time_base(enc_time_base);
        octx.write_header()
            .map_err(|e| enc_err(format!("write header: {e}")))?;
        let stream_time_base = octx
            .stream(ost_index)
            .map(|s| s.time_base())
            .ok_or_else(|| enc_err("output stream vanished".into()))?;
        let scaler = scaling::Context::get(
            format::Pixel::RGB24,
            width,
            height,
            format::Pixel::YUV420P,
            width,
            height,
            scaling::Flags::BICUBIC,
        )
        .map_err(|e| enc_err(format!("swscale: {e}")))?;
        Ok(Self {
            path: path.to_path_buf(),
            tmp_path,
            octx,
            encoder,
            scaler,
            rgb: frame::Video::new(format::Pixel::RGB24, width, height),
            yuv: frame::Video::new(format::Pixel::YUV420P, width, height),
            enc_time_base,
            stream_time_base,
            width,
            height,
            stream_index: ost_index,
            next_pts: 0,
            finished: false,
        })
    }

    /// Frame width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Frame height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Encodes one frame: `H * W * 3` bytes of RGB, rows top to bottom.
    pub fn write_frame(&mut self, rgb: &[u8]) -> Result<(), VideoError> {
        let (w, h) = (self.width as usize, self.height as usize);
        if rgb.len() != w * h * 3 {
            return Err(VideoError::BadRequest {
                path: self.path.clone(),
                reason: format!(
                    "frame has {} bytes, expected {w}x{h}x3 = {}",
                    rgb.len(),
                    w * h * 3
                ),
            });
        }
        let stride = self.rgb.stride(0);
        let dst = self.rgb.data_mut(0);
        for (row, src) in rgb.chunks_exact(w * 3).enumerate() {
            dst[row * stride..row * stride + w * 3].copy_from_slice(src);
        }
        self.scaler
            .run(&self.rgb, &mut self.yuv)
            .map_err(|e| self.enc_err(format!("swscale: {e}")))?;
        self.yuv.set_pts(Some(self.next_pts));
        self.next_pts += 1;
        self.encoder
            .send_frame(&self.yuv)
            .map_err(|e| self.enc_err(format!("encode: {e}")))?;
        self.drain()
    }

    /// Flushes the encoder, writes the trailer and moves the file to its final name.
    pub fn finish(mut self) -> Result<(), VideoError> {
        self.encoder
            .send_eof()
            .map_err(|e| self.enc_err(format!("flush: {e}")))?;
        self.drain()?;
        self.octx
            .write_trailer()
            .map_err(|e| self.enc_err(format!("write trailer: {e}")))?;
        self.finished = true;
        // The output context closes the file on drop; sync and rename after that.
        let tmp = self.tmp_path.clone();
        let path = self.path.clone();
        drop(self);
        ethos_core::fs::commit_temp(&tmp, &path).map_err(|source| VideoError::Io {
            path: path.clone(),
            source,
        })
    }

    fn drain(&mut self) -> Result<(), VideoError> {
        let mut packet = Packet::empty();
        loop {
            match self.encoder.receive_packet(&mut packet) {
                Ok(()) => {
                    packet.set_stream(self.stream_index);
                    // Constant frame rate: every frame lasts one tick. Without it mp4's edit list
                    // ends at the last frame's start and players drop that frame.
                    if packet.duration() <= 0 {
                        packet.set_duration(1);
                    }
                    packet.rescale_ts(self.enc_time_base, self.stream_time_base);
                    packet
                        .write_interleaved(&mut self.octx)
                        .map_err(|e| self.enc_err(format!("write packet: {e}")))?;
                }
                Err(ffmpeg::Error::Eof) => return Ok(()),
                Err(ffmpeg::Error::Other { errno }) if errno == libc_eagain() => return Ok(()),
                Err(e) => return Err(self.enc_err(format!("encode: {e}"))),
            }
        }
    }

    fn enc_err(&self, reason: String) -> VideoError {
        VideoError::Encode {
            path: self.path.clone(),
            reason,
        }
    }
}

#[cfg(feature = "ffmpeg")]
impl Drop for ClipWriter {
    fn drop(&mut self) {
        if !self.finished {
            // Unfinished output is useless; do not leave the temporary file behind.
            let _ = std::fs::remove_file(&self.tmp_path);
        }
    }
}

#[cfg(feature = "ffmpeg")]
pub(crate) fn libc_eagain() -> i32 {
    ffmpeg::util::error::EAGAIN
}

/// The encoder for `codec`, and which codec it really is (H.264 falls back to MPEG-4).
#[cfg(feature = "ffmpeg")]
fn find_encoder(codec: Codec) -> Option<(ffmpeg::Codec, Codec)> {
    match codec {
        Codec::H264 => match encoder::find_by_name("libx264") {
            Some(c) => Some((c, Codec::H264)),
            None => {
                tracing::warn!("libx264 is not available; writing MPEG-4 Part 2 instead of H.264");
                encoder::find(codec::Id::MPEG4).map(|c| (c, Codec::Mpeg4))
            }
        },
        Codec::Hevc => encoder::find_by_name("libx265").map(|c| (c, Codec::Hevc)),
        Codec::Mpeg4 => encoder::find(codec::Id::MPEG4).map(|c| (c, Codec::Mpeg4)),
    }
}

/// Whether `codec` can be written by this FFmpeg build without falling back.
#[cfg(feature = "ffmpeg")]
pub fn encoder_available(codec: Codec) -> bool {
    crate::init();
    match codec {
        Codec::H264 => encoder::find_by_name("libx264").is_some(),
        Codec::Hevc => encoder::find_by_name("libx265").is_some(),
        Codec::Mpeg4 => encoder::find(codec::Id::MPEG4).is_some(),
    }
}
