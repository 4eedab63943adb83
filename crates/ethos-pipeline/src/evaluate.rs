//! Evaluation of a checkpoint on a split: `metrics.json` (with per-group and per-camera metrics),
//! `predictions.csv` and an HTML report with plots.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ethos_core::{Error, ResultExt};
use ethos_eval::metrics::MetricSet;
use ethos_eval::report::{ReportInput, write_report};
use ethos_train::trainer::{self, Progress};
use tch::nn;

use crate::Result;
use crate::config::RunConfig;
use crate::{source, train};

/// What to evaluate and where the results go.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// The checkpoint to evaluate.
    pub checkpoint: PathBuf,
    /// A config to take the data settings from (default: the one stored in the checkpoint).
    pub config: Option<PathBuf>,
    /// `--set key=value` overrides.
    pub overrides: Vec<String>,
    /// The split (a key of `data.splits`).
    pub split: String,
    /// Output folder for `metrics.json`, `predictions.csv` and the report.
    pub out: PathBuf,
    /// Ignore the run's `calibration.json` (report the argmax rule only).
    pub no_calibration: bool,
}

/// What an evaluation produced.
#[derive(Debug, Clone)]
pub struct EvalSummary {
    /// The split's metrics.
    pub metrics: MetricSet,
    /// Where `metrics.json` and the report are.
    pub out_dir: PathBuf,
    /// The metrics with the run's calibration (temperature + tuned rule), when it has one.
    pub calibrated: Option<crate::calibrate::CalibratedMetrics>,
}

/// The default output folder of an evaluation: `RUN/eval_<split>` for a run, else next to the
/// checkpoint.
pub fn default_out(run: Option<&Path>, ckpt: &Path, split: &str) -> PathBuf {
    let base = run
        .map(Path::to_path_buf)
        .unwrap_or_else(|| ckpt.parent().map(Path::to_path_buf).unwrap_or_default());
    base.join(format!("eval_{split}"))
}

/// Builds the model stored in a checkpoint: architecture from `cfg`, weights from its tensors.
pub fn load_checkpoint_model(
    ckpt: &Path,
    cfg: &RunConfig,
    vs: &mut nn::VarStore,
) -> Result<Box<dyn ethos_models::VideoModel>> {
    let mut model_cfg = cfg.model.clone();
    // The checkpoint holds every weight; the pretrained file the run started from is not needed.
    model_cfg.weights = None;
    let model = ethos_models::factory::build_from_config(&model_cfg, cfg.data.classes.len(), vs)?;
    let ck =
        ethos_train::checkpoint::load(ckpt).context(format!("--checkpoint {}", ckpt.display()))?;
    ethos_train::checkpoint::copy_into_varstore(ckpt, vs, &ck.model)?;
    Ok(model)
}

