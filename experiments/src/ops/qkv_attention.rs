//! Self-attention from the query/key/value projections' outputs to the merged heads as
//! one autograd node: GPT-NeoX (one fused projection, heads interleaved, partial
//! rotary) and Llama (three projections, grouped-query heads, full rotary).
//!
//! Built from tensor ops, the stretch between the projections and the output projection
//! is about 25 nodes per layer: the head split (reshapes, narrows, transposes), the
//! rotary embedding of queries and keys (narrows, a negation, concatenations, products
//! and a sum each), the repetition of grouped key/value heads, the attention and the
//! merge of the heads. candle's backward pass zeroes and accumulates a full-size
//! gradient buffer for each of them and copies every transpose. Here the split, the
//! rotation, the repetition and the merge are index arithmetic in hand-written kernels
//! around the attention's own GEMMs ([`super::attention::forward`] and
//! [`super::attention::backward`]), and the backward pass writes the gradients of the
//! projections' outputs directly.

use super::attention;
use super::kernel::{cpu_f32, for_each_row, Precomputed};
use super::rotary::rotate_half;
use crate::Result;
use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Shape, Tensor};

/// Where the heads of one of query, key and value live in its source `(b, t, width)`:
/// head `i` at columns `offset + i * stride .. + d` of each token's row.
#[derive(Debug, Clone, Copy)]
struct Part {
    width: usize,
    offset: usize,
    stride: usize,
    heads: usize,
}

/// Shapes of one call: batch, time, query heads, head size, rotated dimensions per head,
/// and where query, key and value come from.
#[derive(Debug, Clone, Copy)]
struct Dims {
    b: usize,
    t: usize,
    h: usize,
    d: usize,
    rot: usize,
    parts: [Part; 3],
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
    let Ok((_, _, width)) = qkv.dims3() else {
        return Ok(None);
    };
    if heads == 0 || width % (3 * heads) != 0 {
        return Ok(None);
    }
    let d = width / (3 * heads);
    let part = |i: usize| Part {
        width,
        offset: i * d,
        stride: 3 * d,
        heads,
    };
    let Some(fused) = Fused::new(
        &[qkv],
        [part(0), part(1), part(2)],
        d,
        rot,
        cos,
        sin,
        mask,
        scale,
    )?
    else {
        return Ok(None);
    };
    Ok(Some(fused.finish(|node| qkv.apply_op1(node))?))
}

/// Grouped-query self-attention of the projections' outputs `q` `(b, t, heads * d)`,
/// `k` and `v` `(b, t, kv_heads * d)` (Llama), with the rotary embedding on all `d`
/// dimensions of queries and keys from `cos` and `sin` `(b, 1, t, d)`, the additive
/// `mask` `(b, 1, t, t)` and scores scaled by `scale`; each key/value head serves
/// `heads / kv_heads` consecutive query heads. Returns `(b, t, heads * d)`,
/// differentiable in `q`, `k` and `v`; `None` where the fused node does not apply.
#[allow(clippy::too_many_arguments)]
pub fn llama_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
    kv_heads: usize,
    cos: &Tensor,
    sin: &Tensor,
    mask: &Tensor,
    scale: f64,
) -> Result<Option<Tensor>> {
    let (Ok((_, _, wq)), Ok((_, _, wk))) = (q.dims3(), k.dims3()) else {
        return Ok(None);
    };
    if heads == 0 || kv_heads == 0 || heads % kv_heads != 0 || wq % heads != 0 {
        return Ok(None);
    }
    let d = wq / heads;
    if wk != kv_heads * d || v.dims() != k.dims() {
        return Ok(None);
    }
    let part = |width: usize, heads: usize| Part {
        width,
        offset: 0,
        stride: d,
        heads,
    };
    let parts = [part(wq, heads), part(wk, kv_heads), part(wk, kv_heads)];
    let Some(fused) = Fused::new(&[q, k, v], parts, d, d, cos, sin, mask, scale)? else {
        return Ok(None);
    };
    Ok(Some(fused.finish(|node| q.apply_op3(k, v, node))?))
}

