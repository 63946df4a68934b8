//! Right-hand sides `dy/dt = F(y)` of the flows we integrate.

use super::kernels::tabular_kl_stage;
use crate::{Result, TheoryError};

/// An autonomous vector field on `R^dim`.
pub trait VectorField: Sync {
    /// State dimension.
    fn dim(&self) -> usize;
    /// Writes `F(y)` into `dy`.
    fn eval(&self, y: &[f64], dy: &mut [f64]);
    /// Writes `F(base + h sum_j coef_j v_j)` into `dy` (`terms[j] = (coef_j, v_j)`, every
    /// vector of length `dim`) without necessarily forming that state, which saves a
    /// Runge-Kutta stage a pass over memory. `scratch` (length `dim`) may be
    /// overwritten with anything. Returns `false`, having written nothing, when the
    /// field has no such fused evaluation (the default): the caller then forms the
    /// state (as [`super::solver`]'s `combine` does) and calls [`VectorField::eval`].
    /// A field that returns `true` must give the same `dy` as that, up to rounding.
    fn eval_combined(
        &self,
        base: &[f64],
        h: f64,
        terms: &[(f64, &[f64])],
        scratch: &mut [f64],
        dy: &mut [f64],
    ) -> bool {
        let _ = (base, h, terms, scratch, dy);
        false
    }
}

/// The tabular KL-regularised flow in logit space (Lemma 7), fused: the same field as
/// the objective's gradient with a tabular policy (`crate::objective::KlObjective`
/// builds it with `tabular_field`), evaluated in one allocation-free kernel per column
/// with a single `exp` per entry instead of the generic objective's three, plus
/// temporaries; a Runge-Kutta stage's state is formed inside the same kernel
/// ([`VectorField::eval_combined`]), never written to memory.
#[derive(Debug, Clone)]
pub struct TabularKlField {
    cols: KlColumns,
    /// The prompt weight `1/|S|`.
    scale: f64,
}

/// The per-prompt columns both tabular fields ([`TabularKlField`], [`TabularNpgField`])
/// work on: `c[x][y] = r_RM(x, y) + lambda ln pi_ref(y|x)`, columns concatenated.
#[derive(Debug, Clone)]
struct KlColumns {
    c: Vec<f64>,
    num_outputs: usize,
    lambda: f64,
}

impl KlColumns {
    /// The columns of rewards `reward[x]`, reference log-probabilities
    /// `ref_log_probs[x]` and KL coefficient `lambda`.
    fn new(reward: &[&[f64]], ref_log_probs: &[&[f64]], lambda: f64) -> Self {
        let num_outputs = reward.first().map_or(0, |r| r.len());
        let c = reward
            .iter()
            .zip(ref_log_probs)
            .flat_map(|(r, l)| r.iter().zip(*l).map(|(r, l)| r + lambda * l))
            .collect();
        Self {
            c,
            num_outputs,
            lambda,
        }
    }

    /// Each prompt's `c` column.
    fn columns(&self) -> std::slice::ChunksExact<'_, f64> {
        self.c.chunks_exact(self.num_outputs)
    }
}

impl TabularKlField {
    /// The field of columns with rewards `reward[x]`, reference log-probabilities
    /// `ref_log_probs[x]`, KL coefficient `lambda` and prompt weight `scale`.
    pub fn new(reward: &[&[f64]], ref_log_probs: &[&[f64]], lambda: f64, scale: f64) -> Self {
        Self {
            cols: KlColumns::new(reward, ref_log_probs, lambda),
            scale,
        }
    }
}

impl VectorField for TabularKlField {
    fn dim(&self) -> usize {
        self.cols.c.len()
    }
    fn eval(&self, y: &[f64], dy: &mut [f64]) {
        let (n, lambda) = (self.cols.num_outputs, self.cols.lambda);
        for (col, (c, d)) in self.cols.columns().zip(dy.chunks_exact_mut(n)).enumerate() {
            tabular_kl_stage(y, 0.0, &[], col * n, c, lambda, self.scale, &mut [], d);
        }
    }
    fn eval_combined(
        &self,
        base: &[f64],
        h: f64,
        terms: &[(f64, &[f64])],
        scratch: &mut [f64],
        dy: &mut [f64],
    ) -> bool {
        let (n, lambda) = (self.cols.num_outputs, self.cols.lambda);
        for (col, ((c, sc), d)) in self
            .cols
            .columns()
            .zip(scratch.chunks_exact_mut(n))
            .zip(dy.chunks_exact_mut(n))
            .enumerate()
        {
            tabular_kl_stage(base, h, terms, col * n, c, lambda, self.scale, sc, d);
        }
        true
    }
}

/// The natural policy gradient flow of the tabular softmax: for each prompt's column,
/// `theta' = u - E_pi u` with `u = c - lambda theta`, `c = r_RM + lambda ln pi_ref`,
/// i.e. `u = r_KL` up to a constant per column. It is the gradient field divided, per
/// output, by `pi(y) / |S|`: the Fisher information of the prompt-averaged objective
/// (`(1/|S|)(diag pi - pi pi^T)` per column) inverted on the centred subspace, so the
/// prompt weight cancels. `ln pi` then solves a linear ODE:
/// `pi_t ∝ pi_0 exp((1 - e^(-lambda t)) r / lambda)` (`pi_0 exp(t r)` at `lambda = 0`).
#[derive(Debug, Clone)]
pub struct TabularNpgField {
    cols: KlColumns,
}

