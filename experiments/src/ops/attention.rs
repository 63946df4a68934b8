//! Scaled dot-product attention with an additive mask as one autograd node.
//!
//! The products run as batched GEMMs outside the graph; the node keeps the attention
//! probabilities and differentiates with four more GEMMs and one fused softmax-gradient
//! pass. Built from tensor ops the same attention is about ten nodes (copies, the keys'
//! transpose, two matmuls, scale, mask, softmax), each costing candle's backward pass a
//! zeroed and accumulated full-size buffer.

use super::kernel::{cpu_f32, f32_slice, for_each_row, softmax_in_place, Precomputed};
use super::softmax::SoftmaxGrad;
use crate::Result;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Shape, Tensor};

/// `softmax(q k^T * scale + mask) v`: `q` `(b, h, t, d)`, `k` and `v` `(b, h, keys, d)`,
/// `mask` `(b, 1, t, keys)` added to the scaled scores, which are first soft-capped to
/// `cap * tanh(s / cap)` when `softcap` is given (Gemma-2); returns `(b, h, t, d)`.
/// Differentiable in `q`, `k` and `v` (the mask is a constant).
///
/// One fused node on the CPU in f32 without a soft-cap. Otherwise tensor ops: the
/// matmuls in the values' dtype, the scaling, soft-cap, mask and softmax in f32 (as
/// transformers' eager attention does for bf16 models), the probabilities cast back to
/// the values' dtype for the second matmul.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
    scale: f64,
    softcap: Option<f64>,
) -> Result<Tensor> {
    let (b, _, t, _) = q.dims4()?;
    let keys = k.dim(2)?;
    if softcap.is_some() || !cpu_f32(&[q, k, v, mask]) || mask.dims() != [b, 1, t, keys] {
        let dtype = v.dtype();
        let scores = q.contiguous()?.matmul(&k.t()?.contiguous()?)?;
        let scores = (scores.to_dtype(DType::F32)? * scale)?;
        let scores = match softcap {
            Some(cap) => ((scores / cap)?.tanh()? * cap)?,
            None => scores,
        };
        let scores = scores.broadcast_add(&mask.to_dtype(DType::F32)?)?;
        let probs = super::softmax_last_dim(&scores)?.to_dtype(dtype)?;
        return Ok(probs.matmul(&v.contiguous()?)?);
    }
    let (q, k, v) = (q.contiguous()?, k.contiguous()?, v.contiguous()?);
    let (out, probs) = forward(&q, &k, &v, mask, scale)?;
    if !(q.track_op() || k.track_op() || v.track_op()) {
        return Ok(out);
    }
    let node = Attention {
        probs,
        scale,
        result: Precomputed::new(out),
    };
    Ok(q.apply_op3(&k, &v, node)?)
}

/// The attention of contiguous f32 CPU `q`, `k`, `v` outside the graph: the output and
/// the probabilities `(b, h, t, keys)` its backward pass needs.
pub(super) fn forward(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
    scale: f64,
) -> candle_core::Result<(Tensor, Tensor)> {
    let scores = q.detach().matmul(&k.detach().t()?)?;
    let probs = scores.apply_op2_no_bwd(
        &mask.contiguous()?,
        &MaskedSoftmax {
            heads: q.dim(1)?,
            scale: scale as f32,
        },
    )?;
    Ok((probs.matmul(&v.detach())?, probs))
}

/// The gradients `(dq, dk, dv)` of [`forward`]'s output, given its probabilities `p` and
/// the output's gradient `g` (all `(b, h, ., .)`, contiguous).
pub(super) fn backward(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    p: &Tensor,
    g: &Tensor,
    scale: f64,
) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
    let (q, k, v) = (q.detach(), k.detach(), v.detach());
    let dv = p.t()?.contiguous()?.matmul(g)?;
    let dp = g.matmul(&v.t()?.contiguous()?)?;
    // d scores (before scaling) = scale * p (dp - sum_row dp p).
    let ds = p.apply_op2_no_bwd(
        &dp,
        &SoftmaxGrad {
            scale: scale as f32,
        },
    )?;
    let dq = ds.matmul(&k)?;
    let dk = ds.t()?.contiguous()?.matmul(&q)?;
    Ok((dq, dk, dv))
}

/// `softmax(s * scale + mask)` per row of `(b, h, t, keys)` scores, the mask
/// `(b, 1, t, keys)` shared by the `heads` heads.
struct MaskedSoftmax {
    heads: usize,
    scale: f32,
}

impl CustomOp2 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "fused-masked-softmax"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (s, m) = (f32_slice(s1, l1)?, f32_slice(s2, l2)?);
        let (_, h, t, keys) = l1.shape().dims4()?;
        if h != self.heads {
            return Err(candle_core::Error::Msg("masked softmax: head count".into()));
        }
        let mut out = vec![0f32; s.len()];
        for_each_row(&mut out, keys, |r, o| {
            // Row r is (batch, head, query) = (r / (h t), (r / t) % h, r % t).
            let (bi, ti) = (r / (h * t), r % t);
            let mrow = &m[(bi * t + ti) * keys..(bi * t + ti + 1) * keys];
            let srow = &s[r * keys..(r + 1) * keys];
            for ((o, s), m) in o.iter_mut().zip(srow).zip(mrow) {
                *o = s * self.scale + m;
            }
            softmax_in_place(o);
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// The node: the probabilities for the backward pass and the forward result (taken,
/// so released, when the node is built).
struct Attention {
    probs: Tensor,
    scale: f64,
    result: Precomputed,
}

impl CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "fused-attention"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        self.result.take(self.name())
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = grad_res.detach().contiguous()?;
        let (dq, dk, dv) = backward(q, k, v, &self.probs, &g, self.scale)?;
        Ok((Some(dq), Some(dk), Some(dv)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::kernel::tests::{assert_same_with_grads, causal_mask_with_pad};
    use super::*;
    use candle_core::DType;

    #[test]
    fn fused_attention_matches_tensor_ops() -> Result<()> {
        let (b, h, t, d) = (2, 3, 5, 4);
        let mask = causal_mask_with_pad(b, t)?;
        let scale = 1.0 / (d as f64).sqrt();
        let shape: &[usize] = &[b, h, t, d];
        assert_same_with_grads(
            &[shape, shape, shape],
            |x| attention(&x[0], &x[1], &x[2], &mask, scale, None),
            |x| {
                let s = (x[0].matmul(&x[1].t()?)? * scale)?.broadcast_add(&mask)?;
                Ok(candle_nn::ops::softmax(&s, candle_core::D::Minus1)?.matmul(&x[2])?)
            },
        )?;
        assert_eq!(mask.dtype(), DType::F32);
        Ok(())
    }
}
