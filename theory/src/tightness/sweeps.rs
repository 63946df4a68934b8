//! Slope claims on sweeps that are not identities of time rescaling.
//!
//! The order statements' own sweeps in Proposition 3 and Theorem 4 scale the reward
//! (`r_RM = c r_G`, `lambda = 0`), which rescales time exactly: their slope -1/2 is an
//! integrator sanity check, not evidence about the bound. Here the variance goes to
//! zero by concentrating `pi_0` on a low-reward output instead (`lambda = 0`, rewards
//! fixed): `pi_0(others) = eps`, `Var_pi0 ~ eps`, and the flow has to grow the other
//! outputs from mass `eps`. A lower bound `t_gamma >= C Var^(-a)` then claims
//! `t_gamma` grows at least as fast as `Var^(-a)` when `Var -> 0`: the fitted slope of
//! `log t_gamma` against `log Var` is at most `-a` (a = 1/2 for Proposition 3, 1/3 for
//! Theorem 4). It may be steeper; it must not be flatter.

use crate::checks::{CheckConfig, Slope};
use crate::instance::TabularInstance;
use crate::measure::sample::{
    logits as sample_logits, rewards as sample_rewards_in, rng as sample_rng,
};
use crate::policy::{AutoregressivePolicy, PrefixTable};

/// The extra slope claims of check `key` (empty for checks without one).
pub fn sweeps(key: &str, cfg: &CheckConfig) -> Vec<Slope> {
    match key {
        "prop3" => vec![concentrating(cfg, Target::Prop3)],
        "thm4" => vec![concentrating(cfg, Target::Thm4)],
        _ => Vec::new(),
    }
}

#[derive(Clone, Copy)]
enum Target {
    Prop3,
    Thm4,
}

/// `t_gamma(r_RM)` (`r_RM = r_G`) against `Var_pi0[r_RM]` as `pi_0` concentrates.
fn concentrating(cfg: &CheckConfig, target: Target) -> Slope {
    let n = 4;
    let mut rng = sample_rng(cfg.seed, 0x5357);
    let r = sample_rewards_in(&mut rng, n, -1.0, 1.0);
    let base = sample_logits(&mut rng, n, 0.5);
    let low = (0..n).fold(0, |b, i| if r[i] < r[b] { i } else { b });
    let top = r.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let gamma = 0.25 * (top - r[low]);
    let points = cfg.size(4, 6);
    let (mut vars, mut times) = (Vec::new(), Vec::new());
    for k in 0..points {
        let eps = 10f64.powf(-1.0 - 2.0 * k as f64 / (points - 1) as f64);
        // pi_0(low) = 1 - eps, the others keep their relative weights.
        let others = base
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != low)
            .map(|(_, v)| v.exp())
            .sum::<f64>()
            .ln();
        let mut theta0 = base.clone();
        theta0[low] = ((1.0 - eps) / eps).ln() + others;
        let horizon = 1e3 / eps;
        let measured = match target {
            Target::Prop3 => TabularInstance {
                num_prompts: 1,
                lambda: 0.0,
                gamma,
                logits: Some(theta0.clone()),
                probs: None,
                r_rm: r.clone(),
                r_g: r.clone(),
                horizon,
            }
            .run(&cfg.solver, false)
            .ok()
            .and_then(|res| res.t_gamma_rm.time().map(|t| (res.var_rm0, t))),
            Target::Thm4 => {
                let policy = AutoregressivePolicy::new(PrefixTable::new(n, 1, 1), 1, 1);
                // `measure` takes gamma as half the room; the room here is top - V(0).
                crate::measure::autoregressive::measure(
                    &policy,
                    &theta0,
                    std::slice::from_ref(&r),
                    std::slice::from_ref(&r),
                    0.0,
                    0,
                    horizon,
                    &cfg.solver,
                )
                .ok()
                .and_then(|m| m.t_gamma[1].time().map(|t| (m.mean_var, t)))
            }
        };
        if let Some((v, t)) = measured {
            vars.push(v);
            times.push(t);
        }
    }
    let (what, predicted) = match target {
        Target::Prop3 => (
            "non-identity sweep: log t_gamma(r_RM) vs log Var as pi_0 concentrates on the lowest-reward output \
             (lambda = 0, r_RM = r_G fixed, |Y| = 4, pi_0(others) = 1e-1..1e-3); the bound claims slope <= -1/2",
            -0.5,
        ),
        Target::Thm4 => (
            "non-identity sweep: log t_gamma(r_RM) vs log E Var as pi_0 concentrates on the lowest-reward output \
             (PrefixTable |V| = 4, L = 1, lambda = 0, pi_0(others) = 1e-1..1e-3); the bound claims slope <= -1/3",
            -1.0 / 3.0,
        ),
    };
    let mut s = Slope::fit(what, &vars, &times, predicted, None).at_most();
    if vars.len() < points {
        s.what = format!(
            "{} ({} of {points} points crossed inside the horizon 1e3/eps)",
            s.what,
            vars.len()
        );
    }
    s
}
