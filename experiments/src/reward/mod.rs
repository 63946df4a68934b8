//! Reward models, one module for every kind this crate scores with and one
//! [`load`] that picks the loader from a directory's `config.json`:
//!
//! - [`scalar`]: a causal-LM backbone plus a scalar `score` head
//!   (`*ForSequenceClassification` of GPT-NeoX, Llama, Gemma, Gemma-2), the
//!   Bradley-Terry loss our reward models are trained with;
//! - [`checkpoint`]: loading, initialising and saving-side helpers of those;
//! - [`armorm`]: ArmoRM (`LlamaForRewardModelWithGating`), the ground truth of the
//!   paper's Section 4.2.

pub mod armorm;
pub mod checkpoint;
pub mod scalar;

pub use armorm::{find_gating_position, load_armorm, ArmoRm, ArmoRmCheckpoint, ArmoRmConfig};
pub use checkpoint::{
    load_reward_checkpoint, new_reward_model, reward_model_from_causal_checkpoint,
    save_random_reward_model, save_random_scorer, RewardCheckpoint,
};
pub use scalar::{
    bradley_terry_loss, bradley_terry_loss_margin, bradley_terry_loss_with, last_token_indices,
    RewardModel, CENTERING_COEFFICIENT, SCORE_INIT_STD,
};

use crate::hf::read_config_json;
use crate::logprobs::SequenceBatch;
use crate::models::{no_grad, CausalLm, Model};
use crate::Result;
use candle_core::{DType, Device};
use std::path::Path;

/// Names of untied language-model heads (`*ForCausalLM`: `lm_head.weight`, GPT-NeoX's
/// `embed_out.weight`), which a reward checkpoint does not contain.
pub const LM_HEAD_NAMES: [&str; 2] = ["lm_head.weight", "embed_out.weight"];

/// A model that scores a padded batch of chat-rendered exchanges, one number a row:
/// a scalar-head reward model of any backbone, or ArmoRM.
pub trait ScoreBatch {
    /// The scores of the rows of `batch` (host copies, f32).
    fn score_batch(&self, batch: &SequenceBatch) -> Result<Vec<f32>>;
}

impl<M: CausalLm> ScoreBatch for RewardModel<M> {
    fn score_batch(&self, batch: &SequenceBatch) -> Result<Vec<f32>> {
        no_grad(|| {
            Ok(self
                .forward_batch(batch)?
                .to_dtype(DType::F32)?
                .to_vec1::<f32>()?)
        })
    }
}

impl ScoreBatch for ArmoRm {
    fn score_batch(&self, batch: &SequenceBatch) -> Result<Vec<f32>> {
        no_grad(|| self.score(&batch.input_ids, Some(&batch.attention_mask)))
    }
}

/// A reward model of any kind [`load`] reads.
pub enum Scorer {
    /// A scalar-head sequence classifier (GPT-NeoX, Llama, Gemma or Gemma-2).
    Scalar(RewardModel<Model>),
    /// ArmoRM.
    ArmoRm(Box<ArmoRm>),
}

impl ScoreBatch for Scorer {
    fn score_batch(&self, batch: &SequenceBatch) -> Result<Vec<f32>> {
        match self {
            Self::Scalar(m) => m.score_batch(batch),
            Self::ArmoRm(m) => m.score_batch(batch),
        }
    }
}

/// Loads the reward model in `dir` (weights of `dtype` on `device`), whatever its
/// kind: ArmoRM when `architectures[0]` of `config.json` is
/// `LlamaForRewardModelWithGating`, else a scalar-head sequence classifier of the
/// backbone `model_type` names. Fails naming the file and field or tensor.
pub fn load(dir: &Path, dtype: DType, device: &Device) -> Result<Scorer> {
    let config = read_config_json(dir)?;
    if config["architectures"][0] == armorm::ARMORM_ARCHITECTURE {
        return Ok(Scorer::ArmoRm(Box::new(
            load_armorm(dir, dtype, device)?.model,
        )));
    }
    let model = load_reward_checkpoint(dir, dtype, device)?.model;
    Ok(Scorer::Scalar(model))
}
