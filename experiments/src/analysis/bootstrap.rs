//! Percentile bootstrap: seeded resampling of indices with replacement and the 95%
//! interval of a statistic's replicates. Deterministic given the seed, so a report
//! regenerated from the same files quotes the same intervals.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Replicates per interval.
pub const BOOTSTRAP_REPLICATES: usize = 2000;

/// Coverage of the reported intervals.
pub const INTERVAL_LEVEL: f64 = 0.95;

pub use crate::records::Interval;

/// Draws index vectors with replacement from a seeded stream.
#[derive(Debug, Clone)]
pub struct Resampler {
    rng: ChaCha8Rng,
}

impl Resampler {
    /// A resampler seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// `n` indices drawn uniformly from `0..n` with replacement (empty for `n == 0`).
    pub fn indices(&mut self, n: usize) -> Vec<usize> {
        (0..n)
            .map(|_| (self.rng.next_u64() % n as u64) as usize)
            .collect()
    }
}

/// The mean of `values` at `idx` (NaN when `idx` is empty).
pub fn mean_at(values: &[f64], idx: &[usize]) -> f64 {
    idx.iter().map(|&i| values[i]).sum::<f64>() / idx.len() as f64
}

/// The central [`INTERVAL_LEVEL`] percentile interval of `replicates` (non-finite
/// replicates dropped); `None` when fewer than 100 finite replicates remain.
pub fn percentile_interval(replicates: &[f64]) -> Option<Interval> {
    let mut v: Vec<f64> = replicates
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .collect();
    if v.len() < 100 {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let tail = (1.0 - INTERVAL_LEVEL) / 2.0;
    let at = |q: f64| {
        let pos = q * (v.len() - 1) as f64;
        let (i, f) = (pos.floor() as usize, pos.fract());
        v[i] + f * (v[(i + 1).min(v.len() - 1)] - v[i])
    };
    Some(Interval {
        lo: at(tail),
        hi: at(1.0 - tail),
    })
}

/// The bootstrap interval of the mean of `values` over resampled positions.
pub fn mean_interval(values: &[f64], seed: u64) -> Option<Interval> {
    if values.is_empty() {
        return None;
    }
    let mut rs = Resampler::new(seed);
    let reps: Vec<f64> = (0..BOOTSTRAP_REPLICATES)
        .map(|_| mean_at(values, &rs.indices(values.len())))
        .collect();
    percentile_interval(&reps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_of_a_constant_is_that_constant() {
        let i = mean_interval(&[0.5; 20], 1).unwrap();
        assert_eq!((i.lo, i.hi), (0.5, 0.5));
    }

    #[test]
    fn interval_covers_the_mean_and_shrinks_with_n() {
        let small: Vec<f64> = (0..20).map(|i| (i % 5) as f64).collect();
        let large: Vec<f64> = (0..2000).map(|i| (i % 5) as f64).collect();
        let (a, b) = (
            mean_interval(&small, 3).unwrap(),
            mean_interval(&large, 3).unwrap(),
        );
        assert!(a.lo < 2.0 && a.hi > 2.0 && b.lo < 2.0 && b.hi > 2.0);
        assert!(b.hi - b.lo < 0.5 * (a.hi - a.lo));
    }

    #[test]
    fn resampling_is_deterministic_and_in_range() {
        let (x, y) = (Resampler::new(7).indices(50), Resampler::new(7).indices(50));
        assert_eq!(x, y);
        assert!(x.iter().all(|&i| i < 50));
        assert!(percentile_interval(&[1.0; 10]).is_none());
    }
}
