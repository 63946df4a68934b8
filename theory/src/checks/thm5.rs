//! Theorem 5 (= Theorem 2): a more accurate reward model is not necessarily a better
//! teacher (tabular policies).
//!
//! For random `r_G`, `pi_0` (logits `~ N(0, 1)`), pair distributions `D` (uniform and
//! random weighted) and an output `y_g` with `r_G(y_g) > V_G(0) + gamma`
//! (`gamma = (r_G(y_g) - V_G(0)) / 2`), the construction of proof D.8 is built for a
//! grid of attainable `alpha` and `alpha'` ([`crate::constructions`]) and integrated with
//! `lambda = 0` and `lambda = thm5_lambda_max` (the largest the fast side allows, used on
//! both sides), `|S| in {1, 4}`:
//!
//! 1. the realised accuracies equal the requested ones (measured with `rmteach::metrics`);
//! 2. under `r_RM` (accuracy `alpha`, values in `(0, 1/T)`): `t_gamma(r_G) >= 2|S|(1-e^(-gamma/2)) T`;
//! 3. under `r'_RM` (accuracy `alpha'`, `y_g` first): `t_gamma(r_G) <= 4|S|/(1-rho)^4 (1/pi_0(y_g) - 1/rho)`;
//! 4. `t_gamma(r_G)` under `r_RM` against `T` over three decades: slope 1 exactly when
//!    `lambda = 0` (judged to 0.02); reported only when `lambda > 0`, where
//!    `t_gamma(T) = T s(lambda T)` and the theorem bounds `t_gamma / T`, not its growth
//!    (every sweep point is judged against the bound of 2.);
//! 5. `t_gamma(r_G)` under `r'_RM` against `pi_0(y_g)` over three decades (`O(1/pi_0(y_g))`);
//!
//! and Theorem 2: `D` uniform, `alpha = 1` against the teacher that gets every pair wrong
//! except `(y_g, y)` with `r_G(y) < r_G(y_g)`, whose accuracy is `<= 2/|Y|`.

use rayon::prelude::*;

use super::{CheckConfig, CheckReport, Slope, Tally};
use crate::bounds;
use crate::constructions::{self, PairDistribution, Ranking};
use crate::flow::Crossing;
use crate::instance::TabularInstance;
use crate::measure::sample::{logits, pick, rewards, rng};
use rmteach::metrics::{accuracy_uniform, expected_reward, softmax};

/// Output-set sizes.
const SIZES: [usize; 4] = [4, 6, 10, 20];
/// Numbers of prompts `|S|`.
const PROMPTS: [usize; 2] = [1, 4];
/// Slow-side horizon, in multiples of the bound (a crossing beyond it still certifies it).
const SLOW_HORIZON: f64 = 100.0;
/// Fast-side horizon, in multiples of the bound (a crossing beyond it is a failure).
const FAST_HORIZON: f64 = 1.5;

/// One random setting: ground truth, initial policy, pair distribution and `y_g`.
struct Setting {
    n: usize,
    r_g: Vec<f64>,
    logits: Vec<f64>,
    d: PairDistribution,
    y_g: usize,
    gamma: f64,
    v_g0: f64,
    pi0_yg: f64,
    rho: f64,
    lambda_max: f64,
}

impl Setting {
    fn new(
        n: usize,
        r_g: Vec<f64>,
        logits: Vec<f64>,
        d: PairDistribution,
        y_g: usize,
        gamma: f64,
    ) -> Self {
        let pi0 = softmax(&logits);
        let v_g0 = expected_reward(&pi0, &r_g).expect("valid policy");
        let min_pi0 = pi0.iter().copied().fold(f64::INFINITY, f64::min);
        let rho = bounds::rho(v_g0, gamma, r_g[y_g]);
        Self {
            n,
            pi0_yg: pi0[y_g],
            lambda_max: bounds::thm5_lambda_max(pi0[y_g], rho, min_pi0),
            r_g,
            logits,
            d,
            y_g,
            gamma,
            v_g0,
            rho,
        }
    }

    fn lambdas(&self) -> [(bool, f64); 2] {
        [(true, 0.0), (false, self.lambda_max)]
    }

    fn describe(&self) -> String {
        format!(
            "|Y|={}, D={}, y_g={}, r_G(y_g)={:.4}, V_G(0)={:.4}, gamma={:.4}, rho={:.4}, pi0(y_g)={:.4e}, D pairs={}",
            self.n,
            self.d.describe(),
            self.y_g,
            self.r_g[self.y_g],
            self.v_g0,
            self.gamma,
            self.rho,
            self.pi0_yg,
            serde_json::to_string(&self.d).unwrap_or_default()
        )
    }
}

