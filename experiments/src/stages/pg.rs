//! Policy gradient with RLOO (the paper's Section 4.1) or GRPO, resumable.
//!
//! One *update* = one rollout batch of `batch_size` completions (`batch_size / k`
//! prompts, `k` samples each; temperature 1, no top-k, stop at EOS), scored by a
//! [`RewardFn`] (normalised by the caller), then `mini_batches` optimiser steps
//! (AdamW, or SGD with `optimizer`) on the
//! clipped surrogate of the sequence-level ratio `exp(sum new logp - sum old logp)`.
//! - RLOO: reward = score - `beta * sum_t (log pi_old - log pi_ref)`, leave-one-out
//!   advantages, no whitening.
//! - GRPO: reward = score, group-standardised advantages, and `beta * sum_t k3` (the
//!   per-token `k3` estimate of `KL(pi || pi_ref)`) added to each completion's loss.
//!   By default ([`GrpoKl::Rollout`], the authors' code) `k3` comes from the
//!   rollout-time log-probabilities without gradient, so the term is a constant of the
//!   loss; [`GrpoKl::Differentiable`] (TRL's GRPO trainer) computes it from the current
//!   policy's log-probabilities, with gradient.
//!
//! Beyond the paper, two levers on reward variance (both off by default, leaving the
//! stage exactly as above):
//! - `reward_scale` `c`: the reward function's scores are multiplied by `c` before
//!   the KL penalty and the advantages (a global scale of the reward).
//! - `select_quantile` `q` (prompt selection by reward variance): of each rollout
//!   batch's prompts, only those whose within-prompt variance of the (scaled) scores
//!   over their `k` samples is above the batch's `q`-quantile are trained on (the top
//!   `ceil((1 - q) G)` of `G` prompts, see [`select_groups`]); the others' completions
//!   are dropped from the mini-batches, which keep their count (`mini_batches`
//!   optimiser steps on the kept completions). The variances come from the samples
//!   the update draws anyway: no extra generation, and no refill of the batch.
//!
//! Epochs count completions: `epochs * |prompts|` completions in all, the prompts
//! drawn in a fresh seeded order per pass. Every random draw derives from the seed and
//! the update index, so a run resumed from a checkpoint (weights, AdamW moments, step
//! counts; see [`super::checkpoint`]) repeats exactly what an uninterrupted run does.
//! Per-update metrics go to `<stage>/metrics.jsonl`, truncated to the checkpoint on
//! resume; the final policy to `<stage>/policy/` (Hugging Face layout).
//!
//! ## Precision and host transfers
//! [`Pg`] runs the policy and the frozen reference in `F32` or `BF16`.
//! Log-probabilities, ratios, advantages and the loss are f32 whatever the models'
//! dtype; for bf16 AdamW keeps f32 master weights, which the checkpoints and the final
//! policy store (see [`super::optim`]). Device-to-host copies per update: one per
//! generated token (the sampled ids, see [`crate::sample::pick_tokens`]); per rollout
//! chunk the old summed log-probabilities `(rows,)` and the reference per-token
//! log-probabilities `(rows, R)` (the KL penalty and the rewards are computed on the
//! host, where the reward function's scores are); the reward function's scores; one
//! gradient norm per optimiser step; and one `(loss, clipped)` pair per update,
//! accumulated on the device over the micro-batches.

use super::advantages::{
    group_spread, grpo_advantages, k3, kl_penalised, rloo_advantages, select_groups, GroupSpread,
};
use super::batches::{check_batch, mix_seed, order, ChatCodec};
use super::checkpoint::{self, TrainState};
use super::optim::{AdamW, OptimConfig, Optimizer};
use super::rewards::{checked_scores_keyed, RewardFn};
use super::sft::save_policy;
use super::stage::{Runtime, Stage};
use crate::hf::{load_checkpoint, read_config_json};
use crate::logprobs::{inference_logprobs, token_logprobs, SequenceBatch};
use crate::models::Model;
use crate::rundir::{MetricsLog, StageDir, Stepped};
use crate::sample::{generate, SamplingConfig};
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// The advantage estimator (`pg.algorithm`: `rloo` or `grpo`; checkpoints written
/// before this spelling stored `Rloo` / `Grpo`, still read).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PgAlgorithm {
    /// REINFORCE leave-one-out with the KL penalty in the reward.
    #[default]
    #[serde(alias = "Rloo")]
    Rloo,
    /// Group-standardised advantages with a `k3` KL loss term.
    #[serde(alias = "Grpo")]
    Grpo,
}

