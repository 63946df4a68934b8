//! Hugging Face `config.json` for GPT-NeoX (Pythia) and Llama (Llama 3.2 included),
//! read in both the transformers 4.x and 5.x spellings. Anything this crate does not
//! implement (another architecture, activation, rotary scaling type, dropout) is
//! rejected with an error that names the field, never silently defaulted.

mod fields;
pub mod gemma;
mod hf_json;
pub(crate) use hf_json::{gpt_neox_json, llama_json};
mod rope;

pub use fields::Fields;
pub use gemma::{Gemma2Config, GemmaConfig, LayerType};
pub use rope::{RopeConfig, RopeScaling, DEFAULT_ROPE_THETA};

use super::Model;
use crate::{Error, Result};
use candle_nn::VarBuilder;
use fields::agree;
use std::path::Path;

/// Standard deviation of transformers' default weight initialisation.
pub const DEFAULT_INITIALIZER_RANGE: f64 = 0.02;

/// `architectures` entries accepted for `model_type` `gpt_neox`.
const GPT_NEOX_ARCHITECTURES: &[&str] = &[
    "GPTNeoXForCausalLM",
    "GPTNeoXForSequenceClassification",
    "GPTNeoXModel",
];
/// `architectures` entries accepted for `model_type` `llama`.
const LLAMA_ARCHITECTURES: &[&str] = &[
    "LlamaForCausalLM",
    "LlamaForSequenceClassification",
    "LlamaModel",
];

/// Every supported architecture, with its parsed `config.json`: the one enum that
/// names an architecture. Everything that differs between architectures goes through
/// [`Architecture::spec`] (the one match over the variants) to the variant's
/// [`ArchitectureSpec`]; adding an architecture is a variant, its arm there and its
/// `model_type` in [`Architecture::from_json_str`].
#[derive(Debug, Clone, PartialEq)]
pub enum Architecture {
    /// GPT-NeoX (`model_type` `gpt_neox`, the Pythia family).
    GptNeox(GptNeoxConfig),
    /// Llama (`model_type` `llama`).
    Llama(LlamaConfig),
    /// Gemma (`model_type` `gemma`).
    Gemma(GemmaConfig),
    /// Gemma-2 (`model_type` `gemma2`).
    Gemma2(Gemma2Config),
}

/// What one architecture's configuration tells the rest of the crate: its names in
/// `config.json` and transformers, its sizes, how to build its model and how to write
/// its `config.json` back.
pub trait ArchitectureSpec {
    /// The `model_type` of `config.json`.
    fn model_type(&self) -> &'static str;
    /// The transformers class of a scalar-head reward model over this backbone.
    fn sequence_classification_class(&self) -> &'static str;
    /// Model width (the size of a reward head's input).
    fn hidden_size(&self) -> usize;
    /// Vocabulary size.
    fn vocab_size(&self) -> usize;
    /// Whether the output head shares the input embeddings.
    fn tie_word_embeddings(&self) -> bool;
    /// Builds the model from `vb` (at the checkpoint root).
    fn build(&self, vb: VarBuilder) -> Result<Model>;
    /// The `config.json` fields (without `dtype`), or `None` when this crate does not
    /// write this architecture's config (save with the original one instead).
    fn hf_json(&self) -> Option<serde_json::Map<String, serde_json::Value>>;
}

/// Configuration of a GPT-NeoX model.
#[derive(Debug, Clone, PartialEq)]
pub struct GptNeoxConfig {
    /// Vocabulary size (rows of `embed_in` and `embed_out`).
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// Number of transformer blocks.
    pub num_hidden_layers: usize,
    /// Number of attention heads.
    pub num_attention_heads: usize,
    /// Width of the MLP.
    pub intermediate_size: usize,
    /// Fraction of each head's dimensions that are rotated (`rotary_pct`, 5.x:
    /// `partial_rotary_factor`).
    pub rotary_pct: f64,
    /// Rotary settings (`rotary_emb_base` / `rope_theta` / `rope_parameters`).
    pub rope: RopeConfig,
    /// Maximum sequence length.
    pub max_position_embeddings: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// `x + attn(ln1(x)) + mlp(ln2(x))` when true, sequential residuals when false.
    pub use_parallel_residual: bool,
    /// Whether the attention projections carry biases (`attention_bias`, default true).
    pub attention_bias: bool,
    /// Whether `embed_out` shares `embed_in`'s weight (default false).
    pub tie_word_embeddings: bool,
    /// Standard deviation of the normal weight initialisation.
    pub initializer_range: f64,
}

