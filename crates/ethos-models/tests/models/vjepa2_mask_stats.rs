//! The multi-block mask generator against the statistics of V-JEPA 2's own generator
//! (`shared/reference/vjepa2_ssl_tiny/mask_stats.json`): for each grid and mask group, the mean of the
//! target fraction within 0.02 and its standard deviation within 25%, for batch 1 and batch 4 (where
//! every sample's lists are cut to the batch's shortest). The random streams differ, so statistics are
//! compared, not masks.

use std::path::PathBuf;

use ethos_models::vjepa2_masks::{MaskConfig, MultiBlockMasks};

fn stats_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/reference/vjepa2_ssl_tiny/mask_stats.json")
}

fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    (mean, var.sqrt())
}

#[test]
fn target_fractions_match_the_official_generator() {
    let path = stats_file();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the shared reference must sit beside the repository)",
            path.display()
        )
    });
    let stats: serde_json::Value = serde_json::from_str(&text).unwrap();
    let configs: Vec<MaskConfig> =
        serde_json::from_value(stats["mask_configs"].clone()).expect("mask_configs parse");
    assert_eq!(
        configs,
        MaskConfig::vjepa2_default(),
        "the reference uses the default recipe"
    );
    let draws = stats["draws"].as_u64().unwrap();
    let grids = stats["grids"].as_array().unwrap();
    assert_eq!(grids.len(), 2);
    let mut failures = Vec::new();
    eprintln!("grid | group | batch | ref mean | port mean | ref std | port std");
    for grid in grids {
        let thw: Vec<i64> = serde_json::from_value(grid["grid_thw"].clone()).unwrap();
        let generator = MultiBlockMasks::new([thw[0], thw[1], thw[2]], configs.clone()).unwrap();
        let tokens = generator.num_tokens();
        for batch in [1usize, 4] {
            let mut fractions = vec![Vec::with_capacity(draws as usize); configs.len()];
            for step in 0..draws {
                for (g, group) in generator
                    .generate(2024, step, batch)
                    .unwrap()
                    .iter()
                    .enumerate()
                {
                    fractions[g].push(group.target_fraction(tokens));
                }
            }
            for (g, values) in fractions.iter().enumerate() {
                let reference = &grid["groups"][g][format!("target_fraction_batch{batch}")];
                let (ref_mean, ref_std) = (
                    reference["mean"].as_f64().unwrap(),
                    reference["std"].as_f64().unwrap(),
                );
                let (mean, std) = mean_std(values);
                eprintln!(
                    "{thw:?} | {g} | {batch} | {ref_mean:.4} | {mean:.4} | {ref_std:.4} | {std:.4}"
                );
                if (mean - ref_mean).abs() > 0.02 {
                    failures.push(format!(
                        "{thw:?} group {g} batch {batch}: mean {mean} vs {ref_mean}"
                    ));
                }
                if (std - ref_std).abs() > 0.25 * ref_std {
                    failures.push(format!(
                        "{thw:?} group {g} batch {batch}: std {std} vs {ref_std}"
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
