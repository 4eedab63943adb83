//! `ethos pretrain-index` and `ethos pretrain`: self-supervised domain adaptation of V-JEPA 2 on
//! unlabelled footage (experiment E3; docs/ssl.md).
//!
//! - [`pretrain_index`]: the clip index of `pretrain.videos` (`ethos_data::corpus`), every clip
//!   decoded once into the decoded-clip cache; writes the index CSV, `*.skipped.csv` and a JSON
//!   summary (counts per skip reason, throughput in video hours per CPU-hour). The JSON records
//!   the settings' fingerprint: an index is reused only for the same settings.
//! - [`pretrain`]: plans the run directory (as `ethos train`: `--resume`, `train.resume: auto`,
//!   `--out`, `--force`), builds the index when it is missing or stale, and runs
//!   `ethos_train::pretrain::Pretrainer` over the index's cached clips: `RUN/config.yaml`,
//!   `RUN/history.csv`, `RUN/last.ckpt`, `RUN/encoder/` (Hugging Face `config.json` +
//!   `model.safetensors`, what a FERAL fine-tune's `model.weights` points at).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use ethos_core::{Error, Layout, ResultExt};
use ethos_data::config::DataMode;
use ethos_data::corpus::{self, CorpusSpec, IndexRow, SkipCounts};
use ethos_data::dataset::{ClipDataset, cache_params};
use ethos_data::sampler::ShuffleSampler;
use ethos_data::shard::Shard;
use ethos_data::transforms::ClipTransform;
use ethos_models::config::Arch;
use ethos_models::vjepa2::Vjepa2Config;
use ethos_models::vjepa2_masks::MultiBlockMasks;
use ethos_models::vjepa2_ssl::Vjepa2Ssl;
use ethos_train::data_parallel::DataParallel;
use ethos_train::optim::AdamW;
use ethos_train::pretrain::{
    ENCODER_DIR, PRETRAIN_CKPT, PretrainOutcome, PretrainSetup, Pretrainer, load_checkpoint,
};
use ethos_train::schedule::{SchedConfig, SchedName};
use serde::{Deserialize, Serialize};
use tch::Device;

use crate::Result;
use crate::config::RunConfig;
use crate::distributed;
use crate::progress::Progress;
use crate::run_dir::RunStart;

/// How `pretrain-index` runs.
#[derive(Debug, Clone, Default)]
pub struct IndexOptions {
    /// The run directory (else `train.run_dir`): the index goes to `pretrain.index`, else
    /// `RUN/index.csv`, the clips to `pretrain.cache_dir`, else `RUN/cache/`.
    pub out: Option<PathBuf>,
    /// Decoding threads (default: the machine's cores).
    pub threads: Option<usize>,
}

/// What an index build found and cost; also written next to the index as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndexSummary {
    /// The index CSV.
    pub index: PathBuf,
    /// The skipped clips (`video,start_s,reason,activity,detail`).
    pub skipped_csv: PathBuf,
    /// Fingerprint of the settings ([`CorpusSpec::fingerprint`]).
    pub fingerprint: String,
    /// Clips in the index.
    pub clips: usize,
    /// Videos listed.
    pub videos_listed: usize,
    /// Hours of footage after the camera filter.
    pub hours_indexed: f64,
    /// Hours of clip windows decoded (kept and skipped).
    pub clip_hours_decoded: f64,
    /// Skips per reason.
    pub skipped: SkipCountsJson,
    /// Cache entries reused.
    pub entries_reused: usize,
    /// Cache entries decoded.
    pub entries_built: usize,
    /// Decoding threads.
    pub threads: usize,
    /// Wall seconds of the build.
    pub wall_s: f64,
    /// CPU seconds of the build (user + system, every thread).
    pub cpu_s: f64,
    /// `hours_indexed / (cpu_s / 3600)`: footage indexed per CPU-hour (meaningful when every
    /// entry was decoded by this build).
    pub video_hours_per_cpu_hour: f64,
}

