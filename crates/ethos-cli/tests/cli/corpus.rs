//! The bad-input corpus (`tests/corpus/cases.tsv`): every case runs the real binary on a bad file,
//! flag or value and must exit with the expected code (2 for bad input) and a message naming the
//! offending value, never panic, and leave nothing half-written in its output folder.

use std::path::{Path, PathBuf};

use crate::common;
use common::{ethos, ok};

/// One line of `cases.tsv`.
struct Case {
    id: String,
    exit: i32,
    fragment: String,
    outputs: String,
    command: String,
}

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(corpus().join("cases.tsv")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(
                f.len(),
                5,
                "cases.tsv: 5 tab-separated columns expected: {l}"
            );
            assert!(
                matches!(f[3], "none" | "complete"),
                "cases.tsv: outputs must be none or complete: {l}"
            );
            Case {
                id: f[0].into(),
                exit: f[1].parse().unwrap(),
                fragment: f[2].into(),
                outputs: f[3].into(),
                command: f[4].into(),
            }
        })
        .collect()
}

/// `n` lists nested inside each other as a protocol-2 pickle (EMPTY_LIST n times, APPEND n - 1
/// times): deeper than any reader may recurse.
fn deep_pickle(n: usize) -> Vec<u8> {
    let mut p = vec![0x80, 2];
    p.extend(std::iter::repeat_n(b']', n));
    p.extend(std::iter::repeat_n(b'a', n - 1));
    p.push(b'.');
    p
}

/// Files the cases refer to: a small synthetic dataset, a checkpoint trained on it for one
/// epoch, and generated hostile files.
struct Fixtures {
    root: PathBuf,
    data: PathBuf,
    ckpt: PathBuf,
    video: PathBuf,
    gen_dir: PathBuf,
}

fn fixtures() -> Fixtures {
    let root = common::tmp("corpus-cli", "fixtures");
    let data = root.join("data");
    common::synth_small(&data, &["--imbalance", "2", "--seed", "9"]);
    let run = root.join("run");
    let mut cmd = ethos();
    cmd.args(["train", "--config"])
        .arg(data.join("config.yaml"));
    for s in [
        "data.input_size=32",
        "data.cache_short_side=40",
        "data.num_frames=4",
        "data.fps=4",
        "data.batch_size=4",
        "model.arch=mvit",
        "model.preset=mvit_demo",
        "train.epochs=1",
        "train.device=cpu",
    ] {
        cmd.args(["--set", s]);
    }
    cmd.arg("--out").arg(&run);
    ok(&cmd.output().unwrap());
    let mut videos: Vec<PathBuf> = std::fs::read_dir(data.join("videos"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    videos.sort();
    let gen_dir = root.join("gen");
    std::fs::create_dir_all(&gen_dir).unwrap();
    std::fs::write(gen_dir.join("deep.pth"), deep_pickle(100_000)).unwrap();
    Fixtures {
        ckpt: run.join("last.ckpt"),
        video: videos[0].clone(),
        root,
        data,
        gen_dir,
    }
}

/// Every file below `dir` (none when it does not exist).
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn every_bad_input_exits_2_naming_the_value_without_panic_or_half_written_files() {
    let cases = cases();
    assert!(cases.len() >= 30, "the corpus has {} cases", cases.len());
    let fx = fixtures();
    let mut failures = Vec::new();
    for case in &cases {
        let out = fx.root.join(format!("out-{}", case.id));
        let file = fx.root.join(format!("file-{}", case.id));
        std::fs::write(&file, b"a file where a folder is expected\n").unwrap();
        let words: Vec<String> = case
            .command
            .split(' ')
            .map(|w| {
                w.replace("{corpus}", &corpus().display().to_string())
                    .replace("{data}", &fx.data.display().to_string())
                    .replace("{cfg}", &fx.data.join("config.yaml").display().to_string())
                    .replace("{video}", &fx.video.display().to_string())
                    .replace("{ckpt}", &fx.ckpt.display().to_string())
                    .replace("{out}", &out.display().to_string())
                    .replace("{file}", &file.display().to_string())
                    .replace("{gen}", &fx.gen_dir.display().to_string())
            })
            .collect();
        let res = ethos().args(&words).output().unwrap();
        let stderr = String::from_utf8_lossy(&res.stderr);
        let mut problems = Vec::new();
        if res.status.code() != Some(case.exit) {
            problems.push(format!(
                "exit code {:?}, expected {}",
                res.status.code(),
                case.exit
            ));
        }
        if !stderr.contains(&case.fragment) {
            problems.push(format!("message lacks `{}`", case.fragment));
        }
        if stderr.contains("panicked") || stderr.contains("RUST_BACKTRACE") {
            problems.push("panicked".into());
        }
        let written = files_below(&out);
        let temps: Vec<&PathBuf> = written
            .iter()
            .filter(|p| {
                let n = p.file_name().unwrap_or_default().to_string_lossy();
                n.contains(".ethos-tmp.") || n.starts_with(".tmp")
            })
            .collect();
        if !temps.is_empty() {
            problems.push(format!("temporary files left: {temps:?}"));
        }
        if case.outputs == "none" && !written.is_empty() {
            problems.push(format!("wrote files: {written:?}"));
        }
        if std::fs::read(&file).unwrap() != b"a file where a folder is expected\n" {
            problems.push("changed the file given as a folder".into());
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{} ({}): {}\n    stderr: {}",
                case.id,
                case.command,
                problems.join("; "),
                stderr.trim().replace('\n', "\n            ")
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&fx.root);
    assert!(
        failures.is_empty(),
        "{} of {} corpus cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
