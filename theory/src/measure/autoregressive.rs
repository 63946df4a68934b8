//! Theorem 4's measurement on an autoregressive policy: `t_gamma` of one prompt for
//! `r_G` and `r_RM` with the bound for each (`J` tracked along the trajectory when the
//! policy's Jacobian is not constant). Read by its check, the tightness search and the
//! figures.

use crate::bounds::thm4_time_bound;
use crate::flow::{integrate_with_events, Crossing, SolverConfig, Threshold, WithRates};
use crate::objective::KlObjective;
use crate::policy::Policy;
use crate::Result;
use rmteach::metrics::reward_variance;

/// What one integration measured.
#[derive(Debug, Clone)]
pub(crate) struct Measured {
    /// `t_gamma` for `r_G` and for `r_RM`.
    pub t_gamma: [Crossing; 2],
    /// `gamma` for `r_G` and for `r_RM`.
    pub gamma: [f64; 2],
    /// Theorem 4's lower bound for `r_G` and for `r_RM`.
    pub bound: [f64; 2],
    /// `J_{t_gamma}` used in each bound.
    pub jac: [f64; 2],
    /// `E_{x'~S} Var_{pi_0(.|x')}[r_RM]`.
    pub mean_var: f64,
    /// The integration horizon.
    pub horizon: f64,
}

/// `max_{x'} J_{x'}(theta)`: the sup of the Jacobian norm over prompts and prefixes.
pub(crate) fn sup_jacobian<P: Policy>(policy: &P, theta: &[f64]) -> f64 {
    (0..policy.num_prompts())
        .map(|x| policy.jacobian_norm(theta, x))
        .fold(0.0, f64::max)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(p, r)| p * r).sum()
}

/// Integrates the flow trained on `r_rm` from `theta0` and measures `t_gamma` of prompt
/// `x` for `r_g` and `r_rm`, with Theorem 4's bound for each. `horizon_hint` is a time
/// the caller expects the crossings by; the horizon is at least 4 times either bound.
#[allow(clippy::too_many_arguments)]
pub(crate) fn measure<P: Policy>(
    policy: &P,
    theta0: &[f64],
    r_g: &[Vec<f64>],
    r_rm: &[Vec<f64>],
    lambda: f64,
    x: usize,
    horizon_hint: f64,
    solver: &SolverConfig,
) -> Result<Measured> {
    let objective = KlObjective::new(policy, r_rm.to_vec(), lambda, theta0)?;
    let len = policy.seq_len();
    let mut mean_var = 0.0;
    for (xp, r) in r_rm.iter().enumerate() {
        mean_var += reward_variance(&policy.probs(theta0, xp), r)?;
    }
    mean_var /= policy.num_prompts() as f64;
    let pi0 = policy.probs(theta0, x);
    let rewards = [&r_g[x], &r_rm[x]];
    let v0 = rewards.map(|r| dot(&pi0, r));
    let gamma = [0, 1]
        .map(|k| 0.5 * (rewards[k].iter().copied().fold(f64::NEG_INFINITY, f64::max) - v0[k]));
    let constant = policy.jacobian_is_constant();
    let jac0 = sup_jacobian(policy, theta0);
    // With J_{t_gamma} >= J(0) the bound can only shrink, so 4 bound(J(0)) is enough.
    let bound0 = [0, 1].map(|k| thm4_time_bound(gamma[k], lambda, len, jac0, mean_var));
    let horizon = horizon_hint.max(4.0 * bound0[0].max(bound0[1]));
    let observe = |theta: &[f64]| -> Vec<f64> {
        let p = policy.probs(theta, x);
        let mut o = vec![dot(&p, &r_g[x]), dot(&p, &r_rm[x])];
        if !constant {
            o.push(sup_jacobian(policy, theta));
        }
        o
    };
    // Exact slopes d/dt E_pi r at step ends: a crossing inside a step is not missed.
    let with_rates = |theta: &[f64], f: &[f64]| {
        let rates = rewards
            .iter()
            .map(|r| policy.expected_reward_rate(theta, x, r, f))
            .collect();
        (observe(theta), rates)
    };
    let thresholds = [0, 1].map(|k| Threshold {
        observable: k,
        level: v0[k] + gamma[k],
    });
    // Tracking J along the way needs the whole recorded trajectory.
    let out = integrate_with_events(
        &objective,
        theta0,
        horizon,
        &WithRates(&observe, with_rates),
        &thresholds,
        !constant,
        solver,
    )?;
    let jac = [0, 1].map(|k| {
        if constant {
            jac0
        } else {
            let until = out.crossings[k].lower_bound();
            out.trajectory
                .times
                .iter()
                .zip(&out.trajectory.observations)
                .filter(|(t, _)| **t <= until)
                .map(|(_, o)| o[2])
                .fold(jac0, f64::max)
        }
    });
    let bound = [0, 1].map(|k| thm4_time_bound(gamma[k], lambda, len, jac[k], mean_var));
    Ok(Measured {
        t_gamma: [out.crossings[0], out.crossings[1]],
        gamma,
        bound,
        jac,
        mean_var,
        horizon,
    })
}
