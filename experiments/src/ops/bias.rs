//! `x + b` with `b` broadcast over the rows of `x`, as one node whose backward sums the
//! gradient's columns in one contiguous pass (candle's reduction over leading
//! dimensions takes a slow strided path).

use super::kernel::{column_sums, cpu_f32, f32_slice, for_each_row, rows_width};
use crate::Result;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};

/// `x + b`: `x` `(..., n)`, `b` `(n)`; differentiable in both.
pub fn add_bias(x: &Tensor, b: &Tensor) -> Result<Tensor> {
    if cpu_f32(&[x, b]) && b.rank() == 1 {
        return Ok(x.contiguous()?.apply_op2(&b.contiguous()?, AddBias)?);
    }
    Ok(x.broadcast_add(b)?)
}

/// The forward op.
struct AddBias;

/// Column sums of a `(..., n)` tensor to `(n)`.
struct ColumnSum;

impl CustomOp2 for AddBias {
    fn name(&self) -> &'static str {
        "fused-add-bias"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, b) = (f32_slice(s1, l1)?, f32_slice(s2, l2)?);
        let (_, w) = rows_width(l1);
        if b.len() != w {
            return Err(candle_core::Error::Msg(format!(
                "add_bias: a bias of {} for rows of {w}",
                b.len()
            )));
        }
        let mut out = vec![0f32; x.len()];
        for_each_row(&mut out, w, |r, o| {
            for ((o, x), b) in o.iter_mut().zip(&x[r * w..(r + 1) * w]).zip(b) {
                *o = x + b;
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let g = grad_res.contiguous()?;
        let gb = g.apply_op1_no_bwd(&ColumnSum)?;
        Ok((Some(g), Some(gb)))
    }
}

impl CustomOp1 for ColumnSum {
    fn name(&self) -> &'static str {
        "fused-column-sum"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = f32_slice(s, l)?;
        let (rows, w) = rows_width(l);
        let sums = column_sums(rows, w, |r, acc| {
            for (a, v) in acc.iter_mut().zip(&g[r * w..(r + 1) * w]) {
                *a += v;
            }
        });
        Ok((CpuStorage::F32(sums), Shape::from(w)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::kernel::tests::assert_same_with_grads;
    use super::*;

    #[test]
    fn fused_bias_matches_broadcast_add() -> Result<()> {
        assert_same_with_grads(
            &[&[3, 70, 9], &[9]],
            |v| add_bias(&v[0], &v[1]),
            |v| Ok(v[0].broadcast_add(&v[1])?),
        )
    }
}
