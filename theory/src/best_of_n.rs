//! Best-of-N sampling (Proposition 1): exact output distribution, its expected
//! ground-truth reward, and a Monte Carlo estimate of the same quantity.
//!
//! Best-of-N draws `N` iid outputs `y_1, ..., y_N ~ pi` and returns the one with the
//! highest proxy reward `r_RM`.
//!
//! # Tie rule
//!
//! When several draws share the maximal `r_RM` value, the one **drawn first** among
//! them is returned. Outputs with equal `r_RM` form a *block* `B`; the event "the
//! maximum lies in `B`" depends on the draws only through the blocks they land in,
//! and given that block sequence the identities of the draws inside `B` are iid
//! `pi(.|B)`. The first of them is therefore `pi(.|B)`-distributed: the tie rule
//! splits a block's probability **in proportion to probability mass**. (The same holds
//! for any rule that picks among the tied *draws* by position alone, e.g. uniformly at
//! random among the tied draws; it does not hold for a rule that picks uniformly among
//! the tied *distinct outputs*.)
//!
//! # Exact distribution
//!
//! Sort outputs by `r_RM` and let `F(<B)` and `F(<=B)` be the probability of the
//! blocks strictly below and up to `B`. Then
//! `P(max in B) = F(<=B)^N - F(<B)^N` and
//! `P(BoN = y) = P(max in B(y)) * pi(y) / pi(B(y))`.
//! The difference of powers is evaluated as
//! `-F(<=B)^N * expm1(N * ln_1p(-pi(B) / F(<=B)))`, which keeps full relative accuracy
//! when both powers are close to 1 (large `N`).

use rand::Rng;

use crate::{Result, TheoryError};
use rmteach::metrics::PROBABILITY_SUM_TOLERANCE;

/// Checks `pi` (finite, `>= 0`, sums to 1) and returns its total.
fn check_pi(pi: &[f64]) -> Result<f64> {
    if pi.is_empty() {
        return Err(TheoryError::invalid("pi", "needs at least one output"));
    }
    if let Some(i) = pi.iter().position(|p| !(p.is_finite() && *p >= 0.0)) {
        return Err(TheoryError::invalid(
            format!("pi[{i}]"),
            format!("= {} must be a finite probability >= 0", pi[i]),
        ));
    }
    let total: f64 = pi.iter().sum();
    if (total - 1.0).abs() > PROBABILITY_SUM_TOLERANCE {
        return Err(TheoryError::invalid(
            "pi",
            format!("sums to {total}, not to 1 (tolerance {PROBABILITY_SUM_TOLERANCE:e})"),
        ));
    }
    Ok(total)
}

/// Checks a reward vector against `pi`'s length.
fn check_reward(field: &str, r: &[f64], len: usize) -> Result<()> {
    if r.len() != len {
        return Err(TheoryError::invalid(
            field,
            format!("has {} entries, pi has {len}", r.len()),
        ));
    }
    if let Some(i) = r.iter().position(|v| !v.is_finite()) {
        return Err(TheoryError::invalid(
            format!("{field}[{i}]"),
            "is not a finite number",
        ));
    }
    Ok(())
}

fn check_n(n: u32) -> Result<()> {
    if n == 0 {
        return Err(TheoryError::invalid("n", "Best-of-N needs N >= 1 draws"));
    }
    Ok(())
}

/// `a^N - b^N` for `0 <= b <= a <= 1`, as `a^N * (1 - (b/a)^N)
/// = -a^N * expm1(N * ln_1p(-(a-b)/a))`: accurate when both powers are close to 1, and
/// free of overflow (every factor lies in `[0, 1]`).
fn pow_diff(a: f64, b: f64, n: u32) -> f64 {
    if a <= 0.0 {
        return 0.0;
    }
    let d = (a - b).clamp(0.0, a);
    -a.powi(n as i32) * (n as f64 * (-d / a).ln_1p()).exp_m1()
}

