//! GPT-NeoX (the Pythia family) as a trainable candle module with Hugging Face weight
//! names: fused QKV interleaved per head, rotary embedding on the first `rotary_pct`
//! of each head, parallel (or sequential) residual, LayerNorm with bias, exact GELU,
//! untied (or tied) `embed_out`.

use super::attention::{attend, AttentionInputs, KvCache};
use super::config::{architecture_spec, gpt_neox_json, GptNeoxConfig};
use super::decoder::{Decoder, DecoderBlock, DecoderSpec};
use super::layers::{LayerNorm, Linear, Norm};
use super::rotary::Rotary;
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

/// One GPT-NeoX transformer block.
#[derive(Debug, Clone)]
pub struct GptNeoxBlock {
    input_layernorm: LayerNorm,
    post_attention_layernorm: LayerNorm,
    attention: Attention,
    mlp: Mlp,
    parallel: bool,
}

impl GptNeoxBlock {
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
}

impl DecoderBlock for GptNeoxBlock {
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
pub type GptNeox = Decoder<GptNeoxConfig, GptNeoxBlock, LayerNorm>;

impl GptNeox {
    /// Builds the model from `vb` at the checkpoint root: `gpt_neox.embed_in`,
    /// `gpt_neox.layers.{i}.*`, `gpt_neox.final_layer_norm`, `embed_out`. Missing
    /// variables are created with transformers' initialisation.
    pub fn new(config: &GptNeoxConfig, vb: VarBuilder) -> Result<Self> {
        let spec = DecoderSpec {
            base: "gpt_neox",
            embed: "embed_in",
            norm: "final_layer_norm",
            head: "embed_out",
            vocab_size: config.vocab_size,
            hidden_size: config.hidden_size,
            num_layers: config.num_hidden_layers,
            init_std: config.initializer_range,
            tied: config.tie_word_embeddings,
            embed_scale: None,
            logit_softcap: None,
            max_positions: config.max_position_embeddings,
        };
        let (h, eps) = (config.hidden_size, config.layer_norm_eps);
        Decoder::build(
            config.clone(),
            &spec,
            Rotary::new(config.rotary_dims(), &config.rope),
            vb,
            |_, vb| GptNeoxBlock::new(config, vb),
            |vb| LayerNorm::new(vb, h, eps),
        )
    }
}

architecture_spec!(
    GptNeoxConfig => GptNeox,
    "gpt_neox",
    "GPTNeoXForSequenceClassification",
    |c| c,
    Some(gpt_neox_json)
);
