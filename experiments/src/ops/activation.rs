//! The MLP activations as single autograd nodes: exact (erf) GELU, and SwiGLU
//! `silu(gate) * up`. candle differentiates GELU with about a dozen full-size tensor
//! ops and SwiGLU with three nodes plus SiLU's own chain; here each is one pass
//! forward and one backward. With the `cuda` feature the same nodes run CUDA kernels
//! (`kernels/activation.cu`) when switched on ([`CudaKernel::Gelu`], [`CudaKernel::SwiGlu`]).

use super::kernel::{
    erf_f32, exp_nonpos, f32_slice, for_each_row, fused, rows_width, sigmoid, with_avx2,
};
use super::switch::CudaKernel;
use crate::Result;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Shape, Tensor};

/// Rows of the elementwise kernels (any split works; this one keeps tasks coarse).
const ROW: usize = 4096;

/// `0.5 x (1 + erf(x / sqrt 2))`; differentiable.
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    if fused(CudaKernel::Gelu, &[x]) {
        return Ok(x.contiguous()?.apply_op1(GeluErf)?);
    }
    Ok(x.gelu_erf()?)
}

/// `silu(gate) * up` with `silu(x) = x / (1 + e^-x)`; differentiable in both.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if fused(CudaKernel::SwiGlu, &[gate, up]) && gate.shape() == up.shape() {
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

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        gpu::Elementwise::new("gelu_erf_fwd", 1).run1(s, l, l.shape().clone())
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

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        gpu::Elementwise::new("gelu_erf_bwd", 1).run2(s1, l1, s2, l2, l1.shape().clone())
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

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        gpu::Elementwise::new("swiglu_fwd", 1).run2(s1, l1, s2, l2, l1.shape().clone())
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

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        let shape = Shape::from((2, l1.shape().elem_count()));
        gpu::Elementwise::new("swiglu_bwd", 2).run3(s1, l1, s2, l2, s3, l3, shape)
    }
}

/// The CUDA side: one launcher for the elementwise kernels of `kernels/activation.cu`.
#[cfg(feature = "cuda")]
mod gpu {
    use super::super::cuda::{contiguous, elementwise, kernel_name, ACTIVATION};
    use candle_core::backend::BackendStorage;
    use candle_core::cuda_backend::cudarc::driver::{
        CudaSlice, DeviceRepr, PushKernelArg, ValidAsZeroBits,
    };
    use candle_core::cuda_backend::{CudaDevice, Map1, Map2, Map3, WrapErr};
    use candle_core::{CudaStorage, Layout, Shape, WithDType};

    /// Kernel `<root>_<dtype>` over inputs of `n` elements each (same shape, contiguous),
    /// arguments `(inputs.., out, n)`, writing `outputs * n` elements.
    pub(super) struct Elementwise {
        root: &'static str,
        outputs: usize,
    }

    impl Elementwise {
        pub(super) fn new(root: &'static str, outputs: usize) -> Self {
            Self { root, outputs }
        }

        /// Allocates the output, pushes `inputs`, the output and `n`, and launches.
        fn launch<T: DeviceRepr + WithDType + ValidAsZeroBits>(
            &self,
            inputs: &[(&CudaSlice<T>, &Layout)],
            dev: &CudaDevice,
        ) -> candle_core::Result<CudaSlice<T>> {
            let n = inputs[0].1.shape().elem_count();
            if let Some((_, l)) = inputs.iter().find(|(_, l)| l.shape().elem_count() != n) {
                candle_core::bail!(
                    "{}: inputs of {n} and {} elements",
                    self.root,
                    l.shape().elem_count()
                );
            }
            let views = inputs
                .iter()
                .map(|(s, l)| contiguous(self.root, s, l))
                .collect::<candle_core::Result<Vec<_>>>()?;
            let func = dev.get_or_load_custom_func(
                &kernel_name::<T>(self.root),
                ACTIVATION.name,
                ACTIVATION.ptx,
            )?;
            // SAFETY: every element is written by the kernel.
            let out = unsafe { dev.alloc::<T>(self.outputs * n)? };
            // Argument order mirrored in ops/emulation/launches.rs.
            let mut b = func.builder();
            for v in &views {
                b.arg(v);
            }
            b.arg(&out).arg(&n);
            // SAFETY: the kernel reads n elements of each input and writes outputs * n.
            unsafe { b.launch(elementwise(n)) }.w()?;
            Ok(out)
        }

        /// Wraps a launched slice with the storage's device and the output shape.
        fn wrap(
            dev: &CudaDevice,
            slice: candle_core::cuda_backend::S,
            shape: Shape,
        ) -> (CudaStorage, Shape) {
            (
                CudaStorage {
                    slice,
                    device: dev.clone(),
                },
                shape,
            )
        }

        /// One input.
        pub(super) fn run1(
            &self,
            s: &CudaStorage,
            l: &Layout,
            shape: Shape,
        ) -> candle_core::Result<(CudaStorage, Shape)> {
            let dev = s.device();
            Ok(Self::wrap(dev, Map1::map(self, &s.slice, dev, l)?, shape))
        }

        /// Two inputs.
        pub(super) fn run2(
            &self,
            s1: &CudaStorage,
            l1: &Layout,
            s2: &CudaStorage,
            l2: &Layout,
            shape: Shape,
        ) -> candle_core::Result<(CudaStorage, Shape)> {
            let dev = s1.device();
            Ok(Self::wrap(
                dev,
                Map2::map(self, &s1.slice, l1, &s2.slice, l2, dev)?,
                shape,
            ))
        }

        /// Three inputs.
        #[allow(clippy::too_many_arguments)]
        pub(super) fn run3(
            &self,
            s1: &CudaStorage,
            l1: &Layout,
            s2: &CudaStorage,
            l2: &Layout,
            s3: &CudaStorage,
            l3: &Layout,
            shape: Shape,
        ) -> candle_core::Result<(CudaStorage, Shape)> {
            let dev = s1.device();
            let slice = Map3::map(self, &s1.slice, l1, &s2.slice, l2, &s3.slice, l3, dev)?;
            Ok(Self::wrap(dev, slice, shape))
        }
    }

    impl Map1 for Elementwise {
        fn f<T: DeviceRepr + WithDType + ValidAsZeroBits>(
            &self,
            x: &CudaSlice<T>,
            dev: &CudaDevice,
            l: &Layout,
        ) -> candle_core::Result<CudaSlice<T>> {
            self.launch(&[(x, l)], dev)
        }
    }

    impl Map2 for Elementwise {
        fn f<T: DeviceRepr + WithDType + ValidAsZeroBits>(
            &self,
            a: &CudaSlice<T>,
            la: &Layout,
            b: &CudaSlice<T>,
            lb: &Layout,
            dev: &CudaDevice,
        ) -> candle_core::Result<CudaSlice<T>> {
            self.launch(&[(a, la), (b, lb)], dev)
        }
    }

    impl Map3 for Elementwise {
        fn f<T: DeviceRepr + WithDType + ValidAsZeroBits>(
            &self,
            a: &CudaSlice<T>,
            la: &Layout,
            b: &CudaSlice<T>,
            lb: &Layout,
            g: &CudaSlice<T>,
            lg: &Layout,
            dev: &CudaDevice,
        ) -> candle_core::Result<CudaSlice<T>> {
            self.launch(&[(a, la), (b, lb), (g, lg)], dev)
        }
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
