//! A training's curves as one self-contained SVG document: loss on the
//! left, accuracy on the right, train and validation each a polyline with
//! one point per finished epoch, the best epoch a dashed vertical line and
//! the majority-class baseline a dashed horizontal one.
//!
//! Written by hand rather than with a plotting library: the chart is two
//! panels of lines and labels, and text in SVG needs no font at render
//! time, whereas plotters lays text out with a font backend (system fonts
//! through C libraries, or a font file to ship).
//!
//! ```
//! use charts::{Marks, training_curves_svg};
//! use progress::EpochPoint;
//!
//! let epochs: Vec<EpochPoint> = (1..=3)
//!     .map(|epoch| EpochPoint {
//!         epoch,
//!         train_loss: Some(1.2 - 0.1 * f64::from(epoch)),
//!         train_accuracy: Some(0.4 + 0.05 * f64::from(epoch)),
//!         val_loss: Some(1.1),
//!         val_accuracy: Some(0.5),
//!         samples_per_second: None,
//!         elapsed_seconds: None,
//!     })
//!     .collect();
//! let marks = Marks { best_epoch: Some(2), baseline_accuracy: Some(0.45) };
//! let svg = training_curves_svg("eurusd_mlp", &epochs, &marks);
//! assert!(svg.starts_with("<svg"));
//! assert_eq!(svg.matches("<polyline").count(), 4);
//! ```

use std::fmt::Write as _;

use progress::EpochPoint;

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 360.0;
const PANEL_WIDTH: f64 = WIDTH / 2.0;
/// Room for the title above, tick labels left and below.
const MARGIN: (f64, f64, f64, f64) = (40.0, 20.0, 44.0, 60.0);
const TRAIN_COLOUR: &str = "#1f77b4";
const VAL_COLOUR: &str = "#ff7f0e";
const MARK_COLOUR: &str = "#555555";

/// What is drawn over the curves, when known.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Marks {
    /// The epoch whose weights were kept.
    pub best_epoch: Option<u32>,
    /// The accuracy of always predicting the majority class.
    pub baseline_accuracy: Option<f64>,
}

/// The loss and accuracy curves of `epochs` (finished epochs, in order),
/// titled `title`, as an SVG document. Series with no values are left out;
/// with no epochs at all, the panels say so.
pub fn training_curves_svg(title: &str, epochs: &[EpochPoint], marks: &Marks) -> String {
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    svg.push_str(r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = write!(
        svg,
        r#"<text x="{}" y="18" text-anchor="middle" font-size="14">{}</text>"#,
        WIDTH / 2.0,
        escape(title)
    );
    let loss = Panel {
        name: "loss",
        left: 0.0,
        series: [
            (
                "train loss",
                TRAIN_COLOUR,
                values(epochs, |point| point.train_loss),
            ),
            (
                "val loss",
                VAL_COLOUR,
                values(epochs, |point| point.val_loss),
            ),
        ],
        baseline: None,
    };
    let accuracy = Panel {
        name: "accuracy",
        left: PANEL_WIDTH,
        series: [
            (
                "train acc",
                TRAIN_COLOUR,
                values(epochs, |point| point.train_accuracy),
            ),
            (
                "val acc",
                VAL_COLOUR,
                values(epochs, |point| point.val_accuracy),
            ),
        ],
        baseline: marks.baseline_accuracy,
    };
    for panel in [loss, accuracy] {
        panel.draw(&mut svg, epochs, marks.best_epoch);
    }
    svg.push_str("</svg>\n");
    svg
}

/// One series' points: (epoch, value) where the value is a finite number.
fn values(epochs: &[EpochPoint], value: impl Fn(&EpochPoint) -> Option<f64>) -> Vec<(f64, f64)> {
    epochs
        .iter()
        .filter_map(|point| {
            let y = value(point).filter(|y| y.is_finite())?;
            Some((f64::from(point.epoch), y))
        })
        .collect()
}

/// A series: its label, colour and (epoch, value) points.
type Series = (&'static str, &'static str, Vec<(f64, f64)>);

/// One of the two panels: its series, drawn on shared axes.
struct Panel {
    name: &'static str,
    left: f64,
    series: [Series; 2],
    baseline: Option<f64>,
}

impl Panel {
    fn draw(&self, svg: &mut String, epochs: &[EpochPoint], best_epoch: Option<u32>) {
        let (top, right, bottom, left) = MARGIN;
        let plot = (
            self.left + left,
            top,
            PANEL_WIDTH - left - right,
            HEIGHT - top - bottom,
        );
        let _ = write!(
            svg,
            r#"<g class="panel" data-panel="{}"><rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="{MARK_COLOUR}"/>"#,
            self.name, plot.0, plot.1, plot.2, plot.3
        );
        let points = self.series.iter().flat_map(|(_, _, points)| points.iter());
        let ys = points.clone().map(|&(_, y)| y).chain(self.baseline);
        let (Some(y_min), Some(y_max)) = (ys.clone().reduce(f64::min), ys.reduce(f64::max)) else {
            let _ = write!(
                svg,
                r#"<text x="{}" y="{}" text-anchor="middle">no finished epoch yet</text></g>"#,
                plot.0 + plot.2 / 2.0,
                plot.1 + plot.3 / 2.0
            );
            return;
        };
        let pad = ((y_max - y_min) * 0.05).max(1e-3);
        let (y_low, y_high) = (y_min - pad, y_max + pad);
        let last_epoch = epochs
            .last()
            .map_or(1.0, |point| f64::from(point.epoch))
            .max(2.0);
        let first_epoch = epochs
            .first()
            .map_or(1.0, |point| f64::from(point.epoch))
            .min(last_epoch - 1.0);
        let x = |epoch: f64| plot.0 + (epoch - first_epoch) / (last_epoch - first_epoch) * plot.2;
        let y = |value: f64| plot.1 + (y_high - value) / (y_high - y_low) * plot.3;

        // Ticks: the first and last epoch, and the value range.
        for (epoch, anchor) in [(first_epoch, "start"), (last_epoch, "end")] {
            let _ = write!(
                svg,
                r#"<text x="{}" y="{}" text-anchor="{anchor}">{}</text>"#,
                x(epoch),
                plot.1 + plot.3 + 16.0,
                epoch
            );
        }
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">epoch</text>"#,
            plot.0 + plot.2 / 2.0,
            plot.1 + plot.3 + 30.0
        );
        for value in [y_min, y_max] {
            let _ = write!(
                svg,
                r#"<text x="{}" y="{}" text-anchor="end">{value:.3}</text>"#,
                plot.0 - 4.0,
                y(value) + 4.0
            );
        }
        if let Some(best) = best_epoch {
            let at = x(f64::from(best));
            let _ = write!(
                svg,
                r#"<line class="best-epoch" x1="{at}" y1="{}" x2="{at}" y2="{}" stroke="{MARK_COLOUR}" stroke-dasharray="4 3"/><text x="{}" y="{}" fill="{MARK_COLOUR}">best {best}</text>"#,
                plot.1,
                plot.1 + plot.3,
                at + 3.0,
                plot.1 + 12.0
            );
        }
        if let Some(baseline) = self.baseline {
            let at = y(baseline);
            let _ = write!(
                svg,
                r#"<line class="baseline" x1="{}" y1="{at}" x2="{}" y2="{at}" stroke="{MARK_COLOUR}" stroke-dasharray="2 2"/><text x="{}" y="{}" fill="{MARK_COLOUR}" text-anchor="end">baseline</text>"#,
                plot.0,
                plot.0 + plot.2,
                plot.0 + plot.2 - 3.0,
                at - 3.0
            );
        }
        for (index, (label, colour, points)) in self.series.iter().enumerate() {
            if points.is_empty() {
                continue;
            }
            let mut coordinates = String::new();
            for &(epoch, value) in points {
                let _ = write!(coordinates, "{:.1},{:.1} ", x(epoch), y(value));
            }
            let _ = write!(
                svg,
                r#"<polyline class="series" data-series="{label}" points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
                coordinates.trim_end()
            );
            let _ = write!(
                svg,
                r#"<text x="{}" y="{}" fill="{colour}">{label}</text>"#,
                plot.0 + 6.0 + 80.0 * index as f64,
                plot.1 + plot.3 - 6.0
            );
        }
        svg.push_str("</g>");
    }
}

