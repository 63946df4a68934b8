//! GPT-NeoX self-attention from the fused QKV projection's output to the merged heads as
//! one autograd node.
//!
//! Built from tensor ops, the stretch between the `query_key_value` and `dense`
//! projections is about 25 nodes per layer: the head split (reshape, three narrows,
//! three transposes), the partial rotary embedding of queries and keys (narrows, a
//! negation, two concatenations, products and a sum each), the attention and the merge
//! of the heads. candle's backward pass zeroes and accumulates a full-size gradient
//! buffer for each of them and copies every transpose. Here the split, the rotation and
//! the merge are index arithmetic in hand-written kernels around the attention's own
//! GEMMs ([`super::attention::forward`] and [`super::attention::backward`]), and the
//! backward pass writes the gradient of the QKV projection's output directly.

use super::attention;
use super::kernel::{cpu_f32, f32_slice, for_each_row, Precomputed};
use crate::Result;
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};

/// Shapes of one call: batch, time, heads, head size and rotated dimensions per head.
#[derive(Debug, Clone, Copy)]
struct Dims {
    b: usize,
    t: usize,
    h: usize,
    d: usize,
    rot: usize,
}

/// Self-attention of `qkv` `(b, t, heads * 3 * head_size)`, laid out as GPT-NeoX's
/// `query_key_value` projection writes it (per head: query, key, value), with the
/// rotary embedding ("rotate half", transformers' layout) on the first `rot` dimensions
/// of each query and key head from `cos` and `sin` `(b, 1, t, rot)`, the additive
/// `mask` `(b, 1, t, t)` and scores scaled by `scale`. Returns the heads merged,
/// `(b, t, heads * head_size)`, differentiable in `qkv`.
///
/// `None` where the fused node does not apply (not f32 on the CPU, or other shapes): the
/// caller then composes the same function from tensor ops.
pub fn neox_attention(
    qkv: &Tensor,
    heads: usize,
    rot: usize,
    cos: &Tensor,
    sin: &Tensor,
    mask: &Tensor,
    scale: f64,
) -> Result<Option<Tensor>> {
    let Ok((b, t, width)) = qkv.dims3() else {
        return Ok(None);
    };
    if heads == 0 || width % (3 * heads) != 0 || !cpu_f32(&[qkv, cos, sin, mask]) {
        return Ok(None);
    }
    let dims = Dims {
        b,
        t,
        h: heads,
        d: width / (3 * heads),
        rot,
    };
    if rot % 2 != 0
        || rot > dims.d
        || cos.dims() != [b, 1, t, rot]
        || sin.dims() != [b, 1, t, rot]
        || mask.dims() != [b, 1, t, t]
    {
        return Ok(None);
    }
    let qkv = qkv.contiguous()?;
    let (cos, sin) = (cos.contiguous()?, sin.contiguous()?);
    let heads_shape = (b, heads, t, dims.d);
    let (q, k, v) = {
        let (src, cs, sn) = (to_vec(&qkv)?, to_vec(&cos)?, to_vec(&sin)?);
        let split = |part: usize, rotate: bool| -> Result<Tensor> {
            let mut out = vec![0f32; b * heads * t * dims.d];
            split_heads(&src, &cs, &sn, dims, part, rotate, &mut out);
            Ok(Tensor::from_vec(out, heads_shape, qkv.device())?)
        };
        (split(0, true)?, split(1, true)?, split(2, false)?)
    };
    let (out, probs) = attention::forward(&q, &k, &v, mask, scale)?;
    let merged = merge_heads(&out, dims)?;
    if !qkv.track_op() {
        return Ok(Some(merged));
    }
    let node = NeoxAttention {
        q,
        k,
        v,
        probs,
        cos,
        sin,
        dims,
        scale,
        result: Precomputed::new(merged),
    };
    Ok(Some(qkv.apply_op1(node)?))
}

/// The data of a contiguous f32 tensor.
fn to_vec(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?.to_vec1::<f32>()?)
}

