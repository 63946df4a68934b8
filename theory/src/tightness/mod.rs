//! How tight each bound is: an adversarial search per bound, the non-identity slope
//! sweeps, and the negative controls.
//!
//! * [`search`]: for every bound of the paper that `verify` checks, random restarts
//!   plus a hill climb ([`optimise`]) over logits, rewards and, where the bound allows,
//!   `lambda`, `gamma` and `T`, minimising the margin (`measured / bound` for a lower
//!   bound, `bound / measured` for an upper bound; `>= 1` means the bound held). The
//!   smallest margin found is printed beside the paper's constant as the *empirical
//!   constant*: the constant that would still have held on every instance evaluated.
//!   Every evaluation is an instance of the check: it joins the check's instance count
//!   and worst margin, and a margin below 1 fails the check.
//! * [`sweeps`]: slope claims on sweeps that are not identities of time rescaling.
//! * [`negative_controls`]: every check rerun with its bound tightened past the tightest
//!   margin found (and its slope predictions moved past their slack) must fail.
//!
//! All bounds whose flow time scales with `|S|` (Propositions 3, 4, Lemma 10,
//! Theorems 4-6) are searched at `|S| = 1`: with `|S|` prompts the per-prompt flow is the
//! `|S| = 1` flow with time divided by `|S|`, and every one of these bounds carries the
//! same factor `|S|`, so the margin does not depend on `|S|`.

mod bounds_flow;
mod bounds_static;
mod negative;
mod optimise;
mod sweeps;

pub use negative::{negative_controls, NegativeControl, NEGATIVE_CONTROL_EPS};
pub use optimise::{minimise, Best, Budget};
pub use sweeps::sweeps;

use serde::Serialize;

use crate::checks::CheckConfig;

/// Which side of the measured value a bound is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Side {
    /// `measured >= bound`: margin `measured / bound`; empirical constant `paper * margin`.
    Lower,
    /// `measured <= bound`: margin `bound / measured`; empirical constant `paper / margin`.
    Upper,
}

/// The tightest instance the adversarial search found for one bound.
#[derive(Debug, Clone, Serialize)]
pub struct BoundTightness {
    /// The bound, e.g. "Theorem 5 (slow)".
    pub bound: String,
    /// The paper's constant and where it sits, e.g. "2 in 2|S|(1-e^(-gamma/2))/sqrt(Var)".
    pub constant: String,
    /// The paper's constant's value.
    pub paper_constant: f64,
    /// Lower or upper bound.
    pub side: Side,
    /// The smallest margin found (`>= 1`: the bound held on every evaluation).
    pub margin: f64,
    /// The constant that would still have held on every instance evaluated.
    pub empirical_constant: f64,
    /// Instances evaluated.
    pub evaluations: usize,
    /// The tightest instance, in full.
    pub instance: String,
    /// What the search covers and what it leaves out (with the reason).
    pub scope: String,
}

impl BoundTightness {
    /// One line for the summary table.
    pub fn summary(&self) -> String {
        format!(
            "{}: paper {} -> tightest {:.4} (margin {:.4}, {} evaluations)",
            self.bound,
            fmt_constant(self.paper_constant),
            self.empirical_constant,
            self.margin,
            self.evaluations
        )
    }
}

fn fmt_constant(c: f64) -> String {
    if (c - c.round()).abs() < 1e-12 {
        format!("{c:.0}")
    } else {
        format!("{c:.4}")
    }
}

/// What a search needs to know about one bound.
pub(crate) struct Spec {
    pub bound: &'static str,
    pub constant: &'static str,
    pub paper_constant: f64,
    pub side: Side,
    pub scope: &'static str,
    /// Salt of the search's generator.
    pub salt: u64,
    /// Default budget (multiplied by `search_scale`).
    pub budget: Budget,
}

