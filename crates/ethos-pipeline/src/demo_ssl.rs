//! `ethos demo --ssl`: experiment E2 vs E3 on synthetic data, on the CPU. The same tiny V-JEPA 2
//! (`configs/vjepa2_tiny.json`) with the FERAL head is fine-tuned on the synthetic labelled clips
//! (`configs/ssl_demo_finetune.yaml`)
//!
//! - **E2**: from its initial weights (transformers' initialisation, seeded by the seed);
//! - **E3**: from the same initial weights after `ethos pretrain` (`configs/pretrain_demo.yaml`) on
//!   the unlabelled footage of every camera, the unseen (OOD) camera included, as the real 960 h
//!   covers the OOD groups. The footage is the synthetic dataset's own long videos: the labels are
//!   never used, but the windows of the labelled events are part of it, as labelled clips are cut
//!   from the same recordings in the real study;
//!
//! with the same seeds (data order, augmentation, dropout, head initialisation), then both are
//! evaluated on `val` and on the unseen camera (`test_ood`): `f1_tail`, `auc_tail`, `macro_f1`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ethos_core::Error;
use ethos_data::synth::SynthSpec;
use ethos_models::vjepa2_ssl::{ExportEncoder, Vjepa2Ssl};
use ethos_video::Codec;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::Result;
use crate::config::RunConfig;
use crate::evaluate::{EvalOptions, evaluate};
use crate::pretrain::{PretrainOptions, pretrain, ssl_config};
use crate::progress::Quiet;
use crate::train::{TrainOptions, train};

/// The pretraining sections of the demo (embedded `configs/pretrain_demo.yaml`).
pub const PRETRAIN_DEMO_YAML: &str = include_str!("../../../configs/pretrain_demo.yaml");
/// The fine-tuning sections of the demo (embedded `configs/ssl_demo_finetune.yaml`).
pub const FINETUNE_DEMO_YAML: &str = include_str!("../../../configs/ssl_demo_finetune.yaml");
/// The tiny V-JEPA 2 (embedded `configs/vjepa2_tiny.json`).
pub const TINY_VJEPA2_JSON: &str = include_str!("../../../configs/vjepa2_tiny.json");

/// What the E2-vs-E3 demo makes.
#[derive(Debug, Clone)]
pub struct SslDemoOptions {
    /// Folder for the dataset, the runs and the results.
    pub out: PathBuf,
    /// Labelled events to synthesise.
    pub events: usize,
    /// Frame size of the synthetic videos (width, height).
    pub resolution: (u32, u32),
    /// Minutes of footage per camera.
    pub minutes: f64,
    /// Seed of the dataset.
    pub data_seed: u64,
    /// Seeds of the runs: each gives one E2 and one E3 fine-tune (and one pretraining).
    pub seeds: Vec<u64>,
    /// `--set key=value` overrides of the fine-tunes.
    pub overrides: Vec<String>,
    /// `--set key=value` overrides of the pretraining.
    pub pretrain_overrides: Vec<String>,
}

/// One evaluation of the demo.
#[derive(Debug, Clone, Serialize)]
pub struct SslDemoRow {
    /// `e2_init` (from the initial weights) or `e3_pretrained` (after `ethos pretrain`).
    pub variant: String,
    /// The run seed.
    pub seed: u64,
    /// `val` or `test_ood`.
    pub split: String,
    /// Minority-class F1.
    pub f1_tail: Option<f64>,
    /// Minority-class ROC AUC.
    pub auc_tail: Option<f64>,
    /// Macro F1.
    pub macro_f1: Option<f64>,
}

/// What the demo found.
#[derive(Debug, Clone, Serialize)]
pub struct SslDemoSummary {
    /// Every evaluation.
    pub rows: Vec<SslDemoRow>,
    /// Per seed: the pretraining loss of the first and last history rows.
    pub pretrain_loss: Vec<(u64, f64, f64)>,
    /// Wall seconds in all.
    pub seconds: f64,
    /// Where the results JSON is.
    pub results: PathBuf,
}

impl SslDemoSummary {
    /// Mean and (population) standard deviation over seeds of `metric` for a variant and split.
    pub fn mean_std(&self, variant: &str, split: &str, metric: &str) -> Option<(f64, f64, usize)> {
        let v: Vec<f64> = self
            .rows
            .iter()
            .filter(|r| r.variant == variant && r.split == split)
            .filter_map(|r| match metric {
                "f1_tail" => r.f1_tail,
                "auc_tail" => r.auc_tail,
                "macro_f1" => r.macro_f1,
                _ => None,
            })
            .collect();
        if v.is_empty() {
            return None;
        }
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        Some((mean, var.sqrt(), v.len()))
    }
}

