//! Table 2: correlation of the reward increase after one epoch with reward-model
//! properties, across the reward models (the ground truth excluded), each with its 95%
//! bootstrap interval over prompts and seeds (see [`super::uncertainty`]). Every
//! reward model is compared on the same seeds: seeds that some lack at the epoch are
//! left out (and named).

use rmteach::metrics::{pearson, spearman};
use rmteach::report::{Cell, Table};

use super::bootstrap::{percentile_interval, Interval};
use super::error::Result;
use super::increase::EpochSummary;
use super::load::RunData;
use super::uncertainty::{increases, property_replicates};

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

/// Column names of Table 2: the four coefficients, their 95% bootstrap intervals
/// (2.5% and 97.5% percentiles), and a note.
pub const TABLE2_COLUMNS: [&str; 14] = [
    "Quantity",
    "Proxy Pearson",
    "Proxy Spearman",
    "GT Pearson",
    "GT Spearman",
    "Proxy Pearson 2.5%",
    "Proxy Pearson 97.5%",
    "Proxy Spearman 2.5%",
    "Proxy Spearman 97.5%",
    "GT Pearson 2.5%",
    "GT Pearson 97.5%",
    "GT Spearman 2.5%",
    "GT Spearman 97.5%",
    "Note",
];

/// Pearson and Spearman correlation, `None` where undefined, with their 95% bootstrap
/// intervals where the run logged per-prompt values.
#[derive(Debug, Clone, PartialEq)]
pub struct Correlation {
    /// Pearson coefficient.
    pub pearson: Option<f64>,
    /// Spearman coefficient.
    pub spearman: Option<f64>,
    /// Why a coefficient is missing, if one is.
    pub note: Option<String>,
    /// 95% bootstrap interval of the Pearson coefficient.
    pub pearson_ci: Option<Interval>,
    /// 95% bootstrap interval of the Spearman coefficient.
    pub spearman_ci: Option<Interval>,
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
        pearson_ci: None,
        spearman_ci: None,
    }
}

/// The five Table 2 properties from variance, on- and off-policy accuracy.
fn property_row(var: f64, on: f64, off: f64, combined: CombinedAccuracy) -> [f64; 5] {
    let on_off = 0.5 * (on + off);
    let acc = match combined {
        CombinedAccuracy::OnPolicy => on,
        CombinedAccuracy::OnAndOffPolicy => on_off,
    };
    [var, on, off, on_off, 0.5 * (var + acc)]
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
    /// The seeds every correlated reward model has at the epoch (the increases average
    /// these).
    pub seeds: Vec<u64>,
    /// 95% bootstrap interval of the GT Pearson of "Reward Variance & Acc." minus that
    /// of "On-Policy Acc." (does combining help?).
    pub combined_minus_accuracy_ci: Option<Interval>,
    /// The rendered table.
    pub table: Table,
}

