//! `ethos train --config F [--set k=v]... [--resume PATH] [--out DIR] [--force]`: trains a model
//! into a run directory (resolved `config.yaml`, `history.csv`, `best.ckpt`, `last.ckpt`,
//! `per_sample_loss.csv`, `metrics.json`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use tch::{Device, nn};

use ethos_data::chunks::{ChunkLayout, ChunkSampler, ChunkedDataset};
use ethos_data::config::DataConfig;
use ethos_data::dataset::ClipDataset;
use ethos_data::loader::{ClipSource, Loader, LoaderOptions};
use ethos_data::sampler::{BalancedSampler, Sampler, SequentialSampler, ShuffleSampler};
use ethos_data::transforms::{ClipTransform, Layout};
use ethos_models::config::{Arch, HeadKind, ModelConfig};
use ethos_models::{InputLayout, VideoModel};
use ethos_train::checkpoint;
use ethos_train::config::{ResumeSpec, SamplerKind};
use ethos_train::loss::FocalLoss;
use ethos_train::metrics::MetricKey;
use ethos_train::optim::{Accumulation, AdamW};
use ethos_train::trainer::{
    self, BatchSource, FitOutcome, HostBatch, Progress, SourceError, Trainer, TrainerSetup,
};

use crate::config::RunConfig;
use crate::exit::BadInput;

/// Arguments of `ethos train`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The run configuration (YAML).
    #[arg(long)]
    pub config: PathBuf,
    /// Override a config key, e.g. `--set optim.lr=2e-5` (repeatable; values are YAML).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Continue from this checkpoint (e.g. RUN/last.ckpt) exactly where it stopped.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// The run directory (overrides `train.run_dir`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Overwrite a run directory that already holds a run.
    #[arg(long)]
    pub force: bool,
    /// Stop resumably after this many epochs of this invocation (to fit a time slot).
    #[arg(long, value_name = "N")]
    pub stop_after_epochs: Option<usize>,
}

/// What a finished `train` left behind.
pub struct TrainSummary {
    /// The run directory.
    pub run_dir: PathBuf,
    /// False when a signal stopped the run (it is resumable).
    pub finished: bool,
    /// Best metric value and epoch.
    pub best: Option<(f64, usize)>,
}

/// `ethos train`.
pub fn run(args: Args) -> Result<()> {
    let mut cfg = RunConfig::load(&args.config, &args.set)?;
    if let Some(out) = &args.out {
        cfg.train.run_dir = Some(std::path::absolute(out).unwrap_or_else(|_| out.clone()));
    }
    let summary = execute(
        &cfg,
        args.resume.as_deref(),
        args.force,
        args.stop_after_epochs,
    )?;
    if !summary.finished {
        eprintln!(
            "stopped; the run is resumable: ethos train --config {} --resume {}",
            args.config.display(),
            summary.run_dir.join("last.ckpt").display()
        );
    } else {
        eprintln!("run directory: {}", summary.run_dir.display());
    }
    Ok(())
}

/// The files that mark a directory as holding a run.
const RUN_MARKERS: [&str; 4] = ["config.yaml", "history.csv", "last.ckpt", "best.ckpt"];

/// Decides where to resume from: an explicit path, `train.resume` (`auto` = `last.ckpt` when
/// present), or nowhere. Refuses to reuse a run directory otherwise, unless `force`.
fn resume_point(cfg: &RunConfig, explicit: Option<&Path>, force: bool) -> Result<Option<PathBuf>> {
    let run_dir = cfg.run_dir();
    if let Some(p) = explicit {
        return Ok(Some(p.to_path_buf()));
    }
    match &cfg.train.resume {
        Some(ResumeSpec::Path(p)) => return Ok(Some(p.clone())),
        Some(ResumeSpec::Auto) if run_dir.join("last.ckpt").is_file() => {
            return Ok(Some(run_dir.join("last.ckpt")));
        }
        _ => {}
    }
    let existing: Vec<&str> = RUN_MARKERS
        .iter()
        .copied()
        .filter(|m| run_dir.join(m).exists())
        .collect();
    if !existing.is_empty() {
        if !force {
            return Err(BadInput(format!(
                "run directory {} already holds a run ({}); resume it with --resume {}, \
                 choose another with --out, or overwrite it with --force",
                run_dir.display(),
                existing.join(", "),
                run_dir.join("last.ckpt").display()
            ))
            .into());
        }
        for m in [
            "history.csv",
            "last.ckpt",
            "best.ckpt",
            "per_sample_loss.csv",
            "metrics.json",
        ] {
            let p = run_dir.join(m);
            if p.exists() {
                std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
            }
        }
    }
    Ok(None)
}

