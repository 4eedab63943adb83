//! Seeing and trusting results, through the real binary on a tiny synthetic dataset: a training
//! run with stderr redirected to a file (no escape bytes; TensorBoard event files; per-sample
//! losses per epoch), `ethos calibrate` (clips and `--timeline`), `eval` with both rules,
//! `predict` (ethogram, tuned bouts), and both `ethos review` pages driven in headless Debian
//! `chromium` over the DevTools protocol: no console errors, playable videos, sorting and a
//! confusion-matrix filter change the list, a marked clip downloads as a corrections CSV that
//! `ethos relabel` applies, and clicking a bout seeks the video. Screenshots of both pages are
//! left in `$CARGO_TARGET_TMPDIR/review-screenshots/`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::common;
use common::cdp::Browser;
use common::{ethos, ok, tmp};

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn json_out(cmd: &mut std::process::Command) -> serde_json::Value {
    let out = cmd.output().unwrap();
    ok(&out);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// One TensorBoard record stream: (tag, step, value) of every scalar, tags of images; checks
/// every record's length and data CRCs.
fn read_tensorboard(dir: &Path) -> (Vec<(String, i64, f32)>, Vec<String>) {
    let mut scalars = Vec::new();
    let mut images = Vec::new();
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains("tfevents"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let bytes = std::fs::read(&files[0]).unwrap();
    let mut at = 0;
    let mut first = true;
    while at < bytes.len() {
        let len = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
        let lcrc = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap());
        assert_eq!(
            lcrc,
            ethos_eval::tensorboard::masked_crc(&bytes[at..at + 8])
        );
        let data = &bytes[at + 12..at + 12 + len];
        let dcrc = u32::from_le_bytes(bytes[at + 12 + len..at + 16 + len].try_into().unwrap());
        assert_eq!(dcrc, ethos_eval::tensorboard::masked_crc(data));
        at += 16 + len;
        let ev = proto(data);
        if first {
            assert_eq!(field_bytes(&ev, 3).unwrap(), b"brain.Event:2");
            first = false;
            continue;
        }
        let step = ev.iter().find(|f| f.0 == 2).map_or(0, |f| f.1 as i64);
        let summary = proto(field_bytes(&ev, 5).expect("summary"));
        for v in summary.iter().filter(|f| f.0 == 1) {
            let val = proto(&v.2);
            let tag = String::from_utf8(field_bytes(&val, 1).unwrap().to_vec()).unwrap();
            if let Some(f) = val.iter().find(|f| f.0 == 2) {
                scalars.push((tag, step, f32::from_bits(f.1 as u32)));
            } else if field_bytes(&val, 4).is_some() {
                images.push(tag);
            }
        }
    }
    (scalars, images)
}

/// Protobuf fields: (number, varint/fixed value, bytes of length-delimited fields).
fn proto(mut b: &[u8]) -> Vec<(u32, u64, Vec<u8>)> {
    let varint = |b: &mut &[u8]| {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let byte = b[0];
            *b = &b[1..];
            v |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return v;
            }
            shift += 7;
        }
    };
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = varint(&mut b);
        let (num, wire) = ((key >> 3) as u32, key & 7);
        match wire {
            0 => out.push((num, varint(&mut b), Vec::new())),
            1 => {
                out.push((
                    num,
                    u64::from_le_bytes(b[..8].try_into().unwrap()),
                    Vec::new(),
                ));
                b = &b[8..];
            }
            5 => {
                out.push((
                    num,
                    u64::from(u32::from_le_bytes(b[..4].try_into().unwrap())),
                    Vec::new(),
                ));
                b = &b[4..];
            }
            2 => {
                let n = varint(&mut b) as usize;
                out.push((num, 0, b[..n].to_vec()));
                b = &b[n..];
            }
            w => panic!("wire type {w}"),
        }
    }
    out
}

fn field_bytes(fields: &[(u32, u64, Vec<u8>)], num: u32) -> Option<&[u8]> {
    fields.iter().find(|f| f.0 == num).map(|f| f.2.as_slice())
}

