//! The CUDA side of the norms' backward ops and of LayerNorm's forward (the `cuda`
//! feature): launches of `kernels/norm.cu` (which says where each kernel rounds for
//! bf16 and which CPU function it mirrors), and RMSNorm's forward.

use super::check_width;
use crate::ops::cuda::{contiguous, int, kernel_name, per_row, NORM};
use crate::ops::kernel::rows_width;
use crate::ops::launch;
use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{
    CudaSlice, DeviceRepr, LaunchConfig, PushKernelArg, ValidAsZeroBits,
};
use candle_core::cuda_backend::{CudaDevice, Map2, Map3, WrapErr};
use candle_core::{CudaStorage, Layout, Shape, WithDType};

/// Which normalisation a backward launch is for.
#[derive(Debug, Clone, Copy)]
pub(super) enum Norm {
    /// RMSNorm: one parameter gradient (the weight's).
    Rms,
    /// LayerNorm: two (weight, bias).
    Layer,
}

impl Norm {
    /// Parameter gradients below the input's gradient in the output block.
    fn params(self) -> usize {
        match self {
            Norm::Rms => 1,
            Norm::Layer => 2,
        }
    }

    /// The kernel computing the input's gradient and the row statistics.
    fn rows_kernel(self) -> &'static str {
        match self {
            Norm::Rms => "rms_norm_bwd_rows",
            Norm::Layer => "layer_norm_bwd_rows",
        }
    }

    /// The op's name in errors.
    fn op(self) -> &'static str {
        match self {
            Norm::Rms => "rms_norm backward",
            Norm::Layer => "layer_norm backward",
        }
    }
}

/// RMSNorm's forward `(x, weight)` on CUDA ([`row_norm_fwd`] of `rms_norm_fwd`).
pub(super) fn rms_norm_fwd(
    eps: f32,
    s1: &CudaStorage,
    l1: &Layout,
    s2: &CudaStorage,
    l2: &Layout,
) -> candle_core::Result<(CudaStorage, Shape)> {
    struct Fwd(f32);
    impl Map2 for Fwd {
        fn f<T: DeviceRepr + WithDType + ValidAsZeroBits>(
            &self,
            x: &CudaSlice<T>,
            lx: &Layout,
            w: &CudaSlice<T>,
            lw: &Layout,
            dev: &CudaDevice,
        ) -> candle_core::Result<CudaSlice<T>> {
            row_norm_fwd("rms_norm", self.0, (x, lx), &[("rms_norm", w, lw)], dev)
        }
    }
    let dev = s1.device().clone();
    let slice = Fwd(eps).map(&s1.slice, l1, &s2.slice, l2, &dev)?;
    Ok((CudaStorage { slice, device: dev }, l1.shape().clone()))
}

/// LayerNorm's forward `(x, weight, bias)` on CUDA ([`row_norm_fwd`] of
/// `layer_norm_fwd`).
#[allow(clippy::too_many_arguments)]
pub(super) fn layer_norm_fwd(
    eps: f32,
    s1: &CudaStorage,
    l1: &Layout,
    s2: &CudaStorage,
    l2: &Layout,
    s3: &CudaStorage,
    l3: &Layout,
) -> candle_core::Result<(CudaStorage, Shape)> {
    struct Fwd(f32);
    impl Map3 for Fwd {
        fn f<T: DeviceRepr + WithDType + ValidAsZeroBits>(
            &self,
            x: &CudaSlice<T>,
            lx: &Layout,
            w: &CudaSlice<T>,
            lw: &Layout,
            b: &CudaSlice<T>,
            lb: &Layout,
            dev: &CudaDevice,
        ) -> candle_core::Result<CudaSlice<T>> {
            let params = [("layer_norm weight", w, lw), ("layer_norm bias", b, lb)];
            row_norm_fwd("layer_norm", self.0, (x, lx), &params, dev)
        }
    }
    let dev = s1.device().clone();
    let slice = Fwd(eps).map(&s1.slice, l1, &s2.slice, l2, &s3.slice, l3, &dev)?;
    Ok((CudaStorage { slice, device: dev }, l1.shape().clone()))
}

/// The forward launch both norms share: `<op>_fwd(x, params.., out, d, eps)`, one block
/// per row ([`per_row`]). `params` are the per-column parameters (weight, bias) with
/// their names in width errors.
fn row_norm_fwd<T: DeviceRepr + WithDType + ValidAsZeroBits>(
    op: &str,
    eps: f32,
    (x, lx): (&CudaSlice<T>, &Layout),
    params: &[(&str, &CudaSlice<T>, &Layout)],
    dev: &CudaDevice,
) -> candle_core::Result<CudaSlice<T>> {
    let (rows, d) = rows_width(lx);
    for (name, _, l) in params {
        check_width(name, l.shape().elem_count(), d)?;
    }
    if rows * d == 0 {
        return dev.alloc_zeros::<T>(0);
    }
    let x = contiguous(op, x, lx)?;
    let params = params
        .iter()
        .map(|(_, p, l)| contiguous(op, p, l))
        .collect::<candle_core::Result<Vec<_>>>()?;
    let func =
        dev.get_or_load_custom_func(&kernel_name::<T>(&format!("{op}_fwd")), NORM.name, NORM.ptx)?;
    // SAFETY: every element is written by the kernel.
    let mut out = unsafe { dev.alloc::<T>(rows * d)? };
    let width = int(&format!("{op} width"), d)?;
    {
        // Argument order mirrored in ops/emulation/launches.rs.
        let mut builder = func.builder();
        builder.arg(&x);
        for p in &params {
            builder.arg(p);
        }
        builder.arg(&mut out).arg(&width).arg(&eps);
        // SAFETY: the kernel reads rows x d values of x and d of each parameter, writes
        // rows x d.
        unsafe { builder.launch(per_row(rows, d)?) }.w()?;
    }
    Ok(out)
}