impl Spec {
    /// Runs the search: `start` draws a point, `eval` returns its margin and, when
    /// asked, the instance in words.
    pub fn run<S, F>(&self, cfg: &CheckConfig, start: S, eval: F) -> BoundTightness
    where
        S: Fn(&mut rand_chacha::ChaCha8Rng) -> Vec<f64> + Sync,
        F: Fn(&[f64], bool) -> (f64, String) + Sync,
    {
        // Quick runs (tests) take half the restarts.
        let restarts = if cfg.quick {
            self.budget.restarts.div_ceil(2)
        } else {
            self.budget.restarts
        };
        let budget = Budget {
            restarts: restarts * cfg.search_scale.max(1),
            steps: self.budget.steps,
        };
        let best = minimise(cfg.seed ^ self.salt, budget, start, |z| eval(z, false).0);
        let (margin, instance) = if best.z.is_empty() {
            (f64::INFINITY, "no instance".into())
        } else {
            eval(&best.z, true)
        };
        let empirical_constant = match self.side {
            Side::Lower => self.paper_constant * margin,
            Side::Upper => self.paper_constant / margin,
        };
        BoundTightness {
            bound: self.bound.into(),
            constant: self.constant.into(),
            paper_constant: self.paper_constant,
            side: self.side,
            margin,
            empirical_constant,
            evaluations: budget.evaluations(),
            instance,
            scope: self.scope.into(),
        }
    }
}

/// The adversarial search of every bound of check `key` (a key of
/// [`crate::checks::all_checks`]); empty for checks without one (see
/// [`no_search_reason`]). To give a new check a search, add its key here.
pub fn search(key: &str, cfg: &CheckConfig) -> Vec<BoundTightness> {
    match key {
        "prop2" => vec![bounds_static::prop2(cfg)],
        "lemma8" => vec![bounds_static::lemma8(cfg)],
        "lemma10" => vec![bounds_flow::lemma10(cfg)],
        "prop3" => vec![bounds_flow::prop3(cfg)],
        "thm4" => vec![bounds_flow::thm4(cfg)],
        "prop4" => vec![bounds_flow::prop4(cfg)],
        "thm5" => {
            let (a, b) = rayon::join(
                || bounds_flow::thm5_slow(cfg),
                || bounds_flow::thm5_fast(cfg),
            );
            vec![a, b]
        }
        "thm6" => {
            let (a, b) = rayon::join(
                || bounds_flow::thm6_fast(cfg),
                || bounds_flow::thm6_slow(cfg),
            );
            vec![a, b]
        }
        _ => Vec::new(),
    }
}

/// Why a check (by its display name) has no adversarial search.
pub fn no_search_reason(check: &str) -> &'static str {
    match check {
        "Proposition 1" => {
            "none: exact optimality, attained with equality by every RM ordering the support \
             as r_G does (its margin 1 is a tie, not a tightness)"
        }
        _ => "none",
    }
}

/// `1 / (1 + e^-z)`.
pub(crate) fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::all_checks;

    /// Every search at quick size finds a finite margin of at least 1 with its instance.
    #[test]
    fn every_search_finds_a_finite_margin_that_holds() {
        let cfg = CheckConfig {
            quick: true,
            ..Default::default()
        };
        for (key, _) in all_checks() {
            for t in search(key, &cfg) {
                assert!(t.margin.is_finite() && t.margin >= 1.0, "{t:#?}");
                assert!(!t.instance.is_empty(), "{t:#?}");
            }
        }
    }

    /// Times and margins of each check and each search at the default size
    /// (`cargo test --release -p rmteach-theory tightness::tests::timing -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn timing() {
        let cfg = CheckConfig::default();
        for (key, run) in all_checks() {
            let t0 = std::time::Instant::now();
            let r = run(&cfg);
            let t1 = std::time::Instant::now();
            let found = search(key, &cfg);
            let t2 = std::time::Instant::now();
            let slopes = sweeps(key, &cfg);
            let t3 = std::time::Instant::now();
            eprintln!(
                "{key}: check {:.2?} (worst margin {:.4}), search {:.2?}, sweeps {:.2?}",
                t1 - t0,
                r.worst_margin,
                t2 - t1,
                t3 - t2
            );
            for t in found {
                eprintln!("    {}", t.summary());
            }
            for s in slopes {
                eprintln!(
                    "    slope {:.4} vs {:.4}: {}",
                    s.fitted, s.predicted, s.what
                );
            }
        }
    }
}
