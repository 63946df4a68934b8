//! Least-squares slopes on log-log axes, for the order statements.

use serde::Serialize;

/// A fitted log-log slope beside the slope a result predicts.
#[derive(Debug, Clone, Serialize)]
pub struct Slope {
    /// What was swept against what, e.g. "log t_gamma vs log Var".
    pub what: String,
    /// The least-squares slope.
    pub fitted: f64,
    /// The slope the result predicts (or the exponent of its bound).
    pub predicted: f64,
    /// `Some(t)`: the fit must be within `t` of the prediction (an exact law);
    /// `None`: reported only (the bound's exponent is an inequality, not a law).
    pub tolerance: Option<f64>,
    /// Number of points and decades spanned.
    pub points: usize,
    /// Decades of the swept variable.
    pub decades: f64,
}

/// The least-squares slope of `ln y` against `ln x` (points with non-positive or
/// non-finite coordinates are skipped); returns `(slope, points used, decades of x)`.
pub fn log_log_slope(x: &[f64], y: &[f64]) -> (f64, usize, f64) {
    let pts: Vec<(f64, f64)> = x
        .iter()
        .zip(y)
        .filter(|(a, b)| **a > 0.0 && **b > 0.0 && a.is_finite() && b.is_finite())
        .map(|(a, b)| (a.ln(), b.ln()))
        .collect();
    let n = pts.len() as f64;
    if pts.len() < 2 {
        return (f64::NAN, pts.len(), 0.0);
    }
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let (lo, hi) = pts
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.0), hi.max(p.0))
        });
    (sxy / sxx, pts.len(), (hi - lo) / std::f64::consts::LN_10)
}

impl Slope {
    /// Fits `y ~ x^slope` and packages it beside `predicted`.
    pub fn fit(what: &str, x: &[f64], y: &[f64], predicted: f64, tolerance: Option<f64>) -> Self {
        let (fitted, points, decades) = log_log_slope(x, y);
        Self {
            what: what.into(),
            fitted,
            predicted,
            tolerance,
            points,
            decades,
        }
    }
}
