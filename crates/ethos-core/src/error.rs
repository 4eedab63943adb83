//! One error classification for all of ethos.
//!
//! Every library error type implements [`Classify`]: it says whether the user's input (a file, a
//! key, a value, a flag) caused it, or whether ethos or its environment failed (a full disk, a bug,
//! a lost device). [`Error`] carries that kind through any number of added context lines, so the
//! binary maps an error to its exit code by asking one type, not by listing every error type.

use std::error::Error as StdError;
use std::fmt;

/// Who caused an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The user's input: a file, key, value or flag that cannot work. Exit code 2.
    BadInput,
    /// ethos or its environment: an I/O failure not caused by a named input, a bug, a device
    /// failure. Exit code 1.
    Internal,
}

impl ErrorKind {
    /// The process exit code of this kind: 2 for bad input, 1 for internal failures.
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorKind::BadInput => 2,
            ErrorKind::Internal => 1,
        }
    }

    /// The kind of an I/O error met while reading a file the user named: a missing file, a
    /// folder where a file was expected or a file that cannot be read is the user's input;
    /// everything else (I/O errors of the disk, interrupted reads) is internal.
    pub fn of_input_io(e: &std::io::Error) -> ErrorKind {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::NotFound
            | K::PermissionDenied
            | K::IsADirectory
            | K::NotADirectory
            | K::InvalidData
            | K::InvalidInput
            | K::UnexpectedEof
            | K::InvalidFilename => ErrorKind::BadInput,
            _ => ErrorKind::Internal,
        }
    }

    /// The kind of an I/O error met while writing into a place the user named: a folder that is
    /// read-only, missing, a file, or not allowed is the user's choice of output (2); a full disk,
    /// a quota or a device error is the environment (1).
    pub fn of_output_io(e: &std::io::Error) -> ErrorKind {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::PermissionDenied
            | K::ReadOnlyFilesystem
            | K::NotADirectory
            | K::IsADirectory
            | K::AlreadyExists
            | K::NotFound
            | K::InvalidFilename => ErrorKind::BadInput,
            _ => ErrorKind::Internal,
        }
    }
}

/// An error that knows who caused it. Every library error type of ethos implements it.
pub trait Classify {
    /// Who caused this error.
    fn kind(&self) -> ErrorKind;

    /// True when the user's input caused it (exit code 2).
    fn is_bad_input(&self) -> bool {
        self.kind() == ErrorKind::BadInput
    }
}

/// Formatting into a `String` cannot fail; a formatter error is a bug.
impl Classify for fmt::Error {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Internal
    }
}

type Source = Box<dyn StdError + Send + Sync + 'static>;

/// Any ethos error with its [`ErrorKind`] and optional context lines.
///
/// Built from any [`Classify`] error with `?` or [`Error::from`]; [`ResultExt::context`] adds a
/// line (`"opening split `train`"`) and keeps the kind. Displayed as the outermost message; the
/// full chain is reached through [`std::error::Error::source`], as `anyhow`'s `{:#}` prints it.
pub struct Error {
    kind: ErrorKind,
    message: Option<String>,
    source: Option<Source>,
}

impl Error {
    /// A bad-input error with a message that names the file, key or value (exit code 2).
    pub fn bad_input(message: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::BadInput,
            message: Some(message.into()),
            source: None,
        }
    }

    /// An internal error with a message (exit code 1).
    pub fn internal(message: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::Internal,
            message: Some(message.into()),
            source: None,
        }
    }

    /// Wraps any error with an explicit kind (for foreign errors such as `std::io::Error`).
    pub fn with_kind<E>(kind: ErrorKind, source: E) -> Error
    where
        E: StdError + Send + Sync + 'static,
    {
        Error {
            kind,
            message: None,
            source: Some(Box::new(source)),
        }
    }

    /// An I/O error on a file the user named as input, with the path in the message.
    pub fn input_io(path: &std::path::Path, e: std::io::Error) -> Error {
        Error::with_kind(ErrorKind::of_input_io(&e), e).context(path.display().to_string())
    }

    /// An I/O error while writing to a place the user named, with the path in the message.
    pub fn output_io(path: &std::path::Path, e: std::io::Error) -> Error {
        Error::with_kind(ErrorKind::of_output_io(&e), e)
            .context(format!("writing {}", path.display()))
    }

    /// Who caused it.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// True when the user's input caused it.
    pub fn is_bad_input(&self) -> bool {
        self.kind == ErrorKind::BadInput
    }

    /// This error with a context line in front; the kind is kept.
    pub fn context(self, message: impl Into<String>) -> Error {
        Error {
            kind: self.kind,
            message: Some(message.into()),
            source: Some(Box::new(self)),
        }
    }

    /// Finds an error of type `T` among the errors this one wraps.
    pub fn find<T: StdError + 'static>(&self) -> Option<&T> {
        let mut node = self;
        loop {
            let s = node.source.as_deref()?;
            if let Some(t) = s.downcast_ref::<T>() {
                return Some(t);
            }
            if let Some(inner) = s.downcast_ref::<Error>() {
                node = inner;
                continue;
            }
            let mut cur = s.source();
            while let Some(e) = cur {
                if let Some(t) = e.downcast_ref::<T>() {
                    return Some(t);
                }
                cur = e.source();
            }
            return None;
        }
    }
}

