//! Gemma (`GemmaForCausalLM` / `GemmaForSequenceClassification` weight names) for
//! inference-only reward models such as RM-Gemma-2B: embeddings scaled by
//! `sqrt(hidden_size)`, RMSNorm with a `(1 + weight)` scale, GeGLU MLP with the tanh
//! GELU, explicit `head_dim`, multi-/grouped-query attention, tied `lm_head`.
//! The attention and MLP here are shared with [`super::gemma2`].

use super::attention::{attend_with, repeat_kv, sliding_window_mask, AttentionInputs, KvCache};
use super::config::GemmaConfig;
use super::layers::{Embedding, GemmaRmsNorm, Linear};
use super::rotary::Rotary;
use super::CausalLm;
use crate::Result;
use candle_core::Tensor;
use candle_nn::VarBuilder;

/// Grouped-query self-attention with a configurable score scale, optional score
/// soft-capping and optional sliding window.
#[derive(Debug, Clone)]
pub(super) struct GemmaAttention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    scale: f64,
    softcap: Option<f64>,
    window: Option<usize>,
}

impl GemmaAttention {
    /// Projections under `vb` (`q_proj`, `k_proj`, `v_proj`, `o_proj`).
    pub(super) fn new(
        cfg: &GemmaConfig,
        scale: f64,
        softcap: Option<f64>,
        window: Option<usize>,
        vb: VarBuilder,
    ) -> Result<Self> {
        let (h, d, std, bias) = (
            cfg.hidden_size,
            cfg.head_dim,
            cfg.initializer_range,
            cfg.attention_bias,
        );
        let (nh, nkv) = (cfg.num_attention_heads, cfg.num_key_value_heads);
        Ok(Self {
            q_proj: Linear::new(vb.pp("q_proj"), h, nh * d, bias, std)?,
            k_proj: Linear::new(vb.pp("k_proj"), h, nkv * d, bias, std)?,
            v_proj: Linear::new(vb.pp("v_proj"), h, nkv * d, bias, std)?,
            o_proj: Linear::new(vb.pp("o_proj"), nh * d, h, bias, std)?,
            heads: nh,
            kv_heads: nkv,
            head_dim: d,
            scale,
            softcap,
            window,
        })
    }

    pub(super) fn forward(
        &self,
        x: &Tensor,
        rotary: &Rotary,
        cos_sin: &(Tensor, Tensor),
        inputs: &AttentionInputs,
        cache: Option<(&mut KvCache, usize)>,
    ) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let d = self.head_dim;
        let split = |y: Tensor, n: usize| -> Result<Tensor> {
            Ok(y.reshape((b, t, n, d))?.transpose(1, 2)?)
        };
        let q = split(self.q_proj.forward(x)?, self.heads)?;
        let k = split(self.k_proj.forward(x)?, self.kv_heads)?;
        let v = split(self.v_proj.forward(x)?, self.kv_heads)?;
        let q = rotary.apply(&q, &cos_sin.0, &cos_sin.1)?;
        let k = rotary.apply(&k, &cos_sin.0, &cos_sin.1)?;
        let (k, v) = match cache {
            Some((cache, layer)) => cache.append(layer, &k, &v)?,
            None => (k, v),
        };
        let n_rep = self.heads / self.kv_heads;
        let k = repeat_kv(&k, n_rep)?;
        let v = repeat_kv(&v, n_rep)?;
        let mask = match self.window {
            Some(w) => sliding_window_mask(&inputs.mask, w)?,
            None => inputs.mask.clone(),
        };
        let out = attend_with(&q, &k, &v, &mask, self.scale, self.softcap)?;
        let out = out.transpose(1, 2)?.reshape((b, t, self.heads * d))?;
        self.o_proj.forward(&out)
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

/// Embeddings, `sqrt(hidden)` scaling and the output head shared by both Gemma
/// generations.
#[derive(Debug, Clone)]
pub(super) struct GemmaEmbeddings {
    embed_tokens: Embedding,
    lm_head: Linear,
    scale: f64,
}

impl GemmaEmbeddings {
    /// `model.embed_tokens` under `vb.pp("model")`, and `lm_head` unless tied.
    pub(super) fn new(cfg: &GemmaConfig, vb: &VarBuilder) -> Result<Self> {
        let std = cfg.initializer_range;
        let embed_tokens = Embedding::new(
            vb.pp("model").pp("embed_tokens"),
            cfg.vocab_size,
            cfg.hidden_size,
            std,
        )?;
        let lm_head = if cfg.tie_word_embeddings {
            Linear::from_weight(embed_tokens.weight().clone())
        } else {
            Linear::new(
                vb.pp("lm_head"),
                cfg.hidden_size,
                cfg.vocab_size,
                false,
                std,
            )?
        };
        Ok(Self {
            embed_tokens,
            lm_head,
            scale: (cfg.hidden_size as f64).sqrt(),
        })
    }

