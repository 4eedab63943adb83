//! `ethos import boris|cvat|labelstudio`: annotation files → the events CSV, with a summary of
//! what was read, merged and skipped and why.
//!
//! Every file is read in full and every problem collected before anything is written; with any
//! problem that no chosen policy handles, nothing is written and the error lists them all.
//! Output events are sorted by video, start and behaviour; events that several files (or
//! annotators) give identically are kept once (counted as merged).
//!
//! **Splits** (`--splits train=0.8,val=0.2`): whole videos go to one split each, so no video's
//! events leak between splits. Videos are ordered by a hash of (seed, video name) and filled
//! into the splits in order until each split's share of the events is reached. Each event gets
//! its `split` column, and `STEM.NAME.csv` beside the events CSV lists each split's events
//! (what `data.splits` in a config reads).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::cvat::{CvatOptions, parse_cvat};
use crate::error::{AnnotError, read_file};
use crate::events::{AnnotEvent, events_csv_bytes, write_atomic};
use crate::labelstudio::{LabelStudioOptions, parse_labelstudio};
use crate::media::Media;
use crate::problems::{Collector, Policies, Problems};

/// The annotation tool a file comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tool {
    /// BORIS projects and event exports.
    Boris,
    /// CVAT XML (video tracks, image tags).
    Cvat,
    /// Label Studio JSON.
    LabelStudio,
}

/// What to import and how.
#[derive(Clone, Debug)]
pub struct ImportRequest {
    /// The tool the files come from.
    pub tool: Tool,
    /// The annotation files.
    pub files: Vec<PathBuf>,
    /// The events CSV to write.
    pub out: PathBuf,
    /// Folder whose files media paths are matched against (and probed).
    pub videos_root: Option<PathBuf>,
    /// Policies for kinds of problems.
    pub policies: Policies,
    /// Frame rate for frame-based formats when the video cannot be probed (CVAT; Label Studio
    /// takes it before every other source).
    pub fps: Option<f64>,
    /// Video name for CVAT files without `<source>`.
    pub video: Option<String>,
    /// Label Studio labelling config (XML file).
    pub label_config: Option<PathBuf>,
    /// Split names and shares of the events (shares sum to 1).
    pub splits: Vec<(String, f64)>,
    /// Seed of the split assignment.
    pub seed: u64,
}

/// A problem a policy handled, for the summary.
#[derive(Clone, Debug, Serialize)]
pub struct HandledProblem {
    /// The problem, with file, place, time and value.
    pub problem: String,
    /// What was done (`dropped`, `split at the file boundary`, ...).
    pub action: String,
}

/// What an import read, merged, skipped and wrote (printed as JSON by the CLI).
#[derive(Clone, Debug, Serialize)]
pub struct ImportSummary {
    /// The tool.
    pub tool: Tool,
    /// Files read.
    pub files: Vec<String>,
    /// The events CSV written (empty when nothing was written).
    pub out: String,
    /// Events written.
    pub events: usize,
    /// Distinct videos.
    pub videos: usize,
    /// Events per behaviour.
    pub by_behavior: BTreeMap<String, usize>,
    /// Things read, by kind.
    pub read: BTreeMap<String, usize>,
    /// Things merged, by kind.
    pub merged: BTreeMap<String, usize>,
    /// Things skipped, by reason.
    pub skipped: BTreeMap<String, usize>,
    /// Problems a policy handled.
    pub handled: Vec<HandledProblem>,
    /// Format versions, frame rates and other facts met.
    pub notes: Vec<String>,
    /// Events per split (when `--splits` was given).
    pub splits: BTreeMap<String, usize>,
    /// Split CSVs written.
    pub split_files: Vec<String>,
}

