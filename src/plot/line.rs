//! Line plots ([`LinePlot`]) and grids of them ([`GridPlot`]).

use std::path::{Path, PathBuf};

use plotters::coord::combinators::{LogCoord, WithKeyPoints};
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::error::{DataError, PlotError};
use super::{
    axis_formatter, check_finite, check_len, draw_err, integer_ticks, log_ticks, padded_range,
    palette_color, render_figure, text, DrawResult, Grid, Panel, Single, TickedAxis, DESC_SIZE,
    LEGEND_SIZE, TICK_SIZE, TITLE_SIZE,
};

/// How a [`Series`] is drawn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SeriesStyle {
    /// A solid line through the points.
    #[default]
    Line,
    /// Filled circles at the points, no line.
    Points,
    /// A solid line with filled circles at the points.
    LinePoints,
    /// A dashed line through the points.
    Dashed,
}

/// One curve of a [`LinePlot`]: points `(x[i], y[i])` with an optional
/// shaded band `y[i] ± y_err[i]` (e.g. mean ± std over seeds).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Series {
    /// Legend text; an empty label keeps the series out of the legend.
    pub label: String,
    /// Abscissae.
    pub x: Vec<f64>,
    /// Ordinates, as many as `x`.
    pub y: Vec<f64>,
    /// How the points are drawn.
    pub style: SeriesStyle,
    /// Half-width of a shaded band around `y` (non-negative, as many as `y`).
    pub y_err: Option<Vec<f64>>,
}

impl Series {
    /// A solid-line series through `(x[i], y[i])`.
    pub fn new(label: impl Into<String>, x: Vec<f64>, y: Vec<f64>) -> Self {
        Self {
            label: label.into(),
            x,
            y,
            style: SeriesStyle::Line,
            y_err: None,
        }
    }

    /// A solid-line series with `x = 0, 1, 2, ...`.
    pub fn from_y(label: impl Into<String>, y: Vec<f64>) -> Self {
        let x = (0..y.len()).map(|i| i as f64).collect();
        Self::new(label, x, y)
    }

    /// Set the drawing style.
    pub fn style(mut self, style: SeriesStyle) -> Self {
        self.style = style;
        self
    }

    /// Add a shaded `y ± err` band.
    pub fn with_err(mut self, err: Vec<f64>) -> Self {
        self.y_err = Some(err);
        self
    }
}

/// A 2-D plot of one or more [`Series`], written as PNG (1000×700) and SVG.
///
/// Axis ranges follow the data (bands included) with small margins. On a
/// log axis, points with a non-positive coordinate are dropped; a series
/// with nothing left is an error. The legend (for series with a non-empty
/// label) sits on a white background in the emptiest corner.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LinePlot {
    /// Title above the plot (may be empty).
    pub title: String,
    /// Label of the horizontal axis.
    pub x_label: String,
    /// Label of the vertical axis.
    pub y_label: String,
    /// The curves, drawn in order with colours from [`PALETTE`](super::PALETTE).
    pub series: Vec<Series>,
    /// Logarithmic horizontal axis.
    pub log_x: bool,
    /// Logarithmic vertical axis.
    pub log_y: bool,
}

