//! Table 1: reward variance and on-/off-policy accuracy of every reward.

use rmteach::report::{Cell, Table};

use super::error::Result;
use super::records::RmEvalFile;

/// Row labels of Table 1, in the paper's order.
pub const TABLE1_ROWS: [&str; 3] = ["Reward Variance", "On-Policy Acc.", "Off-Policy Acc."];

/// Table 1: rows Reward Variance / On-Policy Acc. / Off-Policy Acc.; one column per
/// reward in `rm_eval.json` order (the ground truth included, as in the paper).
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
    Ok(table)
}
