//! Filled colour maps with a colour bar and labelled markers ([`Heatmap`],
//! [`render_heatmaps`]).

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::error::{DataError, PlotError};
use super::{
    axis_formatter, check_finite, check_len, draw_err, fmt_tick, render_figure, text, DrawResult,
    Grid, Panel, Single, DESC_SIZE, TICK_SIZE, TITLE_SIZE,
};

/// A filled colour map of `z` over the grid `x × y` (viridis colours) with
/// a colour bar, and optional labelled point markers (e.g. the start point
/// and the optimum of an objective landscape).
///
/// `z[j][i]` is the value at `(x[i], y[j])`; each value fills the cell
/// reaching halfway to its neighbours. `x` and `y` must be strictly
/// increasing. Written as PNG (1000×700) and SVG.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Heatmap {
    /// Title above the map (may be empty).
    pub title: String,
    /// Label of the horizontal axis.
    pub x_label: String,
    /// Label of the vertical axis.
    pub y_label: String,
    /// Grid abscissae, strictly increasing.
    pub x: Vec<f64>,
    /// Grid ordinates, strictly increasing.
    pub y: Vec<f64>,
    /// Values: `z[j][i]` at `(x[i], y[j])`; `y.len()` rows of `x.len()` values.
    pub z: Vec<Vec<f64>>,
    /// Labelled markers `(x, y, label)`, drawn as outlined dots; they must lie
    /// within the map.
    pub markers: Vec<(f64, f64, String)>,
}