/// [`SkipCounts`] as stored in the JSON summary.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SkipCountsJson {
    /// Videos the camera filter dropped.
    pub videos_camera_excluded: usize,
    /// Their hours.
    pub hours_camera_excluded: f64,
    /// Videos that could not be opened.
    pub videos_unreadable: usize,
    /// Videos shorter than one clip.
    pub videos_too_short: usize,
    /// Clips outside the time-of-day window.
    pub clips_outside_time: usize,
    /// Near-static clips.
    pub clips_static: usize,
    /// Undecodable clips.
    pub clips_decode_failed: usize,
}

impl From<&SkipCounts> for SkipCountsJson {
    fn from(c: &SkipCounts) -> Self {
        Self {
            videos_camera_excluded: c.videos_camera_excluded,
            hours_camera_excluded: c.hours_camera_excluded,
            videos_unreadable: c.videos_unreadable,
            videos_too_short: c.videos_too_short,
            clips_outside_time: c.clips_outside_time,
            clips_static: c.clips_static,
            clips_decode_failed: c.clips_decode_failed,
        }
    }
}

/// The index settings of a config (`pretrain` + cameras and ROIs of `predict` + `data.seed`).
pub fn corpus_spec(cfg: &RunConfig) -> Result<CorpusSpec> {
    let videos = cfg.pretrain.videos.clone().ok_or_else(|| {
        Error::bad_input(format!(
            "config {}: pretrain.videos is not set: name the unlabelled footage (a folder, a glob or a list file), e.g. --set pretrain.videos=DIR",
            cfg.path.display()
        ))
    })?;
    if let Some(l) = cfg.data.chunk_length {
        return Err(Error::bad_input(format!(
            "config {}: data.chunk_length = {l}: frame-level chunks are for fine-tuning; pretraining samples data.num_frames frames per clip (set data.chunk_length: null)",
            cfg.path.display()
        )));
    }
    let camera_rois: BTreeMap<String, ethos_video::Roi> = cfg
        .predict
        .camera_rois
        .iter()
        .map(|(c, r)| {
            (
                c.clone(),
                ethos_video::Roi {
                    x: r[0],
                    y: r[1],
                    w: r[2],
                    h: r[3],
                },
            )
        })
        .collect();
    Ok(CorpusSpec {
        videos,
        clip_seconds: cfg.pretrain.clip_seconds,
        every_s: cfg.pretrain.every_s(),
        cameras: cfg.pretrain.cameras.clone(),
        camera_csv: cfg.pretrain.camera_csv.clone(),
        camera_separator: cfg.predict.camera_separator.clone(),
        camera_rois,
        time_of_day: cfg.pretrain.time_of_day.clone(),
        activity: cfg.pretrain.activity.clone(),
        seed: cfg.data.seed,
    })
}

/// Where the index of a run lives: `pretrain.index`, else `RUN/index.csv`.
pub fn index_path(cfg: &RunConfig, run_dir: &Path) -> PathBuf {
    cfg.pretrain
        .index
        .clone()
        .unwrap_or_else(|| run_dir.join("index.csv"))
}

/// The `data` section of a pretraining run: the cache is `pretrain.cache_dir`, else `RUN/cache/`.
pub fn pretrain_data(cfg: &RunConfig, run_dir: &Path) -> ethos_data::config::DataConfig {
    let mut data = cfg.data.clone();
    data.cache_dir = cfg
        .pretrain
        .cache_dir
        .clone()
        .unwrap_or_else(|| run_dir.join("cache"));
    data
}

fn summary_path(index: &Path) -> PathBuf {
    index.with_extension("json")
}

fn skipped_path(index: &Path) -> PathBuf {
    index.with_extension("skipped.csv")
}

