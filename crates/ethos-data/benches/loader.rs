//! `cargo bench -p ethos-data --bench loader`: the data pipeline's cost, in release mode.
//!
//! (a) cache build: CPU seconds (`getrusage` user + system of this process, one build thread) for
//!     decoding one event of a 6 s 3840x2160 15 fps H.264 clip into a cache entry (16 frames at
//!     12 fps + 4 margin frames each side, short side 256), and the process's peak RSS after it;
//! (b) training throughput from that cache: samples per second through the `Loader` with the full
//!     train augmentation (temporal jitter, RandomResizedCrop to 224, flip, TrivialAugmentWide,
//!     normalisation to `(B, C, T, H, W)` float32), with 1 and 2 workers, as samples per second
//!     (wall) and per CPU-second (`getrusage` of the whole process: workers, the consuming thread,
//!     page faults of the batch buffers), so the number means the same on a busy machine;
//! (c) where a sample's time goes, on one thread (thread CPU clock): cache read (in place, as the
//!     loader reads it; the first touch of the mapped pages is part of crop + resize), crop + resize,
//!     and the whole fused transform (crop + resize + flip + TrivialAugmentWide + normalisation).
//!
//! It also writes the cached uint8 clip (`clip_u8.bin`, `(24, 256, 455, 3)`, and `clip_u8.json`)
//! so `bench/augment_torchvision.py WORKDIR` runs the same augmentation with torchvision on the
//! same input. Source: `ETHOS_BENCH_SOURCE` (default: the clip `ethos bench decode` writes to the
//! temp dir); work dir `ETHOS_BENCH_WORK`; `ETHOS_BENCH_SAMPLES`, `ETHOS_BENCH_REPS`, `ETHOS_BENCH_BATCH`;
//! `ETHOS_BENCH_SKIP_BUILD=1` leaves out (a).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use ethos_data::config::{AugmentationConfig, DataConfig, DataMode};
use ethos_data::dataset::ClipDataset;
use ethos_data::error::DataError;
use ethos_data::loader::{ClipSource, Loader, LoaderOptions};
use ethos_data::manifest::Event;
use ethos_data::sampler::ShuffleSampler;
use ethos_data::transforms::{ClipTransform, Layout, TransformScratch, geometry};
use ethos_video::Clip;

