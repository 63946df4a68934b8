//! Discrete, stochastic policy gradient on the tabular policy: what people run, set
//! beside the flow that the paper analyses.
//!
//! One prompt of `|S|` (as [`TabularInstance`]), trained on `r_RM` with the KL penalty
//! (and an entropy bonus, if any) by steps of size `lr`:
//! * the gradient is exact (the flow's field, so that exact-gradient SGD is the flow's
//!   explicit Euler scheme) or estimated from `k` samples `y_1..y_k ~ pi` with the
//!   leave-one-out baseline (RLOO): `g = (1/|S|) (1/k) sum_i A_i (e_{y_i} - pi)` with
//!   `A_i = r_tau(y_i) - mean_{j != i} r_tau(y_j)` and
//!   `r_tau = r_RM - lambda ln(pi/pi_0) - tau ln pi`, which is unbiased;
//! * the step is SGD (`theta += lr g`) or Adam (bias-corrected moments, `beta1 = 0.9`,
//!   `beta2 = 0.999`, `eps = 1e-8`, as PyTorch's defaults).
//!
//! `t_gamma` is measured in flow time, `steps x lr`, on the exact `E_pi r` after each
//! step (only the update is stochastic), so it is comparable with the flow's.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::flow::{Crossing, VectorField};
use crate::instance::TabularInstance;
use crate::objective::KlObjective;
use crate::policy::TabularPolicy;
use crate::{Result, TheoryError};
use rmteach::metrics::{expected_reward, softmax};

/// How a step turns the gradient into a parameter change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Optimizer {
    /// `theta += lr g`.
    Sgd,
    /// Adam with PyTorch's default moments and epsilon.
    Adam,
}

/// Where the gradient comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum Estimate {
    /// The exact gradient (the flow's field).
    Exact,
    /// `k >= 2` samples from the policy with the leave-one-out baseline.
    Rloo {
        /// Samples per prompt and step.
        k: usize,
    },
}

/// One discrete training run's settings.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct DiscreteConfig {
    /// Step size `> 0`.
    pub lr: f64,
    /// SGD or Adam.
    pub optimizer: Optimizer,
    /// Exact or sampled gradients.
    pub estimate: Estimate,
    /// The entropy bonus `tau >= 0`.
    pub entropy: f64,
    /// Seed of the sampler (unused with exact gradients).
    pub seed: u64,
    /// When to stop before the horizon.
    pub stop: Stop,
}

/// When a discrete run stops before its horizon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// Once both levels (`r_G` and `r_RM`) are reached.
    #[default]
    Both,
    /// Once the ground truth's level is reached (`t_gamma_rm` is then reported only if
    /// reached by that step).
    GroundTruth,
}

impl DiscreteConfig {
    /// Checks every field; the error names it.
    pub fn validate(&self) -> Result<()> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(TheoryError::invalid(
                "lr",
                format!("must be a finite number > 0, got {}", self.lr),
            ));
        }
        if !(self.entropy.is_finite() && self.entropy >= 0.0) {
            return Err(TheoryError::invalid(
                "entropy",
                format!("must be a finite number >= 0, got {}", self.entropy),
            ));
        }
        if let Estimate::Rloo { k } = self.estimate {
            if k < 2 {
                return Err(TheoryError::invalid(
                    "k",
                    format!("the leave-one-out baseline needs k >= 2 samples, got {k}"),
                ));
            }
        }
        Ok(())
    }
}

/// What a discrete run reports: `t_gamma` in flow time (`steps x lr`) for both rewards.
#[derive(Debug, Clone, Serialize)]
pub struct DiscreteOutcome {
    /// First `steps x lr` with `E r_G >= E_0 r_G + gamma`, or beyond the horizon.
    pub t_gamma_g: Crossing,
    /// The same for `r_RM`.
    pub t_gamma_rm: Crossing,
    /// Steps taken (the run stops once the levels of [`Stop`] are reached, or at the
    /// horizon).
    pub steps: usize,
    /// `E r_G` when it stopped.
    pub v_g_end: f64,
}