/// Builds the index of a config: lists, filters and samples the footage, decodes every clip into
/// the cache, writes the index CSV, the skipped clips and the JSON summary. `progress` sees the
/// decode phase.
pub fn pretrain_index(
    cfg: &RunConfig,
    opts: &IndexOptions,
    progress: &dyn Progress,
) -> Result<IndexSummary> {
    let spec = corpus_spec(cfg)?;
    let run_dir = opts.out.clone().unwrap_or_else(|| cfg.run_dir());
    let run_dir = std::path::absolute(&run_dir).unwrap_or(run_dir);
    let data = pretrain_data(cfg, &run_dir);
    build_index_at(
        cfg,
        &data,
        &spec,
        &index_path(cfg, &run_dir),
        opts.threads,
        progress,
    )
}

fn build_index_at(
    cfg: &RunConfig,
    data: &ethos_data::config::DataConfig,
    spec: &CorpusSpec,
    index: &Path,
    threads: Option<usize>,
    progress: &dyn Progress,
) -> Result<IndexSummary> {
    let params = cache_params(data);
    let cache = ethos_data::cache::ClipCache::new(&data.cache_dir, params);
    let threads = threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    if let Some(dir) = index.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::output_io(dir, e))?;
    }
    tracing::info!(
        "pretrain index: {} (one {} s clip per {:.0} s of footage, {} threads) -> {}",
        spec.videos.display(),
        spec.clip_seconds,
        spec.every_s,
        threads,
        index.display()
    );
    let (cpu0, _) = crate::bench::rusage();
    let t0 = Instant::now();
    let on_progress = |phase: &str, done: usize, total: usize| {
        if phase == "decode" {
            progress.step(done, total, None);
        }
    };
    let built = corpus::build_index(spec, &cache, threads, &on_progress)
        .context(format!("config {}: pretrain index", cfg.path.display()))?;
    let wall_s = t0.elapsed().as_secs_f64();
    let cpu_s = crate::bench::rusage().0 - cpu0;
    if built.rows.is_empty() {
        return Err(Error::bad_input(format!(
            "pretrain index of {}: no clip is left ({} videos listed; skipped: {:?}); check pretrain.cameras, pretrain.time_of_day, pretrain.activity and pretrain.clip_seconds",
            spec.videos.display(),
            built.videos_listed,
            built.counts
        )));
    }
    corpus::write_index_csv(index, &built.rows).map_err(|e| Error::output_io(index, e))?;
    let skipped = skipped_path(index);
    corpus::write_skipped_csv(&skipped, &built.skipped)
        .map_err(|e| Error::output_io(&skipped, e))?;
    let summary = IndexSummary {
        index: index.to_path_buf(),
        skipped_csv: skipped,
        fingerprint: spec.fingerprint(&params),
        clips: built.rows.len(),
        videos_listed: built.videos_listed,
        hours_indexed: built.hours_indexed,
        clip_hours_decoded: built.clip_seconds_decoded / 3600.0,
        skipped: (&built.counts).into(),
        entries_reused: built.entries_reused,
        entries_built: built.entries_built,
        threads,
        wall_s,
        cpu_s,
        video_hours_per_cpu_hour: if cpu_s > 0.0 {
            built.hours_indexed / (cpu_s / 3600.0)
        } else {
            0.0
        },
    };
    crate::write_json(&summary_path(index), &summary)?;
    let c = &summary.skipped;
    tracing::info!(
        "pretrain index: {} clips from {:.2} h of footage ({} videos listed; skipped: {} static, {} outside the time window, {} undecodable clips; {} videos of excluded cameras, {} unreadable, {} too short); {} entries decoded, {} reused; {:.1} s wall, {:.1} CPU-s = {:.1} video hours per CPU-hour",
        summary.clips,
        summary.hours_indexed,
        summary.videos_listed,
        c.clips_static,
        c.clips_outside_time,
        c.clips_decode_failed,
        c.videos_camera_excluded,
        c.videos_unreadable,
        c.videos_too_short,
        summary.entries_built,
        summary.entries_reused,
        summary.wall_s,
        summary.cpu_s,
        summary.video_hours_per_cpu_hour
    );
    Ok(summary)
}

