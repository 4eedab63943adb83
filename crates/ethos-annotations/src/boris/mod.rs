//! BORIS: projects (`.boris` JSON, also gzipped, every project-format version in use) and the
//! tabular and aggregated event exports (TSV / CSV).
//!
//! **Times.** BORIS stores *observation* times: the media time plus the observation's time
//! offset, and when several media files play one after another in player 1, the time since the
//! first file started. An event's video time is its observation time minus the offset minus the
//! lengths of the earlier player-1 files; the file it falls in is its video. Other players play
//! synced copies and never make separate events. Times are quantised to milliseconds as BORIS
//! does when it loads a project.
//!
//! **Pairing.** STATE events pair START/STOP per (subject, behaviour, modifiers) in time order
//! (in a project every second occurrence is a STOP, as BORIS's own exports pair them; tabular
//! exports say START or STOP). POINT events have no length: `--point-seconds S` makes each a
//! window of S seconds centred on the point (clipped to its file), otherwise they are skipped
//! and counted.

pub mod project;
pub mod tables;
pub mod workbook;

use std::collections::BTreeMap;
use std::path::Path;

use crate::events::AnnotEvent;
use crate::media::{Media, Resolved};
use crate::problems::{Collector, OnBoundary, OnUnpaired, Problem, ProblemKind};

/// BORIS's name for an event without a subject.
pub const NO_FOCAL_SUBJECT: &str = "No focal subject";

/// Slack when comparing times with file boundaries (BORIS times are whole milliseconds).
const EPS: f64 = 5e-4;

/// Player-1 media files of an observation, played one after another.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Timeline {
    /// Media paths as written, with their lengths in seconds when known.
    pub files: Vec<(String, Option<f64>)>,
    /// The observation's time offset in seconds (observation time = media time + offset).
    pub offset: f64,
}

/// One coded event of an observation before pairing.
#[derive(Clone, Debug)]
pub(crate) struct Record {
    /// Observation time, seconds.
    pub t: f64,
    pub subject: String,
    pub behavior: String,
    pub modifiers: String,
    pub mark: Mark,
    /// Where it is in the file (`event 3`, `line 12`).
    pub place: String,
}

/// What a record says about its behaviour.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Mark {
    /// A STATE event in a project: START or STOP by its position among its key's occurrences.
    Toggle,
    /// An explicit START (tabular export).
    Start,
    /// An explicit STOP (tabular export).
    Stop,
    /// A POINT event.
    Point,
}

/// A paired bout in observation time.
#[derive(Clone, Debug)]
pub(crate) struct Bout {
    pub subject: String,
    pub behavior: String,
    pub modifiers: String,
    pub start: f64,
    /// `None`: close at the end of the media file it starts in (`--on-unpaired close-at-end`).
    pub stop: Option<f64>,
    pub point: bool,
    pub place: String,
}

/// An observation ready to be placed on its media.
#[derive(Clone, Debug)]
pub(crate) struct Observation {
    pub id: String,
    pub timeline: Timeline,
    pub camera: Option<String>,
    pub group: Option<String>,
}

/// Milliseconds, as BORIS quantises event times.
pub(crate) fn ms(t: f64) -> f64 {
    (t * 1000.0).round() / 1000.0
}

pub(crate) fn obs_place(id: &str) -> String {
    format!("observation {id:?}")
}

