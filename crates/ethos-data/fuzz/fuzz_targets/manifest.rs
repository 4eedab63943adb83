//! Any bytes as an events CSV (and as a split CSV of the events read): events or a list of
//! problems, never a panic; every event read has a finite start >= 0 and a positive length.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use ethos_data::manifest::{EventsManifest, load_split};
use libfuzzer_sys::fuzz_target;

/// The readers take a path: one scratch file per fuzzing process (in memory when /dev/shm exists).
fn scratch() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let dir = std::path::Path::new("/dev/shm");
        let dir = if dir.is_dir() { dir.to_path_buf() } else { std::env::temp_dir() };
        dir.join(format!("ethos-fuzz-manifest-{}.csv", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let p = scratch();
    if std::fs::write(p, data).is_err() {
        return;
    }
    for classes in [vec![], vec!["ear".to_string(), "tail".to_string()]] {
        if let Ok(m) = EventsManifest::load(p, None, &classes) {
            for e in &m.events {
                assert!(e.start_s.is_finite() && e.start_s >= 0.0);
                assert!(e.duration_s.is_finite() && e.duration_s > 0.0);
                assert!(e.class_index < m.classes.len());
            }
            let _ = load_split(p, &m);
        }
    }
});