/// Converts the model's input layout to the loader's.
pub fn loader_layout(l: InputLayout) -> Layout {
    match l {
        InputLayout::Bcthw => Layout::Bcthw,
        InputLayout::Btchw => Layout::Btchw,
    }
}

/// A split's loader with its sampler, seen as a [`BatchSource`].
pub struct LoaderSource {
    split: String,
    loader: Loader,
    sampler: Box<dyn Sampler>,
    samples: usize,
    chunk_layout: Option<ChunkLayout>,
}

impl LoaderSource {
    /// A loader over `dataset` with `transform` and `sampler`.
    pub fn new(
        data: &DataConfig,
        dataset: Arc<ClipDataset>,
        transform: ClipTransform,
        sampler: Box<dyn Sampler>,
        layout: Layout,
    ) -> Self {
        let split = dataset.split().to_string();
        Self::from_source(data, &split, dataset, transform, sampler, layout, None)
    }

    /// A loader over any clip source (e.g. the chunks of a frame-level split); `chunk_layout`
    /// describes the samples' frames for the per-frame ensemble of evaluation sources.
    pub fn from_source(
        data: &DataConfig,
        split: &str,
        source: Arc<dyn ClipSource>,
        transform: ClipTransform,
        sampler: Box<dyn Sampler>,
        layout: Layout,
        chunk_layout: Option<ChunkLayout>,
    ) -> Self {
        let split = split.to_string();
        let opts = LoaderOptions {
            batch_size: data.batch_size,
            num_workers: data.num_workers,
            queue_depth: (2 * data.num_workers).max(2),
            seed: data.seed,
            layout,
            num_frames: data.clip_frames(),
            drop_last: false,
        };
        let samples = sampler.epoch_len();
        LoaderSource {
            split,
            loader: Loader::new(source, transform, opts),
            sampler,
            samples,
            chunk_layout,
        }
    }
}

impl BatchSource for LoaderSource {
    fn split(&self) -> &str {
        &self.split
    }
    fn num_batches(&self) -> usize {
        self.loader.num_batches(self.samples)
    }
    fn num_samples(&self) -> usize {
        self.samples
    }
    fn batches(
        &self,
        epoch: u64,
        start: usize,
    ) -> Box<dyn Iterator<Item = Result<HostBatch, SourceError>> + '_> {
        Box::new(
            self.loader
                .epoch_from(&*self.sampler, epoch, start)
                .map(|r| {
                    r.map(|b| HostBatch {
                        inputs: b.inputs,
                        shape: b.shape,
                        layout: match b.layout {
                            Layout::Bcthw => InputLayout::Bcthw,
                            Layout::Btchw => InputLayout::Btchw,
                        },
                        labels: b.labels,
                        event_idx: b.event_idx,
                    })
                    .map_err(|e| Box::new(e) as SourceError)
                }),
        )
    }
    fn chunk_layout(&self) -> Option<&ChunkLayout> {
        self.chunk_layout.as_ref()
    }
}

/// Opens a split in the configured mode (building missing cache entries), with a message that
/// names the split.
pub fn open_split(data: &DataConfig, split: &str) -> Result<Arc<ClipDataset>> {
    let ds = ClipDataset::open(data, split).with_context(|| format!("opening split `{split}`"))?;
    if ds.is_empty() {
        let file = data
            .splits
            .get(split)
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        return Err(BadInput(format!("split `{split}` ({file}) has no events")).into());
    }
    Ok(Arc::new(ds))
}

/// An eval-mode source (no augmentation, sequential order) over a split; with
/// `data.chunk_length`, every chunk of every event, with the layout for the per-frame ensemble.
pub fn eval_source(data: &DataConfig, ds: Arc<ClipDataset>, layout: Layout) -> LoaderSource {
    let transform = ClipTransform::eval(data.input_size as usize, data.mean, data.std);
    if let Some((length, shift)) = data.chunking() {
        let split = ds.split().to_string();
        let chunks = Arc::new(ChunkedDataset::new(ds, length, shift));
        let n = ClipSource::len(&*chunks);
        let chunk_layout = chunks.layout();
        return LoaderSource::from_source(
            data,
            &split,
            chunks,
            transform,
            Box::new(SequentialSampler::new(n)),
            layout,
            Some(chunk_layout),
        );
    }
    let n = ds.len();
    LoaderSource::new(
        data,
        ds,
        transform,
        Box::new(SequentialSampler::new(n)),
        layout,
    )
}

