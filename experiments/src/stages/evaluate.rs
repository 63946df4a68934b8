//! Evaluation of a policy: `S` samples for each of `P` prompts (temperature 1,
//! top-k 50), scored by a proxy and the ground truth (both normalised by the caller's
//! [`Normalized`](super::rewards::Normalized) wrappers); the mean rewards, the mean
//! per-prompt reward variance (unbiased), on-policy accuracy, and the KL from the
//! initial policy (mean summed per-token log-ratio). Every metric comes from the
//! shared core [`rmteach::metrics`].

use super::batches::{mix_seed, ChatCodec};
use super::rewards::{checked_scores_keyed, RewardFn};
use crate::logprobs::{log_ratio, SequenceBatch};
use crate::models::Model;
use crate::sample::{generate, SamplingConfig};
use crate::{Error, Result};
use candle_core::Device;
use rmteach::metrics::{mean_prompt_variance, on_policy_accuracy, VarianceEstimator};
use serde::{Deserialize, Serialize};

/// Settings of [`sample`] and [`evaluate`] (defaults: the paper's evaluation).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalOptions {
    /// Samples per prompt (10).
    pub samples_per_prompt: usize,
    /// Sampling temperature (1).
    pub temperature: f64,
    /// Top-k filter (50; `None` for none).
    pub top_k: Option<usize>,
    /// Longest response (512).
    pub max_new_tokens: usize,
    /// Rows per generation or scoring pass (64).
    pub batch_size: usize,
    /// Seed of the sampling streams.
    pub seed: u64,
    /// The key of each prompt (its index in the run's RLHF prompt set; see
    /// [`RewardFn::score_keyed`]); `None`: its position in the prompt list.
    #[serde(skip)]
    pub keys: Option<Vec<usize>>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            samples_per_prompt: 10,
            temperature: 1.0,
            top_k: Some(50),
            max_new_tokens: 512,
            batch_size: 64,
            seed: 0,
            keys: None,
        }
    }
}

/// Sampled responses: row `i` answers `prompts[i / samples_per_prompt]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Samples {
    /// The prompts, once each.
    pub prompts: Vec<String>,
    /// The key of each prompt (see [`EvalOptions::keys`]).
    pub keys: Vec<usize>,
    /// Samples per prompt.
    pub samples_per_prompt: usize,
    /// Generation-prompt token ids of each row.
    pub prompt_ids: Vec<Vec<u32>>,
    /// Response token ids of each row (EOS included when produced).
    pub response_ids: Vec<Vec<u32>>,
    /// Response text of each row.
    pub responses: Vec<String>,
}

impl Samples {
    /// The prompt of each row.
    pub fn row_prompts(&self) -> Vec<String> {
        self.prompts
            .iter()
            .flat_map(|p| std::iter::repeat_n(p.clone(), self.samples_per_prompt))
            .collect()
    }

    /// The key of each row's prompt.
    pub fn row_keys(&self) -> Vec<usize> {
        self.keys
            .iter()
            .flat_map(|&k| std::iter::repeat_n(k, self.samples_per_prompt))
            .collect()
    }

    /// Scores of every row by `reward`, grouped per prompt.
    pub fn score(&self, reward: &dyn RewardFn) -> Result<Vec<Vec<f64>>> {
        let flat = checked_scores_keyed(
            reward,
            &self.row_keys(),
            &self.row_prompts(),
            &self.responses,
        )?;
        Ok(flat
            .chunks(self.samples_per_prompt)
            .map(<[f64]>::to_vec)
            .collect())
    }

    /// Mean over rows of `sum_t (log policy - log reference)` over response tokens
    /// (under the full distributions, although top-k sampling drew the rows).
    pub fn kl(
        &self,
        policy: &Model,
        reference: &Model,
        pad: u32,
        batch_size: usize,
        device: &Device,
    ) -> Result<f64> {
        let mut total = 0.0;
        for (p, r) in self
            .prompt_ids
            .chunks(batch_size.max(1))
            .zip(self.response_ids.chunks(batch_size.max(1)))
        {
            let batch = SequenceBatch::new(p, r, pad, device)?;
            total += log_ratio(policy, reference, &batch)?
                .to_vec1::<f32>()?
                .iter()
                .map(|&x| f64::from(x))
                .sum::<f64>();
        }
        Ok(total / self.response_ids.len().max(1) as f64)
    }
}

