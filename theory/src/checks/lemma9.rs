//! Lemma 9: the probability-space form of the tabular flow equals the logit-space flow.
//!
//! `d pi(y)/dt = (1/|S|) [ pi(y)^2 (r(y)-V) - pi(y) sum_y' pi(y')^2 (r(y')-V)
//!   - lambda pi(y)^2 (ln(pi(y)/pi_0(y)) - KL) + lambda pi(y) sum_y' pi(y')^2 (ln(pi(y')/pi_0(y')) - KL) ]`
//! ([`ProbabilityFlow`]) against the chain rule through the softmax,
//! `d pi(y)/dt = pi(y) (g(y) - sum_y' pi(y') g(y'))` with `g = d theta[:,x]/dt` the
//! logit flow of all `|S|` prompts (Lemma 7; both the generic [`KlObjective`] gradient
//! and the fused [`crate::flow::TabularKlField`] that the tabular flows integrate).
//!
//! Instances: `|S| in {2, 3, 5}` prompts, `|Y| in {2, 3, 5, 10, 20}`, `lambda > 0`
//! (`{0.01, 0.1, 1, 5}`), logits `~ N(0, s^2)`, `s in {0.5, 2, 5}`, rewards uniform in
//! `[-1, 1]`. The identity is evaluated
//!
//! * (a) pointwise, at `theta_0` plus a random perturbation (so `pi != pi_0` and the
//!   KL terms are live): the relative error `max_y |chain - formula| / scale` with
//!   `scale = (1/|S|) max_y pi(y) (max_y |r - V| + lambda max_y |ln(pi/pi_0) - KL|)` (a
//!   bound on every term of the formula) must be at most [`POINT_TOL`] (rounding);
//! * (b) along the flow: both forms integrated to `t in {1, 10} |S|` at rtol 1e-10,
//!   atol 1e-12, `max_y |softmax(theta(t)) - pi(t)|` at most [`PATH_TOL`], and (a) at
//!   `theta(t)`.
//!
//! The margin of every comparison is `tolerance / error`.

use rayon::prelude::*;

use super::{CheckConfig, CheckReport, Tally};
use crate::flow::{integrate_to, ProbabilityFlow, SolverConfig, VectorField};
use crate::measure::sample::{logits, pick, rewards, rng};
use crate::objective::KlObjective;
use crate::policy::{Policy, TabularPolicy};

/// Largest admissible relative error of the pointwise identity (rounding only).
pub(crate) const POINT_TOL: f64 = 1e-10;
/// Largest admissible `max_y |pi_logit(t) - pi_prob(t)|` after integrating both forms.
const PATH_TOL: f64 = 1e-6;
/// Tolerances of the two integrations in (b).
const PATH_RTOL: f64 = 1e-10;
const PATH_ATOL: f64 = 1e-12;

/// One random instance: `|S|` prompts of `|Y|` outputs.
#[derive(Debug, Clone)]
struct Instance {
    num_outputs: usize,
    num_prompts: usize,
    lambda: f64,
    theta0: Vec<f64>,
    /// A perturbed state for the pointwise comparison.
    theta: Vec<f64>,
    reward: Vec<Vec<f64>>,
}

