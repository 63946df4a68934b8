//! Means with 95% intervals over instances or seeds, the only statistics the levers
//! report.

use serde::Serialize;

/// A mean with its 95% Student-t interval (`lo = hi = mean` from one value).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Interval {
    /// The mean.
    #[serde(serialize_with = "crate::json::f64")]
    pub mean: f64,
    /// Lower end.
    #[serde(serialize_with = "crate::json::f64")]
    pub lo: f64,
    /// Upper end.
    #[serde(serialize_with = "crate::json::f64")]
    pub hi: f64,
    /// Values averaged.
    pub n: usize,
}

impl Interval {
    /// The mean of the finite `values` with a 95% interval; `None` when there are none.
    pub fn of(values: &[f64]) -> Option<Self> {
        let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        let n = v.len();
        if n == 0 {
            return None;
        }
        let mean = v.iter().sum::<f64>() / n as f64;
        let half = if n < 2 {
            0.0
        } else {
            let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            t975(n - 1) * (var / n as f64).sqrt()
        };
        Some(Self {
            mean,
            lo: mean - half,
            hi: mean + half,
            n,
        })
    }

    /// Half the interval's width.
    pub fn half_width(&self) -> f64 {
        0.5 * (self.hi - self.lo)
    }

    /// `mean [lo, hi]` with `digits` decimals.
    pub fn show(&self, digits: usize) -> String {
        format!(
            "{:.d$} [{:.d$}, {:.d$}]",
            self.mean,
            self.lo,
            self.hi,
            d = digits
        )
    }
}

/// `Interval::of(values)` shown with `digits` decimals, or "n/a" without values.
pub fn show(values: &[f64], digits: usize) -> String {
    Interval::of(values).map_or_else(|| "n/a".to_string(), |i| i.show(digits))
}

/// The 0.975 quantile of Student's t with `df >= 1` degrees of freedom.
fn t975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::INFINITY,
        1..=30 => TABLE[df - 1],
        _ => 1.96 + 2.4 / df as f64,
    }
}

/// The sample standard deviation of the finite `values` (`NaN` with fewer than two).
pub fn std_dev(values: &[f64]) -> f64 {
    let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.len() < 2 {
        return f64::NAN;
    }
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_use_student_t_and_skip_non_finite_values() {
        let i = Interval::of(&[1.0, 2.0, 3.0, f64::NAN]).unwrap();
        assert_eq!(i.n, 3);
        assert!((i.mean - 2.0).abs() < 1e-15);
        // sd 1, n 3: 4.303 / sqrt(3).
        assert!((i.half_width() - 4.303 / 3f64.sqrt()).abs() < 1e-12);
        assert!(Interval::of(&[f64::INFINITY]).is_none());
        assert_eq!(Interval::of(&[5.0]).unwrap().half_width(), 0.0);
        assert!((std_dev(&[1.0, 3.0]) - 2f64.sqrt()).abs() < 1e-15);
        assert_eq!(show(&[], 2), "n/a");
    }
}
