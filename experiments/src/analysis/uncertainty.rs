//! How sure the tables are: reward increases at one epoch over a common set of seeds,
//! and bootstrap replicates of them and of the Table 1 properties.
//!
//! One replicate resamples, with replacement and shared by every reward (so rewards
//! are compared on the same draw): the evaluation prompts, the seeds (among those
//! every compared reward has at the epoch), and, independently, the Table 1
//! (normalisation) prompts. A reward's increase in a replicate is the mean over the
//! drawn seeds of the mean over the drawn prompts of (per-prompt mean at the epoch
//! minus per-prompt mean at epoch 0). Replicates need the per-prompt values the
//! pipeline logs (`proxy_per_prompt`/`gt_per_prompt` in `eval.jsonl`, `per_prompt` in
//! `rm_eval.json`); without them only the point estimates exist.

use super::bootstrap::{mean_at, Resampler, BOOTSTRAP_REPLICATES};
use super::load::RewardColumn;
use super::load::RunData;
use crate::records::PerPrompt;

/// Seed of the increase bootstrap.
const INCREASE_SEED: u64 = 0x1AC5EA5E;
/// Seed of the Table 1 property bootstrap.
const PROPERTY_SEED: u64 = 0x9809E77;

/// Increases of several rewards at one epoch over their common seeds.
#[derive(Debug, Clone, PartialEq)]
pub struct Increases {
    /// The rewards (indices into `rm_eval.rewards`) compared.
    pub rewards: Vec<usize>,
    /// Seeds every one of them reached the epoch with.
    pub seeds: Vec<u64>,
    /// Seeds some but not all of them have at the epoch (left out).
    pub dropped_seeds: Vec<u64>,
    /// Per reward: mean (over `seeds`) proxy increase.
    pub proxy: Vec<f64>,
    /// Per reward: mean (over `seeds`) ground-truth increase.
    pub ground_truth: Vec<f64>,
    /// Per replicate, per reward: (proxy, ground-truth) increase; `None` when a
    /// reward's seeds lack per-prompt values.
    pub replicates: Option<Vec<Vec<(f64, f64)>>>,
}

