//! Cross-checks of the gradient flow against independent formulations.

use rmteach::metrics::softmax;
use rmteach_theory::flow::{
    integrate_to, integrate_with_events, Method, ProbabilityFlow, SolverConfig, Threshold,
    VectorField,
};
use rmteach_theory::instance::TabularInstance;
use rmteach_theory::objective::KlObjective;
use rmteach_theory::policy::{
    AutoregressivePolicy, LinearFeatures, LogitModel, Policy, PrefixTable, TabularPolicy,
    TanhFeatures,
};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn tight(method: Method) -> SolverConfig {
    SolverConfig {
        method,
        rtol: 1e-12,
        atol: 1e-14,
        ..Default::default()
    }
}

/// Lemma 9: the logit flow and the probability-space flow give the same policy.
#[test]
fn logit_and_probability_flows_agree() {
    let theta0 = vec![0.3, -1.2, 0.8, 0.0, 2.0];
    let r = vec![0.9, -0.4, 0.1, 0.7, -1.0];
    for (lambda, s) in [(0.0, 1), (0.2, 3), (2.0, 1)] {
        let policy = TabularPolicy::new(5, 1);
        let obj = KlObjective::new(&policy, vec![r.clone()], lambda, &theta0)
            .unwrap()
            .with_total_prompts(s)
            .unwrap();
        let pi0 = softmax(&theta0);
        let pflow = ProbabilityFlow::new(r.clone(), &pi0, lambda, s).unwrap();
        for t in [0.5, 3.0, 20.0] {
            let (theta_t, _) = integrate_to(&obj, 0.0, t, &theta0, &tight(Method::Dop853)).unwrap();
            let (pi_t, _) = integrate_to(&pflow, 0.0, t, &pi0, &tight(Method::Dop853)).unwrap();
            let from_logits = softmax(&theta_t);
            for (a, b) in from_logits.iter().zip(&pi_t) {
                assert!((a - b).abs() < 1e-9, "lambda {lambda}, t {t}: {a} vs {b}");
            }
        }
    }
}

/// Two outputs, lambda = 0: d = theta_1 - theta_2 satisfies d + sinh d = (r_1 - r_2) t/|S| + const.
#[test]
fn two_output_closed_form() {
    let (r1, r2, s) = (0.7, -0.5, 2usize);
    let theta0 = vec![-1.5, 0.5];
    let policy = TabularPolicy::new(2, 1);
    let obj = KlObjective::new(&policy, vec![vec![r1, r2]], 0.0, &theta0)
        .unwrap()
        .with_total_prompts(s)
        .unwrap();
    let g = |d: f64| d + d.sinh();
    let d0 = theta0[0] - theta0[1];
    for method in [Method::Dopri5, Method::Dop853] {
        for t in [0.1, 1.0, 10.0, 100.0] {
            let (th, _) = integrate_to(&obj, 0.0, t, &theta0, &tight(method)).unwrap();
            let lhs = g(th[0] - th[1]);
            let rhs = g(d0) + (r1 - r2) * t / s as f64;
            assert!(
                (lhs - rhs).abs() <= 1e-8 * rhs.abs().max(1.0),
                "{method:?} t={t}: {lhs} vs {rhs}"
            );
        }
    }
}

/// phi never decreases along the gradient flow.
#[test]
fn objective_is_monotone_along_the_flow() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let model = LinearFeatures::random(3, 2, 2, 4, 1.0, &mut rng);
    let policy = AutoregressivePolicy::new(model, 2, 2);
    let theta0: Vec<f64> = (0..policy.num_params())
        .map(|i| ((i * 37 % 11) as f64 - 5.0) / 5.0)
        .collect();
    let rewards: Vec<Vec<f64>> = (0..2)
        .map(|x| {
            (0..9)
                .map(|y| (((x + 3) * (y + 1)) % 7) as f64 / 3.5 - 1.0)
                .collect()
        })
        .collect();
    let obj = KlObjective::new(&policy, rewards, 0.1, &theta0).unwrap();
    let mut theta = theta0.clone();
    let mut last = obj.value(&theta);
    for _ in 0..20 {
        let (next, _) = integrate_to(&obj, 0.0, 0.5, &theta, &tight(Method::Dop853)).unwrap();
        theta = next;
        let v = obj.value(&theta);
        assert!(v >= last - 1e-12, "phi decreased: {last} -> {v}");
        last = v;
    }
}

