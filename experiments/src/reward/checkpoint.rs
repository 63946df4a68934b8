//! Loading Hugging Face `*ForSequenceClassification` reward models of every
//! supported backbone (`LlamaForSequenceClassification`,
//! `GPTNeoXForSequenceClassification`, `GemmaForSequenceClassification`,
//! `Gemma2ForSequenceClassification`) into a [`RewardModel`], initialising a new one,
//! and putting a new head on a causal-LM checkpoint (the paper's RM initialisation).
//!
//! Weights: the backbone under `model.` (`gpt_neox.` for GPT-NeoX), the head
//! `score.weight` `(1, hidden)`, no language-model head. Rows are scored at their
//! rightmost real token of the attention mask; transformers pools at the rightmost
//! token that is not `pad_token_id`, the same token whenever pads are exactly the
//! masked positions.

use super::scalar::RewardModel;
use super::LM_HEAD_NAMES;
use crate::hf::save::{config_of_json, random_var_builder};
use crate::hf::{
    checkpoint_files, load_checkpoint, load_into_varmap, save_checkpoint_with_json, tensor_names,
    LoadReport, SaveOptions,
};
use crate::models::{Architecture, Model, SeededVarMap};
use crate::{Error, Result};
use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use serde_json::Value;
use std::path::Path;

/// A reward model loaded from (or initialised over) a checkpoint directory of any
/// supported backbone.
pub struct RewardCheckpoint {
    /// The parsed `config.json`.
    pub config: Architecture,
    /// Every variable, the head's `score.weight` included (pass `varmap.all_vars()` to
    /// an optimiser; a causal checkpoint's unused LM head is in it too).
    pub varmap: VarMap,
    /// The reward model.
    pub model: RewardModel<Model>,
    /// Tensors of the files that the model does not use.
    pub report: LoadReport,
}

/// A reward model with freshly initialised (seeded) weights in `varmap`.
pub fn new_reward_model(
    config: &Architecture,
    varmap: &VarMap,
    seed: u64,
    dtype: DType,
    device: &Device,
) -> Result<RewardModel<Model>> {
    let vb = SeededVarMap::new(varmap.clone(), seed).var_builder(dtype, device);
    let backbone = Model::new(config, vb.clone())?;
    RewardModel::new(backbone, config.hidden_size(), vb)
}

/// [`crate::hf::save_random_model`] for a reward model: random-initialises (seeded,
/// f32 on the CPU) a reward model over the backbone that the `config.json` object
/// `json` describes and saves it with that config into `dir`. Returns the parsed
/// config and the variables.
pub fn save_random_reward_model(
    dir: &Path,
    json: &Value,
    seed: u64,
    options: &SaveOptions,
) -> Result<(Architecture, VarMap)> {
    let config = config_of_json(dir, json)?;
    let varmap = VarMap::new();
    let vb = random_var_builder(&varmap, seed, options);
    let backbone = Model::new(&config, vb.clone())?;
    RewardModel::new(backbone, config.hidden_size(), vb)?;
    save_checkpoint_with_json(dir, json, &varmap, options)?;
    Ok((config, varmap))
}

/// Random-initialises (seeded, f32 on the CPU) the reward model of any kind that the
/// `config.json` object `json` describes — a `*ForSequenceClassification` of any
/// architecture (GPT-NeoX, Llama, Gemma, Gemma-2) or ArmoRM
/// (`LlamaForRewardModelWithGating`, its reward transform set to the identity so the
/// score is the gated sum of the objectives) — and saves it with that config into `dir`,
/// as `options` say (dtype, where to draw), without a language-model head: what
/// [`super::load`] reads back.
pub fn save_random_scorer(
    dir: &Path,
    json: &Value,
    seed: u64,
    options: &SaveOptions,
) -> Result<VarMap> {
    let options = SaveOptions {
        exclude: LM_HEAD_NAMES.iter().map(|s| s.to_string()).collect(),
        ..options.clone()
    };
    if json["architectures"][0] != super::armorm::ARMORM_ARCHITECTURE {
        return Ok(save_random_reward_model(dir, json, seed, &options)?.1);
    }
    let file = dir.join("config.json").display().to_string();
    let mut varmap = VarMap::new();
    let vb = random_var_builder(&varmap, seed, &options);
    let device = vb.device().clone();
    let config = super::ArmoRmConfig::from_json_str(&json.to_string(), &file)?;
    super::ArmoRm::new(&config, vb)?;
    let n = config.num_objectives;
    let identity = candle_core::Tensor::eye(n, DType::F32, &device)?;
    varmap.set_one("reward_transform_matrix", identity)?;
    save_checkpoint_with_json(dir, json, &varmap, &options)?;
    Ok(varmap)
}

