//! The tabular softmax policy of Eq. (3).

use super::Policy;

/// `theta in R^{|Y| x |S|}` stored column by column (`theta[x * |Y| + y]`), with
/// `pi(y|x) = softmax(theta[:, x])_y`. Columns of different prompts evolve independently.
#[derive(Debug, Clone)]
pub struct TabularPolicy {
    num_outputs: usize,
    num_prompts: usize,
}

impl TabularPolicy {
    /// A tabular policy over `num_outputs` outputs and `num_prompts` prompts.
    pub fn new(num_outputs: usize, num_prompts: usize) -> Self {
        assert!(num_outputs >= 1 && num_prompts >= 1, "empty tabular policy");
        Self {
            num_outputs,
            num_prompts,
        }
    }

    /// The parameter range of prompt `x`'s column.
    pub fn column(&self, x: usize) -> std::ops::Range<usize> {
        x * self.num_outputs..(x + 1) * self.num_outputs
    }
}

/// Writes `ln softmax(logits)` into `out`, stably.
pub(crate) fn log_softmax_into(logits: &[f64], out: &mut [f64]) {
    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = logits.iter().map(|l| (l - max).exp()).sum();
    let lse = max + sum.ln();
    out.iter_mut().zip(logits).for_each(|(o, l)| *o = l - lse);
}

impl Policy for TabularPolicy {
    fn num_params(&self) -> usize {
        self.num_outputs * self.num_prompts
    }
    fn num_prompts(&self) -> usize {
        self.num_prompts
    }
    fn num_outputs(&self) -> usize {
        self.num_outputs
    }
    fn seq_len(&self) -> usize {
        1
    }
    fn log_probs(&self, theta: &[f64], x: usize, out: &mut [f64]) {
        log_softmax_into(&theta[self.column(x)], out);
    }
    fn add_score_gradient(&self, theta: &[f64], x: usize, w: &[f64], scale: f64, grad: &mut [f64]) {
        // grad_theta[:,x] ln pi(y|x) = e_y - pi, so sum_y w_y (e_y - pi) = w - pi * sum(w).
        let col = self.column(x);
        let total: f64 = w.iter().sum();
        let mut lp = vec![0.0; self.num_outputs];
        self.log_probs(theta, x, &mut lp);
        for ((g, wy), l) in grad[col].iter_mut().zip(w).zip(&lp) {
            *g += scale * (wy - l.exp() * total);
        }
    }
    fn jacobian_norm(&self, _theta: &[f64], _x: usize) -> f64 {
        // f_theta(x) = theta[:, x]: the Jacobian selects one column, spectral norm 1.
        1.0
    }
    fn jacobian_is_constant(&self) -> bool {
        true
    }
}
