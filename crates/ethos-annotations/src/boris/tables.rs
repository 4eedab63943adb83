//! BORIS event exports as tables (TSV or CSV, told apart by the header's separator):
//!
//! - **aggregated** (one row per bout): `Observation id`, `Observation type`, `Source`,
//!   `Time offset (s)`, `Media duration (s)`, `Subject`, `Behavior`, `Modifier #1..`,
//!   `Behavior type` (STATE / POINT), `Start (s)`, `Stop (s)`, `Media file name`, ...;
//! - **tabular** (one row per coded event): the same observation columns, `Behavior type`
//!   (START / STOP / POINT; `Status` in older BORIS) and `Time`.
//!
//! Times are observation times; `Source` (`player #1:a.mp4;b.mp4|player #2:c.mp4`) and
//! `Media duration (s)` (`30.000;30.000|60.000`) give player 1's files and their lengths.
//! Columns named `camera` or `group` (BORIS writes independent variables as columns) fill those
//! columns of the events CSV.

use std::path::Path;

use super::{
    Bout, Mark, NO_FOCAL_SUBJECT, Observation, Record, Timeline, ms, obs_place, pair, place,
};
use crate::events::AnnotEvent;
use crate::media::Media;
use crate::problems::{Collector, Problem, ProblemKind};

fn col(header: &[String], names: &[&str]) -> Option<usize> {
    names
        .iter()
        .find_map(|n| header.iter().position(|h| h.eq_ignore_ascii_case(n)))
}

/// Player 1's entries of a `Source` or `Media duration (s)` cell.
fn player1(cell: &str) -> Vec<String> {
    let first = cell.split('|').next().unwrap_or("");
    let first = match first.find(':') {
        // `player #1:` prefix (not a Windows drive letter: those have one letter before `:`).
        Some(i) if first[..i].trim_start().starts_with("player") => &first[i + 1..],
        _ => first,
    };
    first
        .split(';')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn num(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|x| x.is_finite())
}

/// Rows of one observation with its observation-level facts (from its first row).
struct ObsRows {
    obs: Observation,
    live: bool,
    records: Vec<Record>,
    bouts: Vec<Bout>,
}