/// Loads a `*ForSequenceClassification` checkpoint of any backbone (Llama, GPT-NeoX,
/// Gemma or Gemma-2) from `dir` with weights of `dtype` on `device`. An untied LM head
/// is not required (it is dropped from the variables when the files lack it); every
/// other tensor must be present and well shaped. Fails naming the file and field or
/// tensor otherwise (for example a head with several labels, or no `score.weight`).
pub fn load_reward_checkpoint(
    dir: &Path,
    dtype: DType,
    device: &Device,
) -> Result<RewardCheckpoint> {
    let config_path = dir.join("config.json");
    let config = Architecture::from_file(&config_path)?;
    check_single_label(&config_path)?;
    let files = checkpoint_files(dir)?;
    let varmap = VarMap::new();
    // Every kept variable is overwritten by the load: the initial values never matter.
    let vb = VarBuilder::from_varmap(&varmap, dtype, device);
    let backbone = Model::new(&config, vb.clone())?;
    let model = RewardModel::new(backbone, config.hidden_size(), vb)?;
    let present = tensor_names(&files)?;
    if !present.contains("score.weight") {
        return Err(Error::Weights {
            file: dir.display().to_string(),
            message: "no `score.weight`: not a sequence-classification checkpoint".into(),
        });
    }
    drop_lm_heads(&varmap, |name| !present.contains(name))?;
    let report = load_into_varmap(&varmap, &files)?;
    Ok(RewardCheckpoint {
        config,
        varmap,
        model,
        report,
    })
}

/// Removes from `varmap` the untied LM heads ([`LM_HEAD_NAMES`]) for which `drop`
/// holds (a reward checkpoint has none to load).
pub(crate) fn drop_lm_heads(varmap: &VarMap, drop: impl Fn(&str) -> bool) -> Result<()> {
    let mut data = varmap
        .data()
        .lock()
        .map_err(|_| Error::Input("variable map lock poisoned".into()))?;
    for name in LM_HEAD_NAMES {
        if drop(name) {
            data.remove(name);
        }
    }
    Ok(())
}

/// Loads a causal-LM checkpoint (for example the SFT policy) from `dir` and adds a new
/// head initialised from `seed`: the paper's reward-model initialisation.
pub fn reward_model_from_causal_checkpoint(
    dir: &Path,
    seed: u64,
    dtype: DType,
    device: &Device,
) -> Result<RewardCheckpoint> {
    let ckpt = load_checkpoint(dir, dtype, device)?;
    let vb = SeededVarMap::new(ckpt.varmap.clone(), seed).var_builder(dtype, device);
    let model = RewardModel::new(ckpt.model, ckpt.config.hidden_size(), vb)?;
    Ok(RewardCheckpoint {
        config: ckpt.config,
        varmap: ckpt.varmap,
        model,
        report: ckpt.report,
    })
}

/// Rejects a `num_labels` / `id2label` asking for more than one output.
fn check_single_label(path: &Path) -> Result<()> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let file = path.display().to_string();
    let value = crate::models::config::parse_json_document(&text, &file)?;
    let labels = match (value.get("num_labels"), value.get("id2label")) {
        (Some(n), _) if n.is_u64() => n.as_u64().map(|n| ("num_labels", n)),
        (_, Some(serde_json::Value::Object(m))) => Some(("id2label", m.len() as u64)),
        _ => None,
    };
    match labels {
        None | Some((_, 1)) => Ok(()),
        Some((field, n)) => Err(Error::config(
            &file,
            field,
            format!("{n} labels; a reward model needs exactly one (a scalar score head)"),
        )),
    }
}