fn screenshots() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("review-screenshots");
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn calibrate_review_and_timelines_in_a_real_browser() {
    let dir = tmp("review-cli", "all");
    let data = dir.join("data");
    ok(&ethos()
        .args(["synth", "--out"])
        .arg(&data)
        .args([
            "--events",
            "40",
            "--background-events",
            "8",
            "--long-video",
            "40",
            "--long-video-size",
            "64",
            "--resolution",
            "160x96",
            "--fps",
            "10",
            "--minutes",
            "0.5",
            "--imbalance",
            "2",
            "--seed",
            "3",
        ])
        .output()
        .unwrap());

    // Train with stderr going to a file, colours left to auto-detection (no NO_COLOR).
    let run = dir.join("run");
    let log = dir.join("train.log");
    let mut train = std::process::Command::new(env!("CARGO_BIN_EXE_ethos"));
    train.env_remove("NO_COLOR").env("RUST_LOG", "info");
    train
        .args(["train", "--config"])
        .arg(data.join("config.yaml"));
    for s in [
        "data.input_size=32",
        "data.cache_short_side=40",
        "data.num_frames=4",
        "data.fps=4",
        "data.batch_size=4",
        "model.arch=r3d_18",
        "model.preset=r3d_demo",
        "train.epochs=3",
        "train.device=cpu",
        "train.tensorboard=true",
        "train.log_every_steps=2",
        "train.metric_key=f1_tail",
        "loss.use_class_weights=true",
        "loss.max_class_weight=3",
    ] {
        train.args(["--set", s]);
    }
    train
        .arg("--set")
        .arg(format!("train.run_dir={}", run.display()));
    let status = train
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .status()
        .unwrap();
    let log_bytes = std::fs::read(&log).unwrap();
    let log_text = String::from_utf8_lossy(&log_bytes);
    assert!(status.success(), "{log_text}");
    assert!(
        !log_bytes.contains(&0x1b),
        "escape bytes in the redirected log:\n{log_text}"
    );
    // Plain progress lines from the trainer instead of bars.
    assert!(log_text.contains("epoch 1/3 "), "{log_text}");
    assert!(log_text.contains("epoch 3/3: train_loss"), "{log_text}");

    // TensorBoard: every epoch's scalars with the history's values, steps at the log interval,
    // the confusion matrix image per epoch.
    let (scalars, images) = read_tensorboard(&run.join("tensorboard"));
    let history = read(&run.join("history.csv"));
    let header: Vec<&str> = history.lines().next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    for (i, line) in history.lines().skip(1).enumerate() {
        let cells: Vec<&str> = line.split(',').collect();
        for (tag, column) in [
            ("epoch/train_loss", "train_loss"),
            ("epoch/val_loss", "val_loss"),
            ("val/f1_tail", "f1_tail"),
            ("epoch/lr", "lr"),
        ] {
            let want: f64 = cells[col(column)].parse().unwrap();
            let got = scalars
                .iter()
                .find(|(t, s, _)| t == tag && *s == i as i64 + 1)
                .unwrap_or_else(|| panic!("{tag} at epoch {}", i + 1))
                .2;
            assert!(
                (f64::from(got) - want).abs() <= 1e-6 * want.abs().max(1.0),
                "{tag}: {got} vs {want}"
            );
        }
    }
    let steps: Vec<i64> = scalars
        .iter()
        .filter(|s| s.0 == "train/batch_loss")
        .map(|s| s.1)
        .collect();
    assert!(
        !steps.is_empty() && steps.iter().all(|s| s % 2 == 0),
        "{steps:?}"
    );
    assert_eq!(images.iter().filter(|t| *t == "val/confusion").count(), 3);

    // Per-sample losses: every train and val sample every epoch.
    let per = read(&run.join("per_sample_epochs.csv"));
    assert!(per.starts_with("epoch,split,event_idx,true,predicted,loss,margin\n"));
    let val_rows = read(&data.join("splits/val.csv")).lines().count() - 1;
    for epoch in 1..=3 {
        let n = per
            .lines()
            .filter(|l| l.starts_with(&format!("{epoch},val,")))
            .count();
        assert_eq!(n, val_rows, "epoch {epoch}");
        assert!(
            per.lines()
                .any(|l| l.starts_with(&format!("{epoch},train,")))
        );
    }

    // Calibration on val; eval on the OOD split reports both rules.
    let cal = json_out(
        ethos()
            .args(["calibrate", "--run"])
            .arg(&run)
            .args(["--split", "val", "--target", "f1_tail"]),
    );
    let t = cal["temperature"].as_f64().unwrap();
    assert!(
        t > 0.0 && cal["fit"]["target_tuned"].as_f64() >= cal["fit"]["target_argmax"].as_f64(),
        "{cal}"
    );
    assert!(run.join("calibration.json").is_file() && run.join("reliability_val.png").is_file());
    let out = ethos()
        .args(["eval", "--run"])
        .arg(&run)
        .args(["--split", "test_ood"])
        .output()
        .unwrap();
    let err = ok(&out);
    assert!(err.contains("argmax vs tuned rule"), "{err}");
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        m["calibrated"]["tuned"]["f1_tail"].is_number() && m["f1_tail"].is_number(),
        "{m}"
    );
    assert!(run.join("eval_test_ood/reliability.png").is_file());
    let plain: serde_json::Value = json_out(ethos().args(["eval", "--run"]).arg(&run).args([
        "--split",
        "test_ood",
        "--no-calibration",
    ]));
    assert!(plain.get("calibrated").is_none());

    // Timeline: tune the bout rule on the long video, then predict with it (ethogram).
    let video = data.join("long/closeup.mp4");
    let truth = data.join("long/closeup.events.csv");
    let tl = json_out(
        ethos()
            .args(["calibrate", "--run"])
            .arg(&run)
            .arg("--timeline")
            .arg(&video)
            .arg("--truth")
            .arg(&truth)
            .args(["--background", "none", "--stride", "0.5"]),
    );
    assert!(
        tl["after"]["macro_bout_f1"].as_f64() >= tl["before"]["macro_bout_f1"].as_f64(),
        "{tl}"
    );
    let stored: serde_json::Value =
        serde_json::from_str(&read(&run.join("calibration.json"))).unwrap();
    assert!(stored["timeline"]["thresholds"].is_array(), "{stored}");
    let pred = dir.join("pred");
    ok(&ethos()
        .args(["predict", "--checkpoint"])
        .arg(run.join("best.ckpt"))
        .arg("--out")
        .arg(&pred)
        .args(["--stride", "0.5", "--background", "none"])
        .arg(&video)
        .output()
        .unwrap());
    assert!(pred.join("closeup.mp4.ethogram.png").is_file());

    // Both pages.
    let review = dir.join("review");
    let s = json_out(
        ethos()
            .args(["review", "--run"])
            .arg(&run)
            .args(["--split", "val", "--out"])
            .arg(&review),
    );
    assert_eq!(s["clips"].as_u64(), Some(val_rows as u64));
    let timelines = dir.join("timelines");
    json_out(
        ethos()
            .arg("review")
            .arg("--predictions")
            .arg(&pred)
            .arg("--truth")
            .arg(&truth)
            .arg("--out")
            .arg(&timelines),
    );

    let downloads = dir.join("downloads");
    let mut b = Browser::start(&downloads);
    b.open(&review.join("index.html"));
    let n = b
        .eval("document.querySelectorAll('#list .clip').length")
        .as_u64()
        .unwrap();
    assert_eq!(n, val_rows as u64);
    assert!(
        b.wait_until("[...document.querySelectorAll('#list video')].every(v => v.readyState >= 2)", Duration::from_secs(90)),
        "videos not playable: {}",
        b.eval("JSON.stringify([...document.querySelectorAll('#list video')].map(v => [v.readyState, v.error && v.error.message]))")
    );
    b.screenshot(&screenshots().join("review.png"));
    let order =
        "JSON.stringify([...document.querySelectorAll('#list .clip')].map(c => c.dataset.idx))";
    let worth = b.eval(order);
    b.eval("const s = document.getElementById('sort'); s.value = 'event'; s.dispatchEvent(new Event('change')); true");
    let by_event = b.eval(order);
    assert_ne!(worth, by_event, "sorting did not change the list");
    let ids: Vec<u64> = serde_json::from_str::<Vec<String>>(by_event.as_str().unwrap())
        .unwrap()
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    // A confusion-matrix cell filters the list to its clips.
    let cell = b.eval("{ const c = [...document.querySelectorAll('#confusion td')].find(td => Number(td.textContent) > 0 && Number(td.textContent) < document.querySelectorAll('#list .clip').length); c ? [c.dataset.true, c.dataset.pred, Number(c.textContent)] : null }");
    assert!(cell.is_array(), "no confusion cell smaller than the list");
    b.eval(&format!(
        "document.querySelector('#confusion td[data-true=\"{}\"][data-pred=\"{}\"]').click(); true",
        cell[0].as_str().unwrap(),
        cell[1].as_str().unwrap()
    ));
    assert_eq!(
        b.eval("document.querySelectorAll('#list .clip').length"),
        cell[2]
    );
    // Mark the first listed clip and download the corrections.
    let first: u64 = b
        .eval("document.querySelector('#list .clip').dataset.idx")
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    b.eval("{ const c = document.querySelector('#list .clip'); const s = c.querySelector('select.action'); s.value = 'drop'; s.dispatchEvent(new Event('change')); const n = c.querySelector('input.note'); n.value = 'two calves, \"unclear\"'; n.dispatchEvent(new Event('input')); document.getElementById('download').click(); true }");
    let csv_path = downloads.join("corrections.csv");
    let t0 = std::time::Instant::now();
    while !csv_path.is_file() && t0.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    let corrections = read(&csv_path);
    assert_eq!(
        corrections,
        format!("event_idx,action,note\n{first},drop,\"two calves, \"\"unclear\"\"\"\n")
    );
    let relabelled = dir.join("relabelled.csv");
    ok(&ethos()
        .args(["relabel", "--events"])
        .arg(data.join("splits/val.csv"))
        .arg("--corrections")
        .arg(&csv_path)
        .arg("--out")
        .arg(&relabelled)
        .output()
        .unwrap());
    assert_eq!(read(&relabelled).lines().count(), val_rows);
    assert!(
        b.errors.is_empty(),
        "console errors on the review page: {:?}",
        b.errors
    );

    // The timeline page: playable video, a click on a bout seeks to its start.
    let page = timelines.join("timeline_closeup.mp4.html");
    b.open(&page);
    assert!(b.wait_until(
        "document.getElementById('video').readyState >= 2",
        Duration::from_secs(60)
    ));
    let bouts = b
        .eval("document.querySelectorAll('#track .bout').length")
        .as_u64()
        .unwrap();
    assert!(bouts > 0, "no bouts on the track");
    let start = b.eval("const all = [...document.querySelectorAll('#track .bout')]; const r = all.find(r => Number(r.dataset.start) > 1) || all[0]; r.dispatchEvent(new MouseEvent('click', {bubbles: true})); Number(r.dataset.start)").as_f64().unwrap();
    assert!(b.wait_until(
        &format!("Math.abs(document.getElementById('video').currentTime - {start}) < 0.2"),
        Duration::from_secs(20)
    ));
    // The track shows the calibrated probabilities the bouts were made from, as the ethogram does.
    let t_stored = stored["temperature"].as_f64().unwrap();
    let summary: serde_json::Value =
        serde_json::from_str(&read(&pred.join("summary.json"))).unwrap();
    assert_eq!(
        summary["calibration"]["temperature"].as_f64(),
        Some(t_stored),
        "{summary}"
    );
    assert_eq!(b.eval("D.temperature").as_f64(), Some(t_stored));
    let windows = read(&pred.join("closeup.mp4.windows.csv"));
    let mut rows = csv::Reader::from_reader(windows.as_bytes());
    let header = rows.headers().unwrap().clone();
    let first = rows.records().next().unwrap().unwrap();
    let raw: Vec<f64> = header
        .iter()
        .zip(first.iter())
        .filter(|(h, _)| h.starts_with("prob_"))
        .map(|(_, v)| v.parse().unwrap())
        .collect();
    let want = ethos_eval::calibration::softmax_row(
        &ethos_eval::calibration::logits_from_probs(&raw),
        t_stored,
    );
    let shown: Vec<f64> = serde_json::from_value(b.eval("D.windows[0][1]")).unwrap();
    assert_eq!(shown.len(), want.len());
    for (s, w) in shown.iter().zip(&want) {
        assert!(
            (s - w).abs() < 1e-5,
            "shown {shown:?}, calibrated {want:?}, raw {raw:?}"
        );
    }
    b.screenshot(&screenshots().join("timeline.png"));
    assert!(
        b.errors.is_empty(),
        "console errors on the timeline page: {:?}",
        b.errors
    );
    drop(b);
    let _ = std::fs::remove_dir_all(&dir);
}