/// Pairs records (sorted by time here, stably) into bouts; unpaired ones go through the policy.
pub(crate) fn pair(records: &mut [Record], obs: &str, file: &Path, c: &mut Collector) -> Vec<Bout> {
    records.sort_by(|a, b| a.t.total_cmp(&b.t));
    let mut open: BTreeMap<(String, String, String), Record> = BTreeMap::new();
    let mut bouts = Vec::new();
    let mut pairs = 0;
    for r in records.iter() {
        let key = (r.subject.clone(), r.behavior.clone(), r.modifiers.clone());
        let close = |start: Record, stop: &Record| Bout {
            subject: start.subject,
            behavior: start.behavior,
            modifiers: start.modifiers,
            start: start.t,
            stop: Some(stop.t),
            point: false,
            place: format!("{} to {}", start.place, stop.place),
        };
        match r.mark {
            Mark::Point => bouts.push(Bout {
                subject: r.subject.clone(),
                behavior: r.behavior.clone(),
                modifiers: r.modifiers.clone(),
                start: r.t,
                stop: Some(r.t),
                point: true,
                place: r.place.clone(),
            }),
            Mark::Toggle => match open.remove(&key) {
                Some(start) => {
                    pairs += 1;
                    bouts.push(close(start, r));
                }
                None => {
                    open.insert(key, r.clone());
                }
            },
            Mark::Start => {
                if let Some(prev) = open.insert(key, r.clone()) {
                    unpaired(
                        &prev,
                        "START has no STOP before the next START",
                        obs,
                        file,
                        c,
                        &mut bouts,
                    );
                }
            }
            Mark::Stop => match open.remove(&key) {
                Some(start) => {
                    pairs += 1;
                    bouts.push(close(start, r));
                }
                None => {
                    let p = Problem::new(
                        ProblemKind::Unpaired,
                        file,
                        format!("{}, {}", obs_place(obs), r.place),
                        format!("STOP of {} has no START", describe(r)),
                    )
                    .at_s(r.t)
                    .value(r.behavior.clone());
                    match c.policies.on_unpaired {
                        OnUnpaired::Error => c.error(p),
                        _ => c.handled(p, "dropped"),
                    }
                }
            },
        }
    }
    for (_, start) in open {
        unpaired(&start, "START has no STOP", obs, file, c, &mut bouts);
    }
    c.merge("BORIS START/STOP pairs", pairs);
    bouts
}

fn describe(r: &Record) -> String {
    let mut s = r.behavior.clone();
    if !r.subject.is_empty() {
        s.push_str(&format!(" of subject {:?}", r.subject));
    }
    if !r.modifiers.is_empty() {
        s.push_str(&format!(" with modifiers {:?}", r.modifiers));
    }
    s
}

fn unpaired(
    start: &Record,
    what: &str,
    obs: &str,
    file: &Path,
    c: &mut Collector,
    bouts: &mut Vec<Bout>,
) {
    let p = Problem::new(
        ProblemKind::Unpaired,
        file,
        format!("{}, {}", obs_place(obs), start.place),
        format!("{what}: {}", describe(start)),
    )
    .at_s(start.t)
    .value(start.behavior.clone());
    match c.policies.on_unpaired {
        OnUnpaired::Error => c.error(p),
        OnUnpaired::Drop => c.handled(p, "dropped"),
        OnUnpaired::CloseAtEnd => {
            c.handled(p, "closed at the end of its media file");
            bouts.push(Bout {
                subject: start.subject.clone(),
                behavior: start.behavior.clone(),
                modifiers: start.modifiers.clone(),
                start: start.t,
                stop: None,
                point: false,
                place: start.place.clone(),
            });
        }
    }
}