/// Part `part` (0 query, 1 key, 2 value) of every head of `src` `(b, t, h, 3, d)` into
/// `out` `(b, h, t, d)`, rotated when `rotate`: `x cos + rotate_half(x) sin` on the
/// first `rot` entries (the same products and sums as the tensor-op version).
fn split_heads(
    src: &[f32],
    cos: &[f32],
    sin: &[f32],
    dims: Dims,
    part: usize,
    rotate: bool,
    out: &mut [f32],
) {
    let Dims { t, h, d, rot, .. } = dims;
    let half = rot / 2;
    for_each_row(out, d, |r, o| {
        // Row r = (bi, hi, ti) of the output; its source row (bi, ti, hi, part).
        let (bi, hi, ti) = (r / (h * t), (r / t) % h, r % t);
        let at = ((bi * t + ti) * h + hi) * 3 * d + part * d;
        let x = &src[at..at + d];
        o.copy_from_slice(x);
        if rotate {
            let (c, s) = (&cos[(bi * t + ti) * rot..], &sin[(bi * t + ti) * rot..]);
            for j in 0..half {
                o[j] = x[j] * c[j] + -x[j + half] * s[j];
                o[j + half] = x[j + half] * c[j + half] + x[j] * s[j + half];
            }
        }
    });
}

/// `(b, h, t, d)` heads merged to `(b, t, h * d)`.
fn merge_heads(x: &Tensor, dims: Dims) -> candle_core::Result<Tensor> {
    let Dims { b, t, h, d, .. } = dims;
    x.transpose(1, 2)?.contiguous()?.reshape((b, t, h * d))
}

/// The node: the rotated heads and probabilities for the backward pass, the rotary
/// tables, and the forward result (taken when the node is built).
struct NeoxAttention {
    q: Tensor,
    k: Tensor,
    v: Tensor,
    probs: Tensor,
    cos: Tensor,
    sin: Tensor,
    dims: Dims,
    scale: f64,
    result: Precomputed,
}

impl CustomOp1 for NeoxAttention {
    fn name(&self) -> &'static str {
        "fused-neox-attention"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        self.result.take(self.name())
    }

    fn bwd(&self, qkv: &Tensor, _res: &Tensor, g: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let Dims { b, t, h, d, .. } = self.dims;
        // (b, t, h * d) -> (b, h, t, d).
        let g = g
            .detach()
            .reshape((b, t, h, d))?
            .transpose(1, 2)?
            .contiguous()?;
        let (dq, dk, dv) =
            attention::backward(&self.q, &self.k, &self.v, &self.probs, &g, self.scale)?;
        let dqkv = dq.apply_op3_no_bwd(
            &dk,
            &dv,
            &JoinHeads {
                dims: self.dims,
                cos: &self.cos,
                sin: &self.sin,
            },
        )?;
        Ok(Some(dqkv.reshape(qkv.shape())?))
    }
}

/// The backward of the split: `(dq, dk, dv)` `(b, h, t, d)` into the gradient of `qkv`
/// `(b, t, h * 3 * d)`, the rotation undone on queries and keys.
struct JoinHeads<'a> {
    dims: Dims,
    cos: &'a Tensor,
    sin: &'a Tensor,
}

impl candle_core::CustomOp3 for JoinHeads<'_> {
    fn name(&self) -> &'static str {
        "fused-neox-join-heads"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (dq, dk, dv) = (f32_slice(s1, l1)?, f32_slice(s2, l2)?, f32_slice(s3, l3)?);
        let (cos, sin) = (
            self.cos.flatten_all()?.to_vec1::<f32>()?,
            self.sin.flatten_all()?.to_vec1::<f32>()?,
        );
        let Dims { b, t, h, d, rot } = self.dims;
        let half = rot / 2;
        let mut out = vec![0f32; b * t * h * 3 * d];
        for_each_row(&mut out, 3 * d, |r, o| {
            // Row r = (bi, ti, hi); its heads' row (bi, hi, ti).
            let (bi, ti, hi) = (r / (t * h), (r / h) % t, r % h);
            let at = ((bi * h + hi) * t + ti) * d;
            let (c, s) = (&cos[(bi * t + ti) * rot..], &sin[(bi * t + ti) * rot..]);
            for (part, src) in [dq, dk, dv].into_iter().enumerate() {
                let (g, o) = (&src[at..at + d], &mut o[part * d..(part + 1) * d]);
                o.copy_from_slice(g);
                if part < 2 {
                    // out1 = x1 c1 - x2 s1, out2 = x2 c2 + x1 s2, so
                    // dx1 = g1 c1 + g2 s2, dx2 = g2 c2 - g1 s1.
                    for j in 0..half {
                        o[j] = g[j] * c[j] + g[j + half] * s[j + half];
                        o[j + half] = g[j + half] * c[j + half] - g[j] * s[j];
                    }
                }
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((b * t, h * 3 * d))))
    }
}

