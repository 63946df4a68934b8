//! Theorem 4: low reward variance under the initial policy means slow increase,
//! for general autoregressive policies:
//! `t_gamma >= min{1 - e^(-gamma/9), 1 - e^(-7/(3 lambda))} / (8 L^2 J_{t_gamma}^2)
//!             * (E_{x'~S} Var_{pi_0(.|x')}[r_RM(x',.)])^(-1/3)`.
//!
//! Instances: random autoregressive policies (both logit models, `|S| in {1,2,3}`,
//! `|V|^L <= 27`, `theta_0 ~ N(0, s^2)` with `s in {0.3, 1, 2}`), `lambda in {0, 0.05}`, ground truth `r_G` uniform in `[-1, 1]`, and
//! proxy `r_RM = c * base` with `base` uniform in `[-1, 1]` (or `base = r_G`) and `c`
//! swept over `10^{0, -0.5, ..., -3}`, so that `E Var_{pi_0}[r_RM]` spans six decades.
//! The flow (Eq. 4, trained on `r_RM`, all prompts) is integrated in parameter space;
//! for prompt `x = 0` the first times `E_{pi(t)} r(x,.) >= E_{pi_0} r(x,.) + gamma` are
//! located for `r = r_G` and `r = r_RM`, each with
//! `gamma = (max_y r(x,y) - E_{pi_0} r(x,.)) / 2`.
//!
//! `J_{t_gamma}` is the sup over prompts, prefixes and `t in [0, t_gamma]` of the Jacobian
//! spectral norm. For logits linear in `theta` (both models here) it is constant and is
//! read at `theta_0`; otherwise it is tracked along the trajectory (every accepted
//! solver step up to `t_gamma`; a sampled sup can only under-estimate the true sup,
//! which makes the checked bound larger, i.e. the check stricter).
//!
//! A crossing beyond the integration horizon `H` is checked as `t_gamma >= H`: it passes
//! only when `H >= bound`, which the horizon is chosen to guarantee (`H >= 4 bound`).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{CheckConfig, CheckReport, Slope, Tally};
use crate::flow::{Crossing, SolverConfig};
use crate::measure::autoregressive::{measure, sup_jacobian, Measured};
use crate::policy::{AutoregressivePolicy, LinearFeatures, Policy, PrefixTable, TanhFeatures};
use crate::Result;

/// Exponents `k` of the reward scale `c = 10^(-k/2)`, `k = 0..=6`.
const SCALE_STEPS: usize = 7;
/// KL coefficients.
const LAMBDAS: [f64; 2] = [0.0, 0.05];
/// The prompt whose `t_gamma` is measured.
const PROMPT: usize = 0;
/// Time after which the unscaled (`c = 1`) flow is stopped, in units of `1 / J^2`.
const BASE_HORIZON: f64 = 400.0;

/// One random base instance (before the reward scale and lambda are chosen).
struct Base {
    label: String,
    policy: Box<dyn ErasedPolicy>,
    theta0: Vec<f64>,
    r_g: Vec<Vec<f64>>,
    base: Vec<Vec<f64>>,
}

/// Object-safe access to [`measure`] over the two concrete policy types.
trait ErasedPolicy {
    #[allow(clippy::too_many_arguments)]
    fn measure(
        &self,
        theta0: &[f64],
        r_g: &[Vec<f64>],
        r_rm: &[Vec<f64>],
        lambda: f64,
        x: usize,
        horizon_hint: f64,
        solver: &SolverConfig,
    ) -> Result<Measured>;
    fn jacobian_sup(&self, theta: &[f64]) -> f64;
}

impl<P: Policy> ErasedPolicy for P {
    fn measure(
        &self,
        theta0: &[f64],
        r_g: &[Vec<f64>],
        r_rm: &[Vec<f64>],
        lambda: f64,
        x: usize,
        horizon_hint: f64,
        solver: &SolverConfig,
    ) -> Result<Measured> {
        measure(self, theta0, r_g, r_rm, lambda, x, horizon_hint, solver)
    }
    fn jacobian_sup(&self, theta: &[f64]) -> f64 {
        sup_jacobian(self, theta)
    }
}

