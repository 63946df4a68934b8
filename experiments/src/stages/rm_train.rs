//! Reward-model training: a new scalar head (N(0, 0.02)) on the SFT backbone, the
//! Bradley-Terry loss with the centring term `0.01 (r_c + r_r)^2` (mean over pairs),
//! AdamW at a constant learning rate; the paper's defaults.
//!
//! Beyond the paper, an optional margin ([`RmTrainOptions::margin`]): Llama 2's
//! `-log sigmoid(r_c - r_r - m)` (Touvron et al. 2023, Eq. 2), where Llama 2 takes `m`
//! from the annotators' preference strength. Here `m = margin * (s_c - s_r)`, the gap
//! of the pair's own scores (`score_chosen`, `score_rejected`: in the toy world and
//! in relabelled on-policy pairs the ground-truth rewards of the two responses, so the
//! margin is the ground truth's preference strength); a pair without both scores is an
//! error when the margin is on.
//!
//! In bf16 (a [`Runtime`] with `BF16`) the backbone and head run in bf16, the
//! rewards and the loss are f32, and AdamW keeps f32 master weights (saved in the
//! checkpoint). Per step the host reads three numbers: the loss and the count of
//! correctly ordered pairs (both accumulated on the device) and the gradient norm.

use super::batches::{check_batch, order, ChatCodec};
use super::optim::{AdamW, OptimConfig};
use super::sft::model_device;
use super::stage::{Runtime, Stage};
use crate::data::PreferencePair;
use crate::hf::{save_checkpoint_with_json, sequence_classification_json, SaveOptions};
use crate::logprobs::SequenceBatch;
use crate::models::Model;
use crate::reward::{
    bradley_terry_loss_margin, reward_model_from_causal_checkpoint, RewardModel,
    CENTERING_COEFFICIENT, LM_HEAD_NAMES,
};
use crate::rundir::StageDir;
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// Settings of [`RmTrain`] (defaults: the paper's Section 4.1).
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
    /// Coefficient of the margin `m = margin * (score_chosen - score_rejected)` in
    /// `-log sigmoid(r_c - r_r - m)` (0: no margin, the paper's loss).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub margin: f64,
}

/// Whether `x` is 0 (serde skips a zero margin, so older records stay as they were).
fn is_zero(x: &f64) -> bool {
    *x == 0.0
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
            margin: 0.0,
        }
    }
}

/// What [`RmTrain`] did.
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

/// Trains `rm` (whose variables are `varmap`) on `pairs`, each side rendered by
/// `codec`; returns the report and the optimiser (whose
/// [`master_varmap`](AdamW::master_varmap) holds the f32 weights of a bf16 model).
fn train(
    rm: &RewardModel<Model>,
    varmap: &VarMap,
    codec: &ChatCodec,
    pairs: &[PreferencePair],
    o: &RmTrainOptions,
) -> Result<(RmTrainReport, AdamW)> {
    let micro = check_batch(o.batch_size, o.micro_batch_size, "rm_train")?;
    if pairs.is_empty() {
        return Err(Error::Input("rm_train: no preference pairs".into()));
    }
    let margins = margins(pairs, o.margin)?;
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
    let per_epoch = pairs.len().div_ceil(o.batch_size.max(1)) as u64;
    crate::progress::set_length(per_epoch * o.epochs as u64, 0);
    for epoch in 0..o.epochs {
        let idx = order(
            pairs.len(),
            o.shuffle_seed.map(|s| s.wrapping_add(epoch as u64)),
        );
        for batch in idx.chunks(o.batch_size) {
            crate::progress::inc();
            // Loss and correct-pair count of the batch, summed on the device.
            let mut sums: Option<Tensor> = None;
            for chunk in batch.chunks(micro) {
                let seq = pair_batch(codec, pairs, chunk, &device)?;
                let r = rm.forward_batch(&seq)?;
                let n = chunk.len();
                let (rc, rr) = (r.narrow(0, 0, n)?, r.narrow(0, n, n)?);
                // Mean over the micro-batch, weighted by its share of the batch.
                let m = match &margins {
                    Some(all) => Some(Tensor::from_iter(chunk.iter().map(|&i| all[i]), &device)?),
                    None => None,
                };
                let loss = (bradley_terry_loss_margin(&rc, &rr, m.as_ref(), o.centering)?
                    * (n as f64 / batch.len() as f64))?;
                let here = Tensor::stack(
                    &[
                        loss.detach().to_dtype(DType::F32)?,
                        count_correct(&rc.detach(), &rr.detach())?,
                    ],
                    0,
                )?;
                sums = Some(match sums {
                    Some(acc) => (acc + here)?,
                    None => here,
                });
                opt.backward(&loss)?;
            }
            opt.apply()?;
            let (loss_sum, right) = match sums {
                Some(t) => {
                    let v = t.to_vec1::<f32>()?;
                    (f64::from(v[0]), v[1].round() as usize)
                }
                None => (0.0, 0),
            };
            losses.push(loss_sum);
            accuracies.push(right as f64 / batch.len() as f64);
            correct += right;
        }
    }
    let seen = pairs.len() * o.epochs;
    let report = RmTrainReport {
        losses,
        accuracies,
        accuracy: correct as f64 / seen as f64,
        pairs: seen,
        seconds: start.elapsed().as_secs_f64(),
    };
    Ok((report, opt))
}

