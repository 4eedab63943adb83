//! Event manifests (one CSV row per labelled event), split manifests, and clip-directory names.
//!
//! Validation collects every problem of a file (never only the first), each with the file, line,
//! column and offending value, so a user can fix a CSV in one pass.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use ethos_video::Roi;

/// Columns every events CSV must have.
pub const REQUIRED_COLUMNS: [&str; 5] = ["event_idx", "video", "start_s", "duration_s", "behavior"];
/// The optional ROI columns; either all four or none are given per row (pixels in the source frame).
pub const ROI_COLUMNS: [&str; 4] = ["roi_x", "roi_y", "roi_w", "roi_h"];

/// Slack when comparing an event's end with the video's duration, in frames of the video (the
/// last frame is shown for one frame period, and containers round durations).
const END_SLACK_FRAMES: f64 = 1.0;

/// One labelled event: a time window in a source video with its class.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Unique id of the event (column `event_idx`).
    pub event_idx: u32,
    /// Source video, relative to the videos root.
    pub video: PathBuf,
    /// Event start in seconds from the first frame of the video.
    pub start_s: f64,
    /// Event length in seconds (> 0).
    pub duration_s: f64,
    /// Class name (column `behavior`).
    pub behavior: String,
    /// Index of `behavior` in the manifest's class list.
    pub class_index: usize,
    /// Group (pen, animal group) the event belongs to, if given.
    pub group: Option<String>,
    /// Camera that recorded the event, if given.
    pub camera: Option<String>,
    /// Split named in the events CSV, if given.
    pub split: Option<String>,
    /// Region of interest in source pixels, if given.
    pub roi: Option<Roi>,
    /// Line of the CSV the event was read from (1 = header).
    pub line: u64,
}

/// The events CSV after validation.
#[derive(Debug, Clone)]
pub struct EventsManifest {
    /// The CSV file.
    pub path: PathBuf,
    /// Events in file order.
    pub events: Vec<Event>,
    /// Class names; an event's `class_index` indexes this list.
    pub classes: Vec<String>,
}

/// One problem found in a manifest: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// CSV line (1 = header), when the problem belongs to a line.
    pub line: Option<u64>,
    /// Column name, when the problem belongs to a column.
    pub column: Option<String>,
    /// The offending value as written, when there is one.
    pub value: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    fn at(line: u64, column: &str, value: &str, message: impl Into<String>) -> Self {
        Self {
            line: Some(line),
            column: Some(column.to_string()),
            value: Some(value.to_string()),
            message: message.into(),
        }
    }

    fn file(message: impl Into<String>) -> Self {
        Self {
            line: None,
            column: None,
            value: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(line) = self.line {
            parts.push(format!("line {line}"));
        }
        if let Some(column) = &self.column {
            parts.push(format!("column {column}"));
        }
        if let Some(value) = &self.value {
            parts.push(format!("value {value:?}"));
        }
        if parts.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", parts.join(", "), self.message)
        }
    }
}

/// Every problem of one manifest file, printed one per line.
#[derive(Debug, Clone, PartialEq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.0 {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

/// Errors of manifest loading and clip resolution; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file cannot be read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The manifest file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file was read but has problems (all of them are listed).
    #[error("{path}: {} problem(s):{problems}", problems.0.len())]
    Invalid {
        /// The manifest file (or clip folder for clip resolution).
        path: PathBuf,
        /// Every problem found.
        problems: Problems,
    },
}

impl ManifestError {
    /// The file concerned.
    pub fn path(&self) -> &Path {
        match self {
            ManifestError::Io { path, .. } | ManifestError::Invalid { path, .. } => path,
        }
    }

    /// The problems found (empty for I/O errors).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ManifestError::Io { .. } => &[],
            ManifestError::Invalid { problems, .. } => &problems.0,
        }
    }
}

impl ethos_core::Classify for ManifestError {
    /// True for problems caused by the user's files (all variants: exit code 2).
    fn kind(&self) -> ethos_core::ErrorKind {
        ethos_core::ErrorKind::BadInput
    }
}

/// The clip file name of an event in a clip directory: `evt_{event_idx:04}_{behavior}.mp4`.
pub fn clip_file_name(event_idx: u32, behavior: &str) -> String {
    format!("evt_{event_idx:04}_{behavior}.mp4")
}

