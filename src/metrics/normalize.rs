//! Reward normalisation: `z = (r - mean) / std`.

use serde::{Deserialize, Serialize};

use super::error::{MetricsError, Result};
use super::validate;
use super::variance::{sample_variance, VarianceEstimator};

/// The `eps` added to the variance by [`Normalizer::fit`], as in the paper.
pub const DEFAULT_NORMALIZER_EPS: f64 = 1e-8;

/// An affine map `r -> (r - mean) / std` fitted to a sample of rewards.
///
/// Built by [`Normalizer::fit`] / [`Normalizer::fit_with`] or validated by
/// [`Normalizer::new`]. The fields are public for (de)serialisation; a value
/// built by hand with `std <= 0` or non-finite fields gives non-finite outputs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Normalizer {
    /// Subtracted from every reward.
    pub mean: f64,
    /// Every centred reward is divided by this (positive).
    pub std: f64,
}

impl Normalizer {
    /// A normaliser with the given mean and standard deviation.
    ///
    /// # Errors
    /// [`MetricsError::InvalidParameter`] unless `mean` is finite and `std`
    /// is finite and positive.
    pub fn new(mean: f64, std: f64) -> Result<Self> {
        if !mean.is_finite() {
            return Err(MetricsError::InvalidParameter {
                name: "mean",
                reason: format!("{mean} is not finite"),
            });
        }
        if !(std.is_finite() && std > 0.0) {
            return Err(MetricsError::InvalidParameter {
                name: "std",
                reason: format!("{std} must be finite and positive"),
            });
        }
        Ok(Self { mean, std })
    }

    /// Fits with the paper's rule: `mean` is the sample mean and
    /// `std = sqrt(unbiased sample variance + 1e-8)`.
    ///
    /// The `1e-8` ([`DEFAULT_NORMALIZER_EPS`]) keeps the map finite when all
    /// rewards are equal.
    ///
    /// # Errors
    /// As [`sample_variance`] with [`VarianceEstimator::Unbiased`] (at least
    /// two finite samples).
    pub fn fit(samples: &[f64]) -> Result<Self> {
        Self::fit_with(samples, VarianceEstimator::Unbiased, DEFAULT_NORMALIZER_EPS)
    }

    /// Fits with `std = sqrt(sample variance + eps)` for the chosen estimator.
    ///
    /// # Errors
    /// As [`sample_variance`]; [`MetricsError::InvalidParameter`] if `eps` is
    /// negative or not finite; [`MetricsError::ConstantInput`] if `eps == 0`
    /// and all samples are equal; [`MetricsError::Overflow`] if the mean or
    /// variance overflows.
    pub fn fit_with(samples: &[f64], estimator: VarianceEstimator, eps: f64) -> Result<Self> {
        if !(eps.is_finite() && eps >= 0.0) {
            return Err(MetricsError::InvalidParameter {
                name: "eps",
                reason: format!("{eps} must be finite and >= 0"),
            });
        }
        let variance = sample_variance(samples, estimator)?;
        let mean = samples.iter().sum::<f64>() / samples.len() as f64;
        let std = validate::finite_output("normalizer std", (variance + eps).sqrt())?;
        if std == 0.0 {
            return Err(MetricsError::ConstantInput {
                what: "samples",
                consequence: "the standard deviation is zero and normalising would divide by \
                              zero (use eps > 0)",
            });
        }
        Ok(Self { mean, std })
    }

    /// Normalises one reward: `(r - mean) / std`.
    pub fn apply(&self, r: f64) -> f64 {
        (r - self.mean) / self.std
    }

    /// Normalises every reward of a slice.
    pub fn apply_slice(&self, rewards: &[f64]) -> Vec<f64> {
        rewards.iter().map(|&r| self.apply(r)).collect()
    }

    /// Undoes [`apply`](Self::apply): `z * std + mean`.
    pub fn invert(&self, z: f64) -> f64 {
        z * self.std + self.mean
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn paper_rule_by_hand() {
        let n = Normalizer::fit(&[1.0, 3.0]).unwrap();
        assert_eq!(n.mean, 2.0);
        assert!((n.std - (2.0f64 + 1e-8).sqrt()).abs() < 1e-15);
        let constant = Normalizer::fit(&[5.0; 3]).unwrap();
        assert!((constant.std - 1e-4).abs() < 1e-18);
        assert_eq!(constant.apply(5.0), 0.0);
    }

    #[test]
    fn biased_estimator_and_zero_eps() {
        let n = Normalizer::fit_with(&[1.0, 3.0], VarianceEstimator::Biased, 0.0).unwrap();
        assert_eq!(
            n,
            Normalizer {
                mean: 2.0,
                std: 1.0
            }
        );
        assert_eq!(n.apply_slice(&[1.0, 3.0]), vec![-1.0, 1.0]);
        assert_eq!(n.invert(1.0), 3.0);
    }

    #[test]
    fn bad_input_is_reported() {
        use MetricsError::*;
        assert!(matches!(Normalizer::fit(&[1.0]), Err(TooFew { .. })));
        assert!(matches!(
            Normalizer::fit(&[1.0, f64::NAN]),
            Err(NotFinite { .. })
        ));
        assert!(matches!(
            Normalizer::fit_with(&[2.0, 2.0], VarianceEstimator::Biased, 0.0),
            Err(ConstantInput { .. })
        ));
        assert!(matches!(
            Normalizer::fit_with(&[1.0, 2.0], VarianceEstimator::Biased, -1.0),
            Err(InvalidParameter { name: "eps", .. })
        ));
        assert!(matches!(
            Normalizer::new(0.0, 0.0),
            Err(InvalidParameter { name: "std", .. })
        ));
        assert!(matches!(
            Normalizer::new(f64::NAN, 1.0),
            Err(InvalidParameter { name: "mean", .. })
        ));
    }

    proptest! {
        #[test]
        fn normalised_rewards_have_mean_zero_and_invert(
            s in prop::collection::vec(-1e3..1e3f64, 2..100),
        ) {
            let n = Normalizer::fit(&s).unwrap();
            let z = n.apply_slice(&s);
            let mean = z.iter().sum::<f64>() / z.len() as f64;
            prop_assert!(mean.abs() <= 1e-9, "mean {}", mean);
            let var = sample_variance(&z, VarianceEstimator::Unbiased).unwrap();
            prop_assert!(var <= 1.0 + 1e-9);
            for (&r, &zi) in s.iter().zip(&z) {
                prop_assert!((n.invert(zi) - r).abs() <= 1e-9 * (1.0 + r.abs()));
            }
        }
    }
}
