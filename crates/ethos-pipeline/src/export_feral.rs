//! FERAL export: every event of every split as a square H.264 clip (short side scaled, centre
//! crop) and FERAL's JSON (`splits`, per-frame `labels`, `class_names`, `is_multilabel`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use ethos_core::{Error, ResultExt};
use ethos_data::manifest::Event;
use ethos_video::{ClipWriter, FrameReader, ReaderOptions, Resize, WriterOptions};

use crate::Result;
use crate::config::RunConfig;
use crate::progress::Progress;

/// FERAL's split name: `test*` (e.g. `test_ood`) -> `test`; `train`, `val` and any other split keep
/// their own name.
fn feral_split(name: &str) -> String {
    if name.starts_with("test") {
        "test".into()
    } else {
        name.to_string()
    }
}

/// Decodes `path` fully and returns its frame count.
fn count_frames(path: &Path) -> Result<usize> {
    let mut r = FrameReader::open(path, &ReaderOptions::default())
        .with_context(|| format!("opening {}", path.display()))?;
    let mut n = 0;
    while r
        .next_frame()
        .with_context(|| format!("decoding {}", path.display()))?
        .is_some()
    {
        n += 1;
    }
    Ok(n)
}

/// Writes one event's clip: decode window, short side to `size`, centre crop, encode.
fn export_clip(ev: &Event, root: &Path, out: &Path, size: u32) -> Result<()> {
    let src = root.join(&ev.video);
    let opts = ReaderOptions {
        fps: None,
        start_s: ev.start_s,
        end_s: Some(ev.start_s + ev.duration_s),
        roi: ev.roi,
        resize: Resize::ShortSide(size),
        threads: 1,
        decoder: Default::default(),
    };
    let mut r =
        FrameReader::open(&src, &opts).with_context(|| format!("opening {}", src.display()))?;
    let (w, h) = (r.width() as usize, r.height() as usize);
    let s = size as usize;
    if w < s || h < s {
        return Err(Error::bad_input(format!(
            "{}: scaled frame {w}x{h} smaller than {s}",
            src.display()
        )));
    }
    let (x0, y0) = ((w - s) / 2, (h - s) / 2);
    let fps = r.fps().round().max(1.0) as u32;
    let mut wr = ClipWriter::create(
        out,
        size,
        size,
        &WriterOptions {
            fps,
            ..Default::default()
        },
    )?;
    let mut crop = vec![0u8; s * s * 3];
    let mut n = 0;
    while let Some((_, rgb)) = r.next_frame()? {
        for y in 0..s {
            let src_off = ((y0 + y) * w + x0) * 3;
            crop[y * s * 3..(y + 1) * s * 3].copy_from_slice(&rgb[src_off..src_off + s * 3]);
        }
        wr.write_frame(&crop)?;
        n += 1;
    }
    if n == 0 {
        return Err(Error::bad_input(format!(
            "{}: no frames in [{}, {})",
            src.display(),
            ev.start_s,
            ev.start_s + ev.duration_s
        )));
    }
    wr.finish()?;
    Ok(())
}

/// What `export_feral` wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FeralSummary {
    /// Clips exported (or found complete).
    pub clips: usize,
    /// The FERAL JSON.
    pub json: PathBuf,
}

/// Exports every event of every split as a `size` x `size` clip (short side scaled to `size`,
/// centre crop) into `out/videos`, and `out/feral.json`; complete clips are kept. Clips that fail
/// are listed in the error after the others are done.
pub fn export_feral(
    cfg: &RunConfig,
    out: &Path,
    size: u32,
    jobs_n: usize,
    progress: &dyn Progress,
) -> Result<FeralSummary> {
    if size == 0 || !size.is_multiple_of(2) || size > 4096 {
        return Err(Error::bad_input(format!(
            "--size {size}: must be even, > 0 and at most 4096"
        )));
    }
    if !(1..=crate::extract::MAX_JOBS).contains(&jobs_n) {
        return Err(Error::bad_input(format!(
            "--jobs {jobs_n}: must be in 1..={}",
            crate::extract::MAX_JOBS
        )));
    }
    let data = &cfg.data;
    let mut jobs: Vec<(String, Event)> = Vec::new();
    for split in data.splits.keys() {
        let evs = ethos_data::dataset::load_split_events(data, split)
            .with_context(|| format!("split {split} of {}", cfg.path.display()))?;
        jobs.extend(evs.into_iter().map(|e| (split.clone(), e)));
    }
    let vdir = out.join("videos");
    crate::output_dir::prepare(&vdir, "--out")?;
    let done = AtomicUsize::new(0);
    let next = AtomicUsize::new(0);
    let results: Mutex<BTreeMap<usize, std::result::Result<usize, String>>> =
        Mutex::new(BTreeMap::new());
    let total = jobs.len();
    std::thread::scope(|sc| {
        for _ in 0..jobs_n {
            sc.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((_, ev)) = jobs.get(i) else { break };
                    let name = ethos_data::manifest::clip_file_name(ev.event_idx, &ev.behavior);
                    let path = vdir.join(&name);
                    let existing = if path.exists() {
                        count_frames(&path).ok().filter(|&n| n > 0)
                    } else {
                        None
                    };
                    let (res, note) = match existing {
                        Some(n) => (Ok(n), format!("{name}: skipped, valid ({n} frames)")),
                        None => {
                            let res = export_clip(ev, &data.videos_root, &path, size)
                                .and_then(|_| count_frames(&path))
                                .map_err(|e| crate::extract::chain(&e));
                            let note = match &res {
                                Ok(n) => format!("{name}: {n} frames"),
                                Err(e) => format!("{name}: FAILED {e}"),
                            };
                            (res, note)
                        }
                    };
                    let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                    progress.step(n, total, Some(&note));
                    results
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(i, res);
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut splits: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut labels: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut failed = Vec::new();
    for (i, (split, ev)) in jobs.iter().enumerate() {
        let name = ethos_data::manifest::clip_file_name(ev.event_idx, &ev.behavior);
        match results.get(&i) {
            Some(Ok(n)) => {
                splits
                    .entry(feral_split(split))
                    .or_default()
                    .push(name.clone());
                labels.insert(name, vec![ev.class_index; *n]);
            }
            Some(Err(e)) => failed.push(format!("{name}: {e}")),
            None => failed.push(format!("{name}: not processed")),
        }
    }
    // FERAL reads `class_names` as a map from the class index (a string key) to the name.
    let class_names: serde_json::Map<String, serde_json::Value> = data
        .classes
        .iter()
        .enumerate()
        .map(|(i, c)| (i.to_string(), serde_json::Value::from(c.as_str())))
        .collect();
    let json = serde_json::json!({
        "class_names": class_names,
        "is_multilabel": false,
        "splits": splits,
        "labels": labels,
    });
    let jpath = out.join("feral.json");
    crate::write_json(&jpath, &json)?;
    if !failed.is_empty() {
        return Err(Error::bad_input(format!(
            "{} of {total} clips failed:\n  {}",
            failed.len(),
            failed.join("\n  ")
        )));
    }
    Ok(FeralSummary {
        clips: total,
        json: jpath,
    })
}
