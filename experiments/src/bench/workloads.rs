//! The workloads of [`super::run_bench`]; `benches/lm/torch_peer.py` mirrors each one.

use super::{median, timed, BenchInputs, BenchSpec, Workload, WorkloadReport};
use crate::hf::load_checkpoint;
use crate::logprobs::{head_logprobs, inference_logprobs, token_logprobs, SequenceBatch};
use crate::models::{AttentionInputs, CausalLm, Model};
use crate::reward::{bradley_terry_loss, load_reward_checkpoint, ScoreBatch};
use crate::sample::{generate, SamplingConfig};
use crate::stages::advantages::{kl_penalised, rloo_advantages};
use crate::stages::batches::order;
use crate::stages::optim::{AdamW, OptimConfig};
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// RLOO samples per prompt.
const K: usize = 2;
/// RLOO KL coefficient.
const BETA: f64 = 0.05;
/// RLOO surrogate clipping range.
const CLIP: f64 = 0.2;
/// RLOO optimiser steps per update.
const MINI_BATCHES: usize = 2;

/// What every workload reads.
pub(super) struct Ctx<'a> {
    pub dir: &'a Path,
    pub inputs: &'a BenchInputs,
    pub spec: &'a BenchSpec,
    pub device: &'a Device,
    pub dtype: DType,
}

impl Ctx<'_> {
    fn optimizer(&self, varmap: &candle_nn::VarMap) -> Result<AdamW> {
        AdamW::new(
            varmap,
            OptimConfig {
                max_grad_norm: Some(1.0),
                ..OptimConfig::new(self.spec.lr)
            },
        )
    }

    /// Prompt + response rows, no padding.
    fn full_ids(&self) -> Result<Tensor> {
        let rows: Vec<u32> = self
            .inputs
            .prompts
            .iter()
            .zip(&self.inputs.responses)
            .flat_map(|(p, r)| p.iter().chain(r).copied())
            .collect();
        let b = self.inputs.prompts.len();
        let t = rows.len() / b;
        Ok(Tensor::from_vec(rows, (b, t), self.device)?)
    }
}

/// Runs workload `w` from freshly loaded weights.
pub(super) fn run(ctx: &Ctx<'_>, w: Workload) -> Result<WorkloadReport> {
    let (check, times, tokens) = match w {
        Workload::Forward => forward(ctx)?,
        Workload::Step => lm_step(ctx)?,
        Workload::Sft => sft_step(ctx)?,
        Workload::Rm => rm_step(ctx)?,
        Workload::Sample => sample(ctx)?,
        Workload::Rloo => rloo(ctx)?,
    };
    let median_s = median(&times);
    Ok(WorkloadReport {
        median_s,
        tokens_per_s: tokens.map(|n| n as f64 / median_s),
        times_s: times,
        check,
        error: None,
    })
}

type Outcome = (BTreeMap<String, Value>, Vec<f64>, Option<usize>);

fn scalar(t: &Tensor) -> Result<f64> {
    Ok(f64::from(t.to_dtype(DType::F32)?.to_scalar::<f32>()?))
}

fn forward(ctx: &Ctx<'_>) -> Result<Outcome> {
    let model = load_checkpoint(&ctx.dir.join("policy"), ctx.dtype, ctx.device)?.model;
    let ids = ctx.full_ids()?;
    let mask = ids.ones_like()?;
    let (logits, times) = timed(ctx.spec.reps, ctx.device, || {
        Ok(model.forward(&ids, Some(&mask))?.to_dtype(DType::F32)?)
    })?;
    let (_, t, _) = logits.dims3()?;
    let last: Vec<f32> = logits.get(0)?.get(t - 1)?.narrow(0, 0, 16)?.to_vec1()?;
    let mean = scalar(&logits.mean_all()?)?;
    let std = scalar(&logits.sqr()?.mean_all()?)?.sqrt();
    let check = BTreeMap::from([
        ("logits_row0_last_first16".into(), json!(last)),
        ("logits_mean".into(), json!(mean)),
        ("logits_rms".into(), json!(std)),
    ]);
    Ok((check, times, None))
}

/// Causal-LM loss: mean NLL of every next token (`labels = input_ids` in transformers).
fn lm_loss(model: &Model, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let (b, t) = ids.dims2()?;
    let inputs = AttentionInputs::new(Some(mask), b, t, 0, DType::F32, ids.device())?;
    let hidden = model.forward_hidden(ids, &inputs, None)?;
    let targets = ids.narrow(1, 1, t - 1)?.contiguous()?;
    let picked = head_logprobs(model, &hidden.narrow(1, 0, t - 1)?, &targets)?;
    Ok((picked.sum_all()?.neg()? / (b * (t - 1)) as f64)?)
}