/// Maps events to their clip files under `clip_dir`; every missing clip is reported (with the
/// event's line in the events CSV).
pub fn resolve_clips(events: &[Event], clip_dir: &Path) -> Result<Vec<PathBuf>, ManifestError> {
    let mut problems = Vec::new();
    let paths: Vec<PathBuf> = events
        .iter()
        .map(|e| {
            let name = clip_file_name(e.event_idx, &e.behavior);
            let path = clip_dir.join(&name);
            if !path.is_file() {
                problems.push(Problem::at(
                    e.line,
                    "event_idx",
                    &e.event_idx.to_string(),
                    format!("clip {name} is missing"),
                ));
            }
            path
        })
        .collect();
    if problems.is_empty() {
        Ok(paths)
    } else {
        Err(ManifestError::Invalid {
            path: clip_dir.to_path_buf(),
            problems: Problems(problems),
        })
    }
}

/// Number of events per class (`classes.len()` entries) in `events`.
pub fn class_counts(events: &[Event], num_classes: usize) -> Vec<usize> {
    let mut counts = vec![0; num_classes];
    for e in events {
        if let Some(c) = counts.get_mut(e.class_index) {
            *c += 1;
        }
    }
    counts
}

/// A CSV file read into a header and raw rows (with their line numbers), trimmed.
struct RawCsv {
    header: Vec<String>,
    rows: Vec<(u64, Vec<String>)>,
}

impl RawCsv {
    fn read(path: &Path, problems: &mut Vec<Problem>) -> Result<Self, ManifestError> {
        let file = std::fs::File::open(path).map_err(|source| ManifestError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(file);
        let header: Vec<String> = match reader.headers() {
            Ok(h) => h
                .iter()
                .map(|s| s.trim_start_matches('\u{feff}').to_string())
                .collect(),
            Err(e) => {
                return Err(invalid_one(
                    path,
                    Problem::file(format!("cannot read the header: {e}")),
                ));
            }
        };
        let mut rows = Vec::new();
        let mut record = csv::StringRecord::new();
        loop {
            match reader.read_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {
                    let line = record.position().map_or(0, |p| p.line());
                    if record.iter().all(|f| f.is_empty()) {
                        continue; // blank line
                    }
                    if record.len() != header.len() {
                        problems.push(Problem {
                            line: Some(line),
                            column: None,
                            value: None,
                            message: format!(
                                "has {} fields, the header has {}",
                                record.len(),
                                header.len()
                            ),
                        });
                        continue;
                    }
                    rows.push((line, record.iter().map(str::to_string).collect()));
                }
                Err(e) => {
                    let line = e.position().map(|p| p.line());
                    problems.push(Problem {
                        line,
                        column: None,
                        value: None,
                        message: format!("unreadable CSV: {e}"),
                    });
                    if !matches!(e.kind(), csv::ErrorKind::Utf8 { .. }) {
                        break;
                    }
                }
            }
        }
        Ok(Self { header, rows })
    }

    fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }
}

fn invalid_one(path: &Path, problem: Problem) -> ManifestError {
    ManifestError::Invalid {
        path: path.to_path_buf(),
        problems: Problems(vec![problem]),
    }
}

/// Facts about a source video needed for validation (from one probe per distinct video).
#[derive(Debug, Clone, Copy)]
struct VideoFacts {
    duration_s: f64,
    fps: f64,
    width: u32,
    height: u32,
}

fn parse_f64(line: u64, column: &str, value: &str, problems: &mut Vec<Problem>) -> Option<f64> {
    match value.parse::<f64>() {
        Ok(v) if v.is_finite() => Some(v),
        _ => {
            problems.push(Problem::at(line, column, value, "not a finite number"));
            None
        }
    }
}

fn parse_u32(line: u64, column: &str, value: &str, problems: &mut Vec<Problem>) -> Option<u32> {
    match value.parse::<u32>() {
        Ok(v) => Some(v),
        Err(_) => {
            problems.push(Problem::at(
                line,
                column,
                value,
                "not a non-negative integer",
            ));
            None
        }
    }
}

