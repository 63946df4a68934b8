//! Writing the whole toy world into a directory, in the formats of real data:
//! tokenizer files, one Hugging Face model directory per tiny architecture
//! (`config.json` plus the tokenizer), and JSONL datasets (pretraining text,
//! AlpacaFarm-style SFT, UltraFeedback-style preference splits, prompts).

use super::configs::{gpt_neox_config, llama_config, ToyModelSize, ToyTokenIds};
use super::generate::{SftStyle, ToyGenerator};
use super::reward::ToyReward;
use super::tokenizer::toy_tokenizer;
use crate::data::{alpaca_row, prompt_row, ultrafeedback_row, write_jsonl, PromptRecord};
use crate::{Error, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Sizes and seed of a toy world.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToyWorldSpec {
    /// Seed of every generator (each dataset draws from its own stream).
    pub seed: u64,
    /// Pretraining documents.
    pub pretrain: usize,
    /// SFT examples.
    pub sft: usize,
    /// Preference pairs in `train_prefs`.
    pub train_prefs: usize,
    /// Preference pairs in `test_prefs`.
    pub test_prefs: usize,
    /// Evaluation prompts.
    pub prompts: usize,
    /// Shape of both tiny models.
    pub model: ToyModelSize,
    /// Off-policy quality gap between topic families, in thousandths (0: every
    /// off-policy response of uniform quality in [0, 1]; `g`: [0, 1 - g/1000] for even
    /// topics, [g/1000, 1] for odd ones; see
    /// [`ToyGenerator::preference_pair_with_gap`]).
    pub offpolicy_gap_permille: u32,
    /// How the SFT data varies ([`SftStyle::Mixed`]: the plain world).
    pub sft_style: SftStyle,
}

impl Default for ToyWorldSpec {
    /// Seed 0; 4000 pretraining documents, 2000 SFT examples, 2000/200 preference
    /// pairs, 500 prompts; [`ToyModelSize::default`].
    fn default() -> Self {
        Self {
            seed: 0,
            pretrain: 4000,
            sft: 2000,
            train_prefs: 2000,
            test_prefs: 200,
            prompts: 500,
            model: ToyModelSize::default(),
            offpolicy_gap_permille: 0,
            sft_style: SftStyle::Mixed,
        }
    }
}

/// Where [`write_toy_world`] put everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToyWorldPaths {
    /// The directory given.
    pub root: PathBuf,
    /// `tokenizer/`: tokenizer.json and tokenizer_config.json.
    pub tokenizer: PathBuf,
    /// `models/gpt-neox-toy/`: config.json and the tokenizer files.
    pub gpt_neox: PathBuf,
    /// `models/llama-toy/`: config.json and the tokenizer files.
    pub llama: PathBuf,
    /// `data/pretrain.jsonl`: `{"text": ...}` documents.
    pub pretrain: PathBuf,
    /// `data/sft.jsonl`: AlpacaFarm columns (`instruction`, `input`, `output`).
    pub sft: PathBuf,
    /// `data/train_prefs.jsonl`: UltraFeedback-binarized columns.
    pub train_prefs: PathBuf,
    /// `data/test_prefs.jsonl`: UltraFeedback-binarized columns.
    pub test_prefs: PathBuf,
    /// `data/prompts.jsonl`: `{"prompt": ...}`.
    pub prompts: PathBuf,
    /// `world.json`: the spec, the reward's definition, the vocabulary size.
    pub manifest: PathBuf,
}

impl ToyWorldPaths {
    /// The layout under `root`.
    pub fn new(root: &Path) -> Self {
        let data = root.join("data");
        Self {
            root: root.to_path_buf(),
            tokenizer: root.join("tokenizer"),
            gpt_neox: root.join("models").join("gpt-neox-toy"),
            llama: root.join("models").join("llama-toy"),
            pretrain: data.join("pretrain.jsonl"),
            sft: data.join("sft.jsonl"),
            train_prefs: data.join("train_prefs.jsonl"),
            test_prefs: data.join("test_prefs.jsonl"),
            prompts: data.join("prompts.jsonl"),
            manifest: root.join("world.json"),
        }
    }
}

