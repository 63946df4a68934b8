//! The tables of a run config (`[world]`, `[sft]`, `[rm]`, `[pg]`, ...) with the
//! paper's defaults.

use crate::records::LowVarianceOrder;
use crate::toy::SftStyle;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `[world]`: exactly one of `[world.toy]` and `[world.paper]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorldConfig {
    /// The synthetic toy world, written by the run itself.
    pub toy: Option<ToyWorldConfig>,
    /// Paper scale: local directories and files the user provides.
    pub paper: Option<PaperWorldConfig>,
}

/// `[world.toy]`: sizes of the synthetic world (see [`crate::toy::ToyWorldSpec`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToyWorldConfig {
    /// Seed of the datasets and of the initial weights.
    #[serde(default)]
    pub seed: u64,
    /// `llama` or `gpt-neox`: the policy's architecture.
    #[serde(default)]
    pub arch: ToyArch,
    /// SFT examples.
    #[serde(default = "d_sft")]
    pub sft: usize,
    /// Preference pairs (split into RM and RLHF prompts by `data.rm_fraction`).
    #[serde(default = "d_prefs")]
    pub train_prefs: usize,
    /// Model width.
    #[serde(default = "d_hidden")]
    pub hidden_size: usize,
    /// Transformer blocks.
    #[serde(default = "d_layers")]
    pub num_hidden_layers: usize,
    /// Attention heads.
    #[serde(default = "d_heads")]
    pub num_attention_heads: usize,
    /// MLP width (GPT-NeoX; Llama uses 2/3 of it).
    #[serde(default = "d_inter")]
    pub intermediate_size: usize,
    /// Longest sequence.
    #[serde(default = "d_pos")]
    pub max_position_embeddings: usize,
    /// Off-policy quality gap between topic families, in [0, 1) (0: the same quality
    /// distribution, uniform in [0, 1], for every prompt; `g`: uniform in [0, 1 - g]
    /// for even topics and in [g, 1] for odd ones, so the policy is far better than the
    /// off-policy data on some prompts and worse on others). See
    /// [`crate::toy::ToyGenerator::preference_pair_with_gap`].
    #[serde(default)]
    pub offpolicy_gap: f64,
    /// How the SFT data (hence the SFT policy) varies: `mixed` (default: every axis of
    /// the ground truth at once), `topic` (exact length, on-topic-ness varies) or
    /// `length` (always on topic, length varies); see [`crate::toy::SftStyle`].
    #[serde(default)]
    pub sft_style: SftStyle,
}

/// `world.toy.arch`: the toy policy's architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ToyArch {
    /// `llama` (the default).
    #[default]
    #[serde(rename = "llama")]
    Llama,
    /// `gpt-neox`.
    #[serde(rename = "gpt-neox")]
    GptNeox,
}
fn d_sft() -> usize {
    2000
}
fn d_prefs() -> usize {
    2000
}
fn d_hidden() -> usize {
    256
}
fn d_layers() -> usize {
    4
}
fn d_heads() -> usize {
    4
}
fn d_inter() -> usize {
    1024
}
fn d_pos() -> usize {
    256
}

/// `[world.paper]`: local copies of the paper's model and data (no hub access).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaperWorldConfig {
    /// The initial causal LM directory (config.json, *.safetensors, tokenizer.json).
    pub model: PathBuf,
    /// AlpacaFarm `sft` split (parquet, JSONL or JSON).
    pub sft_data: PathBuf,
    /// UltraFeedback-binarized `train_prefs` (parquet, JSONL or JSON).
    pub train_prefs: PathBuf,
    /// The ground-truth reward model directory (`*ForSequenceClassification`).
    pub ground_truth: PathBuf,
}

/// `[data]`: filtering and the RM / RLHF split of the preference pairs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Drop pairs whose prompt, chosen or rejected text exceeds this many tokens (512).
    pub max_tokens: usize,
    /// Fraction of pairs for reward-model training; the rest are RLHF prompts (0.8).
    pub rm_fraction: f64,
    /// Use at most this many SFT examples (`None`: all).
    pub max_sft_examples: Option<usize>,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            max_tokens: 512,
            rm_fraction: 0.8,
            max_sft_examples: None,
        }
    }
}

/// `sft.source`: what the SFT stage fine-tunes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SftSource {
    /// `sft_data`: the world's SFT set (AlpacaFarm at paper scale).
    #[default]
    SftData,
    /// `rm_split_chosen`: the ground truth's preferred response of every RM-split
    /// pair (the appendix variant and Section 4.2).
    RmSplitChosen,
}

/// `[sft]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SftConfig {
    /// Fine-tune the world's model (true); false uses it as is, e.g. an Instruct model
    /// in Section 4.2.
    pub enabled: bool,
    /// What to fine-tune on.
    pub source: SftSource,
    /// Constant learning rate (1e-6).
    pub lr: f64,
    /// Examples per step (32).
    pub batch_size: usize,
    /// Examples per forward pass (`None`: the whole batch).
    pub micro_batch_size: Option<usize>,
    /// Passes over the data (1).
    pub epochs: usize,
    /// Gradient clipping (1.0).
    pub max_grad_norm: Option<f64>,
}

