//! Rewards and advantages of the policy-gradient stage, on plain numbers.
//!
//! RLOO (the paper's reference code): the reward of a completion is its normalised
//! proxy score minus `beta * sum_t (log pi - log pi_ref)` over its response tokens (a
//! sequence-level KL penalty inside the reward); the advantage is the reward minus the
//! mean reward of the other `k - 1` completions of the same prompt; no whitening.
//! GRPO: the advantage is `(r - mean) / sqrt(var_unbiased + 1e-8)` within the group,
//! with no reward normalisation and the KL term estimated per token by `k3`.

use crate::{Error, Result};
use rmteach::metrics::{sample_variance, VarianceEstimator};
use serde::{Deserialize, Serialize};

/// A group counts as zero-std (its GRPO advantages vanish, it teaches nothing) when the
/// standard deviation of its rewards is at most this. Rewards are normalised (unit std
/// over the initial policy's samples), so the tolerance is in those units.
pub const ZERO_STD_TOLERANCE: f64 = 1e-6;

/// How much the rewards of a rollout batch vary, within and across prompt groups.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GroupSpread {
    /// Mean over groups of the within-group standard deviation (unbiased variance).
    pub group_reward_std: f64,
    /// Share of groups whose standard deviation is at most [`ZERO_STD_TOLERANCE`].
    pub zero_std_groups: f64,
    /// Unbiased variance of all the batch's rewards.
    pub batch_reward_variance: f64,
}

/// The [`GroupSpread`] of `rewards` in groups of `k` consecutive completions (`k >= 2`),
/// with the metrics core's unbiased variance.
pub fn group_spread(rewards: &[f64], k: usize) -> Result<GroupSpread> {
    let var = |x: &[f64]| {
        sample_variance(x, VarianceEstimator::Unbiased)
            .map_err(|e| Error::Input(format!("reward spread: {e}")))
    };
    let stds = groups(rewards, k)?
        .map(|g| var(g).map(f64::sqrt))
        .collect::<Result<Vec<f64>>>()?;
    let n = stds.len().max(1) as f64;
    Ok(GroupSpread {
        group_reward_std: stds.iter().sum::<f64>() / n,
        zero_std_groups: stds.iter().filter(|&&s| s <= ZERO_STD_TOLERANCE).count() as f64 / n,
        batch_reward_variance: var(rewards)?,
    })
}

/// Which groups of `k` consecutive completions prompt selection keeps: the
/// `ceil((1 - q) G)` of the `G` groups with the largest unbiased within-group variance
/// of `scores` (ties: the earlier group), i.e. the groups above the `q`-quantile of the
/// batch's within-prompt variances; at least one group. `q` in `[0, 1)`.
pub fn select_groups(scores: &[f64], k: usize, q: f64) -> Result<Vec<bool>> {
    if !(0.0..1.0).contains(&q) {
        return Err(Error::Input(format!(
            "prompt selection quantile {q} is out of range: use 0 <= q < 1"
        )));
    }
    let vars = groups(scores, k)?
        .map(|g| {
            sample_variance(g, VarianceEstimator::Unbiased)
                .map_err(|e| Error::Input(format!("prompt selection: {e}")))
        })
        .collect::<Result<Vec<f64>>>()?;
    let keep = ((1.0 - q) * vars.len() as f64).ceil().max(1.0) as usize;
    let mut by_var: Vec<usize> = (0..vars.len()).collect();
    by_var.sort_by(|&a, &b| vars[b].total_cmp(&vars[a]).then(a.cmp(&b)));
    let mut kept = vec![false; vars.len()];
    for &g in by_var.iter().take(keep) {
        kept[g] = true;
    }
    Ok(kept)
}

/// `score - beta * kl_sum` for every completion (the RLOO reward).
pub fn kl_penalised(scores: &[f64], kl_sums: &[f64], beta: f64) -> Result<Vec<f64>> {
    if scores.len() != kl_sums.len() {
        return Err(Error::Input(format!(
            "{} scores but {} KL sums",
            scores.len(),
            kl_sums.len()
        )));
    }
    Ok(scores
        .iter()
        .zip(kl_sums)
        .map(|(s, k)| s - beta * k)
        .collect())
}

/// Checks that `rewards` splits into groups of `k >= 2` consecutive completions.
fn groups(rewards: &[f64], k: usize) -> Result<std::slice::Chunks<'_, f64>> {
    if k < 2 {
        return Err(Error::Input(format!(
            "group size k = {k}: RLOO and GRPO need k >= 2"
        )));
    }
    if rewards.len() % k != 0 {
        return Err(Error::Input(format!(
            "{} rewards do not split into groups of k = {k}",
            rewards.len()
        )));
    }
    if let Some(i) = rewards.iter().position(|r| !r.is_finite()) {
        return Err(Error::Input(format!(
            "reward {i} is not finite ({})",
            rewards[i]
        )));
    }
    Ok(rewards.chunks(k))
}

