//! Maps errors to the exit codes of the CLI: 2 for bad input or config, 1 for internal failures.

/// An error caused by the user's input (a file, key or value), reported with exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// The process exit code for an error: 2 when any error in the chain is a bad-input error.
pub fn code(err: &anyhow::Error) -> i32 {
    let bad = err.chain().any(|e| {
        e.downcast_ref::<BadInput>().is_some()
            || e.downcast_ref::<ethos_video::VideoError>().is_some_and(|v| v.is_bad_input())
            || e.downcast_ref::<clap::Error>().is_some()
    });
    if bad { 2 } else { 1 }
}