fn optional(value: &str) -> Option<String> {
    if value.is_empty() {
        None
    } else {
        Some(value.to_string())
    }
}

impl EventsManifest {
    /// Reads and validates an events CSV. `classes` fixes the class order; when empty, the classes
    /// are the sorted distinct `behavior` values. With `videos_root`, every distinct video is
    /// probed once: missing or unreadable videos, windows that end past the video's end and ROIs
    /// outside the frame are reported. All problems are collected into one [`ManifestError`].
    pub fn load(
        csv: &Path,
        videos_root: Option<&Path>,
        classes: &[String],
    ) -> Result<Self, ManifestError> {
        let mut problems = Vec::new();
        let raw = RawCsv::read(csv, &mut problems)?;
        let missing: Vec<&str> = REQUIRED_COLUMNS
            .iter()
            .copied()
            .filter(|c| raw.column(c).is_none())
            .collect();
        if !missing.is_empty() {
            problems.push(Problem::file(format!(
                "missing required column(s) {} (header: {})",
                missing.join(", "),
                raw.header.join(",")
            )));
            return Err(ManifestError::Invalid {
                path: csv.to_path_buf(),
                problems: Problems(problems),
            });
        }
        let col = |name: &str| raw.column(name);
        let [c_idx, c_video, c_start, c_dur, c_beh] = REQUIRED_COLUMNS.map(|c| col(c).unwrap_or(0));
        let (c_group, c_camera, c_split) = (col("group"), col("camera"), col("split"));
        let roi_cols: Vec<Option<usize>> = ROI_COLUMNS.iter().map(|c| col(c)).collect();
        let roi_present = roi_cols.iter().filter(|c| c.is_some()).count();
        if roi_present != 0 && roi_present != 4 {
            let absent: Vec<&str> = ROI_COLUMNS
                .iter()
                .zip(&roi_cols)
                .filter(|(_, c)| c.is_none())
                .map(|(n, _)| *n)
                .collect();
            problems.push(Problem::file(format!(
                "ROI columns are partial: {} missing",
                absent.join(", ")
            )));
        }

        let classes: Vec<String> = if classes.is_empty() {
            let set: std::collections::BTreeSet<&str> = raw
                .rows
                .iter()
                .map(|(_, r)| r[c_beh].as_str())
                .filter(|b| !b.is_empty())
                .collect();
            set.into_iter().map(str::to_string).collect()
        } else {
            classes.to_vec()
        };

        let mut facts: HashMap<PathBuf, Result<VideoFacts, String>> = HashMap::new();
        let mut seen: HashMap<u32, u64> = HashMap::new();
        let mut events = Vec::with_capacity(raw.rows.len());
        for (line, row) in &raw.rows {
            let line = *line;
            let before = problems.len();
            let event_idx = parse_u32(line, "event_idx", &row[c_idx], &mut problems);
            if let Some(idx) = event_idx {
                if let Some(first) = seen.get(&idx) {
                    problems.push(Problem::at(
                        line,
                        "event_idx",
                        &row[c_idx],
                        format!("duplicate event_idx (first on line {first})"),
                    ));
                } else {
                    seen.insert(idx, line);
                }
            }
            let video = &row[c_video];
            if video.is_empty() {
                problems.push(Problem::at(line, "video", video, "empty video path"));
            }
            let start = parse_f64(line, "start_s", &row[c_start], &mut problems);
            if let Some(s) = start
                && s < 0.0
            {
                problems.push(Problem::at(
                    line,
                    "start_s",
                    &row[c_start],
                    "negative start time",
                ));
            }
            let duration = parse_f64(line, "duration_s", &row[c_dur], &mut problems);
            if let Some(d) = duration
                && d <= 0.0
            {
                problems.push(Problem::at(
                    line,
                    "duration_s",
                    &row[c_dur],
                    "duration must be > 0 seconds",
                ));
            }
            let behavior = &row[c_beh];
            let class_index = classes.iter().position(|c| c == behavior);
            if class_index.is_none() {
                problems.push(Problem::at(
                    line,
                    "behavior",
                    behavior,
                    format!("unknown class (classes: {})", classes.join(", ")),
                ));
            }
            let roi = if roi_present == 4 {
                parse_roi(line, row, &roi_cols, &mut problems)
            } else {
                None
            };

            if let Some(root) = videos_root
                && !video.is_empty()
            {
                let path = root.join(video);
                let fact = facts
                    .entry(PathBuf::from(video))
                    .or_insert_with(|| probe_facts(&path));
                match fact {
                    Err(reason) => problems.push(Problem::at(line, "video", video, reason.clone())),
                    Ok(f) => {
                        if let (Some(s), Some(d)) = (start, duration) {
                            let slack = END_SLACK_FRAMES / f.fps.max(1e-3);
                            if s + d > f.duration_s + slack {
                                problems.push(Problem::at(
                                    line,
                                    "duration_s",
                                    &row[c_dur],
                                    format!(
                                        "window ends at {:.3} s, past the end of {video} ({:.3} s)",
                                        s + d,
                                        f.duration_s
                                    ),
                                ));
                            }
                        }
                        if let Some(r) = roi
                            && (r.x as u64 + r.w as u64 > f.width as u64
                                || r.y as u64 + r.h as u64 > f.height as u64)
                        {
                            problems.push(Problem::at(
                                line,
                                "roi_x",
                                &format!("{},{},{},{}", r.x, r.y, r.w, r.h),
                                format!(
                                    "ROI x,y,w,h is outside the {}x{} frame of {video}",
                                    f.width, f.height
                                ),
                            ));
                        }
                    }
                }
            }

            if problems.len() == before
                && let (Some(event_idx), Some(start_s), Some(duration_s), Some(class_index)) =
                    (event_idx, start, duration, class_index)
            {
                events.push(Event {
                    event_idx,
                    video: PathBuf::from(video),
                    start_s,
                    duration_s,
                    behavior: behavior.clone(),
                    class_index,
                    group: c_group.and_then(|c| optional(&row[c])),
                    camera: c_camera.and_then(|c| optional(&row[c])),
                    split: c_split.and_then(|c| optional(&row[c])),
                    roi,
                    line,
                });
            }
        }
        if problems.is_empty() && events.is_empty() {
            problems.push(Problem::file(
                "no events (the file has a header but no rows)",
            ));
        }
        // File-level problems first, then by line (ragged rows are found while reading).
        problems.sort_by_key(|p| p.line);
        if problems.is_empty() {
            Ok(Self {
                path: csv.to_path_buf(),
                events,
                classes,
            })
        } else {
            Err(ManifestError::Invalid {
                path: csv.to_path_buf(),
                problems: Problems(problems),
            })
        }
    }

