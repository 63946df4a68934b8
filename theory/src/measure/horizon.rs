//! Horizons that grow until a flow's crossing is inside them.
//!
//! A sweep point whose `t_gamma` lies beyond its horizon carries no time for a slope
//! fit. [`run_growing`] reruns such a tabular flow with the horizon multiplied by
//! [`GROWTH`], at most [`MAX_GROWTHS`] times. Whether a crossing that is still missing
//! is a failure is decided by [`crossing_guaranteed`]: a tabular flow converges to a
//! known limit policy, and when that limit's `E r_G` is above the level the crossing
//! must exist (by continuity), so a missing one is an error to report; otherwise the
//! flow may settle below the level (`t_gamma = inf`), and the point is left out of the
//! fit with a note.

use crate::flow::SolverConfig;
use crate::instance::{TabularFlowResult, TabularInstance};
use crate::Result;
use rmteach::metrics::softmax;

/// Factor by which a horizon grows per rerun.
pub(crate) const GROWTH: f64 = 8.0;
/// Most reruns of one flow (the horizon grows by at most `GROWTH^MAX_GROWTHS = 32768`).
pub(crate) const MAX_GROWTHS: usize = 5;

/// Runs `inst`; while `t_gamma(r_G)` is beyond the horizon, reruns it with the horizon
/// `GROWTH` times longer (at most `MAX_GROWTHS` times). Returns the last result and the
/// horizon it ran to.
pub(crate) fn run_growing(
    inst: &TabularInstance,
    solver: &SolverConfig,
) -> Result<(TabularFlowResult, f64)> {
    let mut inst = inst.clone();
    let mut res = inst.run(solver, false)?;
    for _ in 0..MAX_GROWTHS {
        if res.t_gamma_g.time().is_some() {
            break;
        }
        inst.horizon *= GROWTH;
        res = inst.run(solver, false)?;
    }
    Ok((res, inst.horizon))
}

/// The policy a tabular flow trained on `r_rm` converges to from `pi_0`: for
/// `lambda > 0` the maximiser of the objective, `pi* ∝ pi_0 exp(r_RM / lambda)`; for
/// `lambda = 0`, `pi_0` restricted to `argmax r_RM` (renormalised).
pub(crate) fn limit_policy(pi0: &[f64], r_rm: &[f64], lambda: f64) -> Vec<f64> {
    if lambda > 0.0 {
        let logits: Vec<f64> = pi0
            .iter()
            .zip(r_rm)
            .map(|(p, r)| p.ln() + r / lambda)
            .collect();
        softmax(&logits)
    } else {
        let top = r_rm.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mass: Vec<f64> = pi0
            .iter()
            .zip(r_rm)
            .map(|(p, r)| if *r == top { *p } else { 0.0 })
            .collect();
        let total: f64 = mass.iter().sum();
        mass.iter().map(|m| m / total).collect()
    }
}

/// Whether the flow of `inst` must reach `E r_G >= E_0 r_G + gamma` at some finite time:
/// its limit policy ([`limit_policy`]) lies above the level by more than `1e-9`.
pub(crate) fn crossing_guaranteed(inst: &TabularInstance) -> bool {
    let pi0 = inst.initial_probs();
    let v0: f64 = pi0.iter().zip(&inst.r_g).map(|(p, r)| p * r).sum();
    let limit = limit_policy(&pi0, &inst.r_rm, inst.lambda);
    let v_end: f64 = limit.iter().zip(&inst.r_g).map(|(p, r)| p * r).sum();
    v_end > v0 + inst.gamma + 1e-9
}