impl PgAlgorithm {
    /// The TOML spelling (`rloo`, `grpo`), also the name of an experiment's runs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Rloo => "rloo",
            Self::Grpo => "grpo",
        }
    }
}

/// Stored checkpoint options in today's spelling: checkpoints written before
/// [`PgAlgorithm`] took its TOML spelling stored the algorithm as `"Rloo"` / `"Grpo"`.
pub fn upgrade_options(mut stored: serde_json::Value) -> serde_json::Value {
    if let Some(a) = stored.get_mut("algorithm") {
        if let Ok(algorithm) = serde_json::from_value::<PgAlgorithm>(a.clone()) {
            *a = algorithm.name().into();
        }
    }
    stored
}

impl std::fmt::Display for PgAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How GRPO's `k3` KL term enters the loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrpoKl {
    /// From the rollout-time log-probabilities, no gradient (the authors' code).
    #[default]
    Rollout,
    /// From the current policy's log-probabilities, differentiated (TRL).
    Differentiable,
}

/// `[pg]` of a run config, and the settings the [`Pg`] stage takes as they are
/// (defaults: the paper's RLOO). `seeds` and `rewards` choose the stage's runs (the
/// pipeline runs it once per training reward and seed, [`Pg::seed`]); the stage reads
/// the rest. The surrogate clip range, gradient clipping and rollout temperature are
/// the paper's fixed values ([`CLIP_RANGE`], [`MAX_GRAD_NORM`], [`TEMPERATURE`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PgConfig {
    /// `rloo` or `grpo`.
    pub algorithm: PgAlgorithm,
    /// Samples per prompt (2).
    pub k: usize,
    /// KL coefficient (0.05).
    pub beta: f64,
    /// Constant learning rate (1e-7). With `adamw` each coordinate moves by about `lr`
    /// per step whatever the reward's scale; with `sgd` the step is `lr` times the
    /// (clipped) gradient, so it scales with the reward (n SGD steps follow the
    /// gradient flow for time n `lr`); see [`super::optim`].
    pub lr: f64,
    /// `"adamw"` (default, the paper's) or `"sgd"` (no momentum), both with the constant
    /// `lr` and clipping at gradient norm 1.
    #[serde(skip_serializing_if = "Optimizer::is_default")]
    pub optimizer: Optimizer,
    /// Completions per rollout batch (32; the TOML key is `batch`); a multiple of `k`
    /// and of `mini_batches`.
    #[serde(rename = "batch")]
    pub batch_size: usize,
    /// Optimiser steps per rollout batch (2).
    pub mini_batches: usize,
    /// Completions per forward pass, gradients accumulated (`None`: the mini-batch).
    pub micro_batch_size: Option<usize>,
    /// Training length in epochs of `|prompts|` completions (6).
    pub epochs: f64,
    /// Longest rollout response (512).
    pub max_new_tokens: usize,
    /// Training seeds ([0, 1, 2]): one run of the stage each.
    pub seeds: Vec<u64>,
    /// Checkpoint every this many updates (10; and at every epoch end and the last
    /// update).
    pub checkpoint_every: u64,
    /// Train on these rewards only (`None`: every RM, the low-variance reward, `gt`).
    pub rewards: Option<Vec<String>>,
    /// GRPO's `k3` KL term: `rollout` (the authors' code: from the rollout-time
    /// log-probabilities, no gradient) or `differentiable` (TRL: from the current
    /// policy, with gradient). Ignored by RLOO.
    pub grpo_kl: GrpoKl,
    /// Beyond the paper: multiply the (normalised) training reward by this global scale
    /// before the KL penalty (1: off). With `adamw` and `beta = 0` a global scale cancels;
    /// with `sgd` it scales every step.
    #[serde(skip_serializing_if = "is_one")]
    pub reward_scale: f64,
    /// Beyond the paper: prompt selection by reward variance. In each rollout batch
    /// train only on the prompts whose variance of the reward over their `k` samples
    /// (drawn anyway) is above this quantile of the batch's (0.5: the upper half);
    /// absent (default): every prompt. In [0, 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub select_quantile: Option<f64>,
}

