//! Property tests of the tabular gradient flow (issue 11 §6) on random instances:
//! the simplex is kept, the objective never decreases, `t_gamma` scales with `|S|`, the
//! logit and probability-space forms (Lemma 7, Lemma 9) agree, and a level that
//! `E[r_G]` reaches and leaves again is located where a fine fixed-step reference puts
//! its first crossing. Case counts are small so the suite stays fast.

mod common;

use common::{dot, Reference};
use proptest::prelude::*;
use rmteach::metrics::{kl_divergence, softmax};
use rmteach_theory::flow::{
    integrate_to, integrate_with_events, Method, ProbabilityFlow, SolverConfig, VectorField,
};
use rmteach_theory::instance::TabularInstance;
use rmteach_theory::objective::KlObjective;
use rmteach_theory::policy::TabularPolicy;

fn tight(method: Method) -> SolverConfig {
    SolverConfig {
        method,
        rtol: 1e-12,
        atol: 1e-14,
        ..Default::default()
    }
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![Just(Method::Dop853), Just(Method::Dopri5)]
}

/// `n` initial logits, `r_RM` and `r_G` in `[-1, 1]`.
fn instance(
    n: std::ops::RangeInclusive<usize>,
) -> impl Strategy<Value = (Vec<f64>, Vec<f64>, Vec<f64>)> {
    n.prop_flat_map(|n| {
        (
            prop::collection::vec(-3.0f64..3.0, n),
            prop::collection::vec(-1.0f64..1.0, n),
            prop::collection::vec(-1.0f64..1.0, n),
        )
    })
}

