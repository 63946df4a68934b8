//! Proposition 1 (Best-of-N): the exact Best-of-N distribution agrees with simulation,
//! and a perfectly accurate reward model maximises `E[r_G]` of Best-of-N over all
//! reward models, for every `N` and policy.
//!
//! * (a) exact `E[r_G]` ([`best_of_n_value`]) against a Monte Carlo run of the same
//!   procedure (same tie rule: the first drawn among tied maxima), on random policies
//!   and random reward models with ties. Each comparison is a two-sided Bernstein test
//!   at level `FAMILY_ERROR / m` (`m` = number of comparisons; Bonferroni): with the
//!   exact Best-of-N variance `s^2` and range `b = max |r_G(y) - E[r_G]|` over the
//!   support, `|exact - MC| <= b L / (3n) + sqrt((b L / (3n))^2 + 2 s^2 L / n)`,
//!   `L = ln(2m / FAMILY_ERROR)`, `n` draws. Bernstein's inequality holds for every
//!   distribution (no normal approximation), so a correct formula fails *any* of the
//!   `m` comparisons with probability at most `FAMILY_ERROR` over the seed. The largest
//!   z-score `|exact - MC| / (s / sqrt n)` is reported beside it in a note.
//! * (b) optimality: the accurate model (same order as `r_G`, ties exactly where `r_G`
//!   ties — `r_G` itself) against random reward models (random weak orders, coarsened
//!   or perturbed copies of the accurate order, its reverse). For `|Y| <= 5` every weak
//!   order of `Y` is enumerated, so there the comparison covers *all* reward models
//!   (Best-of-N depends on `r_RM` only through its weak order).
//!
//! In (b) the inequality `V_acc >= V_rm` is exact; the only slack is `1e-12` (absolute,
//! rewards in `[-1, 1]`) for floating-point rounding of two sums of at most 12 terms.
//! Both sides are recorded shifted by `1 - min_y r_G` (so they lie in `[1, 3]` and the
//! margin `measured / bound` is a well-defined ratio); a common shift leaves the
//! inequality unchanged because `E[r_G]` of Best-of-N is affine in `r_G`.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma};

use super::{CheckConfig, CheckReport, Tally};
use crate::best_of_n::{best_of_n_distribution, best_of_n_monte_carlo_estimate, best_of_n_value};

/// Absolute floating-point slack of the optimality comparison (rewards in `[-1, 1]`).
const FP_SLACK: f64 = 1e-12;

/// Family-wise false-alarm probability of part (a): a correct exact formula fails one
/// of the Monte Carlo comparisons of a run with probability at most this.
const FAMILY_ERROR: f64 = 1e-3;
/// Absolute slack of part (a) for the rounding of a sum of up to 40 000 draws.
const MC_FP_SLACK: f64 = 1e-10;

/// The Best-of-N sizes of part (a).
const MC_NS: [u32; 4] = [1, 2, 4, 16];
/// The Best-of-N sizes of part (b).
const OPT_NS: [u32; 7] = [1, 2, 3, 5, 10, 50, 100];

/// A random distribution over `size` outputs: Dirichlet with a random concentration
/// in {0.2, 1, 5} (small concentrations give near-zero and exactly-zero masses).
fn random_policy(size: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let alpha = [0.2, 1.0, 5.0][rng.random_range(0..3)];
    let gamma = Gamma::new(alpha, 1.0).expect("positive shape");
    loop {
        let w: Vec<f64> = (0..size).map(|_| gamma.sample(rng)).collect();
        let s: f64 = w.iter().sum();
        if s > 0.0 && s.is_finite() {
            return w.iter().map(|v| v / s).collect();
        }
    }
}

/// Random rewards in `[-1, 1]`: continuous, or (half the time) drawn from a grid of
/// `2..=size` levels so that ties occur.
fn random_reward(size: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    if size > 1 && rng.random_bool(0.5) {
        let levels = rng.random_range(2..=size);
        (0..size)
            .map(|_| -1.0 + 2.0 * rng.random_range(0..levels) as f64 / (levels - 1) as f64)
            .collect()
    } else {
        (0..size).map(|_| rng.random_range(-1.0..=1.0)).collect()
    }
}

