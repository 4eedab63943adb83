//! `ethos relabel`: applies a corrections CSV to an events CSV, keeping a record of what
//! changed.
//!
//! **Corrections CSV** (what the review page writes):
//!
//! ```text
//! event_idx,action,note
//! 12,tail,was an ear suck
//! 40,drop,two calves; not one bout
//! ```
//!
//! `event_idx` names an event of the events CSV; `action` is a class name (relabel the event to
//! it) or `drop` (remove the event); `note` is optional free text (the column may be absent).
//! Unknown `event_idx`, an unknown class (not among `--classes`, else not among the events'
//! behaviours), an empty action and an `event_idx` given twice are problems: nothing is written
//! and all of them are listed (exit 2).
//!
//! The new events CSV keeps every column and row of the old one, in order, with the changed
//! `behavior` and without dropped rows; `event_idx` values are kept, so split CSVs and reviews
//! that name them stay valid. `OUT_STEM.changes.csv` beside it records each applied correction:
//! `event_idx,video,start_s,old_behavior,new_behavior,action,note` (`new_behavior` empty for
//! drops).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{AnnotError, read_file};
use crate::events::write_atomic;
use crate::problems::{Problem, ProblemKind, Problems};

/// The action word that removes an event.
pub const DROP: &str = "drop";

/// What to relabel.
#[derive(Clone, Debug)]
pub struct RelabelRequest {
    /// The events CSV.
    pub events: PathBuf,
    /// The corrections CSV.
    pub corrections: PathBuf,
    /// The new events CSV.
    pub out: PathBuf,
    /// Allowed class names (default: the events CSV's behaviours).
    pub classes: Vec<String>,
}

/// What changed.
#[derive(Clone, Debug, Serialize)]
pub struct RelabelSummary {
    /// Events in the input.
    pub events_in: usize,
    /// Events written.
    pub events_out: usize,
    /// Events given a new class.
    pub relabelled: usize,
    /// Events dropped.
    pub dropped: usize,
    /// Corrections naming the class the event already had.
    pub unchanged: usize,
    /// Events per behaviour after the corrections.
    pub by_behavior: BTreeMap<String, usize>,
    /// The new events CSV.
    pub out: String,
    /// The record of changes.
    pub changes: String,
}

/// One parsed correction.
#[derive(Clone, Debug, PartialEq)]
pub struct Correction {
    /// Line in the corrections CSV.
    pub line: u64,
    /// The event it names.
    pub event_idx: u32,
    /// `None` = drop, else the new class.
    pub new_behavior: Option<String>,
    /// Free text.
    pub note: String,
}

/// The record-of-changes file beside `out`: `STEM.changes.csv`.
pub fn changes_path(out: &Path) -> PathBuf {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "events".into());
    out.with_file_name(format!("{stem}.changes.csv"))
}

struct Table {
    header: csv::StringRecord,
    rows: Vec<(u64, csv::StringRecord)>,
}

fn read_table(bytes: &[u8], path: &Path, problems: &mut Vec<Problem>) -> Option<Table> {
    let mut r = csv::ReaderBuilder::new().flexible(true).from_reader(bytes);
    let header = match r.headers() {
        Ok(h) => {
            let mut h = h.clone();
            h.trim();
            let cleaned: Vec<String> = h
                .iter()
                .map(|s| s.trim_start_matches('\u{feff}').to_string())
                .collect();
            csv::StringRecord::from(cleaned)
        }
        Err(e) => {
            problems.push(Problem::new(
                ProblemKind::Unreadable,
                path,
                "line 1",
                format!("cannot read the CSV header: {e}"),
            ));
            return None;
        }
    };
    let mut rows = Vec::new();
    for rec in r.records() {
        match rec {
            Ok(rec) => {
                let line = rec.position().map_or(0, |p| p.line());
                if rec.iter().all(|f| f.trim().is_empty()) {
                    continue;
                }
                if rec.len() != header.len() {
                    problems.push(Problem::new(
                        ProblemKind::Invalid,
                        path,
                        format!("line {line}"),
                        format!("has {} fields, the header has {}", rec.len(), header.len()),
                    ));
                    continue;
                }
                rows.push((line, rec));
            }
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                problems.push(Problem::new(
                    ProblemKind::Unreadable,
                    path,
                    format!("line {line}"),
                    format!("unreadable CSV: {e}"),
                ));
                if !matches!(e.kind(), csv::ErrorKind::Utf8 { .. }) {
                    break;
                }
            }
        }
    }
    Some(Table { header, rows })
}

