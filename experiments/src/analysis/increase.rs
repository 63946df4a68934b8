//! Reward increase over the initial policy, and its mean ± std over seeds.

use rmteach::metrics::{sample_variance, VarianceEstimator};

use super::error::{AnalysisError, Result};
use super::load::SeedRun;
use crate::records::EvalRecord;

/// Mean and standard deviation of one quantity over seeds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanStd {
    /// Mean over seeds.
    pub mean: f64,
    /// Sample standard deviation (divisor n - 1); `None` with a single seed.
    pub std: Option<f64>,
}

impl MeanStd {
    /// Mean and sample std of `xs` (non-empty, finite).
    ///
    /// # Errors
    /// [`AnalysisError::NoSeeds`] when `xs` is empty, [`AnalysisError::Statistic`]
    /// when a value is not finite.
    pub fn of(xs: &[f64]) -> Result<Self> {
        if xs.is_empty() {
            return Err(AnalysisError::NoSeeds);
        }
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let std = if xs.len() < 2 {
            None
        } else {
            let var = sample_variance(xs, VarianceEstimator::Unbiased).map_err(|source| {
                AnalysisError::Statistic {
                    what: "std over seeds",
                    source,
                }
            })?;
            Some(var.sqrt())
        };
        Ok(Self { mean, std })
    }

    /// The std, or 0 where it is undefined (for error bands).
    pub fn std_or_zero(&self) -> f64 {
        self.std.unwrap_or(0.0)
    }
}

/// One seed's increase at one epoch: value at the epoch minus value at epoch 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Increase {
    /// The epoch.
    pub epoch: u32,
    /// Proxy reward increase.
    pub proxy: f64,
    /// Ground-truth reward increase.
    pub ground_truth: f64,
    /// KL from the initial policy (not differenced: it is 0 at epoch 0 by definition).
    pub kl: f64,
}

/// Per-epoch increases of one seed (epoch 0 included, where they are 0); `None` when
/// the seed has no epoch-0 record.
pub fn seed_increases(records: &[EvalRecord]) -> Option<Vec<Increase>> {
    let base = records.iter().find(|r| r.epoch == 0)?;
    Some(
        records
            .iter()
            .map(|r| Increase {
                epoch: r.epoch,
                proxy: r.proxy.mean - base.proxy.mean,
                ground_truth: r.ground_truth.mean - base.ground_truth.mean,
                kl: r.kl,
            })
            .collect(),
    )
}

/// Mean ± std over seeds at one epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochSummary {
    /// The epoch.
    pub epoch: u32,
    /// How many seeds reached this epoch (and are averaged here).
    pub n_seeds: usize,
    /// Proxy reward increase.
    pub proxy: MeanStd,
    /// Ground-truth reward increase.
    pub ground_truth: MeanStd,
    /// KL from the initial policy.
    pub kl: MeanStd,
}

/// The per-epoch summary of one reward's seeds, for every epoch any seed reached.
///
/// # Errors
/// [`AnalysisError::NoInitialRecord`] naming `reward` and the seed without epoch 0.
pub fn summarize(reward: &str, seeds: &[SeedRun]) -> Result<Vec<EpochSummary>> {
    let per_seed = seeds
        .iter()
        .map(|s| {
            seed_increases(&s.records).ok_or_else(|| AnalysisError::NoInitialRecord {
                reward: reward.to_string(),
                seed: s.seed,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut epochs: Vec<u32> = per_seed.iter().flatten().map(|i| i.epoch).collect();
    epochs.sort_unstable();
    epochs.dedup();
    epochs
        .into_iter()
        .map(|epoch| {
            let at: Vec<&Increase> = per_seed
                .iter()
                .filter_map(|s| s.iter().find(|i| i.epoch == epoch))
                .collect();
            let pick = |f: fn(&Increase) -> f64| at.iter().map(|i| f(i)).collect::<Vec<_>>();
            Ok(EpochSummary {
                epoch,
                n_seeds: at.len(),
                proxy: MeanStd::of(&pick(|i| i.proxy))?,
                ground_truth: MeanStd::of(&pick(|i| i.ground_truth))?,
                kl: MeanStd::of(&pick(|i| i.kl))?,
            })
        })
        .collect()
}

/// The summary at `epoch`, if any seed reached it.
pub fn at_epoch(summary: &[EpochSummary], epoch: u32) -> Option<&EpochSummary> {
    summary.iter().find(|s| s.epoch == epoch)
}
