//! Figures written as PNG and SVG, with text that needs no system fonts.
//!
//! Built on [`plotters`] with its `ab_glyph` text renderer and a font compiled
//! into the binary (see [`ensure_fonts`]), so rendering works on a bare
//! machine without fonts or fontconfig. Every `render(stem)` writes
//! `<stem>.png` and `<stem>.svg` and returns both paths.
//!
//! * [`LinePlot`] — line / point / dashed series with optional ± bands,
//!   linear or log axes; [`GridPlot`] puts several side by side.
//! * [`BarPlot`] — grouped bars with error bars.
//! * [`Heatmap`] — a filled colour map with a colour bar and labelled
//!   markers; [`render_heatmaps`] puts several side by side.
//!
//! Colours come from the fixed [`PALETTE`] so figures are reproducible.
//! Bad data (empty series, mismatched lengths, NaN/inf) gives a
//! [`PlotError`], never a panic.
//!
//! ```no_run
//! use rmteach::plot::{LinePlot, Series, SeriesStyle};
//! let plot = LinePlot::new("Reward variance")
//!     .x_label("step")
//!     .y_label("Var[r]")
//!     .log_y(true)
//!     .with_series(
//!         Series::new("tabular", vec![1.0, 2.0, 3.0], vec![0.5, 0.2, 0.1])
//!             .with_err(vec![0.05, 0.02, 0.01]),
//!     )
//!     .with_series(
//!         Series::new("proxy", vec![1.0, 2.0, 3.0], vec![0.4, 0.3, 0.2])
//!             .style(SeriesStyle::Dashed),
//!     );
//! let files = plot.render(std::path::Path::new("figures/variance")).unwrap();
//! assert_eq!(files.len(), 2);
//! ```

#![warn(missing_docs)]

mod bar;
mod error;
mod font;
mod heatmap;
mod line;

use std::path::{Path, PathBuf};

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::Shift;
use plotters::prelude::*;

pub use bar::{BarPlot, BarSeries};
pub use error::{DataError, PlotError};
pub use font::{ensure_fonts, MONO_FONT, SANS_FONT};
pub use heatmap::{render_heatmaps, Heatmap};
pub use line::{GridPlot, LinePlot, Series, SeriesStyle};

/// The fixed series palette (matplotlib's "tab10"); series `i` gets
/// `PALETTE[i % 10]`.
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// The palette colour of series number `i` (wrapping around).
pub fn palette_color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Pixel size of a single-panel figure.
pub(crate) const FIGURE_SIZE: (u32, u32) = (1000, 700);
/// Pixel size of one panel inside a grid figure.
pub(crate) const PANEL_SIZE: (u32, u32) = (760, 560);
/// Height reserved for the overall title of a grid figure.
pub(crate) const SUPTITLE_HEIGHT: u32 = 56;

/// Font sizes (pixels) used throughout.
pub(crate) const TITLE_SIZE: f64 = 26.0;
pub(crate) const SUPTITLE_SIZE: f64 = 30.0;
pub(crate) const DESC_SIZE: f64 = 21.0;
pub(crate) const TICK_SIZE: f64 = 17.0;
pub(crate) const LEGEND_SIZE: f64 = 17.0;

/// A black text style of the embedded font at `size` pixels.
pub(crate) fn text(size: f64) -> TextStyle<'static> {
    (font::FAMILY, size).into_font().color(&BLACK)
}

/// Result of drawing onto a backend: the error is the backend's message.
pub(crate) type DrawResult = Result<(), String>;

/// Turn a plotters drawing error into its message.
pub(crate) fn draw_err<E: std::error::Error + Send + Sync>(
    e: plotters::drawing::DrawingAreaErrorKind<E>,
) -> String {
    e.to_string()
}

/// A checked figure that can draw itself on any plotters backend.
pub(crate) trait Figure {
    /// Pixel size of the whole figure.
    fn size(&self) -> (u32, u32);
    /// Draw the figure onto `root` (already filled white).
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult;
}

/// One prepared chart that can draw itself into an area (a single panel).
pub(crate) trait Panel {
    /// Draws the panel onto `area`.
    fn draw_panel<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult;
}

/// A figure of one panel at [`FIGURE_SIZE`].
pub(crate) struct Single<P>(pub P);

impl<P: Panel> Figure for Single<P> {
    fn size(&self) -> (u32, u32) {
        FIGURE_SIZE
    }
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        self.0.draw_panel(root)
    }
}

/// A figure of panels side by side, `cols` to a row, under an overall `title`.
pub(crate) struct Grid<'a, P> {
    pub panels: Vec<P>,
    pub cols: usize,
    pub title: &'a str,
}

impl<P: Panel> Figure for Grid<'_, P> {
    fn size(&self) -> (u32, u32) {
        grid_size(self.panels.len(), self.cols, PANEL_SIZE, self.title)
    }
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let cols = self.cols.min(self.panels.len());
        let cells = grid_cells(root, self.title, self.panels.len(), cols)?;
        for (cell, panel) in cells.iter().zip(&self.panels) {
            panel.draw_panel(cell)?;
        }
        Ok(())
    }
}

