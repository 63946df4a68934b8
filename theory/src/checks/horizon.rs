//! Sweep points whose crossing lies beyond the horizon: classified and rerun with a
//! growing horizon ([`crate::measure::horizon`]); a crossing that must exist and is still
//! missing fails the check.

use crate::flow::{Crossing, SolverConfig};
use crate::instance::{TabularFlowResult, TabularInstance};
use crate::measure::horizon::{crossing_guaranteed, run_growing, GROWTH, MAX_GROWTHS};
use crate::Result;

/// How a sweep point ended after [`run_growing`]: a time for the fit, a missing
/// crossing that the limit policy allows (left out), or a missing crossing that must
/// exist (a failure).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum SweepPoint {
    /// Crossed at this time.
    Crossed(f64),
    /// Not crossed by this horizon, and the limit policy stays below the level.
    MaySettleBelow(f64),
    /// Not crossed by this horizon although the limit policy is above the level.
    Missing(f64),
}

impl SweepPoint {
    /// Classifies `crossing` of `inst`.
    pub(crate) fn classify(inst: &TabularInstance, crossing: Crossing) -> Self {
        match crossing {
            Crossing::At(t) => Self::Crossed(t),
            Crossing::BeyondHorizon(h) if crossing_guaranteed(inst) => Self::Missing(h),
            Crossing::BeyondHorizon(h) => Self::MaySettleBelow(h),
        }
    }
}

/// Reruns every `(instance, result)` of `todo` whose `t_gamma(r_G)` lies beyond the
/// horizon with a growing horizon (from `GROWTH` times the first one), in parallel,
/// writing the new result and horizon back. A crossing still missing although the limit
/// policy lies above the level is recorded as a failure (`label` names the point);
/// returns a note: how many were rerun, crossed, and left out (may settle below).
pub(crate) fn regrow(
    todo: Vec<(&mut TabularInstance, &mut Result<TabularFlowResult>)>,
    solver: &SolverConfig,
    tally: &mut super::Tally,
    label: &dyn Fn(&TabularInstance) -> String,
) -> String {
    use rayon::prelude::*;
    let todo: Vec<_> = todo
        .into_iter()
        .filter(|(_, r)| matches!(r, Ok(r) if r.t_gamma_g.time().is_none()))
        .collect();
    let rerun: Vec<_> = todo
        .par_iter()
        .map(|(inst, _)| {
            let mut longer = (**inst).clone();
            longer.horizon *= GROWTH;
            run_growing(&longer, solver)
        })
        .collect();
    let (redone, mut found, mut settle) = (todo.len(), 0usize, 0usize);
    for ((inst, slot), r) in todo.into_iter().zip(rerun) {
        match r {
            Ok((res, horizon)) => {
                inst.horizon = horizon;
                match SweepPoint::classify(inst, res.t_gamma_g) {
                    SweepPoint::Crossed(_) => found += 1,
                    SweepPoint::MaySettleBelow(_) => settle += 1,
                    SweepPoint::Missing(h) => tally.require(false, || {
                        format!(
                            "{}: t_gamma(r_G) beyond the grown horizon {h:.4e} although the flow's limit policy \
                             lies above the level; instance {}",
                            label(inst),
                            serde_json::to_string(&*inst).unwrap_or_default()
                        )
                    }),
                }
                *slot = Ok(res);
            }
            Err(e) => *slot = Err(e),
        }
    }
    format!(
        "{redone} sweep points beyond their first horizon were rerun with the horizon grown up to {}x: {found} \
         crossed, {settle} left out (limit policy below the level: the KL-regularised flow may settle below it)",
        GROWTH.powi(MAX_GROWTHS as i32 + 1)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(lambda: f64, horizon: f64) -> TabularInstance {
        TabularInstance {
            num_prompts: 1,
            lambda,
            gamma: 0.5,
            logits: Some(vec![3.0, 0.0, -3.0]),
            probs: None,
            r_rm: vec![0.0, 0.1, 0.2],
            r_g: vec![-1.0, 0.0, 1.0],
            horizon,
        }
    }

    #[test]
    fn a_short_horizon_grows_until_the_crossing() {
        let solver = SolverConfig::default();
        let short = inst(0.0, 1.0);
        assert!(short
            .run(&solver, false)
            .unwrap()
            .t_gamma_g
            .time()
            .is_none());
        let (res, h) = run_growing(&short, &solver).unwrap();
        let t = res.t_gamma_g.time().expect("reached after growing");
        assert!(h > 1.0 && t <= h);
        assert!(crossing_guaranteed(&short));
    }

    #[test]
    fn a_strong_kl_pull_may_settle_below_the_level() {
        // pi* ∝ pi_0 exp(r / 10): barely moves, E r_G stays far below the level.
        let i = inst(10.0, 1.0);
        assert!(!crossing_guaranteed(&i));
        assert_eq!(
            SweepPoint::classify(&i, Crossing::BeyondHorizon(1.0)),
            SweepPoint::MaySettleBelow(1.0)
        );
        assert_eq!(
            SweepPoint::classify(&inst(0.0, 1.0), Crossing::BeyondHorizon(1.0)),
            SweepPoint::Missing(1.0)
        );
    }
}