impl LinePlot {
    /// An empty plot with a title.
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            ..Self::default()
        }
    }

    /// Set the horizontal axis label.
    pub fn x_label(mut self, label: impl Into<String>) -> Self {
        self.x_label = label.into();
        self
    }

    /// Set the vertical axis label.
    pub fn y_label(mut self, label: impl Into<String>) -> Self {
        self.y_label = label.into();
        self
    }

    /// Use a logarithmic horizontal axis.
    pub fn log_x(mut self, on: bool) -> Self {
        self.log_x = on;
        self
    }

    /// Use a logarithmic vertical axis.
    pub fn log_y(mut self, on: bool) -> Self {
        self.log_y = on;
        self
    }

    /// Add a series.
    pub fn with_series(mut self, series: Series) -> Self {
        self.series.push(series);
        self
    }

    /// Add a series in place.
    pub fn push(&mut self, series: Series) {
        self.series.push(series);
    }

    /// Write `<path_stem>.png` and `<path_stem>.svg` (creating the folder if
    /// needed) and return their paths.
    pub fn render(&self, path_stem: &Path) -> Result<Vec<PathBuf>, PlotError> {
        let prepared = self.prepare().map_err(|e| e.at(path_stem, &self.title))?;
        render_figure(&Single(prepared), path_stem)
    }

    /// Check the data and turn it into drawable points.
    fn prepare(&self) -> Result<PreparedLine<'_>, DataError> {
        if self.series.is_empty() {
            return Err(DataError::Empty {
                what: "no series".into(),
            });
        }
        let mut series = Vec::with_capacity(self.series.len());
        let (mut xmin, mut xmax) = (f64::INFINITY, f64::NEG_INFINITY);
        let (mut ymin, mut ymax) = (f64::INFINITY, f64::NEG_INFINITY);
        for (idx, s) in self.series.iter().enumerate() {
            let name = &s.label;
            if s.x.is_empty() {
                return Err(DataError::EmptySeries {
                    series: name.clone(),
                });
            }
            check_len(name, "y", &s.y, s.x.len())?;
            check_finite(name, "x", &s.x)?;
            check_finite(name, "y", &s.y)?;
            if let Some(err) = &s.y_err {
                check_len(name, "y_err", err, s.x.len())?;
                check_finite(name, "y_err", err)?;
                if let Some(i) = err.iter().position(|e| *e < 0.0) {
                    return Err(DataError::Invalid {
                        series: name.clone(),
                        what: format!("y_err[{i}]"),
                        reason: format!("error band half-width {} is negative", err[i]),
                    });
                }
            }
            let mut pts = Vec::with_capacity(s.x.len());
            let mut band = Vec::new();
            for i in 0..s.x.len() {
                let (x, y) = (s.x[i], s.y[i]);
                if (self.log_x && x <= 0.0) || (self.log_y && y <= 0.0) {
                    continue;
                }
                pts.push((x, y));
                xmin = xmin.min(x);
                xmax = xmax.max(x);
                ymin = ymin.min(y);
                ymax = ymax.max(y);
                if let Some(err) = &s.y_err {
                    let (lo, hi) = (y - err[i], y + err[i]);
                    band.push((x, lo, hi));
                    ymax = ymax.max(hi);
                    if !self.log_y || lo > 0.0 {
                        ymin = ymin.min(lo);
                    }
                }
            }
            if pts.is_empty() {
                let axis = if self.log_x && s.x.iter().all(|x| *x <= 0.0) {
                    "x"
                } else {
                    "y"
                };
                return Err(DataError::NothingOnLogAxis {
                    series: name.clone(),
                    axis: axis.into(),
                });
            }
            series.push(PreparedSeries {
                label: name.clone(),
                pts,
                band,
                style: s.style,
                color: palette_color(idx),
            });
        }
        let x_range = padded_range(xmin, xmax, self.log_x);
        let y_range = padded_range(ymin, ymax, self.log_y);
        // Bands may dip below zero on a log axis: clip them to the axis.
        if self.log_y {
            for s in &mut series {
                for b in &mut s.band {
                    b.1 = b.1.max(y_range.0);
                }
            }
        }
        Ok(PreparedLine {
            plot: self,
            series,
            x_range,
            y_range,
        })
    }
}

/// A row-major grid of [`LinePlot`] panels in one figure (e.g. "proxy" next
/// to "ground truth"), each panel 760×560 pixels.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GridPlot {
    /// The panels, filled left to right, top to bottom.
    pub panels: Vec<LinePlot>,
    /// Panels per row (at least 1).
    pub cols: usize,
    /// Overall title above the grid (may be empty).
    pub title: String,
}

impl GridPlot {
    /// An empty grid with a title and `cols` panels per row.
    pub fn new(title: impl Into<String>, cols: usize) -> Self {
        Self {
            panels: Vec::new(),
            cols,
            title: title.into(),
        }
    }

    /// Add a panel.
    pub fn with_panel(mut self, panel: LinePlot) -> Self {
        self.panels.push(panel);
        self
    }