/// Stream ids, so that changing one dataset's size leaves the others unchanged.
const PRETRAIN_STREAM: u64 = 1;
const SFT_STREAM: u64 = 2;
const TRAIN_PREFS_STREAM: u64 = 3;
const TEST_PREFS_STREAM: u64 = 4;
const PROMPTS_STREAM: u64 = 5;

/// The seed of `stream` under `seed` (SplitMix64 of their combination).
fn stream_seed(seed: u64, stream: u64) -> u64 {
    let mut z = seed
        .wrapping_add(stream.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Writes the toy world described by `spec` under `root` (created if needed; files
/// already there are overwritten). Deterministic given the spec.
pub fn write_toy_world(root: &Path, spec: &ToyWorldSpec) -> Result<ToyWorldPaths> {
    let paths = ToyWorldPaths::new(root);
    let tokenizer = toy_tokenizer()?;
    let ids = ToyTokenIds {
        vocab_size: tokenizer.vocab_size(),
        eos: tokenizer.require_eos_token_id()?,
        pad: tokenizer
            .pad_token_id()
            .ok_or_else(|| Error::Input("toy tokenizer lacks a pad token".into()))?,
    };
    tokenizer.save(&paths.tokenizer)?;
    for (dir, config) in [
        (&paths.gpt_neox, gpt_neox_config(&spec.model, &ids)),
        (&paths.llama, llama_config(&spec.model, &ids)),
    ] {
        tokenizer.save(dir)?;
        write_json(&dir.join("config.json"), &config)?;
    }

    let reward = ToyReward::default();
    let gap = f64::from(spec.offpolicy_gap_permille) / 1000.0;
    let mut g = ToyGenerator::new(stream_seed(spec.seed, PRETRAIN_STREAM));
    write_jsonl(
        &paths.pretrain,
        (0..spec.pretrain).map(|_| json!({"text": g.pretrain_text()})),
    )?;
    let mut g = ToyGenerator::new(stream_seed(spec.seed, SFT_STREAM));
    write_jsonl(
        &paths.sft,
        (0..spec.sft).map(|_| alpaca_row(&g.sft_example_styled(spec.sft_style))),
    )?;
    for (path, n, stream) in [
        (&paths.train_prefs, spec.train_prefs, TRAIN_PREFS_STREAM),
        (&paths.test_prefs, spec.test_prefs, TEST_PREFS_STREAM),
    ] {
        let mut g = ToyGenerator::new(stream_seed(spec.seed, stream));
        write_jsonl(
            path,
            (0..n).map(|_| ultrafeedback_row(&g.preference_pair_with_gap(&reward, gap))),
        )?;
    }
    let mut g = ToyGenerator::new(stream_seed(spec.seed, PROMPTS_STREAM));
    write_jsonl(
        &paths.prompts,
        (0..spec.prompts).map(|_| {
            prompt_row(&PromptRecord {
                prompt: g.prompt().1,
            })
        }),
    )?;

    let manifest = json!({
        "kind": "rmteach toy world",
        "seed": spec.seed,
        "sizes": {
            "pretrain": spec.pretrain, "sft": spec.sft, "train_prefs": spec.train_prefs,
            "test_prefs": spec.test_prefs, "prompts": spec.prompts
        },
        "vocab_size": ids.vocab_size,
        "sft_style": format!("{:?}", spec.sft_style).to_lowercase(),
        "offpolicy_quality": if spec.offpolicy_gap_permille == 0 {
            "uniform in [0, 1] for every prompt".to_string()
        } else {
            format!("uniform in [0, {:.3}] for even topics, [{gap:.3}, 1] for odd topics", 1.0 - gap)
        },
        "ground_truth": {
            "name": "ToyReward",
            "definition": "2 * (0.5 * on_topic + 0.3 * length + 0.2 * distinct) - 1; \
                           empty response -1; prompt without a task 0",
        },
    });
    write_json(&paths.manifest, &manifest)?;
    Ok(paths)
}

/// Writes pretty JSON to `path`, creating its directory.
fn write_json(path: &Path, value: &Value) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let text = serde_json::to_string_pretty(value).map_err(|e| io(e.into()))?;
    std::fs::write(path, text + "\n").map_err(io)
}
