//! Errors of the data pipeline (config, cache, datasets, loader). Each names the file, event,
//! key or value it concerns; [`DataError::is_bad_input`] tells the CLI whether to exit with 2.

use std::path::PathBuf;

use crate::config::ConfigError;
use crate::manifest::ManifestError;

/// One event whose video could not be decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct BadVideo {
    /// The event.
    pub event_idx: u32,
    /// The file that failed (source video or extracted clip).
    pub path: PathBuf,
    /// Why (the decoder's message).
    pub reason: String,
}

impl std::fmt::Display for BadVideo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "event {} ({}): {}",
            self.event_idx,
            self.path.display(),
            self.reason
        )
    }
}

/// Errors of the data pipeline.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A bad `data`/`augmentation` config value.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A bad events or split CSV.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A config file that cannot be read or parsed.
    #[error("{path}: {reason}")]
    ConfigFile {
        /// The config file.
        path: PathBuf,
        /// What is wrong (with the key path where known).
        reason: String,
    },
    /// The split is not configured.
    #[error("split `{split}` is not in data.splits (configured: {known})")]
    UnknownSplit {
        /// The requested split.
        split: String,
        /// The configured split names, comma separated.
        known: String,
    },
    /// An event index that is not in the split.
    #[error("event_idx {event_idx} is not in split `{split}`")]
    UnknownEvent {
        /// The requested event.
        event_idx: u32,
        /// The split searched.
        split: String,
    },
    /// Decoding an event's frames failed.
    #[error("event {event_idx}: {source}")]
    Video {
        /// The event.
        event_idx: u32,
        /// The decoder error (names the file).
        source: ethos_video::VideoError,
    },
    /// Videos that failed to decode with `data.on_bad_video: fail` (all listed).
    #[error("{} event(s) could not be decoded (set data.on_bad_video: skip to leave them out):\n  {}",
        .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    BadVideos(Vec<BadVideo>),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A cache entry that is truncated or corrupt (it is rebuilt, never used).
    #[error("{path}: corrupt cache entry: {reason}")]
    CorruptCache {
        /// The entry file.
        path: PathBuf,
        /// What check failed.
        reason: String,
    },
    /// A clip of the wrong shape reached the loader (an internal invariant).
    #[error("event {event_idx}: clip has shape {got:?}, expected {expected:?}")]
    Shape {
        /// The event.
        event_idx: u32,
        /// Shape `[T, H, W, 3]` received.
        got: [usize; 4],
        /// Shape expected.
        expected: [usize; 4],
    },
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
}

impl ethos_core::Classify for DataError {
    /// True when the user's input (config, manifests, videos) caused the error: exit code 2.
    fn kind(&self) -> ethos_core::ErrorKind {
        let bad = {
            match self {
                DataError::Config(_)
                | DataError::Manifest(_)
                | DataError::ConfigFile { .. }
                | DataError::UnknownSplit { .. }
                | DataError::UnknownEvent { .. }
                | DataError::BadVideos(_) => true,
                DataError::Video { source, .. } => source.is_bad_input(),
                DataError::Io { .. } | DataError::CorruptCache { .. } | DataError::Shape { .. } => {
                    false
                }
            }
        };
        if bad {
            ethos_core::ErrorKind::BadInput
        } else {
            ethos_core::ErrorKind::Internal
        }
    }
}
