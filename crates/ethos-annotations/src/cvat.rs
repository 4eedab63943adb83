//! CVAT XML exports.
//!
//! - **"CVAT for video 1.1"**: `<track id label>` elements whose shapes (`box`, `polygon`,
//!   `polyline`, `points`, `ellipse`, `cuboid`, `mask`, `skeleton`) are keyframes with `frame`,
//!   `outside` and `keyframe` attributes. A track is *in view* from a keyframe with
//!   `outside="0"` up to (not including) the next keyframe with `outside="1"`; a track can
//!   leave and come back, so one track gives one interval per stretch in view. A track still in
//!   view at its last keyframe stays until the task's last frame (`size` frames from
//!   `start_frame`). Each interval becomes an event of the track's label.
//! - **"CVAT for images 1.1"**: `<image id>` elements with `<tag label>` children: per-frame
//!   labels; consecutive frames with the same tag become one event.
//!
//! **Frames to seconds.** Frame numbers are task frames; the video frame is
//! `start_frame + frame * step` (`frame_filter` `step=N`), shown at `video_frame / fps`. An
//! interval of frames `[a, b)` is the event `start_s = a / fps`, `duration_s = (b - a) / fps`.
//! The frame rate is the video's own (probed when `--videos-root` has the file), else `--fps`.
//!
//! **The video** is the task's `<source>` (CVAT writes the uploaded file's name there), else
//! `--video`.

use std::path::Path;

use roxmltree::{Document, Node};

use crate::events::AnnotEvent;
use crate::media::{Media, Resolved};
use crate::problems::{Collector, Problem, ProblemKind};

/// Options CVAT files need that the XML may not carry.
#[derive(Clone, Debug, Default)]
pub struct CvatOptions {
    /// Frame rate to use when the video cannot be probed.
    pub fps: Option<f64>,
    /// Video name to use when the XML has no `<source>`.
    pub video: Option<String>,
}

const SHAPES: [&str; 8] = [
    "box", "polygon", "polyline", "points", "ellipse", "cuboid", "mask", "skeleton",
];

fn child<'a>(n: Node<'a, 'a>, name: &str) -> Option<Node<'a, 'a>> {
    n.children().find(|c| c.has_tag_name(name))
}

