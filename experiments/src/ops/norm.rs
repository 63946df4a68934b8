//! RMSNorm and LayerNorm over the last dimension, each one node with a one-pass
//! backward (the input's gradient row by row, the scale's and shift's as column sums).
//! Off the CPU or in other dtypes: the same normalisation from tensor ops, in f32 and
//! cast back (as transformers computes it for bf16 models). With the `cuda` feature the
//! same nodes run `kernels/norm.cu` on a CUDA device when switched on
//! ([`CudaKernel::RmsNorm`], [`CudaKernel::LayerNorm`]; launches in `norm/cuda.rs`).

#[cfg(feature = "cuda")]
mod cuda;

use super::kernel::{column_sums, f32_slice, for_each_row, fused, rows_width};
use super::switch::CudaKernel;
use crate::Result;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Shape, Tensor, D};

/// `x / sqrt(mean(x^2) + eps) * weight` over the last dimension; differentiable in
/// `x` and `weight` `(d)`.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    if fused(CudaKernel::RmsNorm, &[x, weight]) {
        return Ok(x
            .contiguous()?
            .apply_op2(&weight.contiguous()?, RmsNorm { eps: eps as f32 })?);
    }
    rms_norm_composite(x, weight, eps)
}

/// [`rms_norm`] from differentiable tensor ops.
fn rms_norm_composite(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let dtype = x.dtype();
    let x32 = x.to_dtype(DType::F32)?;
    let ms = x32.sqr()?.mean_keepdim(D::Minus1)?;
    let xn = x32.broadcast_div(&(ms + eps)?.sqrt()?)?.to_dtype(dtype)?;
    Ok(xn.broadcast_mul(weight)?)
}

/// `(x - mean) / sqrt(var + eps) * weight + bias` over the last dimension;
/// differentiable in all three.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    if fused(CudaKernel::LayerNorm, &[x, weight, bias]) {
        return Ok(x.contiguous()?.apply_op3(
            &weight.contiguous()?,
            &bias.contiguous()?,
            LayerNorm { eps: eps as f32 },
        )?);
    }
    layer_norm_composite(x, weight, bias, eps)
}

/// [`layer_norm`] from differentiable tensor ops.
fn layer_norm_composite(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    let dtype = x.dtype();
    let x32 = x.to_dtype(DType::F32)?;
    let xc = x32.broadcast_sub(&x32.mean_keepdim(D::Minus1)?)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    let xn = xc.broadcast_div(&(var + eps)?.sqrt()?)?.to_dtype(dtype)?;
    Ok(xn.broadcast_mul(weight)?.broadcast_add(bias)?)
}

/// `1 / sqrt(mean(x^2) + eps)` of a row.
#[inline]
fn inv_rms(x: &[f32], eps: f32) -> f32 {
    let ss: f32 = x.iter().map(|v| v * v).sum();
    1.0 / (ss / x.len() as f32 + eps).sqrt()
}

/// `(mean, 1 / sqrt(var + eps))` of a row.
#[inline]
fn mean_inv_std(x: &[f32], eps: f32) -> (f32, f32) {
    let n = x.len() as f32;
    let mean = x.iter().sum::<f32>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    (mean, 1.0 / (var + eps).sqrt())
}

/// Checks that a parameter vector matches the row width.
fn check_width(name: &str, len: usize, width: usize) -> candle_core::Result<()> {
    if len == width {
        Ok(())
    } else {
        Err(candle_core::Error::Msg(format!(
            "{name}: a parameter of {len} for rows of {width}"
        )))
    }
}

/// Splits a `(rows + k, d)` gradient block into the input's gradient (shaped as `x`)
/// and `k` parameter gradients `(d)`.
fn split_grads(block: Tensor, x: &Tensor, k: usize) -> candle_core::Result<Vec<Tensor>> {
    let (rows, _) = block.dims2()?;
    let rows = rows - k;
    let mut out = vec![block.narrow(0, 0, rows)?.reshape(x.shape())?];
    for i in 0..k {
        out.push(block.get(rows + i)?);
    }
    Ok(out)
}

/// RMSNorm's forward op.
struct RmsNorm {
    eps: f32,
}

