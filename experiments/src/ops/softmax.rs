//! Softmax over the last dimension (attention probabilities) as one node with a
//! one-pass backward `y (g - sum g y)`.

use super::kernel::{cpu_f32, f32_slice, for_each_row, rows_width, softmax_in_place};
use crate::Result;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor, D};

/// `softmax(x)` over the last dimension; differentiable.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if cpu_f32(&[x]) {
        return Ok(x.contiguous()?.apply_op1(Softmax)?);
    }
    Ok(candle_nn::ops::softmax(x, D::Minus1)?)
}

/// `log_softmax` over the last dimension from differentiable ops: `x - max - log sum
/// exp(x - max)`, with the (gradient-neutral) max shift detached.
pub fn log_softmax(logits: &Tensor) -> Result<Tensor> {
    let max = logits.max_keepdim(D::Minus1)?.detach();
    let shifted = logits.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    Ok(shifted.broadcast_sub(&lse)?)
}

/// The forward op.
struct Softmax;

/// The backward op: `(y, g)` to `scale * y (g - sum_row g y)` (the gradient of the
/// scores of `softmax(scale * s)`).
pub(super) struct SoftmaxGrad {
    pub(super) scale: f32,
}

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "fused-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l)?;
        let (_, w) = rows_width(l);
        let mut out = vec![0f32; x.len()];
        for_each_row(&mut out, w, |r, o| {
            o.copy_from_slice(&x[r * w..(r + 1) * w]);
            softmax_in_place(o);
        });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let g = grad_res.contiguous()?;
        Ok(Some(res.apply_op2_no_bwd(&g, &SoftmaxGrad { scale: 1.0 })?))
    }
}

impl CustomOp2 for SoftmaxGrad {
    fn name(&self) -> &'static str {
        "fused-softmax-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (y, g) = (f32_slice(s1, l1)?, f32_slice(s2, l2)?);
        let (_, w) = rows_width(l1);
        let mut out = vec![0f32; y.len()];
        for_each_row(&mut out, w, |r, o| {
            let (y, g) = (&y[r * w..(r + 1) * w], &g[r * w..(r + 1) * w]);
            let dot: f32 = y.iter().zip(g).map(|(a, b)| a * b).sum();
            for ((o, y), g) in o.iter_mut().zip(y).zip(g) {
                *o = self.scale * y * (g - dot);
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::kernel::tests::assert_same_with_grads;
    use super::*;

    #[test]
    fn fused_softmax_matches_tensor_ops() -> Result<()> {
        assert_same_with_grads(
            &[&[2, 3, 4, 19]],
            |v| softmax_last_dim(&v[0]),
            |v| Ok(candle_nn::ops::softmax(&v[0], D::Minus1)?),
        )
    }
}
