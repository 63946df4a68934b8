//! Hugging Face `config.json` for Gemma (`model_type` `gemma`) and Gemma-2
//! (`gemma2`), read in both the transformers 4.x and 5.x spellings. These backbones
//! serve inference-only reward models (RM-Gemma-2B, GRM-gemma2-2B).

use super::fields::Fields;
use super::rope::{parse_rope, RopeConfig, RopeScaling};
use super::{check_architectures, epsilon, initializer_range};
use crate::Result;

/// `architectures` entries accepted for `model_type` `gemma`.
pub const GEMMA_ARCHITECTURES: &[&str] = &[
    "GemmaForCausalLM",
    "GemmaForSequenceClassification",
    "GemmaModel",
];
/// `architectures` entries accepted for `model_type` `gemma2`.
pub const GEMMA2_ARCHITECTURES: &[&str] = &[
    "Gemma2ForCausalLM",
    "Gemma2ForSequenceClassification",
    "Gemma2Model",
];

/// Configuration of a Gemma model (and the part Gemma-2 shares).
#[derive(Debug, Clone, PartialEq)]
pub struct GemmaConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// Width of the GeGLU MLP.
    pub intermediate_size: usize,
    /// Number of transformer blocks.
    pub num_hidden_layers: usize,
    /// Number of query heads.
    pub num_attention_heads: usize,
    /// Number of key/value heads (1: multi-query attention).
    pub num_key_value_heads: usize,
    /// Dimension of each head (explicit in Gemma: `head_dim * heads != hidden_size`
    /// in general).
    pub head_dim: usize,
    /// Rotary settings (plain RoPE only).
    pub rope: RopeConfig,
    /// Maximum sequence length.
    pub max_position_embeddings: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// Biases on the q/k/v/o projections.
    pub attention_bias: bool,
    /// Whether `lm_head` shares `model.embed_tokens`' weight (default true).
    pub tie_word_embeddings: bool,
    /// Padding token id, if any (sequence-classification pooling uses it).
    pub pad_token_id: Option<usize>,
    /// Standard deviation of the normal weight initialisation.
    pub initializer_range: f64,
}

/// Which attention a Gemma-2 layer uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerType {
    /// Causal attention over every earlier token.
    Full,
    /// Causal attention over the last `sliding_window` tokens only.
    Sliding,
}

/// Configuration of a Gemma-2 model.
#[derive(Debug, Clone, PartialEq)]
pub struct Gemma2Config {
    /// The fields Gemma-2 shares with Gemma.
    pub base: GemmaConfig,
    /// Attention scores are scaled by `query_pre_attn_scalar^-1/2` (not `head_dim`).
    pub query_pre_attn_scalar: f64,
    /// `cap * tanh(score / cap)` on attention scores (`None`: off).
    pub attn_logit_softcapping: Option<f64>,
    /// `cap * tanh(logit / cap)` on vocabulary logits (`None`: off).
    pub final_logit_softcapping: Option<f64>,
    /// Window of the sliding layers (a query sees keys `q - window < k <= q`);
    /// `None`: every layer attends fully.
    pub sliding_window: Option<usize>,
    /// Per-layer attention type (`layer_types`; default: even layers slide).
    pub layer_types: Vec<LayerType>,
}

impl GemmaConfig {
    /// Parses the fields of a `gemma` config.
    pub fn parse(f: &Fields<'_>) -> Result<Self> {
        check_architectures(f, GEMMA_ARCHITECTURES)?;
        // transformers maps `hidden_act` "gelu" to the tanh approximation (5.x), and
        // 4.x uses `hidden_activation`, falling back to the tanh approximation.
        match f.opt_str("hidden_activation")? {
            None | Some("gelu_pytorch_tanh") => {}
            Some(other) => {
                return Err(f.err(
                    "hidden_activation",
                    format!("activation `{other}` is not supported (only `gelu_pytorch_tanh`)"),
                ))
            }
        }
        if f.opt_str("hidden_activation")?.is_none() {
            match f.opt_str("hidden_act")? {
                None | Some("gelu") | Some("gelu_pytorch_tanh") => {}
                Some(other) => {
                    return Err(f.err(
                        "hidden_act",
                        format!(
                            "activation `{other}` is not supported \
                             (only `gelu` / `gelu_pytorch_tanh`)"
                        ),
                    ))
                }
            }
        }
        Self::parse_common(f)
    }

