//! Reliability of the real binary: write errors on stdout and stderr never panic (a closed pipe
//! ends quietly, a full device is exit 1); internal failures exit 1; training results do not
//! depend on `data.num_workers`; a stop signal inside an epoch really stops inside it; the cache
//! rebuilds entries whose source video changed; `ethos eval` writes its report files; `ethos
//! demo` runs end to end in a tiny variant.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use crate::common;
use common::{ethos, ok};

/// A small synthetic dataset shared by the tests of this file (built once).
fn dataset() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = common::tmp("reliability-cli", "data");
        ok(&ethos()
            .args(["synth", "--out"])
            .arg(&dir)
            .args([
                "--events",
                "30",
                "--resolution",
                "160x96",
                "--minutes",
                "0.5",
            ])
            .args(["--imbalance", "2", "--seed", "4"])
            .output()
            .unwrap());
        dir
    })
}

/// `--set` overrides of a tiny run into `run_dir`.
fn tiny(run_dir: &Path, extra: &[&str]) -> Vec<String> {
    let mut sets: Vec<String> = [
        "data.input_size=32",
        "data.cache_short_side=40",
        "data.num_frames=4",
        "data.fps=4",
        "data.batch_size=2",
        "model.arch=r3d_18",
        "model.preset=r3d_demo",
        "model.head_dropout=0.2",
        "train.epochs=2",
        "train.log_every_steps=1",
        "train.device=cpu",
        "augmentation.use_mixup=true",
        "optim.lr=1e-3",
    ]
    .iter()
    .chain(extra)
    .map(|s| s.to_string())
    .collect();
    sets.push(format!(
        "data.cache_dir={}",
        run_dir.with_extension("cache").display()
    ));
    let mut args: Vec<String> = sets.into_iter().flat_map(|s| ["--set".into(), s]).collect();
    args.push("--out".into());
    args.push(run_dir.display().to_string());
    args
}

fn train_cmd(run_dir: &Path, extra: &[&str]) -> Command {
    let mut c = ethos();
    c.args(["train", "--config"])
        .arg(dataset().join("config.yaml"))
        .args(tiny(run_dir, extra));
    c
}

/// A trained tiny checkpoint (built once).
fn checkpoint() -> &'static Path {
    static CKPT: OnceLock<PathBuf> = OnceLock::new();
    CKPT.get_or_init(|| {
        let run = common::tmp("reliability-cli", "ckpt-run");
        ok(&train_cmd(&run, &["train.epochs=1"]).output().unwrap());
        run.join("last.ckpt")
    })
}

fn video() -> PathBuf {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dataset().join("videos"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v.remove(0)
}

/// Runs `cmd` with its stdout (or stderr) on `/dev/full`.
fn on_dev_full(mut cmd: Command, stderr: bool) -> Output {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    if stderr {
        cmd.stderr(full).stdout(Stdio::piped());
    } else {
        cmd.stdout(full).stderr(Stdio::piped());
    }
    cmd.output().unwrap()
}

/// Runs `cmd` with a stdout pipe that is closed before the command writes.
fn on_closed_pipe(mut cmd: Command) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut err = Vec::new();
    child.stderr.take().unwrap().read_to_end(&mut err).unwrap();
    let status = child.wait().unwrap();
    Output {
        status,
        stdout: Vec::new(),
        stderr: err,
    }
}

