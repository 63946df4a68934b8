//! The flows beyond the paper's gradient flow (`theory flow --update npg`, `--entropy`)
//! against closed forms that do not use the integrator.

use rmteach::metrics::softmax;
use rmteach_theory::flow::{Method, SolverConfig};
use rmteach_theory::instance::{Dynamics, TabularInstance};
use rmteach_theory::objective::Update;

fn tight() -> SolverConfig {
    SolverConfig {
        method: Method::Dop853,
        rtol: 1e-12,
        atol: 1e-14,
        ..Default::default()
    }
}

fn instance(lambda: f64, num_prompts: usize, horizon: f64) -> TabularInstance {
    TabularInstance {
        num_prompts,
        lambda,
        gamma: 0.4,
        logits: Some(vec![2.0, 0.3, -1.0, 0.5, -2.5, 0.0]),
        probs: None,
        r_rm: vec![-0.8, 0.1, 0.6, -0.3, 0.95, 0.2],
        r_g: vec![-0.5, 0.3, 0.2, -0.9, 0.8, 0.4],
        horizon,
    }
}

/// `E_pi r` with `pi ∝ pi_0 exp(a r_rm)`.
fn tilted_mean(inst: &TabularInstance, a: f64, r: &[f64]) -> f64 {
    let logits: Vec<f64> = inst
        .initial_logits()
        .iter()
        .zip(&inst.r_rm)
        .map(|(t, v)| t + a * v)
        .collect();
    softmax(&logits).iter().zip(r).map(|(p, v)| p * v).sum()
}

/// The NPG flow's exponent: `pi_t ∝ pi_0 exp(a(t) r)`, `a = t` at `lambda = 0` and
/// `(1 - e^(-lambda t)) / lambda` otherwise.
fn npg_exponent(lambda: f64, t: f64) -> f64 {
    if lambda == 0.0 {
        t
    } else {
        -(-lambda * t).exp_m1() / lambda
    }
}