    /// Number of events per class, in class order.
    pub fn class_counts(&self) -> Vec<usize> {
        class_counts(&self.events, self.classes.len())
    }

    /// The event with id `event_idx`, if any.
    pub fn get(&self, event_idx: u32) -> Option<&Event> {
        self.events.iter().find(|e| e.event_idx == event_idx)
    }

    /// Events grouped by the `split` column (events without one are under `""`).
    pub fn by_split_column(&self) -> BTreeMap<String, Vec<Event>> {
        let mut out: BTreeMap<String, Vec<Event>> = BTreeMap::new();
        for e in &self.events {
            out.entry(e.split.clone().unwrap_or_default())
                .or_default()
                .push(e.clone());
        }
        out
    }
}

fn parse_roi(
    line: u64,
    row: &[String],
    cols: &[Option<usize>],
    problems: &mut Vec<Problem>,
) -> Option<Roi> {
    let values: Vec<&str> = cols
        .iter()
        .map(|c| c.map_or("", |c| row[c].as_str()))
        .collect();
    let given = values.iter().filter(|v| !v.is_empty()).count();
    if given == 0 {
        return None;
    }
    if given != 4 {
        for (name, v) in ROI_COLUMNS.iter().zip(&values) {
            if v.is_empty() {
                problems.push(Problem::at(
                    line,
                    name,
                    v,
                    "ROI is partially given: all of roi_x, roi_y, roi_w, roi_h or none",
                ));
            }
        }
        return None;
    }
    let before = problems.len();
    let parsed: Vec<Option<u32>> = ROI_COLUMNS
        .iter()
        .zip(&values)
        .map(|(name, v)| parse_u32(line, name, v, problems))
        .collect();
    if problems.len() != before {
        return None;
    }
    let [x, y, w, h] = [parsed[0]?, parsed[1]?, parsed[2]?, parsed[3]?];
    if w == 0 || h == 0 {
        problems.push(Problem::at(
            line,
            if w == 0 { "roi_w" } else { "roi_h" },
            if w == 0 { values[2] } else { values[3] },
            "ROI width and height must be > 0",
        ));
        return None;
    }
    Some(Roi { x, y, w, h })
}

