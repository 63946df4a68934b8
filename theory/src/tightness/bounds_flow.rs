//! Searches of the bounds on flows (each evaluation integrates one tabular or
//! autoregressive flow): Lemma 10, Propositions 3 and 4, Theorems 4, 5 and 6.
//!
//! A lower bound on `t_gamma` is searched with the horizon at [`LOWER_HORIZON`] times the
//! bound (a crossing beyond it counts as margin = horizon / bound, a lower bound on the
//! true margin; the search only reports such a point if nothing tighter was found, and
//! says so); an upper bound with the horizon at 1.5x the bound (a crossing beyond it is
//! a violation, margin <= 2/3).

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{sigmoid, BoundTightness, Budget, Side, Spec};
use crate::bounds;
use crate::checks::{exceeds, CheckConfig};
use crate::flow::{integrate_with_events, SolverConfig};
use crate::instance::TabularInstance;
use crate::measure::sample::logits as sample_logits;
use crate::objective::KlObjective;
use crate::policy::{AutoregressivePolicy, Policy, PrefixTable, TabularPolicy};
use rmteach::metrics::{expected_reward, softmax};

const NONE: (f64, String) = (f64::INFINITY, String::new());

/// Most solver steps one search evaluation may take: an instance that needs more (the
/// search drifts towards extreme logits, where flows take long) is skipped, not counted.
/// This keeps the default `verify` within its time budget at every seed.
const SEARCH_MAX_STEPS: u32 = 5_000;

/// The check's solver with at most [`SEARCH_MAX_STEPS`] steps.
fn solver(cfg: &CheckConfig) -> SolverConfig {
    SolverConfig {
        max_steps: cfg.solver.max_steps.min(SEARCH_MAX_STEPS),
        ..cfg.solver
    }
}

/// Horizon of a lower-bound search, in multiples of the bound.
const LOWER_HORIZON: f64 = 50.0;

fn tanh_all(z: &[f64]) -> Vec<f64> {
    z.iter().map(|v| v.tanh()).collect()
}

fn min_of(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn argmax(v: &[f64]) -> usize {
    (0..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b })
}

/// A `|S| = 1` tabular instance.
fn instance(
    logits: &[f64],
    r_rm: Vec<f64>,
    r_g: Vec<f64>,
    lambda: f64,
    gamma: f64,
    horizon: f64,
) -> TabularInstance {
    TabularInstance {
        num_prompts: 1,
        lambda,
        gamma,
        logits: Some(logits.to_vec()),
        probs: None,
        r_rm,
        r_g,
        horizon,
    }
}

fn json(inst: &TabularInstance) -> String {
    serde_json::to_string(inst).unwrap_or_default()
}

/// `n` from the sizes, and `n` logits of a random scale.
fn draw_logits(rng: &mut ChaCha8Rng, sizes: &[usize]) -> (usize, Vec<f64>) {
    let n = sizes[rng.random_range(0..sizes.len())];
    let scale = [0.5, 1.0, 2.0][rng.random_range(0..3)];
    (n, sample_logits(rng, n, scale))
}

