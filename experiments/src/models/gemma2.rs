//! Gemma-2 (`Gemma2ForCausalLM` / `Gemma2ForSequenceClassification` weight names)
//! for inference-only reward models such as GRM-gemma2-2B: Gemma plus a norm after
//! attention and around the MLP (`post_attention_layernorm`,
//! `pre_feedforward_layernorm`, `post_feedforward_layernorm`), attention scores scaled
//! by `query_pre_attn_scalar^-1/2` and soft-capped, alternating sliding-window and
//! full attention, and soft-capped vocabulary logits.

use super::attention::{AttentionInputs, KvCache};
use super::config::{architecture_spec, Gemma2Config, LayerType};
use super::decoder::{Decoder, DecoderBlock};
use super::gemma::{gemma_attention_shape, gemma_spec, GemmaMlp};
use super::gqa::{GqaScores, GroupedQueryAttention};
use super::layers::{GemmaRmsNorm, Norm};
use super::rotary::Rotary;
use crate::Result;
use candle_core::Tensor;
use candle_nn::VarBuilder;

/// A Gemma-2 causal language model.
pub type Gemma2 = Decoder<Gemma2Config, Gemma2Block, GemmaRmsNorm>;

impl Gemma2 {
    /// Builds the model from `vb` at the checkpoint root: `model.embed_tokens`,
    /// `model.layers.{i}.*`, `model.norm`, and `lm_head` unless tied.
    pub fn new(config: &Gemma2Config, vb: VarBuilder) -> Result<Self> {
        let c = &config.base;
        let (h, eps) = (c.hidden_size, c.rms_norm_eps);
        Decoder::build(
            config.clone(),
            &gemma_spec(c, config.final_logit_softcapping),
            Rotary::new(c.head_dim, &c.rope),
            vb,
            |i, vb| Gemma2Block::new(config, i, vb),
            |vb| GemmaRmsNorm::new(vb, h, eps),
        )
    }
}

/// One Gemma-2 decoder layer ("sandwich" norms around attention and MLP).
#[derive(Debug, Clone)]
pub struct Gemma2Block {
    input_layernorm: GemmaRmsNorm,
    post_attention_layernorm: GemmaRmsNorm,
    pre_feedforward_layernorm: GemmaRmsNorm,
    post_feedforward_layernorm: GemmaRmsNorm,
    self_attn: GroupedQueryAttention,
    mlp: GemmaMlp,
}

impl Gemma2Block {
    fn new(cfg: &Gemma2Config, layer: usize, vb: VarBuilder) -> Result<Self> {
        let base = &cfg.base;
        let (h, eps) = (base.hidden_size, base.rms_norm_eps);
        let norm = |name: &str| GemmaRmsNorm::new(vb.pp(name), h, eps);
        let window = match cfg.layer_types.get(layer) {
            Some(LayerType::Sliding) => cfg.sliding_window,
            _ => None,
        };
        let scores = GqaScores {
            scale: 1.0 / cfg.query_pre_attn_scalar.sqrt(),
            softcap: cfg.attn_logit_softcapping,
            window,
            fused: false,
        };
        Ok(Self {
            input_layernorm: norm("input_layernorm")?,
            post_attention_layernorm: norm("post_attention_layernorm")?,
            pre_feedforward_layernorm: norm("pre_feedforward_layernorm")?,
            post_feedforward_layernorm: norm("post_feedforward_layernorm")?,
            self_attn: GroupedQueryAttention::new(
                gemma_attention_shape(base),
                scores,
                vb.pp("self_attn"),
            )?,
            mlp: GemmaMlp::new(base, vb.pp("mlp"))?,
        })
    }
}

impl DecoderBlock for Gemma2Block {
    fn forward(
        &self,
        x: &Tensor,
        rotary: &Rotary,
        cos_sin: &(Tensor, Tensor),
        inputs: &AttentionInputs,
        cache: Option<(&mut KvCache, usize)>,
    ) -> Result<Tensor> {
        let h = self.input_layernorm.forward(x)?;
        let h = self.self_attn.forward(&h, rotary, cos_sin, inputs, cache)?;
        let x = (x + self.post_attention_layernorm.forward(&h)?)?;
        let h = self.pre_feedforward_layernorm.forward(&x)?;
        let h = self.mlp.forward(&h)?;
        Ok((&x + self.post_feedforward_layernorm.forward(&h)?)?)
    }
}

architecture_spec!(
    Gemma2Config => Gemma2,
    "gemma2",
    "Gemma2ForSequenceClassification",
    |c| c.base,
    None
);
