//! Beyond the paper: levers on reward variance, measured on tabular policies
//! (`rmteach theory levers`, and a part of `rmteach reproduce`'s report).
//!
//! The paper (Sections 5-6) names levers it leaves open. Each is measured on one
//! instance family ([`family`]): a perfect proxy (`r_RM = r_G`), `lambda = 0`, and a
//! reward variance under `pi_0` lowered by moving `pi_0`'s mass onto the worst output
//! (concentration `beta`), the reward itself unchanged. Intervals are 95% Student-t
//! intervals over instances (each run with its own sampler seed where there is one).
//!
//! What the mechanism predicts, written before any run:
//! * **Natural gradient** ([`flows`]). The gradient flow moves `theta_y` at speed
//!   `pi(y) (r(y) - V)`: a good output with mass `eps` grows like `d eps/dt ~ eps^2`, so
//!   `t_gamma ~ 1/eps ~ 1/Var` (log-log slope near -1; Proposition 3 bounds it below
//!   by `Var^(-1/2)`). The natural gradient drops the factor `pi(y)`: `ln pi` moves at
//!   speed `r(y) - V`, `pi_t ∝ pi_0 exp(t r)`, so `t_gamma ~ ln(1/eps)`: a slope near 0,
//!   and below Proposition 3's bound (a bound for the gradient flow only) at low
//!   variance.
//! * **Entropy bonus** ([`flows`]). `-tau ln pi` adds about `tau ln(1/eps)` to a rare
//!   output's advantage, but the factor `pi(y)` stays: a speed-up at low variance by a
//!   factor of about `1 + tau ln(1/eps) / (r(y) - V)`, at most a few-fold for the `tau`
//!   run; the slope stays steep (close to the gradient flow's).
//! * **SGD, Adam, samples per prompt** ([`optimizers`]). Exact-gradient SGD is the
//!   flow's Euler scheme: same `t_gamma` in flow time (`steps x lr`) up to `O(lr)`.
//!   RLOO with `k` samples is unbiased: `t_gamma` near the flow's, with a seed-to-seed
//!   spread that shrinks with `k`. Adam with exact gradients normalises each
//!   coordinate, so a rare output's logit grows by about `lr` per step however small its
//!   gradient: like the natural gradient, a slope near 0. Adam with samples sees the
//!   rare output's gradient only in the steps where it is sampled (a fraction about
//!   `k eps`); we expect it slower than exact Adam at low variance and predict no slope.
//! * **Reward scaling, exact against sampled** ([`scaling`]). At `lambda = 0`, SGD on
//!   `c r` with step `lr` is SGD on `r` with step `c lr`, exactly, for exact and RLOO
//!   gradients alike: steps to `t_gamma` fall like `1/c` (slope -1) while `c lr` is
//!   small. The noise scales with `c` too: the crossing sums about `N ∝ 1/c` steps with
//!   drift `∝ c` and noise `∝ c`, so its relative spread grows like `sqrt(c)` (a slope
//!   of +1/2 for the spread of `log steps`) and falls with `k`. Adam cancels a global
//!   scale (up to its epsilon): the same steps for every `c`, exact or sampled (the same
//!   sampler seeds then give the same runs).

pub mod family;
pub mod flows;
pub mod optimizers;
mod plot;
mod report;
pub mod scaling;
pub mod stats;
pub mod sweep;

use std::path::{Path, PathBuf};

use rmteach::report::{Document, Placement};
use serde::Serialize;

use crate::flow::SolverConfig;
use crate::{Result, TheoryError};
use scaling::ScaleSweep;
use sweep::Sweep;

/// The sizes of a levers run.
#[derive(Debug, Clone, Serialize)]
pub struct LeversConfig {
    /// Seed of every instance and sampler.
    pub seed: u64,
    /// Instances of the family (the intervals are over these).
    pub instances: usize,
    /// Sampler seeds per instance in the scaling runs.
    pub seeds: usize,
    /// The discrete step size.
    pub lr: f64,
    /// Samples per prompt of the SGD runs.
    pub ks: Vec<usize>,
    /// Samples per prompt of the sampled Adam run.
    pub adam_k: usize,
    /// The entropy bonuses of the flow runs.
    pub entropies: Vec<f64>,
}

