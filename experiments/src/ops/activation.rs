//! The MLP activations as single autograd nodes: exact (erf) GELU, and SwiGLU
//! `silu(gate) * up`. candle differentiates GELU with about a dozen full-size tensor
//! ops and SwiGLU with three nodes plus SiLU's own chain; here each is one pass
//! forward and one backward.

use super::kernel::{
    cpu_f32, erf_f32, exp_nonpos, f32_slice, for_each_row, rows_width, sigmoid, with_avx2,
};
use crate::Result;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Shape, Tensor};

/// Rows of the elementwise kernels (any split works; this one keeps tasks coarse).
const ROW: usize = 4096;

/// `0.5 x (1 + erf(x / sqrt 2))`; differentiable.
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    if cpu_f32(&[x]) {
        return Ok(x.contiguous()?.apply_op1(GeluErf)?);
    }
    Ok(x.gelu_erf()?)
}

/// `silu(gate) * up` with `silu(x) = x / (1 + e^-x)`; differentiable in both.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if cpu_f32(&[gate, up]) && gate.shape() == up.shape() {
        return Ok(gate.contiguous()?.apply_op2(&up.contiguous()?, SwiGlu)?);
    }
    Ok((gate.silu()? * up)?)
}

/// Applies `f(i, out_chunk)` over `out` in chunks of [`ROW`] (the flat index of the
/// chunk's first element is `i * ROW`).
fn chunks(out: &mut [f32], f: impl Fn(usize, &mut [f32]) + Sync) {
    for_each_row(out, ROW, f)
}

const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
/// `1 / sqrt(2 pi)`.
const INV_SQRT_2PI: f32 = 0.398_942_3;

#[inline(always)]
fn gelu_impl(x: &[f32], out: &mut [f32]) {
    for (o, x) in out.iter_mut().zip(x) {
        *o = 0.5 * x * (1.0 + erf_f32(x * FRAC_1_SQRT_2));
    }
}

#[inline(always)]
fn gelu_grad_impl(x: &[f32], g: &[f32], out: &mut [f32]) {
    // d/dx = 0.5 (1 + erf(x / sqrt 2)) + x phi(x).
    for ((o, x), g) in out.iter_mut().zip(x).zip(g) {
        let cdf = 0.5 * (1.0 + erf_f32(x * FRAC_1_SQRT_2));
        let pdf = INV_SQRT_2PI * exp_nonpos(-0.5 * x * x);
        *o = g * (cdf + x * pdf);
    }
}

#[inline(always)]
fn swiglu_impl(a: &[f32], b: &[f32], out: &mut [f32]) {
    for ((o, a), b) in out.iter_mut().zip(a).zip(b) {
        *o = a * sigmoid(*a) * b;
    }
}

#[inline(always)]
fn swiglu_grad_gate_impl(a: &[f32], b: &[f32], g: &[f32], out: &mut [f32]) {
    // y = a s(a) b: dy/da = b s(a) (1 + a (1 - s(a))).
    for (((o, a), b), g) in out.iter_mut().zip(a).zip(b).zip(g) {
        let s = sigmoid(*a);
        *o = g * b * s * (1.0 + a * (1.0 - s));
    }
}

#[inline(always)]
fn swiglu_grad_up_impl(a: &[f32], g: &[f32], out: &mut [f32]) {
    // dy/db = a s(a).
    for ((o, a), g) in out.iter_mut().zip(a).zip(g) {
        *o = g * a * sigmoid(*a);
    }
}

with_avx2! {
    /// GELU of a chunk.
    fn gelu_rows / gelu_rows_avx2 (x: &[f32], out: &mut [f32]) -> () = gelu_impl
}
with_avx2! {
    /// GELU's input gradient of a chunk.
    fn gelu_grad_rows / gelu_grad_rows_avx2 (x: &[f32], g: &[f32], out: &mut [f32]) -> () = gelu_grad_impl
}
with_avx2! {
    /// SwiGLU of a chunk.
    fn swiglu_rows / swiglu_rows_avx2 (a: &[f32], b: &[f32], out: &mut [f32]) -> () = swiglu_impl
}
with_avx2! {
    /// SwiGLU's gate gradient of a chunk.
    fn swiglu_grad_gate_rows / swiglu_grad_gate_rows_avx2 (a: &[f32], b: &[f32], g: &[f32], out: &mut [f32]) -> () = swiglu_grad_gate_impl
}
with_avx2! {
    /// SwiGLU's up gradient of a chunk.
    fn swiglu_grad_up_rows / swiglu_grad_up_rows_avx2 (a: &[f32], g: &[f32], out: &mut [f32]) -> () = swiglu_grad_up_impl
}

struct GeluErf;
struct GeluErfGrad;
struct SwiGlu;
struct SwiGluGrad;

impl CustomOp1 for GeluErf {
    fn name(&self) -> &'static str {
        "fused-gelu-erf"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l)?;
        let mut out = vec![0f32; x.len()];
        chunks(&mut out, |c, o| gelu_rows(&x[c * ROW..], o));
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, g: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(x.apply_op2_no_bwd(&g.contiguous()?, &GeluErfGrad)?))
    }
}

impl CustomOp2 for GeluErfGrad {
    fn name(&self) -> &'static str {
        "fused-gelu-erf-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, g) = (f32_slice(s1, l1)?, f32_slice(s2, l2)?);
        let mut out = vec![0f32; x.len()];
        chunks(&mut out, |c, o| {
            gelu_grad_rows(&x[c * ROW..], &g[c * ROW..], o)
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "fused-swiglu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (a, b) = (f32_slice(s1, l1)?, f32_slice(s2, l2)?);
        let mut out = vec![0f32; a.len()];
        chunks(&mut out, |c, o| {
            swiglu_rows(&a[c * ROW..], &b[c * ROW..], o)
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let block = gate.apply_op3_no_bwd(up, &g.contiguous()?, &SwiGluGrad)?;
        let n = gate.elem_count();
        let flat = block.flatten_all()?;
        let dgate = flat.narrow(0, 0, n)?.reshape(gate.shape())?;
        let dup = flat.narrow(0, n, n)?.reshape(gate.shape())?;
        Ok((Some(dgate), Some(dup)))
    }
}

impl CustomOp3 for SwiGluGrad {
    fn name(&self) -> &'static str {
        "fused-swiglu-grad"
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
        let (a, b, g) = (f32_slice(s1, l1)?, f32_slice(s2, l2)?, f32_slice(s3, l3)?);
        let n = a.len();
        let mut out = vec![0f32; 2 * n];
        let (da, db) = out.split_at_mut(n);
        chunks(da, |c, o| {
            let r = c * ROW..;
            swiglu_grad_gate_rows(&a[r.clone()], &b[r.clone()], &g[r], o)
        });
        chunks(db, |c, o| {
            swiglu_grad_up_rows(&a[c * ROW..], &g[c * ROW..], o)
        });
        let (rows, w) = rows_width(l1);
        Ok((CpuStorage::F32(out), Shape::from((2, rows * w))))
    }
}

#[cfg(test)]
mod tests {
    use super::super::kernel::tests::assert_same_with_grads;
    use super::*;

    #[test]
    fn fused_activations_match_tensor_ops() -> Result<()> {
        assert_same_with_grads(&[&[3, 4100]], |v| gelu_erf(&v[0]), |v| Ok(v[0].gelu_erf()?))?;
        assert_same_with_grads(
            &[&[5, 1700], &[5, 1700]],
            |v| swiglu(&v[0], &v[1]),
            |v| Ok((v[0].silu()? * &v[1])?),
        )
    }
}