/// The first `t` with `E_{pi_t} r_RM = level` on the closed form (it increases in `a`),
/// by bisection.
fn closed_form_crossing(inst: &TabularInstance, level: f64) -> f64 {
    let (mut lo, mut hi) = (0.0, inst.horizon);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if tilted_mean(inst, npg_exponent(inst.lambda, mid), &inst.r_rm) < level {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

#[test]
fn npg_flow_follows_its_closed_form() {
    let npg = Dynamics {
        update: Update::Npg,
        entropy: 0.0,
    };
    for lambda in [0.0, 0.3] {
        let inst = instance(lambda, 1, 6.0);
        let res = inst.run_with(&tight(), true, &npg).unwrap();
        let traj = res.trajectory.as_ref().unwrap();
        assert!(traj.times.len() > 5);
        for (t, obs) in traj.times.iter().zip(&traj.observations) {
            let a = npg_exponent(lambda, *t);
            for (k, r) in [(0, &inst.r_g), (1, &inst.r_rm)] {
                let want = tilted_mean(&inst, a, r);
                assert!(
                    (obs[k] - want).abs() < 1e-9,
                    "lambda {lambda} t {t} observable {k}: {} vs {want}",
                    obs[k]
                );
            }
        }
        let t_rm = res.t_gamma_rm.time().expect("reached");
        let want = closed_form_crossing(&inst, res.v_rm0 + inst.gamma);
        assert!(
            (t_rm - want).abs() < 1e-8,
            "lambda {lambda}: {t_rm} vs {want}"
        );
        // The gradient flow is a different flow: its crossing is elsewhere.
        let pg = instance(lambda, 1, 500.0).run(&tight(), false).unwrap();
        assert!((pg.t_gamma_rm.time().unwrap() - t_rm).abs() > 1e-3);
    }
}

#[test]
fn npg_time_does_not_scale_with_the_number_of_prompts() {
    let npg = Dynamics {
        update: Update::Npg,
        entropy: 0.0,
    };
    let one = instance(0.1, 1, 50.0)
        .run_with(&tight(), false, &npg)
        .unwrap();
    let many = instance(0.1, 7, 50.0)
        .run_with(&tight(), false, &npg)
        .unwrap();
    let (a, b) = (
        one.t_gamma_g.time().unwrap(),
        many.t_gamma_g.time().unwrap(),
    );
    assert!((a - b).abs() < 1e-9 * a, "{a} vs {b}");
    // The gradient flow's time grows with |S|.
    let pg1 = instance(0.1, 1, 50.0).run(&tight(), false).unwrap();
    let pg7 = instance(0.1, 7, 500.0).run(&tight(), false).unwrap();
    let (a, b) = (pg1.t_gamma_g.time().unwrap(), pg7.t_gamma_g.time().unwrap());
    assert!((b - 7.0 * a).abs() < 1e-7 * b, "{a} vs {b}");
}

/// `pi* ∝ (pi_0^lambda exp(r))^(1/(lambda+tau))`, from the formula.
fn gibbs(inst: &TabularInstance, tau: f64) -> Vec<f64> {
    let lp0: Vec<f64> = inst.initial_probs().iter().map(|p| p.ln()).collect();
    let logits: Vec<f64> = lp0
        .iter()
        .zip(&inst.r_rm)
        .map(|(l, r)| (inst.lambda * l + r) / (inst.lambda + tau))
        .collect();
    softmax(&logits)
}

#[test]
fn the_entropy_flow_converges_to_the_gibbs_policy() {
    use rmteach_theory::flow::integrate_to;
    use rmteach_theory::objective::KlObjective;
    use rmteach_theory::policy::TabularPolicy;
    for (lambda, tau, update) in [
        (0.3, 0.2, Update::Pg),
        (0.0, 0.5, Update::Pg),
        (0.3, 0.2, Update::Npg),
    ] {
        let inst = instance(lambda, 1, 1.0);
        let theta0 = inst.initial_logits();
        let policy = TabularPolicy::new(theta0.len(), 1);
        let obj = KlObjective::new(&policy, vec![inst.r_rm.clone()], lambda, &theta0)
            .unwrap()
            .with_entropy(tau)
            .unwrap();
        let (theta, _) =
            integrate_to(obj.field(update).as_ref(), 0.0, 4000.0, &theta0, &tight()).unwrap();
        let (got, want) = (softmax(&theta), gibbs(&inst, tau));
        for (a, b) in got.iter().zip(&want) {
            assert!(
                (a - b).abs() < 1e-8,
                "lambda {lambda} tau {tau} {update:?}: {got:?} vs {want:?}"
            );
        }
        // Without the bonus the limit is elsewhere (pi_0 exp(r/lambda), or argmax r).
        let plain = if lambda > 0.0 {
            gibbs(&inst, 0.0)
        } else {
            let top = inst.r_rm.iter().copied().fold(f64::MIN, f64::max);
            inst.r_rm
                .iter()
                .map(|r| f64::from(u8::from(*r == top)))
                .collect()
        };
        assert!(got.iter().zip(&plain).any(|(a, b)| (a - b).abs() > 1e-3));
        // `theory flow` certifies it settled there (with a level out of reach, so that
        // integration does not stop at the crossings), and reports pi*'s figures.
        let mut far = instance(lambda, 1, 1e4);
        far.gamma = 1.9;
        let res = far
            .run_with(
                &tight(),
                false,
                &Dynamics {
                    update,
                    entropy: tau,
                },
            )
            .unwrap();
        assert!(
            res.settled.is_some(),
            "lambda {lambda} tau {tau}: never settled: {res:?}"
        );
        let v: f64 = want.iter().zip(&inst.r_rm).map(|(p, r)| p * r).sum();
        assert!((res.v_rm_end - v).abs() < 1e-9);
    }
}

#[test]
fn the_entropy_gradient_is_the_derivative_of_the_objective() {
    use rmteach_theory::flow::VectorField;
    use rmteach_theory::objective::KlObjective;
    use rmteach_theory::policy::TabularPolicy;
    let inst = instance(0.2, 1, 1.0);
    let theta0 = inst.initial_logits();
    let policy = TabularPolicy::new(theta0.len(), 1);
    let obj = KlObjective::new(&policy, vec![inst.r_rm.clone()], 0.2, &theta0)
        .unwrap()
        .with_entropy(0.35)
        .unwrap();
    let theta: Vec<f64> = theta0
        .iter()
        .enumerate()
        .map(|(i, t)| t + 0.2 * i as f64 - 0.4)
        .collect();
    let (mut generic, mut fused) = (vec![0.0; theta.len()], vec![0.0; theta.len()]);
    obj.gradient(&theta, &mut generic);
    obj.tabular_field().eval(&theta, &mut fused);
    let h = 1e-6;
    for i in 0..theta.len() {
        let (mut up, mut down) = (theta.clone(), theta.clone());
        up[i] += h;
        down[i] -= h;
        let fd = (obj.value(&up) - obj.value(&down)) / (2.0 * h);
        assert!(
            (generic[i] - fd).abs() < 1e-8,
            "[{i}] {} vs {fd}",
            generic[i]
        );
        assert!(
            (fused[i] - generic[i]).abs() < 1e-13,
            "[{i}] {} vs {}",
            fused[i],
            generic[i]
        );
    }
}
