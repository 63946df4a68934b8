//! Gemma-2 (`Gemma2ForCausalLM` / `Gemma2ForSequenceClassification` weight names)
//! for inference-only reward models such as GRM-gemma2-2B: Gemma plus a norm after
//! attention and around the MLP (`post_attention_layernorm`,
//! `pre_feedforward_layernorm`, `post_feedforward_layernorm`), attention scores scaled
//! by `query_pre_attn_scalar^-1/2` and soft-capped, alternating sliding-window and
//! full attention, and soft-capped vocabulary logits.

use super::attention::{AttentionInputs, KvCache};
use super::config::{Gemma2Config, LayerType};
use super::gemma::{GemmaAttention, GemmaEmbeddings, GemmaMlp};
use super::layers::GemmaRmsNorm;
use super::rotary::Rotary;
use super::CausalLm;
use crate::Result;
use candle_core::Tensor;
use candle_nn::VarBuilder;

/// One Gemma-2 decoder layer ("sandwich" norms around attention and MLP).
#[derive(Debug, Clone)]
struct Block {
    input_layernorm: GemmaRmsNorm,
    post_attention_layernorm: GemmaRmsNorm,
    pre_feedforward_layernorm: GemmaRmsNorm,
    post_feedforward_layernorm: GemmaRmsNorm,
    self_attn: GemmaAttention,
    mlp: GemmaMlp,
}

impl Block {
    fn new(cfg: &Gemma2Config, layer: usize, vb: VarBuilder) -> Result<Self> {
        let base = &cfg.base;
        let (h, eps) = (base.hidden_size, base.rms_norm_eps);
        let norm = |name: &str| GemmaRmsNorm::new(vb.pp(name), h, eps);
        let window = match cfg.layer_types.get(layer) {
            Some(LayerType::Sliding) => cfg.sliding_window,
            _ => None,
        };
        let scale = 1.0 / cfg.query_pre_attn_scalar.sqrt();
        Ok(Self {
            input_layernorm: norm("input_layernorm")?,
            post_attention_layernorm: norm("post_attention_layernorm")?,
            pre_feedforward_layernorm: norm("pre_feedforward_layernorm")?,
            post_feedforward_layernorm: norm("post_feedforward_layernorm")?,
            self_attn: GemmaAttention::new(
                base,
                scale,
                cfg.attn_logit_softcapping,
                window,
                vb.pp("self_attn"),
            )?,
            mlp: GemmaMlp::new(base, vb.pp("mlp"))?,
        })
    }

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

/// A Gemma-2 causal language model.
#[derive(Debug, Clone)]
pub struct Gemma2 {
    config: Gemma2Config,
    embeddings: GemmaEmbeddings,
    layers: Vec<Block>,
    norm: GemmaRmsNorm,
    rotary: Rotary,
}

impl Gemma2 {
    /// Builds the model from `vb` at the checkpoint root: `model.embed_tokens`,
    /// `model.layers.{i}.*`, `model.norm`, and `lm_head` unless tied.
    pub fn new(config: &Gemma2Config, vb: VarBuilder) -> Result<Self> {
        let base = vb.pp("model");
        let c = &config.base;
        let embeddings = GemmaEmbeddings::new(c, &vb)?;
        let layers = (0..c.num_hidden_layers)
            .map(|i| Block::new(config, i, base.pp(format!("layers.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        let norm = GemmaRmsNorm::new(base.pp("norm"), c.hidden_size, c.rms_norm_eps)?;
        Ok(Self {
            config: config.clone(),
            embeddings,
            layers,
            norm,
            rotary: Rotary::new(c.head_dim, &c.rope),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Gemma2Config {
        &self.config
    }
}

impl CausalLm for Gemma2 {
    fn num_layers(&self) -> usize {
        self.layers.len()
    }

    fn forward_hidden(
        &self,
        input_ids: &Tensor,
        inputs: &AttentionInputs,
        mut cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        let mut x = self.embeddings.embed(input_ids)?;
        let cos_sin = self.rotary.tables(&inputs.positions, x.dtype())?;
        for (i, layer) in self.layers.iter().enumerate() {
            let c = cache.as_deref_mut().map(|c| (c, i));
            x = layer.forward(&x, &self.rotary, &cos_sin, inputs, c)?;
        }
        self.norm.forward(&x)
    }

    /// Vocabulary logits, soft-capped by `final_logit_softcapping` when set.
    fn lm_head(&self, hidden: &Tensor) -> Result<Tensor> {
        let logits = self.embeddings.lm_head(hidden)?;
        Ok(match self.config.final_logit_softcapping {
            Some(cap) => ((logits / cap)?.tanh()? * cap)?,
            None => logits,
        })
    }
}
