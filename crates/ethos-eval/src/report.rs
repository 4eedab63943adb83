//! The human report of an evaluation: PNG plots (training curves, confusion matrix, ROC and PR
//! curves per class, per-group metric bars) drawn with `plotters`, and a self-contained
//! `report.html` with the plots embedded as base64 data URIs and tables of every metric.
//!
//! Text is rendered with a system sans-serif font found through fontconfig (Debian:
//! `fonts-dejavu-core`, installed by `scripts/setup.sh`). Every file is written atomically.

use std::path::{Path, PathBuf};

use image::ImageEncoder;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::history::HistoryRow;
use crate::metrics::{MetricSet, pr_curve, roc_curve};

/// Errors writing a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Drawing a plot failed (e.g. no usable font).
    #[error("drawing {path}: {message}")]
    Draw {
        /// The plot file.
        path: PathBuf,
        /// The backend's message.
        message: String,
    },
    /// The inputs are inconsistent (probabilities not `N × C`, labels out of range).
    #[error("report input: {0}")]
    BadInput(String),
}

impl ethos_core::Classify for ReportError {
    /// True when the error comes from the caller's data rather than the machine.
    fn kind(&self) -> ethos_core::ErrorKind {
        let bad = { matches!(self, ReportError::BadInput(_)) };
        if bad {
            ethos_core::ErrorKind::BadInput
        } else {
            ethos_core::ErrorKind::Internal
        }
    }
}

/// What a report shows.
pub struct ReportInput<'a> {
    /// Heading of the HTML page (e.g. "val — run_2026_11_26").
    pub title: String,
    /// Class names, class-index order.
    pub class_names: &'a [String],
    /// Metrics of the whole split.
    pub metrics: &'a MetricSet,
    /// Metrics per group / camera (name, metrics), possibly empty.
    pub per_group: &'a [(String, MetricSet)],
    /// Training history, if the checkpoint came from a run directory with one.
    pub history: Option<&'a [HistoryRow]>,
    /// Probabilities, row-major `(N, C)`.
    pub probs: &'a [f64],
    /// True class index per sample.
    pub labels: &'a [usize],
}

/// The files a report wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportFiles {
    /// `report.html`.
    pub html: PathBuf,
    /// Every PNG plot.
    pub pngs: Vec<PathBuf>,
}

const W: u32 = 900;
const H: u32 = 640;
pub(crate) const FONT: &str = "sans-serif";

/// Writes the PNG plots and `report.html` into `out_dir` (created if needed).
pub fn write_report(out_dir: &Path, input: &ReportInput) -> Result<ReportFiles, ReportError> {
    let c = input.class_names.len();
    if c == 0 || input.probs.len() != input.labels.len() * c {
        return Err(ReportError::BadInput(format!(
            "{} probabilities for {} samples x {c} classes",
            input.probs.len(),
            input.labels.len()
        )));
    }
    if let Some(&bad) = input.labels.iter().find(|&&l| l >= c) {
        return Err(ReportError::BadInput(format!(
            "label {bad} out of range for {c} classes"
        )));
    }
    std::fs::create_dir_all(out_dir).map_err(|source| ReportError::Io {
        path: out_dir.to_path_buf(),
        source,
    })?;
    let mut figures: Vec<(String, PathBuf)> = Vec::new();
    if let Some(rows) = input.history.filter(|r| !r.is_empty()) {
        let path = out_dir.join("training_curves.png");
        render(&path, (W * 2, H * 2), |root| draw_history(root, rows))?;
        figures.push(("Training curves".into(), path));
    }
    let path = out_dir.join("confusion_matrix.png");
    render(&path, (W, H), |root| {
        draw_confusion(root, input.class_names, &input.metrics.confusion)
    })?;
    figures.push(("Confusion matrix".into(), path));
    let path = out_dir.join("roc_curves.png");
    render(&path, (W, H), |root| {
        draw_curves(root, input, CurveKind::Roc)
    })?;
    figures.push(("ROC curves (one-vs-rest)".into(), path));
    let path = out_dir.join("pr_curves.png");
    render(&path, (W, H), |root| {
        draw_curves(root, input, CurveKind::Pr)
    })?;
    figures.push(("Precision-recall curves".into(), path));
    if !input.per_group.is_empty() {
        let path = out_dir.join("per_group_metrics.png");
        render(
            &path,
            (W.max(160 * input.per_group.len() as u32), H),
            |root| draw_groups(root, input),
        )?;
        figures.push(("Metrics per group".into(), path));
    }
    let html_path = out_dir.join("report.html");
    let html = build_html(input, &figures)?;
    write_atomic(&html_path, html.as_bytes())?;
    Ok(ReportFiles {
        html: html_path,
        pngs: figures.into_iter().map(|(_, p)| p).collect(),
    })
}