/// Places bouts of one observation on its media files: resolves each file under the videos
/// root, converts observation times to video times, applies the point, boundary and unpaired
/// policies. Returns the events in time order.
pub(crate) fn place(
    obs: &Observation,
    bouts: &[Bout],
    file: &Path,
    media: &Media,
    c: &mut Collector,
) -> Vec<AnnotEvent> {
    let oplace = obs_place(&obs.id);
    let files = &obs.timeline.files;
    if files.is_empty() {
        if !bouts.is_empty() {
            c.error(Problem::new(
                ProblemKind::Invalid,
                file,
                oplace,
                "media observation with events but no media file in player 1",
            ));
        }
        return Vec::new();
    }
    // Cumulative starts; lengths are needed only to find the file of an event when several play
    // one after another, and to check ends.
    let lengths: Vec<Option<f64>> = files.iter().map(|(_, l)| *l).collect();
    if files.len() > 1 && lengths.iter().any(Option::is_none) {
        let missing: Vec<&str> = files
            .iter()
            .filter(|(_, l)| l.is_none())
            .map(|(f, _)| f.as_str())
            .collect();
        c.error(
            Problem::new(
                ProblemKind::Invalid,
                file,
                oplace,
                "several media files play one after another but the length of some is not recorded, so event times cannot be mapped to files",
            )
            .value(missing.join(";")),
        );
        return Vec::new();
    }
    let mut cum = vec![0.0];
    for l in &lengths {
        cum.push(cum.last().copied().unwrap_or(0.0) + l.unwrap_or(f64::INFINITY));
    }
    // Resolve each file once.
    let mut videos: Vec<Option<String>> = Vec::with_capacity(files.len());
    for (k, (path, _)) in files.iter().enumerate() {
        // Where the file plays on the observation's clock, for the messages.
        let span = if cum[k + 1].is_finite() {
            format!(
                "{:.3} s to {:.3} s",
                cum[k] + obs.timeline.offset,
                cum[k + 1] + obs.timeline.offset
            )
        } else {
            format!("from {:.3} s", cum[k] + obs.timeline.offset)
        };
        let v = match media.resolve(path) {
            Resolved::AsWritten(s) | Resolved::Found(s) => Some(s),
            Resolved::NotFound => {
                c.invalid(
                    Problem::new(
                        ProblemKind::MissingVideo,
                        file,
                        oplace.clone(),
                        format!(
                            "no file under {} matches this media path",
                            media
                                .root()
                                .map(|r| r.display().to_string())
                                .unwrap_or_default()
                        ),
                    )
                    .at(span.clone())
                    .value(path.clone()),
                );
                None
            }
            Resolved::Ambiguous(all) => {
                c.invalid(
                    Problem::new(
                        ProblemKind::MissingVideo,
                        file,
                        oplace.clone(),
                        format!("several files match this media path: {}", all.join(", ")),
                    )
                    .at(span.clone())
                    .value(path.clone()),
                );
                None
            }
        };
        videos.push(v);
    }
    let file_of = |m: f64| -> usize {
        (0..files.len())
            .find(|&i| m < cum[i + 1] - EPS)
            .unwrap_or(files.len() - 1)
    };
    let total = cum[files.len()];
    let mut out = Vec::new();
    let mut skipped_missing = 0;
    for b in bouts {
        let where_ = format!("{oplace}, {}", b.place);
        let ms_ = b.start - obs.timeline.offset;
        if ms_ < -EPS || ms_ > total + EPS {
            c.invalid(
                Problem::new(
                    ProblemKind::OutsideMedia,
                    file,
                    where_,
                    format!(
                        "{} starts outside its media (media time {:.3} s, media length {})",
                        b.behavior,
                        ms_,
                        if total.is_finite() {
                            format!("{total:.3} s")
                        } else {
                            "unknown".into()
                        }
                    ),
                )
                .at_s(b.start)
                .value(b.behavior.clone()),
            );
            continue;
        }
        let ms_ = ms_.max(0.0);
        let i = file_of(ms_);
        let (mut s, mut e) = if b.point {
            match c.policies.point_seconds {
                None => {
                    c.skip("POINT events (no --point-seconds)", 1);
                    continue;
                }
                Some(w) => {
                    c.merge("POINT events made windows", 1);
                    (ms_ - w / 2.0, ms_ + w / 2.0)
                }
            }
        } else {
            match b.stop {
                Some(stop) => (ms_, stop - obs.timeline.offset),
                None => match lengths[i] {
                    Some(_) => (ms_, cum[i + 1]),
                    None => {
                        c.error(
                            Problem::new(
                                ProblemKind::Unpaired,
                                file,
                                where_,
                                format!(
                                    "cannot close {} at the end of its media: the media length is not recorded",
                                    b.behavior
                                ),
                            )
                            .at_s(b.start)
                            .value(b.behavior.clone()),
                        );
                        continue;
                    }
                },
            }
        };
        if b.point {
            // A window is clipped to the file its point falls in.
            s = s.max(cum[i]);
            e = e.min(cum[i + 1]);
        }
        if e <= s + 1e-9 {
            c.invalid(
                Problem::new(
                    ProblemKind::Invalid,
                    file,
                    where_,
                    format!(
                        "{} has zero length (START and STOP at the same time)",
                        b.behavior
                    ),
                )
                .at_s(b.start)
                .value(b.behavior.clone()),
            );
            continue;
        }
        if e > total + EPS {
            c.invalid(
                Problem::new(
                    ProblemKind::OutsideMedia,
                    file,
                    where_,
                    format!(
                        "{} ends at media time {e:.3} s, past the end of its media ({total:.3} s)",
                        b.behavior
                    ),
                )
                .at_s(b.start)
                .value(b.behavior.clone()),
            );
            continue;
        }
        let j = file_of((e - EPS).max(s));
        let pieces: Vec<(usize, f64, f64)> = if j == i {
            vec![(i, s, e)]
        } else {
            let p = Problem::new(
                ProblemKind::CrossesFiles,
                file,
                where_.clone(),
                format!(
                    "{} runs from {} into {} (media times {s:.3} s to {e:.3} s; file boundary at {:.3} s)",
                    b.behavior,
                    files[i].0,
                    files[j].0,
                    cum[i + 1]
                ),
            )
            .at(format!("{:.3} s to {:.3} s", b.start, b.stop.unwrap_or(e + obs.timeline.offset)))
            .value(b.behavior.clone());
            match c.policies.on_boundary {
                OnBoundary::Error => {
                    c.error(p);
                    continue;
                }
                OnBoundary::Drop => {
                    c.handled(p, "dropped");
                    continue;
                }
                OnBoundary::Split => {
                    c.handled(p, "split at the file boundary");
                    c.merge("events split at media-file boundaries", 1);
                    (i..=j)
                        .map(|k| (k, s.max(cum[k]), e.min(cum[k + 1])))
                        .filter(|(_, a, b)| b - a > 1e-9)
                        .collect()
                }
            }
        };
        for (k, a, z) in pieces {
            let Some(video) = &videos[k] else {
                skipped_missing += 1;
                continue;
            };
            out.push(AnnotEvent {
                video: video.clone(),
                start_s: ms(a - cum[k]),
                duration_s: ms(z - a),
                behavior: b.behavior.clone(),
                subject: subject_of(&b.subject),
                modifiers: (!b.modifiers.is_empty()).then(|| b.modifiers.clone()),
                observation: Some(obs.id.clone()),
                group: obs.group.clone(),
                camera: obs.camera.clone(),
                ..AnnotEvent::default()
            });
        }
    }
    c.skip("events on media files not found", skipped_missing);
    out.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
    crate::problems::keep_sane(out, file, c)
}

