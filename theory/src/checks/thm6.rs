//! Theorem 6 (= Theorem 3): different policies need different teachers (tabular).
//!
//! For random `r_G` with two outputs `y_g != y_g'` above `V0 + gamma`, `V0` chosen so
//! that every family member below is constructible, and for `T in {1, 3, 10, 30, 100}`,
//! `c in {0.1, 0.3}`, `pi_0 in Pi = {E r_G = V0, pi(y_g') <= T^-2, pi(y_g) >= c}` and
//! `pi'_0 in Pi'` (roles swapped) are built exactly ([`crate::constructions::thm6_policy`],
//! every constraint required and its residual printed). With `r_RM = +1 on y_g, -1
//! elsewhere` and `r'_RM = +1 on y_g', -1 elsewhere`, `lambda in {0, thm6_lambda_max}`,
//! `|S| in {1, 4}`:
//!
//! * from `pi_0 in Pi`: `r_RM` is fast, `t_gamma <= 2|S|/(1-rho)^3 (1/c - 1/rho)`, and
//!   `r'_RM` is slow, `t_gamma >= |S|/sqrt(2) (1-e^(-gamma/2)) T`;
//! * from `pi'_0 in Pi'`: the same with the teachers (and `rho'` from `y_g'`) swapped;
//! * the slow side's `log t_gamma` against `log T` (the bound's exponent is 1).

use rand::Rng;
use rayon::prelude::*;

use super::{CheckConfig, CheckReport, Slope, Tally};
use crate::bounds;
use crate::constructions::{self, Thm6Policy};
use crate::flow::Crossing;
use crate::instance::TabularInstance;
use crate::measure::sample::{rewards, rng};

/// Output-set sizes.
const SIZES: [usize; 3] = [4, 6, 10];
/// Numbers of prompts `|S|`.
const PROMPTS: [usize; 2] = [1, 4];
/// `T` (the quick run stops at 100; the full run adds 300 and 1000 to lengthen the slope fit).
const TS: [f64; 7] = [1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0];
/// `c`.
const CS: [f64; 2] = [0.1, 0.3];
/// Fast-side horizon, in multiples of the bound (a crossing beyond it is a failure).
const FAST_HORIZON: f64 = 1.5;

/// One random ground truth with its two good outputs and `V0`.
struct Setting {
    n: usize,
    r_g: Vec<f64>,
    y_g: usize,
    y_g2: usize,
    v0: f64,
    gamma: f64,
    shape: Vec<f64>,
}

impl Setting {
    fn describe(&self) -> String {
        format!(
            "|Y|={}, y_g={}, y_g'={}, V0={:.6}, gamma={:.6}, r_G={:?}, shape={:?}",
            self.n, self.y_g, self.y_g2, self.v0, self.gamma, self.r_g, self.shape
        )
    }
}

