//! An opened video stream with its decoder, shared by the sampler, the reader and probe.

use std::path::{Path, PathBuf};

use ffmpeg::{Packet, Rational, decoder, ffi, format, frame, media};
use ffmpeg_next as ffmpeg;

use crate::hw::{self, OpenedDecoder};
use crate::{Decoder, VideoError};

/// One video stream of a file, opened for decoding, with its timing facts.
pub(crate) struct VideoInput {
    pub path: PathBuf,
    pub ictx: format::context::Input,
    pub stream_index: usize,
    /// Stream time base (seconds per pts tick).
    pub time_base: Rational,
    /// Presentation time of the first frame in ticks (the stream's start time; 0 when unknown).
    pub start_pts: i64,
    /// Real (base) frame rate `r_frame_rate`, falling back to the average rate, then 25.
    pub real_fps: f64,
    /// Clockwise rotation in degrees (0, 90, 180, 270) that makes frames upright.
    pub rotation: u32,
    decoder: decoder::Video,
    threads: usize,
    /// The decoder asked for.
    choice: Decoder,
    /// The NVDEC decoder's name when NVDEC decodes this stream.
    pub hardware: Option<&'static str>,
    /// Frames decoded since opening: `auto` falls back to the CPU when NVDEC fails before its first.
    frames_out: u64,
    /// The time of the last seek, to repeat it after falling back.
    last_seek: Option<f64>,
    /// The packet in `packet` was refused with EAGAIN and must be sent again.
    resend: bool,
    eof_sent: bool,
    /// No packet was read since opening or seeking to the very start.
    pub at_start: bool,
    last_ts: Option<i64>,
    packet: Packet,
}

// The FFmpeg contexts are owned exclusively by this value and never shared.
unsafe impl Send for VideoInput {}

pub(crate) fn rational_f64(r: Rational) -> f64 {
    if r.denominator() == 0 {
        0.0
    } else {
        r.numerator() as f64 / r.denominator() as f64
    }
}

