//! `ethos pretrain-index` / `ethos pretrain` through the real binary on synthetic long videos with
//! `configs/pretrain_demo.yaml` (CPU, small step counts): the loss in `history.csv` falls, a run
//! killed with SIGKILL and resumed with `--resume` gives the uninterrupted run's loss curve,
//! `RUN/encoder/` loads back (SSL model and the FERAL fine-tuning path), the index is deterministic
//! and counts what its filters skip, and bad config values exit 2 naming the key.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::OnceLock;

use crate::common;
use common::ok;

/// `ethos` with one libtorch thread: these tiny models gain nothing from more, and on a busy
/// machine OpenMP's spinning threads cost ten times the CPU time.
fn ethos() -> std::process::Command {
    let mut c = common::ethos();
    c.env("OMP_NUM_THREADS", "1");
    c
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn config() -> PathBuf {
    repo().join("configs/pretrain_demo.yaml")
}

/// One small synthetic dataset (6 videos of 30 s: 3 cameras x 2 pens) shared by the tests.
fn dataset() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ethos-pretrain-cli-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let out = ethos()
            .args(["synth", "--out"])
            .arg(&dir)
            .args([
                "--events",
                "24",
                "--resolution",
                "160x96",
                "--minutes",
                "1",
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

fn tmp(name: &str) -> PathBuf {
    common::tmp("pretrain-cli", name)
}

/// Overrides for a run of `steps` steps on the test footage (one 2 s clip per 3 s, batch 4,
/// a row every 5 steps, a checkpoint every 10), with a cache shared by the tests.
fn sets(steps: u64, extra: &[&str]) -> Vec<String> {
    let d = dataset();
    let mut v: Vec<String> = vec![
        format!("pretrain.videos={}", d.join("videos").display()),
        format!("pretrain.cache_dir={}", d.join("pretrain_cache").display()),
        "pretrain.clips_per_hour=1200".into(),
        format!("pretrain.steps={steps}"),
        "pretrain.warmup_steps=5".into(),
        "pretrain.log_every=5".into(),
        "pretrain.checkpoint_every=10".into(),
        "data.cache_short_side=64".into(),
        "data.batch_size=4".into(),
        "data.num_workers=2".into(),
    ];
    v.extend(extra.iter().map(|s| s.to_string()));
    v.iter()
        .flat_map(|s| ["--set".to_string(), s.clone()])
        .collect()
}

fn pretrain(run: &Path, steps: u64, extra_sets: &[&str], args: &[&str]) -> Output {
    ethos()
        .args(["pretrain", "--config"])
        .arg(config())
        .args(sets(steps, extra_sets))
        .arg("--out")
        .arg(run)
        .args(args)
        .output()
        .unwrap()
}

/// `history.csv` as rows of (step, loss, lr, momentum): the columns that do not depend on timing.
fn curve(run: &Path) -> Vec<[String; 4]> {
    let text = std::fs::read_to_string(run.join("history.csv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "step,loss,lr,momentum,samples_per_s,elapsed_s"
    );
    lines
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            [c[0].into(), c[1].into(), c[2].into(), c[3].into()]
        })
        .collect()
}

fn fails_with(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "expected exit 2, stderr:\n{err}"
    );
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}:\n{err}");
    }
}

