//! The figures `rmteach theory figures` draws (PNG and SVG).
//!
//! * `fig1_landscape` — objective landscape of an accurate low-variance and a less
//!   accurate high-variance reward model over a 2-D slice of a 3-output tabular policy.
//! * `t_gamma_vs_variance` — measured `t_gamma` against reward variance (log-log) with
//!   the bound lines of Proposition 3 (tabular) and Theorem 4 (autoregressive).
//! * `thm5_reward_curves`, `thm6_reward_curves` — `E[r_G](t)` under the two teachers.
//! * `best_of_n` — Best-of-N ground-truth value against `N` for reward models of
//!   different accuracy.

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::best_of_n::best_of_n_value;
use crate::constructions::{
    realise, thm5_rewards, thm6_policy, thm6_reward, wrong_except_top, PairDistribution,
};
use crate::flow::{integrate_to, SolverConfig};
use crate::instance::TabularInstance;
use crate::measure::{autoregressive, sample, scaling};
use crate::objective::KlObjective;
use crate::policy::{AutoregressivePolicy, LinearFeatures, Policy, TabularPolicy};
use crate::{Result, TheoryError};
use rmteach::metrics::{accuracy_uniform, expected_reward, reward_variance, softmax};
use rmteach::plot::{render_heatmaps, GridPlot, Heatmap, LinePlot, PlotError, Series, SeriesStyle};

fn plot_err(e: PlotError) -> TheoryError {
    TheoryError::Io {
        path: "figure".into(),
        source: std::io::Error::other(e.to_string()),
    }
}

/// Draws every figure into `dir`; returns the files written.
pub fn render_all(dir: &Path, solver: &SolverConfig) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|source| TheoryError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    let mut files = Vec::new();
    files.extend(landscape(&dir.join("fig1_landscape"), solver)?);
    files.extend(t_gamma_vs_variance(
        &dir.join("t_gamma_vs_variance"),
        solver,
    )?);
    files.extend(thm5_curves(&dir.join("thm5_reward_curves"), solver)?);
    files.extend(thm6_curves(&dir.join("thm6_reward_curves"), solver)?);
    files.extend(best_of_n_curves(&dir.join("best_of_n"))?);
    Ok(files)
}

