//! A method measured across the variance sweep: `t_gamma` of every instance at every
//! concentration `beta`, summarised per `beta` and by each instance's log-log slope.

use rayon::prelude::*;
use serde::Serialize;

use super::family::BETAS;
use super::stats::Interval;
use crate::checks::log_log_slope;
use crate::Result;

/// One instance at one `beta`.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// Instance index.
    pub instance: usize,
    /// Concentration.
    pub beta: f64,
    /// `Var_{pi_0}[r]`.
    #[serde(serialize_with = "crate::json::f64")]
    pub var0: f64,
    /// `t_gamma` (flow time), `None` when not reached by the horizon.
    pub t_gamma: Option<f64>,
}

/// One `beta` over instances.
#[derive(Debug, Clone, Serialize)]
pub struct Level {
    /// Concentration.
    pub beta: f64,
    /// `log10 Var_{pi_0}[r]` over instances.
    pub log10_var: Option<Interval>,
    /// `log10 t_gamma` over the instances that reached the level.
    pub log10_t: Option<Interval>,
    /// Instances that reached it, of `total`.
    pub reached: usize,
    /// Instances run.
    pub total: usize,
}

/// A method across the sweep.
#[derive(Debug, Clone, Serialize)]
pub struct Sweep {
    /// What was run.
    pub method: String,
    /// Per `beta`.
    pub levels: Vec<Level>,
    /// The log-log slope of `t_gamma` against `Var_{pi_0}[r]`, per instance (over the
    /// `beta`s it reached, when at least 3).
    pub slopes: Vec<f64>,
    /// Their mean with a 95% interval.
    pub slope: Option<Interval>,
    /// Every run.
    pub runs: Vec<Run>,
}

impl Sweep {
    /// Measures `method` on `instances` instances at every `beta` (in parallel):
    /// `measure(instance, beta)` gives `(Var_{pi_0}[r], t_gamma)`.
    pub fn measure(
        method: &str,
        instances: usize,
        measure: impl Fn(usize, f64) -> Result<(f64, Option<f64>)> + Sync,
    ) -> Result<Self> {
        let jobs: Vec<(usize, f64)> = (0..instances)
            .flat_map(|i| BETAS.iter().map(move |&b| (i, b)))
            .collect();
        let runs = jobs
            .par_iter()
            .map(|&(instance, beta)| {
                let (var0, t_gamma) = measure(instance, beta)?;
                Ok(Run {
                    instance,
                    beta,
                    var0,
                    t_gamma,
                })
            })
            .collect::<Result<Vec<Run>>>()?;
        Ok(Self::from_runs(method, runs, instances))
    }

    /// The summaries of `runs`.
    pub fn from_runs(method: &str, runs: Vec<Run>, instances: usize) -> Self {
        let levels = BETAS
            .iter()
            .map(|&beta| {
                let at: Vec<&Run> = runs.iter().filter(|r| r.beta == beta).collect();
                let vars: Vec<f64> = at.iter().map(|r| r.var0.log10()).collect();
                let ts: Vec<f64> = at
                    .iter()
                    .filter_map(|r| r.t_gamma.map(f64::log10))
                    .collect();
                Level {
                    beta,
                    log10_var: Interval::of(&vars),
                    log10_t: Interval::of(&ts),
                    reached: ts.len(),
                    total: at.len(),
                }
            })
            .collect();
        let slopes: Vec<f64> = (0..instances)
            .filter_map(|i| {
                let (v, t): (Vec<f64>, Vec<f64>) = runs
                    .iter()
                    .filter(|r| r.instance == i)
                    .filter_map(|r| r.t_gamma.map(|t| (r.var0, t)))
                    .unzip();
                let (slope, points, _) = log_log_slope(&v, &t);
                (points >= 3 && slope.is_finite()).then_some(slope)
            })
            .collect();
        Self {
            method: method.to_string(),
            levels,
            slope: Interval::of(&slopes),
            slopes,
            runs,
        }
    }

    /// `t_gamma` of `instance` at `beta`, if reached.
    pub fn t(&self, instance: usize, beta: f64) -> Option<f64> {
        self.runs
            .iter()
            .find(|r| r.instance == instance && r.beta == beta)
            .and_then(|r| r.t_gamma)
    }

    /// `log10(t_self / t_other)` per instance at `beta` (both reached), with a 95%
    /// interval: how many decades slower (> 0) or faster (< 0) than `other`.
    pub fn log10_ratio(&self, other: &Sweep, beta: f64, instances: usize) -> Option<Interval> {
        let r: Vec<f64> = (0..instances)
            .filter_map(|i| Some((self.t(i, beta)? / other.t(i, beta)?).log10()))
            .collect();
        Interval::of(&r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slopes_come_from_each_instance_and_ratios_pair_instances() {
        // t = Var^-1 for instance 0 and Var^-0.5 for instance 1 (Var = 10^-beta).
        let s = Sweep::measure("m", 2, |i, b| {
            let var = 10f64.powf(-b);
            Ok((var, Some(var.powf(if i == 0 { -1.0 } else { -0.5 }))))
        })
        .unwrap();
        assert!((s.slopes[0] + 1.0).abs() < 1e-12 && (s.slopes[1] + 0.5).abs() < 1e-12);
        assert!((s.slope.unwrap().mean + 0.75).abs() < 1e-12);
        let half = Sweep::measure("h", 2, |i, b| {
            let (var, t) = (10f64.powf(-b), s.t(i, b).unwrap());
            Ok((var, (b < 9.0).then_some(t / 2.0)))
        })
        .unwrap();
        let r = half.log10_ratio(&s, 4.0, 2).unwrap();
        assert!((r.mean + 2f64.log10()).abs() < 1e-12 && r.n == 2);
        let last = half.levels.last().unwrap();
        assert_eq!((last.reached, last.total), (0, 2));
    }
}
