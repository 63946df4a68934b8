//! Searches of the gradient bounds (no flow): Lemma 8 and Proposition 2.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{BoundTightness, Budget, Side, Spec};
use crate::bounds::{lemma8_gradient_bound, prop2_gradient_bound};
use crate::checks::CheckConfig;
use crate::measure::sample::logits as sample_logits;
use crate::objective::KlObjective;
use crate::policy::{AutoregressivePolicy, Policy, PrefixTable, TabularPolicy};
use rmteach::metrics::reward_variance;

/// `lambda = e^z`, with `z <= 5`.
fn lambda_of(z: f64) -> f64 {
    z.min(5.0).exp()
}

/// A point `[theta | theta0 | r | ln lambda]` for `n` outputs.
fn start(rng: &mut ChaCha8Rng, params: usize, outputs: usize) -> Vec<f64> {
    let scale = [0.5, 1.5, 3.0][rng.random_range(0..3)];
    let mut z = sample_logits(rng, params, scale);
    z.extend(sample_logits(rng, params, scale));
    z.extend(sample_logits(rng, outputs, 1.0));
    z.push(rng.random_range(-8.0..1.0));
    z
}

/// Splits a point into `(theta, theta0, rewards in (-1, 1), lambda)`.
fn split(z: &[f64], params: usize) -> (&[f64], &[f64], Vec<f64>, f64) {
    let (theta, rest) = z.split_at(params);
    let (theta0, rest) = rest.split_at(params);
    let (r, lz) = rest.split_at(rest.len() - 1);
    (
        theta,
        theta0,
        r.iter().map(|v| v.tanh()).collect(),
        lambda_of(lz[0]),
    )
}

/// Lemma 8 over tabular policies with `|Y| in {2, 3, 4, 6}`.
pub fn lemma8(cfg: &CheckConfig) -> BoundTightness {
    let spec = Spec {
        bound: "Lemma 8",
        constant: "1 in ||grad||_1 <= 1 * sqrt(Var_pi[r_KL])",
        paper_constant: 1.0,
        side: Side::Upper,
        scope:
            "tabular |Y| in {2,3,4,6}, theta and theta0 free, rewards in (-1,1), lambda in (0, e^5]",
        salt: 0x4c38,
        budget: Budget {
            restarts: 16,
            steps: 500,
        },
    };
    let sizes = [2usize, 3, 4, 6];
    spec.run(
        cfg,
        |rng| {
            let n = sizes[rng.random_range(0..sizes.len())];
            start(rng, n, n)
        },
        |z, describe| {
            let n = (z.len() - 1) / 3;
            let (theta, theta0, r, lambda) = split(z, n);
            let policy = TabularPolicy::new(n, 1);
            let Ok(obj) = KlObjective::new(&policy, vec![r.clone()], lambda, theta0) else {
                return (f64::INFINITY, String::new());
            };
            let st = obj.prompt_state(theta, 0);
            let var = reward_variance(&st.probs, &st.kl_reward).unwrap_or(f64::NAN);
            let norm: f64 = obj.prompt_gradient(theta, 0).iter().map(|g| g.abs()).sum();
            let margin = lemma8_gradient_bound(var) / norm;
            let text = if describe {
                format!(
                    "|Y|={n}, lambda={lambda:.4e}, ||grad||_1={norm:.6e}, sqrt(Var)={:.6e}, pi={:?}, r={r:?}, \
                     theta={theta:?}, theta0={theta0:?}",
                    var.sqrt(),
                    st.probs
                )
            } else {
                String::new()
            };
            (margin, text)
        },
    )
}

/// Proposition 2 over per-prefix tables with `(|V|, L) in {(2,1), (3,1), (2,2), (3,2)}`.
pub fn prop2(cfg: &CheckConfig) -> BoundTightness {
    let spec = Spec {
        bound: "Proposition 2",
        constant: "6 in ||grad|| <= 6 M^(1/3) L J_x Var[r_KL]^(1/3)",
        paper_constant: 6.0,
        side: Side::Upper,
        scope: "PrefixTable policies (J_x = 1), |V| in {2,3}, L in {1,2}, |S| = 1, theta and theta0 free, \
                rewards in (-1,1), lambda in (0, e^5]",
        salt: 0x5032,
        budget: Budget {
            restarts: 16,
            steps: 500,
        },
    };
    let shapes = [(2usize, 1usize), (3, 1), (2, 2), (3, 2)];
    let policy_of = |v: usize, l: usize| AutoregressivePolicy::new(PrefixTable::new(v, l, 1), l, 1);
    // A point is `[vocab, len | theta | theta0 | r | ln lambda]`; the shape is not perturbed
    // (it is re-read by rounding, so a perturbed shape is simply another valid shape).
    spec.run(
        cfg,
        |rng| {
            let (v, l) = shapes[rng.random_range(0..shapes.len())];
            let p = policy_of(v, l);
            let mut z = vec![v as f64, l as f64];
            z.extend(start(rng, p.num_params(), p.num_outputs()));
            z
        },
        |z, describe| {
            let (v, l) = (z[0].round() as usize, z[1].round() as usize);
            if !shapes.contains(&(v, l)) {
                return (f64::INFINITY, String::new());
            }
            let policy = policy_of(v, l);
            let (p, outputs) = (policy.num_params(), policy.num_outputs());
            if z.len() != 2 + 2 * p + outputs + 1 {
                return (f64::INFINITY, String::new());
            }
            let (theta, theta0, r, lambda) = split(&z[2..], p);
            let Ok(obj) = KlObjective::new(&policy, vec![r.clone()], lambda, theta0) else {
                return (f64::INFINITY, String::new());
            };
            let st = obj.prompt_state(theta, 0);
            let m = st.kl_reward.iter().fold(1.0f64, |a, r| a.max(r.abs()));
            let var = reward_variance(&st.probs, &st.kl_reward).unwrap_or(f64::NAN);
            let jac = policy.jacobian_norm(theta, 0);
            let norm = obj
                .prompt_gradient(theta, 0)
                .iter()
                .map(|g| g * g)
                .sum::<f64>()
                .sqrt();
            let margin = prop2_gradient_bound(m, l, jac, var) / norm;
            let text = if describe {
                format!(
                    "|V|={v}, L={l}, lambda={lambda:.4e}, ||grad||={norm:.6e}, M={m:.4}, J_x={jac:.4}, \
                     Var[r_KL]={var:.6e}, pi={:?}, r={r:?}, theta={theta:?}, theta0={theta0:?}",
                    st.probs
                )
            } else {
                String::new()
            };
            (margin, text)
        },
    )
}
