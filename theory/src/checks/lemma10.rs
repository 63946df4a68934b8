//! Lemma 10: `pi_T(A|x) <= pi_0(A|x) exp((4 + 2 lambda ln(1/min_y pi_0(y|x))) T/|S|)`.
//!
//! Both sides are additive over `A`'s elements with the same factor, so the bound holds
//! for every `A` iff it holds for every singleton: we check the worst singleton at every
//! accepted step of the flow, in exponent form `ln(pi_T(y)/pi_0(y)) <= (4 + ...) T/|S|`
//! (the same inequality; its margin is the ratio of the exponents, which is not 1 at
//! `T -> 0` by construction as the ratio `pi_T / bound` is).

use super::{CheckConfig, CheckReport, Tally};
use crate::bounds::lemma10_mass_bound;
use crate::flow::integrate_with_events;
use crate::measure::sample::{logits, pick, rewards, rng};
use crate::objective::KlObjective;
use crate::policy::TabularPolicy;
use rmteach::metrics::softmax;

/// Runs the check.
pub fn run(cfg: &CheckConfig) -> CheckReport {
    let mut tally = Tally::new(
        "Lemma 10",
        "tabular: pi_T(A) <= pi_0(A) exp((4 + 2 lambda ln(1/min pi_0)) T/|S|)",
    );
    let mut rng = rng(cfg.seed, 10);
    let mut tightest: f64 = 0.0;
    for i in 0..cfg.size(20, 300) {
        let n = pick(&mut rng, &[2, 3, 5, 10, 20]);
        let s = pick(&mut rng, &[1, 4]);
        let lambda = pick(&mut rng, &[0.0, 0.05, 0.5, 2.0]);
        let scale = pick(&mut rng, &[0.5, 2.0, 5.0]);
        let theta0 = logits(&mut rng, n, scale);
        let r = rewards(&mut rng, n, -1.0, 1.0);
        let horizon = pick(&mut rng, &[1.0, 10.0, 100.0]);
        let policy = TabularPolicy::new(n, 1);
        let obj = KlObjective::new(&policy, vec![r.clone()], lambda, &theta0)
            .and_then(|o| o.with_total_prompts(s))
            .expect("valid instance");
        let observe = |theta: &[f64]| softmax(theta);
        let out =
            match integrate_with_events(&obj, &theta0, horizon, &observe, &[], true, &cfg.solver) {
                Ok(o) => o,
                Err(e) => {
                    tally.require(false, || format!("#{i}: integration failed: {e}"));
                    continue;
                }
            };
        let pi0 = softmax(&theta0);
        let min_pi0 = pi0.iter().copied().fold(f64::INFINITY, f64::min);
        // The bound in exponent form, ln(pi_T(y)/pi_0(y)) <= rate T/|S|: the same
        // inequality, but its margin rate T / ln(pi_T/pi_0) does not tend to 1 as T -> 0
        // (the plain ratio pi_T / bound does, whatever the constant).
        let rate = (lemma10_mass_bound(1.0, lambda, min_pi0, 1.0, s)).ln();
        // The worst (step, output) of this trajectory: largest ln(pi_T(y)/pi_0(y)) / (rate T).
        let (mut worst, mut at) = (f64::NEG_INFINITY, (0.0, 0usize, 0.0, 0.0));
        // Skip t = 0, where both sides are 0.
        for (t, pi_t) in out
            .trajectory
            .times
            .iter()
            .zip(&out.trajectory.observations)
            .skip(1)
        {
            for (y, (p, p0)) in pi_t.iter().zip(&pi0).enumerate() {
                let (grow, allowed) = ((p / p0).ln(), rate * t);
                if grow / allowed > worst {
                    worst = grow / allowed;
                    at = (*t, y, grow, allowed);
                }
            }
        }
        tightest = tightest.max(worst);
        let (t, y, grow, allowed) = at;
        if !super::exceeds(grow, 0.0) {
            // No output gained mass (a stationary flow): the bound holds trivially.
            tally.require(true, String::new);
            continue;
        }
        // 1e-12: relative rounding of pi_T(y) / pi_0(y).
        tally.upper(grow, allowed + 1e-12, || {
            format!(
                "#{i}: |Y|={n}, |S|={s}, lambda={lambda}, T={t}, y={y}, pi_T(y)/pi_0(y) = e^{grow:.6e} > \
                 e^{allowed:.6e}, theta0={theta0:?}, r={r:?}"
            )
        });
    }
    tally.note(format!(
        "largest ln(pi_T(y)/pi_0(y)) / ((4 + 2 lambda ln(1/min pi_0)) T/|S|) over all steps T > 0 and outputs: \
         {tightest:.4} (the margin is taken on the exponent: pi_T/bound is 1 at T = 0 by construction)"
    ));
    tally.finish()
}