impl Default for PgConfig {
    fn default() -> Self {
        Self {
            algorithm: PgAlgorithm::Rloo,
            k: 2,
            beta: 0.05,
            lr: 1e-7,
            optimizer: Optimizer::Adamw,
            batch_size: 32,
            mini_batches: 2,
            micro_batch_size: None,
            epochs: 6.0,
            max_new_tokens: 512,
            seeds: vec![0, 1, 2],
            checkpoint_every: 10,
            rewards: None,
            grpo_kl: GrpoKl::Rollout,
            reward_scale: 1.0,
            select_quantile: None,
        }
    }
}

/// Surrogate clipping range (0.2).
pub const CLIP_RANGE: f64 = 0.2;
/// Gradient clipping (1.0).
pub const MAX_GRAD_NORM: f64 = 1.0;
/// Rollout temperature (1); log-probabilities are always the policy's own.
pub const TEMPERATURE: f64 = 1.0;

/// The `[pg]` keys that choose the stage's runs rather than set one run: not part of a
/// checkpoint's options.
const RUN_LEVEL_KEYS: [&str; 2] = ["seeds", "rewards"];

impl PgConfig {
    /// The options a checkpoint of training seed `seed` records (`ckpt/*.json`), which
    /// a resume must match: these settings in the spelling checkpoints have always
    /// had, so checkpoints written before the config and the stage shared this type
    /// still resume: `batch_size` for the TOML's `batch`, the run-level `seeds` and
    /// `rewards` left out, the run's `seed` and the fixed `clip_range`,
    /// `max_grad_norm` and `temperature` added. (The one place the stage's record
    /// differs from the config's spelling; a new run-level key goes into
    /// `RUN_LEVEL_KEYS`, a new setting needs a `skip_serializing_if` at its default so
    /// older checkpoints keep resuming.)
    pub fn checkpoint_options(&self, seed: u64) -> Result<serde_json::Value> {
        let err = |e: serde_json::Error| Error::Input(format!("pg options: {e}"));
        let mut options = serde_json::to_value(self).map_err(err)?;
        let map = options
            .as_object_mut()
            .ok_or_else(|| Error::Input("pg options: not a JSON object".into()))?;
        for key in RUN_LEVEL_KEYS {
            map.remove(key);
        }
        if let Some(batch) = map.remove("batch") {
            map.insert("batch_size".into(), batch);
        }
        map.insert("seed".into(), seed.into());
        map.insert("clip_range".into(), CLIP_RANGE.into());
        map.insert("max_grad_norm".into(), MAX_GRAD_NORM.into());
        map.insert("temperature".into(), TEMPERATURE.into());
        Ok(options)
    }

    /// Checks the options against `prompts` prompts; returns the number of updates.
    pub fn total_updates(&self, prompts: usize) -> Result<u64> {
        let bad = |field: &str, why: &str| Error::Input(format!("pg: `{field}` {why}"));
        if self.k < 2 {
            return Err(bad("k", "must be at least 2"));
        }
        if self.batch_size == 0 || self.batch_size % self.k != 0 {
            return Err(bad("batch_size", "must be a positive multiple of `k`"));
        }
        if self.mini_batches == 0 || self.batch_size % self.mini_batches != 0 {
            return Err(bad(
                "mini_batches",
                "must be positive and divide `batch_size`",
            ));
        }
        check_batch(
            self.batch_size / self.mini_batches,
            self.micro_batch_size,
            "pg",
        )?;
        for (field, v) in [("beta", self.beta), ("epochs", self.epochs)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(bad(field, "must be finite and >= 0"));
            }
        }
        if !(self.reward_scale.is_finite() && self.reward_scale > 0.0) {
            return Err(bad("reward_scale", "must be finite and > 0"));
        }
        if let Some(q) = self.select_quantile {
            if !(0.0..1.0).contains(&q) {
                return Err(bad("select_quantile", "must be in [0, 1)"));
            }
        }
        if self.checkpoint_every == 0 || self.max_new_tokens == 0 || prompts == 0 {
            return Err(bad(
                "checkpoint_every / max_new_tokens / prompts",
                "must be positive",
            ));
        }
        let completions = (self.epochs * prompts as f64).round() as u64;
        Ok(completions.div_ceil(self.batch_size as u64))
    }
}

