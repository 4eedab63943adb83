//! [`probe`]: facts about a video file.

#[cfg(feature = "ffmpeg")]
use std::path::Path;
use std::path::PathBuf;

#[cfg(feature = "ffmpeg")]
use ffmpeg::{Packet, ffi};
#[cfg(feature = "ffmpeg")]
use ffmpeg_next as ffmpeg;

#[cfg(feature = "ffmpeg")]
use crate::VideoError;
#[cfg(feature = "ffmpeg")]
use crate::decode::{
    check_not_truncated, open_format, rational_f64, stream_rotation, video_stream_index,
};

/// Facts about the video stream of a file. Times are seconds; sizes are coded pixels (before
/// rotation); rates are frames per second.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct VideoInfo {
    /// The probed file.
    pub path: PathBuf,
    /// Container format name(s) as FFmpeg reports them (e.g. `mov,mp4,m4a,3gp,3g2,mj2`).
    pub container: String,
    /// Codec name (`h264`, `hevc`, `mpeg4`, ...).
    pub codec: String,
    /// Pixel format of the decoded frames (e.g. `yuv420p`).
    pub pix_fmt: String,
    /// Coded frame width in pixels.
    pub width: u32,
    /// Coded frame height in pixels.
    pub height: u32,
    /// Average frame rate (frames / duration).
    pub avg_fps: f64,
    /// Real base frame rate (`r_frame_rate`): the lowest rate all timestamps fit.
    pub real_fps: f64,
    /// Number of frames: the container's count when it has one, else counted packet by packet.
    pub frame_count: u64,
    /// Whether `frame_count` is exact (container count or full count), not estimated from duration.
    pub frame_count_exact: bool,
    /// Where `frame_count` comes from: `container`, `packets` or `estimate`.
    pub frame_count_source: String,
    /// Stream duration in seconds.
    pub duration_s: f64,
    /// Presentation time of the first frame in seconds (subtracted by the sampler's time convention).
    pub start_time_s: f64,
    /// Frames between keyframes over the first GOPs (most common interval), when at least two
    /// keyframes were seen.
    pub keyframe_interval: Option<u32>,
    /// Clockwise rotation in degrees (0, 90, 180, 270) that players apply to show frames upright.
    pub rotation: i32,
    /// Whether frames are reordered (B-frames): decode order differs from presentation order.
    pub has_b_frames: bool,
}

impl VideoInfo {
    /// The frame size after rotation: `(width, height)` as shown.
    pub fn upright_size(&self) -> (u32, u32) {
        if self.rotation % 180 == 90 {
            (self.height, self.width)
        } else {
            (self.width, self.height)
        }
    }

    /// The facts as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".into())
    }
}

/// Packets scanned for the keyframe interval when the frame count comes from the container.
#[cfg(feature = "ffmpeg")]
const GOP_SCAN_PACKETS: usize = 1500;
/// Keyframes after which the GOP scan stops.
#[cfg(feature = "ffmpeg")]
const GOP_SCAN_KEYFRAMES: usize = 4;

