//! The events CSV ethos trains from, written and read with the `csv` crate (so any path or class
//! name with commas, quotes or newlines round-trips).
//!
//! Columns written: `event_idx,video,start_s,duration_s,behavior,subject,modifiers,observation,
//! group,camera,split` and `score` when any event has one. The first five are what
//! `ethos_data::manifest::EventsManifest` requires; it reads `group`, `camera` and `split` and
//! ignores the others. Times are seconds from the first frame of `video`, written with at most
//! six decimals.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::error::{AnnotError, read_file};
use crate::problems::{Problem, ProblemKind, Problems};

/// One event (bout) on a video's timeline.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct AnnotEvent {
    /// Id from an events CSV that was read; assigned 1.. in output order when written.
    pub event_idx: Option<u32>,
    /// The video: a path relative to the videos root, or the media path as the tool wrote it.
    pub video: String,
    /// Start in seconds from the video's first frame.
    pub start_s: f64,
    /// Length in seconds (> 0).
    pub duration_s: f64,
    /// Class (behaviour) name.
    pub behavior: String,
    /// Subject (animal) coded, if any.
    pub subject: Option<String>,
    /// Modifiers as the tool joined them (`left|fast` for BORIS), if any.
    pub modifiers: Option<String>,
    /// Observation / task / track the event came from.
    pub observation: Option<String>,
    /// Group (pen), if known.
    pub group: Option<String>,
    /// Camera, if known.
    pub camera: Option<String>,
    /// Split name, if assigned.
    pub split: Option<String>,
    /// Model score of a predicted event, if any.
    pub score: Option<f64>,
}

impl AnnotEvent {
    /// End in seconds.
    pub fn end_s(&self) -> f64 {
        self.start_s + self.duration_s
    }
}

/// Columns of the events CSV, in order (without the optional `score`).
pub const COLUMNS: [&str; 11] = [
    "event_idx",
    "video",
    "start_s",
    "duration_s",
    "behavior",
    "subject",
    "modifiers",
    "observation",
    "group",
    "camera",
    "split",
];

/// Seconds as written in the events CSV: rounded to microseconds, shortest form.
pub fn fmt_seconds(s: f64) -> String {
    let r = (s * 1e6).round() / 1e6;
    // `-0` would read back fine but looks wrong.
    if r == 0.0 { "0".into() } else { format!("{r}") }
}

/// The events CSV as bytes; `event_idx` is 1.. in the given order.
pub fn events_csv_bytes(events: &[AnnotEvent]) -> Vec<u8> {
    let with_score = events.iter().any(|e| e.score.is_some());
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<&str> = COLUMNS.to_vec();
    if with_score {
        header.push("score");
    }
    // Writing into a Vec cannot fail.
    let _ = w.write_record(&header);
    for (i, e) in events.iter().enumerate() {
        let o = |v: &Option<String>| v.clone().unwrap_or_default();
        let mut row = vec![
            (i + 1).to_string(),
            e.video.clone(),
            fmt_seconds(e.start_s),
            fmt_seconds(e.duration_s),
            e.behavior.clone(),
            o(&e.subject),
            o(&e.modifiers),
            o(&e.observation),
            o(&e.group),
            o(&e.camera),
            o(&e.split),
        ];
        if with_score {
            row.push(e.score.map(|s| format!("{s:.4}")).unwrap_or_default());
        }
        let _ = w.write_record(&row);
    }
    w.into_inner().unwrap_or_default()
}

/// Writes `events` as an events CSV to `path` (atomically).
pub fn write_events_csv(path: &Path, events: &[AnnotEvent]) -> Result<(), AnnotError> {
    let bytes = events_csv_bytes(events);
    write_atomic(path, &bytes)
}