#[test]
fn loss_falls_and_a_killed_run_resumes_to_the_same_curve() {
    let full = tmp("full");
    ok(&pretrain(&full, 100, &[], &[]));
    let reference = curve(&full);
    assert_eq!(reference.len(), 20, "{reference:?}");
    let loss: Vec<f64> = reference.iter().map(|r| r[1].parse().unwrap()).collect();
    let (first, last) = (
        loss[..2].iter().sum::<f64>() / 2.0,
        loss[18..].iter().sum::<f64>() / 2.0,
    );
    assert!(
        last < 0.9 * first,
        "the loss must fall: first tenth {first}, last tenth {last} ({loss:?})"
    );
    // Momentum follows the configured linear schedule 0.996 -> 1.
    let m_last: f64 = reference[19][3].parse().unwrap();
    assert!(
        (m_last - (0.996 + 99.0 * 0.004 / 100.0)).abs() < 1e-12,
        "{m_last}"
    );
    for f in [
        "config.yaml",
        "last.ckpt",
        "index.csv",
        "index.json",
        "encoder/config.json",
        "encoder/model.safetensors",
    ] {
        assert!(full.join(f).is_file(), "{f} missing");
    }

    // The same run killed with SIGKILL after its checkpoint at step 50, then resumed.
    let split = tmp("split");
    let mut child = ethos()
        .args(["pretrain", "--config"])
        .arg(config())
        .args(sets(100, &[]))
        .arg("--out")
        .arg(&split)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let reader = BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    for line in reader.lines() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.contains("checkpoint at step 50/100") {
            child.kill().unwrap();
            break;
        }
    }
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the run finished before the kill:\n{}",
        seen.join("\n")
    );
    let cut = curve(&split);
    assert!(
        cut.len() >= 10 && cut.len() < 20,
        "{} rows before the kill",
        cut.len()
    );
    let err = ok(&pretrain(
        &split,
        100,
        &[],
        &["--resume", split.join("last.ckpt").to_str().unwrap()],
    ));
    assert!(err.contains("resuming pretraining"), "{err}");
    assert_eq!(curve(&split), reference);

    // The exported encoder reloads: as the SSL model, and into the FERAL fine-tuning path.
    let enc = full.join("encoder");
    let cfg = ethos_models::vjepa2_ssl::Vjepa2Ssl::read_config(&enc).unwrap();
    let mut ssl = ethos_models::vjepa2_ssl::Vjepa2Ssl::new(&cfg, tch::Device::Cpu).unwrap();
    let report = ssl.load_weights(&enc).unwrap();
    assert!(report.encoder_tensors > 0 && report.predictor_tensors > 0);
    let saved: std::collections::HashMap<String, tch::Tensor> =
        tch::Tensor::read_safetensors(enc.join("model.safetensors"))
            .unwrap()
            .into_iter()
            .collect();
    for (name, t) in ssl.online_vs().variables() {
        assert!(t.equal(&saved[&name]), "{name} differs after the reload");
    }
    let model_cfg = ethos_models::config::ModelConfig {
        arch: ethos_models::config::Arch::Vjepa2,
        config: Some(enc.clone()),
        weights: Some(enc.clone()),
        head: ethos_models::config::HeadKind::Feral,
        num_queries: 8,
        ..Default::default()
    };
    let mut vs = tch::nn::VarStore::new(tch::Device::Cpu);
    ethos_models::factory::build_from_config(&model_cfg, 2, &mut vs).unwrap();
    let vars = vs.variables();
    let key = "encoder.layer.0.attention.query.weight";
    assert!(vars[&format!("vjepa2.{key}")].equal(&saved[key]));
}

fn index(run: &Path, extra: &[&str]) -> Output {
    ethos()
        .args(["pretrain-index", "--config"])
        .arg(config())
        .args(sets(10, extra))
        .arg("--out")
        .arg(run)
        .output()
        .unwrap()
}

#[test]
fn the_index_is_deterministic_and_counts_what_it_skips() {
    let a = tmp("index-a");
    let b = tmp("index-b");
    let mut clips = Vec::new();
    for run in [&a, &b] {
        let out = index(run, &[]);
        ok(&out);
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(summary["videos_listed"], 6);
        clips.push(summary["clips"].as_u64().unwrap());
    }
    // 6 videos of at least 30 s, one 2 s clip per 3 s.
    assert!(clips[0] >= 60 && clips[0] == clips[1], "{clips:?}");
    let text = std::fs::read_to_string(a.join("index.csv")).unwrap();
    assert_eq!(text, std::fs::read_to_string(b.join("index.csv")).unwrap());
    assert!(text.starts_with("clip,video,camera,start_s,duration_s,activity\n"));
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert!(
        rows.iter().any(|r| r[2] == "cam2"),
        "the unseen camera is part of the footage"
    );
    let mut activity: Vec<f64> = rows
        .iter()
        .filter(|r| r[2] != "cam2")
        .map(|r| r[5].parse().unwrap())
        .collect();
    let kept_cameras = activity.len() as u64;
    activity.sort_by(f64::total_cmp);
    let median = activity[activity.len() / 2];
    assert!(median > 0.0, "synthetic calves move");

    // Camera filter (cam2 out) and an activity threshold at the median: about half are static.
    let c = tmp("index-c");
    let out = index(
        &c,
        &[
            "pretrain.cameras.exclude=[cam2]",
            &format!("pretrain.activity={{threshold: {median}}}"),
            &format!("pretrain.cache_dir={}", c.join("cache").display()),
        ],
    );
    ok(&out);
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["skipped"]["videos_camera_excluded"], 2, "{s}");
    let (kept, stat) = (
        s["clips"].as_u64().unwrap(),
        s["skipped"]["clips_static"].as_u64().unwrap(),
    );
    assert_eq!(kept + stat, kept_cameras, "{s}");
    assert!(kept > 0 && stat > 0, "{s}");
    let skipped = std::fs::read_to_string(c.join("index.skipped.csv")).unwrap();
    assert_eq!(
        skipped.lines().filter(|l| l.contains(",static,")).count() as u64,
        stat
    );
    assert!(
        !std::fs::read_to_string(c.join("index.csv"))
            .unwrap()
            .contains(",cam2,")
    );
}

