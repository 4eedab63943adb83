//! Dataset modes and the decoded-clip cache on a small real video written with the project's
//! encoder: source and cache modes give identical clips for every jitter offset, clip-dir mode
//! agrees within codec noise, and a corrupt cache entry is rebuilt rather than used.

use ethos_core::Classify;
use std::path::Path;

use ethos_data::cache::EntryStatus;
use ethos_data::config::{DataConfig, DataMode, OnBadVideo};
use ethos_data::dataset::ClipDataset;
use ethos_data::error::DataError;
use ethos_video::{Clip, ClipWriter, Codec, WriterOptions};

const W: usize = 64;
const H: usize = 48;
const FPS: u32 = 15;
const FRAMES: usize = 90; // 6 s

/// Frame `n`: smooth colours that change with `n`, so a wrong frame is easy to tell apart.
fn frame(n: usize) -> Vec<u8> {
    let mut f = vec![0u8; W * H * 3];
    for y in 0..H {
        for x in 0..W {
            let i = (y * W + x) * 3;
            f[i] = (n * 5 % 200 + x / 2) as u8;
            f[i + 1] = (200 - n * 3 % 150 + y / 2) as u8;
            f[i + 2] = ((n / 10) * 20 + 30) as u8;
        }
    }
    f
}

fn write_video(path: &Path, frames: std::ops::Range<usize>) {
    let opts = WriterOptions {
        codec: Codec::H264,
        fps: FPS,
        gop: 30,
        quality: Some(12),
        b_frames: false,
    };
    let mut w = ClipWriter::create(path, W as u32, H as u32, &opts).unwrap();
    for n in frames {
        w.write_frame(&frame(n)).unwrap();
    }
    w.finish().unwrap();
}

/// A dataset folder: one 6 s video, two events (one with an ROI), a train split, a clip dir.
fn setup(dir: &Path) -> DataConfig {
    ethos_video::init();
    std::fs::create_dir_all(dir.join("videos")).unwrap();
    std::fs::create_dir_all(dir.join("splits")).unwrap();
    std::fs::create_dir_all(dir.join("clips")).unwrap();
    write_video(&dir.join("videos/cam1.mp4"), 0..FRAMES);
    std::fs::write(
        dir.join("events.csv"),
        "event_idx,video,start_s,duration_s,behavior,roi_x,roi_y,roi_w,roi_h\n\
         1,cam1.mp4,1.0,2.0,ear,0,0,64,48\n\
         2,cam1.mp4,3.0,1.6,tail,8,4,40,32\n",
    )
    .unwrap();
    std::fs::write(dir.join("splits/train.csv"), "event_idx\n1\n2\n").unwrap();
    // "Extracted" clips: the event window re-encoded, time 0 = event start, full frame.
    write_video(&dir.join("clips/evt_0001_ear.mp4"), 15..45);
    write_video(&dir.join("clips/evt_0002_tail.mp4"), 45..69);
    let yaml = "data:\n  classes: [ear, tail]\n  splits: {train: splits/train.csv}\n  clip_dir: clips\n  \
                fps: 5\n  num_frames: 4\n  jitter_frames: 2\n  cache_short_side: 24\n  input_size: 16\n  num_workers: 2\n";
    std::fs::write(dir.join("config.yaml"), yaml).unwrap();
    ethos_data::config::load_data_sections(&dir.join("config.yaml"))
        .unwrap()
        .0
}

fn mean_abs_diff(a: &Clip, b: &Clip) -> f64 {
    assert_eq!(a.shape(), b.shape());
    a.data
        .iter()
        .zip(&b.data)
        .map(|(&x, &y)| (x as f64 - y as f64).abs())
        .sum::<f64>()
        / a.data.len() as f64
}