/// Metrics of one update (one rollout batch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PgRecord {
    /// Updates finished, this one included (1-based).
    pub update: u64,
    /// Completions trained on so far.
    pub completions: u64,
    /// `completions / |prompts|`.
    pub epoch: f64,
    /// Mean score of the reward function (the normalised proxy reward).
    pub score: f64,
    /// Mean training reward (RLOO: score minus the KL penalty).
    pub reward: f64,
    /// Mean summed log-ratio `sum_t (log pi_old - log pi_ref)`: the KL from the initial policy.
    pub kl: f64,
    /// Mean surrogate loss over the mini-batches.
    pub loss: f64,
    /// Fraction of completions whose ratio was clipped.
    pub clip_frac: f64,
    /// Mean gradient norm before clipping.
    pub grad_norm: f64,
    /// Mean response length in tokens.
    pub response_len: f64,
    /// Optimiser steps so far.
    pub optimizer_step: u64,
    /// Wall time of the update in seconds.
    pub seconds: f64,
    /// Of which rollout: sampling, scoring, old and reference log-probabilities.
    pub rollout_seconds: f64,
    /// Spread of the reward function's scores: mean within-group std, share of
    /// zero-std groups, batch variance (absent in logs written before it existed).
    #[serde(default, flatten, skip_serializing_if = "Option::is_none")]
    pub spread: Option<GroupSpread>,
    /// With prompt selection: the mean within-group score std of the kept prompts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_group_std: Option<f64>,
}

/// Whether `x` is 1 (serde leaves an unscaled reward out of the records).
fn is_one(x: &f64) -> bool {
    *x == 1.0
}

impl Stepped for PgRecord {
    fn step(&self) -> u64 {
        self.update
    }
}

/// Called when an epoch ends (before the checkpoint that follows it); must be
/// idempotent, since a resumed run may repeat it.
pub trait PgHooks {
    /// Called once when the stage (re)starts, before the first update.
    fn start(&mut self) -> Result<()> {
        Ok(())
    }

    /// Epoch `epoch` (1-based) ended with `record`; `policy` is the current policy.
    fn epoch_end(&mut self, epoch: u64, policy: &Model, record: &PgRecord) -> Result<()>;
}

impl PgHooks for () {
    fn epoch_end(&mut self, _: u64, _: &Model, _: &PgRecord) -> Result<()> {
        Ok(())
    }
}

/// How [`Pg`] returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PgOutcome {
    /// Every update ran; the stage is complete.
    Finished {
        /// Updates run in all.
        updates: u64,
        /// The last update's metrics.
        last: Option<PgRecord>,
    },
    /// Stopped by `stop_after` after this many updates.
    Stopped(u64),
}

/// The policy-gradient stage `pg/<reward>/seed<seed>`: runs (or resumes) policy
/// gradient from the policy in `init_dir` (also the KL reference) on `prompts`, with
/// `reward`, the policy and the reference in the runtime's dtype (`F32` or `BF16`). A
/// bf16 run records its dtype with the options of its checkpoints, so it resumes only
/// in bf16. Run it with [`super::run`]; a run stopped by `stop_after` is not complete.
pub struct Pg<'a> {
    /// The training reward's name (the stage directory's middle part).
    pub reward_name: &'a str,
    /// The initial policy and KL reference.
    pub init_dir: &'a Path,
    /// The RLHF prompts.
    pub prompts: &'a [String],
    /// The (normalised) training reward.
    pub reward: &'a dyn RewardFn,
    /// The training settings (`seeds` and `rewards` are not read).
    pub options: &'a PgConfig,
    /// The training seed: prompt order, sampling and mini-batch shuffles.
    pub seed: u64,
    /// Return after this many updates without finishing (a test's simulated kill).
    pub stop_after: Option<u64>,
    /// Called at each epoch's end.
    pub hooks: &'a mut dyn PgHooks,
}

impl Stage for Pg<'_> {
    type Summary = PgOutcome;

    fn name(&self) -> String {
        format!("pg/{}/seed{}", self.reward_name, self.seed)
    }

    fn run(self, stage: &StageDir, rt: &Runtime) -> Result<PgOutcome> {
        rt.check_training_dtype()?;
        self.hooks.start()?;
        train(stage, self, rt)
    }

    fn finished(summary: &PgOutcome) -> bool {
        matches!(summary, PgOutcome::Finished { .. })
    }
}

