//! Policies whose gradient flow the simulator integrates.
//!
//! A [`Policy`] maps a parameter vector `theta` to a distribution `pi(.|x)` over a
//! finite output set for each prompt `x`, and knows how to pull a weighted sum of
//! score functions `sum_y w(y) grad ln pi(y|x)` back to parameter space. That is all the
//! KL-regularised objective ([`crate::objective::KlObjective`]) needs.
//!
//! * [`TabularPolicy`] — Eq. (3): one logit per (output, prompt).
//! * [`AutoregressivePolicy`] — Eq. (2): `Y = V^L` by exact enumeration, over any
//!   [`LogitModel`] (see [`PrefixTable`], [`LinearFeatures`] and the non-linear [`TanhFeatures`]).

mod autoregressive;
mod logit_models;
mod tabular;

pub use autoregressive::AutoregressivePolicy;
pub use logit_models::{FeatureTable, LinearFeatures, LogitModel, PrefixTable, TanhFeatures};
pub use tabular::TabularPolicy;

/// A differentiable policy over a finite prompt set and a finite output set.
pub trait Policy: Sync {
    /// Number of parameters (length of `theta`).
    fn num_params(&self) -> usize;
    /// Number of prompts `|S|`.
    fn num_prompts(&self) -> usize;
    /// Number of outputs `|Y|`.
    fn num_outputs(&self) -> usize;
    /// Output length `L` (1 for tabular policies).
    fn seq_len(&self) -> usize;
    /// `ln pi(y|x)` for every output `y`, written into `out` (length `|Y|`).
    fn log_probs(&self, theta: &[f64], x: usize, out: &mut [f64]);
    /// Adds `scale * sum_y w[y] * grad_theta ln pi(y|x)` to `grad`.
    fn add_score_gradient(&self, theta: &[f64], x: usize, w: &[f64], scale: f64, grad: &mut [f64]);
    /// `J_x = sup_{y,l} ||J_f(x, y_<l)||_2` at `theta`: the largest spectral norm of the
    /// Jacobian of the logit map over all prefixes of prompt `x`.
    fn jacobian_norm(&self, theta: &[f64], x: usize) -> f64;
    /// Whether [`Policy::jacobian_norm`] is the same for every `theta` (linear logits).
    fn jacobian_is_constant(&self) -> bool;

    /// `d/dt E_{pi(.|x)} r` along `d theta/dt = v`: `<grad_theta E_pi r, v>`, with
    /// `grad_theta E_pi r = sum_y pi(y|x) (r(y) - E_pi r) grad ln pi(y|x)` (one score
    /// pull-back, exact). What locates a first crossing of `E_pi r` inside a step.
    fn expected_reward_rate(&self, theta: &[f64], x: usize, r: &[f64], v: &[f64]) -> f64 {
        let p = self.probs(theta, x);
        let mean: f64 = p.iter().zip(r).map(|(p, r)| p * r).sum();
        let w: Vec<f64> = p.iter().zip(r).map(|(p, r)| p * (r - mean)).collect();
        let mut grad = vec![0.0; theta.len()];
        self.add_score_gradient(theta, x, &w, 1.0, &mut grad);
        grad.iter().zip(v).map(|(g, v)| g * v).sum()
    }

    /// `pi(.|x)` as a probability vector.
    fn probs(&self, theta: &[f64], x: usize) -> Vec<f64> {
        let mut out = vec![0.0; self.num_outputs()];
        self.log_probs(theta, x, &mut out);
        out.iter_mut().for_each(|v| *v = v.exp());
        out
    }
}
