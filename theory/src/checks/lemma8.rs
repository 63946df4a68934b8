//! Lemma 8: `||grad_{theta[:,x]} phi(theta;x)||_1 <= sqrt(Var_{y~pi}[r_KL(x,y;theta)])` for
//! tabular policies, at random parameters, rewards and KL coefficients.

use super::{CheckConfig, CheckReport, Tally};
use crate::bounds::lemma8_gradient_bound;
use crate::measure::sample::{logits, pick, rewards, rng};
use crate::objective::KlObjective;
use crate::policy::TabularPolicy;
use rmteach::metrics::reward_variance;

/// Runs the check.
pub fn run(cfg: &CheckConfig) -> CheckReport {
    let mut tally = Tally::new(
        "Lemma 8",
        "tabular: ||grad phi(theta;x)||_1 <= sqrt(Var_pi[r_KL])",
    );
    let mut rng = rng(cfg.seed, 8);
    let mut worst_ratio: f64 = 0.0;
    for i in 0..cfg.size(300, 20_000) {
        let n = pick(&mut rng, &[2, 3, 5, 10, 30, 100]);
        let lambda = pick(&mut rng, &[0.0, 0.01, 0.1, 1.0, 10.0]);
        let scale = pick(&mut rng, &[0.1, 1.0, 3.0, 10.0]);
        let theta0 = logits(&mut rng, n, scale);
        let step_scale = pick(&mut rng, &[0.0, 0.1, 1.0, 5.0]);
        let step = logits(&mut rng, n, step_scale);
        let theta: Vec<f64> = theta0.iter().zip(&step).map(|(a, b)| a + b).collect();
        let spread = pick(&mut rng, &[1.0, 0.1, 1e-3]);
        let r = rewards(&mut rng, n, -spread, spread);
        let policy = TabularPolicy::new(n, 1);
        let obj =
            KlObjective::new(&policy, vec![r.clone()], lambda, &theta0).expect("valid instance");
        let st = obj.prompt_state(&theta, 0);
        let var = reward_variance(&st.probs, &st.kl_reward).expect("valid distribution");
        let norm: f64 = obj.prompt_gradient(&theta, 0).iter().map(|g| g.abs()).sum();
        let bound = lemma8_gradient_bound(var);
        if bound > 0.0 {
            worst_ratio = worst_ratio.max(norm / bound);
        }
        // Floating-point slack: both sides are sums of |Y| terms of size ~1.
        let slack = 1e-14 * n as f64;
        tally.upper(norm, bound + slack, || {
            format!("#{i}: |Y|={n}, lambda={lambda}, theta={theta:?}, theta0={theta0:?}, r={r:?}")
        });
    }
    tally.note(format!(
        "largest ||grad||_1 / sqrt(Var) seen: {worst_ratio:.4}"
    ));
    tally.finish()
}
