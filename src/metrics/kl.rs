//! Kullback–Leibler divergence between two distributions over the same outputs.

use super::error::Result;
use super::softmax::log_softmax;
use super::validate;

/// `KL(p || q) = sum_i p_i ln(p_i / q_i)`, with `0 ln(0 / q) = 0`.
///
/// Returns `f64::INFINITY` when some `p_i > 0` has `q_i = 0` (`p` is not
/// absolutely continuous with respect to `q`); that is the mathematically
/// correct value, not an error. Both inputs must be probability vectors of
/// the same length (see [`expected_reward`](super::expected_reward) for the
/// tolerance). Rounding can make the sum slightly negative; it is clamped at 0.
///
/// # Errors
/// [`MetricsError::LengthMismatch`](super::MetricsError::LengthMismatch),
/// [`MetricsError::Empty`](super::MetricsError::Empty),
/// [`MetricsError::NotFinite`](super::MetricsError::NotFinite) or
/// [`MetricsError::InvalidProbabilities`](super::MetricsError::InvalidProbabilities).
pub fn kl_divergence(p: &[f64], q: &[f64]) -> Result<f64> {
    validate::same_len("p vs q", p.len(), q.len())?;
    validate::distribution("p", p)?;
    validate::distribution("q", q)?;
    let mut kl = 0.0;
    for (&pi, &qi) in p.iter().zip(q) {
        if pi == 0.0 {
            continue;
        }
        if qi == 0.0 {
            return Ok(f64::INFINITY);
        }
        // ln p - ln q rather than ln(p / q): p / q can overflow for tiny q.
        kl += pi * (pi.ln() - qi.ln());
    }
    Ok(kl.max(0.0))
}

/// `KL(softmax(logits_p) || softmax(logits_q))`, computed from log-softmax
/// values so that extreme logits neither overflow nor lose precision.
///
/// Always finite for finite logits; clamped at 0.
///
/// # Errors
/// [`MetricsError::LengthMismatch`](super::MetricsError::LengthMismatch),
/// [`MetricsError::Empty`](super::MetricsError::Empty) or
/// [`MetricsError::NotFinite`](super::MetricsError::NotFinite) (logits must
/// be finite), [`MetricsError::Overflow`](super::MetricsError::Overflow) if
/// the logits differ by more than `f64` can represent.
pub fn kl_from_logits(logits_p: &[f64], logits_q: &[f64]) -> Result<f64> {
    validate::paired_scores(
        "logits_p vs logits_q",
        ("logits_p", logits_p),
        ("logits_q", logits_q),
        1,
    )?;
    let lp = log_softmax(logits_p);
    let lq = log_softmax(logits_q);
    let kl: f64 = lp
        .iter()
        .zip(&lq)
        .map(|(&a, &b)| {
            let p = a.exp();
            if p == 0.0 {
                0.0
            } else {
                p * (a - b)
            }
        })
        .sum();
    validate::finite_output("KL divergence", kl).map(|k| k.max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{softmax, MetricsError};
    use proptest::prelude::*;

    fn distribution(n: usize) -> impl Strategy<Value = Vec<f64>> {
        prop::collection::vec(0.01..1.0f64, n).prop_map(|w| {
            let total: f64 = w.iter().sum();
            w.iter().map(|x| x / total).collect()
        })
    }

    #[test]
    fn hand_computed() {
        let kl = kl_divergence(&[0.5, 0.5], &[0.25, 0.75]).unwrap();
        let expected = 0.5 * (2.0f64).ln() + 0.5 * (0.5f64 / 0.75).ln();
        assert!((kl - expected).abs() < 1e-15);
        assert_eq!(kl_divergence(&[0.0, 1.0], &[0.5, 0.5]).unwrap(), 2f64.ln());
        assert_eq!(
            kl_divergence(&[0.5, 0.5], &[1.0, 0.0]).unwrap(),
            f64::INFINITY
        );
        assert_eq!(kl_divergence(&[1.0, 0.0], &[1.0, 0.0]).unwrap(), 0.0);
        // Extreme logits: q puts almost no mass on output 0.
        let kl = kl_from_logits(&[0.0, 0.0], &[-800.0, 0.0]).unwrap();
        assert!((kl - (0.5 * 800.0 - 2f64.ln() + 0.5 * 0.0)).abs() < 1e-9);
    }

    #[test]
    fn bad_input_is_reported() {
        use MetricsError::*;
        assert!(matches!(
            kl_divergence(&[1.0], &[0.5, 0.5]),
            Err(LengthMismatch { .. })
        ));
        assert!(matches!(
            kl_divergence(&[0.9, 0.2], &[0.5, 0.5]),
            Err(InvalidProbabilities { .. })
        ));
        assert!(matches!(kl_divergence(&[], &[]), Err(Empty { .. })));
        assert!(matches!(
            kl_from_logits(&[0.0], &[f64::NEG_INFINITY]),
            Err(NotFinite {
                what: "logits_q",
                ..
            })
        ));
        assert!(matches!(
            kl_from_logits(&[0.0, 1.0], &[0.0]),
            Err(LengthMismatch { .. })
        ));
    }

    proptest! {
        #[test]
        fn kl_is_nonnegative_and_zero_on_equal((p, q) in (1usize..12).prop_flat_map(|n| (distribution(n), distribution(n)))) {
            prop_assert!(kl_divergence(&p, &q).unwrap() >= 0.0);
            prop_assert_eq!(kl_divergence(&p, &p).unwrap(), 0.0);
        }

        #[test]
        fn logits_agree_with_probabilities(
            (a, b) in (1usize..12).prop_flat_map(|n| (
                prop::collection::vec(-20.0..20.0f64, n),
                prop::collection::vec(-20.0..20.0f64, n),
            )),
        ) {
            let direct = kl_divergence(&softmax(&a), &softmax(&b)).unwrap();
            let stable = kl_from_logits(&a, &b).unwrap();
            prop_assert!((direct - stable).abs() <= 1e-9 * (1.0 + direct), "{} vs {}", direct, stable);
            prop_assert_eq!(kl_from_logits(&a, &a).unwrap(), 0.0);
        }
    }
}
