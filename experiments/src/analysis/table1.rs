//! Table 1: reward variance and on-/off-policy accuracy of every reward, and, where
//! `rm_eval.json` has them, each number's 95% bootstrap interval over prompts; and
//! the note on what the low-variance reward scaled.

use rmteach::report::{Cell, Table};

use super::error::Result;
use super::load::RewardColumn;
use crate::records::{
    Interval, LowVarianceOrder, LowVarianceRecord, RmEvalEntry, Table1Intervals, LOW_VARIANCE,
};

/// Row labels of Table 1, in the paper's order.
pub const TABLE1_ROWS: [&str; 3] = ["Reward Variance", "On-Policy Acc.", "Off-Policy Acc."];

/// Table 1: rows Reward Variance / On-Policy Acc. / Off-Policy Acc.; one column per
/// reward in `rm_eval.json` order (the ground truth included, as in the paper); then,
/// when any reward has intervals, one `... 95% CI` row per quantity (`[lo, hi]`).
///
/// # Errors
/// [`AnalysisError::Report`](super::AnalysisError::Report) if two rewards share a name.
pub fn table1(rewards: &[RewardColumn]) -> Result<Table> {
    let mut columns = vec!["Quantity".to_string()];
    columns.extend(rewards.iter().map(|r| r.name.clone()));
    let mut table = Table::new(
        "Table 1: reward variance and accuracy under the initial policy",
        columns,
    );
    let rows: [fn(&RmEvalEntry) -> f64; 3] = [
        |r| r.reward_variance,
        |r| r.on_policy_accuracy,
        |r| r.off_policy_accuracy,
    ];
    for (label, value) in TABLE1_ROWS.iter().zip(rows) {
        let mut row = vec![Cell::from(*label)];
        row.extend(rewards.iter().map(|r| Cell::Float(value(&r.entry))));
        table.push_row(row)?;
    }
    if rewards.iter().any(|r| r.entry.intervals.is_some()) {
        let cis: [fn(&Table1Intervals) -> Option<Interval>; 3] = [
            |i| i.reward_variance,
            |i| i.on_policy_accuracy,
            |i| i.off_policy_accuracy,
        ];
        for (label, ci) in TABLE1_ROWS.iter().zip(cis) {
            let mut row = vec![Cell::Text(format!("{label} 95% CI"))];
            row.extend(rewards.iter().map(|r| {
                r.entry
                    .intervals
                    .as_ref()
                    .and_then(ci)
                    .map_or(Cell::Missing, |i| Cell::Text(i.text()))
            }));
            table.push_row(row)?;
        }
    }
    Ok(table)
}

/// The sentence the report prints under Table 1 on what the low-variance reward
/// scaled (`l`), as realised, of `table1_prompts` Table 1 prompts.
pub fn low_variance_note(l: &LowVarianceRecord, table1_prompts: usize) -> String {
    let by = |o: LowVarianceOrder| {
        l.reward_variance_by_order
            .get(o.name())
            .map_or_else(|| "?".into(), |v| format!("{v:.4}"))
    };
    format!(
        "`{}` scales {} of {} RLHF prompts by {} (chosen by index: fraction {:.3}; \
         {} of the {} Table 1 prompts, {:.3}); normalisation order `{}` ({}). Its \
         Table 1 reward variance under `{}`: {}; under `{}`: {}.",
        LOW_VARIANCE,
        l.scaled_count,
        l.rlhf_prompts,
        l.scale,
        l.scaled_fraction,
        l.table1_scaled_count,
        table1_prompts,
        l.table1_scaled_fraction,
        l.order,
        if l.order == LowVarianceOrder::ScaleThenNormalize {
            "the authors' code"
        } else {
            "not the authors' order"
        },
        LowVarianceOrder::ScaleThenNormalize,
        by(LowVarianceOrder::ScaleThenNormalize),
        LowVarianceOrder::NormalizeThenScale,
        by(LowVarianceOrder::NormalizeThenScale),
    )
}