fn lambda() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.0), 0.01f64..0.5, 0.5f64..5.0]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// The probability-space flow keeps `pi` on the simplex, and agrees with the logit
    /// flow (Lemma 9 against Lemma 7).
    #[test]
    fn probability_flow_stays_on_the_simplex_and_matches_the_logit_flow(
        (theta0, r, _) in instance(2..=8),
        lambda in lambda(),
        s in 1usize..4,
        t in 0.1f64..60.0,
        method in method(),
    ) {
        let pi0 = softmax(&theta0);
        let policy = TabularPolicy::new(theta0.len(), 1);
        let obj = KlObjective::new(&policy, vec![r.clone()], lambda, &theta0)
            .unwrap()
            .with_total_prompts(s)
            .unwrap();
        let flow = ProbabilityFlow::new(r, &pi0, lambda, s).unwrap();
        let (pi_t, _) = integrate_to(&flow, 0.0, t, &pi0, &tight(method)).unwrap();
        let sum: f64 = pi_t.iter().sum();
        prop_assert!((sum - 1.0).abs() < 1e-10, "sum {sum}");
        prop_assert!(pi_t.iter().all(|p| *p > 0.0 && *p < 1.0), "{pi_t:?}");
        let (theta_t, _) = integrate_to(&obj.tabular_field(), 0.0, t, &theta0, &tight(method)).unwrap();
        for (a, b) in softmax(&theta_t).iter().zip(&pi_t) {
            prop_assert!((a - b).abs() < 1e-8, "{a} vs {b}");
        }
    }

    /// Along any flow the objective `E[r_RM] - lambda KL` never decreases, and with
    /// `lambda = 0` neither does `E[r_RM]` (checked at every accepted step).
    #[test]
    fn the_objective_never_decreases(
        (theta0, r, _) in instance(2..=8),
        lambda in lambda(),
        horizon in 1.0f64..200.0,
        method in method(),
    ) {
        let pi0 = softmax(&theta0);
        let policy = TabularPolicy::new(theta0.len(), 1);
        let obj = KlObjective::new(&policy, vec![r.clone()], lambda, &theta0).unwrap();
        let observe = |theta: &[f64]| {
            let p = softmax(theta);
            vec![dot(&p, &r), kl_divergence(&p, &pi0).unwrap()]
        };
        let out = integrate_with_events(
            &obj.tabular_field(), &theta0, horizon, &observe, &[], true, &tight(method),
        ).unwrap();
        let obs = &out.trajectory.observations;
        prop_assert!(obs.len() > 2);
        for w in obs.windows(2) {
            let (a, b) = (w[0][0] - lambda * w[0][1], w[1][0] - lambda * w[1][1]);
            prop_assert!(b >= a - 1e-12, "objective {a} -> {b}");
            if lambda == 0.0 {
                prop_assert!(w[1][0] >= w[0][0] - 1e-12, "E[r] {} -> {}", w[0][0], w[1][0]);
            }
        }
    }

    /// `|S|` divides the field: `t_gamma` with `|S| = k` is `k` times that with `|S| = 1`
    /// (and the figures at horizon `k H` equal those at `H`).
    #[test]
    fn t_gamma_scales_linearly_with_the_prompt_count(
        (theta0, r_rm, r_g) in instance(2..=6),
        lambda in lambda(),
        k in 2usize..8,
        frac in 0.05f64..0.9,
        method in method(),
    ) {
        let pi0 = softmax(&theta0);
        let v0 = dot(&pi0, &r_rm);
        let top = r_rm.iter().copied().fold(f64::MIN, f64::max);
        prop_assume!(top - v0 > 1e-3);
        let inst = |s: usize| TabularInstance {
            num_prompts: s,
            lambda,
            gamma: frac * (top - v0),
            logits: Some(theta0.clone()),
            probs: None,
            r_rm: r_rm.clone(),
            r_g: r_g.clone(),
            horizon: 300.0 * s as f64,
        };
        let one = inst(1).run(&tight(method), true).unwrap();
        let many = inst(k).run(&tight(method), true).unwrap();
        let kf = k as f64;
        for (a, b) in [(one.t_gamma_rm, many.t_gamma_rm), (one.t_gamma_g, many.t_gamma_g)] {
            match (a.time(), b.time()) {
                (Some(a), Some(b)) => prop_assert!(
                    (b - kf * a).abs() <= 1e-7 * (kf * a).max(1e-3),
                    "k {k}: {b} vs {k} x {a}"
                ),
                (None, None) => {}
                (a, b) => prop_assert!(false, "k {k}: {a:?} vs {b:?}"),
            }
        }
        prop_assert!((one.v_g_end - many.v_g_end).abs() < 1e-8);
        prop_assert!((one.v_rm_end - many.v_rm_end).abs() < 1e-8);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Random rise-and-fall instances (the best output of `r_RM` is the worst of `r_G`,
    /// and `E[r_G]` first rises): with the level a little below the peak of `E[r_G]`, both
    /// methods at the CLI's default tolerances find the first crossing where RK4 with a
    /// small fixed step puts it.
    #[test]
    fn a_rise_and_fall_is_caught_as_a_fine_reference_sees_it(
        (theta0, r_rm, mut r_g) in instance(3..=5),
        below in prop_oneof![Just(1e-6), Just(1e-5), Just(1e-4), Just(1e-3)],
        lambda in prop_oneof![Just(0.0), 0.001f64..0.02],
    ) {
        let n = theta0.len();
        let best = (0..n).fold(0, |b, y| if r_rm[y] > r_rm[b] { y } else { b });
        r_g[best] = -1.0;
        let pi0 = softmax(&theta0);
        let flow = ProbabilityFlow::new(r_rm.clone(), &pi0, lambda, 1).unwrap();
        let mut dp = vec![0.0; n];
        flow.eval(&pi0, &mut dp);
        // E[r_G] rises first.
        prop_assume!(dot(&dp, &r_g) > 1e-3);
        let horizon = 200.0;
        let reference = Reference::new(&flow, &pi0, &r_g, horizon, 0.005);
        let (peak, t_peak) = reference.peak();
        let v_end = reference.points.last().unwrap().0;
        // An interior peak that E[r_G] falls back from.
        prop_assume!(t_peak < 0.9 * horizon && peak - v_end > 10.0 * below);
        let v0 = dot(&pi0, &r_g);
        let inst = TabularInstance {
            num_prompts: 1,
            lambda,
            gamma: peak - v0 - below,
            logits: Some(theta0),
            probs: None,
            r_rm,
            r_g,
            horizon,
        };
        prop_assume!(inst.gamma > 0.0);
        let t_ref = reference.first_crossing(v0 + inst.gamma).unwrap();
        for method in [Method::Dop853, Method::Dopri5] {
            let res = inst.run(&SolverConfig { method, ..Default::default() }, false).unwrap();
            let t = res.t_gamma_g.time();
            prop_assert!(t.is_some(), "{method:?}: missed (reference {t_ref}, peak {peak} at {t_peak})");
            let t = t.unwrap();
            // Near a peak, t moves by dg / |g'|: allow for the solver's error in g.
            prop_assert!(
                (t - t_ref).abs() <= 1e-5 * t_ref.max(1.0),
                "{method:?}: {t} vs reference {t_ref} (peak at {t_peak})"
            );
        }
    }
}
