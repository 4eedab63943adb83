//! The FFmpeg-backed API in a build without the `ffmpeg` feature: the same names and signatures,
//! each call that would probe, decode or encode returning [`VideoError::NoFfmpeg`], so crates
//! above need no `cfg` of their own. Readers and writers can never exist in such a build.

use std::convert::Infallible;
use std::path::Path;

use crate::{
    ClipSampler, Codec, ReaderOptions, Resize, Roi, SampledClip, VideoError, VideoInfo,
    WriterOptions,
};

fn no_ffmpeg(path: &Path, what: &str) -> VideoError {
    VideoError::NoFfmpeg {
        path: path.to_path_buf(),
        what: what.to_string(),
    }
}

/// Nothing to initialise without FFmpeg.
pub fn init() {}

/// Says that this build has no FFmpeg (for `ethos doctor`).
pub fn ffmpeg_report() -> serde_json::Value {
    serde_json::json!({
        "linked": false,
        "reason": "built without the `ffmpeg` feature (cargo build --no-default-features): no decoding, probing or encoding",
        "encoders": [],
        "nvdec": [],
    })
}

/// Always [`VideoError::NoFfmpeg`].
pub fn probe(path: &Path) -> Result<VideoInfo, VideoError> {
    Err(no_ffmpeg(path, "probe videos"))
}

/// Always an error: NVDEC is reached through FFmpeg.
pub fn nvdec_available(_codec: &str) -> Result<&'static str, String> {
    Err("this build has no FFmpeg".into())
}

/// Always false.
pub fn encoder_available(_codec: Codec) -> bool {
    false
}

impl ClipSampler {
    /// Always [`VideoError::NoFfmpeg`].
    pub fn sample_times(
        &self,
        path: &Path,
        _times_s: &[f64],
        _roi: Option<Roi>,
        _resize: Resize,
    ) -> Result<SampledClip, VideoError> {
        Err(no_ffmpeg(path, "decode video"))
    }
}

/// A reader that cannot be opened in this build.
pub struct FrameReader {
    never: Infallible,
}

impl FrameReader {
    /// Always [`VideoError::NoFfmpeg`].
    pub fn open(path: &Path, _opts: &ReaderOptions) -> Result<Self, VideoError> {
        Err(no_ffmpeg(path, "decode video"))
    }

    /// Output width in pixels (never called: no reader exists).
    pub fn width(&self) -> u32 {
        match self.never {}
    }

    /// Output height in pixels (never called: no reader exists).
    pub fn height(&self) -> u32 {
        match self.never {}
    }

    /// Never called: no reader exists.
    pub fn hardware_decoder(&self) -> Option<&'static str> {
        match self.never {}
    }

    /// Output rate in frames per second (never called: no reader exists).
    pub fn fps(&self) -> f64 {
        match self.never {}
    }

    /// Never called: no reader exists.
    pub fn next_frame(&mut self) -> Result<Option<(f64, Vec<u8>)>, VideoError> {
        match self.never {}
    }
}

/// A writer that cannot be created in this build.
pub struct ClipWriter {
    never: Infallible,
}

impl ClipWriter {
    /// Always [`VideoError::NoFfmpeg`].
    pub fn create(
        path: &Path,
        _width: u32,
        _height: u32,
        _opts: &WriterOptions,
    ) -> Result<Self, VideoError> {
        Err(no_ffmpeg(path, "encode video"))
    }

    /// Frame width in pixels (never called: no writer exists).
    pub fn width(&self) -> u32 {
        match self.never {}
    }

    /// Frame height in pixels (never called: no writer exists).
    pub fn height(&self) -> u32 {
        match self.never {}
    }

    /// Never called: no writer exists.
    pub fn write_frame(&mut self, _rgb: &[u8]) -> Result<(), VideoError> {
        match self.never {}
    }

    /// Never called: no writer exists.
    pub fn finish(self) -> Result<(), VideoError> {
        match self.never {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_point_says_there_is_no_ffmpeg() {
        let p = Path::new("v.mp4");
        let check = |e: VideoError| {
            let m = e.to_string();
            assert!(m.contains("v.mp4") && m.contains("no FFmpeg"), "{m}");
            assert_eq!(
                ethos_core::Classify::kind(&e),
                ethos_core::ErrorKind::BadInput
            );
        };
        check(probe(p).unwrap_err());
        check(
            ClipSampler::new(1)
                .sample_times(p, &[0.0], None, Resize::None)
                .unwrap_err(),
        );
        check(
            FrameReader::open(p, &ReaderOptions::default())
                .err()
                .unwrap(),
        );
        check(
            ClipWriter::create(p, 16, 16, &WriterOptions::default())
                .err()
                .unwrap(),
        );
        assert!(!encoder_available(Codec::Mpeg4));
        assert_eq!(ffmpeg_report()["linked"], false);
    }
}
