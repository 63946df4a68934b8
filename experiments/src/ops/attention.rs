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

/// `softmax(q k^T * scale + mask) v`: `q` `(b, h, t, d)`, `k` and `v` `(b, kv, keys, d)`
/// with `h` a multiple of `kv` (grouped-query attention: key/value head `j` serves the
/// `h / kv` consecutive query heads from `j * h / kv`; `kv = h` is plain attention),
/// `mask` `(b, 1, t, keys)` added to the scaled scores, which are first soft-capped to
/// `cap * tanh(s / cap)` when `softcap` is given (Gemma-2); returns `(b, h, t, d)`.
/// Differentiable in `q`, `k` and `v` (the mask is a constant).
///
/// The key/value heads are never repeated: each group's query heads are stacked as the
/// rows of one `(h / kv) t`-row query against its key/value head, so a cache of `kv`
/// heads is read as it is, and the keys' gradient sums over the group inside one GEMM.
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
    let (b, h, t, d) = q.dims4()?;
    let (kv, keys) = (k.dim(1)?, k.dim(2)?);
    if kv == 0 || h % kv != 0 || v.dims()[..3] != k.dims()[..3] {
        return Err(crate::Error::Input(format!(
            "attention: {h} query heads cannot share {kv} key/value heads \
             (keys {:?}, values {:?})",
            k.dims(),
            v.dims()
        )));
    }
    // (b, h, t, d) -> (b, kv, group * t, d): row (r, i) of the stack is head j * group + r
    // at query i, the mask's row i.
    let group_rows = (h / kv) * t;
    let q = q.contiguous()?.reshape((b, kv, group_rows, d))?;
    let out = if softcap.is_some() || !cpu_f32(&[&q, k, v, mask]) || mask.dims() != [b, 1, t, keys]
    {
        composite(&q, k, v, mask, scale, softcap)?
    } else {
        let (k, v) = (gemm_operand(k)?, gemm_operand(v)?);
        let (out, probs) = forward(&q, &k, &v, mask, scale)?;
        if q.track_op() || k.track_op() || v.track_op() {
            let node = Attention {
                probs,
                scale,
                result: Precomputed::new(out),
            };
            q.apply_op3(&k, &v, node)?
        } else {
            out
        }
    };
    Ok(out.reshape((b, h, t, v.dim(3)?))?)
}

/// [`attention`] from tensor ops on the stacked queries `q` `(b, kv, rows, d)`, `rows` a
/// multiple of the mask's `t`: the mask is broadcast over the stack's `rows / t` blocks.
fn composite(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
    scale: f64,
    softcap: Option<f64>,
) -> Result<Tensor> {
    let (b, kv, rows, _) = q.dims4()?;
    let (mb, _, t, keys) = mask.dims4()?;
    let dtype = v.dtype();
    let scores = q.matmul(&gemm_operand(&k.t()?)?)?;
    let scores = (scores.to_dtype(DType::F32)? * scale)?;
    let scores = match softcap {
        Some(cap) => ((scores / cap)?.tanh()? * cap)?,
        None => scores,
    };
    let scores = scores
        .reshape((b, kv, rows / t, t, keys))?
        .broadcast_add(&mask.to_dtype(DType::F32)?.reshape((mb, 1, 1, t, keys))?)?
        .reshape((b, kv, rows, keys))?;
    let probs = super::softmax_last_dim(&scores)?.to_dtype(dtype)?;
    Ok(probs.matmul(&gemm_operand(v)?)?)
}

/// `x` `(b, h, r, c)` as it is where nothing differentiates it and candle's batched GEMM
/// reads its layout directly (the CPU's and cuBLAS's rules: rows or columns of stride 1
/// and the other at the row/column length, and one stride between the `b h` matrices),
/// else a contiguous copy. A decode step's keys and values are such views of the
/// cache's buffers: read in place, not copied every step.
fn gemm_operand(x: &Tensor) -> Result<Tensor> {
    let direct = match (x.dims(), x.stride()) {
        ([_, h, r, c], [sb, sh, sr, sc]) => {
            let inner = (*sc == 1 && sr == c) || (*sr == 1 && sc == r);
            inner && *sb == sh * h
        }
        _ => false,
    };
    if direct && !x.track_op() {
        Ok(x.clone())
    } else {
        Ok(x.contiguous()?)
    }
}

/// The attention of f32 CPU `q` `(b, kv, rows, d)` (contiguous; `rows` a multiple of the
/// mask's queries), `k`, `v` `(b, kv, keys, d)` (contiguous, or views the GEMM reads in
/// place) outside the graph: the output and the probabilities `(b, kv, rows, keys)` its
/// backward pass needs.
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