struct Args {
    work: PathBuf,
    source: PathBuf,
    samples: usize,
    reps: usize,
    batch_size: usize,
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rusage() -> (f64, f64) {
    let ru = raw_rusage();
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    (
        secs(ru.ru_utime) + secs(ru.ru_stime),
        ru.ru_maxrss as f64 / 1024.0,
    )
}

fn raw_rusage() -> libc::rusage {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    ru
}

/// CPU seconds of the calling thread.
fn thread_cpu() -> f64 {
    // SAFETY: clock_gettime writes into the zeroed struct we pass.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Presents `len` samples that cycle over the events of a dataset (same cached data, more positions).
struct Cycled {
    inner: ClipDataset,
    len: usize,
}

impl ClipSource for Cycled {
    fn len(&self) -> usize {
        self.len
    }
    fn label(&self, index: usize) -> usize {
        self.inner.label(index % self.inner.len())
    }
    fn event_idx(&self, index: usize) -> u32 {
        self.inner.event_idx(index % self.inner.len())
    }
    fn max_offset(&self) -> usize {
        self.inner.margin()
    }
    fn load(&self, index: usize, offset: i32) -> std::result::Result<Clip, DataError> {
        self.inner.load(index % self.inner.len(), offset)
    }
}

fn main() -> Result<()> {
    let tmp = std::env::temp_dir();
    let args = Args {
        work: env_or("ETHOS_BENCH_WORK", tmp.join("ethos-bench-loader")),
        source: env_or(
            "ETHOS_BENCH_SOURCE",
            tmp.join("ethos-bench-decode-3840x2160-15fps-gop30.mp4"),
        ),
        samples: env_or("ETHOS_BENCH_SAMPLES", 192),
        reps: env_or("ETHOS_BENCH_REPS", 3),
        batch_size: env_or("ETHOS_BENCH_BATCH", 8),
    };
    ethos_video::init();
    let work = args.work.clone();
    std::fs::create_dir_all(work.join("videos"))?;
    let video = work.join("videos/src4k.mp4");
    let ok = |p: &std::path::Path| {
        ethos_video::probe(p).is_ok_and(|i| i.width == 3840 && i.frame_count == 90)
    };
    if !ok(&args.source) {
        return Err(format!(
            "{} is not the 6 s 3840x2160 15 fps H.264 benchmark source: run `ethos bench decode` once (it writes it) \
             or set ETHOS_BENCH_SOURCE",
            args.source.display()
        )
        .into());
    }
    if !ok(&video) {
        std::fs::copy(&args.source, &video)?;
    }
    let cfg = DataConfig {
        classes: vec!["ear".into(), "tail".into()],
        videos_root: work.join("videos"),
        cache_dir: work.join("cache"),
        mode: DataMode::Cache,
        ..DataConfig::default()
    };
    let event = |i: u32, start_s: f64| Event {
        event_idx: i,
        video: "src4k.mp4".into(),
        start_s,
        duration_s: 2.5,
        behavior: if i.is_multiple_of(2) {
            "ear".into()
        } else {
            "tail".into()
        },
        class_index: (i % 2) as usize,
        group: None,
        camera: None,
        split: None,
        roi: None,
        line: i as u64 + 2,
    };

    // (a) cache build of one event, repeated on a fresh cache folder each time.
    let mut cpu = Vec::new();
    let mut wall = Vec::new();
    let build_reps = if std::env::var_os("ETHOS_BENCH_SKIP_BUILD").is_some() {
        0
    } else {
        args.reps.max(1)
    };
    for rep in 0..build_reps {
        let mut c = cfg.clone();
        c.cache_dir = work.join(format!("cache-build-{rep}"));
        let _ = std::fs::remove_dir_all(&c.cache_dir);
        let ds = ClipDataset::from_events(&c, "bench", vec![event(0, 1.75)], DataMode::Cache)?;
        let (cpu0, _) = rusage();
        let t0 = Instant::now();
        let report = ds.ensure_cache(1, false, &|_, _| {})?;
        wall.push(t0.elapsed().as_secs_f64());
        cpu.push(rusage().0 - cpu0);
        if report.built != 1 {
            return Err(format!("cache build failed: {:?}", report.bad).into());
        }
        let _ = std::fs::remove_dir_all(&c.cache_dir);
    }
    let (_, peak_rss_mb) = rusage();
    if !cpu.is_empty() {
        eprintln!(
            "(a) cache build, one 6 s 4K H.264 event -> 24 frames at short side 256: {:.3} CPU-s (median of {}), {:.3} s wall, process peak RSS {:.0} MB",
            median(cpu.clone()),
            cpu.len(),
            median(wall.clone()),
            peak_rss_mb
        );
    }

    // (b) loader throughput from a cache of four events.
    let events: Vec<Event> = (0..4).map(|i| event(i, 0.5 + 0.75 * i as f64)).collect();
    let ds = ClipDataset::from_events(&cfg, "bench", events, DataMode::Cache)?;
    ds.ensure_cache(2, false, &|_, _| {})?;
    let stored = ds.load(0, 0)?;
    let key = ds.items()[0].cache_key.clone().unwrap_or_default();
    let cache =
        ethos_data::cache::ClipCache::new(&cfg.cache_dir, ethos_data::dataset::cache_params(&cfg));
    let full = cache.read_frames(&key, 0, cfg.num_frames + 2 * cfg.jitter_frames)?;
    // Entry size and read speed (16 of the 24 frames, page-cached): a copy (what `ethos sample`
    // and eval tools use), and in place through a map (what the loader uses; each byte touched
    // once by a checksum so the pages are really read).
    let entry_bytes = std::fs::metadata(cache.entry_path(&key))?.len();
    let reads = 100;
    let t0 = Instant::now();
    for _ in 0..reads {
        std::hint::black_box(cache.read_frames(&key, cfg.jitter_frames, cfg.num_frames)?);
    }
    let read_ms = t0.elapsed().as_secs_f64() * 1e3 / reads as f64;
    let t0 = Instant::now();
    for _ in 0..reads {
        let mapped = cache.read_mapped(&key, cfg.jitter_frames, cfg.num_frames)?;
        std::hint::black_box(crc32fast::hash(mapped.view().data));
    }
    let mapped_ms = t0.elapsed().as_secs_f64() * 1e3 / reads as f64;
    let read_gbps = (stored.data.len() as f64 / 1e9) / (read_ms / 1e3);
    eprintln!(
        "cache entry: {:.2} MB for {} frames; reading 16 frames: {read_ms:.2} ms as a copy ({read_gbps:.2} GB/s), \
         {mapped_ms:.2} ms mapped in place (incl. one pass over the bytes)",
        entry_bytes as f64 / 1e6,
        full.frames
    );

    let dump = work.join("clip_u8.bin");
    std::fs::write(&dump, &full.data)?;
    let shape = serde_json::json!({"shape": full.shape(), "num_frames": cfg.num_frames, "margin": cfg.jitter_frames});
    std::fs::write(work.join("clip_u8.json"), shape.to_string())?;
    // (c) stage costs on this thread, over the same positions the loader sees in epoch 1.
    let stages = {
        let transform = ClipTransform::train(
            &AugmentationConfig::default(),
            cfg.input_size as usize,
            cfg.mean,
            cfg.std,
        );
        let size = cfg.input_size as usize;
        let mut scratch = TransformScratch::default();
        let mut resizer = ethos_data::transforms::Resizer::new();
        let mut resized = vec![0u8; cfg.num_frames * size * size * 3];
        let mut out = vec![0f32; 3 * cfg.num_frames * size * size];
        let (mut read_s, mut resize_s, mut fused_s) = (Vec::new(), Vec::new(), Vec::new());
        for rep in 0..args.reps.max(1) + 1 {
            let (mut read, mut resize, mut fused) = (0.0, 0.0, 0.0);
            for pos in 0..args.samples {
                let mut rng = ethos_data::rng::sample_rng(1, 1, pos as u64);
                let c0 = thread_cpu();
                let loaded = ds.load_frames(pos % ds.len(), 0)?;
                let clip = loaded.view();
                let c1 = thread_cpu();
                let params = transform.sample_params(&mut rng, clip.height, clip.width);
                if let Some(crop) = params.crop {
                    geometry::resized_crop_into(&mut resizer, clip, crop, size, size, &mut resized);
                }
                let c2 = thread_cpu();
                transform.apply_normalized(&mut scratch, clip, &params, Layout::Bcthw, &mut out);
                let c3 = thread_cpu();
                std::hint::black_box(&out);
                (read, resize, fused) = (read + c1 - c0, resize + c2 - c1, fused + c3 - c2);
            }
            if rep > 0 {
                // rep 0 warms the caches and scratch buffers.
                let per = |s: f64| 1e3 * s / args.samples as f64;
                read_s.push(per(read));
                resize_s.push(per(resize));
                fused_s.push(per(fused));
            }
        }
        let (read, resize, fused) = (median(read_s), median(resize_s), median(fused_s));
        if std::env::var_os("ETHOS_BENCH_PER_OP").is_some() {
            // The fused transform with each TrivialAugmentWide op forced (middle bin, no flip).
            let clip = ds.load(0, 0)?;
            let mut rng = ethos_data::rng::sample_rng(1, 1, 0);
            let base = transform.sample_params(&mut rng, clip.height, clip.width);
            let mut line = String::new();
            for op in ethos_data::transforms::trivial_augment::ALL_OPS {
                let params = ethos_data::transforms::TransformParams {
                    flip: false,
                    augment: Some(ethos_data::transforms::AugmentParams {
                        op,
                        magnitude: ethos_data::transforms::trivial_augment::magnitude(op, 20),
                    }),
                    ..base
                };
                let n = 20;
                let c0 = thread_cpu();
                for _ in 0..n {
                    transform.apply_normalized(
                        &mut scratch,
                        &clip,
                        &params,
                        Layout::Bcthw,
                        &mut out,
                    );
                }
                line += &format!(" {op:?} {:.2}", 1e3 * (thread_cpu() - c0) / n as f64);
            }
            eprintln!("(c) fused transform per op, ms per sample:{line}");
        }
        eprintln!(
            "(c) per sample, one thread: cache read {read:.2} ms, crop+resize {resize:.2} ms, whole fused transform {fused:.2} ms \
             (so flip+TrivialAugmentWide+normalise {:.2} ms) -> {:.0} samples per CPU-s without batch assembly",
            fused - resize,
            1e3 / (read + fused)
        );
        serde_json::json!({"cache_read_ms": read, "crop_resize_ms": resize, "fused_transform_ms": fused})
    };

    let source: Arc<dyn ClipSource> = Arc::new(Cycled {
        inner: ds,
        len: args.samples,
    });
    let aug = AugmentationConfig::default();
    let mut results = Vec::new();
    for workers in [1usize, 2] {
        let transform = ClipTransform::train(&aug, cfg.input_size as usize, cfg.mean, cfg.std);
        let opts = LoaderOptions {
            batch_size: args.batch_size,
            num_workers: workers,
            queue_depth: 2 * workers,
            seed: 1,
            layout: Layout::Bcthw,
            num_frames: cfg.num_frames,
            drop_last: false,
        };
        let loader = Loader::new(Arc::clone(&source), transform, opts);
        let sampler = ShuffleSampler::new(args.samples);
        // Warm-up epoch (page cache, allocator).
        for b in loader.epoch(&sampler, 0) {
            b?;
        }
        let mut rates = Vec::new();
        let mut cpu_rates = Vec::new();
        let faults0 = raw_rusage().ru_minflt;
        let mut samples = 0;
        for rep in 0..args.reps.max(1) {
            let (c0, _) = rusage();
            let t0 = Instant::now();
            let mut n = 0;
            for b in loader.epoch(&sampler, rep as u64 + 1) {
                n += b?.labels.len();
            }
            let secs = t0.elapsed().as_secs_f64();
            rates.push(n as f64 / secs);
            cpu_rates.push(n as f64 / (rusage().0 - c0));
            samples += n;
        }
        // Page faults per sample: ~0 once batch buffers are recycled (each fresh 9.6 MB sample
        // slot costs thousands of 4 KiB faults or a few huge-page ones, plus zeroing).
        let faults = (raw_rusage().ru_minflt - faults0) as f64 / samples as f64;
        let rate = median(rates);
        let per_cpu_s = median(cpu_rates);
        eprintln!(
            "(b) loader, {workers} worker(s), batch {}, 16x224x224 full train augmentation: {rate:.1} samples/s ({per_cpu_s:.1} samples per CPU-s, {faults:.1} page faults per sample)",
            args.batch_size
        );
        results.push(serde_json::json!({"workers": workers, "samples_per_s": rate, "samples_per_cpu_s": per_cpu_s, "page_faults_per_sample": faults}));
    }
    let median_or_null = |v: Vec<f64>| (!v.is_empty()).then(|| median(v));
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "cache_build_cpu_s_median": median_or_null(cpu),
            "cache_build_wall_s_median": median_or_null(wall),
            "peak_rss_mb_after_cache_build": peak_rss_mb,
            "cached_clip_shape": full.shape(),
            "entry_bytes": entry_bytes,
            "read_16_frames_ms": read_ms,
            "read_16_frames_mapped_ms": mapped_ms,
            "sample_shape": [stored.frames, stored.height, stored.width, 3],
            "loader": results,
            "stages_one_thread": stages,
            "dumped_clip": dump,
        }))?
    );
    Ok(())
}
