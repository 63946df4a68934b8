//! Reading a run directory: `rm_eval.json` plus every `pg/<reward>/seed<k>/eval.jsonl`.

use std::path::{Path, PathBuf};

use super::error::{io_err, AnalysisError, Result};
use super::records::{
    read_eval_log, read_prompt_means, read_rm_eval, EvalRecord, PromptMeans, RmEvalFile,
    EVAL_LOG_FILE, RM_EVAL_FILE,
};

/// One seed's evaluation log.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedRun {
    /// The `k` of `seed<k>`.
    pub seed: u64,
    /// Records sorted by epoch.
    pub records: Vec<EvalRecord>,
    /// Per-prompt means of the epochs that logged them, sorted by epoch (empty for
    /// logs without them).
    pub prompt_means: Vec<PromptMeans>,
}

impl SeedRun {
    /// The per-prompt means at `epoch`, if logged.
    pub fn prompt_means_at(&self, epoch: u32) -> Option<&PromptMeans> {
        self.prompt_means.iter().find(|m| m.epoch == epoch)
    }

    /// The record at `epoch`, if any.
    pub fn at(&self, epoch: u32) -> Option<&EvalRecord> {
        self.records.iter().find(|r| r.epoch == epoch)
    }
}

/// Everything the report needs from one run directory.
#[derive(Debug, Clone, PartialEq)]
pub struct RunData {
    /// The run directory.
    pub root: PathBuf,
    /// Policy name: `rm_eval.json`'s `policy`, else the run directory's name.
    pub policy: String,
    /// The parsed `rm_eval.json`.
    pub rm_eval: RmEvalFile,
    /// Per reward (same order as `rm_eval.rewards`): its seeds, sorted by seed;
    /// empty when `pg/<reward>/` does not exist (no policy gradient run yet).
    pub seeds: Vec<Vec<SeedRun>>,
}

/// Reads `run_dir`. `rm_eval.json` is required; a reward without a `pg/<reward>/`
/// directory has no seeds; a `seed<k>` directory without `eval.jsonl` is an error
/// (an incomplete run should not be averaged silently).
///
/// # Errors
/// [`AnalysisError::MissingFile`] naming the missing file, or the errors of
/// [`read_rm_eval`] and [`read_eval_log`].
pub fn load_run(run_dir: &Path) -> Result<RunData> {
    let rm_eval = read_rm_eval(&run_dir.join(RM_EVAL_FILE))?;
    let seeds = rm_eval
        .rewards
        .iter()
        .map(|r| load_seeds(&run_dir.join("pg").join(&r.name)))
        .collect::<Result<Vec<_>>>()?;
    let policy = rm_eval.policy.clone().unwrap_or_else(|| {
        run_dir.file_name().map_or_else(
            || "policy".to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    });
    Ok(RunData {
        root: run_dir.to_path_buf(),
        policy,
        rm_eval,
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
        let log = entry.path().join(EVAL_LOG_FILE);
        let records = read_eval_log(&log)?;
        let prompt_means = read_prompt_means(&log)?;
        seeds.push(SeedRun {
            seed,
            records,
            prompt_means,
        });
    }
    seeds.sort_by_key(|s| s.seed);
    if seeds.is_empty() {
        return Err(AnalysisError::MissingFile {
            path: dir.join("seed0").join(EVAL_LOG_FILE),
            what: format!(
                "{} exists but holds no seed<k>/{EVAL_LOG_FILE}",
                dir.display()
            ),
        });
    }
    Ok(seeds)
}