#[test]
fn write_errors_on_stdout_and_stderr_never_panic() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let tmp = tempfile::tempdir().unwrap();
    let preds = tmp.path().join("p.csv");
    std::fs::write(
        &preds,
        "true,prob_ear,prob_tail\near,0.9,0.1\ntail,0.2,0.8\n",
    )
    .unwrap();
    let events = corpus.join("events_ok.csv");
    let commands: Vec<(&str, Vec<String>)> = vec![
        ("probe", vec!["probe".into(), video().display().to_string()]),
        (
            "metrics",
            vec![
                "metrics".into(),
                "--predictions".into(),
                preds.display().to_string(),
            ],
        ),
        (
            "eval-events",
            vec![
                "eval-events".into(),
                "--pred".into(),
                events.display().to_string(),
                "--truth".into(),
                events.display().to_string(),
            ],
        ),
        (
            "sample",
            vec![
                "sample".into(),
                video().display().to_string(),
                "--start".into(),
                "1".into(),
                "--duration".into(),
                "1".into(),
                "--frames".into(),
                "2".into(),
                "--out".into(),
                tmp.path().join("s").display().to_string(),
            ],
        ),
        (
            "weights inspect",
            vec![
                "weights".into(),
                "inspect".into(),
                corpus.join("tiny.safetensors").display().to_string(),
            ],
        ),
    ];
    for (name, args) in &commands {
        // A full stdout: an error message and exit code 1.
        let mut c = ethos();
        c.args(args);
        let out = on_dev_full(c, false);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name} > /dev/full:\n{err}");
        assert!(err.contains("writing to stdout"), "{name}:\n{err}");
        assert!(!err.contains("panicked"), "{name}:\n{err}");
        // A closed pipe (`ethos ... | head -c0`): quiet, exit code 0.
        let mut c = ethos();
        c.args(args);
        let out = on_closed_pipe(c);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{name} | closed:\n{err}");
        assert!(
            // The final message (`error: ...`) or an ERROR log line; info lines may name
            // things with "error" in them.
            !err.contains("panicked")
                && !err
                    .lines()
                    .any(|l| l.starts_with("error") || l.contains(" ERROR ")),
            "{name}:\n{err}"
        );
        // A full stderr: logs are lost, the command still succeeds.
        let mut c = ethos();
        c.args(args);
        let out = on_dev_full(c, true);
        assert_eq!(out.status.code(), Some(0), "{name} 2> /dev/full");
    }
    // predict logs a lot on stderr (and tracing reports its own write failures on stderr).
    let pout = tmp.path().join("pred");
    let mut c = ethos();
    c.args(["predict", "--checkpoint"])
        .arg(checkpoint())
        .arg("--out")
        .arg(&pout)
        .args(["--window", "2", "--stride", "1", "-v"])
        .arg(video());
    let out = on_dev_full(c, true);
    assert_eq!(out.status.code(), Some(0), "predict 2> /dev/full");
    let name = video().file_name().unwrap().to_string_lossy().into_owned();
    assert!(pout.join(format!("{name}.done.json")).is_file());
}

/// Runs `cmd` with writes limited to `bytes` per file (a full disk, seen as EFBIG).
fn with_file_size_limit(mut cmd: Command, bytes: u64) -> Output {
    // SAFETY: only async-signal-safe calls (setrlimit, signal) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Without this the kernel kills the writer with SIGXFSZ instead of failing the write.
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    cmd.output().unwrap()
}

#[test]
fn a_failed_checkpoint_write_is_an_internal_error_with_exit_code_1() {
    let run = common::tmp("reliability-cli", "full-disk");
    // Cache entries and the small run files fit; a checkpoint does not.
    let out = with_file_size_limit(train_cmd(&run, &["data.mode=cache"]), 200_000);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(".ckpt"),
        "the message names the checkpoint:\n{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    // Nothing half-written: no checkpoint and no temporary file.
    let names: Vec<String> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.contains("tmp") || n.ends_with(".ckpt")),
        "{names:?}"
    );
    let _ = std::fs::remove_dir_all(&run);
}

/// history.csv without the timing columns.
fn history(run_dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(run_dir.join("history.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let keep: Vec<usize> = (0..header.len())
        .filter(|&i| header[i] != "epoch_seconds" && header[i] != "samples_per_s")
        .collect();
    text.lines()
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            keep.iter().map(|&i| cells[i]).collect::<Vec<_>>().join(",")
        })
        .collect()
}

