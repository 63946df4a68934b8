//! One module per result of the paper; [`run_all`] runs them and gathers a table.
//!
//! Every check builds its instances (random and constructed), integrates, and records
//! the measured value beside the bound. A check passes only where every inequality
//! holds; a failing instance is kept verbatim in [`CheckReport::failures`] — it is a
//! finding, never something to tune away.

mod fit;
mod horizon;
mod lemma10;
mod lemma11;
mod lemma8;
mod lemma9;
mod prop1;
mod prop2;
pub(crate) mod prop3;
pub(crate) mod prop4;
pub(crate) mod thm4;
mod thm4_kl;
mod thm5;
mod thm6;

pub use fit::{log_log_slope, Slope, SlopeDirection};

use rayon::prelude::*;
use serde::Serialize;

use crate::flow::SolverConfig;
use rmteach::report::{Cell, Table};

/// `value >= level`; false when either is NaN.
pub(crate) fn reaches(value: f64, level: f64) -> bool {
    matches!(
        value.partial_cmp(&level),
        Some(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal)
    )
}

/// `value > level`; false when either is NaN.
pub(crate) fn exceeds(value: f64, level: f64) -> bool {
    value.partial_cmp(&level) == Some(std::cmp::Ordering::Greater)
}

/// How large and how tight a verification run is.
#[derive(Debug, Clone, Serialize)]
pub struct CheckConfig {
    /// Small instance counts and short sweeps (for tests).
    pub quick: bool,
    /// Seed of every random instance.
    pub seed: u64,
    /// Solver and tolerances of every integration.
    pub solver: SolverConfig,
    /// A check passes only where its worst margin is at least this (1 = the paper's
    /// bound). [`crate::tightness::negative_controls`] raises it past the tightest
    /// margin found, and the check must then fail.
    pub required_margin: f64,
    /// Every judged slope claim (an exact law within its tolerance, or a one-sided
    /// inequality) must hold with this much to spare (0 = the claim itself);
    /// negative controls move the predicted slope by more than the claim's slack.
    pub slope_shift: f64,
    /// Multiplies the adversarial search's evaluations per bound (1 = default budget).
    pub search_scale: usize,
}

/// The seed of every random instance unless one is given (`theory verify --seed`, the
/// main job's theory part and the figures' sweeps all start from it).
pub const DEFAULT_SEED: u64 = 20250319;

impl Default for CheckConfig {
    fn default() -> Self {
        Self {
            quick: false,
            seed: DEFAULT_SEED,
            solver: SolverConfig::default(),
            required_margin: 1.0,
            slope_shift: 0.0,
            search_scale: 1,
        }
    }
}

impl CheckConfig {
    /// `quick` value if quick, else `full`.
    pub fn size(&self, quick: usize, full: usize) -> usize {
        if self.quick {
            quick
        } else {
            full
        }
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// Short name, e.g. "Proposition 3".
    pub check: String,
    /// What was checked, in one line.
    pub claim: String,
    /// Number of instances (or bound evaluations) checked.
    pub instances: usize,
    /// Whether every inequality held.
    pub passed: bool,
    /// The smallest `margin` seen, where `margin >= 1` means the bound held
    /// (measured/bound for lower bounds, bound/measured for upper bounds).
    pub worst_margin: f64,
    /// Fitted and predicted log-log slopes, where the result predicts one.
    pub slopes: Vec<Slope>,
    /// Extra measured facts worth printing (e.g. the largest ratio seen).
    pub notes: Vec<String>,
    /// Every failing instance, printed in full.
    pub failures: Vec<String>,
    /// The tightest margin the adversarial search found for each of the check's
    /// bounds, beside the paper's constant ([`crate::tightness`]).
    pub tightness: Vec<crate::tightness::BoundTightness>,
}

/// Accumulates instance outcomes of one check.
#[derive(Debug)]
pub struct Tally {
    report: CheckReport,
}

impl Tally {
    /// A check named `check` that verifies `claim`.
    pub fn new(check: &str, claim: &str) -> Self {
        Self {
            report: CheckReport {
                check: check.into(),
                claim: claim.into(),
                instances: 0,
                passed: true,
                worst_margin: f64::INFINITY,
                slopes: Vec::new(),
                notes: Vec::new(),
                failures: Vec::new(),
                tightness: Vec::new(),
            },
        }
    }

    /// Records `measured >= bound` (a lower bound on the measured value).
    pub fn lower(&mut self, measured: f64, bound: f64, instance: impl FnOnce() -> String) {
        self.record(measured >= bound, measured / bound, || {
            format!(
                "measured {measured:.6e} < lower bound {bound:.6e}: {}",
                instance()
            )
        });
    }

    /// Records `measured <= bound` (an upper bound on the measured value).
    pub fn upper(&mut self, measured: f64, bound: f64, instance: impl FnOnce() -> String) {
        self.record(measured <= bound, bound / measured, || {
            format!(
                "measured {measured:.6e} > upper bound {bound:.6e}: {}",
                instance()
            )
        });
    }