/// The relative error of Lemma 9's formula against the chain rule of the logit field
/// `dtheta` at `theta`, worst over prompts (see the module doc for `scale`).
pub(crate) fn pointwise_error(
    policy: &TabularPolicy,
    obj: &KlObjective<'_, TabularPolicy>,
    theta: &[f64],
    dtheta: &[f64],
) -> f64 {
    let s = policy.num_prompts();
    let mut worst = 0.0f64;
    for x in 0..s {
        let pi0: Vec<f64> = obj.ref_log_probs(x).iter().map(|l| l.exp()).collect();
        let pi = policy.probs(theta, x);
        let g = &dtheta[policy.column(x)];
        let mean_g: f64 = pi.iter().zip(g).map(|(p, g)| p * g).sum();
        let chain: Vec<f64> = pi.iter().zip(g).map(|(p, g)| p * (g - mean_g)).collect();
        let pflow = match ProbabilityFlow::new(obj.reward(x).to_vec(), &pi0, obj.lambda(), s) {
            Ok(f) => f,
            Err(_) => return f64::INFINITY,
        };
        let mut formula = vec![0.0; pi.len()];
        pflow.eval(&pi, &mut formula);
        let r = obj.reward(x);
        let v: f64 = pi.iter().zip(r).map(|(p, r)| p * r).sum();
        let ratio: Vec<f64> = pi.iter().zip(&pi0).map(|(p, q)| (p / q).ln()).collect();
        let kl: f64 = pi.iter().zip(&ratio).map(|(p, l)| p * l).sum();
        let max_abs = |it: &mut dyn Iterator<Item = f64>| it.fold(0.0f64, |a, b| a.max(b.abs()));
        let scale = max_abs(&mut pi.iter().copied())
            * (max_abs(&mut r.iter().map(|r| r - v))
                + obj.lambda() * max_abs(&mut ratio.iter().map(|l| l - kl)))
            / s as f64;
        let diff = chain
            .iter()
            .zip(&formula)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f64, f64::max);
        let err = if diff == 0.0 { 0.0 } else { diff / scale };
        // A NaN anywhere is an error, never a pass.
        worst = if err.is_nan() {
            f64::INFINITY
        } else {
            worst.max(err)
        };
    }
    worst
}

fn draw<R: rand::Rng>(rng: &mut R) -> Instance {
    let num_outputs = pick(rng, &[2, 3, 5, 10, 20]);
    let num_prompts = pick(rng, &[2, 3, 5]);
    let lambda = pick(rng, &[0.01, 0.1, 1.0, 5.0]);
    let scale = pick(rng, &[0.5, 2.0, 5.0]);
    let dim = num_outputs * num_prompts;
    let theta0 = logits(rng, dim, scale);
    let pert_scale = pick(rng, &[0.1, 1.0, 3.0]);
    let pert = logits(rng, dim, pert_scale);
    let theta = theta0.iter().zip(&pert).map(|(a, b)| a + b).collect();
    let reward = (0..num_prompts)
        .map(|_| rewards(rng, num_outputs, -1.0, 1.0))
        .collect();
    Instance {
        num_outputs,
        num_prompts,
        lambda,
        theta0,
        theta,
        reward,
    }
}

/// What one instance measured: pointwise errors (generic gradient, fused field, along
/// the path) and the path error of (b), or an integration error.
struct Outcome {
    point: [f64; 2],
    path_point: f64,
    path: Result<f64, String>,
}

fn measure(inst: &Instance, solver: &SolverConfig) -> Outcome {
    let policy = TabularPolicy::new(inst.num_outputs, inst.num_prompts);
    let obj = KlObjective::new(&policy, inst.reward.clone(), inst.lambda, &inst.theta0)
        .expect("valid instance");
    let field = obj.tabular_field();
    let dim = inst.theta.len();
    let (mut g_generic, mut g_fused) = (vec![0.0; dim], vec![0.0; dim]);
    obj.gradient(&inst.theta, &mut g_generic);
    field.eval(&inst.theta, &mut g_fused);
    let point = [
        pointwise_error(&policy, &obj, &inst.theta, &g_generic),
        pointwise_error(&policy, &obj, &inst.theta, &g_fused),
    ];
    let tight = SolverConfig {
        rtol: PATH_RTOL,
        atol: PATH_ATOL,
        ..*solver
    };
    let mut path_point = 0.0f64;
    let path = (|| -> crate::Result<f64> {
        let mut worst = 0.0f64;
        for t in [1.0, 10.0].map(|k| k * inst.num_prompts as f64) {
            let (theta_t, _) = integrate_to(&field, 0.0, t, &inst.theta0, &tight)?;
            let mut g = vec![0.0; dim];
            field.eval(&theta_t, &mut g);
            path_point = path_point.max(pointwise_error(&policy, &obj, &theta_t, &g));
            for x in 0..inst.num_prompts {
                let pi0 = policy.probs(&inst.theta0, x);
                let pflow = ProbabilityFlow::new(
                    inst.reward[x].clone(),
                    &pi0,
                    inst.lambda,
                    inst.num_prompts,
                )?;
                let (pi_t, _) = integrate_to(&pflow, 0.0, t, &pi0, &tight)?;
                let from_logits = policy.probs(&theta_t, x);
                for (a, b) in from_logits.iter().zip(&pi_t) {
                    let d = (a - b).abs();
                    worst = if d.is_nan() {
                        f64::INFINITY
                    } else {
                        worst.max(d)
                    };
                }
            }
        }
        Ok(worst)
    })()
    .map_err(|e| e.to_string());
    Outcome {
        point,
        path_point,
        path,
    }
}