/// The model tensors of a checkpoint as raw bytes, by name.
fn weights(ckpt: &Path) -> Vec<(String, Vec<u8>)> {
    let ck = ethos_train::checkpoint::load(ckpt).unwrap();
    let mut v: Vec<(String, Vec<u8>)> = ck
        .model
        .iter()
        .map(|(n, t)| {
            let t = t.contiguous();
            let mut b = vec![0u8; t.numel() * t.kind().elt_size_in_bytes()];
            t.copy_data_u8(&mut b, t.numel());
            (n.clone(), b)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn training_results_do_not_depend_on_the_number_of_loader_workers() {
    let one = common::tmp("reliability-cli", "workers-1");
    let three = common::tmp("reliability-cli", "workers-3");
    ok(&train_cmd(&one, &["data.num_workers=1"]).output().unwrap());
    ok(&train_cmd(&three, &["data.num_workers=3"]).output().unwrap());
    assert_eq!(history(&one), history(&three));
    assert_eq!(
        weights(&one.join("last.ckpt")),
        weights(&three.join("last.ckpt")),
        "weights differ between 1 and 3 loader workers"
    );
    for d in [one, three] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn sigterm_inside_an_epoch_stops_inside_it_and_the_resume_is_exact() {
    let full = common::tmp("reliability-cli", "sig-full");
    ok(&train_cmd(&full, &[]).output().unwrap());
    let sig = common::tmp("reliability-cli", "sig-cut");
    let mut child = train_cmd(&sig, &[]).stderr(Stdio::piped()).spawn().unwrap();
    let mut log = String::new();
    let mut signalled = false;
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        // Batch 1 of the second epoch: many batches (batch size 2) are still to come.
        if !signalled && line.starts_with("epoch 2/2 1/") {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            signalled = true;
        }
        log.push_str(&line);
        log.push('\n');
    }
    assert!(child.wait().unwrap().success(), "{log}");
    assert!(signalled, "never saw epoch 2 start:\n{log}");
    let (state, _) = ethos_train::checkpoint::load_state(&sig.join("last.ckpt")).unwrap();
    assert_eq!(state.epochs_done, 1, "{log}");
    let partial = state
        .partial_epoch
        .expect("the stop must happen inside epoch 2, not at its end");
    assert!(partial.batches_done >= 1, "{log}");
    let out = ok(&train_cmd(&sig, &["train.resume=auto"]).output().unwrap());
    assert!(out.contains("resuming from"), "{out}");
    assert_eq!(history(&sig), history(&full));
    assert_eq!(
        weights(&sig.join("last.ckpt")),
        weights(&full.join("last.ckpt"))
    );
    for d in [full, sig] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// `built` and `kept` of an `ethos cache` run.
fn cache_run(cfg: &Path, cache: &Path) -> (u64, u64) {
    let out = ethos()
        .args(["cache", "--config"])
        .arg(cfg)
        .arg("--set")
        .arg(format!("data.cache_dir={}", cache.display()))
        .args([
            "--set",
            "data.num_frames=4",
            "--set",
            "data.cache_short_side=40",
        ])
        .output()
        .unwrap();
    ok(&out);
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (s["built"].as_u64().unwrap(), s["kept"].as_u64().unwrap())
}

#[test]
fn the_cache_rebuilds_entries_whose_source_video_changed() {
    // A private copy of the dataset: its videos are changed.
    let data = common::tmp("reliability-cli", "cache-data");
    ok(&ethos()
        .args(["synth", "--out"])
        .arg(&data)
        .args([
            "--events",
            "12",
            "--resolution",
            "96x64",
            "--minutes",
            "0.3",
        ])
        .args(["--cameras", "2", "--videos-per-camera", "1", "--seed", "8"])
        .output()
        .unwrap());
    let cfg = data.join("config.yaml");
    let cache = data.join("cache");
    let (built, kept) = cache_run(&cfg, &cache);
    assert!(built > 0 && kept == 0);
    let total = built;
    assert_eq!(cache_run(&cfg, &cache), (0, total), "nothing changed");
    let mut vids: Vec<PathBuf> = std::fs::read_dir(data.join("videos"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    vids.sort();
    let v = &vids[0];
    let mtime = std::fs::metadata(v).unwrap().modified().unwrap();
    // 1. A new modification time, same bytes.
    let f = std::fs::File::options().write(true).open(v).unwrap();
    f.set_modified(mtime + std::time::Duration::from_secs(60))
        .unwrap();
    drop(f);
    let (b1, k1) = cache_run(&cfg, &cache);
    assert!(
        b1 > 0 && b1 < total && b1 + k1 == total,
        "mtime: {b1} built, {k1} kept"
    );
    // 2. Same size and modification time, different bytes at the start of the file (the
    //    container header is not touched: a byte of the first 64 KiB past it).
    let mtime = std::fs::metadata(v).unwrap().modified().unwrap();
    let mut bytes = std::fs::read(v).unwrap();
    let at = bytes.len().min(60_000) - 1;
    bytes[at] ^= 0x01;
    std::fs::write(v, &bytes).unwrap();
    let f = std::fs::File::options().write(true).open(v).unwrap();
    f.set_modified(mtime).unwrap();
    drop(f);
    let (b2, k2) = cache_run(&cfg, &cache);
    assert_eq!((b2, k2), (b1, k1), "content change");
    // 3. A different size (bytes appended; decoders ignore trailing garbage).
    bytes.extend_from_slice(&[0u8; 16]);
    std::fs::write(v, &bytes).unwrap();
    let (b3, k3) = cache_run(&cfg, &cache);
    assert_eq!((b3, k3), (b1, k1), "size change");
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn eval_writes_metrics_predictions_and_the_report() {
    let out = common::tmp("reliability-cli", "eval");
    ok(&ethos()
        .args(["eval", "--checkpoint"])
        .arg(checkpoint())
        .args(["--split", "val", "--out"])
        .arg(&out)
        .output()
        .unwrap());
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    for k in ["f1_tail", "macro_f1", "accuracy", "auc_tail"] {
        assert!(m.get(k).is_some(), "metrics.json lacks {k}: {m}");
    }
    assert_eq!(m["split"], "val");
    let preds = std::fs::read_to_string(out.join("predictions.csv")).unwrap();
    let header = preds.lines().next().unwrap();
    assert!(
        header.contains("prob_ear") && header.contains("prob_tail"),
        "{header}"
    );
    assert!(preds.lines().count() > 2);
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        html.contains("f1_tail") || html.contains("F1"),
        "report without metrics"
    );
    let pngs = std::fs::read_dir(&out)
        .unwrap()
        .filter(|e| {
            let p = e.as_ref().unwrap().path();
            p.extension().is_some_and(|x| x == "png") && std::fs::metadata(&p).unwrap().len() > 100
        })
        .count();
    assert!(pngs >= 1, "no PNG plots in {}", out.display());
    // The predictions score back to the same metrics through `ethos metrics`.
    let again = ethos()
        .args(["metrics", "--predictions"])
        .arg(out.join("predictions.csv"))
        .output()
        .unwrap();
    ok(&again);
    let m2: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    let (a, b) = (m["f1_tail"].as_f64(), m2["f1_tail"].as_f64());
    assert!(
        a.zip(b).is_some_and(|(a, b)| (a - b).abs() < 1e-9) || (a.is_none() && b.is_none()),
        "{a:?} vs {b:?}"
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_tiny_demo_runs_end_to_end() {
    let out = common::tmp("reliability-cli", "demo");
    let res = ethos()
        .args(["demo", "--out"])
        .arg(&out)
        .args(["--events", "40", "--resolution", "128x96", "--timeline"])
        .args(["--background-events", "12", "--long-video", "20"])
        .args(["--set", "train.epochs=1", "--set", "sched.warmup_epochs=0"])
        .args(["--set", "data.num_frames=4"])
        .args([
            "--set",
            "data.input_size=32",
            "--set",
            "data.cache_short_side=40",
        ])
        .output()
        .unwrap();
    let err = ok(&res);
    let s: serde_json::Value = serde_json::from_slice(&res.stdout).unwrap();
    for split in ["val", "test_ood"] {
        assert!(
            s[split]["f1_tail"].is_number() || s[split]["macro_f1"].is_number(),
            "{s}"
        );
    }
    assert!(s.get("long_video").is_some(), "{s}");
    assert!(err.contains("demo: finished"), "{err}");
    let reports = err
        .lines()
        .filter(|l| l.starts_with("demo:"))
        .filter_map(|l| l.split(" report ").nth(1))
        .map(|p| PathBuf::from(p.trim()))
        .collect::<Vec<_>>();
    assert!(reports.len() >= 2, "{err}");
    for r in reports {
        // The demo names the report file or the folder holding `report.html`.
        assert!(
            r.is_file() || r.join("report.html").is_file(),
            "{}",
            r.display()
        );
    }
    let _ = std::fs::remove_dir_all(&out);
}