/// Lemma 10 in exponent form: `ln(pi_T(y)/pi_0(y)) <= (4 + 2 lambda ln(1/min pi_0)) T`
/// (`|S| = 1`), margin = right side / left side over every accepted step `T > 0` and
/// every output whose mass grew. The plain ratio `pi_T / bound` tends to 1 as `T -> 0`
/// whatever the constant; the exponent ratio tends to (bound rate) / (initial growth
/// rate of ln pi(y)), so its minimum measures the constant 4.
pub fn lemma10(cfg: &CheckConfig) -> BoundTightness {
    let spec = Spec {
        bound: "Lemma 10",
        constant: "4 in pi_T(A) <= pi_0(A) exp((4 + 2 lambda ln(1/min pi_0)) T/|S|) (exponent form)",
        paper_constant: 4.0,
        side: Side::Upper,
        scope: "tabular |Y| in {2,3,4,6}, |S| = 1, logits and rewards free, lambda in (0, e^2], every accepted \
                step in (0, 20]; margin on the exponent (ratio of pi_T/pi_0 is 1 at T = 0 by construction)",
        salt: 0x4c31,
        budget: Budget {
            restarts: 12,
            steps: 150,
        },
    };
    spec.run(
        cfg,
        |rng| {
            let (n, mut z) = draw_logits(rng, &[2, 3, 4, 6]);
            z.extend(sample_logits(rng, n, 1.0));
            z.push(rng.random_range(-8.0..0.0));
            z
        },
        |z, describe| {
            let n = (z.len() - 1) / 2;
            let (theta0, r) = (&z[..n], tanh_all(&z[n..2 * n]));
            let lambda = z[2 * n].min(2.0).exp();
            let policy = TabularPolicy::new(n, 1);
            let Ok(obj) = KlObjective::new(&policy, vec![r.clone()], lambda, theta0) else {
                return NONE;
            };
            let observe = |theta: &[f64]| softmax(theta);
            let Ok(out) = integrate_with_events(
                &obj.tabular_field(),
                theta0,
                20.0,
                &observe,
                &[],
                true,
                &solver(cfg),
            ) else {
                return NONE;
            };
            let pi0 = softmax(theta0);
            let rate = 4.0 + 2.0 * lambda * (1.0 / min_of(&pi0)).ln();
            let mut worst = (f64::INFINITY, 0.0, 0usize);
            for (t, p) in out
                .trajectory
                .times
                .iter()
                .zip(&out.trajectory.observations)
                .skip(1)
            {
                for (y, (pt, p0)) in p.iter().zip(&pi0).enumerate() {
                    let grow = (pt / p0).ln();
                    if grow > 0.0 && rate * t / grow < worst.0 {
                        worst = (rate * t / grow, *t, y);
                    }
                }
            }
            let text = if describe {
                format!(
                    "|Y|={n}, lambda={lambda:.4e}, at T={:.4e}, y={}: theta0={theta0:?}, r={r:?}",
                    worst.1, worst.2
                )
            } else {
                String::new()
            };
            (worst.0, text)
        },
    )
}

/// Proposition 3, both `t_gamma(r_G)` and `t_gamma(r_RM)` of the flow trained on `r_RM`.
pub fn prop3(cfg: &CheckConfig) -> BoundTightness {
    let spec = Spec {
        bound: "Proposition 3",
        constant: "2 in t_gamma >= 2|S|(1-e^(-gamma/2))/sqrt(Var_pi0[r_RM])",
        paper_constant: 2.0,
        side: Side::Lower,
        scope: "tabular |Y| in {2,3,4,6}, |S| = 1, logits, r_RM, r_G free, gamma in (0, max r_RM - V_RM(0)), \
                lambda in (0, e^2]",
        salt: 0x5033,
        budget: Budget {
            restarts: 12,
            steps: 150,
        },
    };
    spec.run(
        cfg,
        |rng| {
            let (n, mut z) = draw_logits(rng, &[2, 3, 4, 6]);
            z.extend(sample_logits(rng, 2 * n, 1.0));
            z.push(rng.random_range(-4.0..2.0));
            z.push(rng.random_range(-8.0..0.0));
            z
        },
        |z, describe| {
            let n = (z.len() - 2) / 3;
            let theta0 = &z[..n];
            let (r_rm, r_g) = (tanh_all(&z[n..2 * n]), tanh_all(&z[2 * n..3 * n]));
            let pi0 = softmax(theta0);
            let v0 = expected_reward(&pi0, &r_rm).unwrap_or(f64::NAN);
            let room = r_rm.iter().copied().fold(f64::NEG_INFINITY, f64::max) - v0;
            if !exceeds(room, 1e-9) {
                return NONE;
            }
            let gamma = sigmoid(z[3 * n]) * room;
            let lambda = z[3 * n + 1].min(2.0).exp();
            let mut inst = instance(theta0, r_rm, r_g, lambda, gamma, 1.0);
            let Ok(bound) = inst.prop3_bound() else {
                return NONE;
            };
            inst.horizon = LOWER_HORIZON * bound;
            let Ok(res) = inst.run(&solver(cfg), false) else {
                return NONE;
            };
            let m = (res.t_gamma_g.lower_bound() / res.prop3_bound_g)
                .min(res.t_gamma_rm.lower_bound() / res.prop3_bound_rm);
            let text = if describe {
                format!(
                    "t_gamma(r_G) {}, t_gamma(r_RM) {}, bound {bound:.6e}: {}",
                    res.t_gamma_g,
                    res.t_gamma_rm,
                    json(&inst)
                )
            } else {
                String::new()
            };
            (m, text)
        },
    )
}