fn probe_facts(path: &Path) -> Result<VideoFacts, String> {
    if !path.exists() {
        return Err(format!("video file {} does not exist", path.display()));
    }
    if !ethos_video::HAS_FFMPEG {
        // A build without FFmpeg reads decoded-clip caches only; their entries were checked
        // against the videos' lengths and frame sizes when they were built.
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            tracing::warn!(
                "this build has no FFmpeg: video lengths and frame sizes are not checked"
            );
        });
        return Ok(VideoFacts {
            duration_s: f64::INFINITY,
            fps: 1.0,
            width: u32::MAX,
            height: u32::MAX,
        });
    }
    match ethos_video::probe(path) {
        Ok(info) => {
            let fps = if info.avg_fps > 0.0 {
                info.avg_fps
            } else {
                info.real_fps
            };
            Ok(VideoFacts {
                duration_s: info.duration_s,
                fps,
                width: info.width,
                height: info.height,
            })
        }
        Err(e) => Err(format!("cannot read the video: {e}")),
    }
}

/// Reads a split CSV (needs an `event_idx` column; other columns of the events CSV may be present)
/// and returns the events of `all` it names, in file order. Unknown or duplicate ids, and a
/// `behavior`/`video` that disagrees with the events CSV, are reported with line and value.
pub fn load_split(csv: &Path, all: &EventsManifest) -> Result<Vec<Event>, ManifestError> {
    let mut problems = Vec::new();
    let raw = RawCsv::read(csv, &mut problems)?;
    let Some(c_idx) = raw.column("event_idx") else {
        problems.push(Problem::file(format!(
            "missing required column event_idx (header: {})",
            raw.header.join(",")
        )));
        return Err(ManifestError::Invalid {
            path: csv.to_path_buf(),
            problems: Problems(problems),
        });
    };
    let by_idx: HashMap<u32, &Event> = all.events.iter().map(|e| (e.event_idx, e)).collect();
    let (c_beh, c_video) = (raw.column("behavior"), raw.column("video"));
    let mut seen: HashSet<u32> = HashSet::new();
    let mut out = Vec::with_capacity(raw.rows.len());
    for (line, row) in &raw.rows {
        let value = &row[c_idx];
        let Some(idx) = parse_u32(*line, "event_idx", value, &mut problems) else {
            continue;
        };
        let Some(event) = by_idx.get(&idx) else {
            problems.push(Problem::at(
                *line,
                "event_idx",
                value,
                format!("unknown event_idx (not in {})", all.path.display()),
            ));
            continue;
        };
        if !seen.insert(idx) {
            problems.push(Problem::at(
                *line,
                "event_idx",
                value,
                "event listed twice in this split",
            ));
            continue;
        }
        let mut consistent = true;
        if let Some(c) = c_beh
            && !row[c].is_empty()
            && row[c] != event.behavior
        {
            problems.push(Problem::at(
                *line,
                "behavior",
                &row[c],
                format!(
                    "disagrees with the events CSV ({} on line {})",
                    event.behavior, event.line
                ),
            ));
            consistent = false;
        }
        if let Some(c) = c_video
            && !row[c].is_empty()
            && Path::new(&row[c]) != event.video
        {
            problems.push(Problem::at(
                *line,
                "video",
                &row[c],
                format!(
                    "disagrees with the events CSV ({} on line {})",
                    event.video.display(),
                    event.line
                ),
            ));
            consistent = false;
        }
        if consistent {
            out.push((*event).clone());
        }
    }
    problems.sort_by_key(|p| p.line);
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(ManifestError::Invalid {
            path: csv.to_path_buf(),
            problems: Problems(problems),
        })
    }
}

