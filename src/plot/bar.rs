//! Grouped bar charts with error bars ([`BarPlot`]).

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::error::{DataError, PlotError};
use super::{
    axis_formatter, check_finite, check_len, draw_err, palette_color, render_figure, text,
    DrawResult, Figure, TickedAxis, DESC_SIZE, FIGURE_SIZE, LEGEND_SIZE, TICK_SIZE, TITLE_SIZE,
};

/// One set of bars of a [`BarPlot`]: one value per group, drawn in one colour.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BarSeries {
    /// Legend text; an empty label keeps the set out of the legend.
    pub label: String,
    /// Bar heights, one per group of the plot.
    pub values: Vec<f64>,
    /// Error bar half-lengths (non-negative), one per group.
    pub err: Option<Vec<f64>>,
}

impl BarSeries {
    /// Bars with heights `values` (one per group) and no error bars.
    pub fn new(label: impl Into<String>, values: Vec<f64>) -> Self {
        Self {
            label: label.into(),
            values,
            err: None,
        }
    }

    /// Add `value ± err` error bars.
    pub fn with_err(mut self, err: Vec<f64>) -> Self {
        self.err = Some(err);
        self
    }
}

/// Grouped bars: for each group name in `groups`, one bar per
/// [`BarSeries`] side by side, with optional error bars; written as PNG
/// (1000×700) and SVG. The value axis always includes 0.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BarPlot {
    /// Title above the plot (may be empty).
    pub title: String,
    /// Label of the value axis.
    pub y_label: String,
    /// Names of the groups along the horizontal axis.
    pub groups: Vec<String>,
    /// The bar sets, drawn left to right within each group with colours from
    /// [`PALETTE`](super::PALETTE).
    pub bars: Vec<BarSeries>,
}

impl BarPlot {
    /// An empty bar plot with a title.
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            ..Self::default()
        }
    }

    /// Set the value-axis label.
    pub fn y_label(mut self, label: impl Into<String>) -> Self {
        self.y_label = label.into();
        self
    }

    /// Set the group names.
    pub fn groups<S: Into<String>>(mut self, groups: impl IntoIterator<Item = S>) -> Self {
        self.groups = groups.into_iter().map(Into::into).collect();
        self
    }

    /// Add a set of bars.
    pub fn with_bars(mut self, bars: BarSeries) -> Self {
        self.bars.push(bars);
        self
    }

    /// Write `<path_stem>.png` and `<path_stem>.svg` and return their paths.
    pub fn render(&self, path_stem: &Path) -> Result<Vec<PathBuf>, PlotError> {
        let y_range = self.prepare().map_err(|e| e.at(path_stem, &self.title))?;
        render_figure(
            &Bars {
                plot: self,
                y_range,
            },
            path_stem,
        )
    }

    /// Check the data; returns the value-axis range.
    fn prepare(&self) -> Result<(f64, f64), DataError> {
        if self.groups.is_empty() {
            return Err(DataError::Empty {
                what: "no groups".into(),
            });
        }
        if self.bars.is_empty() {
            return Err(DataError::Empty {
                what: "no bar series".into(),
            });
        }
        let n = self.groups.len();
        let (mut lo, mut hi) = (0.0f64, 0.0f64);
        for b in &self.bars {
            check_len(&b.label, "values", &b.values, n)?;
            check_finite(&b.label, "values", &b.values)?;
            if let Some(err) = &b.err {
                check_len(&b.label, "err", err, n)?;
                check_finite(&b.label, "err", err)?;
                if let Some(i) = err.iter().position(|e| *e < 0.0) {
                    return Err(DataError::Invalid {
                        series: b.label.clone(),
                        what: format!("err[{i}]"),
                        reason: format!("error bar half-length {} is negative", err[i]),
                    });
                }
            }
            for (i, v) in b.values.iter().enumerate() {
                let e = b.err.as_ref().map_or(0.0, |err| err[i]);
                lo = lo.min(v - e);
                hi = hi.max(v + e);
            }
        }
        let span = if hi - lo > 0.0 { hi - lo } else { 1.0 };
        // Room above the bars for the legend: about 25 px per entry plus
        // margins, out of a plotting area about 590 px high.
        let entries = self.bars.iter().filter(|b| !b.label.is_empty()).count();
        let top = if entries > 0 {
            let f = ((30.0 + 25.0 * entries as f64) / 590.0).min(0.6);
            (f / (1.0 - f)).max(0.06)
        } else {
            0.06
        };
        let lo = if lo < 0.0 { lo - 0.06 * span } else { lo };
        let hi = if hi > 0.0 || lo == 0.0 {
            hi + top * span
        } else {
            hi
        };
        Ok((lo, hi))
    }
}

/// Widths of the value-axis label area and of the left and right margins (pixels).
const Y_LABEL_AREA: u32 = 88;
const MARGIN: u32 = 14;
const MARGIN_RIGHT: u32 = 28;

