//! When a sampled trajectory first reaches a level: threshold crossings and
//! `t_gamma`, the time for the expected reward to rise by `gamma`.

use super::error::{MetricsError, Result};
use super::validate;

/// Checks a trajectory: equal non-zero lengths, finite values, strictly
/// increasing finite times.
fn check_trajectory(times: &[f64], values: &[f64]) -> Result<()> {
    validate::paired_scores("times vs values", ("times", times), ("values", values), 1)?;
    match times.windows(2).position(|w| w[1] <= w[0]) {
        Some(i) => Err(MetricsError::NotIncreasing {
            what: "times",
            index: i + 1,
        }),
        None => Ok(()),
    }
}

/// Where between `t0` and `t1` the segment from `v0 < threshold` to
/// `v1 >= threshold` reaches `threshold`, by linear interpolation.
///
/// Differences are taken of halved values so they cannot overflow.
fn interpolate(t0: f64, t1: f64, v0: f64, v1: f64, threshold: f64) -> f64 {
    let fraction = ((threshold / 2.0 - v0 / 2.0) / (v1 / 2.0 - v0 / 2.0)).clamp(0.0, 1.0);
    (t0 + fraction * 2.0 * (t1 / 2.0 - t0 / 2.0)).clamp(t0, t1)
}

/// First crossing of an already validated trajectory.
fn crossing(times: &[f64], values: &[f64], threshold: f64) -> Option<f64> {
    if values[0] >= threshold {
        return Some(times[0]);
    }
    let i = values.iter().position(|&v| v >= threshold)?;
    Some(interpolate(
        times[i - 1],
        times[i],
        values[i - 1],
        values[i],
        threshold,
    ))
}

/// First time a sampled trajectory reaches `values >= threshold`.
///
/// Between the last sample below the threshold and the first one at or above
/// it the trajectory is taken to be linear. Returns `Some(times[0])` if it
/// starts at or above the threshold and `None` if it never reaches it within
/// the samples.
///
/// # Errors
/// [`MetricsError::LengthMismatch`], [`MetricsError::Empty`],
/// [`MetricsError::NotFinite`] (times and values), [`MetricsError::NotIncreasing`]
/// (times must increase strictly), [`MetricsError::InvalidParameter`] for a
/// non-finite threshold.
pub fn first_crossing(times: &[f64], values: &[f64], threshold: f64) -> Result<Option<f64>> {
    check_trajectory(times, values)?;
    if !threshold.is_finite() {
        return Err(MetricsError::InvalidParameter {
            name: "threshold",
            reason: format!("{threshold} is not finite"),
        });
    }
    Ok(crossing(times, values, threshold))
}

/// `t_gamma`: the first time the trajectory reaches `values[0] + gamma`.
///
/// With `values` the expected ground-truth reward along training and `times`
/// starting at 0, this is the paper's time for the reward to increase by
/// `gamma`; in general it is an absolute time on the `times` axis.
/// Interpolation as in [`first_crossing`]; `None` means the increase is never
/// reached within the trajectory (also when `values[0] + gamma` overflows).
///
/// # Errors
/// As [`first_crossing`]; [`MetricsError::InvalidParameter`] unless `gamma` is
/// finite and positive.
pub fn t_gamma(times: &[f64], values: &[f64], gamma: f64) -> Result<Option<f64>> {
    check_trajectory(times, values)?;
    if !(gamma.is_finite() && gamma > 0.0) {
        return Err(MetricsError::InvalidParameter {
            name: "gamma",
            reason: format!("{gamma} must be finite and positive"),
        });
    }
    let target = values[0] + gamma;
    if !target.is_finite() {
        return Ok(None);
    }
    Ok(crossing(times, values, target))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hand_computed() {
        let t = [0.0, 1.0, 2.0, 4.0];
        let v = [0.0, 0.1, 0.5, 0.9];
        assert_eq!(first_crossing(&t, &v, 0.3).unwrap(), Some(1.5));
        assert_eq!(first_crossing(&t, &v, 0.5).unwrap(), Some(2.0));
        assert_eq!(first_crossing(&t, &v, 0.7).unwrap(), Some(3.0));
        assert_eq!(first_crossing(&t, &v, -1.0).unwrap(), Some(0.0));
        assert_eq!(first_crossing(&t, &v, 1.0).unwrap(), None);
        assert_eq!(t_gamma(&t, &v, 0.3).unwrap(), Some(1.5));
        assert_eq!(t_gamma(&t, &v, 2.0).unwrap(), None);
        // A dip below the start does not matter; the first crossing does.
        assert_eq!(
            t_gamma(&[0.0, 1.0, 2.0, 3.0], &[1.0, 0.0, 2.0, 0.0], 0.5).unwrap(),
            Some(1.75)
        );
        assert_eq!(first_crossing(&[5.0], &[1.0], 0.5).unwrap(), Some(5.0));
    }

    #[test]
    fn bad_input_is_reported() {
        use MetricsError::*;
        assert!(matches!(first_crossing(&[], &[], 0.0), Err(Empty { .. })));
        assert!(matches!(
            first_crossing(&[0.0, 1.0], &[0.0], 0.0),
            Err(LengthMismatch { .. })
        ));
        assert!(matches!(
            first_crossing(&[0.0, 1.0, 1.0], &[0.0; 3], 0.0),
            Err(NotIncreasing { index: 2, .. })
        ));
        assert!(matches!(
            first_crossing(&[0.0, 1.0], &[0.0, f64::NAN], 0.0),
            Err(NotFinite {
                what: "values",
                index: 1
            })
        ));
        assert!(matches!(
            first_crossing(&[0.0, 1.0], &[0.0, 1.0], f64::NAN),
            Err(InvalidParameter {
                name: "threshold",
                ..
            })
        ));
        for gamma in [0.0, -1.0, f64::INFINITY, f64::NAN] {
            assert!(matches!(
                t_gamma(&[0.0, 1.0], &[0.0, 1.0], gamma),
                Err(InvalidParameter { name: "gamma", .. })
            ));
        }
        assert_eq!(
            t_gamma(&[0.0, 1.0], &[f64::MAX, f64::MAX], f64::MAX).unwrap(),
            None
        );
    }

    proptest! {
        /// On a linear trajectory v(t) = v0 + s t sampled on a grid, t_gamma = gamma / s.
        #[test]
        fn linear_trajectory_is_exact(
            v0 in -10.0..10.0f64,
            slope in 0.01..10.0f64,
            steps in 2usize..200,
            horizon in 0.5..50.0f64,
            fraction in 0.001..1.0f64,
        ) {
            let times: Vec<f64> = (0..=steps).map(|k| horizon * k as f64 / steps as f64).collect();
            let values: Vec<f64> = times.iter().map(|t| v0 + slope * t).collect();
            let gamma = fraction * slope * horizon * 0.999;
            let t = t_gamma(&times, &values, gamma).unwrap().unwrap();
            let expected = gamma / slope;
            prop_assert!((t - expected).abs() <= 1e-9 * (1.0 + horizon), "{} vs {}", t, expected);
            prop_assert_eq!(t_gamma(&times, &values, slope * horizon * 1.01).unwrap(), None);
        }
    }
}