pub(crate) type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// Draws into a bitmap at a temporary name next to `path`, then renames it into place.
pub(crate) fn render(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend, Shift>) -> DrawResult,
) -> Result<(), ReportError> {
    let tmp = ethos_core::fs::temp_path(path);
    let result = (|| -> DrawResult {
        let root = BitMapBackend::new(&tmp, size).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(ReportError::Draw {
            path: path.to_path_buf(),
            message: e.to_string(),
        });
    }
    ethos_core::fs::commit_temp(&tmp, path).map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        ReportError::Io {
            path: path.to_path_buf(),
            source,
        }
    })
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    ethos_core::fs::write_bytes_atomic(path, bytes).map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })
}

pub(crate) fn color(i: usize) -> RGBColor {
    const COLORS: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
    ];
    COLORS[i % COLORS.len()]
}

/// One line of a line chart: label and `(x, y)` points (undefined values left out).
type Series = (String, Vec<(f64, f64)>);

fn line_chart(
    area: &DrawingArea<BitMapBackend, Shift>,
    title: &str,
    y_desc: &str,
    series: &[Series],
    y_fmt: fn(&f64) -> String,
) -> DrawResult {
    let pts = series.iter().flat_map(|(_, p)| p.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if x1 - x0 < 1e-12 {
        x1 = x0 + 1.0;
    }
    let pad = ((y1 - y0).abs() * 0.08)
        .max(y1.abs().max(y0.abs()) * 1e-3)
        .max(1e-12);
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 26))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(y_desc)
        .y_label_formatter(&y_fmt)
        .label_style((FONT, 15))
        .draw()?;
    for (i, (label, points)) in series.iter().enumerate() {
        let col = color(i);
        chart
            .draw_series(LineSeries::new(points.iter().copied(), col.stroke_width(2)))?
            .label(label.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], col.stroke_width(2)));
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, col.filled())))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 16))
        .draw()?;
    Ok(())
}

fn draw_history(root: &DrawingArea<BitMapBackend, Shift>, rows: &[HistoryRow]) -> DrawResult {
    let panels = root.split_evenly((2, 2));
    let ep = |r: &HistoryRow| r.epoch as f64;
    let loss = vec![
        (
            "train loss".to_string(),
            rows.iter().map(|r| (ep(r), r.train_loss)).collect(),
        ),
        (
            "val loss".to_string(),
            rows.iter().map(|r| (ep(r), r.val_loss)).collect(),
        ),
    ];
    line_chart(&panels[0], "Loss", "loss", &loss, |v| format!("{v:.3}"))?;
    let mut metric_series: Vec<Series> = vec![(
        "train macro_f1".into(),
        rows.iter().map(|r| (ep(r), r.train_macro_f1)).collect(),
    )];
    let names: Vec<String> = rows[0]
        .val_metrics
        .iter()
        .map(|(k, _)| k.clone())
        .filter(|k| k == "macro_f1" || k.starts_with("f1_") || k.starts_with("auc_"))
        .collect();
    for name in names {
        let pts = rows
            .iter()
            .filter_map(|r| r.metric(&name).map(|v| (ep(r), v)))
            .collect();
        metric_series.push((format!("val {name}"), pts));
    }
    line_chart(
        &panels[1],
        "Validation metrics",
        "value",
        &metric_series,
        |v| format!("{v:.2}"),
    )?;
    let lr = vec![(
        "learning rate".to_string(),
        rows.iter().map(|r| (ep(r), r.lr)).collect(),
    )];
    line_chart(
        &panels[2],
        "Learning rate (last step of each epoch)",
        "lr",
        &lr,
        |v| format!("{v:.1e}"),
    )?;
    let gap = vec![(
        "train_val_gap".to_string(),
        rows.iter().map(|r| (ep(r), r.train_val_gap)).collect(),
    )];
    line_chart(&panels[3], "Train - val macro F1", "gap", &gap, |v| {
        format!("{v:.3}")
    })?;
    Ok(())
}

