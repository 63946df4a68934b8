//! Numerically stable softmax and log-softmax of a logit vector.

use super::error::Result;
use super::validate;

/// `log(sum_i exp(x_i))`, computed after subtracting the maximum.
///
/// Returns `-inf` for an empty slice.
fn log_sum_exp(logits: &[f64]) -> f64 {
    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return max;
    }
    max + logits.iter().map(|&x| (x - max).exp()).sum::<f64>().ln()
}

/// `log softmax(logits)_i = logits_i - log(sum_j exp(logits_j))`, stable for
/// any magnitude of finite logits.
///
/// This is the unchecked fast path for simulators that keep their logits
/// finite; an empty input gives an empty output. Use [`try_log_softmax`] for
/// input that still needs validating.
pub fn log_softmax(logits: &[f64]) -> Vec<f64> {
    let lse = log_sum_exp(logits);
    logits.iter().map(|&x| x - lse).collect()
}

/// `softmax(logits)_i = exp(logits_i) / sum_j exp(logits_j)`, computed with
/// the maximum subtracted so it never overflows for finite logits.
///
/// The unchecked fast path; see [`log_softmax`] and [`try_softmax`].
pub fn softmax(logits: &[f64]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = logits.iter().map(|&x| (x - max).exp()).collect();
    let total: f64 = exps.iter().sum();
    exps.into_iter().map(|e| e / total).collect()
}

/// Checks that `logits` are a non-empty vector of finite numbers.
fn check_logits(what: &'static str, logits: &[f64]) -> Result<()> {
    validate::at_least(what, 1, logits.len())?;
    validate::finite(what, logits)
}

/// [`softmax`] after checking the logits are non-empty and finite.
///
/// # Errors
/// [`MetricsError::Empty`](super::MetricsError::Empty) or
/// [`MetricsError::NotFinite`](super::MetricsError::NotFinite).
pub fn try_softmax(logits: &[f64]) -> Result<Vec<f64>> {
    check_logits("logits", logits)?;
    Ok(softmax(logits))
}

/// [`log_softmax`] after checking the logits are non-empty and finite.
///
/// # Errors
/// As [`try_softmax`].
pub fn try_log_softmax(logits: &[f64]) -> Result<Vec<f64>> {
    check_logits("logits", logits)?;
    Ok(log_softmax(logits))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::MetricsError;
    use proptest::prelude::*;

    #[test]
    fn hand_computed() {
        let p = softmax(&[0.0, 2f64.ln()]);
        assert!((p[0] - 1.0 / 3.0).abs() < 1e-15 && (p[1] - 2.0 / 3.0).abs() < 1e-15);
        let lp = log_softmax(&[1000.0, 1000.0]);
        assert!(lp.iter().all(|&x| (x + 2f64.ln()).abs() < 1e-12));
        assert!(softmax(&[]).is_empty());
        assert_eq!(softmax(&[-1e308, 1e308]), vec![0.0, 1.0]);
    }

    #[test]
    fn checked_versions_reject_bad_logits() {
        assert!(matches!(try_softmax(&[]), Err(MetricsError::Empty { .. })));
        assert!(matches!(
            try_log_softmax(&[0.0, f64::NAN]),
            Err(MetricsError::NotFinite { index: 1, .. })
        ));
        assert_eq!(try_softmax(&[0.0, 0.0]).unwrap(), vec![0.5, 0.5]);
    }

    proptest! {
        #[test]
        fn softmax_is_a_distribution_consistent_with_log_softmax(
            logits in prop::collection::vec(-500.0..500.0f64, 1..30),
        ) {
            let p = softmax(&logits);
            prop_assert!((p.iter().sum::<f64>() - 1.0).abs() <= 1e-12);
            prop_assert!(p.iter().all(|&x| (0.0..=1.0).contains(&x)));
            for (pi, lpi) in p.iter().zip(log_softmax(&logits)) {
                prop_assert!((pi - lpi.exp()).abs() <= 1e-12);
            }
        }
    }
}
