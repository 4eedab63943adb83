//! `ethos export boris`: events CSVs (predicted or labelled) → a BORIS project to review in.
//!
//! One MEDIA observation per video (id: the video's file stem, made unique), its one media file
//! in player 1 with the fps and length `ethos_video::probe` measures; the ethogram has one STATE
//! behaviour per class (`--classes` order, else sorted); subjects come from the `subject`
//! column. Each event becomes a START and a STOP (times in milliseconds, as BORIS keeps them;
//! at equal times STOPs come first, so back-to-back bouts pair correctly), with the frame
//! index as BORIS 8 writes it and the model's score as the comment. Columns `camera` and
//! `group` become the observation's independent variables. `ethos import boris` of the project
//! gives the same events back (times rounded to milliseconds).
//!
//! BORIS pairs START/STOP per (subject, behaviour, modifiers) in time order, so two events with
//! the same key that overlap in one video cannot be written; they are reported (exit 2).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::error::AnnotError;
use crate::events::{AnnotEvent, read_events_csv, write_atomic};
use crate::media::{VideoFacts, probe_facts};
use crate::problems::{Problem, ProblemKind, Problems};

/// The BORIS project format written.
pub const PROJECT_FORMAT: &str = "7.0";

/// What to export.
#[derive(Clone, Debug)]
pub struct ExportRequest {
    /// Events CSVs (`NAME.events.csv` of `ethos predict`, or any events CSV).
    pub events: Vec<PathBuf>,
    /// The project to write (`.boris`, or `.boris.gz` for a gzipped one).
    pub out: PathBuf,
    /// Folder that relative `video` paths are under.
    pub videos_root: Option<PathBuf>,
    /// Class order of the ethogram (default: sorted distinct behaviours).
    pub classes: Vec<String>,
    /// Project name (default: the output's file stem).
    pub name: Option<String>,
}

/// What was written.
#[derive(Clone, Debug, Serialize)]
pub struct ExportSummary {
    /// The project file.
    pub out: String,
    /// Observations (videos).
    pub observations: usize,
    /// Events (each a START and a STOP).
    pub events: usize,
    /// Behaviours of the ethogram.
    pub behaviors: Vec<String>,
    /// Events per behaviour.
    pub by_behavior: BTreeMap<String, usize>,
}

/// One video of the export: where it is and what it is.
#[derive(Clone, Debug)]
pub struct ExportVideo {
    /// The path written into the project (absolute when the file was found).
    pub media_path: String,
    /// Probed facts.
    pub facts: VideoFacts,
}

fn ms(t: f64) -> f64 {
    (t * 1000.0).round() / 1000.0
}

