//! Right-hand sides `dy/dt = F(y)` of the flows we integrate.

use crate::objective::KlObjective;
use crate::policy::Policy;
use crate::{Result, TheoryError};

/// An autonomous vector field on `R^dim`.
pub trait VectorField: Sync {
    /// State dimension.
    fn dim(&self) -> usize;
    /// Writes `F(y)` into `dy`.
    fn eval(&self, y: &[f64], dy: &mut [f64]);
}

/// Gradient flow in parameter space (Eq. 4): `d theta/dt = grad phi(theta)`.
impl<P: Policy> VectorField for KlObjective<'_, P> {
    fn dim(&self) -> usize {
        self.policy().num_params()
    }
    fn eval(&self, y: &[f64], dy: &mut [f64]) {
        self.gradient(y, dy);
    }
}

/// The same tabular flow written for the probabilities of one prompt (Lemma 9):
/// `d pi(y)/dt = (1/|S|) [ pi(y)^2 (r(y)-V) - pi(y) sum_y' pi(y')^2 (r(y')-V)
///  - lambda pi(y)^2 (ln(pi(y)/pi_0(y)) - KL) + lambda pi(y) sum_y' pi(y')^2 (ln(pi(y')/pi_0(y')) - KL) ]`.
///
/// Integrating this and the logit flow must give the same trajectory: an independent
/// formulation used as a cross-check.
#[derive(Debug, Clone)]
pub struct ProbabilityFlow {
    reward: Vec<f64>,
    log_pi0: Vec<f64>,
    lambda: f64,
    num_prompts: usize,
}

impl ProbabilityFlow {
    /// The flow of one prompt's column, with `|S| = num_prompts`.
    pub fn new(reward: Vec<f64>, pi0: &[f64], lambda: f64, num_prompts: usize) -> Result<Self> {
        if reward.len() != pi0.len() {
            return Err(TheoryError::invalid(
                "reward",
                "must have one entry per output of pi0",
            ));
        }
        if pi0.iter().any(|p| p.is_nan() || *p <= 0.0) {
            return Err(TheoryError::invalid(
                "pi0",
                "all probabilities must be positive",
            ));
        }
        Ok(Self {
            reward,
            log_pi0: pi0.iter().map(|p| p.ln()).collect(),
            lambda,
            num_prompts,
        })
    }
}

impl VectorField for ProbabilityFlow {
    fn dim(&self) -> usize {
        self.reward.len()
    }
    fn eval(&self, pi: &[f64], dy: &mut [f64]) {
        let v: f64 = pi.iter().zip(&self.reward).map(|(p, r)| p * r).sum();
        let log_ratio: Vec<f64> = pi
            .iter()
            .zip(&self.log_pi0)
            .map(|(p, l0)| if *p > 0.0 { p.ln() - l0 } else { 0.0 })
            .collect();
        let kl: f64 = pi.iter().zip(&log_ratio).map(|(p, l)| p * l).sum();
        let s_r: f64 = pi
            .iter()
            .zip(&self.reward)
            .map(|(p, r)| p * p * (r - v))
            .sum();
        let s_kl: f64 = pi
            .iter()
            .zip(&log_ratio)
            .map(|(p, l)| p * p * (l - kl))
            .sum();
        let scale = 1.0 / self.num_prompts as f64;
        for (i, d) in dy.iter_mut().enumerate() {
            let p = pi[i];
            *d = scale
                * (p * p * (self.reward[i] - v)
                    - p * s_r
                    - self.lambda * p * p * (log_ratio[i] - kl)
                    + self.lambda * p * s_kl);
        }
    }
}