fn draw_confusion(
    root: &DrawingArea<BitMapBackend, Shift>,
    classes: &[String],
    cm: &[Vec<u64>],
) -> DrawResult {
    let c = classes.len();
    let mut chart = ChartBuilder::on(root)
        .caption(
            "Confusion matrix (rows: true, columns: predicted)",
            (FONT, 24),
        )
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(110)
        .build_cartesian_2d(0.0..c as f64, 0.0..c as f64)?;
    let name_at = |v: &f64| -> String {
        let i = v.floor() as usize;
        if (v - v.floor() - 0.5).abs() < 1e-6 && i < c {
            classes[i].clone()
        } else {
            String::new()
        }
    };
    // Rows top to bottom in class order: row i occupies y in [c-1-i, c-i].
    let y_name = |v: &f64| -> String {
        let i = v.floor() as usize;
        if (v - v.floor() - 0.5).abs() < 1e-6 && i < c {
            classes[c - 1 - i].clone()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(c * 2 + 1)
        .y_labels(c * 2 + 1)
        .x_label_formatter(&name_at)
        .y_label_formatter(&y_name)
        .x_desc("predicted")
        .y_desc("true")
        .label_style((FONT, 18))
        .draw()?;
    for (i, row) in cm.iter().enumerate() {
        let total: u64 = row.iter().sum();
        for (j, &n) in row.iter().enumerate() {
            let frac = if total == 0 {
                0.0
            } else {
                n as f64 / total as f64
            };
            let shade = |lo: u8, hi: u8| (lo as f64 + (hi as f64 - lo as f64) * frac).round() as u8;
            let fill = RGBColor(shade(247, 8), shade(251, 69), shade(255, 148));
            let y = (c - 1 - i) as f64;
            chart.draw_series(std::iter::once(Rectangle::new(
                [(j as f64, y), (j as f64 + 1.0, y + 1.0)],
                fill.filled(),
            )))?;
            let text_color = if frac > 0.5 { WHITE } else { BLACK };
            let style = TextStyle::from((FONT, 28).into_font())
                .color(&text_color)
                .pos(plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Center,
                    plotters::style::text_anchor::VPos::Center,
                ));
            chart.draw_series(std::iter::once(Text::new(
                format!("{n} ({:.0}%)", frac * 100.0),
                (j as f64 + 0.5, y + 0.5),
                style,
            )))?;
        }
    }
    Ok(())
}

/// The confusion matrix drawn as in the report, as PNG bytes with their width and height (for
/// TensorBoard's per-epoch image).
pub fn confusion_png(
    classes: &[String],
    cm: &[Vec<u64>],
) -> Result<(Vec<u8>, u32, u32), ReportError> {
    let (w, h) = (480u32, 400u32);
    let mut rgb = vec![0u8; (w * h * 3) as usize];
    let mut draw = || -> DrawResult {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        root.fill(&WHITE)?;
        draw_confusion(&root, classes, cm)?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| ReportError::Draw {
        path: PathBuf::from("<confusion image>"),
        message: e.to_string(),
    })?;
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(&rgb, w, h, image::ExtendedColorType::Rgb8)
        .map_err(|e| ReportError::Draw {
            path: PathBuf::from("<confusion image>"),
            message: e.to_string(),
        })?;
    Ok((png, w, h))
}

#[derive(Clone, Copy, PartialEq)]
enum CurveKind {
    Roc,
    Pr,
}

fn draw_curves(
    root: &DrawingArea<BitMapBackend, Shift>,
    input: &ReportInput,
    kind: CurveKind,
) -> DrawResult {
    let c = input.class_names.len();
    let (title, xd, yd) = match kind {
        CurveKind::Roc => (
            "ROC curves (one-vs-rest)",
            "false positive rate",
            "true positive rate",
        ),
        CurveKind::Pr => (
            "Precision-recall curves (one-vs-rest)",
            "recall",
            "precision",
        ),
    };
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 24))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..1.0, 0.0..1.02)?;
    chart
        .configure_mesh()
        .x_desc(xd)
        .y_desc(yd)
        .label_style((FONT, 15))
        .draw()?;
    if kind == CurveKind::Roc {
        chart.draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.3)))?;
    }
    for k in 0..c {
        let is_pos: Vec<bool> = input.labels.iter().map(|&l| l == k).collect();
        let scores: Vec<f64> = (0..input.labels.len())
            .map(|i| input.probs[i * c + k])
            .collect();
        let cm = &input.metrics.per_class[k];
        let (points, label) = match kind {
            CurveKind::Roc => (
                roc_curve(&is_pos, &scores),
                format!("{}: AUC {}", input.class_names[k], fmt_opt(cm.auc, 3)),
            ),
            CurveKind::Pr => {
                // Step curve as sklearn plots it: from (0, P_1) through each (R_n, P_n).
                let pts = pr_curve(&is_pos, &scores);
                let mut step = Vec::new();
                let mut prev_r = 0.0;
                for &(r, p) in &pts {
                    step.push((prev_r, p));
                    step.push((r, p));
                    prev_r = r;
                }
                (
                    step,
                    format!("{}: AP {}", input.class_names[k], fmt_opt(cm.ap, 3)),
                )
            }
        };
        let col = color(k);
        let label = if points.is_empty() {
            format!("{label} (class absent)")
        } else {
            label
        };
        chart
            .draw_series(LineSeries::new(points, col.stroke_width(2)))?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], col.stroke_width(2)));
    }
    let pos = if kind == CurveKind::Roc {
        SeriesLabelPosition::LowerRight
    } else {
        SeriesLabelPosition::LowerLeft
    };
    chart
        .configure_series_labels()
        .position(pos)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 17))
        .draw()?;
    Ok(())
}