/// Builds Table 2 from a run and its per-reward summaries (same order as
/// `data.rewards`).
///
/// # Errors
/// [`AnalysisError::Report`](super::AnalysisError::Report) only on an internal
/// table-shape error.
pub fn table2(
    data: &RunData,
    summaries: &[Vec<EpochSummary>],
    opts: Table2Options,
) -> Result<Table2> {
    let mut included = Vec::new();
    let mut excluded = Vec::new();
    for (i, (r, summary)) in data.rewards.iter().zip(summaries).enumerate() {
        if r.ground_truth {
            excluded.push(format!("{} (the ground truth itself, a baseline)", r.name));
        } else if !summary.iter().any(|s| s.epoch == opts.epoch) {
            excluded.push(format!(
                "{} (no evaluation at epoch {})",
                r.name, opts.epoch
            ));
        } else {
            included.push(i);
        }
    }
    let inc = increases(data, &included, opts.epoch);
    if !inc.dropped_seeds.is_empty() {
        excluded.push(format!(
            "seed(s) {:?} (not reached at epoch {} by every reward model; the increases \
             average seeds {:?})",
            inc.dropped_seeds, opts.epoch, inc.seeds
        ));
    }
    let records: Vec<_> = included.iter().map(|&i| &data.rewards[i]).collect();
    let rewards: Vec<String> = records.iter().map(|r| r.name.clone()).collect();
    let mut properties = vec![Vec::new(); TABLE2_ROWS.len()];
    for r in &records {
        let row = property_row(
            r.entry.reward_variance,
            r.entry.on_policy_accuracy,
            r.entry.off_policy_accuracy,
            opts.combined_accuracy,
        );
        for (column, v) in properties.iter_mut().zip(row) {
            column.push(v);
        }
    }
    let (proxy_increase, gt_increase) = (inc.proxy.clone(), inc.ground_truth.clone());
    let mut correlations: Vec<(Correlation, Correlation)> = properties
        .iter()
        .map(|x| (correlate(x, &proxy_increase), correlate(x, &gt_increase)))
        .collect();
    let mut combined_minus_accuracy_ci = None;
    if let (Some(inc_reps), Some(prop_reps)) = (&inc.replicates, property_replicates(&records)) {
        // reps[row][coefficient]: proxy Pearson, proxy Spearman, GT Pearson, GT Spearman.
        let mut reps = vec![vec![Vec::new(); 4]; TABLE2_ROWS.len()];
        let mut diffs = Vec::new();
        for (incs, props) in inc_reps.iter().zip(&prop_reps) {
            let (p_inc, g_inc): (Vec<f64>, Vec<f64>) = incs.iter().copied().unzip();
            let rows: Vec<[f64; 5]> = props
                .iter()
                .map(|&[v, on, off]| property_row(v, on, off, opts.combined_accuracy))
                .collect();
            let mut gt_pearson = [f64::NAN; 5];
            for (k, slot) in reps.iter_mut().enumerate() {
                let x: Vec<f64> = rows.iter().map(|r| r[k]).collect();
                let c = [
                    pearson(&x, &p_inc),
                    spearman(&x, &p_inc),
                    pearson(&x, &g_inc),
                    spearman(&x, &g_inc),
                ];
                for (j, v) in c.into_iter().enumerate() {
                    slot[j].push(v.unwrap_or(f64::NAN));
                }
                gt_pearson[k] = slot[2].last().copied().unwrap_or(f64::NAN);
            }
            diffs.push(gt_pearson[4] - gt_pearson[1]);
        }
        for ((proxy, gt), r) in correlations.iter_mut().zip(&reps) {
            proxy.pearson_ci = percentile_interval(&r[0]);
            proxy.spearman_ci = percentile_interval(&r[1]);
            gt.pearson_ci = percentile_interval(&r[2]);
            gt.spearman_ci = percentile_interval(&r[3]);
        }
        combined_minus_accuracy_ci = percentile_interval(&diffs);
    }
    let title = format!(
        "Table 2: correlation with the reward increase after epoch {} across {} reward models \
         (95% bootstrap intervals over prompts and seeds)",
        opts.epoch,
        rewards.len()
    );
    let mut table = Table::new(title, TABLE2_COLUMNS);
    let ends = |i: Option<Interval>| -> [Cell; 2] {
        match i {
            Some(i) => [Cell::Float(i.lo), Cell::Float(i.hi)],
            None => [Cell::Missing, Cell::Missing],
        }
    };
    for (label, (proxy, gt)) in TABLE2_ROWS.iter().zip(&correlations) {
        let notes: Vec<String> = [("proxy", proxy), ("GT", gt)]
            .iter()
            .filter_map(|(which, c)| {
                c.note
                    .as_ref()
                    .map(|n| format!("{which} undefined (x = {label}, y = {which} increase): {n}"))
            })
            .collect();
        let mut row = vec![
            Cell::from(*label),
            proxy.pearson.into(),
            proxy.spearman.into(),
            gt.pearson.into(),
            gt.spearman.into(),
        ];
        for ci in [
            proxy.pearson_ci,
            proxy.spearman_ci,
            gt.pearson_ci,
            gt.spearman_ci,
        ] {
            row.extend(ends(ci));
        }
        row.push(Cell::Text(notes.join("; ")));
        table.push_row(row)?;
    }
    Ok(Table2 {
        rewards,
        proxy_increase,
        gt_increase,
        properties,
        correlations,
        excluded,
        seeds: inc.seeds,
        combined_minus_accuracy_ci,
        table,
    })
}