/// Parses a tabular or aggregated BORIS export into events; problems go to `c`.
pub fn parse_table(
    bytes: &[u8],
    file: &Path,
    media: &mut Media,
    c: &mut Collector,
) -> Vec<AnnotEvent> {
    let first_line = bytes.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let delim = if first_line.contains(&b'\t') {
        b'\t'
    } else {
        b','
    };
    let mut r = csv::ReaderBuilder::new()
        .delimiter(delim)
        .flexible(true)
        .from_reader(bytes);
    let header: Vec<String> = match r.headers() {
        Ok(h) => h
            .iter()
            .map(|s| s.trim_start_matches('\u{feff}').trim().to_string())
            .collect(),
        Err(e) => {
            c.error(Problem::new(
                ProblemKind::Unreadable,
                file,
                "line 1",
                format!("cannot read the header: {e}"),
            ));
            return Vec::new();
        }
    };
    let c_obs = col(&header, &["Observation id"]);
    let c_behavior = col(&header, &["Behavior", "Behaviour"]);
    let c_start = col(&header, &["Start (s)", "Start"]);
    let c_stop = col(&header, &["Stop (s)", "Stop"]);
    let c_time = col(&header, &["Time"]);
    let c_kind = col(&header, &["Behavior type", "Status"]);
    let aggregated = c_start.is_some() && c_stop.is_some();
    let tabular = c_time.is_some() && c_kind.is_some();
    let (Some(c_obs), Some(c_behavior), true) = (c_obs, c_behavior, aggregated || tabular) else {
        c.error(
            Problem::new(
                ProblemKind::Unreadable,
                file,
                "line 1",
                "not a BORIS tabular or aggregated export: it needs the columns Observation id, Behavior, and Time + Behavior type (tabular) or Start (s) + Stop (s) (aggregated)",
            )
            .value(header.join(if delim == b'\t' { "\t" } else { "," })),
        );
        return Vec::new();
    };
    let c_type = col(&header, &["Observation type"]);
    let c_source = col(&header, &["Source", "Media file"]);
    let c_offset = col(&header, &["Time offset (s)"]);
    let c_durations = col(&header, &["Media duration (s)", "Total length"]);
    let c_subject = col(&header, &["Subject"]);
    let c_mods: Vec<usize> = header
        .iter()
        .enumerate()
        .filter(|(_, h)| h.starts_with("Modifier #") || h.eq_ignore_ascii_case("Modifiers"))
        .map(|(i, _)| i)
        .collect();
    let c_camera = col(&header, &["camera"]);
    let c_group = col(&header, &["group"]);
    c.note(format!(
        "{}: BORIS {} export",
        file.display(),
        if aggregated { "aggregated" } else { "tabular" }
    ));

    let mut all: Vec<ObsRows> = Vec::new();
    for rec in r.records() {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                c.error(Problem::new(
                    ProblemKind::Unreadable,
                    file,
                    format!("line {line}"),
                    format!("unreadable row: {e}"),
                ));
                if matches!(e.kind(), csv::ErrorKind::Utf8 { .. }) {
                    continue;
                }
                break;
            }
        };
        let line = rec.position().map_or(0, |p| p.line());
        if rec.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let get = |i: Option<usize>| i.and_then(|i| rec.get(i)).unwrap_or("").trim().to_string();
        let id = get(Some(c_obs));
        let place_ = format!("line {line}");
        let idx = match all.iter().position(|o| o.obs.id == id) {
            Some(i) => i,
            None => {
                let otype = get(c_type);
                let live = otype.to_lowercase().contains("live")
                    || otype.to_lowercase().contains("picture")
                    || otype.to_lowercase().contains("images");
                let files = player1(&get(c_source));
                let durations: Vec<Option<f64>> =
                    player1(&get(c_durations)).iter().map(|d| num(d)).collect();
                let files: Vec<(String, Option<f64>)> = files
                    .into_iter()
                    .enumerate()
                    .map(|(k, f)| (f, durations.get(k).copied().flatten()))
                    .collect();
                let offset_cell = get(c_offset);
                let offset = if offset_cell.is_empty() || offset_cell == "NA" {
                    0.0
                } else {
                    match num(&offset_cell) {
                        Some(x) => ms(x),
                        None => {
                            c.invalid(
                                Problem::new(
                                    ProblemKind::Invalid,
                                    file,
                                    format!("{}, {place_}", obs_place(&id)),
                                    "Time offset (s) is not a number",
                                )
                                .value(offset_cell),
                            );
                            0.0
                        }
                    }
                };
                let opt = |i: Option<usize>| Some(get(i)).filter(|s| !s.is_empty() && s != "NA");
                all.push(ObsRows {
                    obs: Observation {
                        id: id.clone(),
                        timeline: Timeline { files, offset },
                        camera: opt(c_camera),
                        group: opt(c_group),
                    },
                    live,
                    records: Vec::new(),
                    bouts: Vec::new(),
                });
                all.len() - 1
            }
        };
        if all[idx].live {
            continue;
        }
        let behavior = get(Some(c_behavior));
        let subject = {
            let s = get(c_subject);
            if s == NO_FOCAL_SUBJECT {
                String::new()
            } else {
                s
            }
        };
        let modifiers = {
            let parts: Vec<String> = c_mods
                .iter()
                .map(|&i| rec.get(i).unwrap_or("").trim().to_string())
                .collect();
            // BORIS joins an event's modifiers with `|` and pads the columns with empty cells.
            let n = parts
                .iter()
                .rposition(|p| !p.is_empty())
                .map_or(0, |k| k + 1);
            parts[..n].join("|")
        };
        let kind = get(c_kind).to_uppercase();
        let where_ = format!("{}, {place_}", obs_place(&id));
        if behavior.is_empty() {
            c.invalid(Problem::new(
                ProblemKind::Invalid,
                file,
                where_,
                "empty Behavior",
            ));
            continue;
        }
        if aggregated {
            let start_cell = get(c_start);
            let stop_cell = get(c_stop);
            let Some(start) = num(&start_cell) else {
                c.invalid(
                    Problem::new(
                        ProblemKind::Invalid,
                        file,
                        where_,
                        "Start (s) is not a number",
                    )
                    .value(start_cell),
                );
                continue;
            };
            let point = kind == "POINT";
            let stop = if point {
                start
            } else {
                match num(&stop_cell) {
                    Some(s) => s,
                    None => {
                        c.invalid(
                            Problem::new(
                                ProblemKind::Invalid,
                                file,
                                where_,
                                "Stop (s) is not a number",
                            )
                            .at_s(start)
                            .value(stop_cell),
                        );
                        continue;
                    }
                }
            };
            all[idx].bouts.push(Bout {
                subject,
                behavior,
                modifiers,
                start: ms(start),
                stop: Some(ms(stop)),
                point,
                place: place_,
            });
        } else {
            let time_cell = get(c_time);
            let Some(t) = num(&time_cell) else {
                c.invalid(
                    Problem::new(ProblemKind::Invalid, file, where_, "Time is not a number")
                        .value(time_cell),
                );
                continue;
            };
            let mark = match kind.as_str() {
                "START" => Mark::Start,
                "STOP" => Mark::Stop,
                "POINT" => Mark::Point,
                _ => {
                    c.invalid(
                        Problem::new(
                            ProblemKind::Invalid,
                            file,
                            where_,
                            "Behavior type must be START, STOP or POINT",
                        )
                        .at_s(t)
                        .value(kind),
                    );
                    continue;
                }
            };
            all[idx].records.push(Record {
                t: ms(t),
                subject,
                behavior,
                modifiers,
                mark,
                place: place_,
            });
        }
    }

    let mut out = Vec::new();
    for mut o in all {
        if o.live {
            c.handled(
                Problem::new(
                    ProblemKind::Unsupported,
                    file,
                    obs_place(&o.obs.id),
                    "LIVE (or images) observation: no video",
                ),
                "skipped",
            );
            c.skip("LIVE observations (no video)", 1);
            continue;
        }
        c.count("BORIS media observations", 1);
        let mut bouts = std::mem::take(&mut o.bouts);
        if !o.records.is_empty() {
            c.count("BORIS coded events", o.records.len());
            bouts.extend(pair(&mut o.records, &o.obs.id, file, c));
        } else {
            c.count("BORIS aggregated bouts", bouts.len());
        }
        out.extend(place(&o.obs, &bouts, file, media, c));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn player_one_of_source_cells() {
        assert_eq!(
            player1("player #1:/a/x.mp4;/a/y.mp4|player #2:/a/z.mp4"),
            vec!["/a/x.mp4", "/a/y.mp4"]
        );
        assert_eq!(player1("player #1:C:\\v\\x.mp4"), vec!["C:\\v\\x.mp4"]);
        assert_eq!(player1("C:\\v\\x.mp4"), vec!["C:\\v\\x.mp4"]);
        assert_eq!(player1("30.000;30.000|60.000"), vec!["30.000", "30.000"]);
    }
}
