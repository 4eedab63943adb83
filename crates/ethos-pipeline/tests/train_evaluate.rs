//! The pipeline layer without the binary: synthesise a tiny dataset, train a tiny model, evaluate
//! it, and continue a finished run into a new folder, all through `ethos_pipeline` calls.

use std::path::Path;

use ethos_data::synth::SynthSpec;
use ethos_pipeline::evaluate::{EvalOptions, evaluate};
use ethos_pipeline::progress::Quiet;
use ethos_pipeline::run_dir::{BEST_CKPT, LAST_CKPT, run_checkpoint};
use ethos_pipeline::train::{TrainOptions, train};
use ethos_pipeline::{RunConfig, synth};

fn config(data: &Path, run: &Path) -> RunConfig {
    let sets: Vec<String> = [
        "data.input_size=32",
        "data.cache_short_side=40",
        "data.num_frames=4",
        "data.fps=4",
        "data.batch_size=4",
        "model.arch=r3d_18",
        "model.preset=r3d_demo",
        "train.epochs=2",
        "train.device=cpu",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("train.run_dir={}", run.display())])
    .collect();
    RunConfig::load(&data.join("config.yaml"), &sets).unwrap()
}

#[test]
fn trains_evaluates_and_continues_a_run_through_library_calls() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let spec = SynthSpec {
        events: 24,
        width: 160,
        height: 96,
        minutes: 0.5,
        imbalance: 2.0,
        seed: 3,
        ..SynthSpec::default()
    };
    synth::synth(&spec, &data, &Quiet).unwrap();
    let run = dir.path().join("run");
    let cfg = config(&data, &run);

    let s = train(&cfg, &TrainOptions::default()).unwrap();
    assert!(s.finished);
    assert_eq!(s.run_dir, run);
    for f in [
        LAST_CKPT,
        BEST_CKPT,
        "history.csv",
        "metrics.json",
        "config.yaml",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    let mut history = csv::Reader::from_path(run.join("history.csv")).unwrap();
    assert_eq!(history.records().count(), 2);

    // Evaluating the run's checkpoint on val gives what training reported for it.
    let ckpt = run_checkpoint(&run).unwrap();
    let e = evaluate(&EvalOptions {
        checkpoint: ckpt,
        config: None,
        overrides: Vec::new(),
        split: "val".into(),
        out: dir.path().join("eval"),
        no_calibration: false,
    })
    .unwrap();
    let reported: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("metrics.json")).unwrap()).unwrap();
    let ours = serde_json::to_value(&e.metrics).unwrap();
    assert_eq!(reported["macro_f1"], ours["macro_f1"]);
    assert_eq!(reported["accuracy"], ours["accuracy"]);
    assert!(e.out_dir.join("report.html").is_file());

    // A second fresh start into the same folder is refused; continuing the finished run into a
    // new folder copies it there and leaves the source untouched.
    let again = train(&cfg, &TrainOptions::default()).unwrap_err();
    assert!(again.is_bad_input(), "{again}");
    let before = std::fs::read(run.join(LAST_CKPT)).unwrap();
    let moved = dir.path().join("moved");
    let s = train(
        &cfg,
        &TrainOptions {
            resume: Some(run.join(LAST_CKPT)),
            out: Some(moved.clone()),
            ..TrainOptions::default()
        },
    )
    .unwrap();
    assert!(s.finished);
    assert_eq!(s.run_dir, moved);
    assert!(moved.join(BEST_CKPT).is_file() && moved.join("metrics.json").is_file());
    assert_eq!(std::fs::read(run.join(LAST_CKPT)).unwrap(), before);
}

#[test]
fn a_class_list_other_than_the_checkpoints_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let spec = SynthSpec {
        events: 24,
        width: 160,
        height: 96,
        minutes: 0.5,
        imbalance: 2.0,
        seed: 4,
        ..SynthSpec::default()
    };
    synth::synth(&spec, &data, &Quiet).unwrap();
    let run = dir.path().join("run");
    let mut cfg = config(&data, &run);
    cfg.train.epochs = 1;
    train(&cfg, &TrainOptions::default()).unwrap();
    let e = evaluate(&EvalOptions {
        checkpoint: run.join(LAST_CKPT),
        config: None,
        overrides: vec!["data.classes=[tail, ear]".into()],
        split: "val".into(),
        out: dir.path().join("eval"),
        no_calibration: false,
    })
    .unwrap_err();
    assert!(e.is_bad_input());
    assert!(e.to_string().contains("[tail, ear]"), "{e}");
}
