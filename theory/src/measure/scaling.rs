//! Proposition 3's reward-scaling sweep (`r_RM = c r_G`, `lambda = 0`), read by its
//! check and by the figures.

use rayon::prelude::*;

use super::sample::{logits, rewards, rng};
use crate::instance::TabularInstance;

/// One point of the reward-scaling sweep: `r_RM = c r_G`, `lambda = 0`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScalingPoint {
    /// The scale `c`.
    pub c: f64,
    /// `Var_{pi_0}[r_RM]`.
    pub var: f64,
    /// Proposition 3's bound.
    pub bound: f64,
    /// `t_gamma(r_G)`.
    pub t_gamma: crate::flow::Crossing,
}

/// With `lambda = 0`, training on `c * r` is the flow of `r` with time scaled by `1/c`, so
/// `t_gamma(r_G) ∝ 1/c ∝ Var^(-1/2)`: the exponent of the bound is attained.
/// `points + 1` scales `c = 10^(-k/2)`.
pub(crate) fn scaling_sweep(
    seed: u64,
    points: usize,
    solver: &crate::flow::SolverConfig,
) -> Vec<crate::Result<ScalingPoint>> {
    let mut rng = rng(seed, 33);
    let n = 8;
    let base = rewards(&mut rng, n, -1.0, 1.0);
    let theta0 = logits(&mut rng, n, 1.0);
    let v0 = rmteach::metrics::expected_reward(&rmteach::metrics::softmax(&theta0), &base)
        .unwrap_or(0.0);
    let gamma = 0.5 * (base.iter().copied().fold(f64::NEG_INFINITY, f64::max) - v0);
    let cs: Vec<f64> = (0..=points).map(|k| 10f64.powf(-0.5 * k as f64)).collect();
    cs.par_iter()
        .map(|&c| {
            let inst = TabularInstance {
                num_prompts: 1,
                lambda: 0.0,
                gamma,
                logits: Some(theta0.clone()),
                probs: None,
                r_rm: base.iter().map(|r| c * r).collect(),
                r_g: base.clone(),
                horizon: 100.0 / c,
            };
            // The horizon grows until the crossing is inside it (it must exist: at
            // lambda = 0 the flow converges to argmax r_RM = argmax r_G).
            let (r, _) = super::horizon::run_growing(&inst, solver)?;
            Ok(ScalingPoint {
                c,
                var: r.var_rm0,
                bound: r.prop3_bound_g,
                t_gamma: r.t_gamma_g,
            })
        })
        .collect()
}
