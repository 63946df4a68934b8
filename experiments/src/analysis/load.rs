//! Reading a run directory: `rm_eval/rm_eval.json` plus every
//! `pg/<reward>/seed<k>/eval.jsonl` (formats in [`crate::records`]).

use std::path::{Path, PathBuf};

use super::error::{io_err, Result};
use crate::records::{
    read_eval_log, read_rm_eval, EvalRecord, LowVarianceRecord, RecordError, RmEvalEntry,
    EVAL_LOG_FILE, GROUND_TRUTH,
};

/// One seed's evaluation log.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedRun {
    /// The `k` of `seed<k>`.
    pub seed: u64,
    /// Records sorted by epoch.
    pub records: Vec<EvalRecord>,
}

impl SeedRun {
    /// The record at `epoch`, if any.
    pub fn at(&self, epoch: u32) -> Option<&EvalRecord> {
        self.records.iter().find(|r| r.epoch == epoch)
    }

    /// The record at `epoch` if it holds per-prompt means of both rewards.
    pub fn prompt_means_at(&self, epoch: u32) -> Option<&EvalRecord> {
        self.at(epoch).filter(|r| r.has_prompt_means())
    }
}

/// One reward of the run, in Table 1 column order.
#[derive(Debug, Clone, PartialEq)]
pub struct RewardColumn {
    /// Reward name; also its directory under `pg/`.
    pub name: String,
    /// Whether this reward is the ground truth itself (a baseline, not a reward model).
    pub ground_truth: bool,
    /// Its Table 1 numbers under the initial policy.
    pub entry: RmEvalEntry,
}

/// Everything the report needs from one run directory.
#[derive(Debug, Clone, PartialEq)]
pub struct RunData {
    /// The run directory.
    pub root: PathBuf,
    /// Policy name: the run directory's name.
    pub policy: String,
    /// The rewards in `rm_eval.json`'s column order.
    pub rewards: Vec<RewardColumn>,
    /// Prompts the Table 1 numbers average over.
    pub table1_prompts: usize,
    /// What the low-variance reward scaled, as realised (when it is a column).
    pub low_variance: Option<LowVarianceRecord>,
    /// Per reward (same order as `rewards`): its seeds, sorted by seed; empty when
    /// `pg/<reward>/` does not exist (no policy gradient run yet).
    pub seeds: Vec<Vec<SeedRun>>,
}

/// Reads `run_dir`. `rm_eval/rm_eval.json` is required; a reward without a
/// `pg/<reward>/` directory has no seeds; a `seed<k>` directory without `eval.jsonl`
/// is an error (an incomplete run should not be averaged silently).
///
/// # Errors
/// [`AnalysisError::Record`] naming the missing or malformed file.
pub fn load_run(run_dir: &Path) -> Result<RunData> {
    let table = read_rm_eval(run_dir)?;
    let rewards: Vec<RewardColumn> = table
        .entries()
        .map(|(name, entry)| RewardColumn {
            name: name.to_string(),
            ground_truth: name == GROUND_TRUTH,
            entry: entry.clone(),
        })
        .collect();
    let seeds = rewards
        .iter()
        .map(|r| load_seeds(&run_dir.join("pg").join(&r.name)))
        .collect::<Result<Vec<_>>>()?;
    let policy = run_dir.file_name().map_or_else(
        || "policy".to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    Ok(RunData {
        root: run_dir.to_path_buf(),
        policy,
        rewards,
        table1_prompts: table.prompts,
        low_variance: table.low_variance,
        seeds,
    })
}

/// All `seed<k>/eval.jsonl` under `dir`, sorted by `k`; none if `dir` is absent.
fn load_seeds(dir: &Path) -> Result<Vec<SeedRun>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut seeds = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(seed) = name
            .strip_prefix("seed")
            .and_then(|k| k.parse::<u64>().ok())
        else {
            continue;
        };
        if !entry.path().is_dir() {
            continue;
        }
        let records = read_eval_log(&entry.path().join(EVAL_LOG_FILE))?;
        seeds.push(SeedRun { seed, records });
    }
    seeds.sort_by_key(|s| s.seed);
    if seeds.is_empty() {
        return Err(RecordError::Missing {
            path: dir.join("seed0").join(EVAL_LOG_FILE),
            what: format!(
                "{} exists but holds no seed<k>/{EVAL_LOG_FILE}",
                dir.display()
            ),
        }
        .into());
    }
    Ok(seeds)
}
