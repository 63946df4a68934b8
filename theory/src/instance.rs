//! One prompt of a tabular policy: the setting of Lemma 8-10, Propositions 3-4 and
//! Theorems 5-6, and the input of `rmteach theory flow --instance FILE.json`.

mod de;
mod parse;

use serde::{Deserialize, Serialize};

use crate::bounds;
use crate::fixed_point::FixedPoint;
use crate::flow::{
    integrate_to, integrate_with_events_until, softmax_moments, softmax_moments_rates, Crossing,
    SolverConfig, Threshold, Trajectory, WithRates,
};
use crate::objective::{KlObjective, Update};
use crate::policy::TabularPolicy;
use crate::{Result, TheoryError};
use rmteach::metrics::{expected_reward, kl_divergence, reward_variance, softmax};

pub use parse::InstanceFile;

/// The observables recorded along a tabular flow, in this order.
pub const OBSERVABLES: [&str; 3] = ["E[r_G]", "E[r_RM]", "KL"];

/// A tabular flow for one prompt `x` of `|S| = num_prompts` prompts (columns evolve
/// independently, so one column is simulated with the factor `1/|S|`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TabularInstance {
    /// `|S|` (default 1).
    #[serde(default = "one", deserialize_with = "de::strict")]
    pub num_prompts: usize,
    /// KL coefficient `lambda >= 0`.
    #[serde(deserialize_with = "de::strict")]
    pub lambda: f64,
    /// The reward increase `gamma > 0` that defines `t_gamma`.
    #[serde(deserialize_with = "de::strict")]
    pub gamma: f64,
    /// Initial logits `theta[:, x]` (give these or `probs`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::strict"
    )]
    pub logits: Option<Vec<f64>>,
    /// Initial probabilities `pi_0(.|x)` (give these or `logits`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::strict"
    )]
    pub probs: Option<Vec<f64>>,
    /// Proxy reward `r_RM(x, .)` in `[-1, 1]`: the reward the flow is trained on.
    #[serde(deserialize_with = "de::strict")]
    pub r_rm: Vec<f64>,
    /// Ground-truth reward `r_G(x, .)` in `[-1, 1]`.
    #[serde(deserialize_with = "de::strict")]
    pub r_g: Vec<f64>,
    /// Integration horizon: `t_gamma` beyond it is reported as such.
    #[serde(deserialize_with = "de::strict")]
    pub horizon: f64,
}

fn one() -> usize {
    1
}

/// How close to its fixed point a flow must be certified before integration stops
/// early: every reported figure (and `E[r]` at every later time) within this of the
/// fixed point's.
pub const SETTLED_TOL: f64 = 1e-10;

/// Why integration stopped before the horizon: the flow sits at its fixed point
/// `pi* ∝ pi_0 exp(r_RM / lambda)` (see [`crate::fixed_point`]), checked. The figures
/// then reported "at the horizon" are `pi*`'s.
#[derive(Debug, Clone, Serialize)]
pub struct Settled {
    /// When the check passed (integration stopped there).
    #[serde(serialize_with = "crate::json::f64")]
    pub at: f64,
    /// `KL(pi || pi*)` there; it never increases along the flow.
    #[serde(serialize_with = "crate::json::f64")]
    pub kl_to_fixed_point: f64,
    /// The largest distance it allows, from `at` on, between `E r_G`, `E r_RM` or
    /// `KL(pi || pi_0)` and their values at `pi*` (at most [`SETTLED_TOL`]): the
    /// reported figures (`pi*`'s) are the horizon's within this.
    #[serde(serialize_with = "crate::json::f64")]
    pub bound: f64,
}