/// Runs discrete training on `inst` until the levels `cfg.stop` names are reached or
/// `steps x lr >= inst.horizon`.
pub fn run(inst: &TabularInstance, cfg: &DiscreteConfig) -> Result<DiscreteOutcome> {
    inst.validate()?;
    cfg.validate()?;
    let theta0 = inst.initial_logits();
    let n = theta0.len();
    let policy = TabularPolicy::new(n, 1);
    let objective = KlObjective::new(&policy, vec![inst.r_rm.clone()], inst.lambda, &theta0)?
        .with_total_prompts(inst.num_prompts)?
        .with_entropy(cfg.entropy)?;
    let field = objective.tabular_field();
    let pi0 = softmax(&theta0);
    let levels = [
        expected_reward(&pi0, &inst.r_g)? + inst.gamma,
        expected_reward(&pi0, &inst.r_rm)? + inst.gamma,
    ];
    let max_steps = (inst.horizon / cfg.lr).ceil() as usize;
    let mut rng = crate::measure::sample::rng(cfg.seed, 0x5A3D);
    let mut theta = theta0;
    let mut grad = vec![0.0; n];
    let mut adam = (cfg.optimizer == Optimizer::Adam).then(|| Adam::new(n));
    let mut crossed: [Option<usize>; 2] = [None, None];
    let mut steps = 0;
    let mut v_g = 0.0;
    let done = |crossed: &[Option<usize>; 2]| match cfg.stop {
        Stop::Both => crossed.iter().all(Option::is_some),
        Stop::GroundTruth => crossed[0].is_some(),
    };
    while steps < max_steps && !done(&crossed) {
        match cfg.estimate {
            Estimate::Exact => field.eval(&theta, &mut grad),
            Estimate::Rloo { k } => {
                rloo_gradient(&objective, &theta, k, inst.num_prompts, &mut rng, &mut grad)
            }
        }
        match adam.as_mut() {
            Some(a) => a.step(&mut theta, &grad, cfg.lr),
            None => theta
                .iter_mut()
                .zip(&grad)
                .for_each(|(t, g)| *t += cfg.lr * g),
        }
        steps += 1;
        let p = softmax(&theta);
        v_g = expected_reward(&p, &inst.r_g)?;
        let values = [v_g, expected_reward(&p, &inst.r_rm)?];
        for (c, (v, level)) in crossed.iter_mut().zip(values.iter().zip(&levels)) {
            if c.is_none() && v >= level {
                *c = Some(steps);
            }
        }
    }
    let horizon = max_steps as f64 * cfg.lr;
    let crossing = |c: Option<usize>| match c {
        Some(s) => Crossing::At(s as f64 * cfg.lr),
        None => Crossing::BeyondHorizon(horizon),
    };
    Ok(DiscreteOutcome {
        t_gamma_g: crossing(crossed[0]),
        t_gamma_rm: crossing(crossed[1]),
        steps,
        v_g_end: v_g,
    })
}

/// The RLOO estimate of the gradient of one prompt's column from `k` samples, with the
/// prompt weight `1/|S|`, written into `grad`.
fn rloo_gradient(
    objective: &KlObjective<'_, TabularPolicy>,
    theta: &[f64],
    k: usize,
    num_prompts: usize,
    rng: &mut ChaCha8Rng,
    grad: &mut [f64],
) {
    let st = objective.prompt_state(theta, 0);
    let samples: Vec<usize> = (0..k).map(|_| sample(&st.probs, rng)).collect();
    let total: f64 = samples.iter().map(|&y| st.kl_reward[y]).sum();
    let scale = 1.0 / (num_prompts as f64 * k as f64);
    grad.iter_mut().for_each(|g| *g = 0.0);
    let mut advantage_sum = 0.0;
    for &y in &samples {
        let r = st.kl_reward[y];
        let advantage = r - (total - r) / (k - 1) as f64;
        grad[y] += scale * advantage;
        advantage_sum += advantage;
    }
    // sum_i A_i (e_{y_i} - pi): the `- pi` part once, with the summed advantage.
    for (g, p) in grad.iter_mut().zip(&st.probs) {
        *g -= scale * advantage_sum * p;
    }
}

/// One draw from the categorical distribution `probs`.
fn sample(probs: &[f64], rng: &mut ChaCha8Rng) -> usize {
    let u: f64 = rng.random();
    let mut acc = 0.0;
    for (i, p) in probs.iter().enumerate() {
        acc += p;
        if u < acc {
            return i;
        }
    }
    probs.len() - 1
}

/// Adam's state.
struct Adam {
    m: Vec<f64>,
    v: Vec<f64>,
    t: i32,
}

impl Adam {
    const BETA1: f64 = 0.9;
    const BETA2: f64 = 0.999;
    const EPS: f64 = 1e-8;

    fn new(n: usize) -> Self {
        Self {
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
        }
    }