fn column(t: &Table, name: &str, path: &Path, problems: &mut Vec<Problem>) -> Option<usize> {
    let c = t.header.iter().position(|h| h == name);
    if c.is_none() {
        problems.push(
            Problem::new(
                ProblemKind::Unreadable,
                path,
                "line 1",
                format!("missing column {name}"),
            )
            .value(t.header.iter().collect::<Vec<_>>().join(",")),
        );
    }
    c
}

/// Parses corrections CSV bytes; `known` maps event_idx → its behaviour, `classes` are the
/// allowed new classes. Problems go to `problems`.
pub fn parse_corrections(
    bytes: &[u8],
    path: &Path,
    known: &HashMap<u32, String>,
    classes: &BTreeSet<String>,
    problems: &mut Vec<Problem>,
) -> Vec<Correction> {
    let Some(t) = read_table(bytes, path, problems) else {
        return Vec::new();
    };
    let (Some(c_idx), Some(c_action)) = (
        column(&t, "event_idx", path, problems),
        column(&t, "action", path, problems),
    ) else {
        return Vec::new();
    };
    let c_note = t.header.iter().position(|h| h == "note");
    let mut seen: HashMap<u32, u64> = HashMap::new();
    let mut out = Vec::new();
    for (line, row) in &t.rows {
        let place = format!("line {line}");
        let idx_text = row.get(c_idx).unwrap_or("").trim();
        let action = row.get(c_action).unwrap_or("").trim();
        let note = c_note.and_then(|c| row.get(c)).unwrap_or("").to_string();
        let Ok(idx) = idx_text.parse::<u32>() else {
            problems.push(
                Problem::new(
                    ProblemKind::Invalid,
                    path,
                    format!("{place}, column event_idx"),
                    "not a non-negative integer",
                )
                .value(idx_text),
            );
            continue;
        };
        let Some(old) = known.get(&idx) else {
            problems.push(
                Problem::new(
                    ProblemKind::Invalid,
                    path,
                    format!("{place}, column event_idx"),
                    "unknown event_idx (not in the events CSV)",
                )
                .value(idx_text),
            );
            continue;
        };
        if let Some(first) = seen.insert(idx, *line) {
            problems.push(
                Problem::new(
                    ProblemKind::Invalid,
                    path,
                    format!("{place}, column event_idx"),
                    format!("event corrected twice (first on line {first})"),
                )
                .value(idx_text),
            );
            continue;
        }
        let new_behavior = if action.eq_ignore_ascii_case(DROP) {
            None
        } else if action.is_empty() {
            problems.push(
                Problem::new(
                    ProblemKind::Invalid,
                    path,
                    format!("{place}, column action"),
                    format!("empty action (a class name or `{DROP}`; event {idx} is {old})"),
                )
                .value(action),
            );
            continue;
        } else if !classes.contains(action) {
            problems.push(
                Problem::new(
                    ProblemKind::UnknownBehavior,
                    path,
                    format!("{place}, column action"),
                    format!(
                        "unknown class (classes: {}; or `{DROP}`)",
                        classes.iter().cloned().collect::<Vec<_>>().join(", ")
                    ),
                )
                .value(action),
            );
            continue;
        } else {
            Some(action.to_string())
        };
        out.push(Correction {
            line: *line,
            event_idx: idx,
            new_behavior,
            note,
        });
    }
    out
}

