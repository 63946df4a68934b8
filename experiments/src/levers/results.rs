//! The levers experiment's outcomes, read back from its runs' records (`eval.jsonl`,
//! `metrics.jsonl`), summarised with bootstrap intervals over seeds, and stored as
//! `levers.json` (reload it with [`LeverResults::read`]).

use super::{lever_rows, Lever, Variant};
use crate::analysis::bootstrap::mean_interval;
use crate::records::eval::{read_eval_log, EVAL_LOG_FILE};
use crate::records::interval::Interval;
use crate::rundir::{read_json, write_json};
use crate::stages::pg::PgRecord;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Seed of the bootstrap resampling.
const BOOTSTRAP_SEED: u64 = 0;

/// One seed's outcome of one variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedOutcome {
    /// The training seed.
    pub seed: u64,
    /// Mean over updates of the within-prompt standard deviation of the (scaled)
    /// training scores; with prompt selection, of the prompts trained on.
    pub train_std: f64,
    /// Variance of the (scaled) training reward under the initial policy (evaluation).
    pub initial_variance: f64,
    /// On-policy accuracy of the training reward under the initial policy.
    pub accuracy: f64,
    /// Increase of the (unscaled, normalised) training reward at the last epoch.
    pub proxy_increase: f64,
    /// Increase of the ground-truth reward at the last epoch.
    pub gt_increase: f64,
    /// KL from the initial policy at the last epoch.
    pub kl: f64,
}

/// A mean over seeds with its 95% bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// Mean over seeds.
    pub mean: f64,
    /// 95% bootstrap interval of the mean (`None`: too few seeds).
    pub interval: Option<Interval>,
}

impl Estimate {
    /// The estimate of `values`.
    pub fn of(values: &[f64]) -> Self {
        Self {
            mean: values.iter().sum::<f64>() / values.len().max(1) as f64,
            interval: mean_interval(values, BOOTSTRAP_SEED),
        }
    }

    /// `mean [lo, hi]` to 3 significant digits.
    pub fn text(&self) -> String {
        let f = |x: f64| rmteach::report::format_float(x, 3);
        match self.interval {
            Some(i) => format!("{} [{}, {}]", f(self.mean), f(i.lo), f(i.hi)),
            None => f(self.mean),
        }
    }
}

/// A variant with its per-seed outcomes and their summaries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantOutcome {
    /// What was run.
    pub variant: Variant,
    /// Per seed.
    pub seeds: Vec<SeedOutcome>,
    /// Within-prompt reward std in training.
    pub train_std: Estimate,
    /// Reward variance under the initial policy.
    pub initial_variance: Estimate,
    /// On-policy accuracy.
    pub accuracy: Estimate,
    /// Proxy increase.
    pub proxy_increase: Estimate,
    /// Ground-truth increase.
    pub gt_increase: Estimate,
    /// KL at the last epoch.
    pub kl: Estimate,
}

impl VariantOutcome {
    /// The outcome of `variant` from its seeds' outcomes.
    pub fn new(variant: Variant, seeds: Vec<SeedOutcome>) -> Self {
        let est =
            |f: fn(&SeedOutcome) -> f64| Estimate::of(&seeds.iter().map(f).collect::<Vec<_>>());
        Self {
            variant,
            train_std: est(|s| s.train_std),
            initial_variance: est(|s| s.initial_variance),
            accuracy: est(|s| s.accuracy),
            proxy_increase: est(|s| s.proxy_increase),
            gt_increase: est(|s| s.gt_increase),
            kl: est(|s| s.kl),
            seeds,
        }
    }
}

/// A variant against its lever's reference: seed-paired differences.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contrast {
    /// The variant's run.
    pub variant: String,
    /// The reference's run.
    pub reference: String,
    /// Ground-truth increase, variant minus reference.
    pub gt_difference: Estimate,
    /// Proxy increase, variant minus reference.
    pub proxy_difference: Estimate,
}

/// Everything the report shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeverResults {
    /// Trainable parameters of the policy.
    pub parameters: usize,
    /// SGD's learning rate (`lr_adam sqrt(parameters)`).
    pub sgd_lr: f64,
    /// Every run.
    pub variants: Vec<VariantOutcome>,
}

/// The file [`LeverResults`] is stored in.
pub const RESULTS_FILE: &str = "levers.json";