/// Parses `"train=0.8,val=0.2"` into split shares (each > 0, summing to 1 within 1e-6).
pub fn parse_splits(s: &str) -> Result<Vec<(String, f64)>, AnnotError> {
    let mut out: Vec<(String, f64)> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((name, share)) = part.split_once('=') else {
            return Err(AnnotError::Usage(format!(
                "--splits {s:?}: {part:?} is not NAME=SHARE (e.g. train=0.8,val=0.2)"
            )));
        };
        let name = name.trim();
        let share: f64 = share.trim().parse().map_err(|_| {
            AnnotError::Usage(format!("--splits {s:?}: share of {name:?} is not a number"))
        })?;
        if name.is_empty() || !(share > 0.0 && share <= 1.0) {
            return Err(AnnotError::Usage(format!(
                "--splits {s:?}: {part:?} needs a name and a share in (0, 1]"
            )));
        }
        if out.iter().any(|(n, _)| n == name) {
            return Err(AnnotError::Usage(format!(
                "--splits {s:?}: {name:?} given twice"
            )));
        }
        out.push((name.to_string(), share));
    }
    let total: f64 = out.iter().map(|(_, s)| s).sum();
    if out.is_empty() || (total - 1.0).abs() > 1e-6 {
        return Err(AnnotError::Usage(format!(
            "--splits {s:?}: the shares must add up to 1 (they add up to {total})"
        )));
    }
    Ok(out)
}

fn check_request(req: &ImportRequest) -> Result<(), AnnotError> {
    if req.files.is_empty() {
        return Err(AnnotError::Usage("no annotation file given".into()));
    }
    if let Some(f) = req.fps
        && !(f > 0.0 && f.is_finite())
    {
        return Err(AnnotError::Usage(format!("--fps {f}: must be > 0")));
    }
    if let Some(p) = req.policies.point_seconds
        && !(p > 0.0 && p.is_finite())
    {
        return Err(AnnotError::Usage(format!(
            "--point-seconds {p}: must be > 0"
        )));
    }
    Ok(())
}