/// A subject as the events CSV holds it: `None` for BORIS's empty or "No focal subject".
pub(crate) fn subject_of(s: &str) -> Option<String> {
    if s.is_empty() || s == NO_FOCAL_SUBJECT {
        None
    } else {
        Some(s.to_string())
    }
}

/// Parses a BORIS file of any kind: a project (JSON, gzipped JSON) or a tabular / aggregated
/// export (TSV / CSV, or an XLSX / XLS / ODS workbook), told apart by content.
pub fn parse_any(
    bytes: &[u8],
    file: &Path,
    media: &mut Media,
    c: &mut Collector,
) -> Vec<AnnotEvent> {
    let head = bytes
        .iter()
        .copied()
        .find(|b| !(b.is_ascii_whitespace() || *b == 0xef || *b == 0xbb || *b == 0xbf));
    let is_gzip = bytes.starts_with(&[0x1f, 0x8b]);
    if is_gzip || head == Some(b'{') {
        project::parse_project(bytes, file, media, c)
    } else if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(&[0xd0, 0xcf, 0x11, 0xe0]) {
        // XLSX / ODS (zip) or XLS (OLE2) workbooks: every worksheet is a table.
        match workbook::sheets_as_tsv(bytes) {
            Ok(sheets) => sheets
                .iter()
                .filter(|(_, tsv)| tsv.iter().any(|b| !b.is_ascii_whitespace()))
                .flat_map(|(_, tsv)| tables::parse_table(tsv, file, media, c))
                .collect(),
            Err(e) => {
                c.error(Problem::new(
                    ProblemKind::Unreadable,
                    file,
                    "",
                    format!("not a readable workbook: {e}"),
                ));
                Vec::new()
            }
        }
    } else {
        tables::parse_table(bytes, file, media, c)
    }
}
