//! Helpers shared by the CLI integration tests that run the real `ethos` binary.
#![allow(dead_code)] // not every helper is used by every test module

pub mod cdp;

use std::path::PathBuf;
use std::process::{Command, Output};

/// The `ethos` binary with info logs and no colour codes (tests read its stderr).
pub fn ethos() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ethos"));
    c.env("RUST_LOG", "info").env("NO_COLOR", "1");
    c
}

/// Asserts `out` succeeded (printing its stderr otherwise) and returns its stderr.
pub fn ok(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "ethos failed ({:?}):\n{err}",
        out.status.code()
    );
    err
}

/// A fresh (removed if present) temporary path `ethos-<suite>-<pid>-<name>`.
pub fn tmp(suite: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ethos-{suite}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}
