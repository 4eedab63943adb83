//! Property tests of config composition (YAML + `--set` overrides): any text and any override
//! give a config or a bad-input error (exit code 2), never a panic; valid overrides land on their
//! key exactly; invalid values are refused naming the key.

use std::path::Path;

use ethos_pipeline::{ErrorKind, RunConfig};
use proptest::prelude::*;

const BASE: &str = "data:\n  classes: [ear, tail]\n  events: events.csv\n  splits:\n    train: train.csv\n    val: val.csv\nmodel:\n  preset: mvit_demo\n";

fn load(text: &str, sets: &[String]) -> ethos_pipeline::Result<RunConfig> {
    RunConfig::from_yaml_str(text, Path::new("/nowhere/config.yaml"), sets)
}

/// Keys of every section, real and misspelt.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("optim.lr".to_string()),
        Just("optim.weight_decay".to_string()),
        Just("train.epochs".to_string()),
        Just("train.seed".to_string()),
        Just("train.metric_key".to_string()),
        Just("train.min_delta".to_string()),
        Just("data.batch_size".to_string()),
        Just("data.num_workers".to_string()),
        Just("data.fps".to_string()),
        Just("data.num_frames".to_string()),
        Just("data.classes".to_string()),
        Just("loss.focal_gamma".to_string()),
        Just("loss.label_smoothing".to_string()),
        Just("sched.warmup_epochs".to_string()),
        Just("augmentation.mixup_alpha".to_string()),
        Just("model.arch".to_string()),
        Just("model.head_dropout".to_string()),
        "[a-z]{1,8}(\\.[a-z_]{1,10}){0,3}",
    ]
}

/// Values: numbers of every kind, YAML oddities, lists, text.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| v.to_string()),
        Just(".nan".to_string()),
        Just(".inf".to_string()),
        Just("-.inf".to_string()),
        Just("~".to_string()),
        Just("[]".to_string()),
        Just("[tail,ear]".to_string()),
        Just("{a: 1}".to_string()),
        Just("[[".to_string()),
        Just("true".to_string()),
        "[ -~]{0,16}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_override_gives_a_config_or_a_bad_input_error(
        sets in proptest::collection::vec((key(), value()), 0..4),
        raw in proptest::collection::vec("[ -~]{0,20}", 0..2),
    ) {
        let mut all: Vec<String> = sets.iter().map(|(k, v)| format!("{k}={v}")).collect();
        all.extend(raw);
        if let Err(e) = load(BASE, &all) {
            prop_assert_eq!(e.kind(), ErrorKind::BadInput, "{:?}", e);
        }
    }

    #[test]
    fn any_yaml_text_gives_a_config_or_a_bad_input_error(text in "[ -~\n]{0,200}") {
        if let Err(e) = load(&text, &[]) {
            prop_assert_eq!(e.kind(), ErrorKind::BadInput, "{:?}", e);
        }
    }

    #[test]
    fn valid_overrides_land_exactly(
        lr in 1e-9f64..10.0,
        epochs in 1usize..500,
        seed in any::<u32>(),
        batch in 1usize..64,
    ) {
        let sets = vec![
            format!("optim.lr={lr:e}"),
            format!("train.epochs={epochs}"),
            format!("train.seed={seed}"),
            format!("data.batch_size={batch}"),
        ];
        let cfg = load(BASE, &sets).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        prop_assert_eq!(cfg.optim.lr, lr);
        prop_assert_eq!(cfg.train.epochs, epochs);
        prop_assert_eq!(cfg.train.seed, u64::from(seed));
        prop_assert_eq!(cfg.data.batch_size, batch);
        // The same values through YAML give the same config.
        let text = format!("{BASE}optim:\n  lr: {lr:e}\ntrain:\n  epochs: {epochs}\n  seed: {seed}\n");
        let via_yaml = load(&text, &[format!("data.batch_size={batch}")])
            .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        prop_assert_eq!(via_yaml.hash(), cfg.hash());
    }

    #[test]
    fn out_of_range_values_are_refused_naming_the_key(
        lr in prop_oneof![-1e9f64..=0.0, Just(f64::NAN), Just(f64::INFINITY)],
    ) {
        let v = if lr.is_nan() { ".nan".to_string() } else if lr.is_infinite() { ".inf".to_string() } else { format!("{lr:e}") };
        let e = match load(BASE, &[format!("optim.lr={v}")]) {
            Err(e) => e,
            Ok(_) => return Err(TestCaseError::fail(format!("optim.lr={v} accepted"))),
        };
        prop_assert_eq!(e.kind(), ErrorKind::BadInput);
        prop_assert!(format!("{e:?}").contains("optim.lr"), "{:?}", e);
    }
}