/// The training source: every event per epoch in `sampler`'s order; with `data.chunk_length`,
/// one chunk per event per epoch, chosen from (seed, epoch, position).
pub fn train_source(
    data: &DataConfig,
    ds: Arc<ClipDataset>,
    transform: ClipTransform,
    sampler: Box<dyn Sampler>,
    layout: Layout,
) -> LoaderSource {
    match data.chunking() {
        Some((length, shift)) => {
            let split = ds.split().to_string();
            let chunks = Arc::new(ChunkedDataset::new(ds, length, shift));
            let sampler = Box::new(ChunkSampler::new(sampler, &chunks));
            LoaderSource::from_source(data, &split, chunks, transform, sampler, layout, None)
        }
        None => LoaderSource::new(data, ds, transform, sampler, layout),
    }
}

/// Builds the model of `cfg` under `vs` with `num_classes` outputs and loads `model.weights`.
pub fn build_model(
    cfg: &ModelConfig,
    num_classes: usize,
    vs: &mut nn::VarStore,
) -> Result<Box<dyn VideoModel>> {
    use ethos_models::registry::{self, ModelSource};
    let k = num_classes as i64;
    let source = match (&cfg.config, &cfg.preset) {
        (Some(p), _) => ModelSource::ConfigFile(p.clone()),
        (None, Some(n)) => ModelSource::Preset(n.clone()),
        (None, None) => {
            return Err(BadInput("model.preset or model.config must be set".into()).into());
        }
    };
    let root = vs.root();
    let (model, head_prefix): (Box<dyn VideoModel>, &str) = match cfg.arch {
        Arch::Mvit => {
            let mut mc = registry::mvit_config(&source, Some(k)).context("model")?;
            mc.dropout = cfg.head_dropout;
            if let Some(p) = cfg.drop_path {
                mc.stochastic_depth_prob = p;
            }
            (
                Box::new(ethos_models::mvit::Mvit::new(&root, &mc).context("building the MViT")?),
                "head.",
            )
        }
        Arch::R3d18 => {
            use ethos_models::r3d::{R3D_PRESETS, R3dConfig};
            let ModelSource::Preset(n) = &source else {
                return Err(BadInput(format!(
                    "model.config: the r3d_18 architecture is built from a preset ({}), not a config file",
                    R3D_PRESETS.join(", ")
                ))
                .into());
            };
            let rc = R3dConfig::preset(n, k, cfg.head_dropout).ok_or_else(|| {
                BadInput(format!(
                    "model.preset `{n}`: the r3d_18 architecture has the presets {}",
                    R3D_PRESETS.join(", ")
                ))
            })?;
            (Box::new(ethos_models::r3d::R3d18::new(&root, &rc)), "fc.")
        }
        Arch::Vjepa2 => build_vjepa2(cfg, &source, k, vs)?,
    };
    if let Some(w) = &cfg.weights {
        let tensors = ethos_models::weights::read_tensors(w)
            .with_context(|| format!("model.weights {}", w.display()))?;
        let mut opts = ethos_models::weights::LoadOptions {
            strict: true,
            rename: Vec::new(),
            skip_prefixes: vec![head_prefix.to_string()],
        };
        if cfg.arch == Arch::Vjepa2 {
            // Hugging Face names: `VJEPA2ForVideoClassification` (vjepa2.encoder.*, pooler.*,
            // classifier.*) or a bare `VJEPA2Model` (encoder.*, predictor.*). The FERAL head is new;
            // a checkpoint's pooler/classifier are then unused, and an encoder-only checkpoint
            // leaves the HF pooler freshly initialised.
            let keys: Vec<&str> = tensors.iter().map(|(k, _)| k.as_str()).collect();
            let has_pooler = keys.iter().any(|k| k.starts_with("pooler."));
            let wl = ethos_models::vjepa2::Vjepa2WeightLayout::detect(&keys);
            opts.rename = wl.rename;
            opts.skip_prefixes.extend(wl.skip_prefixes);
            if cfg.head == HeadKind::Feral || !has_pooler {
                opts.skip_prefixes
                    .extend(["pooler.".to_string(), "classifier.".to_string()]);
            }
        }
        let report = ethos_models::weights::load_into(vs, tensors, &opts)
            .with_context(|| format!("loading model.weights {}", w.display()))?;
        tracing::info!(
            "loaded {} tensors from {} (new head `{head_prefix}`)",
            report.loaded.len(),
            w.display()
        );
    }
    Ok(model)
}

