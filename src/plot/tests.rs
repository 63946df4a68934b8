use std::path::{Path, PathBuf};

use super::*;

/// A fresh folder under the system temp dir, unique per test and process.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rmteach-plot-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Both files exist, the PNG is a real PNG of some size and the SVG holds `title`.
fn check_outputs(files: &[PathBuf], stem: &Path, title: &str) {
    assert_eq!(
        files,
        &[with_ext(stem, "png"), with_ext(stem, "svg")],
        "render returns <stem>.png then <stem>.svg"
    );
    let png = std::fs::read(&files[0]).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "PNG magic bytes");
    assert!(
        png.len() > 10_000,
        "PNG suspiciously small: {} bytes",
        png.len()
    );
    let svg = std::fs::read_to_string(&files[1]).unwrap();
    assert!(svg.starts_with("<svg"), "SVG header");
    assert!(
        svg.contains(title),
        "SVG should contain the title {title:?}"
    );
}

fn demo_line_plot(title: &str) -> LinePlot {
    let x: Vec<f64> = (1..=40).map(|i| i as f64 * 25.0).collect();
    let mean: Vec<f64> = x.iter().map(|t| 0.5 * (-t / 300.0).exp() + 1e-3).collect();
    let std: Vec<f64> = mean.iter().map(|m| 0.3 * m).collect();
    LinePlot::new(title)
        .x_label("training step")
        .y_label("reward variance")
        .log_y(true)
        .with_series(Series::new("mean ± std", x.clone(), mean.clone()).with_err(std))
        .with_series(
            Series::new("proxy", x.clone(), mean.iter().map(|m| m * 1.5).collect())
                .style(SeriesStyle::Dashed),
        )
        .with_series(
            Series::new(
                "ground truth",
                x.clone(),
                mean.iter().map(|m| m * 0.7).collect(),
            )
            .style(SeriesStyle::LinePoints),
        )
        .with_series(
            Series::new("samples", x.clone(), mean.iter().map(|m| m * 1.1).collect())
                .style(SeriesStyle::Points),
        )
}

#[test]
fn line_plot_renders_png_and_svg() {
    let dir = temp_dir("line");
    let stem = dir.join("variance.v1"); // a dot in the stem is kept
    let files = demo_line_plot("Reward variance").render(&stem).unwrap();
    check_outputs(&files, &stem, "Reward variance");
    assert!(svg_text(&files[1]).contains("ground truth"), "legend text");
    cleanup(&dir);
}

