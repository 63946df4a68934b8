//! Proposition 2: `||grad phi(theta;x)||_2 <= 6 M^(1/3) L J_x Var_{y~pi}[r_KL(x,y;theta)]^(1/3)`
//! on random autoregressive policies.
//!
//! Instances: `|V| in {2,3,4}`, `L in {1,2,3}` (`|V|^L <= 64`), plus larger policies with
//! `|V|^L` from 100 to 1024 ([`LARGE`]), three logit models
//! ([`PrefixTable`]; [`LinearFeatures`] with `K in {3, 8}` and feature scale in
//! `{0.5, 1, 3}`; the non-linear [`TanhFeatures`] with `K = 4`, `H in {3, 6}`), `|S| in {1, 3}`, reference parameters `theta_0 ~ N(0, s^2)` with
//! `s in {0.3, 1, 3}` and the evaluated `theta = theta_0 + perturbation`,
//! `lambda in {0, 0.1, 1}`, rewards uniform in `[-1, 1]` or nearly constant
//! (`c + eps u`, `eps in {1e-2, 1e-4, 1e-6}`, for small variances). For every prompt
//! the exact single-prompt gradient (no `1/|S|`) is compared with the bound, with
//! `M = max(1, max_y |r_KL(x,y)|)` and `J_x` the largest Jacobian spectral norm over the
//! prompt's prefixes.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{CheckConfig, CheckReport, Tally};
use crate::bounds::prop2_gradient_bound;
use crate::objective::KlObjective;
use crate::policy::{
    AutoregressivePolicy, LinearFeatures, LogitModel, Policy, PrefixTable, TanhFeatures,
};
use rmteach::metrics::reward_variance;

/// `(|V|, L)` of the larger policies, `|V|^L` from 100 to 1024.
const LARGE: [(usize, usize); 13] = [
    (10, 2),
    (16, 2),
    (32, 2),
    (5, 3),
    (8, 3),
    (10, 3),
    (4, 4),
    (5, 4),
    (3, 5),
    (4, 5),
    (3, 6),
    (2, 7),
    (2, 10),
];

/// Largest ratio `norm / bound` seen, and where.
#[derive(Default)]
struct Worst {
    ratio: f64,
    count: usize,
    at: String,
}

impl Worst {
    fn update(&mut self, ratio: f64, at: impl FnOnce() -> String) {
        self.count += 1;
        if ratio > self.ratio {
            self.ratio = ratio;
            self.at = at();
        }
    }
}

/// Checks every prompt of one instance; returns nothing, records into `tally`.
#[allow(clippy::too_many_arguments)]
fn check_instance<M: LogitModel>(
    policy: &AutoregressivePolicy<M>,
    label: &str,
    lambda: f64,
    rewards: Vec<Vec<f64>>,
    theta0: &[f64],
    theta: &[f64],
    tally: &mut Tally,
    worst: &mut [&mut Worst],
) {
    let objective = KlObjective::new(policy, rewards, lambda, theta0).expect("valid instance");
    for x in 0..policy.num_prompts() {
        let st = objective.prompt_state(theta, x);
        let m = st.kl_reward.iter().fold(1.0f64, |a, r| a.max(r.abs()));
        let var = reward_variance(&st.probs, &st.kl_reward).expect("pi is a distribution");
        let jac = policy.jacobian_norm(theta, x);
        let grad = objective.prompt_gradient(theta, x);
        let norm = grad.iter().map(|g| g * g).sum::<f64>().sqrt();
        let bound = prop2_gradient_bound(m, policy.seq_len(), jac, var);
        let short = || {
            format!(
                "{label}, prompt {x}: ||grad|| = {norm:.6e}, M = {m:.4}, J_x = {jac:.4}, Var[r_KL] = {var:.6e}, \
                 bound = {bound:.6e}"
            )
        };
        if bound > 0.0 {
            for w in worst.iter_mut() {
                w.update(norm / bound, short);
            }
        }
        tally.upper(norm, bound, || {
            format!(
                "{}; pi = {:?}, r_KL = {:?}, theta = {theta:?}, theta0 = {theta0:?}",
                short(),
                st.probs,
                st.kl_reward
            )
        });
    }
}

/// What one random instance shares across logit models.
struct Draw<'a> {
    inst: usize,
    vocab: usize,
    len: usize,
    prompts: usize,
    theta_scale: f64,
    lambda: f64,
    reward_kind: &'a str,
}

impl Draw<'_> {
    /// Draws `theta_0` and a perturbed `theta` for `policy` and checks every prompt.
    fn check<M: LogitModel>(
        &self,
        policy: &AutoregressivePolicy<M>,
        model: &str,
        rewards: Vec<Vec<f64>>,
        rng: &mut ChaCha8Rng,
        tally: &mut Tally,
        group: &mut [&mut Worst],
    ) {
        let n = policy.num_params();
        let theta0 = crate::measure::sample::logits(rng, n, self.theta_scale);
        let pert_scale = self.theta_scale * [0.1, 0.5, 1.0][rng.random_range(0..3)];
        let pert = crate::measure::sample::logits(rng, n, pert_scale);
        let theta: Vec<f64> = theta0.iter().zip(&pert).map(|(a, b)| a + b).collect();
        let label = format!(
            "instance {}: {model}, |V| = {}, L = {}, |S| = {}, theta0 ~ N(0, {}^2), lambda = {}, rewards {}",
            self.inst, self.vocab, self.len, self.prompts, self.theta_scale, self.lambda, self.reward_kind
        );
        check_instance(
            policy,
            &label,
            self.lambda,
            rewards,
            &theta0,
            &theta,
            tally,
            group,
        );
    }
}