impl Heatmap {
    /// A map of `z[j][i]` at `(x[i], y[j])`.
    pub fn new(title: impl Into<String>, x: Vec<f64>, y: Vec<f64>, z: Vec<Vec<f64>>) -> Self {
        Self {
            title: title.into(),
            x,
            y,
            z,
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

    /// Add a labelled marker at `(x, y)`.
    pub fn with_marker(mut self, x: f64, y: f64, label: impl Into<String>) -> Self {
        self.markers.push((x, y, label.into()));
        self
    }

    /// Write `<path_stem>.png` and `<path_stem>.svg` and return their paths.
    pub fn render(&self, path_stem: &Path) -> Result<Vec<PathBuf>, PlotError> {
        let prepared = self.prepare().map_err(|e| e.at(path_stem, &self.title))?;
        render_figure(&Single(prepared), path_stem)
    }

    fn prepare(&self) -> Result<PreparedMap<'_>, DataError> {
        let name = &self.title;
        for (what, v) in [("x", &self.x), ("y", &self.y)] {
            if v.is_empty() {
                return Err(DataError::Empty {
                    what: format!("heatmap {what} grid is empty"),
                });
            }
            check_finite(name, what, v)?;
            if let Some(i) = v.windows(2).position(|w| w[1] <= w[0]) {
                return Err(DataError::Invalid {
                    series: name.clone(),
                    what: what.into(),
                    reason: format!(
                        "grid must be strictly increasing, but {what}[{}] = {} follows {}",
                        i + 1,
                        v[i + 1],
                        v[i]
                    ),
                });
            }
        }
        if self.z.len() != self.y.len() {
            return Err(DataError::LengthMismatch {
                series: name.clone(),
                what: "z (rows)".into(),
                expected: self.y.len(),
                got: self.z.len(),
            });
        }
        let (mut zmin, mut zmax) = (f64::INFINITY, f64::NEG_INFINITY);
        for (j, row) in self.z.iter().enumerate() {
            let what = format!("z[{j}]");
            check_len(name, &what, row, self.x.len())?;
            check_finite(name, &what, row)?;
            for &v in row {
                zmin = zmin.min(v);
                zmax = zmax.max(v);
            }
        }
        if zmax - zmin <= 1e-12 * zmax.abs().max(1e-300) {
            zmin -= 0.5;
            zmax += 0.5;
        }
        let x_edges = edges(&self.x);
        let y_edges = edges(&self.y);
        let (xe0, xe1) = (x_edges[0], x_edges[x_edges.len() - 1]);
        let (ye0, ye1) = (y_edges[0], y_edges[y_edges.len() - 1]);
        for (k, (mx, my, label)) in self.markers.iter().enumerate() {
            check_finite(name, &format!("marker {label:?}"), &[*mx, *my])?;
            if *mx < xe0 || *mx > xe1 || *my < ye0 || *my > ye1 {
                return Err(DataError::Invalid {
                    series: name.clone(),
                    what: format!("markers[{k}] {label:?}"),
                    reason: format!(
                        "({mx}, {my}) lies outside the map [{xe0}, {xe1}] x [{ye0}, {ye1}]"
                    ),
                });
            }
        }
        Ok(PreparedMap {
            map: self,
            x_edges,
            y_edges,
            z_range: (zmin, zmax),
        })
    }
}

/// Draw several heatmaps side by side (`cols` per row, each 760×560 pixels,
/// each with its own colour bar) under an overall `title`, writing
/// `<path_stem>.png` and `<path_stem>.svg`.
pub fn render_heatmaps(
    panels: &[Heatmap],
    cols: usize,
    title: &str,
    path_stem: &Path,
) -> Result<Vec<PathBuf>, PlotError> {
    if cols == 0 {
        return Err(DataError::ZeroColumns.at(path_stem, title));
    }
    if panels.is_empty() {
        return Err(DataError::Empty {
            what: "no panels".into(),
        }
        .at(path_stem, title));
    }
    let prepared = panels
        .iter()
        .enumerate()
        .map(|(i, p)| {
            p.prepare()
                .map_err(|e| e.at(path_stem, &format!("{title} / panel {i} {:?}", p.title)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    render_figure(
        &Grid {
            panels: prepared,
            cols,
            title,
        },
        path_stem,
    )
}

/// Cell boundaries around grid points: halfway between neighbours, and
/// half a step beyond the ends (a single point gets a unit cell).
fn edges(v: &[f64]) -> Vec<f64> {
    if v.len() == 1 {
        return vec![v[0] - 0.5, v[0] + 0.5];
    }
    let n = v.len();
    let mut e = Vec::with_capacity(n + 1);
    e.push(v[0] - 0.5 * (v[1] - v[0]));
    e.extend(v.windows(2).map(|w| 0.5 * (w[0] + w[1])));
    e.push(v[n - 1] + 0.5 * (v[n - 1] - v[n - 2]));
    e
}

struct PreparedMap<'a> {
    map: &'a Heatmap,
    x_edges: Vec<f64>,
    y_edges: Vec<f64>,
    z_range: (f64, f64),
}

impl Panel for PreparedMap<'_> {
    fn draw_panel<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult {
        draw_map(area, self)
    }
}

/// Width in pixels of the colour bar column (bar plus its tick labels).
const COLORBAR_WIDTH: i32 = 125;
/// Fill colours of successive markers (each outlined in black).
const MARKER_FILLS: [RGBColor; 5] = [
    RGBColor(255, 255, 255),
    RGBColor(214, 39, 40),
    RGBColor(255, 127, 14),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

fn color_of(z: f64, (lo, hi): (f64, f64)) -> RGBColor {
    let t = ((z - lo) / (hi - lo)).clamp(0.0, 1.0);
    ViridisRGB::get_color(t)
}

fn draw_map<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, p: &PreparedMap<'_>) -> DrawResult {
    let m = p.map;
    let area = if m.title.is_empty() {
        area.clone()
    } else {
        area.titled(&m.title, text(TITLE_SIZE)).map_err(draw_err)?
    };
    let width = area.dim_in_pixel().0 as i32;
    let (main, bar) = area.split_horizontally(width - COLORBAR_WIDTH);
    let xr = p.x_edges[0]..p.x_edges[p.x_edges.len() - 1];
    let yr = p.y_edges[0]..p.y_edges[p.y_edges.len() - 1];
    let mut chart = ChartBuilder::on(&main)
        .margin(14)
        .margin_right(8)
        .x_label_area_size(58)
        .y_label_area_size(88)
        .build_cartesian_2d(xr, yr)
        .map_err(draw_err)?;
    let tick_fmt = |v: &f64| fmt_tick(*v);
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(m.x_label.as_str())
        .y_desc(m.y_label.as_str())
        .label_style(text(TICK_SIZE))
        .axis_desc_style(text(DESC_SIZE))
        .x_label_formatter(&tick_fmt)
        .y_label_formatter(&tick_fmt)
        .axis_style(BLACK.mix(0.8))
        .draw()
        .map_err(draw_err)?;

    let (xe, ye) = (&p.x_edges, &p.y_edges);
    chart
        .draw_series(m.z.iter().enumerate().flat_map(|(j, row)| {
            row.iter().enumerate().map(move |(i, &z)| {
                Rectangle::new(
                    [(xe[i], ye[j]), (xe[i + 1], ye[j + 1])],
                    color_of(z, p.z_range).filled(),
                )
            })
        }))
        .map_err(draw_err)?;

    // Markers: an outlined dot with a boxed label beside it. Each label takes the
    // first place beside its dot (right or left, above or below, then further away)
    // that stays inside the map and overlaps neither an earlier label nor a dot.
    let label_style = text(DESC_SIZE - 2.0);
    let (xr, yr) = chart.plotting_area().get_pixel_range();
    let dots: Vec<Boxed> = m
        .markers
        .iter()
        .map(|(mx, my, _)| {
            let (px, py) = chart.backend_coord(&(*mx, *my));
            (px - 9, py - 9, px + 9, py + 9)
        })
        .collect();
    let mut taken: Vec<Boxed> = Vec::new();
    for (k, (mx, my, label)) in m.markers.iter().enumerate() {
        let fill = MARKER_FILLS[k % MARKER_FILLS.len()];
        let at = (*mx, *my);
        chart
            .draw_series(std::iter::once(
                EmptyElement::at(at)
                    + Circle::new((0, 0), 8, fill.filled())
                    + Circle::new((0, 0), 8, BLACK.stroke_width(2)),
            ))
            .map_err(draw_err)?;
        if label.is_empty() {
            continue;
        }
        let (tw, th) = area
            .estimate_text_size(label, &label_style)
            .map_err(draw_err)?;
        let (tw, th) = (tw as i32, th as i32);
        let (px, py) = chart.backend_coord(&at);
        let fx = (mx - xe[0]) / (xe[xe.len() - 1] - xe[0]);
        let fy = (my - ye[0]) / (ye[ye.len() - 1] - ye[0]);
        let (dx, dy) = label_offset(
            (px, py),
            (tw, th),
            (fx > 0.7, fy > 0.85),
            (&xr, &yr),
            &dots,
            &taken,
        );
        let (bx0, by0, bx1, by1) = (dx - 5, dy - 3, dx + tw + 5, dy + th + 4);
        taken.push((px + bx0, py + by0, px + bx1, py + by1));
        chart
            .draw_series(std::iter::once(
                EmptyElement::at(at)
                    + Rectangle::new([(bx0, by0), (bx1, by1)], WHITE.mix(0.88).filled())
                    + Rectangle::new([(bx0, by0), (bx1, by1)], BLACK.mix(0.5))
                    + Text::new(label.clone(), (dx, dy), label_style.clone()),
            ))
            .map_err(draw_err)?;
    }

    // Colour bar aligned with the plotting area of the map.
    let (z0, z1) = p.z_range;
    let mut cbar = ChartBuilder::on(&bar)
        .margin(14)
        .margin_left(10)
        .margin_right(4)
        .x_label_area_size(58)
        .right_y_label_area_size(78)
        .build_cartesian_2d(0f64..1f64, z0..z1)
        .map_err(draw_err)?;
    cbar.configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .label_style(text(TICK_SIZE))
        .y_label_formatter(&axis_formatter(z0, z1, false))
        .axis_style(BLACK.mix(0.8))
        .draw()
        .map_err(draw_err)?;
    const STEPS: usize = 128;
    let dz = (z1 - z0) / STEPS as f64;
    cbar.draw_series((0..STEPS).map(|k| {
        let lo = z0 + k as f64 * dz;
        Rectangle::new(
            [(0.0, lo), (1.0, lo + dz)],
            color_of(lo + 0.5 * dz, p.z_range).filled(),
        )
    }))
    .map_err(draw_err)?;
    cbar.draw_series(std::iter::once(Rectangle::new(
        [(0.0, z0), (1.0, z1)],
        BLACK.mix(0.8).stroke_width(1),
    )))
    .map_err(draw_err)?;
    Ok(())
}

/// A pixel box `(x0, y0, x1, y1)`.
type Boxed = (i32, i32, i32, i32);

/// Offset of a `size` label from its dot at pixel `at`: the first candidate (the
/// side preferred by `flip` = (left, below) first, then the other sides, then
/// further away) whose box stays inside `area` and overlaps no box of `dots` other
/// than its own dot's, nor any of `taken`; the preferred spot when none is free.
fn label_offset(
    at: (i32, i32),
    size: (i32, i32),
    flip: (bool, bool),
    area: (&std::ops::Range<i32>, &std::ops::Range<i32>),
    dots: &[Boxed],
    taken: &[Boxed],
) -> (i32, i32) {
    let ((px, py), (tw, th)) = (at, size);
    let overlaps = |a: &Boxed, b: &Boxed| a.0 < b.2 && b.0 < a.2 && a.1 < b.3 && b.1 < a.3;
    let own = (px - 9, py - 9, px + 9, py + 9);
    let offset = |left: bool, below: bool, step: i32| {
        let dx = if left { -14 - tw } else { 14 };
        let away = step * (th + 10);
        let dy = if below { 10 + away } else { -10 - th - away };
        (dx, dy)
    };
    let preferred = offset(flip.0, flip.1, 0);
    for step in 0..6 {
        for (left, below) in [
            (flip.0, flip.1),
            (!flip.0, flip.1),
            (flip.0, !flip.1),
            (!flip.0, !flip.1),
        ] {
            let (dx, dy) = offset(left, below, step);
            let b = (px + dx - 5, py + dy - 3, px + dx + tw + 5, py + dy + th + 4);
            let inside = b.0 >= area.0.start
                && b.2 <= area.0.end
                && b.1 >= area.1.start
                && b.3 <= area.1.end;
            let free = !taken.iter().any(|t| overlaps(t, &b))
                && !dots.iter().any(|d| *d != own && overlaps(d, &b));
            if inside && free {
                return (dx, dy);
            }
        }
    }
    preferred
}