/// `text` safe inside an SVG element.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epochs(count: u32) -> Vec<EpochPoint> {
        (1..=count)
            .map(|epoch| EpochPoint {
                epoch,
                train_loss: Some(1.0 / f64::from(epoch)),
                train_accuracy: Some(0.5),
                val_loss: (epoch % 2 == 0).then_some(0.8),
                val_accuracy: Some(0.55),
                samples_per_second: None,
                elapsed_seconds: None,
            })
            .collect()
    }

    /// The `points` of the polyline of `series`.
    fn polyline(svg: &str, series: &str) -> Vec<(f64, f64)> {
        let start = svg
            .find(&format!(r#"data-series="{series}" points=""#))
            .unwrap_or_else(|| panic!("no {series} in {svg}"));
        let rest = &svg[start..];
        let points = rest.split('"').nth(3).unwrap();
        points
            .split(' ')
            .map(|pair| {
                let (x, y) = pair.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect()
    }

    #[test]
    fn each_series_has_one_point_per_epoch_with_a_value_left_to_right() {
        let svg = training_curves_svg("demo", &epochs(30), &Marks::default());
        let train = polyline(&svg, "train loss");
        assert_eq!(train.len(), 30);
        assert!(train.windows(2).all(|pair| pair[0].0 < pair[1].0));
        // Loss falls, so the line rises on the page (y grows downwards).
        assert!(train.windows(2).all(|pair| pair[0].1 <= pair[1].1));
        assert_eq!(
            polyline(&svg, "val loss").len(),
            15,
            "only epochs with a value"
        );
        assert_eq!(polyline(&svg, "val acc").len(), 30);
    }

    #[test]
    fn the_best_epoch_and_the_baseline_are_marked_and_the_title_escaped() {
        let marks = Marks {
            best_epoch: Some(4),
            baseline_accuracy: Some(0.536),
        };
        let svg = training_curves_svg("a<b & c", &epochs(6), &marks);
        assert_eq!(
            svg.matches(r#"class="best-epoch""#).count(),
            2,
            "one per panel"
        );
        assert_eq!(
            svg.matches(r#"class="baseline""#).count(),
            1,
            "accuracy only"
        );
        assert!(svg.contains("a&lt;b &amp; c"));
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn no_epoch_yet_or_a_single_one_still_draws_a_valid_chart() {
        let empty = training_curves_svg("demo", &[], &Marks::default());
        assert_eq!(empty.matches("no finished epoch yet").count(), 2);
        assert!(empty.trim_end().ends_with("</svg>"));
        let one = training_curves_svg("demo", &epochs(1), &Marks::default());
        assert_eq!(polyline(&one, "train loss").len(), 1);
        assert!(!one.contains("NaN") && !one.contains("inf"));
    }
}