/// Figure 1: `phi` over the slice `theta = (a, b, theta_3)` of a 3-output tabular policy
/// (softmax is shift-invariant, so the slice is the whole policy space), under an accurate
/// reward model with low variance and a less accurate one with high variance, with the
/// gradient-flow trajectories of both marked on each panel and on the ground truth.
fn landscape(stem: &Path, solver: &SolverConfig) -> Result<Vec<PathBuf>> {
    let r_g = vec![1.0, 0.2, -0.6];
    let theta0 = vec![-1.0, 0.5, 0.5];
    let accurate = vec![0.08, 0.02, 0.0];
    let inaccurate = vec![1.0, -0.2, 0.0];
    let pi0 = softmax(&theta0);
    let grid: Vec<f64> = (0..=80).map(|i| -4.0 + 10.0 * i as f64 / 80.0).collect();
    let value = |r: &[f64], a: f64, b: f64| -> f64 {
        expected_reward(&softmax(&[a, b, theta0[2]]), r).unwrap_or(f64::NAN)
    };
    let surface = |r: &[f64]| -> Vec<Vec<f64>> {
        grid.iter()
            .map(|&b| grid.iter().map(|&a| value(r, a, b)).collect())
            .collect()
    };
    let times = [0.0, 5.0, 20.0, 80.0];
    let trajectory = |r: &[f64]| -> Result<Vec<(f64, f64, f64)>> {
        let policy = TabularPolicy::new(3, 1);
        let obj = KlObjective::new(&policy, vec![r.to_vec()], 0.0, &theta0)?;
        times
            .iter()
            .map(|&t| {
                let (th, _) = integrate_to(&obj, 0.0, t, &theta0, solver)?;
                // Shift so theta_3 stays at its initial value: the same policy, on the slice.
                let shift = th[2] - theta0[2];
                let eg = expected_reward(&softmax(&th), &r_g)?;
                Ok((th[0] - shift, th[1] - shift, eg))
            })
            .collect()
    };
    let describe = |name: &str, r: &[f64]| -> Result<String> {
        Ok(format!(
            "{name}: acc {:.2}, Var {:.1e}",
            accuracy_uniform(r, &r_g)?,
            reward_variance(&pi0, r)?
        ))
    };
    let (ta, ti) = (trajectory(&accurate)?, trajectory(&inaccurate)?);
    let mut panels = vec![
        Heatmap::new(
            describe("accurate RM", &accurate)?,
            grid.clone(),
            grid.clone(),
            surface(&accurate),
        ),
        Heatmap::new(
            describe("less accurate RM", &inaccurate)?,
            grid.clone(),
            grid.clone(),
            surface(&inaccurate),
        ),
        Heatmap::new(
            "ground truth E[r_G]",
            grid.clone(),
            grid.clone(),
            surface(&r_g),
        ),
    ];
    for (k, p) in panels.iter_mut().enumerate() {
        let mut h = std::mem::replace(
            p,
            Heatmap::new("", vec![0.0, 1.0], vec![0.0, 1.0], vec![vec![0.0; 2]; 2]),
        )
        .x_label("theta_1")
        .y_label("theta_2");
        if k == 2 {
            // Ground-truth panel: the start and where each flow ends.
            let (a, b, eg) = ta[0];
            h = h.with_marker(a, b, format!("start: r_G {eg:.2}"));
            for (traj, tag) in [(&ta, "accurate"), (&ti, "less accurate")] {
                let (a, b, eg) = traj[traj.len() - 1];
                h = h.with_marker(
                    a,
                    b,
                    format!("{tag}, t={}: r_G {eg:.2}", times[times.len() - 1]),
                );
            }
        } else {
            let traj = if k == 0 { &ta } else { &ti };
            for ((a, b, eg), t) in traj.iter().zip(times) {
                h = h.with_marker(*a, *b, format!("t={t}: r_G {eg:.2}"));
            }
        }
        *p = h;
    }
    render_heatmaps(
        &panels,
        3,
        "Objective landscape: accuracy is not enough (3 outputs, theta_3 fixed)",
        stem,
    )
    .map_err(plot_err)
}

/// `t_gamma` against reward variance, log-log: Proposition 3 (tabular, `r_RM = c r_G`)
/// and Theorem 4 (autoregressive linear-feature policy, `r_RM = c r_G`), with bounds.
fn t_gamma_vs_variance(stem: &Path, solver: &SolverConfig) -> Result<Vec<PathBuf>> {
    let mut pv = Vec::new();
    let (mut pt, mut pb) = (Vec::new(), Vec::new());
    for p in scaling::scaling_sweep(crate::checks::DEFAULT_SEED, 8, solver) {
        let p = p?;
        if let Some(t) = p.t_gamma.time() {
            pv.push(p.var);
            pt.push(t);
            pb.push(p.bound);
        }
    }
    let prop3_panel = LinePlot::new("Proposition 3 (tabular, |Y| = 8)")
        .x_label("Var_pi0[r_RM]")
        .y_label("t_gamma of r_G")
        .log_x(true)
        .log_y(true)
        .with_series(Series::new("measured", pv.clone(), pt).style(SeriesStyle::LinePoints))
        .with_series(
            Series::new("bound 2|S|(1-e^(-g/2)) Var^(-1/2)", pv, pb).style(SeriesStyle::Dashed),
        );

    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let (vocab, len, prompts) = (3, 2, 2);
    let policy = AutoregressivePolicy::new(
        LinearFeatures::random(vocab, len, prompts, 4, 1.0, &mut rng),
        len,
        prompts,
    );
    let theta0: Vec<f64> = sample::logits(&mut rng, policy.num_params(), 0.5);
    let n_out = policy.num_outputs();
    let base: Vec<Vec<f64>> = (0..prompts)
        .map(|_| sample::uniform_rewards(&mut rng, n_out))
        .collect();
    let cs: Vec<f64> = (0..=6).map(|k| 10f64.powf(-0.5 * k as f64)).collect();
    let points: Vec<Result<autoregressive::Measured>> = cs
        .par_iter()
        .map(|&c| {
            let r_rm: Vec<Vec<f64>> = base
                .iter()
                .map(|r| r.iter().map(|v| c * v).collect())
                .collect();
            autoregressive::measure(&policy, &theta0, &base, &r_rm, 0.0, 0, 50.0 / c, solver)
        })
        .collect();
    let (mut tv, mut tt, mut tb) = (Vec::new(), Vec::new(), Vec::new());
    for m in points {
        let m = m?;
        if let Some(t) = m.t_gamma[0].time() {
            tv.push(m.mean_var);
            tt.push(t);
            tb.push(m.bound[0]);
        }
    }
    let thm4_panel = LinePlot::new("Theorem 4 (autoregressive, |V| = 3, L = 2, shared features)")
        .x_label("E_x Var_pi0[r_RM]")
        .y_label("t_gamma of r_G")
        .log_x(true)
        .log_y(true)
        .with_series(Series::new("measured", tv.clone(), tt).style(SeriesStyle::LinePoints))
        .with_series(Series::new("bound ~ Var^(-1/3)", tv, tb).style(SeriesStyle::Dashed));
    GridPlot::new(
        "Low reward variance => slow ground-truth increase (lambda = 0, r_RM = c r_G)",
        2,
    )
    .with_panel(prop3_panel)
    .with_panel(thm4_panel)
    .render(stem)
    .map_err(plot_err)
}