/// Each pair's margin `coefficient * (score_chosen - score_rejected)` (f32), or `None`
/// when `coefficient` is 0; a pair without both scores is an error naming it.
pub fn margins(pairs: &[PreferencePair], coefficient: f64) -> Result<Option<Vec<f32>>> {
    if coefficient == 0.0 {
        return Ok(None);
    }
    if !coefficient.is_finite() {
        return Err(Error::Input(format!(
            "rm_train: the margin coefficient must be finite, found {coefficient}"
        )));
    }
    pairs
        .iter()
        .enumerate()
        .map(|(i, p)| match (p.score_chosen, p.score_rejected) {
            (Some(c), Some(r)) => Ok((coefficient * (c - r)) as f32),
            _ => Err(Error::Input(format!(
                "rm_train: pair {i} has no `score_chosen` / `score_rejected`, which the \
                 margin needs (set rm.margin = 0 for data without scores)"
            ))),
        })
        .collect::<Result<Vec<f32>>>()
        .map(Some)
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

/// Number of pairs with `chosen > rejected`, as an f32 scalar on their device.
fn count_correct(chosen: &Tensor, rejected: &Tensor) -> Result<Tensor> {
    Ok(chosen.gt(rejected)?.to_dtype(DType::F32)?.sum_all()?)
}

/// The reward-model stage `rms/<name>`: the causal LM in `sft_dir` plus a new head
/// (seeded by `options.head_seed`), trained on `pairs`, saved as a Hugging Face
/// `*ForSequenceClassification` checkpoint (no LM head, `num_labels` 1) with the
/// tokenizer. In bf16 AdamW keeps f32 master weights, and the checkpoint is saved in
/// f32 from them. Run it with [`super::run`].
pub struct RmTrain<'a> {
    /// The reward model's name (`rm-50`, ...).
    pub name: &'a str,
    /// The causal LM the reward model starts from.
    pub sft_dir: &'a Path,
    /// The training pairs.
    pub pairs: &'a [PreferencePair],
    /// The training settings.
    pub options: &'a RmTrainOptions,
}

impl Stage for RmTrain<'_> {
    type Summary = RmTrainReport;

    fn name(&self) -> String {
        format!("rms/{}", self.name)
    }

    fn run(self, stage: &StageDir, rt: &Runtime) -> Result<RmTrainReport> {
        rt.check_training_dtype()?;
        let o = self.options;
        let ckpt =
            reward_model_from_causal_checkpoint(self.sft_dir, o.head_seed, rt.dtype, &rt.device)?;
        let codec = ChatCodec::from_dir(self.sft_dir)?;
        let (report, opt) = train(&ckpt.model, &ckpt.varmap, &codec, self.pairs, o)?;
        let varmap = opt.master_varmap(&ckpt.varmap)?;
        let config = sequence_classification_json(&ckpt.config, DType::F32, Some(codec.pad))?;
        let exclude = LM_HEAD_NAMES.iter().map(|s| s.to_string()).collect();
        let save = SaveOptions {
            exclude,
            ..SaveOptions::default()
        };
        save_checkpoint_with_json(stage.path(), &config, &varmap, &save)?;
        codec.tokenizer.save(stage.path())?;
        Ok(report)
    }
}
