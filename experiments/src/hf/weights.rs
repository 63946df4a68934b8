//! Reading safetensors weights into the trainable variables of a [`VarMap`] and
//! writing them back, with Hugging Face tensor names.

use crate::{Error, Result};
use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// What a load found besides the variables it set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    /// Number of variables set from the files.
    pub loaded: usize,
    /// Tensors in the files with no matching variable (for example GPT-NeoX's
    /// `attention.bias` / `masked_bias` buffers), sorted.
    pub unexpected: Vec<String>,
}

/// The safetensors files of the checkpoint directory `dir`: `model.safetensors`, or
/// the shards listed in `model.safetensors.index.json`.
pub fn checkpoint_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join("model.safetensors.index.json");
    if !index.exists() {
        return Err(Error::Weights {
            file: dir.display().to_string(),
            message: "no weights: neither model.safetensors nor \
                      model.safetensors.index.json (with its shards) is there; give a \
                      checkpoint directory that holds them"
                .into(),
        });
    }
    let text = std::fs::read_to_string(&index).map_err(|source| Error::Io {
        path: index.clone(),
        source,
    })?;
    let label = index.display().to_string();
    let value = crate::models::config::parse_json_document(&text, &label)?;
    let map = value
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| Error::config(&label, "weight_map", "missing or not an object"))?;
    let mut files = BTreeSet::new();
    for (name, file) in map {
        let file = file
            .as_str()
            .ok_or_else(|| Error::config(&label, &format!("weight_map.{name}"), "not a string"))?;
        if file.contains('/') || file.contains('\\') || file.starts_with('.') {
            return Err(Error::config(
                &label,
                &format!("weight_map.{name}"),
                format!("shard `{file}` is not a plain file name"),
            ));
        }
        files.insert(file.to_string());
    }
    Ok(files.into_iter().map(|f| dir.join(f)).collect())
}

/// Sets every variable of `varmap` from the tensors of the same name in `files`,
/// converting to the variable's dtype and device. Fails, naming the tensors, when a
/// variable has no tensor in the files or a tensor has the wrong shape.
pub fn load_into_varmap(varmap: &VarMap, files: &[PathBuf]) -> Result<LoadReport> {
    load_into_varmap_cut(varmap, files, None)
}

/// Token rows cut on loading: tensors stored with `from` rows (the checkpoint's
/// `vocab_size`) load into variables of `to < from` rows as their first `to` rows.
#[derive(Debug, Clone, Copy)]
pub struct RowCut {
    /// Rows of the stored vocabulary-indexed tensors.
    pub from: usize,
    /// Rows of the model's variables.
    pub to: usize,
}

impl RowCut {
    /// The stored tensor cut to the variable's shape, when this cut explains the
    /// difference (same trailing dimensions, `from` rows stored, `to` wanted).
    fn apply(&self, tensor: &candle_core::Tensor, want: &[usize]) -> Option<candle_core::Tensor> {
        let have = tensor.dims();
        let fits = have.len() == want.len()
            && have.first() == Some(&self.from)
            && want.first() == Some(&self.to)
            && have[1..] == want[1..];
        fits.then(|| tensor.narrow(0, 0, self.to).ok()).flatten()
    }
}

/// [`load_into_varmap`], cutting vocabulary-indexed tensors (token embeddings, the
/// output head) to the model's rows when `cut` is given.
pub fn load_into_varmap_cut(
    varmap: &VarMap,
    files: &[PathBuf],
    cut: Option<RowCut>,
) -> Result<LoadReport> {
    let vars = varmap
        .data()
        .lock()
        .map_err(|_| Error::Input("variable map lock poisoned".into()))?
        .clone();
    let mut pending: BTreeSet<&str> = vars.keys().map(String::as_str).collect();
    let mut report = LoadReport::default();
    for file in files {
        let label = file.display().to_string();
        let tensors =
            candle_core::safetensors::load(file, &Device::Cpu).map_err(|e| Error::Weights {
                file: label.clone(),
                message: format!("cannot read safetensors: {e}"),
            })?;
        for (name, tensor) in tensors {
            let Some(var) = vars.get(&name) else {
                report.unexpected.push(name);
                continue;
            };
            let cut_tensor = match cut {
                Some(c) if tensor.dims() != var.dims() => c.apply(&tensor, var.dims()),
                _ => None,
            };
            let tensor = cut_tensor.unwrap_or(tensor);
            if tensor.dims() != var.dims() {
                return Err(Error::Weights {
                    file: label,
                    message: format!(
                        "tensor `{name}` has shape {:?}, the model expects {:?}",
                        tensor.dims(),
                        var.dims()
                    ),
                });
            }
            check_float_and_finite(&name, &tensor).map_err(|message| Error::Weights {
                file: label.clone(),
                message,
            })?;
            let value = tensor.to_dtype(var.dtype())?.to_device(var.device())?;
            var.set(&value)?;
            pending.remove(name.as_str());
            report.loaded += 1;
        }
    }
    if !pending.is_empty() {
        let names: Vec<&str> = pending.into_iter().collect();
        let shown = names.iter().take(8).copied().collect::<Vec<_>>().join(", ");
        return Err(Error::Weights {
            file: files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            message: format!(
                "{} model tensor(s) not found in the checkpoint: {shown}{}",
                names.len(),
                if names.len() > 8 { ", ..." } else { "" }
            ),
        });
    }
    report.unexpected.sort();
    Ok(report)
}