/// Records `error <= tol` with margin `tol / error`.
fn identity(tally: &mut Tally, error: f64, tol: f64, what: impl FnOnce() -> String) {
    tally.upper(error, tol, || {
        format!("relative error {error:.3e} > tolerance {tol:e}: {}", what())
    });
}

/// Runs the check.
pub fn run(cfg: &CheckConfig) -> CheckReport {
    let mut tally = Tally::new(
        "Lemma 9",
        "tabular, lambda > 0, |S| > 1: Lemma 9's d pi/dt = softmax chain rule of the logit flow (pointwise and integrated)",
    );
    let mut rng = rng(cfg.seed, 9);
    let instances: Vec<Instance> = (0..cfg.size(12, 120)).map(|_| draw(&mut rng)).collect();
    let outcomes: Vec<Outcome> = instances
        .par_iter()
        .map(|inst| measure(inst, &cfg.solver))
        .collect();
    let (mut worst_point, mut worst_path_point, mut worst_path) = (0.0f64, 0.0f64, 0.0f64);
    for (i, (inst, out)) in instances.iter().zip(&outcomes).enumerate() {
        let describe = || format!("#{i}: {inst:?}");
        for (k, name) in ["generic gradient", "fused field"].iter().enumerate() {
            worst_point = worst_point.max(out.point[k]);
            identity(&mut tally, out.point[k], POINT_TOL, || {
                format!("(a) {name} at the perturbed state, {}", describe())
            });
        }
        worst_path_point = worst_path_point.max(out.path_point);
        identity(&mut tally, out.path_point, POINT_TOL, || {
            format!("(b) pointwise along the flow, {}", describe())
        });
        match &out.path {
            Ok(err) => {
                worst_path = worst_path.max(*err);
                identity(&mut tally, *err, PATH_TOL, || {
                    format!("(b) integrated logit vs probability flow, {}", describe())
                });
            }
            Err(e) => tally.require(false, || {
                format!("(b) integration failed: {e}: {}", describe())
            }),
        }
    }
    tally.note(format!(
        "{} instances (|S| in {{2,3,5}}, |Y| up to 20, lambda in {{0.01, 0.1, 1, 5}}): pointwise relative error \
         <= {worst_point:.2e} off pi_0 and {worst_path_point:.2e} along the flow (tolerance {POINT_TOL:e}); \
         integrated to t = {{1, 10}} |S| at rtol {PATH_RTOL:e}: max |pi_logit - pi_prob| = {worst_path:.2e} \
         (tolerance {PATH_TOL:e})",
        instances.len()
    ));
    tally.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wrong formula (the KL terms' sign flipped, emulated by flipping lambda in the
    /// chain-rule side) is caught pointwise.
    #[test]
    fn a_wrong_lambda_is_caught() {
        let mut rng = rng(1, 9);
        let inst = draw(&mut rng);
        let policy = TabularPolicy::new(inst.num_outputs, inst.num_prompts);
        let right =
            KlObjective::new(&policy, inst.reward.clone(), inst.lambda, &inst.theta0).unwrap();
        let wrong = KlObjective::new(
            &policy,
            inst.reward.clone(),
            2.0 * inst.lambda,
            &inst.theta0,
        )
        .unwrap();
        let mut g = vec![0.0; inst.theta.len()];
        wrong.gradient(&inst.theta, &mut g);
        assert!(pointwise_error(&policy, &right, &inst.theta, &g) > 1e3 * POINT_TOL);
        right.gradient(&inst.theta, &mut g);
        assert!(pointwise_error(&policy, &right, &inst.theta, &g) <= POINT_TOL);
    }
}
