//! `rm_eval/rm_eval.json` (also the rm_eval stage's `DONE.json`): the paper's Table 1,
//! each reward under the initial policy, as [`RmEvalTable`].
//!
//! ```json
//! {
//!   "columns": ["rm-100", "rm-75", "rm-50", "rm-25", "rm-0", "gt-low-variance", "gt"],
//!   "rows": [{"metric": "Reward Variance", "values": [0.58, ...]}, ...],
//!   "rewards": {"rm-100": {"reward_variance": 0.58, "on_policy_accuracy": 0.69,
//!                "off_policy_accuracy": 0.71, "intervals": {...}, "per_prompt": {...}}, ...},
//!   "prompts": 100, "samples_per_prompt": 10,
//!   "low_variance": {"order": "scale_then_normalize", "scale": 0.001, ...}
//! }
//! ```
//!
//! `columns` is the paper's column order (also the legend order of the figures); a
//! column's name is its directory under `pg/`, so it is a plain file name; `gt` is
//! the ground truth itself (a baseline, not a reward model); `rows` repeats the three
//! numbers by metric; `low_variance` says what the low-variance reward scaled.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::error::{parse_record, read_text, RecordError};
use super::interval::Interval;
use rmteach::metrics::Normalizer;

/// The rm_eval stage's directory inside a run directory.
pub const RM_EVAL_STAGE: &str = "rm_eval";
/// File name of the table inside [`RM_EVAL_STAGE`].
pub const RM_EVAL_FILE: &str = "rm_eval.json";
/// Name of the perfectly accurate, low-variance reward.
pub const LOW_VARIANCE: &str = "gt-low-variance";
/// Name of the ground-truth reward.
pub const GROUND_TRUTH: &str = "gt";
/// `low_variance.order`: where the low-variance reward's normalisation is fitted
/// (TOML and JSON spelling `scale_then_normalize` / `normalize_then_scale`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LowVarianceOrder {
    /// The authors' code: scale the raw ground truth on the chosen prompts, fit the
    /// normalisation on that mixture, and multiply the normalised reward by `scale`
    /// on the chosen prompts.
    #[default]
    ScaleThenNormalize,
    /// Normalise with the ground truth's own constants, then multiply by `scale` on
    /// the chosen prompts.
    NormalizeThenScale,
}

impl LowVarianceOrder {
    /// Both orders, the authors' first.
    pub const ALL: [Self; 2] = [Self::ScaleThenNormalize, Self::NormalizeThenScale];

    /// The TOML / JSON spelling.
    pub fn name(self) -> &'static str {
        match self {
            Self::ScaleThenNormalize => "scale_then_normalize",
            Self::NormalizeThenScale => "normalize_then_scale",
        }
    }
}

impl std::fmt::Display for LowVarianceOrder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
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

/// One reward's Table 1 column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RmEvalEntry {
    /// Mean per-prompt variance of the normalised reward.
    pub reward_variance: f64,
    /// Mean per-prompt on-policy accuracy.
    pub on_policy_accuracy: f64,
    /// Off-policy accuracy on the prompts' dataset pairs.
    pub off_policy_accuracy: f64,
    /// 95% bootstrap intervals (over prompts) of the three numbers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intervals: Option<Table1Intervals>,
    /// The per-prompt values the three numbers average.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_prompt: Option<PerPrompt>,
}

/// What the low-variance reward scaled, as realised (`low_variance`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LowVarianceRecord {
    /// The normalisation order used in training.
    pub order: LowVarianceOrder,
    /// The factor.
    pub scale: f64,
    /// RLHF prompt rows (indices) scaled.
    pub scaled_count: usize,
    /// RLHF prompt rows in all.
    pub rlhf_prompts: usize,
    /// `scaled_count / rlhf_prompts`.
    pub scaled_fraction: f64,
    /// Of the Table 1 (normalisation) prompts: how many are scaled, and the share.
    pub table1_scaled_count: usize,
    /// Share of the Table 1 prompts scaled.
    pub table1_scaled_fraction: f64,
    /// The normalisation used (`order`'s).
    pub normalizer: Normalizer,
    /// Table 1 reward variance under each order (`scale_then_normalize`,
    /// `normalize_then_scale`).
    pub reward_variance_by_order: BTreeMap<String, f64>,
}

/// A row of the table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RmEvalRow {
    /// `Reward Variance`, `On-Policy Acc.` or `Off-Policy Acc.`.
    pub metric: String,
    /// One value per column.
    pub values: Vec<f64>,
}

/// `rm_eval/rm_eval.json`.
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
    /// The low-variance reward's realised scaling (when it is a column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low_variance: Option<LowVarianceRecord>,
}

impl RmEvalTable {
    /// The path of the table inside run directory `run_dir`.
    pub fn path(run_dir: &Path) -> PathBuf {
        run_dir.join(RM_EVAL_STAGE).join(RM_EVAL_FILE)
    }

    /// The columns in order with their entries.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &RmEvalEntry)> {
        self.columns
            .iter()
            .filter_map(|c| self.rewards.get(c).map(|e| (c.as_str(), e)))
    }
}

/// Reads and checks `rm_eval/rm_eval.json` of run directory `run_dir`: at least one
/// column, unique plain names, every column in `rewards`, finite values.
///
/// # Errors
/// [`RecordError::Missing`], [`RecordError::Io`], [`RecordError::Json`], or
/// [`RecordError::Invalid`] naming the rule broken.
pub fn read_rm_eval(run_dir: &Path) -> Result<RmEvalTable, RecordError> {
    let path = RmEvalTable::path(run_dir);
    let text = read_text(
        &path,
        "reward-model evaluation written by the rm_eval stage",
    )?;
    let table: RmEvalTable = parse_record(&text, &path, None)?;
    let invalid = |message: String| RecordError::Invalid {
        path: path.clone(),
        line: None,
        message,
    };
    if table.columns.is_empty() {
        return Err(invalid("no columns (rewards) listed".into()));
    }
    let mut seen = std::collections::HashSet::new();
    for name in &table.columns {
        if name.is_empty() || name.contains(['/', '\\']) || name == "." || name == ".." {
            return Err(invalid(format!(
                "column {name:?} is not a plain directory name"
            )));
        }
        if !seen.insert(name.as_str()) {
            return Err(invalid(format!("column {name:?} listed twice")));
        }
        let e = table
            .rewards
            .get(name)
            .ok_or_else(|| invalid(format!("column {name:?} has no entry in `rewards`")))?;
        let values = [
            e.reward_variance,
            e.on_policy_accuracy,
            e.off_policy_accuracy,
        ];
        if values.iter().any(|v| !v.is_finite()) {
            return Err(invalid(format!("reward {name:?} has a non-finite value")));
        }
    }
    Ok(table)
}
