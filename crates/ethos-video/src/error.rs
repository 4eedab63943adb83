use std::path::PathBuf;

/// Errors of the video layer. Each names the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    /// The file does not exist or cannot be read.
    #[error("{path}: cannot open: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// FFmpeg could not open or parse the file as a video (zero-byte, not a video, truncated header...).
    #[error("{path}: not a readable video: {reason}")]
    Invalid { path: PathBuf, reason: String },
    /// The file has no video stream.
    #[error("{path}: no video stream")]
    NoVideoStream { path: PathBuf },
    /// A request that cannot be served (negative time, empty window, ROI outside the frame...).
    #[error("{path}: bad request: {reason}")]
    BadRequest { path: PathBuf, reason: String },
    /// Decoding failed part-way (corrupt data).
    #[error("{path}: decode failed: {reason}")]
    Decode { path: PathBuf, reason: String },
    /// Encoding or writing an output failed.
    #[error("{path}: encode failed: {reason}")]
    Encode { path: PathBuf, reason: String },
    /// The `cuda` decoder was asked for but NVDEC cannot decode this stream here.
    #[error(
        "{path}: decoder `cuda` (data.decoder / --decoder) cannot be used: {reason}; \
         use `auto` (NVDEC when it works, else the CPU) or `cpu`"
    )]
    HwDecoder { path: PathBuf, reason: String },
    /// This build of ethos has no FFmpeg (built without the `ffmpeg` feature).
    #[error(
        "{path}: this ethos build has no FFmpeg (built with --no-default-features), so it cannot \
         {what}; use a build with the default `ffmpeg` feature, or a decoded-clip cache \
         (data.mode: cache) built elsewhere"
    )]
    NoFfmpeg { path: PathBuf, what: String },
}

impl VideoError {
    /// True when the machine or the build is the problem, not the video: NVDEC asked for but
    /// unusable, or no FFmpeg in this build. Such errors stop a job instead of marking every video bad.
    pub fn is_setup_error(&self) -> bool {
        matches!(
            self,
            VideoError::HwDecoder { .. } | VideoError::NoFfmpeg { .. }
        )
    }
}

impl ethos_core::Classify for VideoError {
    /// True when the error is caused by the user's input (bad file or request), i.e. exit code 2.
    fn kind(&self) -> ethos_core::ErrorKind {
        let bad = { !matches!(self, VideoError::Encode { .. }) };
        if bad {
            ethos_core::ErrorKind::BadInput
        } else {
            ethos_core::ErrorKind::Internal
        }
    }
}
