//! Progress of long steps, reported to whoever shows it (the CLI: a bar on a terminal, flushed
//! lines in a log file).

/// Receives progress of a long step.
pub trait Progress: Sync {
    /// `done` of `total` items are finished; `note` is a line worth showing on its own (a failed
    /// item, a finished video).
    fn step(&self, done: usize, total: usize, note: Option<&str>);
}

/// Shows nothing (library callers and tests).
pub struct Quiet;

impl Progress for Quiet {
    fn step(&self, _: usize, _: usize, _: Option<&str>) {}
}