fn random_base(index: usize, rng: &mut ChaCha8Rng) -> Base {
    let (vocab, len) = loop {
        let v = rng.random_range(2..=4usize);
        let l = rng.random_range(1..=3usize);
        if v.pow(l as u32) <= 27 {
            break (v, l);
        }
    };
    let prompts = rng.random_range(1..=3usize);
    let outputs = vocab.pow(len as u32);
    let theta_scale = [0.3, 1.0, 2.0][rng.random_range(0..3)];
    let (policy, theta0, model): (Box<dyn ErasedPolicy>, Vec<f64>, String) = if index % 3 == 0 {
        let p = AutoregressivePolicy::new(PrefixTable::new(vocab, len, prompts), len, prompts);
        let theta0 = crate::measure::sample::logits(rng, p.num_params(), theta_scale);
        (Box::new(p), theta0, "PrefixTable".into())
    } else if index % 3 == 2 {
        // Non-linear logits: the Jacobian moves, J_{t_gamma} is tracked along the flow.
        let (dim, hidden) = (4, [3, 6][rng.random_range(0..2)]);
        let p = AutoregressivePolicy::new(
            TanhFeatures::random(vocab, len, prompts, dim, hidden, 1.0, rng),
            len,
            prompts,
        );
        let theta0 = crate::measure::sample::logits(rng, p.num_params(), theta_scale);
        (
            Box::new(p),
            theta0,
            format!("TanhFeatures(K = {dim}, H = {hidden})"),
        )
    } else {
        let dim = [3, 8][rng.random_range(0..2)];
        let scale = [0.5, 1.0, 3.0][rng.random_range(0..3)];
        let p = AutoregressivePolicy::new(
            LinearFeatures::random(vocab, len, prompts, dim, scale, rng),
            len,
            prompts,
        );
        let theta0 = crate::measure::sample::logits(rng, p.num_params(), theta_scale);
        (
            Box::new(p),
            theta0,
            format!("LinearFeatures(K = {dim}, feature scale {scale})"),
        )
    };
    let r_g: Vec<Vec<f64>> = (0..prompts)
        .map(|_| (0..outputs).map(|_| rng.random_range(-1.0..=1.0)).collect())
        .collect();
    let base_is_rg = index % 4 < 2;
    let base = if base_is_rg {
        r_g.clone()
    } else {
        (0..prompts)
            .map(|_| (0..outputs).map(|_| rng.random_range(-1.0..=1.0)).collect())
            .collect()
    };
    Base {
        label: format!(
            "base instance {index}: {model}, |V| = {vocab}, L = {len}, |S| = {prompts}, theta0 ~ N(0, {theta_scale}^2), \
             base {}",
            if base_is_rg { "= r_G" } else { "random" }
        ),
        policy,
        theta0,
        r_g,
        base,
    }
}

/// Centres `ln v` per group and returns `exp` of the centred values, so that a plain
/// log-log fit over all groups gives the within-group (fixed-effects) slope.
fn centre_logs(groups: &[Vec<f64>]) -> Vec<f64> {
    groups
        .iter()
        .flat_map(|g| {
            let m = g.iter().map(|v| v.ln()).sum::<f64>() / g.len() as f64;
            g.iter().map(move |v| (v.ln() - m).exp())
        })
        .collect()
}

/// Runs Theorem 4's check.
/// Runs the check: build the scaled runs, integrate, judge.
pub fn run(cfg: &CheckConfig) -> CheckReport {
    let mut tally = Tally::new(
        "Theorem 4",
        "t_gamma >= min{1-e^(-gamma/9), 1-e^(-7/(3 lambda))} / (8 L^2 J^2) * E Var_{pi_0}[r_RM]^(-1/3) (autoregressive)",
    );
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x5448_4d34);
    let bases: Vec<Base> = (0..cfg.size(2, 40))
        .map(|b| random_base(b, &mut rng))
        .collect();
    let scales: Vec<f64> = (0..cfg.size(4, SCALE_STEPS))
        .map(|k| 10f64.powf(-0.5 * k as f64))
        .collect();
    let runs = build(&bases, &scales);
    let measured: Vec<Result<Measured>> = runs
        .iter()
        .map(|r| {
            let base = &bases[r.base];
            base.policy.measure(
                &base.theta0,
                &base.r_g,
                &r.r_rm,
                LAMBDAS[r.lambda],
                PROMPT,
                r.hint,
                &cfg.solver,
            )
        })
        .collect();
    let stats = judge_bounds(&bases, &runs, &measured, scales.len(), &mut tally);
    fit_sweeps(&stats, scales.len(), &mut tally);
    note_stats(&stats, bases.len(), &scales, &mut tally);
    tally.finish()
}

