//! The normalisation stage (`normalize/`): `P` fixed RLHF prompts x `S` samples from
//! the initial (SFT) policy (temperature 1, top-k 50), scored by every raw reward (each
//! reward model and the ground truth); a [`Normalizer`] per reward over all `P * S`
//! scores (mean, unbiased std + 1e-8), fixed for the rest of the run.
//!
//! Files: `samples.jsonl` (one [`SampleRow`] a line), `scores/<reward>.json` (a
//! [`RawScores`]: the raw scores of the samples and of the prompts' off-policy pairs,
//! which [`super::rm_eval`] reads), `normalize.json` (reward name -> `{mean, std}`).
//! Samples and each reward's scores are kept when written, so a killed stage resumes
//! with the next reward.

use super::stage::{Runtime, Stage};
use crate::data::PreferencePair;
use crate::hf::load_checkpoint;
use crate::rundir::{read_json, read_jsonl, write_json, write_jsonl_atomic, StageDir};
use crate::stages::batches::ChatCodec;
use crate::stages::evaluate::{sample, EvalOptions};
use crate::stages::rewards::{checked_scores, RewardFn};
use crate::{Error, Result};
use rmteach::metrics::Normalizer;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// One sampled response (row `i` answers prompt `i / samples_per_prompt`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleRow {
    /// The prompt.
    pub prompt: String,
    /// The response text.
    pub response: String,
}

/// A raw reward's scores of the stage's samples and of the prompts' off-policy pairs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawScores {
    /// One score per sample row.
    pub samples: Vec<f64>,
    /// Score of each prompt's chosen response.
    pub pairs_chosen: Vec<f64>,
    /// Score of each prompt's rejected response.
    pub pairs_rejected: Vec<f64>,
}

/// What the stage produced (its `DONE.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NormalizeSummary {
    /// Prompts sampled.
    pub prompts: usize,
    /// Samples per prompt.
    pub samples_per_prompt: usize,
    /// Mean response length in characters.
    pub mean_response_chars: f64,
    /// The normalisers (as in `normalize.json`).
    pub normalizers: BTreeMap<String, Normalizer>,
}

/// A raw reward, loaded when the stage needs it (one at a time).
pub type RewardLoader<'a> = &'a dyn Fn(&str) -> Result<Box<dyn RewardFn>>;

/// The normalisation stage `normalize`: samples the initial policy on the fixed
/// prompts, scores samples and pairs by every raw reward and fits one normaliser per
/// reward. Run it with [`super::run`].
pub struct Normalize<'a> {
    /// The initial policy directory.
    pub policy_dir: &'a Path,
    /// The fixed prompts, each with its off-policy pair.
    pub pairs: &'a [PreferencePair],
    /// Names of the raw rewards (each RM and `gt`).
    pub rewards: &'a [String],
    /// Loads a raw reward by name.
    pub load: RewardLoader<'a>,
    /// Sampling settings (`samples_per_prompt`, top-k, length, batch, seed).
    pub sampling: EvalOptions,
}

/// The normalisers of a complete stage.
pub fn load_normalizers(stage: &StageDir) -> Result<BTreeMap<String, Normalizer>> {
    read_json(&stage.file("normalize.json"))
}

/// The samples and one reward's raw scores of a (possibly partial) stage.
pub fn load_scores(stage: &StageDir, reward: &str) -> Result<RawScores> {
    read_json(&stage.file(&format!("scores/{reward}.json")))
}

/// The sample rows of the stage.
pub fn load_samples(stage: &StageDir) -> Result<Vec<SampleRow>> {
    read_jsonl(&stage.file("samples.jsonl"))
}

impl Stage for Normalize<'_> {
    type Summary = NormalizeSummary;

    fn name(&self) -> String {
        "normalize".into()
    }

    fn run(self, stage: &StageDir, rt: &Runtime) -> Result<NormalizeSummary> {
        normalize(stage, self, rt)
    }
}

