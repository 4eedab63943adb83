//! Plots beside the report's: the reliability diagram of a calibration and the ethogram of a long
//! video (drawn with `plotters` like [`crate::report`], written atomically).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::calibration::ReliabilityBin;
use crate::report::{DrawResult, FONT, ReportError, color, render};
use crate::timeline::{Bout, WindowProbs};

/// Reliability diagram: accuracy against mean confidence per bin, before and after calibration,
/// with the diagonal of perfect calibration; the legend gives each curve's ECE.
pub fn write_reliability_png(
    path: &Path,
    before: (&[ReliabilityBin], f64),
    after: (&[ReliabilityBin], f64),
) -> Result<(), ReportError> {
    render(path, (700, 640), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption("Reliability (top-class confidence, 15 bins)", (FONT, 24))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..1.0, 0.0..1.0)?;
        chart
            .configure_mesh()
            .x_desc("confidence")
            .y_desc("accuracy")
            .label_style((FONT, 15))
            .draw()?;
        chart
            .draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.5)))?
            .label("perfect calibration")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.mix(0.5)));
        for (i, (label, (bins, ece))) in [("before", before), ("after", after)]
            .into_iter()
            .enumerate()
        {
            let col = color(i);
            let pts: Vec<(f64, f64)> = bins
                .iter()
                .filter(|b| b.count > 0)
                .map(|b| (b.confidence, b.accuracy))
                .collect();
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), col.stroke_width(2)))?
                .label(format!("{label} (ECE {ece:.3})"))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], col.stroke_width(2)));
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, col.filled())))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FONT, 16))
            .draw()?;
        Ok(())
    })
}

/// Ethogram of one video: a raster of bouts over time (one row per class with a threshold; true
/// bouts, when given, in a row under each predicted row) and under it the window probability of
/// every class over time.
pub fn write_ethogram_png(
    path: &Path,
    title: &str,
    classes: &[String],
    windows: &[WindowProbs],
    bouts: &[Bout],
    truth: &[Bout],
) -> Result<(), ReportError> {
    let end = windows
        .iter()
        .map(|w| w.end_s)
        .chain(truth.iter().map(|b| b.end_s))
        .fold(1.0f64, f64::max);
    render(path, (1400, 560), |root| {
        let (top, bottom) = root.split_vertically(240);
        raster(&top, title, classes, end, bouts, truth)?;
        traces(&bottom, classes, end, windows)
    })
}

fn raster(
    area: &DrawingArea<BitMapBackend, Shift>,
    title: &str,
    classes: &[String],
    end: f64,
    bouts: &[Bout],
    truth: &[Bout],
) -> DrawResult {
    let mut rows: Vec<(String, usize, &[Bout], bool)> = Vec::new();
    for (k, c) in classes.iter().enumerate() {
        let has_pred = bouts.iter().any(|b| b.class_index == k);
        let has_true = truth.iter().any(|b| b.class_index == k);
        if has_pred || has_true {
            rows.push((format!("{c} predicted"), k, bouts, false));
            if !truth.is_empty() {
                rows.push((format!("{c} true"), k, truth, true));
            }
        }
    }
    let n = rows.len().max(1);
    let names: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    let label = move |v: &f64| -> String {
        let i = v.floor() as usize;
        if (v - v.floor() - 0.5).abs() < 1e-6 && i < names.len() {
            names[names.len() - 1 - i].clone()
        } else {
            String::new()
        }
    };
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 22))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(140)
        .build_cartesian_2d(0.0..end, 0.0..n as f64)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(2 * n + 1)
        .y_label_formatter(&label)
        .label_style((FONT, 14))
        .draw()?;
    for (i, (_, k, list, is_truth)) in rows.iter().enumerate() {
        let y = (n - 1 - i) as f64;
        let col = color(*k);
        let style = if *is_truth {
            col.mix(0.45).filled()
        } else {
            col.filled()
        };
        chart.draw_series(
            list.iter()
                .filter(|b| b.class_index == *k)
                .map(|b| Rectangle::new([(b.start_s, y + 0.15), (b.end_s, y + 0.85)], style)),
        )?;
    }
    Ok(())
}

fn traces(
    area: &DrawingArea<BitMapBackend, Shift>,
    classes: &[String],
    end: f64,
    windows: &[WindowProbs],
) -> DrawResult {
    let mut chart = ChartBuilder::on(area)
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(140)
        .build_cartesian_2d(0.0..end, 0.0..1.0)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc("window probability")
        .label_style((FONT, 14))
        .draw()?;
    for (k, c) in classes.iter().enumerate() {
        let col = color(k);
        let pts = windows.iter().map(|w| {
            (
                0.5 * (w.start_s + w.end_s),
                f64::from(w.probs.get(k).copied().unwrap_or(0.0)),
            )
        });
        chart
            .draw_series(LineSeries::new(pts, col.stroke_width(1)))?
            .label(c.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], col.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 14))
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calibration::reliability;

    #[test]
    fn draws_reliability_and_ethogram_pngs() {
        let dir = tempfile::tempdir().unwrap();
        let probs = [0.9, 0.1, 0.2, 0.8, 0.6, 0.4, 0.3, 0.7];
        let labels = [0, 1, 1, 1];
        let b = reliability(&probs, &labels, 2, 15);
        let p = dir.path().join("rel.png");
        write_reliability_png(&p, (&b, 0.2), (&b, 0.1)).unwrap();
        assert!(image_size(&p) == (700, 640));
        let classes = vec!["ear".to_string(), "tail".to_string(), "none".to_string()];
        let windows: Vec<WindowProbs> = (0..40)
            .map(|i| WindowProbs {
                start_s: i as f64 * 0.5,
                end_s: i as f64 * 0.5 + 1.0,
                probs: vec![0.2, if (10..20).contains(&i) { 0.9 } else { 0.1 }, 0.7],
            })
            .collect();
        let bout = |k, s, e| Bout {
            video: "v".into(),
            class_index: k,
            start_s: s,
            end_s: e,
            score: 1.0,
        };
        let e = dir.path().join("etho.png");
        write_ethogram_png(
            &e,
            "v",
            &classes,
            &windows,
            &[bout(1, 5.0, 10.0)],
            &[bout(1, 5.5, 9.0)],
        )
        .unwrap();
        assert_eq!(image_size(&e), (1400, 560));
    }

    fn image_size(p: &Path) -> (u32, u32) {
        let bytes = std::fs::read(p).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        (
            u32::from_be_bytes(bytes[16..20].try_into().unwrap()),
            u32::from_be_bytes(bytes[20..24].try_into().unwrap()),
        )
    }
}