/// Theorem 4 on per-prefix tables (`J = 1`), through the check's own measurement.
pub fn thm4(cfg: &CheckConfig) -> BoundTightness {
    let spec = Spec {
        bound: "Theorem 4",
        constant: "1/8 in t_gamma >= min{1-e^(-gamma/9), 1-e^(-7/(3 lambda))} / (8 L^2 J^2) E Var^(-1/3)",
        paper_constant: 0.125,
        side: Side::Lower,
        scope: "PrefixTable policies (J = 1), (|V|, L) in {(2,1), (3,1), (4,1), (2,2)}, |S| = 1, logits, r_RM, r_G \
                free, gamma = half the room (as in the check), lambda in (0, e^3]",
        salt: 0x5434,
        budget: Budget {
            restarts: 8,
            steps: 80,
        },
    };
    let shapes = [(2usize, 1usize), (3, 1), (4, 1), (2, 2)];
    let policy_of = |v: usize, l: usize| AutoregressivePolicy::new(PrefixTable::new(v, l, 1), l, 1);
    spec.run(
        cfg,
        |rng| {
            let (v, l) = shapes[rng.random_range(0..shapes.len())];
            let p = policy_of(v, l);
            let mut z = vec![v as f64, l as f64];
            let scale = [0.5, 1.0, 2.0][rng.random_range(0..3)];
            z.extend(sample_logits(rng, p.num_params(), scale));
            // Rewards near the ends of [-1, 1] (large variance) as often as not.
            let spread = [1.0, 3.0][rng.random_range(0..2)];
            z.extend(sample_logits(rng, 2 * p.num_outputs(), spread));
            z.push(rng.random_range(-8.0..3.0));
            z
        },
        |z, describe| {
            let (v, l) = (z[0].round() as usize, z[1].round() as usize);
            if !shapes.contains(&(v, l)) {
                return NONE;
            }
            let policy = policy_of(v, l);
            let (p, k) = (policy.num_params(), policy.num_outputs());
            if z.len() != 2 + p + 2 * k + 1 {
                return NONE;
            }
            let theta0 = &z[2..2 + p];
            let r_rm = tanh_all(&z[2 + p..2 + p + k]);
            let r_g = tanh_all(&z[2 + p + k..2 + p + 2 * k]);
            let lambda = z[2 + p + 2 * k].min(3.0).exp();
            let Ok(m) = crate::measure::autoregressive::measure(
                &policy,
                theta0,
                std::slice::from_ref(&r_g),
                std::slice::from_ref(&r_rm),
                lambda,
                0,
                1e4,
                &solver(cfg),
            ) else {
                return NONE;
            };
            let margin = (m.t_gamma[0].lower_bound() / m.bound[0]).min(m.t_gamma[1].lower_bound() / m.bound[1]);
            let text = if describe {
                format!(
                    "|V|={v}, L={l}, lambda={lambda:.4e}, t_gamma(r_G) {} vs bound {:.6e}, t_gamma(r_RM) {} vs bound \
                     {:.6e}, E Var={:.6e}: theta0={theta0:?}, r_RM={r_rm:?}, r_G={r_g:?}",
                    m.t_gamma[0], m.bound[0], m.t_gamma[1], m.bound[1], m.mean_var
                )
            } else {
                String::new()
            };
            (margin, text)
        },
    )
}

