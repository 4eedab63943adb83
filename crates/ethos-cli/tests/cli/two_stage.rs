//! Two-stage fine-tuning through the real binary (`train.freeze_backbone_epochs`), with a tiny
//! V-JEPA 2 + FERAL head on a small synthetic set: the backbone is bit-identical to its loaded
//! weights through the head-only epochs and changes after; a run killed (SIGKILL) after the switch
//! and resumed, and a run stopped at each epoch boundary and resumed, end with the uninterrupted
//! run's weights and history; bad values exit 2 naming the key.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::OnceLock;

use tch::Tensor;

use crate::common;
use common::ok;

/// `ethos` with one libtorch thread: these tiny models gain nothing from more, and on a busy
/// machine OpenMP's spinning threads cost ten times the CPU time.
fn ethos() -> std::process::Command {
    let mut c = common::ethos();
    c.env("OMP_NUM_THREADS", "1");
    c
}

fn tmp(name: &str) -> PathBuf {
    common::tmp("two-stage", name)
}

const TINY: &str = r#"{"model_type": "vjepa2", "patch_size": 16, "crop_size": 32, "frames_per_clip": 4,
    "tubelet_size": 2, "hidden_size": 32, "num_attention_heads": 2, "num_hidden_layers": 2,
    "mlp_ratio": 2.0, "num_pooler_layers": 1, "pred_hidden_size": 16,
    "pred_num_attention_heads": 2, "pred_num_hidden_layers": 1}"#;

/// A small synthetic set, the tiny config and initial weights (`init/`, a Hugging Face folder).
fn dataset() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ethos-two-stage-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let out = ethos()
            .args(["synth", "--out"])
            .arg(&dir)
            .args([
                "--events",
                "40",
                "--resolution",
                "128x96",
                "--minutes",
                "0.4",
                "--imbalance",
                "1",
                "--seed",
                "5",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "synth failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(dir.join("vjepa2_tiny.json"), TINY).unwrap();
        let cfg = ethos_models::vjepa2_ssl::Vjepa2Ssl::read_config(&dir.join("vjepa2_tiny.json"))
            .unwrap();
        tch::manual_seed(11);
        let ssl = ethos_models::vjepa2_ssl::Vjepa2Ssl::new(&cfg, tch::Device::Cpu).unwrap();
        ssl.export_hf(
            &dir.join("init"),
            ethos_models::vjepa2_ssl::ExportEncoder::Online,
        )
        .unwrap();
        dir
    })
}

/// 4 epochs, the first 2 head-only, the backbone at half the head's rate afterwards.
fn train(run_dir: &Path, extra_sets: &[&str], args: &[&str]) -> Output {
    train_cmd(run_dir, extra_sets, args).output().unwrap()
}

fn train_cmd(run_dir: &Path, extra_sets: &[&str], args: &[&str]) -> std::process::Command {
    let dir = dataset();
    let mut sets: Vec<String> = [
        "data.input_size=32",
        "data.cache_short_side=40",
        "data.fps=4",
        "data.num_frames=4",
        "data.jitter_frames=1",
        "data.batch_size=4",
        "data.num_workers=2",
        "model.arch=vjepa2",
        "model.preset=null",
        "model.head=feral",
        "model.num_queries=4",
        "model.head_dropout=0.1",
        "augmentation.trivial_augment=false",
        "augmentation.use_mixup=false",
        "optim.lr=1e-3",
        "optim.backbone_lr=5e-4",
        "sched.warmup_epochs=0",
        "train.epochs=4",
        "train.freeze_backbone_epochs=2",
        "train.metric_key=f1_tail",
        "train.log_every_steps=1000",
        "train.device=cpu",
        "train.save_per_sample_loss=false",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    sets.push(format!(
        "model.config={}",
        dir.join("vjepa2_tiny.json").display()
    ));
    sets.push(format!("model.weights={}", dir.join("init").display()));
    sets.push(format!("train.run_dir={}", run_dir.display()));
    sets.extend(extra_sets.iter().map(|s| s.to_string()));
    let mut cmd = ethos();
    cmd.args(["train", "--config"])
        .arg(dir.join("config.yaml"))
        .args(sets.iter().flat_map(|s| ["--set".to_string(), s.clone()]))
        .args(args);
    cmd
}

fn weights(ckpt: &Path) -> HashMap<String, Tensor> {
    ethos_train::checkpoint::load(ckpt)
        .unwrap()
        .model
        .into_iter()
        .collect()
}

fn backbone(w: &HashMap<String, Tensor>) -> Vec<(&String, &Tensor)> {
    let mut v: Vec<_> = w.iter().filter(|(k, _)| k.starts_with("vjepa2.")).collect();
    v.sort_by_key(|(k, _)| k.as_str());
    v
}

fn same(a: &HashMap<String, Tensor>, b: &HashMap<String, Tensor>, prefix: &str) -> bool {
    a.iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .all(|(k, t)| t.equal(&b[k]))
}

/// history.csv without its timing columns, as numbers.
fn history(run: &Path) -> Vec<Vec<f64>> {
    let text = std::fs::read_to_string(run.join("history.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let keep: Vec<usize> = (0..header.len())
        .filter(|&i| header[i] != "epoch_seconds" && header[i] != "samples_per_s")
        .collect();
    lines
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            keep.iter()
                .map(|&i| c[i].parse().unwrap_or(f64::NAN))
                .collect()
        })
        .collect()
}

/// Histories equal up to the last bit of a float: the trainer keeps past rows in its checkpoint's
/// JSON state, and serde_json's default float parser may round the last bit (the weights, compared
/// bit for bit, are exact).
fn same_history(a: &[Vec<f64>], b: &[Vec<f64>]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|(p, q)| p == q || (p - q).abs() <= 1e-14 * p.abs().max(q.abs()))
        })
}