/// `(t, E[r_G](t))` of one tabular instance on 120 log-spaced times up to its horizon.
fn reward_curve(inst: &TabularInstance, solver: &SolverConfig) -> Result<(Vec<f64>, Vec<f64>)> {
    let (lo, hi) = (-2.0, inst.horizon.log10());
    let times: Vec<f64> = (0..120)
        .map(|k| 10f64.powf(lo + (hi - lo) * k as f64 / 119.0))
        .collect();
    let values = inst
        .observe_at(&times, solver)?
        .iter()
        .map(|o| o[0])
        .collect();
    Ok((times, values))
}

/// Theorem 5 / Theorem 2: a perfectly accurate but low-variance teacher against a
/// teacher with accuracy <= 2/|Y| that ranks `y_g` first.
fn thm5_curves(stem: &Path, solver: &SolverConfig) -> Result<Vec<PathBuf>> {
    let r_g = vec![-0.9, -0.5, -0.1, 0.3, 0.6, 0.95];
    let y_g = 5;
    let theta0 = vec![1.5, 1.0, 0.5, 0.3, 0.0, -2.5];
    let pi0 = softmax(&theta0);
    let v0 = expected_reward(&pi0, &r_g)?;
    let gamma = 0.5 * (r_g[y_g] - v0);
    let weak = wrong_except_top(&r_g, y_g)?;
    let alpha_weak = PairDistribution::Uniform.accuracy(&weak.scores(), &r_g)?;
    let mut plot = LinePlot::new(format!(
        "Theorem 2: E[r_G](t), |Y| = 6, pi0(y_g) = {:.3}",
        pi0[y_g]
    ))
    .x_label("time t")
    .y_label("E[r_G]")
    .log_x(true);
    let mut t_max: f64 = 1.0;
    for (k, t_big) in [10.0, 100.0].into_iter().enumerate() {
        let rw = thm5_rewards(
            &r_g,
            &PairDistribution::Uniform,
            1.0,
            alpha_weak,
            y_g,
            pi0[y_g],
            t_big,
        )?;
        let mk = |r: &[f64], horizon: f64| TabularInstance {
            num_prompts: 1,
            lambda: 0.0,
            gamma,
            logits: Some(theta0.clone()),
            probs: None,
            r_rm: r.to_vec(),
            r_g: r_g.clone(),
            horizon,
        };
        let (t, v) = reward_curve(&mk(&rw.r_rm, 1e4), solver)?;
        t_max = t_max.max(*t.last().unwrap_or(&1.0));
        plot.push(Series::new(
            format!(
                "r_RM: acc {:.2}, values < 1/T, T = {t_big}",
                rw.alpha_realised
            ),
            t,
            v,
        ));
        if k == 0 {
            let (t, v) = reward_curve(&mk(&rw.r_rm_prime, 1e4), solver)?;
            plot.push(Series::new(
                format!(
                    "r'_RM: acc {:.2} (<= 2/|Y|), y_g first",
                    rw.alpha_prime_realised
                ),
                t,
                v,
            ));
        }
    }
    plot.push(
        Series::new("V_G(0) + gamma", vec![1e-2, t_max], vec![v0 + gamma; 2])
            .style(SeriesStyle::Dashed),
    );
    plot.render(stem).map_err(plot_err)
}

