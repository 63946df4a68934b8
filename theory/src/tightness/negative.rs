//! Negative controls: every check rerun with its bound tightened past the tightest
//! margin it found must fail.
//!
//! For a check whose worst margin (over its own instances and the adversarial search)
//! is `w`, the rerun requires margin `w (1 + eps)`; the instance that attained `w` is
//! evaluated again (same seed, deterministic), so a check whose pass condition really
//! compares margins must now fail. A check with judged slope claims is rerun with
//! every prediction moved against its fit by more than the largest slack among them
//! (`tolerance - |fitted - predicted|` for an exact law, the one-sided gap for an
//! inequality), so every one of those claims must fail too.

use rayon::prelude::*;
use serde::Serialize;

use crate::checks::{all_checks, run_check, CheckConfig, CheckReport};

/// The relative amount by which a negative control tightens past the tightest margin.
pub const NEGATIVE_CONTROL_EPS: f64 = 1e-6;

/// The outcome of one negative control.
#[derive(Debug, Clone, Serialize)]
pub struct NegativeControl {
    /// The check.
    pub check: String,
    /// The check's worst margin in the normal run.
    pub worst_margin: f64,
    /// The margin the rerun required.
    pub required_margin: f64,
    /// How far the rerun moved every judged slope prediction (0: no judged slopes).
    pub slope_shift: f64,
    /// Whether the rerun's worst margin fell short of the requirement.
    pub margin_failed: bool,
    /// Judged slope claims that failed in the rerun, of all judged ones.
    pub slopes_failed: usize,
    /// Judged slope claims (exact laws and one-sided claims).
    pub slopes_judged: usize,
    /// Whether the rerun failed as it must (margin failed and every judged slope failed).
    pub failed_as_required: bool,
}

/// Reruns every check of `reports` (the normal run, in [`all_checks`] order) with its
/// bound tightened past its tightest margin.
pub fn negative_controls(cfg: &CheckConfig, reports: &[CheckReport]) -> Vec<NegativeControl> {
    all_checks()
        .into_par_iter()
        .zip(reports.par_iter())
        .map(|((key, f), normal)| {
            let slacks: Vec<f64> = normal.slopes.iter().filter_map(|s| s.slack()).collect();
            let slope_shift = if slacks.is_empty() {
                0.0
            } else {
                let most = slacks.iter().copied().fold(0.0f64, |a, b| a.max(b.abs()));
                most * (1.0 + NEGATIVE_CONTROL_EPS) + 1e-9
            };
            let tight = CheckConfig {
                required_margin: normal.worst_margin * (1.0 + NEGATIVE_CONTROL_EPS),
                slope_shift,
                ..cfg.clone()
            };
            let rerun = run_check(key, f, &tight);
            let margin_failed = !crate::checks::reaches(rerun.worst_margin, tight.required_margin);
            let judged: Vec<_> = rerun
                .slopes
                .iter()
                .filter(|s| s.slack().is_some())
                .collect();
            let slopes_failed = judged
                .iter()
                .filter(|s| s.violation(slope_shift).is_some())
                .count();
            NegativeControl {
                check: rerun.check.clone(),
                worst_margin: normal.worst_margin,
                required_margin: tight.required_margin,
                slope_shift,
                margin_failed,
                slopes_failed,
                slopes_judged: judged.len(),
                failed_as_required: !rerun.passed
                    && margin_failed
                    && normal.worst_margin.is_finite()
                    && slopes_failed == judged.len(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::run_all;

    /// At quick size every check passes, and every check fails once its bound is
    /// tightened past the tightest margin it found (and its slopes moved past their slack).
    #[test]
    fn every_check_fails_its_negative_control_quick() {
        let cfg = CheckConfig {
            quick: true,
            ..Default::default()
        };
        let reports = run_all(&cfg);
        for r in &reports {
            assert!(r.passed, "{}: {:#?}", r.check, r.failures);
        }
        let controls = negative_controls(&cfg, &reports);
        assert_eq!(controls.len(), all_checks().len());
        for c in &controls {
            assert!(c.failed_as_required, "{c:#?}");
            assert!(c.required_margin > c.worst_margin, "{c:#?}");
        }
        // The checks with order statements have judged slope claims, and all failed.
        let with_slopes = controls.iter().filter(|c| c.slopes_judged > 0).count();
        assert!(with_slopes >= 4, "{controls:#?}");
    }
}
