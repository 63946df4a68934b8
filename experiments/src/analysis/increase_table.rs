//! The long-format table of reward increase per (reward, epoch): the numbers
//! behind the figures and Table 10.

use rmteach::report::{Cell, Table};

use super::error::Result;
use super::increase::{EpochSummary, MeanStd};
use super::load::RunData;

/// Column names of the reward-increase table.
pub const INCREASE_COLUMNS: [&str; 9] = [
    "reward",
    "epoch",
    "n_seeds",
    "proxy_mean",
    "proxy_std",
    "gt_mean",
    "gt_std",
    "kl_mean",
    "kl_std",
];

/// One row per (reward, epoch) with the mean and sample std over seeds of the
/// proxy and ground-truth increase and of the KL (std empty with one seed).
///
/// # Errors
/// [`AnalysisError::Report`](super::AnalysisError::Report) only on an internal shape error.
pub fn increase_table(data: &RunData, summaries: &[Vec<EpochSummary>]) -> Result<Table> {
    let mut table = Table::new(
        "Reward increase over the initial policy (mean and std over seeds)",
        INCREASE_COLUMNS,
    );
    let pair = |m: &MeanStd| [Cell::Float(m.mean), m.std.into()];
    for (r, summary) in data.rewards.iter().zip(summaries) {
        for e in summary {
            let mut row = vec![
                Cell::from(r.name.as_str()),
                e.epoch.into(),
                e.n_seeds.into(),
            ];
            row.extend(pair(&e.proxy));
            row.extend(pair(&e.ground_truth));
            row.extend(pair(&e.kl));
            table.push_row(row)?;
        }
    }
    Ok(table)
}
