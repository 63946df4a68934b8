//! `t_gamma` is the first crossing, also when the level is reached and left again inside
//! one solver step (issue 11 §1), for both methods, the tabular fast path and the
//! generic policy path; and KL-regularised flows that settle integrate to the horizon
//! (issue 11 §2).

mod common;

use common::Reference;
use rmteach::metrics::softmax;
use rmteach_theory::flow::{
    integrate_with_events, Method, ProbabilityFlow, SolverConfig, Threshold, WithRates,
};
use rmteach_theory::instance::TabularInstance;
use rmteach_theory::objective::KlObjective;
use rmteach_theory::policy::{AutoregressivePolicy, Policy, PrefixTable};

fn cfg(method: Method) -> SolverConfig {
    SolverConfig {
        method,
        ..Default::default()
    }
}

/// The issue's example: `E[r_G]` rises to a peak and falls; the level sits 1e-5 below
/// the peak. Returns the instance and the reference first crossing.
fn issue_example() -> (TabularInstance, f64) {
    let logits = vec![-2.0, 1.0, 2.0];
    let (r_rm, r_g) = (vec![1.0, 0.3, -1.0], vec![-1.0, 1.0, 0.0]);
    let pi0 = softmax(&logits);
    let flow = ProbabilityFlow::new(r_rm.clone(), &pi0, 0.0, 1).unwrap();
    let reference = Reference::new(&flow, &pi0, &r_g, 400.0, 0.01);
    let (peak, t_peak) = reference.peak();
    let v0 = common::dot(&pi0, &r_g);
    assert!(t_peak > 100.0 && t_peak < 300.0, "peak at {t_peak}");
    let inst = TabularInstance {
        num_prompts: 1,
        lambda: 0.0,
        gamma: peak - v0 - 1e-5,
        logits: Some(logits),
        probs: None,
        r_rm,
        r_g,
        horizon: 400.0,
    };
    let t_ref = reference
        .first_crossing(v0 + inst.gamma)
        .expect("the reference crosses");
    (inst, t_ref)
}

#[test]
fn a_level_reached_and_left_inside_one_step_is_found() {
    let (inst, t_ref) = issue_example();
    assert!((t_ref - 154.199).abs() < 1e-3, "reference {t_ref}");
    for method in [Method::Dop853, Method::Dopri5] {
        let res = inst.run(&cfg(method), false).unwrap();
        let t = res
            .t_gamma_g
            .time()
            .unwrap_or_else(|| panic!("{method:?}: reported {}", res.t_gamma_g));
        assert!(
            (t - t_ref).abs() <= 1e-6 * t_ref,
            "{method:?}: {t} vs reference {t_ref}"
        );
    }
}

/// The same flow through the generic objective (a length-1 prefix table is the tabular
/// policy), with the policy's exact rates and with central-difference rates.
#[test]
fn the_generic_policy_path_finds_it_too() {
    let (inst, t_ref) = issue_example();
    let theta0 = inst.logits.clone().unwrap();
    let policy = AutoregressivePolicy::new(PrefixTable::new(3, 1, 1), 1, 1);
    let obj = KlObjective::new(&policy, vec![inst.r_rm.clone()], 0.0, &theta0).unwrap();
    let level = common::dot(&softmax(&theta0), &inst.r_g) + inst.gamma;
    let observe = |theta: &[f64]| vec![common::dot(&policy.probs(theta, 0), &inst.r_g)];
    let exact = |theta: &[f64], f: &[f64]| {
        (
            observe(theta),
            vec![policy.expected_reward_rate(theta, 0, &inst.r_g, f)],
        )
    };
    let th = [Threshold {
        observable: 0,
        level,
    }];
    for method in [Method::Dop853, Method::Dopri5] {
        for (name, out) in [
            (
                "exact",
                integrate_with_events(
                    &obj,
                    &theta0,
                    400.0,
                    &WithRates(&observe, exact),
                    &th,
                    false,
                    &cfg(method),
                ),
            ),
            (
                "differences",
                integrate_with_events(&obj, &theta0, 400.0, &observe, &th, false, &cfg(method)),
            ),
        ] {
            let out = out.unwrap();
            let t = out.crossings[0].time().expect("crossed");
            assert!(
                (t - t_ref).abs() <= 1e-6 * t_ref,
                "{method:?} {name}: {t} vs {t_ref}"
            );
        }
    }
}

/// A level just above the peak is never reached.
#[test]
fn a_level_above_the_peak_is_not_reported() {
    let (mut inst, _) = issue_example();
    inst.gamma += 2e-5;
    for method in [Method::Dop853, Method::Dopri5] {
        let res = inst.run(&cfg(method), false).unwrap();
        assert_eq!(res.t_gamma_g.time(), None, "{method:?}");
    }
}