#[cfg(test)]
mod tests {
    use super::super::kernel::tests::assert_same_with_grads;
    use super::*;
    use candle_core::{Device, D};

    /// The same function from tensor ops, as `models::gpt_neox` composes it.
    fn reference(
        qkv: &Tensor,
        heads: usize,
        rot: usize,
        cos: &Tensor,
        sin: &Tensor,
        mask: &Tensor,
        scale: f64,
    ) -> Result<Tensor> {
        let (b, t, w) = qkv.dims3()?;
        let d = w / (3 * heads);
        let qkv = qkv.reshape((b, t, heads, 3 * d))?;
        let rotate = |x: &Tensor| -> Result<Tensor> {
            let x_rot = x.narrow(D::Minus1, 0, rot)?;
            let (x1, x2) = (
                x_rot.narrow(D::Minus1, 0, rot / 2)?,
                x_rot.narrow(D::Minus1, rot / 2, rot / 2)?,
            );
            let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
            let out = (x_rot.broadcast_mul(cos)? + rotated.broadcast_mul(sin)?)?;
            let pass = x.narrow(D::Minus1, rot, d - rot)?;
            Ok(Tensor::cat(&[&out, &pass], D::Minus1)?)
        };
        let q = rotate(&qkv.narrow(3, 0, d)?.transpose(1, 2)?)?;
        let k = rotate(&qkv.narrow(3, d, d)?.transpose(1, 2)?)?;
        let v = qkv.narrow(3, 2 * d, d)?.transpose(1, 2)?;
        let s = (q.contiguous()?.matmul(&k.t()?.contiguous()?)? * scale)?.broadcast_add(mask)?;
        let out = candle_nn::ops::softmax(&s, D::Minus1)?.matmul(&v.contiguous()?)?;
        Ok(out.transpose(1, 2)?.reshape((b, t, heads * d))?)
    }

    #[test]
    fn fused_neox_attention_matches_tensor_ops() -> Result<()> {
        let (b, t, heads, d, rot) = (2, 5, 3, 8, 4);
        let dev = Device::Cpu;
        // Causal plus one padded key in the second row; positions shifted by the pad.
        let mask: Vec<f32> = (0..b * t * t)
            .map(|i| {
                let (bi, qi, kj) = (i / (t * t), (i / t) % t, i % t);
                if kj > qi || (bi == 1 && kj == 0) {
                    -1e9
                } else {
                    0.0
                }
            })
            .collect();
        let mask = Tensor::from_vec(mask, (b, 1, t, t), &dev)?;
        let angle: Vec<f32> = (0..b * t * rot)
            .map(|i| {
                let (bi, ti, j) = (i / (t * rot), (i / rot) % t, i % rot);
                let pos = ti.saturating_sub(bi) as f32;
                pos * 0.3f32.powi((j % (rot / 2)) as i32 + 1)
            })
            .collect();
        let angle = Tensor::from_vec(angle, (b, 1, t, rot), &dev)?;
        let (cos, sin) = (angle.cos()?, angle.sin()?);
        let scale = 1.0 / (d as f64).sqrt();
        assert_same_with_grads(
            &[&[b, t, heads * 3 * d]],
            |x| {
                Ok(neox_attention(&x[0], heads, rot, &cos, &sin, &mask, scale)?
                    .expect("f32 on the CPU"))
            },
            |x| reference(&x[0], heads, rot, &cos, &sin, &mask, scale),
        )?;
        // Not applicable: another dtype, or an odd rotary width.
        let qkv = Tensor::zeros((b, t, heads * 3 * d), candle_core::DType::F64, &dev)?;
        assert!(neox_attention(&qkv, heads, rot, &cos, &sin, &mask, scale)?.is_none());
        let qkv = qkv.to_dtype(candle_core::DType::F32)?;
        assert!(neox_attention(&qkv, heads, 3, &cos, &sin, &mask, scale)?.is_none());
        Ok(())
    }
}