/// Configuration of a Llama model.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// Width of the gated MLP.
    pub intermediate_size: usize,
    /// Number of transformer blocks.
    pub num_hidden_layers: usize,
    /// Number of query heads.
    pub num_attention_heads: usize,
    /// Number of key/value heads (grouped-query attention when smaller).
    pub num_key_value_heads: usize,
    /// Dimension of each head (`head_dim`, default `hidden_size / num_attention_heads`).
    pub head_dim: usize,
    /// Rotary settings.
    pub rope: RopeConfig,
    /// Maximum sequence length.
    pub max_position_embeddings: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// Biases on the q/k/v/o projections.
    pub attention_bias: bool,
    /// Biases on the MLP projections.
    pub mlp_bias: bool,
    /// Whether `lm_head` shares `model.embed_tokens`' weight (default false).
    pub tie_word_embeddings: bool,
    /// Standard deviation of the normal weight initialisation.
    pub initializer_range: f64,
}

/// Implements [`ArchitectureSpec`] for a config type: `architecture_spec!(Config =>
/// Model, "model_type", "TransformersClass", |c| sizes, hf_json)`, where `sizes` is
/// an expression of the config `c` with fields `hidden_size`, `vocab_size` and
/// `tie_word_embeddings`, and `hf_json` is `Some(fn)` writing the `config.json`
/// fields or `None`.
macro_rules! architecture_spec {
    ($config:ty => $model:ident, $model_type:literal, $class:literal,
     |$c:ident| $sizes:expr, $json:expr) => {
        impl $crate::models::config::ArchitectureSpec for $config {
            fn model_type(&self) -> &'static str {
                $model_type
            }

            fn sequence_classification_class(&self) -> &'static str {
                $class
            }

            fn hidden_size(&self) -> usize {
                let $c = self;
                $sizes.hidden_size
            }

            fn vocab_size(&self) -> usize {
                let $c = self;
                $sizes.vocab_size
            }

            fn tie_word_embeddings(&self) -> bool {
                let $c = self;
                $sizes.tie_word_embeddings
            }

            fn build(&self, vb: candle_nn::VarBuilder) -> $crate::Result<$crate::models::Model> {
                Ok($crate::models::Model::from_decoder($model::new(self, vb)?))
            }

            fn hf_json(&self) -> Option<serde_json::Map<String, serde_json::Value>> {
                let write: Option<fn(&Self) -> serde_json::Map<String, serde_json::Value>> = $json;
                write.map(|f| f(self))
            }
        }
    };
}
pub(crate) use architecture_spec;

/// Parses the text of a JSON document (`file` labels the error): invalid JSON is a
/// config error on `<document>`.
pub fn parse_json_document(text: &str, file: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text)
        .map_err(|e| Error::config(file, "<document>", format!("invalid JSON: {e}")))
}

/// [`parse_json_document`] for a document that must be one JSON object (a
/// `config.json`).
pub fn parse_json_object(
    text: &str,
    file: &str,
) -> Result<serde_json::Map<String, serde_json::Value>> {
    match parse_json_document(text, file)? {
        serde_json::Value::Object(obj) => Ok(obj),
        _ => Err(Error::config(file, "<document>", "expected a JSON object")),
    }
}

impl Architecture {
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
            Some("gpt_neox") => {
                check_architectures(&f, GPT_NEOX_ARCHITECTURES)?;
                Ok(Self::GptNeox(GptNeoxConfig::parse(&f)?))
            }
            Some("llama") => {
                check_architectures(&f, LLAMA_ARCHITECTURES)?;
                Ok(Self::Llama(LlamaConfig::parse(&f)?))
            }
            Some("gemma") => Ok(Self::Gemma(GemmaConfig::parse(&f)?)),
            Some("gemma2") => Ok(Self::Gemma2(Gemma2Config::parse(&f)?)),
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

    /// This architecture's [`ArchitectureSpec`]: the one match over the variants.
    pub fn spec(&self) -> &dyn ArchitectureSpec {
        match self {
            Self::GptNeox(c) => c,
            Self::Llama(c) => c,
            Self::Gemma(c) => c,
            Self::Gemma2(c) => c,
        }
    }

