//! The TOML run config of `rmteach exp run CONFIG.toml`.
//!
//! Every table and field is optional except `name` and `[world]`; an absent field takes
//! the paper's Section 4.1 default (the protocol restated in the project notes, EXPERIMENTS.md). Unknown fields
//! are errors, and every invalid value is reported as an [`Error::Config`] naming the
//! file, the dotted field (`pg.k`) and the fix.

use crate::stages::pg::{PgAlgorithm, PgOptions};
use crate::{Error, Result};
use candle_core::Device;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The run's directory name under the runs root (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// Seed of the data split, the mixes' permutation and the evaluation prompts.
    #[serde(default)]
    pub seed: u64,
    /// `cpu`, `cuda` or `cuda:N` (a build with the `cuda` feature).
    #[serde(default = "cpu")]
    pub device: String,
    /// Precision of every stage: `f32` (the paper's; the only one the stages run today).
    #[serde(default = "f32")]
    pub dtype: String,
    /// Where the models and data come from.
    pub world: WorldConfig,
    /// The train-preference split.
    #[serde(default)]
    pub data: DataConfig,
    /// Supervised fine-tuning.
    #[serde(default)]
    pub sft: SftConfig,
    /// On-policy preference pairs.
    #[serde(default)]
    pub prefdata: PrefDataConfig,
    /// Reward-model training.
    #[serde(default)]
    pub rm: RmConfig,
    /// The normalisation (and Table 1) sample.
    #[serde(default)]
    pub normalize: SampleConfig,
    /// The perfectly accurate, low-variance reward.
    #[serde(default)]
    pub low_variance: LowVarianceConfig,
    /// Policy gradient.
    #[serde(default)]
    pub pg: PgConfig,
    /// Per-epoch evaluation.
    #[serde(default)]
    pub eval: SampleConfig,
}

fn cpu() -> String {
    "cpu".into()
}
fn f32() -> String {
    "f32".into()
}

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
    #[serde(default = "llama")]
    pub arch: String,
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
}

fn llama() -> String {
    "llama".into()
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

/// `[sft]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SftConfig {
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
    /// Rows per scoring pass when the RMs score samples (64).
    pub score_batch_size: usize,
}

impl Default for RmConfig {
    fn default() -> Self {
        Self {
            mixes: vec![100, 75, 50, 25, 0],
            lr: 5e-7,
            batch_size: 32,
            micro_batch_size: None,
            epochs: 1,
            score_batch_size: 64,
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

/// `[low_variance]`: the ground truth scaled on a fixed share of RLHF prompts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LowVarianceConfig {
    /// Include this reward (true).
    pub enabled: bool,
    /// Share of RLHF prompts scaled (0.5).
    pub fraction: f64,
    /// Factor on their normalised rewards (0.001).
    pub scale: f64,
}

impl Default for LowVarianceConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            fraction: 0.5,
            scale: 1e-3,
        }
    }
}

/// `[pg]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PgConfig {
    /// `rloo` or `grpo`.
    pub algorithm: String,
    /// Samples per prompt (2).
    pub k: usize,
    /// KL coefficient (0.05).
    pub beta: f64,
    /// Constant learning rate (1e-7).
    pub lr: f64,
    /// Completions per rollout batch (32).
    pub batch: usize,
    /// Optimiser steps per rollout batch (2).
    pub mini_batches: usize,
    /// Completions per forward pass (`None`: the mini-batch).
    pub micro_batch_size: Option<usize>,
    /// Training length in epochs of completions (6).
    pub epochs: f64,
    /// Longest rollout response (512).
    pub max_new_tokens: usize,
    /// Training seeds ([0, 1, 2]).
    pub seeds: Vec<u64>,
    /// Checkpoint every this many updates (10).
    pub checkpoint_every: u64,
    /// Train on these rewards only (`None`: every RM, the low-variance reward, `gt`).
    pub rewards: Option<Vec<String>>,
}

