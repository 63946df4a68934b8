//! Opening a Hugging Face checkpoint directory (`config.json` plus safetensors) of any
//! supported [`Architecture`] as a [`Model`].

use super::weights::{checkpoint_files, load_into_varmap, LoadReport};
use crate::models::{Architecture, Model};
use crate::Result;
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

/// Loads `dir/config.json` and the checkpoint's safetensors into a new model whose
/// variables have `dtype` on `device`. Fails, naming the file and field or tensor, if
/// the config is unsupported or a weight is missing or mis-shaped.
pub fn load_checkpoint(dir: &Path, dtype: DType, device: &Device) -> Result<Checkpoint> {
    let config = Architecture::from_file(&dir.join("config.json"))?;
    let files = checkpoint_files(dir)?;
    let varmap = VarMap::new();
    // Every variable is overwritten by the load, so the (unseeded, on-device) initial
    // values of a plain VarMap builder never matter.
    let vb = VarBuilder::from_varmap(&varmap, dtype, device);
    let model = Model::new(&config, vb)?;
    let report = load_into_varmap(&varmap, &files)?;
    Ok(Checkpoint {
        config,
        varmap,
        model,
        report,
    })
}
