//! On-disk records the analysis reads, with serde so the pipeline writes the same types.
//!
//! # `rm_eval.json` (written by the RM-evaluation stage)
//!
//! ```json
//! {
//!   "policy": "Pythia-2.8B SFT",
//!   "rewards": [
//!     {"name": "rm_100p", "reward_variance": 0.41, "on_policy_accuracy": 0.63,
//!      "off_policy_accuracy": 0.71},
//!     {"name": "ground_truth", "reward_variance": 0.52, "on_policy_accuracy": 1.0,
//!      "off_policy_accuracy": 1.0, "ground_truth": true}
//!   ]
//! }
//! ```
//!
//! `policy` is optional (the report falls back to the run directory's name);
//! `ground_truth` is optional and defaults to `false`. The order of `rewards` is the
//! column order of Table 1 and the legend order of the figures. A reward's `name` is
//! also its directory under `pg/`, so it must be a plain file name. A bare JSON array
//! of reward records is accepted as well.
//!
//! # `pg/<reward>/seed<k>/eval.jsonl` (written by the per-epoch evaluation)
//!
//! One JSON object per line, one line per evaluated epoch:
//!
//! ```json
//! {"epoch": 0, "proxy": -0.01, "ground_truth": 0.02, "kl": 0.0}
//! {"epoch": 1, "proxy": 0.35, "ground_truth": 0.21, "kl": 1.7}
//! ```
//!
//! `epoch` 0 is the initial policy; `proxy` and `ground_truth` are mean normalised
//! rewards over the evaluation prompts x samples (a number, or the pipeline's statistics
//! object `{"mean": ..}`, whose mean is read; other fields are ignored); `kl` is the KL divergence from the
//! initial policy. Lines may come in any order; an epoch logged twice keeps the last
//! line (a resumed run re-logging an epoch); blank lines are skipped.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::bootstrap::Interval;
use super::error::{io_err, AnalysisError, Result};

/// File name of the RM-evaluation summary inside a run directory.
pub const RM_EVAL_FILE: &str = "rm_eval.json";
/// File name of one seed's per-epoch evaluation log inside `pg/<reward>/seed<k>/`.
pub const EVAL_LOG_FILE: &str = "eval.jsonl";

/// Properties of one reward under the initial policy (one column of Table 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RmEvalRecord {
    /// Reward name; also its directory under `pg/`.
    pub name: String,
    /// Per-prompt variance of the normalised rewards, averaged over prompts.
    pub reward_variance: f64,
    /// Accuracy on pairs of initial-policy samples.
    pub on_policy_accuracy: f64,
    /// Accuracy on the off-policy (dataset) pairs.
    pub off_policy_accuracy: f64,
    /// Whether this reward is the ground truth itself (a baseline, not a reward model).
    #[serde(default)]
    pub ground_truth: bool,
    /// 95% bootstrap intervals (over prompts) of the three numbers, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intervals: Option<Table1Intervals>,
    /// The per-prompt values the three numbers average, when known (Table 2's
    /// bootstrap resamples them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_prompt: Option<PerPrompt>,
}

/// 95% bootstrap intervals of one Table 1 column.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Table1Intervals {
    /// Of the reward variance.
    pub reward_variance: Option<Interval>,
    /// Of the on-policy accuracy.
    pub on_policy_accuracy: Option<Interval>,
    /// Of the off-policy accuracy.
    pub off_policy_accuracy: Option<Interval>,
}

/// Per-prompt values of a reward's Table 1 numbers (each number is their mean).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerPrompt {
    /// Unbiased variance of each prompt's normalised rewards.
    pub reward_variance: Vec<f64>,
    /// Each prompt's on-policy accuracy.
    pub on_policy_accuracy: Vec<f64>,
    /// Each prompt's off-policy accuracy (1, 0, or a tie's value).
    pub off_policy_accuracy: Vec<f64>,
}

/// Per-prompt mean rewards of one evaluation (optional fields of an `eval.jsonl` line:
/// `proxy_per_prompt`, `gt_per_prompt`), which Table 2's bootstrap resamples.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PromptMeans {
    /// The epoch.
    pub epoch: u32,
    /// Mean normalised proxy reward of each evaluation prompt.
    #[serde(default, rename = "proxy_per_prompt")]
    pub proxy: Vec<f64>,
    /// Mean normalised ground truth of each evaluation prompt.
    #[serde(default, rename = "gt_per_prompt")]
    pub ground_truth: Vec<f64>,
}

/// The whole `rm_eval.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RmEvalFile {
    /// Name of the initial policy these rewards were evaluated under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// One record per reward, in report order.
    pub rewards: Vec<RmEvalRecord>,
    /// Sentences the report prints under Table 1 (e.g. what the low-variance reward
    /// scaled, as realised).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// One line of `eval.jsonl`: the policy after `epoch` epochs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EvalRecord {
    /// Epochs of policy gradient done (0 = the initial policy).
    pub epoch: u32,
    /// Mean normalised proxy (training) reward.
    #[serde(deserialize_with = "mean_or_number")]
    pub proxy: f64,
    /// Mean normalised ground-truth reward.
    #[serde(deserialize_with = "mean_or_number")]
    pub ground_truth: f64,
    /// KL divergence from the initial policy.
    #[serde(default, deserialize_with = "number_or_null")]
    pub kl: f64,
}

