//! The preference-data stage (`prefdata/`): relabel the off-policy pairs by the ground
//! truth, split them into reward-model and RLHF prompts, sample two on-policy responses
//! per RM prompt from the SFT policy (temperature 1, no top-k) ordered by the ground
//! truth, and write the on-/off-policy mixes.
//!
//! Files (JSONL, one [`LabeledPair`] a line, written atomically):
//! - `rm_off_policy.jsonl`, `rm_on_policy.jsonl`: both kinds of pair for every RM prompt,
//!   in the same prompt order;
//! - `rlhf_pairs.jsonl`: the relabelled pairs of the RLHF prompts (policy-gradient
//!   prompts; their pairs give the off-policy accuracy);
//! - `mix-<p>.jsonl`: reward model `rm-<p>`'s training set, on-policy pairs for the
//!   first `p`% of a fixed prompt permutation and off-policy pairs for the rest (each
//!   prompt exactly once; the 50% prompts lie inside the 75% ones).

use super::stage::{Runtime, Stage};
use crate::data::{split_by_fraction, PreferencePair, PromptMix};
use crate::hf::load_checkpoint;
use crate::rundir::{read_jsonl, write_jsonl_atomic, StageDir};
use crate::stages::batches::{mix_seed, ChatCodec};
use crate::stages::evaluate::{sample, EvalOptions};
use crate::stages::rewards::{checked_scores, RewardFn};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A preference pair ordered by the ground truth, with its provenance.
/// `score_chosen` / `score_rejected` hold the ground-truth rewards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabeledPair {
    /// The pair (chosen scores at least as high as rejected under the ground truth).
    #[serde(flatten)]
    pub pair: PreferencePair,
    /// `on_policy` (sampled from the SFT policy) or `off_policy` (from the dataset).
    pub source: String,
    /// Whether relabelling swapped the dataset's order.
    #[serde(default)]
    pub swapped: bool,
}

/// What the stage produced (its `DONE.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrefDataSummary {
    /// RM prompts (each with one on- and one off-policy pair).
    pub rm_prompts: usize,
    /// RLHF prompts.
    pub rlhf_prompts: usize,
    /// Off-policy pairs the ground truth reordered.
    pub swapped: usize,
    /// Off-policy pairs the ground truth ties.
    pub off_policy_ties: usize,
    /// On-policy pairs the ground truth ties.
    pub on_policy_ties: usize,
    /// `(p, on-policy pairs, off-policy pairs)` of each mix.
    pub mixes: Vec<(u32, usize, usize)>,
}

/// The preference-data stage `prefdata`: splits the pairs into RM and RLHF pairs,
/// relabels them by the ground truth, samples on-policy pairs from the SFT policy and
/// writes each mix. Run it with [`super::run`].
pub struct PrefData<'a> {
    /// The SFT policy directory.
    pub sft_dir: &'a Path,
    /// The (length-filtered) preference pairs of `train_prefs`.
    pub pairs: Vec<PreferencePair>,
    /// The ground-truth reward (raw).
    pub ground_truth: &'a dyn RewardFn,
    /// Fraction of pairs for reward-model training.
    pub rm_fraction: f64,
    /// On-policy percentages.
    pub mixes: &'a [u32],
    /// Seed of the split, the mix permutation and the sampling.
    pub seed: u64,
    /// Longest sampled response.
    pub max_new_tokens: usize,
    /// Rows per generation pass.
    pub batch_size: usize,
}

/// Stream ids of the stage's seeds.
const SPLIT_STREAM: u64 = 11;
const MIX_STREAM: u64 = 12;
const SAMPLE_STREAM: u64 = 13;

/// The file of mix `p`.
pub fn mix_file(stage: &StageDir, p: u32) -> PathBuf {
    stage.file(&format!("mix-{p}.jsonl"))
}

/// The RLHF pairs of a complete stage.
pub fn rlhf_pairs(stage: &StageDir) -> Result<Vec<LabeledPair>> {
    read_jsonl(&stage.file("rlhf_pairs.jsonl"))
}

/// The training pairs of mix `p` of a complete stage.
pub fn mix_pairs(stage: &StageDir, p: u32) -> Result<Vec<PreferencePair>> {
    Ok(read_jsonl::<LabeledPair>(&mix_file(stage, p))?
        .into_iter()
        .map(|l| l.pair)
        .collect())
}

/// Orders `pair` by the ground-truth scores `(g_a, g_b)` of its two responses
/// (swapping when `rejected` scores higher; ties keep the order).
pub fn relabel(
    mut pair: PreferencePair,
    g_chosen: f64,
    g_rejected: f64,
    source: &str,
) -> LabeledPair {
    let swapped = g_chosen < g_rejected;
    let (gc, gr) = if swapped {
        std::mem::swap(&mut pair.chosen, &mut pair.rejected);
        (g_rejected, g_chosen)
    } else {
        (g_chosen, g_rejected)
    };
    pair.score_chosen = Some(gc);
    pair.score_rejected = Some(gr);
    LabeledPair {
        pair,
        source: source.into(),
        swapped,
    }
}

/// Relabels every pair by `ground_truth`.
fn relabel_all(
    pairs: Vec<PreferencePair>,
    ground_truth: &dyn RewardFn,
    source: &str,
) -> Result<Vec<LabeledPair>> {
    let prompts: Vec<String> = pairs.iter().map(|p| p.prompt.clone()).collect();
    let chosen: Vec<String> = pairs.iter().map(|p| p.chosen.clone()).collect();
    let rejected: Vec<String> = pairs.iter().map(|p| p.rejected.clone()).collect();
    let gc = checked_scores(ground_truth, &prompts, &chosen)?;
    let gr = checked_scores(ground_truth, &prompts, &rejected)?;
    Ok(pairs
        .into_iter()
        .zip(gc.into_iter().zip(gr))
        .map(|(p, (c, r))| relabel(p, c, r, source))
        .collect())
}