/// Asserts that `obj.gradient` equals central finite differences of `obj.value`.
fn assert_gradient_matches_fd<P: Policy>(obj: &KlObjective<'_, P>) {
    let n = obj.policy().num_params();
    let theta: Vec<f64> = (0..n).map(|i| ((i * 13 % 7) as f64 - 3.0) / 4.0).collect();
    let mut g = vec![0.0; n];
    obj.gradient(&theta, &mut g);
    let h = 1e-6;
    for i in 0..n {
        let (mut tp, mut tm) = (theta.clone(), theta.clone());
        tp[i] += h;
        tm[i] -= h;
        let fd = (obj.value(&tp) - obj.value(&tm)) / (2.0 * h);
        assert!(
            (fd - g[i]).abs() < 1e-7,
            "param {i}: fd {fd} vs exact {}",
            g[i]
        );
    }
}

/// The exact autoregressive gradient equals central finite differences of phi.
#[test]
fn autoregressive_gradient_matches_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let rewards: Vec<Vec<f64>> = (0..2)
        .map(|x| {
            (0..8)
                .map(|y| ((x * 5 + y * 3) % 9) as f64 / 4.5 - 1.0)
                .collect()
        })
        .collect();
    let table = AutoregressivePolicy::new(PrefixTable::new(2, 3, 2), 3, 2);
    let theta0: Vec<f64> = (0..table.num_params())
        .map(|i| (i % 5) as f64 / 5.0)
        .collect();
    assert_gradient_matches_fd(&KlObjective::new(&table, rewards.clone(), 0.3, &theta0).unwrap());
    let lin = AutoregressivePolicy::new(LinearFeatures::random(2, 3, 2, 5, 1.0, &mut rng), 3, 2);
    let theta0: Vec<f64> = (0..lin.num_params())
        .map(|i| (i % 3) as f64 / 3.0)
        .collect();
    assert_gradient_matches_fd(&KlObjective::new(&lin, rewards.clone(), 0.3, &theta0).unwrap());
    let tanh = AutoregressivePolicy::new(TanhFeatures::random(2, 3, 2, 4, 3, 1.0, &mut rng), 3, 2);
    let theta0: Vec<f64> = (0..tanh.num_params())
        .map(|i| ((i % 4) as f64 - 1.5) / 2.0)
        .collect();
    assert_gradient_matches_fd(&KlObjective::new(&tanh, rewards, 0.3, &theta0).unwrap());
}

/// The closed-form spectral norm of the tanh model's Jacobian equals the largest
/// singular value of the Jacobian built column by column from finite differences.
#[test]
fn tanh_jacobian_norm_matches_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let model = TanhFeatures::random(3, 2, 1, 4, 5, 1.0, &mut rng);
    let theta: Vec<f64> = (0..model.num_params())
        .map(|i| ((i * 7 % 9) as f64 - 4.0) / 3.0)
        .collect();
    for prefix in [vec![], vec![2]] {
        let h = 1e-6;
        let mut jac = nalgebra::DMatrix::zeros(3, theta.len());
        for j in 0..theta.len() {
            let (mut tp, mut tm) = (theta.clone(), theta.clone());
            tp[j] += h;
            tm[j] -= h;
            let (mut op, mut om) = (vec![0.0; 3], vec![0.0; 3]);
            model.logits(&tp, 0, &prefix, &mut op);
            model.logits(&tm, 0, &prefix, &mut om);
            for v in 0..3 {
                jac[(v, j)] = (op[v] - om[v]) / (2.0 * h);
            }
        }
        let brute = jac.singular_values().max();
        let closed = model.jacobian_spectral_norm(&theta, 0, &prefix);
        assert!(
            (brute - closed).abs() < 1e-6 * closed,
            "{brute} vs {closed}"
        );
    }
}

/// A length-1 prefix table is the tabular policy: same gradient field.
#[test]
fn prefix_table_of_length_one_is_tabular() {
    let theta: Vec<f64> = vec![0.1, -0.3, 1.2, 0.4, -2.0, 0.0];
    let rewards = vec![vec![0.5, -0.2, 0.9], vec![-1.0, 0.3, 0.2]];
    let tab = TabularPolicy::new(3, 2);
    let ar = AutoregressivePolicy::new(PrefixTable::new(3, 1, 2), 1, 2);
    let o1 = KlObjective::new(&tab, rewards.clone(), 0.5, &[0.0; 6]).unwrap();
    let o2 = KlObjective::new(&ar, rewards, 0.5, &[0.0; 6]).unwrap();
    let (mut g1, mut g2) = (vec![0.0; 6], vec![0.0; 6]);
    o1.eval(&theta, &mut g1);
    o2.eval(&theta, &mut g2);
    for (a, b) in g1.iter().zip(&g2) {
        assert!((a - b).abs() < 1e-14);
    }
}