/// RMSNorm's backward op: `(x, weight, g)` to `(rows + 1, d)` = `[dx; dweight]`.
struct RmsNormGrad {
    eps: f32,
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "fused-rms-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, w) = (f32_slice(s1, l1)?, f32_slice(s2, l2)?);
        let (_, d) = rows_width(l1);
        check_width("rms_norm", w.len(), d)?;
        let mut out = vec![0f32; x.len()];
        for_each_row(&mut out, d, |r, o| {
            let x = &x[r * d..(r + 1) * d];
            let inv = inv_rms(x, self.eps);
            for ((o, x), w) in o.iter_mut().zip(x).zip(w) {
                *o = x * inv * w;
            }
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
        cuda::rms_norm_fwd(self.eps, s1, l1, s2, l2)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let g = grad_res.contiguous()?;
        let block = x.apply_op3_no_bwd(w, &g, &RmsNormGrad { eps: self.eps })?;
        let mut grads = split_grads(block, x, 1)?.into_iter();
        Ok((grads.next(), grads.next()))
    }
}

impl CustomOp3 for RmsNormGrad {
    fn name(&self) -> &'static str {
        "fused-rms-norm-grad"
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
        let (x, w, g) = (f32_slice(s1, l1)?, f32_slice(s2, l2)?, f32_slice(s3, l3)?);
        let (rows, d) = rows_width(l1);
        let mut out = vec![0f32; (rows + 1) * d];
        let (dx, dw) = out.split_at_mut(rows * d);
        // y = w x r with r = (mean x^2 + eps)^-1/2:
        // dx = r (g w - x r^2 sum(g w x) / d), dw = sum_rows g x r.
        for_each_row(dx, d, |r, o| {
            let (x, g) = (&x[r * d..(r + 1) * d], &g[r * d..(r + 1) * d]);
            let inv = inv_rms(x, self.eps);
            let dot: f32 = x.iter().zip(g).zip(w).map(|((x, g), w)| g * w * x).sum();
            let c = inv * inv * dot / d as f32;
            for (((o, x), g), w) in o.iter_mut().zip(x).zip(g).zip(w) {
                *o = inv * (g * w - x * c);
            }
        });
        let sums = column_sums(rows, d, |r, acc| {
            let (x, g) = (&x[r * d..(r + 1) * d], &g[r * d..(r + 1) * d]);
            let inv = inv_rms(x, self.eps);
            for ((a, x), g) in acc.iter_mut().zip(x).zip(g) {
                *a += g * x * inv;
            }
        });
        dw.copy_from_slice(&sums);
        Ok((CpuStorage::F32(out), Shape::from((rows + 1, d))))
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
        cuda::norm_bwd(cuda::Norm::Rms, self.eps, s1, l1, s2, l2, s3, l3)
    }
}

/// LayerNorm's forward op.
struct LayerNorm {
    eps: f32,
}

/// LayerNorm's backward op: `(x, weight, g)` to `(rows + 2, d)` = `[dx; dweight; dbias]`.
struct LayerNormGrad {
    eps: f32,
}

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "fused-layer-norm"
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
        let (x, w, b) = (f32_slice(s1, l1)?, f32_slice(s2, l2)?, f32_slice(s3, l3)?);
        let (_, d) = rows_width(l1);
        check_width("layer_norm weight", w.len(), d)?;
        check_width("layer_norm bias", b.len(), d)?;
        let mut out = vec![0f32; x.len()];
        for_each_row(&mut out, d, |r, o| {
            let x = &x[r * d..(r + 1) * d];
            let (mean, inv) = mean_inv_std(x, self.eps);
            for (((o, x), w), b) in o.iter_mut().zip(x).zip(w).zip(b) {
                *o = (x - mean) * inv * w + b;
            }
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
        cuda::layer_norm_fwd(self.eps, s1, l1, s2, l2, s3, l3)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = grad_res.contiguous()?;
        let block = x.apply_op3_no_bwd(w, &g, &LayerNormGrad { eps: self.eps })?;
        let mut grads = split_grads(block, x, 2)?.into_iter();
        Ok((grads.next(), grads.next(), grads.next()))
    }
}

impl CustomOp3 for LayerNormGrad {
    fn name(&self) -> &'static str {
        "fused-layer-norm-grad"
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
        let (x, w, g) = (f32_slice(s1, l1)?, f32_slice(s2, l2)?, f32_slice(s3, l3)?);
        let (rows, d) = rows_width(l1);
        let mut out = vec![0f32; (rows + 2) * d];
        let (dx, params) = out.split_at_mut(rows * d);
        // xh = (x - mean) r, h = g w: dx = r (h - mean(h) - xh mean(h xh)),
        // dw = sum_rows g xh, db = sum_rows g.
        for_each_row(dx, d, |r, o| {
            let (x, g) = (&x[r * d..(r + 1) * d], &g[r * d..(r + 1) * d]);
            let (mean, inv) = mean_inv_std(x, self.eps);
            let (mut sh, mut shx) = (0f32, 0f32);
            for ((x, g), w) in x.iter().zip(g).zip(w) {
                let h = g * w;
                sh += h;
                shx += h * (x - mean) * inv;
            }
            let (mh, mhx) = (sh / d as f32, shx / d as f32);
            for (((o, x), g), w) in o.iter_mut().zip(x).zip(g).zip(w) {
                *o = inv * (g * w - mh - (x - mean) * inv * mhx);
            }
        });
        let sums = column_sums(rows, 2 * d, |r, acc| {
            let (x, g) = (&x[r * d..(r + 1) * d], &g[r * d..(r + 1) * d]);
            let (mean, inv) = mean_inv_std(x, self.eps);
            let (aw, ab) = acc.split_at_mut(d);
            for (((aw, ab), x), g) in aw.iter_mut().zip(ab.iter_mut()).zip(x).zip(g) {
                *aw += g * (x - mean) * inv;
                *ab += g;
            }
        });
        params.copy_from_slice(&sums);
        Ok((CpuStorage::F32(out), Shape::from((rows + 2, d))))
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
        cuda::norm_bwd(cuda::Norm::Layer, self.eps, s1, l1, s2, l2, s3, l3)
    }
}

#[cfg(test)]
mod tests {
    use super::super::kernel::tests::assert_same_with_grads;
    use super::*;

    #[test]
    fn fused_norms_match_tensor_ops() -> Result<()> {
        assert_same_with_grads(
            &[&[3, 5, 24], &[24]],
            |v| rms_norm(&v[0], &v[1], 1e-5),
            |v| rms_norm_composite(&v[0], &v[1], 1e-5),
        )?;
        assert_same_with_grads(
            &[&[2, 7, 33], &[33], &[33]],
            |v| layer_norm(&v[0], &v[1], &v[2], 1e-5),
            |v| layer_norm_composite(&v[0], &v[1], &v[2], 1e-5),
        )
    }
}
