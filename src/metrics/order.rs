//! A total order on `f64` that agrees with `==` on finite values (crate-private).

use std::cmp::Ordering;

/// Compares two floats so that `-0.0` and `0.0` are equal and the order is total.
///
/// On finite inputs this is the usual numeric order. Unlike
/// `partial_cmp(..).unwrap_or(Equal)` it is a total order even with NaN
/// (NaNs sort to the ends), so sorting with it can never panic.
pub(crate) fn cmp_f64(a: f64, b: f64) -> Ordering {
    canonical_zero(a).total_cmp(&canonical_zero(b))
}

/// Maps `-0.0` to `0.0` and leaves every other value alone.
fn canonical_zero(x: f64) -> f64 {
    if x == 0.0 {
        0.0
    } else {
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeros_are_equal_and_order_is_numeric() {
        assert_eq!(cmp_f64(-0.0, 0.0), Ordering::Equal);
        assert_eq!(cmp_f64(-1.0, 0.0), Ordering::Less);
        assert_eq!(cmp_f64(2.0, 1.5), Ordering::Greater);
    }
}
