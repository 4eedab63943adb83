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
    let _ = writeln!(stderr, "error: {}", message(err));
    let _ = stderr.flush();
    code(err)
}

/// The error chain joined with `: `, each cause once: many error types print their cause in their
/// own message (`{path}: {source}`) and also return it as their source, which would show an OS
/// error twice (`x.csv: No such file or directory: No such file or directory`).
pub fn message(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for e in err.chain() {
        let text = e.to_string();
        if text.is_empty() || parts.last().is_some_and(|prev| prev.ends_with(&text)) {
            continue;
        }
        parts.push(text);
    }
    parts.join(": ")
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

    #[derive(Debug, thiserror::Error)]
    #[error("{path}: cannot read: {source}")]
    struct Leaf {
        path: String,
        source: std::io::Error,
    }

    #[test]
    fn an_os_error_is_printed_once() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let os = io.to_string();
        let leaf = Leaf {
            path: "events.csv".into(),
            source: io,
        };
        let err = anyhow::Error::new(leaf).context("opening split `val`");
        let m = message(&err);
        assert_eq!(m.matches(&os).count(), 1, "{m}");
        assert_eq!(
            m,
            format!("opening split `val`: events.csv: cannot read: {os}")
        );
        // Distinct causes are all kept.
        let err = anyhow::anyhow!("inner").context("middle").context("outer");
        assert_eq!(message(&err), "outer: middle: inner");
    }
}
