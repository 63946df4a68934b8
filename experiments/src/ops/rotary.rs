//! Rotary position embedding ("rotate half", transformers' layout) as one node: the first
//! `rotary_dims` entries of each head rotated by the position's angles, the rest passed
//! through (GPT-NeoX's partial rotary; Llama and Gemma rotate all of them). The tensor-op
//! version takes narrows, a negation, two concatenations, two products and a sum, each a
//! kernel and a full-size temporary per layer and step; the node is one pass forward and
//! one backward (the transpose of the rotation: by `-sin`).
//!
//! On the CPU in f32 its kernel forms the same products and sums as the tensor ops, so
//! the values are bit-identical; with the `cuda` feature the node runs
//! `kernels/rotary.cu` when switched on ([`CudaKernel::Rotary`]).

use super::kernel::{f32_slice, for_each_row, fused};
use super::switch::CudaKernel;
use crate::Result;
use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor, D};

/// `x cos + rotate_half(x) sin` on the first `rotary_dims` entries of the last dimension
/// of `x` `(batch, heads, time, head_dim)`, the rest unchanged; `cos` and `sin`
/// `(batch, 1, time, rotary_dims)` (as `models::rotary::Rotary::tables` builds them).
/// Differentiable in `x`; the tables are constants of the fused node (no gradient flows
/// to them there; the tensor-op fallback differentiates them too).
pub fn rotary(x: &Tensor, cos: &Tensor, sin: &Tensor, rotary_dims: usize) -> Result<Tensor> {
    if fused(CudaKernel::Rotary, &[x, cos, sin]) && fits(x, cos, sin, rotary_dims) {
        return Ok(x.contiguous()?.apply_op3(
            &cos.contiguous()?,
            &sin.contiguous()?,
            Rotary {
                rot: rotary_dims,
                transpose: false,
            },
        )?);
    }
    rotary_composite(x, cos, sin, rotary_dims)
}

/// Whether the fused node takes these shapes: `x` of rank 4, an even `rotary_dims` of at
/// most the head size, tables of exactly `(batch, 1, time, rotary_dims)` (broadcast
/// tables go to the tensor ops).
fn fits(x: &Tensor, cos: &Tensor, sin: &Tensor, rot: usize) -> bool {
    let Ok((b, _, t, d)) = x.dims4() else {
        return false;
    };
    rot > 0 && rot % 2 == 0 && rot <= d && cos.dims() == [b, 1, t, rot] && sin.dims() == cos.dims()
}

/// [`rotary`] from differentiable tensor ops.
fn rotary_composite(x: &Tensor, cos: &Tensor, sin: &Tensor, rot: usize) -> Result<Tensor> {
    let head_dim = x.dim(D::Minus1)?;
    let x_rot = x.narrow(D::Minus1, 0, rot)?;
    let half = rot / 2;
    let x1 = x_rot.narrow(D::Minus1, 0, half)?;
    let x2 = x_rot.narrow(D::Minus1, half, half)?;
    let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
    let out = (x_rot.broadcast_mul(cos)? + rotated.broadcast_mul(sin)?)?;
    if rot == head_dim {
        Ok(out)
    } else {
        let pass = x.narrow(D::Minus1, rot, head_dim - rot)?;
        Ok(Tensor::cat(&[&out, &pass], D::Minus1)?)
    }
}

/// Rotates the first `c.len()` entries of `o` in place with the angles' cosines `c` and
/// sines `s` (half = `c.len() / 2`, `j < half`):
/// forward `o1 = o1 c1 + (-o2) s1`, `o2 = o2 c2 + o1 s2` (the tensor ops' products and
/// sums); `transpose` (the backward) `o1 = o1 c1 + o2 s2`, `o2 = o2 c2 - o1 s1`.
#[inline]
pub(super) fn rotate_half(o: &mut [f32], c: &[f32], s: &[f32], transpose: bool) {
    let half = c.len() / 2;
    for j in 0..half {
        let (x1, x2) = (o[j], o[j + half]);
        if transpose {
            o[j] = x1 * c[j] + x2 * s[j + half];
            o[j + half] = x2 * c[j + half] - x1 * s[j];
        } else {
            o[j] = x1 * c[j] + -x2 * s[j];
            o[j + half] = x2 * c[j + half] + x1 * s[j + half];
        }
    }
}