/// The synthetic dataset of the demo: three cameras (the last one unseen in training), ear/tail.
pub fn synth_spec(o: &SslDemoOptions) -> SynthSpec {
    SynthSpec {
        seed: o.data_seed,
        cameras: 3,
        videos_per_camera: 2,
        events: o.events,
        width: o.resolution.0,
        height: o.resolution.1,
        fps: 15,
        codec: Codec::H264,
        imbalance: 3.0,
        minutes: o.minutes,
        ..SynthSpec::default()
    }
}

/// Writes `data_dir/name`: synth's `config.yaml` with the sections of `overlay` laid over it.
fn overlaid_config(data_dir: &Path, overlay_yaml: &str, name: &str) -> Result<PathBuf> {
    let synth_cfg = data_dir.join("config.yaml");
    let text = std::fs::read_to_string(&synth_cfg).map_err(|e| Error::input_io(&synth_cfg, e))?;
    let mut tree: Value = serde_norway::from_str(&text)
        .map_err(|e| Error::internal(format!("parsing {}: {e}", synth_cfg.display())))?;
    let overlay: Value = serde_norway::from_str(overlay_yaml)
        .map_err(|e| Error::internal(format!("parsing an embedded demo config: {e}")))?;
    if let (Some(t), Some(o)) = (tree.as_object_mut(), overlay.as_object()) {
        for (section, keys) in o {
            let target = t
                .entry(section.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            match (target.as_object_mut(), keys.as_object()) {
                // The data paths of synth stay; every other key of the overlay wins.
                (Some(t), Some(k)) => {
                    for (key, value) in k {
                        t.insert(key.clone(), value.clone());
                    }
                }
                _ => *target = keys.clone(),
            }
        }
    }
    let path = data_dir.join(name);
    let yaml = serde_norway::to_string(&tree).unwrap_or_default();
    ethos_core::fs::write_bytes_atomic(&path, yaml.as_bytes())
        .map_err(|e| Error::output_io(&path, e))?;
    Ok(path)
}

/// Writes the initial weights of seed `seed` (transformers' initialisation after
/// `manual_seed(seed)`, predictor included) as a Hugging Face folder: what E2 fine-tunes and E3
/// pretrains from.
fn initial_weights(pretrain_cfg: &RunConfig, seed: u64, dir: &Path) -> Result<()> {
    let vc = ssl_config(pretrain_cfg)?;
    tch::manual_seed((seed & i64::MAX as u64) as i64);
    let ssl = Vjepa2Ssl::new(&vc, tch::Device::Cpu)?;
    ssl.export_hf(dir, ExportEncoder::Online)?;
    Ok(())
}

/// Runs the demo (see the module doc).
pub fn demo_ssl(o: &SslDemoOptions) -> Result<SslDemoSummary> {
    let t0 = Instant::now();
    if o.seeds.is_empty() {
        return Err(Error::bad_input("--seeds: at least one seed"));
    }
    let data_dir = o.out.join("data");
    let spec = synth_spec(o);
    if crate::synth::same_dataset(&data_dir, &spec) {
        tracing::info!(
            "demo --ssl: reusing the synthetic dataset in {}",
            data_dir.display()
        );
    } else {
        tracing::info!(
            "demo --ssl: synthesising a barn dataset in {}",
            data_dir.display()
        );
        crate::synth::synth(&spec, &data_dir, &Quiet)?;
    }
    let tiny = data_dir.join("vjepa2_tiny.json");
    ethos_core::fs::write_bytes_atomic(&tiny, TINY_VJEPA2_JSON.as_bytes())
        .map_err(|e| Error::output_io(&tiny, e))?;
    let pretrain_yaml = overlaid_config(&data_dir, PRETRAIN_DEMO_YAML, "ssl_pretrain.yaml")?;
    let finetune_yaml = overlaid_config(&data_dir, FINETUNE_DEMO_YAML, "ssl_finetune.yaml")?;
    let ssl_dir = o.out.join("ssl");
    let mut rows = Vec::new();
    let mut pretrain_loss = Vec::new();
    for &seed in &o.seeds {
        let init = ssl_dir.join(format!("init_s{seed}"));
        let mut p_sets = vec![
            format!("train.seed={seed}"),
            format!("model.weights={}", init.display()),
            format!("pretrain.videos={}", data_dir.join("videos").display()),
            format!(
                "pretrain.cache_dir={}",
                ssl_dir.join("pretrain_cache").display()
            ),
            format!(
                "pretrain.index={}",
                ssl_dir.join("pretrain_index.csv").display()
            ),
        ];
        p_sets.extend(o.pretrain_overrides.iter().cloned());
        let p_cfg = RunConfig::load(&pretrain_yaml, &p_sets)?;
        initial_weights(&p_cfg, seed, &init)?;
        tracing::info!(
            "demo --ssl: seed {seed}: pretraining (E3) on {}",
            data_dir.join("videos").display()
        );
        let p_run = ssl_dir.join(format!("pretrain_s{seed}"));
        let p = pretrain(
            &p_cfg,
            &PretrainOptions {
                out: Some(p_run.clone()),
                force: true,
                ..PretrainOptions::default()
            },
            &Quiet,
        )?;
        if let Some((a, b)) = p.loss {
            pretrain_loss.push((seed, a, b));
        }
        for (variant, weights) in [
            ("e2_init", init.clone()),
            ("e3_pretrained", p.encoder.clone()),
        ] {
            let run = ssl_dir.join(format!("{variant}_s{seed}"));
            let mut sets = vec![
                format!("train.seed={seed}"),
                format!("model.weights={}", weights.display()),
                format!("train.run_dir={}", run.display()),
            ];
            sets.extend(o.overrides.iter().cloned());
            let cfg = RunConfig::load(&finetune_yaml, &sets)?;
            tracing::info!(
                "demo --ssl: seed {seed}: fine-tuning {variant} from {}",
                weights.display()
            );
            let t = train(
                &cfg,
                &TrainOptions {
                    force: true,
                    ..TrainOptions::default()
                },
            )?;
            let ckpt = crate::run_dir::run_checkpoint(&t.run_dir)?;
            for split in ["val", "test_ood"] {
                let s = evaluate(&EvalOptions {
                    checkpoint: ckpt.clone(),
                    config: Some(finetune_yaml.clone()),
                    overrides: sets.clone(),
                    split: split.into(),
                    out: run.join(format!("eval_{split}")),
                    no_calibration: false,
                })?;
                rows.push(SslDemoRow {
                    variant: variant.into(),
                    seed,
                    split: split.into(),
                    f1_tail: s.metrics.get("f1_tail"),
                    auc_tail: s.metrics.get("auc_tail"),
                    macro_f1: s.metrics.get("macro_f1"),
                });
            }
        }
    }
    let results = o.out.join("ssl_results.json");
    let mut summary = SslDemoSummary {
        rows,
        pretrain_loss,
        seconds: 0.0,
        results: results.clone(),
    };
    summary.seconds = t0.elapsed().as_secs_f64();
    crate::write_json(&results, &summary)?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_configs_compose_over_synths_config() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = ethos_data::synth::config_yaml(&Default::default());
        std::fs::write(dir.path().join("config.yaml"), yaml).unwrap();
        std::fs::write(dir.path().join("vjepa2_tiny.json"), TINY_VJEPA2_JSON).unwrap();
        for (overlay, name) in [
            (PRETRAIN_DEMO_YAML, "p.yaml"),
            (FINETUNE_DEMO_YAML, "f.yaml"),
        ] {
            let path = overlaid_config(dir.path(), overlay, name).unwrap();
            let cfg = RunConfig::load(&path, &[]).unwrap();
            assert_eq!(cfg.data.events, dir.path().join("events.csv"));
            assert_eq!(
                cfg.model.config.as_deref(),
                Some(dir.path().join("vjepa2_tiny.json").as_path())
            );
            ssl_config(&cfg).unwrap();
        }
    }

    #[test]
    fn mean_and_spread_over_seeds() {
        let row = |seed, f1| SslDemoRow {
            variant: "e2_init".into(),
            seed,
            split: "val".into(),
            f1_tail: Some(f1),
            auc_tail: None,
            macro_f1: None,
        };
        let s = SslDemoSummary {
            rows: vec![row(0, 0.5), row(1, 0.7)],
            pretrain_loss: vec![],
            seconds: 0.0,
            results: PathBuf::new(),
        };
        let (m, sd, n) = s.mean_std("e2_init", "val", "f1_tail").unwrap();
        assert!((m - 0.6).abs() < 1e-12 && (sd - 0.1).abs() < 1e-12 && n == 2);
        assert!(s.mean_std("e2_init", "val", "auc_tail").is_none());
    }
}
