//! Causal language models of every supported [`Architecture`] (GPT-NeoX, Llama,
//! Gemma, Gemma-2), their configuration, the one [`Model`] type over them, and the
//! [`CausalLm`] interface shared by training (full-sequence logits) and generation
//! (key/value-cached logits).

pub mod attention;
pub mod config;
pub mod decoder;
pub mod gemma;
pub mod gemma2;
pub mod gpt_neox;
pub mod gqa;
pub mod init;
pub mod layers;
pub mod llama;
pub mod no_grad;
pub mod rotary;

pub use attention::{AttentionInputs, KvCache};
pub use config::{
    Architecture, ArchitectureSpec, Gemma2Config, GemmaConfig, GptNeoxConfig, LlamaConfig,
};
pub use decoder::{Decoder, DecoderBlock};
pub use gemma::Gemma;
pub use gemma2::Gemma2;
pub use gpt_neox::GptNeox;
pub use init::SeededVarMap;
pub use llama::Llama;
pub use no_grad::no_grad;

use crate::{Error, Result};
use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;
use std::sync::Arc;

/// A decoder-only language model.
pub trait CausalLm {
    /// Number of transformer blocks (the size of a [`KvCache`]).
    fn num_layers(&self) -> usize;

    /// Final hidden states `(batch, time, hidden)` after the last norm, for the
    /// `input_ids` `(batch, time)` (u32). With a cache, the ids follow the cached
    /// positions and their keys/values are appended to it.
    fn forward_hidden(
        &self,
        input_ids: &Tensor,
        inputs: &AttentionInputs,
        cache: Option<&mut KvCache>,
    ) -> Result<Tensor>;

    /// Vocabulary logits for hidden states `(..., hidden)`.
    fn lm_head(&self, hidden: &Tensor) -> Result<Tensor>;

    /// The output projection's weight `(vocab, hidden)` when [`CausalLm::lm_head`] is
    /// exactly `hidden W^T` (no bias, scaling or soft-cap), so fused kernels may compute
    /// the logits themselves; `None` otherwise (the default). Detached inside
    /// [`no_grad()`].
    fn lm_head_weight(&self) -> Option<Tensor> {
        None
    }

    /// Full-sequence logits `(batch, time, vocab)` for training. `attention_mask`
    /// `(batch, time)` is 1 for real tokens and 0 for padding (left or right); `None`
    /// means no padding.
    fn forward(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>) -> Result<Tensor> {
        let (b, t) = ids_dims(input_ids)?;
        let inputs = AttentionInputs::new(attention_mask, b, t, 0, DType::F32, input_ids.device())?;
        self.lm_head(&self.forward_hidden(input_ids, &inputs, None)?)
    }

    /// Logits `(batch, time, vocab)` of `input_ids` that follow the tokens in `cache`,
    /// which is extended. `key_mask` `(batch, cached + time)` covers all keys (1 real,
    /// 0 pad); `None` means no padding.
    fn forward_cached(
        &self,
        input_ids: &Tensor,
        key_mask: Option<&Tensor>,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let (b, t) = ids_dims(input_ids)?;
        let inputs =
            AttentionInputs::new(key_mask, b, t, cache.len(), DType::F32, input_ids.device())?;
        self.lm_head(&self.forward_hidden(input_ids, &inputs, Some(cache))?)
    }

    /// An empty cache sized for this model.
    fn new_cache(&self) -> KvCache {
        KvCache::new(self.num_layers())
    }
}

/// `(batch, time)` of u32 token ids, or an input error.
fn ids_dims(input_ids: &Tensor) -> Result<(usize, usize)> {
    if input_ids.dtype() != DType::U32 {
        return Err(Error::Input(format!(
            "input ids must be u32, found {:?}",
            input_ids.dtype()
        )));
    }
    match *input_ids.dims() {
        [b, t] if b > 0 && t > 0 => Ok((b, t)),
        ref d => Err(Error::Input(format!(
            "input ids must have shape (batch, time) with both positive, found {d:?}"
        ))),
    }
}

/// A model of any [`Architecture`]: one type, one [`CausalLm`] impl. Cloning is cheap
/// and shares the weights.
#[derive(Clone)]
pub struct Model(Arc<dyn CausalLm + Send + Sync>);

impl Model {
    /// Builds the architecture `config` names from `vb` at the checkpoint root
    /// (missing variables are created with transformers' initialisation).
    pub fn new(config: &Architecture, vb: VarBuilder) -> Result<Self> {
        config.spec().build(vb)
    }

    /// Wraps one architecture's decoder.
    pub fn from_decoder(decoder: impl CausalLm + Send + Sync + 'static) -> Self {
        Self(Arc::new(decoder))
    }
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Model({} layers)", self.0.num_layers())
    }
}

impl CausalLm for Model {
    fn num_layers(&self) -> usize {
        self.0.num_layers()
    }

    fn forward_hidden(
        &self,
        input_ids: &Tensor,
        inputs: &AttentionInputs,
        cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        self.0.forward_hidden(input_ids, inputs, cache)
    }

    fn lm_head(&self, hidden: &Tensor) -> Result<Tensor> {
        self.0.lm_head(hidden)
    }

    fn lm_head_weight(&self) -> Option<Tensor> {
        self.0.lm_head_weight()
    }
}