/// Every weak order of `size` outputs (as level vectors; duplicates included, which is
/// harmless): all `size^size` assignments of a level in `0..size` to each output.
fn all_level_assignments(size: usize) -> Vec<Vec<f64>> {
    let total = size.pow(size as u32);
    (0..total)
        .map(|mut code| {
            (0..size)
                .map(|_| {
                    let l = code % size;
                    code /= size;
                    l as f64
                })
                .collect()
        })
        .collect()
}

/// Random competitors of the accurate model `r_g`: independent random rewards, random
/// weak orders, the accurate order with one adjacent pair swapped, coarsened (ties
/// merged), and reversed.
fn random_competitors(r_g: &[f64], count: usize, rng: &mut ChaCha8Rng) -> Vec<Vec<f64>> {
    let size = r_g.len();
    let mut order: Vec<usize> = (0..size).collect();
    order.sort_by(|&a, &b| r_g[a].total_cmp(&r_g[b]));
    (0..count)
        .map(|k| match k % 5 {
            0 => random_reward(size, rng),
            1 => {
                // A random permutation with random ties.
                let mut perm: Vec<usize> = (0..size).collect();
                perm.shuffle(rng);
                let levels = rng.random_range(1..=size);
                perm.iter().map(|p| (p * levels / size) as f64).collect()
            }
            2 => {
                // The accurate rewards with two neighbours in the order swapped.
                let mut rank = r_g.to_vec();
                if size >= 2 {
                    let i = rng.random_range(0..size - 1);
                    rank.swap(order[i], order[i + 1]);
                }
                rank
            }
            3 => {
                // The accurate order coarsened to a few levels (ties where r_G differs).
                let levels = rng.random_range(1..=size.max(1));
                let mut out = vec![0.0; size];
                for (i, &y) in order.iter().enumerate() {
                    out[y] = (i * levels / size) as f64;
                }
                out
            }
            _ => r_g.iter().map(|v| -v).collect(),
        })
        .collect()
}

/// The half-width of a two-sided Bernstein test at level `alpha` for the mean of
/// `draws` iid variables with variance `var` and `|X - mean| <= range`:
/// `P(|mean_hat - mean| >= eps) <= 2 exp(-n eps^2 / (2 var + 2 range eps / 3)) = alpha`.
fn bernstein_half_width(var: f64, range: f64, draws: usize, alpha: f64) -> f64 {
    let n = draws as f64;
    let l = (2.0 / alpha).ln();
    let a = range * l / (3.0 * n);
    a + (a * a + 2.0 * var.max(0.0) * l / n).sqrt()
}