/// A norm's backward `(x, weight, g)` on CUDA: the `(rows + k, d)` block
/// `[dx; dweight (; dbias)]` of the CPU op. Three launches:
/// 1. `<norm>_bwd_rows`, one block per row ([`per_row`]): dx and each row's
///    `(mean, 1 / rms or std)` into an f32 buffer (rows x 2);
/// 2. `norm_param_partials`: f32 column sums of the parameter gradients over chunks
///    of rows ([`launch::norm_param_chunks`]) (see the kernel for the block shape);
/// 3. `norm_param_finish`: the chunks added in order, rounded once to the dtype.
#[allow(clippy::too_many_arguments)]
pub(super) fn norm_bwd(
    norm: Norm,
    eps: f32,
    s1: &CudaStorage,
    l1: &Layout,
    s2: &CudaStorage,
    l2: &Layout,
    s3: &CudaStorage,
    l3: &Layout,
) -> candle_core::Result<(CudaStorage, Shape)> {
    struct Bwd(Norm, f32);
    impl Map3 for Bwd {
        fn f<T: DeviceRepr + WithDType + ValidAsZeroBits>(
            &self,
            x: &CudaSlice<T>,
            lx: &Layout,
            w: &CudaSlice<T>,
            lw: &Layout,
            g: &CudaSlice<T>,
            lg: &Layout,
            dev: &CudaDevice,
        ) -> candle_core::Result<CudaSlice<T>> {
            let (norm, op) = (self.0, self.0.op());
            let (rows, d) = rows_width(lx);
            let k = norm.params();
            check_width(op, lw.shape().elem_count(), d)?;
            if lg.shape().elem_count() != rows * d {
                candle_core::bail!(
                    "{op}: a gradient of {:?} for x of {:?}",
                    lg.dims(),
                    lx.dims()
                );
            }
            if rows * d == 0 {
                return dev.alloc_zeros::<T>((rows + k) * d);
            }
            let (x, w, g) = (
                contiguous(op, x, lx)?,
                contiguous(op, w, lw)?,
                contiguous(op, g, lg)?,
            );
            let load = |name: &str| {
                dev.get_or_load_custom_func(&kernel_name::<T>(name), NORM.name, NORM.ptx)
            };
            // SAFETY (all three allocations): every element is written by the kernels
            // below (dx rows by launch 1, the parameter rows by launch 3, stats by launch
            // 1, every (chunk, column) of partial by launch 2).
            let mut out = unsafe { dev.alloc::<T>((rows + k) * d)? };
            let mut stats = unsafe { dev.alloc::<f32>(rows * 2)? };
            let (per_chunk, chunks) = launch::norm_param_chunks(rows);
            let mut partial = unsafe { dev.alloc::<f32>(chunks * k * d)? };
            let (width, eps) = (int("norm width", d)?, self.1);
            {
                let func = load(norm.rows_kernel())?;
                let mut dx = out.slice_mut(0..rows * d);
                // Argument order mirrored in ops/emulation/launches.rs.
                let mut b = func.builder();
                b.arg(&x)
                    .arg(&w)
                    .arg(&g)
                    .arg(&mut dx)
                    .arg(&mut stats)
                    .arg(&width)
                    .arg(&eps);
                // SAFETY: reads rows x d of x and g, d of w; writes rows x d of dx and
                // 2 rows of stats.
                unsafe { b.launch(per_row(rows, d)?) }.w()?;
            }
            let (n_rows, n_k) = (int("norm rows", rows)?, int("norm parameters", k)?);
            let (n_chunk, n_chunks) = (int("rows per chunk", per_chunk)?, int("chunks", chunks)?);
            {
                let func = load("norm_param_partials")?;
                let cfg = LaunchConfig::from(launch::norm_param_partials(d, chunks));
                // Argument order mirrored in ops/emulation/launches.rs.
                let mut b = func.builder();
                b.arg(&x)
                    .arg(&g)
                    .arg(&stats)
                    .arg(&mut partial)
                    .arg(&n_rows)
                    .arg(&width)
                    .arg(&n_k)
                    .arg(&n_chunk);
                // SAFETY: reads rows x d of x and g, 2 rows of stats; writes chunks x k d
                // of partial (chunks fit a grid's y by the choice of per_chunk).
                unsafe { b.launch(cfg) }.w()?;
            }
            {
                let func = load("norm_param_finish")?;
                let kd = int("norm parameter width", k * d)?;
                let cfg = LaunchConfig::from(launch::norm_param_finish(k * d));
                let mut params = out.slice_mut(rows * d..);
                // Argument order mirrored in ops/emulation/launches.rs.
                let mut b = func.builder();
                b.arg(&partial).arg(&mut params).arg(&n_chunks).arg(&kd);
                // SAFETY: reads chunks x k d of partial, writes the last k x d of out.
                unsafe { b.launch(cfg) }.w()?;
            }
            Ok(out)
        }
    }
    let dev = s1.device().clone();
    let (rows, d) = rows_width(l1);
    let slice = Bwd(norm, eps).map(&s1.slice, l1, &s2.slice, l2, &s3.slice, l3, &dev)?;
    Ok((
        CudaStorage { slice, device: dev },
        Shape::from((rows + norm.params(), d)),
    ))
}