/// The forward pass of either entry point, computed outside the graph.
struct Fused {
    q: Tensor,
    k: Tensor,
    v: Tensor,
    probs: Tensor,
    cos: Vec<f32>,
    sin: Vec<f32>,
    dims: Dims,
    scale: f64,
    merged: Tensor,
    track: bool,
}

impl Fused {
    /// Splits (and rotates) the heads of `sources` (one tensor holding all three parts,
    /// or one per part) and runs the attention; `None` where the node does not apply.
    #[allow(clippy::too_many_arguments)]
    fn new(
        sources: &[&Tensor],
        parts: [Part; 3],
        d: usize,
        rot: usize,
        cos: &Tensor,
        sin: &Tensor,
        mask: &Tensor,
        scale: f64,
    ) -> Result<Option<Self>> {
        let mut all: Vec<&Tensor> = sources.to_vec();
        all.extend([cos, sin, mask]);
        let (b, t, _) = sources[0].dims3()?;
        let h = parts[0].heads;
        let shapes_fit = sources.iter().enumerate().all(|(i, s)| {
            let p = parts[i.min(parts.len() - 1)];
            s.dims() == [b, t, p.width]
        });
        if !cpu_f32(&all)
            || !shapes_fit
            || rot % 2 != 0
            || rot > d
            || cos.dims() != [b, 1, t, rot]
            || sin.dims() != [b, 1, t, rot]
            || mask.dims() != [b, 1, t, t]
        {
            return Ok(None);
        }
        let dims = Dims {
            b,
            t,
            h,
            d,
            rot,
            parts,
        };
        let (cos, sin) = (to_vec(cos)?, to_vec(sin)?);
        let src = sources
            .iter()
            .map(|s| to_vec(s))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let split = |p: usize| -> Result<Tensor> {
            let data = &src[p.min(src.len() - 1)];
            let mut out = vec![0f32; b * h * t * d];
            split_heads(data, &cos, &sin, dims, p, &mut out);
            Ok(Tensor::from_vec(out, (b, h, t, d), sources[0].device())?)
        };
        let (q, k, v) = (split(0)?, split(1)?, split(2)?);
        let (out, probs) = attention::forward(&q, &k, &v, mask, scale)?;
        let merged = out.transpose(1, 2)?.contiguous()?.reshape((b, t, h * d))?;
        Ok(Some(Self {
            q,
            k,
            v,
            probs,
            cos,
            sin,
            dims,
            scale,
            merged,
            track: sources.iter().any(|s| s.track_op()),
        }))
    }

    /// The result when nothing needs gradients, else the node that differentiates it,
    /// applied to the sources by `apply`.
    fn finish(
        self,
        apply: impl FnOnce(QkvAttention) -> candle_core::Result<Tensor>,
    ) -> Result<Tensor> {
        if !self.track {
            return Ok(self.merged);
        }
        Ok(apply(QkvAttention {
            result: Precomputed::new(self.merged),
            q: self.q,
            k: self.k,
            v: self.v,
            probs: self.probs,
            cos: self.cos,
            sin: self.sin,
            dims: self.dims,
            scale: self.scale,
        })?)
    }
}

/// The data of a tensor, as f32 in row-major order.
fn to_vec(t: &Tensor) -> candle_core::Result<Vec<f32>> {
    t.flatten_all()?.to_vec1::<f32>()
}

/// Part `p` (0 query, 1 key, 2 value) of `src` into `out` `(b, h, t, d)` with `h` query
/// heads (a key/value head repeated for `h / heads` consecutive query heads), rotated
/// for queries and keys: `x cos + rotate_half(x) sin` on the first `rot` entries (the
/// same products and sums as the tensor-op version).
fn split_heads(src: &[f32], cos: &[f32], sin: &[f32], dims: Dims, p: usize, out: &mut [f32]) {
    let Dims { t, h, d, rot, .. } = dims;
    let part = dims.parts[p];
    let n_rep = h / part.heads;
    for_each_row(out, d, |r, o| {
        // Row r = (bi, hi, ti) of the output; its source head hi / n_rep at token (bi, ti).
        let (bi, hi, ti) = (r / (h * t), (r / t) % h, r % t);
        let at = (bi * t + ti) * part.width + part.offset + (hi / n_rep) * part.stride;
        let x = &src[at..at + d];
        o.copy_from_slice(x);
        if p < 2 {
            let at = (bi * t + ti) * rot;
            rotate_half(o, &cos[at..at + rot], &sin[at..at + rot], false);
        }
    });
}