/// V-JEPA 2 from `model.config` (HF `config.json`) or a preset with the configured head (`model.head`:
/// the HF attentive pooler + linear classifier, or the FERAL head with `model.num_queries` queries),
/// its patch embedding and first `model.freeze_encoder_layers` blocks frozen (out of the
/// optimiser, run without a graph). Returns the model and the prefix of its new head.
fn build_vjepa2(
    cfg: &ModelConfig,
    source: &ethos_models::registry::ModelSource,
    k: i64,
    vs: &nn::VarStore,
) -> Result<(Box<dyn VideoModel>, &'static str)> {
    use ethos_models::feral_head::{FeralHeadConfig, Vjepa2FeralModel};
    use ethos_models::vjepa2::Vjepa2ForVideoClassification;
    let vc = ethos_models::registry::vjepa2_config(source, Some(k)).context("model")?;
    let n = cfg.freeze_encoder_layers;
    let root = vs.root();
    Ok(match cfg.head {
        HeadKind::Feral => {
            let hc = FeralHeadConfig::for_encoder(&vc, k, cfg.num_queries as i64, cfg.head_dropout);
            let mut m = Vjepa2FeralModel::new(&root, &vc, &hc)
                .context("building V-JEPA 2 with the FERAL head")?;
            m.freeze_encoder_layers(vs, n)
                .context("model.freeze_encoder_layers")?;
            (Box::new(m), "feral_head.")
        }
        HeadKind::Linear => {
            let mut m =
                Vjepa2ForVideoClassification::new(&root, &vc).context("building V-JEPA 2")?;
            let prefixes = m
                .encoder()
                .freeze_prefixes(n)
                .context("model.freeze_encoder_layers")?;
            ethos_models::freeze::freeze_prefixes(vs, &prefixes);
            m.encoder_mut()
                .set_frozen_blocks(n)
                .context("model.freeze_encoder_layers")?;
            (Box::new(m), "classifier.")
        }
    })
}

/// Class weights, loss, metric key: what the train split's labels decide.
pub fn make_loss(cfg: &RunConfig, train_labels: &[usize], train_file: &str) -> Result<FocalLoss> {
    let c = cfg.data.classes.len();
    let mut counts = vec![0u64; c];
    for &l in train_labels {
        counts[l] += 1;
    }
    if let Some(k) = counts.iter().position(|&n| n == 0) {
        return Err(BadInput(format!(
            "split `train` ({train_file}) has no event of class `{}`; every class in data.classes needs training examples",
            cfg.data.classes[k]
        ))
        .into());
    }
    let weights = cfg
        .loss
        .class_weights_for(&counts, &cfg.data.classes)
        .map_err(|e| BadInput(format!("config {}: loss: {e}", cfg.path.display())))?;
    tracing::info!(
        "train class counts {:?}, class weights {:?}",
        counts,
        weights
    );
    cfg.loss
        .build(weights)
        .map_err(|e| BadInput(format!("config {}: loss: {e}", cfg.path.display())).into())
}

/// Picks the device named by `train.device`.
pub fn device_of(cfg: &RunConfig) -> Result<Device> {
    ethos_models::engine::Engine::init();
    ethos_models::engine::pick_device(&cfg.train.device.to_string())
        .map_err(|e| BadInput(format!("train.device: {e}")).into())
}