/// Leave-one-out advantages: `r_i - mean_{j != i} r_j` within each group of `k`
/// consecutive completions (the completions of one prompt).
pub fn rloo_advantages(rewards: &[f64], k: usize) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(rewards.len());
    for g in groups(rewards, k)? {
        let sum: f64 = g.iter().sum();
        out.extend(g.iter().map(|r| r - (sum - r) / (k - 1) as f64));
    }
    Ok(out)
}

/// GRPO advantages: `(r_i - mean) / sqrt(var_unbiased + 1e-8)` within each group.
pub fn grpo_advantages(rewards: &[f64], k: usize) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(rewards.len());
    for g in groups(rewards, k)? {
        let mean = g.iter().sum::<f64>() / k as f64;
        let var = g.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (k - 1) as f64;
        let sd = (var + 1e-8).sqrt();
        out.extend(g.iter().map(|r| (r - mean) / sd));
    }
    Ok(out)
}

/// The `k3` estimator of `KL(pi || pi_ref)` from one token's log-probabilities:
/// `exp(log pi_ref - log pi) - (log pi_ref - log pi) - 1` (non-negative, unbiased).
pub fn k3(logp: f64, logp_ref: f64) -> f64 {
    let d = logp_ref - logp;
    d.exp() - d - 1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rloo_with_two_samples_is_half_the_difference_doubled() {
        // k = 2: A_1 = r_1 - r_2, A_2 = r_2 - r_1.
        let a = rloo_advantages(&[1.0, 0.25, -1.0, -1.0], 2).unwrap();
        assert_eq!(a, vec![0.75, -0.75, 0.0, 0.0]);
    }

    #[test]
    fn rloo_advantages_sum_to_zero_per_group() {
        let r = [0.3, -0.2, 0.9, 0.1, 0.5, -0.7];
        let a = rloo_advantages(&r, 3).unwrap();
        for g in a.chunks(3) {
            assert!(g.iter().sum::<f64>().abs() < 1e-12);
        }
        // k/(k-1) (r - mean): leave-one-out is the centred reward scaled.
        let mean = (0.3 - 0.2 + 0.9) / 3.0;
        assert!((a[0] - 1.5 * (0.3 - mean)).abs() < 1e-12);
    }

    #[test]
    fn grpo_advantages_are_standardised() {
        let a = grpo_advantages(&[1.0, 2.0, 3.0, 5.0, 5.0, 5.0], 3).unwrap();
        assert!((a[0] + 1.0).abs() < 1e-6 && a[1].abs() < 1e-12 && (a[2] - 1.0).abs() < 1e-6);
        assert!(
            a[3..].iter().all(|v| v.abs() < 1e-12),
            "equal rewards give zero advantage"
        );
    }

    #[test]
    fn bad_groups_are_errors() {
        assert!(rloo_advantages(&[1.0, 2.0, 3.0], 2).is_err());
        assert!(grpo_advantages(&[1.0, 2.0], 1).is_err());
        assert!(rloo_advantages(&[1.0, f64::NAN], 2).is_err());
        assert!(kl_penalised(&[1.0], &[1.0, 2.0], 0.05).is_err());
    }

    #[test]
    fn k3_is_zero_at_equality_and_positive_otherwise() {
        assert_eq!(k3(-1.2, -1.2), 0.0);
        assert!(k3(-1.0, -2.0) > 0.0 && k3(-2.0, -1.0) > 0.0);
    }

    #[test]
    fn kl_penalty_enters_the_reward() {
        assert_eq!(
            kl_penalised(&[1.0, 0.0], &[2.0, -1.0], 0.05).unwrap(),
            vec![0.9, 0.05]
        );
    }
}

#[cfg(test)]
mod spread_tests {
    use super::*;

    #[test]
    fn group_spread_counts_flat_groups_and_uses_unbiased_variance() {
        // Two groups of 2: one flat, one with values 0 and 2 (unbiased std sqrt(2)).
        let s = group_spread(&[1.0, 1.0, 0.0, 2.0], 2).unwrap();
        assert_eq!(s.zero_std_groups, 0.5);
        assert!((s.group_reward_std - 2f64.sqrt() / 2.0).abs() < 1e-12);
        // All four: mean 1, squares 0 + 0 + 1 + 1 over n - 1 = 3.
        assert!((s.batch_reward_variance - 2.0 / 3.0).abs() < 1e-12);
        assert!(group_spread(&[1.0, 2.0, 3.0], 2).is_err());
    }
}
