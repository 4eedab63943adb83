//! BORIS files written by BORIS's own code (tools/gen_annotation_fixtures.py): projects of
//! format versions 7.0 (plain and gzipped), 4.0 and 3.0, their aggregated exports (TSV, CSV)
//! and tabular exports. The events ethos imports from a project must equal what BORIS's own
//! aggregated export of it gives.

use std::path::{Path, PathBuf};

use ethos_annotations::import::{ImportRequest, Tool, import};
use ethos_annotations::{AnnotEvent, Policies};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn request(files: &[&str]) -> ImportRequest {
    ImportRequest {
        tool: Tool::Boris,
        files: files.iter().map(|f| fixture(f)).collect(),
        out: PathBuf::from("unused.csv"),
        videos_root: None,
        policies: Policies::default(),
        fps: None,
        video: None,
        label_config: None,
        splits: Vec::new(),
        seed: 0,
    }
}

fn events_of(files: &[&str]) -> Vec<AnnotEvent> {
    import(&request(files))
        .unwrap_or_else(|e| panic!("{files:?}: {e}"))
        .0
}

/// (video, start, duration, behaviour, subject, modifiers), times in ms.
type Key = (String, i64, i64, String, String, String);

fn key(e: &AnnotEvent) -> Key {
    (
        e.video.clone(),
        (e.start_s * 1000.0).round() as i64,
        (e.duration_s * 1000.0).round() as i64,
        e.behavior.clone(),
        e.subject.clone().unwrap_or_default(),
        e.modifiers.clone().unwrap_or_default(),
    )
}

fn keys(events: &[AnnotEvent]) -> Vec<Key> {
    let mut k: Vec<Key> = events.iter().map(key).collect();
    k.sort();
    k
}

/// The STATE bouts of BORIS's aggregated TSV export, computed here from its columns alone:
/// video = `Media file name`, video time = observation time - offset - lengths of the earlier
/// player-1 files (from `Source` and `Media duration (s)`).
fn boris_aggregated_reference(tsv: &str) -> Vec<Key> {
    let text = std::fs::read_to_string(fixture(tsv)).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let col = |n: &str| {
        header
            .iter()
            .position(|h| *h == n)
            .unwrap_or_else(|| panic!("{n}"))
    };
    let mods: Vec<usize> = header
        .iter()
        .enumerate()
        .filter(|(_, h)| h.starts_with("Modifier #"))
        .map(|(i, _)| i)
        .collect();
    let mut out = Vec::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        if f[col("Behavior type")] != "STATE" {
            continue;
        }
        let p1 = |cell: &str| -> Vec<String> {
            let first = cell.split('|').next().unwrap();
            let first = first.strip_prefix("player #1:").unwrap_or(first);
            first.split(';').map(str::to_string).collect()
        };
        let files = p1(f[col("Source")]);
        let lengths: Vec<f64> = p1(f[col("Media duration (s)")])
            .iter()
            .map(|d| d.parse().unwrap())
            .collect();
        let media = f[col("Media file name")].to_string();
        let k = files.iter().position(|x| *x == media).unwrap();
        let before: f64 = lengths[..k].iter().sum();
        let offset: f64 = f[col("Time offset (s)")].parse().unwrap();
        let start: f64 = f[col("Start (s)")].parse().unwrap();
        let dur: f64 = f[col("Duration (s)")].parse().unwrap();
        let subject = f[col("Subject")];
        let m: Vec<&str> = mods
            .iter()
            .map(|&i| f[i])
            .filter(|m| !m.is_empty())
            .collect();
        out.push((
            media,
            ((start - offset - before) * 1000.0).round() as i64,
            (dur * 1000.0).round() as i64,
            f[col("Behavior")].to_string(),
            if subject == "No focal subject" {
                String::new()
            } else {
                subject.to_string()
            },
            m.join("|"),
        ));
    }
    out.sort();
    out
}

#[test]
fn every_project_version_equals_boris_own_aggregated_export() {
    for stem in ["boris_v7", "boris_v4", "boris_v3"] {
        let got = keys(&events_of(&[&format!("{stem}.boris")]));
        let want = boris_aggregated_reference(&format!("{stem}.aggregated.tsv"));
        assert!(!want.is_empty(), "{stem}");
        assert_eq!(got, want, "{stem}");
    }
    // The multi-file observation: the second file's events are on its own clock.
    let v7 = events_of(&["boris_v7.boris"]);
    let part2: Vec<&AnnotEvent> = v7
        .iter()
        .filter(|e| e.video == "/data/cam2/part2.mp4")
        .collect();
    assert_eq!(part2.len(), 1);
    assert!((part2[0].start_s - 1.0).abs() < 1e-9 && (part2[0].duration_s - 5.5).abs() < 1e-9);
    // Independent variables fill camera and group; subjects and modifiers are kept.
    let obs1: Vec<&AnnotEvent> = v7
        .iter()
        .filter(|e| e.observation.as_deref() == Some("obs1"))
        .collect();
    assert!(
        obs1.iter()
            .all(|e| e.camera.as_deref() == Some("cam1") && e.group.as_deref() == Some("pen3"))
    );
    assert!(
        obs1.iter()
            .any(|e| e.subject.is_none() && e.behavior == "tail")
    );
    assert!(obs1.iter().any(|e| e.modifiers.as_deref() == Some("right")));
}

