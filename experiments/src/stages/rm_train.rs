//! Reward-model training: a new scalar head (N(0, 0.02)) on the SFT backbone, the
//! Bradley-Terry loss with the centring term `0.01 (r_c + r_r)^2` (mean over pairs),
//! AdamW at a constant learning rate; the paper's defaults.

use super::batches::{check_batch, order, ChatCodec};
use super::optim::{AdamW, OptimConfig};
use super::sft::model_device;
use crate::data::PreferencePair;
use crate::hf::{save_checkpoint_with_json, sequence_classification_json, SaveOptions};
use crate::logprobs::SequenceBatch;
use crate::models::Model;
use crate::pipeline::StageDir;
use crate::reward_model::{
    bradley_terry_loss_with, reward_model_from_causal_checkpoint, RewardModel,
    CENTERING_COEFFICIENT,
};
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// Settings of [`train_reward_model`] (defaults: the paper's Section 4.1).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RmTrainOptions {
    /// Constant learning rate (5e-7).
    pub lr: f64,
    /// Pairs per optimiser step (32).
    pub batch_size: usize,
    /// Pairs per forward pass, gradients accumulated (`None`: the whole batch).
    pub micro_batch_size: Option<usize>,
    /// Passes over the pairs (1).
    pub epochs: usize,
    /// Gradient clipping (1.0, the Trainer default).
    pub max_grad_norm: Option<f64>,
    /// Seed of the per-epoch shuffle (`None`: data order).
    pub shuffle_seed: Option<u64>,
    /// Seed of the head's initialisation.
    pub head_seed: u64,
    /// Weight of the centring term (0.01).
    pub centering: f64,
}

impl Default for RmTrainOptions {
    fn default() -> Self {
        Self {
            lr: 5e-7,
            batch_size: 32,
            micro_batch_size: None,
            epochs: 1,
            max_grad_norm: Some(1.0),
            shuffle_seed: Some(0),
            head_seed: 0,
            centering: CENTERING_COEFFICIENT,
        }
    }
}

/// What [`train_reward_model`] did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RmTrainReport {
    /// Loss of each step's batch (before the step).
    pub losses: Vec<f64>,
    /// Fraction of each step's pairs with `r_c > r_r` (before the step).
    pub accuracies: Vec<f64>,
    /// Training accuracy over all pairs seen.
    pub accuracy: f64,
    /// Pairs seen.
    pub pairs: usize,
    /// Wall time of the training loop in seconds.
    pub seconds: f64,
}

/// Trains `rm` (whose variables are `varmap`) on `pairs`, each side rendered by `codec`.
pub fn train_reward_model(
    rm: &RewardModel<Model>,
    varmap: &VarMap,
    codec: &ChatCodec,
    pairs: &[PreferencePair],
    o: &RmTrainOptions,
) -> Result<RmTrainReport> {
    let micro = check_batch(o.batch_size, o.micro_batch_size, "rm_train")?;
    if pairs.is_empty() {
        return Err(Error::Input("rm_train: no preference pairs".into()));
    }
    let mut opt = AdamW::new(
        varmap,
        OptimConfig {
            max_grad_norm: o.max_grad_norm,
            ..OptimConfig::new(o.lr)
        },
    )?;
    let device = model_device(varmap);
    let start = Instant::now();
    let (mut losses, mut accuracies, mut correct) = (Vec::new(), Vec::new(), 0usize);
    for epoch in 0..o.epochs {
        let idx = order(
            pairs.len(),
            o.shuffle_seed.map(|s| s.wrapping_add(epoch as u64)),
        );
        for batch in idx.chunks(o.batch_size) {
            let (mut loss_sum, mut right) = (0.0, 0usize);
            for chunk in batch.chunks(micro) {
                let seq = pair_batch(codec, pairs, chunk, &device)?;
                let r = rm.forward_batch(&seq)?;
                let n = chunk.len();
                let (rc, rr) = (r.narrow(0, 0, n)?, r.narrow(0, n, n)?);
                // Mean over the micro-batch, weighted by its share of the batch.
                let loss = (bradley_terry_loss_with(&rc, &rr, o.centering)?
                    * (n as f64 / batch.len() as f64))?;
                loss_sum += f64::from(loss.to_scalar::<f32>()?);
                right += count_correct(&rc, &rr)?;
                opt.backward(&loss)?;
            }
            opt.apply()?;
            losses.push(loss_sum);
            accuracies.push(right as f64 / batch.len() as f64);
            correct += right;
        }
    }
    let seen = pairs.len() * o.epochs;
    Ok(RmTrainReport {
        losses,
        accuracies,
        accuracy: correct as f64 / seen as f64,
        pairs: seen,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Rows `[chosen of each pair..., rejected of each pair...]` of the pairs `idx`.
fn pair_batch(
    codec: &ChatCodec,
    pairs: &[PreferencePair],
    idx: &[usize],
    device: &Device,
) -> Result<SequenceBatch> {
    let (mut p, mut r) = (
        Vec::with_capacity(2 * idx.len()),
        Vec::with_capacity(2 * idx.len()),
    );
    for side in 0..2 {
        for &i in idx {
            let pair = &pairs[i];
            let response = if side == 0 {
                &pair.chosen
            } else {
                &pair.rejected
            };
            let (pi, ri) = codec
                .exchange_ids(&pair.prompt, response)
                .map_err(|e| Error::Input(format!("preference pair {i}: {e}")))?;
            p.push(pi);
            r.push(ri);
        }
    }
    SequenceBatch::new(&p, &r, codec.pad, device)
}

/// Number of pairs with `chosen > rejected`.
fn count_correct(chosen: &Tensor, rejected: &Tensor) -> Result<usize> {
    let (c, r) = (chosen.to_vec1::<f32>()?, rejected.to_vec1::<f32>()?);
    Ok(c.iter().zip(&r).filter(|(c, r)| c > r).count())
}

/// The reward-model stage: the causal LM in `sft_dir` plus a new head (seeded by
/// `o.head_seed`), trained on `pairs`, saved into `stage` as a Hugging Face
/// `*ForSequenceClassification` checkpoint (no LM head, `num_labels` 1) with the
/// tokenizer; then the stage is marked complete. A complete stage is not rerun.
pub fn run_rm_train(
    sft_dir: &Path,
    stage: &StageDir,
    pairs: &[PreferencePair],
    o: &RmTrainOptions,
    device: &Device,
) -> Result<RmTrainReport> {
    if let Some(done) = stage.summary::<RmTrainReport>()? {
        return Ok(done);
    }
    let ckpt = reward_model_from_causal_checkpoint(sft_dir, o.head_seed, DType::F32, device)?;
    let codec = ChatCodec::from_dir(sft_dir)?;
    let report = train_reward_model(&ckpt.model, &ckpt.varmap, &codec, pairs, o)?;
    let config = sequence_classification_json(&ckpt.config, DType::F32, Some(codec.pad))?;
    let exclude = LM_HEADS.iter().map(|s| s.to_string()).collect();
    let save = SaveOptions {
        exclude,
        ..SaveOptions::default()
    };
    save_checkpoint_with_json(stage.path(), &config, &ckpt.varmap, &save)?;
    codec.tokenizer.save(stage.path())?;
    stage.complete(&report)?;
    Ok(report)
}

/// Untied language-model heads, which a sequence-classification checkpoint lacks.
const LM_HEADS: [&str; 2] = ["lm_head.weight", "embed_out.weight"];