/// The increases at `epoch` of the rewards `rewards` (indices into
/// `data.rewards`) over the seeds all of them have at the epoch, with
/// bootstrap replicates when the logs allow.
pub fn increases(data: &RunData, rewards: &[usize], epoch: u32) -> Increases {
    let has = |i: usize, s: u64| {
        data.seeds[i]
            .iter()
            .any(|r| r.seed == s && r.at(epoch).is_some() && r.at(0).is_some())
    };
    let mut all: Vec<u64> = rewards
        .iter()
        .flat_map(|&i| data.seeds[i].iter().map(|s| s.seed))
        .collect();
    all.sort_unstable();
    all.dedup();
    let (seeds, dropped_seeds): (Vec<u64>, Vec<u64>) = all
        .into_iter()
        .filter(|&s| rewards.iter().any(|&i| has(i, s)))
        .partition(|&s| rewards.iter().all(|&i| has(i, s)));
    let runs = |i: usize| -> Vec<&super::load::SeedRun> {
        seeds
            .iter()
            .filter_map(|s| data.seeds[i].iter().find(|r| r.seed == *s))
            .collect()
    };
    let (mut proxy, mut ground_truth) = (Vec::new(), Vec::new());
    for &i in rewards {
        let diffs: Vec<(f64, f64)> = runs(i)
            .iter()
            .filter_map(|r| {
                let (e, b) = (r.at(epoch)?, r.at(0)?);
                Some((
                    e.proxy.mean - b.proxy.mean,
                    e.ground_truth.mean - b.ground_truth.mean,
                ))
            })
            .collect();
        let n = diffs.len().max(1) as f64;
        proxy.push(diffs.iter().map(|d| d.0).sum::<f64>() / n);
        ground_truth.push(diffs.iter().map(|d| d.1).sum::<f64>() / n);
    }
    // Per reward, per seed: per-prompt (proxy, gt) differences from epoch 0.
    let per_prompt: Option<Vec<Vec<PromptDiffs>>> = rewards
        .iter()
        .map(|&i| {
            runs(i)
                .iter()
                .map(|r| {
                    let (e, b) = (r.prompt_means_at(epoch)?, r.prompt_means_at(0)?);
                    let ok = e.proxy_per_prompt.len() == b.proxy_per_prompt.len();
                    ok.then(|| {
                        (
                            diff(&e.proxy_per_prompt, &b.proxy_per_prompt),
                            diff(&e.gt_per_prompt, &b.gt_per_prompt),
                        )
                    })
                })
                .collect::<Option<Vec<_>>>()
        })
        .collect();
    let prompts = per_prompt
        .as_ref()
        .and_then(|p| p.first()?.first().map(|s| s.0.len()));
    let same_prompts = per_prompt.as_ref().is_some_and(|p| {
        p.iter()
            .flatten()
            .all(|s| Some(s.0.len()) == prompts && Some(s.1.len()) == prompts)
    });
    let replicates = match (per_prompt, prompts) {
        (Some(pp), Some(n)) if same_prompts && n > 0 && !seeds.is_empty() => {
            let mut rs = Resampler::new(INCREASE_SEED);
            Some(
                (0..BOOTSTRAP_REPLICATES)
                    .map(|_| {
                        let (p_idx, s_idx) = (rs.indices(n), rs.indices(seeds.len()));
                        pp.iter()
                            .map(|by_seed| {
                                let k = s_idx.len() as f64;
                                let sum = s_idx.iter().fold((0.0, 0.0), |acc, &s| {
                                    let (p, g) = &by_seed[s];
                                    (acc.0 + mean_at(p, &p_idx), acc.1 + mean_at(g, &p_idx))
                                });
                                (sum.0 / k, sum.1 / k)
                            })
                            .collect()
                    })
                    .collect(),
            )
        }
        _ => None,
    };
    Increases {
        rewards: rewards.to_vec(),
        seeds,
        dropped_seeds,
        proxy,
        ground_truth,
        replicates,
    }
}

/// One seed's per-prompt (proxy, ground-truth) differences from epoch 0.
type PromptDiffs = (Vec<f64>, Vec<f64>);

fn diff(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x - y).collect()
}

/// Table 1 numbers of one reward in one replicate: variance, on-, off-policy accuracy.
pub type Properties = [f64; 3];

/// Per replicate, per reward in `rewards`: the Table 1 numbers over resampled Table 1
/// prompts (one draw shared by the rewards); `None` when a reward lacks per-prompt
/// values or their lengths differ.
pub fn property_replicates(rewards: &[&RewardColumn]) -> Option<Vec<Vec<Properties>>> {
    let pp: Vec<&PerPrompt> = rewards
        .iter()
        .map(|r| r.entry.per_prompt.as_ref())
        .collect::<Option<_>>()?;
    // One off-policy pair per prompt: a prompt is drawn with all three of its values.
    let n = pp.first()?.reward_variance.len();
    let consistent = pp.iter().all(|p| {
        p.reward_variance.len() == n
            && p.on_policy_accuracy.len() == n
            && p.off_policy_accuracy.len() == n
    });
    if !consistent || n == 0 {
        return None;
    }
    let mut rs = Resampler::new(PROPERTY_SEED);
    Some(
        (0..BOOTSTRAP_REPLICATES)
            .map(|_| {
                let idx = rs.indices(n);
                pp.iter()
                    .map(|p| {
                        [
                            mean_at(&p.reward_variance, &idx),
                            mean_at(&p.on_policy_accuracy, &idx),
                            mean_at(&p.off_policy_accuracy, &idx),
                        ]
                    })
                    .collect()
            })
            .collect(),
    )
}
