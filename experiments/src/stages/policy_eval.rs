//! Evaluation of the policy during policy gradient: the run's one shared evaluation of
//! the initial policy (`baseline/baseline.json`, every seed's epoch 0), the per-epoch
//! evaluation hook, and the `eval.jsonl` record they write.

use crate::models::Model;
use crate::rundir::{MetricsLog, Stepped};
use crate::stages::batches::{mix_seed, ChatCodec};
use crate::stages::evaluate::{evaluate, EvalOptions, RewardStats};
use crate::stages::pg::{PgHooks, PgRecord};
use crate::stages::rewards::RewardFn;
use crate::{Error, Result};
use candle_core::Device;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

pub use crate::records::EvalRecord;

impl Stepped for EvalRecord {
    fn step(&self) -> u64 {
        u64::from(self.epoch)
    }
}

/// One reward's scores in the shared initial evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineReward {
    /// Mean, per-prompt variance and on-policy accuracy.
    pub stats: RewardStats,
    /// Mean of each evaluation prompt.
    pub per_prompt: Vec<f64>,
}

/// `baseline/baseline.json`: the initial policy evaluated once for the whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// Evaluation prompts.
    pub prompts: usize,
    /// Samples per prompt.
    pub samples_per_prompt: usize,
    /// The normalised ground truth.
    pub ground_truth: BaselineReward,
    /// Every training reward, normalised (scaled, for the low-variance reward).
    pub rewards: BTreeMap<String, BaselineReward>,
}

impl Baseline {
    /// The epoch-0 record of training reward `name`.
    pub(crate) fn record(&self, name: &str) -> Result<EvalRecord> {
        let p = self.rewards.get(name).ok_or_else(|| {
            Error::Input(format!(
                "baseline/baseline.json has no reward `{name}`; delete baseline/ to redo it"
            ))
        })?;
        Ok(EvalRecord {
            epoch: 0,
            update: 0,
            proxy: p.stats,
            ground_truth: self.ground_truth.stats,
            kl: 0.0,
            train_kl: None,
            kl_eval_topk: None,
            proxy_per_prompt: p.per_prompt.clone(),
            gt_per_prompt: self.ground_truth.per_prompt.clone(),
            seconds: 0.0,
        })
    }
}

/// Epochs whose rollouts the reported KL averages: the last quarter of the epoch.
const KL_WINDOW_EPOCHS: f64 = 0.25;

/// Evaluates the policy at every epoch end into `eval.jsonl`.
pub(crate) struct EvalHook<'a> {
    /// The initial policy (the KL reference).
    pub reference: &'a Model,
    /// Its tokenizer and template.
    pub codec: &'a ChatCodec,
    /// The evaluation prompts.
    pub prompts: &'a [String],
    /// The normalised training reward.
    pub proxy: &'a dyn RewardFn,
    /// The normalised ground truth.
    pub gt: &'a dyn RewardFn,
    /// Sampling settings (with the prompts' keys).
    pub base: EvalOptions,
    /// Seed of this training seed's evaluation streams.
    pub seed: u64,
    /// Where the models live.
    pub device: &'a Device,
    /// The stage's `eval.jsonl`.
    pub path: PathBuf,
    /// The stage's per-update `metrics.jsonl` (the rollout KLs).
    pub metrics: PathBuf,
    /// Epoch 0: the run's shared initial evaluation, written when the stage starts
    /// unless already recorded.
    pub initial: EvalRecord,
}

impl EvalHook<'_> {
    fn eval(&self, epoch: u64, policy: &Model, record: &PgRecord) -> Result<EvalRecord> {
        let start = Instant::now();
        let o = EvalOptions {
            seed: mix_seed(self.seed, epoch),
            ..self.base.clone()
        };
        let r = evaluate(
            policy,
            Some(self.reference),
            self.codec,
            self.prompts,
            self.proxy,
            self.gt,
            &o,
            self.device,
        )?;
        Ok(EvalRecord {
            epoch: u32::try_from(epoch)
                .map_err(|_| Error::Input(format!("epoch {epoch} does not fit eval.jsonl")))?,
            update: record.update,
            proxy: r.proxy,
            ground_truth: r.ground_truth,
            kl: self.rollout_kl(epoch, record)?,
            train_kl: Some(record.kl),
            kl_eval_topk: r.kl,
            proxy_per_prompt: r.proxy_per_prompt,
            gt_per_prompt: r.gt_per_prompt,
            seconds: start.elapsed().as_secs_f64(),
        })
    }

    /// Mean rollout KL of the updates in the last [`KL_WINDOW_EPOCHS`] of epoch
    /// `epoch` (at least the update that ended it): KL on the policy's own samples.
    fn rollout_kl(&self, epoch: u64, last: &PgRecord) -> Result<f64> {
        let records: Vec<PgRecord> = MetricsLog::read_all(&self.metrics)?;
        let from = epoch as f64 - KL_WINDOW_EPOCHS;
        let window: Vec<f64> = records
            .iter()
            .filter(|r| r.epoch > from && r.update <= last.update)
            .map(|r| r.kl)
            .collect();
        Ok(if window.is_empty() {
            last.kl
        } else {
            window.iter().sum::<f64>() / window.len() as f64
        })
    }
}

impl PgHooks for EvalHook<'_> {
    fn start(&mut self) -> Result<()> {
        let (mut log, kept) = MetricsLog::resume::<EvalRecord>(&self.path, None)?;
        if kept.iter().any(|r| r.epoch == 0) {
            return Ok(());
        }
        log.append(&self.initial)
    }

    fn epoch_end(&mut self, epoch: u64, policy: &Model, record: &PgRecord) -> Result<()> {
        let rec = self.eval(epoch, policy, record)?;
        // Idempotent: a resumed run that repeats an epoch replaces its record.
        let (mut log, _) = MetricsLog::resume::<EvalRecord>(&self.path, Some(epoch - 1))?;
        log.append(&rec)
    }
}
