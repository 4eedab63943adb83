//! FFmpeg video I/O for ethos (through `ffmpeg-next`, linked to the system FFmpeg).
//!
//! - [`probe`]: facts about a video file (codec, size, rates, exact frame count, keyframe interval).
//! - [`ClipSampler`]: frame-accurate sampling of N frames at a target rate inside a time window.
//! - [`FrameReader`]: sequential, bounded-memory decode of a long video at a target rate.
//! - [`ClipWriter`]: encodes RGB frames to H.264 (libx264), HEVC (libx265) or MPEG-4 Part 2.
//!
//! Time convention: times are seconds from the first video frame; the frame shown at `t` is the
//! last frame with presentation time `<= t + 1e-6` (see [`ClipSampler`]). ROIs are in pixels of
//! the upright frame: display-matrix rotation is applied, so frames always come out upright.
//!
//! Frames leave this crate as uint8 RGB [`Clip`]s, `(T, H, W, 3)`; no tensor engine types here.
//!
//! Decoding runs on the CPU or on NVIDIA's NVDEC ([`Decoder`]). Everything that links FFmpeg sits
//! behind the default `ffmpeg` feature: without it the same API is there, and every call that
//! would decode, probe or encode returns [`VideoError::NoFfmpeg`] (a model-and-training-only build
//! for machines without FFmpeg's libraries, fed a decoded-clip cache).

mod clip;
mod convert;
#[cfg(feature = "ffmpeg")]
mod decode;
mod decoder;
mod error;
#[cfg(feature = "ffmpeg")]
mod hw;
mod probe;
mod reader;
mod sampler;
#[cfg(not(feature = "ffmpeg"))]
mod stub;
mod writer;

pub use clip::{Clip, ClipView};
pub use convert::{Resize, Roi, output_size};
pub use decoder::{Decoder, cuvid_decoder_name};
pub use error::VideoError;
#[cfg(feature = "ffmpeg")]
pub use hw::nvdec_available;
pub use probe::VideoInfo;
#[cfg(feature = "ffmpeg")]
pub use probe::probe;
#[cfg(feature = "ffmpeg")]
pub use reader::FrameReader;
pub use reader::ReaderOptions;
pub use sampler::{ClipRequest, ClipSampler, SampledClip, TIME_EPS};
#[cfg(not(feature = "ffmpeg"))]
pub use stub::{
    ClipWriter, FrameReader, encoder_available, ffmpeg_report, init, nvdec_available, probe,
};
#[cfg(feature = "ffmpeg")]
pub use writer::{ClipWriter, encoder_available};
pub use writer::{Codec, WriterOptions};

/// Whether this build links FFmpeg (the `ffmpeg` feature): without it, decoding, probing and
/// encoding return [`VideoError::NoFfmpeg`].
pub const HAS_FFMPEG: bool = cfg!(feature = "ffmpeg");

/// Initialises FFmpeg once per process (idempotent, thread-safe) and quiets its logging.
#[cfg(feature = "ffmpeg")]
pub fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        ffmpeg_next::init().expect("FFmpeg initialisation cannot fail for linked libraries");
        ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Error);
    });
}

/// FFmpeg's library versions (`major.minor.micro`) and whether the encoders ethos can use are
/// present, and which NVDEC decoders open here, as JSON (for `ethos doctor`).
#[cfg(feature = "ffmpeg")]
pub fn ffmpeg_report() -> serde_json::Value {
    init();
    let version = |v: u32| format!("{}.{}.{}", v >> 16, (v >> 8) & 0xff, v & 0xff);
    let encoders: Vec<serde_json::Value> =
        ["libx264", "libx265", "mpeg4", "libopenh264", "h264_nvenc"]
            .iter()
            .map(|name| {
                let found = ffmpeg_next::encoder::find_by_name(name).is_some();
                serde_json::json!({"name": name, "available": found})
            })
            .collect();
    let nvdec: Vec<serde_json::Value> = ["h264", "hevc"]
        .iter()
        .map(|codec| match nvdec_available(codec) {
            Ok(name) => serde_json::json!({"codec": codec, "decoder": name, "available": true}),
            Err(reason) => {
                serde_json::json!({"codec": codec, "available": false, "reason": reason})
            }
        })
        .collect();
    serde_json::json!({
        "linked": true,
        "avutil": version(ffmpeg_next::util::version()),
        "avcodec": version(ffmpeg_next::codec::version()),
        "avformat": version(ffmpeg_next::format::version()),
        "swscale": version(ffmpeg_next::software::scaling::version()),
        "encoders": encoders,
        "nvdec": nvdec,
    })
}
