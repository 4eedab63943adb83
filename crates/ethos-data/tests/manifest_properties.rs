//! Property tests of the manifest reader on untrusted input: any bytes give events or a list of
//! problems, never a panic; a file of well-formed rows is either read whole (one event per row)
//! or refused with every problem naming a line of the file.

use std::path::Path;

use ethos_data::manifest::{EventsManifest, ManifestError, load_split};
use proptest::prelude::*;

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// A cell value: valid ones and the mistakes people make.
fn cell() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u32..50).prop_map(|v| v.to_string()),
        (-5.0f64..500.0).prop_map(|v| format!("{v:.3}")),
        Just("ear".to_string()),
        Just("tail".to_string()),
        Just("a.mp4".to_string()),
        Just(String::new()),
        Just("nan".to_string()),
        Just("inf".to_string()),
        Just("-1".to_string()),
        Just("1e400".to_string()),
        "[a-z0-9_./]{1,8}",
    ]
}

const HEADER: &str = "event_idx,video,start_s,duration_s,behavior,split";

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_give_events_or_problems(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "events.csv", &bytes);
        let classes = ["ear".to_string(), "tail".to_string()];
        match EventsManifest::load(&p, None, &classes) {
            Ok(m) => {
                for e in &m.events {
                    prop_assert!(e.start_s.is_finite() && e.start_s >= 0.0);
                    prop_assert!(e.duration_s.is_finite() && e.duration_s > 0.0);
                    prop_assert!(e.class_index < classes.len());
                }
                // A split file of the same bytes: ids or problems, never a panic.
                let _ = load_split(&p, &m);
            }
            Err(e) => {
                let known = matches!(e, ManifestError::Invalid { .. } | ManifestError::Io { .. });
                prop_assert!(known, "unexpected error kind: {e}");
            }
        }
    }

    #[test]
    fn every_row_is_accepted_or_reported(
        rows in proptest::collection::vec(proptest::collection::vec(cell(), 6), 1..40),
        with_header_text in any::<bool>(),
    ) {
        let mut text = format!("{HEADER}\n");
        if with_header_text {
            text = format!("{HEADER}\r\n");
        }
        for r in &rows {
            text.push_str(&r.join(","));
            text.push('\n');
        }
        let lines = text.lines().count() as u64;
        let blank = rows.iter().filter(|r| r.iter().all(String::is_empty)).count();
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "events.csv", text.as_bytes());
        match EventsManifest::load(&p, None, &[]) {
            Ok(m) => prop_assert_eq!(m.events.len(), rows.len() - blank),
            Err(ManifestError::Invalid { problems, path }) => {
                prop_assert_eq!(path, p);
                prop_assert!(!problems.0.is_empty());
                for pr in &problems.0 {
                    if let Some(l) = pr.line {
                        prop_assert!(l >= 1 && l <= lines, "line {} of {}", l, lines);
                    }
                }
            }
            Err(e) => prop_assert!(false, "{}", e),
        }
    }
}
