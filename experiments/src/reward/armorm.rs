//! ArmoRM (`RLHFlow/ArmoRM-Llama3-8B-v0.1`, architecture
//! `LlamaForRewardModelWithGating`), the ground-truth reward of the paper's
//! Section 4.2, as published in its modelling code:
//!
//! - a Llama backbone (`model.*`);
//! - `regression_layer` (no bias): the final hidden state of the last real token to
//!   `num_objectives` (19) objective rewards `r`;
//! - a gating network over the hidden state at the prompt's end (the *start* of the
//!   last occurrence of the token pattern `<|eot_id|><|start_header_id|>assistant
//!   <|end_header_id|>\n\n`, ids 128009 128006 78191 128007 271):
//!   `gating.layers.{0..n_hidden-1}` linear + ReLU (width `gating_hidden_dim`, with
//!   biases), `gating.layers.{n_hidden}` linear to `num_objectives` (with bias), then
//!   `softmax(x / gating_temperature) * gating.logit_scale`;
//! - `reward_transform_matrix` `(n, n)`: the score is
//!   `sum_j gate_j * (r @ reward_transform_matrix)_j`.
//!
//! `config.json` fields besides Llama's: `num_objectives` (default 19),
//! `gating_temperature` (10), `gating_hidden_dim` (1024), `gating_n_hidden` (3), and
//! `gating_token_pattern` (an rmteach extension for tiny test models; default the
//! Llama-3 ids above).

use super::checkpoint::drop_lm_heads;
use super::scalar::last_token_indices;
use crate::hf::{checkpoint_files, load_into_varmap, LoadReport};
use crate::models::config::{parse_json_object, Fields, LlamaConfig};
use crate::models::layers::Linear;
use crate::models::no_grad::param;
use crate::models::{AttentionInputs, CausalLm, Llama};
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor, D};
use candle_nn::{Init, VarBuilder, VarMap};
use std::path::Path;

/// The Llama-3 token ids of `<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n`
/// that ArmoRM searches for to find the end of the prompt.
pub const LLAMA3_ASSISTANT_PATTERN: [u32; 5] = [128009, 128006, 78191, 128007, 271];

/// The `architectures` entry of ArmoRM's `config.json`.
pub const ARMORM_ARCHITECTURE: &str = "LlamaForRewardModelWithGating";

/// Configuration of an ArmoRM reward model.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmoRmConfig {
    /// The Llama backbone.
    pub llama: LlamaConfig,
    /// Number of objective heads (`num_objectives`, 19).
    pub num_objectives: usize,
    /// Softmax temperature of the gate (`gating_temperature`, 10).
    pub gating_temperature: f64,
    /// Width of the gate's hidden layers (`gating_hidden_dim`, 1024).
    pub gating_hidden_dim: usize,
    /// Number of hidden (ReLU) layers of the gate (`gating_n_hidden`, 3).
    pub gating_n_hidden: usize,
    /// Token ids whose last occurrence marks the end of the prompt.
    pub gating_token_pattern: Vec<u32>,
}