#[test]
fn bad_config_values_exit_2_naming_the_key() {
    let run = tmp("bad");
    fails_with(
        &pretrain(&run, 10, &["pretrain.clip_seconds=0"], &[]),
        &["pretrain.clip_seconds"],
    );
    fails_with(
        &pretrain(&run, 10, &["pretrain.masks=[]"], &[]),
        &["pretrain.masks"],
    );
    fails_with(
        &pretrain(&run, 10, &["pretrain.ema=[0.9, 1.5]"], &[]),
        &["pretrain.ema"],
    );
    fails_with(
        &pretrain(&run, 10, &["pretrain.epochs=2"], &[]),
        &["pretrain.epochs", "pretrain.steps"],
    );
    fails_with(
        &pretrain(&run, 10, &["pretrain.videos=/no/such/footage"], &[]),
        &["pretrain.videos", "/no/such/footage"],
    );
    fails_with(
        &pretrain(
            &run,
            10,
            &["pretrain.time_of_day={start: '06:00', end: '18:00'}"],
            &[],
        ),
        &["pretrain.time_of_day", "file name"],
    );
    fails_with(
        &pretrain(&run, 10, &["pretrain.clip_secs=2"], &[]),
        &["pretrain.clip_secs", "clip_seconds"],
    );
    fails_with(
        &pretrain(
            &run,
            10,
            &["model.arch=mvit", "model.preset=mvit_demo"],
            &[],
        ),
        &["model.arch"],
    );
    fails_with(
        &pretrain(&run, 10, &["data.input_size=4"], &[]),
        &["data.input_size"],
    );
    let out = ethos()
        .args(["pretrain", "--config"])
        .arg(config())
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    fails_with(&out, &["pretrain.videos is not set"]);
    assert!(!run.join("last.ckpt").exists());
}

