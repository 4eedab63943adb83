//! Training: a composed [`RunConfig`] → a run directory (resolved `config.yaml`, `history.csv`,
//! `best.ckpt`, `last.ckpt`, `per_sample_loss.csv`, `metrics.json`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ethos_core::{Error, Layout, ResultExt};
use ethos_data::dataset::ClipDataset;
use ethos_data::sampler::{BalancedSampler, Sampler, ShuffleSampler};
use ethos_data::shard::Shard;
use ethos_data::transforms::ClipTransform;
use ethos_eval::metrics::MetricKey;
use ethos_models::VideoModel;
use ethos_models::config::HeadKind;
use ethos_train::checkpoint;
use ethos_train::config::SamplerKind;
use ethos_train::data_parallel::DataParallel;
use ethos_train::loss::FocalLoss;
use ethos_train::optim::{Accumulation, AdamW};
use ethos_train::trainer::{self, BatchSource, FitOutcome, Progress, Trainer, TrainerSetup};
use tch::{Device, nn};

use crate::Result;
use crate::config::RunConfig;
use crate::distributed;
use crate::run_dir::{self, RunStart};
use crate::source::{self, LoaderSource};

/// How `train` starts: resume point, output folder, overwrite, time slot.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Continue from this checkpoint (else `train.resume`).
    pub resume: Option<PathBuf>,
    /// The run directory (else `train.run_dir`, or the resumed checkpoint's folder).
    pub out: Option<PathBuf>,
    /// Overwrite a run directory that already holds a run.
    pub force: bool,
    /// Stop resumably after this many epochs of this invocation (to fit a time slot).
    pub stop_after_epochs: Option<usize>,
}

/// What a `train` call left behind.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    /// The run directory.
    pub run_dir: PathBuf,
    /// False when a signal (or `stop_after_epochs`) stopped the run; `last.ckpt` resumes it.
    pub finished: bool,
    /// Best value of `train.metric_key` and its epoch (1-based).
    pub best: Option<(f64, usize)>,
}

/// Picks the device named by `train.device` (loading libtorch's CUDA part first).
pub fn device_of(cfg: &RunConfig) -> Result<Device> {
    pick_device(&cfg.train.device.to_string()).context("train.device")
}

/// Picks a device by name (`auto`, `cpu`, `cuda`, `cuda:N`), loading libtorch's CUDA part first.
pub fn pick_device(name: &str) -> Result<Device> {
    ethos_models::engine::Engine::init();
    Ok(ethos_models::engine::pick_device(name)?)
}

/// The loss of a run: class weights from the train split's class counts (every class needs
/// examples).
pub fn make_loss(cfg: &RunConfig, train_labels: &[usize]) -> Result<FocalLoss> {
    let c = cfg.data.classes.len();
    let mut counts = vec![0u64; c];
    for &l in train_labels {
        counts[l] += 1;
    }
    if let Some(k) = counts.iter().position(|&n| n == 0) {
        return Err(Error::bad_input(format!(
            "split `train` ({}) has no event of class `{}`; every class in data.classes needs training examples",
            cfg.split_file("train"),
            cfg.data.classes[k]
        )));
    }
    let weights = cfg
        .loss
        .class_weights_for(&counts, &cfg.data.classes)
        .context(format!("config {}: loss", cfg.path.display()))?;
    tracing::info!("train class counts {counts:?}, class weights {weights:?}");
    cfg.loss
        .build(weights)
        .context(format!("config {}: loss", cfg.path.display()))
}

/// Trains as configured into the run directory [`run_dir::plan_start`] picks.
///
/// Started as one rank of a data-parallel run (`ethos launch`, torchrun or `srun` variables),
/// it joins the process group first; rank 0 decides where the run starts and is the only rank
/// that writes (see [`crate::distributed`]).
pub fn train(cfg: &RunConfig, opts: &TrainOptions) -> Result<TrainSummary> {
    distributed::run_as_rank(cfg, |device, dp| train_ranks(cfg, opts, device, dp))
}