/// An independent integrator — classical RK4 with a fixed small step on the
/// probability-space flow (Lemma 9), crossings by cubic Hermite interpolation — agrees
/// with the event-located t_gamma of `theory flow` to 1e-6 relative.
#[test]
fn t_gamma_agrees_with_an_independent_integrator() {
    let inst = TabularInstance {
        num_prompts: 2,
        lambda: 0.05,
        gamma: 0.3,
        logits: Some(vec![0.5, -0.5, 1.0, -2.0, 0.0, 0.3]),
        probs: None,
        r_rm: vec![0.2, 0.9, -0.3, 0.8, -1.0, 0.1],
        r_g: vec![0.1, 0.6, -0.8, 1.0, -0.5, 0.4],
        horizon: 500.0,
    };
    let pi0 = inst.initial_probs();
    let flow =
        ProbabilityFlow::new(inst.r_rm.clone(), &pi0, inst.lambda, inst.num_prompts).unwrap();
    let ev = |p: &[f64], r: &[f64]| p.iter().zip(r).map(|(a, b)| a * b).sum::<f64>();
    let rk4 = |r: &[f64], level: f64| -> f64 {
        let h = 1e-3;
        let n = pi0.len();
        let (mut t, mut y) = (0.0, pi0.clone());
        let mut k = vec![vec![0.0; n]; 4];
        loop {
            flow.eval(&y, &mut k[0]);
            let y1: Vec<f64> = y.iter().zip(&k[0]).map(|(a, b)| a + 0.5 * h * b).collect();
            flow.eval(&y1, &mut k[1]);
            let y2: Vec<f64> = y.iter().zip(&k[1]).map(|(a, b)| a + 0.5 * h * b).collect();
            flow.eval(&y2, &mut k[2]);
            let y3: Vec<f64> = y.iter().zip(&k[2]).map(|(a, b)| a + h * b).collect();
            flow.eval(&y3, &mut k[3]);
            let next: Vec<f64> = (0..n)
                .map(|i| y[i] + h / 6.0 * (k[0][i] + 2.0 * k[1][i] + 2.0 * k[2][i] + k[3][i]))
                .collect();
            let (g0, g1) = (ev(&y, r) - level, ev(&next, r) - level);
            if g1 >= 0.0 {
                // Cubic Hermite on g with slopes from the field, then bisection on it.
                let mut dn = vec![0.0; n];
                flow.eval(&next, &mut dn);
                let (d0, d1) = (ev(&k[0], r) * h, ev(&dn, r) * h);
                let herm = |s: f64| {
                    let (s2, s3) = (s * s, s * s * s);
                    (2.0 * s3 - 3.0 * s2 + 1.0) * g0
                        + (s3 - 2.0 * s2 + s) * d0
                        + (-2.0 * s3 + 3.0 * s2) * g1
                        + (s3 - s2) * d1
                };
                let (mut a, mut b) = (0.0, 1.0);
                for _ in 0..60 {
                    let m = 0.5 * (a + b);
                    if herm(m) >= 0.0 {
                        b = m
                    } else {
                        a = m
                    }
                }
                return t + h * b;
            }
            t += h;
            y = next;
        }
    };
    for method in [Method::Dopri5, Method::Dop853] {
        let res = inst.run(&tight(method), false).unwrap();
        let tg = res.t_gamma_g.time().expect("reached");
        let trm = res.t_gamma_rm.time().expect("reached");
        let ref_g = rk4(&inst.r_g, res.v_g0 + inst.gamma);
        let ref_rm = rk4(&inst.r_rm, res.v_rm0 + inst.gamma);
        assert!(
            (tg - ref_g).abs() <= 1e-6 * ref_g,
            "{method:?}: t_gamma(r_G) {tg} vs RK4 {ref_g}"
        );
        assert!(
            (trm - ref_rm).abs() <= 1e-6 * ref_rm,
            "{method:?}: t_gamma(r_RM) {trm} vs RK4 {ref_rm}"
        );
    }
}

/// Event refinement: the located crossing sits on the threshold to the solver's accuracy.
#[test]
fn located_crossing_sits_on_the_threshold() {
    let theta0 = vec![0.0, -1.0, 1.0];
    let r = vec![1.0, 0.5, -1.0];
    let policy = TabularPolicy::new(3, 1);
    let obj = KlObjective::new(&policy, vec![r.clone()], 0.0, &theta0).unwrap();
    let observe = |th: &[f64]| vec![softmax(th).iter().zip(&r).map(|(a, b)| a * b).sum::<f64>()];
    let level = observe(&theta0)[0] + 0.5;
    let cfg = tight(Method::Dop853);
    let out = integrate_with_events(
        &obj,
        &theta0,
        1e3,
        &observe,
        &[Threshold {
            observable: 0,
            level,
        }],
        false,
        &cfg,
    )
    .unwrap();
    let t = out.crossings[0].time().unwrap();
    let (th, _) = integrate_to(&obj, 0.0, t, &theta0, &cfg).unwrap();
    assert!((observe(&th)[0] - level).abs() < 1e-10);
}