/// Theorem 6: from `pi_0 in Pi` the teacher favouring `y_g` is fast and the one
/// favouring `y_g'` slow; from `pi'_0 in Pi'` the roles swap.
fn thm6_curves(stem: &Path, solver: &SolverConfig) -> Result<Vec<PathBuf>> {
    let r_g: Vec<f64> = vec![0.8, -0.7, 0.7, -0.2, 0.1];
    let (y_g, y_g2, v0, t_big, c) = (0, 2, -0.05, 10.0, 0.3);
    let shape = vec![1.0; r_g.len()];
    let gamma = 0.5 * (r_g[y_g].min(r_g[y_g2]) - v0);
    let mut grid = GridPlot::new(
        format!("Theorem 6: different policies need different teachers (T = {t_big}, c = {c})"),
        2,
    );
    for (fav, sup, name) in [
        (y_g, y_g2, "pi0 in Pi (favours y_g)"),
        (y_g2, y_g, "pi0 in Pi' (favours y_g')"),
    ] {
        let pol = thm6_policy(&r_g, fav, sup, v0, t_big, c, &shape)?;
        let mut plot = LinePlot::new(name)
            .x_label("time t")
            .y_label("E[r_G]")
            .log_x(true);
        for (teacher, label) in [(y_g, "r_RM: +1 on y_g"), (y_g2, "r'_RM: +1 on y_g'")] {
            let inst = TabularInstance {
                num_prompts: 1,
                lambda: 0.0,
                gamma,
                logits: None,
                probs: Some(pol.probs.clone()),
                r_rm: thm6_reward(r_g.len(), teacher),
                r_g: r_g.clone(),
                horizon: 2e3,
            };
            let (t, v) = reward_curve(&inst, solver)?;
            plot.push(Series::new(label, t, v));
        }
        plot.push(
            Series::new("V0 + gamma", vec![1e-2, 2e3], vec![v0 + gamma; 2])
                .style(SeriesStyle::Dashed),
        );
        grid = grid.with_panel(plot);
    }
    grid.render(stem).map_err(plot_err)
}

/// Proposition 1: Best-of-N value against `N` for reward models of several accuracies.
fn best_of_n_curves(stem: &Path) -> Result<Vec<PathBuf>> {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let n = 10;
    let r_g = sample::uniform_rewards(&mut rng, n);
    let pi = softmax(&sample::logits(&mut rng, n, 1.0));
    let ns: Vec<u32> = vec![1, 2, 3, 5, 8, 13, 20, 32, 50, 80, 128];
    let mut plot = LinePlot::new(
        "Proposition 1: Best-of-N with reward models of different accuracy (|Y| = 10)",
    )
    .x_label("N")
    .y_label("E[r_G] of Best-of-N")
    .log_x(true);
    for alpha in [45.0, 37.0, 28.0, 22.0, 10.0].map(|k: f64| k / 45.0) {
        let r_rm = realise(&r_g, &PairDistribution::Uniform, alpha, None)?
            .ranking
            .scores();
        let v: Vec<f64> = ns
            .iter()
            .map(|&k| best_of_n_value(&pi, &r_rm, &r_g, k))
            .collect::<Result<_>>()?;
        plot.push(
            Series::new(
                format!("accuracy {alpha:.3}"),
                ns.iter().map(|&k| k as f64).collect(),
                v,
            )
            .style(SeriesStyle::LinePoints),
        );
    }
    plot.render(stem).map_err(plot_err)
}