impl ArmoRmConfig {
    /// Reads and parses `path` (a `config.json`).
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json_str(&text, &path.display().to_string())
    }

    /// Parses the text of a `config.json`; `file` labels error messages.
    pub fn from_json_str(text: &str, file: &str) -> Result<Self> {
        let obj = parse_json_object(text, file)?;
        let f = Fields::new(file, &obj);
        match f.opt_str("model_type")? {
            Some("llama") => {}
            other => {
                return Err(f.err(
                    "model_type",
                    format!("ArmoRM needs a `llama` backbone, found {other:?}"),
                ))
            }
        }
        if let Some(v) = f.raw("architectures") {
            let ok = v
                .as_array()
                .is_some_and(|a| a.iter().all(|x| x.as_str() == Some(ARMORM_ARCHITECTURE)));
            if !ok {
                return Err(f.err(
                    "architectures",
                    format!("expected [\"{ARMORM_ARCHITECTURE}\"], found {v}"),
                ));
            }
        }
        let llama = LlamaConfig::parse(&f)?;
        let gating_temperature = f.opt_f64("gating_temperature")?.unwrap_or(10.0);
        if !(gating_temperature.is_finite() && gating_temperature > 0.0) {
            return Err(f.err(
                "gating_temperature",
                format!("must be positive, found {gating_temperature}"),
            ));
        }
        let num_objectives = f.opt_usize("num_objectives")?.unwrap_or(19);
        let gating_hidden_dim = f.opt_usize("gating_hidden_dim")?.unwrap_or(1024);
        for (key, v) in [
            ("num_objectives", num_objectives),
            ("gating_hidden_dim", gating_hidden_dim),
        ] {
            if v == 0 {
                return Err(f.err(key, "must be positive, found 0"));
            }
        }
        let gating_token_pattern = match f.raw("gating_token_pattern") {
            None => LLAMA3_ASSISTANT_PATTERN.to_vec(),
            Some(v) => {
                let ids: Option<Vec<u32>> = v.as_array().and_then(|a| {
                    a.iter()
                        .map(|x| x.as_u64().and_then(|n| u32::try_from(n).ok()))
                        .collect()
                });
                match ids {
                    Some(ids) if !ids.is_empty() => ids,
                    _ => {
                        return Err(f.err(
                            "gating_token_pattern",
                            format!("expected a non-empty list of token ids, found {v}"),
                        ))
                    }
                }
            }
        };
        Ok(Self {
            llama,
            num_objectives,
            gating_temperature,
            gating_hidden_dim,
            gating_n_hidden: f.opt_usize("gating_n_hidden")?.unwrap_or(3),
            gating_token_pattern,
        })
    }
}

/// Start of the last occurrence of `pattern` in `ids`, if any.
pub fn find_gating_position(ids: &[u32], pattern: &[u32]) -> Option<usize> {
    if pattern.is_empty() || pattern.len() > ids.len() {
        return None;
    }
    (0..=ids.len() - pattern.len())
        .rev()
        .find(|&j| ids[j..j + pattern.len()] == *pattern)
}

/// What ArmoRM computes for a batch.
#[derive(Debug, Clone)]
pub struct ArmoRmOutput {
    /// Objective rewards `(batch, num_objectives)`, before the transform.
    pub rewards: Tensor,
    /// Gate weights `(batch, num_objectives)` (softmax times `logit_scale`).
    pub gating: Tensor,
    /// Final scores `(batch,)`.
    pub score: Tensor,
}

/// The ArmoRM reward model (inference).
#[derive(Debug, Clone)]
pub struct ArmoRm {
    config: ArmoRmConfig,
    backbone: Llama,
    regression_layer: Linear,
    reward_transform_matrix: Tensor,
    gating_layers: Vec<Linear>,
    logit_scale: Tensor,
}

