//! Reward functions the policy-gradient and evaluation stages score text with: a
//! programmatic ground truth, a trained reward model, and the normalised (and, for
//! the low-variance reward, per-prompt scaled) version of either.

use super::batches::ChatCodec;
use crate::armorm::ArmoRm;
use crate::logprobs::SequenceBatch;
use crate::models::{CausalLm, Model};
use crate::reward_model::RewardModel;
use crate::toy::GroundTruth;
use crate::{Error, Result};
use candle_core::{DType, Device};
use rmteach::metrics::Normalizer;
use std::collections::HashSet;

/// Scores responses to prompts (raw prompt text, not chat-rendered; response text
/// without special tokens). One score per pair, in order.
pub trait RewardFn {
    /// The scores of `responses[i]` to `prompts[i]`.
    fn score(&self, prompts: &[String], responses: &[String]) -> Result<Vec<f64>>;
}

impl<R: RewardFn + ?Sized> RewardFn for &R {
    fn score(&self, prompts: &[String], responses: &[String]) -> Result<Vec<f64>> {
        (**self).score(prompts, responses)
    }
}

/// Checks that `prompts` and `responses` pair up.
fn check_pairs(prompts: &[String], responses: &[String]) -> Result<()> {
    if prompts.len() != responses.len() {
        return Err(Error::Input(format!(
            "{} prompts but {} responses to score",
            prompts.len(),
            responses.len()
        )));
    }
    Ok(())
}

/// A programmatic ground truth (the toy world's [`crate::toy::ToyReward`]).
pub struct GroundTruthReward<G>(pub G);

impl<G: GroundTruth> RewardFn for GroundTruthReward<G> {
    fn score(&self, prompts: &[String], responses: &[String]) -> Result<Vec<f64>> {
        check_pairs(prompts, responses)?;
        Ok(prompts
            .iter()
            .zip(responses)
            .map(|(p, r)| self.0.score(p, r))
            .collect())
    }
}

/// A model that scores a padded batch of chat-rendered exchanges, one number a row:
/// a scalar-head reward model of any backbone, or ArmoRM.
pub trait ScoreBatch {
    /// The scores of the rows of `batch` (host copies, f32).
    fn score_batch(&self, batch: &SequenceBatch) -> Result<Vec<f32>>;
}

impl<M: CausalLm> ScoreBatch for RewardModel<M> {
    fn score_batch(&self, batch: &SequenceBatch) -> Result<Vec<f32>> {
        Ok(self
            .forward_batch(batch)?
            .to_dtype(DType::F32)?
            .to_vec1::<f32>()?)
    }
}

impl ScoreBatch for ArmoRm {
    fn score_batch(&self, batch: &SequenceBatch) -> Result<Vec<f32>> {
        self.score(&batch.input_ids, Some(&batch.attention_mask))
    }
}

/// A reward model scoring each exchange rendered with the chat template of its own
/// tokenizer, `batch_size` rows per forward pass (our trained RMs by default; any
/// [`ScoreBatch`] model, e.g. a Gemma RM or ArmoRM).
pub struct RewardModelScorer<S = RewardModel<Model>> {
    /// The reward model.
    pub model: S,
    /// Its tokenizer and template.
    pub codec: ChatCodec,
    /// Rows per forward pass.
    pub batch_size: usize,
    /// Where the model lives.
    pub device: Device,
}

impl<S: ScoreBatch> RewardFn for RewardModelScorer<S> {
    fn score(&self, prompts: &[String], responses: &[String]) -> Result<Vec<f64>> {
        check_pairs(prompts, responses)?;
        let mut out = Vec::with_capacity(prompts.len());
        for (ps, rs) in prompts
            .chunks(self.batch_size.max(1))
            .zip(responses.chunks(self.batch_size.max(1)))
        {
            let (mut p_ids, mut r_ids) = (Vec::new(), Vec::new());
            for (p, r) in ps.iter().zip(rs) {
                let (pi, ri) = self.codec.exchange_ids(p, r)?;
                p_ids.push(pi);
                r_ids.push(ri);
            }
            let batch = SequenceBatch::new(&p_ids, &r_ids, self.codec.pad, &self.device)?;
            out.extend(self.model.score_batch(&batch)?.into_iter().map(f64::from));
        }
        Ok(out)
    }
}

/// `normalizer.apply(inner)`, multiplied by `scale` on the prompts in `scaled` (the
/// paper's perfectly accurate, low-variance reward: x0.001 on half the prompts).
pub struct Normalized<R> {
    /// The raw reward.
    pub inner: R,
    /// Its normalisation constants (from initial-policy samples).
    pub normalizer: Normalizer,
    /// Prompts whose normalised reward is multiplied by `scale`.
    pub scaled: HashSet<String>,
    /// The factor for those prompts.
    pub scale: f64,
}

impl<R: RewardFn> Normalized<R> {
    /// `inner` normalised, no prompt scaled.
    pub fn new(inner: R, normalizer: Normalizer) -> Self {
        Self {
            inner,
            normalizer,
            scaled: HashSet::new(),
            scale: 1.0,
        }
    }

    /// The same reward, multiplied by `scale` on `prompts`.
    pub fn with_scaled_prompts(
        mut self,
        prompts: impl IntoIterator<Item = String>,
        scale: f64,
    ) -> Self {
        self.scaled = prompts.into_iter().collect();
        self.scale = scale;
        self
    }
}

impl<R: RewardFn> RewardFn for Normalized<R> {
    fn score(&self, prompts: &[String], responses: &[String]) -> Result<Vec<f64>> {
        let raw = self.inner.score(prompts, responses)?;
        Ok(prompts
            .iter()
            .zip(raw)
            .map(|(p, r)| {
                let z = self.normalizer.apply(r);
                if self.scaled.contains(p) {
                    z * self.scale
                } else {
                    z
                }
            })
            .collect())
    }
}

/// Scores with `reward` and checks the count and that every score is finite.
pub fn checked_scores(
    reward: &dyn RewardFn,
    prompts: &[String],
    responses: &[String],
) -> Result<Vec<f64>> {
    let scores = reward.score(prompts, responses)?;
    if scores.len() != responses.len() {
        return Err(Error::Input(format!(
            "reward function returned {} scores for {} responses",
            scores.len(),
            responses.len()
        )));
    }
    if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
        return Err(Error::Input(format!(
            "score {i} is not finite ({}) for prompt {:?}",
            scores[i], prompts[i]
        )));
    }
    Ok(scores)
}