/// Times optimiser steps of the policy on `loss(model)`; checks the last loss and norm.
fn policy_step(ctx: &Ctx<'_>, loss: impl Fn(&Model) -> Result<Tensor>) -> Result<Outcome> {
    let ck = load_checkpoint(&ctx.dir.join("policy"), ctx.dtype, ctx.device)?;
    let mut opt = ctx.optimizer(&ck.varmap)?;
    let ((loss, norm), times) = timed(ctx.spec.reps, ctx.device, || {
        let loss = loss(&ck.model)?;
        let stats = opt.step(&loss)?;
        Ok((scalar(&loss)?, stats.grad_norm))
    })?;
    let check = BTreeMap::from([
        ("loss".into(), json!(loss)),
        ("grad_norm".into(), json!(norm)),
    ]);
    Ok((check, times, None))
}

fn lm_step(ctx: &Ctx<'_>) -> Result<Outcome> {
    let ids = ctx.full_ids()?;
    let mask = ids.ones_like()?;
    policy_step(ctx, |model| lm_loss(model, &ids, &mask))
}

fn sft_step(ctx: &Ctx<'_>) -> Result<Outcome> {
    let (p, r) = (&ctx.inputs.prompts, &ctx.inputs.responses);
    let batch = SequenceBatch::new(p, r, ctx.inputs.pad, ctx.device)?;
    let tokens: usize = r.iter().map(Vec::len).sum();
    // As the SFT stage (`stages::sft`): summed response NLL over the token count.
    policy_step(ctx, |model| {
        Ok((token_logprobs(model, &batch)?.sum_all()?.neg()? / tokens as f64)?)
    })
}

fn rm_step(ctx: &Ctx<'_>) -> Result<Outcome> {
    let ck = load_reward_checkpoint(&ctx.dir.join("rm"), ctx.dtype, ctx.device)?;
    let mut opt = ctx.optimizer(&ck.varmap)?;
    let inp = ctx.inputs;
    let prompts: Vec<&Vec<u32>> = inp.prompts.iter().chain(&inp.prompts).collect();
    let responses: Vec<&Vec<u32>> = inp.chosen.iter().chain(&inp.rejected).collect();
    let batch = SequenceBatch::new(&prompts, &responses, inp.pad, ctx.device)?;
    let n = inp.prompts.len();
    let ((loss, norm, first), times) = timed(ctx.spec.reps, ctx.device, || {
        // As `stages::rm_train`: rows [chosen..., rejected...], centred BT loss.
        let r = ck.model.forward_batch(&batch)?.to_dtype(DType::F32)?;
        let (rc, rr) = (r.narrow(0, 0, n)?, r.narrow(0, n, n)?);
        let loss = bradley_terry_loss(&rc, &rr)?;
        let first: Vec<f32> = r.narrow(0, 0, n.min(4))?.to_vec1()?;
        let stats = opt.step(&loss)?;
        Ok((scalar(&loss)?, stats.grad_norm, first))
    })?;
    let check = BTreeMap::from([
        ("loss".into(), json!(loss)),
        ("grad_norm".into(), json!(norm)),
        ("rewards_first4".into(), json!(first)),
    ]);
    Ok((check, times, None))
}

fn sampling(ctx: &Ctx<'_>, seed: u64) -> SamplingConfig {
    // No token id is u32::MAX: every row generates exactly `new_tokens`.
    SamplingConfig::sampling(ctx.spec.new_tokens, 1.0, u32::MAX, ctx.inputs.pad, seed)
}

fn sample(ctx: &Ctx<'_>) -> Result<Outcome> {
    let model = load_checkpoint(&ctx.dir.join("policy"), ctx.dtype, ctx.device)?.model;
    let prompts = &ctx.inputs.prompts;
    let mut seed = ctx.spec.seed;
    let (tokens, times) = timed(ctx.spec.reps, ctx.device, || {
        seed += 1;
        let g = generate(&model, prompts, &sampling(ctx, seed), ctx.device)?;
        Ok(g.responses.iter().map(Vec::len).sum::<usize>())
    })?;
    let check = BTreeMap::from([("tokens".into(), json!(tokens))]);
    Ok((check, times, Some(tokens)))
}

