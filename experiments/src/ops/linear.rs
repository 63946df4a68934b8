//! `x W^T` as one autograd node.
//!
//! Built from tensor ops, a linear layer is four nodes (flatten, the weight's
//! transpose, matmul, unflatten), and candle's backward pass zeroes and accumulates a
//! full-size gradient buffer for each (the transposed weight gradient through a slow
//! strided add). As one node the backward pass is two contiguous GEMMs:
//! `dx = g W` and `dW = g^T x`, the latter already in the weight's `(out, in)` layout.

use super::kernel::{cpu_f32, Precomputed};
use crate::Result;
use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};

/// `x W^T` for `x` `(..., in)` and `weight` `(out, in)`; differentiable in both.
pub fn linear(x: &Tensor, weight: &Tensor) -> Result<Tensor> {
    let dims = x.dims();
    let Some((&last, lead)) = dims.split_last() else {
        return Err(crate::Error::Input("linear: input of rank 0".into()));
    };
    let rows: usize = lead.iter().product();
    let mut out_shape = lead.to_vec();
    out_shape.push(weight.dim(0)?);
    let x2 = x.reshape((rows, last))?;
    if !cpu_f32(&[x, weight]) {
        return Ok(x2.matmul(&weight.t()?)?.reshape(out_shape)?);
    }
    // The product is computed here, outside the graph, and handed to the node, which
    // only records how to differentiate it.
    let y = x2
        .detach()
        .matmul(&weight.detach().t()?)?
        .reshape(out_shape)?;
    if !(x.track_op() || weight.track_op()) {
        return Ok(y);
    }
    let node = Linear {
        result: Precomputed::new(y),
    };
    Ok(x.apply_op2(weight, node)?)
}

/// The node: its forward result, taken (and so released) when the node is built.
struct Linear {
    result: Precomputed,
}

impl CustomOp2 for Linear {
    fn name(&self) -> &'static str {
        "fused-linear"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        self.result.take(self.name())
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (out, inp) = weight.dims2()?;
        let g = grad_res.detach().contiguous()?;
        let rows = g.elem_count() / out.max(1);
        let g2 = g.reshape((rows, out))?;
        let x2 = x.detach().contiguous()?.reshape((rows, inp))?;
        let dx = g2.matmul(&weight.detach())?.reshape(x.shape())?;
        let dw = g2.t()?.matmul(&x2)?;
        Ok((Some(dx), Some(dw)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::kernel::tests::assert_same_with_grads;
    use super::*;

    #[test]
    fn fused_linear_matches_matmul() -> Result<()> {
        assert_same_with_grads(
            &[&[3, 5, 7], &[11, 7]],
            |v| linear(&v[0], &v[1]),
            |v| Ok(v[0].broadcast_matmul(&v[1].t()?)?),
        )?;
        // A narrowed (strided) input.
        assert_same_with_grads(
            &[&[3, 5, 7], &[4, 7]],
            |v| linear(&v[0].narrow(1, 1, 3)?, &v[1]),
            |v| Ok(v[0].narrow(1, 1, 3)?.broadcast_matmul(&v[1].t()?)?),
        )
    }
}