fn train_ranks(
    cfg: &RunConfig,
    opts: &TrainOptions,
    device: Device,
    dp: Option<&DataParallel>,
) -> Result<TrainSummary> {
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
    // Everything that can fail on the user's input is checked before the run directory is written.
    let resume_ck = match &resume {
        Some(p) => Some((
            p.clone(),
            checkpoint::load(p).context(format!("--resume {}", p.display()))?,
        )),
        None => None,
    };
    let metric_key = MetricKey::parse(&cfg.train.metric_key, &cfg.data.classes)
        .context(format!("config {}: train.metric_key", cfg.path.display()))?;
    let train_ds = distributed::main_first(dp, || source::open_split(&cfg.data, "train"))?;
    let val_ds = distributed::main_first(dp, || source::open_split(&cfg.data, "val"))?;
    let loss = make_loss(cfg, &train_ds.labels())?;

    if writes {
        crate::output_dir::prepare(&run_dir, "run directory")?;
        let config_path = run_dir.join("config.yaml");
        ethos_core::fs::write_bytes_atomic(&config_path, cfg.to_yaml().as_bytes())
            .map_err(|e| Error::output_io(&config_path, e))?;
    }
    let hash = cfg.hash();
    tracing::info!(
        "config {} (hash {}), run directory {}",
        cfg.path.display(),
        &hash[..12],
        run_dir.display()
    );

    // Parameter initialisation draws from libtorch's generator: seed it from the run seed so two
    // runs of one config start from the same weights.
    tch::manual_seed((cfg.train.seed & (i64::MAX as u64)) as i64);
    let mut vs = nn::VarStore::new(device);
    let model =
        ethos_models::factory::build_from_config(&cfg.model, cfg.data.classes.len(), &mut vs)?;
    let layout = model.input_layout();
    let sampler: Box<dyn Sampler> = match cfg.train.sampler {
        SamplerKind::Shuffle => Box::new(ShuffleSampler::new(train_ds.len())),
        SamplerKind::Balanced => Box::new(BalancedSampler::new(&train_ds.labels(), None)),
    };
    let train_tf = ClipTransform::train(
        &cfg.augmentation,
        cfg.data.input_size as usize,
        cfg.data.mean,
        cfg.data.std,
    );
    let train_src =
        source::train_source(&cfg.data, Arc::clone(&train_ds), train_tf, sampler, layout)
            .with_shard(Shard::training(rank, world));
    let val_src = source::eval_source(&cfg.data, Arc::clone(&val_ds), layout)
        .with_shard(Shard::evaluation(rank, world));

    let accumulation = Accumulation {
        steps: cfg.optim.accumulation_steps.max(1),
    };
    let schedule = cfg
        .sched
        .build(
            cfg.optim.lr,
            cfg.train.epochs,
            accumulation.steps_per_epoch(train_src.num_batches()),
        )
        .context(format!("config {}: sched", cfg.path.display()))?;
    let mut optim = AdamW::from_var_store(&vs, &cfg.optim)
        .context(format!("config {}: optim", cfg.path.display()))?;
    let stages = ethos_train::stages::configure(
        &vs,
        &mut optim,
        &ethos_models::factory::head_prefixes(&cfg.model),
        &cfg.optim,
        cfg.train.freeze_backbone_epochs,
    );
    log_model(cfg, &vs, device, &train_ds, &val_ds, &train_src, &val_src);
    let setup = TrainerSetup {
        classes: cfg.data.classes.clone(),
        train: cfg.train.clone(),
        metric_key,
        loss: loss.clone(),
        mixup_alpha: cfg
            .augmentation
            .use_mixup
            .then_some(cfg.augmentation.mixup_alpha),
        accumulation,
        schedule,
        grad_clip: cfg.optim.grad_clip,
        device,
        clip_aggregation: cfg.model.clip_aggregation,
        run_dir: run_dir.clone(),
        config_json: cfg.resolved(),
        config_hash: hash,
        stop_after_epochs: opts.stop_after_epochs,
    };
    let stop = crate::signals::stop_flag()?;
    let mut tr = Trainer::new(setup, &vs, model.as_ref(), optim, resume_ck, stop)?;
    if let Some(st) = stages {
        tr.set_stages(st);
    }
    // TensorBoard and per-sample records are run files: rank 0 writes them.
    if writes {
        crate::run_logs::attach(&mut tr, cfg, &run_dir)?;
    }
    if let Some(dp) = dp {
        tr = tr.with_data_parallel(dp)?;
    }
    let outcome = tr.fit(&train_src, &val_src)?;
    let best = match outcome {
        FitOutcome::Interrupted { .. } => {
            return Ok(TrainSummary {
                run_dir,
                finished: false,
                best: None,
            });
        }
        FitOutcome::Finished { best, .. } => best,
    };
    drop(tr);
    finish_run(
        cfg,
        &run_dir,
        &mut vs,
        model.as_ref(),
        &loss,
        device,
        &train_ds,
        &val_src,
        layout,
        dp,
    )?;
    Ok(TrainSummary {
        run_dir,
        finished: true,
        best,
    })
}