    /// Vocabulary size.
    pub fn vocab_size(&self) -> usize {
        self.spec().vocab_size()
    }

    /// The `model_type` of `config.json` (`gpt_neox`, `llama`, `gemma`, `gemma2`).
    pub fn model_type(&self) -> &'static str {
        self.spec().model_type()
    }

    /// The transformers class of a scalar-head reward model over this backbone.
    pub fn sequence_classification_class(&self) -> &'static str {
        self.spec().sequence_classification_class()
    }

    /// Whether the output head shares the input embeddings.
    pub fn tie_word_embeddings(&self) -> bool {
        self.spec().tie_word_embeddings()
    }

    /// Model width (the size of a reward head's input).
    pub fn hidden_size(&self) -> usize {
        self.spec().hidden_size()
    }
}

/// Rejects `architectures` entries other than `allowed` (the field may be absent).
fn check_architectures(f: &Fields<'_>, allowed: &[&str]) -> Result<()> {
    let Some(value) = f.raw("architectures") else {
        return Ok(());
    };
    let list = value
        .as_array()
        .ok_or_else(|| f.err("architectures", format!("expected a list, found {value}")))?;
    for item in list {
        match item.as_str() {
            Some(name) if allowed.contains(&name) => {}
            _ => {
                return Err(f.err(
                    "architectures",
                    format!(
                        "{item} is not supported (supported: {})",
                        allowed.join(", ")
                    ),
                ))
            }
        }
    }
    Ok(())
}

/// Rejects an activation other than `expected`.
fn check_activation(f: &Fields<'_>, key: &str, expected: &str) -> Result<()> {
    match f.opt_str(key)? {
        None => Ok(()),
        Some(a) if a == expected => Ok(()),
        Some(a) => Err(f.err(
            key,
            format!("activation `{a}` is not supported (only `{expected}`)"),
        )),
    }
}

/// `initializer_range`, default [`DEFAULT_INITIALIZER_RANGE`].
fn initializer_range(f: &Fields<'_>) -> Result<f64> {
    let r = f
        .opt_f64("initializer_range")?
        .unwrap_or(DEFAULT_INITIALIZER_RANGE);
    if r.is_finite() && r >= 0.0 {
        Ok(r)
    } else {
        Err(f.err(
            "initializer_range",
            format!("must be non-negative, found {r}"),
        ))
    }
}

/// A positive epsilon.
fn epsilon(f: &Fields<'_>, key: &str, default: f64) -> Result<f64> {
    let eps = f.opt_f64(key)?.unwrap_or(default);
    if eps.is_finite() && eps > 0.0 {
        Ok(eps)
    } else {
        Err(f.err(key, format!("must be positive, found {eps}")))
    }
}

impl GptNeoxConfig {
    /// Parses the fields of a `gpt_neox` config.
    pub fn parse(f: &Fields<'_>) -> Result<Self> {
        let hidden_size = f.positive("hidden_size")?;
        let num_attention_heads = f.positive("num_attention_heads")?;
        if hidden_size % num_attention_heads != 0 {
            return Err(f.err(
                "num_attention_heads",
                format!("{num_attention_heads} does not divide hidden_size {hidden_size}"),
            ));
        }
        check_activation(f, "hidden_act", "gelu")?;
        // `classifier_dropout` only feeds the token-classification head: not used here.
        for key in ["attention_dropout", "hidden_dropout"] {
            f.zero_dropout(key)?;
        }
        let rope = parse_rope_gpt_neox(f)?;
        let params = f.object("rope_parameters", "rope_parameters")?;
        let mut pcts = vec![
            ("rotary_pct".to_string(), f.opt_f64("rotary_pct")?),
            (
                "partial_rotary_factor".to_string(),
                f.opt_f64("partial_rotary_factor")?,
            ),
        ];
        if let Some(p) = &params {
            pcts.push((
                p.path("partial_rotary_factor"),
                p.opt_f64("partial_rotary_factor")?,
            ));
        }
        // transformers' GPTNeoXConfig default.
        let rotary_pct = agree(f.file, &pcts)?.unwrap_or(0.25);
        let head_size = hidden_size / num_attention_heads;
        let rotary_dims = (head_size as f64 * rotary_pct) as usize;
        if !(rotary_pct > 0.0 && rotary_pct <= 1.0) || rotary_dims == 0 || rotary_dims % 2 != 0 {
            return Err(f.err(
                "rotary_pct",
                format!(
                    "{rotary_pct} of head size {head_size} gives {rotary_dims} rotary dims; \
                     need a positive even number"
                ),
            ));
        }
        Ok(Self {
            vocab_size: f.positive("vocab_size")?,
            hidden_size,
            num_hidden_layers: f.positive("num_hidden_layers")?,
            num_attention_heads,
            intermediate_size: f.positive("intermediate_size")?,
            rotary_pct,
            rope,
            max_position_embeddings: f.opt_usize("max_position_embeddings")?.unwrap_or(2048),
            layer_norm_eps: epsilon(f, "layer_norm_eps", 1e-5)?,
            use_parallel_residual: f.bool_or("use_parallel_residual", true)?,
            attention_bias: f.bool_or("attention_bias", true)?,
            tie_word_embeddings: f.bool_or("tie_word_embeddings", false)?,
            initializer_range: initializer_range(f)?,
        })
    }