    /// Embeddings times `sqrt(hidden)`, the factor rounded to the embeddings' dtype
    /// as transformers does.
    pub(super) fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        let x = self.embed_tokens.forward(ids)?;
        let scale = Tensor::new(self.scale as f32, x.device())?.to_dtype(x.dtype())?;
        Ok(x.broadcast_mul(&scale)?)
    }

    pub(super) fn lm_head(&self, hidden: &Tensor) -> Result<Tensor> {
        self.lm_head.forward(hidden)
    }
}

/// One Gemma decoder layer (pre-norm residuals, like Llama).
#[derive(Debug, Clone)]
struct Block {
    input_layernorm: GemmaRmsNorm,
    post_attention_layernorm: GemmaRmsNorm,
    self_attn: GemmaAttention,
    mlp: GemmaMlp,
}

impl Block {
    fn new(cfg: &GemmaConfig, vb: VarBuilder) -> Result<Self> {
        let (h, eps) = (cfg.hidden_size, cfg.rms_norm_eps);
        let scale = 1.0 / (cfg.head_dim as f64).sqrt();
        Ok(Self {
            input_layernorm: GemmaRmsNorm::new(vb.pp("input_layernorm"), h, eps)?,
            post_attention_layernorm: GemmaRmsNorm::new(vb.pp("post_attention_layernorm"), h, eps)?,
            self_attn: GemmaAttention::new(cfg, scale, None, None, vb.pp("self_attn"))?,
            mlp: GemmaMlp::new(cfg, vb.pp("mlp"))?,
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
        let x = (x + self.self_attn.forward(&h, rotary, cos_sin, inputs, cache)?)?;
        let h = self.post_attention_layernorm.forward(&x)?;
        Ok((&x + self.mlp.forward(&h)?)?)
    }
}

/// A Gemma causal language model.
#[derive(Debug, Clone)]
pub struct Gemma {
    config: GemmaConfig,
    embeddings: GemmaEmbeddings,
    layers: Vec<Block>,
    norm: GemmaRmsNorm,
    rotary: Rotary,
}

impl Gemma {
    /// Builds the model from `vb` at the checkpoint root: `model.embed_tokens`,
    /// `model.layers.{i}.*`, `model.norm`, and `lm_head` unless tied.
    pub fn new(config: &GemmaConfig, vb: VarBuilder) -> Result<Self> {
        let base = vb.pp("model");
        let embeddings = GemmaEmbeddings::new(config, &vb)?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| Block::new(config, base.pp(format!("layers.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        let norm = GemmaRmsNorm::new(base.pp("norm"), config.hidden_size, config.rms_norm_eps)?;
        Ok(Self {
            config: config.clone(),
            embeddings,
            layers,
            norm,
            rotary: Rotary::new(config.head_dim, &config.rope),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &GemmaConfig {
        &self.config
    }
}

impl CausalLm for Gemma {
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

    fn lm_head(&self, hidden: &Tensor) -> Result<Tensor> {
        self.embeddings.lm_head(hidden)
    }
}
