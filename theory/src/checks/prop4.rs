//! Proposition 4: sufficient conditions for a fast ground-truth increase (tabular).
//!
//! Instances are drawn over a broad family and kept when they meet (i)-(iii):
//! `|Y| in {3, 4, 6, 10, 16}`, `|Y+|` uniform in `1..=min(5, |Y|-1)`, `|S| in {1, 2, 5}`;
//! on `Y+` high ground truth (`[0.3, 1]`) and a proxy reward near a common top (spread
//! `0 .. 0.1`); outside `Y+` both rewards uniform over the whole range `[-1, 1]`. Outputs
//! outside `Y+` whose proxy reward beats `V_RM(0)` form `Y_bad`; when it is non-empty its
//! mass is set to a fraction (`0.1`, `0.5` or `0.9`) of what (iii) allows (repeated until
//! `Y_bad` is stable, since moving mass moves `V_RM(0)`), and every condition is then
//! re-checked from scratch. `lambda` is `0`, half, or all of (ii)'s limit.

use rand::Rng;
use rayon::prelude::*;

use super::{CheckConfig, CheckReport, Tally};
use crate::bounds::{prop4_terms, Prop4Terms};
use crate::instance::TabularInstance;
use crate::measure::sample::{logits, pick, rng};
use rmteach::metrics::{expected_reward, softmax};

/// A Proposition 4 instance with its constants.
pub(crate) struct Case {
    pub(crate) inst: TabularInstance,
    pub(crate) y_plus: Vec<usize>,
    pub(crate) terms: Prop4Terms,
    /// `|Y_bad|`.
    bad: usize,
}

/// `Y_bad = {y not in Y+ : r_RM(y) > V_RM(0)}` (with `Y+ = 0..k`).
fn y_bad(pi0: &[f64], r_rm: &[f64], k: usize) -> Vec<usize> {
    let v = v_g0(pi0, r_rm);
    (k..r_rm.len()).filter(|&y| r_rm[y] > v).collect()
}

/// Draws instances until one meets (i)-(iii) (at most `tries` draws).
pub(crate) fn draw<R: Rng>(rng: &mut R, tries: usize) -> Option<Case> {
    'draws: for _ in 0..tries {
        let n = pick(rng, &[3, 4, 6, 10, 16]);
        let k = rng.random_range(1..=5.min(n - 1));
        let num_prompts = pick(rng, &[1, 2, 5]);
        let r_g: Vec<f64> = (0..n)
            .map(|y| {
                if y < k {
                    rng.random_range(0.3..=1.0)
                } else {
                    rng.random_range(-1.0..=1.0)
                }
            })
            .collect();
        let top = rng.random_range(0.3..=1.0);
        let spread = pick(rng, &[0.0, 0.005, 0.02, 0.1]);
        let r_rm: Vec<f64> = (0..n)
            .map(|y| {
                if y < k {
                    top - rng.random_range(0.0..=1.0) * spread
                } else {
                    rng.random_range(-1.0..=1.0)
                }
            })
            .collect();
        let mut theta = logits(rng, n, 1.0);
        let boost = rng.random_range(0.5..=4.0);
        theta.iter_mut().take(k).for_each(|t| *t += boost);
        let mut pi0 = softmax(&theta);
        let gamma_frac = rng.random_range(0.1..=0.6);
        let lambda_frac = pick(rng, &[0.0, 0.5, 1.0]);
        let bad_frac = pick(rng, &[0.1, 0.5, 0.9]);
        let y_plus: Vec<usize> = (0..k).collect();
        let terms_at = |pi0: &[f64]| -> Option<(f64, Prop4Terms)> {
            let v_g0 = expected_reward(pi0, &r_g).ok()?;
            let min_plus = r_g[..k].iter().copied().fold(f64::INFINITY, f64::min);
            let gamma = gamma_frac * (min_plus - v_g0);
            (gamma > 0.0).then(|| {
                (
                    gamma,
                    prop4_terms(pi0, &r_g, &r_rm, &y_plus, gamma, num_prompts),
                )
            })
        };
        // Give Y_bad the chosen fraction of the mass (iii) allows, until Y_bad is stable.
        let mut settled = false;
        for _ in 0..6 {
            let bad = y_bad(&pi0, &r_rm, k);
            let mass: f64 = bad.iter().map(|&y| pi0[y]).sum();
            let Some((_, t)) = terms_at(&pi0) else {
                continue 'draws;
            };
            let target = bad_frac * t.bad_mass_max;
            if bad.is_empty() || (mass <= t.bad_mass_max && mass >= 0.5 * target) {
                settled = true;
                break;
            }
            if target.is_nan() || target <= 1e-300 {
                continue 'draws;
            }
            let good = 1.0 - mass;
            for (y, p) in pi0.iter_mut().enumerate() {
                *p *= if bad.contains(&y) {
                    target / mass
                } else {
                    (1.0 - target) / good
                };
            }
        }
        if !settled {
            continue;
        }
        let Some((gamma, terms)) = terms_at(&pi0) else {
            continue;
        };
        let inst = TabularInstance {
            num_prompts,
            lambda: lambda_frac * terms.lambda_max.max(0.0),
            gamma,
            logits: None,
            probs: Some(pi0.clone()),
            r_rm: r_rm.clone(),
            r_g: r_g.clone(),
            horizon: 4.0 * terms.time_bound,
        };
        // Every condition, recomputed from the final pi_0.
        let v_rm0 = v_g0(&pi0, &r_rm);
        let bad = y_bad(&pi0, &r_rm, k);
        let bad_mass: f64 = bad.iter().map(|&y| pi0[y]).sum();
        let y_plus_ok = (0..k).all(|y| r_g[y] > v_g0(&pi0, &r_g) + gamma && r_rm[y] > v_rm0);
        if y_plus_ok
            && terms.delta > 0.0
            && inst.lambda <= terms.lambda_max
            && bad_mass <= terms.bad_mass_max
            && terms.rho < 1.0
            && terms.time_bound.is_finite()
            && inst.validate().is_ok()
        {
            return Some(Case {
                inst,
                y_plus,
                terms,
                bad: bad.len(),
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
    let with_bad = cases.iter().filter(|c| c.bad > 0).count();
    let by_size: Vec<usize> = (1..=5)
        .map(|k| cases.iter().filter(|c| c.y_plus.len() == k).count())
        .collect();
    let multi_prompt = cases.iter().filter(|c| c.inst.num_prompts > 1).count();
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
    tally.note(format!(
        "{} instances met (i)-(iii): |Y+| = 1..5 in {by_size:?} of them, {multi_prompt} with |S| > 1, {with_bad} with a non-empty \
         Y_bad (its mass at most what (iii) allows, aimed at 0.1-0.9 of it); rewards outside Y+ uniform in [-1, 1]",
        cases.len()
    ));
    tally.finish()
}