impl ArmoRm {
    /// Builds the model from `vb` at the checkpoint root (`model.*`,
    /// `regression_layer`, `reward_transform_matrix`, `gating.*`).
    pub fn new(config: &ArmoRmConfig, vb: VarBuilder) -> Result<Self> {
        let c = &config.llama;
        let (h, n, std) = (c.hidden_size, config.num_objectives, c.initializer_range);
        let backbone = Llama::new(c, vb.clone())?;
        let regression_layer = Linear::new(vb.pp("regression_layer"), h, n, false, std)?;
        let reward_transform_matrix =
            vb.get_with_hints((n, n), "reward_transform_matrix", Init::Const(0.0))?;
        let g = vb.pp("gating");
        let mut gating_layers = Vec::with_capacity(config.gating_n_hidden + 1);
        let mut width = h;
        for i in 0..config.gating_n_hidden {
            let layer = Linear::new(
                g.pp(format!("layers.{i}")),
                width,
                config.gating_hidden_dim,
                true,
                std,
            )?;
            gating_layers.push(layer);
            width = config.gating_hidden_dim;
        }
        let last = g.pp(format!("layers.{}", config.gating_n_hidden));
        gating_layers.push(Linear::new(last, width, n, true, std)?);
        let logit_scale = g.get_with_hints(1, "logit_scale", Init::Const(1.0))?;
        Ok(Self {
            config: config.clone(),
            backbone,
            regression_layer,
            reward_transform_matrix,
            gating_layers,
            logit_scale,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ArmoRmConfig {
        &self.config
    }

    /// Rewards, gate and score for `input_ids` `(batch, time)` u32 with
    /// `attention_mask` (1 real, 0 pad; `None`: no padding). Rewards are read at each
    /// row's last real token, the gate at the start of the row's last gating pattern
    /// (an error names the row that lacks it).
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
    ) -> Result<ArmoRmOutput> {
        let (b, t) = input_ids.dims2()?;
        let device = input_ids.device();
        let last = last_token_indices(attention_mask, b, t)?;
        let rows = input_ids.to_vec2::<u32>()?;
        let pattern = &self.config.gating_token_pattern;
        let gate_at = rows
            .iter()
            .enumerate()
            .map(|(row, ids)| {
                find_gating_position(ids, pattern).ok_or_else(|| {
                    Error::Input(format!(
                        "row {row} lacks the gating token pattern {pattern:?} \
                         (the end of the prompt)"
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let inputs = AttentionInputs::new(attention_mask, b, t, 0, DType::F32, device)?;
        let hidden = self.backbone.forward_hidden(input_ids, &inputs, None)?;
        let h = hidden.dim(2)?;
        let flat = hidden.reshape((b * t, h))?;
        let pick = |cols: &[usize]| -> Result<Tensor> {
            let idx: Vec<u32> = cols
                .iter()
                .enumerate()
                .map(|(r, &c)| (r * t + c) as u32)
                .collect();
            Ok(flat.index_select(&Tensor::from_vec(idx, b, device)?, 0)?)
        };
        let rewards = self.regression_layer.forward(&pick(&last)?)?;
        let mut x = pick(&gate_at)?;
        let n_layers = self.gating_layers.len();
        for (i, layer) in self.gating_layers.iter().enumerate() {
            x = layer.forward(&x)?;
            if i + 1 < n_layers {
                x = x.relu()?;
            }
        }
        let x = (x / self.config.gating_temperature)?;
        let gating =
            candle_nn::ops::softmax(&x, D::Minus1)?.broadcast_mul(&param(&self.logit_scale))?;
        let adjusted = rewards.matmul(&param(&self.reward_transform_matrix))?;
        let score = (&gating * adjusted)?.sum(D::Minus1)?;
        Ok(ArmoRmOutput {
            rewards: rewards.to_dtype(DType::F32)?,
            gating: gating.to_dtype(DType::F32)?,
            score: score.to_dtype(DType::F32)?,
        })
    }

    /// Final scores copied to the host.
    pub fn score(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>) -> Result<Vec<f32>> {
        Ok(self
            .forward(input_ids, attention_mask)?
            .score
            .to_vec1::<f32>()?)
    }
}

/// An ArmoRM checkpoint loaded from a directory.
pub struct ArmoRmCheckpoint {
    /// The parsed `config.json`.
    pub config: ArmoRmConfig,
    /// The variables.
    pub varmap: VarMap,
    /// The model.
    pub model: ArmoRm,
    /// Tensors of the files the model does not use (an `lm_head`, if any).
    pub report: LoadReport,
}

/// Loads ArmoRM from `dir` (`config.json` and safetensors, single or sharded). Fails,
/// naming the file and field or tensor, if anything is missing or mis-shaped.
pub fn load_armorm(dir: &Path, dtype: DType, device: &Device) -> Result<ArmoRmCheckpoint> {
    let config = ArmoRmConfig::from_file(&dir.join("config.json"))?;
    let files = checkpoint_files(dir)?;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, dtype, device);
    let model = ArmoRm::new(&config, vb)?;
    // A reward checkpoint has no untied language-model head.
    let tied = config.llama.tie_word_embeddings;
    drop_lm_heads(&varmap, |_| !tied)?;
    let report = load_into_varmap(&varmap, &files)?;
    Ok(ArmoRmCheckpoint {
        config,
        varmap,
        model,
        report,
    })
}