/// Exports the events CSVs of `req` as a BORIS project.
pub fn export_boris(req: &ExportRequest) -> Result<ExportSummary, AnnotError> {
    if req.events.is_empty() {
        return Err(AnnotError::Usage("no events CSV given (--events)".into()));
    }
    let mut problems = Vec::new();
    let mut events: Vec<(PathBuf, AnnotEvent)> = Vec::new();
    for f in &req.events {
        match read_events_csv(f) {
            Ok(ev) => events.extend(ev.into_iter().map(|e| (f.clone(), e))),
            Err(AnnotError::Problems { problems: p }) => problems.extend(p.0),
            Err(e) => return Err(e),
        }
    }
    // Probe every video once.
    let mut videos: BTreeMap<String, ExportVideo> = BTreeMap::new();
    let mut failed: BTreeMap<String, ()> = BTreeMap::new();
    for (file, e) in &events {
        if videos.contains_key(&e.video) || failed.contains_key(&e.video) {
            continue;
        }
        let p = Path::new(&e.video);
        let path = match (&req.videos_root, p.is_absolute()) {
            (Some(root), false) => root.join(p),
            _ => p.to_path_buf(),
        };
        match probe_facts(&path) {
            Ok(facts) => {
                let abs = std::fs::canonicalize(&path).unwrap_or(path);
                videos.insert(
                    e.video.clone(),
                    ExportVideo {
                        media_path: abs.display().to_string(),
                        facts,
                    },
                );
            }
            Err(err) => {
                failed.insert(e.video.clone(), ());
                problems.push(
                    Problem::new(
                        ProblemKind::MissingVideo,
                        file,
                        "column video",
                        format!(
                            "cannot probe {} for its fps and length ({err}){}",
                            path.display(),
                            if req.videos_root.is_none() && !p.is_absolute() {
                                "; relative paths need --videos-root"
                            } else {
                                ""
                            }
                        ),
                    )
                    .value(e.video.clone()),
                );
            }
        }
    }
    let only: Vec<AnnotEvent> = events.iter().map(|(_, e)| e.clone()).collect();
    let sources: Vec<PathBuf> = events.iter().map(|(f, _)| f.clone()).collect();
    let classes = if req.classes.is_empty() {
        let set: std::collections::BTreeSet<&str> =
            only.iter().map(|e| e.behavior.as_str()).collect();
        set.into_iter().map(str::to_string).collect()
    } else {
        for (f, e) in &events {
            if !req.classes.contains(&e.behavior) {
                problems.push(
                    Problem::new(
                        ProblemKind::UnknownBehavior,
                        f,
                        format!(
                            "event {}",
                            e.event_idx.map_or("?".into(), |i| i.to_string())
                        ),
                        format!("behaviour not in --classes ({})", req.classes.join(", ")),
                    )
                    .at_s(e.start_s)
                    .value(e.behavior.clone()),
                );
            }
        }
        req.classes.clone()
    };
    let name = req.name.clone().unwrap_or_else(|| {
        let n = req
            .out
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        n.trim_end_matches(".gz")
            .trim_end_matches(".boris")
            .to_string()
    });
    let pj = if problems.is_empty() {
        match boris_project(&name, &only, &sources, &videos, &classes) {
            Ok(pj) => Some(pj),
            Err(p) => {
                problems.extend(p);
                None
            }
        }
    } else {
        None
    };
    let Some(pj) = pj.filter(|_| problems.is_empty()) else {
        return Err(AnnotError::Problems {
            problems: Problems(problems),
        });
    };
    let text = serde_json::to_string_pretty(&pj).map_err(|e| AnnotError::Usage(e.to_string()))?;
    let gz = req.out.extension().is_some_and(|e| e == "gz");
    let bytes = if gz {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(text.as_bytes())
            .and_then(|_| enc.finish())
            .map_err(|source| AnnotError::Write {
                path: req.out.clone(),
                source,
            })?
    } else {
        text.into_bytes()
    };
    write_atomic(&req.out, &bytes)?;
    let mut by_behavior = BTreeMap::new();
    for e in &only {
        *by_behavior.entry(e.behavior.clone()).or_default() += 1;
    }
    Ok(ExportSummary {
        out: req.out.display().to_string(),
        observations: videos.len(),
        events: only.len(),
        behaviors: classes,
        by_behavior,
    })
}

/// What BORIS pairs START/STOP by: (subject, behaviour, modifiers).
type PairKey<'a> = (Option<&'a str>, &'a str, Option<&'a str>);

/// Keyboard keys BORIS binds to behaviours (one character each, unique).
const KEYS: &str = "123456789abcdefghijklmnopqrstuvwxyz";

