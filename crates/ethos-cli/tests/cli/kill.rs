//! Kill tests at seeded random moments: `ethos train`, `ethos cache` and `ethos predict` are
//! killed with SIGKILL (no handler runs) at several points, including before the first checkpoint
//! and in the middle of a video, then run again the way a requeued job would. The rerun or resume
//! must give exactly the uninterrupted result and leave no stray file behind. Also: `predict`
//! redoes videos when the checkpoint or a setting changed.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::common;
use common::{ethos, ok};

/// A seeded stream of kill delays (SplitMix64; no dependency needed for a handful of draws).
struct Draws(u64);

impl Draws {
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn dataset() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = common::tmp("kill-cli", "data");
        common::synth_small(
            &dir,
            &["--imbalance", "2", "--seed", "12", "--long-video", "40"],
        );
        dir
    })
}

const TINY: [&str; 12] = [
    "data.input_size=32",
    "data.cache_short_side=40",
    "data.num_frames=4",
    "data.fps=4",
    "data.batch_size=2",
    "data.num_workers=2",
    "model.arch=r3d_18",
    "model.preset=r3d_demo",
    "train.epochs=3",
    "train.device=cpu",
    "augmentation.use_mixup=true",
    "data.mode=cache",
];

fn train_cmd(run: &Path, extra: &[&str]) -> Command {
    let mut c = ethos();
    c.args(["train", "--config"])
        .arg(dataset().join("config.yaml"));
    for s in TINY.iter().chain(extra) {
        c.args(["--set", s]);
    }
    c.arg("--set")
        .arg(format!(
            "data.cache_dir={}",
            run.with_extension("cache").display()
        ))
        .arg("--out")
        .arg(run);
    c
}

/// Every file below `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
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
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

fn assert_no_temp_files(dir: &Path, what: &str) {
    let stray: Vec<String> = files(dir)
        .into_iter()
        .filter(|n| n.contains(".ethos-tmp.") || n.contains("/.tmp") || n.starts_with(".tmp"))
        .collect();
    assert!(stray.is_empty(), "{what}: stray files {stray:?}");
}

/// history.csv without the timing columns.
fn history(run: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(run.join("history.csv")).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let keep: Vec<usize> = (0..header.len())
        .filter(|&i| header[i] != "epoch_seconds" && header[i] != "samples_per_s")
        .collect();
    text.lines()
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            keep.iter().map(|&i| c[i]).collect::<Vec<_>>().join(",")
        })
        .collect()
}

