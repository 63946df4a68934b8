//! Input checks shared by the metric functions (crate-private).

use super::error::{MetricsError, Result};

/// How far the entries of a probability vector may sum from 1 (relative to 1).
pub const PROBABILITY_SUM_TOLERANCE: f64 = 1e-9;

/// Fails unless `left == right`.
pub(crate) fn same_len(what: &'static str, left: usize, right: usize) -> Result<()> {
    if left == right {
        Ok(())
    } else {
        Err(MetricsError::LengthMismatch { what, left, right })
    }
}

/// Fails unless `len >= needed`; an empty input is reported as [`MetricsError::Empty`].
pub(crate) fn at_least(what: &'static str, needed: usize, len: usize) -> Result<()> {
    if len == 0 && needed > 0 {
        Err(MetricsError::Empty { what })
    } else if len < needed {
        Err(MetricsError::TooFew {
            what,
            needed,
            got: len,
        })
    } else {
        Ok(())
    }
}

/// Fails at the first NaN or infinite element.
pub(crate) fn finite(what: &'static str, xs: &[f64]) -> Result<()> {
    match xs.iter().position(|x| !x.is_finite()) {
        Some(index) => Err(MetricsError::NotFinite { what, index }),
        None => Ok(()),
    }
}

/// Fails unless `x` is finite; used on computed results.
pub(crate) fn finite_output(what: &'static str, x: f64) -> Result<f64> {
    if x.is_finite() {
        Ok(x)
    } else {
        Err(MetricsError::Overflow { what })
    }
}

/// Checks that `p` is a probability vector and returns its total.
///
/// Non-empty, finite, every entry `>= 0`, total within
/// [`PROBABILITY_SUM_TOLERANCE`] of 1.
pub(crate) fn distribution(what: &'static str, p: &[f64]) -> Result<f64> {
    at_least(what, 1, p.len())?;
    finite(what, p)?;
    if let Some(index) = p.iter().position(|&x| x < 0.0) {
        return Err(MetricsError::InvalidProbabilities {
            reason: format!("{what}[{index}] = {} is negative", p[index]),
        });
    }
    let total: f64 = p.iter().sum();
    if (total - 1.0).abs() > PROBABILITY_SUM_TOLERANCE {
        return Err(MetricsError::InvalidProbabilities {
            reason: format!(
                "{what} sums to {total}, not to 1 (tolerance {PROBABILITY_SUM_TOLERANCE:e})"
            ),
        });
    }
    Ok(total)
}

/// Checks two finite score vectors of equal length `>= needed`.
///
/// `pair` names the two inputs together for the length-mismatch message.
pub(crate) fn paired_scores(
    pair: &'static str,
    (left_name, left): (&'static str, &[f64]),
    (right_name, right): (&'static str, &[f64]),
    needed: usize,
) -> Result<()> {
    same_len(pair, left.len(), right.len())?;
    at_least(left_name, needed, left.len())?;
    finite(left_name, left)?;
    finite(right_name, right)
}