/// Draws `o.samples_per_prompt` responses to each prompt from `policy`.
pub fn sample(
    policy: &Model,
    codec: &ChatCodec,
    prompts: &[String],
    o: &EvalOptions,
    device: &Device,
) -> Result<Samples> {
    if prompts.is_empty() || o.samples_per_prompt == 0 || o.batch_size == 0 {
        return Err(Error::Input(
            "evaluate: needs prompts, `samples_per_prompt` >= 1 and `batch_size` >= 1".into(),
        ));
    }
    let keys = match &o.keys {
        Some(k) if k.len() != prompts.len() => {
            return Err(Error::Input(format!(
                "evaluate: {} prompt keys for {} prompts",
                k.len(),
                prompts.len()
            )))
        }
        Some(k) => k.clone(),
        None => (0..prompts.len()).collect(),
    };
    let mut prompt_ids = Vec::with_capacity(prompts.len() * o.samples_per_prompt);
    for p in prompts {
        let ids = codec.prompt_ids(p)?;
        prompt_ids.extend(std::iter::repeat_n(ids, o.samples_per_prompt));
    }
    let mut config =
        SamplingConfig::sampling(o.max_new_tokens, o.temperature, codec.eos, codec.pad, 0);
    config.top_k = o.top_k;
    let mut response_ids = Vec::with_capacity(prompt_ids.len());
    for (c, chunk) in prompt_ids.chunks(o.batch_size).enumerate() {
        let generation = generate(
            policy,
            chunk,
            &config.clone().with_seed(mix_seed(o.seed, c as u64)),
            device,
        )?;
        response_ids.extend(generation.responses);
        crate::progress::advance(crate::progress::Unit::Sequences, chunk.len() as u64);
    }
    let responses = response_ids
        .iter()
        .map(|r| codec.decode_response(r))
        .collect::<Result<_>>()?;
    Ok(Samples {
        prompts: prompts.to_vec(),
        keys,
        samples_per_prompt: o.samples_per_prompt,
        prompt_ids,
        response_ids,
        responses,
    })
}

pub use crate::records::RewardStats;

/// [`RewardStats`] of `scores` against `ground_truth` (same grouping).
pub fn reward_stats(scores: &[Vec<f64>], ground_truth: &[Vec<f64>]) -> Result<RewardStats> {
    let metric = |e: rmteach::metrics::MetricsError| Error::Input(format!("evaluate: {e}"));
    let n: usize = scores.iter().map(Vec::len).sum();
    let mean = scores.iter().flatten().sum::<f64>() / n.max(1) as f64;
    let variance = mean_prompt_variance(
        scores.iter().map(Vec::as_slice),
        VarianceEstimator::Unbiased,
    )
    .map_err(metric)?;
    let on_policy_accuracy = on_policy_accuracy(
        scores
            .iter()
            .map(Vec::as_slice)
            .zip(ground_truth.iter().map(Vec::as_slice)),
    )
    .map_err(metric)?;
    Ok(RewardStats {
        mean,
        variance,
        on_policy_accuracy,
    })
}

/// Mean of each prompt's scores.
pub fn prompt_means(scores: &[Vec<f64>]) -> Vec<f64> {
    scores
        .iter()
        .map(|g| g.iter().sum::<f64>() / g.len().max(1) as f64)
        .collect()
}

/// What [`evaluate`] measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// The proxy (training) reward.
    pub proxy: RewardStats,
    /// The ground truth (its accuracy is 1 by definition).
    pub ground_truth: RewardStats,
    /// KL from the reference (initial) policy, when one was given.
    pub kl: Option<f64>,
    /// Prompts evaluated.
    pub prompts: usize,
    /// Samples per prompt.
    pub samples_per_prompt: usize,
    /// Mean proxy reward of each prompt.
    pub proxy_per_prompt: Vec<f64>,
    /// Mean ground truth of each prompt.
    pub gt_per_prompt: Vec<f64>,
}

/// Samples from `policy` and measures it with `proxy` and `ground_truth` (both
/// already normalised), and the KL from `reference` when given.
#[allow(clippy::too_many_arguments)]
pub fn evaluate(
    policy: &Model,
    reference: Option<&Model>,
    codec: &ChatCodec,
    prompts: &[String],
    proxy: &dyn RewardFn,
    ground_truth: &dyn RewardFn,
    o: &EvalOptions,
    device: &Device,
) -> Result<EvalReport> {
    let samples = sample(policy, codec, prompts, o, device)?;
    let (p, g) = (samples.score(proxy)?, samples.score(ground_truth)?);
    let kl = reference
        .map(|r| samples.kl(policy, r, codec.pad, o.batch_size, device))
        .transpose()?;
    Ok(EvalReport {
        proxy: reward_stats(&p, &g)?,
        ground_truth: reward_stats(&g, &g)?,
        kl,
        prompts: prompts.len(),
        samples_per_prompt: o.samples_per_prompt,
        proxy_per_prompt: prompt_means(&p),
        gt_per_prompt: prompt_means(&g),
    })
}