/// Writes `bytes` to `path` atomically (temporary name, fsync, rename).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), AnnotError> {
    ethos_core::fs::write_atomic(path, |f| f.write_all(bytes)).map_err(|source| AnnotError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads an events CSV (ethos's own, or `NAME.events.csv` of `ethos predict`): needs `video`,
/// `start_s`, `duration_s` and `behavior`; reads `event_idx`, `subject`, `modifiers`,
/// `observation`, `group`, `camera`, `split` and `score` when present. Every problem is reported
/// with its line, column and value.
pub fn read_events_csv(path: &Path) -> Result<Vec<AnnotEvent>, AnnotError> {
    let bytes = read_file(path)?;
    let mut problems = Vec::new();
    let events = parse_events_csv(&bytes, path, &mut problems);
    if problems.is_empty() {
        Ok(events)
    } else {
        Err(AnnotError::Problems {
            problems: Problems(problems),
        })
    }
}

/// Parses events-CSV bytes; problems go to `problems`.
pub fn parse_events_csv(bytes: &[u8], path: &Path, problems: &mut Vec<Problem>) -> Vec<AnnotEvent> {
    let mut r = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let header: Vec<String> = match r.headers() {
        Ok(h) => h
            .iter()
            .map(|s| s.trim_start_matches('\u{feff}').to_string())
            .collect(),
        Err(e) => {
            problems.push(Problem::new(
                ProblemKind::Unreadable,
                path,
                "header",
                format!("cannot read the CSV header: {e}"),
            ));
            return Vec::new();
        }
    };
    let col = |n: &str| header.iter().position(|h| h == n);
    let missing: Vec<&str> = ["video", "start_s", "duration_s", "behavior"]
        .into_iter()
        .filter(|c| col(c).is_none())
        .collect();
    if !missing.is_empty() {
        problems.push(Problem::new(
            ProblemKind::Unreadable,
            path,
            "header",
            format!(
                "missing column(s) {} (header: {})",
                missing.join(", "),
                header.join(",")
            ),
        ));
        return Vec::new();
    }
    let c = |n: &str| col(n);
    let (cv, cs, cd, cb) = (
        c("video").unwrap_or(0),
        c("start_s").unwrap_or(0),
        c("duration_s").unwrap_or(0),
        c("behavior").unwrap_or(0),
    );
    let opt_cols: BTreeMap<&str, Option<usize>> = [
        "event_idx",
        "subject",
        "modifiers",
        "observation",
        "group",
        "camera",
        "split",
        "score",
    ]
    .into_iter()
    .map(|n| (n, c(n)))
    .collect();
    let mut out = Vec::new();
    let mut seen: BTreeMap<u32, u64> = BTreeMap::new();
    for rec in r.records() {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                problems.push(Problem::new(
                    ProblemKind::Unreadable,
                    path,
                    format!("line {line}"),
                    format!("unreadable CSV: {e}"),
                ));
                if matches!(e.kind(), csv::ErrorKind::Utf8 { .. }) {
                    continue;
                }
                break;
            }
        };
        let line = rec.position().map_or(0, |p| p.line());
        if rec.iter().all(str::is_empty) {
            continue;
        }
        let place = format!("line {line}");
        if rec.len() != header.len() {
            problems.push(Problem::new(
                ProblemKind::Invalid,
                path,
                place,
                format!("has {} fields, the header has {}", rec.len(), header.len()),
            ));
            continue;
        }
        let before = problems.len();
        let get = |i: usize| rec.get(i).unwrap_or("").to_string();
        let opt = |n: &str| opt_cols[n].map(get).filter(|v: &String| !v.is_empty());
        let num = |i: usize, name: &str, problems: &mut Vec<Problem>| -> Option<f64> {
            let v = get(i);
            match v.parse::<f64>() {
                Ok(x) if x.is_finite() => Some(x),
                _ => {
                    problems.push(
                        Problem::new(
                            ProblemKind::Invalid,
                            path,
                            format!("line {line}, column {name}"),
                            "not a finite number",
                        )
                        .value(v),
                    );
                    None
                }
            }
        };
        let start = num(cs, "start_s", problems);
        let dur = num(cd, "duration_s", problems);
        if let Some(s) = start
            && s < 0.0
        {
            problems.push(
                Problem::new(
                    ProblemKind::Invalid,
                    path,
                    format!("line {line}, column start_s"),
                    "negative start time",
                )
                .value(get(cs)),
            );
        }
        if let Some(d) = dur
            && d <= 0.0
        {
            problems.push(
                Problem::new(
                    ProblemKind::Invalid,
                    path,
                    format!("line {line}, column duration_s"),
                    "duration must be > 0 seconds",
                )
                .value(get(cd)),
            );
        }
        let video = get(cv);
        if video.is_empty() {
            problems.push(Problem::new(
                ProblemKind::Invalid,
                path,
                format!("line {line}, column video"),
                "empty video",
            ));
        }
        let behavior = get(cb);
        if behavior.is_empty() {
            problems.push(Problem::new(
                ProblemKind::Invalid,
                path,
                format!("line {line}, column behavior"),
                "empty behavior",
            ));
        }
        let event_idx = match opt("event_idx") {
            None => None,
            Some(v) => match v.parse::<u32>() {
                Ok(i) => {
                    if let Some(first) = seen.insert(i, line) {
                        problems.push(
                            Problem::new(
                                ProblemKind::Invalid,
                                path,
                                format!("line {line}, column event_idx"),
                                format!("duplicate event_idx (first on line {first})"),
                            )
                            .value(v),
                        );
                    }
                    Some(i)
                }
                Err(_) => {
                    problems.push(
                        Problem::new(
                            ProblemKind::Invalid,
                            path,
                            format!("line {line}, column event_idx"),
                            "not a non-negative integer",
                        )
                        .value(v),
                    );
                    None
                }
            },
        };
        let score = match opt("score") {
            None => None,
            Some(v) => match v.parse::<f64>() {
                Ok(x) if x.is_finite() => Some(x),
                _ => {
                    problems.push(
                        Problem::new(
                            ProblemKind::Invalid,
                            path,
                            format!("line {line}, column score"),
                            "not a finite number",
                        )
                        .value(v),
                    );
                    None
                }
            },
        };
        if problems.len() != before {
            continue;
        }
        if let (Some(start_s), Some(duration_s)) = (start, dur) {
            out.push(AnnotEvent {
                event_idx,
                video,
                start_s,
                duration_s,
                behavior,
                subject: opt("subject"),
                modifiers: opt("modifiers"),
                observation: opt("observation"),
                group: opt("group"),
                camera: opt("camera"),
                split: opt("split"),
                score,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn awkward_paths_and_names_round_trip() {
        let e = AnnotEvent {
            video: "cam 1/day,\"one\"\nx.mp4".into(),
            start_s: 1.0 / 3.0,
            duration_s: 2.5,
            behavior: "ear, left".into(),
            subject: Some("calf \"1\"".into()),
            modifiers: Some("a|b".into()),
            observation: Some("obs".into()),
            score: Some(0.75),
            ..AnnotEvent::default()
        };
        let bytes = events_csv_bytes(std::slice::from_ref(&e));
        let mut problems = Vec::new();
        let back = parse_events_csv(&bytes, Path::new("x.csv"), &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].video, e.video);
        assert_eq!(back[0].behavior, e.behavior);
        assert_eq!(back[0].subject, e.subject);
        assert_eq!(back[0].event_idx, Some(1));
        assert!((back[0].start_s - e.start_s).abs() < 1e-6);
        assert_eq!(back[0].score, Some(0.75));
    }

    #[test]
    fn predict_events_csv_is_read() {
        let text = "event_idx,video,start_s,duration_s,behavior,score\n1,/x/closeup.mp4,1.5000,2.0000,ear,0.8123\n";
        let mut problems = Vec::new();
        let ev = parse_events_csv(text.as_bytes(), Path::new("p.events.csv"), &mut problems);
        assert!(problems.is_empty());
        assert_eq!(ev[0].video, "/x/closeup.mp4");
        assert_eq!(ev[0].score, Some(0.8123));
    }

    #[test]
    fn bad_rows_are_all_reported_with_line_and_value() {
        let text = "video,start_s,duration_s,behavior\na.mp4,x,1,ear\na.mp4,1,-2,ear\n";
        let mut problems = Vec::new();
        let ev = parse_events_csv(text.as_bytes(), Path::new("e.csv"), &mut problems);
        assert!(ev.is_empty());
        assert_eq!(problems.len(), 2);
        assert!(problems[0].to_string().contains("line 2, column start_s"));
        assert!(problems[1].to_string().contains("value \"-2\""));
    }
}
