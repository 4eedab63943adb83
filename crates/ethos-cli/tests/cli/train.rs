//! `ethos train` through the real binary on a tiny synthetic dataset: exact resume (stopped at an
//! epoch boundary, and interrupted by SIGTERM inside an epoch), and bad input (exit code 2 with a
//! message naming the key or file).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::OnceLock;

use crate::common;
use common::{ethos, ok};

/// One small synthetic dataset shared by the tests of this file (built once).
fn dataset() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ethos-train-cli-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let out = ethos()
            .args(["synth", "--out"])
            .arg(&dir)
            .args([
                "--events",
                "36",
                "--resolution",
                "160x96",
                "--minutes",
                "0.5",
                "--imbalance",
                "2",
                "--seed",
                "3",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "synth failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

/// Overrides that make the run tiny: 32 px, 4 frames, the demo MViT, 3 epochs.
fn tiny(run_dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = [
        "data.input_size=32",
        "data.cache_short_side=40",
        "data.num_frames=4",
        "data.fps=4",
        "data.batch_size=4",
        "data.num_workers=2",
        "model.arch=mvit",
        "model.preset=mvit_demo",
        "model.head_dropout=0.2",
        "train.epochs=3",
        "train.metric_key=f1_tail",
        "train.log_every_steps=1",
        "train.device=cpu",
        "augmentation.use_mixup=true",
        "optim.lr=1e-3",
        "sched.warmup_epochs=1",
        "sched.warmup_start_lr=1e-5",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push(format!("train.run_dir={}", run_dir.display()));
    v.iter()
        .flat_map(|s| ["--set".to_string(), s.clone()])
        .collect()
}

fn train(extra: &[&str], run_dir: &Path) -> Output {
    ethos()
        .args(["train", "--config"])
        .arg(dataset().join("config.yaml"))
        .args(tiny(run_dir))
        .args(extra)
        .output()
        .unwrap()
}

/// history.csv without the timing columns (which differ between any two runs).
fn history(run_dir: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(run_dir.join("history.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let keep: Vec<usize> = (0..header.len())
        .filter(|&i| header[i] != "epoch_seconds" && header[i] != "samples_per_s")
        .collect();
    let mut rows = vec![
        keep.iter()
            .map(|&i| header[i].to_string())
            .collect::<Vec<_>>(),
    ];
    for l in lines {
        let cells: Vec<&str> = l.split(',').collect();
        rows.push(keep.iter().map(|&i| cells[i].to_string()).collect());
    }
    rows
}

fn tmp(name: &str) -> PathBuf {
    common::tmp("train-cli", name)
}

#[test]
fn resumed_runs_reproduce_the_uninterrupted_history_exactly() {
    let full = tmp("full");
    ok(&train(&[], &full));
    let reference = history(&full);
    assert_eq!(reference.len(), 4, "3 epochs + header: {reference:?}");
    for f in [
        "config.yaml",
        "best.ckpt",
        "last.ckpt",
        "per_sample_loss.csv",
        "metrics.json",
    ] {
        assert!(full.join(f).is_file(), "{f} missing");
    }
    let per_sample = std::fs::read_to_string(full.join("per_sample_loss.csv")).unwrap();
    assert!(
        per_sample.starts_with("split,event_idx,loss,predicted,true,correct,prob_ear,prob_tail")
    );

    // Stopped at an epoch boundary, then resumed.
    let split = tmp("split");
    let err = ok(&train(&["--stop-after-epochs", "1"], &split));
    assert!(err.contains("resumable"), "{err}");
    assert_eq!(history(&split).len(), 2);
    ok(&train(
        &["--resume", split.join("last.ckpt").to_str().unwrap()],
        &split,
    ));
    assert_eq!(history(&split), reference);

    // Interrupted by SIGTERM in the middle of epoch 2, then resumed with train.resume=auto.
    let sig = tmp("sigterm");
    let mut child = ethos()
        .args(["train", "--config"])
        .arg(dataset().join("config.yaml"))
        .args(tiny(&sig))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut log = String::new();
    let mut signalled = false;
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        if !signalled && line.starts_with("epoch 2/3 1/") {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            signalled = true;
        }
        log.push_str(&line);
        log.push('\n');
    }
    let status = child.wait().unwrap();
    assert!(signalled, "never saw epoch 2 start:\n{log}");
    assert!(status.success(), "SIGTERM must exit 0:\n{log}");
    assert!(log.contains("resumable"), "{log}");
    assert!(
        history(&sig).len() < 4,
        "the run should have stopped early:\n{log}"
    );
    let out = train(&["--set", "train.resume=auto"], &sig);
    let err = ok(&out);
    assert!(err.contains("resuming from"), "{err}");
    assert_eq!(history(&sig), reference);

    // A finished run directory is not silently overwritten.
    let out = train(&[], &full);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already holds a run"));
    for d in [full, split, sig] {
        let _ = std::fs::remove_dir_all(d);
    }
}

fn fails_with(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "expected exit 2:\n{err}");
    for n in needles {
        assert!(err.contains(n), "expected `{n}` in:\n{err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bad_config_and_data_exit_2_naming_the_key_or_file() {
    let run = tmp("bad");
    fails_with(
        &train(&["--set", "train.epohcs=3"], &run),
        &["train.epohcs", "did you mean `epochs`"],
    );
    fails_with(
        &train(&["--set", "optim.lr=fast"], &run),
        &["optim.lr", "fast"],
    );
    fails_with(
        &train(&["--set", "train.metric_key=f1_tial"], &run),
        &["train.metric_key", "f1_tial", "f1_tail"],
    );
    // A config file with an unknown key in a section.
    let cfg = run.with_extension("yaml");
    std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
    let text = std::fs::read_to_string(dataset().join("config.yaml")).unwrap();
    let text = text.replace("train:\n", "train:\n  patience: 3\n");
    std::fs::write(
        &cfg,
        text.replace(
            "events: events.csv",
            &format!("events: {}", dataset().join("events.csv").display()),
        ),
    )
    .unwrap();
    let out = ethos()
        .args(["train", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    fails_with(
        &out,
        &["train.patience", cfg.file_name().unwrap().to_str().unwrap()],
    );
    // A train split without any `tail` event.
    let train_csv = std::fs::read_to_string(dataset().join("splits/train.csv")).unwrap();
    let no_tail: String = train_csv
        .lines()
        .filter(|l| !l.contains(",tail,"))
        .map(|l| format!("{l}\n"))
        .collect();
    let no_tail_csv = run.with_extension("train_no_tail.csv");
    std::fs::write(&no_tail_csv, no_tail).unwrap();
    let out = train(
        &[
            "--set",
            &format!("data.splits.train={}", no_tail_csv.display()),
        ],
        &run,
    );
    fails_with(&out, &["train_no_tail.csv", "tail"]);
    let _ = std::fs::remove_file(cfg);
    let _ = std::fs::remove_file(no_tail_csv);
    let _ = std::fs::remove_dir_all(run);
}