/// `atanh` of a reward clamped into the open interval.
fn atanh(r: f64) -> f64 {
    r.clamp(-0.999_999, 0.999_999).atanh()
}

/// Proposition 4, started from the check's own feasible instances; a point that leaves
/// the conditions (i)-(iii) (or `Y+`'s defining inequalities) is rejected.
pub fn prop4(cfg: &CheckConfig) -> BoundTightness {
    let spec = Spec {
        bound: "Proposition 4",
        constant: "4 in t_gamma <= 4|S||Y+| / ((1-rho) delta) (1/pi_0(Y+) - 1/rho)",
        paper_constant: 4.0,
        side: Side::Upper,
        scope: "tabular, starts drawn as in the check (|Y| in {3,4,6,10,16}, |Y+| from 1 to 5), then logits, r_G, r_RM, \
                gamma, lambda and |Y+| (the first k outputs) moved freely within (i)-(iii)",
        salt: 0x5034,
        budget: Budget {
            restarts: 12,
            steps: 150,
        },
    };
    spec.run(
        cfg,
        |rng| loop {
            if let Some(case) = crate::checks::prop4::draw(rng, 1000) {
                let inst = &case.inst;
                let n = inst.r_g.len();
                let mut z = vec![case.y_plus.len() as f64];
                z.extend(inst.initial_logits());
                z.extend(inst.r_g.iter().map(|r| atanh(*r)));
                z.extend(inst.r_rm.iter().map(|r| atanh(*r)));
                z.push(inst.gamma.ln());
                let frac = if case.terms.lambda_max > 0.0 {
                    inst.lambda / case.terms.lambda_max
                } else {
                    0.0
                };
                z.push(if frac > 0.0 {
                    (frac / (1.0 - frac + 1e-9)).ln()
                } else {
                    -12.0
                });
                debug_assert_eq!(z.len(), 3 * n + 3);
                return z;
            }
        },
        |z, describe| {
            let n = (z.len() - 3) / 3;
            let k = z[0].round();
            if !(k >= 1.0 && k < n as f64) {
                return NONE;
            }
            let k = k as usize;
            let theta0 = &z[1..1 + n];
            let r_g = tanh_all(&z[1 + n..1 + 2 * n]);
            let r_rm = tanh_all(&z[1 + 2 * n..1 + 3 * n]);
            let gamma = z[1 + 3 * n].exp();
            let pi0 = softmax(theta0);
            let y_plus: Vec<usize> = (0..k).collect();
            let t = bounds::prop4_terms(&pi0, &r_g, &r_rm, &y_plus, gamma, 1);
            let lambda = sigmoid(z[2 + 3 * n]) * t.lambda_max;
            let (v_g0, v_rm0) = (
                expected_reward(&pi0, &r_g).unwrap_or(f64::NAN),
                expected_reward(&pi0, &r_rm).unwrap_or(f64::NAN),
            );
            let bad: f64 = (k..n).filter(|&y| r_rm[y] > v_rm0).map(|y| pi0[y]).sum();
            let feasible = y_plus
                .iter()
                .all(|&y| r_g[y] > v_g0 + gamma && r_rm[y] > v_rm0)
                && t.delta > 0.0
                && t.rho > 0.0
                && t.rho < 1.0
                && lambda <= t.lambda_max
                && bad <= t.bad_mass_max
                && t.time_bound.is_finite()
                && t.time_bound > 0.0;
            if !feasible {
                return NONE;
            }
            let inst = instance(theta0, r_rm, r_g, lambda, gamma, 1.5 * t.time_bound);
            let Ok(res) = inst.run(&solver(cfg), false) else {
                return NONE;
            };
            let margin = t.time_bound / res.t_gamma_g.lower_bound();
            let text = if describe {
                format!(
                    "Y+ = 0..{k}, rho={:.6}, delta={:.6e}, t_gamma {} vs bound {:.6e}: {}",
                    t.rho,
                    t.delta,
                    res.t_gamma_g,
                    t.time_bound,
                    json(&inst)
                )
            } else {
                String::new()
            };
            (margin, text)
        },
    )
}