/// Probes `path`: codec, size, rates, frame count, duration, start time, keyframe interval,
/// rotation. Reads packets (no decoding) over the first GOPs, or over the whole file when the
/// container has no frame count.
#[cfg(feature = "ffmpeg")]
pub fn probe(path: &Path) -> Result<VideoInfo, VideoError> {
    let mut ictx = open_format(path)?;
    let index = video_stream_index(path, &ictx)?;
    check_not_truncated(path, &mut ictx, index)?;
    let stream = ictx
        .stream(index)
        .ok_or_else(|| VideoError::NoVideoStream {
            path: path.to_path_buf(),
        })?;
    let params = stream.parameters();
    // SAFETY: codecpar is valid while the stream is.
    let (width, height, pix_fmt, video_delay) = unsafe {
        let p = &*params.as_ptr();
        let name =
            ffi::av_get_pix_fmt_name(std::mem::transmute::<i32, ffi::AVPixelFormat>(p.format));
        let pix = if name.is_null() {
            "unknown".to_string()
        } else {
            std::ffi::CStr::from_ptr(name)
                .to_string_lossy()
                .into_owned()
        };
        (
            p.width.max(0) as u32,
            p.height.max(0) as u32,
            pix,
            p.video_delay,
        )
    };
    if width == 0 || height == 0 {
        return Err(VideoError::Invalid {
            path: path.to_path_buf(),
            reason: "video stream has no frame size".into(),
        });
    }
    let codec = params.id().name().to_string();
    let tb = rational_f64(stream.time_base());
    let avg_fps = rational_f64(stream.avg_frame_rate());
    let real_fps = rational_f64(stream.rate());
    let start_pts = match stream.start_time() {
        ffi::AV_NOPTS_VALUE => 0,
        t => t,
    };
    let start_time_s = start_pts as f64 * tb;
    let container_frames = stream.frames().max(0) as u64;
    let rotation = stream_rotation(&stream) as i32;
    let stream_duration = match stream.duration() {
        ffi::AV_NOPTS_VALUE => None,
        d if d > 0 => Some(d as f64 * tb),
        _ => None,
    };
    let format_duration = match ictx.duration() {
        d if d > 0 => Some(d as f64 / ffi::AV_TIME_BASE as f64),
        _ => None,
    };
    let container = ictx.format().name().to_string();

    // Packet scan: keyframe positions over the first GOPs, reordering, and (when the container does
    // not count frames) the number of packets and the last presentation time.
    let count_all = container_frames == 0;
    let mut packet = Packet::empty();
    let mut n_packets: u64 = 0;
    let mut keyframes: Vec<u64> = Vec::new();
    let mut reordered = false;
    let mut max_pts: Option<i64> = None;
    let mut end_pts: Option<i64> = None;
    let mut scan_complete = true;
    loop {
        if !count_all
            && (n_packets as usize >= GOP_SCAN_PACKETS || keyframes.len() >= GOP_SCAN_KEYFRAMES)
        {
            break;
        }
        match packet.read(&mut ictx) {
            Ok(()) => {
                if packet.stream() != index {
                    continue;
                }
                if packet.is_key() && keyframes.len() < GOP_SCAN_KEYFRAMES {
                    keyframes.push(n_packets);
                }
                if let Some(pts) = packet.pts() {
                    if max_pts.is_some_and(|m| pts < m) {
                        reordered = true;
                    }
                    max_pts = Some(max_pts.map_or(pts, |m| m.max(pts)));
                    end_pts = Some(end_pts.map_or(pts + packet.duration(), |e: i64| {
                        e.max(pts + packet.duration())
                    }));
                }
                n_packets += 1;
            }
            Err(ffmpeg::Error::Eof) => break,
            Err(e) => {
                tracing::warn!(
                    "{}: packet scan stopped after {n_packets} packets: {e}",
                    path.display()
                );
                scan_complete = false;
                break;
            }
        }
    }
    let keyframe_interval = most_common_gap(&keyframes);
    let scanned_duration = end_pts
        .map(|e| (e - start_pts) as f64 * tb)
        .filter(|d| *d > 0.0);
    let duration_s = stream_duration
        .or(scanned_duration)
        .or(format_duration)
        .unwrap_or(0.0);
    let (frame_count, frame_count_exact, source) = if !count_all {
        (container_frames, true, "container")
    } else if scan_complete && n_packets > 0 {
        (n_packets, true, "packets")
    } else {
        let fps = if avg_fps > 0.0 { avg_fps } else { real_fps };
        (
            ((duration_s * fps).round().max(0.0)) as u64,
            false,
            "estimate",
        )
    };
    if frame_count == 0 {
        return Err(VideoError::Invalid {
            path: path.to_path_buf(),
            reason: "the video stream has no frames".into(),
        });
    }
    Ok(VideoInfo {
        path: path.to_path_buf(),
        container,
        codec,
        pix_fmt,
        width,
        height,
        avg_fps,
        real_fps,
        frame_count,
        frame_count_exact,
        frame_count_source: source.into(),
        duration_s,
        start_time_s,
        keyframe_interval,
        rotation,
        has_b_frames: video_delay > 0 || reordered,
    })
}

/// The most common distance between consecutive keyframe packet positions (ties: the smaller).
#[cfg(feature = "ffmpeg")]
fn most_common_gap(keyframes: &[u64]) -> Option<u32> {
    let mut gaps: Vec<u64> = keyframes.windows(2).map(|w| w[1] - w[0]).collect();
    if gaps.is_empty() {
        return None;
    }
    gaps.sort_unstable();
    let mut best = (gaps[0], 0usize);
    let mut i = 0;
    while i < gaps.len() {
        let j = gaps[i..].iter().take_while(|g| **g == gaps[i]).count();
        if j > best.1 {
            best = (gaps[i], j);
        }
        i += j;
    }
    u32::try_from(best.0).ok()
}

#[cfg(all(test, feature = "ffmpeg"))]
mod tests {
    use super::most_common_gap;

    #[test]
    fn gap_is_the_most_common_interval() {
        assert_eq!(most_common_gap(&[0, 30, 60, 75]), Some(30));
        assert_eq!(most_common_gap(&[0]), None);
        assert_eq!(most_common_gap(&[0, 10, 25]), Some(10));
    }
}
