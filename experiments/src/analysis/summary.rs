//! A run loaded and summarised over seeds: what the report and the findings both read
//! (neither reads the other), and the cross-policy contrasts.

use std::path::Path;

use super::error::Result;
use super::increase::{summarize, EpochSummary};
use super::load::{load_run, RunData};

/// A run loaded and summarised: the input of every table and figure.
#[derive(Debug, Clone, PartialEq)]
pub struct SummarizedRun {
    /// The run's files.
    pub data: RunData,
    /// Per reward (in `rm_eval.json` order): mean ± std over seeds per epoch;
    /// empty for a reward without policy-gradient runs.
    pub summaries: Vec<Vec<EpochSummary>>,
}

/// Loads `run_dir` and summarises every reward's seeds.
///
/// # Errors
/// [`AnalysisError::Record`](super::AnalysisError::Record) naming a missing
/// input, parse errors naming file and line, or a seed without an epoch-0 record.
pub fn summarize_run(run_dir: &Path) -> Result<SummarizedRun> {
    let data = load_run(run_dir)?;
    let summaries = data
        .rewards
        .iter()
        .zip(&data.seeds)
        .map(|(r, seeds)| summarize(&r.name, seeds))
        .collect::<Result<Vec<_>>>()?;
    Ok(SummarizedRun { data, summaries })
}
