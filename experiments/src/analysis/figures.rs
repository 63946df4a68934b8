//! Figures: reward increase vs epoch, reward increase vs KL, and the Section 4.2
//! bar plot of ground-truth increase per reward model per policy.

use std::path::{Path, PathBuf};

use rmteach::plot::{BarPlot, BarSeries, GridPlot, LinePlot, Series, SeriesStyle};

use super::error::Result;
use super::increase::{at_epoch, EpochSummary, MeanStd};
use super::load::RunData;

/// Which increase a panel shows.
#[derive(Clone, Copy)]
enum Panel {
    Proxy,
    GroundTruth,
}

impl Panel {
    fn pick(self, e: &EpochSummary) -> &MeanStd {
        match self {
            Panel::Proxy => &e.proxy,
            Panel::GroundTruth => &e.ground_truth,
        }
    }

    fn title(self) -> &'static str {
        match self {
            Panel::Proxy => "Increase in reward used for training",
            Panel::GroundTruth => "Increase in ground truth reward",
        }
    }
}

/// One line per reward with data; the ground truth (a baseline) dashed.
fn panel(data: &RunData, summaries: &[Vec<EpochSummary>], which: Panel, vs_kl: bool) -> LinePlot {
    let mut plot = LinePlot::new(which.title())
        .x_label(if vs_kl {
            "KL from initial policy"
        } else {
            "epoch"
        })
        .y_label("reward increase");
    for (r, summary) in data.rewards.iter().zip(summaries) {
        if summary.is_empty() {
            continue;
        }
        let x = summary
            .iter()
            .map(|e| if vs_kl { e.kl.mean } else { f64::from(e.epoch) })
            .collect();
        let y = summary.iter().map(|e| which.pick(e).mean).collect();
        let err = summary
            .iter()
            .map(|e| which.pick(e).std_or_zero())
            .collect();
        let style = match (r.ground_truth, vs_kl) {
            (true, _) => SeriesStyle::Dashed,
            (false, true) => SeriesStyle::LinePoints,
            (false, false) => SeriesStyle::Line,
        };
        plot.push(Series::new(r.name.clone(), x, y).with_err(err).style(style));
    }
    plot
}

/// Two panels (proxy, ground truth) of mean increase vs epoch with ± std bands;
/// writes `<stem>.png` and `<stem>.svg`.
///
/// # Errors
/// [`AnalysisError::Plot`](super::AnalysisError::Plot), e.g. when no reward has data.
pub fn increase_vs_epoch(
    data: &RunData,
    summaries: &[Vec<EpochSummary>],
    stem: &Path,
) -> Result<Vec<PathBuf>> {
    let title = format!(
        "Reward increase during policy gradient ({}; lines: mean over seeds, bands: ± 1 std)",
        data.policy
    );
    Ok(GridPlot::new(title, 2)
        .with_panel(panel(data, summaries, Panel::Proxy, false))
        .with_panel(panel(data, summaries, Panel::GroundTruth, false))
        .render(stem)?)
}

/// Two panels of mean increase vs mean KL from the initial policy (one point per
/// epoch, ± std of the increase as bands).
///
/// # Errors
/// [`AnalysisError::Plot`](super::AnalysisError::Plot).
pub fn increase_vs_kl(
    data: &RunData,
    summaries: &[Vec<EpochSummary>],
    stem: &Path,
) -> Result<Vec<PathBuf>> {
    let title = format!(
        "Reward increase vs KL ({}; mean over seeds, bands: ± 1 std of the increase)",
        data.policy
    );
    Ok(GridPlot::new(title, 2)
        .with_panel(panel(data, summaries, Panel::Proxy, true))
        .with_panel(panel(data, summaries, Panel::GroundTruth, true))
        .render(stem)?)
}

/// The ground-truth increase of each reward model under one policy at one epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyIncrease {
    /// The policy (a bar group).
    pub policy: String,
    /// The epoch reported.
    pub epoch: u32,
    /// Per reward model (ground truth excluded): name and increase, `None` when
    /// the model has no evaluation at `epoch`.
    pub gt_increase: Vec<(String, Option<MeanStd>)>,
}

impl PolicyIncrease {
    /// Collects the ground-truth increases of `data` at `epoch`.
    pub fn from_run(data: &RunData, summaries: &[Vec<EpochSummary>], epoch: u32) -> Self {
        let gt_increase = data
            .rewards
            .iter()
            .zip(summaries)
            .filter(|(r, _)| !r.ground_truth)
            .map(|(r, s)| (r.name.clone(), at_epoch(s, epoch).map(|e| e.ground_truth)))
            .collect();
        Self {
            policy: data.policy.clone(),
            epoch,
            gt_increase,
        }
    }
}

/// Grouped bars: one group per policy, one bar per reward model (in order of first
/// appearance), height = mean GT increase, error bar = std over seeds. A reward
/// model missing for a policy is drawn as a zero-height bar; one with no increase
/// under any policy (e.g. a run's own RM that it trains but does not teach with) is
/// left out rather than drawn as zeros.
///
/// # Errors
/// [`AnalysisError::Plot`](super::AnalysisError::Plot), e.g. with no policies.
pub fn gt_increase_bars(policies: &[PolicyIncrease], stem: &Path) -> Result<Vec<PathBuf>> {
    let mut rms: Vec<&str> = Vec::new();
    for p in policies {
        for (name, _) in &p.gt_increase {
            if !rms.contains(&name.as_str()) {
                rms.push(name);
            }
        }
    }
    // Reward models with no increase anywhere are left out, unless none has one.
    let any_data = policies
        .iter()
        .any(|p| p.gt_increase.iter().any(|(_, m)| m.is_some()));
    let mut plot = BarPlot::new(
        "Ground truth reward increase per reward model (bars: mean over seeds, whiskers: ± 1 std)",
    )
    .y_label("increase in ground truth reward")
    .groups(
        policies
            .iter()
            .map(|p| format!("{} (epoch {})", p.policy, p.epoch)),
    );
    for rm in rms {
        let cells: Vec<Option<MeanStd>> = policies
            .iter()
            .map(|p| {
                p.gt_increase
                    .iter()
                    .find(|(n, _)| n == rm)
                    .and_then(|(_, m)| *m)
            })
            .collect();
        if cells.iter().all(Option::is_none) && any_data {
            continue;
        }
        let values = cells.iter().map(|m| m.map_or(0.0, |m| m.mean)).collect();
        let err = cells
            .iter()
            .map(|m| m.map_or(0.0, |m| m.std_or_zero()))
            .collect();
        plot = plot.with_bars(BarSeries::new(rm, values).with_err(err));
    }
    Ok(plot.render(stem)?)
}