/// The shared start of the Theorem 5 and 6 searches: logits, then `r_G` with the first
/// `high` outputs near the top of the range, then `extra` more coordinates.
fn start_with_high(rng: &mut ChaCha8Rng, sizes: &[usize], high: usize, extra: usize) -> Vec<f64> {
    let (n, mut z) = draw_logits(rng, sizes);
    let mut r = sample_logits(rng, n, 1.0);
    r.iter_mut().take(high).for_each(|v| *v = 1.5 + 0.5 * *v);
    z.extend(r);
    z.extend(sample_logits(rng, extra, 1.5));
    z
}

/// Theorem 5, slow side: `r_RM = b` with `b_y in (0, 1/T)`; `T >= 1` free.
pub fn thm5_slow(cfg: &CheckConfig) -> BoundTightness {
    let spec = Spec {
        bound: "Theorem 5 (slow)",
        constant: "2 in t_gamma >= 2|S|(1-e^(-gamma/2)) T",
        paper_constant: 2.0,
        side: Side::Lower,
        scope: "tabular |Y| in {2,3,4,6}, |S| = 1, logits and r_G free, r_RM(y) in (0, 1/T) free, T in [1, 1+e^8], \
                y_g = argmax r_G, gamma in (0, r_G(y_g) - V_G(0)), lambda in (0, lambda_max of the fast side)",
        salt: 0x5435,
        budget: Budget {
            restarts: 12,
            steps: 150,
        },
    };
    spec.run(
        cfg,
        |rng| {
            let mut z = start_with_high(rng, &[2, 3, 4, 6], 0, 0);
            let n = z.len() / 2;
            z.extend(sample_logits(rng, n, 1.0));
            z.extend([
                rng.random_range(-3.0..3.0),
                rng.random_range(-2.0..5.0),
                rng.random_range(-6.0..3.0),
            ]);
            z
        },
        |z, describe| {
            let n = (z.len() - 3) / 3;
            let theta0 = &z[..n];
            let r_g = tanh_all(&z[n..2 * n]);
            let t_big = 1.0 + z[3 * n + 1].min(8.0).exp();
            let b: Vec<f64> = z[2 * n..3 * n]
                .iter()
                .map(|v| sigmoid(*v) / t_big)
                .collect();
            let pi0 = softmax(theta0);
            let v_g0 = expected_reward(&pi0, &r_g).unwrap_or(f64::NAN);
            let y_g = argmax(&r_g);
            let room = r_g[y_g] - v_g0;
            if !exceeds(room, 1e-9)
                || b.iter()
                    .any(|v| !(exceeds(*v, 0.0) && exceeds(1.0 / t_big, *v)))
            {
                return NONE;
            }
            let gamma = sigmoid(z[3 * n]) * room;
            let rho = bounds::rho(v_g0, gamma, r_g[y_g]);
            let lambda =
                sigmoid(z[3 * n + 2]) * bounds::thm5_lambda_max(pi0[y_g], rho, min_of(&pi0));
            let bound = bounds::thm5_slow_bound(gamma, 1, t_big);
            let inst = instance(theta0, b, r_g, lambda, gamma, LOWER_HORIZON * bound);
            let Ok(res) = inst.run(&solver(cfg), false) else {
                return NONE;
            };
            let text = if describe {
                format!(
                    "T={t_big:.6e}, t_gamma {} vs bound {bound:.6e}: {}",
                    res.t_gamma_g,
                    json(&inst)
                )
            } else {
                String::new()
            };
            (res.t_gamma_g.lower_bound() / bound, text)
        },
    )
}