/// The exact distribution of the output Best-of-`n` returns, under the tie rule "the
/// first drawn among the tied maxima" (mass-proportional within a tied block; see the
/// module documentation).
///
/// # Errors
/// [`TheoryError::InvalidInput`] naming `pi`, `r_rm` or `n` when `pi` is empty, not a
/// probability vector (entries finite and `>= 0`, summing to 1 within
/// [`PROBABILITY_SUM_TOLERANCE`]), `r_rm` has another length or a non-finite entry, or
/// `n == 0`.
pub fn best_of_n_distribution(pi: &[f64], r_rm: &[f64], n: u32) -> Result<Vec<f64>> {
    let total = check_pi(pi)?;
    check_reward("r_rm", r_rm, pi.len())?;
    check_n(n)?;
    let mut order: Vec<usize> = (0..pi.len()).collect();
    order.sort_by(|&a, &b| r_rm[a].total_cmp(&r_rm[b]));
    let mut out = vec![0.0; pi.len()];
    let mut below = 0.0; // mass of the blocks strictly below, unnormalised
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && r_rm[order[end]] == r_rm[order[start]] {
            end += 1;
        }
        let block = &order[start..end];
        let mass: f64 = block.iter().map(|&y| pi[y]).sum();
        let f_below = (below / total).min(1.0);
        let f_upto = if end == order.len() {
            1.0
        } else {
            ((below + mass) / total).min(1.0)
        };
        let p_block = pow_diff(f_upto, f_below, n);
        if mass > 0.0 {
            for &y in block {
                out[y] = p_block * pi[y] / mass;
            }
        }
        below += mass;
        start = end;
    }
    Ok(out)
}

/// `E[r_G]` of the output Best-of-`n` returns (exact, same tie rule as
/// [`best_of_n_distribution`]).
///
/// # Errors
/// As [`best_of_n_distribution`], and `r_g` of another length or with a non-finite entry.
pub fn best_of_n_value(pi: &[f64], r_rm: &[f64], r_g: &[f64], n: u32) -> Result<f64> {
    check_reward("r_g", r_g, pi.len())?;
    let p = best_of_n_distribution(pi, r_rm, n)?;
    Ok(p.iter().zip(r_g).map(|(a, b)| a * b).sum())
}

/// A Monte Carlo estimate of `E[r_G]` under Best-of-N.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MonteCarloEstimate {
    /// The sample mean of `r_G` over the simulated Best-of-N outputs.
    pub mean: f64,
    /// Its standard error, `sample sd / sqrt(draws)` (sample sd with `draws - 1`).
    pub std_error: f64,
    /// Number of simulated Best-of-N outputs.
    pub draws: usize,
}

/// Simulates `draws` runs of Best-of-`n` (each drawing `n` iid outputs from `pi` and
/// returning the first drawn among those with the largest `r_RM`), and returns the mean
/// and standard error of `r_G` of the returned outputs.
///
/// # Errors
/// As [`best_of_n_value`], and `draws == 0`.
pub fn best_of_n_monte_carlo_estimate<R: Rng + ?Sized>(
    pi: &[f64],
    r_rm: &[f64],
    r_g: &[f64],
    n: u32,
    draws: usize,
    rng: &mut R,
) -> Result<MonteCarloEstimate> {
    let total = check_pi(pi)?;
    check_reward("r_rm", r_rm, pi.len())?;
    check_reward("r_g", r_g, pi.len())?;
    check_n(n)?;
    if draws == 0 {
        return Err(TheoryError::invalid(
            "draws",
            "needs at least one Monte Carlo draw",
        ));
    }
    // Inverse-CDF sampling over the cumulative distribution; outputs with zero mass are
    // never returned (strict comparison below skips their flat CDF steps).
    let mut cdf = Vec::with_capacity(pi.len());
    let mut acc = 0.0;
    for p in pi {
        acc += p / total;
        cdf.push(acc);
    }
    let last_positive = pi.iter().rposition(|p| *p > 0.0).expect("pi sums to 1");
    let sample = |u: f64| -> usize { cdf.partition_point(|c| *c <= u).min(last_positive) };
    let (mut sum, mut sum_sq) = (0.0, 0.0);
    let mut first: Option<f64> = None;
    for _ in 0..draws {
        let mut best = sample(rng.random::<f64>());
        for _ in 1..n {
            let y = sample(rng.random::<f64>());
            // Strictly greater: a later draw tied with the current maximum loses.
            if r_rm[y] > r_rm[best] {
                best = y;
            }
        }
        // Shifted sums (by the first value) keep the variance free of cancellation.
        let shift = *first.get_or_insert(r_g[best]);
        let v = r_g[best] - shift;
        sum += v;
        sum_sq += v * v;
    }
    let d = draws as f64;
    let shift = first.unwrap_or(0.0);
    let mean_shifted = sum / d;
    let var = if draws > 1 {
        ((sum_sq - d * mean_shifted * mean_shifted) / (d - 1.0)).max(0.0)
    } else {
        0.0
    };
    Ok(MonteCarloEstimate {
        mean: shift + mean_shifted,
        std_error: (var / d).sqrt(),
        draws,
    })
}