fn model_bytes(ckpt: &Path) -> Vec<(String, Vec<u8>)> {
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

fn kill(mut child: Child) {
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
}

/// Starts `cmd` quietly and kills it after `delay`, or as soon as `until` holds.
fn kill_after(mut cmd: Command, delay: Duration, until: impl Fn() -> bool) {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while t0.elapsed() < delay && !until() {
        if child.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    kill(child);
}

#[test]
fn train_killed_at_random_moments_resumes_to_the_uninterrupted_run() {
    let full = common::tmp("kill-cli", "train-full");
    let t0 = Instant::now();
    ok(&train_cmd(&full, &[]).output().unwrap());
    let took = t0.elapsed();
    let reference = history(&full);
    let reference_weights = model_bytes(&full.join("last.ckpt"));
    let expected_files = files(&full);

    let mut draws = Draws(0x5eed_0001);
    // Point 0: as soon as the run directory holds its config, before any checkpoint.
    let mut points: Vec<Option<Duration>> = vec![None];
    for _ in 0..3 {
        points.push(Some(took.mul_f64(0.1 + 0.8 * draws.unit())));
    }
    for (k, point) in points.iter().enumerate() {
        let run = common::tmp("kill-cli", &format!("train-{k}"));
        let cfg_written = run.join("config.yaml");
        match point {
            None => kill_after(train_cmd(&run, &[]), Duration::from_secs(600), || {
                cfg_written.exists()
            }),
            Some(d) => kill_after(train_cmd(&run, &[]), *d, || false),
        }
        if point.is_none() {
            assert!(
                !run.join("last.ckpt").exists(),
                "point 0 must be before the first checkpoint"
            );
        }
        // What a requeued SLURM job runs: the same command with train.resume=auto.
        let out = train_cmd(&run, &["train.resume=auto"]).output().unwrap();
        ok(&out);
        assert_eq!(history(&run), reference, "kill point {k} ({point:?})");
        assert_eq!(
            model_bytes(&run.join("last.ckpt")),
            reference_weights,
            "kill point {k} ({point:?}): weights"
        );
        assert_eq!(files(&run), expected_files, "kill point {k}: files");
        assert_no_temp_files(&run.with_extension("cache"), "cache");
        let _ = std::fs::remove_dir_all(&run);
        let _ = std::fs::remove_dir_all(run.with_extension("cache"));
    }
    let _ = std::fs::remove_dir_all(&full);
}

fn cache_cmd(cache: &Path) -> Command {
    let mut c = ethos();
    c.args(["cache", "--config"])
        .arg(dataset().join("config.yaml"))
        .args(["--jobs", "2"])
        .arg("--set")
        .arg(format!("data.cache_dir={}", cache.display()));
    for s in [
        "data.num_frames=16",
        "data.fps=8",
        "data.cache_short_side=64",
    ] {
        c.args(["--set", s]);
    }
    c
}

fn contents(dir: &Path) -> Vec<(String, Vec<u8>)> {
    files(dir)
        .into_iter()
        .map(|n| {
            let b = std::fs::read(dir.join(&n)).unwrap();
            (n, b)
        })
        .collect()
}

#[test]
fn cache_killed_at_random_moments_rebuilds_to_the_uninterrupted_cache() {
    let full = common::tmp("kill-cli", "cache-full");
    let t0 = Instant::now();
    ok(&cache_cmd(&full).output().unwrap());
    let took = t0.elapsed();
    let reference = contents(&full);
    assert!(!reference.is_empty());
    let mut draws = Draws(0x5eed_0002);
    for k in 0..4 {
        let dir = common::tmp("kill-cli", &format!("cache-{k}"));
        let d = took.mul_f64(0.1 + 0.8 * draws.unit());
        kill_after(cache_cmd(&dir), d, || false);
        ok(&cache_cmd(&dir).output().unwrap());
        assert!(
            contents(&dir) == reference,
            "kill point {k} ({d:?}): cache differs"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
    let _ = std::fs::remove_dir_all(&full);
}

/// A checkpoint of a tiny model trained for one epoch (built once).
fn checkpoint() -> &'static Path {
    static CKPT: OnceLock<PathBuf> = OnceLock::new();
    CKPT.get_or_init(|| {
        let run = common::tmp("kill-cli", "predict-model");
        ok(&train_cmd(&run, &["train.epochs=1"]).output().unwrap());
        run.join("last.ckpt")
    })
}

fn predict_videos() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dataset().join("videos"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v.truncate(2);
    v.insert(1, dataset().join("long/closeup.mp4"));
    v
}

fn predict_cmd(out: &Path, ckpt: &Path, extra: &[&str]) -> Command {
    let mut c = ethos();
    c.args(["predict", "--checkpoint"])
        .arg(ckpt)
        .arg("--out")
        .arg(out)
        .args([
            "--window",
            "1",
            "--stride",
            "0.25",
            "--batch",
            "2",
            "--min-duration",
            "0",
        ])
        .args(extra)
        .args(predict_videos());
    c
}

/// The per-video outputs (CSV files), by name.
fn predict_outputs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    contents(dir)
        .into_iter()
        .filter(|(n, _)| n.ends_with(".csv"))
        .collect()
}

#[test]
fn predict_killed_at_random_moments_and_mid_video_reruns_to_the_uninterrupted_outputs() {
    let ckpt = checkpoint();
    let full = common::tmp("kill-cli", "predict-full");
    let t0 = Instant::now();
    ok(&predict_cmd(&full, ckpt, &[]).output().unwrap());
    let took = t0.elapsed();
    let reference = predict_outputs(&full);
    assert_eq!(
        reference.len(),
        2 * predict_videos().len(),
        "{:?}",
        files(&full)
    );

    // In the middle of the long video: after it started, before its outputs exist.
    let cut = common::tmp("kill-cli", "predict-mid");
    let long_done = cut.join("closeup.mp4.done.json");
    let mut child = predict_cmd(&cut, ckpt, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("closeup.mp4: started") {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !long_done.exists(),
        "the long video finished too fast to be cut:\n{seen}"
    );
    kill(child);
    assert!(!long_done.exists());
    let err = ok(&predict_cmd(&cut, ckpt, &[]).output().unwrap());
    assert!(err.contains("outputs complete, skipped"), "{err}");
    assert!(
        predict_outputs(&cut) == reference,
        "mid-video kill: outputs differ"
    );
    assert_no_temp_files(&cut, "predict");
    let _ = std::fs::remove_dir_all(&cut);

    let mut draws = Draws(0x5eed_0003);
    for k in 0..3 {
        let dir = common::tmp("kill-cli", &format!("predict-{k}"));
        let d = took.mul_f64(0.1 + 0.8 * draws.unit());
        kill_after(predict_cmd(&dir, ckpt, &[]), d, || false);
        ok(&predict_cmd(&dir, ckpt, &[]).output().unwrap());
        assert!(
            predict_outputs(&dir) == reference,
            "kill point {k} ({d:?}): outputs differ"
        );
        assert_no_temp_files(&dir, "predict");
        let s: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap())
                .unwrap();
        assert_eq!(
            s["per_video"].as_array().map(Vec::len),
            Some(predict_videos().len()),
            "summary.json covers every video: {s}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
    let _ = std::fs::remove_dir_all(&full);
}

#[test]
fn predict_redoes_videos_when_the_checkpoint_or_a_setting_changed() {
    let ckpt = checkpoint();
    let dir = common::tmp("kill-cli", "predict-redo");
    // A private copy of the checkpoint, to change it.
    let own = dir.with_extension("ckpt");
    std::fs::copy(ckpt, &own).unwrap();
    ok(&predict_cmd(&dir, &own, &[]).output().unwrap());
    let n = predict_videos().len();
    let skipped = |err: &str| err.matches("outputs complete, skipped").count();
    let err = ok(&predict_cmd(&dir, &own, &[]).output().unwrap());
    assert_eq!(skipped(&err), n, "unchanged: every video skipped\n{err}");
    // A changed setting.
    let err = ok(&predict_cmd(&dir, &own, &["--threshold", "0.3"])
        .output()
        .unwrap());
    assert_eq!(
        skipped(&err),
        0,
        "a changed threshold redoes every video\n{err}"
    );
    // A changed checkpoint: rewritten in place (another training would do the same).
    let bytes = std::fs::read(&own).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&own, &bytes).unwrap();
    let err = ok(&predict_cmd(&dir, &own, &["--threshold", "0.3"])
        .output()
        .unwrap());
    assert_eq!(
        skipped(&err),
        0,
        "a changed checkpoint redoes every video\n{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&own);
}