/// Reads every file of `req` into events (sorted, deduplicated) and the summary; writes
/// nothing. Fails with every unhandled problem.
pub fn import(req: &ImportRequest) -> Result<(Vec<AnnotEvent>, ImportSummary), AnnotError> {
    check_request(req)?;
    let mut media = Media::new(req.videos_root.as_deref())?;
    let mut c = Collector::new(req.policies);
    let label_config = match &req.label_config {
        Some(p) => Some(String::from_utf8_lossy(&read_file(p)?).into_owned()),
        None => None,
    };
    let mut events = Vec::new();
    for file in &req.files {
        let bytes = read_file(file)?;
        let mut got = match req.tool {
            Tool::Boris => crate::boris::parse_any(&bytes, file, &mut media, &mut c),
            Tool::Cvat => parse_cvat(
                &bytes,
                file,
                &CvatOptions {
                    fps: req.fps,
                    video: req.video.clone(),
                },
                &mut media,
                &mut c,
            ),
            Tool::LabelStudio => parse_labelstudio(
                &bytes,
                file,
                &LabelStudioOptions {
                    fps: req.fps,
                    label_config: label_config.clone(),
                },
                &mut media,
                &mut c,
            ),
        };
        events.append(&mut got);
    }
    let errors = c.take_errors();
    if !errors.is_empty() {
        return Err(AnnotError::Problems {
            problems: Problems(errors),
        });
    }
    events.sort_by(|a, b| {
        a.video
            .cmp(&b.video)
            .then(a.start_s.total_cmp(&b.start_s))
            .then(a.behavior.cmp(&b.behavior))
            .then(a.subject.cmp(&b.subject))
            .then(a.duration_s.total_cmp(&b.duration_s))
            .then(a.modifiers.cmp(&b.modifiers))
    });
    let before = events.len();
    events.dedup_by(|b, a| {
        a.video == b.video
            && a.behavior == b.behavior
            && a.subject == b.subject
            && a.modifiers == b.modifiers
            && (a.start_s - b.start_s).abs() < 1e-6
            && (a.duration_s - b.duration_s).abs() < 1e-6
    });
    c.merge(
        "identical events from several files or annotators",
        before - events.len(),
    );
    let mut by_behavior = BTreeMap::new();
    for e in &events {
        *by_behavior.entry(e.behavior.clone()).or_default() += 1;
    }
    let videos = events
        .iter()
        .map(|e| e.video.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let summary = ImportSummary {
        tool: req.tool,
        files: req.files.iter().map(|f| f.display().to_string()).collect(),
        out: String::new(),
        events: events.len(),
        videos,
        by_behavior,
        read: c.read.clone(),
        merged: c.merged.clone(),
        skipped: c.skipped.clone(),
        handled: c
            .handled_problems()
            .iter()
            .map(|(p, a)| HandledProblem {
                problem: p.to_string(),
                action: a.clone(),
            })
            .collect(),
        notes: c.notes.clone(),
        splits: BTreeMap::new(),
        split_files: Vec::new(),
    };
    Ok((events, summary))
}

/// FNV-1a of the seed and a name: a stable order of videos for the split assignment.
fn split_hash(seed: u64, name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.to_le_bytes().iter().chain(name.as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Assigns each video (all its events) to one split; returns events per split.
pub fn assign_splits(
    events: &mut [AnnotEvent],
    splits: &[(String, f64)],
    seed: u64,
) -> BTreeMap<String, usize> {
    let mut per_video: BTreeMap<&str, usize> = BTreeMap::new();
    for e in events.iter() {
        *per_video.entry(e.video.as_str()).or_default() += 1;
    }
    let mut videos: Vec<(String, usize)> = per_video
        .into_iter()
        .map(|(v, n)| (v.to_string(), n))
        .collect();
    videos.sort_by_key(|(v, _)| (split_hash(seed, v), v.clone()));
    let total: usize = videos.iter().map(|(_, n)| n).sum();
    let mut bounds = Vec::new();
    let mut acc = 0.0;
    for (_, s) in splits {
        acc += s;
        bounds.push(acc * total as f64);
    }
    let mut assigned: BTreeMap<String, String> = BTreeMap::new();
    let mut done = 0usize;
    for (v, n) in videos {
        // The split whose share the events so far have not filled yet.
        let k = bounds
            .iter()
            .position(|&b| (done as f64) < b - 1e-9)
            .unwrap_or(splits.len() - 1);
        assigned.insert(v, splits[k].0.clone());
        done += n;
    }
    let mut counts: BTreeMap<String, usize> = splits.iter().map(|(n, _)| (n.clone(), 0)).collect();
    for e in events.iter_mut() {
        let s = assigned[&e.video].clone();
        *counts.entry(s.clone()).or_default() += 1;
        e.split = Some(s);
    }
    counts
}

/// The split CSV of split `name` beside the events CSV `out`: `STEM.NAME.csv`.
pub fn split_path(out: &Path, name: &str) -> PathBuf {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "events".into());
    out.with_file_name(format!("{stem}.{name}.csv"))
}

/// Imports (see [`import`]) and writes the events CSV and split CSVs atomically.
pub fn run_import(req: &ImportRequest) -> Result<ImportSummary, AnnotError> {
    let (mut events, mut summary) = import(req)?;
    if !req.splits.is_empty() {
        summary.splits = assign_splits(&mut events, &req.splits, req.seed);
    }
    let bytes = events_csv_bytes(&events);
    write_atomic(&req.out, &bytes)?;
    summary.out = req.out.display().to_string();
    if !req.splits.is_empty() {
        // Split CSVs repeat the rows (with the same event_idx) of their split.
        let mut r = csv::Reader::from_reader(bytes.as_slice());
        let header = r.headers().cloned().unwrap_or_default();
        let col = header.iter().position(|h| h == "split").unwrap_or(0);
        let rows: Vec<csv::StringRecord> = r.records().filter_map(Result::ok).collect();
        for (name, _) in &req.splits {
            let mut w = csv::Writer::from_writer(Vec::new());
            let _ = w.write_record(&header);
            for row in rows
                .iter()
                .filter(|row| row.get(col) == Some(name.as_str()))
            {
                let _ = w.write_record(row);
            }
            let path = split_path(&req.out, name);
            write_atomic(&path, &w.into_inner().unwrap_or_default())?;
            summary.split_files.push(path.display().to_string());
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_parse_and_keep_videos_whole() {
        assert!(parse_splits("train=0.8,val=0.3").is_err());
        assert!(parse_splits("train").is_err());
        let s = parse_splits("train=0.5, val=0.5").unwrap();
        let mut events: Vec<AnnotEvent> = (0..20)
            .map(|i| AnnotEvent {
                video: format!("v{}.mp4", i % 4),
                start_s: i as f64,
                duration_s: 1.0,
                behavior: "ear".into(),
                ..AnnotEvent::default()
            })
            .collect();
        let counts = assign_splits(&mut events, &s, 7);
        assert_eq!(counts.values().sum::<usize>(), 20);
        assert_eq!(counts["train"], 10, "{counts:?}");
        for v in 0..4 {
            let name = format!("v{v}.mp4");
            let splits: std::collections::BTreeSet<_> = events
                .iter()
                .filter(|e| e.video == name)
                .map(|e| e.split.clone())
                .collect();
            assert_eq!(splits.len(), 1);
        }
    }
}
