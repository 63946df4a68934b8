//! Expected reward and reward variance: exact under a distribution, or
//! estimated from samples.
//!
//! Reward variance is the quantity the paper identifies as governing the speed
//! of policy-gradient optimisation: low variance under the initial policy means
//! a flat objective landscape and slow progress, however accurate the reward
//! model.

use serde::{Deserialize, Serialize};

#[cfg(doc)]
use super::error::MetricsError;
use super::error::Result;
use super::groups::{mean_over_groups, per_group};
use super::validate;

/// Checks a distribution and a matching reward vector; returns the distribution's total.
fn check_probs_and_rewards(probs: &[f64], rewards: &[f64]) -> Result<f64> {
    validate::same_len("probs vs rewards", probs.len(), rewards.len())?;
    let total = validate::distribution("probs", probs)?;
    validate::finite("rewards", rewards)?;
    Ok(total)
}

/// `sum_i w_i (x_i - center)^2 - (sum_i w_i (x_i - center))^2 / total`: the
/// corrected two-pass sum of squares around `center` (Chan, Golub & LeVeque).
fn centered_sum_of_squares(
    weights: impl Iterator<Item = f64>,
    xs: &[f64],
    center: f64,
    total: f64,
) -> f64 {
    let (squares, linear) = weights
        .zip(xs)
        .fold((0.0, 0.0), |(squares, linear), (w, &x)| {
            let d = x - center;
            (squares + w * d * d, linear + w * d)
        });
    squares - linear * linear / total
}

/// Expected reward `E_{y~p}[r(y)]` under the distribution `probs`.
///
/// `probs` must be non-empty, finite, `>= 0` and sum to 1 within
/// [`PROBABILITY_SUM_TOLERANCE`](super::PROBABILITY_SUM_TOLERANCE); `rewards`
/// must be finite and as long as `probs`. The sum is divided by the total of
/// `probs`, so a constant reward `c` has expectation `c` up to rounding.
///
/// # Errors
/// [`MetricsError::LengthMismatch`], [`MetricsError::Empty`],
/// [`MetricsError::NotFinite`], [`MetricsError::InvalidProbabilities`], or
/// [`MetricsError::Overflow`] if the result does not fit in `f64`.
pub fn expected_reward(probs: &[f64], rewards: &[f64]) -> Result<f64> {
    let total = check_probs_and_rewards(probs, rewards)?;
    weighted_mean(probs, rewards, total)
}

/// `sum p_i r_i / total`, checked for overflow.
fn weighted_mean(probs: &[f64], rewards: &[f64], total: f64) -> Result<f64> {
    let sum: f64 = probs.iter().zip(rewards).map(|(p, r)| p * r).sum();
    validate::finite_output("expected reward", sum / total)
}

/// Exact reward variance `Var_{y~p}[r(y)] = E_p[(r - E_p r)^2]`.
///
/// Computed with the corrected two-pass algorithm (no catastrophic
/// cancellation of `E[r^2] - E[r]^2`) and clamped at 0. Input requirements
/// and errors are those of [`expected_reward`].
///
/// # Errors
/// As [`expected_reward`]; [`MetricsError::Overflow`] also when the variance
/// itself exceeds `f64::MAX`.
pub fn reward_variance(probs: &[f64], rewards: &[f64]) -> Result<f64> {
    let total = check_probs_and_rewards(probs, rewards)?;
    let mean = weighted_mean(probs, rewards, total)?;
    let ss = centered_sum_of_squares(probs.iter().copied(), rewards, mean, total);
    validate::finite_output("reward variance", ss / total).map(|v| v.max(0.0))
}

/// Which normalisation a sample variance uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum VarianceEstimator {
    /// Divide by `n` (maximum-likelihood estimate; needs `n >= 1`).
    Biased,
    /// Divide by `n - 1` (unbiased estimate; needs `n >= 2`). The paper uses
    /// this one for language models.
    Unbiased,
}

impl VarianceEstimator {
    /// The divisor for `n` samples, or an error if there are too few.
    fn divisor(self, n: usize) -> Result<f64> {
        match self {
            Self::Biased => {
                validate::at_least("samples", 1, n)?;
                Ok(n as f64)
            }
            Self::Unbiased => {
                validate::at_least("samples (unbiased variance)", 2, n)?;
                Ok((n - 1) as f64)
            }
        }
    }
}

/// Sample variance of `samples` with the chosen estimator.
///
/// Uses the corrected two-pass algorithm and clamps at 0.
///
/// # Errors
/// [`MetricsError::Empty`] or [`MetricsError::TooFew`] (the unbiased estimator
/// needs two samples), [`MetricsError::NotFinite`], [`MetricsError::Overflow`].
pub fn sample_variance(samples: &[f64], estimator: VarianceEstimator) -> Result<f64> {
    let divisor = estimator.divisor(samples.len())?;
    validate::finite("samples", samples)?;
    let n = samples.len() as f64;
    let mean = validate::finite_output("sample mean", samples.iter().sum::<f64>() / n)?;
    let ss = centered_sum_of_squares(std::iter::repeat(1.0), samples, mean, n);
    validate::finite_output("sample variance", ss / divisor).map(|v| v.max(0.0))
}