impl Default for LeversConfig {
    fn default() -> Self {
        Self {
            seed: crate::checks::DEFAULT_SEED,
            instances: 16,
            seeds: 16,
            lr: 0.1,
            ks: vec![2, 4, 8],
            adam_k: 4,
            entropies: vec![0.02, 0.1],
        }
    }
}

impl LeversConfig {
    /// The small sizes the tests use (seconds in a debug build).
    pub fn quick() -> Self {
        Self {
            instances: 3,
            seeds: 3,
            ks: vec![2, 8],
            entropies: vec![0.1],
            ..Self::default()
        }
    }
}

/// Everything a levers run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Levers {
    /// Its sizes.
    pub config: LeversConfig,
    /// The gradient flow, the natural-gradient flow, and the gradient flow with each
    /// entropy bonus, across the variance sweep (in this order).
    pub flows: Vec<Sweep>,
    /// SGD and Adam, exact and sampled, across the variance sweep.
    pub optimizers: Vec<Sweep>,
    /// SGD and Adam, exact and sampled, across the reward scales.
    pub scaling: Vec<ScaleSweep>,
}

/// Measures every lever.
pub fn run(cfg: &LeversConfig, solver: &SolverConfig) -> Result<Levers> {
    if cfg.instances < 2 || cfg.seeds < 2 {
        return Err(TheoryError::invalid(
            "instances/seeds",
            "intervals need at least 2 instances and 2 seeds",
        ));
    }
    let flows = flows::flow_sweeps(cfg, solver)?;
    let optimizers = optimizers::optimizer_sweeps(cfg, &flows[0])?;
    let scaling = scaling::scaling_sweeps(cfg, solver)?;
    Ok(Levers {
        config: cfg.clone(),
        flows,
        optimizers,
        scaling,
    })
}

impl Levers {
    /// The report as blocks (`levers.md` is its rendering in place).
    pub fn document(&self) -> Document {
        report::document(self)
    }

    /// Writes `levers.md`, `levers.json` and the figures into `dir`; returns the files.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        let io = |path: &Path, source| TheoryError::Io {
            path: path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let mut files = plot::render(self, dir)?;
        let md = dir.join("levers.md");
        let text = self.document().render(Placement::default());
        std::fs::write(&md, text).map_err(|e| io(&md, e))?;
        let json = dir.join("levers.json");
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| io(&json, std::io::Error::other(e.to_string())))?;
        std::fs::write(&json, text).map_err(|e| io(&json, e))?;
        files.push(md);
        files.push(json);
        Ok(files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_levers_measure_every_method_and_write_the_report() {
        let cfg = LeversConfig::quick();
        let l = run(&cfg, &SolverConfig::default()).unwrap();
        // PG, NPG and one entropy bonus; SGD exact + 2 k's + 2 Adams; the same scaled.
        assert_eq!(l.flows.len(), 3);
        assert_eq!(l.optimizers.len(), 5);
        assert_eq!(l.scaling.len(), 5);
        // The runs, not the report, carry the claims: exact SGD is the flow's Euler
        // scheme (lr 0.1), and Adam's steps ignore the reward scale.
        let (pg, sgd) = (&l.flows[0], &l.optimizers[0]);
        for r in &pg.runs {
            let (t, s) = (r.t_gamma.unwrap(), sgd.t(r.instance, r.beta).unwrap());
            assert!((s - t).abs() <= 0.1 * t + 0.2, "{r:?}: SGD {s}");
        }
        let adam = &l.scaling[3];
        assert_eq!(adam.method, "Adam, exact");
        for inst in &adam.steps {
            assert!(inst.iter().all(|c| c == &inst[0]), "{inst:?}");
        }
        let dir = std::env::temp_dir().join(format!("rmteach-levers-{}", std::process::id()));
        let files = l.write(&dir).unwrap();
        assert_eq!(files.len(), 8);
        let md = std::fs::read_to_string(dir.join("levers.md")).unwrap();
        for section in [
            "## Natural gradient",
            "## The algorithms",
            "## Reward scaling",
        ] {
            assert!(md.contains(section), "{section}");
        }
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("levers.json")).unwrap())
                .unwrap();
        assert_eq!(json["flows"][1]["method"], "NPG flow");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn too_few_instances_for_an_interval_are_refused() {
        let cfg = LeversConfig {
            instances: 1,
            ..LeversConfig::quick()
        };
        let e = run(&cfg, &SolverConfig::default()).unwrap_err().to_string();
        assert!(e.contains("instances"), "{e}");
    }
}
