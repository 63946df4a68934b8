//! `pg/<reward>/seed<k>/eval.jsonl`: one [`EvalRecord`] per line, one line per
//! evaluated epoch of one policy-gradient run.
//!
//! ```json
//! {"epoch":0,"update":0,"proxy":{"mean":-0.01,"variance":0.58,"on_policy_accuracy":0.69},
//!  "ground_truth":{"mean":-0.01,"variance":0.98,"on_policy_accuracy":1.0},"kl":0.0,
//!  "train_kl":null,"proxy_per_prompt":[0.64,...],"gt_per_prompt":[0.21,...],"seconds":0.0}
//! ```
//!
//! Epoch 0 is the run's shared evaluation of the initial policy (copied from
//! `baseline/baseline.json`). A resumed run that repeats an epoch replaces its line,
//! and the reader keeps the last line of an epoch; blank lines are skipped.

use serde::{Deserialize, Serialize};
use std::path::Path;

use super::error::{parse_record, read_text, RecordError};

/// File name of one seed's per-epoch evaluation log inside `pg/<reward>/seed<k>/`.
pub const EVAL_LOG_FILE: &str = "eval.jsonl";

/// Statistics of one reward over grouped samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RewardStats {
    /// Mean reward over all samples.
    pub mean: f64,
    /// Per-prompt unbiased variance, averaged over prompts (needs 2+ samples).
    pub variance: f64,
    /// Pairwise ranking agreement with the ground truth per prompt, averaged.
    pub on_policy_accuracy: f64,
}

/// One evaluation of a policy during policy gradient (one line of `eval.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRecord {
    /// Epoch (0: the initial policy).
    pub epoch: u32,
    /// Updates done.
    pub update: u64,
    /// The normalised training reward.
    pub proxy: RewardStats,
    /// The normalised ground truth.
    pub ground_truth: RewardStats,
    /// KL from the initial policy on samples of the policy itself (temperature 1, no
    /// top-k): the mean summed log-ratio of the rollouts of the epoch's last quarter
    /// of updates, as the paper measures it (0 at epoch 0).
    pub kl: f64,
    /// The last update's rollout KL (`None` at epoch 0).
    pub train_kl: Option<f64>,
    /// The same log-ratio on the top-k evaluation samples (biased by the truncation;
    /// kept for comparison).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kl_eval_topk: Option<f64>,
    /// Mean normalised proxy reward of each evaluation prompt.
    #[serde(default)]
    pub proxy_per_prompt: Vec<f64>,
    /// Mean normalised ground truth of each evaluation prompt.
    #[serde(default)]
    pub gt_per_prompt: Vec<f64>,
    /// Wall time of the evaluation.
    pub seconds: f64,
}

impl EvalRecord {
    /// Whether the record holds per-prompt means of both rewards (same length).
    pub fn has_prompt_means(&self) -> bool {
        !self.proxy_per_prompt.is_empty() && self.proxy_per_prompt.len() == self.gt_per_prompt.len()
    }
}

/// Reads one `eval.jsonl`, sorted by epoch, keeping the last line of a repeated epoch.
///
/// # Errors
/// [`RecordError::Missing`], [`RecordError::Io`], [`RecordError::Json`] naming the
/// line, or [`RecordError::Invalid`] for a non-finite mean or KL, or a file without
/// records.
pub fn read_eval_log(path: &Path) -> Result<Vec<EvalRecord>, RecordError> {
    let text = read_text(path, "per-epoch policy evaluation written by the pg stage")?;
    let mut by_epoch = std::collections::BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let rec: EvalRecord = parse_record(line, path, Some(i + 1))?;
        if ![rec.proxy.mean, rec.ground_truth.mean, rec.kl]
            .iter()
            .all(|v| v.is_finite())
        {
            return Err(RecordError::Invalid {
                path: path.to_path_buf(),
                line: Some(i + 1),
                message: "non-finite proxy mean, ground-truth mean or kl".into(),
            });
        }
        by_epoch.insert(rec.epoch, rec);
    }
    if by_epoch.is_empty() {
        return Err(RecordError::Invalid {
            path: path.to_path_buf(),
            line: None,
            message: "no evaluation records".into(),
        });
    }
    Ok(by_epoch.into_values().collect())
}