    /// Dimension of each attention head.
    pub fn head_size(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// Number of leading dimensions of each head that are rotated.
    pub fn rotary_dims(&self) -> usize {
        (self.head_size() as f64 * self.rotary_pct) as usize
    }
}

/// GPT-NeoX rotary settings; rotary scaling is not implemented for this architecture.
fn parse_rope_gpt_neox(f: &Fields<'_>) -> Result<RopeConfig> {
    let rope = rope::parse_rope(f, &["rotary_emb_base"])?;
    if rope.scaling != RopeScaling::None {
        return Err(f.err(
            "rope_scaling",
            "rotary scaling is not supported for gpt_neox (only plain RoPE)",
        ));
    }
    Ok(rope)
}

impl LlamaConfig {
    /// Parses the fields of a `llama` config.
    pub fn parse(f: &Fields<'_>) -> Result<Self> {
        let hidden_size = f.positive("hidden_size")?;
        let num_attention_heads = f.positive("num_attention_heads")?;
        let num_key_value_heads = f
            .opt_usize("num_key_value_heads")?
            .unwrap_or(num_attention_heads);
        if num_key_value_heads == 0 || num_attention_heads % num_key_value_heads != 0 {
            return Err(f.err(
                "num_key_value_heads",
                format!(
                    "{num_key_value_heads} must be positive and divide \
                     num_attention_heads {num_attention_heads}"
                ),
            ));
        }
        let head_dim = match f.opt_usize("head_dim")? {
            Some(d) => d,
            None if hidden_size % num_attention_heads == 0 => hidden_size / num_attention_heads,
            None => {
                return Err(f.err(
                    "num_attention_heads",
                    format!("{num_attention_heads} does not divide hidden_size {hidden_size}"),
                ))
            }
        };
        if head_dim == 0 || head_dim % 2 != 0 {
            return Err(f.err(
                "head_dim",
                format!("must be positive and even, found {head_dim}"),
            ));
        }
        check_activation(f, "hidden_act", "silu")?;
        f.zero_dropout("attention_dropout")?;
        let params = f.object("rope_parameters", "rope_parameters")?;
        let mut pcts = vec![(
            "partial_rotary_factor".to_string(),
            f.opt_f64("partial_rotary_factor")?,
        )];
        if let Some(p) = &params {
            pcts.push((
                p.path("partial_rotary_factor"),
                p.opt_f64("partial_rotary_factor")?,
            ));
        }
        if let Some(pct) = agree(f.file, &pcts)? {
            if pct != 1.0 {
                return Err(f.err(
                    "partial_rotary_factor",
                    format!("{pct} is not supported for llama (only 1.0)"),
                ));
            }
        }
        Ok(Self {
            vocab_size: f.positive("vocab_size")?,
            hidden_size,
            intermediate_size: f.positive("intermediate_size")?,
            num_hidden_layers: f.positive("num_hidden_layers")?,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            rope: rope::parse_rope(f, &[])?,
            max_position_embeddings: f.opt_usize("max_position_embeddings")?.unwrap_or(2048),
            rms_norm_eps: epsilon(f, "rms_norm_eps", 1e-6)?,
            attention_bias: f.bool_or("attention_bias", false)?,
            mlp_bias: f.bool_or("mlp_bias", false)?,
            tie_word_embeddings: f.bool_or("tie_word_embeddings", false)?,
            initializer_range: initializer_range(f)?,
        })
    }
}