impl Default for PgConfig {
    fn default() -> Self {
        let d = PgOptions::default();
        Self {
            algorithm: "rloo".into(),
            k: d.k,
            beta: d.beta,
            lr: d.lr,
            batch: d.batch_size,
            mini_batches: d.mini_batches,
            micro_batch_size: None,
            epochs: d.epochs,
            max_new_tokens: d.max_new_tokens,
            seeds: vec![0, 1, 2],
            checkpoint_every: d.checkpoint_every,
            rewards: None,
        }
    }
}

impl PgConfig {
    /// The stage options for training seed `seed`.
    pub fn options(&self, seed: u64) -> Result<PgOptions> {
        let algorithm = match self.algorithm.as_str() {
            "rloo" => PgAlgorithm::Rloo,
            "grpo" => PgAlgorithm::Grpo,
            other => {
                return Err(Error::config(
                    "<run config>",
                    "pg.algorithm",
                    format!("unknown `{other}`; use \"rloo\" or \"grpo\""),
                ))
            }
        };
        Ok(PgOptions {
            algorithm,
            k: self.k,
            beta: self.beta,
            lr: self.lr,
            batch_size: self.batch,
            mini_batches: self.mini_batches,
            micro_batch_size: self.micro_batch_size,
            epochs: self.epochs,
            max_new_tokens: self.max_new_tokens,
            checkpoint_every: self.checkpoint_every,
            seed,
            ..PgOptions::default()
        })
    }
}