/// One integration: base instance, KL coefficient (index into [`LAMBDAS`]), reward
/// scale `c` and the scaled reward, and the horizon hint.
struct Run {
    base: usize,
    lambda: usize,
    c: f64,
    r_rm: Vec<Vec<f64>>,
    hint: f64,
}

/// Every base instance under every KL coefficient and reward scale, in that order.
fn build(bases: &[Base], scales: &[f64]) -> Vec<Run> {
    let mut runs = Vec::new();
    for (b, base) in bases.iter().enumerate() {
        let jac0 = base.policy.jacobian_sup(&base.theta0);
        for (li, &lambda) in LAMBDAS.iter().enumerate() {
            for &c in scales {
                let r_rm: Vec<Vec<f64>> = base
                    .base
                    .iter()
                    .map(|r| r.iter().map(|v| c * v).collect())
                    .collect();
                // lambda = 0: time rescales exactly by 1/c. lambda > 0: the KL pull sets
                // the time scale once c < lambda.
                let hint = BASE_HORIZON / (jac0 * jac0) / c.max(lambda);
                runs.push(Run {
                    base: b,
                    lambda: li,
                    c,
                    r_rm,
                    hint,
                });
            }
        }
    }
    runs
}

/// What judging the runs gathered for the slope fits and the notes.
struct Stats {
    /// Per `lambda = 0` base instance with every crossing of that reward inside the
    /// horizon: `(E Var, t_gamma)` over the scales, for `r_G` and `r_RM`.
    sweeps: [Vec<(Vec<f64>, Vec<f64>)>; 2],
    /// Smallest and largest `t_gamma / bound` of runs that crossed, per reward.
    min_ratio: [f64; 2],
    max_ratio: [f64; 2],
    /// Indexed `[lambda][reward]`: runs whose threshold was reached / not reached.
    crossed: [[usize; 2]; 2],
    beyond: [[usize; 2]; 2],
    integrations: usize,
    /// `horizon / bound` over runs beyond the horizon.
    min_horizon_ratio: f64,
    /// `lambda = 0`: `|c t_gamma(c) / t_gamma(1) - 1|`.
    max_rescale_dev: f64,
    var_lo: f64,
    var_hi: f64,
    errors: Vec<String>,
    /// Largest `J_{t_gamma} / J(0)` seen (1 for the linear models).
    jac_growth: f64,
}