/// Runs Proposition 2's check.
pub fn run(cfg: &CheckConfig) -> CheckReport {
    let mut tally = Tally::new(
        "Proposition 2",
        "||grad phi(theta;x)|| <= 6 M^(1/3) L J_x Var[r_KL]^(1/3) (autoregressive)",
    );
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x5052_4f50_3200);
    let instances = cfg.size(60, 20_000);
    let large = cfg.size(6, 120);
    let (mut all, mut table, mut linear, mut tanh) = (
        Worst::default(),
        Worst::default(),
        Worst::default(),
        Worst::default(),
    );
    let mut small_var = Worst::default(); // instances with nearly constant rewards
    let mut big = Worst::default(); // instances with |V|^L >= 100
    for inst in 0..instances + large {
        let (vocab, len) = if inst < instances {
            loop {
                let v = rng.random_range(2..=4usize);
                let l = rng.random_range(1..=3usize);
                if v.pow(l as u32) <= 64 {
                    break (v, l);
                }
            }
        } else {
            LARGE[rng.random_range(0..LARGE.len())]
        };
        let prompts = [1, 3][rng.random_range(0..2)];
        let theta_scale = [0.3, 1.0, 3.0][rng.random_range(0..3)];
        let lambda = [0.0, 0.1, 1.0][rng.random_range(0..3)];
        let outputs = vocab.pow(len as u32);
        let near_constant = rng.random_bool(0.3);
        let (rewards, reward_kind): (Vec<Vec<f64>>, String) = if near_constant {
            let eps = [1e-2, 1e-4, 1e-6][rng.random_range(0..3)];
            let r = (0..prompts)
                .map(|_| {
                    let c = rng.random_range(-0.5..=0.5);
                    (0..outputs)
                        .map(|_| c + eps * rng.random_range(-1.0..=1.0))
                        .collect()
                })
                .collect();
            (r, format!("nearly constant (eps {eps:e})"))
        } else {
            let r = (0..prompts)
                .map(|_| (0..outputs).map(|_| rng.random_range(-1.0..=1.0)).collect())
                .collect();
            (r, "uniform [-1,1]".into())
        };
        // The model: a per-prefix table, shared linear features, or non-linear tanh features.
        let by_model = match inst % 3 {
            0 => &mut table,
            1 => &mut linear,
            _ => &mut tanh,
        };
        let mut group: Vec<&mut Worst> = vec![&mut all, by_model];
        if near_constant {
            group.push(&mut small_var);
        }
        if inst >= instances {
            group.push(&mut big);
        }
        let ctx = Draw {
            inst,
            vocab,
            len,
            prompts,
            theta_scale,
            lambda,
            reward_kind: &reward_kind,
        };
        match inst % 3 {
            0 => {
                let policy =
                    AutoregressivePolicy::new(PrefixTable::new(vocab, len, prompts), len, prompts);
                ctx.check(
                    &policy,
                    "PrefixTable",
                    rewards,
                    &mut rng,
                    &mut tally,
                    &mut group,
                );
            }
            1 => {
                let dim = [3, 8][rng.random_range(0..2)];
                let feature_scale = [0.5, 1.0, 3.0][rng.random_range(0..3)];
                let model =
                    LinearFeatures::random(vocab, len, prompts, dim, feature_scale, &mut rng);
                let policy = AutoregressivePolicy::new(model, len, prompts);
                let name = format!("LinearFeatures(K = {dim}, feature scale {feature_scale})");
                ctx.check(&policy, &name, rewards, &mut rng, &mut tally, &mut group);
            }
            _ => {
                let hidden = [3, 6][rng.random_range(0..2)];
                let model = TanhFeatures::random(vocab, len, prompts, 4, hidden, 1.0, &mut rng);
                let policy = AutoregressivePolicy::new(model, len, prompts);
                let name = format!("TanhFeatures(K = 4, H = {hidden})");
                ctx.check(&policy, &name, rewards, &mut rng, &mut tally, &mut group);
            }
        }
    }
    tally.note(format!(
        "{instances} random instances, {} (instance, prompt) evaluations; largest ||grad|| / bound = {:.4} \
         (the bound is loose by a factor >= {:.1})",
        all.count,
        all.ratio,
        1.0 / all.ratio
    ));
    tally.note(format!(
        "largest ratio by logit model: PrefixTable {:.4} ({} evaluations); LinearFeatures {:.4} ({} evaluations); \
         TanhFeatures {:.4} ({} evaluations); nearly constant rewards {:.4} ({} evaluations)",
        table.ratio, table.count, linear.ratio, linear.count, tanh.ratio, tanh.count, small_var.ratio, small_var.count
    ));
    tally.note(format!(
        "{large} larger policies (|V|^L from 100 to 1024: (|V|, L) in {LARGE:?}): largest ratio {:.4} ({} evaluations)",
        big.ratio, big.count
    ));
    tally.note(format!("tightest evaluation: {}", all.at));
    tally.finish()
}