/// A reward summary as a plain number, or as the pipeline's statistics object
/// (`{"mean": .., "variance": .., "on_policy_accuracy": ..}`), of which the mean is read.
fn mean_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        Number(f64),
        Stats { mean: f64 },
    }
    Ok(match Form::deserialize(d)? {
        Form::Number(v) | Form::Stats { mean: v } => v,
    })
}

/// A KL that the pipeline writes as `null` for the initial policy reads as 0.
fn number_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(0.0))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RmEvalForm {
    File(RmEvalFile),
    Bare(Vec<RmEvalRecord>),
}

fn read_text(path: &Path, what: &str) -> Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(AnalysisError::MissingFile {
            path: path.to_path_buf(),
            what: what.to_string(),
        }),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Reads and checks `rm_eval.json`: at least one reward, unique plain names, finite values.
///
/// # Errors
/// [`AnalysisError::MissingFile`], [`AnalysisError::Io`] or [`AnalysisError::Parse`].
pub fn read_rm_eval(path: &Path) -> Result<RmEvalFile> {
    let text = read_text(path, "reward-model evaluation written by the rm_eval stage")?;
    let parse = |message: String| AnalysisError::Parse {
        path: path.to_path_buf(),
        line: None,
        message,
    };
    let file = match serde_json::from_str::<RmEvalForm>(&text).map_err(|e| parse(e.to_string()))? {
        RmEvalForm::File(f) => f,
        RmEvalForm::Bare(rewards) => RmEvalFile {
            policy: None,
            rewards,
            notes: Vec::new(),
        },
    };
    if file.rewards.is_empty() {
        return Err(parse("no rewards listed".into()));
    }
    let mut seen = std::collections::HashSet::new();
    for r in &file.rewards {
        if r.name.is_empty() || r.name.contains(['/', '\\']) || r.name == "." || r.name == ".." {
            return Err(parse(format!(
                "reward name {:?} is not a plain directory name",
                r.name
            )));
        }
        if !seen.insert(r.name.as_str()) {
            return Err(parse(format!("reward {:?} listed twice", r.name)));
        }
        let values = [
            r.reward_variance,
            r.on_policy_accuracy,
            r.off_policy_accuracy,
        ];
        if values.iter().any(|v| !v.is_finite()) {
            return Err(parse(format!("reward {:?} has a non-finite value", r.name)));
        }
    }
    Ok(file)
}

/// Reads one `eval.jsonl`, sorted by epoch, keeping the last line of a repeated epoch.
///
/// # Errors
/// [`AnalysisError::MissingFile`], [`AnalysisError::Io`], or [`AnalysisError::Parse`]
/// naming the line; also when the file holds no records or a non-finite value.
pub fn read_eval_log(path: &Path) -> Result<Vec<EvalRecord>> {
    let text = read_text(path, "per-epoch policy evaluation written by the pg stage")?;
    let mut by_epoch = std::collections::BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parse = |message: String| AnalysisError::Parse {
            path: path.to_path_buf(),
            line: Some(i + 1),
            message,
        };
        let rec: EvalRecord = serde_json::from_str(line).map_err(|e| parse(e.to_string()))?;
        if ![rec.proxy, rec.ground_truth, rec.kl]
            .iter()
            .all(|v| v.is_finite())
        {
            return Err(parse("non-finite value".into()));
        }
        by_epoch.insert(rec.epoch, rec);
    }
    if by_epoch.is_empty() {
        return Err(AnalysisError::Parse {
            path: path.to_path_buf(),
            line: None,
            message: "no evaluation records".into(),
        });
    }
    Ok(by_epoch.into_values().collect())
}

/// The per-prompt means of every epoch of one `eval.jsonl` that has them (sorted by
/// epoch, the last line of a repeated epoch kept; lines without them are skipped).
///
/// # Errors
/// As [`read_eval_log`].
pub fn read_prompt_means(path: &Path) -> Result<Vec<PromptMeans>> {
    let text = read_text(path, "per-epoch policy evaluation written by the pg stage")?;
    let mut by_epoch = std::collections::BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let rec: PromptMeans = serde_json::from_str(line).map_err(|e| AnalysisError::Parse {
            path: path.to_path_buf(),
            line: Some(i + 1),
            message: e.to_string(),
        })?;
        if !rec.proxy.is_empty() && rec.proxy.len() == rec.ground_truth.len() {
            by_epoch.insert(rec.epoch, rec);
        }
    }
    Ok(by_epoch.into_values().collect())
}

/// Writes `rm_eval.json` atomically (pretty JSON), creating its directory.
///
/// # Errors
/// [`AnalysisError::Io`] naming the path.
pub fn write_rm_eval(path: &Path, file: &RmEvalFile) -> Result<()> {
    let mut text = serde_json::to_string_pretty(file).map_err(|e| AnalysisError::Parse {
        path: path.to_path_buf(),
        line: None,
        message: e.to_string(),
    })?;
    text.push('\n');
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    rmteach::report::write_atomic(path, text.as_bytes()).map_err(io_err(path))
}

/// One `eval.jsonl` line (no trailing newline) for `record`.
pub fn eval_line(record: &EvalRecord) -> String {
    // A struct of numbers always serialises.
    serde_json::to_string(record).unwrap_or_default()
}
