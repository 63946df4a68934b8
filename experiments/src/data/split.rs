//! Seeded permutations and splits. Deterministic given the seed, on every platform and
//! across dependency updates: a ChaCha8 stream and our own Fisher-Yates shuffle with
//! unbiased bounded draws (not `rand`'s shuffle, whose output may change between
//! versions).

use super::DataError;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A uniformly random permutation of `0..n` determined by `seed`.
pub fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut perm: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = below(&mut rng, i as u64 + 1) as usize;
        perm.swap(i, j);
    }
    perm
}

/// A uniform draw from `0..bound` (`bound > 0`) by rejection, without modulo bias.
fn below(rng: &mut ChaCha8Rng, bound: u64) -> u64 {
    // Values below `threshold` would over-represent small residues.
    let threshold = bound.wrapping_neg() % bound;
    loop {
        let x = rng.next_u64();
        if x >= threshold {
            return x % bound;
        }
    }
}

/// `round(n * fraction)`: the size of the first part of a split of `n` items.
pub fn split_count(n: usize, fraction: f64) -> Result<usize, DataError> {
    if !(0.0..=1.0).contains(&fraction) {
        return Err(DataError::InvalidArgument(format!(
            "split fraction must lie in [0, 1], found {fraction}"
        )));
    }
    Ok(((n as f64 * fraction).round() as usize).min(n))
}

/// Splits `items` into a first part of [`split_count`]`(len, first_fraction)` items
/// chosen by [`permutation`]`(len, seed)` and the rest; each part keeps the original
/// order. The paper's 80/20 split is `split_by_fraction(pairs, 0.8, seed)`.
pub fn split_by_fraction<T>(
    items: Vec<T>,
    first_fraction: f64,
    seed: u64,
) -> Result<(Vec<T>, Vec<T>), DataError> {
    let n = items.len();
    let k = split_count(n, first_fraction)?;
    let mut in_first = vec![false; n];
    for &i in &permutation(n, seed)[..k] {
        in_first[i] = true;
    }
    let (mut first, mut rest) = (Vec::with_capacity(k), Vec::with_capacity(n - k));
    for (item, take) in items.into_iter().zip(in_first) {
        if take {
            first.push(item);
        } else {
            rest.push(item);
        }
    }
    Ok((first, rest))
}

/// A fixed random order of `n` prompts for nested subsets: the first `p`% of the order
/// form the subset for fraction `p`, so the 50% subset lies inside the 75% one. Used
/// for the 100/75/50/25/0% on-/off-policy reward-model mixes and for the fixed 50% of
/// prompts whose rewards the low-variance reward scales.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptMix {
    order: Vec<usize>,
}

impl PromptMix {
    /// The order [`permutation`]`(n, seed)`.
    pub fn new(n: usize, seed: u64) -> Self {
        Self {
            order: permutation(n, seed),
        }
    }

    /// The fixed order of prompt indices.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// Number of prompts in the subset for `fraction` ([`split_count`]).
    pub fn count(&self, fraction: f64) -> Result<usize, DataError> {
        split_count(self.order.len(), fraction)
    }

    /// `mask[i]` is true when prompt `i` is in the subset for `fraction` (e.g. uses
    /// on-policy pairs); every prompt appears exactly once, in or out.
    pub fn mask(&self, fraction: f64) -> Result<Vec<bool>, DataError> {
        let k = self.count(fraction)?;
        let mut mask = vec![false; self.order.len()];
        for &i in &self.order[..k] {
            mask[i] = true;
        }
        Ok(mask)
    }
}
