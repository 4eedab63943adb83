//! `ethos demo [--out DIR]`: the whole pipeline on the CPU in minutes, with nothing to download —
//! synthesises a barn dataset (`ethos synth`), builds the decoded-clip cache, trains the small
//! `r3d_demo` 3-D ResNet from scratch (`configs/demo.yaml`, embedded), evaluates on `val` and on the
//! unseen camera (`test_ood`), writes the reports and prints a table.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::{Map, Value};

use crate::config::RunConfig;

/// The demo's training sections, laid over the `config.yaml` that synth writes.
const DEMO_YAML: &str = include_str!("../../../../configs/demo.yaml");

/// Arguments of `ethos demo`.
#[derive(clap::Args)]
pub struct Args {
    /// Folder for the dataset, the run and the reports (a rerun reuses the dataset and cache and
    /// retrains).
    #[arg(long, default_value = "demo-out")]
    pub out: PathBuf,
    /// Labelled events to synthesise.
    #[arg(long, default_value_t = 480)]
    pub events: usize,
    /// Frame size of the synthetic videos, WxH.
    #[arg(long, default_value = "320x192")]
    pub resolution: String,
    /// Seed of the dataset and the run.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Override a config key (repeatable), e.g. `--set train.epochs=4`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// Runs `ethos demo`.
pub fn run(args: Args) -> Result<()> {
    let t0 = Instant::now();
    let data_dir = args.out.join("data");
    if data_dir.join("synth.json").is_file() && data_dir.join("config.yaml").is_file() {
        eprintln!(
            "demo: reusing the synthetic dataset in {}",
            data_dir.display()
        );
    } else {
        eprintln!(
            "demo: [1/4] synthesising a barn dataset in {}",
            data_dir.display()
        );
        super::synth::run(super::synth::Args {
            out: data_dir.clone(),
            seed: args.seed,
            cameras: 3,
            videos_per_camera: 2,
            events: args.events,
            resolution: args.resolution.clone(),
            fps: 15,
            codec: "h264".into(),
            imbalance: 3.0,
            minutes: 6.0,
        })?;
    }

    let synth_cfg = data_dir.join("config.yaml");
    let text = std::fs::read_to_string(&synth_cfg)
        .with_context(|| format!("reading {}", synth_cfg.display()))?;
    let mut tree: Value = serde_norway::from_str(&text)
        .with_context(|| format!("parsing {}", synth_cfg.display()))?;
    let overlay: Value =
        serde_norway::from_str(DEMO_YAML).context("parsing the embedded configs/demo.yaml")?;
    overlay_sections(&mut tree, &overlay);
    let demo_cfg = data_dir.join("demo.yaml");
    std::fs::write(&demo_cfg, serde_norway::to_string(&tree)?)
        .with_context(|| format!("writing {}", demo_cfg.display()))?;
    let mut overrides = vec![format!("train.seed={}", args.seed)];
    overrides.extend(args.set.iter().cloned());
    let cfg = RunConfig::load(&demo_cfg, &overrides)?;

    eprintln!(
        "demo: [2/4] training {} on the CPU (run directory {})",
        cfg.model.preset.as_deref().unwrap_or("?"),
        cfg.run_dir().display()
    );
    let t_train = Instant::now();
    let summary = super::train::execute(&cfg, None, true, None)?;
    let train_s = t_train.elapsed().as_secs_f64();
    let ckpt = {
        let best = summary.run_dir.join("best.ckpt");
        if best.is_file() {
            best
        } else {
            summary.run_dir.join("last.ckpt")
        }
    };

    let mut rows = Vec::new();
    for (i, split) in ["val", "test_ood"].iter().enumerate() {
        eprintln!("demo: [{}/4] evaluating on {split}", 3 + i);
        let out = args.out.join(format!("eval_{split}"));
        let s = super::eval::evaluate_checkpoint(&ckpt, Some(&demo_cfg), &overrides, split, &out)?;
        rows.push((
            split.to_string(),
            serde_json::to_value(&s.metrics)?,
            s.out_dir,
        ));
    }

    let get = |m: &Value, k: &str| {
        m.get(k)
            .and_then(Value::as_f64)
            .map_or("n/a".to_string(), |v| format!("{v:.3}"))
    };
    eprintln!();
    eprintln!(
        "{:<10} {:>8} {:>9} {:>8} {:>8} {:>9}",
        "split", "f1_tail", "macro_f1", "auc_tail", "ap_tail", "accuracy"
    );
    for (split, m, _) in &rows {
        eprintln!(
            "{:<10} {:>8} {:>9} {:>8} {:>8} {:>9}",
            split,
            get(m, "f1_tail"),
            get(m, "macro_f1"),
            get(m, "auc_tail"),
            get(m, "ap_tail"),
            get(m, "accuracy")
        );
    }
    eprintln!();
    eprintln!(
        "demo: finished in {:.0} s (training {:.0} s)",
        t0.elapsed().as_secs_f64(),
        train_s
    );
    let run_dir = std::fs::canonicalize(&summary.run_dir).unwrap_or(summary.run_dir.clone());
    eprintln!("demo: run directory   {}", run_dir.display());
    if let Some((value, epoch)) = summary.best {
        eprintln!(
            "demo: best {} {value:.3} at epoch {epoch}",
            cfg.train.metric_key
        );
    }
    for (split, _, out) in &rows {
        eprintln!(
            "demo: {split:<8} report {}",
            out.join("report.html").display()
        );
    }
    let result: Map<String, Value> = rows.into_iter().map(|(s, m, _)| (s, m)).collect();
    println!("{}", serde_json::to_string_pretty(&result)?);
    Ok(())
}

/// Sets every `section.key` of `overlay` in `tree` (both YAML mappings of sections).
fn overlay_sections(tree: &mut Value, overlay: &Value) {
    let (Some(tree), Some(overlay)) = (tree.as_object_mut(), overlay.as_object()) else {
        return;
    };
    for (section, keys) in overlay {
        let target = tree
            .entry(section.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        match (target.as_object_mut(), keys.as_object()) {
            (Some(t), Some(k)) => {
                for (key, value) in k {
                    t.insert(key.clone(), value.clone());
                }
            }
            _ => *target = keys.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_replaces_keys_and_keeps_the_rest() {
        let mut tree: Value =
            serde_norway::from_str("data: {fps: 12, events: e.csv}\nmodel: {arch: r3d_18}")
                .unwrap();
        let overlay: Value = serde_norway::from_str("data: {fps: 8}\ntrain: {epochs: 3}").unwrap();
        overlay_sections(&mut tree, &overlay);
        assert_eq!(tree["data"]["fps"], 8);
        assert_eq!(tree["data"]["events"], "e.csv");
        assert_eq!(tree["model"]["arch"], "r3d_18");
        assert_eq!(tree["train"]["epochs"], 3);
    }

    #[test]
    fn embedded_demo_config_composes() {
        let dir = tempfile::tempdir().unwrap();
        let mut tree: Value =
            serde_norway::from_str(&ethos_data::synth::config_yaml(&Default::default())).unwrap();
        overlay_sections(&mut tree, &serde_norway::from_str(DEMO_YAML).unwrap());
        let path = dir.path().join("demo.yaml");
        RunConfig::from_yaml_str(&serde_norway::to_string(&tree).unwrap(), &path, &[]).unwrap();
    }
}