/// Every run's `t_gamma` against its bound, for `r_G` and `r_RM`; gathers the sweeps
/// and the figures the notes report. `runs` come in blocks of `num_scales` (one base
/// instance and `lambda`).
fn judge_bounds(
    bases: &[Base],
    runs: &[Run],
    measured: &[Result<Measured>],
    num_scales: usize,
    tally: &mut Tally,
) -> Stats {
    let mut st = Stats {
        sweeps: [Vec::new(), Vec::new()],
        min_ratio: [f64::INFINITY; 2],
        max_ratio: [0.0; 2],
        crossed: [[0; 2]; 2],
        beyond: [[0; 2]; 2],
        integrations: 0,
        min_horizon_ratio: f64::INFINITY,
        max_rescale_dev: 0.0,
        var_lo: f64::INFINITY,
        var_hi: 0.0,
        errors: Vec::new(),
        jac_growth: 1.0,
    };
    for (block_runs, block) in runs.chunks(num_scales).zip(measured.chunks(num_scales)) {
        let base = &bases[block_runs[0].base];
        let li = block_runs[0].lambda;
        let lambda = LAMBDAS[li];
        let jac0 = base.policy.jacobian_sup(&base.theta0);
        let mut sweep: [Vec<(f64, f64)>; 2] = [Vec::new(), Vec::new()];
        let mut all_crossed = [true; 2];
        for (run, m) in block_runs.iter().zip(block) {
            let (c, r_rm) = (run.c, &run.r_rm);
            st.integrations += 1;
            let m = match m {
                Ok(m) => m,
                Err(e) => {
                    st.errors
                        .push(format!("{}, lambda {lambda}, c {c:.3e}: {e}", base.label));
                    tally.require(false, || {
                        format!(
                            "{}, lambda {lambda}, c {c:.3e}: integration failed: {e}",
                            base.label
                        )
                    });
                    continue;
                }
            };
            st.var_lo = st.var_lo.min(m.mean_var);
            st.var_hi = st.var_hi.max(m.mean_var);
            for j in m.jac {
                st.jac_growth = st.jac_growth.max(j / jac0);
            }
            for (k, name) in ["r_G", "r_RM"].iter().enumerate() {
                let t = m.t_gamma[k].lower_bound();
                match m.t_gamma[k] {
                    Crossing::At(_) => {
                        st.crossed[li][k] += 1;
                        st.min_ratio[k] = st.min_ratio[k].min(t / m.bound[k]);
                        st.max_ratio[k] = st.max_ratio[k].max(t / m.bound[k]);
                        sweep[k].push((m.mean_var, t));
                    }
                    Crossing::BeyondHorizon(h) => {
                        st.beyond[li][k] += 1;
                        st.min_horizon_ratio = st.min_horizon_ratio.min(h / m.bound[k]);
                        all_crossed[k] = false;
                    }
                }
                tally.lower(t, m.bound[k], || {
                    format!(
                        "{}, lambda = {lambda}, c = {c:.4e}, reward {name}: t_gamma = {}, gamma = {:.6e}, \
                         J = {:.6}, E Var_pi0[r_RM] = {:.6e}, horizon = {:.4e}; theta0 = {:?}, r_G = {:?}, \
                         r_RM = {:?}",
                        base.label,
                        m.t_gamma[k],
                        m.gamma[k],
                        m.jac[k],
                        m.mean_var,
                        m.horizon,
                        base.theta0,
                        base.r_g,
                        r_rm
                    )
                });
            }
        }
        if lambda == 0.0 {
            for k in 0..2 {
                if all_crossed[k] && sweep[k].len() == num_scales {
                    let (v, t): (Vec<f64>, Vec<f64>) = sweep[k].iter().copied().unzip();
                    for (ti, run) in t.iter().zip(block_runs) {
                        st.max_rescale_dev =
                            st.max_rescale_dev.max((run.c * ti / t[0] - 1.0).abs());
                    }
                    st.sweeps[k].push((v, t));
                }
            }
        }
    }
    st
}

/// The `lambda = 0` scaling sweeps' slopes (an identity: slope -1/2 against the bound's
/// exponent -1/3), reported.
fn fit_sweeps(stats: &Stats, num_scales: usize, tally: &mut Tally) {
    for (k, sweeps) in stats.sweeps.iter().enumerate() {
        let name = ["r_G", "r_RM"][k];
        let per: Vec<f64> = sweeps
            .iter()
            .map(|(v, t)| super::log_log_slope(v, t).0)
            .collect();
        let xs: Vec<Vec<f64>> = sweeps.iter().map(|(v, _)| v.clone()).collect();
        let ys: Vec<Vec<f64>> = sweeps.iter().map(|(_, t)| t.clone()).collect();
        let slope = Slope::fit(
            &format!(
                "integrator sanity check (an identity: r_RM = c base at lambda = 0 rescales time by 1/c, slope -1/2): \
                 log t_gamma({name}) vs log E Var_pi0[r_RM], lambda = 0 (within-instance fit, {} sweeps)",
                sweeps.len()
            ),
            &centre_logs(&xs),
            &centre_logs(&ys),
            -1.0 / 3.0,
            None,
        );
        let (lo, hi) = per
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), s| {
                (a.min(*s), b.max(*s))
            });
        tally.note(format!(
            "lambda = 0, t_gamma({name}): fitted slope {:.4} over {:.2} decades of E Var (per-instance slopes in \
             [{lo:.4}, {hi:.4}], {} sweeps of {} scales); the bound's exponent is -1/3, but pure reward scaling \
             with lambda = 0 rescales time exactly (t_gamma ~ 1/c, E Var ~ c^2), so the measured slope should be \
             -1/2, steeper than the bound's",
            slope.fitted,
            slope.decades,
            sweeps.len(),
            num_scales
        ));
        tally.slope(slope);
    }
}

