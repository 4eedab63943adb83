//! `ethos train` / `ethos eval` with a tiny V-JEPA 2 encoder and the FERAL per-frame head on
//! frame-level chunks of a small synthetic set (CPU): clip- and frame-level metrics in `history.csv`
//! and `metrics.json`, the loss going down, partial freezing (frozen weights never change across
//! epochs and a resume), and the query-count/chunk-length rule (exit 2).

use std::path::{Path, PathBuf};
use std::process::Output;

use tch::Tensor;

use crate::common;
use common::{ethos, ok};

fn tmp(name: &str) -> PathBuf {
    common::tmp("feral-train", name)
}

/// A small synthetic set plus a tiny V-JEPA 2 `config.json` (2 blocks, width 32, 32 px, 4 frames).
fn dataset(dir: &Path) {
    let out = ethos()
        .args(["synth", "--out"])
        .arg(dir)
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
    std::fs::write(
        dir.join("vjepa2_tiny.json"),
        r#"{"model_type": "vjepa2", "patch_size": 16, "crop_size": 32, "frames_per_clip": 4,
            "tubelet_size": 2, "hidden_size": 32, "num_attention_heads": 2, "num_hidden_layers": 2,
            "mlp_ratio": 2.0, "num_pooler_layers": 1}"#,
    )
    .unwrap();
}

/// Overrides for a tiny frame-level run: 4-frame chunks (shift 2) at 4 fps, FERAL head with
/// 4 queries, first block frozen.
fn overrides(dir: &Path, run_dir: &Path, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "data.input_size=32",
        "data.cache_short_side=40",
        "data.fps=4",
        "data.chunk_length=4",
        "data.chunk_shift=2",
        "data.jitter_frames=1",
        "data.batch_size=4",
        "data.num_workers=2",
        "model.arch=vjepa2",
        "model.preset=null",
        "model.head=feral",
        "model.num_queries=4",
        "model.freeze_encoder_layers=1",
        "model.head_dropout=0.1",
        "augmentation.trivial_augment=false",
        "augmentation.use_mixup=false",
        "loss.class_weights=inv_freq_sqrt",
        "loss.label_smoothing=0.1",
        "optim.lr=1e-3",
        "sched.warmup_epochs=0",
        "train.epochs=3",
        "train.metric_key=frame_map",
        "train.log_every_steps=1000",
        "train.device=cpu",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(extra.iter().map(|s| s.to_string()))
    .collect();
    v.push(format!(
        "model.config={}",
        dir.join("vjepa2_tiny.json").display()
    ));
    v.push(format!("train.run_dir={}", run_dir.display()));
    v.iter()
        .flat_map(|s| ["--set".to_string(), s.clone()])
        .collect()
}

fn train(dir: &Path, run_dir: &Path, extra_sets: &[&str], args: &[&str]) -> Output {
    ethos()
        .args(["train", "--config"])
        .arg(dir.join("config.yaml"))
        .args(overrides(dir, run_dir, extra_sets))
        .args(args)
        .output()
        .unwrap()
}

/// `history.csv` as (header, rows).
fn history(run_dir: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(run_dir.join("history.csv")).unwrap();
    let mut lines = text.lines();
    let header = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    let rows = lines
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    (header, rows)
}

fn column(header: &[String], rows: &[Vec<String>], name: &str) -> Vec<f64> {
    let i = header
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("history.csv has no `{name}` column: {header:?}"));
    rows.iter()
        .map(|r| {
            r[i].parse::<f64>()
                .unwrap_or_else(|_| panic!("{name} = {:?} is not a number", r[i]))
        })
        .collect()
}

fn model_tensors(ckpt: &Path) -> Vec<(String, Tensor)> {
    let mut t = ethos_train::checkpoint::load(ckpt).unwrap().model;
    t.sort_by(|a, b| a.0.cmp(&b.0));
    t
}

