//! The levers' figures: `log10 t_gamma` against `log10 Var` per method (mean over
//! instances with its 95% interval as a band), and steps against the reward scale.

use std::path::{Path, PathBuf};

use super::family::GAMMA;
use super::scaling::ScaleSweep;
use super::sweep::Sweep;
use super::Levers;
use crate::{Result, TheoryError};
use rmteach::plot::{GridPlot, LinePlot, PlotError, Series, SeriesStyle};

fn plot_err(e: PlotError) -> TheoryError {
    TheoryError::Io {
        path: "figure".into(),
        source: std::io::Error::other(e.to_string()),
    }
}

/// Draws every figure into `dir`.
pub(super) fn render(levers: &Levers, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let flows = variance_panel(
        "Flows: PG, NPG, entropy bonus (|Y| = 16, lambda = 0)",
        &levers.flows,
    )
    .with_series(prop3_series(&levers.flows[0]));
    files.extend(flows.render(&dir.join("levers_flows")).map_err(plot_err)?);
    let mut algos: Vec<Sweep> = vec![levers.flows[0].clone()];
    algos.extend(levers.optimizers.iter().cloned());
    let optim = variance_panel(
        &format!(
            "Flow vs SGD vs Adam (lr {}, t = steps x lr)",
            levers.config.lr
        ),
        &algos,
    );
    files.extend(
        optim
            .render(&dir.join("levers_optimizers"))
            .map_err(plot_err)?,
    );
    files.extend(scaling_grid(&levers.scaling, &dir.join("levers_scaling"))?);
    Ok(files)
}

/// One series per sweep: mean `log10 t_gamma` over the instances that reached the
/// level, against mean `log10 Var`, with the interval as a band.
fn variance_panel(title: &str, sweeps: &[Sweep]) -> LinePlot {
    let mut plot = LinePlot::new(title)
        .x_label("log10 Var_pi0[r]  (mean over instances)")
        .y_label("log10 t_gamma  (mean, 95% band)");
    for s in sweeps {
        let (mut x, mut y, mut e) = (Vec::new(), Vec::new(), Vec::new());
        for l in &s.levels {
            if let (Some(v), Some(t)) = (l.log10_var, l.log10_t) {
                x.push(v.mean);
                y.push(t.mean);
                e.push(t.half_width());
            }
        }
        plot.push(
            Series::new(s.method.clone(), x, y)
                .style(SeriesStyle::LinePoints)
                .with_err(e),
        );
    }
    plot
}

/// Proposition 3's bound `2(1 - e^(-gamma/2)) / sqrt(Var)` at the sweep's variances.
fn prop3_series(sweep: &Sweep) -> Series {
    let c = (2.0 * (1.0 - (-GAMMA / 2.0).exp())).log10();
    let x: Vec<f64> = sweep
        .levels
        .iter()
        .filter_map(|l| l.log10_var.map(|v| v.mean))
        .collect();
    let y = x.iter().map(|v| c - 0.5 * v).collect();
    Series::new("Prop. 3 bound (PG flow)", x, y).style(SeriesStyle::Dashed)
}

/// Steps against the scale, and the seed-to-seed spread against the scale.
fn scaling_grid(sweeps: &[ScaleSweep], stem: &Path) -> Result<Vec<PathBuf>> {
    {
        let mut steps = LinePlot::new("Steps to t_gamma")
            .x_label("log10 c  (r_RM = c r / 16)")
            .y_label("log10 steps  (mean, 95% band)");
        let mut spread = LinePlot::new("Seed-to-seed spread (sampled gradients)")
            .x_label("log10 c")
            .y_label("sd of log10 steps over seeds  (mean, 95% band)");
        for s in sweeps {
            let (mut x, mut y, mut e) = (Vec::new(), Vec::new(), Vec::new());
            let (mut sx, mut sy, mut se) = (Vec::new(), Vec::new(), Vec::new());
            for p in &s.points {
                if let Some(i) = p.log10_steps {
                    x.push(p.c.log10());
                    y.push(i.mean);
                    e.push(i.half_width());
                }
                if let Some(i) = p.spread {
                    sx.push(p.c.log10());
                    sy.push(i.mean);
                    se.push(i.half_width());
                }
            }
            steps.push(
                Series::new(s.method.clone(), x, y)
                    .style(SeriesStyle::LinePoints)
                    .with_err(e),
            );
            if !sx.is_empty() {
                spread.push(
                    Series::new(s.method.clone(), sx, sy)
                        .style(SeriesStyle::LinePoints)
                        .with_err(se),
                );
            }
        }
        GridPlot::new(
            "Reward scaling: exact vs sampled gradients (beta = 4, lambda = 0)",
            2,
        )
        .with_panel(steps)
        .with_panel(spread)
        .render(stem)
        .map_err(plot_err)
    }
}
