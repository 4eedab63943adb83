//! Maps errors to the exit codes of the CLI: 2 when the user's input caused them, 1 otherwise.
//!
//! Every library error reaches the binary as an [`ethos_core::Error`], which knows its kind; the
//! binary's own flag checks use [`ethos_core::Error::bad_input`] too. Anything else (a failed
//! write to stdout) is internal.

use std::io::Write;

/// The process exit code for an error: the kind of the first [`ethos_core::Error`] in the chain,
/// else 1.
pub fn code(err: &anyhow::Error) -> i32 {
    err.chain()
        .find_map(|e| e.downcast_ref::<ethos_core::Error>())
        .map_or(1, |e| e.kind().exit_code())
}

/// Prints `error: ...` with the whole chain on stderr (ignoring a failing stderr) and returns
/// the exit code.
pub fn report(err: &anyhow::Error) -> i32 {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "error: {err:#}");
    let _ = stderr.flush();
    code(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kind_decides_the_code_through_context() {
        let bad = anyhow::Error::new(ethos_core::Error::bad_input("--shard x")).context("predict");
        assert_eq!(code(&bad), 2);
        let internal = anyhow::Error::new(ethos_core::Error::internal("disk")).context("train");
        assert_eq!(code(&internal), 1);
        let other = anyhow::anyhow!("writing stdout");
        assert_eq!(code(&other), 1);
    }
}