/// Theorem 5, fast side: `r'_RM(y_g) = 1`, `r'_RM(y) = c_y in (0, pi_0(y_g))` otherwise.
pub fn thm5_fast(cfg: &CheckConfig) -> BoundTightness {
    let spec = Spec {
        bound: "Theorem 5 (fast)",
        constant: "4 in t_gamma <= 4|S|/(1-rho)^4 (1/pi_0(y_g) - 1/rho)",
        paper_constant: 4.0,
        side: Side::Upper,
        scope: "tabular |Y| in {2,3,4,6}, |S| = 1, logits and r_G free, y_g = output 0 (any with r_G(y_g) > \
                V_G(0)), c_y in (0, pi_0(y_g)) free, gamma in (0, r_G(y_g) - V_G(0)), lambda in (0, lambda_max]",
        salt: 0x5436,
        budget: Budget {
            restarts: 12,
            steps: 150,
        },
    };
    spec.run(
        cfg,
        |rng| {
            let mut z = start_with_high(rng, &[2, 3, 4, 6], 1, 0);
            let n = z.len() / 2;
            z.extend(sample_logits(rng, n, 1.0));
            z.extend([rng.random_range(-3.0..3.0), rng.random_range(-6.0..3.0)]);
            z
        },
        |z, describe| {
            let n = (z.len() - 2) / 3;
            let theta0 = &z[..n];
            let r_g = tanh_all(&z[n..2 * n]);
            let pi0 = softmax(theta0);
            let v_g0 = expected_reward(&pi0, &r_g).unwrap_or(f64::NAN);
            let room = r_g[0] - v_g0;
            if !exceeds(room, 1e-9) {
                return NONE;
            }
            let mut r_rm: Vec<f64> = z[2 * n..3 * n]
                .iter()
                .map(|v| sigmoid(*v) * pi0[0])
                .collect();
            r_rm[0] = 1.0;
            if r_rm[1..].iter().any(|c| !(*c > 0.0 && *c < pi0[0])) {
                return NONE;
            }
            let gamma = sigmoid(z[3 * n]) * room;
            let rho = bounds::rho(v_g0, gamma, r_g[0]);
            let lambda = sigmoid(z[3 * n + 1]) * bounds::thm5_lambda_max(pi0[0], rho, min_of(&pi0));
            let bound = bounds::thm5_fast_bound(1, rho, pi0[0]);
            let inst = instance(theta0, r_rm, r_g, lambda, gamma, 1.5 * bound);
            let Ok(res) = inst.run(&solver(cfg), false) else {
                return NONE;
            };
            let text = if describe {
                format!(
                    "rho={rho:.6}, t_gamma {} vs bound {bound:.6e}: {}",
                    res.t_gamma_g,
                    json(&inst)
                )
            } else {
                String::new()
            };
            (bound / res.t_gamma_g.lower_bound(), text)
        },
    )
}

/// A Theorem 6 point decoded: `pi_0`, `r_G`, `V0`, `gamma`, `rho` (of `y_g = 0`), `lambda`.
struct Thm6Point {
    theta0: Vec<f64>,
    pi0: Vec<f64>,
    r_g: Vec<f64>,
    gamma: f64,
    rho: f64,
    lambda: f64,
}

/// `[logits n | r_G n | gamma | lambda]`, `y_g = 0`, `y_g' = 1`, both above `V0 + gamma`,
/// `c = pi_0(y_g)` (the largest `c` with `pi_0 in Pi`, i.e. the smallest fast bound).
fn thm6_point(z: &[f64]) -> Option<Thm6Point> {
    let n = (z.len() - 2) / 2;
    let theta0 = z[..n].to_vec();
    let r_g = tanh_all(&z[n..2 * n]);
    let pi0 = softmax(&theta0);
    let v0 = expected_reward(&pi0, &r_g).ok()?;
    let room = r_g[0].min(r_g[1]) - v0;
    if !exceeds(room, 1e-9) {
        return None;
    }
    let gamma = sigmoid(z[2 * n]) * room;
    let rho = bounds::rho(v0, gamma, r_g[0]);
    let lambda = sigmoid(z[2 * n + 1]) * bounds::thm6_lambda_max(pi0[0], rho, min_of(&pi0));
    Some(Thm6Point {
        theta0,
        pi0,
        r_g,
        gamma,
        rho,
        lambda,
    })
}