/// A Monte Carlo estimate of [`best_of_n_value`] from `draws` simulated runs (see
/// [`best_of_n_monte_carlo_estimate`], which also returns the standard error).
///
/// # Errors
/// As [`best_of_n_monte_carlo_estimate`].
pub fn best_of_n_monte_carlo<R: Rng + ?Sized>(
    pi: &[f64],
    r_rm: &[f64],
    r_g: &[f64],
    n: u32,
    draws: usize,
    rng: &mut R,
) -> Result<f64> {
    best_of_n_monte_carlo_estimate(pi, r_rm, r_g, n, draws, rng).map(|e| e.mean)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn n_one_is_the_policy_itself() {
        let pi = [0.1, 0.2, 0.3, 0.4];
        let r_rm = [0.5, -0.2, 0.5, 0.9];
        let r_g = [1.0, -1.0, 0.25, 0.0];
        let p = best_of_n_distribution(&pi, &r_rm, 1).unwrap();
        for (a, b) in p.iter().zip(&pi) {
            assert!(close(*a, *b, 1e-15), "{p:?}");
        }
        let v = best_of_n_value(&pi, &r_rm, &r_g, 1).unwrap();
        let e: f64 = pi.iter().zip(&r_g).map(|(a, b)| a * b).sum();
        assert!(close(v, e, 1e-15));
    }

    #[test]
    fn distribution_sums_to_one() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for n in [1, 2, 3, 7, 50, 1000, 100_000] {
            for size in [1, 2, 5, 12] {
                let w: Vec<f64> = (0..size).map(|_| rng.random::<f64>()).collect();
                let s: f64 = w.iter().sum();
                let pi: Vec<f64> = w.iter().map(|v| v / s).collect();
                let r: Vec<f64> = (0..size)
                    .map(|_| (rng.random_range(0..4) as f64) / 4.0)
                    .collect();
                let p = best_of_n_distribution(&pi, &r, n).unwrap();
                let total: f64 = p.iter().sum();
                assert!(close(total, 1.0, 1e-12), "n={n} size={size}: {total}");
                assert!(p.iter().all(|v| *v >= 0.0));
            }
        }
    }

    #[test]
    fn two_outputs_closed_form() {
        // P(best) = 1 - (1-p)^N with p the mass of the better output.
        let pi = [0.7, 0.3];
        let r_rm = [0.0, 1.0];
        for n in [1u32, 2, 5, 20] {
            let p = best_of_n_distribution(&pi, &r_rm, n).unwrap();
            assert!(close(p[1], 1.0 - 0.7f64.powi(n as i32), 1e-15));
        }
    }

    #[test]
    fn large_n_concentrates_on_the_argmax() {
        let pi = [0.5, 0.3, 0.15, 0.05];
        let r_rm = [0.0, 0.2, -0.3, 0.8];
        let p = best_of_n_distribution(&pi, &r_rm, 2000).unwrap();
        assert!(1.0 - p[3] <= 1e-40, "{p:?}");
        // 1 - 0.95^2000: the mass below the argmax vanishes geometrically.
        assert!(p[1] > 0.0 && p[1] < 1e-40);
    }

    #[test]
    fn ties_split_by_mass() {
        let pi = [0.4, 0.1, 0.3, 0.2];
        let r_rm = [1.0, 1.0, 0.0, 1.0];
        for n in [1u32, 3, 10] {
            let p = best_of_n_distribution(&pi, &r_rm, n).unwrap();
            let top = 1.0 - 0.3f64.powi(n as i32);
            assert!(close(p[0], top * 0.4 / 0.7, 1e-15));
            assert!(close(p[1], top * 0.1 / 0.7, 1e-15));
            assert!(close(p[3], top * 0.2 / 0.7, 1e-15));
            assert!(close(p[2], 0.3f64.powi(n as i32), 1e-15));
        }
        // Monte Carlo with the "first drawn" rule agrees with the mass split.
        let r_g = [1.0, -1.0, 0.0, 0.5];
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let exact = best_of_n_value(&pi, &r_rm, &r_g, 3).unwrap();
        let mc = best_of_n_monte_carlo_estimate(&pi, &r_rm, &r_g, 3, 200_000, &mut rng).unwrap();
        assert!(
            (mc.mean - exact).abs() < 4.0 * mc.std_error,
            "{mc:?} vs {exact}"
        );
        let m = best_of_n_monte_carlo(&pi, &r_rm, &r_g, 3, 10, &mut rng).unwrap();
        assert!((-1.0..=1.0).contains(&m));
    }

    #[test]
    fn zero_mass_outputs_are_never_returned() {
        let pi = [0.0, 0.5, 0.0, 0.5];
        let r_rm = [9.0, 0.0, 5.0, 1.0];
        let p = best_of_n_distribution(&pi, &r_rm, 4).unwrap();
        assert_eq!(p[0], 0.0);
        assert_eq!(p[2], 0.0);
        assert!(close(p[3], 1.0 - 0.5f64.powi(4), 1e-15));
        let r_g = [100.0, 0.0, 100.0, 1.0];
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mc = best_of_n_monte_carlo(&pi, &r_rm, &r_g, 4, 5000, &mut rng).unwrap();
        assert!(mc <= 1.0);
    }

    #[test]
    fn invalid_inputs_name_the_field() {
        let msg = |e: TheoryError| e.to_string();
        assert!(msg(best_of_n_distribution(&[], &[], 1).unwrap_err()).contains("`pi`"));
        assert!(
            msg(best_of_n_distribution(&[0.5, 0.6], &[0.0, 1.0], 1).unwrap_err()).contains("`pi`")
        );
        assert!(
            msg(best_of_n_distribution(&[1.5, -0.5], &[0.0, 1.0], 1).unwrap_err())
                .contains("`pi[1]`")
        );
        assert!(
            msg(best_of_n_distribution(&[0.5, 0.5], &[0.0], 1).unwrap_err()).contains("`r_rm`")
        );
        assert!(
            msg(best_of_n_distribution(&[0.5, 0.5], &[0.0, f64::NAN], 1).unwrap_err())
                .contains("`r_rm[1]`")
        );
        assert!(
            msg(best_of_n_distribution(&[0.5, 0.5], &[0.0, 1.0], 0).unwrap_err()).contains("`n`")
        );
        assert!(
            msg(best_of_n_value(&[0.5, 0.5], &[0.0, 1.0], &[1.0], 2).unwrap_err())
                .contains("`r_g`")
        );
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let e = best_of_n_monte_carlo(&[0.5, 0.5], &[0.0, 1.0], &[0.0, 1.0], 2, 0, &mut rng)
            .unwrap_err();
        assert!(msg(e).contains("`draws`"));
    }
}
