//! The reward-model evaluation stage (`rm_eval/`, the paper's Table 1), computed from
//! the normalisation stage's samples and raw scores with the shared core
//! [`rmteach::metrics`]:
//! - reward variance: per-prompt unbiased variance of the normalised rewards, averaged;
//! - on-policy accuracy: agreement with the ground truth over all pairs of a prompt's
//!   samples (ties agree with ties), averaged over prompts;
//! - off-policy accuracy: the same on each prompt's dataset pair.
//!
//! `rm_eval.json` ([`RmEvalTable`], documented in [`crate::records::rm_eval`]): `columns` (RMs 100%..0%, `gt-low-variance`, `gt`),
//! `rows` (`Reward Variance`, `On-Policy Acc.`, `Off-Policy Acc.`, one value per
//! column), `rewards` (the same numbers keyed by reward name, with each one's 95%
//! bootstrap interval over prompts and its per-prompt values), and `low_variance`
//! (which prompts the low-variance reward scales, the realised fraction, its
//! normalisation, and its reward variance under both orders).

use super::normalize::{load_samples, load_scores, RawScores};
use super::stage::{Runtime, Stage};
use crate::analysis::bootstrap::mean_interval;
pub use crate::records::{
    LowVarianceOrder, LowVarianceRecord, RmEvalEntry, RmEvalRow, RmEvalTable, GROUND_TRUTH,
    LOW_VARIANCE,
};
use crate::records::{PerPrompt, Table1Intervals};
use crate::rundir::{write_json, StageDir};
use crate::{Error, Result};
use rmteach::metrics::{
    mean_prompt_variance, off_policy_accuracy, on_policy_accuracy, prompt_on_policy_accuracies,
    prompt_variances, Normalizer, ScoredPair, VarianceEstimator,
};
use std::collections::{BTreeMap, BTreeSet};

/// Seed of the Table 1 bootstrap.
const TABLE1_BOOTSTRAP_SEED: u64 = 0x7AB1E1;

/// The low-variance reward's scaled prompts (by RLHF index), factor and order.
#[derive(Debug, Clone, PartialEq)]
pub struct LowVarianceSpec {
    /// Keys (RLHF prompt indices) whose normalised ground truth is scaled.
    pub keys: BTreeSet<usize>,
    /// The factor (0.001).
    pub scale: f64,
    /// Where the normalisation is fitted.
    pub order: LowVarianceOrder,
    /// RLHF prompt rows in all.
    pub rlhf_prompts: usize,
}

impl LowVarianceSpec {
    /// The factor on the prompt keyed `key`.
    pub fn factor(&self, key: usize) -> f64 {
        if self.keys.contains(&key) {
            self.scale
        } else {
            1.0
        }
    }

    /// The normalisation of the low-variance reward under `order`, from the raw
    /// ground truth of the normalisation samples (`row_keys`: each row's prompt key)
    /// and the ground truth's own normaliser: `normalize_then_scale` uses the latter;
    /// `scale_then_normalize` fits on the raw rewards with the chosen prompts' already
    /// multiplied by `scale` (the authors' code).
    pub fn normalizer(
        &self,
        order: LowVarianceOrder,
        gt_raw: &[f64],
        row_keys: &[usize],
        gt: Normalizer,
    ) -> Result<Normalizer> {
        match order {
            LowVarianceOrder::NormalizeThenScale => Ok(gt),
            LowVarianceOrder::ScaleThenNormalize => {
                if gt_raw.len() != row_keys.len() {
                    return Err(Error::Input(format!(
                        "low-variance normaliser: {} scores for {} keys",
                        gt_raw.len(),
                        row_keys.len()
                    )));
                }
                let mixed: Vec<f64> = gt_raw
                    .iter()
                    .zip(row_keys)
                    .map(|(&r, &k)| r * self.factor(k))
                    .collect();
                Normalizer::fit(&mixed)
                    .map_err(|e| Error::Input(format!("low-variance normaliser: {e}")))
            }
        }
    }
}

