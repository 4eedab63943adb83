//! `ethos review --predictions DIR [--truth EVENTS]`: one HTML timeline per video that
//! `ethos predict` processed (its `summary.json` lists them), plus an index page. Each page plays a
//! proxy of the video (H.264, short side at most [`PROXY_SHORT_SIDE`] pixels, at most
//! [`PROXY_MAX_FPS`] frames per second, written with `ClipWriter` beside the page, so the folder is
//! self-contained) above a track with the predicted bouts of each class (and the labelled bouts of
//! `--truth`) and the window probabilities; clicking a bout seeks to its start, clicking or
//! dragging on the track scrubs.

use std::path::{Path, PathBuf};

use ethos_core::{Error, ResultExt};
use ethos_video::{ClipWriter, Codec, FrameReader, ReaderOptions, Resize, WriterOptions};
use serde::Serialize;
use serde_json::json;

use super::write_page;
use crate::Result;
use crate::calibrate::{calibrate_windows, read_windows};
use crate::timeline_rule::{ethogram_path, read_bouts, truth_bouts};
use ethos_eval::calibration::Calibration;

/// The timeline page's template (the data replaces `/*TIMELINE_DATA*/`).
pub(crate) const TIMELINE_HTML: &str = include_str!("timeline.html");

/// Largest short side of a proxy video, pixels.
pub const PROXY_SHORT_SIDE: u32 = 360;
/// Highest frame rate of a proxy video.
pub const PROXY_MAX_FPS: f64 = 15.0;

/// What `ethos review --predictions` builds.
#[derive(Debug, Clone)]
pub struct TimelineReviewOptions {
    /// The `ethos predict` output folder.
    pub predictions: PathBuf,
    /// Labelled events to show as true bouts (matched to videos by file name).
    pub truth: Option<PathBuf>,
    /// Output folder (`index.html`, `timeline_<video>.html`, `videos/`).
    pub out: PathBuf,
}

/// What was built.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineReviewSummary {
    /// The index page.
    pub index: PathBuf,
    /// One page per video.
    pub pages: Vec<PathBuf>,
}

/// The videos of a predict folder (`video` entries of its `summary*.json` files whose outputs
/// exist) and the calibration that predict applied to their windows (the last summary's).
fn predicted_videos(dir: &Path) -> Result<(Vec<PathBuf>, Option<Calibration>)> {
    let mut videos = Vec::new();
    let mut calibration = None;
    let entries = std::fs::read_dir(dir).map_err(|e| Error::input_io(dir, e))?;
    let mut summaries: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("summary") && n.ends_with(".json"))
        })
        .collect();
    summaries.sort();
    for s in &summaries {
        let text = std::fs::read_to_string(s).map_err(|e| Error::input_io(s, e))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::bad_input(format!("{}: {e}", s.display())))?;
        // Summaries written before predict recorded it have no `calibration` key: raw probabilities.
        if let Some(c) = v.get("calibration").filter(|c| !c.is_null()) {
            calibration = Some(
                serde_json::from_value(c.clone())
                    .map_err(|e| Error::bad_input(format!("{}: calibration: {e}", s.display())))?,
            );
        }
        for pv in v["per_video"].as_array().into_iter().flatten() {
            if let Some(name) = pv["video"].as_str() {
                let p = PathBuf::from(name);
                if ethos_infer::predict::outputs_for(dir, &p).windows.is_file()
                    && !videos.contains(&p)
                {
                    videos.push(p);
                }
            }
        }
    }
    if videos.is_empty() {
        return Err(Error::bad_input(format!(
            "{}: no `ethos predict` outputs (summary.json with finished videos)",
            dir.display()
        )));
    }
    Ok((videos, calibration))
}

/// Class names from a windows CSV header (`prob_<class>` columns in order).
fn window_classes(path: &Path) -> Result<Vec<String>> {
    let mut r = csv::Reader::from_path(path).map_err(|e| match e.into_kind() {
        csv::ErrorKind::Io(io) => Error::input_io(path, io),
        other => Error::bad_input(format!("{}: {other:?}", path.display())),
    })?;
    let h = r
        .headers()
        .map_err(|e| Error::bad_input(format!("{}: {e}", path.display())))?;
    Ok(h.iter()
        .filter_map(|c| c.strip_prefix("prob_").map(str::to_string))
        .collect())
}

