//! The errors of this crate; each names the file, line, key or value.

use std::path::PathBuf;

use ethos_core::{Classify, ErrorKind};

use crate::problems::Problems;

/// Errors of importing, exporting and relabelling annotations.
#[derive(Debug, thiserror::Error)]
pub enum AnnotError {
    /// An input file cannot be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An output file cannot be written.
    #[error("{}: cannot write: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The inputs have problems that no chosen policy handles; all of them are listed.
    #[error("{} problem(s) in the annotations:{problems}", problems.0.len())]
    Problems {
        /// Every unhandled problem.
        problems: Problems,
    },
    /// A flag or option value that cannot work (names the flag and value).
    #[error("{0}")]
    Usage(String),
}

impl AnnotError {
    /// The listed problems (empty for other variants).
    pub fn problems(&self) -> &[crate::problems::Problem] {
        match self {
            AnnotError::Problems { problems } => &problems.0,
            _ => &[],
        }
    }
}

impl Classify for AnnotError {
    fn kind(&self) -> ErrorKind {
        match self {
            AnnotError::Read { source, .. } => ErrorKind::of_input_io(source),
            AnnotError::Write { source, .. } => ErrorKind::of_output_io(source),
            AnnotError::Problems { .. } | AnnotError::Usage(_) => ErrorKind::BadInput,
        }
    }
}

/// Reads a whole input file, naming it on failure.
pub(crate) fn read_file(path: &std::path::Path) -> Result<Vec<u8>, AnnotError> {
    std::fs::read(path).map_err(|source| AnnotError::Read {
        path: path.to_path_buf(),
        source,
    })
}
