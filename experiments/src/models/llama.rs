//! Llama (Llama 3.2 included) as a trainable candle module with Hugging Face weight
//! names: RMSNorm, grouped-query attention, rotary embedding with optional Llama 3
//! scaling, SwiGLU MLP, tied or untied `lm_head`.

use super::attention::{attend, check_positions, repeat_kv, AttentionInputs, KvCache};
use super::config::LlamaConfig;
use super::layers::{Embedding, Linear, RmsNorm};
use super::rotary::Rotary;
use super::CausalLm;
use crate::Result;
use candle_core::Tensor;
use candle_nn::VarBuilder;

/// Grouped-query self-attention (`q_proj`, `k_proj`, `v_proj`, `o_proj`).
#[derive(Debug, Clone)]
struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    fn new(cfg: &LlamaConfig, vb: VarBuilder) -> Result<Self> {
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
        let (b, t, _) = x.dims3()?;
        let d = self.head_dim;
        let split = |y: Tensor, n: usize| -> Result<Tensor> {
            Ok(y.reshape((b, t, n, d))?.transpose(1, 2)?)
        };
        let (q, k, v) = (
            self.q_proj.forward(x)?,
            self.k_proj.forward(x)?,
            self.v_proj.forward(x)?,
        );
        if cache.is_none() && rotary.dim() == d {
            // One fused node from the projections to the merged heads where it applies.
            let scale = 1.0 / (d as f64).sqrt();
            let (cos, sin) = cos_sin;
            let fused = crate::ops::llama_attention(
                &q,
                &k,
                &v,
                self.heads,
                self.kv_heads,
                cos,
                sin,
                &inputs.mask,
                scale,
            )?;
            if let Some(out) = fused {
                return self.o_proj.forward(&out);
            }
        }
        let q = split(q, self.heads)?;
        let k = split(k, self.kv_heads)?;
        let v = split(v, self.kv_heads)?;
        let q = rotary.apply(&q, &cos_sin.0, &cos_sin.1)?;
        let k = rotary.apply(&k, &cos_sin.0, &cos_sin.1)?;
        // The cache holds the kv_heads heads; repetition happens after it.
        let (k, v) = match cache {
            Some((cache, layer)) => cache.append(layer, &k, &v)?,
            None => (k, v),
        };
        let n_rep = self.heads / self.kv_heads;
        let k = repeat_kv(&k, n_rep)?;
        let v = repeat_kv(&v, n_rep)?;
        let out = attend(&q, &k, &v, &inputs.mask)?;
        let out = out.transpose(1, 2)?.reshape((b, t, self.heads * d))?;
        self.o_proj.forward(&out)
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

/// One decoder layer with pre-norm residuals.
#[derive(Debug, Clone)]
struct Block {
    input_layernorm: RmsNorm,
    post_attention_layernorm: RmsNorm,
    self_attn: Attention,
    mlp: Mlp,
}

impl Block {
    fn new(cfg: &LlamaConfig, vb: VarBuilder) -> Result<Self> {
        let (h, eps) = (cfg.hidden_size, cfg.rms_norm_eps);
        Ok(Self {
            input_layernorm: RmsNorm::new(vb.pp("input_layernorm"), h, eps)?,
            post_attention_layernorm: RmsNorm::new(vb.pp("post_attention_layernorm"), h, eps)?,
            self_attn: Attention::new(cfg, vb.pp("self_attn"))?,
            mlp: Mlp::new(cfg, vb.pp("mlp"))?,
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

/// A Llama causal language model (`LlamaForCausalLM` weight names).
#[derive(Debug, Clone)]
pub struct Llama {
    config: LlamaConfig,
    embed_tokens: Embedding,
    layers: Vec<Block>,
    norm: RmsNorm,
    lm_head: Linear,
    rotary: Rotary,
}

impl Llama {
    /// Builds the model from `vb` at the checkpoint root: `model.embed_tokens`,
    /// `model.layers.{i}.*`, `model.norm`, and `lm_head` unless the embeddings are
    /// tied. Missing variables are created with transformers' initialisation.
    pub fn new(config: &LlamaConfig, vb: VarBuilder) -> Result<Self> {
        let base = vb.pp("model");
        let std = config.initializer_range;
        let embed_tokens = Embedding::new(
            base.pp("embed_tokens"),
            config.vocab_size,
            config.hidden_size,
            std,
        )?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| Block::new(config, base.pp(format!("layers.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        let norm = RmsNorm::new(base.pp("norm"), config.hidden_size, config.rms_norm_eps)?;
        let lm_head = if config.tie_word_embeddings {
            Linear::from_weight(embed_tokens.weight().clone())
        } else {
            Linear::new(
                vb.pp("lm_head"),
                config.hidden_size,
                config.vocab_size,
                false,
                std,
            )?
        };
        Ok(Self {
            config: config.clone(),
            embed_tokens,
            layers,
            norm,
            lm_head,
            rotary: Rotary::new(config.head_dim, &config.rope),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }
}

impl CausalLm for Llama {
    fn num_layers(&self) -> usize {
        self.layers.len()
    }

    fn forward_hidden(
        &self,
        input_ids: &Tensor,
        inputs: &AttentionInputs,
        mut cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        check_positions(inputs, self.config.max_position_embeddings)?;
        let mut x = self.embed_tokens.forward(input_ids)?;
        let cos_sin = self.rotary.tables(&inputs.positions, x.dtype())?;
        for (i, layer) in self.layers.iter().enumerate() {
            let c = cache.as_deref_mut().map(|c| (c, i));
            x = layer.forward(&x, &self.rotary, &cos_sin, inputs, c)?;
        }
        self.norm.forward(&x)
    }

    fn lm_head(&self, hidden: &Tensor) -> Result<Tensor> {
        self.lm_head.forward(hidden)
    }

    fn lm_head_weight(&self) -> Option<&Tensor> {
        self.lm_head.bias_free_weight()
    }
}