/// The raw reward behind a training reward (`gt-low-variance` is the ground truth).
pub fn raw_reward(name: &str) -> &str {
    if name == LOW_VARIANCE {
        GROUND_TRUTH
    } else {
        name
    }
}

/// The reward-model evaluation stage `rm_eval`, over the normalisation stage `norm`.
/// Run it with [`super::run`].
pub struct RmEval<'a> {
    /// The complete normalisation stage.
    pub norm: &'a StageDir,
    /// The table's columns (reward names).
    pub columns: &'a [String],
    /// One normaliser per column (`gt-low-variance` included, see
    /// [`LowVarianceSpec::normalizer`]).
    pub normalizers: &'a BTreeMap<String, Normalizer>,
    /// The low-variance reward's prompts and scale.
    pub low_variance: &'a LowVarianceSpec,
    /// The RLHF indices of the normalisation prompts.
    pub prompt_keys: &'a [usize],
    /// Samples per normalisation prompt.
    pub samples_per_prompt: usize,
}

impl Stage for RmEval<'_> {
    type Summary = RmEvalTable;

    fn name(&self) -> String {
        "rm_eval".into()
    }

    fn run(self, stage: &StageDir, _: &Runtime) -> Result<RmEvalTable> {
        rm_eval(stage, self)
    }
}

/// The work of [`RmEval`].
fn rm_eval(stage: &StageDir, input: RmEval<'_>) -> Result<RmEvalTable> {
    let RmEval {
        norm,
        columns,
        normalizers,
        low_variance,
        prompt_keys,
        samples_per_prompt,
    } = input;
    let rows = load_samples(norm)?;
    let s = samples_per_prompt;
    if s < 2 || rows.is_empty() || rows.len() % s != 0 || rows.len() / s != prompt_keys.len() {
        return Err(Error::Input(format!(
            "rm_eval: {} samples do not group into {} prompts of {s}",
            rows.len(),
            prompt_keys.len()
        )));
    }
    let row_keys: Vec<usize> = prompt_keys
        .iter()
        .flat_map(|&k| std::iter::repeat_n(k, s))
        .collect();
    let gt = load_scores(norm, GROUND_TRUTH)?;
    let gt_norm = normalized(normalizers, GROUND_TRUTH)?;
    let gt_samples = gt_norm.apply_slice(&gt.samples);
    let factor = |name: &str, key: usize| {
        if name == LOW_VARIANCE {
            low_variance.factor(key)
        } else {
            1.0
        }
    };
    let column = |name: &str, n: Normalizer| -> Result<RmEvalEntry> {
        let raw = load_scores(norm, raw_reward(name))?;
        let apply = |scores: &[f64], keys: &[usize]| -> Vec<f64> {
            scores
                .iter()
                .zip(keys)
                .map(|(&r, &k)| n.apply(r) * factor(name, k))
                .collect()
        };
        let z = apply(&raw.samples, &row_keys);
        let chosen = apply(&raw.pairs_chosen, prompt_keys);
        let rejected = apply(&raw.pairs_rejected, prompt_keys);
        entry(&z, &gt_samples, (&chosen, &rejected), &gt, s)
            .map_err(|e| Error::Input(format!("rm_eval: reward `{name}`: {e}")))
    };
    let mut rewards = BTreeMap::new();
    for name in columns {
        rewards.insert(name.clone(), column(name, normalized(normalizers, name)?)?);
    }
    let low = if columns.iter().any(|c| c == LOW_VARIANCE) {
        let mut by_order = BTreeMap::new();
        for order in LowVarianceOrder::ALL {
            let n = low_variance.normalizer(order, &gt.samples, &row_keys, gt_norm)?;
            by_order.insert(
                order.name().to_string(),
                column(LOW_VARIANCE, n)?.reward_variance,
            );
        }
        let table1_scaled = prompt_keys
            .iter()
            .filter(|k| low_variance.keys.contains(k))
            .count();
        Some(LowVarianceRecord {
            order: low_variance.order,
            scale: low_variance.scale,
            scaled_count: low_variance.keys.len(),
            rlhf_prompts: low_variance.rlhf_prompts,
            scaled_fraction: low_variance.keys.len() as f64
                / low_variance.rlhf_prompts.max(1) as f64,
            table1_scaled_count: table1_scaled,
            table1_scaled_fraction: table1_scaled as f64 / prompt_keys.len() as f64,
            normalizer: normalized(normalizers, LOW_VARIANCE)?,
            reward_variance_by_order: by_order,
        })
    } else {
        None
    };
    let pick = |f: fn(&RmEvalEntry) -> f64| columns.iter().map(|c| f(&rewards[c])).collect();
    let table = RmEvalTable {
        columns: columns.to_vec(),
        rows: vec![
            RmEvalRow {
                metric: "Reward Variance".into(),
                values: pick(|e| e.reward_variance),
            },
            RmEvalRow {
                metric: "On-Policy Acc.".into(),
                values: pick(|e| e.on_policy_accuracy),
            },
            RmEvalRow {
                metric: "Off-Policy Acc.".into(),
                values: pick(|e| e.off_policy_accuracy),
            },
        ],
        rewards,
        prompts: prompt_keys.len(),
        samples_per_prompt: s,
        low_variance: low,
    };
    write_json(&stage.file(crate::records::RM_EVAL_FILE), &table)?;
    Ok(table)
}