/// The index rows of a run: the existing index when its summary's fingerprint matches the
/// settings, else a new build.
fn ensure_index(
    cfg: &RunConfig,
    data: &ethos_data::config::DataConfig,
    index: &Path,
    progress: &dyn Progress,
) -> Result<Vec<IndexRow>> {
    let spec = corpus_spec(cfg)?;
    let want = spec.fingerprint(&cache_params(data));
    let summary: Option<IndexSummary> = std::fs::read(summary_path(index))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    match summary {
        Some(s) if s.fingerprint == want && index.is_file() => {
            tracing::info!(
                "pretrain: using the index {} ({} clips)",
                index.display(),
                s.clips
            );
        }
        Some(_) => {
            tracing::warn!(
                "pretrain: the index {} was built with other settings; building it again",
                index.display()
            );
            build_index_at(cfg, data, &spec, index, None, progress)?;
        }
        None => {
            build_index_at(cfg, data, &spec, index, None, progress)?;
        }
    }
    Ok(corpus::read_index_csv(index)?)
}

/// How `pretrain` starts.
#[derive(Debug, Clone, Default)]
pub struct PretrainOptions {
    /// Continue from this checkpoint (else `train.resume`).
    pub resume: Option<PathBuf>,
    /// The run directory (else `train.run_dir`, or the resumed checkpoint's folder).
    pub out: Option<PathBuf>,
    /// Overwrite a run directory that already holds a run.
    pub force: bool,
    /// Stop resumably after this many steps of this invocation.
    pub stop_after_steps: Option<u64>,
}

/// What a `pretrain` call left behind.
#[derive(Debug, Clone)]
pub struct PretrainSummary {
    /// The run directory.
    pub run_dir: PathBuf,
    /// The Hugging Face folder of the adapted model.
    pub encoder: PathBuf,
    /// False when a signal (or `stop_after_steps`) stopped the run; `last.ckpt` resumes it.
    pub finished: bool,
    /// Steps done and steps of the run.
    pub steps: (u64, u64),
    /// Clips in the index.
    pub clips: usize,
    /// Mean loss of the first and of the last history row.
    pub loss: Option<(f64, f64)>,
}

/// The V-JEPA 2 config of a pretraining run (`model.config` or `model.preset`, with
/// `model.drop_path`), checked against the clips it will see.
pub fn ssl_config(cfg: &RunConfig) -> Result<Vjepa2Config> {
    if cfg.model.arch != Arch::Vjepa2 {
        return Err(Error::bad_input(format!(
            "config {}: model.arch = {}: ethos pretrain trains V-JEPA 2's self-supervised objective (model.arch: vjepa2)",
            cfg.path.display(),
            cfg.model.arch
        )));
    }
    let source = ethos_models::factory::source_of(&cfg.model)?;
    let mut vc = ethos_models::factory::vjepa2_config(&source, None)?;
    vc.num_labels = None;
    if let Some(p) = cfg.model.drop_path {
        vc.drop_path_rate = p;
    }
    let (t, s) = (cfg.data.num_frames as i64, cfg.data.input_size as i64);
    vc.check_input_shape(&[1, t, 3, s, s]).map_err(|e| {
        Error::bad_input(format!(
            "config {}: data.num_frames = {t} / data.input_size = {s} do not fit the V-JEPA 2 model (tubelet {}, patch {}): {e}",
            cfg.path.display(),
            vc.tubelet_size,
            vc.patch_size
        ))
    })?;
    Ok(vc)
}