impl RunConfig {
    /// Reads and validates a config file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Self::from_toml_str(&text, &path.display().to_string())?;
        // Relative paths of a paper world are relative to the config file.
        if let (Some(p), Some(dir)) = (config.world.paper.as_mut(), path.parent()) {
            for f in [
                &mut p.model,
                &mut p.sft_data,
                &mut p.train_prefs,
                &mut p.ground_truth,
            ] {
                if f.is_relative() {
                    *f = dir.join(&*f);
                }
            }
        }
        Ok(config)
    }

    /// Parses and validates TOML text; `file` names it in errors.
    pub fn from_toml_str(text: &str, file: &str) -> Result<Self> {
        let config: Self = toml::from_str(text).map_err(|e| {
            let field = toml_field(text, &e).unwrap_or_else(|| "(document)".into());
            Error::config(file, &field, e.to_string().trim_end())
        })?;
        config.validate(file)?;
        Ok(config)
    }

    /// Checks every value a stage would reject later, naming the field and the fix.
    pub fn validate(&self, file: &str) -> Result<()> {
        let bad = |field: &str, msg: &str| Err(Error::config(file, field, msg));
        let name_ok = !self.name.is_empty()
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && !self.name.starts_with('.');
        if !name_ok {
            return bad(
                "name",
                "must be a non-empty directory name of letters, digits, `-`, `_`, `.`",
            );
        }
        self.device_ordinal()
            .map_err(|e| Error::config(file, "device", e.to_string()))?;
        if self.dtype != "f32" {
            return bad(
                "dtype",
                "the stages train and sample in f32 only; set dtype = \"f32\"",
            );
        }
        match (&self.world.toy, &self.world.paper) {
            (Some(t), None) => t.validate(file)?,
            (None, Some(_)) => {}
            _ => return bad("world", "give exactly one of [world.toy] and [world.paper]"),
        }
        let d = &self.data;
        if !(d.rm_fraction > 0.0 && d.rm_fraction < 1.0) {
            return bad(
                "data.rm_fraction",
                "must lie strictly between 0 and 1 (0.8)",
            );
        }
        positive(file, "data.max_tokens", d.max_tokens)?;
        positive(file, "sft.batch_size", self.sft.batch_size)?;
        positive(file, "sft.epochs", self.sft.epochs)?;
        micro(file, "sft", self.sft.batch_size, self.sft.micro_batch_size)?;
        rate(file, "sft.lr", self.sft.lr)?;
        positive(
            file,
            "prefdata.max_new_tokens",
            self.prefdata.max_new_tokens,
        )?;
        positive(file, "prefdata.batch_size", self.prefdata.batch_size)?;
        let rm = &self.rm;
        if rm.mixes.is_empty() || rm.mixes.iter().any(|&p| p > 100) {
            return bad(
                "rm.mixes",
                "must list on-policy percentages in 0..=100, e.g. [100, 75, 50, 25, 0]",
            );
        }
        let mut seen = rm.mixes.clone();
        seen.sort_unstable();
        seen.dedup();
        if seen.len() != rm.mixes.len() {
            return bad("rm.mixes", "must not repeat a percentage");
        }
        positive(file, "rm.batch_size", rm.batch_size)?;
        positive(file, "rm.epochs", rm.epochs)?;
        positive(file, "rm.score_batch_size", rm.score_batch_size)?;
        micro(file, "rm", rm.batch_size, rm.micro_batch_size)?;
        rate(file, "rm.lr", rm.lr)?;
        for (table, s) in [("normalize", &self.normalize), ("eval", &self.eval)] {
            positive(file, &format!("{table}.prompts"), s.prompts)?;
            if s.samples < 2 {
                return bad(
                    &format!("{table}.samples"),
                    "must be at least 2 (variance and accuracy compare samples)",
                );
            }
            positive(file, &format!("{table}.max_new_tokens"), s.max_new_tokens)?;
            positive(file, &format!("{table}.batch_size"), s.batch_size)?;
        }
        let lv = &self.low_variance;
        if !(lv.fraction >= 0.0 && lv.fraction <= 1.0) {
            return bad("low_variance.fraction", "must lie in [0, 1] (0.5)");
        }
        if !(lv.scale.is_finite() && lv.scale > 0.0) {
            return bad("low_variance.scale", "must be finite and positive (0.001)");
        }
        let pg = &self.pg;
        let o = pg.options(0).map_err(|e| rename(e, file))?;
        rate(file, "pg.lr", pg.lr)?;
        if pg.seeds.is_empty() {
            return bad("pg.seeds", "must list at least one seed, e.g. [0, 1, 2]");
        }
        if !(pg.epochs.is_finite() && pg.epochs > 0.0) {
            return bad("pg.epochs", "must be finite and positive (6)");
        }
        if pg.k < 2 {
            return bad(
                "pg.k",
                "must be at least 2 (samples per prompt; the paper's 2)",
            );
        }
        if pg.batch == 0 || pg.batch % pg.k != 0 {
            return bad(
                "pg.batch",
                &format!("must be a positive multiple of pg.k (= {})", pg.k),
            );
        }
        if pg.mini_batches == 0 || pg.batch % pg.mini_batches != 0 {
            return bad(
                "pg.mini_batches",
                &format!("must be positive and divide pg.batch (= {})", pg.batch),
            );
        }
        micro(file, "pg", pg.batch / pg.mini_batches, pg.micro_batch_size)?;
        positive(file, "pg.max_new_tokens", pg.max_new_tokens)?;
        if pg.checkpoint_every == 0 {
            return bad("pg.checkpoint_every", "must be positive");
        }
        rate(file, "pg.beta", pg.beta)?;
        // Anything else the stage itself would refuse.
        if let Err(e) = o.total_updates(1) {
            return bad("pg", &e.to_string());
        }
        if let Some(r) = &pg.rewards {
            let known = self.reward_names();
            if let Some(x) = r.iter().find(|x| !known.contains(x)) {
                return bad(
                    "pg.rewards",
                    &format!("unknown reward `{x}`; known: {}", known.join(", ")),
                );
            }
        }
        Ok(())
    }

    /// The parsed `device`: `None` for the CPU, `Some(n)` for GPU `n` (not opened).
    pub fn device_ordinal(&self) -> Result<Option<usize>> {
        match self.device.as_str() {
            "cpu" => Ok(None),
            "cuda" => Ok(Some(0)),
            d => match d.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Ok(Some(n)),
                _ => Err(Error::Input(format!(
                    "unknown `{d}`; use \"cpu\", \"cuda\" or \"cuda:N\""
                ))),
            },
        }
    }

    /// Opens the device to run on.
    pub fn device(&self) -> Result<Device> {
        match self.device_ordinal()? {
            None => Ok(Device::Cpu),
            Some(n) => Device::new_cuda(n).map_err(|e| {
                Error::Input(format!(
                    "device `{}`: no CUDA device ({e}); build with `--features cuda` or use \"cpu\"",
                    self.device
                ))
            }),
        }
    }

    /// Name of the reward model trained on mix `p` (`rm-100`, ..., `rm-0`).
    pub fn rm_name(p: u32) -> String {
        format!("rm-{p}")
    }

    /// Every training reward, in Table 1's column order: the RMs, the low-variance
    /// reward (when enabled), the ground truth.
    pub fn reward_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.rm.mixes.iter().map(|&p| Self::rm_name(p)).collect();
        if self.low_variance.enabled {
            names.push(LOW_VARIANCE.into());
        }
        names.push(GROUND_TRUTH.into());
        names
    }

    /// The rewards policy gradient trains on.
    pub fn pg_rewards(&self) -> Vec<String> {
        self.pg
            .rewards
            .clone()
            .unwrap_or_else(|| self.reward_names())
    }
}

