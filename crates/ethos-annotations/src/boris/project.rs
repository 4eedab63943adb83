//! BORIS project files (`.boris`: JSON; `.boris.gz`: the same, gzipped).
//!
//! Format versions read (the `project_format_version` key; the differences matter here):
//!
//! - no version (BORIS < 2, `.obs`-era): observation type `VIDEO`/`AUDIO`, `file` a list
//!   `[player1, player2]`, subjects as `[key, name]` lists;
//! - `< 4.0`: an ethogram's modifiers as one string (`"a,b|c,d"`); events unchanged;
//! - `4.0` (BORIS 4-6): the second player's offset as the observation's
//!   `time offset second player`;
//! - `7.0` (BORIS 7 and later): per-player offsets in `media_info.offset`; from BORIS 8 a frame
//!   index as a 6th event field (a number or `"NA"`);
//! - `8.x`: observations from images (`IMAGES`, skipped here with a note).
//!
//! Events are `[time, subject, code, modifiers, comment, (frame index)]`; only the first four
//! matter here. Second players are synced copies and never make events of their own, so their
//! offsets are read by no one.

use std::io::Read;
use std::path::Path;

use serde_json::Value;

use super::{Mark, Observation, Record, Timeline, ms, obs_place, pair, place};
use crate::events::AnnotEvent;
use crate::media::Media;
use crate::problems::{Collector, Problem, ProblemKind, shown};

/// Gzipped projects are inflated up to this many bytes (a project is rarely over a few MB).
const MAX_INFLATED: u64 = 1 << 30;

/// A number BORIS wrote as a JSON number or a numeric string.
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|x| x.is_finite())
}

fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// The project format version as written (`"7.0"`), or `None` for the oldest projects.
pub fn format_version(project: &Value) -> Option<String> {
    project.get("project_format_version").map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// Parses a project's bytes (JSON or gzipped JSON) into events; problems go to `c`.
pub fn parse_project(
    bytes: &[u8],
    file: &Path,
    media: &mut Media,
    c: &mut Collector,
) -> Vec<AnnotEvent> {
    let inflated;
    let json: &[u8] = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        let r = flate2::read::GzDecoder::new(bytes)
            .take(MAX_INFLATED)
            .read_to_end(&mut out);
        if let Err(e) = r {
            c.error(Problem::new(
                ProblemKind::Unreadable,
                file,
                "",
                format!("not a readable gzip file: {e}"),
            ));
            return Vec::new();
        }
        inflated = out;
        &inflated
    } else {
        bytes
    };
    let pj: Value = match serde_json::from_slice(json) {
        Ok(v) => v,
        Err(e) => {
            c.error(Problem::new(
                ProblemKind::Unreadable,
                file,
                format!("line {}, column {}", e.line(), e.column()),
                format!("not a BORIS project (invalid JSON: {e})"),
            ));
            return Vec::new();
        }
    };
    let Some(observations) = pj.get("observations").and_then(Value::as_object) else {
        c.error(Problem::new(
            ProblemKind::Unreadable,
            file,
            "",
            "not a BORIS project: no \"observations\" object",
        ));
        return Vec::new();
    };
    let version = format_version(&pj);
    c.note(format!(
        "{}: BORIS project format {}",
        file.display(),
        version.as_deref().unwrap_or("(none: before 2.0)")
    ));

    // Ethogram: code → is a STATE behaviour.
    let mut states: std::collections::HashMap<String, bool> = std::collections::HashMap::new();
    match pj.get("behaviors_conf") {
        Some(Value::Object(eth)) => {
            for (idx, b) in eth {
                let code = b.get("code").and_then(Value::as_str);
                let kind = b.get("type").and_then(Value::as_str);
                match (code, kind) {
                    (Some(code), Some(kind)) => {
                        states.insert(code.to_string(), kind.to_uppercase().contains("STATE"));
                    }
                    _ => c.error(
                        Problem::new(
                            ProblemKind::Invalid,
                            file,
                            format!("ethogram entry {idx:?}"),
                            "a behaviour needs a \"code\" and a \"type\" string",
                        )
                        .value(shown(b)),
                    ),
                }
            }
        }
        _ => c.error(Problem::new(
            ProblemKind::Unreadable,
            file,
            "",
            "not a BORIS project: no \"behaviors_conf\" (ethogram) object",
        )),
    }

    let mut out = Vec::new();
    for (id, o) in observations {
        let oplace = obs_place(id);
        let kind = o.get("type").and_then(Value::as_str).unwrap_or("");
        match kind {
            "MEDIA" | "VIDEO" | "AUDIO" => {}
            "LIVE" => {
                c.handled(
                    Problem::new(
                        ProblemKind::Unsupported,
                        file,
                        oplace,
                        "LIVE observation: no video",
                    ),
                    "skipped",
                );
                c.skip("LIVE observations (no video)", 1);
                continue;
            }
            "IMAGES" => {
                c.handled(
                    Problem::new(
                        ProblemKind::Unsupported,
                        file,
                        oplace,
                        "observation from images: no video",
                    ),
                    "skipped",
                );
                c.skip("observations from images (no video)", 1);
                continue;
            }
            other => {
                c.error(
                    Problem::new(
                        ProblemKind::Invalid,
                        file,
                        oplace,
                        "unknown observation type",
                    )
                    .value(other),
                );
                continue;
            }
        }
        if o.get("media_creation_date_as_offset")
            .and_then(Value::as_bool)
            == Some(true)
        {
            c.error(Problem::new(
                ProblemKind::Unsupported,
                file,
                oplace,
                "the observation uses media creation dates as time offsets, which ethos does not read; export it from BORIS without that option",
            ));
            continue;
        }
        let player1: Vec<String> = match o.get("file") {
            Some(Value::Object(players)) => players
                .get("1")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            // Oldest format: [player1, player2].
            Some(Value::Array(a)) => a
                .first()
                .and_then(Value::as_str)
                .map(str::to_string)
                .into_iter()
                .collect(),
            _ => Vec::new(),
        };
        let lengths = o.get("media_info").and_then(|m| m.get("length"));
        let files: Vec<(String, Option<f64>)> = player1
            .iter()
            .map(|f| (f.clone(), lengths.and_then(|l| l.get(f)).and_then(number)))
            .collect();
        let offset = match o.get("time offset") {
            None | Some(Value::Null) => 0.0,
            Some(v) => match number(v) {
                Some(x) => ms(x),
                None => {
                    c.error(
                        Problem::new(
                            ProblemKind::Invalid,
                            file,
                            oplace,
                            "time offset is not a number",
                        )
                        .value(shown(v)),
                    );
                    continue;
                }
            },
        };
        let indep = o.get("independent_variables").and_then(Value::as_object);
        let var = |name: &str| {
            indep.and_then(|m| {
                m.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| text(Some(v)))
                    .filter(|s| !s.is_empty())
            })
        };
        let obs = Observation {
            id: id.clone(),
            timeline: Timeline { files, offset },
            camera: var("camera"),
            group: var("group"),
        };

        let Some(events) = o.get("events").and_then(Value::as_array) else {
            c.error(Problem::new(
                ProblemKind::Invalid,
                file,
                oplace,
                "no \"events\" list",
            ));
            continue;
        };
        let mut records = Vec::with_capacity(events.len());
        for (n, ev) in events.iter().enumerate() {
            let eplace = format!("{oplace}, event {}", n + 1);
            let Some(fields) = ev.as_array().filter(|a| a.len() >= 3) else {
                c.invalid(
                    Problem::new(
                        ProblemKind::Invalid,
                        file,
                        eplace,
                        "an event is a list [time, subject, code, modifiers, comment, ...]",
                    )
                    .value(shown(ev)),
                );
                continue;
            };
            let Some(t) = number(&fields[0]) else {
                c.invalid(
                    Problem::new(
                        ProblemKind::Invalid,
                        file,
                        eplace,
                        "event time is not a number",
                    )
                    .value(shown(&fields[0])),
                );
                continue;
            };
            let t = ms(t);
            let code = text(fields.get(2));
            let Some(&is_state) = states.get(&code) else {
                c.invalid(
                    Problem::new(
                        ProblemKind::UnknownBehavior,
                        file,
                        eplace,
                        "behaviour code not in the project's ethogram",
                    )
                    .at_s(t)
                    .value(code),
                );
                continue;
            };
            records.push(Record {
                t,
                subject: text(fields.get(1)),
                behavior: code,
                modifiers: text(fields.get(3)),
                mark: if is_state { Mark::Toggle } else { Mark::Point },
                place: format!("event {}", n + 1),
            });
        }
        c.count("BORIS media observations", 1);
        c.count("BORIS coded events", records.len());
        let bouts = pair(&mut records, id, file, c);
        out.extend(place(&obs, &bouts, file, media, c));
    }
    out
}
