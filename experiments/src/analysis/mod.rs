//! Analysis of a finished (or partly finished) run directory: Tables 1, 2 and 10
//! of the paper, the reward-increase figures, and a stitched `report.md`.
//!
//! Inputs (formats in [`crate::records`]): `<run>/rm_eval/rm_eval.json` and
//! `<run>/pg/<reward>/seed<k>/eval.jsonl`. Entry points: [`write_report`] for one
//! run, [`write_policies_report`] for Section 4.2 across policies. Metrics, tables
//! and plots come from the shared core ([`rmteach::metrics`], [`rmteach::report`],
//! [`rmteach::plot`]).
//!
//! Choices:
//! * Reward increase = value at epoch e minus the same seed's value at epoch 0;
//!   mean and sample std (n - 1) over the seeds that reached e; KL is averaged as is.
//! * Table 2 correlates seed-mean increases after epoch 1 across the reward models,
//!   excluding rewards flagged `ground_truth` (a baseline, not a reward model).
//!   "On- & Off-Policy Acc." is their mean; "Reward Variance & Acc." is the mean of
//!   reward variance and on-policy accuracy (see [`CombinedAccuracy`]), without
//!   standardising either. An undefined correlation is a missing cell with a note.
//! * Table 10 reports increases at the last epoch every seed of every reward model
//!   reached, unless an epoch is given.

pub mod bootstrap;
pub mod error;
pub mod figures;
pub mod findings;
pub mod increase;
pub mod increase_table;
pub mod interaction;
pub mod load;
pub mod report;
pub mod spread;
pub mod summary;
pub mod table1;
pub mod table10;
pub mod table2;
pub mod uncertainty;
pub mod verdict;

pub use error::{AnalysisError, Result};
pub use figures::{gt_increase_bars, increase_vs_epoch, increase_vs_kl, PolicyIncrease};
pub use increase::{seed_increases, summarize, EpochSummary, Increase, MeanStd};
pub use increase_table::increase_table;
pub use interaction::{
    cells_interval, contrast_section, interaction_contrast, seed_gt_increases, Contrast,
    PolicyContrast,
};
pub use load::{load_run, RewardColumn, RunData, SeedRun};
pub use report::{write_policies_report, write_report, ReportFiles};
pub use summary::{summarize_run, SummarizedRun};
pub use table1::{table1, TABLE1_ROWS};
pub use table10::{default_table10_epoch, mean_std_text, table10, TABLE10_ROWS};
pub use table2::{
    correlate, table2, CombinedAccuracy, Correlation, Table2, Table2Options, TABLE2_ROWS,
};