    /// Write `<path_stem>.png` and `<path_stem>.svg` and return their paths.
    pub fn render(&self, path_stem: &Path) -> Result<Vec<PathBuf>, PlotError> {
        if self.cols == 0 {
            return Err(DataError::ZeroColumns.at(path_stem, &self.title));
        }
        if self.panels.is_empty() {
            return Err(DataError::Empty {
                what: "no panels".into(),
            }
            .at(path_stem, &self.title));
        }
        let panels = self
            .panels
            .iter()
            .enumerate()
            .map(|(i, p)| {
                p.prepare().map_err(|e| {
                    e.at(
                        path_stem,
                        &format!("{} / panel {} {:?}", self.title, i, p.title),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let grid = Grid {
            panels,
            cols: self.cols,
            title: &self.title,
        };
        render_figure(&grid, path_stem)
    }
}

struct PreparedSeries {
    label: String,
    pts: Vec<(f64, f64)>,
    /// `(x, lo, hi)` of the shaded band, empty when there is none.
    band: Vec<(f64, f64, f64)>,
    style: SeriesStyle,
    color: RGBColor,
}

struct PreparedLine<'a> {
    plot: &'a LinePlot,
    series: Vec<PreparedSeries>,
    x_range: (f64, f64),
    y_range: (f64, f64),
}

impl Panel for PreparedLine<'_> {
    fn draw_panel<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult {
        draw_panel(area, self)
    }
}

/// Draw one line plot filling `area`.
fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    p: &PreparedLine<'_>,
) -> DrawResult {
    let (x0, x1) = p.x_range;
    let (y0, y1) = p.y_range;
    // Integer data on a linear x axis (epochs, steps): integer ticks only.
    let integer_x = !p.plot.log_x
        && p.series
            .iter()
            .all(|s| s.pts.iter().all(|&(x, _)| x.fract() == 0.0));
    let int_axis = || TickedAxis {
        lo: x0,
        hi: x1,
        ticks: integer_ticks(x0, x1),
    };
    match (p.plot.log_x, p.plot.log_y) {
        (false, false) if integer_x => draw_chart(area, p, int_axis(), y0..y1),
        (false, true) if integer_x => draw_chart(area, p, int_axis(), log_axis(y0, y1)),
        (false, false) => draw_chart(area, p, x0..x1, y0..y1),
        (true, false) => draw_chart(area, p, log_axis(x0, x1), y0..y1),
        (false, true) => draw_chart(area, p, x0..x1, log_axis(y0, y1)),
        (true, true) => draw_chart(area, p, log_axis(x0, x1), log_axis(y0, y1)),
    }
}

/// A log axis with our own tick positions (labelled decades / 1-2-5 steps,
/// unlabelled minor lines).
fn log_axis(lo: f64, hi: f64) -> WithKeyPoints<LogCoord<f64>> {
    let (bold, light) = log_ticks(lo, hi);
    (lo..hi)
        .log_scale()
        .with_key_points(bold)
        .with_light_points(light)
}

/// Position of the legend: the corner holding the fewest points.
fn legend_corner(p: &PreparedLine<'_>) -> SeriesLabelPosition {
    let norm = |v: f64, (lo, hi): (f64, f64), log: bool| {
        if log {
            (v.ln() - lo.ln()) / (hi.ln() - lo.ln())
        } else {
            (v - lo) / (hi - lo)
        }
    };
    // (position, x window, y window) in normalised coordinates.
    let corners = [
        (SeriesLabelPosition::UpperRight, (0.55, 1.0), (0.6, 1.0)),
        (SeriesLabelPosition::UpperLeft, (0.0, 0.45), (0.6, 1.0)),
        (SeriesLabelPosition::LowerRight, (0.55, 1.0), (0.0, 0.4)),
        (SeriesLabelPosition::LowerLeft, (0.0, 0.45), (0.0, 0.4)),
    ];
    let mut counts = [0usize; 4];
    for s in &p.series {
        let mut count = |x: f64, y: f64| {
            let nx = norm(x, p.x_range, p.plot.log_x);
            let ny = norm(y, p.y_range, p.plot.log_y);
            for (c, (_, wx, wy)) in counts.iter_mut().zip(&corners) {
                if nx >= wx.0 && nx <= wx.1 && ny >= wy.0 && ny <= wy.1 {
                    *c += 1;
                }
            }
        };
        for &(x, y) in &s.pts {
            count(x, y);
        }
        for &(x, lo, hi) in &s.band {
            count(x, lo);
            count(x, hi);
        }
    }
    let best = (0..4).min_by_key(|&i| counts[i]).unwrap_or(0);
    corners[best].0.clone()
}

fn draw_chart<DB, X, Y>(
    area: &DrawingArea<DB, Shift>,
    p: &PreparedLine<'_>,
    x: X,
    y: Y,
) -> DrawResult
where
    DB: DrawingBackend,
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut builder = ChartBuilder::on(area);
    builder
        .margin(14)
        .margin_right(28)
        .x_label_area_size(58)
        .y_label_area_size(88);
    if !p.plot.title.is_empty() {
        builder.caption(&p.plot.title, text(TITLE_SIZE));
    }
    let mut chart = builder.build_cartesian_2d(x, y).map_err(draw_err)?;
    // One notation per axis; on linear axes a tick that is zero up to rounding is 0.
    let x_fmt = axis_formatter(p.x_range.0, p.x_range.1, p.plot.log_x);
    let y_fmt = axis_formatter(p.y_range.0, p.y_range.1, p.plot.log_y);
    chart
        .configure_mesh()
        .x_desc(p.plot.x_label.as_str())
        .y_desc(p.plot.y_label.as_str())
        .label_style(text(TICK_SIZE))
        .axis_desc_style(text(DESC_SIZE))
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(BLACK.mix(0.04))
        .max_light_lines(4)
        .axis_style(BLACK.mix(0.8))
        .draw()
        .map_err(draw_err)?;

    // Bands first so every line stays visible on top of them.
    for s in p.series.iter().filter(|s| !s.band.is_empty()) {
        let mut poly: Vec<(f64, f64)> = s.band.iter().map(|&(x, _, hi)| (x, hi)).collect();
        poly.extend(s.band.iter().rev().map(|&(x, lo, _)| (x, lo)));
        chart
            .draw_series(std::iter::once(Polygon::new(
                poly,
                s.color.mix(0.2).filled(),
            )))
            .map_err(draw_err)?;
    }

    let mut any_label = false;
    for s in &p.series {
        let color = s.color;
        let line = color.stroke_width(2);
        let pts = s.pts.iter().copied();
        let anno = match s.style {
            SeriesStyle::Line => {
                let anno = chart
                    .draw_series(LineSeries::new(pts, line))
                    .map_err(draw_err)?;
                anno.legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], line));
                anno
            }
            SeriesStyle::Dashed => {
                let anno = chart
                    .draw_series(DashedLineSeries::new(pts, 9, 6, line))
                    .map_err(draw_err)?;
                anno.legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + PathElement::new(vec![(0, 0), (9, 0)], line)
                        + PathElement::new(vec![(15, 0), (24, 0)], line)
                });
                anno
            }
            SeriesStyle::Points => {
                let anno = chart
                    .draw_series(pts.map(|c| Circle::new(c, 4, color.filled())))
                    .map_err(draw_err)?;
                anno.legend(move |(x, y)| Circle::new((x + 12, y), 4, color.filled()));
                anno
            }
            SeriesStyle::LinePoints => {
                chart
                    .draw_series(LineSeries::new(pts.clone(), line))
                    .map_err(draw_err)?;
                let anno = chart
                    .draw_series(pts.map(|c| Circle::new(c, 3, color.filled())))
                    .map_err(draw_err)?;
                anno.legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + PathElement::new(vec![(0, 0), (24, 0)], line)
                        + Circle::new((12, 0), 4, color.filled())
                });
                anno
            }
        };
        if !s.label.is_empty() {
            anno.label(s.label.as_str());
            any_label = true;
        }
        // A lone point draws no line: show it as a dot instead.
        if s.pts.len() == 1 && matches!(s.style, SeriesStyle::Line | SeriesStyle::Dashed) {
            chart
                .draw_series(std::iter::once(Circle::new(s.pts[0], 4, color.filled())))
                .map_err(draw_err)?;
        }
    }

    if any_label {
        chart
            .configure_series_labels()
            .position(legend_corner(p))
            .margin(12)
            .legend_area_size(34)
            .label_font(text(LEGEND_SIZE))
            .background_style(WHITE.mix(0.92))
            .border_style(BLACK.mix(0.4))
            .draw()
            .map_err(draw_err)?;
    }
    Ok(())
}
