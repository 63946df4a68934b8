//! Every architecture this crate can run, trainable or inference-only: GPT-NeoX and
//! Llama ([`Model`]) plus Gemma and Gemma-2 (reward-model backbones). Kept apart from
//! [`ModelConfig`] / [`Model`], whose two variants the training code matches on.

use super::config::{Fields, Gemma2Config, GemmaConfig, ModelConfig};
use super::{AttentionInputs, CausalLm, Gemma, Gemma2, KvCache, Model};
use crate::{Error, Result};
use candle_core::Tensor;
use candle_nn::VarBuilder;
use std::path::Path;

/// A parsed `config.json` of any supported architecture.
#[derive(Debug, Clone, PartialEq)]
pub enum BackboneConfig {
    /// GPT-NeoX or Llama.
    Trainable(ModelConfig),
    /// Gemma (`model_type` `gemma`).
    Gemma(GemmaConfig),
    /// Gemma-2 (`model_type` `gemma2`).
    Gemma2(Gemma2Config),
}

impl BackboneConfig {
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
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| Error::config(file, "<document>", format!("invalid JSON: {e}")))?;
        let Some(obj) = value.as_object() else {
            return Err(Error::config(file, "<document>", "expected a JSON object"));
        };
        let f = Fields::new(file, obj);
        match f.opt_str("model_type")? {
            Some("gemma") => Ok(Self::Gemma(GemmaConfig::parse(&f)?)),
            Some("gemma2") => Ok(Self::Gemma2(Gemma2Config::parse(&f)?)),
            Some("gpt_neox") | Some("llama") => {
                Ok(Self::Trainable(ModelConfig::from_json_str(text, file)?))
            }
            Some(other) => Err(f.err(
                "model_type",
                format!(
                    "architecture `{other}` is not supported \
                     (only `gpt_neox`, `llama`, `gemma`, `gemma2`)"
                ),
            )),
            None => Err(f.err("model_type", "missing")),
        }
    }

    /// Model width (the size of a reward head's input).
    pub fn hidden_size(&self) -> usize {
        match self {
            Self::Trainable(c) => c.hidden_size(),
            Self::Gemma(c) => c.hidden_size,
            Self::Gemma2(c) => c.base.hidden_size,
        }
    }

    /// Vocabulary size.
    pub fn vocab_size(&self) -> usize {
        match self {
            Self::Trainable(c) => c.vocab_size(),
            Self::Gemma(c) => c.vocab_size,
            Self::Gemma2(c) => c.base.vocab_size,
        }
    }

    /// Whether the output head shares the input embeddings (no `lm_head.weight`).
    pub fn tie_word_embeddings(&self) -> bool {
        match self {
            Self::Trainable(c) => c.tie_word_embeddings(),
            Self::Gemma(c) => c.tie_word_embeddings,
            Self::Gemma2(c) => c.base.tie_word_embeddings,
        }
    }
}

/// A model of any supported architecture.
#[derive(Debug, Clone)]
pub enum Backbone {
    /// GPT-NeoX or Llama.
    Trainable(Model),
    /// Gemma.
    Gemma(Gemma),
    /// Gemma-2.
    Gemma2(Gemma2),
}

impl Backbone {
    /// Builds the architecture `config` names from `vb` (at the checkpoint root).
    pub fn new(config: &BackboneConfig, vb: VarBuilder) -> Result<Self> {
        Ok(match config {
            BackboneConfig::Trainable(c) => Self::Trainable(Model::new(c, vb)?),
            BackboneConfig::Gemma(c) => Self::Gemma(Gemma::new(c, vb)?),
            BackboneConfig::Gemma2(c) => Self::Gemma2(Gemma2::new(c, vb)?),
        })
    }

    fn inner(&self) -> &dyn CausalLm {
        match self {
            Self::Trainable(m) => m,
            Self::Gemma(m) => m,
            Self::Gemma2(m) => m,
        }
    }
}

impl CausalLm for Backbone {
    fn num_layers(&self) -> usize {
        self.inner().num_layers()
    }

    fn forward_hidden(
        &self,
        input_ids: &Tensor,
        inputs: &AttentionInputs,
        cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        self.inner().forward_hidden(input_ids, inputs, cache)
    }

    fn lm_head(&self, hidden: &Tensor) -> Result<Tensor> {
        self.inner().lm_head(hidden)
    }
}