/// Writes a browser-friendly proxy of `video` (H.264, even sides, short side at most
/// [`PROXY_SHORT_SIDE`], at most [`PROXY_MAX_FPS`]).
fn write_proxy(video: &Path, path: &Path) -> Result<()> {
    ethos_video::init();
    let info = ethos_video::probe(video)?;
    let fps_in = if info.avg_fps > 0.0 {
        info.avg_fps
    } else {
        info.real_fps
    };
    let fps = fps_in.clamp(1.0, PROXY_MAX_FPS);
    let short = info.width.min(info.height).max(2);
    let scale = f64::from(PROXY_SHORT_SIDE.min(short)) / f64::from(short);
    let even = |v: u32| ((f64::from(v) * scale).round() as u32).max(2) & !1;
    let (w, h) = (even(info.width), even(info.height));
    let mut reader = FrameReader::open(
        video,
        &ReaderOptions {
            fps: Some(fps),
            start_s: 0.0,
            end_s: None,
            roi: None,
            resize: Resize::Exact {
                width: w,
                height: h,
            },
            threads: 2,
            decoder: Default::default(),
        },
    )?;
    let opts = WriterOptions {
        codec: Codec::H264,
        fps: fps.round() as u32,
        gop: (fps.round() as u32).max(1) * 2,
        quality: Some(26),
        b_frames: false,
    };
    let mut writer = ClipWriter::create(path, w, h, &opts)?;
    while let Some((_, frame)) = reader.next_frame()? {
        writer.write_frame(&frame)?;
    }
    writer.finish()?;
    Ok(())
}

/// File-system-safe stem of a video name.
fn stem(video: &Path) -> String {
    video
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "video".into())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Builds the timeline pages of a predict folder.
pub fn review_timelines(o: &TimelineReviewOptions) -> Result<TimelineReviewSummary> {
    let (videos, calibration) = predicted_videos(&o.predictions)?;
    std::fs::create_dir_all(o.out.join("videos")).map_err(|e| Error::output_io(&o.out, e))?;
    let mut pages = Vec::new();
    let mut index = Vec::new();
    for video in &videos {
        let outputs = ethos_infer::predict::outputs_for(&o.predictions, video);
        let classes = window_classes(&outputs.windows)?;
        // The probabilities the bouts were made from (the ethogram PNG shows the same).
        let cal = calibration.as_ref().filter(|c| c.classes == classes);
        let windows = calibrate_windows(&read_windows(&outputs.windows, &classes)?, cal);
        let bouts = read_bouts(&outputs.events, &classes)?;
        let truth = match &o.truth {
            Some(t) => truth_bouts(t, video, &classes).unwrap_or_else(|e| {
                tracing::warn!("review: {e}; no true bouts for {}", video.display());
                Vec::new()
            }),
            None => Vec::new(),
        };
        let name = stem(video);
        let proxy = format!("videos/{name}.mp4");
        write_proxy(video, &o.out.join(&proxy))
            .context(format!("making a browser copy of {}", video.display()))?;
        let ethogram_src = ethogram_path(&o.predictions, video);
        let ethogram = if ethogram_src.is_file() {
            let rel = format!("videos/{name}.ethogram.png");
            let bytes =
                std::fs::read(&ethogram_src).map_err(|e| Error::input_io(&ethogram_src, e))?;
            let dst = o.out.join(&rel);
            ethos_core::fs::write_bytes_atomic(&dst, &bytes)
                .map_err(|e| Error::output_io(&dst, e))?;
            Some(rel)
        } else {
            None
        };
        let bout_json = |b: &[ethos_eval::timeline::Bout]| -> Vec<serde_json::Value> {
            b.iter()
                .map(|b| json!({"class": b.class_index, "start": b.start_s, "end": b.end_s, "score": b.score}))
                .collect()
        };
        let data = json!({
            "video": video.display().to_string(),
            "src": proxy,
            "classes": classes,
            "duration": windows.iter().map(|w| w.end_s).chain(truth.iter().map(|b| b.end_s)).fold(0.0, f64::max),
            "windows": windows.iter().map(|w| json!([0.5 * (w.start_s + w.end_s), w.probs])).collect::<Vec<_>>(),
            "bouts": bout_json(&bouts),
            "truth": bout_json(&truth),
            "has_truth": o.truth.is_some(),
            "temperature": cal.map(|c| c.temperature),
            "ethogram": ethogram,
        });
        let page = o.out.join(format!("timeline_{name}.html"));
        write_page(&page, TIMELINE_HTML, "/*TIMELINE_DATA*/", &data)?;
        index.push((
            video.display().to_string(),
            format!("timeline_{name}.html"),
            bouts.len(),
            truth.len(),
        ));
        pages.push(page);
    }
    let mut html = String::from(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>ethos timelines</title>\
         <style>body{font-family:sans-serif;margin:1.5em}td,th{padding:.2em .8em;text-align:left}</style></head>\
         <body><h1>Timelines</h1><table><tr><th>video</th><th>predicted bouts</th><th>true bouts</th></tr>",
    );
    for (video, href, n, t) in &index {
        html += &format!(
            "<tr><td><a href=\"{}\">{}</a></td><td>{n}</td><td>{t}</td></tr>",
            escape(href),
            escape(video)
        );
    }
    html += "</table></body></html>\n";
    let index_path = o.out.join("index.html");
    ethos_core::fs::write_bytes_atomic(&index_path, html.as_bytes())
        .map_err(|e| Error::output_io(&index_path, e))?;
    Ok(TimelineReviewSummary {
        index: index_path,
        pages,
    })
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