/// `<stem>.<ext>`, appending rather than replacing any dot in the stem.
pub(crate) fn with_ext(stem: &Path, ext: &str) -> PathBuf {
    let mut s = stem.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// Write `fig` as `<stem>.png` and `<stem>.svg`; returns both paths.
pub(crate) fn render_figure<F: Figure>(fig: &F, stem: &Path) -> Result<Vec<PathBuf>, PlotError> {
    ensure_fonts()?;
    if let Some(parent) = stem.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| PlotError::Io {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    let size = fig.size();
    let png = with_ext(stem, "png");
    let svg = with_ext(stem, "svg");
    {
        let root = font::GlyphFix(BitMapBackend::new(&png, size)).into_drawing_area();
        draw_root(fig, &root).map_err(|message| PlotError::Draw {
            path: png.clone(),
            message,
        })?;
    }
    {
        let root = SVGBackend::new(&svg, size).into_drawing_area();
        draw_root(fig, &root).map_err(|message| PlotError::Draw {
            path: svg.clone(),
            message,
        })?;
    }
    Ok(vec![png, svg])
}

fn draw_root<F: Figure, DB: DrawingBackend>(fig: &F, root: &DrawingArea<DB, Shift>) -> DrawResult {
    root.fill(&WHITE).map_err(draw_err)?;
    fig.draw(root)?;
    root.present().map_err(draw_err)
}

/// Split `root` into a titled grid of `n` cells, `cols` per row; returns
/// the first `n` cells.
pub(crate) fn grid_cells<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    n: usize,
    cols: usize,
) -> Result<Vec<DrawingArea<DB, Shift>>, String> {
    // A title wider than the figure is wrapped at spaces, one title line per row of
    // text (`grid_size` reserved the height), instead of being cut at both edges.
    let mut body = root.clone();
    for line in title_lines(title, root.dim_in_pixel().0) {
        body = body.titled(&line, text(SUPTITLE_SIZE)).map_err(draw_err)?;
    }
    let rows = n.div_ceil(cols);
    let mut cells = body.split_evenly((rows, cols));
    cells.truncate(n);
    Ok(cells)
}

/// Pixel size of a grid of `n` panels of `panel` size, `cols` per row.
pub(crate) fn grid_size(n: usize, cols: usize, panel: (u32, u32), title: &str) -> (u32, u32) {
    let cols = cols.min(n).max(1);
    let rows = n.div_ceil(cols).max(1);
    let width = panel.0 * cols as u32;
    let extra = SUPTITLE_HEIGHT * title_lines(title, width).len() as u32;
    (width, panel.1 * rows as u32 + extra)
}

/// `title` broken at spaces into lines that fit `width` pixels at [`SUPTITLE_SIZE`] with
/// a margin (a single word wider than that stays whole); none for an empty title.
pub(crate) fn title_lines(title: &str, width: u32) -> Vec<String> {
    let style = text(SUPTITLE_SIZE);
    let fits = |s: &str| {
        style
            .font
            .box_size(s)
            .map_or(s.chars().count() as f64 * SUPTITLE_SIZE * 0.6, |(w, _)| {
                f64::from(w)
            })
            <= f64::from(width) * 0.95
    };
    let mut lines: Vec<String> = Vec::new();
    for word in title.split_whitespace() {
        match lines.last_mut() {
            Some(line) if fits(&format!("{line} {word}")) => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines
}

/// Check that every value is finite.
pub(crate) fn check_finite(series: &str, what: &str, v: &[f64]) -> Result<(), DataError> {
    match v.iter().position(|x| !x.is_finite()) {
        Some(index) => Err(DataError::NonFinite {
            series: series.to_string(),
            what: what.to_string(),
            index,
            value: v[index],
        }),
        None => Ok(()),
    }
}

/// Check that `v` has `expected` values.
pub(crate) fn check_len(
    series: &str,
    what: &str,
    v: &[f64],
    expected: usize,
) -> Result<(), DataError> {
    if v.len() == expected {
        Ok(())
    } else {
        Err(DataError::LengthMismatch {
            series: series.to_string(),
            what: what.to_string(),
            expected,
            got: v.len(),
        })
    }
}

/// The axis range shown for data spanning `[min, max]`: 5 % margins on a
/// linear axis, 5 % of the decades on a log axis (`min > 0` there), and a
/// sensible window around a single value.
pub(crate) fn padded_range(min: f64, max: f64, log: bool) -> (f64, f64) {
    if log {
        let (lo, hi) = (min.ln(), max.ln());
        if hi - lo < 1e-12 {
            (min / 2.0, max * 2.0)
        } else {
            let pad = 0.05 * (hi - lo);
            ((lo - pad).exp(), (hi + pad).exp())
        }
    } else if max - min <= 1e-12 * max.abs().max(min.abs()).max(1e-300) {
        let half = if min == 0.0 { 1.0 } else { 0.1 * min.abs() };
        (min - half, max + half)
    } else {
        let pad = 0.05 * (max - min);
        (min - pad, max + pad)
    }
}

/// Tick positions for a log axis over `[lo, hi]`: labelled ticks and
/// unlabelled minor grid lines. plotters' own log ticks vanish when the
/// range is less than a decade, hence this.
pub(crate) fn log_ticks(lo: f64, hi: f64) -> (Vec<f64>, Vec<f64>) {
    let k0 = lo.log10().floor() as i32;
    let k1 = hi.log10().ceil() as i32;
    let in_range = |v: f64| v >= lo * (1.0 - 1e-9) && v <= hi * (1.0 + 1e-9);
    let candidates = |mults: &[f64], every: i32| -> Vec<f64> {
        let mut out = Vec::new();
        for k in k0..=k1 {
            if (k - k0) % every != 0 {
                continue;
            }
            for m in mults {
                let v = m * 10f64.powi(k);
                if in_range(v) {
                    out.push(v);
                }
            }
        }
        out
    };
    let decades = (k1 - k0).max(1);
    let every = (decades + 7) / 8; // at most ~8 labelled decades
    let mut bold = candidates(&[1.0], every);
    if bold.len() < 3 {
        bold = candidates(&[1.0, 2.0, 5.0], 1);
    }
    if bold.len() < 3 {
        bold = candidates(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0], 1);
    }
    if bold.len() < 3 {
        // Well under a decade: plain linear steps read best.
        bold = linear_ticks(lo, hi, 5);
    }
    let light = if decades <= 6 {
        candidates(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0], 1)
            .into_iter()
            .filter(|v| !bold.iter().any(|b| (b - v).abs() <= 1e-9 * v.abs()))
            .collect()
    } else {
        Vec::new()
    };
    (bold, light)
}

/// About `n` "nice" (1, 2, 5 × 10^k) ticks over `[lo, hi]`.
pub(crate) fn linear_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let span = hi - lo;
    if span.is_nan() || span <= 0.0 || span.is_infinite() {
        return vec![lo];
    }
    let raw = span / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

/// A linear `f64` axis whose labelled ticks sit exactly at `ticks` (used for
/// the group centres of bar charts).
pub(crate) struct TickedAxis {
    pub(crate) lo: f64,
    pub(crate) hi: f64,
    pub(crate) ticks: Vec<f64>,
}

impl Ranged for TickedAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let t = (v - self.lo) / (self.hi - self.lo);
        limit.0 + (t * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

/// `0` when `v` is zero up to rounding relative to a linear axis' `span` (0 for log axes,
/// which never snap).
pub(crate) fn snap_zero(v: f64, span: f64) -> f64 {
    if v.abs() <= 1e-9 * span {
        0.0
    } else {
        v
    }
}

/// Compact tick label: `0`, `0.25`, `12.5`, `3000`, `1e-4`, `2.5e6`.
pub(crate) fn fmt_tick(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return if v == 0.0 { "0".into() } else { format!("{v}") };
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        return fmt_sci(v);
    }
    fmt_fixed(v)
}

/// `2e-4`, `1.5e6`.
fn fmt_sci(v: f64) -> String {
    let s = format!("{v:.1e}");
    // "2.0e-4" -> "2e-4"
    s.replacen(".0e", "e", 1)
}

/// `0.25`, `12.5`, `3000`, `0.0005`: the digits a tick needs, no trailing zeros.
fn fmt_fixed(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let decimals = (3 - v.abs().log10().floor() as i32).clamp(0, 6) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// The tick formatter of an axis over `[lo, hi]`: one notation for every tick of
/// the axis, so `1e5` never sits beside `10000` (scientific when a linear axis'
/// largest magnitude is at least 1e5 or below 1e-3, or when a log axis reaches
/// below 1e-3 or up to 1e5; else plain), and on a linear axis a tick that is zero
/// up to the rounding of the tick arithmetic prints as `0` (not `-2.8e-17`).
pub(crate) fn axis_formatter(lo: f64, hi: f64, log: bool) -> impl Fn(&f64) -> String {
    let (small, big) = (lo.abs().min(hi.abs()), lo.abs().max(hi.abs()));
    let sci = if log {
        small < 1e-3 || big >= 1e5
    } else {
        !(1e-3..1e5).contains(&big)
    };
    let span = if log { 0.0 } else { hi - lo };
    move |v: &f64| {
        let v = snap_zero(*v, span);
        if !v.is_finite() {
            format!("{v}")
        } else if v == 0.0 {
            "0".into()
        } else if sci {
            fmt_sci(v)
        } else {
            fmt_fixed(v)
        }
    }
}

/// Integer tick positions over `[lo, hi]` (for counts such as epochs): the nice
/// linear ticks when they are all integers, else every integer in the range.
pub(crate) fn integer_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let nice = linear_ticks(lo, hi, 5);
    if nice.iter().all(|v| v.fract() == 0.0) {
        return nice;
    }
    (lo.ceil() as i64..=hi.floor() as i64)
        .map(|i| i as f64)
        .collect()
}

#[cfg(test)]
mod tests;