/// The header line of an events CSV with every column ethos knows.
pub const EVENTS_HEADER: [&str; 12] = [
    "event_idx",
    "video",
    "start_s",
    "duration_s",
    "behavior",
    "group",
    "camera",
    "split",
    "roi_x",
    "roi_y",
    "roi_w",
    "roi_h",
];

/// Writes events as a CSV with [`EVENTS_HEADER`] (times with millisecond precision) to `path`
/// atomically (temporary file in the same folder, fsync, rename).
pub fn write_events_csv(path: &Path, events: &[Event]) -> std::io::Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(EVENTS_HEADER)?;
    for e in events {
        let opt = |s: &Option<String>| s.clone().unwrap_or_default();
        let roi = e.roi.map_or(
            [String::new(), String::new(), String::new(), String::new()],
            |r| {
                [
                    r.x.to_string(),
                    r.y.to_string(),
                    r.w.to_string(),
                    r.h.to_string(),
                ]
            },
        );
        w.write_record([
            e.event_idx.to_string(),
            e.video.to_string_lossy().into_owned(),
            format!("{:.3}", e.start_s),
            format!("{:.3}", e.duration_s),
            e.behavior.clone(),
            opt(&e.group),
            opt(&e.camera),
            opt(&e.split),
            roi[0].clone(),
            roi[1].clone(),
            roi[2].clone(),
            roi[3].clone(),
        ])?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    ethos_core::fs::write_bytes_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ethos_core::Classify;

    const HEADER: &str =
        "event_idx,video,start_s,duration_s,behavior,group,camera,split,roi_x,roi_y,roi_w,roi_h\n";

    fn classes() -> Vec<String> {
        vec!["ear".to_string(), "tail".to_string()]
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// A 32x32 MPEG-4 video of `frames` frames at 10 fps.
    fn video(dir: &Path, name: &str, frames: usize) -> PathBuf {
        let path = dir.join(name);
        let opts = ethos_video::WriterOptions {
            codec: ethos_video::Codec::Mpeg4,
            fps: 10,
            ..Default::default()
        };
        let mut w = ethos_video::ClipWriter::create(&path, 32, 32, &opts).unwrap();
        for i in 0..frames {
            w.write_frame(&vec![(i * 10) as u8; 32 * 32 * 3]).unwrap();
        }
        w.finish().unwrap();
        path
    }

    fn problems_of(err: ManifestError) -> (String, Vec<Problem>) {
        let text = err.to_string();
        assert!(err.is_bad_input());
        (text, err.problems().to_vec())
    }

    fn has(problems: &[Problem], line: u64, column: &str, value: &str) -> bool {
        problems.iter().any(|p| {
            p.line == Some(line)
                && p.column.as_deref() == Some(column)
                && p.value.as_deref() == Some(value)
        })
    }

    #[test]
    fn a_valid_manifest_loads_with_classes_counts_and_rois() {
        let dir = tempfile::tempdir().unwrap();
        let csv = write(
            dir.path(),
            "events.csv",
            &format!(
                "{HEADER}3,a.mp4,0.5,2,ear,pen1,cam0,train,1,2,30,40\n7,b.mp4,1,1.5,tail,,,,,,,\n9,a.mp4,0,1,ear,pen1,cam0,val,,,,\n"
            ),
        );
        let m = EventsManifest::load(&csv, None, &classes()).unwrap();
        assert_eq!(m.events.len(), 3);
        assert_eq!(m.class_counts(), vec![2, 1]);
        let e = &m.events[0];
        assert_eq!((e.event_idx, e.class_index, e.line), (3, 0, 2));
        assert_eq!(
            e.roi,
            Some(Roi {
                x: 1,
                y: 2,
                w: 30,
                h: 40
            })
        );
        assert_eq!(e.group.as_deref(), Some("pen1"));
        assert_eq!(m.events[1].group, None);
        assert_eq!(m.events[1].roi, None);
        assert_eq!(m.by_split_column()["val"].len(), 1);
        // Classes inferred (sorted) when none are given.
        let m2 = EventsManifest::load(&csv, None, &[]).unwrap();
        assert_eq!(m2.classes, classes());
    }

    #[test]
    fn every_problem_is_collected_with_line_column_and_value() {
        let dir = tempfile::tempdir().unwrap();
        let csv = write(
            dir.path(),
            "bad.csv",
            &format!(
                "{HEADER}\
1,a.mp4,0,2,ear,,,,,,,\n\
2,a.mp4,0,2,nose,,,,,,,\n\
1,a.mp4,0,2,ear,,,,,,,\n\
x3,a.mp4,abc,2,ear,,,,,,,\n\
4,a.mp4,-1.5,0,ear,,,,,,,\n\
5,a.mp4,0,2,tail,,,,5,6,,\n\
6,a.mp4,0,2,tail,,,,1,1,0,5\n\
7,a.mp4,0,2\n"
            ),
        );
        let (text, p) = problems_of(EventsManifest::load(&csv, None, &classes()).unwrap_err());
        assert!(text.contains("bad.csv"), "{text}");
        assert!(has(&p, 3, "behavior", "nose"), "{text}");
        assert!(
            has(&p, 4, "event_idx", "1") && text.contains("duplicate event_idx (first on line 2)"),
            "{text}"
        );
        assert!(
            has(&p, 5, "event_idx", "x3") && has(&p, 5, "start_s", "abc"),
            "{text}"
        );
        assert!(
            has(&p, 6, "start_s", "-1.5") && has(&p, 6, "duration_s", "0"),
            "{text}"
        );
        assert!(has(&p, 7, "roi_w", "") && has(&p, 7, "roi_h", ""), "{text}");
        assert!(has(&p, 8, "roi_w", "0"), "{text}");
        assert!(
            p.iter()
                .any(|q| q.line == Some(9) && q.message.contains("4 fields")),
            "{text}"
        );
        assert_eq!(p.len(), 10, "{text}");
        // The message names line, column and value.
        assert!(
            text.contains("line 3, column behavior, value \"nose\": unknown class"),
            "{text}"
        );
    }

    #[test]
    fn missing_columns_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let csv = write(
            dir.path(),
            "e.csv",
            "event_idx,video,start,behavior\n1,a.mp4,0,ear\n",
        );
        let (text, _) = problems_of(EventsManifest::load(&csv, None, &classes()).unwrap_err());
        assert!(
            text.contains("missing required column(s) start_s, duration_s"),
            "{text}"
        );
        let csv = write(
            dir.path(),
            "r.csv",
            "event_idx,video,start_s,duration_s,behavior,roi_x,roi_y\n1,a.mp4,0,1,ear,1,2\n",
        );
        let (text, _) = problems_of(EventsManifest::load(&csv, None, &classes()).unwrap_err());
        assert!(
            text.contains("ROI columns are partial: roi_w, roi_h missing"),
            "{text}"
        );
        let err = EventsManifest::load(&dir.path().join("nope.csv"), None, &classes()).unwrap_err();
        assert!(matches!(err, ManifestError::Io { .. }) && err.to_string().contains("nope.csv"));
    }

    #[test]
    fn videos_are_checked_for_existence_length_and_frame_size() {
        let dir = tempfile::tempdir().unwrap();
        video(dir.path(), "v.mp4", 20); // 2.0 s, 32x32
        std::fs::write(dir.path().join("text.mp4"), "not a video").unwrap();
        let csv = write(
            dir.path(),
            "events.csv",
            &format!(
                "{HEADER}\
1,v.mp4,0.5,1.5,ear,,,,0,0,32,32\n\
2,missing.mp4,0,1,ear,,,,,,,\n\
3,v.mp4,1.5,1.0,tail,,,,,,,\n\
4,v.mp4,0,1,tail,,,,20,0,16,8\n\
5,text.mp4,0,1,tail,,,,,,,\n\
6,missing.mp4,2,1,ear,,,,,,,\n"
            ),
        );
        let (text, p) =
            problems_of(EventsManifest::load(&csv, Some(dir.path()), &classes()).unwrap_err());
        assert!(
            has(&p, 3, "video", "missing.mp4") && has(&p, 7, "video", "missing.mp4"),
            "{text}"
        );
        assert!(
            has(&p, 4, "duration_s", "1.0") && text.contains("past the end of v.mp4"),
            "{text}"
        );
        assert!(
            has(&p, 5, "roi_x", "20,0,16,8") && text.contains("outside the 32x32 frame"),
            "{text}"
        );
        assert!(has(&p, 6, "video", "text.mp4"), "{text}");
        assert_eq!(p.len(), 5, "{text}");
        // Without a videos root those checks are skipped.
        assert_eq!(
            EventsManifest::load(&csv, None, &classes())
                .unwrap()
                .events
                .len(),
            6
        );
    }

    #[test]
    fn splits_resolve_by_event_idx_and_report_unknown_ids() {
        let dir = tempfile::tempdir().unwrap();
        let csv = write(
            dir.path(),
            "events.csv",
            &format!(
                "{HEADER}1,a.mp4,0,2,ear,,,,,,,\n2,a.mp4,3,2,tail,,,,,,,\n3,b.mp4,0,2,ear,,,,,,,\n"
            ),
        );
        let all = EventsManifest::load(&csv, None, &classes()).unwrap();
        let only_idx = write(dir.path(), "train.csv", "event_idx\n3\n1\n");
        let split = load_split(&only_idx, &all).unwrap();
        assert_eq!(
            split.iter().map(|e| e.event_idx).collect::<Vec<_>>(),
            vec![3, 1]
        );
        assert_eq!(class_counts(&split, 2), vec![2, 0]);
        let full = write(
            dir.path(),
            "val.csv",
            &format!("{HEADER}2,a.mp4,3,2,tail,,,,,,,\n"),
        );
        assert_eq!(load_split(&full, &all).unwrap()[0].behavior, "tail");
        let bad = write(
            dir.path(),
            "bad.csv",
            "event_idx,behavior\n9,ear\n1,ear\n1,ear\n2,ear\nz,ear\n",
        );
        let (text, p) = problems_of(load_split(&bad, &all).unwrap_err());
        assert!(text.contains("bad.csv"), "{text}");
        assert!(
            has(&p, 2, "event_idx", "9") && text.contains("unknown event_idx"),
            "{text}"
        );
        assert!(
            has(&p, 4, "event_idx", "1")
                && has(&p, 5, "behavior", "ear")
                && has(&p, 6, "event_idx", "z"),
            "{text}"
        );
        assert_eq!(p.len(), 4, "{text}");
        let no_col = write(dir.path(), "nocol.csv", "id\n1\n");
        assert!(
            load_split(&no_col, &all)
                .unwrap_err()
                .to_string()
                .contains("missing required column event_idx")
        );
    }

    #[test]
    fn clip_names_and_missing_clips() {
        assert_eq!(clip_file_name(7, "tail"), "evt_0007_tail.mp4");
        assert_eq!(clip_file_name(12345, "ear"), "evt_12345_ear.mp4");
        let dir = tempfile::tempdir().unwrap();
        let csv = write(
            dir.path(),
            "events.csv",
            &format!("{HEADER}1,a.mp4,0,2,ear,,,,,,,\n2,a.mp4,3,2,tail,,,,,,,\n"),
        );
        let all = EventsManifest::load(&csv, None, &classes()).unwrap();
        std::fs::write(dir.path().join("evt_0001_ear.mp4"), b"x").unwrap();
        let err = resolve_clips(&all.events, dir.path()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("line 3") && text.contains("evt_0002_tail.mp4 is missing"),
            "{text}"
        );
        assert_eq!(err.problems().len(), 1);
        std::fs::write(dir.path().join("evt_0002_tail.mp4"), b"x").unwrap();
        let paths = resolve_clips(&all.events, dir.path()).unwrap();
        assert_eq!(paths[1], dir.path().join("evt_0002_tail.mp4"));
    }

    #[test]
    fn written_events_read_back_identically() {
        let dir = tempfile::tempdir().unwrap();
        let csv = write(
            dir.path(),
            "events.csv",
            &format!(
                "{HEADER}1,a.mp4,0.25,2.5,ear,pen1,cam0,train,1,2,3,4\n2,a.mp4,3,2,tail,,,,,,,\n"
            ),
        );
        let all = EventsManifest::load(&csv, None, &classes()).unwrap();
        let out = dir.path().join("copy.csv");
        write_events_csv(&out, &all.events).unwrap();
        let back = EventsManifest::load(&out, None, &classes()).unwrap();
        assert_eq!(back.events, all.events);
    }
}
