//! Label Studio JSON exports of video tasks (a list of tasks, each with `data` and
//! `annotations[].result[]`).
//!
//! - `timelinelabels` results (`TimelineLabels` tag): `value.ranges[] = {start, end}` are
//!   *inclusive, 1-based* frames, `value.timelinelabels` the labels: frames `s..=e` are the
//!   event `start_s = (s - 1) / fps`, `duration_s = (e - s + 1) / fps`.
//! - `videorectangle` results (`VideoRectangle` tag): `value.sequence[]` keyframes
//!   `{frame, enabled, ...}` (1-based) with `value.labels`. The box is in view from a keyframe
//!   until a keyframe with `enabled: false`, which is the last frame in view; a sequence still
//!   enabled at its last keyframe lasts to the end of the video (`value.framesCount`).
//! - `choices` results on a whole task (`Choices` tag, no region): the choice labels the whole
//!   video (0 to the video's length).
//!
//! Only the first annotation of a task that was not cancelled is read (others are counted as
//! skipped); `predictions` are ignored.
//!
//! **Frame rate**: `--fps`, else the labelling config's `<Video frameRate="...">`
//! (`--label-config`), else the probed video, else `framesCount / duration` of a
//! `videorectangle` of the task.
//!
//! **The video** is the task's `data` value of the `<Video>` tag's `value="$key"` (else `video`,
//! else the first value ending in a video extension). Label Studio's own prefixes are removed
//! for matching: `/data/upload/N/` and the 8-hex-digit upload prefix `1a2b3c4d-`,
//! `/data/local-files/?d=`, URL schemes and query strings, `%XX` escapes.

use std::path::Path;

use serde_json::Value;

use crate::events::AnnotEvent;
use crate::media::{Media, Resolved};
use crate::problems::{Collector, Problem, ProblemKind, shown};

/// Options of the Label Studio reader.
#[derive(Clone, Debug, Default)]
pub struct LabelStudioOptions {
    /// Frame rate that overrides every other source.
    pub fps: Option<f64>,
    /// The labelling config (XML) as text, for `<Video frameRate>` and the video's data key.
    pub label_config: Option<String>,
}

const VIDEO_EXT: [&str; 8] = [
    ".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg",
];

/// What the labelling config says about the video tag.
#[derive(Clone, Debug, Default, PartialEq)]
struct ConfigVideo {
    /// `frameRate` as written: a number or `$key`.
    frame_rate: Option<String>,
    /// The data key of `value="$key"`.
    key: Option<String>,
}

fn config_video(xml: &str) -> Result<ConfigVideo, String> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| e.to_string())?;
    let Some(v) = doc.descendants().find(|n| n.has_tag_name("Video")) else {
        return Ok(ConfigVideo::default());
    };
    Ok(ConfigVideo {
        frame_rate: v.attribute("frameRate").map(|s| s.trim().to_string()),
        key: v
            .attribute("value")
            .and_then(|s| s.trim().strip_prefix('$'))
            .map(str::to_string),
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (
                (b[i + 1] as char).to_digit(16),
                (b[i + 2] as char).to_digit(16),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The media path of a Label Studio video URL, without Label Studio's own prefixes.
pub fn clean_video_url(url: &str) -> String {
    let mut s = url.trim();
    if let Some(rest) = s.split_once("/data/local-files/?d=").map(|(_, r)| r) {
        return percent_decode(rest.split('&').next().unwrap_or(rest));
    }
    if let Some((_, rest)) = s.split_once("://") {
        // Drop scheme and host (or bucket).
        s = rest.split_once('/').map(|(_, p)| p).unwrap_or(rest);
    }
    let s = s.split(['?', '#']).next().unwrap_or(s);
    let mut path = percent_decode(s);
    if let Some(rest) = path.strip_prefix("/data/upload/") {
        // `/data/upload/<project>/<8 hex>-<name>`: keep the file name as uploaded.
        let name = rest.rsplit('/').next().unwrap_or(rest);
        path = match name.split_once('-') {
            Some((h, n))
                if h.len() == 8 && h.chars().all(|c| c.is_ascii_hexdigit()) && !n.is_empty() =>
            {
                n.to_string()
            }
            _ => name.to_string(),
        };
    }
    path
}

fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 1e15)
                .map(|f| f as u64)
        }),
        _ => None,
    }
}