/// Trains as configured; the library entry of `ethos train` (also used by `ethos demo`).
pub fn execute(
    cfg: &RunConfig,
    resume: Option<&Path>,
    force: bool,
    stop_after_epochs: Option<usize>,
) -> Result<TrainSummary> {
    let run_dir = cfg.run_dir();
    let resume = resume_point(cfg, resume, force)?;
    std::fs::create_dir_all(&run_dir)
        .with_context(|| format!("creating run directory {}", run_dir.display()))?;
    let resume_ck = match &resume {
        Some(p) => Some((
            p.clone(),
            checkpoint::load(p).with_context(|| format!("--resume {}", p.display()))?,
        )),
        None => None,
    };
    ethos_train::atomic::write_bytes_atomic(
        &run_dir.join("config.yaml"),
        cfg.to_yaml()?.as_bytes(),
    )
    .with_context(|| format!("writing {}", run_dir.join("config.yaml").display()))?;
    let hash = cfg.hash();
    tracing::info!(
        "config {} (hash {}), run directory {}",
        cfg.path.display(),
        &hash[..12],
        run_dir.display()
    );

    if cfg.train.grad_checkpointing {
        // tch exposes no activation-checkpointing API and ethos has no per-block recomputation.
        return Err(BadInput(format!(
            "config {}: train.grad_checkpointing = true: per-block recomputation is not implemented \
             (tch has no checkpointing API); set it to false and reduce data.batch_size, \
             data.chunk_length or freeze more layers (model.freeze_encoder_layers) instead",
            cfg.path.display()
        ))
        .into());
    }
    let device = device_of(cfg)?;
    let classes = cfg.data.classes.clone();
    let metric_key = MetricKey::parse(&cfg.train.metric_key, &classes).map_err(|e| {
        BadInput(format!(
            "config {}: train.metric_key: {e}",
            cfg.path.display()
        ))
    })?;
    if metric_key.is_frame_level()
        && cfg.model.head != HeadKind::Feral
        && cfg.data.chunk_length.is_none()
    {
        return Err(BadInput(format!(
            "config {}: train.metric_key = {}: frame-level metrics need a per-frame head (model.head: feral) or frame-level chunks (data.chunk_length)",
            cfg.path.display(),
            cfg.train.metric_key
        ))
        .into());
    }
    let train_ds = open_split(&cfg.data, "train")?;
    let val_ds = open_split(&cfg.data, "val")?;
    let train_file = cfg
        .data
        .splits
        .get("train")
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let loss = make_loss(cfg, &train_ds.labels(), &train_file)?;

    // Parameter initialisation draws from libtorch's generator: seed it from the run seed so two
    // runs of one config start from the same weights.
    tch::manual_seed((cfg.train.seed & (i64::MAX as u64)) as i64);
    let mut vs = nn::VarStore::new(device);
    let model = build_model(&cfg.model, classes.len(), &mut vs)?;
    let layout = loader_layout(model.input_layout());
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
    let train_src = train_source(&cfg.data, Arc::clone(&train_ds), train_tf, sampler, layout);
    let val_src = eval_source(&cfg.data, Arc::clone(&val_ds), layout);

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
        .map_err(|e| BadInput(format!("config {}: sched: {e}", cfg.path.display())))?;
    let optim = AdamW::from_var_store(&vs, &cfg.optim)
        .map_err(|e| BadInput(format!("config {}: optim: {e}", cfg.path.display())))?;
    let counts = ethos_models::freeze::param_counts(&vs);
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
    let setup = TrainerSetup {
        classes: classes.clone(),
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
        stop_after_epochs,
    };
    let stop = trainer::install_stop_flag()?;
    let mut tr = Trainer::new(setup, &vs, model.as_ref(), optim, resume_ck, stop)?;
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
    )?;
    Ok(TrainSummary {
        run_dir,
        finished: true,
        best,
    })
}

/// After training: loads `best.ckpt`, writes `metrics.json` (val) and `per_sample_loss.csv`.
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
) -> Result<()> {
    let best = run_dir.join("best.ckpt");
    let ck_path = if best.is_file() {
        best
    } else {
        run_dir.join("last.ckpt")
    };
    let ck = checkpoint::load(&ck_path)?;
    checkpoint::copy_into_varstore(&ck_path, vs, &ck.model)?;
    let progress = Progress::new(cfg.train.log_every_steps);
    let amp = cfg.train.amp;
    let agg = cfg.model.clip_aggregation;
    let val = trainer::evaluate(model, val_src, loss, device, amp, agg, &progress)?;
    let val_m = val.metrics(&cfg.data.classes)?;
    let mut json = serde_json::to_value(&val_m)?;
    if let Some(o) = json.as_object_mut() {
        o.insert("split".into(), "val".into());
        o.insert("checkpoint".into(), ck_path.display().to_string().into());
        o.insert(
            "epoch".into(),
            ck.state.best_epoch.or(Some(ck.state.epochs_done)).into(),
        );
    }
    ethos_train::atomic::write_bytes_atomic(
        &run_dir.join("metrics.json"),
        serde_json::to_string_pretty(&json)?.as_bytes(),
    )?;
    if cfg.train.save_per_sample_loss {
        let train_src = eval_source(&cfg.data, Arc::clone(train_ds), layout);
        let tr = trainer::evaluate(model, &train_src, loss, device, amp, agg, &progress)?;
        let mut rows = Vec::new();
        trainer::per_sample_rows("train", &tr, &cfg.data.classes, &mut rows);
        trainer::per_sample_rows("val", &val, &cfg.data.classes, &mut rows);
        trainer::write_per_sample_csv(
            &run_dir.join("per_sample_loss.csv"),
            &cfg.data.classes,
            &rows,
        )?;
    }
    Ok(())
}