/// The loop of [`Pg`].
fn train(stage: &StageDir, pg: Pg<'_>, rt: &Runtime) -> Result<PgOutcome> {
    let Pg {
        init_dir,
        prompts,
        reward,
        options: o,
        seed,
        stop_after,
        hooks,
        ..
    } = pg;
    let (device, dtype) = (&rt.device, rt.dtype);
    let total = o.total_updates(prompts.len())?;
    let mut t = Trainer::new(init_dir, prompts, reward, (o, seed), device, dtype)?;
    let mut options = o.checkpoint_options(seed)?;
    if dtype != DType::F32 {
        if let Some(map) = options.as_object_mut() {
            map.insert("dtype".into(), format!("{dtype:?}").to_lowercase().into());
        }
    }
    let start = checkpoint::load(stage, &t.varmap, &mut t.opt, &options, upgrade_options)?
        .map_or(0, |s| s.update);
    let (mut log, kept) =
        MetricsLog::resume::<PgRecord>(&stage.file("metrics.jsonl"), Some(start))?;
    let mut last = kept.last().cloned();
    crate::progress::set_length(total, start);
    for u in start..total {
        let record = t.update(u)?;
        crate::progress::inc();
        log.append(&record)?;
        let n = prompts.len() as u64;
        let ended: Vec<u64> = (u * o.batch_size as u64 / n + 1..=record.completions / n)
            .filter(|&e| e as f64 <= o.epochs)
            .collect();
        for &e in &ended {
            hooks.epoch_end(e, &t.policy, &record)?;
        }
        let done = u + 1;
        if done % o.checkpoint_every == 0 || !ended.is_empty() || done == total {
            let state = TrainState {
                update: done,
                optimizer_step: t.opt.step_count(),
                seed,
                options: options.clone(),
            };
            checkpoint::save(stage, &t.varmap, &t.opt, &state)?;
        }
        last = Some(record);
        if stop_after == Some(done) && done < total {
            return Ok(PgOutcome::Stopped(done));
        }
    }
    save_policy(
        &stage.file("policy"),
        &read_config_json(init_dir)?,
        &t.opt.master_varmap(&t.varmap)?,
        &t.codec,
    )?;
    Ok(PgOutcome::Finished {
        updates: total,
        last,
    })
}

/// The policy, its optimiser, the frozen reference and the inputs of the loop.
struct Trainer<'a> {
    policy: Model,
    varmap: VarMap,
    reference: Model,
    codec: ChatCodec,
    opt: AdamW,
    prompts: &'a [String],
    prompt_ids: Vec<Vec<u32>>,
    reward: &'a dyn RewardFn,
    o: &'a PgConfig,
    /// The training seed.
    seed: u64,
    device: Device,
}

/// What a rollout produced, one entry per completion.
struct Rollout {
    prompt_ids: Vec<Vec<u32>>,
    response_ids: Vec<Vec<u32>>,
    /// `sum_t log pi_old` per completion.
    old_logp: Vec<f32>,
    /// `sum_t k3(log pi_old, log pi_ref)` per completion (GRPO's rollout-time KL).
    old_k3: Vec<f32>,
    /// `log pi_ref` per response token.
    ref_logp: Vec<Vec<f32>>,
}