fn normalized(normalizers: &BTreeMap<String, Normalizer>, name: &str) -> Result<Normalizer> {
    normalizers
        .get(name)
        .copied()
        .ok_or_else(|| Error::Input(format!("rm_eval: no normaliser for reward `{name}`")))
}

/// One column from the normalised scores `z` of the samples and `(c, r)` of the
/// pairs, against the ground truth's (`gt_z`; raw `gt` pairs: only their order counts),
/// with its per-prompt values and their bootstrap intervals.
fn entry(
    z: &[f64],
    gt_z: &[f64],
    (c, r): (&[f64], &[f64]),
    gt: &RawScores,
    s: usize,
) -> std::result::Result<RmEvalEntry, rmteach::metrics::MetricsError> {
    let reward_variance = mean_prompt_variance(z.chunks(s), VarianceEstimator::Unbiased)?;
    let on = on_policy_accuracy(z.chunks(s).zip(gt_z.chunks(s)))?;
    let n = c
        .len()
        .min(r.len())
        .min(gt.pairs_chosen.len())
        .min(gt.pairs_rejected.len());
    let pairs: Vec<ScoredPair> = (0..n)
        .map(|i| ScoredPair {
            rm_chosen: c[i],
            rm_rejected: r[i],
            g_chosen: gt.pairs_chosen[i],
            g_rejected: gt.pairs_rejected[i],
        })
        .collect();
    let per_prompt = PerPrompt {
        reward_variance: prompt_variances(z.chunks(s), VarianceEstimator::Unbiased)?,
        on_policy_accuracy: prompt_on_policy_accuracies(z.chunks(s).zip(gt_z.chunks(s)))?,
        off_policy_accuracy: pairs
            .iter()
            .map(|p| off_policy_accuracy(std::slice::from_ref(p)))
            .collect::<std::result::Result<_, _>>()?,
    };
    let seed = TABLE1_BOOTSTRAP_SEED;
    Ok(RmEvalEntry {
        reward_variance,
        on_policy_accuracy: on,
        off_policy_accuracy: off_policy_accuracy(&pairs)?,
        intervals: Some(Table1Intervals {
            reward_variance: mean_interval(&per_prompt.reward_variance, seed),
            on_policy_accuracy: mean_interval(&per_prompt.on_policy_accuracy, seed),
            off_policy_accuracy: mean_interval(&per_prompt.off_policy_accuracy, seed),
        }),
        per_prompt: Some(per_prompt),
    })
}
