//! Proposition 4: sufficient conditions for a fast ground-truth increase (tabular).
//!
//! Instances are built to meet conditions (i)-(iii): a set `Y+` of outputs with high
//! ground truth whose proxy rewards beat `V_RM(0)` and nearly agree, the remaining
//! outputs' proxy rewards below `V_RM(0)` (so `Y_bad` is empty) or one "bad" output
//! above it carrying at most half the mass (iii) allows; `lambda` at most (ii)'s limit.

use rand::Rng;
use rayon::prelude::*;

use super::sample::{logits, pick, rng};
use super::{CheckConfig, CheckReport, Tally};
use crate::bounds::{prop4_terms, Prop4Terms};
use crate::instance::TabularInstance;
use rmteach::metrics::{expected_reward, softmax};

/// A Proposition 4 instance with its constants.
pub(crate) struct Case {
    pub(crate) inst: TabularInstance,
    pub(crate) y_plus: Vec<usize>,
    pub(crate) terms: Prop4Terms,
}

/// Draws instances until one meets (i)-(iii) (at most `tries` draws).
pub(crate) fn draw<R: Rng>(rng: &mut R, tries: usize) -> Option<Case> {
    for _ in 0..tries {
        let n = pick(rng, &[3, 4, 6, 10]);
        let k = pick(rng, &[1, 1, 2]).min(n - 1);
        let with_bad = rng.random_bool(0.5) && n - k >= 2;
        // Y+ = the first k outputs: high ground truth, high and nearly equal proxy reward.
        let mut r_g: Vec<f64> = (0..n)
            .map(|y| {
                if y < k {
                    rng.random_range(0.7..=1.0)
                } else {
                    rng.random_range(-1.0..=0.3)
                }
            })
            .collect();
        let top = rng.random_range(0.6..=1.0);
        let mut r_rm: Vec<f64> = (0..n)
            .map(|y| {
                if y < k {
                    top - rng.random_range(0.0..=0.02)
                } else {
                    rng.random_range(-1.0..=-0.6)
                }
            })
            .collect();
        // pi_0: Y+ gets a substantial share, the rest random.
        let mut theta = logits(rng, n, 1.0);
        let boost = rng.random_range(0.5..=3.0);
        theta.iter_mut().take(k).for_each(|t| *t += boost);
        if with_bad {
            // One output whose proxy reward beats V_RM(0) although it is not in Y+.
            r_rm[n - 1] = 0.5;
            r_g[n - 1] = -1.0;
        }
        let mut pi0 = softmax(&theta);
        let gamma_frac = rng.random_range(0.1..=0.6);
        let lambda_frac = pick(rng, &[0.0, 0.5, 1.0]);
        let build = |pi0: &[f64]| -> Option<(TabularInstance, Prop4Terms)> {
            let v_g0 = expected_reward(pi0, &r_g).ok()?;
            let min_plus = r_g[..k].iter().copied().fold(f64::INFINITY, f64::min);
            let gamma = gamma_frac * (min_plus - v_g0);
            if gamma <= 0.0 {
                return None;
            }
            let terms = prop4_terms(pi0, &r_g, &r_rm, &(0..k).collect::<Vec<_>>(), gamma, 1);
            Some((
                TabularInstance {
                    num_prompts: 1,
                    lambda: lambda_frac * terms.lambda_max.max(0.0),
                    gamma,
                    logits: None,
                    probs: Some(pi0.to_vec()),
                    r_rm: r_rm.clone(),
                    r_g: r_g.clone(),
                    horizon: 0.0,
                },
                terms,
            ))
        };
        if with_bad {
            // Give the bad output half the mass (iii) allows, then re-check everything.
            let (_, t) = build(&pi0)?;
            let target = 0.5 * t.bad_mass_max;
            if target.partial_cmp(&1e-300) != Some(std::cmp::Ordering::Greater) {
                continue;
            }
            let rest: f64 = pi0[..n - 1].iter().sum();
            pi0.iter_mut()
                .take(n - 1)
                .for_each(|p| *p *= (1.0 - target) / rest);
            pi0[n - 1] = target;
        }
        let Some((mut inst, terms)) = build(&pi0) else {
            continue;
        };
        let v_rm0 = expected_reward(&pi0, &r_rm).unwrap_or(f64::NAN);
        let bad_mass: f64 = (k..n).filter(|&y| r_rm[y] > v_rm0).map(|y| pi0[y]).sum();
        let y_plus_ok = (0..k).all(|y| r_g[y] > v_g0(&pi0, &r_g) + inst.gamma && r_rm[y] > v_rm0);
        if y_plus_ok
            && terms.delta > 0.0
            && inst.lambda <= terms.lambda_max
            && bad_mass <= terms.bad_mass_max
            && terms.rho < 1.0
        {
            inst.horizon = 4.0 * terms.time_bound;
            return Some(Case {
                inst,
                y_plus: (0..k).collect(),
                terms,
            });
        }
    }
    None
}

fn v_g0(pi0: &[f64], r_g: &[f64]) -> f64 {
    expected_reward(pi0, r_g).unwrap_or(f64::NAN)
}

/// Runs the check.
pub fn run(cfg: &CheckConfig) -> CheckReport {
    let mut tally = Tally::new(
        "Proposition 4",
        "tabular, under (i)-(iii): t_gamma(r_G) <= 4|S||Y+| / ((1-rho) delta) (1/pi_0(Y+) - 1/rho)",
    );
    let mut rng = rng(cfg.seed, 4);
    let cases: Vec<Case> = (0..cfg.size(16, 300))
        .filter_map(|_| draw(&mut rng, 1000))
        .collect();
    let with_bad = cases
        .iter()
        .filter(|c| c.inst.r_rm.iter().filter(|&&r| r == 0.5).count() > 0)
        .count();
    let results: Vec<_> = cases
        .par_iter()
        .map(|c| c.inst.run(&cfg.solver, false))
        .collect();
    for (i, (case, res)) in cases.iter().zip(results).enumerate() {
        match res {
            Ok(r) => tally.upper(r.t_gamma_g.lower_bound(), case.terms.time_bound, || {
                format!(
                    "#{i}: Y+ = {:?}, rho = {}, delta = {}, t_gamma {}: {}",
                    case.y_plus,
                    case.terms.rho,
                    case.terms.delta,
                    r.t_gamma_g,
                    serde_json::to_string(&case.inst).unwrap_or_default()
                )
            }),
            Err(e) => tally.require(false, || format!("#{i}: integration failed: {e}")),
        }
    }
    tally.note(format!("{} instances met (i)-(iii); {with_bad} of them with a non-empty Y_bad at half the mass (iii) allows", cases.len()));
    tally.finish()
}
