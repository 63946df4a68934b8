//! Table 1: reward variance and on-/off-policy accuracy of every reward, and, where
//! `rm_eval.json` has them, each number's 95% bootstrap interval over prompts.

use rmteach::report::{Cell, Table};

use super::error::Result;
use super::records::RmEvalFile;

/// Row labels of Table 1, in the paper's order.
pub const TABLE1_ROWS: [&str; 3] = ["Reward Variance", "On-Policy Acc.", "Off-Policy Acc."];

/// Table 1: rows Reward Variance / On-Policy Acc. / Off-Policy Acc.; one column per
/// reward in `rm_eval.json` order (the ground truth included, as in the paper); then,
/// when any reward has intervals, one `... 95% CI` row per quantity (`[lo, hi]`).
///
/// # Errors
/// [`AnalysisError::Report`](super::AnalysisError::Report) if two rewards share a name.
pub fn table1(rm_eval: &RmEvalFile) -> Result<Table> {
    let mut columns = vec!["Quantity".to_string()];
    columns.extend(rm_eval.rewards.iter().map(|r| r.name.clone()));
    let mut table = Table::new(
        "Table 1: reward variance and accuracy under the initial policy",
        columns,
    );
    let rows: [fn(&super::records::RmEvalRecord) -> f64; 3] = [
        |r| r.reward_variance,
        |r| r.on_policy_accuracy,
        |r| r.off_policy_accuracy,
    ];
    for (label, value) in TABLE1_ROWS.iter().zip(rows) {
        let mut row = vec![Cell::from(*label)];
        row.extend(rm_eval.rewards.iter().map(|r| Cell::Float(value(r))));
        table.push_row(row)?;
    }
    if rm_eval.rewards.iter().any(|r| r.intervals.is_some()) {
        let cis: [fn(&super::records::Table1Intervals) -> Option<super::bootstrap::Interval>; 3] = [
            |i| i.reward_variance,
            |i| i.on_policy_accuracy,
            |i| i.off_policy_accuracy,
        ];
        for (label, ci) in TABLE1_ROWS.iter().zip(cis) {
            let mut row = vec![Cell::Text(format!("{label} 95% CI"))];
            row.extend(rm_eval.rewards.iter().map(|r| {
                r.intervals
                    .as_ref()
                    .and_then(ci)
                    .map_or(Cell::Missing, |i| Cell::Text(i.text()))
            }));
            table.push_row(row)?;
        }
    }
    Ok(table)
}