fn settings(cfg: &CheckConfig) -> Vec<Setting> {
    let mut rng = rng(cfg.seed, 5);
    let mut out = Vec::new();
    for &n in &SIZES {
        for weighted in [false, true] {
            for _ in 0..cfg.size(1, 6) {
                let r_g = rewards(&mut rng, n, -1.0, 1.0);
                let theta = logits(&mut rng, n, 1.0);
                let v = expected_reward(&softmax(&theta), &r_g).expect("valid policy");
                let above: Vec<usize> = (0..n).filter(|&y| r_g[y] > v).collect();
                let y_g = pick(&mut rng, &above);
                let d = if weighted {
                    PairDistribution::random_weighted(&mut rng, n, 0.6)
                } else {
                    PairDistribution::Uniform
                };
                out.push(Setting::new(
                    n,
                    r_g.clone(),
                    theta,
                    d,
                    y_g,
                    0.5 * (r_g[y_g] - v),
                ));
            }
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// Trained on `r_RM`: lower bound.
    Slow,
    /// Trained on `r'_RM`: upper bound.
    Fast,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    /// The grid of attainable accuracies.
    Grid,
    /// Theorem 2's special case.
    Thm2,
    /// Sweep of `T` (index into the sweep list).
    SweepT(usize),
    /// Sweep of `pi_0(y_g)` (index into the sweep list).
    SweepPi(usize),
}

/// One integration.
struct Job {
    setting: usize,
    group: Group,
    side: Side,
    lambda_zero: bool,
    /// `T` (slow side) or `pi_0(y_g)` (fast side).
    x: f64,
    requested: f64,
    realised: f64,
    bound: f64,
    inst: TabularInstance,
}

/// A sweep of one variable whose log-log slope is fitted.
struct Sweep {
    setting: usize,
    lambda_zero: bool,
    num_prompts: usize,
}

/// Evenly spaced picks of `k` entries (both ends included).
fn spread<T: Clone>(v: &[T], k: usize) -> Vec<T> {
    if v.len() <= k {
        return v.to_vec();
    }
    let mut idx: Vec<usize> = (0..k)
        .map(|i| (i * (v.len() - 1) + (k - 1) / 2) / (k - 1))
        .collect();
    idx.dedup();
    idx.into_iter().map(|i| v[i].clone()).collect()
}

/// `k` points log-spaced from `10^a` to `10^b`.
fn logspace(a: f64, b: f64, k: usize) -> Vec<f64> {
    (0..k)
        .map(|i| 10f64.powf(a + (b - a) * i as f64 / (k - 1) as f64))
        .collect()
}

struct Builder<'a> {
    settings: &'a [Setting],
    jobs: Vec<Job>,
    tally: &'a mut Tally,
}

impl Builder<'_> {
    /// A slow-side job: `r_RM` of `ranking` scaled to `(0, 1/T)`.
    #[allow(clippy::too_many_arguments)]
    fn slow(
        &mut self,
        s: usize,
        group: Group,
        ranking: &Ranking,
        requested: f64,
        t_big: f64,
        num_prompts: usize,
        lambda: (bool, f64),
    ) {
        let st = &self.settings[s];
        let r_rm = match constructions::thm5_slow_reward(ranking, t_big) {
            Ok(r) => r,
            Err(e) => {
                return self
                    .tally
                    .require(false, || format!("slow reward: {e}: {}", st.describe()))
            }
        };
        let bound = bounds::thm5_slow_bound(st.gamma, num_prompts, t_big);
        self.push(
            s,
            group,
            Side::Slow,
            lambda,
            t_big,
            requested,
            r_rm,
            bound,
            num_prompts,
            SLOW_HORIZON * bound,
        );
    }

    /// A fast-side job: `r'_RM` of `ranking` (`y_g` first) from initial logits `theta`.
    #[allow(clippy::too_many_arguments)]
    fn fast(
        &mut self,
        s: usize,
        group: Group,
        ranking: &Ranking,
        requested: f64,
        theta: &[f64],
        gamma: f64,
        num_prompts: usize,
        lambda_zero: bool,
    ) {
        let st = &self.settings[s];
        let pi0 = softmax(theta);
        let pi0_yg = pi0[st.y_g];
        let v_g0 = expected_reward(&pi0, &st.r_g).expect("valid policy");
        let rho = bounds::rho(v_g0, gamma, st.r_g[st.y_g]);
        let min_pi0 = pi0.iter().copied().fold(f64::INFINITY, f64::min);
        let lambda = if lambda_zero {
            0.0
        } else {
            bounds::thm5_lambda_max(pi0_yg, rho, min_pi0)
        };
        let r_rm = match constructions::thm5_fast_reward(ranking, st.y_g, pi0_yg) {
            Ok(r) => r,
            Err(e) => {
                return self
                    .tally
                    .require(false, || format!("fast reward: {e}: {}", st.describe()))
            }
        };
        let bound = bounds::thm5_fast_bound(num_prompts, rho, pi0_yg);
        let mut job_inst =
            self.instance(s, r_rm.clone(), num_prompts, lambda, FAST_HORIZON * bound);
        job_inst.logits = Some(theta.to_vec());
        job_inst.gamma = gamma;
        let realised = st.d.accuracy(&r_rm, &st.r_g).unwrap_or(f64::NAN);
        self.jobs.push(Job {
            setting: s,
            group,
            side: Side::Fast,
            lambda_zero,
            x: pi0_yg,
            requested,
            realised,
            bound,
            inst: job_inst,
        });
    }

    fn instance(
        &self,
        s: usize,
        r_rm: Vec<f64>,
        num_prompts: usize,
        lambda: f64,
        horizon: f64,
    ) -> TabularInstance {
        let st = &self.settings[s];
        TabularInstance {
            num_prompts,
            lambda,
            gamma: st.gamma,
            logits: Some(st.logits.clone()),
            probs: None,
            r_rm,
            r_g: st.r_g.clone(),
            horizon,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        s: usize,
        group: Group,
        side: Side,
        lambda: (bool, f64),
        x: f64,
        requested: f64,
        r_rm: Vec<f64>,
        bound: f64,
        num_prompts: usize,
        horizon: f64,
    ) {
        let st = &self.settings[s];
        let realised = st.d.accuracy(&r_rm, &st.r_g).unwrap_or(f64::NAN);
        let inst = self.instance(s, r_rm, num_prompts, lambda.1, horizon);
        self.jobs.push(Job {
            setting: s,
            group,
            side,
            lambda_zero: lambda.0,
            x,
            requested,
            realised,
            bound,
            inst,
        });
    }
}

/// Runs the check: build every reward model and flow, integrate, judge.
pub fn run(cfg: &CheckConfig) -> CheckReport {
    let mut tally = Tally::new(
        "Theorem 5",
        "tabular: for any attainable alpha, alpha' (y_g first): r_RM (acc alpha) gives t_gamma >= 2|S|(1-e^(-gamma/2))T, \
         r'_RM (acc alpha') gives t_gamma <= 4|S|/(1-rho)^4 (1/pi0(y_g) - 1/rho); Theorem 2: alpha=1 vs alpha'<=2/|Y|",
    );
    let settings = settings(cfg);
    let mut plan = build(cfg, &settings, &mut tally);
    let results = integrate(&mut plan.jobs, cfg, &mut tally);
    judge(&plan, &results, &settings, &mut tally);
    tally.finish()
}

/// The sizes of one run's grids and sweeps.
struct Sizes {
    /// Accuracies picked from each attainable grid.
    grid_k: usize,
    /// `T` of the accuracy grid.
    ts_grid: Vec<f64>,
    /// `T` of the slow-side sweeps.
    ts_sweep: Vec<f64>,
    /// `pi_0(y_g)` of the fast-side sweeps.
    ps_sweep: Vec<f64>,
    /// Every how many settings the realised grids are noted.
    note_every: usize,
}

impl Sizes {
    fn new(cfg: &CheckConfig) -> Self {
        Self {
            grid_k: cfg.size(3, 7),
            ts_grid: if cfg.quick {
                vec![10.0]
            } else {
                vec![1.0, 10.0, 100.0, 1000.0]
            },
            ts_sweep: logspace(0.0, 3.0, cfg.size(4, 7)),
            ps_sweep: logspace(-1.0, -4.0, cfg.size(4, 7)),
            note_every: cfg.size(1, 6),
        }
    }
}

/// Everything the check integrates, with what judging it needs to know.
struct Plan {
    jobs: Vec<Job>,
    sweeps_t: Vec<Sweep>,
    sweeps_pi: Vec<Sweep>,
    realised_notes: Vec<String>,
    /// Theorem 2's weak teacher accuracy per `|Y|`.
    thm2_alphas: Vec<(usize, f64)>,
    /// `pi_0(y_g)` sweeps skipped (`r_G(y_g)` not above the other outputs' mean).
    skipped_pi: usize,
}

/// Builds the reward models and flows of every setting (items 1-5 and Theorem 2).
fn build(cfg: &CheckConfig, settings: &[Setting], tally: &mut Tally) -> Plan {
    let mut b = Builder {
        settings,
        jobs: Vec::new(),
        tally,
    };
    let sizes = Sizes::new(cfg);
    let mut plan = Plan {
        jobs: Vec::new(),
        sweeps_t: Vec::new(),
        sweeps_pi: Vec::new(),
        realised_notes: Vec::new(),
        thm2_alphas: Vec::new(),
        skipped_pi: 0,
    };
    for s in 0..settings.len() {
        b.setting(s, &sizes, &mut plan);
    }
    plan.jobs = std::mem::take(&mut b.jobs);
    plan
}

impl Builder<'_> {
    /// The grid, the sweeps and Theorem 2 of setting `s`.
    fn setting(&mut self, s: usize, sizes: &Sizes, plan: &mut Plan) {
        let st = &self.settings[s];
        let grids = (
            constructions::attainable_grid(&st.r_g, &st.d, None),
            constructions::attainable_grid(&st.r_g, &st.d, Some(st.y_g)),
        );
        let (grid, grid_top) = match grids {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => {
                self.tally
                    .require(false, || format!("attainable grid: {e}: {}", st.describe()));
                return;
            }
        };
        // (1) Realise the requested accuracies and keep the orders.
        let slow_orders = self.orders(s, &grid, None, sizes.grid_k);
        let fast_orders = self.orders(s, &grid_top, Some(st.y_g), sizes.grid_k);
        if s % sizes.note_every == 0 {
            let fmt = |v: &[(f64, Ranking)]| {
                v.iter()
                    .map(|(a, _)| format!("{a:.4}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            plan.realised_notes.push(format!(
                "|Y|={} D={}: alpha grid [{}] of {} attainable, alpha' grid (y_g first) [{}] of {}",
                st.n,
                st.d.describe(),
                fmt(&slow_orders),
                grid.len(),
                fmt(&fast_orders),
                grid_top.len()
            ));
        }
        for &num_prompts in &PROMPTS {
            for lambda in st.lambdas() {
                // (2), (3): the grid.
                for (alpha, ranking) in &slow_orders {
                    for &t in &sizes.ts_grid {
                        self.slow(s, Group::Grid, ranking, *alpha, t, num_prompts, lambda);
                    }
                }
                for (alpha, ranking) in &fast_orders {
                    self.fast(
                        s,
                        Group::Grid,
                        ranking,
                        *alpha,
                        &st.logits,
                        st.gamma,
                        num_prompts,
                        lambda.0,
                    );
                }
                // (4): T sweep of the slow side with the ground-truth order (alpha = 1).
                self.t_sweep(s, &grid[0], sizes, num_prompts, lambda, plan);
                // (5): pi_0(y_g) sweep of the fast side with the least accurate r'_RM.
                let weakest = grid_top.last().expect("non-empty grid");
                self.pi_sweep(s, weakest, sizes, num_prompts, lambda.0, plan);
            }
        }
        if st.d == PairDistribution::Uniform {
            self.thm2(s, sizes, plan);
        }
    }

    /// Realises `k` accuracies spread over `grid` (with `top` kept first): the requested
    /// accuracy and the order that attains it.
    fn orders(
        &mut self,
        s: usize,
        grid: &[constructions::Attainable],
        top: Option<usize>,
        k: usize,
    ) -> Vec<(f64, Ranking)> {
        let st = &self.settings[s];
        spread(grid, k)
            .into_iter()
            .filter_map(
                |a| match constructions::realise(&st.r_g, &st.d, a.alpha, top) {
                    Ok(r) => {
                        self.tally.require(st.d.same(r.realised, r.requested), || {
                            format!(
                                "requested alpha {} realised {}: {}",
                                r.requested,
                                r.realised,
                                st.describe()
                            )
                        });
                        Some((r.requested, r.ranking))
                    }
                    Err(e) => {
                        self.tally.require(false, || {
                            format!("realise({}): {e}: {}", a.alpha, st.describe())
                        });
                        None
                    }
                },
            )
            .collect()
    }

    /// (4) The slow side over `T` with the order `gt`, horizons long enough to see
    /// the crossing.
    fn t_sweep(
        &mut self,
        s: usize,
        gt: &constructions::Attainable,
        sizes: &Sizes,
        num_prompts: usize,
        lambda: (bool, f64),
        plan: &mut Plan,
    ) {
        plan.sweeps_t.push(Sweep {
            setting: s,
            lambda_zero: lambda.0,
            num_prompts,
        });
        let id = plan.sweeps_t.len() - 1;
        for &t in &sizes.ts_sweep {
            self.slow(
                s,
                Group::SweepT(id),
                &gt.ranking,
                gt.alpha,
                t,
                num_prompts,
                lambda,
            );
        }
        for job in self
            .jobs
            .iter_mut()
            .filter(|j| j.group == Group::SweepT(id))
        {
            job.inst.horizon = job.inst.horizon.max(1e5 * num_prompts as f64 * job.x);
        }
    }

    /// (5) The fast side with the order `weakest` over `pi_0(y_g)` (the other logits
    /// kept), with `gamma` half the smallest gap `r_G(y_g) - V_G(0)` along the sweep;
    /// skipped (counted) where that gap is not positive.
    fn pi_sweep(
        &mut self,
        s: usize,
        weakest: &constructions::Attainable,
        sizes: &Sizes,
        num_prompts: usize,
        lambda_zero: bool,
        plan: &mut Plan,
    ) {
        let st = &self.settings[s];
        let others: Vec<f64> = (0..st.n)
            .filter(|&y| y != st.y_g)
            .map(|y| st.logits[y])
            .collect();
        let lse = others.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = lse + others.iter().map(|l| (l - lse).exp()).sum::<f64>().ln();
        let thetas: Vec<Vec<f64>> = sizes
            .ps_sweep
            .iter()
            .map(|p| {
                let mut th = st.logits.clone();
                th[st.y_g] = (p / (1.0 - p)).ln() + lse;
                th
            })
            .collect();
        let min_gap = thetas
            .iter()
            .map(|th| {
                st.r_g[st.y_g] - expected_reward(&softmax(th), &st.r_g).expect("valid policy")
            })
            .fold(f64::INFINITY, f64::min);
        if min_gap <= 0.0 {
            plan.skipped_pi += 1;
            return;
        }
        plan.sweeps_pi.push(Sweep {
            setting: s,
            lambda_zero,
            num_prompts,
        });
        let id = plan.sweeps_pi.len() - 1;
        for th in &thetas {
            self.fast(
                s,
                Group::SweepPi(id),
                &weakest.ranking,
                weakest.alpha,
                th,
                0.5 * min_gap,
                num_prompts,
                lambda_zero,
            );
        }
    }

    /// Theorem 2: uniform `D`, `alpha = 1` against the teacher wrong on every pair but
    /// `(y_g, y)` with `r_G(y) < r_G(y_g)`.
    fn thm2(&mut self, s: usize, sizes: &Sizes, plan: &mut Plan) {
        let st = &self.settings[s];
        let weak = match constructions::wrong_except_top(&st.r_g, st.y_g) {
            Ok(w) => w,
            Err(e) => {
                self.tally.require(false, || {
                    format!("Theorem 2 teacher: {e}: {}", st.describe())
                });
                return;
            }
        };
        let alpha_w = accuracy_uniform(&weak.scores(), &st.r_g).unwrap_or(f64::NAN);
        let pairs = (st.n * (st.n - 1) / 2) as f64;
        let below = st.r_g.iter().filter(|&&v| v < st.r_g[st.y_g]).count() as f64;
        self.tally.require(
            alpha_w == below / pairs && alpha_w <= 2.0 / st.n as f64,
            || {
                format!(
                    "Theorem 2: alpha' = {alpha_w}, expected {below}/{pairs} <= 2/|Y|: {}",
                    st.describe()
                )
            },
        );
        plan.thm2_alphas.push((st.n, alpha_w));
        let perfect = constructions::realise(&st.r_g, &st.d, 1.0, None);
        let weak_r = constructions::realise(&st.r_g, &st.d, alpha_w, Some(st.y_g));
        let (p, w) = match (perfect, weak_r) {
            (Ok(p), Ok(w)) => (p, w),
            (Err(e), _) | (_, Err(e)) => {
                return self.tally.require(false, || {
                    format!("Theorem 2 realisation: {e}: {}", st.describe())
                })
            }
        };
        self.tally
            .require(p.realised == 1.0 && w.realised == alpha_w, || {
                format!(
                    "Theorem 2 realisation: {} / {}: {}",
                    p.realised,
                    w.realised,
                    st.describe()
                )
            });
        for &num_prompts in &PROMPTS {
            for lambda in st.lambdas() {
                for &t in &sizes.ts_grid {
                    self.slow(s, Group::Thm2, &p.ranking, 1.0, t, num_prompts, lambda);
                }
                self.fast(
                    s,
                    Group::Thm2,
                    &weak,
                    alpha_w,
                    &st.logits,
                    st.gamma,
                    num_prompts,
                    lambda.0,
                );
            }
        }
    }
}

/// Integrates every job in parallel; sweep points whose crossing lies beyond the
/// horizon are rerun with a growing horizon (a crossing that must exist and is still
/// missing fails the check).
fn integrate(
    jobs: &mut [Job],
    cfg: &CheckConfig,
    tally: &mut Tally,
) -> Vec<crate::Result<crate::instance::TabularFlowResult>> {
    let mut results: Vec<_> = jobs
        .par_iter()
        .map(|j| j.inst.run(&cfg.solver, false))
        .collect();
    let todo: Vec<_> = jobs
        .iter_mut()
        .zip(results.iter_mut())
        .filter(|(j, _)| matches!(j.group, Group::SweepT(_) | Group::SweepPi(_)))
        .map(|(j, r)| (&mut j.inst, r))
        .collect();
    let note = super::horizon::regrow(todo, &cfg.solver, tally, &|inst| {
        format!(
            "sweep point lambda={:.3e} |S|={} (T or pi0(y_g) sweep)",
            inst.lambda, inst.num_prompts
        )
    });
    tally.note(note);
    results
}

/// Judges every job against its bound (items 2, 3), notes the worst margins, then the
/// accuracy-order counts and the sweeps' slopes (items 4, 5).
fn judge(
    plan: &Plan,
    results: &[crate::Result<crate::instance::TabularFlowResult>],
    settings: &[Setting],
    tally: &mut Tally,
) {
    let crossings = judge_bounds(plan, results, settings, tally);
    more_accurate_slower(&plan.jobs, &crossings, tally);
    fit_sweeps(
        &plan.jobs,
        &crossings,
        &plan.sweeps_t,
        &plan.sweeps_pi,
        settings,
        tally,
    );
}

/// Items 1-3 per job: the realised accuracy, and `t_gamma` against the slow side's
/// lower or the fast side's upper bound; the notes on the worst margins. Returns each
/// job's crossing (`None` where the integration failed).
fn judge_bounds(
    plan: &Plan,
    results: &[crate::Result<crate::instance::TabularFlowResult>],
    settings: &[Setting],
    tally: &mut Tally,
) -> Vec<Option<Crossing>> {
    let jobs = &plan.jobs;
    // Tally every job.
    let mut worst = [
        (f64::INFINITY, String::new()),
        (f64::INFINITY, String::new()),
    ];
    let mut beyond_slow = 0usize;
    let mut worst_finite_slow = (f64::INFINITY, String::new());
    let mut crossings: Vec<Option<Crossing>> = Vec::with_capacity(jobs.len());
    let mut max_acc_err = 0.0_f64;
    for (i, (job, res)) in jobs.iter().zip(results).enumerate() {
        let st = &settings[job.setting];
        let what = || {
            format!(
                "job #{i} {:?} {:?} lambda={:.3e} |S|={} alpha={:.6} x={:.4e}: {}; instance {}",
                job.group,
                job.side,
                job.inst.lambda,
                job.inst.num_prompts,
                job.requested,
                job.x,
                st.describe(),
                serde_json::to_string(&job.inst).unwrap_or_default()
            )
        };
        max_acc_err = max_acc_err.max((job.realised - job.requested).abs());
        tally.require(st.d.same(job.realised, job.requested), || {
            format!(
                "realised accuracy {} != requested {}: {}",
                job.realised,
                job.requested,
                what()
            )
        });
        let res = match res {
            Ok(r) => r,
            Err(e) => {
                tally.require(false, || format!("integration failed: {e}: {}", what()));
                crossings.push(None);
                continue;
            }
        };
        let c = res.t_gamma_g;
        crossings.push(Some(c));
        let measured = c.lower_bound();
        let k = match job.side {
            Side::Slow => {
                beyond_slow += usize::from(c.time().is_none());
                tally.lower(measured, job.bound, what);
                0
            }
            Side::Fast => {
                tally.upper(measured, job.bound, what);
                1
            }
        };
        let margin = if k == 0 {
            measured / job.bound
        } else {
            job.bound / measured
        };
        let at = || {
            format!(
                "{:?} |Y|={} {} lambda={:.2e} |S|={} x={:.3e}",
                job.group,
                st.n,
                st.d.describe(),
                job.inst.lambda,
                job.inst.num_prompts,
                job.x
            )
        };
        if margin < worst[k].0 {
            worst[k] = (margin, at());
        }
        if k == 0 && c.time().is_some() && margin < worst_finite_slow.0 {
            worst_finite_slow = (margin, at());
        }
    }
    for note in &plan.realised_notes {
        tally.note(note.clone());
    }
    tally.note(format!(
        "{} reward models built; max |realised - requested accuracy| = {max_acc_err:.1e} (uniform D: exact, weighted: <= 1e-12)",
        jobs.len()
    ));
    if !plan.thm2_alphas.is_empty() {
        let s: Vec<String> = plan
            .thm2_alphas
            .iter()
            .map(|(n, a)| format!("|Y|={n}: {a:.4} (2/|Y|={:.4})", 2.0 / *n as f64))
            .collect();
        tally.note(format!(
            "Theorem 2 weak teacher accuracies alpha': {}",
            s.join(", ")
        ));
    }
    tally.note(format!(
        "slow side (r_RM): worst t_gamma/bound = {:.3} at {}; {beyond_slow} slow runs never crossed before the horizon ({}x the bound, counted as t_gamma >= horizon)",
        worst[0].0, worst[0].1, SLOW_HORIZON
    ));
    tally.note(format!(
        "slow side, runs that crossed: worst t_gamma/bound = {:.3} at {}",
        worst_finite_slow.0, worst_finite_slow.1
    ));
    tally.note(format!(
        "fast side (r'_RM): worst bound/t_gamma = {:.3} at {}",
        worst[1].0, worst[1].1
    ));
    if plan.skipped_pi > 0 {
        tally.note(format!(
            "{} pi0(y_g) sweeps skipped: r_G(y_g) does not exceed the other outputs' mean",
            plan.skipped_pi
        ));
    }
    crossings
}

/// Counts grid pairs with `alpha > alpha'` where the more accurate `r_RM` was slower, per `T`.
fn more_accurate_slower(jobs: &[Job], crossings: &[Option<Crossing>], tally: &mut Tally) {
    let grid: Vec<(&Job, f64)> = jobs
        .iter()
        .zip(crossings)
        .filter(|(j, _)| j.group == Group::Grid)
        .filter_map(|(j, c)| c.map(|c| (j, c.lower_bound())))
        .collect();
    let mut ts: Vec<f64> = grid
        .iter()
        .filter(|(j, _)| j.side == Side::Slow)
        .map(|(j, _)| j.x)
        .collect();
    ts.sort_by(f64::total_cmp);
    ts.dedup();
    let mut parts = Vec::new();
    for t in ts {
        let (mut pairs, mut slower) = (0usize, 0usize);
        for (s, t_slow) in grid
            .iter()
            .filter(|(j, _)| j.side == Side::Slow && j.x == t)
        {
            for (f, t_fast) in grid.iter().filter(|(j, _)| j.side == Side::Fast) {
                let same = s.setting == f.setting
                    && s.lambda_zero == f.lambda_zero
                    && s.inst.num_prompts == f.inst.num_prompts;
                if same && s.requested > f.requested {
                    pairs += 1;
                    slower += usize::from(t_slow > t_fast);
                }
            }
        }
        parts.push(format!("T={t}: {slower}/{pairs}"));
    }
    tally.note(format!(
        "grid pairs (alpha > alpha') where the more accurate r_RM raised r_G more slowly than r'_RM: {}",
        parts.join(", ")
    ));
}

/// Fits the `T` and `pi_0(y_g)` sweeps.
fn fit_sweeps(
    jobs: &[Job],
    crossings: &[Option<Crossing>],
    sweeps_t: &[Sweep],
    sweeps_pi: &[Sweep],
    settings: &[Setting],
    tally: &mut Tally,
) {
    let series = |group: Group| -> (Vec<f64>, Vec<f64>, usize) {
        let (mut x, mut y, mut missing) = (Vec::new(), Vec::new(), 0);
        for (j, c) in jobs.iter().zip(crossings) {
            if j.group == group {
                match c.and_then(|c| c.time()) {
                    Some(t) => {
                        x.push(j.x);
                        y.push(t);
                    }
                    None => missing += 1,
                }
            }
        }
        (x, y, missing)
    };
    for lambda_zero in [true, false] {
        let lam = if lambda_zero {
            "lambda=0"
        } else {
            "lambda=lambda_max"
        };
        // (4) T sweeps.
        let fits: Vec<(usize, Slope, usize)> = sweeps_t
            .iter()
            .enumerate()
            .filter(|(_, sw)| sw.lambda_zero == lambda_zero)
            .map(|(id, _)| {
                let (x, y, missing) = series(Group::SweepT(id));
                (id, Slope::fit("", &x, &y, 1.0, None), missing)
            })
            .collect();
        let missing: usize = fits.iter().map(|f| f.2).sum();
        let unfit = fits.iter().filter(|f| !f.1.fitted.is_finite()).count();
        let fits: Vec<_> = fits
            .into_iter()
            .filter(|f| f.1.fitted.is_finite())
            .collect();
        let slopes: Vec<f64> = fits.iter().map(|f| f.1.fitted).collect();
        // lambda = 0: the exact law, judged on the sweep farthest from 1; lambda > 0: the
        // smallest slope is the one shown.
        let worst = |f: &(usize, Slope, usize)| {
            if lambda_zero {
                (f.1.fitted - 1.0).abs()
            } else {
                -f.1.fitted
            }
        };
        if let Some((id, _, _)) = fits.iter().max_by(|a, b| worst(a).total_cmp(&worst(b))) {
            let (x, y, _) = series(Group::SweepT(*id));
            let sw = &sweeps_t[*id];
            let st = &settings[sw.setting];
            let kind = if lambda_zero {
                "integrator sanity check (an identity: r_RM in (0, 1/T) scales as 1/T, which at lambda = 0 \
                 rescales time by T), farthest from 1"
            } else {
                "reported, not judged (lambda = lambda_max fixed while r_RM ~ 1/T, so t_gamma(T) = T s(lambda T) \
                 with s the crossing time of the unscaled reward in time t/T; the theorem claims t_gamma >= \
                 2|S|(1-e^(-gamma/2)) T, judged at every sweep point, not that s grows with lambda T), smallest"
            };
            let what = format!(
                "log t_gamma(r_G) vs log T under r_RM (alpha=1), {lam}, {kind} of {} sweeps (|Y|={}, {}, |S|={})",
                fits.len(),
                st.n,
                st.d.describe(),
                sw.num_prompts
            );
            // lambda = 0: an identity, judged to 0.02. lambda > 0: the slope is
            // 1 + d log s / d log(lambda T), which the theorem does not bound (s need not
            // grow with the KL weight), so it is reported only; its claim is the bound.
            tally.slope(Slope::fit(&what, &x, &y, 1.0, lambda_zero.then_some(0.02)));
            tally.note(format!(
                "T sweeps (T = 1..1000), {lam}: slopes min {:.4} median {:.4} max {:.4}; {missing} points beyond the horizon (left out of the fits), {unfit} sweeps with fewer than 2 crossings (left out)",
                min(&slopes),
                median(&slopes),
                max(&slopes)
            ));
        } else {
            // Nothing to fit: recorded as a slope that could not be fitted (a failure).
            tally.slope(Slope::fit(
                &format!("log t_gamma(r_G) vs log T under r_RM (alpha=1), {lam}: {unfit} sweeps, none with 2 crossings"),
                &[],
                &[],
                1.0,
                None,
            ));
        }
        // (5) pi_0(y_g) sweeps.
        let fits: Vec<(usize, f64, usize, usize)> = sweeps_pi
            .iter()
            .enumerate()
            .filter(|(_, sw)| sw.lambda_zero == lambda_zero)
            .map(|(id, _)| {
                let (x, y, missing) = series(Group::SweepPi(id));
                let (fitted, points, _) = super::log_log_slope(&x, &y);
                (id, fitted, points, missing)
            })
            .collect();
        let missing: usize = fits.iter().map(|f| f.3).sum();
        let unfit = fits.iter().filter(|f| !f.1.is_finite()).count();
        let fits: Vec<_> = fits.into_iter().filter(|f| f.1.is_finite()).collect();
        let slopes: Vec<f64> = fits.iter().map(|f| f.1).collect();
        if let Some((id, _, _, _)) = fits.iter().min_by(|a, b| a.1.total_cmp(&b.1)) {
            let (x, y, _) = series(Group::SweepPi(*id));
            let sw = &sweeps_pi[*id];
            let st = &settings[sw.setting];
            let what = format!(
                "log t_gamma(r_G) vs log pi0(y_g) under r'_RM (least accurate alpha'), {lam}, steepest of {} sweeps (|Y|={}, {}, |S|={})",
                fits.len(),
                st.n,
                st.d.describe(),
                sw.num_prompts
            );
            tally.slope(Slope::fit(&what, &x, &y, -1.0, None).at_least());
            tally.note(format!(
                "pi0(y_g) sweeps (1e-1..1e-4), {lam}: slopes min {:.4} median {:.4} max {:.4} (O(1/pi0(y_g)) allows any slope >= -1); {missing} points beyond the horizon, {unfit} sweeps with fewer than 2 crossings (left out)",
                min(&slopes),
                median(&slopes),
                max(&slopes)
            ));
        } else {
            tally.slope(Slope::fit(
                &format!("log t_gamma(r_G) vs log pi0(y_g) under r'_RM, {lam}: {unfit} sweeps, none with 2 crossings"),
                &[],
                &[],
                -1.0,
                None,
            ));
        }
    }
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

fn median(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return f64::NAN;
    }
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_picks_both_ends() {
        assert_eq!(spread(&[1, 2, 3, 4, 5, 6, 7, 8, 9], 3), vec![1, 5, 9]);
        assert_eq!(spread(&[1, 2], 5), vec![1, 2]);
        assert_eq!(spread(&[1, 2, 3, 4], 2), vec![1, 4]);
    }

    /// The full run with its report (`cargo test --release -p rmteach-theory thm5::tests::full -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn full() {
        let t0 = std::time::Instant::now();
        let r = run(&CheckConfig::default());
        eprintln!("{}", serde_json::to_string_pretty(&r).unwrap());
        eprintln!("{} instances in {:.2?}", r.instances, t0.elapsed());
    }
}