/// The backward of [`split_heads`] for part `p`: the gradient `g` `(b, h, t, d)` summed
/// over the query heads sharing a source head, the rotation undone, into the part's
/// columns of `out` `(b, t, width)`.
fn join_heads(g: &[f32], cos: &[f32], sin: &[f32], dims: Dims, p: usize, out: &mut [f32]) {
    let Dims { t, h, d, rot, .. } = dims;
    let part = dims.parts[p];
    let n_rep = h / part.heads;
    for_each_row(out, part.width, |r, row| {
        let (bi, ti) = (r / t, r % t);
        let at = (bi * t + ti) * rot;
        let (c, s) = (&cos[at..at + rot], &sin[at..at + rot]);
        for kh in 0..part.heads {
            let o = &mut row[part.offset + kh * part.stride..][..d];
            // Sum over the repeated heads, in head order (as the tensor-op repeat's
            // backward sums them).
            let first = ((bi * h + kh * n_rep) * t + ti) * d;
            o.copy_from_slice(&g[first..first + d]);
            for rep in 1..n_rep {
                let at = ((bi * h + kh * n_rep + rep) * t + ti) * d;
                o.iter_mut().zip(&g[at..at + d]).for_each(|(a, x)| *a += x);
            }
            if p < 2 {
                // out1 = x1 c1 - x2 s1, out2 = x2 c2 + x1 s2, so
                // dx1 = g1 c1 + g2 s2, dx2 = g2 c2 - g1 s1.
                rotate_half(o, c, s, true);
            }
        }
    });
}

/// The node: the rotated heads and probabilities for the backward pass, the rotary
/// tables, and the forward result (taken when the node is built).
struct QkvAttention {
    q: Tensor,
    k: Tensor,
    v: Tensor,
    probs: Tensor,
    cos: Vec<f32>,
    sin: Vec<f32>,
    dims: Dims,
    scale: f64,
    result: Precomputed,
}

impl QkvAttention {
    /// The gradients of the sources: one tensor `(b, t, width)` holding all three parts
    /// (`joint`), else one per part.
    fn source_grads(&self, g: &Tensor, joint: bool) -> candle_core::Result<Vec<Tensor>> {
        let Dims { b, t, h, d, .. } = self.dims;
        // (b, t, h * d) -> (b, h, t, d).
        let g = g
            .detach()
            .reshape((b, t, h, d))?
            .transpose(1, 2)?
            .contiguous()?;
        let (dq, dk, dv) =
            attention::backward(&self.q, &self.k, &self.v, &self.probs, &g, self.scale)?;
        let dev = self.q.device();
        let mut out = Vec::new();
        let mut buf = Vec::new();
        for (p, gh) in [dq, dk, dv].iter().enumerate() {
            let gh = to_vec(gh)?;
            let width = self.dims.parts[p].width;
            if !joint || p == 0 {
                buf = vec![0f32; b * t * width];
            }
            join_heads(&gh, &self.cos, &self.sin, self.dims, p, &mut buf);
            if !joint || p == 2 {
                out.push(Tensor::from_vec(
                    std::mem::take(&mut buf),
                    (b, t, width),
                    dev,
                )?);
            }
        }
        Ok(out)
    }
}

impl CustomOp1 for QkvAttention {
    fn name(&self) -> &'static str {
        "fused-qkv-attention"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        self.result.take(CustomOp1::name(self))
    }

    fn bwd(&self, _: &Tensor, _: &Tensor, g: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(self.source_grads(g, true)?.pop())
    }
}

