//! FFmpeg video I/O for ethos (through `ffmpeg-next`, linked to the system FFmpeg).
//!
//! - [`probe`]: facts about a video file (codec, size, rates, exact frame count, keyframe interval).
//! - [`ClipSampler`]: frame-accurate sampling of N frames at a target rate inside a time window.
//! - [`FrameReader`]: sequential, bounded-memory decode of a long video at a target rate.
//! - [`ClipWriter`]: encodes RGB frames to H.264 (libx264) or MPEG-4.
//!
//! Frames leave this crate as uint8 RGB [`Clip`]s, `(T, H, W, 3)`; no tensor engine types here.

mod clip;
mod error;

pub use clip::Clip;
pub use error::VideoError;

/// Initialises FFmpeg once per process (idempotent, thread-safe) and quiets its logging.
pub fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        ffmpeg_next::init().expect("FFmpeg initialisation cannot fail for linked libraries");
        ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Error);
    });
}
