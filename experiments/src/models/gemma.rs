//! Gemma (`GemmaForCausalLM` / `GemmaForSequenceClassification` weight names) for
//! inference-only reward models such as RM-Gemma-2B: embeddings scaled by
//! `sqrt(hidden_size)`, RMSNorm with a `(1 + weight)` scale, GeGLU MLP with the tanh
//! GELU, explicit `head_dim`, multi-/grouped-query attention, tied `lm_head`.
//! The MLP, attention shape and stack layout here are shared with [`super::gemma2`].

use super::attention::{AttentionInputs, KvCache};
use super::config::{architecture_spec, GemmaConfig};
use super::decoder::{Decoder, DecoderBlock, DecoderSpec};
use super::gqa::{GqaScores, GqaShape, GroupedQueryAttention};
use super::layers::{GemmaRmsNorm, Linear, Norm};
use super::rotary::Rotary;
use crate::Result;
use candle_core::Tensor;
use candle_nn::VarBuilder;

/// A Gemma causal language model.
pub type Gemma = Decoder<GemmaConfig, GemmaBlock, GemmaRmsNorm>;

impl Gemma {
    /// Builds the model from `vb` at the checkpoint root: `model.embed_tokens`,
    /// `model.layers.{i}.*`, `model.norm`, and `lm_head` unless tied.
    pub fn new(config: &GemmaConfig, vb: VarBuilder) -> Result<Self> {
        let (h, eps) = (config.hidden_size, config.rms_norm_eps);
        Decoder::build(
            config.clone(),
            &gemma_spec(config, None),
            Rotary::new(config.head_dim, &config.rope),
            vb,
            |_, vb| GemmaBlock::new(config, vb),
            |vb| GemmaRmsNorm::new(vb, h, eps),
        )
    }
}

/// The stack of either Gemma generation (embeddings scaled by `sqrt(hidden)`), with
/// vocabulary logits soft-capped at `logit_softcap` when set.
pub(super) fn gemma_spec(cfg: &GemmaConfig, logit_softcap: Option<f64>) -> DecoderSpec {
    DecoderSpec {
        base: "model",
        embed: "embed_tokens",
        norm: "norm",
        head: "lm_head",
        vocab_size: cfg.vocab_size,
        hidden_size: cfg.hidden_size,
        num_layers: cfg.num_hidden_layers,
        init_std: cfg.initializer_range,
        tied: cfg.tie_word_embeddings,
        embed_scale: Some((cfg.hidden_size as f64).sqrt()),
        logit_softcap,
        max_positions: cfg.max_position_embeddings,
    }
}

/// The attention projections of either Gemma generation.
pub(super) fn gemma_attention_shape(cfg: &GemmaConfig) -> GqaShape {
    GqaShape {
        hidden: cfg.hidden_size,
        heads: cfg.num_attention_heads,
        kv_heads: cfg.num_key_value_heads,
        head_dim: cfg.head_dim,
        bias: cfg.attention_bias,
        init_std: cfg.initializer_range,
    }
}

/// GeGLU MLP: `down_proj(gelu_tanh(gate_proj(x)) * up_proj(x))`.
#[derive(Debug, Clone)]
pub(super) struct GemmaMlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

impl GemmaMlp {
    /// Projections under `vb` (no biases).
    pub(super) fn new(cfg: &GemmaConfig, vb: VarBuilder) -> Result<Self> {
        let (h, i, std) = (
            cfg.hidden_size,
            cfg.intermediate_size,
            cfg.initializer_range,
        );
        Ok(Self {
            gate_proj: Linear::new(vb.pp("gate_proj"), h, i, false, std)?,
            up_proj: Linear::new(vb.pp("up_proj"), h, i, false, std)?,
            down_proj: Linear::new(vb.pp("down_proj"), i, h, false, std)?,
        })
    }

    pub(super) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // candle's `gelu` is the tanh approximation (`gelu_pytorch_tanh`).
        let gate = self.gate_proj.forward(x)?.gelu()?;
        let up = self.up_proj.forward(x)?;
        self.down_proj.forward(&(gate * up)?)
    }
}

/// One Gemma decoder layer (pre-norm residuals, like Llama).
#[derive(Debug, Clone)]
pub struct GemmaBlock {
    input_layernorm: GemmaRmsNorm,
    post_attention_layernorm: GemmaRmsNorm,
    self_attn: GroupedQueryAttention,
    mlp: GemmaMlp,
}

impl GemmaBlock {
    fn new(cfg: &GemmaConfig, vb: VarBuilder) -> Result<Self> {
        let (h, eps) = (cfg.hidden_size, cfg.rms_norm_eps);
        // The composite attention path the Gemma reference fixtures were checked on.
        let scores = GqaScores::plain(cfg.head_dim, false);
        Ok(Self {
            input_layernorm: GemmaRmsNorm::new(vb.pp("input_layernorm"), h, eps)?,
            post_attention_layernorm: GemmaRmsNorm::new(vb.pp("post_attention_layernorm"), h, eps)?,
            self_attn: GroupedQueryAttention::new(
                gemma_attention_shape(cfg),
                scores,
                vb.pp("self_attn"),
            )?,
            mlp: GemmaMlp::new(cfg, vb.pp("mlp"))?,
        })
    }
}

impl DecoderBlock for GemmaBlock {
    fn forward(
        &self,
        x: &Tensor,
        rotary: &Rotary,
        cos_sin: &(Tensor, Tensor),
        inputs: &AttentionInputs,
        cache: Option<(&mut KvCache, usize)>,
    ) -> Result<Tensor> {
        let h = self.input_layernorm.forward(x)?;
        let x = (x + self.self_attn.forward(&h, rotary, cos_sin, inputs, cache)?)?;
        let h = self.post_attention_layernorm.forward(&x)?;
        Ok((&x + self.mlp.forward(&h)?)?)
    }
}

architecture_spec!(
    GemmaConfig => Gemma,
    "gemma",
    "GemmaForSequenceClassification",
    |c| c,
    None
);