/// The metrics drawn per group: minority-first per-class F1, then macro F1 and accuracy.
fn group_metric_names(classes: &[String]) -> Vec<String> {
    let mut names: Vec<String> = classes.iter().map(|c| format!("f1_{c}")).collect();
    names.push("macro_f1".into());
    names.push("accuracy".into());
    names
}

fn draw_groups(root: &DrawingArea<BitMapBackend, Shift>, input: &ReportInput) -> DrawResult {
    let groups = input.per_group;
    let names = group_metric_names(input.class_names);
    let m = names.len() as f64;
    let g = groups.len();
    let group_label = |v: &f64| -> String {
        let i = v.floor() as usize;
        if (v - v.floor() - 0.5).abs() < 1e-6 && i < g {
            format!("{} (n={})", groups[i].0, groups[i].1.n_samples())
        } else {
            String::new()
        }
    };
    let mut chart = ChartBuilder::on(root)
        .caption("Metrics per group", (FONT, 24))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..g as f64, 0.0..1.05)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(2 * g + 1)
        .x_label_formatter(&group_label)
        .y_desc("value")
        .label_style((FONT, 15))
        .draw()?;
    let width = 0.8 / m;
    for (k, name) in names.iter().enumerate() {
        let col = color(k);
        let bars: Vec<Rectangle<(f64, f64)>> = groups
            .iter()
            .enumerate()
            .filter_map(|(i, (_, ms))| {
                let v = ms.get(name)?;
                let x = i as f64 + 0.1 + k as f64 * width;
                Some(Rectangle::new(
                    [(x, 0.0), (x + width * 0.92, v)],
                    col.filled(),
                ))
            })
            .collect();
        chart
            .draw_series(bars)?
            .label(name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], col.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 15))
        .draw()?;
    Ok(())
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(x) => format!("{x:.digits$}"),
        None => "n/a".into(),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Standard base64 (RFC 4648, with padding) for the PNG data URIs.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn metrics_table(classes: &[String], m: &MetricSet) -> String {
    let mut s = String::from(
        "<table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th><th>ROC AUC</th><th>AP</th></tr>\n",
    );
    for (k, class) in classes.iter().enumerate() {
        let c = &m.per_class[k];
        s += &format!(
            "<tr><td>{}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            escape(class),
            c.precision,
            c.recall,
            c.f1,
            c.support,
            fmt_opt(c.auc, 4),
            fmt_opt(c.ap, 4)
        );
    }
    s += "</table>\n";
    s += &format!(
        "<p>macro F1 <b>{:.4}</b> &middot; accuracy <b>{:.4}</b> &middot; loss <b>{}</b> &middot; samples <b>{}</b></p>\n",
        m.macro_f1,
        m.accuracy,
        fmt_opt(m.loss, 4),
        m.n_samples()
    );
    s
}