/// `softmax(s * scale + mask)` per row of `(b, kv, rows, keys)` scores, the mask
/// `(b, 1, t, keys)` shared by the `kv` heads and by the `rows / t` blocks of each head's
/// stacked queries.
struct MaskedSoftmax {
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
        let (_, h, rows, keys) = l1.shape().dims4()?;
        let (_, _, t, mask_keys) = l2.shape().dims4()?;
        if t == 0 || rows % t != 0 || mask_keys != keys {
            return Err(candle_core::Error::Msg(format!(
                "masked softmax: scores {:?} do not fit the mask {:?}",
                l1.shape(),
                l2.shape()
            )));
        }
        let mut out = vec![0f32; s.len()];
        for_each_row(&mut out, keys, |r, o| {
            // Row r is (batch, head, stacked row) = (r / (h rows), (r / rows) % h,
            // r % rows), the stacked row's query r % t (rows is a multiple of t).
            let (bi, ti) = (r / (h * rows), r % t);
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

    /// `x` `(b, kv, keys, d)` with each head repeated `n` times, `(b, kv n, keys, d)`: the
    /// copy grouped-query attention used to make before attending.
    fn repeat_heads(x: &Tensor, n: usize) -> candle_core::Result<Tensor> {
        let (b, kv, keys, d) = x.dims4()?;
        Tensor::cat(&vec![x; n], 2)?.reshape((b, kv * n, keys, d))
    }

    /// Plain attention from tensor ops over repeated key/value heads.
    fn repeated_reference(
        x: &[Tensor],
        n: usize,
        mask: &Tensor,
        scale: f64,
        softcap: Option<f64>,
    ) -> Result<Tensor> {
        let (k, v) = (repeat_heads(&x[1], n)?, repeat_heads(&x[2], n)?);
        let s = (x[0].matmul(&k.t()?)? * scale)?;
        let s = match softcap {
            Some(cap) => ((s / cap)?.tanh()? * cap)?,
            None => s,
        };
        let s = s.broadcast_add(mask)?;
        Ok(candle_nn::ops::softmax(&s, candle_core::D::Minus1)?.matmul(&v)?)
    }

    #[test]
    fn grouped_heads_match_repeated_heads() -> Result<()> {
        // 6 query heads on 2 key/value heads, and on 3 and 6 (plain); fused and, with a
        // soft-cap, the tensor-op path; gradients of the keys and values sum over groups.
        let (b, h, t, d) = (2, 6, 5, 4);
        let mask = causal_mask_with_pad(b, t)?;
        let scale = 1.0 / (d as f64).sqrt();
        for kv in [1, 2, 3, 6] {
            for softcap in [None, Some(1.5)] {
                let q: &[usize] = &[b, h, t, d];
                let kv_shape: &[usize] = &[b, kv, t, d];
                assert_same_with_grads(
                    &[q, kv_shape, kv_shape],
                    |x| attention(&x[0], &x[1], &x[2], &mask, scale, softcap),
                    |x| repeated_reference(x, h / kv, &mask, scale, softcap),
                )?;
            }
        }
        Ok(())
    }

    #[test]
    fn grouped_decode_step_matches_repeated_heads() -> Result<()> {
        // One new query over 7 keys (a decode step against a cache), on the fused path
        // and on the tensor-op path (the CPU kernels switched off).
        let (b, h, kv, keys, d) = (3, 4, 2, 7, 8);
        let mask: Vec<f32> = (0..b * keys)
            .map(|i| if i % keys < i / keys { -1e9 } else { 0.0 })
            .collect();
        let mask = Tensor::from_vec(mask, (b, 1, 1, keys), &candle_core::Device::Cpu)?;
        let scale = 0.3;
        let q: &[usize] = &[b, h, 1, d];
        let kv_shape: &[usize] = &[b, kv, keys, d];
        let check = || {
            assert_same_with_grads(
                &[q, kv_shape, kv_shape],
                |x| attention(&x[0], &x[1], &x[2], &mask, scale, None),
                |x| repeated_reference(x, h / kv, &mask, scale, None),
            )
        };
        check()?;
        super::super::without_cpu_kernels(check)
    }

    #[test]
    fn heads_that_do_not_group_are_an_error() -> Result<()> {
        let dev = candle_core::Device::Cpu;
        let q = Tensor::zeros((1, 4, 2, 3), DType::F32, &dev)?;
        let k = Tensor::zeros((1, 3, 2, 3), DType::F32, &dev)?;
        let mask = Tensor::zeros((1, 1, 2, 2), DType::F32, &dev)?;
        let err = attention(&q, &k, &k, &mask, 1.0, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("4 query heads cannot share 3"), "{err}");
        Ok(())
    }
}