#[test]
fn three_modes_agree_and_corrupt_entries_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path());
    let source = ClipDataset::open_with_mode(&cfg, "train", DataMode::Source).unwrap();
    let cache = ClipDataset::open_with_mode(&cfg, "train", DataMode::Cache).unwrap();
    let clips = ClipDataset::open_with_mode(&cfg, "train", DataMode::ClipDir).unwrap();
    assert_eq!(source.len(), 2);
    for i in 0..2 {
        for offset in -2..=2 {
            let s = source.load(i, offset).unwrap();
            let c = cache.load(i, offset).unwrap();
            // Same decoder, same times: bit-identical.
            assert_eq!(s, c, "event {i} offset {offset}");
            let d = clips.load(i, offset).unwrap();
            let diff = mean_abs_diff(&s, &d);
            assert!(
                diff < 3.0,
                "clip_dir differs from source by {diff} (event {i}, offset {offset})"
            );
        }
        // Different offsets are different frames.
        assert!(mean_abs_diff(&source.load(i, -2).unwrap(), &source.load(i, 2).unwrap()) > 3.0);
    }
    // ROI 40x32 scaled to short side 24 -> 30x24; the full frame 64x48 -> 32x24.
    assert_eq!(source.load(0, 0).unwrap().shape(), [4, 24, 32, 3]);
    assert_eq!(source.load(1, 0).unwrap().shape(), [4, 24, 30, 3]);

    // Corrupt event 2's entry: the reader detects it and rebuilds it.
    let key = cache.items()[1].cache_key.clone().unwrap();
    let path = cfg.cache_dir.join(format!("{key}.clip"));
    let good = std::fs::read(&path).unwrap();
    let mut bad = good.clone();
    let mid = bad.len() - 100;
    bad[mid] ^= 0xff;
    std::fs::write(&path, &bad).unwrap();
    let cc =
        ethos_data::cache::ClipCache::new(&cfg.cache_dir, ethos_data::dataset::cache_params(&cfg));
    assert!(matches!(cc.status(&key, true), EntryStatus::Corrupt(_)));
    assert_eq!(cache.load(1, 2).unwrap(), source.load(1, 2).unwrap());
    assert_eq!(cc.status(&key, true), EntryStatus::Valid);
    assert_eq!(std::fs::read(&path).unwrap(), good);
    // A truncated entry is rebuilt by a full-check build (what `ethos cache` runs).
    std::fs::write(&path, &good[..good.len() / 2]).unwrap();
    let report = cache.ensure_cache(2, true, &|_, _| {}).unwrap();
    assert_eq!(
        (report.total, report.reused, report.rebuilt, report.built),
        (2, 1, 1, 0)
    );
    assert_eq!(std::fs::read(&path).unwrap(), good);
}

#[test]
fn cache_keys_follow_decode_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = setup(dir.path());
    let keys = |cfg: &DataConfig| -> Vec<String> {
        let ds = ClipDataset::open_with_mode(cfg, "train", DataMode::Cache).unwrap();
        ds.items()
            .iter()
            .map(|i| i.cache_key.clone().unwrap())
            .collect()
    };
    let base = keys(&cfg);
    cfg.batch_size = 7;
    cfg.seed = 1;
    cfg.input_size = 12;
    assert_eq!(keys(&cfg), base, "loader settings do not change the cache");
    cfg.fps = 6.0;
    let other = keys(&cfg);
    assert_ne!(other, base);
    cfg.fps = 5.0;
    cfg.cache_short_side = 20;
    assert_ne!(keys(&cfg), base);
    assert_eq!(std::fs::read_dir(&cfg.cache_dir).unwrap().count(), 6);
}

#[test]
fn bad_videos_fail_or_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = setup(dir.path());
    let mut events = ethos_data::dataset::load_split_events(&cfg, "train").unwrap();
    std::fs::write(dir.path().join("videos/broken.mp4"), b"not a video at all").unwrap();
    events[1].video = "broken.mp4".into();
    cfg.cache_dir = dir.path().join("cache2");
    let mut ds = ClipDataset::from_events(&cfg, "train", events, DataMode::Cache).unwrap();
    let report = ds.ensure_cache(2, false, &|_, _| {}).unwrap();
    assert_eq!(report.built, 1);
    assert_eq!(report.bad.len(), 1);
    assert_eq!(report.bad[0].event_idx, 2);
    let err = ds.apply_bad_videos(&report, OnBadVideo::Fail).unwrap_err();
    assert!(err.is_bad_input());
    assert!(
        matches!(&err, DataError::BadVideos(v) if v.len() == 1),
        "{err}"
    );
    assert!(err.to_string().contains("broken.mp4"), "{err}");
    ds.apply_bad_videos(&report, OnBadVideo::Skip).unwrap();
    assert_eq!(ds.len(), 1);
    assert_eq!(ds.items()[0].event.event_idx, 1);
}