/// The node `(x, cos, sin)` to the rotated `x`; with `transpose`, the backward (the
/// gradient `g` in place of `x`).
struct Rotary {
    rot: usize,
    transpose: bool,
}

impl Rotary {
    fn label(&self) -> &'static str {
        if self.transpose {
            "fused-rotary-grad"
        } else {
            "fused-rotary"
        }
    }

    /// `(batch, heads, time, head_dim)` of `x` and a check of the tables' element count.
    fn dims(&self, lx: &Layout, table: usize) -> candle_core::Result<(usize, usize, usize, usize)> {
        let (b, h, t, d) = lx.shape().dims4()?;
        if table != b * t * self.rot || self.rot > d || self.rot % 2 != 0 {
            candle_core::bail!(
                "{}: tables of {table} values for x {:?} and {} rotated dimensions",
                self.label(),
                lx.shape().dims(),
                self.rot
            );
        }
        Ok((b, h, t, d))
    }
}

impl CustomOp3 for Rotary {
    fn name(&self) -> &'static str {
        self.label()
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
        let (x, cos, sin) = (f32_slice(s1, l1)?, f32_slice(s2, l2)?, f32_slice(s3, l3)?);
        self.dims(l1, sin.len())?;
        let (_, h, t, d) = self.dims(l1, cos.len())?;
        let rot = self.rot;
        let mut out = vec![0f32; x.len()];
        for_each_row(&mut out, d, |r, o| {
            // Row r = (bi, hi, ti) of x; the tables' row (bi, ti).
            let at = ((r / (h * t)) * t + r % t) * rot;
            o.copy_from_slice(&x[r * d..(r + 1) * d]);
            rotate_half(o, &cos[at..at + rot], &sin[at..at + rot], self.transpose);
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
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        use super::cuda::{contiguous, elementwise, int, kernel_name, ROTARY};
        use candle_core::backend::BackendStorage;
        use candle_core::cuda_backend::cudarc::driver::{
            CudaSlice, DeviceRepr, PushKernelArg, ValidAsZeroBits,
        };
        use candle_core::cuda_backend::{CudaDevice, Map3, WrapErr};
        use candle_core::WithDType;

        struct Launch<'a>(&'a Rotary);
        impl Map3 for Launch<'_> {
            fn f<T: DeviceRepr + WithDType + ValidAsZeroBits>(
                &self,
                x: &CudaSlice<T>,
                lx: &Layout,
                cos: &CudaSlice<T>,
                lc: &Layout,
                sin: &CudaSlice<T>,
                ls: &Layout,
                dev: &CudaDevice,
            ) -> candle_core::Result<CudaSlice<T>> {
                let op = self.0;
                let name = op.label();
                if lc.shape() != ls.shape() {
                    candle_core::bail!("{name}: cos {:?} but sin {:?}", lc.shape(), ls.shape());
                }
                let (_, h, t, d) = op.dims(lx, lc.shape().elem_count())?;
                let (x, cos, sin) = (
                    contiguous(name, x, lx)?,
                    contiguous(name, cos, lc)?,
                    contiguous(name, sin, ls)?,
                );
                let func = dev.get_or_load_custom_func(
                    &kernel_name::<T>("rotary"),
                    ROTARY.name,
                    ROTARY.ptx,
                )?;
                let n = lx.shape().elem_count();
                // SAFETY: every element is written by the kernel.
                let out = unsafe { dev.alloc::<T>(n)? };
                let (h, t, d, rot) = (
                    int("rotary heads", h)?,
                    int("rotary time", t)?,
                    int("rotary head size", d)?,
                    int("rotary dims", op.rot)?,
                );
                let transpose = i32::from(op.transpose);
                // Argument order mirrored in ops/emulation/launches.rs.
                let mut b = func.builder();
                b.arg(&x).arg(&cos).arg(&sin).arg(&out).arg(&n);
                b.arg(&h).arg(&t).arg(&d).arg(&rot).arg(&transpose);
                // SAFETY: the kernel reads n values of x and b t rot of each table
                // (checked in `dims`), and writes n.
                unsafe { b.launch(elementwise(n)) }.w()?;
                Ok(out)
            }
        }
        let dev = s1.device().clone();
        let slice = Launch(self).map(&s1.slice, l1, &s2.slice, l2, &s3.slice, l3, &dev)?;
        Ok((
            candle_core::CudaStorage { slice, device: dev },
            l1.shape().clone(),
        ))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad_res.contiguous()?.apply_op3_no_bwd(
            cos,
            sin,
            &Rotary {
                rot: self.rot,
                transpose: true,
            },
        )?;
        Ok((Some(grad), None, None))
    }
}