/// Announces the stage's work in sequences: the samples (unless kept on file) and,
/// for every reward whose scores are not kept, the samples and both sides of each pair.
fn announce_work(stage: &StageDir, input: &Normalize<'_>, samples_file: &std::path::Path) {
    let rows = (input.pairs.len() * input.sampling.samples_per_prompt) as u64;
    let sampling = if samples_file.exists() { 0 } else { rows };
    let to_score = input
        .rewards
        .iter()
        .filter(|name| !stage.file(&format!("scores/{name}.json")).exists())
        .count() as u64;
    let per_reward = rows + 2 * input.pairs.len() as u64;
    crate::progress::set_work(
        crate::progress::Unit::Sequences,
        sampling + to_score * per_reward,
        0,
    );
}

/// The work of [`Normalize`].
fn normalize(stage: &StageDir, input: Normalize<'_>, rt: &Runtime) -> Result<NormalizeSummary> {
    let s = input.sampling.samples_per_prompt;
    let samples_file = stage.file("samples.jsonl");
    announce_work(stage, &input, &samples_file);
    let rows: Vec<SampleRow> = if samples_file.exists() {
        read_jsonl(&samples_file)?
    } else {
        let ckpt = load_checkpoint(input.policy_dir, rt.dtype, &rt.device)?;
        let codec = ChatCodec::from_dir(input.policy_dir)?;
        let prompts: Vec<String> = input.pairs.iter().map(|p| p.prompt.clone()).collect();
        let out = sample(&ckpt.model, &codec, &prompts, &input.sampling, &rt.device)?;
        let rows: Vec<SampleRow> = out
            .row_prompts()
            .into_iter()
            .zip(out.responses)
            .map(|(prompt, response)| SampleRow { prompt, response })
            .collect();
        write_jsonl_atomic(&samples_file, &rows)?;
        rows
    };
    if rows.len() != input.pairs.len() * s {
        return Err(Error::Input(format!(
            "{}: {} rows, expected {} prompts x {s} samples; delete the file to resample",
            samples_file.display(),
            rows.len(),
            input.pairs.len()
        )));
    }
    let (prompts, responses): (Vec<String>, Vec<String>) = rows
        .iter()
        .map(|r| (r.prompt.clone(), r.response.clone()))
        .unzip();
    let pair_prompts: Vec<String> = input.pairs.iter().map(|p| p.prompt.clone()).collect();
    let chosen: Vec<String> = input.pairs.iter().map(|p| p.chosen.clone()).collect();
    let rejected: Vec<String> = input.pairs.iter().map(|p| p.rejected.clone()).collect();
    let scores_dir = stage.file("scores");
    std::fs::create_dir_all(&scores_dir).map_err(|source| Error::Io {
        path: scores_dir.clone(),
        source,
    })?;
    let mut normalizers = BTreeMap::new();
    for name in input.rewards {
        let file = stage.file(&format!("scores/{name}.json"));
        let scores = if file.exists() {
            read_json::<RawScores>(&file)?
        } else {
            let reward = (input.load)(name)?;
            let scores = RawScores {
                samples: checked_scores(reward.as_ref(), &prompts, &responses)?,
                pairs_chosen: checked_scores(reward.as_ref(), &pair_prompts, &chosen)?,
                pairs_rejected: checked_scores(reward.as_ref(), &pair_prompts, &rejected)?,
            };
            write_json(&file, &scores)?;
            scores
        };
        let n = Normalizer::fit(&scores.samples)
            .map_err(|e| Error::Input(format!("normalize: reward `{name}`: {e}")))?;
        normalizers.insert(name.clone(), n);
    }
    write_json(&stage.file("normalize.json"), &normalizers)?;
    let summary = NormalizeSummary {
        prompts: input.pairs.len(),
        samples_per_prompt: s,
        mean_response_chars: responses.iter().map(|r| r.len()).sum::<usize>() as f64
            / responses.len().max(1) as f64,
        normalizers,
    };
    Ok(summary)
}