/// Evaluates a checkpoint on a split, writing `metrics.json`, `predictions.csv` and the report.
pub fn evaluate(opts: &EvalOptions) -> Result<EvalSummary> {
    let ckpt = &opts.checkpoint;
    let split = opts.split.as_str();
    if !ckpt.is_file() {
        return Err(Error::bad_input(format!(
            "{}: no such checkpoint",
            ckpt.display()
        )));
    }
    let (cfg, state) = RunConfig::for_checkpoint(ckpt, opts.config.as_deref(), &opts.overrides)?;
    if !cfg.data.splits.contains_key(split) {
        let known: Vec<&String> = cfg.data.splits.keys().collect();
        return Err(Error::bad_input(format!(
            "--split {split}: not in data.splits ({known:?})"
        )));
    }
    crate::output_dir::prepare(&opts.out, "--out")?;
    let classes = cfg.data.classes.clone();
    let device = train::device_of(&cfg)?;
    let mut vs = nn::VarStore::new(device);
    let model = load_checkpoint_model(ckpt, &cfg, &mut vs)?;
    vs.freeze();

    let train_events = ethos_data::dataset::load_split_events(&cfg.data, "train")
        .map_err(|e| source::split_error(e, &cfg.data, "train"))?;
    let train_labels: Vec<usize> = train_events.iter().map(|e| e.class_index).collect();
    let loss = train::make_loss(&cfg, &train_labels)?;

    let ds = source::open_split(&cfg.data, split)?;
    let src = source::eval_source(&cfg.data, std::sync::Arc::clone(&ds), model.input_layout());
    let progress = Progress::new(cfg.train.log_every_steps);
    let res = trainer::evaluate(
        model.as_ref(),
        &src,
        &loss,
        device,
        cfg.train.amp,
        cfg.model.clip_aggregation,
        &progress,
    )?;
    let metrics = res.metrics(&classes)?;
    let per_group = per_group_metrics(&cfg, split, &res, &classes)?;
    let flat_probs: Vec<f64> = res.probs.iter().flatten().copied().collect();
    let calibration = crate::calibrate::load_for(ckpt, &classes, opts.no_calibration)?;

    let out = &opts.out;
    std::fs::create_dir_all(out).map_err(|e| Error::output_io(out, e))?;
    let mut json = serde_json::to_value(&metrics).unwrap_or_default();
    if let Some(o) = json.as_object_mut() {
        o.insert("split".into(), split.into());
        o.insert("checkpoint".into(), ckpt.display().to_string().into());
        o.insert("epochs_done".into(), state.epochs_done.into());
        let groups: serde_json::Map<String, serde_json::Value> = per_group
            .iter()
            .map(|(n, m)| (n.clone(), serde_json::to_value(m).unwrap_or_default()))
            .collect();
        o.insert("per_group".into(), groups.into());
        o.insert(
            "ece".into(),
            ethos_eval::calibration::ece(&flat_probs, &res.labels, classes.len()).into(),
        );
    }
    let calibrated = match &calibration {
        Some(cal) => Some(crate::calibrate::calibrated_metrics(
            cal,
            &flat_probs,
            &res.labels,
            out,
        )?),
        None => None,
    };
    if let (Some(o), Some(c)) = (json.as_object_mut(), &calibrated) {
        o.insert(
            "calibrated".into(),
            serde_json::to_value(c).unwrap_or_default(),
        );
    }
    crate::write_json(&out.join("metrics.json"), &json)?;
    let mut rows = Vec::new();
    trainer::per_sample_rows(split, &res, &classes, &mut rows);
    trainer::write_per_sample_csv(&out.join("predictions.csv"), &classes, &rows)?;

    let flat: Vec<f64> = res.probs.iter().flatten().copied().collect();
    let history = (!state.history.is_empty()).then_some(state.history.as_slice());
    write_report(
        out,
        &ReportInput {
            title: format!("{split} — {}", ckpt.display()),
            class_names: &classes,
            metrics: &metrics,
            per_group: &per_group,
            history,
            probs: &flat,
            labels: &res.labels,
        },
    )
    .context(format!("writing the report in {}", out.display()))?;
    tracing::info!("eval: {split}: metrics and report in {}", out.display());
    Ok(EvalSummary {
        metrics,
        out_dir: out.to_path_buf(),
        calibrated,
    })
}

/// Metrics per group and per camera: the out-of-distribution story.
fn per_group_metrics(
    cfg: &RunConfig,
    split: &str,
    res: &trainer::EvalOutput,
    classes: &[String],
) -> Result<Vec<(String, MetricSet)>> {
    let events = ethos_data::dataset::load_split_events(&cfg.data, split)
        .map_err(|e| source::split_error(e, &cfg.data, split))?;
    let by_idx: BTreeMap<u32, &ethos_data::manifest::Event> =
        events.iter().map(|e| (e.event_idx, e)).collect();
    let mut groups: BTreeMap<String, (Vec<f64>, Vec<usize>)> = BTreeMap::new();
    for (i, idx) in res.event_idx.iter().enumerate() {
        let Some(e) = by_idx.get(idx) else { continue };
        for key in [
            e.group.as_ref().map(|g| format!("group {g}")),
            e.camera.as_ref().map(|c| format!("camera {c}")),
        ]
        .into_iter()
        .flatten()
        {
            let entry = groups.entry(key).or_default();
            entry.0.extend(&res.probs[i]);
            entry.1.push(res.labels[i]);
        }
    }
    groups
        .into_iter()
        .map(|(name, (probs, labels))| {
            let m = MetricSet::compute(classes, &probs, &labels)
                .context(format!("metrics of {name}"))?;
            Ok((name, m))
        })
        .collect()
}