/// Applies the corrections of `req` and writes the new events CSV and the record of changes.
pub fn relabel(req: &RelabelRequest) -> Result<RelabelSummary, AnnotError> {
    let mut problems = Vec::new();
    let events_bytes = read_file(&req.events)?;
    let corrections_bytes = read_file(&req.corrections)?;
    let Some(table) = read_table(&events_bytes, &req.events, &mut problems) else {
        return Err(AnnotError::Problems {
            problems: Problems(problems),
        });
    };
    let (Some(c_idx), Some(c_beh)) = (
        column(&table, "event_idx", &req.events, &mut problems),
        column(&table, "behavior", &req.events, &mut problems),
    ) else {
        return Err(AnnotError::Problems {
            problems: Problems(problems),
        });
    };
    let c_video = table.header.iter().position(|h| h == "video");
    let c_start = table.header.iter().position(|h| h == "start_s");
    let mut known: HashMap<u32, String> = HashMap::new();
    let mut row_of: HashMap<u32, usize> = HashMap::new();
    for (k, (line, row)) in table.rows.iter().enumerate() {
        let v = row.get(c_idx).unwrap_or("").trim();
        match v.parse::<u32>() {
            Ok(i) => {
                if known
                    .insert(i, row.get(c_beh).unwrap_or("").trim().to_string())
                    .is_some()
                {
                    problems.push(
                        Problem::new(
                            ProblemKind::Invalid,
                            &req.events,
                            format!("line {line}, column event_idx"),
                            "duplicate event_idx",
                        )
                        .value(v),
                    );
                }
                row_of.insert(i, k);
            }
            Err(_) => problems.push(
                Problem::new(
                    ProblemKind::Invalid,
                    &req.events,
                    format!("line {line}, column event_idx"),
                    "not a non-negative integer",
                )
                .value(v),
            ),
        }
    }
    let classes: BTreeSet<String> = if req.classes.is_empty() {
        known.values().filter(|b| !b.is_empty()).cloned().collect()
    } else {
        req.classes.iter().cloned().collect()
    };
    let corrections = parse_corrections(
        &corrections_bytes,
        &req.corrections,
        &known,
        &classes,
        &mut problems,
    );
    if !problems.is_empty() {
        return Err(AnnotError::Problems {
            problems: Problems(problems),
        });
    }

    let mut by_row: HashMap<usize, &Correction> = HashMap::new();
    for c in &corrections {
        by_row.insert(row_of[&c.event_idx], c);
    }
    let mut out = csv::Writer::from_writer(Vec::new());
    let mut changes = csv::Writer::from_writer(Vec::new());
    let _ = out.write_record(&table.header);
    let _ = changes.write_record([
        "event_idx",
        "video",
        "start_s",
        "old_behavior",
        "new_behavior",
        "action",
        "note",
    ]);
    let (mut relabelled, mut dropped, mut unchanged) = (0, 0, 0);
    let mut by_behavior: BTreeMap<String, usize> = BTreeMap::new();
    for (k, (_, row)) in table.rows.iter().enumerate() {
        let old = row.get(c_beh).unwrap_or("").trim();
        let cell = |c: Option<usize>| c.and_then(|c| row.get(c)).unwrap_or("").to_string();
        let mut new_row: Vec<String> = row.iter().map(str::to_string).collect();
        if let Some(c) = by_row.get(&k) {
            match &c.new_behavior {
                None => {
                    dropped += 1;
                    let _ = changes.write_record([
                        &c.event_idx.to_string(),
                        &cell(c_video),
                        &cell(c_start),
                        old,
                        "",
                        DROP,
                        &c.note,
                    ]);
                    continue;
                }
                Some(b) if b == old => unchanged += 1,
                Some(b) => {
                    relabelled += 1;
                    let _ = changes.write_record([
                        &c.event_idx.to_string(),
                        &cell(c_video),
                        &cell(c_start),
                        old,
                        b,
                        "relabel",
                        &c.note,
                    ]);
                    new_row[c_beh] = b.clone();
                }
            }
        }
        *by_behavior
            .entry(new_row[c_beh].trim().to_string())
            .or_default() += 1;
        let _ = out.write_record(&new_row);
    }
    let changes_file = changes_path(&req.out);
    write_atomic(&req.out, &out.into_inner().unwrap_or_default())?;
    write_atomic(&changes_file, &changes.into_inner().unwrap_or_default())?;
    Ok(RelabelSummary {
        events_in: table.rows.len(),
        events_out: table.rows.len() - dropped,
        relabelled,
        dropped,
        unchanged,
        by_behavior,
        out: req.out.display().to_string(),
        changes: changes_file.display().to_string(),
    })
}