fn child_text(n: Option<Node<'_, '_>>, name: &str) -> Option<String> {
    n.and_then(|n| child(n, name))
        .and_then(|c| c.text())
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

fn flag(n: Node<'_, '_>, attr: &str) -> bool {
    matches!(
        n.attribute(attr).map(str::trim),
        Some("1") | Some("true") | Some("True")
    )
}

/// Parses a CVAT XML export into events; problems go to `c`.
pub fn parse_cvat(
    bytes: &[u8],
    file: &Path,
    opts: &CvatOptions,
    media: &mut Media,
    c: &mut Collector,
) -> Vec<AnnotEvent> {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            c.error(Problem::new(
                ProblemKind::Unreadable,
                file,
                "",
                format!("not UTF-8 text: {e}"),
            ));
            return Vec::new();
        }
    };
    let doc = match Document::parse(text) {
        Ok(d) => d,
        Err(e) => {
            c.error(Problem::new(
                ProblemKind::Unreadable,
                file,
                format!("line {}", e.pos().row),
                format!("not valid XML: {e}"),
            ));
            return Vec::new();
        }
    };
    let root = doc.root_element();
    if !root.has_tag_name("annotations") {
        c.error(
            Problem::new(
                ProblemKind::Unreadable,
                file,
                "",
                "not a CVAT export: the root element must be <annotations>",
            )
            .value(root.tag_name().name()),
        );
        return Vec::new();
    }
    // `meta/task` (task export) or `meta/job` (job export).
    let meta = child(root, "meta");
    let task = meta.and_then(|m| child(m, "task").or_else(|| child(m, "job")));
    let size: Option<u64> = child_text(task, "size").and_then(|s| s.parse().ok());
    let start_frame: u64 = child_text(task, "start_frame")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let step: u64 = child_text(task, "frame_filter")
        .and_then(|f| f.strip_prefix("step=").and_then(|s| s.trim().parse().ok()))
        .filter(|&s: &u64| s > 0)
        .unwrap_or(1);
    let source = child_text(task, "source")
        .or_else(|| child_text(meta, "source"))
        .or_else(|| opts.video.clone());
    let declared: Vec<String> = task
        .and_then(|t| child(t, "labels"))
        .map(|ls| {
            ls.children()
                .filter(|l| l.has_tag_name("label"))
                .filter_map(|l| child_text(Some(l), "name"))
                .collect()
        })
        .unwrap_or_default();

    let tracks: Vec<Node> = root
        .children()
        .filter(|n| n.has_tag_name("track"))
        .collect();
    let images: Vec<Node> = root
        .children()
        .filter(|n| n.has_tag_name("image"))
        .collect();
    // Intervals of task frames [a, b) per label, with where they came from.
    let mut spans: Vec<(String, u64, Option<u64>, String)> = Vec::new();
    for t in &tracks {
        let id = t.attribute("id").unwrap_or("?");
        let tplace = format!("track {id}");
        let Some(label) = t.attribute("label").map(str::to_string) else {
            c.invalid(Problem::new(
                ProblemKind::Invalid,
                file,
                tplace,
                "track without a label",
            ));
            continue;
        };
        if !declared.is_empty() && !declared.contains(&label) {
            c.invalid(
                Problem::new(
                    ProblemKind::UnknownBehavior,
                    file,
                    tplace.clone(),
                    format!(
                        "label not declared in the task's labels ({})",
                        declared.join(", ")
                    ),
                )
                .value(label.clone()),
            );
            continue;
        }
        let mut keys: Vec<(u64, bool)> = Vec::new();
        let mut bad = false;
        for s in t
            .children()
            .filter(|n| n.is_element() && SHAPES.contains(&n.tag_name().name()))
        {
            let f = s.attribute("frame").unwrap_or("");
            match f.trim().parse::<u64>() {
                Ok(f) => keys.push((f, flag(s, "outside"))),
                Err(_) => {
                    bad = true;
                    c.invalid(
                        Problem::new(
                            ProblemKind::Invalid,
                            file,
                            tplace.clone(),
                            "shape frame is not a non-negative integer",
                        )
                        .value(f),
                    );
                }
            }
        }
        if bad {
            continue;
        }
        keys.sort_by_key(|k| k.0);
        c.count("CVAT tracks", 1);
        c.count("CVAT track keyframes", keys.len());
        let mut open: Option<u64> = None;
        let mut merged = 0;
        for (f, outside) in keys {
            match (open, outside) {
                (None, false) => open = Some(f),
                (Some(a), true) => {
                    if f > a {
                        spans.push((
                            label.clone(),
                            a,
                            Some(f),
                            format!("{tplace}, frames {a}..{f}"),
                        ));
                    }
                    open = None;
                }
                (Some(_), false) => merged += 1,
                (None, true) => {}
            }
        }
        c.merge("CVAT keyframes inside a visible stretch", merged);
        if let Some(a) = open {
            spans.push((label.clone(), a, None, format!("{tplace}, frames {a}..end")));
        }
    }
    // Images format: runs of the same tag on consecutive frames.
    let mut tagged: Vec<(u64, String)> = Vec::new();
    for im in &images {
        let id = im.attribute("id").unwrap_or("");
        let Ok(frame) = id.trim().parse::<u64>() else {
            c.invalid(
                Problem::new(
                    ProblemKind::Invalid,
                    file,
                    "image",
                    "image id is not a frame number",
                )
                .value(id),
            );
            continue;
        };
        for tag in im.children().filter(|n| n.has_tag_name("tag")) {
            match tag.attribute("label") {
                Some(l) if declared.is_empty() || declared.iter().any(|d| d == l) => {
                    tagged.push((frame, l.to_string()))
                }
                other => {
                    c.invalid(
                        Problem::new(
                            ProblemKind::UnknownBehavior,
                            file,
                            format!("image {frame}"),
                            "tag label missing or not declared in the task's labels",
                        )
                        .at(format!("frame {frame}"))
                        .value(other.unwrap_or("")),
                    );
                }
            }
        }
    }
    if !tagged.is_empty() {
        c.count("CVAT frame tags", tagged.len());
        tagged.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
        tagged.dedup();
        let mut i = 0;
        while i < tagged.len() {
            let (a, label) = tagged[i].clone();
            let mut b = a;
            let mut j = i + 1;
            while j < tagged.len() && tagged[j].1 == label && b.checked_add(1) == Some(tagged[j].0)
            {
                b += 1;
                j += 1;
            }
            c.merge("CVAT frame tags joined into runs", j - i - 1);
            spans.push((
                label,
                a,
                Some(b.saturating_add(1)),
                format!("image {a}..{b}"),
            ));
            i = j;
        }
    }
    if spans.is_empty() {
        return Vec::new();
    }

    // The video and its frame rate.
    let Some(source) = source else {
        c.error(Problem::new(
            ProblemKind::Invalid,
            file,
            "meta",
            "the XML names no video (no <source>): pass --video NAME",
        ));
        return Vec::new();
    };
    let video = match media.resolve(&source) {
        Resolved::AsWritten(v) | Resolved::Found(v) => v,
        Resolved::NotFound => {
            c.invalid(
                Problem::new(
                    ProblemKind::MissingVideo,
                    file,
                    "meta",
                    "no file under --videos-root matches the task's video",
                )
                .value(source),
            );
            return Vec::new();
        }
        Resolved::Ambiguous(all) => {
            c.invalid(
                Problem::new(
                    ProblemKind::MissingVideo,
                    file,
                    "meta",
                    format!("several files match the task's video: {}", all.join(", ")),
                )
                .value(source),
            );
            return Vec::new();
        }
    };
    let facts = media.facts(&video);
    let fps = match (&facts, opts.fps) {
        (Some(Ok(f)), _) => f.fps,
        (_, Some(fps)) => fps,
        (Some(Err(e)), None) => {
            c.error(
                Problem::new(
                    ProblemKind::NoFrameRate,
                    file,
                    "meta",
                    format!("cannot probe the video for its frame rate ({e}): pass --fps"),
                )
                .value(video),
            );
            return Vec::new();
        }
        (None, None) => {
            c.error(
                Problem::new(
                    ProblemKind::NoFrameRate,
                    file,
                    "meta",
                    "CVAT frames need the video's frame rate: give --videos-root with the video, or --fps",
                )
                .value(video),
            );
            return Vec::new();
        }
    };
    c.note(format!("{}: {video} at {fps:.3} fps", file.display()));
    let end_frame: Option<u64> = size.or(match &facts {
        Some(Ok(f)) => Some(f.frames.saturating_sub(start_frame) / step),
        _ => None,
    });
    let mut out = Vec::new();
    for (label, a, b, where_) in spans {
        let b = match b.or(end_frame) {
            Some(b) if b > a => b,
            Some(b) => {
                c.invalid(
                    Problem::new(
                        ProblemKind::OutsideMedia,
                        file,
                        where_,
                        format!("track starts at or after the task's last frame ({b})"),
                    )
                    .at(format!("frame {a}"))
                    .value(label),
                );
                continue;
            }
            None => {
                c.error(
                    Problem::new(
                        ProblemKind::NoFrameRate,
                        file,
                        where_,
                        "the track is in view at its last keyframe but the task size (frame count) is unknown",
                    )
                    .at(format!("frame {a}"))
                    .value(label),
                );
                continue;
            }
        };
        let fa = start_frame.saturating_add(a.saturating_mul(step)) as f64;
        let fb = start_frame.saturating_add(b.saturating_mul(step)) as f64;
        out.push(AnnotEvent {
            video: video.clone(),
            start_s: fa / fps,
            duration_s: (fb - fa) / fps,
            behavior: label,
            observation: Some(where_),
            ..AnnotEvent::default()
        });
    }
    out.sort_by(|x, y| x.start_s.total_cmp(&y.start_s));
    crate::problems::keep_sane(out, file, c)
}
