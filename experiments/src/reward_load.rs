//! Loading Hugging Face `*ForSequenceClassification` reward models of every
//! supported backbone — `LlamaForSequenceClassification`,
//! `GPTNeoXForSequenceClassification` (as [`crate::reward_model`] does), and
//! `GemmaForSequenceClassification`, `Gemma2ForSequenceClassification` (RM-Gemma-2B,
//! GRM-gemma2-2B) — into the [`RewardModel`] of [`crate::reward_model`].
//!
//! Weights: the backbone under `model.` (`gpt_neox.` for GPT-NeoX), the head
//! `score.weight` `(1, hidden)`, no language-model head. Rows are scored at their
//! rightmost real token of the attention mask; transformers pools at the rightmost
//! token that is not `pad_token_id`, the same token whenever pads are exactly the
//! masked positions.

use crate::hf::{checkpoint_files, load_into_varmap, tensor_names, LoadReport};
use crate::models::{Backbone, BackboneConfig};
use crate::reward_model::RewardModel;
use crate::{Error, Result};
use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use std::path::Path;

/// Names of untied language-model heads, which a sequence-classification checkpoint
/// does not contain.
const LM_HEAD_NAMES: [&str; 2] = ["lm_head.weight", "embed_out.weight"];

/// A reward model of any supported backbone, loaded from a checkpoint directory.
pub struct BackboneRewardCheckpoint {
    /// The parsed `config.json`.
    pub config: BackboneConfig,
    /// Every variable, `score.weight` included.
    pub varmap: VarMap,
    /// The reward model.
    pub model: RewardModel<Backbone>,
    /// Tensors of the files that the model does not use.
    pub report: LoadReport,
}

/// Loads a `*ForSequenceClassification` checkpoint (Llama, GPT-NeoX, Gemma or
/// Gemma-2) from `dir` with weights of `dtype` on `device`. An untied LM head is not
/// required; every other tensor must be present and well shaped. Fails naming the
/// file and field or tensor otherwise (for example a head with several labels).
pub fn load_reward_backbone_checkpoint(
    dir: &Path,
    dtype: DType,
    device: &Device,
) -> Result<BackboneRewardCheckpoint> {
    let config_path = dir.join("config.json");
    let config = BackboneConfig::from_file(&config_path)?;
    check_single_label(&config_path)?;
    let files = checkpoint_files(dir)?;
    let varmap = VarMap::new();
    // Every kept variable is overwritten by the load: the initial values never matter.
    let vb = VarBuilder::from_varmap(&varmap, dtype, device);
    let backbone = Backbone::new(&config, vb.clone())?;
    let model = RewardModel::new(backbone, config.hidden_size(), vb)?;
    let present = tensor_names(&files)?;
    if !present.contains("score.weight") {
        return Err(Error::Weights {
            file: dir.display().to_string(),
            message: "no `score.weight`: not a sequence-classification checkpoint".into(),
        });
    }
    {
        let mut data = varmap
            .data()
            .lock()
            .map_err(|_| Error::Input("variable map lock poisoned".into()))?;
        for name in LM_HEAD_NAMES {
            if !present.contains(name) {
                data.remove(name);
            }
        }
    }
    let report = load_into_varmap(&varmap, &files)?;
    Ok(BackboneRewardCheckpoint {
        config,
        varmap,
        model,
        report,
    })
}

/// Rejects a `num_labels` / `id2label` asking for more than one output.
pub(crate) fn check_single_label(path: &Path) -> Result<()> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let file = path.display().to_string();
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::config(&file, "<document>", format!("invalid JSON: {e}")))?;
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
