//! The reward-model evaluation stage (`rm_eval/`, the paper's Table 1), computed from
//! the normalisation stage's samples and raw scores with the shared core
//! [`rmteach::metrics`]:
//! - reward variance: per-prompt unbiased variance of the normalised rewards, averaged;
//! - on-policy accuracy: agreement with the ground truth over all pairs of a prompt's
//!   samples (ties agree with ties), averaged over prompts;
//! - off-policy accuracy: the same on each prompt's dataset pair.
//!
//! `rm_eval.json` ([`RmEvalTable`]): `columns` (RMs 100%..0%, `gt-low-variance`, `gt`),
//! `rows` (`Reward Variance`, `On-Policy Acc.`, `Off-Policy Acc.`, one value per
//! column), and `rewards` (the same numbers keyed by reward name).

use super::config::{GROUND_TRUTH, LOW_VARIANCE};
use super::normalize::{load_samples, load_scores, RawScores};
use super::{write_json, StageDir};
use crate::{Error, Result};
use rmteach::metrics::{
    mean_prompt_variance, off_policy_accuracy, on_policy_accuracy, Normalizer, ScoredPair,
    VarianceEstimator,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

/// One reward's Table 1 column.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RmEvalEntry {
    /// Mean per-prompt variance of the normalised reward.
    pub reward_variance: f64,
    /// Mean per-prompt on-policy accuracy.
    pub on_policy_accuracy: f64,
    /// Off-policy accuracy on the prompts' dataset pairs.
    pub off_policy_accuracy: f64,
}

/// A row of the table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RmEvalRow {
    /// `Reward Variance`, `On-Policy Acc.` or `Off-Policy Acc.`.
    pub metric: String,
    /// One value per column.
    pub values: Vec<f64>,
}

/// `rm_eval.json` (also the stage's `DONE.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RmEvalTable {
    /// Reward names in the paper's column order.
    pub columns: Vec<String>,
    /// The three metric rows.
    pub rows: Vec<RmEvalRow>,
    /// The same numbers by reward.
    pub rewards: BTreeMap<String, RmEvalEntry>,
    /// Prompts evaluated.
    pub prompts: usize,
    /// Samples per prompt.
    pub samples_per_prompt: usize,
}

/// The low-variance reward's scaled prompts and factor.
#[derive(Debug, Clone, PartialEq)]
pub struct LowVarianceSpec {
    /// Prompts whose normalised ground truth is scaled.
    pub prompts: HashSet<String>,
    /// The factor (0.001).
    pub scale: f64,
}

/// The raw reward behind a training reward (`gt-low-variance` is the ground truth).
pub fn raw_reward(name: &str) -> &str {
    if name == LOW_VARIANCE {
        GROUND_TRUTH
    } else {
        name
    }
}

/// Runs the stage over the normalisation stage `norm` (skipped when complete).
pub fn run_rm_eval(
    stage: &StageDir,
    norm: &StageDir,
    columns: &[String],
    normalizers: &BTreeMap<String, Normalizer>,
    low_variance: &LowVarianceSpec,
    samples_per_prompt: usize,
) -> Result<RmEvalTable> {
    if let Some(done) = stage.summary::<RmEvalTable>()? {
        return Ok(done);
    }
    let rows = load_samples(norm)?;
    let s = samples_per_prompt;
    if s < 2 || rows.is_empty() || rows.len() % s != 0 {
        return Err(Error::Input(format!(
            "rm_eval: {} samples do not group into prompts of {s}",
            rows.len()
        )));
    }
    let sample_prompts: Vec<&str> = rows.iter().map(|r| r.prompt.as_str()).collect();
    let pair_prompts: Vec<&str> = sample_prompts.iter().step_by(s).copied().collect();
    let gt = load_scores(norm, GROUND_TRUTH)?;
    let gt_norm = normalized(normalizers, GROUND_TRUTH)?;
    let gt_samples = gt_norm.apply_slice(&gt.samples);
    let mut rewards = BTreeMap::new();
    for name in columns {
        let raw = load_scores(norm, raw_reward(name))?;
        let n = normalized(normalizers, raw_reward(name))?;
        let scale = |prompt: &str| {
            if name == LOW_VARIANCE && low_variance.prompts.contains(prompt) {
                low_variance.scale
            } else {
                1.0
            }
        };
        let apply = |scores: &[f64], prompts: &[&str]| -> Vec<f64> {
            scores
                .iter()
                .zip(prompts)
                .map(|(&r, p)| n.apply(r) * scale(p))
                .collect()
        };
        let z = apply(&raw.samples, &sample_prompts);
        let chosen = apply(&raw.pairs_chosen, &pair_prompts);
        let rejected = apply(&raw.pairs_rejected, &pair_prompts);
        rewards.insert(
            name.clone(),
            entry(&z, &gt_samples, (&chosen, &rejected), &gt, s)
                .map_err(|e| Error::Input(format!("rm_eval: reward `{name}`: {e}")))?,
        );
    }
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
        prompts: pair_prompts.len(),
        samples_per_prompt: s,
    };
    write_json(&stage.file("rm_eval.json"), &table)?;
    stage.complete(&table)?;
    Ok(table)
}

fn normalized(normalizers: &BTreeMap<String, Normalizer>, name: &str) -> Result<Normalizer> {
    normalizers
        .get(name)
        .copied()
        .ok_or_else(|| Error::Input(format!("rm_eval: no normaliser for reward `{name}`")))
}

/// One column from the normalised scores `z` of the samples and `(c, r)` of the
/// pairs, against the ground truth's (`gt_z`; raw `gt` pairs: only their order counts).
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
    Ok(RmEvalEntry {
        reward_variance,
        on_policy_accuracy: on,
        off_policy_accuracy: off_policy_accuracy(&pairs)?,
    })
}
