//! Pearson and Spearman correlation between two samples.

use super::error::{MetricsError, Result};
use super::order::cmp_f64;
use super::validate;

/// What a constant input means for a correlation.
const CORRELATION_UNDEFINED: &str =
    "the correlation is undefined (it has zero variance, so there is nothing to correlate)";

/// Checks two finite samples of equal length `n >= 2`.
fn check_samples(x: &[f64], y: &[f64]) -> Result<()> {
    validate::paired_scores("x vs y", ("x", x), ("y", y), 2)
}

/// Fails if every element of `xs` equals the first.
fn not_constant(what: &'static str, xs: &[f64]) -> Result<()> {
    if xs.iter().all(|&v| v == xs[0]) {
        Err(MetricsError::ConstantInput {
            what,
            consequence: CORRELATION_UNDEFINED,
        })
    } else {
        Ok(())
    }
}

/// `xs` divided by its largest magnitude (so values lie in `[-1, 1]`) and
/// then centred. Pearson correlation is invariant to both, and the scaling
/// keeps the sums of squares far from overflow.
fn scaled_deviations(xs: &[f64]) -> Vec<f64> {
    let scale = xs.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let scaled: Vec<f64> = xs.iter().map(|v| v / scale).collect();
    let mean = scaled.iter().sum::<f64>() / scaled.len() as f64;
    scaled.into_iter().map(|v| v - mean).collect()
}

/// Pearson correlation coefficient of `x` and `y`, clamped to `[-1, 1]`.
///
/// # Errors
/// [`MetricsError::LengthMismatch`], [`MetricsError::Empty`] /
/// [`MetricsError::TooFew`] (needs `n >= 2`), [`MetricsError::NotFinite`],
/// and [`MetricsError::ConstantInput`] when either input is constant, because
/// the correlation is then undefined.
pub fn pearson(x: &[f64], y: &[f64]) -> Result<f64> {
    check_samples(x, y)?;
    not_constant("x", x)?;
    not_constant("y", y)?;
    let dx = scaled_deviations(x);
    let dy = scaled_deviations(y);
    let sxy: f64 = dx.iter().zip(&dy).map(|(a, b)| a * b).sum();
    let sxx: f64 = dx.iter().map(|a| a * a).sum();
    let syy: f64 = dy.iter().map(|b| b * b).sum();
    let denominator = sxx.sqrt() * syy.sqrt();
    if denominator == 0.0 {
        // Distinct values closer together than f64 resolves after scaling.
        let what = if sxx == 0.0 { "x" } else { "y" };
        return Err(MetricsError::ConstantInput {
            what,
            consequence: CORRELATION_UNDEFINED,
        });
    }
    Ok((sxy / denominator).clamp(-1.0, 1.0))
}

/// 1-based ranks of `x`; tied values share the average of their ranks.
///
/// For example `[10, 30, 20, 30]` gives `[1, 3.5, 2, 3.5]`. Callers are
/// expected to pass NaN-free input (the public correlation functions validate
/// it); a NaN never panics but gets a rank of its own at an end.
pub fn average_ranks(x: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&i, &j| cmp_f64(x[i], x[j]));
    let mut ranks = vec![0.0; x.len()];
    let mut start = 0;
    for run in order.chunk_by(|&i, &j| x[i] == x[j]) {
        // Positions start..start+len hold ranks start+1..=start+len.
        let average = start as f64 + (run.len() as f64 + 1.0) / 2.0;
        for &i in run {
            ranks[i] = average;
        }
        start += run.len();
    }
    ranks
}

/// Spearman rank correlation: the Pearson correlation of the
/// [`average_ranks`] of `x` and `y`.
///
/// # Errors
/// As [`pearson`].
pub fn spearman(x: &[f64], y: &[f64]) -> Result<f64> {
    check_samples(x, y)?;
    pearson(&average_ranks(x), &average_ranks(y))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn samples() -> impl Strategy<Value = (Vec<f64>, Vec<f64>)> {
        (3usize..40)
            .prop_flat_map(|n| {
                let v = prop::collection::vec((-6i32..=6).prop_map(f64::from), n);
                (v.clone(), v)
            })
            .prop_filter("non-constant", |(x, y)| {
                x.iter().any(|&v| v != x[0]) && y.iter().any(|&v| v != y[0])
            })
    }

    #[test]
    fn hand_computed() {
        // dx = [-1, 0, 1], dy = [-7/3, -1/3, 8/3]: sxy = 5, sxx = 2, syy = 114/9.
        let r = pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 7.0]).unwrap();
        assert!((r - 5.0 / (2.0 * 114.0 / 9.0f64).sqrt()).abs() < 1e-12);
        assert!((pearson(&[1.0, 2.0], &[5.0, 3.0]).unwrap() + 1.0).abs() < 1e-15);
        assert_eq!(
            average_ranks(&[10.0, 30.0, 20.0, 30.0]),
            vec![1.0, 3.5, 2.0, 3.5]
        );
        assert_eq!(average_ranks(&[]), Vec::<f64>::new());
        assert_eq!(average_ranks(&[-0.0, 0.0]), vec![1.5, 1.5]);
        assert!(
            (spearman(&[1.0, 2.0, 3.0, 4.0], &[1.0, 3.0, 2.0, 4.0]).unwrap() - 0.8).abs() < 1e-12
        );
        // Large magnitudes do not overflow.
        assert!((pearson(&[1e300, -1e300, 0.0], &[1.0, -1.0, 0.0]).unwrap() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn bad_input_is_reported() {
        use MetricsError::*;
        let err = pearson(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]).unwrap_err();
        assert!(matches!(err, ConstantInput { what: "x", .. }));
        assert!(err.to_string().contains("undefined"));
        assert!(matches!(
            spearman(&[1.0, 2.0], &[3.0, 3.0]),
            Err(ConstantInput { what: "y", .. })
        ));
        assert!(matches!(pearson(&[1.0], &[1.0]), Err(TooFew { .. })));
        assert!(matches!(
            pearson(&[1.0, 2.0], &[1.0]),
            Err(LengthMismatch { .. })
        ));
        assert!(matches!(
            spearman(&[1.0, f64::NAN], &[1.0, 2.0]),
            Err(NotFinite {
                what: "x",
                index: 1
            })
        ));
    }

    proptest! {
        #[test]
        fn pearson_is_bounded_and_symmetric((x, y) in samples()) {
            let r = pearson(&x, &y).unwrap();
            prop_assert!((-1.0..=1.0).contains(&r));
            prop_assert!((r - pearson(&y, &x).unwrap()).abs() <= 1e-12);
            prop_assert!((pearson(&x, &x).unwrap() - 1.0).abs() <= 1e-12);
        }

        #[test]
        fn spearman_is_invariant_under_increasing_transforms((x, y) in samples()) {
            let s = spearman(&x, &y).unwrap();
            let cubed: Vec<f64> = x.iter().map(|v| v * v * v + v).collect();
            let exp: Vec<f64> = y.iter().map(|v| v.exp()).collect();
            prop_assert_eq!(spearman(&cubed, &exp).unwrap(), s);
            prop_assert!((-1.0..=1.0).contains(&s));
        }

        #[test]
        fn ranks_sum_to_triangular_number(x in prop::collection::vec((-5i32..=5).prop_map(f64::from), 0..50)) {
            let n = x.len() as f64;
            prop_assert_eq!(average_ranks(&x).iter().sum::<f64>(), n * (n + 1.0) / 2.0);
        }
    }
}
