//! Per (policy, reward model) statistics, every number from the shared metrics core
//! [`rmteach::metrics`] as the pipeline's `rm_eval` stage computes them, plus the
//! zero-variance share, Proposition 3's relative time and the teacher score.

use crate::analysis::bootstrap::{mean_interval, Interval};
use crate::{Error, Result};
use rmteach::metrics::{
    mean_prompt_variance, off_policy_accuracy, on_policy_accuracy, prompt_on_policy_accuracies,
    prompt_variances, Normalizer, ScoredPair, VarianceEstimator,
};
use serde::{Deserialize, Serialize};

/// A prompt counts as "cannot tell apart" when the standard deviation of the RM's
/// normalised rewards of its samples is at most this (in units of the RM's standard
/// deviation over all the policy's samples): the tolerance of the policy-gradient
/// stage's zero-std groups, whose GRPO advantages vanish.
pub use crate::stages::advantages::ZERO_STD_TOLERANCE;

/// Seed of the bootstrap intervals over prompts.
const BOOTSTRAP_SEED: u64 = 0x7EAC;

/// One reward model's statistics under one policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RmStats {
    /// The RM's name.
    pub name: String,
    /// 1-based rank among the policy's RMs (by teacher score, else reward variance).
    pub rank: usize,
    /// Normalisation constants fitted on the policy's samples (mean, std).
    pub normalizer: Normalizer,
    /// Mean over prompts of the unbiased per-prompt variance of the normalised rewards.
    pub reward_variance: f64,
    /// Its 95% bootstrap interval over prompts.
    pub reward_variance_ci: Option<Interval>,
    /// Agreement with the ground truth over all pairs of a prompt's samples (ties as in
    /// the metrics core), averaged over prompts; `None` without `--gt`.
    pub on_policy_accuracy: Option<f64>,
    /// Its 95% bootstrap interval over prompts.
    pub on_policy_accuracy_ci: Option<Interval>,
    /// Agreement with the preference pairs' labels; `None` without `--prefs`.
    pub off_policy_accuracy: Option<f64>,
    /// Share of prompts whose samples the RM scores (almost) identically (see
    /// [`ZERO_STD_TOLERANCE`]): the zero-std groups that stall GRPO.
    pub zero_variance_prompts: f64,
    /// Proposition 3: `sqrt(max variance / variance)` over the policy's RMs; `None`
    /// (infinite) at zero variance.
    pub relative_time: Option<f64>,
    /// [`TEACHER_SCORE_DEFINITION`](super::TEACHER_SCORE_DEFINITION); `None` without an
    /// accuracy.
    pub teacher_score: Option<f64>,
}

/// The statistics of one RM from its raw scores `raw` of a policy's samples (prompt
/// after prompt, `s` each), the ground truth's raw scores `gt` of the same samples, and
/// the RM's raw scores of the preference pairs `(chosen, rejected)`. `rank` and
/// `relative_time` are filled in by [`rank`].
pub fn rm_stats(
    name: &str,
    raw: &[f64],
    gt: Option<&[f64]>,
    prefs: Option<(&[f64], &[f64])>,
    s: usize,
) -> Result<RmStats> {
    let fail = |e: rmteach::metrics::MetricsError| Error::Input(format!("RM `{name}`: {e}"));
    if s < 2 || raw.is_empty() || raw.len() % s != 0 {
        return Err(Error::Input(format!(
            "RM `{name}`: {} scores do not group into prompts of {s} samples",
            raw.len()
        )));
    }
    let normalizer = Normalizer::fit(raw).map_err(fail)?;
    let z = normalizer.apply_slice(raw);
    let per_prompt = prompt_variances(z.chunks(s), VarianceEstimator::Unbiased).map_err(fail)?;
    let reward_variance =
        mean_prompt_variance(z.chunks(s), VarianceEstimator::Unbiased).map_err(fail)?;
    let tol = ZERO_STD_TOLERANCE * ZERO_STD_TOLERANCE;
    let zero = per_prompt.iter().filter(|&&v| v <= tol).count();
    let (on, on_ci) = match gt {
        Some(g) => {
            if g.len() != raw.len() {
                return Err(Error::Input(format!(
                    "RM `{name}`: {} ground-truth scores for {} samples",
                    g.len(),
                    raw.len()
                )));
            }
            let per = prompt_on_policy_accuracies(z.chunks(s).zip(g.chunks(s))).map_err(fail)?;
            let all = on_policy_accuracy(z.chunks(s).zip(g.chunks(s))).map_err(fail)?;
            (Some(all), mean_interval(&per, BOOTSTRAP_SEED))
        }
        None => (None, None),
    };
    let off = match prefs {
        Some((c, r)) if !c.is_empty() => {
            let pairs: Vec<ScoredPair> = c
                .iter()
                .zip(r)
                .map(|(&c, &r)| ScoredPair {
                    rm_chosen: c,
                    rm_rejected: r,
                    g_chosen: 1.0,
                    g_rejected: 0.0,
                })
                .collect();
            Some(off_policy_accuracy(&pairs).map_err(fail)?)
        }
        _ => None,
    };
    let accuracy = on.or(off);
    Ok(RmStats {
        name: name.to_string(),
        rank: 0,
        normalizer,
        reward_variance,
        reward_variance_ci: mean_interval(&per_prompt, BOOTSTRAP_SEED),
        on_policy_accuracy: on,
        on_policy_accuracy_ci: on_ci,
        off_policy_accuracy: off,
        zero_variance_prompts: zero as f64 / per_prompt.len() as f64,
        relative_time: None,
        teacher_score: accuracy.map(|a| teacher_score(a, reward_variance)),
    })
}