fn confusion_table(classes: &[String], cm: &[Vec<u64>]) -> String {
    let mut s = String::from("<table><tr><th>true \\ predicted</th>");
    for c in classes {
        s += &format!("<th>{}</th>", escape(c));
    }
    s += "</tr>\n";
    for (i, row) in cm.iter().enumerate() {
        s += &format!("<tr><th>{}</th>", escape(&classes[i]));
        for n in row {
            s += &format!("<td>{n}</td>");
        }
        s += "</tr>\n";
    }
    s + "</table>\n"
}

fn build_html(input: &ReportInput, figures: &[(String, PathBuf)]) -> Result<String, ReportError> {
    let classes = input.class_names;
    let mut s = String::new();
    s += "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\n";
    s += &format!("<title>{}</title>\n", escape(&input.title));
    s += "<style>body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:0.5em 0}\
          td,th{border:1px solid #bbb;padding:3px 9px;text-align:right}th{background:#eef}img{max-width:100%;border:1px solid #ddd}</style>\n";
    s += "</head><body>\n";
    s += &format!("<h1>{}</h1>\n", escape(&input.title));
    s += "<h2>Metrics</h2>\n";
    s += &metrics_table(classes, input.metrics);
    s += "<h2>Confusion matrix</h2>\n";
    s += &confusion_table(classes, &input.metrics.confusion);
    if !input.per_group.is_empty() {
        s += "<h2>Per group</h2>\n<table><tr><th>group</th><th>n</th>";
        let names = group_metric_names(classes);
        for n in &names {
            s += &format!("<th>{}</th>", escape(n));
        }
        for c in classes {
            s += &format!("<th>auc_{}</th>", escape(c));
        }
        s += "</tr>\n";
        for (g, m) in input.per_group {
            s += &format!("<tr><td>{}</td><td>{}</td>", escape(g), m.n_samples());
            for n in &names {
                s += &format!("<td>{}</td>", fmt_opt(m.get(n), 4));
            }
            for c in classes {
                s += &format!("<td>{}</td>", fmt_opt(m.get(&format!("auc_{c}")), 4));
            }
            s += "</tr>\n";
        }
        s += "</table>\n";
    }
    if let Some(rows) = input.history.filter(|r| !r.is_empty()) {
        s += "<h2>Training history</h2>\n<table><tr><th>epoch</th><th>lr</th><th>train loss</th><th>val loss</th><th>train macro F1</th><th>train-val gap</th>";
        let names: Vec<&String> = rows[0]
            .val_metrics
            .iter()
            .map(|(k, _)| k)
            .filter(|k| k.starts_with("f1_") || *k == "macro_f1")
            .collect();
        for n in &names {
            s += &format!("<th>val {}</th>", escape(n));
        }
        s += "</tr>\n";
        for r in rows {
            s += &format!(
                "<tr><td>{}</td><td>{:.3e}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td>",
                r.epoch, r.lr, r.train_loss, r.val_loss, r.train_macro_f1, r.train_val_gap
            );
            for n in &names {
                s += &format!("<td>{}</td>", fmt_opt(r.metric(n), 4));
            }
            s += "</tr>\n";
        }
        s += "</table>\n";
    }
    s += "<h2>Plots</h2>\n";
    for (caption, path) in figures {
        let bytes = std::fs::read(path).map_err(|source| ReportError::Io {
            path: path.clone(),
            source,
        })?;
        s += &format!(
            "<figure><img alt=\"{0}\" src=\"data:image/png;base64,{1}\"><figcaption>{0}</figcaption></figure>\n",
            escape(caption),
            base64(&bytes)
        );
    }
    s += "</body></html>\n";
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ethos_core::Classify;

    #[test]
    fn base64_known_values() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(&[0xff, 0xfe]), "//4=");
    }

    fn history() -> Vec<HistoryRow> {
        (1..=6)
            .map(|e| {
                let e_f = e as f64;
                HistoryRow {
                    epoch: e,
                    lr: 5e-5 * (1.0 - e_f / 7.0),
                    train_loss: 1.0 / e_f,
                    val_loss: 1.1 / e_f + 0.05,
                    val_metrics: vec![
                        ("f1_ear".into(), Some(0.8 + 0.02 * e_f)),
                        ("f1_tail".into(), Some(0.3 + 0.08 * e_f)),
                        (
                            "auc_tail".into(),
                            if e == 1 { None } else { Some(0.7 + 0.03 * e_f) },
                        ),
                        ("macro_f1".into(), Some(0.55 + 0.05 * e_f)),
                    ],
                    train_macro_f1: 0.6 + 0.06 * e_f,
                    train_val_gap: 0.05 + 0.01 * e_f,
                    epoch_seconds: 1.0,
                    samples_per_s: 10.0,
                }
            })
            .collect()
    }

    #[test]
    fn writes_pngs_and_self_contained_html() {
        let classes: Vec<String> = vec!["ear".into(), "tail".into()];
        // 40 samples with overlapping scores.
        let mut probs = Vec::new();
        let mut labels = Vec::new();
        for i in 0..40 {
            let label = usize::from(i % 5 == 0);
            let s = ((i * 37 % 40) as f64 / 40.0) * 0.6 + if label == 1 { 0.35 } else { 0.0 };
            probs.extend([1.0 - s, s]);
            labels.push(label);
        }
        let metrics = MetricSet::compute(&classes, &probs, &labels)
            .unwrap()
            .with_loss(0.42);
        let g1 = MetricSet::compute(&classes, &probs[..40], &labels[..20]).unwrap();
        let g2 = MetricSet::compute(&classes, &probs[40..], &labels[20..]).unwrap();
        let per_group = vec![
            ("group 1".to_string(), g1),
            ("group 4 <ood>".to_string(), g2),
        ];
        let rows = history();
        let dir = tempfile::tempdir().unwrap();
        let input = ReportInput {
            title: "val & test".into(),
            class_names: &classes,
            metrics: &metrics,
            per_group: &per_group,
            history: Some(&rows),
            probs: &probs,
            labels: &labels,
        };
        let files = write_report(dir.path(), &input).unwrap();
        assert_eq!(files.pngs.len(), 5);
        for png in &files.pngs {
            let bytes = std::fs::read(png).unwrap();
            assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}", png.display());
            assert!(
                bytes.len() > 5000,
                "{} is suspiciously small",
                png.display()
            );
        }
        let html = std::fs::read_to_string(&files.html).unwrap();
        assert_eq!(html.matches("data:image/png;base64,").count(), 5);
        assert!(html.contains("val &amp; test") && html.contains("group 4 &lt;ood&gt;"));
        assert!(!html.contains("src=\"training_curves.png\""));
        // No temporary files left behind.
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(leftovers.is_empty());
        if let Ok(keep) = std::env::var("ETHOS_KEEP_REPORT") {
            for p in files.pngs.iter().chain([&files.html]) {
                std::fs::copy(p, Path::new(&keep).join(p.file_name().unwrap())).unwrap();
            }
        }
    }

    #[test]
    fn report_without_history_or_groups_and_with_an_absent_class() {
        let classes: Vec<String> = vec!["a".into(), "b".into(), "c".into()];
        let probs = [0.7, 0.2, 0.1, 0.3, 0.6, 0.1, 0.5, 0.4, 0.1];
        let labels = [0, 1, 0];
        let metrics = MetricSet::compute(&classes, &probs, &labels).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let input = ReportInput {
            title: "t".into(),
            class_names: &classes,
            metrics: &metrics,
            per_group: &[],
            history: None,
            probs: &probs,
            labels: &labels,
        };
        let files = write_report(dir.path(), &input).unwrap();
        assert_eq!(files.pngs.len(), 3);
        let bad = ReportInput {
            labels: &[0, 5, 0],
            ..input
        };
        assert!(write_report(dir.path(), &bad).unwrap_err().is_bad_input());
    }
}
