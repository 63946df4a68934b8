//! General autoregressive policies (Eq. 2) over `Y = V^L`, by exact enumeration.

use super::tabular::log_softmax_into;
use super::{LogitModel, Policy};

/// `pi(y|x) = prod_l softmax(f_theta(x, y_<l))_{y_l}` for every `y in V^L`.
///
/// Outputs are numbered in base `|V|` with the first token most significant, so the
/// outputs sharing a prefix of length `l` form a contiguous block of `|V|^{L-l}`.
#[derive(Debug, Clone)]
pub struct AutoregressivePolicy<M> {
    model: M,
    len: usize,
    num_prompts: usize,
}

impl<M: LogitModel> AutoregressivePolicy<M> {
    /// Wraps a logit model for outputs of length `len` and `num_prompts` prompts.
    pub fn new(model: M, len: usize, num_prompts: usize) -> Self {
        assert!(len >= 1, "outputs need at least one token");
        Self {
            model,
            len,
            num_prompts,
        }
    }

    /// The logit model.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// The tokens of prefix number `index` at depth `depth` (base-`|V|` digits).
    fn decode(&self, depth: usize, mut index: usize, out: &mut Vec<usize>) {
        let vocab = self.model.vocab();
        out.clear();
        out.resize(depth, 0);
        for slot in out.iter_mut().rev() {
            *slot = index % vocab;
            index /= vocab;
        }
    }
}

impl<M: LogitModel> Policy for AutoregressivePolicy<M> {
    fn num_params(&self) -> usize {
        self.model.num_params()
    }
    fn num_prompts(&self) -> usize {
        self.num_prompts
    }
    fn num_outputs(&self) -> usize {
        self.model.vocab().pow(self.len as u32)
    }
    fn seq_len(&self) -> usize {
        self.len
    }

    fn log_probs(&self, theta: &[f64], x: usize, out: &mut [f64]) {
        let vocab = self.model.vocab();
        let mut level = vec![0.0];
        let (mut prefix, mut logits, mut ls) = (Vec::new(), vec![0.0; vocab], vec![0.0; vocab]);
        for depth in 0..self.len {
            let mut next = Vec::with_capacity(level.len() * vocab);
            for (p, lp) in level.iter().enumerate() {
                self.decode(depth, p, &mut prefix);
                self.model.logits(theta, x, &prefix, &mut logits);
                log_softmax_into(&logits, &mut ls);
                next.extend(ls.iter().map(|l| lp + l));
            }
            level = next;
        }
        out.copy_from_slice(&level);
    }

    fn add_score_gradient(&self, theta: &[f64], x: usize, w: &[f64], scale: f64, grad: &mut [f64]) {
        // sum_y w(y) grad ln pi(y) = sum_{prefix p} J(p)^T (W(p.v) - softmax(p)_v W(p))_v,
        // where W(q) is the total weight of the outputs extending q.
        let vocab = self.model.vocab();
        let mut sums = vec![w.to_vec()];
        for _ in 0..self.len {
            let below = sums.last().unwrap();
            sums.push(below.chunks(vocab).map(|c| c.iter().sum()).collect());
        }
        sums.reverse(); // sums[d][p]: weight below prefix p of length d
        let (mut prefix, mut logits, mut ls, mut g) = (
            Vec::new(),
            vec![0.0; vocab],
            vec![0.0; vocab],
            vec![0.0; vocab],
        );
        for depth in 0..self.len {
            for (p, total) in sums[depth].iter().enumerate() {
                self.decode(depth, p, &mut prefix);
                self.model.logits(theta, x, &prefix, &mut logits);
                log_softmax_into(&logits, &mut ls);
                let children = &sums[depth + 1][p * vocab..(p + 1) * vocab];
                for ((gv, c), l) in g.iter_mut().zip(children).zip(&ls) {
                    *gv = c - l.exp() * total;
                }
                self.model.add_vjp(theta, x, &prefix, &g, scale, grad);
            }
        }
    }

    fn jacobian_norm(&self, theta: &[f64], x: usize) -> f64 {
        let vocab = self.model.vocab();
        let mut prefix = Vec::new();
        let mut best: f64 = 0.0;
        for depth in 0..self.len {
            for p in 0..vocab.pow(depth as u32) {
                self.decode(depth, p, &mut prefix);
                best = best.max(self.model.jacobian_spectral_norm(theta, x, &prefix));
            }
        }
        best
    }

    fn jacobian_is_constant(&self) -> bool {
        self.model.is_linear()
    }
}