/// Runs Proposition 1's checks.
pub fn run(cfg: &CheckConfig) -> CheckReport {
    let mut tally = Tally::new(
        "Proposition 1",
        "Best-of-N: exact distribution = simulation (Bernstein tests, family-wise error <= 1e-3); accurate RM maximises E[r_G] for every N",
    );
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x5052_4f50_3100);

    // (a) exact vs Monte Carlo.
    let mc_instances = cfg.size(12, 150);
    let draws = cfg.size(4000, 40_000);
    let tests = mc_instances * MC_NS.len();
    let alpha = FAMILY_ERROR / tests as f64;
    let (mut max_z, mut max_se_ratio, mut min_se_ratio) = (0.0f64, 0.0f64, f64::INFINITY);
    let mut max_used = 0.0f64; // largest |exact - MC| / half-width
    let mut mc_checks = 0usize;
    for inst in 0..mc_instances {
        let size = rng.random_range(3..=12);
        let pi = random_policy(size, &mut rng);
        let r_rm = random_reward(size, &mut rng);
        let r_g: Vec<f64> = (0..size).map(|_| rng.random_range(-1.0..=1.0)).collect();
        for n in MC_NS {
            let dist = best_of_n_distribution(&pi, &r_rm, n).expect("valid instance");
            let exact: f64 = dist.iter().zip(&r_g).map(|(a, b)| a * b).sum();
            let second: f64 = dist
                .iter()
                .zip(&r_g)
                .map(|(a, b)| a * (b - exact).powi(2))
                .sum();
            let range = dist
                .iter()
                .zip(&r_g)
                .filter(|(a, _)| **a > 0.0)
                .map(|(_, b)| (b - exact).abs())
                .fold(0.0, f64::max);
            let se = (second.max(0.0) / draws as f64).sqrt();
            let half = bernstein_half_width(second, range, draws, alpha) + MC_FP_SLACK;
            let mc = best_of_n_monte_carlo_estimate(&pi, &r_rm, &r_g, n, draws, &mut rng)
                .expect("valid instance");
            let diff = (mc.mean - exact).abs();
            mc_checks += 1;
            max_used = max_used.max(diff / half);
            if se > 0.0 {
                max_z = max_z.max(diff / se);
                max_se_ratio = max_se_ratio.max(mc.std_error / se);
                min_se_ratio = min_se_ratio.min(mc.std_error / se);
            }
            tally.upper(diff, half, || {
                format!(
                    "(a) instance {inst}, N = {n}, draws = {draws}: exact {exact:.9} vs MC {:.9} (se {se:.3e}, \
                     Bernstein half-width {half:.3e} at level {alpha:.2e}); pi = {pi:?}, r_rm = {r_rm:?}, r_g = {r_g:?}",
                    mc.mean
                )
            });
        }
    }
    tally.note(format!(
        "(a) {mc_checks} exact-vs-Monte-Carlo comparisons ({mc_instances} instances x N in {MC_NS:?}, \
         {draws} draws each), each a two-sided Bernstein test at level {FAMILY_ERROR:e}/{tests} (family-wise \
         false-alarm probability <= {FAMILY_ERROR:e}, Bonferroni): largest |exact - MC| / half-width = \
         {max_used:.3} (limit 1), largest |exact - MC| / se = {max_z:.3}; sample se / exact se in \
         [{min_se_ratio:.3}, {max_se_ratio:.3}]"
    ));

    // (b) optimality of the accurate reward model.
    let opt_instances = cfg.size(25, 400);
    let competitors = cfg.size(20, 60);
    let mut min_gap = f64::INFINITY; // smallest V_acc - V_rm over comparisons
    let mut max_gap = 0.0f64;
    let (mut comparisons, mut ties, mut exhaustive) = (0usize, 0usize, 0usize);
    for inst in 0..opt_instances {
        let size = rng.random_range(2..=12);
        let pi = random_policy(size, &mut rng);
        let r_g = random_reward(size, &mut rng);
        let shift = 1.0 - r_g.iter().copied().fold(f64::INFINITY, f64::min);
        let rms = if size <= 5 && inst % 2 == 0 {
            exhaustive += 1;
            all_level_assignments(size)
        } else {
            random_competitors(&r_g, competitors, &mut rng)
        };
        for n in OPT_NS {
            let v_acc = best_of_n_value(&pi, &r_g, &r_g, n).expect("valid instance");
            for r_rm in &rms {
                let v_rm = best_of_n_value(&pi, r_rm, &r_g, n).expect("valid instance");
                let gap = v_acc - v_rm;
                comparisons += 1;
                min_gap = min_gap.min(gap);
                max_gap = max_gap.max(gap);
                if gap.abs() <= FP_SLACK {
                    ties += 1;
                }
                tally.lower(v_acc + shift, v_rm + shift - FP_SLACK, || {
                    format!(
                        "(b) instance {inst}, N = {n}: V_acc {v_acc:.15} < V_rm {v_rm:.15}; \
                         pi = {pi:?}, r_g = {r_g:?}, r_rm = {r_rm:?}"
                    )
                });
            }
        }
    }
    tally.note(format!(
        "(b) {comparisons} comparisons ({opt_instances} instances, N in {OPT_NS:?}; {exhaustive} instances \
         with |Y| <= 5 against every weak order of Y, the others against {competitors} random RMs): \
         smallest V_acc - V_rm = {min_gap:.3e} (>= -{FP_SLACK:e} required), largest {max_gap:.3e}; \
         {ties} comparisons equal within {FP_SLACK:e} (N = 1, orders equivalent on the support, ...)"
    ));
    tally.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_assignments_cover_every_weak_order() {
        let all = all_level_assignments(3);
        assert_eq!(all.len(), 27);
        // The 13 weak orders of 3 elements all appear (as order patterns).
        let mut patterns: Vec<Vec<std::cmp::Ordering>> = all
            .iter()
            .map(|l| {
                vec![
                    l[0].total_cmp(&l[1]),
                    l[0].total_cmp(&l[2]),
                    l[1].total_cmp(&l[2]),
                ]
            })
            .collect();
        patterns.sort();
        patterns.dedup();
        assert_eq!(patterns.len(), 13);
    }
}