/// The SFT set of the paper's appendix runs and Section 4.2: every RM-split prompt
/// with the response of its pair the ground truth prefers. The split is the one
/// [`PrefData`] makes from the same pairs, fraction and seed (it scores those
/// pairs again: relabelling happens before the SFT policy exists).
pub fn rm_split_chosen(
    pairs: Vec<PreferencePair>,
    ground_truth: &dyn RewardFn,
    rm_fraction: f64,
    seed: u64,
) -> Result<Vec<crate::data::SftExample>> {
    let (rm, _) = split_by_fraction(pairs, rm_fraction, mix_seed(seed, SPLIT_STREAM))?;
    Ok(relabel_all(rm, ground_truth, "off_policy")?
        .into_iter()
        .map(|l| crate::data::SftExample {
            prompt: l.pair.prompt,
            response: l.pair.chosen,
        })
        .collect())
}

impl Stage for PrefData<'_> {
    type Summary = PrefDataSummary;

    fn name(&self) -> String {
        "prefdata".into()
    }

    fn run(self, stage: &StageDir, rt: &Runtime) -> Result<PrefDataSummary> {
        prefdata(stage, self, rt)
    }
}

/// The work of [`PrefData`].
fn prefdata(stage: &StageDir, mut input: PrefData<'_>, rt: &Runtime) -> Result<PrefDataSummary> {
    let (rm, rlhf) = split_by_fraction(
        std::mem::take(&mut input.pairs),
        input.rm_fraction,
        mix_seed(input.seed, SPLIT_STREAM),
    )?;
    if rm.is_empty() || rlhf.is_empty() {
        return Err(Error::Input(format!(
            "prefdata: the split left {} RM and {} RLHF pairs; both need at least one \
             (more preference pairs, or another data.rm_fraction)",
            rm.len(),
            rlhf.len()
        )));
    }
    // Work in sequences: both sides of every pair scored by the ground truth, and two
    // samples per RM prompt (then scored) when there are mixes.
    let on_policy = if input.mixes.is_empty() {
        0
    } else {
        4 * rm.len()
    };
    crate::progress::set_work(
        crate::progress::Unit::Sequences,
        (2 * (rm.len() + rlhf.len()) + on_policy) as u64,
        0,
    );
    let off = relabel_all(rm, input.ground_truth, "off_policy")?;
    let rlhf = relabel_all(rlhf, input.ground_truth, "off_policy")?;
    // On-policy pairs only feed the mixes: a run with no mixes (external RMs only)
    // samples none.
    let on = if input.mixes.is_empty() {
        Vec::new()
    } else {
        on_policy_pairs(&off, &input, rt)?
    };
    write_jsonl_atomic(&stage.file("rm_off_policy.jsonl"), &off)?;
    write_jsonl_atomic(&stage.file("rm_on_policy.jsonl"), &on)?;
    write_jsonl_atomic(&stage.file("rlhf_pairs.jsonl"), &rlhf)?;
    let order = PromptMix::new(off.len(), mix_seed(input.seed, MIX_STREAM));
    let mut mixes = Vec::new();
    for &p in input.mixes {
        let mask = order.mask(f64::from(p) / 100.0)?;
        let pairs: Vec<&LabeledPair> = mask
            .iter()
            .enumerate()
            .map(|(i, &use_on)| if use_on { &on[i] } else { &off[i] })
            .collect();
        let n_on = mask.iter().filter(|&&m| m).count();
        write_jsonl_atomic(&mix_file(stage, p), &pairs)?;
        mixes.push((p, n_on, off.len() - n_on));
    }
    let ties = |v: &[LabeledPair]| {
        v.iter()
            .filter(|l| l.pair.score_chosen == l.pair.score_rejected)
            .count()
    };
    let summary = PrefDataSummary {
        rm_prompts: off.len(),
        rlhf_prompts: rlhf.len(),
        swapped: off.iter().chain(&rlhf).filter(|l| l.swapped).count(),
        off_policy_ties: ties(&off) + ties(&rlhf),
        on_policy_ties: ties(&on),
        mixes,
    };
    Ok(summary)
}

/// Two samples per RM prompt from the SFT policy, ordered by the ground truth.
fn on_policy_pairs(
    off: &[LabeledPair],
    input: &PrefData<'_>,
    rt: &Runtime,
) -> Result<Vec<LabeledPair>> {
    let ckpt = load_checkpoint(input.sft_dir, rt.dtype, &rt.device)?;
    let codec = ChatCodec::from_dir(input.sft_dir)?;
    let prompts: Vec<String> = off.iter().map(|l| l.pair.prompt.clone()).collect();
    let o = EvalOptions {
        samples_per_prompt: 2,
        temperature: 1.0,
        top_k: None,
        max_new_tokens: input.max_new_tokens,
        batch_size: input.batch_size,
        seed: mix_seed(input.seed, SAMPLE_STREAM),
        keys: None,
    };
    let samples = sample(&ckpt.model, &codec, &prompts, &o, &rt.device)?;
    let pairs: Vec<PreferencePair> = prompts
        .iter()
        .zip(samples.responses.chunks(2))
        .map(|(p, r)| PreferencePair {
            prompt: p.clone(),
            chosen: r[0].clone(),
            rejected: r[1].clone(),
            score_chosen: None,
            score_rejected: None,
        })
        .collect();
    relabel_all(pairs, input.ground_truth, "on_policy")
}