fn settings(cfg: &CheckConfig) -> Vec<Setting> {
    let mut rng = rng(cfg.seed, 6);
    let mut out = Vec::new();
    for &n in &SIZES {
        let mut made = 0;
        while made < cfg.size(1, 8) {
            let mut r_g = rewards(&mut rng, n, -1.0, 1.0);
            let y_g = rng.random_range(0..n);
            let y_g2 = (y_g + rng.random_range(1..n)) % n;
            r_g[y_g] = rng.random_range(0.5..1.0);
            r_g[y_g2] = rng.random_range(0.5..1.0);
            // Spread the other outputs so that V0 can be hit for every T and c.
            let others: Vec<usize> = (0..n).filter(|&y| y != y_g && y != y_g2).collect();
            r_g[others[0]] = rng.random_range(-1.0..-0.8);
            if others.len() > 1 {
                r_g[others[1]] = rng.random_range(0.6..1.0);
            }
            let shape: Vec<f64> = (0..n).map(|_| rng.random_range(0.1..1.0)).collect();
            let Some((lo, hi)) = constructions::thm6_v0_range(&r_g, y_g, y_g2, &TS, &CS) else {
                continue;
            };
            let v0 = lo + 0.3 * (hi - lo);
            let gamma = 0.5 * (r_g[y_g].min(r_g[y_g2]) - v0);
            out.push(Setting {
                n,
                r_g,
                y_g,
                y_g2,
                v0,
                gamma,
                shape,
            });
            made += 1;
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// Trained on the teacher of the favoured output: upper bound.
    Fast,
    /// Trained on the teacher of the suppressed output: lower bound.
    Slow,
}

/// One integration.
struct Job {
    setting: usize,
    /// `true`: `pi_0 in Pi` (favoured `y_g`); `false`: `pi'_0 in Pi'`.
    family_pi: bool,
    side: Side,
    lambda_zero: bool,
    t_big: f64,
    c: f64,
    bound: f64,
    inst: TabularInstance,
}

/// Runs the check: build the families and flows, integrate, judge.
pub fn run(cfg: &CheckConfig) -> CheckReport {
    let mut tally = Tally::new(
        "Theorem 6",
        "tabular: from pi0 in Pi, r_RM (+1 on y_g) gives t_gamma <= 2|S|/(1-rho)^3 (1/c-1/rho) and r'_RM gives \
         t_gamma >= |S|/sqrt2 (1-e^(-gamma/2)) T; symmetrically from Pi'",
    );
    let settings = settings(cfg);
    let prompts: &[usize] = if cfg.quick { &PROMPTS[..1] } else { &PROMPTS };
    let ts: &[f64] = if cfg.quick { &TS[..5] } else { &TS };
    let (mut jobs, families) = build(&settings, prompts, ts, &mut tally);
    let results = integrate(&mut jobs, cfg, &mut tally);
    note_families(&families, &mut tally);
    note_settings(&settings, ts, &mut tally);
    let crossings = judge_bounds(&jobs, &results, &settings, &mut tally);
    fit_slow_side(&jobs, &crossings, &settings, &mut tally);
    tally.finish()
}

/// The policies of `Pi` and `Pi'` for every setting, `T` and `c`, each with its fast
/// (`r_RM` favouring it) and slow (`r'_RM`) flow per `|S|` and `lambda`.
fn build(
    settings: &[Setting],
    prompts: &[usize],
    ts: &[f64],
    tally: &mut Tally,
) -> (Vec<Job>, Vec<Thm6Policy>) {
    let mut jobs = Vec::new();
    let mut families: Vec<Thm6Policy> = Vec::new();
    for (s, st) in settings.iter().enumerate() {
        for &t in ts {
            for &c in &CS {
                for family_pi in [true, false] {
                    let (fav, sup) = if family_pi {
                        (st.y_g, st.y_g2)
                    } else {
                        (st.y_g2, st.y_g)
                    };
                    let policy =
                        match constructions::thm6_policy(&st.r_g, fav, sup, st.v0, t, c, &st.shape)
                        {
                            Ok(p) => p,
                            Err(e) => {
                                tally.require(false, || {
                                    format!("construction failed: {e}: {}", st.describe())
                                });
                                continue;
                            }
                        };
                    let res = policy.residuals;
                    tally.require(res.holds(), || {
                        format!(
                            "family {} T={t} c={c} violates a constraint: {res:?}: {}",
                            if family_pi { "Pi" } else { "Pi'" },
                            st.describe()
                        )
                    });
                    let rho = bounds::rho(st.v0, st.gamma, st.r_g[fav]);
                    let lambda_max = bounds::thm6_lambda_max(c, rho, res.min_prob);
                    for &num_prompts in prompts {
                        for (lambda_zero, lambda) in [(true, 0.0), (false, lambda_max)] {
                            let inst = |r_rm: Vec<f64>, horizon: f64| TabularInstance {
                                num_prompts,
                                lambda,
                                gamma: st.gamma,
                                logits: None,
                                probs: Some(policy.probs.clone()),
                                r_rm,
                                r_g: st.r_g.clone(),
                                horizon,
                            };
                            let fast = bounds::thm6_fast_bound(num_prompts, rho, c);
                            jobs.push(Job {
                                setting: s,
                                family_pi,
                                side: Side::Fast,
                                lambda_zero,
                                t_big: t,
                                c,
                                bound: fast,
                                inst: inst(
                                    constructions::thm6_reward(st.n, fav),
                                    FAST_HORIZON * fast,
                                ),
                            });
                            let slow = bounds::thm6_slow_bound(st.gamma, num_prompts, t);
                            // Far enough to see the crossing (about |S| T^2 / 2) for the slope fit.
                            let horizon =
                                (10.0 * slow).max(100.0 * num_prompts as f64 * (t * t + 10.0));
                            jobs.push(Job {
                                setting: s,
                                family_pi,
                                side: Side::Slow,
                                lambda_zero,
                                t_big: t,
                                c,
                                bound: slow,
                                inst: inst(constructions::thm6_reward(st.n, sup), horizon),
                            });
                        }
                    }
                    families.push(policy);
                }
            }
        }
    }
    (jobs, families)
}

/// Integrates every job in parallel; the slow-side points of the `T` fits get horizons
/// that grow until they cross.
fn integrate(
    jobs: &mut [Job],
    cfg: &CheckConfig,
    tally: &mut Tally,
) -> Vec<crate::Result<crate::instance::TabularFlowResult>> {
    let mut results: Vec<_> = jobs
        .par_iter()
        .map(|j| j.inst.run(&cfg.solver, false))
        .collect();
    // The slow-side points of the T fits get horizons that grow until they cross.
    let todo: Vec<_> = jobs
        .iter_mut()
        .zip(results.iter_mut())
        .filter(|(j, _)| j.side == Side::Slow && in_fit(j))
        .map(|(j, r)| (&mut j.inst, r))
        .collect();
    let note = super::horizon::regrow(todo, &cfg.solver, tally, &|inst| {
        format!(
            "slow-side T sweep point lambda={:.3e} |S|={}",
            inst.lambda, inst.num_prompts
        )
    });
    tally.note(note);

    results
}

/// Every job's `t_gamma` against its bound, and the worst margins. Returns each job's
/// crossing (`None` where the integration failed).
fn judge_bounds(
    jobs: &[Job],
    results: &[crate::Result<crate::instance::TabularFlowResult>],
    settings: &[Setting],
    tally: &mut Tally,
) -> Vec<Option<Crossing>> {
    let mut worst = [
        (f64::INFINITY, String::new()),
        (f64::INFINITY, String::new()),
    ];
    let mut beyond_slow = 0usize;
    let mut crossings: Vec<Option<Crossing>> = Vec::with_capacity(jobs.len());
    for (i, (job, res)) in jobs.iter().zip(results).enumerate() {
        let st = &settings[job.setting];
        let label = || {
            format!(
                "{} {:?} T={} c={} lambda={:.3e} |S|={}",
                if job.family_pi { "Pi" } else { "Pi'" },
                job.side,
                job.t_big,
                job.c,
                job.inst.lambda,
                job.inst.num_prompts
            )
        };
        let what = || {
            format!(
                "job #{i} {}: {}; instance {}",
                label(),
                st.describe(),
                serde_json::to_string(&job.inst).unwrap_or_default()
            )
        };
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
        let (k, margin) = match job.side {
            Side::Fast => {
                tally.upper(measured, job.bound, what);
                (0, job.bound / measured)
            }
            Side::Slow => {
                beyond_slow += usize::from(c.time().is_none());
                tally.lower(measured, job.bound, what);
                (1, measured / job.bound)
            }
        };
        if margin < worst[k].0 {
            worst[k] = (
                margin,
                format!("{} (|Y|={}, setting #{})", label(), st.n, job.setting),
            );
        }
    }

    tally.note(format!(
        "fast side: worst bound/t_gamma = {:.3} at {}",
        worst[0].0, worst[0].1
    ));
    tally.note(format!(
        "slow side: worst t_gamma/bound = {:.3} at {}; {beyond_slow} slow runs beyond the horizon (counted as t_gamma >= horizon >= bound)",
        worst[1].0, worst[1].1
    ));
    crossings
}

/// How closely the constructed families meet their constraints.
fn note_families(families: &[Thm6Policy], tally: &mut Tally) {
    // Residuals of the constructed families.
    let max_mean = families
        .iter()
        .map(|p| p.residuals.mean.abs())
        .fold(0.0, f64::max);
    let min_sup = families
        .iter()
        .map(|p| p.residuals.suppressed_slack)
        .fold(f64::INFINITY, f64::min);
    let min_fav = families
        .iter()
        .map(|p| p.residuals.favoured_slack)
        .fold(f64::INFINITY, f64::min);
    let max_sum = families
        .iter()
        .map(|p| p.residuals.sum.abs())
        .fold(0.0, f64::max);
    let min_prob = families
        .iter()
        .map(|p| p.residuals.min_prob)
        .fold(f64::INFINITY, f64::min);
    tally.note(format!(
        "{} policies built in Pi / Pi': max |E r_G - V0| = {max_mean:.1e}, min (T^-2 - pi(suppressed)) = {min_sup:.1e}, \
         min (pi(favoured) - c) = {min_fav:.1e}, max |sum pi - 1| = {max_sum:.1e}, min pi0 = {min_prob:.2e} \
         (pi(suppressed) = min(T^-2, (1-c)/4): the cap binds only at T = 1)",
        families.len()
    ));
}

/// The ranges of `V0` and `gamma` the settings cover.
fn note_settings(settings: &[Setting], ts: &[f64], tally: &mut Tally) {
    let range = |f: &dyn Fn(&Setting) -> f64| {
        let v: Vec<f64> = settings.iter().map(f).collect();
        (
            v.iter().copied().fold(f64::INFINITY, f64::min),
            v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        )
    };
    let (v_lo, v_hi) = range(&|s| s.v0);
    let (g_lo, g_hi) = range(&|s| s.gamma);
    tally.note(format!(
        "{} settings (|Y| in {SIZES:?}, T in {ts:?}, c in {CS:?}): V0 in [{v_lo:.4}, {v_hi:.4}], gamma in [{g_lo:.4}, {g_hi:.4}]",
        settings.len()
    ));
}

/// Whether a job's `T` enters the slope fit: its suppressed mass is exactly `T^-2`.
fn in_fit(j: &Job) -> bool {
    constructions::thm6_suppressed_mass(j.t_big, j.c) == j.t_big.powi(-2)
}

/// Fits `log t_gamma` against `log T` on the slow side, over the `T` whose suppressed
/// mass is exactly `T^-2` (the cap at `T = 1` is left out).
fn fit_slow_side(
    jobs: &[Job],
    crossings: &[Option<Crossing>],
    settings: &[Setting],
    tally: &mut Tally,
) {
    for lambda_zero in [true, false] {
        let lam = if lambda_zero {
            "lambda=0"
        } else {
            "lambda=lambda_max"
        };
        let mut fits: Vec<(f64, Vec<f64>, Vec<f64>, String)> = Vec::new();
        let mut missing = 0usize;
        let keys: Vec<(usize, bool, usize, u64)> = {
            let mut k: Vec<_> = jobs
                .iter()
                .filter(|j| j.side == Side::Slow && j.lambda_zero == lambda_zero)
                .map(|j| (j.setting, j.family_pi, j.inst.num_prompts, j.c.to_bits()))
                .collect();
            k.sort_unstable();
            k.dedup();
            k
        };
        for (s, family_pi, num_prompts, c_bits) in keys {
            let c = f64::from_bits(c_bits);
            let (mut x, mut y) = (Vec::new(), Vec::new());
            for (j, cr) in jobs.iter().zip(crossings) {
                let ours = j.side == Side::Slow
                    && j.lambda_zero == lambda_zero
                    && j.setting == s
                    && j.family_pi == family_pi
                    && j.inst.num_prompts == num_prompts
                    && j.c == c
                    && in_fit(j);
                if !ours {
                    continue;
                }
                match cr.and_then(|c| c.time()) {
                    Some(t) => {
                        x.push(j.t_big);
                        y.push(t);
                    }
                    None => missing += 1,
                }
            }
            let (fitted, _, _) = super::log_log_slope(&x, &y);
            let label = format!(
                "|Y|={}, {}, c={c}, |S|={num_prompts}",
                settings[s].n,
                if family_pi {
                    "pi0 in Pi, r'_RM"
                } else {
                    "pi'0 in Pi', r_RM"
                }
            );
            fits.push((fitted, x, y, label));
        }
        let unfit = fits.iter().filter(|f| !f.0.is_finite()).count();
        let fits: Vec<_> = fits.into_iter().filter(|f| f.0.is_finite()).collect();
        let slopes: Vec<f64> = fits.iter().map(|f| f.0).collect();
        if fits.is_empty() {
            tally.slope(Slope::fit(
                &format!("log t_gamma(r_G) vs log T, slow teacher, {lam}: {unfit} sweeps, none with 2 crossings"),
                &[],
                &[],
                1.0,
                None,
            ));
        }
        if let Some((_, x, y, label)) = fits.iter().min_by(|a, b| a.0.total_cmp(&b.0)) {
            tally.slope(Slope::fit(
                &format!("log t_gamma(r_G) vs log T, slow teacher, {lam}, smallest of {} sweeps ({label})", fits.len()),
                x,
                y,
                1.0,
                None,
            ).at_least());
            let mut sorted = slopes.clone();
            sorted.sort_by(f64::total_cmp);
            tally.note(format!(
                "slow-side T sweeps (T = 3..{}), {lam}: slopes min {:.4} median {:.4} max {:.4} over {} sweeps; \
                 {missing} points beyond the horizon (left out), {unfit} sweeps with fewer than 2 crossings (left out). Omega(T) needs >= 1; a tabular flow from mass T^-2 takes ~T^2",
                fits.iter().flat_map(|f| f.1.iter().copied()).fold(0.0, f64::max),
                sorted[0],
                sorted[sorted.len() / 2],
                sorted[sorted.len() - 1],
                sorted.len()
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_feasible() {
        for st in settings(&CheckConfig::default()) {
            assert!(st.r_g[st.y_g] > st.v0 + st.gamma && st.r_g[st.y_g2] > st.v0 + st.gamma);
            assert!(st.v0 > -1.0 && st.v0 < 1.0);
        }
    }

    /// The full run with its report (`cargo test --release -p rmteach-theory thm6::tests::full -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn full() {
        let t0 = std::time::Instant::now();
        let r = run(&CheckConfig::default());
        eprintln!("{}", serde_json::to_string_pretty(&r).unwrap());
        eprintln!("{} instances in {:.2?}", r.instances, t0.elapsed());
    }
}
