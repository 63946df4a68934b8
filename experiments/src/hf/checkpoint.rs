//! Opening a Hugging Face checkpoint directory (`config.json` plus safetensors) of any
//! supported [`Architecture`] as a [`Model`].

use super::save::read_config_json;
use super::weights::{checkpoint_files, load_into_varmap_cut, LoadReport, RowCut};
use crate::models::{Architecture, Model};
use crate::{Error, Result};
use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use std::path::Path;

/// A model loaded from a checkpoint directory, with its trainable variables.
pub struct Checkpoint {
    /// The parsed `config.json`.
    pub config: Architecture,
    /// The variables (pass `varmap.all_vars()` to an optimiser).
    pub varmap: VarMap,
    /// The model, reading its weights from `varmap`.
    pub model: Model,
    /// Tensors of the files that the model does not use.
    pub report: LoadReport,
}

/// Refuses a `*ForSequenceClassification` directory (a reward model) where a causal
/// LM belongs: its backbone would load and sample, but from the tied embeddings
/// instead of a trained head, so the samples would mean nothing. Names the file, the
/// field and the fix.
pub fn require_causal_lm(dir: &Path) -> Result<()> {
    let json = read_config_json(dir)?;
    let classes = json["architectures"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    match classes
        .iter()
        .filter_map(|c| c.as_str())
        .find(|c| c.ends_with("ForSequenceClassification"))
    {
        Some(c) => Err(Error::config(
            &dir.join("config.json").display().to_string(),
            "architectures",
            format!(
                "{c}: a reward model, not a causal LM; give a causal LM directory here \
                 (score with a reward model: `rmteach exp score --rm {}`)",
                dir.display()
            ),
        )),
        None => Ok(()),
    }
}

/// Loads `dir/config.json` and the checkpoint's safetensors into a new model whose
/// variables have `dtype` on `device`. Fails, naming the file and field or tensor, if
/// the config is unsupported or a weight is missing or mis-shaped.
pub fn load_checkpoint(dir: &Path, dtype: DType, device: &Device) -> Result<Checkpoint> {
    let config = Architecture::from_file(&dir.join("config.json"))?;
    load_with_config(dir, config, dtype, device, None)
}

/// The checkpoint's safetensors loaded into a new model of `config` (rows cut by `cut`).
fn load_with_config(
    dir: &Path,
    config: Architecture,
    dtype: DType,
    device: &Device,
    cut: Option<RowCut>,
) -> Result<Checkpoint> {
    let files = checkpoint_files(dir)?;
    let varmap = VarMap::new();
    // Every variable is overwritten by the load, so the (unseeded, on-device) initial
    // values of a plain VarMap builder never matter.
    let vb = VarBuilder::from_varmap(&varmap, dtype, device);
    let model = Model::new(&config, vb)?;
    let report = load_into_varmap_cut(&varmap, &files, cut)?;
    Ok(Checkpoint {
        config,
        varmap,
        model,
        report,
    })
}

/// [`load_checkpoint`] with the token embeddings and the output head cut to their first
/// `rows` rows, as transformers' `resize_token_embeddings(rows)` does for `rows` below
/// the checkpoint's `vocab_size`. The paper's code resizes so after adding the fallback
/// chat template's special tokens (`update_model_num_embeddings_and_special_tokens`,
/// `model.resize_token_embeddings(len(tokenizer))`): Pythia's 50304 padded rows become
/// the tokenizer's 50279, and the softmax no longer spans the never-used padding rows.
/// Returns the checkpoint and its `config.json` with `vocab_size` = `rows`, to save
/// beside the weights. Growing (`rows` above `vocab_size`) is refused.
pub fn load_checkpoint_cut(
    dir: &Path,
    rows: usize,
    dtype: DType,
    device: &Device,
) -> Result<(Checkpoint, serde_json::Value)> {
    let label = dir.join("config.json").display().to_string();
    let mut json = read_config_json(dir)?;
    let from = Architecture::from_json_str(&json.to_string(), &label)?.vocab_size();
    if rows == 0 || rows > from {
        return Err(Error::config(
            &label,
            "vocab_size",
            format!("cannot resize the token embeddings from {from} to {rows} rows (only a cut to 1..={from} is supported)"),
        ));
    }
    json["vocab_size"] = rows.into();
    let config = Architecture::from_json_str(&json.to_string(), &label)?;
    let cut = RowCut { from, to: rows };
    Ok((
        load_with_config(dir, config, dtype, device, Some(cut))?,
        json,
    ))
}
