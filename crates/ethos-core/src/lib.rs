//! Foundations shared by every ethos crate, with no video or tensor types:
//!
//! - [`error`]: who caused an error ([`ErrorKind`]: the user's input, exit code 2, or ethos and its
//!   environment, exit code 1), the [`Classify`] trait every library error implements, and
//!   [`Error`], a boxed error that keeps its kind through added context.
//! - [`fs`]: the one atomic-write helper (unique temporary name in the same folder, write, fsync,
//!   rename, fsync the folder) and the clean-up of temporary files left by killed processes.
//! - [`Layout`]: the memory layout of a 5-d video batch, `(B, C, T, H, W)` or `(B, T, C, H, W)`.

pub mod error;
pub mod fs;
pub mod layout;

pub use error::{Classify, Error, ErrorKind, ResultExt};
pub use layout::Layout;