    /// The fields both generations share.
    fn parse_common(f: &Fields<'_>) -> Result<Self> {
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
        let hidden_size = f.positive("hidden_size")?;
        // transformers' GemmaConfig / Gemma2Config default.
        let head_dim = f.opt_usize("head_dim")?.unwrap_or(256);
        if head_dim == 0 || head_dim % 2 != 0 {
            return Err(f.err(
                "head_dim",
                format!("must be positive and even, found {head_dim}"),
            ));
        }
        f.zero_dropout("attention_dropout")?;
        if f.bool_or("use_bidirectional_attention", false)? {
            return Err(f.err(
                "use_bidirectional_attention",
                "bidirectional attention is not supported (only causal)",
            ));
        }
        let rope = parse_rope(f, &[])?;
        if rope.scaling != RopeScaling::None {
            return Err(f.err(
                "rope_scaling",
                "rotary scaling is not supported for gemma (only plain RoPE)",
            ));
        }
        Ok(Self {
            vocab_size: f.positive("vocab_size")?,
            hidden_size,
            intermediate_size: f.positive("intermediate_size")?,
            num_hidden_layers: f.positive("num_hidden_layers")?,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            rope,
            max_position_embeddings: f.opt_usize("max_position_embeddings")?.unwrap_or(8192),
            rms_norm_eps: epsilon(f, "rms_norm_eps", 1e-6)?,
            attention_bias: f.bool_or("attention_bias", false)?,
            tie_word_embeddings: f.bool_or("tie_word_embeddings", true)?,
            pad_token_id: f.opt_usize("pad_token_id")?,
            initializer_range: initializer_range(f)?,
        })
    }
}

impl Gemma2Config {
    /// Parses the fields of a `gemma2` config.
    pub fn parse(f: &Fields<'_>) -> Result<Self> {
        check_architectures(f, GEMMA2_ARCHITECTURES)?;
        match f.opt_str("hidden_activation")? {
            None | Some("gelu_pytorch_tanh") => {}
            Some(other) => {
                return Err(f.err(
                    "hidden_activation",
                    format!("activation `{other}` is not supported (only `gelu_pytorch_tanh`)"),
                ))
            }
        }
        let base = GemmaConfig::parse_common(f)?;
        let query_pre_attn_scalar = f.opt_f64("query_pre_attn_scalar")?.unwrap_or(256.0);
        if !(query_pre_attn_scalar.is_finite() && query_pre_attn_scalar > 0.0) {
            return Err(f.err(
                "query_pre_attn_scalar",
                format!("must be positive, found {query_pre_attn_scalar}"),
            ));
        }
        let cap = |key: &str, default: f64| -> Result<Option<f64>> {
            match f.nullable_f64(key, Some(default))? {
                Some(c) if !(c.is_finite() && c > 0.0) => {
                    Err(f.err(key, format!("must be positive or null, found {c}")))
                }
                c => Ok(c),
            }
        };
        let attn_logit_softcapping = cap("attn_logit_softcapping", 50.0)?;
        let final_logit_softcapping = cap("final_logit_softcapping", 30.0)?;
        let sliding_window = match f.nullable_f64("sliding_window", Some(4096.0))? {
            None => None,
            Some(w) if w >= 1.0 && w.fract() == 0.0 => Some(w as usize),
            Some(w) => {
                return Err(f.err(
                    "sliding_window",
                    format!("must be a positive integer or null, found {w}"),
                ))
            }
        };
        let n = base.num_hidden_layers;
        let layer_types = match f.raw("layer_types") {
            None => (0..n)
                .map(|i| {
                    if i % 2 == 0 {
                        LayerType::Sliding
                    } else {
                        LayerType::Full
                    }
                })
                .collect(),
            Some(v) => {
                let list = v
                    .as_array()
                    .ok_or_else(|| f.err("layer_types", format!("expected a list, found {v}")))?;
                if list.len() != n {
                    return Err(f.err(
                        "layer_types",
                        format!("has {} entries for {n} layers", list.len()),
                    ));
                }
                list.iter()
                    .map(|t| match t.as_str() {
                        Some("sliding_attention") => Ok(LayerType::Sliding),
                        Some("full_attention") => Ok(LayerType::Full),
                        _ => Err(f.err(
                            "layer_types",
                            format!(
                                "{t} is not supported (only \"sliding_attention\", \
                                 \"full_attention\")"
                            ),
                        )),
                    })
                    .collect::<Result<Vec<_>>>()?
            }
        };
        Ok(Self {
            base,
            query_pre_attn_scalar,
            attn_logit_softcapping,
            final_logit_softcapping,
            sliding_window,
            layer_types,
        })
    }
}
