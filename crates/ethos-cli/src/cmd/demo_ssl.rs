//! `ethos demo --ssl`: experiment E2 vs E3 on synthetic data (`ethos_pipeline::demo_ssl`): the
//! tiny V-JEPA 2 + FERAL head fine-tuned from its initial weights and after `ethos pretrain` on the
//! unlabelled footage of every camera, same seeds; prints val and OOD `f1_tail` / `auc_tail` per
//! seed and their means, and the results as JSON on stdout.

use ethos_pipeline::demo_ssl::{SslDemoOptions, demo_ssl};

/// Runs the E2-vs-E3 demo with the flags of `ethos demo`.
pub fn run(args: &super::demo::Args) -> anyhow::Result<()> {
    let seeds: Vec<u64> = (0..args.seeds.max(1) as u64)
        .map(|i| args.seed + i)
        .collect();
    let s = demo_ssl(&SslDemoOptions {
        out: args.out.clone(),
        events: args.events,
        resolution: args.resolution,
        minutes: 6.0,
        data_seed: args.seed,
        seeds,
        overrides: args.set.clone(),
        pretrain_overrides: args.pretrain_set.clone(),
    })?;
    let f = |v: Option<f64>| v.map_or("n/a".to_string(), |x| format!("{x:.3}"));
    let mut lines = vec![
        String::new(),
        format!(
            "{:<14} {:>4} {:<9} {:>8} {:>8} {:>9}",
            "variant", "seed", "split", "f1_tail", "auc_tail", "macro_f1"
        ),
    ];
    for r in &s.rows {
        lines.push(format!(
            "{:<14} {:>4} {:<9} {:>8} {:>8} {:>9}",
            r.variant,
            r.seed,
            r.split,
            f(r.f1_tail),
            f(r.auc_tail),
            f(r.macro_f1)
        ));
    }
    lines.push(String::new());
    for variant in ["e2_init", "e3_pretrained"] {
        for split in ["val", "test_ood"] {
            let m = |metric| {
                s.mean_std(variant, split, metric)
                    .map_or("n/a".to_string(), |(m, sd, n)| {
                        format!("{m:.3} ± {sd:.3} (n={n})")
                    })
            };
            lines.push(format!(
                "mean {variant:<14} {split:<9} f1_tail {}  auc_tail {}",
                m("f1_tail"),
                m("auc_tail")
            ));
        }
    }
    for (seed, a, b) in &s.pretrain_loss {
        lines.push(format!("pretraining loss, seed {seed}: {a:.4} -> {b:.4}"));
    }
    lines.push(format!(
        "demo --ssl: finished in {:.0} s; results {}",
        s.seconds,
        s.results.display()
    ));
    crate::output::lines(&lines);
    crate::output::json(&s)
}