/// Name of the perfectly accurate, low-variance reward.
pub const LOW_VARIANCE: &str = "gt-low-variance";
/// Name of the ground-truth reward.
pub const GROUND_TRUTH: &str = "gt";

impl ToyWorldConfig {
    fn validate(&self, file: &str) -> Result<()> {
        if self.arch != "llama" && self.arch != "gpt-neox" {
            return Err(Error::config(
                file,
                "world.toy.arch",
                format!("unknown `{}`; use \"llama\" or \"gpt-neox\"", self.arch),
            ));
        }
        for (f, v) in [
            ("sft", self.sft),
            ("train_prefs", self.train_prefs),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
        ] {
            positive(file, &format!("world.toy.{f}"), v)?;
        }
        if self.train_prefs < 10 {
            return Err(Error::config(
                file,
                "world.toy.train_prefs",
                "must be at least 10 (both the RM and the RLHF split need pairs)",
            ));
        }
        if self.hidden_size % (2 * self.num_attention_heads) != 0 {
            return Err(Error::config(
                file,
                "world.toy.hidden_size",
                "must be a multiple of 2 * num_attention_heads (even rotary head width)",
            ));
        }
        Ok(())
    }
}

/// Renames the `<run config>` file label of an error to `file`.
fn rename(e: Error, file: &str) -> Error {
    match e {
        Error::Config { field, message, .. } => Error::config(file, &field, message),
        other => other,
    }
}

fn positive(file: &str, field: &str, v: usize) -> Result<()> {
    if v == 0 {
        return Err(Error::config(file, field, "must be positive"));
    }
    Ok(())
}

fn rate(file: &str, field: &str, v: f64) -> Result<()> {
    if !(v.is_finite() && v >= 0.0) {
        return Err(Error::config(file, field, "must be finite and >= 0"));
    }
    Ok(())
}

fn micro(file: &str, table: &str, batch: usize, m: Option<usize>) -> Result<()> {
    match m {
        Some(m) if m == 0 || m > batch => Err(Error::config(
            file,
            &format!("{table}.micro_batch_size"),
            format!("must be in 1..={batch} (the batch per step), or left out"),
        )),
        _ => Ok(()),
    }
}

/// The dotted key at the error's position, found from the table header above it and
/// the `key =` on its line (best effort; `None` when the error has no position).
fn toml_field(text: &str, e: &toml::de::Error) -> Option<String> {
    let start = e.span()?.start.min(text.len());
    let before = &text[..start];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    let table = before[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    // An unknown field's message names it; otherwise the key of the line.
    let key = unknown_field(e.message()).or_else(|| {
        let (k, _) = line.split_once('=')?;
        Some(k.trim().to_string())
    });
    match (table, key) {
        (Some(t), Some(k)) if !line.trim_start().starts_with('[') => Some(format!("{t}.{k}")),
        (_, Some(k)) if !line.trim_start().starts_with('[') => Some(k),
        (_, _) if line.trim_start().starts_with('[') => Some(
            line.trim()
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_string(),
        ),
        _ => None,
    }
}

/// `x` of serde's "unknown field `x`, expected ...".
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest.split('`').next()?.to_string())
}
