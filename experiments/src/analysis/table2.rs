//! Table 2: correlation of the reward increase after one epoch with reward-model
//! properties, across the reward models (the ground truth excluded).

use rmteach::metrics::{pearson, spearman};
use rmteach::report::{Cell, Table};

use super::error::Result;
use super::increase::{at_epoch, EpochSummary};
use super::load::RunData;

/// Which accuracy the "Reward Variance & Acc." row averages with reward variance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CombinedAccuracy {
    /// On-policy accuracy (the default).
    #[default]
    OnPolicy,
    /// The mean of on- and off-policy accuracy.
    OnAndOffPolicy,
}

/// Options of [`table2`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table2Options {
    /// The epoch whose increase is correlated (the paper: 1).
    pub epoch: u32,
    /// The accuracy combined with reward variance in the last row.
    pub combined_accuracy: CombinedAccuracy,
}

impl Default for Table2Options {
    fn default() -> Self {
        Self {
            epoch: 1,
            combined_accuracy: CombinedAccuracy::default(),
        }
    }
}

/// Row labels of Table 2, in the paper's order.
pub const TABLE2_ROWS: [&str; 5] = [
    "Reward Variance",
    "On-Policy Acc.",
    "Off-Policy Acc.",
    "On- & Off-Policy Acc.",
    "Reward Variance & Acc.",
];

/// Column names of Table 2.
pub const TABLE2_COLUMNS: [&str; 6] = [
    "Quantity",
    "Proxy Pearson",
    "Proxy Spearman",
    "GT Pearson",
    "GT Spearman",
    "Note",
];

/// Pearson and Spearman correlation, `None` where undefined.
#[derive(Debug, Clone, PartialEq)]
pub struct Correlation {
    /// Pearson coefficient.
    pub pearson: Option<f64>,
    /// Spearman coefficient.
    pub spearman: Option<f64>,
    /// Why a coefficient is missing, if one is.
    pub note: Option<String>,
}

/// Both correlations of `x` and `y` via [`rmteach::metrics`]; an undefined one
/// (constant input, fewer than two points) becomes `None` with the reason.
pub fn correlate(x: &[f64], y: &[f64]) -> Correlation {
    let p = pearson(x, y);
    let s = spearman(x, y);
    let note = p
        .as_ref()
        .err()
        .or(s.as_ref().err())
        .map(ToString::to_string);
    Correlation {
        pearson: p.ok(),
        spearman: s.ok(),
        note,
    }
}

/// The inputs and outputs of Table 2.
#[derive(Debug, Clone, PartialEq)]
pub struct Table2 {
    /// The reward models correlated over (ground truth and rewards without data at
    /// the epoch excluded).
    pub rewards: Vec<String>,
    /// Mean proxy increase at the epoch, per reward model.
    pub proxy_increase: Vec<f64>,
    /// Mean ground-truth increase at the epoch, per reward model.
    pub gt_increase: Vec<f64>,
    /// Per row of [`TABLE2_ROWS`]: the property vector over `rewards`.
    pub properties: Vec<Vec<f64>>,
    /// Per row: correlation with the proxy increase and with the GT increase.
    pub correlations: Vec<(Correlation, Correlation)>,
    /// Rewards left out, and why.
    pub excluded: Vec<String>,
    /// The rendered table.
    pub table: Table,
}

/// Builds Table 2 from a run and its per-reward summaries (same order as
/// `data.rm_eval.rewards`).
///
/// # Errors
/// [`AnalysisError::Report`](super::AnalysisError::Report) only on an internal
/// table-shape error.
pub fn table2(
    data: &RunData,
    summaries: &[Vec<EpochSummary>],
    opts: Table2Options,
) -> Result<Table2> {
    let mut rewards = Vec::new();
    let (mut proxy_increase, mut gt_increase) = (Vec::new(), Vec::new());
    let mut properties = vec![Vec::new(); TABLE2_ROWS.len()];
    let mut excluded = Vec::new();
    for (r, summary) in data.rm_eval.rewards.iter().zip(summaries) {
        if r.ground_truth {
            excluded.push(format!("{} (the ground truth itself, a baseline)", r.name));
            continue;
        }
        let Some(at) = at_epoch(summary, opts.epoch) else {
            excluded.push(format!(
                "{} (no evaluation at epoch {})",
                r.name, opts.epoch
            ));
            continue;
        };
        rewards.push(r.name.clone());
        proxy_increase.push(at.proxy.mean);
        gt_increase.push(at.ground_truth.mean);
        let on_off = 0.5 * (r.on_policy_accuracy + r.off_policy_accuracy);
        let acc = match opts.combined_accuracy {
            CombinedAccuracy::OnPolicy => r.on_policy_accuracy,
            CombinedAccuracy::OnAndOffPolicy => on_off,
        };
        let values = [
            r.reward_variance,
            r.on_policy_accuracy,
            r.off_policy_accuracy,
            on_off,
            0.5 * (r.reward_variance + acc),
        ];
        for (column, v) in properties.iter_mut().zip(values) {
            column.push(v);
        }
    }
    let correlations: Vec<_> = properties
        .iter()
        .map(|x| (correlate(x, &proxy_increase), correlate(x, &gt_increase)))
        .collect();
    let title = format!(
        "Table 2: correlation with the reward increase after epoch {} across {} reward models",
        opts.epoch,
        rewards.len()
    );
    let mut table = Table::new(title, TABLE2_COLUMNS);
    for (label, (proxy, gt)) in TABLE2_ROWS.iter().zip(&correlations) {
        let notes: Vec<String> = [("proxy", proxy), ("GT", gt)]
            .iter()
            .filter_map(|(which, c)| {
                c.note
                    .as_ref()
                    .map(|n| format!("{which} undefined (x = {label}, y = {which} increase): {n}"))
            })
            .collect();
        table.push_row(vec![
            Cell::from(*label),
            proxy.pearson.into(),
            proxy.spearman.into(),
            gt.pearson.into(),
            gt.spearman.into(),
            Cell::Text(notes.join("; ")),
        ])?;
    }
    Ok(Table2 {
        rewards,
        proxy_increase,
        gt_increase,
        properties,
        correlations,
        excluded,
        table,
    })
}
