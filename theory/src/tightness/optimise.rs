//! A seeded derivative-free minimiser: random restarts, each followed by a
//! random-perturbation hill climb with a step size adapted by the 1/5 success rule
//! (a (1+1) evolution strategy). Restarts run in parallel, each on its own generator,
//! so the result does not depend on the number of threads.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

use crate::measure::sample::rng as sample_rng;

/// How many restarts and how many hill-climbing steps after each.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Random starting points.
    pub restarts: usize,
    /// Evaluations after each start.
    pub steps: usize,
}

impl Budget {
    /// Every evaluation the budget pays for.
    pub fn evaluations(&self) -> usize {
        self.restarts * (self.steps + 1)
    }
}

/// The best point found.
#[derive(Debug, Clone)]
pub struct Best {
    /// The point.
    pub z: Vec<f64>,
    /// Its objective value (`+inf` if no finite value was found).
    pub value: f64,
}

/// Initial, smallest and largest step sizes of the hill climb.
const SIGMA: (f64, f64, f64) = (0.3, 1e-4, 2.0);

/// Minimises `f` (non-finite values count as `+inf`) from `budget.restarts` points drawn
/// by `start`, under `seed`.
pub fn minimise<S, F>(seed: u64, budget: Budget, start: S, f: F) -> Best
where
    S: Fn(&mut ChaCha8Rng) -> Vec<f64> + Sync,
    F: Fn(&[f64]) -> f64 + Sync,
{
    let value = |z: &[f64]| {
        let v = f(z);
        if v.is_nan() {
            f64::INFINITY
        } else {
            v
        }
    };
    (0..budget.restarts)
        .into_par_iter()
        .map(|r| {
            let mut rng = sample_rng(seed, 1000 + r as u64);
            let mut z = start(&mut rng);
            let mut best = value(&z);
            let mut sigma = SIGMA.0;
            for _ in 0..budget.steps {
                let mut cand = z.clone();
                if rng.random_bool(0.5) {
                    let i = rng.random_range(0..cand.len());
                    cand[i] += sigma * normal(&mut rng);
                } else {
                    cand.iter_mut().for_each(|c| *c += sigma * normal(&mut rng));
                }
                let v = value(&cand);
                if v <= best {
                    sigma = (sigma * 1.5).min(SIGMA.2);
                    best = v;
                    z = cand;
                } else {
                    sigma = (sigma * 0.9).max(SIGMA.1);
                }
            }
            Best { z, value: best }
        })
        .collect::<Vec<_>>()
        .into_iter()
        .min_by(|a, b| a.value.total_cmp(&b.value))
        .unwrap_or(Best {
            z: Vec::new(),
            value: f64::INFINITY,
        })
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    StandardNormal.sample(rng)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_minimum_of_a_quadratic_and_is_deterministic() {
        let f = |z: &[f64]| z.iter().map(|v| (v - 1.0).powi(2)).sum::<f64>();
        let start = |rng: &mut ChaCha8Rng| (0..3).map(|_| rng.random_range(-3.0..3.0)).collect();
        let b = Budget {
            restarts: 3,
            steps: 400,
        };
        let a = minimise(7, b, start, f);
        assert!(a.value < 1e-4, "{}", a.value);
        let again = minimise(7, b, start, f);
        assert_eq!(a.z, again.z);
    }
}