/// Per-completion values of one RLOO update, for the check.
struct RlooStats {
    tokens: usize,
    kl: f64,
    clip_frac: f64,
    losses: Vec<f64>,
}

fn rloo(ctx: &Ctx<'_>) -> Result<Outcome> {
    let pol = load_checkpoint(&ctx.dir.join("policy"), ctx.dtype, ctx.device)?;
    let reference = load_checkpoint(&ctx.dir.join("policy"), ctx.dtype, ctx.device)?.model;
    let rm = load_reward_checkpoint(&ctx.dir.join("rm"), ctx.dtype, ctx.device)?.model;
    let mut opt = ctx.optimizer(&pol.varmap)?;
    let b = ctx.inputs.prompts.len();
    // b / k prompts, each k times in a row (the layout of `stages::pg`).
    let prompts: Vec<Vec<u32>> = ctx.inputs.prompts[..b / K]
        .iter()
        .flat_map(|p| std::iter::repeat_n(p.clone(), K))
        .collect();
    let (dev, pad) = (ctx.device, ctx.inputs.pad);
    let mut update = 0u64;
    let (stats, times) = timed(ctx.spec.reps, dev, || {
        update += 1;
        let seed = ctx.spec.seed.wrapping_mul(1000).wrapping_add(update);
        // Rollout: samples, old and reference log-probabilities, reward-model scores.
        let responses = generate(&pol.model, &prompts, &sampling(ctx, seed), dev)?.responses;
        let batch = SequenceBatch::new(&prompts, &responses, pad, dev)?;
        let old: Vec<f32> = inference_logprobs(&pol.model, &batch)?
            .sum(1)?
            .to_dtype(DType::F32)?
            .to_vec1()?;
        let refl: Vec<f32> = inference_logprobs(&reference, &batch)?
            .sum(1)?
            .to_dtype(DType::F32)?
            .to_vec1()?;
        let scores: Vec<f64> = rm.score_batch(&batch)?.into_iter().map(f64::from).collect();
        let kl: Vec<f64> = old
            .iter()
            .zip(&refl)
            .map(|(o, r)| f64::from(*o) - f64::from(*r))
            .collect();
        let rewards = kl_penalised(&scores, &kl, BETA)?;
        let adv = rloo_advantages(&rewards, K)?;
        // Two clipped-surrogate steps on a seeded permutation (as `stages::pg`).
        let perm = order(b, Some(seed));
        let (mut losses, mut clipped) = (Vec::new(), 0.0);
        for mb in perm.chunks(b / MINI_BATCHES) {
            let p: Vec<&Vec<u32>> = mb.iter().map(|&i| &prompts[i]).collect();
            let r: Vec<&Vec<u32>> = mb.iter().map(|&i| &responses[i]).collect();
            let part = SequenceBatch::new(&p, &r, pad, dev)?;
            let new = token_logprobs(&pol.model, &part)?
                .sum(1)?
                .to_dtype(DType::F32)?;
            let o = Tensor::from_iter(mb.iter().map(|&i| old[i]), dev)?;
            let a = Tensor::from_iter(mb.iter().map(|&i| adv[i] as f32), dev)?;
            let ratio = (new - o)?.exp()?;
            let unclipped = (a.neg()? * &ratio)?;
            let clip = (a.neg()? * ratio.clamp(1.0 - CLIP, 1.0 + CLIP)?)?;
            clipped += f64::from(
                clip.gt(&unclipped)?
                    .to_dtype(DType::F32)?
                    .sum_all()?
                    .to_scalar::<f32>()?,
            );
            let loss = (unclipped.maximum(&clip)?.sum_all()? / mb.len() as f64)?;
            losses.push(scalar(&loss)?);
            opt.step(&loss)?;
        }
        Ok(RlooStats {
            tokens: responses.iter().map(Vec::len).sum(),
            kl: kl.iter().sum::<f64>() / b as f64,
            clip_frac: clipped / b as f64,
            losses,
        })
    })?;
    if stats.losses.iter().any(|l| !l.is_finite()) {
        return Err(Error::Input(format!(
            "rloo: non-finite surrogate loss {:?}",
            stats.losses
        )));
    }
    let check = BTreeMap::from([
        ("tokens".into(), json!(stats.tokens)),
        ("kl_first_update".into(), json!(stats.kl)),
        ("clip_frac_first_update".into(), json!(stats.clip_frac)),
    ]);
    Ok((check, times, Some(stats.tokens)))
}