#[test]
fn gzipped_project_and_exports_give_the_same_events() {
    let project = keys(&events_of(&["boris_v7.boris"]));
    assert_eq!(keys(&events_of(&["boris_v7.boris.gz"])), project);
    assert_eq!(keys(&events_of(&["boris_v7.aggregated.tsv"])), project);
    assert_eq!(keys(&events_of(&["boris_v7.aggregated.csv"])), project);
    assert_eq!(keys(&events_of(&["boris_v7.aggregated.xlsx"])), project);
    assert_eq!(
        keys(&events_of(&[
            "boris_v7.obs1.tabular.tsv",
            "boris_v7.obs2.tabular.csv"
        ])),
        project
    );
    assert_eq!(
        keys(&events_of(&["boris_v4.aggregated.csv"])),
        keys(&events_of(&["boris_v4.boris"]))
    );
}

#[test]
fn live_observations_and_point_events_are_skipped_and_counted() {
    let (events, summary) = import(&request(&["boris_v7.boris"])).unwrap();
    assert_eq!(
        summary.skipped.get("LIVE observations (no video)"),
        Some(&1)
    );
    assert_eq!(
        summary.skipped.get("POINT events (no --point-seconds)"),
        Some(&2)
    );
    assert!(
        summary
            .handled
            .iter()
            .any(|h| h.problem.contains("observation \"live1\""))
    );
    assert!(events.iter().all(|e| e.behavior != "groom"));
    assert!(
        summary.notes.iter().any(|n| n.contains("format 7.0")),
        "{:?}",
        summary.notes
    );

    let mut req = request(&["boris_v7.boris"]);
    req.policies.point_seconds = Some(2.0);
    let (events, _) = import(&req).unwrap();
    let grooms: Vec<&AnnotEvent> = events.iter().filter(|e| e.behavior == "groom").collect();
    assert_eq!(grooms.len(), 2);
    // Centred on 9.0 s (obs1) and on 40.0 s = 10.0 s into part2.mp4 (obs2).
    assert!(
        grooms
            .iter()
            .any(|e| e.video.ends_with("day1.mp4") && (e.start_s - 8.0).abs() < 1e-9)
    );
    assert!(
        grooms
            .iter()
            .any(|e| e.video.ends_with("part2.mp4") && (e.start_s - 9.0).abs() < 1e-9)
    );
    assert!(grooms.iter().all(|e| (e.duration_s - 2.0).abs() < 1e-9));
}

#[test]
fn media_paths_map_to_files_under_the_videos_root() {
    let dir = tempfile::tempdir().unwrap();
    for p in [
        "cam1/day1.mp4",
        "cam2/part1.mp4",
        "cam2/part2.mp4",
        "cam2/overview.mp4",
    ] {
        let f = dir.path().join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, b"").unwrap();
    }
    let mut req = request(&["boris_v7.boris"]);
    req.videos_root = Some(dir.path().to_path_buf());
    let (events, summary) = import(&req).unwrap();
    let videos: std::collections::BTreeSet<&str> =
        events.iter().map(|e| e.video.as_str()).collect();
    assert_eq!(
        videos.into_iter().collect::<Vec<_>>(),
        ["cam1/day1.mp4", "cam2/part1.mp4", "cam2/part2.mp4"]
    );
    assert_eq!(summary.videos, 3);
}

#[test]
fn imported_events_load_in_the_ethos_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let mut req = request(&["boris_v7.boris"]);
    req.out = dir.path().join("events.csv");
    req.splits = vec![("train".into(), 0.5), ("val".into(), 0.5)];
    let summary = ethos_annotations::import::run_import(&req).unwrap();
    let m = ethos_data::manifest::EventsManifest::load(&req.out, None, &[]).unwrap();
    assert_eq!(m.events.len(), summary.events);
    assert_eq!(m.classes, ["ear", "tail"]);
    for name in ["train", "val"] {
        let split = dir.path().join(format!("events.{name}.csv"));
        let s = ethos_data::manifest::load_split(&split, &m).unwrap();
        assert_eq!(s.len(), summary.splits[name], "{name}");
        assert!(s.iter().all(|e| e.split.as_deref() == Some(name)));
    }
}

#[test]
fn a_tabular_stop_without_start_names_line_observation_and_time() {
    let text = std::fs::read_to_string(fixture("boris_v7.obs1.tabular.tsv")).unwrap();
    // Remove calf2's START of ear at 3.5 s: its STOP at 6.0 s is left alone.
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !(l.contains("\tcalf2\tear\t") && l.contains("\tSTART\t3.500\t")))
        .collect();
    assert_eq!(kept.len() + 1, text.lines().count());
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("tab.tsv");
    std::fs::write(&f, kept.join("\n")).unwrap();
    let mut req = request(&[]);
    req.files = vec![f];
    let err = import(&req).unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.problems().len(), 1, "{msg}");
    assert!(msg.contains("tab.tsv: observation \"obs1\", line 4, at 6.000 s, value \"ear\": STOP of ear of subject \"calf2\" with modifiers \"right\" has no START"), "{msg}");
    req.policies.on_unpaired = ethos_annotations::OnUnpaired::Drop;
    let (events, summary) = import(&req).unwrap();
    assert_eq!(events.len(), 3);
    assert_eq!(summary.handled.len(), 1);
}