/// Pretrains as configured (see the module doc).
///
/// Started as one rank of a data-parallel run (`ethos launch`, torchrun or `srun` variables), it
/// joins the process group first; rank 0 decides where the run starts, builds the index and is
/// the only rank that writes (see [`ethos_train::pretrain`] for how the ranks share a step).
pub fn pretrain(
    cfg: &RunConfig,
    opts: &PretrainOptions,
    progress: &dyn Progress,
) -> Result<PretrainSummary> {
    distributed::run_as_rank(cfg, |device, dp| {
        pretrain_ranks(cfg, opts, progress, device, dp)
    })
}

fn pretrain_ranks(
    cfg: &RunConfig,
    opts: &PretrainOptions,
    progress: &dyn Progress,
    device: Device,
    dp: Option<&DataParallel>,
) -> Result<PretrainSummary> {
    let RunStart { run_dir, resume } = distributed::plan_start(
        dp,
        cfg,
        opts.resume.as_deref(),
        opts.out.as_deref(),
        opts.force,
    )?;
    let writes = dp.is_none_or(DataParallel::is_main);
    let (rank, world) = dp.map_or((0, 1), |d| (d.rank(), d.world_size()));
    let mut cfg = cfg.clone();
    cfg.train.run_dir = Some(run_dir.clone());
    let cfg = &cfg;
    // Everything the user's input can break is checked before the run directory is written.
    let vc = ssl_config(cfg)?;
    corpus_spec(cfg)?;
    let resume_ck = match &resume {
        Some(p) => Some((
            p.clone(),
            load_checkpoint(p).context(format!("--resume {}", p.display()))?,
        )),
        None => None,
    };
    if writes {
        std::fs::create_dir_all(&run_dir).map_err(|e| Error::output_io(&run_dir, e))?;
        ethos_core::fs::clean_stale_temps(&run_dir).map_err(|e| Error::output_io(&run_dir, e))?;
    }
    let index = index_path(cfg, &run_dir);
    let data = pretrain_data(cfg, &run_dir);
    // Rank 0 builds the index and its cache entries; the others then find both ready.
    let rows = distributed::main_first(dp, || ensure_index(cfg, &data, &index, progress))?;
    let rois: BTreeMap<String, ethos_video::Roi> = corpus_spec(cfg)?.camera_rois;
    let events = rows
        .iter()
        .enumerate()
        .map(|(i, r)| r.event(i, &rois))
        .collect();
    let mut ds = ClipDataset::from_events(&data, "pretrain", events, DataMode::Cache)
        .context("pretrain clips")?;
    // Entries removed since the index was built (a cleaned cache) are decoded again.
    let report = ds
        .ensure_cache(cfg.data.num_workers.max(1), false, &|_, _| {})
        .context("pretrain clips")?;
    ds.apply_bad_videos(&report, cfg.data.on_bad_video)
        .context("pretrain clips")?;
    let ds = Arc::new(ds);
    let clips = ds.len();

    if writes {
        let config_path = run_dir.join("config.yaml");
        ethos_core::fs::write_bytes_atomic(&config_path, cfg.to_yaml().as_bytes())
            .map_err(|e| Error::output_io(&config_path, e))?;
    }
    let hash = cfg.hash();

    tch::manual_seed((cfg.train.seed & (i64::MAX as u64)) as i64);
    let mut ssl = Vjepa2Ssl::new(&vc, device)?;
    if let Some(w) = &cfg.model.weights {
        let r = ssl
            .load_weights(w)
            .context(format!("config {}: model.weights", cfg.path.display()))?;
        tracing::info!(
            "pretrain: loaded {} encoder and {} predictor tensors from {}{}",
            r.encoder_tensors,
            r.predictor_tensors,
            w.display(),
            if r.predictor_tensors == 0 {
                " (no predictor.*: the predictor starts fresh)"
            } else {
                ""
            }
        );
    }
    if cfg.model.freeze_encoder_layers > 0 {
        ssl.freeze_encoder_layers(cfg.model.freeze_encoder_layers)
            .context(format!(
                "config {}: model.freeze_encoder_layers",
                cfg.path.display()
            ))?;
    }
    let optim = AdamW::from_var_store(ssl.online_vs(), &cfg.optim)
        .context(format!("config {}: optim", cfg.path.display()))?;
    let total = cfg.pretrain.total_steps(clips, cfg.data.batch_size);
    if cfg.pretrain.warmup_steps >= total {
        return Err(Error::bad_input(format!(
            "config {}: pretrain.warmup_steps = {} must be less than the run's {total} steps",
            cfg.path.display(),
            cfg.pretrain.warmup_steps
        )));
    }
    let schedule = SchedConfig {
        name: SchedName::CosineWarmup,
        warmup_epochs: cfg.pretrain.warmup_steps as f64,
        warmup_start_lr: cfg.sched.warmup_start_lr,
        min_lr: cfg.sched.min_lr,
        ..SchedConfig::default()
    }
    .build(cfg.optim.lr, total as usize, 1)
    .context(format!("config {}: sched", cfg.path.display()))?;
    let (t, s) = (cfg.data.num_frames as i64, cfg.data.input_size as i64);
    let masks = MultiBlockMasks::new(vc.token_grid(t, s, s), cfg.pretrain.masks.clone())
        .context(format!("config {}: pretrain.masks", cfg.path.display()))?;
    let transform = if cfg.pretrain.augment {
        ClipTransform::train(
            &cfg.augmentation,
            cfg.data.input_size as usize,
            cfg.data.mean,
            cfg.data.std,
        )
    } else {
        ClipTransform::eval(cfg.data.input_size as usize, cfg.data.mean, cfg.data.std)
    };
    let source = crate::source::train_source(
        &data,
        Arc::clone(&ds),
        transform,
        Box::new(ShuffleSampler::new(clips)),
        Layout::Btchw,
    )
    .with_shard(Shard::training(rank, world));
    let counts = ethos_models::freeze::param_counts(ssl.online_vs());
    tracing::info!(
        "pretrain: V-JEPA 2 ({} blocks, width {}; predictor {} blocks, width {}): {} trainable / {} online parameters on {:?}; {} clips of {} frames at {} px, batch {}, {} steps, token grid {:?}, {} mask groups",
        vc.num_hidden_layers,
        vc.hidden_size,
        vc.pred_num_hidden_layers,
        vc.pred_hidden_size,
        counts.trainable_params,
        counts.trainable_params + counts.frozen_params,
        device,
        clips,
        t,
        s,
        cfg.data.batch_size,
        total,
        vc.token_grid(t, s, s),
        cfg.pretrain.masks.len()
    );
    let setup = PretrainSetup {
        cfg: cfg.pretrain.clone(),
        total_steps: total,
        seed: cfg.train.seed,
        schedule,
        grad_clip: cfg.optim.clip(),
        amp: cfg.train.amp,
        device,
        run_dir: run_dir.clone(),
        config_json: cfg.resolved(),
        config_hash: hash,
        stop_after_steps: opts.stop_after_steps,
    };
    let stop = crate::signals::stop_flag()?;
    let mut looped = Pretrainer::new(setup, &ssl, masks, optim, resume_ck, stop)?;
    if let Some(dp) = dp {
        looped = looped.with_data_parallel(dp)?;
    }
    let outcome = looped.run(&source)?;
    let history = &looped.state().history;
    let loss = history
        .first()
        .zip(history.last())
        .map(|(a, b)| (a.loss, b.loss));
    let (finished, steps) = match outcome {
        PretrainOutcome::Finished { steps } => (true, steps),
        PretrainOutcome::Interrupted { steps } => (false, steps),
    };
    Ok(PretrainSummary {
        encoder: run_dir.join(ENCODER_DIR),
        run_dir,
        finished,
        steps: (steps, total),
        clips,
        loss,
    })
}

/// The checkpoint a pretraining run resumes from.
pub fn checkpoint_of(run_dir: &Path) -> PathBuf {
    run_dir.join(PRETRAIN_CKPT)
}
