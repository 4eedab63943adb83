//! `ethos eval --run DIR | --checkpoint C [--config F] --split S [--out DIR]`: metrics of a
//! checkpoint on a split (`metrics.json`, `predictions.csv`) and a report (`report.html` + PNG
//! plots: training curves, confusion matrix, ROC and PR curves, per-group and per-camera metrics).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tch::nn;

use ethos_train::checkpoint;
use ethos_train::metrics::MetricSet;
use ethos_train::report::{ReportInput, write_report};
use ethos_train::trainer::{self, Progress};

use crate::config::{RunConfig, from_resolved};
use crate::exit::BadInput;

/// Arguments of `ethos eval`.
#[derive(clap::Args)]
pub struct Args {
    /// A run directory: evaluates its `best.ckpt` (else `last.ckpt`).
    #[arg(long, conflicts_with = "checkpoint")]
    pub run: Option<PathBuf>,
    /// A checkpoint file.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Config to take the data settings from (default: the one stored in the checkpoint).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Split to evaluate (a key of data.splits: val, test_ood, ...).
    #[arg(long, default_value = "val")]
    pub split: String,
    /// Output folder (default: RUN/eval_<split>, or next to the checkpoint).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Override a config key (repeatable), e.g. `--set data.num_workers=4`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// What an evaluation produced.
pub struct EvalSummary {
    /// The split's metrics.
    pub metrics: MetricSet,
    /// Where metrics.json and the report are.
    pub out_dir: PathBuf,
}

/// Runs `ethos eval`.
pub fn run(args: Args) -> Result<()> {
    let ckpt = match (&args.run, &args.checkpoint) {
        (Some(run), _) => {
            let best = run.join("best.ckpt");
            if best.is_file() {
                best
            } else {
                run.join("last.ckpt")
            }
        }
        (None, Some(c)) => c.clone(),
        (None, None) => return Err(BadInput("give --run DIR or --checkpoint FILE".into()).into()),
    };
    let out = args.out.clone().unwrap_or_else(|| {
        let base = args
            .run
            .clone()
            .unwrap_or_else(|| ckpt.parent().map(Path::to_path_buf).unwrap_or_default());
        base.join(format!("eval_{}", args.split))
    });
    let s = evaluate_checkpoint(&ckpt, args.config.as_deref(), &args.set, &args.split, &out)?;
    println!("{}", serde_json::to_string_pretty(&s.metrics)?);
    Ok(())
}

/// Evaluates `ckpt` on `split`, writing `metrics.json`, `predictions.csv` and the report to `out`.
pub fn evaluate_checkpoint(
    ckpt: &Path,
    config: Option<&Path>,
    overrides: &[String],
    split: &str,
    out: &Path,
) -> Result<EvalSummary> {
    if !ckpt.is_file() {
        return Err(BadInput(format!("{}: no such checkpoint", ckpt.display())).into());
    }
    let (state, stored) =
        checkpoint::load_state(ckpt).with_context(|| format!("checkpoint {}", ckpt.display()))?;
    let cfg = match config {
        Some(p) => RunConfig::load(p, overrides)?,
        None if overrides.is_empty() => from_resolved(&stored, ckpt)?,
        None => {
            let text = serde_norway::to_string(&stored)?;
            RunConfig::from_yaml_str(&text, ckpt, overrides)?
        }
    };
    if !cfg.data.splits.contains_key(split) {
        let known: Vec<&String> = cfg.data.splits.keys().collect();
        return Err(BadInput(format!("--split {split}: not in data.splits ({known:?})")).into());
    }
    let classes = cfg.data.classes.clone();
    let device = super::train::device_of(&cfg)?;
    let mut vs = nn::VarStore::new(device);
    let model = super::predict::load_checkpoint_model(ckpt, &cfg, &mut vs)?;
    vs.freeze();

    let train_events = ethos_data::dataset::load_split_events(&cfg.data, "train")
        .context("reading split `train`")?;
    let train_labels: Vec<usize> = train_events.iter().map(|e| e.class_index).collect();
    let train_file = cfg
        .data
        .splits
        .get("train")
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let loss = super::train::make_loss(&cfg, &train_labels, &train_file)?;

    let ds = super::train::open_split(&cfg.data, split)?;
    let layout = super::train::loader_layout(model.input_layout());
    let src = super::train::eval_source(&cfg.data, std::sync::Arc::clone(&ds), layout);
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

    // Per group and per camera: the out-of-distribution story.
    let events = ethos_data::dataset::load_split_events(&cfg.data, split)
        .with_context(|| format!("reading split `{split}`"))?;
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
    let mut per_group = Vec::new();
    for (name, (probs, labels)) in groups {
        let m = MetricSet::compute(&classes, &probs, &labels)
            .map_err(|e| anyhow::anyhow!("metrics of {name}: {e}"))?;
        per_group.push((name, m));
    }

    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut json = serde_json::to_value(&metrics)?;
    if let Some(o) = json.as_object_mut() {
        o.insert("split".into(), split.into());
        o.insert("checkpoint".into(), ckpt.display().to_string().into());
        o.insert("epochs_done".into(), state.epochs_done.into());
        let groups: serde_json::Map<String, serde_json::Value> = per_group
            .iter()
            .map(|(n, m)| Ok((n.clone(), serde_json::to_value(m)?)))
            .collect::<Result<_, serde_json::Error>>()?;
        o.insert("per_group".into(), groups.into());
    }
    ethos_train::atomic::write_bytes_atomic(
        &out.join("metrics.json"),
        serde_json::to_string_pretty(&json)?.as_bytes(),
    )?;
    let mut rows = Vec::new();
    trainer::per_sample_rows(split, &res, &classes, &mut rows);
    trainer::write_per_sample_csv(&out.join("predictions.csv"), &classes, &rows)?;

    let flat: Vec<f64> = res.probs.iter().flatten().copied().collect();
    let history = (!state.history.is_empty()).then_some(state.history.as_slice());
    let title = format!("{split} — {}", ckpt.display());
    write_report(
        out,
        &ReportInput {
            title,
            class_names: &classes,
            metrics: &metrics,
            per_group: &per_group,
            history,
            probs: &flat,
            labels: &res.labels,
        },
    )
    .with_context(|| format!("writing the report in {}", out.display()))?;
    eprintln!("eval: {split}: metrics and report in {}", out.display());
    Ok(EvalSummary {
        metrics,
        out_dir: out.to_path_buf(),
    })
}