/// Remove a test folder (kept when `RMTEACH_KEEP_PLOTS` is set, to look at).
fn cleanup(dir: &Path) {
    if std::env::var_os("RMTEACH_KEEP_PLOTS").is_none() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn svg_text(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap()
}

#[test]
fn log_log_and_linear_axes_render() {
    let dir = temp_dir("axes");
    let x: Vec<f64> = vec![-1.0, 0.0, 1.0, 10.0, 100.0];
    let y: Vec<f64> = vec![5.0, 4.0, 3.0, 2.0, 2.5];
    for (lx, ly) in [(false, false), (true, false), (true, true), (false, true)] {
        let stem = dir.join(format!("axes_{lx}_{ly}"));
        let files = LinePlot::new(format!("axes {lx} {ly}"))
            .log_x(lx)
            .log_y(ly)
            .with_series(Series::new("a", x.clone(), y.clone()))
            .render(&stem)
            .unwrap();
        check_outputs(&files, &stem, &format!("axes {lx} {ly}"));
    }
    // A single point and a constant series still get a sensible window.
    let stem = dir.join("single");
    let files = LinePlot::new("single point")
        .with_series(Series::new("", vec![3.0], vec![0.0]).style(SeriesStyle::Points))
        .render(&stem)
        .unwrap();
    check_outputs(&files, &stem, "single point");
    cleanup(&dir);
}

#[test]
fn grid_plot_renders_panels_side_by_side() {
    let dir = temp_dir("grid");
    let stem = dir.join("pair");
    let grid = GridPlot::new("Proxy vs ground truth", 2)
        .with_panel(demo_line_plot("proxy reward"))
        .with_panel(demo_line_plot("ground-truth reward").log_y(false));
    let files = grid.render(&stem).unwrap();
    check_outputs(&files, &stem, "Proxy vs ground truth");
    let svg = svg_text(&files[1]);
    assert!(svg.contains("ground-truth reward") && svg.contains("proxy reward"));
    assert!(
        svg.contains(r#"width="1520""#),
        "two 760-px panels side by side"
    );
    cleanup(&dir);
}

#[test]
fn a_grid_title_wider_than_the_figure_wraps_onto_more_lines() {
    ensure_fonts().unwrap();
    let long = "Reward variance against accuracy under each policy (one point per RM, \
                best first in the legend; 95% intervals in teacher.md)";
    let lines = title_lines(long, PANEL_SIZE.0);
    assert!(lines.len() >= 2, "{lines:?}");
    assert_eq!(lines.join(" "), long, "no word lost or reordered");
    for line in &lines {
        let (w, _) = text(SUPTITLE_SIZE).font.box_size(line).unwrap();
        assert!(w <= PANEL_SIZE.0, "{line:?} is {w} px wide");
    }
    assert_eq!(title_lines("Proxy vs ground truth", PANEL_SIZE.0).len(), 1);
    assert!(title_lines("", PANEL_SIZE.0).is_empty());

    let dir = temp_dir("grid-long-title");
    let stem = dir.join("one");
    let files = GridPlot::new(long, 3)
        .with_panel(demo_line_plot("sft"))
        .render(&stem)
        .unwrap();
    let svg = svg_text(&files[1]);
    let height = PANEL_SIZE.1 + SUPTITLE_HEIGHT * lines.len() as u32;
    assert!(
        svg.contains(&format!(r#"height="{height}""#)),
        "one title row per line"
    );
    for line in &lines {
        let escaped = line.replace('&', "&amp;");
        assert!(svg.contains(&escaped), "{line:?} drawn");
    }
    cleanup(&dir);
}

#[test]
fn bar_plot_renders() {
    let dir = temp_dir("bar");
    let stem = dir.join("accuracy");
    let plot = BarPlot::new("Accuracy by teacher")
        .y_label("accuracy")
        .groups(["tabular", "softmax", "LM"])
        .with_bars(BarSeries::new("proxy", vec![0.7, 0.55, 0.62]).with_err(vec![0.05, 0.04, 0.08]))
        .with_bars(
            BarSeries::new("ground truth", vec![0.9, 0.6, 0.58]).with_err(vec![0.02, 0.03, 0.1]),
        )
        .with_bars(BarSeries::new("", vec![-0.1, 0.2, 0.3]));
    let files = plot.render(&stem).unwrap();
    check_outputs(&files, &stem, "Accuracy by teacher");
    assert!(
        svg_text(&files[1]).contains("softmax"),
        "group names on the axis"
    );
    cleanup(&dir);
}

fn demo_heatmap(title: &str) -> Heatmap {
    let x: Vec<f64> = (0..30).map(|i| -2.0 + 4.0 * i as f64 / 29.0).collect();
    let y: Vec<f64> = (0..20).map(|j| -1.0 + 3.0 * j as f64 / 19.0).collect();
    let z = y
        .iter()
        .map(|b| {
            x.iter()
                .map(|a| (1.0 - a).powi(2) + 5.0 * (b - a * a).powi(2))
                .collect()
        })
        .collect();
    Heatmap::new(title, x, y, z)
        .x_label("θ₁")
        .y_label("θ₂")
        .with_marker(-1.5, -0.5, "start")
        .with_marker(1.0, 1.0, "optimum")
}

#[test]
fn heatmap_renders_single_and_grid() {
    let dir = temp_dir("heat");
    let stem = dir.join("landscape");
    let files = demo_heatmap("Objective landscape").render(&stem).unwrap();
    check_outputs(&files, &stem, "Objective landscape");
    assert!(svg_text(&files[1]).contains("optimum"), "marker label");

    let stem = dir.join("landscapes");
    let panels = [demo_heatmap("proxy"), demo_heatmap("ground truth")];
    let files = render_heatmaps(&panels, 2, "Two landscapes", &stem).unwrap();
    check_outputs(&files, &stem, "Two landscapes");
    cleanup(&dir);
}

fn data_error(r: Result<Vec<PathBuf>, PlotError>) -> DataError {
    match r {
        Err(PlotError::Data { problem, .. }) => problem,
        other => panic!("expected a data error, got {other:?}"),
    }
}

#[test]
fn bad_data_gives_clear_errors() {
    let dir = temp_dir("errors");
    let stem = dir.join("bad");

    let e = data_error(LinePlot::new("t").render(&stem));
    assert!(matches!(e, DataError::Empty { .. }));

    let e = data_error(
        LinePlot::new("t")
            .with_series(Series::new("empty", vec![], vec![]))
            .render(&stem),
    );
    assert_eq!(
        e,
        DataError::EmptySeries {
            series: "empty".into()
        }
    );

    let e = data_error(
        LinePlot::new("t")
            .with_series(Series::new("short", vec![1.0, 2.0], vec![1.0]))
            .render(&stem),
    );
    assert!(matches!(
        e,
        DataError::LengthMismatch {
            expected: 2,
            got: 1,
            ..
        }
    ));

    let r = LinePlot::new("nan plot")
        .with_series(Series::new("nan", vec![1.0, 2.0], vec![1.0, f64::NAN]))
        .render(&stem);
    let msg = r.as_ref().unwrap_err().to_string();
    assert!(
        msg.contains("bad.{png,svg}") && msg.contains("nan plot") && msg.contains("y[1]"),
        "{msg}"
    );
    assert!(matches!(
        data_error(r),
        DataError::NonFinite { index: 1, .. }
    ));

    let e = data_error(
        LinePlot::new("t")
            .with_series(Series::new("band", vec![1.0, 2.0], vec![1.0, 2.0]).with_err(vec![0.1]))
            .render(&stem),
    );
    assert!(matches!(e, DataError::LengthMismatch { .. }));

    let e = data_error(
        LinePlot::new("t")
            .log_y(true)
            .with_series(Series::new("zeros", vec![1.0, 2.0], vec![0.0, -1.0]))
            .render(&stem),
    );
    assert!(matches!(e, DataError::NothingOnLogAxis { ref axis, .. } if axis == "y"));

    let e = data_error(
        GridPlot::new("g", 0)
            .with_panel(demo_line_plot("p"))
            .render(&stem),
    );
    assert_eq!(e, DataError::ZeroColumns);

    let e = data_error(
        BarPlot::new("b")
            .groups(["a", "b"])
            .with_bars(BarSeries::new("x", vec![1.0]))
            .render(&stem),
    );
    assert!(matches!(e, DataError::LengthMismatch { .. }));

    let e = data_error(
        BarPlot::new("b")
            .groups(["a"])
            .with_bars(BarSeries::new("x", vec![1.0]).with_err(vec![-1.0]))
            .render(&stem),
    );
    assert!(matches!(e, DataError::Invalid { .. }));

    let mut h = demo_heatmap("h");
    h.z[3].pop();
    assert!(matches!(
        data_error(h.render(&stem)),
        DataError::LengthMismatch { .. }
    ));
    let mut h = demo_heatmap("h");
    h.z[2][2] = f64::INFINITY;
    assert!(matches!(
        data_error(h.render(&stem)),
        DataError::NonFinite { .. }
    ));
    let h = demo_heatmap("h").with_marker(10.0, 0.0, "far away");
    assert!(matches!(
        data_error(h.render(&stem)),
        DataError::Invalid { .. }
    ));
    let mut h = demo_heatmap("h");
    h.x.swap(0, 1);
    assert!(matches!(
        data_error(h.render(&stem)),
        DataError::Invalid { .. }
    ));

    // Nothing was written for any of the bad figures.
    assert!(!with_ext(&stem, "png").exists());
    cleanup(&dir);
}

#[test]
fn tick_helpers() {
    assert_eq!(fmt_tick(0.0), "0");
    assert_eq!(fmt_tick(0.30000000000000004), "0.3");
    assert_eq!(fmt_tick(12.5), "12.5");
    assert_eq!(fmt_tick(3000.0), "3000");
    assert_eq!(fmt_tick(1e-4), "1e-4");
    assert_eq!(fmt_tick(2.5e6), "2.5e6");
    assert_eq!(fmt_tick(-0.002), "-0.002");

    let (bold, light) = log_ticks(0.9e-2, 1.1e2);
    assert_eq!(bold, vec![0.01, 0.1, 1.0, 10.0, 100.0]);
    assert!(!light.is_empty());
    // Less than a decade still gets labelled ticks.
    let (bold, _) = log_ticks(2.2, 7.5);
    assert!(bold.len() >= 2, "{bold:?}");
    let (bold, _) = log_ticks(2.2, 2.8);
    assert!(bold.len() >= 3, "{bold:?}");
    let (bold, _) = log_ticks(1.9, 3.1);
    assert!(bold.len() >= 3, "{bold:?}");

    assert_eq!(
        linear_ticks(0.0, 1.0, 5),
        vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
    );
    assert_eq!(padded_range(1.0, 1.0, false), (0.9, 1.1));
    assert_eq!(padded_range(0.0, 0.0, false), (-1.0, 1.0));
    assert_eq!(
        with_ext(Path::new("a/b.c"), "png"),
        PathBuf::from("a/b.c.png")
    );
}

/// Writes `<temp>/plot_demo.{png,svg}` to look at:
/// `cargo test -p rmteach --lib plot::tests::write_demo_figure -- --ignored`.
#[test]
#[ignore = "writes a demo figure for manual inspection"]
fn write_demo_figure() {
    let steps: Vec<f64> = (0..=50).map(|i| i as f64 * 20.0).collect();
    let curve = |rate: f64, floor: f64| -> Vec<f64> {
        steps
            .iter()
            .map(|t| floor + (1.0 - floor) * (-t / rate).exp())
            .collect()
    };
    let plot = LinePlot::new("Ground-truth accuracy gap under different teachers")
        .x_label("gradient steps")
        .y_label("1 − accuracy (log scale)")
        .log_y(true)
        .with_series(
            Series::new("high-variance teacher", steps.clone(), curve(120.0, 0.01))
                .with_err(curve(120.0, 0.01).iter().map(|v| 0.25 * v).collect()),
        )
        .with_series(
            Series::new(
                "accurate, low-variance teacher",
                steps.clone(),
                curve(600.0, 0.05),
            )
            .style(SeriesStyle::Dashed),
        )
        .with_series(
            Series::new("ground-truth reward", steps.clone(), curve(350.0, 0.002))
                .style(SeriesStyle::LinePoints),
        );
    let files = plot
        .render(&std::env::temp_dir().join("plot_demo"))
        .unwrap();
    println!("{files:?}");
}

#[test]
fn axis_ticks_use_one_notation_and_print_zero_as_zero() {
    // Rounding residue of the tick arithmetic on a linear axis.
    let f = axis_formatter(-0.3, 0.5, false);
    assert_eq!(f(&-2.8e-17), "0");
    assert_eq!(f(&0.25), "0.25");
    // An axis reaching 1e5 labels every tick in scientific notation.
    let f = axis_formatter(0.0, 2e5, false);
    assert_eq!(
        (f(&1e4), f(&1e5), f(&1.5e5)),
        ("1e4".into(), "1e5".into(), "1.5e5".into())
    );
    let f = axis_formatter(10.0, 1e6, true);
    assert_eq!((f(&100.0), f(&1e5)), ("1e2".into(), "1e5".into()));
    // A log axis reaching down to 1e-8 never prints a small tick as 0.
    let f = axis_formatter(1e-8, 0.5, true);
    assert_eq!((f(&1e-7), f(&0.1)), ("1e-7".into(), "1e-1".into()));
    let f = axis_formatter(1.0, 200.0, true);
    assert_eq!((f(&1.0), f(&100.0)), ("1".into(), "100".into()));
    // Below 1e5 everything is plain.
    let f = axis_formatter(0.0, 5e4, false);
    assert_eq!((f(&1e4), f(&0.0)), ("10000".into(), "0".into()));
}

#[test]
fn integer_axes_get_integer_ticks() {
    assert_eq!(integer_ticks(-0.1, 2.1), [0.0, 1.0, 2.0]);
    assert_eq!(integer_ticks(0.0, 6.0), [0.0, 2.0, 4.0, 6.0]);
    assert!(integer_ticks(0.0, 40.0).iter().all(|v| v.fract() == 0.0));
    // A line plot over epochs labels whole epochs only.
    let dir = temp_dir("epochs");
    let stem = dir.join("epochs");
    let plot = LinePlot::new("epochs")
        .x_label("epoch")
        .y_label("increase")
        .with_series(Series::new("a", vec![0.0, 1.0, 2.0], vec![0.0, 0.1, -0.05]));
    let files = plot.render(&stem).unwrap();
    let svg = svg_text(&files[1]);
    let labels: Vec<&str> = svg.lines().map(str::trim).collect();
    assert!(
        !labels.contains(&"0.5") && !labels.contains(&"1.5"),
        "fractional epoch tick"
    );
    assert!(labels.contains(&"1") && labels.contains(&"2"), "{svg}");
    cleanup(&dir);
}
