//! Grouped-query self-attention (`q_proj`, `k_proj`, `v_proj`, `o_proj`), the one
//! attention of Llama, Gemma and Gemma-2: rotary queries and keys, `kv_heads` key /
//! value heads shared by `heads / kv_heads` query heads each, scores scaled by
//! `scale`, optionally soft-capped (Gemma-2) and restricted to a sliding window
//! (Gemma-2's local layers).

use super::attention::{attend_with, sliding_window_mask, AttentionInputs, KvCache};
use super::layers::Linear;
use super::rotary::Rotary;
use crate::Result;
use candle_core::Tensor;
use candle_nn::VarBuilder;

/// Sizes of a [`GroupedQueryAttention`]'s projections.
#[derive(Debug, Clone, Copy)]
pub struct GqaShape {
    /// Model width.
    pub hidden: usize,
    /// Query heads.
    pub heads: usize,
    /// Key / value heads (dividing `heads`).
    pub kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Biases on the four projections.
    pub bias: bool,
    /// Standard deviation of the projections' normal initialisation.
    pub init_std: f64,
}

/// How the scores are formed.
#[derive(Debug, Clone, Copy)]
pub struct GqaScores {
    /// Factor of `q k^T` (`1 / sqrt(head_dim)` for Llama and Gemma).
    pub scale: f64,
    /// `cap * tanh(s / cap)` on the scaled scores when set (Gemma-2).
    pub softcap: Option<f64>,
    /// Keys `window` or more positions back are masked when set (Gemma-2's sliding
    /// layers).
    pub window: Option<usize>,
    /// Whether the uncached forward pass may use the fused CPU node
    /// [`crate::ops::llama_attention`] (Llama; only without soft-cap and window).
    pub fused: bool,
}

impl GqaScores {
    /// Plain scores `q k^T / sqrt(head_dim)`, no soft-cap, no window.
    pub fn plain(head_dim: usize, fused: bool) -> Self {
        Self {
            scale: 1.0 / (head_dim as f64).sqrt(),
            softcap: None,
            window: None,
            fused,
        }
    }
}

/// Grouped-query self-attention.
#[derive(Debug, Clone)]
pub struct GroupedQueryAttention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    shape: GqaShape,
    scores: GqaScores,
}

impl GroupedQueryAttention {
    /// The projections under `vb` (`q_proj`, `k_proj`, `v_proj`, `o_proj`).
    pub fn new(shape: GqaShape, scores: GqaScores, vb: VarBuilder) -> Result<Self> {
        let GqaShape {
            hidden: h,
            heads: nh,
            kv_heads: nkv,
            head_dim: d,
            bias,
            init_std: std,
        } = shape;
        Ok(Self {
            q_proj: Linear::new(vb.pp("q_proj"), h, nh * d, bias, std)?,
            k_proj: Linear::new(vb.pp("k_proj"), h, nkv * d, bias, std)?,
            v_proj: Linear::new(vb.pp("v_proj"), h, nkv * d, bias, std)?,
            o_proj: Linear::new(vb.pp("o_proj"), nh * d, h, bias, std)?,
            shape,
            scores,
        })
    }

    /// Attention of `x` `(b, t, hidden)` to itself (and to the keys in `cache`'s
    /// layer, which it extends), `cos_sin` the rotary tables of `inputs.positions`.
    pub fn forward(
        &self,
        x: &Tensor,
        rotary: &Rotary,
        cos_sin: &(Tensor, Tensor),
        inputs: &AttentionInputs,
        cache: Option<(&mut KvCache, usize)>,
    ) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let GqaShape {
            heads,
            kv_heads,
            head_dim: d,
            ..
        } = self.shape;
        let GqaScores {
            scale,
            softcap,
            window,
            fused,
        } = self.scores;
        let (q, k, v) = (
            self.q_proj.forward(x)?,
            self.k_proj.forward(x)?,
            self.v_proj.forward(x)?,
        );
        let plain = softcap.is_none() && window.is_none();
        if fused && plain && cache.is_none() && rotary.dim() == d {
            // One fused node from the projections to the merged heads where it applies.
            let (cos, sin) = cos_sin;
            let out = crate::ops::llama_attention(
                &q,
                &k,
                &v,
                heads,
                kv_heads,
                cos,
                sin,
                &inputs.mask,
                scale,
            )?;
            if let Some(out) = out {
                return self.o_proj.forward(&out);
            }
        }
        let split = |y: Tensor, n: usize| -> Result<Tensor> {
            Ok(y.reshape((b, t, n, d))?.transpose(1, 2)?)
        };
        let q = rotary.apply(&split(q, heads)?, &cos_sin.0, &cos_sin.1)?;
        let k = rotary.apply(&split(k, kv_heads)?, &cos_sin.0, &cos_sin.1)?;
        let v = split(v, kv_heads)?;
        // The cache holds the kv_heads heads, and attention reads them as they are
        // (each serves its group of query heads without being repeated).
        let (k, v) = match cache {
            Some((cache, layer)) => cache.append(layer, &k, &v)?,
            None => (k, v),
        };
        let mask = match window {
            Some(w) => sliding_window_mask(&inputs.mask, w)?,
            None => inputs.mask.clone(),
        };
        let out = attend_with(&q, &k, &v, &mask, scale, softcap)?;
        let out = out.transpose(1, 2)?.reshape((b, t, heads * d))?;
        self.o_proj.forward(&out)
    }
}
