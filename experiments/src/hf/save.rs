//! Writing a model directory in the Hugging Face layout, which
//! `AutoModelForCausalLM.from_pretrained` (transformers 4.x and 5.x) and
//! [`load_checkpoint`](super::load_checkpoint) both read: `config.json`,
//! `model.safetensors` with Hugging Face tensor names, and any tokenizer files.

use crate::models::{Architecture, Model, SeededVarMap};
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What to write besides the weights.
#[derive(Debug, Clone)]
pub struct SaveOptions {
    /// Dtype of the saved tensors (`F32`, `BF16` or `F16`); the variables keep theirs.
    pub dtype: DType,
    /// Files copied into the directory under their own names (`tokenizer.json`,
    /// `tokenizer_config.json`, `special_tokens_map.json`, `generation_config.json`).
    pub extra_files: Vec<PathBuf>,
    /// Variables not written (for a reward model: the unused `lm_head.weight` /
    /// `embed_out.weight`, which `*ForSequenceClassification` does not have).
    pub exclude: Vec<String>,
    /// Draw random weights with candle's own generator on this device (cuRAND on a
    /// GPU: gigabytes a second) instead of the seeded CPU generator (about 10 s per
    /// billion parameters on one core); the values then do not follow the seed. For
    /// the multi-GB stand-ins of a real-size dry run only.
    pub init_device: Option<Device>,
}

impl Default for SaveOptions {
    fn default() -> Self {
        Self {
            dtype: DType::F32,
            extra_files: Vec::new(),
            exclude: Vec::new(),
            init_device: None,
        }
    }
}

/// The torch name of `dtype` as transformers writes it in `config.json`.
pub fn torch_dtype_name(dtype: DType) -> Result<&'static str> {
    match dtype {
        DType::F32 => Ok("float32"),
        DType::BF16 => Ok("bfloat16"),
        DType::F16 => Ok("float16"),
        other => Err(Error::Input(format!(
            "cannot save weights as {other:?} (only f32, bf16, f16)"
        ))),
    }
}

/// The `config.json` object of a reward model (`score.weight` head, one label) over
/// `config`'s backbone: `architectures` names the `*ForSequenceClassification` class
/// and `pad_token_id` tells transformers which token is padding (it pools at the
/// rightmost non-pad token; without one it accepts only batches of one).
pub fn sequence_classification_json(
    config: &Architecture,
    dtype: DType,
    pad_token_id: Option<u32>,
) -> Result<Value> {
    let mut json = config.to_hf_json(torch_dtype_name(dtype)?)?;
    let class = config.sequence_classification_class();
    if let Some(obj) = json.as_object_mut() {
        obj.insert("architectures".into(), serde_json::json!([class]));
        obj.insert("id2label".into(), serde_json::json!({"0": "LABEL_0"}));
        obj.insert("label2id".into(), serde_json::json!({"LABEL_0": 0}));
        obj.insert("pad_token_id".into(), serde_json::json!(pad_token_id));
    }
    Ok(json)
}

/// Reads `dir/config.json` as JSON, to save it again unchanged with
/// [`save_checkpoint_with_json`].
pub fn read_config_json(dir: &Path) -> Result<Value> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    crate::models::config::parse_json_document(&text, &path.display().to_string())
}

/// Saves `varmap` with a `config.json` serialised from `config`
/// ([`Architecture::to_hf_json`]) into `dir` (created if missing).
pub fn save_checkpoint(
    dir: &Path,
    config: &Architecture,
    varmap: &VarMap,
    options: &SaveOptions,
) -> Result<()> {
    let json = config.to_hf_json(torch_dtype_name(options.dtype)?)?;
    save_checkpoint_with_json(dir, &json, varmap, options)
}