    /// `theta += lr m_hat / (sqrt(v_hat) + eps)` (ascent).
    fn step(&mut self, theta: &mut [f64], grad: &[f64], lr: f64) {
        self.t += 1;
        let c1 = 1.0 - Self::BETA1.powi(self.t);
        let c2 = 1.0 - Self::BETA2.powi(self.t);
        for ((t, g), (m, v)) in theta
            .iter_mut()
            .zip(grad)
            .zip(self.m.iter_mut().zip(self.v.iter_mut()))
        {
            *m = Self::BETA1 * *m + (1.0 - Self::BETA1) * g;
            *v = Self::BETA2 * *v + (1.0 - Self::BETA2) * g * g;
            *t += lr * (*m / c1) / ((*v / c2).sqrt() + Self::EPS);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(lambda: f64) -> TabularInstance {
        TabularInstance {
            num_prompts: 3,
            lambda,
            gamma: 0.3,
            logits: Some(vec![1.0, 0.2, -0.5, 0.0, -1.5]),
            probs: None,
            r_rm: vec![-0.6, 0.2, 0.7, -0.1, 0.9],
            r_g: vec![-0.4, 0.1, 0.9, -0.3, 0.6],
            horizon: 200.0,
        }
    }

    #[test]
    fn rloo_is_unbiased_for_the_exact_gradient() {
        let inst = inst(0.2);
        let theta0 = inst.initial_logits();
        let policy = TabularPolicy::new(5, 1);
        let obj = KlObjective::new(&policy, vec![inst.r_rm.clone()], 0.2, &theta0)
            .unwrap()
            .with_total_prompts(3)
            .unwrap()
            .with_entropy(0.1)
            .unwrap();
        let theta = vec![0.3, 0.1, -0.2, 0.5, -1.0];
        let mut exact = vec![0.0; 5];
        obj.tabular_field().eval(&theta, &mut exact);
        let mut rng = crate::measure::sample::rng(7, 1);
        let draws = 200_000;
        for k in [2, 5] {
            let (mut sum, mut sq) = (vec![0.0; 5], vec![0.0; 5]);
            let mut g = vec![0.0; 5];
            for _ in 0..draws {
                rloo_gradient(&obj, &theta, k, 3, &mut rng, &mut g);
                for i in 0..5 {
                    sum[i] += g[i];
                    sq[i] += g[i] * g[i];
                }
            }
            for i in 0..5 {
                let mean = sum[i] / draws as f64;
                let se = ((sq[i] / draws as f64 - mean * mean) / draws as f64).sqrt();
                // 5 standard errors: a wrong baseline or scale is off by far more.
                assert!(
                    (mean - exact[i]).abs() < 5.0 * se + 1e-12,
                    "k {k} [{i}]: {mean} vs {} (se {se})",
                    exact[i]
                );
            }
        }
    }

    #[test]
    fn exact_sgd_with_a_small_step_is_the_flow() {
        use crate::flow::SolverConfig;
        for lambda in [0.0, 0.1] {
            let inst = inst(lambda);
            let flow = inst.run(&SolverConfig::default(), false).unwrap();
            let t_flow = flow.t_gamma_g.time().unwrap();
            let mut last_err = f64::INFINITY;
            for lr in [0.1, 0.01] {
                let cfg = DiscreteConfig {
                    lr,
                    optimizer: Optimizer::Sgd,
                    estimate: Estimate::Exact,
                    entropy: 0.0,
                    seed: 0,
                    stop: Stop::Both,
                };
                let t = run(&inst, &cfg).unwrap().t_gamma_g.time().unwrap();
                let err = (t - t_flow).abs();
                // Euler's error is O(lr) in time, plus at most one step of lr.
                assert!(
                    err < 0.05 * t_flow + 2.0 * lr,
                    "lambda {lambda} lr {lr}: {t} vs {t_flow}"
                );
                assert!(
                    err < last_err,
                    "lambda {lambda}: no closer with a smaller step"
                );
                last_err = err;
            }
        }
    }

    #[test]
    fn adam_ignores_a_global_reward_scale_and_sgd_does_not() {
        let base = inst(0.0);
        let mut scaled = base.clone();
        scaled.r_rm.iter_mut().for_each(|r| *r *= 0.01);
        scaled.horizon = 2e4;
        let cfg = |optimizer| DiscreteConfig {
            lr: 0.05,
            optimizer,
            estimate: Estimate::Exact,
            entropy: 0.0,
            seed: 0,
            stop: Stop::Both,
        };
        let adam = |i: &TabularInstance| run(i, &cfg(Optimizer::Adam)).unwrap().t_gamma_g;
        let sgd = |i: &TabularInstance| run(i, &cfg(Optimizer::Sgd)).unwrap().t_gamma_g;
        // Equal up to epsilon's share of Adam's denominator (one step at most).
        let (a, b) = (adam(&base).time().unwrap(), adam(&scaled).time().unwrap());
        assert!((a - b).abs() <= 0.05 + 1e-12, "{a} vs {b}");
        let (a, b) = (sgd(&base).time().unwrap(), sgd(&scaled).time().unwrap());
        assert!(b > 50.0 * a, "{a} vs {b}");
    }

    #[test]
    fn bad_settings_are_named() {
        let mut cfg = DiscreteConfig {
            lr: 0.0,
            optimizer: Optimizer::Sgd,
            estimate: Estimate::Rloo { k: 1 },
            entropy: 0.0,
            seed: 0,
            stop: Stop::Both,
        };
        let e = run(&inst(0.0), &cfg).unwrap_err().to_string();
        assert!(e.contains("lr"), "{e}");
        cfg.lr = 0.1;
        let e = run(&inst(0.0), &cfg).unwrap_err().to_string();
        assert!(e.contains("k") && e.contains(">= 2"), "{e}");
    }
}
