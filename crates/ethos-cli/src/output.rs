//! Output of the binary: results on stdout, tables on stderr. A closed stdout (`ethos probe V |
//! head`) ends the command quietly with exit code 0; any other write error is an error (exit 1).
//! Nothing here panics on a failed write, unlike `println!`.

use std::io::Write;

use anyhow::{Context, Result};

/// Writes `text` and a newline to stdout and flushes; a closed pipe exits the process with 0.
pub fn stdout(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let r = writeln!(out, "{text}").and_then(|()| out.flush());
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => Err(e).context("writing to stdout"),
    }
}

/// Writes `value` as pretty JSON to stdout.
pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<()> {
    stdout(&serde_json::to_string_pretty(value).context("serialising the result")?)
}

/// Writes lines for people to stderr. A failing stderr is ignored: the result still goes to
/// stdout or files, and there is nowhere to report it.
pub fn lines<S: AsRef<str>>(lines: &[S]) {
    let mut err = std::io::stderr().lock();
    for l in lines {
        let _ = writeln!(err, "{}", l.as_ref());
    }
    let _ = err.flush();
}

/// Writes one line for people to stderr (see [`lines`]).
pub fn line(text: impl AsRef<str>) {
    lines(&[text]);
}