/// What the runs covered: counts, variance range, rescaling deviation, horizons, `J`.
fn note_stats(st: &Stats, bases: usize, scales: &[f64], tally: &mut Tally) {
    let Stats {
        integrations,
        var_lo,
        var_hi,
        max_rescale_dev,
        crossed,
        beyond,
        min_ratio,
        max_ratio,
        min_horizon_ratio,
        jac_growth,
        ..
    } = st;
    tally.note(format!(
        "{integrations} integrations ({bases} base instances x lambda in {LAMBDAS:?} x c in 10^{{0..-{:.1}}}), \
         E Var_pi0[r_RM] in [{var_lo:.3e}, {var_hi:.3e}]; lambda = 0 rescaling check: max |c t_gamma(c) / \
         t_gamma(1) - 1| = {max_rescale_dev:.2e}",
        0.5 * (scales.len() - 1) as f64
    ));
    for (k, name) in ["r_G", "r_RM"].iter().enumerate() {
        tally.note(format!(
            "t_gamma({name}): reached in {} runs (lambda = 0: {}, lambda = 0.05: {}), t_gamma / bound in \
             [{:.3e}, {:.3e}]; not reached by the horizon in {} runs (lambda = 0: {}, lambda = 0.05: {})",
            crossed[0][k] + crossed[1][k],
            crossed[0][k],
            crossed[1][k],
            min_ratio[k],
            max_ratio[k],
            beyond[0][k] + beyond[1][k],
            beyond[0][k],
            beyond[1][k]
        ));
    }
    tally.note(format!(
        "runs not reaching the threshold by the horizon H are checked as t_gamma >= H: a PASS only because \
         H >= bound (smallest H / bound = {min_horizon_ratio:.3e}; H >= 4 bound by construction)"
    ));
    tally.note(format!(
        "J_{{t_gamma}} tracked along the trajectory for the non-linear TanhFeatures policies: largest J_{{t_gamma}} / J(0) = {jac_growth:.4}"
    ));
    for e in &st.errors {
        tally.note(format!("integration error: {e}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A policy that hides that its Jacobian is constant, to exercise the tracking path.
    struct Opaque<P>(P);

    impl<P: Policy> Policy for Opaque<P> {
        fn num_params(&self) -> usize {
            self.0.num_params()
        }
        fn num_prompts(&self) -> usize {
            self.0.num_prompts()
        }
        fn num_outputs(&self) -> usize {
            self.0.num_outputs()
        }
        fn seq_len(&self) -> usize {
            self.0.seq_len()
        }
        fn log_probs(&self, theta: &[f64], x: usize, out: &mut [f64]) {
            self.0.log_probs(theta, x, out)
        }
        fn add_score_gradient(
            &self,
            theta: &[f64],
            x: usize,
            w: &[f64],
            scale: f64,
            grad: &mut [f64],
        ) {
            self.0.add_score_gradient(theta, x, w, scale, grad)
        }
        fn jacobian_norm(&self, theta: &[f64], x: usize) -> f64 {
            self.0.jacobian_norm(theta, x)
        }
        fn jacobian_is_constant(&self) -> bool {
            false
        }
    }

    #[test]
    fn tracked_jacobian_matches_constant_one() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let model = LinearFeatures::random(2, 2, 2, 3, 1.0, &mut rng);
        let policy = AutoregressivePolicy::new(model, 2, 2);
        let theta0 = crate::measure::sample::logits(&mut rng, policy.num_params(), 0.5);
        let r_g: Vec<Vec<f64>> = (0..2)
            .map(|_| (0..4).map(|_| rng.random_range(-1.0..=1.0)).collect())
            .collect();
        let solver = SolverConfig::default();
        let a = measure(&policy, &theta0, &r_g, &r_g, 0.0, 0, 50.0, &solver).unwrap();
        let b = measure(
            &Opaque(policy.clone()),
            &theta0,
            &r_g,
            &r_g,
            0.0,
            0,
            50.0,
            &solver,
        )
        .unwrap();
        for k in 0..2 {
            assert!((a.jac[k] - b.jac[k]).abs() < 1e-12);
            assert!((a.bound[k] - b.bound[k]).abs() <= 1e-12 * a.bound[k]);
            match (a.t_gamma[k], b.t_gamma[k]) {
                (Crossing::At(s), Crossing::At(t)) => {
                    assert!((s - t).abs() <= 1e-6 * s.max(1.0), "{s} vs {t}")
                }
                (s, t) => assert_eq!(s, t),
            }
        }
    }
}