/// `max(0, 2 * accuracy - 1) * sqrt(reward_variance)`.
pub fn teacher_score(accuracy: f64, reward_variance: f64) -> f64 {
    (2.0 * accuracy - 1.0).max(0.0) * reward_variance.max(0.0).sqrt()
}

/// Fills in Proposition 3's relative times and the ranks (teacher score, else
/// reward variance; ties by name), and sorts `rms` best first.
pub fn rank(rms: &mut [RmStats]) {
    let max_var = rms.iter().map(|r| r.reward_variance).fold(0.0, f64::max);
    for r in rms.iter_mut() {
        r.relative_time = (r.reward_variance > 0.0).then(|| (max_var / r.reward_variance).sqrt());
    }
    let key = |r: &RmStats| r.teacher_score.unwrap_or(r.reward_variance);
    rms.sort_by(|a, b| key(b).total_cmp(&key(a)).then(a.name.cmp(&b.name)));
    for (i, r) in rms.iter_mut().enumerate() {
        r.rank = i + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_constant_rm_has_zero_variance_everywhere_and_scores_zero() {
        let raw = vec![0.3; 6];
        let gt = [0.0, 1.0, 2.0, 0.0, 1.0, 2.0];
        let s = rm_stats("flat", &raw, Some(&gt), None, 3).unwrap();
        assert_eq!(s.zero_variance_prompts, 1.0);
        assert_eq!(s.reward_variance, 0.0);
        assert_eq!(s.teacher_score, Some(0.0));
    }

    #[test]
    fn accuracy_and_variance_come_from_the_core() {
        let raw = [0.0, 2.0, 1.0, 5.0, 4.0, 6.0];
        let gt = [0.0, 1.0, 2.0, 0.0, 1.0, 2.0];
        let s = rm_stats("rm", &raw, Some(&gt), Some((&[1.0, 0.0], &[0.0, 1.0])), 3).unwrap();
        let n = Normalizer::fit(&raw).unwrap();
        let z = n.apply_slice(&raw);
        let on = on_policy_accuracy(z.chunks(3).zip(gt.chunks(3))).unwrap();
        assert_eq!(s.on_policy_accuracy, Some(on));
        assert_eq!(s.off_policy_accuracy, Some(0.5));
        let v = mean_prompt_variance(z.chunks(3), VarianceEstimator::Unbiased).unwrap();
        assert_eq!(s.reward_variance, v);
        assert_eq!(s.teacher_score, Some(teacher_score(on, v)));
        assert_eq!(s.zero_variance_prompts, 0.0);
    }

    #[test]
    fn ranking_puts_the_higher_score_first_and_reads_proposition_3() {
        let mk = |name: &str, var: f64, score: f64| RmStats {
            name: name.into(),
            rank: 0,
            normalizer: Normalizer::new(0.0, 1.0).unwrap(),
            reward_variance: var,
            reward_variance_ci: None,
            on_policy_accuracy: None,
            on_policy_accuracy_ci: None,
            off_policy_accuracy: None,
            zero_variance_prompts: 0.0,
            relative_time: None,
            teacher_score: Some(score),
        };
        let mut v = vec![mk("a", 0.25, 0.1), mk("b", 1.0, 0.3), mk("c", 0.0, 0.0)];
        rank(&mut v);
        let names: Vec<&str> = v.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["b", "a", "c"]);
        assert_eq!(v[1].relative_time, Some(2.0));
        assert_eq!(v[2].relative_time, None);
        assert_eq!(v[0].rank, 1);
    }
}
