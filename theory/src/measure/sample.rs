//! Random ingredients of instances (checks, tightness searches, figures), each drawn
//! from one seeded generator.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// The generator of check `salt` under `seed` (each check gets its own stream).
pub fn rng(seed: u64, salt: u64) -> ChaCha8Rng {
    use rand::SeedableRng;
    ChaCha8Rng::seed_from_u64(seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// `n` logits drawn from `N(0, scale^2)`.
pub fn logits<R: Rng>(rng: &mut R, n: usize, scale: f64) -> Vec<f64> {
    (0..n)
        .map(|_| {
            let z: f64 = StandardNormal.sample(rng);
            scale * z
        })
        .collect()
}

/// `n` rewards uniform in `[lo, hi]`.
pub fn rewards<R: Rng>(rng: &mut R, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    (0..n).map(|_| rng.random_range(lo..=hi)).collect()
}

/// One element of `options`, uniformly.
pub fn pick<R: Rng, T: Copy>(rng: &mut R, options: &[T]) -> T {
    options[rng.random_range(0..options.len())]
}

/// `n` rewards uniform in `[-1, 1]`.
pub fn uniform_rewards<R: Rng>(rng: &mut R, n: usize) -> Vec<f64> {
    rewards(rng, n, -1.0, 1.0)
}