impl LeverResults {
    /// Reads every variant's records under the experiment directory `dir`.
    pub fn load(dir: &Path, variants: &[Variant], sgd_lr: f64, parameters: usize) -> Result<Self> {
        let variants = variants
            .iter()
            .map(|v| load_variant(&dir.join(&v.name), v))
            .collect::<Result<_>>()?;
        Ok(Self {
            parameters,
            sgd_lr,
            variants,
        })
    }

    /// Writes `dir/levers.json`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        write_json(&dir.join(RESULTS_FILE), self)
    }

    /// Reads a `levers.json`.
    pub fn read(path: &Path) -> Result<Self> {
        read_json(path)
    }

    /// The outcome of the run `name`.
    pub fn get(&self, name: &str) -> Option<&VariantOutcome> {
        self.variants.iter().find(|v| v.variant.name == name)
    }

    /// The outcomes of `lever`'s rows, its reference first.
    pub fn rows(&self, lever: Lever) -> Vec<&VariantOutcome> {
        let variants: Vec<Variant> = self.variants.iter().map(|v| v.variant.clone()).collect();
        lever_rows(&variants, lever)
            .into_iter()
            .filter_map(|v| self.get(&v.name))
            .collect()
    }

    /// `variant` against `reference`, paired by seed (`None` when either is missing
    /// or they share no seed).
    pub fn contrast(&self, variant: &str, reference: &str) -> Option<Contrast> {
        let (a, b) = (self.get(variant)?, self.get(reference)?);
        let pairs: Vec<(&SeedOutcome, &SeedOutcome)> = a
            .seeds
            .iter()
            .filter_map(|s| b.seeds.iter().find(|r| r.seed == s.seed).map(|r| (s, r)))
            .collect();
        if pairs.is_empty() {
            return None;
        }
        let diff = |f: fn(&SeedOutcome) -> f64| {
            Estimate::of(&pairs.iter().map(|(s, r)| f(s) - f(r)).collect::<Vec<_>>())
        };
        Some(Contrast {
            variant: variant.into(),
            reference: reference.into(),
            gt_difference: diff(|s| s.gt_increase),
            proxy_difference: diff(|s| s.proxy_increase),
        })
    }
}

/// The outcome of one run directory.
fn load_variant(run: &Path, v: &Variant) -> Result<VariantOutcome> {
    let pg = run.join("pg").join(&v.reward);
    let mut seeds: Vec<u64> = std::fs::read_dir(&pg)
        .map_err(|source| Error::Io {
            path: pg.clone(),
            source,
        })?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("seed")?.parse().ok())
        .collect();
    seeds.sort_unstable();
    let seeds = seeds
        .into_iter()
        .map(|seed| load_seed(&pg.join(format!("seed{seed}")), seed, v.reward_scale))
        .collect::<Result<Vec<_>>>()?;
    Ok(VariantOutcome::new(v.clone(), seeds))
}

/// One seed's outcome from its `eval.jsonl` (epoch 0 and the last) and `metrics.jsonl`.
fn load_seed(dir: &Path, seed: u64, scale: f64) -> Result<SeedOutcome> {
    let evals =
        read_eval_log(&dir.join(EVAL_LOG_FILE)).map_err(crate::analysis::AnalysisError::from)?;
    let missing = || {
        Error::Input(format!(
            "{}: no epoch-0 and final evaluations",
            dir.display()
        ))
    };
    let (first, last) = match (evals.first(), evals.last()) {
        (Some(f), Some(l)) if f.epoch == 0 && l.epoch > 0 => (f, l),
        _ => return Err(missing()),
    };
    let path = dir.join("metrics.jsonl");
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    let records = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str::<PgRecord>(l)
                .map_err(|e| Error::Input(format!("{}: {e}", path.display())))
        })
        .collect::<Result<Vec<_>>>()?;
    let stds: Vec<f64> = records
        .iter()
        .filter_map(|r| {
            r.kept_group_std
                .or(r.spread.as_ref().map(|s| s.group_reward_std))
        })
        .collect();
    Ok(SeedOutcome {
        seed,
        train_std: stds.iter().sum::<f64>() / stds.len().max(1) as f64,
        initial_variance: first.proxy.variance * scale * scale,
        accuracy: first.proxy.on_policy_accuracy,
        proxy_increase: last.proxy.mean - first.proxy.mean,
        gt_increase: last.ground_truth.mean - first.ground_truth.mean,
        kl: last.kl,
    })
}