#[cfg(test)]
mod tests {
    use super::super::kernel::tests::assert_same_with_grads;
    use super::*;
    use candle_core::{DType, Device};

    /// Tables `(b, 1, t, rot)` as `Rotary::tables` builds them (the angles repeated over
    /// both halves), at positions that differ per batch row.
    fn tables(b: usize, t: usize, rot: usize) -> Result<(Tensor, Tensor)> {
        let half = rot / 2;
        let angle: Vec<f32> = (0..b * t * rot)
            .map(|i| {
                let (bi, ti, j) = (i / (t * rot), (i / rot) % t, i % rot);
                (bi + 2 * ti) as f32 / 10f32.powf((j % half) as f32 / half as f32)
            })
            .collect();
        let angle = Tensor::from_vec(angle, (b, 1, t, rot), &Device::Cpu)?;
        Ok((angle.cos()?, angle.sin()?))
    }

    #[test]
    fn fused_rotary_matches_tensor_ops_with_gradients() -> Result<()> {
        let (b, h, t) = (2, 3, 5);
        for (d, rot) in [(8, 8), (12, 4), (10, 6)] {
            let (cos, sin) = tables(b, t, rot)?;
            assert_same_with_grads(
                &[&[b, h, t, d]],
                |x| rotary(&x[0], &cos, &sin, rot),
                |x| rotary_composite(&x[0], &cos, &sin, rot),
            )?;
            // A transposed (non-contiguous) input, as the models' split heads are.
            assert_same_with_grads(
                &[&[b, t, h, d]],
                |x| rotary(&x[0].transpose(1, 2)?, &cos, &sin, rot),
                |x| rotary_composite(&x[0].transpose(1, 2)?, &cos, &sin, rot),
            )?;
        }
        Ok(())
    }

    #[test]
    fn fused_rotary_forward_is_bit_identical_to_tensor_ops() -> Result<()> {
        let (b, h, t, d, rot) = (2, 2, 7, 16, 8);
        let (cos, sin) = tables(b, t, rot)?;
        let x: Vec<f32> = (0..b * h * t * d)
            .map(|i| ((i * 7919) % 113) as f32 * 0.037 - 2.0)
            .collect();
        let x = Tensor::from_vec(x, (b, h, t, d), &Device::Cpu)?;
        let (a, c) = (
            rotary(&x, &cos, &sin, rot)?,
            rotary_composite(&x, &cos, &sin, rot)?,
        );
        let (a, c) = (
            a.flatten_all()?.to_vec1::<f32>()?,
            c.flatten_all()?.to_vec1::<f32>()?,
        );
        assert!(a.iter().zip(&c).all(|(p, q)| p.to_bits() == q.to_bits()));
        Ok(())
    }

    #[test]
    fn other_shapes_and_dtypes_take_the_tensor_ops() -> Result<()> {
        let (b, h, t, d, rot) = (1, 2, 3, 8, 4);
        let (cos, sin) = tables(b, t, rot)?;
        let x = Tensor::ones((b, h, t, d), DType::F32, &Device::Cpu)?;
        // Broadcast tables (batch 1 for batch 2) and f64: not the node, same function.
        let x2 = Tensor::cat(&[&x, &x], 0)?;
        let y = rotary(&x2, &cos, &sin, rot)?;
        assert_eq!(y.dims(), [2, h, t, d]);
        let y64 = rotary(
            &x.to_dtype(DType::F64)?,
            &cos.to_dtype(DType::F64)?,
            &sin.to_dtype(DType::F64)?,
            rot,
        )?;
        let y32 = rotary(&x, &cos, &sin, rot)?;
        let diff = (y64.to_dtype(DType::F32)? - &y32)?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        assert!(diff < 1e-6, "f64 and f32 differ by {diff}");
        assert!(!fits(&x, &cos, &sin, 3));
        assert!(!fits(&x, &cos, &sin, 10));
        Ok(())
    }
}