/// Opens `path` as a format context, with clear errors for missing, empty and non-video files.
pub(crate) fn open_format(path: &Path) -> Result<format::context::Input, VideoError> {
    crate::init();
    let meta = std::fs::metadata(path).map_err(|source| VideoError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if meta.is_dir() {
        return Err(VideoError::Invalid {
            path: path.to_path_buf(),
            reason: "is a directory".into(),
        });
    }
    if meta.len() == 0 {
        return Err(VideoError::Invalid {
            path: path.to_path_buf(),
            reason: "empty file (0 bytes)".into(),
        });
    }
    format::input(&path).map_err(|e| VideoError::Invalid {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// The index of the best video stream (not a cover picture).
pub(crate) fn video_stream_index(
    path: &Path,
    ictx: &format::context::Input,
) -> Result<usize, VideoError> {
    ictx.streams()
        .best(media::Type::Video)
        .filter(|s| {
            !s.disposition()
                .contains(format::stream::Disposition::ATTACHED_PIC)
        })
        .or_else(|| {
            ictx.streams().find(|s| {
                s.parameters().medium() == media::Type::Video
                    && !s
                        .disposition()
                        .contains(format::stream::Disposition::ATTACHED_PIC)
            })
        })
        .map(|s| s.index())
        .ok_or_else(|| VideoError::NoVideoStream {
            path: path.to_path_buf(),
        })
}

/// Fails when the container's index (mp4/mov sample tables, AVI idx1) points past the end of the
/// file: a truncated download or copy whose header survived (e.g. `+faststart` mp4s).
pub(crate) fn check_not_truncated(
    path: &Path,
    ictx: &mut format::context::Input,
    index: usize,
) -> Result<(), VideoError> {
    let file_len = std::fs::metadata(path)
        .map(|m| m.len() as i64)
        .unwrap_or(i64::MAX);
    // SAFETY: the stream pointer is valid while the context lives; entries are read-only.
    let data_end = unsafe {
        let st = *(*ictx.as_mut_ptr()).streams.add(index);
        let n = ffi::avformat_index_get_entries_count(st);
        let mut end = 0i64;
        for i in 0..n {
            let e = ffi::avformat_index_get_entry(st, i);
            if !e.is_null() {
                // `size` is the 30-bit field after the 2 flag bits.
                let size = (*e)._bitfield_1.get(2, 30) as i64;
                end = end.max((*e).pos + size);
            }
        }
        end
    };
    if data_end > file_len {
        return Err(VideoError::Invalid {
            path: path.to_path_buf(),
            reason: format!(
                "truncated: the index references {data_end} bytes but the file has {file_len}"
            ),
        });
    }
    Ok(())
}

/// Clockwise degrees (0, 90, 180, 270) that turn the coded frames upright, from the display matrix
/// (the same reading as the ffmpeg CLI's autorotate: `-round(av_display_rotation_get)`).
pub(crate) fn stream_rotation(stream: &format::stream::Stream) -> u32 {
    // SAFETY: the stream pointer is valid for the lifetime of `stream`; the side data, when present,
    // is a 3x3 int32 display matrix (checked by size).
    let angle = unsafe {
        let mut size: usize = 0;
        let data = ffi::av_stream_get_side_data(
            stream.as_ptr(),
            ffi::AVPacketSideDataType::AV_PKT_DATA_DISPLAYMATRIX,
            &mut size,
        );
        if data.is_null() || size < 36 {
            return 0;
        }
        ffi::av_display_rotation_get(data as *const i32)
    };
    if !angle.is_finite() {
        return 0;
    }
    let theta = (-angle.round()).rem_euclid(360.0);
    let snapped = ((theta / 90.0).round() as i64 * 90).rem_euclid(360) as u32;
    if (theta - snapped as f64).abs() > 1.0 && (theta - snapped as f64).abs() < 359.0 {
        tracing::warn!("display rotation of {theta} degrees is not a multiple of 90; ignored");
        return 0;
    }
    snapped
}

impl VideoInput {
    /// Opens the best video stream of `path` with the decoder `choice` (CPU decoders use
    /// `threads` frame threads, >= 1).
    pub fn open(path: &Path, threads: usize, choice: Decoder) -> Result<Self, VideoError> {
        let mut ictx = open_format(path)?;
        let stream_index = video_stream_index(path, &ictx)?;
        check_not_truncated(path, &mut ictx, stream_index)?;
        let stream = ictx
            .stream(stream_index)
            .ok_or_else(|| VideoError::NoVideoStream {
                path: path.to_path_buf(),
            })?;
        let time_base = stream.time_base();
        let start_pts = match stream.start_time() {
            ffi::AV_NOPTS_VALUE => 0,
            t => t,
        };
        let real_fps = [stream.rate(), stream.avg_frame_rate()]
            .into_iter()
            .map(rational_f64)
            .find(|f| f.is_finite() && *f > 0.0 && *f < 1000.0)
            .unwrap_or(25.0);
        let rotation = stream_rotation(&stream);
        let OpenedDecoder { decoder, hardware } =
            hw::open_decoder(path, &stream.parameters(), time_base, threads, choice)?;
        Ok(Self {
            path: path.to_path_buf(),
            ictx,
            stream_index,
            time_base,
            start_pts,
            real_fps,
            rotation,
            decoder,
            threads: threads.max(1),
            choice,
            hardware,
            frames_out: 0,
            last_seek: None,
            resend: false,
            eof_sent: false,
            at_start: true,
            last_ts: None,
            packet: Packet::empty(),
        })
    }

    /// Coded frame width in pixels (before rotation).
    pub fn coded_width(&self) -> u32 {
        self.decoder.width()
    }

    /// Coded frame height in pixels (before rotation).
    pub fn coded_height(&self) -> u32 {
        self.decoder.height()
    }

    /// Seconds from the first frame for a timestamp in stream ticks.
    pub fn ticks_to_seconds(&self, ts: i64) -> f64 {
        (ts - self.start_pts) as f64 * rational_f64(self.time_base)
    }

    /// Stream ticks for seconds from the first frame.
    pub fn seconds_to_ticks(&self, t: f64) -> i64 {
        let tb = rational_f64(self.time_base);
        self.start_pts + (t / tb).floor() as i64
    }

    /// Positions the demuxer on the keyframe at or before `t` seconds (from the first frame) and
    /// resets the decoder. Formats that cannot seek are reopened and decoded from the start.
    pub fn seek(&mut self, t: f64) -> Result<(), VideoError> {
        if t <= 0.0 && self.at_start {
            return Ok(());
        }
        let ts = if t <= 0.0 {
            self.start_pts
        } else {
            self.seconds_to_ticks(t)
        };
        // SAFETY: the format context is valid and owned by self.
        let ret = unsafe {
            ffi::av_seek_frame(
                self.ictx.as_mut_ptr(),
                self.stream_index as i32,
                ts,
                ffi::AVSEEK_FLAG_BACKWARD,
            )
        };
        if ret < 0 {
            tracing::debug!(
                "{}: seek to {t:.3}s failed ({ret}); decoding from the start",
                self.path.display()
            );
            *self = Self::open(&self.path.clone(), self.threads, self.choice)?;
            return Ok(());
        }
        // Flushing drops NVDEC's queued surfaces too, so no frame from before the seek comes out.
        self.decoder.flush();
        self.last_seek = Some(t);
        self.resend = false;
        self.eof_sent = false;
        self.last_ts = None;
        self.at_start = t <= 0.0;
        Ok(())
    }

    /// Seeks so that decoding starts at or before `t` seconds: seeks to the keyframe at or before
    /// `t` and, when the first frame decoded from there is still after `t` (containers that index
    /// by decode time, B-frames), seeks further back (1 s, 2 s, 4 s, ... down to the start). Returns
    /// the first decoded frame (in `frame`) and its time, or `None` for a stream without frames.
    pub fn seek_before(
        &mut self,
        t: f64,
        frame: &mut frame::Video,
    ) -> Result<Option<f64>, VideoError> {
        let mut back = 0.0;
        loop {
            let seek_t = t - back;
            self.seek(seek_t)?;
            match self.next_frame(frame)? {
                None if seek_t <= 0.0 => return Ok(None),
                Some(ft) if ft <= t + crate::sampler::TIME_EPS || seek_t <= 0.0 => {
                    return Ok(Some(ft));
                }
                _ => {}
            }
            back = if back == 0.0 { 1.0 } else { back * 2.0 };
        }
    }

    /// Decodes the next frame in presentation order into `frame`; returns its time in seconds from
    /// the first frame (best-effort timestamp), or `None` at the end of the stream.
    ///
    /// With `auto`, an NVDEC decoder that fails (or ends) before its first frame is replaced by the
    /// CPU decoder, positioned where the last seek put it.
    pub fn next_frame(&mut self, frame: &mut frame::Video) -> Result<Option<f64>, VideoError> {
        let result = self.decode_next(frame);
        let failed = match &result {
            Err(e) => Some(e.to_string()),
            Ok(None) => Some("no frames decoded".to_string()),
            Ok(Some(_)) => None,
        };
        match (self.hardware, failed) {
            (Some(name), Some(reason)) if self.choice == Decoder::Auto && self.frames_out == 0 => {
                hw::mark_failed(name);
                hw::log_fallback(&format!(
                    "{name} failed on {}: {reason}",
                    self.path.display()
                ));
                let resume = self.last_seek;
                *self = Self::open(&self.path.clone(), self.threads, Decoder::Cpu)?;
                if let Some(t) = resume {
                    self.seek(t)?;
                }
                self.decode_next(frame)
            }
            _ => {
                if let Ok(Some(_)) = result {
                    self.frames_out += 1;
                }
                result
            }
        }
    }

    fn decode_next(&mut self, frame: &mut frame::Video) -> Result<Option<f64>, VideoError> {
        loop {
            match self.decoder.receive_frame(frame) {
                Ok(()) => {
                    let ts = match frame.timestamp() {
                        Some(ts) => ts,
                        // No timestamp at all: continue at the real frame rate.
                        None => {
                            let step =
                                (1.0 / self.real_fps / rational_f64(self.time_base)).round() as i64;
                            self.last_ts.map_or(self.start_pts, |t| t + step.max(1))
                        }
                    };
                    self.last_ts = Some(ts);
                    return Ok(Some(self.ticks_to_seconds(ts)));
                }
                Err(ffmpeg::Error::Eof) => return Ok(None),
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {}
                Err(e) => return Err(self.decode_err(format!("receive frame: {e}"))),
            }
            if self.eof_sent {
                return Ok(None);
            }
            self.feed()?;
        }
    }

    /// Sends the next packet of the video stream to the decoder (or EOF).
    fn feed(&mut self) -> Result<(), VideoError> {
        if self.resend {
            self.resend = false;
            return self.send();
        }
        loop {
            match self.packet.read(&mut self.ictx) {
                Ok(()) => {
                    self.at_start = false;
                    if self.packet.stream() != self.stream_index {
                        continue;
                    }
                    return self.send();
                }
                Err(ffmpeg::Error::Eof) => {
                    self.eof_sent = true;
                    return self
                        .decoder
                        .send_eof()
                        .map_err(|e| self.decode_err(format!("flush decoder: {e}")));
                }
                Err(e) => return Err(self.decode_err(format!("read packet: {e}"))),
            }
        }
    }

    /// Sends `packet` to the decoder; a decoder that is full (EAGAIN: NVDEC's queue) gets it again
    /// after the next frame is taken out.
    fn send(&mut self) -> Result<(), VideoError> {
        match self.decoder.send_packet(&self.packet) {
            Ok(()) => Ok(()),
            Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {
                self.resend = true;
                Ok(())
            }
            Err(ffmpeg::Error::InvalidData) => {
                // Like the ffmpeg CLI, skip a damaged packet and keep decoding.
                tracing::warn!("{}: skipping an undecodable packet", self.path.display());
                Ok(())
            }
            Err(e) => Err(self.decode_err(format!("send packet: {e}"))),
        }
    }

    fn decode_err(&self, reason: String) -> VideoError {
        VideoError::Decode {
            path: self.path.clone(),
            reason,
        }
    }
}
