//! Any bytes as a per-sample predictions CSV (`ethos metrics`): rows or an error, never a panic;
//! every probability read is in [0, 1] and the metrics of the rows can be computed or refused.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use ethos_eval::predictions_csv::Predictions;
use libfuzzer_sys::fuzz_target;

fn scratch() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let dir = std::path::Path::new("/dev/shm");
        let dir = if dir.is_dir() { dir.to_path_buf() } else { std::env::temp_dir() };
        dir.join(format!("ethos-fuzz-predictions-{}.csv", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let p = scratch();
    if std::fs::write(p, data).is_err() {
        return;
    }
    for split in [None, Some("val")] {
        if let Ok(pr) = Predictions::read(p, None, split) {
            assert_eq!(pr.probs.len(), pr.labels.len() * pr.classes.len());
            assert!(pr.probs.iter().all(|v| (0.0..=1.0).contains(v)));
            let _ = pr.metrics();
        }
    }
});
