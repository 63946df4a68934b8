//! The decoder stack every architecture shares, written once: token embedding
//! (optionally scaled), the blocks with their key/value cache, the final norm and the
//! output head (optionally soft-capped), with the context-length check. An
//! architecture supplies only its block ([`DecoderBlock`]), its final norm and how its
//! configuration maps onto a [`DecoderSpec`].

use super::attention::{check_positions, AttentionInputs, KvCache};
use super::layers::{Embedding, Linear, Norm};
use super::rotary::Rotary;
use super::CausalLm;
use crate::Result;
use candle_core::Tensor;
use candle_nn::VarBuilder;

/// One transformer block of an architecture.
pub trait DecoderBlock {
    /// `x` `(b, t, hidden)` through the block; `cos_sin` are `rotary`'s tables at
    /// `inputs.positions`; with a cache, this block's layer of it is extended.
    fn forward(
        &self,
        x: &Tensor,
        rotary: &Rotary,
        cos_sin: &(Tensor, Tensor),
        inputs: &AttentionInputs,
        cache: Option<(&mut KvCache, usize)>,
    ) -> Result<Tensor>;
}

/// Weight names and sizes of a decoder stack, from an architecture's configuration.
#[derive(Debug, Clone)]
pub struct DecoderSpec {
    /// Prefix of the embedding, blocks and final norm (`model`, `gpt_neox`).
    pub base: &'static str,
    /// Name of the embedding under `base` (`embed_tokens`, `embed_in`).
    pub embed: &'static str,
    /// Name of the final norm under `base` (`norm`, `final_layer_norm`).
    pub norm: &'static str,
    /// Name of the untied output head at the root (`lm_head`, `embed_out`).
    pub head: &'static str,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// Number of blocks.
    pub num_layers: usize,
    /// Standard deviation of the embedding's and head's normal initialisation.
    pub init_std: f64,
    /// Whether the head reuses the embedding's weight.
    pub tied: bool,
    /// Embeddings multiplied by this factor, rounded to their dtype (Gemma:
    /// `sqrt(hidden)`).
    pub embed_scale: Option<f64>,
    /// Logits soft-capped to `cap * tanh(logits / cap)` (Gemma-2).
    pub logit_softcap: Option<f64>,
    /// The context length (`max_position_embeddings`): longer inputs are rejected.
    pub max_positions: usize,
}

/// A decoder-only language model: configuration `C`, blocks `B`, final norm `N`.
#[derive(Debug, Clone)]
pub struct Decoder<C, B, N> {
    config: C,
    embed: Embedding,
    embed_scale: Option<f64>,
    layers: Vec<B>,
    norm: N,
    head: Linear,
    logit_softcap: Option<f64>,
    rotary: Rotary,
    max_positions: usize,
}

impl<C, B, N> Decoder<C, B, N> {
    /// Builds the stack `spec` describes from `vb` at the checkpoint root:
    /// `{base}.{embed}`, `{base}.layers.{i}.*` (made by `block` from the layer index
    /// and its builder), `{base}.{norm}` (made by `norm`), and `{head}` unless tied.
    /// Missing variables are created with transformers' initialisation.
    pub(super) fn build(
        config: C,
        spec: &DecoderSpec,
        rotary: Rotary,
        vb: VarBuilder,
        block: impl Fn(usize, VarBuilder) -> Result<B>,
        norm: impl FnOnce(VarBuilder) -> Result<N>,
    ) -> Result<Self> {
        let base = vb.pp(spec.base);
        let (vocab, hidden, std) = (spec.vocab_size, spec.hidden_size, spec.init_std);
        let embed = Embedding::new(base.pp(spec.embed), vocab, hidden, std)?;
        let layers = (0..spec.num_layers)
            .map(|i| block(i, base.pp(format!("layers.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        let norm = norm(base.pp(spec.norm))?;
        let head = if spec.tied {
            Linear::from_weight(embed.weight().clone())
        } else {
            Linear::new(vb.pp(spec.head), hidden, vocab, false, std)?
        };
        Ok(Self {
            config,
            embed,
            embed_scale: spec.embed_scale,
            layers,
            norm,
            head,
            logit_softcap: spec.logit_softcap,
            rotary,
            max_positions: spec.max_positions,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &C {
        &self.config
    }

    /// The token embeddings of `ids`, scaled when the architecture asks (the factor
    /// rounded to the embeddings' dtype, as transformers does).
    fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        let x = self.embed.forward(ids)?;
        match self.embed_scale {
            None => Ok(x),
            Some(s) => {
                let scale = Tensor::new(s as f32, x.device())?.to_dtype(x.dtype())?;
                Ok(x.broadcast_mul(&scale)?)
            }
        }
    }
}

impl<C, B: DecoderBlock, N: Norm> CausalLm for Decoder<C, B, N> {
    fn num_layers(&self) -> usize {
        self.layers.len()
    }

    fn forward_hidden(
        &self,
        input_ids: &Tensor,
        inputs: &AttentionInputs,
        mut cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        check_positions(inputs, self.max_positions)?;
        let mut x = self.embed(input_ids)?;
        let cos_sin = self.rotary.tables(&inputs.positions, x.dtype())?;
        for (i, layer) in self.layers.iter().enumerate() {
            let c = cache.as_deref_mut().map(|c| (c, i));
            x = layer.forward(&x, &self.rotary, &cos_sin, inputs, c)?;
        }
        self.norm.forward(&x)
    }

    /// Vocabulary logits, soft-capped when the architecture asks.
    fn lm_head(&self, hidden: &Tensor) -> Result<Tensor> {
        let logits = self.head.forward(hidden)?;
        Ok(match self.logit_softcap {
            Some(cap) => ((logits / cap)?.tanh()? * cap)?,
            None => logits,
        })
    }

    fn lm_head_weight(&self) -> Option<Tensor> {
        match self.logit_softcap {
            Some(_) => None,
            None => self.head.bias_free_weight(),
        }
    }
}