fn thm6_start(rng: &mut ChaCha8Rng) -> Vec<f64> {
    let mut z = start_with_high(rng, &[3, 4, 6], 2, 0);
    z[1] -= rng.random_range(0.0..6.0);
    z.extend([rng.random_range(-3.0..3.0), rng.random_range(-6.0..3.0)]);
    z
}

/// Theorem 6, fast side: from `pi_0 in Pi` with `c = pi_0(y_g)`, `r_RM = +1 on y_g`.
pub fn thm6_fast(cfg: &CheckConfig) -> BoundTightness {
    let spec = Spec {
        bound: "Theorem 6 (fast)",
        constant: "2 in t_gamma <= 2|S|/(1-rho)^3 (1/c - 1/rho)",
        paper_constant: 2.0,
        side: Side::Upper,
        scope: "tabular |Y| in {3,4,6}, |S| = 1, logits and r_G free with r_G(y_g), r_G(y_g') > V0 + gamma, \
                c = pi_0(y_g) (the tightest c allowed), T = 1, gamma and lambda in (0, lambda_max] free",
        salt: 0x5436_0001,
        budget: Budget {
            restarts: 12,
            steps: 150,
        },
    };
    spec.run(cfg, thm6_start, |z, describe| {
        let Some(p) = thm6_point(z) else {
            return NONE;
        };
        let n = p.r_g.len();
        let bound = bounds::thm6_fast_bound(1, p.rho, p.pi0[0]);
        let inst = instance(
            &p.theta0,
            crate::constructions::thm6_reward(n, 0),
            p.r_g,
            p.lambda,
            p.gamma,
            1.5 * bound,
        );
        let Ok(res) = inst.run(&solver(cfg), false) else {
            return NONE;
        };
        let text = if describe {
            format!(
                "c={:.6e}, rho={:.6}, t_gamma {} vs bound {bound:.6e}: {}",
                p.pi0[0],
                p.rho,
                res.t_gamma_g,
                json(&inst)
            )
        } else {
            String::new()
        };
        (bound / res.t_gamma_g.lower_bound(), text)
    })
}

/// Theorem 6, slow side: from `pi_0 in Pi` with `T = pi_0(y_g')^(-1/2)`, `r'_RM = +1 on y_g'`.
pub fn thm6_slow(cfg: &CheckConfig) -> BoundTightness {
    let spec = Spec {
        bound: "Theorem 6 (slow)",
        constant: "1/sqrt2 in t_gamma >= |S|/sqrt2 (1-e^(-gamma/2)) T",
        paper_constant: std::f64::consts::FRAC_1_SQRT_2,
        side: Side::Lower,
        scope: "tabular |Y| in {3,4,6}, |S| = 1, logits and r_G free with r_G(y_g), r_G(y_g') > V0 + gamma, \
                T = pi_0(y_g')^(-1/2) (the largest T allowed), gamma and lambda in (0, lambda_max] free",
        salt: 0x5436_0002,
        budget: Budget {
            restarts: 12,
            steps: 150,
        },
    };
    spec.run(cfg, thm6_start, |z, describe| {
        let Some(p) = thm6_point(z) else {
            return NONE;
        };
        let n = p.r_g.len();
        let t_big = p.pi0[1].powf(-0.5);
        let bound = bounds::thm6_slow_bound(p.gamma, 1, t_big);
        let inst = instance(
            &p.theta0,
            crate::constructions::thm6_reward(n, 1),
            p.r_g,
            p.lambda,
            p.gamma,
            LOWER_HORIZON * bound,
        );
        let Ok(res) = inst.run(&solver(cfg), false) else {
            return NONE;
        };
        let text = if describe {
            format!(
                "T={t_big:.6e}, t_gamma {} vs bound {bound:.6e}: {}",
                res.t_gamma_g,
                json(&inst)
            )
        } else {
            String::new()
        };
        (res.t_gamma_g.lower_bound() / bound, text)
    })
}