#[test]
fn backbone_is_frozen_then_trains_and_resumes_exactly_across_the_switch() {
    let full = tmp("full");
    let err = ok(&train(&full, &[], &[]));
    assert!(err.contains("training the head only"), "{err}");
    assert!(err.contains("the backbone trains too"), "{err}");
    let reference = weights(&full.join("last.ckpt"));
    assert_eq!(history(&full).len(), 4);

    // Stopped at every epoch boundary: epochs 1 and 2 leave the backbone as loaded.
    let split = tmp("split");
    let init: HashMap<String, Tensor> =
        Tensor::read_safetensors(dataset().join("init/model.safetensors"))
            .unwrap()
            .into_iter()
            .collect();
    let mut per_epoch = Vec::new();
    for e in 0..4 {
        let args: Vec<String> = if e == 0 {
            vec!["--stop-after-epochs".into(), "1".into()]
        } else {
            vec![
                "--resume".into(),
                split.join("last.ckpt").display().to_string(),
                "--stop-after-epochs".into(),
                "1".into(),
            ]
        };
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(&train(&split, &[], &refs));
        per_epoch.push(weights(&split.join("last.ckpt")));
    }
    for (e, w) in per_epoch.iter().enumerate().take(2) {
        let bb = backbone(w);
        assert!(!bb.is_empty());
        for (name, t) in bb {
            let hf = name.trim_start_matches("vjepa2.");
            assert!(
                t.equal(&init[hf]),
                "epoch {}: {name} moved in a head-only epoch",
                e + 1
            );
        }
    }
    assert!(
        !same(&per_epoch[0], &per_epoch[1], "feral_head."),
        "the head must train"
    );
    assert!(
        !same(&per_epoch[1], &per_epoch[2], "vjepa2."),
        "the backbone must train after the switch"
    );
    assert!(
        same(&per_epoch[3], &reference, ""),
        "split run differs from the full run"
    );
    assert!(same_history(&history(&split), &history(&full)));

    // Killed (SIGKILL) in epoch 3, after the switch, and resumed from epoch 2's checkpoint.
    let killed = tmp("killed");
    ok(&train(&killed, &[], &["--stop-after-epochs", "2"]));
    let ckpt = killed.join("last.ckpt").display().to_string();
    let mut child = train_cmd(&killed, &[], &["--resume", &ckpt])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let reader = BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    for line in reader.lines() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.contains("resuming from") {
            // Let it train into epoch 3 before the kill.
            std::thread::sleep(std::time::Duration::from_millis(1500));
            let _ = child.kill();
            break;
        }
    }
    child.wait().unwrap();
    ok(&train(
        &killed,
        &[],
        &["--resume", killed.join("last.ckpt").to_str().unwrap()],
    ));
    assert!(
        same(&weights(&killed.join("last.ckpt")), &reference, ""),
        "killed-and-resumed run differs from the full run:\n{}",
        seen.join("\n")
    );
}

#[test]
fn bad_two_stage_values_exit_2_naming_the_key() {
    let run = tmp("bad");
    let out = train(&run, &["train.freeze_backbone_epochs=4"], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("train.freeze_backbone_epochs"), "{err}");
    let out = train(&run, &["optim.layer_decay=1.5"], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("layer_decay"), "{err}");
    let out = train(&run, &["optim.backbone_lr=-1"], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("backbone_lr"), "{err}");
}