#[test]
fn feral_head_trains_on_frame_level_chunks_with_frozen_blocks() {
    let dir = tmp("data");
    dataset(&dir);
    let run = tmp("run");

    // Epoch 1, stopped resumably; then resumed to epoch 3.
    let err = ok(&train(&dir, &run, &[], &["--stop-after-epochs", "1"]));
    assert!(err.contains("frame-level chunks of 4 frames"), "{err}");
    // The synth config's clip length is replaced by the chunk length, and the log says so.
    assert!(err.contains("data.num_frames = 16 is not used"), "{err}");
    assert!(
        err.contains("trainable /") && err.contains("total parameters"),
        "{err}"
    );
    let after_one = model_tensors(&run.join("last.ckpt"));
    ok(&train(
        &dir,
        &run,
        &[],
        &["--resume", run.join("last.ckpt").to_str().unwrap()],
    ));

    let (header, rows) = history(&run);
    assert_eq!(rows.len(), 3, "{rows:?}");
    for name in [
        "frame_map",
        "frame_ap_ear",
        "frame_ap_tail",
        "f1_tail",
        "macro_f1",
    ] {
        let v = column(&header, &rows, name);
        assert!(v.iter().all(|x| x.is_finite()), "{name}: {v:?}");
    }
    let loss = column(&header, &rows, "train_loss");
    assert!(loss[2] < loss[0], "train loss did not decrease: {loss:?}");
    assert!(run.join("best.ckpt").is_file() && run.join("last.ckpt").is_file());

    // Frozen: the patch embedding and block 0 are bit-identical after two more epochs (and a
    // resume); block 1, the final norm and the head moved.
    let after_three = model_tensors(&run.join("last.ckpt"));
    assert_eq!(after_one.len(), after_three.len());
    let (mut frozen, mut moved) = (0, 0);
    for ((name, a), (name_b, b)) in after_one.iter().zip(&after_three) {
        assert_eq!(name, name_b);
        let same = a.equal(b);
        if name.starts_with("vjepa2.encoder.embeddings.")
            || name.starts_with("vjepa2.encoder.layer.0.")
        {
            assert!(same, "frozen {name} changed");
            frozen += 1;
        } else if (name.starts_with("vjepa2.encoder.layer.1.") || name.starts_with("feral_head."))
            && !name.contains("running_")
            && !same
        {
            moved += 1;
        }
    }
    assert!(frozen >= 2, "no frozen tensors found");
    assert!(moved > 5, "trainable tensors did not move ({moved})");

    // metrics.json (val, best checkpoint) and `ethos eval` report clip and frame level.
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap();
    assert!(m["frame_map"].as_f64().is_some_and(f64::is_finite), "{m}");
    assert!(m["f1_tail"].as_f64().is_some(), "{m}");
    let out = ethos()
        .args(["eval", "--run"])
        .arg(&run)
        .args(["--split", "val"])
        .output()
        .unwrap();
    ok(&out);
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!((e["frame_map"].as_f64().unwrap() - m["frame_map"].as_f64().unwrap()).abs() < 1e-9);
    assert!(e["frames"].as_u64().unwrap() > e["support_ear"].as_u64().unwrap());

    // Long-video inference with the per-frame head writes per-frame probabilities: one row per
    // grid frame (4 fps) from the first window to the last, each row a distribution.
    let pred = tmp("pred");
    let video = dir.join("videos/cam0_pen0.mp4");
    let out = ethos()
        .args(["predict", "--checkpoint"])
        .arg(run.join("best.ckpt"))
        .arg("--out")
        .arg(&pred)
        .args(["--window", "1", "--stride", "0.5", "--smooth-frames", "3"])
        .arg(&video)
        .output()
        .unwrap();
    ok(&out);
    let frames = std::fs::read_to_string(pred.join("cam0_pen0.mp4.frames.csv")).unwrap();
    let mut lines = frames.lines();
    assert_eq!(
        lines.next(),
        Some("frame,time_s,prob_ear,prob_tail"),
        "{frames}"
    );
    let rows: Vec<Vec<f64>> = lines
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    let windows = std::fs::read_to_string(pred.join("cam0_pen0.mp4.windows.csv")).unwrap();
    let n_windows = windows.lines().count() - 1;
    // Windows of 4 frames every 2 frames: frames 0 .. 2 * (n - 1) + 3.
    assert_eq!(rows.len(), 2 * (n_windows - 1) + 4, "{n_windows} windows");
    for (g, r) in rows.iter().enumerate() {
        assert_eq!(r[0] as usize, g);
        assert!((r[2] + r[3] - 1.0).abs() < 1e-4, "{r:?}");
    }
    assert!(
        (rows[1][1] - rows[0][1] - 0.25).abs() < 1e-3,
        "frame times at 4 fps"
    );
    let _ = std::fs::remove_dir_all(&pred);

    // The FERAL head predicts one frame per query: a query count other than the chunk length is
    // bad input naming both keys.
    let bad = train(&dir, &tmp("bad"), &["model.num_queries=8"], &[]);
    let msg = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains("model.num_queries") && msg.contains("data.chunk_length"),
        "{msg}"
    );
    let _ = std::fs::remove_dir_all(&run);
    let _ = std::fs::remove_dir_all(&dir);
}