impl<'a> Trainer<'a> {
    fn new(
        init_dir: &Path,
        prompts: &'a [String],
        reward: &'a dyn RewardFn,
        (o, seed): (&'a PgConfig, u64),
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        let policy = load_checkpoint(init_dir, dtype, device)?;
        let reference = load_checkpoint(init_dir, dtype, device)?.model;
        let codec = ChatCodec::from_dir(init_dir)?;
        let prompt_ids = prompts
            .iter()
            .map(|p| codec.prompt_ids(p))
            .collect::<Result<_>>()?;
        let opt = AdamW::new(
            &policy.varmap,
            OptimConfig {
                optimizer: o.optimizer,
                max_grad_norm: Some(MAX_GRAD_NORM),
                ..OptimConfig::new(o.lr)
            },
        )?;
        Ok(Self {
            policy: policy.model,
            varmap: policy.varmap,
            reference,
            codec,
            opt,
            prompts,
            prompt_ids,
            reward,
            o,
            seed,
            device: device.clone(),
        })
    }

    /// Prompt indices of update `u`'s completions, each repeated `k` times.
    fn rows(&self, u: u64) -> Vec<usize> {
        let (n, per) = (
            self.prompts.len() as u64,
            (self.o.batch_size / self.o.k) as u64,
        );
        let mut rows = Vec::with_capacity(self.o.batch_size);
        let mut pass = (u64::MAX, Vec::new());
        for pos in u * per..(u + 1) * per {
            if pass.0 != pos / n {
                pass = (
                    pos / n,
                    order(n as usize, Some(mix_seed(self.seed, 2 * (pos / n)))),
                );
            }
            rows.extend(std::iter::repeat_n(pass.1[(pos % n) as usize], self.o.k));
        }
        rows
    }

    /// Update `u` (0-based): rollout, rewards, advantages, `mini_batches` steps.
    fn update(&mut self, u: u64) -> Result<PgRecord> {
        let (o, start) = (self.o, Instant::now());
        let rows = self.rows(u);
        let ro = self.rollout(&rows, u)?;
        let texts = ro
            .response_ids
            .iter()
            .map(|r| self.codec.decode_response(r))
            .collect::<Result<Vec<_>>>()?;
        let prompts: Vec<String> = rows.iter().map(|&i| self.prompts[i].clone()).collect();
        // Keyed by prompt index (the low-variance reward scales chosen indices).
        let mut scores = checked_scores_keyed(self.reward, &rows, &prompts, &texts)?;
        if o.reward_scale != 1.0 {
            scores.iter_mut().for_each(|s| *s *= o.reward_scale);
        }
        let rollout_seconds = start.elapsed().as_secs_f64();
        let kl: Vec<f64> = ro
            .old_logp
            .iter()
            .zip(&ro.ref_logp)
            .map(|(o, r)| f64::from(*o) - r.iter().map(|&x| f64::from(x)).sum::<f64>())
            .collect();
        let (rewards, adv) = match o.algorithm {
            PgAlgorithm::Rloo => {
                let r = kl_penalised(&scores, &kl, o.beta)?;
                let a = rloo_advantages(&r, o.k)?;
                (r, a)
            }
            PgAlgorithm::Grpo => (scores.clone(), grpo_advantages(&scores, o.k)?),
        };
        let micro = check_batch(o.batch_size / o.mini_batches, o.micro_batch_size, "pg")?;
        let mut perm = order(rows.len(), Some(mix_seed(self.seed, 2 * u + 1)));
        let mut kept_group_std = None;
        if let Some(q) = o.select_quantile {
            let kept = select_groups(&scores, o.k, q)?;
            perm.retain(|&i| kept[i / o.k]);
            let kept_scores: Vec<f64> = (0..rows.len())
                .filter(|&i| kept[i / o.k])
                .map(|i| scores[i])
                .collect();
            kept_group_std = Some(group_spread(&kept_scores, o.k)?.group_reward_std);
        }
        let per_step = perm.len().div_ceil(o.mini_batches);
        // (loss, clipped count) summed on the device, read once after the update.
        let (mut sums, mut grad_norm): (Option<Tensor>, f64) = (None, 0.0);
        for mb in perm.chunks(per_step) {
            for part in mb.chunks(micro) {
                let (l, c) = self.surrogate(&ro, &adv, part)?;
                let l = (l / mb.len() as f64)?;
                let here = Tensor::stack(&[(l.detach() / o.mini_batches as f64)?, c], 0)?;
                sums = Some(match sums {
                    Some(acc) => (acc + here)?,
                    None => here,
                });
                self.opt.backward(&l)?;
            }
            grad_norm += self.opt.apply()?.grad_norm / o.mini_batches as f64;
        }
        let (loss, clipped) = match sums {
            Some(t) => {
                let v = t.to_vec1::<f32>()?;
                (f64::from(v[0]), f64::from(v[1]))
            }
            None => (0.0, 0.0),
        };
        let (b, n) = (rows.len() as f64, self.prompts.len() as u64);
        let completions = (u + 1) * o.batch_size as u64;
        Ok(PgRecord {
            update: u + 1,
            completions,
            epoch: completions as f64 / n as f64,
            score: scores.iter().sum::<f64>() / b,
            reward: rewards.iter().sum::<f64>() / b,
            kl: kl.iter().sum::<f64>() / b,
            loss,
            clip_frac: clipped / perm.len() as f64,
            grad_norm,
            response_len: ro.response_ids.iter().map(Vec::len).sum::<usize>() as f64 / b,
            optimizer_step: self.opt.step_count(),
            seconds: start.elapsed().as_secs_f64(),
            rollout_seconds,
            spread: Some(group_spread(&scores, o.k)?),
            kept_group_std,
        })
    }

    /// Samples the completions of `rows` and their old and reference log-probabilities.
    fn rollout(&self, rows: &[usize], u: u64) -> Result<Rollout> {
        let o = self.o;
        let prompt_ids: Vec<Vec<u32>> = rows.iter().map(|&i| self.prompt_ids[i].clone()).collect();
        let config = SamplingConfig::sampling(
            o.max_new_tokens,
            TEMPERATURE,
            self.codec.eos,
            self.codec.pad,
            mix_seed(self.seed ^ 0x5A5A, u),
        );
        let response_ids = generate(&self.policy, &prompt_ids, &config, &self.device)?.responses;
        let (mut old_logp, mut ref_logp, mut old_k3) = (Vec::new(), Vec::new(), Vec::new());
        let step = o.micro_batch_size.unwrap_or(o.batch_size);
        for (p, r) in prompt_ids.chunks(step).zip(response_ids.chunks(step)) {
            let batch = SequenceBatch::new(p, r, self.codec.pad, &self.device)?;
            let old_tok = inference_logprobs(&self.policy, &batch)?;
            old_logp.extend(old_tok.sum(1)?.to_vec1::<f32>()?);
            let rl = inference_logprobs(&self.reference, &batch)?.to_vec2::<f32>()?;
            if o.algorithm == PgAlgorithm::Grpo {
                let ol = old_tok.to_vec2::<f32>()?;
                old_k3.extend(ol.iter().zip(&rl).zip(r).map(|((old, re), resp)| {
                    old[..resp.len()]
                        .iter()
                        .zip(&re[..resp.len()])
                        .map(|(&a, &b)| k3(f64::from(a), f64::from(b)))
                        .sum::<f64>() as f32
                }));
            }
            ref_logp.extend(
                rl.into_iter()
                    .zip(r)
                    .map(|(row, resp)| row[..resp.len()].to_vec()),
            );
        }
        Ok(Rollout {
            prompt_ids,
            response_ids,
            old_logp,
            old_k3,
            ref_logp,
        })
    }

    /// Summed per-completion loss over the completions `idx` (differentiable, f32) and
    /// how many of them had their ratio clipped (an f32 scalar on the device).
    fn surrogate(&self, ro: &Rollout, adv: &[f64], idx: &[usize]) -> Result<(Tensor, Tensor)> {
        let (o, dev) = (self.o, &self.device);
        let p: Vec<&Vec<u32>> = idx.iter().map(|&i| &ro.prompt_ids[i]).collect();
        let r: Vec<&Vec<u32>> = idx.iter().map(|&i| &ro.response_ids[i]).collect();
        let batch = SequenceBatch::new(&p, &r, self.codec.pad, dev)?;
        let new_tok = token_logprobs(&self.policy, &batch)?;
        let old = Tensor::from_iter(idx.iter().map(|&i| ro.old_logp[i]), dev)?;
        let a = Tensor::from_iter(idx.iter().map(|&i| adv[i] as f32), dev)?;
        let ratio = (new_tok.sum(1)? - old)?.exp()?;
        let unclipped = (a.neg()? * &ratio)?;
        let clipped = (a.neg()? * ratio.clamp(1.0 - CLIP_RANGE, 1.0 + CLIP_RANGE)?)?;
        let n_clipped = clipped.gt(&unclipped)?.to_dtype(DType::F32)?.sum_all()?;
        let mut loss = unclipped.maximum(&clipped)?;
        if o.algorithm == PgAlgorithm::Grpo && o.grpo_kl == GrpoKl::Rollout {
            // A constant of the loss: it shifts the loss, not the gradient.
            let kl = Tensor::from_iter(idx.iter().map(|&i| ro.old_k3[i]), dev)?;
            loss = (loss + (kl * o.beta)?)?;
        }
        if o.algorithm == PgAlgorithm::Grpo && o.grpo_kl == GrpoKl::Differentiable {
            let width = batch.response_width;
            let ref_tok: Vec<f32> = idx
                .iter()
                .flat_map(|&i| padded(&ro.ref_logp[i], width))
                .collect();
            let d = (Tensor::from_vec(ref_tok, (idx.len(), width), dev)? - &new_tok)?;
            let k3 = (((d.exp()? - &d)? - 1.0)? * &batch.response_mask)?;
            loss = (loss + (k3.sum(1)? * o.beta)?)?;
        }
        Ok((loss.sum_all()?, n_clipped))
    }
}

/// `row` followed by zeros up to `width`.
fn padded(row: &[f32], width: usize) -> Vec<f32> {
    let mut v = row.to_vec();
    v.resize(width, 0.0);
    v
}