/// Refuses a stored tensor that is not floating point (an integer tensor would be
/// converted to huge weights) or holds a NaN or an infinity (the model would output
/// NaN logits).
fn check_float_and_finite(name: &str, t: &candle_core::Tensor) -> std::result::Result<(), String> {
    let dtype = t.dtype();
    if !dtype.is_float() {
        return Err(format!(
            "tensor `{name}` is stored as {dtype:?}, not a float type (f32, f16, bf16, f64); \
             re-export the checkpoint with floating-point weights"
        ));
    }
    // x - x is 0 for every finite x and NaN for NaN and +-inf.
    let probe = t
        .sub(t)
        .and_then(|d| d.sum_all())
        .and_then(|s| s.to_dtype(candle_core::DType::F32))
        .and_then(|s| s.to_scalar::<f32>())
        .map_err(|e| format!("tensor `{name}`: {e}"))?;
    if probe != 0.0 {
        return Err(format!(
            "tensor `{name}` holds NaN or infinite values; the checkpoint is corrupt \
             (re-export or re-train it)"
        ));
    }
    Ok(())
}

/// Writes every variable of `varmap` to the safetensors file `path` under its name,
/// with the `{"format": "pt"}` metadata transformers expects.
pub fn save_varmap(varmap: &VarMap, path: &Path) -> Result<()> {
    let vars = varmap
        .data()
        .lock()
        .map_err(|_| Error::Input("variable map lock poisoned".into()))?
        .clone();
    let tensors: Vec<(String, Tensor)> = vars
        .into_iter()
        .map(|(name, var)| Ok((name, var.as_tensor().contiguous()?)))
        .collect::<Result<_>>()?;
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::tensor::serialize_to_file(tensors, Some(metadata), path).map_err(|e| {
        Error::Weights {
            file: path.display().to_string(),
            message: format!("cannot write safetensors: {e}"),
        }
    })
}

/// Tensor names in the headers of the safetensors `files` (the data is not read).
pub fn tensor_names(files: &[PathBuf]) -> Result<BTreeSet<String>> {
    use std::io::Read;
    let mut names = BTreeSet::new();
    for file in files {
        let label = file.display().to_string();
        let bad = |message: String| Error::Weights {
            file: label.clone(),
            message,
        };
        let mut f = std::fs::File::open(file).map_err(|source| Error::Io {
            path: file.clone(),
            source,
        })?;
        let mut len = [0u8; 8];
        f.read_exact(&mut len)
            .map_err(|e| bad(format!("cannot read the safetensors header size: {e}")))?;
        let len = u64::from_le_bytes(len);
        if len > 100_000_000 {
            return Err(bad(format!(
                "safetensors header of {len} bytes is implausible"
            )));
        }
        let mut header = vec![0u8; len as usize];
        f.read_exact(&mut header)
            .map_err(|e| bad(format!("cannot read the safetensors header: {e}")))?;
        let value: serde_json::Value = serde_json::from_slice(&header)
            .map_err(|e| bad(format!("invalid safetensors header: {e}")))?;
        let map = value
            .as_object()
            .ok_or_else(|| bad("safetensors header is not an object".into()))?;
        names.extend(map.keys().filter(|k| *k != "__metadata__").cloned());
    }
    Ok(names)
}
