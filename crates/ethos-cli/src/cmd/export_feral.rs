//! `ethos export-feral`: FERAL-format clips (size x size, H.264) and the FERAL JSON.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, bail};
use ethos_data::manifest::Event;
use ethos_video::{ClipWriter, FrameReader, ReaderOptions, Resize, WriterOptions};

/// Arguments of `ethos export-feral`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Run config (YAML) whose `data` section names events, splits and videos.
    #[arg(long)]
    pub config: PathBuf,
    /// Output directory (gets `videos/` and `feral.json`).
    #[arg(long)]
    pub out: PathBuf,
    /// Side of the square output clips in pixels (even).
    #[arg(long, default_value_t = 256)]
    pub size: u32,
    /// Clips encoded in parallel.
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
}

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
    };
    let mut r =
        FrameReader::open(&src, &opts).with_context(|| format!("opening {}", src.display()))?;
    let (w, h) = (r.width() as usize, r.height() as usize);
    let s = size as usize;
    if w < s || h < s {
        bail!("{}: scaled frame {w}x{h} smaller than {s}", src.display());
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
        bail!(
            "{}: no frames in [{}, {})",
            src.display(),
            ev.start_s,
            ev.start_s + ev.duration_s
        );
    }
    wr.finish()?;
    Ok(())
}

/// Runs the export.
pub fn run(args: Args) -> Result<()> {
    if args.size == 0 || !args.size.is_multiple_of(2) {
        bail!(crate::exit::BadInput(format!(
            "--size {} must be even and > 0",
            args.size
        )));
    }
    let cfg = crate::config::RunConfig::load(&args.config, &[])?;
    let data = &cfg.data;
    let mut jobs: Vec<(String, Event)> = Vec::new();
    for split in data.splits.keys() {
        let evs = ethos_data::dataset::load_split_events(data, split)
            .with_context(|| format!("split {split} of {}", args.config.display()))?;
        jobs.extend(evs.into_iter().map(|e| (split.clone(), e)));
    }
    let vdir = args.out.join("videos");
    std::fs::create_dir_all(&vdir).with_context(|| format!("creating {}", vdir.display()))?;
    let next = AtomicUsize::new(0);
    let results: Mutex<BTreeMap<usize, Result<usize, String>>> = Mutex::new(BTreeMap::new());
    let total = jobs.len();
    std::thread::scope(|sc| {
        for _ in 0..args.jobs.max(1) {
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
                    let res = match existing {
                        Some(n) => {
                            eprintln!("[{}/{total}] {name}: skipped, valid ({n} frames)", i + 1);
                            Ok(n)
                        }
                        None => {
                            let res = export_clip(ev, &data.videos_root, &path, args.size)
                                .and_then(|_| count_frames(&path))
                                .map_err(|e| format!("{e:#}"));
                            match &res {
                                Ok(n) => eprintln!("[{}/{total}] {name}: {n} frames", i + 1),
                                Err(e) => eprintln!("[{}/{total}] {name}: FAILED {e}", i + 1),
                            }
                            res
                        }
                    };
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
    let jpath = args.out.join("feral.json");
    ethos_data::manifest::write_atomic(&jpath, serde_json::to_string(&json)?.as_bytes())
        .with_context(|| format!("writing {}", jpath.display()))?;
    if !failed.is_empty() {
        for f in &failed {
            eprintln!("failed: {f}");
        }
        bail!("{} of {total} clips failed", failed.len());
    }
    eprintln!("wrote {total} clips and {}", jpath.display());
    Ok(())
}