    /// Records an exact requirement (a construction that must realise a value).
    pub fn require(&mut self, ok: bool, what: impl FnOnce() -> String) {
        self.record(ok, if ok { f64::INFINITY } else { 0.0 }, what);
    }

    fn record(&mut self, ok: bool, margin: f64, describe: impl FnOnce() -> String) {
        let r = &mut self.report;
        r.instances += 1;
        let margin = if margin.is_nan() { 0.0 } else { margin };
        r.worst_margin = r.worst_margin.min(margin);
        if !ok {
            r.passed = false;
            r.failures.push(describe());
        }
    }

    /// Adds a fitted slope; `tolerance` = Some(t) makes `|fitted - predicted| <= t` a
    /// pass condition (for exact scaling laws), None reports it only. A slope with a
    /// [`SlopeDirection`] must lie on the claimed side of the prediction. A slope that
    /// could not be fitted (NaN: fewer than two usable points) fails the check either
    /// way, with the reason: a sweep that measured nothing has verified nothing.
    pub fn slope(&mut self, slope: Slope) {
        if !slope.fitted.is_finite() {
            self.report.passed = false;
            self.report.failures.push(format!(
                "{}: no slope could be fitted ({} usable points, at least 2 with distinct x needed; \
                 points beyond the horizon or non-positive are left out)",
                slope.what, slope.points
            ));
        } else if let Some(why) = slope.violation(0.0) {
            self.report.passed = false;
            self.report.failures.push(why);
        }
        self.report.slopes.push(slope);
    }

    /// Adds a note.
    pub fn note(&mut self, note: impl Into<String>) {
        self.report.notes.push(note.into());
    }

