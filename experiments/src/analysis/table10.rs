//! Table 10 layout (Section 4.2): per reward model, GT and proxy increase
//! (mean ± std over seeds), reward variance and on-/off-policy accuracy.

use rmteach::report::{format_float, Cell, Table, DEFAULT_PRECISION};

use super::error::Result;
use super::increase::{at_epoch, EpochSummary, MeanStd};
use super::load::RunData;

/// Row labels of Table 10, in the paper's order.
pub const TABLE10_ROWS: [&str; 5] = [
    "Reward Increase (G)",
    "Reward Increase (RM)",
    "Reward Variance",
    "On-Policy Acc.",
    "Off-Policy Acc.",
];

/// `mean ± std` (or just the mean with one seed).
pub fn mean_std_text(m: &MeanStd) -> String {
    let mean = format_float(m.mean, DEFAULT_PRECISION);
    match m.std {
        Some(s) => format!("{mean} ± {}", format_float(s, DEFAULT_PRECISION)),
        None => mean,
    }
}

/// The epoch Table 10 reports when none is asked for: the smallest, over reward
/// models with data, of the last epoch that every one of its seeds reached.
pub fn default_table10_epoch(data: &RunData, summaries: &[Vec<EpochSummary>]) -> Option<u32> {
    data.rewards
        .iter()
        .zip(summaries)
        .zip(&data.seeds)
        .filter(|((r, _), seeds)| !r.ground_truth && !seeds.is_empty())
        .filter_map(|((_, s), seeds)| {
            s.iter()
                .filter(|e| e.n_seeds == seeds.len())
                .map(|e| e.epoch)
                .max()
        })
        .min()
}

/// Table 10 for one policy: a column per reward model (the ground truth excluded,
/// as in the paper), increases at `epoch` as `mean ± std` text. A reward model with
/// no evaluation at `epoch` gets empty increase cells.
///
/// # Errors
/// [`AnalysisError::Report`](super::AnalysisError::Report) on duplicate names.
pub fn table10(data: &RunData, summaries: &[Vec<EpochSummary>], epoch: u32) -> Result<Table> {
    let rms: Vec<_> = data
        .rewards
        .iter()
        .zip(summaries)
        .filter(|(r, _)| !r.ground_truth)
        .collect();
    let mut columns = vec!["Quantity".to_string()];
    columns.extend(rms.iter().map(|(r, _)| r.name.clone()));
    let title = format!(
        "Table 10: language model {} (increases after epoch {epoch}, mean ± std over seeds)",
        data.policy
    );
    let mut table = Table::new(title, columns);
    let increase = |pick: fn(&EpochSummary) -> &MeanStd| -> Vec<Cell> {
        rms.iter()
            .map(|(_, s)| {
                at_epoch(s, epoch).map_or(Cell::Missing, |e| mean_std_text(pick(e)).into())
            })
            .collect()
    };
    let rows: [Vec<Cell>; 5] = [
        increase(|e| &e.ground_truth),
        increase(|e| &e.proxy),
        rms.iter()
            .map(|(r, _)| r.entry.reward_variance.into())
            .collect(),
        rms.iter()
            .map(|(r, _)| r.entry.on_policy_accuracy.into())
            .collect(),
        rms.iter()
            .map(|(r, _)| r.entry.off_policy_accuracy.into())
            .collect(),
    ];
    for (label, cells) in TABLE10_ROWS.iter().zip(rows) {
        let mut row = vec![Cell::from(*label)];
        row.extend(cells);
        table.push_row(row)?;
    }
    Ok(table)
}
