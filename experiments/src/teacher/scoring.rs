//! Filling the sample cache: sampling the missing prompts of each policy, then the
//! missing scores of each reward (one reward loaded at a time), and scoring the
//! preference pairs (cached in `prefs_scores.json`). Progress goes to a
//! [`ProgressBar`] whose length counts prompts to sample plus rows to score.

use super::cache::{SampleCache, SampleLine};
use crate::data::PreferencePair;
use crate::hf::load_checkpoint;
use crate::rundir::{read_json, write_json};
use crate::stages::batches::{mix_seed, ChatCodec};
use crate::stages::evaluate::{sample, EvalOptions};
use crate::stages::rewards::{checked_scores, RewardFn};
use crate::{Error, Result};
use candle_core::{DType, Device};
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Rows scored per call of a reward (and per progress update).
const SCORE_CHUNK: usize = 256;

/// Prompts per sampling chunk: one generation batch's worth.
pub fn prompts_per_chunk(o: &EvalOptions) -> usize {
    (o.batch_size / o.samples_per_prompt.max(1)).max(1)
}

/// Samples the prompts of `policy` (a directory) not yet in `cache`, appending each
/// chunk as it is drawn. Chunk `c` draws with seed `mix_seed(o.seed, c)`, so a resumed
/// run draws what an uninterrupted one would have.
pub fn sample_policy(
    cache: &mut SampleCache,
    (name, policy): (&str, &Path),
    prompts: &[String],
    o: &EvalOptions,
    (device, dtype): (&Device, DType),
    bar: &ProgressBar,
) -> Result<()> {
    let s = o.samples_per_prompt;
    let done = cache.prompts_done(name, s)?;
    if done > prompts.len() {
        return Err(Error::Input(format!(
            "{}: policy `{name}` has samples for {done} prompts, more than the {} given",
            cache.path().display(),
            prompts.len()
        )));
    }
    bar.inc(done as u64);
    if done == prompts.len() {
        return Ok(());
    }
    bar.set_message(format!("sampling {name}"));
    let ckpt = load_checkpoint(policy, dtype, device)?;
    let codec = ChatCodec::from_dir(policy)?;
    let per = prompts_per_chunk(o);
    for start in (done..prompts.len()).step_by(per) {
        // `done` is always a multiple of `per`: chunks are appended whole.
        let end = (start + per).min(prompts.len());
        let opts = EvalOptions {
            seed: mix_seed(o.seed, (start / per) as u64),
            keys: None,
            ..o.clone()
        };
        let out = sample(&ckpt.model, &codec, &prompts[start..end], &opts, device)?;
        let lines = out
            .responses
            .into_iter()
            .enumerate()
            .map(|(i, response)| SampleLine {
                policy: name.to_string(),
                prompt_index: start + i / s,
                response,
                scores: BTreeMap::new(),
            })
            .collect();
        cache.append(lines)?;
        bar.inc((end - start) as u64);
    }
    Ok(())
}

/// Rows of `cache` that `reward` has not scored yet.
pub fn missing(cache: &SampleCache, reward: &str) -> usize {
    cache
        .lines()
        .iter()
        .filter(|l| !l.scores.contains_key(reward))
        .count()
}

/// Scores every line missing `name`'s score with `reward` and saves the cache.
pub fn score_lines(
    cache: &mut SampleCache,
    name: &str,
    reward: &dyn RewardFn,
    prompts: &[String],
    bar: &ProgressBar,
) -> Result<()> {
    let todo: Vec<usize> = (0..cache.lines().len())
        .filter(|&i| !cache.lines()[i].scores.contains_key(name))
        .collect();
    bar.set_message(format!("scoring with {name}"));
    for chunk in todo.chunks(SCORE_CHUNK) {
        let (ps, rs): (Vec<String>, Vec<String>) = chunk
            .iter()
            .map(|&i| {
                let l = &cache.lines()[i];
                let p = prompts.get(l.prompt_index).cloned().ok_or_else(|| {
                    Error::Input(format!(
                        "{}: prompt_index {} past the {} prompts",
                        cache.path().display(),
                        l.prompt_index,
                        prompts.len()
                    ))
                })?;
                Ok((p, l.response.clone()))
            })
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .unzip();
        let scores = checked_scores(reward, &ps, &rs)
            .map_err(|e| Error::Input(format!("scoring with `{name}`: {e}")))?;
        for (&i, v) in chunk.iter().zip(scores) {
            cache.lines_mut()[i].scores.insert(name.to_string(), v);
        }
        bar.inc(chunk.len() as u64);
    }
    cache.save()
}

/// One reward's raw scores of the preference pairs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairScores {
    /// Score of each chosen response.
    pub chosen: Vec<f64>,
    /// Score of each rejected response.
    pub rejected: Vec<f64>,
}

/// `prefs_scores.json`: reward name -> pair scores, for `pairs` pairs.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PrefsCache {
    /// Number of pairs the scores are of.
    pub pairs: usize,
    /// Scores by reward name.
    pub scores: BTreeMap<String, PairScores>,
}

impl PrefsCache {
    /// Reads `file` (empty when absent or of another pair count).
    pub fn open(file: &Path, pairs: usize) -> Result<Self> {
        if file.exists() {
            let c: Self = read_json(file)?;
            if c.pairs == pairs {
                return Ok(c);
            }
        }
        Ok(Self {
            pairs,
            scores: BTreeMap::new(),
        })
    }

    /// Scores `prefs` with `reward` under `name` unless cached, and saves to `file`.
    pub fn score(
        &mut self,
        file: &Path,
        name: &str,
        reward: &dyn RewardFn,
        prefs: &[PreferencePair],
    ) -> Result<()> {
        if prefs.is_empty() || self.scores.contains_key(name) {
            return Ok(());
        }
        let prompts: Vec<String> = prefs.iter().map(|p| p.prompt.clone()).collect();
        let chosen: Vec<String> = prefs.iter().map(|p| p.chosen.clone()).collect();
        let rejected: Vec<String> = prefs.iter().map(|p| p.rejected.clone()).collect();
        let s = PairScores {
            chosen: checked_scores(reward, &prompts, &chosen)?,
            rejected: checked_scores(reward, &prompts, &rejected)?,
        };
        self.scores.insert(name.to_string(), s);
        write_json(file, self)
    }
}