    /// The finished report.
    pub fn finish(self) -> CheckReport {
        self.report
    }
}

/// A check: builds its instances from the config and reports.
pub type CheckFn = fn(&CheckConfig) -> CheckReport;

/// Every check, in the paper's order.
pub fn all_checks() -> Vec<(&'static str, CheckFn)> {
    vec![
        ("prop2", prop2::run),
        ("thm4", thm4::run),
        ("thm4kl", thm4_kl::run),
        ("lemma8", lemma8::run),
        ("lemma9", lemma9::run),
        ("lemma10", lemma10::run),
        ("lemma11", lemma11::run),
        ("prop3", prop3::run),
        ("prop4", prop4::run),
        ("thm5", thm5::run),
        ("thm6", thm6::run),
        ("prop1", prop1::run),
    ]
}

/// Runs every check (in parallel) and returns their reports in order.
pub fn run_all(cfg: &CheckConfig) -> Vec<CheckReport> {
    run_all_with(cfg, &|_| {})
}

/// Runs one check as `verify` does: its own instances, then the adversarial search of
/// its bounds ([`crate::tightness::search`], whose evaluations join the check's
/// instances and its worst margin) and the non-identity slope sweeps
/// ([`crate::tightness::sweeps`]); then [`judge`]s it against `cfg.required_margin`
/// and `cfg.slope_shift`. A check added to [`all_checks`] gets the judging for free;
/// its adversarial search is registered in [`crate::tightness::search`].
pub fn run_check(key: &str, check: CheckFn, cfg: &CheckConfig) -> CheckReport {
    let (mut report, (found, slopes)) = rayon::join(
        || check(cfg),
        || {
            rayon::join(
                || crate::tightness::search(key, cfg),
                || crate::tightness::sweeps(key, cfg),
            )
        },
    );
    for t in found {
        report.instances += t.evaluations;
        report.worst_margin = report.worst_margin.min(t.margin);
        if !reaches(t.margin, 1.0) {
            report.passed = false;
            report.failures.push(format!(
                "adversarial search: {} violated (margin {:.6e}) at {}",
                t.bound, t.margin, t.instance
            ));
        }
        report.tightness.push(t);
    }
    for s in slopes {
        if let Some(why) = s.violation(0.0) {
            report.passed = false;
            report.failures.push(why);
        }
        report.slopes.push(s);
    }
    judge(&mut report, cfg);
    report
}

/// Applies `cfg.required_margin` (the worst margin must reach it) and `cfg.slope_shift`
/// (every judged slope must hold with that much to spare) to a finished report. With
/// the defaults (1 and 0) this adds nothing to what the tallies judged.
pub fn judge(report: &mut CheckReport, cfg: &CheckConfig) {
    if !reaches(report.worst_margin, cfg.required_margin) {
        report.passed = false;
        report.failures.push(format!(
            "worst margin {:.6e} < required margin {:.6e}",
            report.worst_margin, cfg.required_margin
        ));
    }
    if cfg.slope_shift > 0.0 {
        for s in &report.slopes {
            if let Some(why) = s.violation(cfg.slope_shift) {
                report.passed = false;
                report.failures.push(why);
            }
        }
    }
}

/// [`run_all`], calling `on_done` as each check finishes (for progress displays).
pub fn run_all_with(
    cfg: &CheckConfig,
    on_done: &(dyn Fn(&CheckReport) + Sync),
) -> Vec<CheckReport> {
    all_checks()
        .into_par_iter()
        .map(|(key, f)| {
            let r = run_check(key, f, cfg);
            on_done(&r);
            r
        })
        .collect()
}

/// The summary table: check, instances, PASS/FAIL, worst margin, slopes.
pub fn summary_table(reports: &[CheckReport], cfg: &CheckConfig) -> Table {
    let title = format!(
        "rmteach theory verify ({:?}, rtol {:e}, atol {:e}, seed {}{})",
        cfg.solver.method,
        cfg.solver.rtol,
        cfg.solver.atol,
        cfg.seed,
        if cfg.quick { ", quick" } else { "" }
    );
    let mut t = Table::new(
        title,
        [
            "check",
            "claim",
            "instances",
            "result",
            "worst margin",
            "paper constant vs tightest found (adversarial)",
            "fitted vs predicted slope",
        ]
        .map(String::from)
        .to_vec(),
    );
    for r in reports {
        let slopes = r
            .slopes
            .iter()
            .map(|s| {
                let claim = match s.direction {
                    Some(SlopeDirection::AtMost) => "<=",
                    Some(SlopeDirection::AtLeast) => ">=",
                    None => "vs",
                };
                format!("{}: {:.3} {claim} {:.3}", s.what, s.fitted, s.predicted)
            })
            .collect::<Vec<_>>()
            .join("; ");
        let tight = if r.tightness.is_empty() {
            crate::tightness::no_search_reason(&r.check).to_string()
        } else {
            r.tightness
                .iter()
                .map(|t| t.summary())
                .collect::<Vec<_>>()
                .join("; ")
        };
        t.push_row(vec![
            Cell::Text(r.check.clone()),
            Cell::Text(r.claim.clone()),
            Cell::Int(r.instances as i64),
            Cell::Text(if r.passed { "PASS" } else { "FAIL" }.into()),
            Cell::Float(r.worst_margin),
            Cell::Text(tight),
            Cell::Text(slopes),
        ])
        .expect("row has one cell per column");
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every check passes at its quick size, with every margin at least 1 and enough
    /// instances to mean something (Proposition 4 keeps only instances meeting (i)-(iii)).
    #[test]
    fn every_check_passes_quick() {
        let cfg = CheckConfig {
            quick: true,
            ..Default::default()
        };
        let least = |name: &str| match name {
            "lemma8" => 300,
            "prop2" => 60,
            "prop4" => 8,
            _ => 1,
        };
        for (name, run) in all_checks() {
            let r = run_check(name, run, &cfg);
            assert!(r.passed, "{name}: {:#?}", r.failures);
            assert!(
                r.worst_margin >= 1.0,
                "{name}: worst margin {}",
                r.worst_margin
            );
            assert!(
                r.instances >= least(name),
                "{name}: only {} instances",
                r.instances
            );
        }
    }

    /// `verify` passes at any seed: every check at its quick size over 41 seeds, the
    /// seeds where it once failed (3, 10, 35: an uncorrected 4-sigma Monte Carlo test
    /// repeated 600 times; 23, 31, 36: sweeps whose points all fell beyond a fixed
    /// horizon, a NaN slope) among them.
    #[test]
    fn every_check_passes_at_every_seed_quick() {
        let failed: Vec<String> = (0..=40u64)
            .into_par_iter()
            .flat_map_iter(|seed| {
                let cfg = CheckConfig {
                    quick: true,
                    seed,
                    ..Default::default()
                };
                all_checks()
                    .into_iter()
                    .map(move |(name, run)| (seed, name, run(&cfg)))
                    .filter(|(_, _, r)| {
                        !r.passed || r.worst_margin.is_nan() || r.worst_margin < 1.0
                    })
                    .map(|(seed, name, r)| format!("seed {seed}, {name}: {:?}", r.failures))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert!(failed.is_empty(), "{failed:#?}");
    }

    #[test]
    fn a_failed_bound_fails_the_check_and_keeps_the_instance() {
        let mut t = Tally::new("x", "y");
        t.lower(2.0, 1.0, || "fine".into());
        t.upper(3.0, 1.0, || "instance 7".into());
        let r = t.finish();
        assert!(!r.passed);
        assert_eq!(r.instances, 2);
        assert!(r.failures[0].contains("instance 7"));
        assert!((r.worst_margin - 1.0 / 3.0).abs() < 1e-15);
    }

    #[test]
    fn an_exact_slope_off_by_more_than_its_tolerance_fails() {
        let mut t = Tally::new("x", "y");
        t.slope(Slope::fit(
            "s",
            &[1.0, 10.0, 100.0],
            &[1.0, 0.1, 0.01],
            -0.5,
            Some(0.01),
        ));
        assert!(!t.finish().passed);
    }
}