/// What `theory flow` reports.
#[derive(Debug, Clone, Serialize)]
pub struct TabularFlowResult {
    /// `t_gamma` for the ground truth.
    pub t_gamma_g: Crossing,
    /// `t_gamma` for the proxy reward.
    pub t_gamma_rm: Crossing,
    /// `Var_{pi_0}[r_RM]`.
    #[serde(serialize_with = "crate::json::f64")]
    pub var_rm0: f64,
    /// `Var_{pi_0}[r_G]`.
    #[serde(serialize_with = "crate::json::f64")]
    pub var_g0: f64,
    /// Proposition 3's lower bound on `t_gamma` of the ground truth.
    #[serde(serialize_with = "crate::json::f64")]
    pub prop3_bound_g: f64,
    /// Proposition 3's lower bound on `t_gamma` of the proxy reward.
    #[serde(serialize_with = "crate::json::f64")]
    pub prop3_bound_rm: f64,
    /// `E_{pi_0} r_G`.
    #[serde(serialize_with = "crate::json::f64")]
    pub v_g0: f64,
    /// `E_{pi_0} r_RM`.
    #[serde(serialize_with = "crate::json::f64")]
    pub v_rm0: f64,
    /// `E r_G` at the end of integration.
    #[serde(serialize_with = "crate::json::f64")]
    pub v_g_end: f64,
    /// `E r_RM` at the end of integration.
    #[serde(serialize_with = "crate::json::f64")]
    pub v_rm_end: f64,
    /// `KL(pi || pi_0)` at the end of integration.
    #[serde(serialize_with = "crate::json::f64")]
    pub kl_end: f64,
    /// Where the reported figures hold: the horizon, or where integration stopped once
    /// both thresholds were reached (a flow certified to sit at its fixed point is
    /// reported at the horizon: see `settled`).
    #[serde(serialize_with = "crate::json::f64")]
    pub t_end: f64,
    /// Present when integration stopped at the fixed point before the horizon: then
    /// neither level can be reached before the horizon (`t_gamma` is `> horizon` unless
    /// reached earlier) and the figures at the horizon are the reported ones within
    /// `2 bound`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settled: Option<Settled>,
    /// Right-hand-side evaluations, event location (dense output) included.
    pub rhs_evals: u64,
    /// Times the integrator's stiffness heuristic fired (`ode_solvers` would have stopped
    /// there; we go on): a diagnostic of a flow settling at its fixed point, not an error.
    pub stiffness_warnings: u32,
    /// The final policy.
    #[serde(serialize_with = "crate::json::f64s")]
    pub probs_end: Vec<f64>,
    /// Observations along the way (only when recording).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trajectory: Option<Trajectory>,
}

/// Which flow of the objective an instance follows: the update and the entropy bonus
/// (`theory flow --update`, `--entropy`). The default is the paper's gradient flow.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Dynamics {
    /// Gradient (`pg`) or natural-gradient (`npg`) flow.
    pub update: Update,
    /// The entropy bonus `tau >= 0` added to the objective.
    pub entropy: f64,
}

impl Dynamics {
    /// Checks `entropy`; the error names it.
    pub fn validate(&self) -> Result<()> {
        if self.entropy.is_finite() && self.entropy >= 0.0 {
            Ok(())
        } else {
            Err(TheoryError::invalid(
                "entropy",
                format!("must be a finite number >= 0, got {}", self.entropy),
            ))
        }
    }
}

fn check_finite(field: &str, v: &[f64]) -> Result<()> {
    match v.iter().position(|x| !x.is_finite()) {
        Some(i) => Err(TheoryError::invalid(
            format!("{field}[{i}]"),
            "is not a finite number (NaN or infinite)",
        )),
        None => Ok(()),
    }
}