/// Saves `varmap` with the given `config.json` object (for example the original one,
/// from [`read_config_json`]) into `dir` (created if missing). The `dtype` field is
/// set to the saved dtype (and a 4.x `torch_dtype` field, if present, updated).
pub fn save_checkpoint_with_json(
    dir: &Path,
    config: &Value,
    varmap: &VarMap,
    options: &SaveOptions,
) -> Result<()> {
    let dtype_name = torch_dtype_name(options.dtype)?;
    let mut config = config.clone();
    let obj = config.as_object_mut().ok_or_else(|| {
        Error::config(
            &dir.join("config.json").display().to_string(),
            "<document>",
            "expected a JSON object",
        )
    })?;
    obj.insert("dtype".into(), Value::from(dtype_name));
    if obj.contains_key("torch_dtype") {
        obj.insert("torch_dtype".into(), Value::from(dtype_name));
    }
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let text = serde_json::to_string_pretty(&config)
        .map_err(|e| Error::Input(format!("cannot serialise config.json: {e}")))?;
    write_file(&dir.join("config.json"), format!("{text}\n").as_bytes())?;
    save_weights_except(
        varmap,
        &dir.join("model.safetensors"),
        options.dtype,
        &options.exclude,
    )?;
    for file in &options.extra_files {
        copy_into(file, dir)?;
    }
    Ok(())
}

/// Random-initialises (seeded, f32 on the CPU; see [`SeededVarMap`]) the causal LM
/// that the `config.json` object `json` describes and saves it with that config into
/// `dir`: the one way toy worlds, the pipeline and the benchmarks make a model from
/// nothing. Returns the parsed config and the variables.
pub fn save_random_model(
    dir: &Path,
    json: &Value,
    seed: u64,
    options: &SaveOptions,
) -> Result<(Architecture, VarMap)> {
    let config = config_of_json(dir, json)?;
    let varmap = VarMap::new();
    Model::new(&config, random_var_builder(&varmap, seed, options))?;
    save_checkpoint_with_json(dir, json, &varmap, options)?;
    Ok((config, varmap))
}

/// A builder that creates f32 variables in `varmap`: seeded on the CPU, or with
/// candle's generator on `options.init_device`.
pub(crate) fn random_var_builder(
    varmap: &VarMap,
    seed: u64,
    options: &SaveOptions,
) -> candle_nn::VarBuilder<'static> {
    match &options.init_device {
        Some(device) => candle_nn::VarBuilder::from_varmap(varmap, DType::F32, device),
        None => SeededVarMap::new(varmap.clone(), seed).var_builder(DType::F32, &Device::Cpu),
    }
}

/// Parses the `config.json` object `json` that is to be saved into `dir` (errors name
/// `dir/config.json`).
pub(crate) fn config_of_json(dir: &Path, json: &Value) -> Result<Architecture> {
    let file = dir.join("config.json").display().to_string();
    Architecture::from_json_str(&json.to_string(), &file)
}

/// Writes every variable of `varmap`, converted to `dtype`, to the safetensors file
/// `path` under its name, with the `{"format": "pt"}` metadata transformers expects.
pub fn save_weights(varmap: &VarMap, path: &Path, dtype: DType) -> Result<()> {
    save_weights_except(varmap, path, dtype, &[])
}

/// [`save_weights`] without the variables named in `exclude`.
pub fn save_weights_except(
    varmap: &VarMap,
    path: &Path,
    dtype: DType,
    exclude: &[String],
) -> Result<()> {
    torch_dtype_name(dtype)?;
    let vars = varmap
        .data()
        .lock()
        .map_err(|_| Error::Input("variable map lock poisoned".into()))?
        .clone();
    let tensors: Vec<(String, Tensor)> = vars
        .into_iter()
        .filter(|(name, _)| !exclude.contains(name))
        .map(|(name, var)| {
            let t = var.as_tensor().to_dtype(dtype)?.contiguous()?;
            Ok((name, t))
        })
        .collect::<Result<_>>()?;
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::tensor::serialize_to_file(tensors, Some(metadata), path).map_err(|e| {
        Error::Weights {
            file: path.display().to_string(),
            message: format!("cannot write safetensors: {e}"),
        }
    })
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Copies `file` into `dir` under its file name (unless it already is that file).
fn copy_into(file: &Path, dir: &Path) -> Result<()> {
    let name = file
        .file_name()
        .ok_or_else(|| Error::Input(format!("extra file `{}` has no file name", file.display())))?;
    let target = dir.join(name);
    let same = match (file.canonicalize(), target.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if !same {
        std::fs::copy(file, &target).map_err(|source| Error::Io {
            path: file.to_path_buf(),
            source,
        })?;
    }
    Ok(())
}