/// The font size of the group labels: the usual one, shrunk (to no less than 11 px) so
/// that the longest label fits its group's share of the axis (a character is taken
/// as 0.45 of the font size wide), so that neighbouring labels do not run together.
fn group_label_size(groups: &[String]) -> f64 {
    let usual = DESC_SIZE - 2.0;
    let longest = groups.iter().map(|g| g.chars().count()).max().unwrap_or(0);
    if longest == 0 {
        return usual;
    }
    let axis = f64::from(FIGURE_SIZE.0 - Y_LABEL_AREA - MARGIN - MARGIN_RIGHT);
    let slot = axis / groups.len() as f64;
    (0.9 * slot / (0.45 * longest as f64)).clamp(11.0, usual)
}

struct Bars<'a> {
    plot: &'a BarPlot,
    y_range: (f64, f64),
}

impl Figure for Bars<'_> {
    fn size(&self) -> (u32, u32) {
        FIGURE_SIZE
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let p = self.plot;
        let n = p.groups.len();
        let m = p.bars.len();
        let mut builder = ChartBuilder::on(root);
        builder
            .margin(MARGIN)
            .margin_right(MARGIN_RIGHT)
            .x_label_area_size(50)
            .y_label_area_size(Y_LABEL_AREA);
        if !p.title.is_empty() {
            builder.caption(&p.title, text(TITLE_SIZE));
        }
        let centers: Vec<f64> = (0..n).map(|i| i as f64).collect();
        let mut chart = builder
            .build_cartesian_2d(
                TickedAxis {
                    lo: -0.5,
                    hi: n as f64 - 0.5,
                    ticks: centers,
                },
                self.y_range.0..self.y_range.1,
            )
            .map_err(draw_err)?;
        let group_name = |v: &f64| {
            let i = v.round();
            if i >= 0.0 && (i as usize) < n {
                p.groups[i as usize].clone()
            } else {
                String::new()
            }
        };
        let value_fmt = axis_formatter(self.y_range.0, self.y_range.1, false);
        chart
            .configure_mesh()
            .disable_x_mesh()
            .y_desc(p.y_label.as_str())
            .label_style(text(TICK_SIZE))
            .x_label_style(text(group_label_size(&p.groups)))
            .axis_desc_style(text(DESC_SIZE))
            .x_label_formatter(&group_name)
            .y_label_formatter(&value_fmt)
            .bold_line_style(BLACK.mix(0.12))
            .light_line_style(BLACK.mix(0.04))
            .max_light_lines(4)
            .axis_style(BLACK.mix(0.8))
            .draw()
            .map_err(draw_err)?;

        let slot = 0.8 / m as f64;
        let mut any_label = false;
        for (j, b) in p.bars.iter().enumerate() {
            let color = palette_color(j);
            let left = |g: usize| g as f64 - 0.4 + j as f64 * slot;
            let anno = chart
                .draw_series(b.values.iter().enumerate().map(|(g, &v)| {
                    let x0 = left(g) + 0.06 * slot;
                    let x1 = left(g) + 0.94 * slot;
                    Rectangle::new([(x0, 0.0), (x1, v)], color.filled())
                }))
                .map_err(draw_err)?;
            if !b.label.is_empty() {
                anno.label(b.label.as_str()).legend(move |(x, y)| {
                    Rectangle::new([(x + 2, y - 7), (x + 22, y + 7)], color.filled())
                });
                any_label = true;
            }
            if let Some(err) = &b.err {
                let whisker = BLACK.mix(0.85).stroke_width(2);
                for (g, (&v, &e)) in b.values.iter().zip(err).enumerate() {
                    let cx = left(g) + 0.5 * slot;
                    let cap = 0.18 * slot;
                    let (lo, hi) = (v - e, v + e);
                    chart
                        .draw_series([
                            PathElement::new(vec![(cx, lo), (cx, hi)], whisker),
                            PathElement::new(vec![(cx - cap, lo), (cx + cap, lo)], whisker),
                            PathElement::new(vec![(cx - cap, hi), (cx + cap, hi)], whisker),
                        ])
                        .map_err(draw_err)?;
                }
            }
        }
        // A zero line when bars go both ways.
        if self.y_range.0 < 0.0 {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(-0.5, 0.0), (n as f64 - 0.5, 0.0)],
                    BLACK.mix(0.6),
                )))
                .map_err(draw_err)?;
        }
        if any_label {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .margin(12)
                .legend_area_size(30)
                .label_font(text(LEGEND_SIZE))
                .background_style(WHITE.mix(0.92))
                .border_style(BLACK.mix(0.4))
                .draw()
                .map_err(draw_err)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(n: usize, text: &str) -> Vec<String> {
        vec![text.to_string(); n]
    }

    #[test]
    fn group_labels_shrink_only_when_they_would_run_together() {
        let usual = DESC_SIZE - 2.0;
        assert_eq!(group_label_size(&labels(3, "toy-4.1 (epoch 2)")), usual);
        // Twelve groups of ten characters: 72.5 px each, so 14.5 px type.
        let small = group_label_size(&labels(12, "A .001 .05"));
        assert!(small < usual && small >= 11.0, "{small}");
        assert!(10.0 * 0.45 * small <= 870.0 / 12.0, "{small}");
        // Never below 11 px, however many groups.
        assert_eq!(group_label_size(&labels(40, "a long group label")), 11.0);
        assert_eq!(group_label_size(&[]), usual);
    }
}