impl TabularInstance {
    /// Checks every field; the error names the field and the fix.
    pub fn validate(&self) -> Result<()> {
        let n = self.r_g.len();
        if n < 2 {
            return Err(TheoryError::invalid("r_g", "needs at least 2 outputs"));
        }
        if self.num_prompts == 0 {
            return Err(TheoryError::invalid("num_prompts", "must be at least 1"));
        }
        if !(self.lambda.is_finite() && self.lambda >= 0.0) {
            return Err(TheoryError::invalid(
                "lambda",
                format!("must be a finite number >= 0, got {}", self.lambda),
            ));
        }
        if !(self.gamma.is_finite() && self.gamma > 0.0) {
            return Err(TheoryError::invalid(
                "gamma",
                format!("must be a finite number > 0, got {}", self.gamma),
            ));
        }
        if !(self.horizon.is_finite() && self.horizon > 0.0) {
            return Err(TheoryError::invalid(
                "horizon",
                format!("must be a finite number > 0, got {}", self.horizon),
            ));
        }
        for (field, r) in [("r_rm", &self.r_rm), ("r_g", &self.r_g)] {
            if r.len() != n {
                return Err(TheoryError::invalid(
                    field,
                    format!("has {} entries, r_g has {n}", r.len()),
                ));
            }
            check_finite(field, r)?;
            if let Some(i) = r.iter().position(|v| v.abs() > 1.0) {
                return Err(TheoryError::invalid(
                    format!("{field}[{i}]"),
                    format!("= {} is outside [-1, 1]: rescale the rewards", r[i]),
                ));
            }
        }
        match (&self.logits, &self.probs) {
            (Some(_), Some(_)) => {
                return Err(TheoryError::invalid(
                    "logits/probs",
                    "give one of them, not both",
                ))
            }
            (None, None) => {
                return Err(TheoryError::invalid(
                    "logits/probs",
                    "give the initial policy as `logits` or `probs`",
                ))
            }
            (Some(l), None) => {
                if l.len() != n {
                    return Err(TheoryError::invalid(
                        "logits",
                        format!("has {} entries, r_g has {n}", l.len()),
                    ));
                }
                check_finite("logits", l)?;
            }
            (None, Some(p)) => {
                if p.len() != n {
                    return Err(TheoryError::invalid(
                        "probs",
                        format!("has {} entries, r_g has {n}", p.len()),
                    ));
                }
                check_finite("probs", p)?;
                if let Some(i) = p.iter().position(|v| *v <= 0.0) {
                    return Err(TheoryError::invalid(
                        format!("probs[{i}]"),
                        format!("= {} is not positive: a softmax policy gives every output positive probability", p[i]),
                    ));
                }
                let s: f64 = p.iter().sum();
                if (s - 1.0).abs() > 1e-9 {
                    return Err(TheoryError::invalid(
                        "probs",
                        format!("sum to {s}, not 1 (within 1e-9)"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Initial logits (from `logits`, or `ln probs`).
    pub fn initial_logits(&self) -> Vec<f64> {
        match (&self.logits, &self.probs) {
            (Some(l), _) => l.clone(),
            (None, Some(p)) => p.iter().map(|v| v.ln()).collect(),
            (None, None) => Vec::new(),
        }
    }

    /// `pi_0`.
    pub fn initial_probs(&self) -> Vec<f64> {
        softmax(&self.initial_logits())
    }

    /// Proposition 3's lower bound `2|S|(1-e^(-gamma/2))/sqrt(Var_{pi_0}[r_RM])`.
    pub fn prop3_bound(&self) -> Result<f64> {
        let var = reward_variance(&self.initial_probs(), &self.r_rm)?;
        Ok(bounds::prop3_time_bound(self.gamma, self.num_prompts, var))
    }

    /// `[E r_G, E r_RM, KL]` of the flow trained on `r_RM` at each of `times`
    /// (increasing, >= 0), integrating from one time to the next.
    pub fn observe_at(&self, times: &[f64], cfg: &SolverConfig) -> Result<Vec<[f64; 3]>> {
        self.validate()?;
        cfg.validate()?;
        if times.windows(2).any(|w| w[1] < w[0]) || times.first().is_some_and(|t| *t < 0.0) {
            return Err(TheoryError::invalid(
                "times",
                "must be increasing and non-negative",
            ));
        }
        let theta0 = self.initial_logits();
        let pi0 = softmax(&theta0);
        let policy = TabularPolicy::new(theta0.len(), 1);
        let objective = KlObjective::new(&policy, vec![self.r_rm.clone()], self.lambda, &theta0)?
            .with_total_prompts(self.num_prompts)?;
        let field = objective.tabular_field();
        let (mut t, mut theta) = (0.0, theta0.clone());
        let mut out = Vec::with_capacity(times.len());
        for &next in times {
            theta = integrate_to(&field, t, next, &theta, cfg)?.0;
            t = next;
            let p = softmax(&theta);
            out.push([
                expected_reward(&p, &self.r_g)?,
                expected_reward(&p, &self.r_rm)?,
                kl_divergence(&p, &pi0)?,
            ]);
        }
        Ok(out)
    }

    /// Integrates the flow trained on `r_RM` and locates `t_gamma` for `r_G` and `r_RM`.
    pub fn run(&self, cfg: &SolverConfig, record: bool) -> Result<TabularFlowResult> {
        self.run_with(cfg, record, &Dynamics::default())
    }

    /// [`TabularInstance::run`] under `dynamics` (natural gradient, entropy bonus).
    ///
    /// Stopping at the fixed point stays valid: both updates are ascent flows of the
    /// objective, which is `(lambda+tau) (ln Z - KL(pi || pi*))` with
    /// `pi* ∝ (pi_0^lambda exp(r_RM))^(1/(lambda+tau))`, so `KL(pi || pi*)` never
    /// increases under either.
    pub fn run_with(
        &self,
        cfg: &SolverConfig,
        record: bool,
        dynamics: &Dynamics,
    ) -> Result<TabularFlowResult> {
        self.validate()?;
        cfg.validate()?;
        dynamics.validate()?;
        let theta0 = self.initial_logits();
        let pi0 = softmax(&theta0);
        let n = theta0.len();
        let policy = TabularPolicy::new(n, 1);
        let objective = KlObjective::new(&policy, vec![self.r_rm.clone()], self.lambda, &theta0)?
            .with_total_prompts(self.num_prompts)?
            .with_entropy(dynamics.entropy)?;
        let (v_g0, v_rm0) = (
            expected_reward(&pi0, &self.r_g)?,
            expected_reward(&pi0, &self.r_rm)?,
        );
        // [E r_G, E r_RM, KL] in one exp pass over the logits (ln pi_0 = theta0 - lse),
        // with their exact rates Cov_pi(., d theta/dt) in the same pass at step ends.
        let lp0 = objective.ref_log_probs(0).to_vec();
        let observe = WithRates(
            |theta: &[f64]| -> Vec<f64> {
                softmax_moments(theta, &self.r_g, &self.r_rm, &lp0).to_vec()
            },
            |theta: &[f64], f: &[f64]| {
                let (v, r) = softmax_moments_rates(theta, f, &self.r_g, &self.r_rm, &lp0);
                (v.to_vec(), r.to_vec())
            },
        );
        let thresholds = [
            Threshold {
                observable: 0,
                level: v_g0 + self.gamma,
            },
            Threshold {
                observable: 1,
                level: v_rm0 + self.gamma,
            },
        ];
        // Stop early only where the fixed point's certificate says nothing reported can
        // change by more than SETTLED_TOL and no level left can be reached.
        // With an entropy bonus tau the fixed point is the KL-only one of coefficient
        // lambda + tau from the reference pi_0^(lambda/(lambda+tau)).
        let tau = dynamics.entropy;
        let (fixed, log_ratio_star) = if tau > 0.0 {
            let shrink = self.lambda / (self.lambda + tau);
            let theta_ref: Vec<f64> = theta0.iter().map(|t| shrink * t).collect();
            let fp = FixedPoint::new(&theta_ref, &self.r_rm, self.lambda + tau);
            // ln(pi*/pi_0), for the KL(pi || pi_0) bound below.
            let g = fp.as_ref().map(|fp| {
                fp.probs
                    .iter()
                    .zip(&lp0)
                    .map(|(p, l)| p.ln() - l)
                    .collect::<Vec<f64>>()
            });
            (fp, g)
        } else {
            (FixedPoint::new(&theta0, &self.r_rm, self.lambda), None)
        };
        let settled_rule = fixed.as_ref().map(|fp| {
            let rewards = [&self.r_g, &self.r_rm];
            let at_star = rewards.map(|r| expected_reward(&fp.probs, r).unwrap_or(f64::NAN));
            let lambda = self.lambda;
            let levels = thresholds.map(|th| th.level);
            let log_ratio_star = &log_ratio_star;
            // Some((KL(pi || pi*), bound)) when settled; a level already reached needs
            // no check.
            move |theta: &[f64], crossed: &[bool]| -> Option<(f64, f64)> {
                let d = fp.kl_from(theta);
                let b = rewards.map(|r| FixedPoint::reward_bound(r, d));
                // |KL(pi || pi_0) - KL(pi* || pi_0)| <= d + |E_pi g - E_pi* g| with
                // g = ln(pi*/pi_0), which is r_RM / lambda + const without entropy.
                let kl_bound = match log_ratio_star {
                    Some(g) => FixedPoint::reward_bound(g, d) + d,
                    None => b[1] / lambda + d,
                };
                let bound = b[0].max(b[1]).max(kl_bound);
                let out_of_reach = (0..2).all(|k| crossed[k] || at_star[k] + b[k] < levels[k]);
                (bound <= SETTLED_TOL && out_of_reach).then_some((d, bound))
            }
        });
        let rule = settled_rule.as_ref().map(|rule| {
            move |_t: f64, theta: &[f64], crossed: &[bool]| rule(theta, crossed).is_some()
        });
        let out = integrate_with_events_until(
            objective.field(dynamics.update).as_ref(),
            &theta0,
            self.horizon,
            &observe,
            &thresholds,
            record,
            cfg,
            rule.as_ref().map(|r| r as _),
        )?;
        let settled = out.settled_at.and_then(|at| {
            let crossed: Vec<bool> = out.crossings.iter().map(|c| c.time().is_some()).collect();
            let (kl_to_fixed_point, bound) = settled_rule.as_ref()?(&out.y_end, &crossed)?;
            Some(Settled {
                at,
                kl_to_fixed_point,
                bound,
            })
        });
        // Once settled, the figures reported are the fixed point's, at the horizon: the
        // flow's own at the horizon are within `bound` of them (the certificate).
        let (p_end, t_end) = match (&settled, &fixed) {
            (Some(_), Some(fp)) => (fp.probs.clone(), self.horizon),
            _ => (softmax(&out.y_end), out.t_end),
        };
        let var_rm0 = reward_variance(&pi0, &self.r_rm)?;
        let bound = bounds::prop3_time_bound(self.gamma, self.num_prompts, var_rm0);
        Ok(TabularFlowResult {
            t_gamma_g: out.crossings[0],
            t_gamma_rm: out.crossings[1],
            var_rm0,
            var_g0: reward_variance(&pi0, &self.r_g)?,
            prop3_bound_g: bound,
            prop3_bound_rm: bound,
            v_g0,
            v_rm0,
            v_g_end: expected_reward(&p_end, &self.r_g)?,
            v_rm_end: expected_reward(&p_end, &self.r_rm)?,
            kl_end: kl_divergence(&p_end, &pi0)?,
            t_end,
            settled,
            rhs_evals: out.rhs_evals,
            stiffness_warnings: out.stiffness_warnings,
            probs_end: p_end,
            trajectory: record.then_some(out.trajectory),
        })
    }
}