/// The exact rate of `E_pi r` for an autoregressive policy is the derivative along the
/// flow (central differences of `E_pi r` along the field).
#[test]
fn expected_reward_rate_is_the_derivative() {
    let policy = AutoregressivePolicy::new(PrefixTable::new(2, 3, 2), 3, 2);
    let theta: Vec<f64> = (0..policy.num_params())
        .map(|i| ((i * 7 % 5) as f64 - 2.0) / 3.0)
        .collect();
    let r: Vec<f64> = (0..8).map(|y| ((y * 5) % 7) as f64 / 3.5 - 1.0).collect();
    let rewards = vec![r.clone(), r.iter().map(|v| -v).collect()];
    let obj = KlObjective::new(&policy, rewards, 0.3, &theta).unwrap();
    let theta: Vec<f64> = theta.iter().map(|t| t + 0.2).collect();
    let mut f = vec![0.0; theta.len()];
    obj.gradient(&theta, &mut f);
    let e = |th: &[f64]| common::dot(&policy.probs(th, 1), &r);
    let eps = 1e-6;
    let at = |s: f64| -> Vec<f64> { theta.iter().zip(&f).map(|(t, d)| t + s * d).collect() };
    let fd = (e(&at(eps)) - e(&at(-eps))) / (2.0 * eps);
    let exact = policy.expected_reward_rate(&theta, 1, &r, &f);
    assert!((fd - exact).abs() < 1e-8, "{fd} vs {exact}");
}

/// Issue 11 §2: lambda = 1 up to 1e5, lambda = 20 and 100 up to 1e3 (and far beyond)
/// settle at their fixed point; they are integrated to the horizon, or until certified
/// to sit at the fixed point (ode_solvers' stiffness test fires on the way; it is a
/// diagnostic, not an error).
#[test]
fn settling_kl_flows_integrate_to_the_horizon() {
    let mut warnings = 0;
    for (lambda, horizon) in [
        (1.0, 1e5),
        (20.0, 1e3),
        (100.0, 1e3),
        (1.0, 1e9),
        (100.0, 1e9),
    ] {
        let inst = TabularInstance {
            num_prompts: 1,
            lambda,
            gamma: 0.5,
            logits: Some(vec![0.5, -1.0, 2.0, 0.0, -0.3]),
            probs: None,
            r_rm: vec![0.9, -0.2, -0.8, 0.4, 1.0],
            r_g: vec![0.1, 0.6, -1.0, 0.9, -0.4],
            horizon,
        };
        // The fixed point: pi* ∝ pi_0 exp(r_RM / lambda).
        let pi0 = inst.initial_probs();
        let w: Vec<f64> = pi0
            .iter()
            .zip(&inst.r_rm)
            .map(|(p, r)| p * (r / lambda).exp())
            .collect();
        let z: f64 = w.iter().sum();
        let star: Vec<f64> = w.iter().map(|v| v / z).collect();
        for method in [Method::Dop853, Method::Dopri5] {
            let res = inst
                .run(&cfg(method), false)
                .unwrap_or_else(|e| panic!("lambda {lambda} horizon {horizon} {method:?}: {e}"));
            match &res.settled {
                None => assert_eq!(res.t_end, horizon),
                Some(s) => {
                    // Reported at the horizon (pi*'s figures), stopped earlier; the
                    // recorded run below checks the flow itself gets there.
                    assert_eq!(res.t_end, horizon);
                    assert!(s.at < horizon && s.bound <= 1e-10, "{s:?}");
                    assert!(s.kl_to_fixed_point <= 1e-10, "{s:?}");
                }
            }
            for (a, b) in res.probs_end.iter().zip(&star) {
                assert!(
                    (a - b).abs() < 1e-8,
                    "lambda {lambda} {method:?}: {a} vs fixed point {b}"
                );
            }
            let v_star = common::dot(&star, &inst.r_g);
            assert!((res.v_g_end - v_star).abs() < 1e-8);
            if horizon <= 1e5 {
                // Recording asks for the whole trajectory: no early stop, the whole
                // horizon integrated (past where ode_solvers called it stiff).
                let rec = inst.run(&cfg(method), true).unwrap();
                assert_eq!(rec.t_end, horizon);
                assert!(rec.settled.is_none());
                assert!((rec.v_g_end - v_star).abs() < 1e-8);
                warnings += rec.stiffness_warnings;
            }
        }
    }
    // Where ode_solvers would have stopped: these runs went past it.
    assert!(warnings > 0);
}

/// The fixed-point stop never hides a crossing: with the level just below the fixed
/// point's `E[r_G]`, approached from below, the crossing is found, and the flow stops
/// early only after it.
#[test]
fn a_level_below_the_fixed_point_is_still_reached() {
    let mut inst = TabularInstance {
        num_prompts: 1,
        lambda: 1.0,
        gamma: 0.0,
        logits: Some(vec![0.5, -1.0, 2.0, 0.0, -0.3]),
        probs: None,
        r_rm: vec![0.9, -0.2, -0.8, 0.4, 1.0],
        r_g: vec![0.9, -0.2, -0.8, 0.4, 1.0],
        horizon: 1e9,
    };
    let pi0 = inst.initial_probs();
    let w: Vec<f64> = pi0
        .iter()
        .zip(&inst.r_rm)
        .map(|(p, r)| p * r.exp())
        .collect();
    let z: f64 = w.iter().sum();
    let v_star = w.iter().zip(&inst.r_g).map(|(p, r)| p * r).sum::<f64>() / z;
    let v0 = common::dot(&pi0, &inst.r_g);
    inst.gamma = v_star - v0 - 1e-7;
    let res = inst.run(&cfg(Method::Dop853), false).unwrap();
    let t = res.t_gamma_g.time().expect("reached");
    assert!(t < res.t_end, "{t} vs {}", res.t_end);
    inst.gamma = v_star - v0 + 1e-7;
    let res = inst.run(&cfg(Method::Dop853), false).unwrap();
    assert_eq!(res.t_gamma_g.time(), None);
    assert!(res.settled.is_some());
}
