//! Reward scaling with exact gradients against `k`-sample estimates: `r_RM = c s0 r`
//! at one concentration of the family, trained by SGD and Adam, `t_gamma` of `r_G = r`
//! counted in steps.

use rayon::prelude::*;
use serde::Serialize;

use super::family::instance;
use super::optimizers::{methods, run_method, HORIZON_FACTOR};
use super::stats::{std_dev, Interval};
use super::LeversConfig;
use crate::checks::log_log_slope;
use crate::discrete::{Estimate, Stop};
use crate::flow::SolverConfig;
use crate::Result;

/// The concentration `beta` of the scaling runs.
pub const BETA: f64 = 4.0;
/// The base reward scale `s0`: `r_RM = c s0 r` stays in `[-1, 1]` for every `c`.
pub const BASE_SCALE: f64 = 1.0 / 16.0;
/// The scales `c`.
pub const SCALES: [f64; 5] = [1.0, 2.0, 4.0, 8.0, 16.0];

/// One method at one scale, over instances (each summarised over its seeds).
#[derive(Debug, Clone, Serialize)]
pub struct ScalePoint {
    /// The scale `c`.
    pub c: f64,
    /// `log10` of the steps to `t_gamma`: each instance's mean over its seeds, then the
    /// mean over instances with a 95% interval.
    pub log10_steps: Option<Interval>,
    /// The spread over seeds: each instance's standard deviation of `log10 steps`,
    /// then their mean with a 95% interval (0 for exact gradients).
    pub spread: Option<Interval>,
    /// Runs that reached the level, of `total`.
    pub reached: usize,
    /// Runs.
    pub total: usize,
}

/// One method across the scales.
#[derive(Debug, Clone, Serialize)]
pub struct ScaleSweep {
    /// What was run.
    pub method: String,
    /// Per scale.
    pub points: Vec<ScalePoint>,
    /// Per instance, the log-log slope of mean steps against `c`; mean and interval.
    pub steps_slope: Option<Interval>,
    /// Per instance, the log-log slope of the spread against `c` (sampled gradients
    /// only); mean and interval.
    pub spread_slope: Option<Interval>,
    /// `steps[instance][scale][seed]`, `None` when not reached.
    pub steps: Vec<Vec<Vec<Option<usize>>>>,
}

/// Every discrete method of `cfg` across the scales.
pub fn scaling_sweeps(cfg: &LeversConfig, solver: &SolverConfig) -> Result<Vec<ScaleSweep>> {
    // The horizon (flow time, hence steps) of every run: HORIZON_FACTOR times the
    // flow's t_gamma on the unscaled (c = 1) reward, the slowest.
    let horizons = (0..cfg.instances)
        .into_par_iter()
        .map(|i| {
            let res = instance(cfg.seed, i, BETA, BASE_SCALE, 1e7).run(solver, false)?;
            Ok(HORIZON_FACTOR * res.t_gamma_g.time().unwrap_or(1e4))
        })
        .collect::<Result<Vec<f64>>>()?;
    methods(&cfg.ks, cfg.adam_k)
        .into_iter()
        .map(|(name, optimizer, estimate)| {
            let seeds = if estimate == Estimate::Exact {
                1
            } else {
                cfg.seeds
            };
            let jobs: Vec<(usize, usize, usize)> = (0..cfg.instances)
                .flat_map(|i| {
                    (0..SCALES.len()).flat_map(move |c| (0..seeds).map(move |s| (i, c, s)))
                })
                .collect();
            let flat = jobs
                .par_iter()
                .map(|&(i, c, s)| {
                    let inst = instance(cfg.seed, i, BETA, SCALES[c] * BASE_SCALE, horizons[i]);
                    // r_RM = c s0 r rarely rises by gamma: only r_G's level counts.
                    let method = (optimizer, estimate);
                    let out = run_method(cfg, &inst, method, i * 1000 + s, Stop::GroundTruth)?;
                    Ok(out.t_gamma_g.time().map(|t| (t / cfg.lr).round() as usize))
                })
                .collect::<Result<Vec<Option<usize>>>>()?;
            let mut it = flat.into_iter();
            let steps: Vec<Vec<Vec<Option<usize>>>> = (0..cfg.instances)
                .map(|_| {
                    (0..SCALES.len())
                        .map(|_| it.by_ref().take(seeds).collect())
                        .collect()
                })
                .collect();
            Ok(summarise(&name, steps, estimate != Estimate::Exact))
        })
        .collect()
}

/// The summaries of `steps[instance][scale][seed]`.
fn summarise(method: &str, steps: Vec<Vec<Vec<Option<usize>>>>, sampled: bool) -> ScaleSweep {
    let logs = |v: &[Option<usize>]| -> Vec<f64> {
        v.iter()
            .filter_map(|s| s.map(|s| (s as f64).log10()))
            .collect()
    };
    let mean = |v: &[f64]| Interval::of(v).map_or(f64::NAN, |i| i.mean);
    let points = (0..SCALES.len())
        .map(|c| {
            let per: Vec<Vec<f64>> = steps.iter().map(|inst| logs(&inst[c])).collect();
            let means: Vec<f64> = per.iter().map(|l| mean(l)).collect();
            let spreads: Vec<f64> = per.iter().map(|l| std_dev(l)).collect();
            ScalePoint {
                c: SCALES[c],
                log10_steps: Interval::of(&means),
                spread: if sampled {
                    Interval::of(&spreads)
                } else {
                    None
                },
                reached: per.iter().map(Vec::len).sum(),
                total: steps.iter().map(|inst| inst[c].len()).sum(),
            }
        })
        .collect();
    let slope_of = |f: &dyn Fn(&[Option<usize>]) -> f64| -> Option<Interval> {
        let slopes: Vec<f64> = steps
            .iter()
            .filter_map(|inst| {
                let y: Vec<f64> = inst.iter().map(|s| f(s)).collect();
                let (slope, points, _) = log_log_slope(&SCALES, &y);
                (points >= 3 && slope.is_finite()).then_some(slope)
            })
            .collect();
        Interval::of(&slopes)
    };
    let steps_slope = slope_of(&|s| 10f64.powf(mean(&logs(s))));
    let spread_slope = if sampled {
        slope_of(&|s| std_dev(&logs(s)))
    } else {
        None
    };
    ScaleSweep {
        method: method.to_string(),
        points,
        steps_slope,
        spread_slope,
        steps,
    }
}