impl TabularNpgField {
    /// The field of columns with rewards `reward[x]`, reference log-probabilities
    /// `ref_log_probs[x]` and KL coefficient `lambda`.
    pub fn new(reward: &[&[f64]], ref_log_probs: &[&[f64]], lambda: f64) -> Self {
        Self {
            cols: KlColumns::new(reward, ref_log_probs, lambda),
        }
    }
}

impl VectorField for TabularNpgField {
    fn dim(&self) -> usize {
        self.cols.c.len()
    }
    fn eval(&self, y: &[f64], dy: &mut [f64]) {
        let n = self.cols.num_outputs;
        for ((c, th), d) in self
            .cols
            .columns()
            .zip(y.chunks_exact(n))
            .zip(dy.chunks_exact_mut(n))
        {
            let max = th.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let (mut sum, mut weighted) = (0.0, 0.0);
            for ((c, t), d) in c.iter().zip(th).zip(d.iter_mut()) {
                let u = c - self.cols.lambda * t;
                let e = (t - max).exp();
                sum += e;
                weighted += e * u;
                *d = u;
            }
            let mean = weighted / sum;
            d.iter_mut().for_each(|v| *v -= mean);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `num_outputs x cols` columns of logits whose block maxima grow (a rescaling at
    /// every block), fall, or jump by more than exp's range.
    fn stage_inputs(n: usize, cols: usize, shape: usize) -> Vec<f64> {
        (0..n * cols)
            .map(|i| {
                let y = i % n;
                let wiggle = ((i * 7919) % 101) as f64 / 101.0;
                match shape {
                    0 => 0.01 * y as f64 + wiggle,
                    1 => -0.01 * y as f64 + wiggle,
                    _ => {
                        if y < 300 {
                            -900.0 + wiggle
                        } else {
                            wiggle
                        }
                    }
                }
            })
            .collect()
    }

    #[test]
    fn fused_stage_equals_combine_then_eval() {
        use super::super::kernels::combine;
        // Columns shorter than a block, exactly one, and spanning several (partial last).
        for (n, cols) in [(37, 3), (256, 1), (700, 2), (1000, 1), (2, 4)] {
            for shape in 0..3 {
                for lambda in [0.0, 0.07] {
                    let dim = n * cols;
                    let rewards: Vec<Vec<f64>> = (0..cols)
                        .map(|x| {
                            (0..n)
                                .map(|y| (((x + 3) * (y + 1)) % 13) as f64 / 6.5 - 1.0)
                                .collect()
                        })
                        .collect();
                    let refs: Vec<Vec<f64>> = (0..cols)
                        .map(|_| {
                            (0..n)
                                .map(|y| -(n as f64).ln() - 0.01 * (y % 3) as f64)
                                .collect()
                        })
                        .collect();
                    let r: Vec<&[f64]> = rewards.iter().map(Vec::as_slice).collect();
                    let l: Vec<&[f64]> = refs.iter().map(Vec::as_slice).collect();
                    let field = TabularKlField::new(&r, &l, lambda, 0.25);
                    let base = stage_inputs(n, cols, shape);
                    let k: Vec<Vec<f64>> = (0..3)
                        .map(|j| {
                            (0..dim)
                                .map(|i| (((i + j) * 31) % 17) as f64 / 17.0 - 0.5)
                                .collect()
                        })
                        .collect();
                    let terms: Vec<(f64, &[f64])> = k
                        .iter()
                        .zip([0.3, -1.7, 0.9])
                        .map(|(v, a)| (a, v.as_slice()))
                        .collect();
                    for m in 0..=terms.len() {
                        let h = 0.37;
                        let (mut fused, mut scratch) = (vec![f64::NAN; dim], vec![f64::NAN; dim]);
                        assert!(field.eval_combined(
                            &base,
                            h,
                            &terms[..m],
                            &mut scratch,
                            &mut fused
                        ));
                        let (mut state, mut want) = (vec![0.0; dim], vec![0.0; dim]);
                        combine(&mut state, Some(&base), h, &terms[..m]);
                        field.eval(&state, &mut want);
                        // And the formula, with libm's exp, on the same state.
                        for col in 0..cols {
                            let th = &state[col * n..(col + 1) * n];
                            let max = th.iter().copied().fold(f64::MIN, f64::max);
                            let e: Vec<f64> = th.iter().map(|t| (t - max).exp()).collect();
                            let sum: f64 = e.iter().sum();
                            let c = &field.cols.c[col * n..(col + 1) * n];
                            let u: Vec<f64> = (0..n).map(|y| c[y] - lambda * th[y]).collect();
                            let mean: f64 = (0..n).map(|y| e[y] * u[y]).sum::<f64>() / sum;
                            let big = (0..n)
                                .map(|y| (0.25 * e[y] / sum * (u[y] - mean)).abs())
                                .fold(0.0, f64::max);
                            for y in 0..n {
                                let i = col * n + y;
                                let (a, b) = (fused[i], want[i]);
                                assert!(
                                    (a - b).abs() <= 1e-15 * b.abs(),
                                    "n {n} shape {shape} lambda {lambda} m {m} [{i}]: {a} vs {b}"
                                );
                                let f = 0.25 * e[y] / sum * (u[y] - mean);
                                assert!(
                                    (a - f).abs() <= 1e-13 * big,
                                    "n {n} shape {shape} lambda {lambda} m {m} [{i}]: {a} vs formula {f}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}