#[test]
fn slurm_pretrain_writes_a_resumable_job() {
    let out = ethos()
        .args(["slurm", "pretrain", "--config"])
        .arg(config())
        .args(["--set", "pretrain.videos=/data/nvr", "--gpus", "1"])
        .output()
        .unwrap();
    ok(&out);
    let script = String::from_utf8_lossy(&out.stdout);
    assert!(
        script.contains("#SBATCH --job-name=ethos-pretrain"),
        "{script}"
    );
    assert!(
        script.contains(r#""$ETHOS" "pretrain" "--config""#),
        "{script}"
    );
    assert!(script.contains("train.resume=auto"), "{script}");
    assert!(script.contains("pretrain.videos=/data/nvr"), "{script}");
    assert!(script.contains("--signal=B:USR1@"), "{script}");
}

/// Largest absolute difference between the online (encoder + predictor) and the target (EMA)
/// weights of two pretraining checkpoints, and their step counts.
fn pretrain_weight_diff(a: &Path, b: &Path) -> (f64, u64, u64) {
    let a = ethos_train::pretrain::load_checkpoint(a).unwrap();
    let b = ethos_train::pretrain::load_checkpoint(b).unwrap();
    let mut worst = 0f64;
    for (la, lb) in [(&a.online, &b.online), (&a.target, &b.target)] {
        let mut la: Vec<_> = la.iter().collect();
        let mut lb: Vec<_> = lb.iter().collect();
        la.sort_by(|x, y| x.0.cmp(&y.0));
        lb.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(la.len(), lb.len());
        for ((na, ta), (nb, tb)) in la.iter().zip(&lb) {
            assert_eq!(na, nb);
            worst = worst.max((ta - tb).abs().max().double_value(&[]));
        }
    }
    (worst, a.state.step, b.state.step)
}

/// `ethos launch --nproc N -- pretrain ...` with the same overrides as [`pretrain`].
fn launch_pretrain(nproc: usize, run: &Path, steps: u64, args: &[&str]) -> Output {
    ethos()
        .args([
            "launch",
            "--nproc",
            &nproc.to_string(),
            "--",
            "pretrain",
            "--config",
        ])
        .arg(config())
        .args(sets(steps, &[]))
        .arg("--out")
        .arg(run)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn two_ranks_pretrain_like_one_process_and_resume_with_either() {
    // Batch 4 over 2 ranks: 2 clips each, the masks of the whole batch split by rows.
    let (one, two, two_then_one) = (tmp("dp-one"), tmp("dp-two"), tmp("dp-two-then-one"));
    for run in [&one, &two, &two_then_one] {
        let _ = std::fs::remove_dir_all(run);
    }
    let ck = |run: &Path| run.join("last.ckpt");
    ok(&pretrain(&one, 12, &[], &["--stop-after-steps", "1"]));
    let err = ok(&launch_pretrain(2, &two, 12, &["--stop-after-steps", "1"]));
    assert!(
        !err.contains("rank 1 of 2"),
        "rank 1 logs warnings only:\n{err}"
    );
    let (d1, s1, s2) = pretrain_weight_diff(&ck(&one), &ck(&two));
    eprintln!("pretrain: max |w1 - w2| after the first step: {d1:e}");
    assert_eq!((s1, s2), (1, 1));
    assert!(d1 <= 1e-6, "after one step: {d1:e}");

    // The rest of the run: one process, the 2-rank start resumed by one process into a new
    // folder (which receives a copy of the run first), and two ranks.
    let (c1, c2) = (
        ck(&one).display().to_string(),
        ck(&two).display().to_string(),
    );
    ok(&pretrain(&one, 12, &[], &["--resume", &c1]));
    ok(&pretrain(&two_then_one, 12, &[], &["--resume", &c2]));
    ok(&launch_pretrain(2, &two, 12, &["--resume", &c2]));
    let (reference, parallel, mixed) = (curve(&one), curve(&two), curve(&two_then_one));
    assert_eq!(reference.len(), 3, "{reference:?}");
    for other in [&parallel, &mixed] {
        assert_eq!(other.len(), reference.len(), "{other:?}");
        for (a, b) in reference.iter().zip(other.iter()) {
            // Step, learning rate and momentum exactly; the loss at float32 noise.
            assert_eq!((&a[0], &a[2], &a[3]), (&b[0], &b[2], &b[3]));
            let (la, lb): (f64, f64) = (a[1].parse().unwrap(), b[1].parse().unwrap());
            assert!((la - lb).abs() <= 1e-4 * la.abs(), "loss {la} vs {lb}");
        }
    }
    for (name, run) in [("2 ranks", &two), ("2 ranks then 1", &two_then_one)] {
        let (d, s1, s2) = pretrain_weight_diff(&ck(&one), &ck(run));
        eprintln!("pretrain: max |w1 - w| after 12 steps ({name}): {d:e}");
        assert_eq!((s1, s2), (12, 12));
        // The issue's bound for 20+ steps; measured 1.2e-7 (the MViT training run of
        // distributed.rs drifts further, see DRIFT_24_STEPS there).
        assert!(d <= 1e-4, "{name}: {d:e}");
    }
    // The 2-rank run folder holds exactly the files of the one-process run (no per-rank or
    // temporary files).
    assert_eq!(common::file_names(&one), common::file_names(&two));
    for run in [one, two, two_then_one] {
        let _ = std::fs::remove_dir_all(run);
    }
}
