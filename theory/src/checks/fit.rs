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
    /// `Some(d)`: a one-sided claim, the fit must lie on side `d` of `predicted` (what
    /// a lower or upper bound implies for a sweep), less `tolerance` if one is given (an
    /// asymptotic claim fitted over a finite range); `None`: judged by `tolerance` only.
    pub direction: Option<SlopeDirection>,
}

/// The side of the predicted slope a one-sided slope claim allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SlopeDirection {
    /// `fitted <= predicted`.
    AtMost,
    /// `fitted >= predicted`.
    AtLeast,
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
            direction: None,
        }
    }

    /// The same fit, judged as the one-sided claim `fitted <= predicted`.
    pub fn at_most(mut self) -> Self {
        self.direction = Some(SlopeDirection::AtMost);
        self
    }

    /// The same fit, judged as the one-sided claim `fitted >= predicted`.
    pub fn at_least(mut self) -> Self {
        self.direction = Some(SlopeDirection::AtLeast);
        self
    }

    /// How much room the claim leaves: `tolerance - |fitted - predicted|` for an exact
    /// law, `predicted - fitted` (at most) or `fitted - predicted` (at least) plus the
    /// tolerance (if any) for a one-sided claim; `None` for a slope that is reported
    /// only. NaN when the fit is not finite (never a pass).
    pub fn slack(&self) -> Option<f64> {
        let gap = if self.fitted.is_finite() {
            self.fitted - self.predicted
        } else {
            f64::NAN
        };
        let tol = self.tolerance.unwrap_or(0.0);
        match self.direction {
            Some(SlopeDirection::AtMost) => Some(tol - gap),
            Some(SlopeDirection::AtLeast) => Some(tol + gap),
            None => self.tolerance.map(|_| tol - gap.abs()),
        }
    }

    /// Why the claim fails when the prediction is moved `shift` against the fit
    /// (0 = the claim as stated), or `None` if it holds (or is reported only).
    pub fn violation(&self, shift: f64) -> Option<String> {
        let slack = self.slack()?;
        if slack >= shift {
            return None;
        }
        let tol = self.tolerance.unwrap_or(0.0);
        let claim = match self.direction {
            Some(SlopeDirection::AtMost) => format!("<= {:.4} (+ {tol})", self.predicted),
            Some(SlopeDirection::AtLeast) => format!(">= {:.4} (- {tol})", self.predicted),
            None => format!("= {:.4} +- {tol}", self.predicted),
        };
        Some(if shift > 0.0 {
            format!(
                "{}: fitted slope {:.4} fails the claim {claim} with the prediction moved by {shift:.3e} \
                 against it (slack {slack:.3e})",
                self.what, self.fitted
            )
        } else {
            format!(
                "{}: fitted slope {:.4} fails the claim {claim}",
                self.what, self.fitted
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fit(slope: f64) -> Slope {
        let x = [1.0, 10.0, 100.0];
        let y: Vec<f64> = x.iter().map(|v: &f64| v.powf(slope)).collect();
        Slope::fit("s", &x, &y, -0.5, None)
    }

    #[test]
    fn one_sided_claims_judge_the_right_side_and_fail_when_shifted() {
        // Fitted -1: at most -1/2 holds (slack 1/2), at least -1/2 fails.
        let s = fit(-1.0).at_most();
        assert!((s.slack().unwrap() - 0.5).abs() < 1e-9);
        assert!(s.violation(0.0).is_none());
        assert!(s.violation(0.6).is_some());
        assert!(fit(-1.0).at_least().violation(0.0).is_some());
        // Reported-only slopes are never judged.
        assert!(fit(-1.0).slack().is_none());
        // A non-finite fit never passes.
        let nan = Slope::fit("s", &[1.0], &[1.0], -0.5, None).at_most();
        assert!(nan.violation(0.0).is_some());
    }
}
