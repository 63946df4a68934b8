//! The files a run directory holds that one part of the crate writes and another
//! reads: the stages (via [`crate::pipeline`]) write them, [`crate::analysis`] and
//! [`crate::teacher`] read them. One type per file, one reader per type; nothing here
//! depends on the pipeline or the analysis.
//!
//! | file (under `runs/<run>/`) | type | written by | read by |
//! |---|---|---|---|
//! | `rm_eval/rm_eval.json` (also the stage's `DONE.json`) | [`RmEvalTable`] | the rm_eval stage | analysis (Tables 1, 2, 10, figures) |
//! | `pg/<reward>/seed<k>/eval.jsonl` | [`EvalRecord`], one per line | the per-epoch evaluation of policy gradient | analysis (reward increase), teacher evidence |
//! | `summary.json` | [`RunSummary`] | the run (wall time per stage) | the run (a rerun keeps the times of the call that ran each stage) |
//!
//! The formats are exactly those main wrote at 347e9b4, so run directories made then
//! still read (their extra `<run>/rm_eval.json`, a converted copy of the table that
//! the analysis read before, is no longer written or read); see each type.

pub mod error;
pub mod eval;
pub mod interval;
pub mod rm_eval;
pub mod summary;

pub use error::RecordError;

/// The file a dry run's `world/` stage writes (what stands in for what); its presence
/// marks a run directory as a dry run, which the reports say.
pub const DRY_RUN_FILE: &str = "dry_run.json";
pub use eval::{read_eval_log, EvalRecord, RewardStats, EVAL_LOG_FILE};
pub use interval::Interval;
pub use rm_eval::{
    read_rm_eval, LowVarianceOrder, LowVarianceRecord, PerPrompt, RmEvalEntry, RmEvalRow,
    RmEvalTable, Table1Intervals, GROUND_TRUTH, LOW_VARIANCE, RM_EVAL_FILE, RM_EVAL_STAGE,
};
pub use summary::{RunSummary, StageTime, SUMMARY_FILE};