impl Default for SftConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            source: SftSource::SftData,
            lr: 1e-6,
            batch_size: 32,
            micro_batch_size: None,
            epochs: 1,
            max_grad_norm: Some(1.0),
        }
    }
}

/// `[prefdata]`: sampling of the on-policy pairs (temperature 1, no top-k).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrefDataConfig {
    /// Longest sampled response (512).
    pub max_new_tokens: usize,
    /// Rows per generation pass (64).
    pub batch_size: usize,
}

impl Default for PrefDataConfig {
    fn default() -> Self {
        Self {
            max_new_tokens: 512,
            batch_size: 64,
        }
    }
}

/// Whether `x` is 0 (serde leaves zero-valued levers out, so the records of runs
/// without them stay as they were).
fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

/// `[rm]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RmConfig {
    /// On-policy percentages of the reward models ([100, 75, 50, 25, 0]).
    pub mixes: Vec<u32>,
    /// Constant learning rate (5e-7).
    pub lr: f64,
    /// Pairs per step (32).
    pub batch_size: usize,
    /// Pairs per forward pass (`None`: the whole batch).
    pub micro_batch_size: Option<usize>,
    /// Passes over the pairs (1).
    pub epochs: usize,
    /// Beyond the paper: Llama 2's margin (Touvron et al. 2023, Eq. 2),
    /// `-log sigmoid(r_c - r_r - m)` with `m = margin * (score_chosen - score_rejected)`,
    /// the pair's own score gap (in the toy world and on-policy pairs: the ground-truth
    /// rewards, i.e. the ground truth's preference strength). 0 (default): the paper's
    /// loss, no margin.
    #[serde(skip_serializing_if = "is_zero")]
    pub margin: f64,
    /// Rows per scoring pass when the RMs score samples (64).
    pub score_batch_size: usize,
    /// Reward models trained elsewhere (Section 4.2's public RMs), `[[rm.external]]`.
    pub external: Vec<ExternalRm>,
    /// Other runs next to this one (directories under the same runs root; inside an
    /// experiment, its run names, e.g. `length-rloo`): when given,
    /// `rms/rm-union` is also trained, from this run's policy, on the union of this
    /// run's on-policy RM pairs and theirs (their `prefdata/` must be done). It is used
    /// by naming it in `[[rm.external]]` (`from_run`).
    pub union_with: Vec<PathBuf>,
}

/// `[[rm.external]]`: a reward model this run does not train. Give exactly one of
/// `dir` (a `*ForSequenceClassification` directory; relative to the config file) and
/// `from_run` (a path under the runs root, e.g. `toy-4.1/rms/rm-100`: another run's RM).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalRm {
    /// Its name in tables and under `pg/` (not `rm-<p>`, `gt` or `gt-low-variance`).
    pub name: String,
    /// A reward-model directory.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// A reward-model directory under the runs root.
    #[serde(default)]
    pub from_run: Option<PathBuf>,
}

impl ExternalRm {
    /// Its directory: `dir`, or `from_run` under `runs_root`.
    pub fn resolve(&self, runs_root: &Path) -> PathBuf {
        match (&self.dir, &self.from_run) {
            (Some(d), _) => d.clone(),
            (None, Some(r)) => runs_root.join(r),
            (None, None) => PathBuf::new(),
        }
    }
}

impl Default for RmConfig {
    fn default() -> Self {
        Self {
            mixes: vec![100, 75, 50, 25, 0],
            lr: 5e-7,
            batch_size: 32,
            micro_batch_size: None,
            epochs: 1,
            margin: 0.0,
            score_batch_size: 64,
            external: Vec::new(),
            union_with: Vec::new(),
        }
    }
}

/// `[normalize]` and `[eval]`: `prompts` RLHF prompts x `samples` samples (temperature
/// 1, top-k 50).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SampleConfig {
    /// Prompts (500; fewer when the RLHF split is smaller).
    pub prompts: usize,
    /// Samples per prompt (10).
    pub samples: usize,
    /// Longest response (512).
    pub max_new_tokens: usize,
    /// Top-k filter (50; 0 for none).
    pub top_k: usize,
    /// Rows per generation pass (64).
    pub batch_size: usize,
}

impl Default for SampleConfig {
    fn default() -> Self {
        Self {
            prompts: 500,
            samples: 10,
            max_new_tokens: 512,
            top_k: 50,
            batch_size: 64,
        }
    }
}

/// `[low_variance]`: the ground truth scaled on a fixed share of RLHF prompts, chosen
/// by index (`round(n * fraction)` rows of a seeded permutation of the RLHF rows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LowVarianceConfig {
    /// Include this reward (true).
    pub enabled: bool,
    /// Share of RLHF prompts scaled (0.5).
    pub fraction: f64,
    /// Factor on their normalised rewards (0.001).
    pub scale: f64,
    /// Where the normalisation is fitted: `scale_then_normalize` (the authors' code:
    /// on the initial-policy rewards with the chosen prompts' raw rewards already
    /// scaled; the default) or `normalize_then_scale` (the ground truth's own
    /// constants). Both orders' Table 1 variance is recorded in `rm_eval.json`.
    pub order: LowVarianceOrder,
}

impl Default for LowVarianceConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            fraction: 0.5,
            scale: 1e-3,
            order: LowVarianceOrder::ScaleThenNormalize,
        }
    }
}