/// Parses a Label Studio JSON export into events; problems go to `c`.
pub fn parse_labelstudio(
    bytes: &[u8],
    file: &Path,
    opts: &LabelStudioOptions,
    media: &mut Media,
    c: &mut Collector,
) -> Vec<AnnotEvent> {
    let json: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            c.error(Problem::new(
                ProblemKind::Unreadable,
                file,
                format!("line {}, column {}", e.line(), e.column()),
                format!("not a Label Studio JSON export (invalid JSON: {e})"),
            ));
            return Vec::new();
        }
    };
    let tasks: Vec<&Value> = match &json {
        Value::Array(a) => a.iter().collect(),
        Value::Object(_) => vec![&json],
        other => {
            c.error(
                Problem::new(
                    ProblemKind::Unreadable,
                    file,
                    "",
                    "a Label Studio export is a list of tasks",
                )
                .value(shown(other)),
            );
            return Vec::new();
        }
    };
    let config = match &opts.label_config {
        None => ConfigVideo::default(),
        Some(xml) => match config_video(xml) {
            Ok(cv) => cv,
            Err(e) => {
                c.error(Problem::new(
                    ProblemKind::Unreadable,
                    file,
                    "--label-config",
                    format!("the labelling config is not valid XML: {e}"),
                ));
                return Vec::new();
            }
        },
    };
    let mut out = Vec::new();
    for (n, task) in tasks.iter().enumerate() {
        let id = task
            .get("id")
            .map(shown)
            .unwrap_or_else(|| format!("#{}", n + 1));
        let tplace = format!("task {id}");
        let Some(data) = task.get("data").and_then(Value::as_object) else {
            c.invalid(Problem::new(
                ProblemKind::Invalid,
                file,
                tplace,
                "task without a \"data\" object",
            ));
            continue;
        };
        let url = config
            .key
            .as_ref()
            .and_then(|k| data.get(k))
            .or_else(|| data.get("video"))
            .or_else(|| {
                data.values().find(|v| {
                    v.as_str().is_some_and(|s| {
                        let l = s.to_lowercase();
                        VIDEO_EXT
                            .iter()
                            .any(|e| l.split('?').next().unwrap_or("").ends_with(e))
                    })
                })
            })
            .and_then(Value::as_str);
        let Some(url) = url else {
            c.invalid(
                Problem::new(
                    ProblemKind::Invalid,
                    file,
                    tplace,
                    "no video URL in the task's data",
                )
                .value(shown(&Value::Object(data.clone()))),
            );
            continue;
        };
        let annotations: Vec<&Value> = task
            .get("annotations")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter(|x| x.get("was_cancelled").and_then(Value::as_bool) != Some(true))
                    .collect()
            })
            .unwrap_or_default();
        c.count("Label Studio tasks", 1);
        let Some(ann) = annotations.first() else {
            c.skip("Label Studio tasks without annotations", 1);
            continue;
        };
        c.skip(
            "Label Studio extra annotations of a task (the first is read)",
            annotations.len() - 1,
        );
        let Some(results) = ann.get("result").and_then(Value::as_array) else {
            c.invalid(Problem::new(
                ProblemKind::Invalid,
                file,
                tplace,
                "annotation without a \"result\" list",
            ));
            continue;
        };

        let media_path = clean_video_url(url);
        let video = match media.resolve(&media_path) {
            Resolved::AsWritten(v) | Resolved::Found(v) => v,
            Resolved::NotFound => {
                c.invalid(
                    Problem::new(
                        ProblemKind::MissingVideo,
                        file,
                        tplace,
                        "no file under --videos-root matches the task's video",
                    )
                    .value(url),
                );
                continue;
            }
            Resolved::Ambiguous(all) => {
                c.invalid(
                    Problem::new(
                        ProblemKind::MissingVideo,
                        file,
                        tplace,
                        format!("several files match the task's video: {}", all.join(", ")),
                    )
                    .value(url),
                );
                continue;
            }
        };
        let facts = media.facts(&video).and_then(Result::ok);
        // framesCount / duration of a rectangle track: the rate the labelling page measured.
        let rect = results.iter().find_map(|r| {
            let v = r.get("value")?;
            let frames = v.get("framesCount").and_then(Value::as_f64)?;
            let dur = v.get("duration").and_then(Value::as_f64)?;
            (frames > 0.0 && dur > 0.0).then_some((frames, dur))
        });
        let config_fps = config
            .frame_rate
            .as_ref()
            .and_then(|fr| match fr.strip_prefix('$') {
                Some(key) => data.get(key).and_then(|v| match v {
                    Value::Number(n) => n.as_f64(),
                    Value::String(s) => s.parse().ok(),
                    _ => None,
                }),
                None => fr.parse().ok(),
            });
        let fps = opts
            .fps
            .or(config_fps)
            .or(facts.map(|f| f.fps))
            .or(rect.map(|(f, d)| f / d))
            .filter(|f| *f > 0.0 && f.is_finite());
        let length_s = facts.map(|f| f.duration_s).or(rect.map(|(_, d)| d));
        let frames_count = facts.map(|f| f.frames).or(rect.map(|(f, _)| f as u64));

        for (k, r) in results.iter().enumerate() {
            let rplace = format!(
                "{tplace}, result {}",
                r.get("id")
                    .map(shown)
                    .unwrap_or_else(|| (k + 1).to_string())
            );
            let kind = r
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_lowercase();
            let value = r.get("value");
            let need_fps = |c: &mut Collector| {
                c.error(
                    Problem::new(
                        ProblemKind::NoFrameRate,
                        file,
                        rplace.clone(),
                        "frames need a frame rate: pass --fps, --label-config with <Video frameRate>, or --videos-root with the video",
                    )
                    .value(video.clone()),
                );
            };
            let ev = |behavior: &str, start_s: f64, duration_s: f64| AnnotEvent {
                video: video.clone(),
                start_s,
                duration_s,
                behavior: behavior.to_string(),
                observation: Some(format!("task {id}")),
                ..AnnotEvent::default()
            };
            match kind.as_str() {
                "timelinelabels" => {
                    let labels = labels_of(value, "timelinelabels");
                    let ranges = value
                        .and_then(|v| v.get("ranges"))
                        .and_then(Value::as_array);
                    let (Some(ranges), false) = (ranges, labels.is_empty()) else {
                        c.invalid(
                            Problem::new(
                                ProblemKind::Invalid,
                                file,
                                rplace,
                                "timelinelabels result needs value.ranges and value.timelinelabels",
                            )
                            .value(value.map(shown).unwrap_or_default()),
                        );
                        continue;
                    };
                    let Some(fps) = fps else {
                        need_fps(c);
                        continue;
                    };
                    for rg in ranges {
                        let (s, e) = (
                            rg.get("start").and_then(as_u64),
                            rg.get("end").and_then(as_u64),
                        );
                        match (s, e) {
                            (Some(s), Some(e)) if s >= 1 && e >= s => {
                                c.count("Label Studio timeline ranges", 1);
                                for l in &labels {
                                    out.push(ev(l, (s - 1) as f64 / fps, (e - s + 1) as f64 / fps));
                                }
                            }
                            _ => {
                                c.invalid(
                                    Problem::new(
                                        ProblemKind::Invalid,
                                        file,
                                        rplace.clone(),
                                        "a range needs whole frames 1 <= start <= end",
                                    )
                                    .at(format!("frames {}", shown(rg)))
                                    .value(labels.join(",")),
                                );
                            }
                        }
                    }
                }
                "videorectangle" => {
                    let labels = labels_of(value, "labels");
                    let seq = value
                        .and_then(|v| v.get("sequence"))
                        .and_then(Value::as_array);
                    let (Some(seq), false) = (seq, labels.is_empty()) else {
                        c.invalid(
                            Problem::new(
                                ProblemKind::Invalid,
                                file,
                                rplace,
                                "videorectangle result needs value.sequence and value.labels",
                            )
                            .value(value.map(shown).unwrap_or_default()),
                        );
                        continue;
                    };
                    let mut keys: Vec<(u64, bool)> = Vec::new();
                    for kf in seq {
                        match kf.get("frame").and_then(as_u64) {
                            Some(f) if f >= 1 => keys.push((
                                f,
                                kf.get("enabled").and_then(Value::as_bool).unwrap_or(true),
                            )),
                            _ => {
                                c.invalid(
                                    Problem::new(
                                        ProblemKind::Invalid,
                                        file,
                                        rplace.clone(),
                                        "a keyframe needs a whole frame >= 1",
                                    )
                                    .value(shown(kf)),
                                );
                            }
                        }
                    }
                    keys.sort_by_key(|k| k.0);
                    let Some(fps) = fps else {
                        need_fps(c);
                        continue;
                    };
                    c.count("Label Studio rectangle keyframes", keys.len());
                    // Stretches in view: [first enabled frame, disabling frame] inclusive.
                    let mut open: Option<u64> = None;
                    let mut stretches = Vec::new();
                    for (f, enabled) in keys {
                        match (open, enabled) {
                            (None, _) => {
                                if enabled {
                                    open = Some(f);
                                } else {
                                    // A lone disabled keyframe is in view on its own frame.
                                    stretches.push((f, f));
                                }
                            }
                            (Some(a), false) => {
                                stretches.push((a, f));
                                open = None;
                            }
                            (Some(_), true) => {
                                c.merge("Label Studio keyframes inside a stretch", 1)
                            }
                        }
                    }
                    if let Some(a) = open {
                        match frames_count {
                            Some(n) if n >= a => stretches.push((a, n)),
                            _ => {
                                c.error(
                                    Problem::new(
                                        ProblemKind::NoFrameRate,
                                        file,
                                        rplace.clone(),
                                        "the box is in view at its last keyframe but the video's frame count is unknown",
                                    )
                                    .at(format!("frame {a}"))
                                    .value(labels.join(",")),
                                );
                                continue;
                            }
                        }
                    }
                    for (a, b) in stretches {
                        for l in &labels {
                            out.push(ev(l, (a - 1) as f64 / fps, (b - a + 1) as f64 / fps));
                        }
                    }
                }
                "choices" => {
                    let labels = labels_of(value, "choices");
                    if labels.is_empty() {
                        c.invalid(
                            Problem::new(
                                ProblemKind::Invalid,
                                file,
                                rplace,
                                "choices result without value.choices",
                            )
                            .value(value.map(shown).unwrap_or_default()),
                        );
                        continue;
                    }
                    let Some(len) = length_s.filter(|l| *l > 0.0) else {
                        c.error(
                            Problem::new(
                                ProblemKind::NoFrameRate,
                                file,
                                rplace,
                                "a whole-video choice needs the video's length: give --videos-root with the video",
                            )
                            .value(labels.join(",")),
                        );
                        continue;
                    };
                    c.count("Label Studio whole-task choices", 1);
                    for l in &labels {
                        out.push(ev(l, 0.0, len));
                    }
                }
                "" => {
                    c.invalid(Problem::new(
                        ProblemKind::Invalid,
                        file,
                        rplace,
                        "result without a \"type\"",
                    ));
                }
                other => c.skip(
                    &format!("Label Studio {other} results (not video labels)"),
                    1,
                ),
            }
        }
    }
    crate::problems::keep_sane(out, file, c)
}

fn labels_of(value: Option<&Value>, key: &str) -> Vec<String> {
    value
        .and_then(|v| v.get(key))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|l| l.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_studio_urls_become_media_paths() {
        assert_eq!(
            clean_video_url("/data/upload/1/3f2a9c1d-day1.mp4"),
            "day1.mp4"
        );
        assert_eq!(clean_video_url("/data/upload/1/day-1.mp4"), "day-1.mp4");
        assert_eq!(
            clean_video_url("/data/local-files/?d=farm/cam%202/day2.mp4"),
            "farm/cam 2/day2.mp4"
        );
        assert_eq!(
            clean_video_url("s3://bucket/cams/c1/x.mp4?X-Amz=1"),
            "cams/c1/x.mp4"
        );
        assert_eq!(clean_video_url("https://h.org/v/a.mp4"), "v/a.mp4");
    }

    #[test]
    fn frame_rate_and_key_from_the_config() {
        let cv = config_video(r#"<View><Video name="v" value="$clip" frameRate="$fps"/></View>"#)
            .unwrap();
        assert_eq!(cv.key.as_deref(), Some("clip"));
        assert_eq!(cv.frame_rate.as_deref(), Some("$fps"));
    }
}
