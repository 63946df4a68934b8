//! A confidence interval, as the records store it and the analysis reports it.

use serde::{Deserialize, Serialize};

/// A closed interval `[lo, hi]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Lower end.
    pub lo: f64,
    /// Upper end.
    pub hi: f64,
}

impl Interval {
    /// Whether the interval lies strictly above zero.
    pub fn above_zero(&self) -> bool {
        self.lo > 0.0
    }

    /// Whether the interval lies strictly below zero.
    pub fn below_zero(&self) -> bool {
        self.hi < 0.0
    }

    /// `[lo, hi]` with three decimals.
    pub fn text(&self) -> String {
        format!("[{:.3}, {:.3}]", self.lo, self.hi)
    }
}