/// The BORIS project (format [`PROJECT_FORMAT`]) of `events`; `sources[i]` is the file event `i`
/// came from (for messages). Overlapping events of one key are problems.
pub fn boris_project(
    name: &str,
    events: &[AnnotEvent],
    sources: &[PathBuf],
    videos: &BTreeMap<String, ExportVideo>,
    classes: &[String],
) -> Result<Value, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut ethogram = Map::new();
    for (i, c) in classes.iter().enumerate() {
        ethogram.insert(
            i.to_string(),
            json!({
                "type": "State event",
                "key": KEYS.chars().nth(i).map(String::from).unwrap_or_default(),
                "code": c,
                "description": "",
                "color": "",
                "category": "",
                "modifiers": {},
                "excluded": "",
                "coding map": "",
            }),
        );
    }
    let subjects: std::collections::BTreeSet<&str> =
        events.iter().filter_map(|e| e.subject.as_deref()).collect();
    let mut subjects_conf = Map::new();
    for (i, s) in subjects.iter().enumerate() {
        subjects_conf.insert(
            i.to_string(),
            json!({"key": "", "name": s, "description": ""}),
        );
    }
    let has_camera = events.iter().any(|e| e.camera.is_some());
    let has_group = events.iter().any(|e| e.group.is_some());
    let mut indep_conf = Map::new();
    for (k, label) in [(has_camera, "camera"), (has_group, "group")]
        .into_iter()
        .filter(|(h, _)| *h)
        .map(|(_, l)| l)
        .enumerate()
    {
        indep_conf.insert(
            k.to_string(),
            json!({"label": label, "description": "", "type": "text", "default value": "", "possible values": ""}),
        );
    }

    let mut observations = Map::new();
    let mut used_ids: BTreeMap<String, usize> = BTreeMap::new();
    for (video, info) in videos {
        let idx: Vec<usize> = (0..events.len())
            .filter(|&i| &events[i].video == video)
            .collect();
        let stem = Path::new(video)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| video.clone());
        let n = used_ids.entry(stem.clone()).or_default();
        *n += 1;
        let obs_id = if *n == 1 {
            stem
        } else {
            format!("{stem} ({n})")
        };

        // Overlaps of one key cannot be paired by BORIS.
        let mut by_key: BTreeMap<PairKey, Vec<usize>> = BTreeMap::new();
        for &i in &idx {
            let e = &events[i];
            by_key
                .entry((
                    e.subject.as_deref(),
                    e.behavior.as_str(),
                    e.modifiers.as_deref(),
                ))
                .or_default()
                .push(i);
        }
        for list in by_key.values_mut() {
            list.sort_by(|&a, &b| events[a].start_s.total_cmp(&events[b].start_s));
            for w in list.windows(2) {
                let (a, b) = (&events[w[0]], &events[w[1]]);
                if ms(b.start_s) < ms(a.end_s()) {
                    problems.push(
                        Problem::new(
                            ProblemKind::Invalid,
                            &sources[w[1]],
                            format!(
                                "events {} and {} of video {video}",
                                a.event_idx.map_or("?".into(), |i| i.to_string()),
                                b.event_idx.map_or("?".into(), |i| i.to_string())
                            ),
                            "two events of the same behaviour, subject and modifiers overlap; BORIS pairs START/STOP in time order and would merge them",
                        )
                        .at_s(b.start_s)
                        .value(b.behavior.clone()),
                    );
                }
            }
        }
        let fps = info.facts.fps;
        // (time, STOP before START at equal times, row)
        let mut rows: Vec<(f64, u8, Value)> = Vec::with_capacity(idx.len() * 2);
        for &i in &idx {
            let e = &events[i];
            let (s, t) = (ms(e.start_s), ms(e.end_s()));
            if t <= s {
                problems.push(
                    Problem::new(
                        ProblemKind::Invalid,
                        &sources[i],
                        format!(
                            "event {}",
                            e.event_idx.map_or("?".into(), |i| i.to_string())
                        ),
                        "shorter than a millisecond, the resolution of BORIS times",
                    )
                    .at_s(e.start_s)
                    .value(e.behavior.clone()),
                );
                continue;
            }
            let comment = e.score.map(|s| format!("score {s:.4}")).unwrap_or_default();
            let subject = e.subject.clone().unwrap_or_default();
            let mods = e.modifiers.clone().unwrap_or_default();
            for (time, order, text) in [(s, 1u8, comment.clone()), (t, 0u8, String::new())] {
                rows.push((
                    time,
                    order,
                    json!([
                        time,
                        subject,
                        e.behavior,
                        mods,
                        text,
                        (time * fps).round() as i64
                    ]),
                ));
            }
        }
        rows.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let first = idx.first().map(|&i| &events[i]);
        let mut indep = Map::new();
        if let Some(c) = first.and_then(|e| e.camera.clone()) {
            indep.insert("camera".into(), Value::String(c));
        }
        if let Some(g) = first.and_then(|e| e.group.clone()) {
            indep.insert("group".into(), Value::String(g));
        }
        let mut files = Map::new();
        for p in 1..=8 {
            files.insert(p.to_string(), json!([]));
        }
        files.insert("1".into(), json!([info.media_path]));
        let media_path = &info.media_path;
        observations.insert(
            obs_id,
            json!({
                "file": files,
                "type": "MEDIA",
                "date": "2000-01-01T00:00:00.000",
                "description": format!("ethos events of {video}"),
                "time offset": 0.0,
                "events": rows.into_iter().map(|(_, _, r)| r).collect::<Vec<_>>(),
                "observation time interval": [0, 0],
                "independent_variables": indep,
                "visualize_spectrogram": false,
                "visualize_waveform": false,
                "media_creation_date_as_offset": false,
                "media_scan_sampling_duration": 0,
                "image_display_duration": 1,
                "close_behaviors_between_videos": false,
                "media_info": {
                    "length": {media_path: info.facts.duration_s},
                    "fps": {media_path: fps},
                    "hasVideo": {media_path: true},
                    "hasAudio": {media_path: false},
                    "offset": {"1": 0.0},
                },
            }),
        );
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(json!({
        "time_format": "s",
        "project_date": "2000-01-01T00:00:00",
        "project_name": name,
        "project_description": "written by ethos export boris",
        "project_format_version": PROJECT_FORMAT,
        "subjects_conf": subjects_conf,
        "behaviors_conf": ethogram,
        "observations": observations,
        "behavioral_categories": [],
        "independent_variables": indep_conf,
        "coding_map": {},
        "behaviors_coding_map": [],
        "converters": {},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(idx: u32, start: f64, dur: f64, behavior: &str, subject: Option<&str>) -> AnnotEvent {
        AnnotEvent {
            event_idx: Some(idx),
            video: "a.mp4".into(),
            start_s: start,
            duration_s: dur,
            behavior: behavior.into(),
            subject: subject.map(str::to_string),
            score: Some(0.5),
            ..AnnotEvent::default()
        }
    }

    fn videos() -> BTreeMap<String, ExportVideo> {
        let facts = VideoFacts {
            fps: 10.0,
            duration_s: 30.0,
            frames: 300,
        };
        [(
            "a.mp4".to_string(),
            ExportVideo {
                media_path: "/v/a.mp4".into(),
                facts,
            },
        )]
        .into_iter()
        .collect()
    }

    #[test]
    fn back_to_back_bouts_write_stop_before_start_and_overlaps_are_problems() {
        let classes = vec!["ear".to_string(), "tail".to_string()];
        let events = vec![
            ev(1, 1.0, 2.0, "ear", None),
            ev(2, 3.0, 1.0, "ear", None),
            ev(3, 2.0, 5.0, "tail", None),
        ];
        let src = vec![PathBuf::from("p.csv"); 3];
        let pj = boris_project("x", &events, &src, &videos(), &classes).unwrap();
        let rows = pj["observations"]["a"]["events"].as_array().unwrap();
        let at3: Vec<(&str, &str)> = rows
            .iter()
            .filter(|r| r[0].as_f64() == Some(3.0))
            .map(|r| (r[2].as_str().unwrap(), r[4].as_str().unwrap()))
            .collect();
        // ear's STOP (no comment) before ear's START (score comment) at 3.0 s.
        assert_eq!(at3, [("ear", ""), ("ear", "score 0.5000")]);
        assert_eq!(rows[0][5], 10, "frame index at 10 fps");
        assert_eq!(pj["behaviors_conf"]["1"]["code"], "tail");

        let overlapping = vec![
            ev(1, 1.0, 2.0, "ear", None),
            ev(7, 2.5, 1.0, "ear", None),
            ev(8, 2.5, 1.0, "ear", Some("calf2")),
        ];
        let err = boris_project("x", &overlapping, &src, &videos(), &classes).unwrap_err();
        assert_eq!(err.len(), 1, "a different subject does not overlap");
        let msg = err[0].to_string();
        assert!(
            msg.contains("events 1 and 7 of video a.mp4, at 2.500 s"),
            "{msg}"
        );
    }
}
