//! The data pipeline through the real binary on a tiny `ethos synth` dataset: `ethos cache`
//! (build, resume, corrupt-entry rebuild, bad videos), and `ethos sample --config` in the three
//! dataset modes giving the same clip (source == cache exactly; clip_dir within codec noise).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ethos(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_ethos"))
        .args(args)
        .output()
        .expect("running ethos");
    if !out.status.success() {
        eprintln!("ethos {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    out
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

/// A tiny dataset: 2 cameras, 8 events, 160x96, plus its extracted clips.
fn dataset(dir: &Path) -> PathBuf {
    let d = dir.to_str().unwrap();
    let out = ethos(&[
        "synth",
        "--out",
        d,
        "--cameras",
        "2",
        "--videos-per-camera",
        "1",
        "--events",
        "8",
        "--resolution",
        "160x96",
        "--minutes",
        "0.3",
    ]);
    assert!(out.status.success());
    let (events, videos, clips) = (
        dir.join("events.csv"),
        dir.join("videos"),
        dir.join("clips"),
    );
    let out = ethos(&[
        "extract",
        "--events",
        events.to_str().unwrap(),
        "--videos",
        videos.to_str().unwrap(),
        "--out",
        clips.to_str().unwrap(),
        "--jobs",
        "2",
    ]);
    assert!(out.status.success());
    dir.join("config.yaml")
}

/// The uint8 `frames` tensor of an `ethos sample` safetensors output.
fn frames(path: &Path) -> (Vec<usize>, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor("frames").unwrap();
    (t.shape().to_vec(), t.data().to_vec())
}

fn first_event(dir: &Path, split: &str) -> String {
    let text = std::fs::read_to_string(dir.join(format!("splits/{split}.csv"))).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "event_idx").unwrap();
    text.lines()
        .nth(1)
        .unwrap()
        .split(',')
        .nth(col)
        .unwrap()
        .to_string()
}

#[test]
fn three_dataset_modes_agree() {
    let tmp = tempfile::tempdir().unwrap();
    let config = dataset(tmp.path());
    let cfg = config.to_str().unwrap();
    let event = first_event(tmp.path(), "train");
    let sample = |mode: &str, name: &str| {
        let out = tmp.path().join(name);
        let mode_set = format!("data.mode={mode}");
        let r = ethos(&[
            "sample",
            "--config",
            cfg,
            "--split",
            "train",
            "--event",
            &event,
            "--set",
            &mode_set,
            "--set",
            "data.clip_dir=clips",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(r.status.success());
        assert_eq!(json(&r)["temporal_offset_frames"], 0);
        frames(&tmp.path().join(format!("{name}.safetensors")))
    };
    let (shape, source) = sample("source", "source");
    let (_, cache) = sample("cache", "cache");
    let (clip_shape, clip_dir) = sample("clip_dir", "clipdir");
    assert_eq!(shape, vec![16, 96, 96, 3]);
    assert_eq!(clip_shape, shape);
    assert_eq!(source, cache, "cache mode must equal source mode exactly");
    let mad = source
        .iter()
        .zip(&clip_dir)
        .map(|(&a, &b)| (a as f64 - b as f64).abs())
        .sum::<f64>()
        / source.len() as f64;
    assert!(
        mad < 4.0,
        "clip_dir differs from source by {mad} on average"
    );

    // The augmented sample is reproducible and differs between epochs.
    let aug = |epoch: &str, name: &str| {
        let out = tmp.path().join(name);
        let r = ethos(&[
            "sample",
            "--config",
            cfg,
            "--split",
            "train",
            "--event",
            &event,
            "--augment",
            "--epoch",
            epoch,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(r.status.success());
        frames(&tmp.path().join(format!("{name}.safetensors"))).1
    };
    assert_eq!(aug("1", "a1"), aug("1", "a1b"));
    assert_ne!(aug("1", "a1"), aug("2", "a2"));
}

#[test]
fn cache_is_resumable_rebuilds_corrupt_entries_and_lists_bad_videos() {
    let tmp = tempfile::tempdir().unwrap();
    let config = dataset(tmp.path());
    let cfg = config.to_str().unwrap();
    let r = ethos(&["cache", "--config", cfg, "--jobs", "2"]);
    assert!(r.status.success());
    let first = json(&r);
    assert_eq!(first["built"], 8);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(
        stderr.contains("8/8 clips"),
        "progress lines on a non-terminal: {stderr}"
    );

    // Resume: nothing to do. Then truncate one entry and flip a byte in another.
    let r = ethos(&["cache", "--config", cfg]);
    assert_eq!(json(&r)["kept"], 8);
    let mut entries: Vec<PathBuf> = std::fs::read_dir(tmp.path().join("cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    let good0 = std::fs::read(&entries[0]).unwrap();
    std::fs::write(&entries[0], &good0[..good0.len() / 3]).unwrap();
    let mut bad1 = std::fs::read(&entries[1]).unwrap();
    let n = bad1.len();
    bad1[n - 7] ^= 1;
    std::fs::write(&entries[1], &bad1).unwrap();
    let r = ethos(&["cache", "--config", cfg]);
    assert!(r.status.success());
    let j = json(&r);
    assert_eq!(
        (j["kept"].as_u64(), j["rebuilt"].as_u64()),
        (Some(6), Some(2))
    );
    assert_eq!(std::fs::read(&entries[0]).unwrap(), good0);

    // A source that is not a video: exit 2 with the file named.
    let video = std::fs::read_dir(tmp.path().join("videos"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(&video, b"this is not a video").unwrap();
    let r = ethos(&[
        "cache",
        "--config",
        cfg,
        "--set",
        "data.cache_short_side=64",
    ]);
    assert_eq!(
        r.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(
        stderr.contains(video.file_name().unwrap().to_str().unwrap()),
        "{stderr}"
    );
}