impl<E> From<E> for Error
where
    E: Classify + StdError + Send + Sync + 'static,
{
    fn from(e: E) -> Error {
        Error {
            kind: e.kind(),
            message: None,
            source: Some(Box::new(e)),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.message, &self.source) {
            (Some(m), _) => f.write_str(m),
            (None, Some(s)) => fmt::Display::fmt(s, f),
            (None, None) => f.write_str("unknown error"),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")?;
        let mut cur = self.source();
        while let Some(e) = cur {
            write!(f, ": {e}")?;
            cur = e.source();
        }
        write!(f, " ({:?})", self.kind)
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match (&self.message, &self.source) {
            // With a message of its own, the wrapped error is the next link of the chain.
            (Some(_), Some(s)) => Some(s.as_ref()),
            // Transparent: the wrapped error's display is ours, its source is the next link.
            (None, Some(s)) => s.source(),
            _ => None,
        }
    }
}

/// Adds a context line to any classified error, keeping its kind.
pub trait ResultExt<T> {
    /// Wraps the error with `message` in front.
    fn context(self, message: impl Into<String>) -> Result<T, Error>;
    /// Wraps the error with a lazily built message in front.
    fn with_context<M: Into<String>>(self, f: impl FnOnce() -> M) -> Result<T, Error>;
}

impl<T, E: Into<Error>> ResultExt<T> for Result<T, E> {
    fn context(self, message: impl Into<String>) -> Result<T, Error> {
        self.map_err(|e| e.into().context(message))
    }
    fn with_context<M: Into<String>>(self, f: impl FnOnce() -> M) -> Result<T, Error> {
        self.map_err(|e| e.into().context(f()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Leaf {
        #[error("value `{0}` is not a number")]
        Bad(String),
        #[error("disk on fire")]
        Disk,
    }

    impl Classify for Leaf {
        fn kind(&self) -> ErrorKind {
            match self {
                Leaf::Bad(_) => ErrorKind::BadInput,
                Leaf::Disk => ErrorKind::Internal,
            }
        }
    }

    fn chain(e: &Error) -> Vec<String> {
        let mut out = vec![e.to_string()];
        let mut cur = e.source();
        while let Some(s) = cur {
            out.push(s.to_string());
            cur = s.source();
        }
        out
    }

    #[test]
    fn kind_survives_context_and_the_chain_has_no_repeats() {
        let r: Result<(), Leaf> = Err(Leaf::Bad("x".into()));
        let e = r.context("reading config a.yaml").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadInput);
        assert_eq!(e.kind().exit_code(), 2);
        assert_eq!(
            chain(&e),
            ["reading config a.yaml", "value `x` is not a number"]
        );
        let e = e.context("train");
        assert_eq!(chain(&e).len(), 3);
        assert!(matches!(e.find::<Leaf>(), Some(Leaf::Bad(_))));

        let r: Result<(), Leaf> = Err(Leaf::Disk);
        let e = r.with_context(|| "saving").unwrap_err();
        assert_eq!(e.kind().exit_code(), 1);
        // Transparent wrapping: no context, the leaf's message once.
        let e: Error = Leaf::Disk.into();
        assert_eq!(chain(&e), ["disk on fire"]);
    }

    #[test]
    fn io_errors_are_classified_by_role() {
        use std::io;
        let nf = io::Error::from(io::ErrorKind::NotFound);
        assert_eq!(ErrorKind::of_input_io(&nf), ErrorKind::BadInput);
        let full = io::Error::from_raw_os_error(libc::ENOSPC);
        assert_eq!(ErrorKind::of_output_io(&full), ErrorKind::Internal);
        let ro = io::Error::from_raw_os_error(libc::EROFS);
        assert_eq!(ErrorKind::of_output_io(&ro), ErrorKind::BadInput);
        let e = Error::output_io(std::path::Path::new("/x/y.ckpt"), full);
        assert_eq!(e.kind(), ErrorKind::Internal);
        assert_eq!(chain(&e)[0], "writing /x/y.ckpt");
    }
}
