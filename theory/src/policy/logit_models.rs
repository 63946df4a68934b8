//! Logit maps `f_theta(x, y_<l)` for autoregressive policies.

use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

/// A differentiable map from (prompt, prefix) to next-token logits.
pub trait LogitModel: Sync {
    /// Number of parameters.
    fn num_params(&self) -> usize;
    /// Vocabulary size `|V|`.
    fn vocab(&self) -> usize;
    /// Writes `f_theta(x, prefix)` into `out` (length `|V|`).
    fn logits(&self, theta: &[f64], x: usize, prefix: &[usize], out: &mut [f64]);
    /// Adds `scale * J_f(x, prefix)^T g` to `grad` (a vector-Jacobian product).
    fn add_vjp(
        &self,
        theta: &[f64],
        x: usize,
        prefix: &[usize],
        g: &[f64],
        scale: f64,
        grad: &mut [f64],
    );
    /// `||J_f(x, prefix)||_2` at `theta`.
    fn jacobian_spectral_norm(&self, theta: &[f64], x: usize, prefix: &[usize]) -> f64;
    /// Whether the logits are linear in `theta` (then the Jacobian is constant in time).
    fn is_linear(&self) -> bool;
}

/// Number of prefixes of length `< len` over a vocabulary of size `vocab`, and the
/// offset of each length's block: prefixes are numbered level by level.
fn prefix_levels(vocab: usize, len: usize) -> (usize, Vec<usize>) {
    let mut offsets = Vec::with_capacity(len);
    let (mut total, mut width) = (0, 1);
    for _ in 0..len {
        offsets.push(total);
        total += width;
        width *= vocab;
    }
    (total, offsets)
}

/// Index of `prefix` among all prefixes (level offset + base-`vocab` value).
fn prefix_index(offsets: &[usize], vocab: usize, prefix: &[usize]) -> usize {
    offsets[prefix.len()] + prefix.iter().fold(0, |acc, &t| acc * vocab + t)
}

/// A separate logit vector for every (prompt, prefix): the autoregressive analogue of
/// the tabular policy. Its Jacobian selects `|V|` parameters, so `J = 1`.
#[derive(Debug, Clone)]
pub struct PrefixTable {
    vocab: usize,
    num_prompts: usize,
    prefixes_per_prompt: usize,
    offsets: Vec<usize>,
}

impl PrefixTable {
    /// A table for `num_prompts` prompts, vocabulary `vocab` and outputs of length `len`.
    pub fn new(vocab: usize, len: usize, num_prompts: usize) -> Self {
        let (prefixes_per_prompt, offsets) = prefix_levels(vocab, len);
        Self {
            vocab,
            num_prompts,
            prefixes_per_prompt,
            offsets,
        }
    }

    fn block(&self, x: usize, prefix: &[usize]) -> std::ops::Range<usize> {
        let node = x * self.prefixes_per_prompt + prefix_index(&self.offsets, self.vocab, prefix);
        node * self.vocab..(node + 1) * self.vocab
    }
}

impl LogitModel for PrefixTable {
    fn num_params(&self) -> usize {
        self.num_prompts * self.prefixes_per_prompt * self.vocab
    }
    fn vocab(&self) -> usize {
        self.vocab
    }
    fn logits(&self, theta: &[f64], x: usize, prefix: &[usize], out: &mut [f64]) {
        out.copy_from_slice(&theta[self.block(x, prefix)]);
    }
    fn add_vjp(
        &self,
        _theta: &[f64],
        x: usize,
        prefix: &[usize],
        g: &[f64],
        scale: f64,
        grad: &mut [f64],
    ) {
        for (gr, gi) in grad[self.block(x, prefix)].iter_mut().zip(g) {
            *gr += scale * gi;
        }
    }
    fn jacobian_spectral_norm(&self, _theta: &[f64], _x: usize, _prefix: &[usize]) -> f64 {
        1.0
    }
    fn is_linear(&self) -> bool {
        true
    }
}

/// Logits `W phi(x, prefix)` with one matrix `W in R^{|V| x K}` shared by all prompts
/// and prefixes (so prompts interact), and fixed Gaussian features `phi`.
/// The Jacobian is `I_V (x) phi^T`, whose spectral norm is `||phi(x, prefix)||_2`.
#[derive(Debug, Clone)]
pub struct LinearFeatures {
    vocab: usize,
    dim: usize,
    prefixes_per_prompt: usize,
    offsets: Vec<usize>,
    features: Vec<f64>,
}

impl LinearFeatures {
    /// Draws features `phi ~ N(0, scale^2 / K)` entrywise for every (prompt, prefix).
    pub fn random<R: Rng>(
        vocab: usize,
        len: usize,
        num_prompts: usize,
        dim: usize,
        scale: f64,
        rng: &mut R,
    ) -> Self {
        let (prefixes_per_prompt, offsets) = prefix_levels(vocab, len);
        let sd = scale / (dim as f64).sqrt();
        let features = (0..num_prompts * prefixes_per_prompt * dim)
            .map(|_| {
                let z: f64 = StandardNormal.sample(rng);
                sd * z
            })
            .collect();
        Self {
            vocab,
            dim,
            prefixes_per_prompt,
            offsets,
            features,
        }
    }

    /// `phi(x, prefix)`.
    pub fn feature(&self, x: usize, prefix: &[usize]) -> &[f64] {
        let node = x * self.prefixes_per_prompt + prefix_index(&self.offsets, self.vocab, prefix);
        &self.features[node * self.dim..(node + 1) * self.dim]
    }
}

impl LogitModel for LinearFeatures {
    fn num_params(&self) -> usize {
        self.vocab * self.dim
    }
    fn vocab(&self) -> usize {
        self.vocab
    }
    fn logits(&self, theta: &[f64], x: usize, prefix: &[usize], out: &mut [f64]) {
        let phi = self.feature(x, prefix);
        for (v, o) in out.iter_mut().enumerate() {
            let row = &theta[v * self.dim..(v + 1) * self.dim];
            *o = row.iter().zip(phi).map(|(a, b)| a * b).sum();
        }
    }
    fn add_vjp(
        &self,
        _theta: &[f64],
        x: usize,
        prefix: &[usize],
        g: &[f64],
        scale: f64,
        grad: &mut [f64],
    ) {
        let phi = self.feature(x, prefix);
        for (v, gv) in g.iter().enumerate() {
            let row = &mut grad[v * self.dim..(v + 1) * self.dim];
            row.iter_mut()
                .zip(phi)
                .for_each(|(r, p)| *r += scale * gv * p);
        }
    }
    fn jacobian_spectral_norm(&self, _theta: &[f64], x: usize, prefix: &[usize]) -> f64 {
        self.feature(x, prefix)
            .iter()
            .map(|v| v * v)
            .sum::<f64>()
            .sqrt()
    }
    fn is_linear(&self) -> bool {
        true
    }
}