/// Per-prompt sample variance averaged over prompts.
///
/// This is the paper's reward variance for language models: the unbiased
/// variance of the rewards of (for example) 10 sampled responses per prompt,
/// averaged over (for example) 500 prompts. Each group is one prompt's rewards.
///
/// # Errors
/// [`MetricsError::Empty`] when there are no groups;
/// [`MetricsError::InGroup`] wrapping the [`sample_variance`] error of the
/// first bad group.
pub fn mean_prompt_variance<'a, I>(groups: I, estimator: VarianceEstimator) -> Result<f64>
where
    I: IntoIterator<Item = &'a [f64]>,
{
    mean_over_groups("groups", groups, |g| sample_variance(g, estimator))
}

/// Each group's variance (what [`mean_prompt_variance`] averages), in group order: the
/// per-prompt values that bootstrap intervals resample and zero-variance prompts are
/// counted from.
///
/// # Errors
/// As [`mean_prompt_variance`], the failing group named by its index.
pub fn prompt_variances<'a, I>(groups: I, estimator: VarianceEstimator) -> Result<Vec<f64>>
where
    I: IntoIterator<Item = &'a [f64]>,
{
    per_group("groups", groups, |g| sample_variance(g, estimator))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::MetricsError;
    use proptest::prelude::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
    }

    /// Normalises non-negative weights with a positive total into probabilities.
    fn normalise(w: &[f64]) -> Vec<f64> {
        let total: f64 = w.iter().sum();
        w.iter().map(|x| x / total).collect()
    }

    /// Probabilities (some possibly zero) and matching rewards.
    fn probs_and_rewards() -> impl Strategy<Value = (Vec<f64>, Vec<f64>)> {
        (1usize..20).prop_flat_map(|n| {
            (
                prop::collection::vec(prop_oneof![1 => Just(0.0), 4 => 0.01..1.0f64], n)
                    .prop_filter("positive total", |w| w.iter().sum::<f64>() > 0.0)
                    .prop_map(|w| normalise(&w)),
                prop::collection::vec(-100.0..100.0f64, n),
            )
        })
    }

    #[test]
    fn hand_computed_values() {
        let p = [0.25, 0.25, 0.5];
        let r = [0.0, 2.0, 4.0];
        // E = 0.5 + 2 = 2.5; E r^2 = 1 + 8 = 9; Var = 9 - 6.25 = 2.75.
        assert!(close(expected_reward(&p, &r).unwrap(), 2.5, 1e-15));
        assert!(close(reward_variance(&p, &r).unwrap(), 2.75, 1e-15));
        let s = [1.0, 2.0, 3.0, 4.0];
        assert!(close(
            sample_variance(&s, VarianceEstimator::Biased).unwrap(),
            1.25,
            1e-15
        ));
        assert!(close(
            sample_variance(&s, VarianceEstimator::Unbiased).unwrap(),
            5.0 / 3.0,
            1e-15
        ));
    }

    #[test]
    fn point_mass_and_constant_rewards_have_zero_variance() {
        assert_eq!(
            reward_variance(&[0.0, 1.0, 0.0], &[5.0, 7.0, -3.0]).unwrap(),
            0.0
        );
        assert_eq!(reward_variance(&[0.5, 0.5], &[3.0, 3.0]).unwrap(), 0.0);
        assert_eq!(
            sample_variance(&[1e9 + 0.1; 7], VarianceEstimator::Unbiased).unwrap(),
            0.0
        );
    }

    #[test]
    fn large_offset_does_not_cancel() {
        // Naive E[r^2] - E[r]^2 loses everything here.
        let s = [1e9 + 4.0, 1e9 + 7.0, 1e9 + 13.0, 1e9 + 16.0];
        assert!(close(
            sample_variance(&s, VarianceEstimator::Unbiased).unwrap(),
            30.0,
            1e-12
        ));
    }

    #[test]
    fn mean_prompt_variance_averages_groups() {
        let a = [1.0, 3.0]; // unbiased var 2
        let b = [0.0, 0.0, 6.0]; // mean 2, ss = 4+4+16 = 24, var 12
        let v = mean_prompt_variance([&a[..], &b[..]], VarianceEstimator::Unbiased).unwrap();
        assert!(close(v, 7.0, 1e-15));
    }

    #[test]
    fn bad_input_is_reported() {
        use MetricsError::*;
        assert!(matches!(
            expected_reward(&[0.5, 0.5], &[1.0]),
            Err(LengthMismatch {
                left: 2,
                right: 1,
                ..
            })
        ));
        assert!(matches!(expected_reward(&[], &[]), Err(Empty { .. })));
        assert!(matches!(
            expected_reward(&[0.5, 0.6], &[1.0, 2.0]),
            Err(InvalidProbabilities { .. })
        ));
        assert!(matches!(
            expected_reward(&[1.5, -0.5], &[1.0, 2.0]),
            Err(InvalidProbabilities { .. })
        ));
        assert!(matches!(
            reward_variance(&[0.5, 0.5], &[1.0, f64::NAN]),
            Err(NotFinite {
                what: "rewards",
                index: 1
            })
        ));
        assert!(matches!(
            reward_variance(&[0.5, 0.5], &[1e300, -1e300]),
            Err(Overflow { .. })
        ));
        assert!(matches!(
            sample_variance(&[1.0], VarianceEstimator::Unbiased),
            Err(TooFew {
                needed: 2,
                got: 1,
                ..
            })
        ));
        assert_eq!(
            sample_variance(&[1.0], VarianceEstimator::Biased).unwrap(),
            0.0
        );
        assert!(matches!(
            sample_variance(&[], VarianceEstimator::Biased),
            Err(Empty { .. })
        ));
        let groups: [&[f64]; 0] = [];
        assert!(matches!(
            mean_prompt_variance(groups, VarianceEstimator::Unbiased),
            Err(Empty { what: "groups" })
        ));
        let err = mean_prompt_variance([&[1.0, 2.0][..], &[3.0][..]], VarianceEstimator::Unbiased)
            .unwrap_err();
        assert!(matches!(err, InGroup { index: 1, .. }));
        assert!(err.to_string().starts_with("group 1: "));
    }

    #[test]
    fn prompt_variances_are_what_the_mean_averages() {
        use MetricsError::{Empty, InGroup};
        let groups: [&[f64]; 3] = [&[1.0, 2.0, 4.0], &[0.5, 0.5], &[-1.0, 3.0]];
        let per = prompt_variances(groups, VarianceEstimator::Unbiased).unwrap();
        assert_eq!(per.len(), 3);
        for (v, g) in per.iter().zip(groups) {
            assert_eq!(*v, sample_variance(g, VarianceEstimator::Unbiased).unwrap());
        }
        let mean = mean_prompt_variance(groups, VarianceEstimator::Unbiased).unwrap();
        assert_eq!(per.iter().sum::<f64>() / 3.0, mean);
        let err = prompt_variances([&[1.0, 2.0][..], &[3.0][..]], VarianceEstimator::Unbiased)
            .unwrap_err();
        assert!(matches!(err, InGroup { index: 1, .. }));
        let none: [&[f64]; 0] = [];
        assert!(matches!(
            prompt_variances(none, VarianceEstimator::Unbiased),
            Err(Empty { what: "groups" })
        ));
    }

    proptest! {
        /// Var_p[r] = 1/2 E_{y,y' iid p}[(r(y) - r(y'))^2].
        #[test]
        fn variance_is_half_mean_squared_difference((p, r) in probs_and_rewards()) {
            let mut pairwise = 0.0;
            for (pi, ri) in p.iter().zip(&r) {
                for (pj, rj) in p.iter().zip(&r) {
                    pairwise += pi * pj * (ri - rj).powi(2);
                }
            }
            let v = reward_variance(&p, &r).unwrap();
            prop_assert!(close(v, 0.5 * pairwise, 1e-9), "{} vs {}", v, 0.5 * pairwise);
        }

        /// Var(c r) = c^2 Var(r), and shifting r does not change the variance.
        #[test]
        fn variance_scales_quadratically(
            (p, r) in probs_and_rewards(),
            c in -10.0..10.0f64,
            shift in -1e3..1e3f64,
        ) {
            let v = reward_variance(&p, &r).unwrap();
            let scaled: Vec<f64> = r.iter().map(|x| c * x).collect();
            let shifted: Vec<f64> = r.iter().map(|x| x + shift).collect();
            let tol = 1e-9 * (1.0 + r.iter().fold(0.0f64, |m, x| m.max(x.abs()))).powi(2);
            prop_assert!((reward_variance(&p, &scaled).unwrap() - c * c * v).abs() <= tol * (1.0 + c * c));
            let vs = reward_variance(&p, &shifted).unwrap();
            prop_assert!((vs - v).abs() <= tol * (1.0 + shift.abs()));
        }

        /// The exact variance under the empirical distribution is the biased
        /// sample variance, and unbiased = biased * n / (n - 1).
        #[test]
        fn sample_estimators_are_related(s in prop::collection::vec(-1e3..1e3f64, 2..50)) {
            let n = s.len() as f64;
            let biased = sample_variance(&s, VarianceEstimator::Biased).unwrap();
            let unbiased = sample_variance(&s, VarianceEstimator::Unbiased).unwrap();
            prop_assert!(close(unbiased, biased * n / (n - 1.0), 1e-12));
            let uniform = vec![1.0 / n; s.len()];
            prop_assert!(close(reward_variance(&uniform, &s).unwrap(), biased, 1e-9));
            prop_assert!(biased >= 0.0);
        }
    }
}