impl CustomOp3 for QkvAttention {
    fn name(&self) -> &'static str {
        "fused-qkv-attention"
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
        self.result.take(CustomOp3::name(self))
    }

    fn bwd(
        &self,
        _: &Tensor,
        _: &Tensor,
        _: &Tensor,
        _: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let mut grads = self.source_grads(g, false)?.into_iter().map(Some);
        Ok((
            grads.next().flatten(),
            grads.next().flatten(),
            grads.next().flatten(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::kernel::tests::{assert_same_with_grads, causal_mask_with_pad};
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

    /// Llama's attention from tensor ops: heads split, fully rotated, key/value heads
    /// repeated as `models::attention::repeat_kv` does.
    #[allow(clippy::too_many_arguments)]
    fn llama_reference(
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        heads: usize,
        kv_heads: usize,
        cos: &Tensor,
        sin: &Tensor,
        mask: &Tensor,
    ) -> Result<Tensor> {
        let (b, t, w) = q.dims3()?;
        let d = w / heads;
        let split = |x: &Tensor, n: usize| x.reshape((b, t, n, d))?.transpose(1, 2);
        let rotate = |x: &Tensor| -> Result<Tensor> {
            let (x1, x2) = (
                x.narrow(D::Minus1, 0, d / 2)?,
                x.narrow(D::Minus1, d / 2, d / 2)?,
            );
            let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
            Ok((x.broadcast_mul(cos)? + rotated.broadcast_mul(sin)?)?)
        };
        let repeat = |x: &Tensor| -> Result<Tensor> {
            let n = heads / kv_heads;
            Ok(Tensor::cat(&vec![x; n], 2)?.reshape((b, heads, t, d))?)
        };
        let q = rotate(&split(q, heads)?)?;
        let k = repeat(&rotate(&split(k, kv_heads)?)?)?;
        let v = repeat(&split(v, kv_heads)?.contiguous()?)?;
        let scale = 1.0 / (d as f64).sqrt();
        let s = (q.contiguous()?.matmul(&k.t()?.contiguous()?)? * scale)?.broadcast_add(mask)?;
        let out = candle_nn::ops::softmax(&s, D::Minus1)?.matmul(&v.contiguous()?)?;
        Ok(out.transpose(1, 2)?.reshape((b, t, heads * d))?)
    }

    /// A causal mask with one padded key in the second row, and rotary tables whose
    /// positions skip that pad, for `b = 2` rows of `t` tokens and `rot` rotated dims.
    fn mask_and_tables(t: usize, rot: usize) -> Result<(Tensor, Tensor, Tensor)> {
        let (b, dev) = (2, Device::Cpu);
        let mask = causal_mask_with_pad(b, t)?;
        let angle: Vec<f32> = (0..b * t * rot)
            .map(|i| {
                let (bi, ti, j) = (i / (t * rot), (i / rot) % t, i % rot);
                let pos = ti.saturating_sub(bi) as f32;
                pos * 0.3f32.powi((j % (rot / 2)) as i32 + 1)
            })
            .collect();
        let angle = Tensor::from_vec(angle, (b, 1, t, rot), &dev)?;
        Ok((mask, angle.cos()?, angle.sin()?))
    }

    #[test]
    fn fused_llama_attention_matches_tensor_ops() -> Result<()> {
        let (b, t, heads, kv_heads, d) = (2, 5, 4, 2, 6);
        let (mask, cos, sin) = mask_and_tables(t, d)?;
        let scale = 1.0 / (d as f64).sqrt();
        let (wq, wk) = (heads * d, kv_heads * d);
        assert_same_with_grads(
            &[&[b, t, wq], &[b, t, wk], &[b, t, wk]],
            |x| {
                Ok(llama_attention(
                    &x[0], &x[1], &x[2], heads, kv_heads, &cos, &sin, &mask, scale,
                )?
                .expect("f32 on the CPU"))
            },
            |x| llama_reference(&x[0], &x[1], &x[2], heads, kv_heads, &cos, &sin, &mask),
        )?;
        // Not applicable: heads that do not divide.
        let q = Tensor::zeros((b, t, wq), candle_core::DType::F32, &Device::Cpu)?;
        let k = Tensor::zeros((b, t, 3 * d), candle_core::DType::F32, &Device::Cpu)?;
        assert!(llama_attention(&q, &k, &k, heads, 3, &cos, &sin, &mask, scale)?.is_none());
        Ok(())
    }

    #[test]
    fn fused_neox_attention_matches_tensor_ops() -> Result<()> {
        let (b, t, heads, d, rot) = (2, 5, 3, 8, 4);
        let dev = Device::Cpu;
        let (mask, cos, sin) = mask_and_tables(t, rot)?;
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
