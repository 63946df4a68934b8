//! The fixed point of the tabular KL-regularised flow (gradient or natural-gradient,
//! with an entropy bonus: see `TabularInstance::run_with`), and a certificate that a flow has
//! settled there: what lets `theory flow` stop before a long horizon with a stated,
//! checked reason.
//!
//! For `lambda > 0` the objective of one prompt is a Gibbs variational problem:
//! with `pi* ∝ pi_0 exp(r_RM / lambda)` and `Z` its normaliser,
//! `E_pi r_RM - lambda KL(pi || pi_0) = lambda ln Z - lambda KL(pi || pi*)`.
//! The gradient flow never decreases the objective, so `D(t) = KL(pi(t) || pi*)` never
//! increases: for every later `t' >= t`, Pinsker's inequality gives
//! `||pi(t') - pi*||_1 <= sqrt(2 D(t))`, hence
//! `|E_{pi(t')} r - E_{pi*} r| <= (max r - min r) / 2 * sqrt(2 D(t))` for any reward `r`,
//! and, by the identity, `|KL(pi(t') || pi_0) - KL(pi* || pi_0)| <= B_RM / lambda + D(t)`.

use rmteach::metrics::softmax;

/// The flow's fixed point `pi* = softmax(theta_0 + r_RM / lambda)` (`lambda > 0`).
#[derive(Debug, Clone)]
pub struct FixedPoint {
    /// `ln pi*`.
    log_star: Vec<f64>,
    /// `pi*`.
    pub probs: Vec<f64>,
}

impl FixedPoint {
    /// The fixed point of the flow from logits `theta0` trained on `r_rm` with KL
    /// coefficient `lambda`; `None` for `lambda = 0` (no fixed point in the simplex).
    pub fn new(theta0: &[f64], r_rm: &[f64], lambda: f64) -> Option<Self> {
        if lambda <= 0.0 {
            return None;
        }
        let logits: Vec<f64> = theta0
            .iter()
            .zip(r_rm)
            .map(|(t, r)| t + r / lambda)
            .collect();
        let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + logits.iter().map(|l| (l - max).exp()).sum::<f64>().ln();
        Some(Self {
            log_star: logits.iter().map(|l| l - lse).collect(),
            probs: softmax(&logits),
        })
    }

    /// `KL(softmax(theta) || pi*)`, accurate near `pi*` (to about `eps` times the logits'
    /// distance from it, not `eps` absolute): with `w = theta - ln pi*` centred under
    /// `pi*`, `KL = E_pi w - ln E_{pi*} e^w`, each sum formed from `expm1`. `+inf` when
    /// it cannot be formed (far from the fixed point).
    pub fn kl_from(&self, theta: &[f64]) -> f64 {
        let centre: f64 = self
            .probs
            .iter()
            .zip(theta.iter().zip(&self.log_star))
            .map(|(q, (t, l))| q * (t - l))
            .sum();
        // s1 = sum pi* expm1(w) = Z - 1, s2 = sum pi* e^w w = Z E_pi w.
        let (mut s1, mut s2) = (0.0, 0.0);
        for ((q, t), l) in self.probs.iter().zip(theta).zip(&self.log_star) {
            let w = (t - l) - centre;
            let em1 = if w < 700.0 {
                q * w.exp_m1()
            } else {
                (l + w).exp() - q
            };
            s1 += em1;
            s2 += (em1 + q) * w;
        }
        let kl = s2 / (1.0 + s1) - s1.ln_1p();
        if kl.is_finite() {
            kl.max(0.0)
        } else {
            f64::INFINITY
        }
    }

    /// `(max r - min r) / 2 * sqrt(2 d)`: how far `E r` can be from `E_{pi*} r` at any
    /// time once `KL(pi || pi*) <= d`.
    pub fn reward_bound(r: &[f64], d: f64) -> f64 {
        let (lo, hi) = r
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(*v), hi.max(*v))
            });
        0.5 * (hi - lo) * (2.0 * d).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kl_from_the_fixed_point_matches_the_direct_sum() {
        let theta0 = [0.3, -1.0, 2.0, 0.0];
        let r = [0.5, -0.2, -1.0, 0.9];
        let fp = FixedPoint::new(&theta0, &r, 0.7).unwrap();
        assert!(FixedPoint::new(&theta0, &r, 0.0).is_none());
        let star: Vec<f64> = theta0.iter().zip(&r).map(|(t, r)| t + r / 0.7).collect();
        // At the fixed point (any shift of its logits): 0.
        let shifted: Vec<f64> = star.iter().map(|v| v + 3.0).collect();
        assert!(fp.kl_from(&shifted) < 1e-30);
        for eps in [1e-1, 1e-3, 1e-6] {
            let theta: Vec<f64> = star
                .iter()
                .enumerate()
                .map(|(i, v)| v + eps * (i as f64 - 1.5))
                .collect();
            let p = softmax(&theta);
            let direct: f64 = p.iter().zip(&fp.probs).map(|(a, b)| a * (a / b).ln()).sum();
            let kl = fp.kl_from(&theta);
            // Half the pi*-variance of the perturbation, to leading order in eps: what
            // the direct sum loses to rounding once it is below ~1e-12.
            let w: Vec<f64> = (0..4).map(|i| eps * (i as f64 - 1.5)).collect();
            let mean: f64 = fp.probs.iter().zip(&w).map(|(q, w)| q * w).sum();
            let half_var: f64 = 0.5
                * fp.probs
                    .iter()
                    .zip(&w)
                    .map(|(q, w)| q * (w - mean).powi(2))
                    .sum::<f64>();
            if eps >= 1e-3 {
                assert!(
                    (kl - direct).abs() <= 1e-9 * direct,
                    "eps {eps}: {kl} vs {direct}"
                );
            }
            assert!(
                (kl - half_var).abs() <= 3.0 * eps * half_var,
                "eps {eps}: {kl} vs {half_var}"
            );
        }
        assert!((FixedPoint::reward_bound(&r, 0.5) - 0.95).abs() < 1e-15);
    }
}
