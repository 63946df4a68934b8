//! Llama (Llama 3.2 included) as a trainable candle module with Hugging Face weight
//! names: RMSNorm, grouped-query attention, rotary embedding with optional Llama 3
//! scaling, SwiGLU MLP, tied or untied `lm_head`.

use super::attention::{AttentionInputs, KvCache};
use super::config::{architecture_spec, llama_json, LlamaConfig};
use super::decoder::{Decoder, DecoderBlock, DecoderSpec};
use super::gqa::{GqaScores, GqaShape, GroupedQueryAttention};
use super::layers::{Linear, Norm, RmsNorm};
use super::rotary::Rotary;
use crate::Result;
use candle_core::Tensor;
use candle_nn::VarBuilder;

/// A Llama causal language model (`LlamaForCausalLM` weight names).
pub type Llama = Decoder<LlamaConfig, LlamaBlock, RmsNorm>;

impl Llama {
    /// Builds the model from `vb` at the checkpoint root: `model.embed_tokens`,
    /// `model.layers.{i}.*`, `model.norm`, and `lm_head` unless the embeddings are
    /// tied. Missing variables are created with transformers' initialisation.
    pub fn new(config: &LlamaConfig, vb: VarBuilder) -> Result<Self> {
        let spec = DecoderSpec {
            base: "model",
            embed: "embed_tokens",
            norm: "norm",
            head: "lm_head",
            vocab_size: config.vocab_size,
            hidden_size: config.hidden_size,
            num_layers: config.num_hidden_layers,
            init_std: config.initializer_range,
            tied: config.tie_word_embeddings,
            embed_scale: None,
            logit_softcap: None,
            max_positions: config.max_position_embeddings,
        };
        let (h, eps) = (config.hidden_size, config.rms_norm_eps);
        Decoder::build(
            config.clone(),
            &spec,
            Rotary::new(config.head_dim, &config.rope),
            vb,
            |_, vb| LlamaBlock::new(config, vb),
            |vb| RmsNorm::new(vb, h, eps),
        )
    }
}

/// SwiGLU MLP: `down_proj(silu(gate_proj(x)) * up_proj(x))`.
#[derive(Debug, Clone)]
struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

impl Mlp {
    fn new(cfg: &LlamaConfig, vb: VarBuilder) -> Result<Self> {
        let (h, i, std, bias) = (
            cfg.hidden_size,
            cfg.intermediate_size,
            cfg.initializer_range,
            cfg.mlp_bias,
        );
        Ok(Self {
            gate_proj: Linear::new(vb.pp("gate_proj"), h, i, bias, std)?,
            up_proj: Linear::new(vb.pp("up_proj"), h, i, bias, std)?,
            down_proj: Linear::new(vb.pp("down_proj"), i, h, bias, std)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let gate = self.gate_proj.forward(x)?;
        let up = self.up_proj.forward(x)?;
        self.down_proj.forward(&crate::ops::swiglu(&gate, &up)?)
    }
}

/// One Llama decoder layer with pre-norm residuals.
#[derive(Debug, Clone)]
pub struct LlamaBlock {
    input_layernorm: RmsNorm,
    post_attention_layernorm: RmsNorm,
    self_attn: GroupedQueryAttention,
    mlp: Mlp,
}

impl LlamaBlock {
    fn new(cfg: &LlamaConfig, vb: VarBuilder) -> Result<Self> {
        let (h, eps) = (cfg.hidden_size, cfg.rms_norm_eps);
        let shape = GqaShape {
            hidden: h,
            heads: cfg.num_attention_heads,
            kv_heads: cfg.num_key_value_heads,
            head_dim: cfg.head_dim,
            bias: cfg.attention_bias,
            init_std: cfg.initializer_range,
        };
        let scores = GqaScores::plain(cfg.head_dim, true);
        Ok(Self {
            input_layernorm: RmsNorm::new(vb.pp("input_layernorm"), h, eps)?,
            post_attention_layernorm: RmsNorm::new(vb.pp("post_attention_layernorm"), h, eps)?,
            self_attn: GroupedQueryAttention::new(shape, scores, vb.pp("self_attn"))?,
            mlp: Mlp::new(cfg, vb.pp("mlp"))?,
        })
    }
}

impl DecoderBlock for LlamaBlock {
    fn forward(
        &self,
        x: &Tensor,
        rotary: &Rotary,
        cos_sin: &(Tensor, Tensor),
        inputs: &AttentionInputs,
        cache: Option<(&mut KvCache, usize)>,
    ) -> Result<Tensor> {
        let attn = self.self_attn.forward(
            &self.input_layernorm.forward(x)?,
            rotary,
            cos_sin,
            inputs,
            cache,
        )?;
        let x = (x + attn)?;
        let mlp = self
            .mlp
            .forward(&self.post_attention_layernorm.forward(&x)?)?;
        Ok((x + mlp)?)
    }
}

architecture_spec!(
    LlamaConfig => Llama,
    "llama",
    "LlamaForSequenceClassification",
    |c| c,
    Some(llama_json)
);