#[allow(clippy::too_many_arguments)]
fn log_model(
    cfg: &RunConfig,
    vs: &nn::VarStore,
    device: Device,
    train_ds: &ClipDataset,
    val_ds: &ClipDataset,
    train_src: &LoaderSource,
    val_src: &LoaderSource,
) {
    let counts = ethos_models::freeze::param_counts(vs);
    tracing::info!(
        "model {} ({}, {} head): {} trainable / {} total parameters ({} frozen) on {:?}; {} train / {} val clips, {} batches per epoch",
        cfg.model.arch,
        cfg.model.preset.as_deref().unwrap_or("config"),
        match cfg.model.head {
            HeadKind::Linear => "linear",
            HeadKind::Feral => "FERAL",
        },
        counts.trainable_params,
        counts.trainable_params + counts.frozen_params,
        counts.frozen_params,
        device,
        train_ds.len(),
        val_ds.len(),
        train_src.num_batches()
    );
    if let Some((length, shift)) = cfg.data.chunking() {
        tracing::info!(
            "frame-level chunks of {length} frames, shift {shift} at {} fps: {} train samples per epoch (one chunk per event), {} val chunks",
            cfg.data.fps,
            train_src.num_samples(),
            val_src.num_samples()
        );
    }
}

/// After training: loads the run's checkpoint (best, else last), writes `metrics.json` (val) and
/// `per_sample_loss.csv`. Data parallel: rank 0 loads the checkpoint and sends it to the others,
/// every rank evaluates its block, rank 0 writes.
#[allow(clippy::too_many_arguments)]
fn finish_run(
    cfg: &RunConfig,
    run_dir: &Path,
    vs: &mut nn::VarStore,
    model: &dyn VideoModel,
    loss: &FocalLoss,
    device: Device,
    train_ds: &Arc<ClipDataset>,
    val_src: &LoaderSource,
    layout: Layout,
    dp: Option<&DataParallel>,
) -> Result<()> {
    let writes = dp.is_none_or(DataParallel::is_main);
    let (rank, world) = dp.map_or((0, 1), |d| (d.rank(), d.world_size()));
    let loaded = distributed::on_main(dp, || {
        let ck_path = run_dir::run_checkpoint(run_dir)?;
        let ck = checkpoint::load(&ck_path)?;
        checkpoint::copy_into_varstore(&ck_path, vs, &ck.model)?;
        Ok((ck_path, ck.state.best_epoch.or(Some(ck.state.epochs_done))))
    })?;
    if let Some(dp) = dp {
        dp.broadcast_variables(vs, true)?;
    }
    let (ck_path, epoch) = loaded;
    let progress = if writes {
        Progress::new(cfg.train.log_every_steps)
    } else {
        Progress::silent()
    };
    let amp = cfg.train.amp;
    let agg = cfg.model.clip_aggregation;
    let val = trainer::evaluate_ranks(model, val_src, loss, device, amp, agg, &progress, dp)?;
    let val_m = val.metrics(&cfg.data.classes)?;
    let mut json = serde_json::to_value(&val_m).unwrap_or_default();
    if let Some(o) = json.as_object_mut() {
        o.insert("split".into(), "val".into());
        o.insert("checkpoint".into(), ck_path.display().to_string().into());
        o.insert("epoch".into(), epoch.into());
    }
    if writes {
        crate::write_json(&run_dir.join("metrics.json"), &json)?;
    }
    if cfg.train.save_per_sample_loss {
        let train_src = source::eval_source(&cfg.data, Arc::clone(train_ds), layout)
            .with_shard(Shard::evaluation(rank, world));
        let tr = trainer::evaluate_ranks(model, &train_src, loss, device, amp, agg, &progress, dp)?;
        if writes {
            let mut rows = Vec::new();
            trainer::per_sample_rows("train", &tr, &cfg.data.classes, &mut rows);
            trainer::per_sample_rows("val", &val, &cfg.data.classes, &mut rows);
            trainer::write_per_sample_csv(
                &run_dir.join("per_sample_loss.csv"),
                &cfg.data.classes,
                &rows,
            )?;
        }
    }
    Ok(())
}
