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

/// Fixed Gaussian features `phi(x, prefix) in R^K` for every (prompt, prefix).
#[derive(Debug, Clone)]
pub struct FeatureTable {
    vocab: usize,
    dim: usize,
    prefixes_per_prompt: usize,
    offsets: Vec<usize>,
    features: Vec<f64>,
}

impl FeatureTable {
    /// Draws `phi ~ N(0, scale^2 / K)` entrywise for every (prompt, prefix).
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

    /// Feature dimension `K`.
    pub fn dim(&self) -> usize {
        self.dim
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Logits `W phi(x, prefix)` with one matrix `W in R^{|V| x K}` shared by all prompts
/// and prefixes (so prompts interact), and fixed Gaussian features `phi`.
/// The Jacobian is `I_V (x) phi^T`, whose spectral norm is `||phi(x, prefix)||_2`.
#[derive(Debug, Clone)]
pub struct LinearFeatures {
    table: FeatureTable,
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
        Self {
            table: FeatureTable::random(vocab, len, num_prompts, dim, scale, rng),
        }
    }

    /// `phi(x, prefix)`.
    pub fn feature(&self, x: usize, prefix: &[usize]) -> &[f64] {
        self.table.feature(x, prefix)
    }
}

impl LogitModel for LinearFeatures {
    fn num_params(&self) -> usize {
        self.table.vocab * self.table.dim
    }
    fn vocab(&self) -> usize {
        self.table.vocab
    }
    fn logits(&self, theta: &[f64], x: usize, prefix: &[usize], out: &mut [f64]) {
        let phi = self.feature(x, prefix);
        for (o, row) in out.iter_mut().zip(theta.chunks(self.table.dim)) {
            *o = dot(row, phi);
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
        for (gv, row) in g.iter().zip(grad.chunks_mut(self.table.dim)) {
            row.iter_mut()
                .zip(phi)
                .for_each(|(r, p)| *r += scale * gv * p);
        }
    }
    fn jacobian_spectral_norm(&self, _theta: &[f64], x: usize, prefix: &[usize]) -> f64 {
        dot(self.feature(x, prefix), self.feature(x, prefix)).sqrt()
    }
    fn is_linear(&self) -> bool {
        true
    }
}

/// A non-linear logit map: `W2 tanh(W1 phi(x, prefix))` with `W1 in R^{H x K}` and
/// `W2 in R^{|V| x H}` shared by all prompts and prefixes. Its Jacobian changes with
/// `theta`, so Theorem 4's `J_{t_gamma}` must be tracked along the trajectory.
///
/// Parameters: `W2` row-major, then `W1` row-major. With `h = tanh(W1 phi)` and
/// `A = W2 diag(1 - h^2)`, `J J^T = ||h||^2 I + ||phi||^2 A A^T`, so
/// `||J||_2 = sqrt(||h||^2 + ||phi||^2 sigma_max(A)^2)`.
#[derive(Debug, Clone)]
pub struct TanhFeatures {
    table: FeatureTable,
    hidden: usize,
}

impl TanhFeatures {
    /// Features as in [`LinearFeatures::random`], with `hidden` tanh units.
    pub fn random<R: Rng>(
        vocab: usize,
        len: usize,
        num_prompts: usize,
        dim: usize,
        hidden: usize,
        scale: f64,
        rng: &mut R,
    ) -> Self {
        Self {
            table: FeatureTable::random(vocab, len, num_prompts, dim, scale, rng),
            hidden,
        }
    }

    fn split<'a>(&self, theta: &'a [f64]) -> (&'a [f64], &'a [f64]) {
        theta.split_at(self.table.vocab * self.hidden)
    }

    /// `tanh(W1 phi)`.
    fn hidden_units(&self, theta: &[f64], phi: &[f64]) -> Vec<f64> {
        let (_, w1) = self.split(theta);
        w1.chunks(self.table.dim)
            .map(|row| dot(row, phi).tanh())
            .collect()
    }
}

impl LogitModel for TanhFeatures {
    fn num_params(&self) -> usize {
        self.hidden * (self.table.vocab + self.table.dim)
    }
    fn vocab(&self) -> usize {
        self.table.vocab
    }
    fn logits(&self, theta: &[f64], x: usize, prefix: &[usize], out: &mut [f64]) {
        let h = self.hidden_units(theta, self.table.feature(x, prefix));
        let (w2, _) = self.split(theta);
        for (o, row) in out.iter_mut().zip(w2.chunks(self.hidden)) {
            *o = dot(row, &h);
        }
    }
    fn add_vjp(
        &self,
        theta: &[f64],
        x: usize,
        prefix: &[usize],
        g: &[f64],
        scale: f64,
        grad: &mut [f64],
    ) {
        let phi = self.table.feature(x, prefix);
        let h = self.hidden_units(theta, phi);
        let (w2, _) = self.split(theta);
        let (g2, g1) = grad.split_at_mut(self.table.vocab * self.hidden);
        // Back through W2: dL/dh = W2^T g.
        let mut back = vec![0.0; self.hidden];
        for ((gv, row), grow) in g
            .iter()
            .zip(w2.chunks(self.hidden))
            .zip(g2.chunks_mut(self.hidden))
        {
            for (j, (w, gr)) in row.iter().zip(grow.iter_mut()).enumerate() {
                *gr += scale * gv * h[j];
                back[j] += gv * w;
            }
        }
        // Back through tanh and W1.
        for ((b, hj), grow) in back.iter().zip(&h).zip(g1.chunks_mut(self.table.dim)) {
            let d = b * (1.0 - hj * hj);
            grow.iter_mut()
                .zip(phi)
                .for_each(|(gr, p)| *gr += scale * d * p);
        }
    }
    fn jacobian_spectral_norm(&self, theta: &[f64], x: usize, prefix: &[usize]) -> f64 {
        let phi = self.table.feature(x, prefix);
        let h = self.hidden_units(theta, phi);
        let (w2, _) = self.split(theta);
        let v = self.table.vocab;
        let a = nalgebra::DMatrix::from_fn(v, self.hidden, |i, j| {
            w2[i * self.hidden + j] * (1.0 - h[j] * h[j])
        });
        let sigma_max = a.singular_values().max();
        (dot(&h, &h) + dot(phi, phi) * sigma_max * sigma_max).sqrt()
    }
    fn is_linear(&self) -> bool {
        false
    }
}
