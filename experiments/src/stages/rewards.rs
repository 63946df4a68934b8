//! Reward functions the policy-gradient and evaluation stages score text with: a
//! programmatic ground truth, a trained reward model, and the normalised (and, for
//! the low-variance reward, per-prompt scaled) version of either.
//!
//! Prompts are identified by *key* (the prompt's index in the run's RLHF prompt set),
//! not by text: toy prompts repeat (200 RLHF rows hold about 120 distinct strings), so
//! a set of prompt strings would scale more rows than the configured fraction.

use super::batches::ChatCodec;
use crate::logprobs::SequenceBatch;
use crate::models::Model;

use crate::reward::{self, RewardModel, ScoreBatch};
use crate::toy::GroundTruth;
use crate::{Error, Result};
use candle_core::{DType, Device};
use rmteach::metrics::Normalizer;
use std::collections::HashSet;
use std::path::Path;

/// Scores responses to prompts (raw prompt text, not chat-rendered; response text
/// without special tokens). One score per pair, in order.
pub trait RewardFn {
    /// The scores of `responses[i]` to `prompts[i]`.
    fn score(&self, prompts: &[String], responses: &[String]) -> Result<Vec<f64>>;

    /// The scores of `responses[i]` to `prompts[i]`, whose key (index in the run's
    /// RLHF prompt set) is `keys[i]`. Rewards that depend on which prompt a row
    /// belongs to, not only on its text, override this; the default ignores the keys.
    fn score_keyed(
        &self,
        keys: &[usize],
        prompts: &[String],
        responses: &[String],
    ) -> Result<Vec<f64>> {
        check_keys(keys, prompts)?;
        self.score(prompts, responses)
    }
}

impl<R: RewardFn + ?Sized> RewardFn for &R {
    fn score(&self, prompts: &[String], responses: &[String]) -> Result<Vec<f64>> {
        (**self).score(prompts, responses)
    }

    fn score_keyed(
        &self,
        keys: &[usize],
        prompts: &[String],
        responses: &[String],
    ) -> Result<Vec<f64>> {
        (**self).score_keyed(keys, prompts, responses)
    }
}

impl<R: RewardFn + ?Sized> RewardFn for Box<R> {
    fn score(&self, prompts: &[String], responses: &[String]) -> Result<Vec<f64>> {
        (**self).score(prompts, responses)
    }

    fn score_keyed(
        &self,
        keys: &[usize],
        prompts: &[String],
        responses: &[String],
    ) -> Result<Vec<f64>> {
        (**self).score_keyed(keys, prompts, responses)
    }
}

/// Checks that every prompt has a key.
fn check_keys(keys: &[usize], prompts: &[String]) -> Result<()> {
    if keys.len() != prompts.len() {
        return Err(Error::Input(format!(
            "{} prompt keys for {} prompts to score",
            keys.len(),
            prompts.len()
        )));
    }
    Ok(())
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

/// Loads the reward model in `dir` (weights of `dtype` on `device`) as a scorer of
/// `batch_size` rows per pass, whatever its kind ([`reward::load`] reads
/// `config.json`). The exchange is rendered with the chat template of the tokenizer
/// in `dir`.
pub fn load_reward_dir(
    dir: &Path,
    dtype: DType,
    device: &Device,
    batch_size: usize,
) -> Result<Box<dyn RewardFn>> {
    let codec = ChatCodec::from_dir(dir)?;
    let model = reward::load(dir, dtype, device)?;
    Ok(Box::new(RewardModelScorer {
        model,
        codec,
        batch_size,
        device: device.clone(),
    }))
}

/// `normalizer.apply(inner)`, multiplied by `scale` on the prompts whose key is in
/// `scaled` (the paper's perfectly accurate, low-variance reward: x0.001 on half the
/// RLHF prompts, chosen by index).
pub struct Normalized<R> {
    /// The raw reward.
    pub inner: R,
    /// Its normalisation constants (from initial-policy samples).
    pub normalizer: Normalizer,
    /// Keys (RLHF prompt indices) whose normalised reward is multiplied by `scale`.
    pub scaled: HashSet<usize>,
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

    /// The same reward, multiplied by `scale` on the prompts keyed `keys`.
    pub fn with_scaled_prompts(
        mut self,
        keys: impl IntoIterator<Item = usize>,
        scale: f64,
    ) -> Self {
        self.scaled = keys.into_iter().collect();
        self.scale = scale;
        self
    }
}

impl<R: RewardFn> RewardFn for Normalized<R> {
    /// Without keys only an unscaled reward can score: a scaled one is an error.
    fn score(&self, prompts: &[String], responses: &[String]) -> Result<Vec<f64>> {
        if !self.scaled.is_empty() {
            return Err(Error::Input(
                "a reward scaled on some prompts needs the prompts' keys (score_keyed)".into(),
            ));
        }
        let raw = self.inner.score(prompts, responses)?;
        Ok(raw.into_iter().map(|r| self.normalizer.apply(r)).collect())
    }

    fn score_keyed(
        &self,
        keys: &[usize],
        prompts: &[String],
        responses: &[String],
    ) -> Result<Vec<f64>> {
        check_keys(keys, prompts)?;
        let raw = self.inner.score_keyed(keys, prompts, responses)?;
        Ok(keys
            .iter()
            .zip(raw)
            .map(|(k, r)| {
                let z = self.normalizer.apply(r);
                if self.scaled.contains(k) {
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
    let keys: Vec<usize> = (0..prompts.len()).collect();
    checked_scores_keyed(reward, &keys, prompts, responses)
}

/// [`checked_scores`] with each row's prompt key (see [`RewardFn::score_keyed`]).
pub fn checked_scores_keyed(
    reward: &dyn RewardFn,
    keys: &[usize],
    prompts: &[String],
    responses: &[String],
) -> Result<Vec<f64>> {
    let scores = reward.score_keyed(keys, prompts, responses)?;
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
    crate::progress::advance(crate::progress::Unit::Sequences, scores.len() as u64);
    Ok(scores)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toy::ToyReward;

    /// A reward of 1 for every row.
    struct One;

    impl RewardFn for One {
        fn score(&self, prompts: &[String], _: &[String]) -> Result<Vec<f64>> {
            Ok(vec![1.0; prompts.len()])
        }
    }

    #[test]
    fn scaling_is_keyed_by_prompt_index_not_text() {
        let n = Normalizer::new(0.0, 1.0).unwrap();
        let low = Normalized::new(One, n).with_scaled_prompts([0, 2], 1e-3);
        // Rows 0 and 1 share their text; only key 0 is scaled.
        let prompts: Vec<String> = ["a", "a", "b", "b"].map(String::from).to_vec();
        let responses = vec![String::new(); 4];
        let z = low
            .score_keyed(&[0, 1, 2, 3], &prompts, &responses)
            .unwrap();
        assert_eq!(z, vec![1e-3, 1.0, 1e-3, 1.0]);
        // Unkeyed scoring of a scaled reward is refused, not guessed.
        assert!(low.score(&prompts, &responses).is_err());
        assert!(low.score_keyed(&[0], &prompts, &responses).is_err());
        let plain = Normalized::new(GroundTruthReward(ToyReward::default()), n);
        let p = vec!["write two words about food".to_string()];
        let r = vec!["bread rice".to_string()];
        assert_eq!(
            plain.score(&p, &r).unwrap(),
            plain.score_keyed(&[7], &p, &r).unwrap()
        );
    }
}
