//! Helpers shared by the CLI integration tests that run the real `ethos` binary.
#![allow(dead_code)] // not every helper is used by every test module

pub mod cdp;

use std::path::{Path, PathBuf};
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

/// `ethos synth --out out` of the small dataset most tests train on (24 events, 160x96, 30 s per
/// video), with `extra` flags (seed, imbalance, long video, ...); asserts that it succeeded.
pub fn synth_small(out: &Path, extra: &[&str]) {
    ok(&ethos()
        .args(["synth", "--out"])
        .arg(out)
        .args([
            "--events",
            "24",
            "--resolution",
            "160x96",
            "--minutes",
            "0.5",
        ])
        .args(extra)
        .output()
        .unwrap());
}

/// The names of the entries of `dir`, sorted.
pub fn file_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Writes an executable script (a stand-in for `srun`, `sbatch`, `ethos`, ...).
pub fn write_exe(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, body).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `$PATH` with `bin` first, so the stand-ins in it are found before the real tools.
pub fn path_with(bin: &Path) -> String {
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}
