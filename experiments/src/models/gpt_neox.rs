//! GPT-NeoX (the Pythia family) as a trainable candle module with Hugging Face weight
//! names: fused QKV interleaved per head, rotary embedding on the first `rotary_pct`
//! of each head, parallel (or sequential) residual, LayerNorm with bias, exact GELU,
//! untied (or tied) `embed_out`.

use super::attention::{attend, check_positions, AttentionInputs, KvCache};
use super::config::GptNeoxConfig;
use super::layers::{Embedding, LayerNorm, Linear};
use super::rotary::Rotary;
use super::CausalLm;
use crate::Result;
use candle_core::Tensor;
use candle_nn::VarBuilder;

/// Self-attention with the fused `query_key_value` projection.
#[derive(Debug, Clone)]
struct Attention {
    query_key_value: Linear,
    dense: Linear,
    heads: usize,
    head_size: usize,
}

impl Attention {
    fn new(cfg: &GptNeoxConfig, vb: VarBuilder) -> Result<Self> {
        let h = cfg.hidden_size;
        let std = cfg.initializer_range;
        Ok(Self {
            query_key_value: Linear::new(
                vb.pp("query_key_value"),
                h,
                3 * h,
                cfg.attention_bias,
                std,
            )?,
            dense: Linear::new(vb.pp("dense"), h, h, cfg.attention_bias, std)?,
            heads: cfg.num_attention_heads,
            head_size: cfg.head_size(),
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
        let (b, t, h) = x.dims3()?;
        let hs = self.head_size;
        let qkv = self.query_key_value.forward(x)?;
        if cache.is_none() {
            // One fused node from the projection to the merged heads where it applies.
            let scale = 1.0 / (hs as f64).sqrt();
            let (cos, sin) = cos_sin;
            let fused = crate::ops::neox_attention(
                &qkv,
                self.heads,
                rotary.dim(),
                cos,
                sin,
                &inputs.mask,
                scale,
            )?;
            if let Some(out) = fused {
                return self.dense.forward(&out);
            }
        }
        // (b, t, heads, 3 * head_size): q, k, v interleaved per head.
        let qkv = qkv.reshape((b, t, self.heads, 3 * hs))?;
        let q = qkv.narrow(3, 0, hs)?.transpose(1, 2)?;
        let k = qkv.narrow(3, hs, hs)?.transpose(1, 2)?;
        let v = qkv.narrow(3, 2 * hs, hs)?.transpose(1, 2)?;
        let q = rotary.apply(&q, &cos_sin.0, &cos_sin.1)?;
        let k = rotary.apply(&k, &cos_sin.0, &cos_sin.1)?;
        let (k, v) = match cache {
            Some((cache, layer)) => cache.append(layer, &k, &v)?,
            None => (k, v),
        };
        let out = attend(&q, &k, &v, &inputs.mask)?;
        let out = out.transpose(1, 2)?.reshape((b, t, h))?;
        self.dense.forward(&out)
    }
}

/// The MLP `dense_4h_to_h(gelu(dense_h_to_4h(x)))` with exact (erf) GELU.
#[derive(Debug, Clone)]
struct Mlp {
    dense_h_to_4h: Linear,
    dense_4h_to_h: Linear,
}

impl Mlp {
    fn new(cfg: &GptNeoxConfig, vb: VarBuilder) -> Result<Self> {
        let (h, i, std) = (
            cfg.hidden_size,
            cfg.intermediate_size,
            cfg.initializer_range,
        );
        Ok(Self {
            dense_h_to_4h: Linear::new(vb.pp("dense_h_to_4h"), h, i, true, std)?,
            dense_4h_to_h: Linear::new(vb.pp("dense_4h_to_h"), i, h, true, std)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.dense_4h_to_h
            .forward(&crate::ops::gelu_erf(&self.dense_h_to_4h.forward(x)?)?)
    }
}

/// One transformer block.
#[derive(Debug, Clone)]
struct Block {
    input_layernorm: LayerNorm,
    post_attention_layernorm: LayerNorm,
    attention: Attention,
    mlp: Mlp,
    parallel: bool,
}

impl Block {
    fn new(cfg: &GptNeoxConfig, vb: VarBuilder) -> Result<Self> {
        let (h, eps) = (cfg.hidden_size, cfg.layer_norm_eps);
        Ok(Self {
            input_layernorm: LayerNorm::new(vb.pp("input_layernorm"), h, eps)?,
            post_attention_layernorm: LayerNorm::new(vb.pp("post_attention_layernorm"), h, eps)?,
            attention: Attention::new(cfg, vb.pp("attention"))?,
            mlp: Mlp::new(cfg, vb.pp("mlp"))?,
            parallel: cfg.use_parallel_residual,
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
        let attn = self.attention.forward(
            &self.input_layernorm.forward(x)?,
            rotary,
            cos_sin,
            inputs,
            cache,
        )?;
        if self.parallel {
            let mlp = self
                .mlp
                .forward(&self.post_attention_layernorm.forward(x)?)?;
            Ok(((x + attn)? + mlp)?)
        } else {
            let x = (x + attn)?;
            let mlp = self
                .mlp
                .forward(&self.post_attention_layernorm.forward(&x)?)?;
            Ok((x + mlp)?)
        }
    }
}

/// A GPT-NeoX causal language model (`GPTNeoXForCausalLM` weight names).
#[derive(Debug, Clone)]
pub struct GptNeox {
    config: GptNeoxConfig,
    embed_in: Embedding,
    layers: Vec<Block>,
    final_layer_norm: LayerNorm,
    embed_out: Linear,
    rotary: Rotary,
}

impl GptNeox {
    /// Builds the model from `vb` at the checkpoint root: `gpt_neox.embed_in`,
    /// `gpt_neox.layers.{i}.*`, `gpt_neox.final_layer_norm`, `embed_out`. Missing
    /// variables are created with transformers' initialisation.
    pub fn new(config: &GptNeoxConfig, vb: VarBuilder) -> Result<Self> {
        let base = vb.pp("gpt_neox");
        let std = config.initializer_range;
        let embed_in = Embedding::new(
            base.pp("embed_in"),
            config.vocab_size,
            config.hidden_size,
            std,
        )?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| Block::new(config, base.pp(format!("layers.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        let final_layer_norm = LayerNorm::new(
            base.pp("final_layer_norm"),
            config.hidden_size,
            config.layer_norm_eps,
        )?;
        let embed_out = if config.tie_word_embeddings {
            Linear::from_weight(embed_in.weight().clone())
        } else {
            Linear::new(
                vb.pp("embed_out"),
                config.hidden_size,
                config.vocab_size,
                false,
                std,
            )?
        };
        Ok(Self {
            config: config.clone(),
            embed_in,
            layers,
            final_layer_norm,
            embed_out,
            rotary: Rotary::new(config.rotary_dims(), &config.rope),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &GptNeoxConfig {
        &self.config
    }
}

impl CausalLm for GptNeox {
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
        let mut x = self.embed_in.forward(input_ids)?;
        let cos_sin = self.rotary.tables(&inputs.positions, x.dtype())?;
        for (i, layer) in self.layers.iter().enumerate() {
            let c = cache.as_deref_mut().map(|c| (c, i));
            x = layer.forward(&x, &self.rotary, &cos_sin, inputs, c)?;
        }
        self.final_layer_norm.forward(&x)
    }

    fn lm_head(&self, hidden: &Tensor) -> Result<Tensor> {
        self.embed_out.forward(hidden)
    }

    fn lm_head_weight(&self) -> Option<&Tensor> {
        self.embed_out.bias_free_weight()
    }
}
