//! The AdamW update in place and the global gradient norm on CUDA (the `cuda` feature):
//! launches of `kernels/adamw.cu`.
//!
//! ## How the written buffers are reached (the safety argument)
//! One kernel writes up to four tensors' storages (theta, m, v and the bf16 weight),
//! while candle's in-place ops hand out one mutable storage per call
//! (`Tensor::inplace_op1`). So the update nests four `inplace_op1` calls (m, then v,
//! then theta, then the weight), each of which takes its tensor's storage write lock and
//! passes `&mut CudaStorage` to the next closure; the innermost closure holds a `&mut`
//! to every written buffer at once and launches. The gradient is read under its read
//! lock (`Tensor::storage_and_layout`). So:
//! - no unsafe code reaches a buffer: the device pointers come from cudarc's
//!   `CudaViewMut` (`DevicePtrMut`: the launch records a write on each written buffer
//!   when event tracking is on) and `CudaView` (a read) through candle's public API;
//! - no other tensor can read or write those storages during the launch call (the locks
//!   are held), and the stream orders the kernel after earlier work on them;
//! - the five storages must be distinct (a write lock taken twice on one storage would
//!   deadlock, and aliased `&mut` would be unsound): [`distinct_storages`] checks it
//!   first and the update reports an error otherwise. `AdamW::new` allocates m and v
//!   separately for that reason.

use super::{AdamWStep, Consts};
use crate::ops::cuda::{contiguous, kernel_name, ADAMW};
use crate::ops::launch::{self, NORM_BLOCKS};
use crate::ops::{cuda_kernels, CudaKernel};
use crate::Result;
use candle_core::cuda_backend::cudarc::driver::{
    CudaViewMut, DeviceRepr, LaunchConfig, PushKernelArg,
};
use candle_core::cuda_backend::{CudaStorageSlice, WrapErr};
use candle_core::{CpuStorage, CudaStorage, DType, InplaceOp1, Layout, Storage, Tensor};
use std::cell::RefCell;

// SAFETY: `Consts` is a `repr(C)` struct of f32 and i32 fields, laid out as the
// kernel's `AdamWConsts`.
unsafe impl DeviceRepr for Consts {}

/// See [`super::adamw_update_cuda`].
pub(super) fn update(
    theta: &Tensor,
    m: &Tensor,
    v: &Tensor,
    g: &Tensor,
    weight: Option<&Tensor>,
    k: &AdamWStep,
) -> Result<bool> {
    if !cuda_kernels().contains(CudaKernel::AdamW) || !theta.device().is_cuda() {
        return Ok(false);
    }
    let f32s = [theta, m, v, g];
    let on_one_device = |t: &Tensor| {
        t.device().same_device(theta.device()) && t.shape() == theta.shape() && t.is_contiguous()
    };
    let applies = f32s
        .iter()
        .all(|t| t.dtype() == DType::F32 && on_one_device(t))
        && weight.is_none_or(|w| w.dtype() == DType::BF16 && on_one_device(w));
    if !applies {
        return Ok(false);
    }
    let mut all = f32s.to_vec();
    all.extend(weight);
    if !distinct_storages(&all) {
        return Err(crate::Error::Input(
            "adamw_update_cuda: theta, m, v, the gradient and the weight share storage \
             (each must be its own tensor)"
                .into(),
        ));
    }
    let n = theta.elem_count();
    if n == 0 {
        return Ok(true);
    }
    let cfg = LaunchConfig::from(launch::adamw_update(n).map_err(crate::Error::Input)?);
    let consts = Consts::new(k);
    let (g_storage, g_layout) = g.storage_and_layout();
    let Storage::Cuda(g_cuda) = &*g_storage else {
        return Ok(false);
    };
    let gv = contiguous("adamw gradient", g_cuda.as_cuda_slice::<f32>()?, g_layout)?;
    let n64 = n as u64;
    with_mut(m, |ms, ml| {
        with_mut(v, |vs, vl| {
            with_mut(theta, |ts, tl| {
                let dev = ts.device.clone();
                let (mut tv, mut mv, mut vv) = (
                    f32_view_mut(ts, tl, "theta")?,
                    f32_view_mut(ms, ml, "m")?,
                    f32_view_mut(vs, vl, "v")?,
                );
                let Some(w) = weight else {
                    let func =
                        dev.get_or_load_custom_func("adamw_step_f32", ADAMW.name, ADAMW.ptx)?;
                    // Argument order mirrored in ops/emulation/launches.rs.
                    let mut b = func.builder();
                    b.arg(&mut tv)
                        .arg(&mut mv)
                        .arg(&mut vv)
                        .arg(&gv)
                        .arg(&n64)
                        .arg(&consts);
                    // SAFETY: n elements of theta, m, v and g each (equal shapes, checked).
                    return unsafe { b.launch(cfg) }.w().map(drop);
                };
                with_mut(w, |ws, wl| {
                    let CudaStorageSlice::BF16(slice) = &mut ws.slice else {
                        candle_core::bail!("adamw_update_cuda: the weight is not bf16");
                    };
                    let (a, z) = offsets(wl, "the weight")?;
                    let mut wv = slice.slice_mut(a..z);
                    let func =
                        dev.get_or_load_custom_func("adamw_step_bf16", ADAMW.name, ADAMW.ptx)?;
                    // Argument order mirrored in ops/emulation/launches.rs.
                    let mut b = func.builder();
                    b.arg(&mut tv)
                        .arg(&mut mv)
                        .arg(&mut vv)
                        .arg(&gv)
                        .arg(&mut wv)
                        .arg(&n64)
                        .arg(&consts);
                    // SAFETY: n elements of theta, m, v, g and the weight each.
                    unsafe { b.launch(cfg) }.w().map(drop)
                })
            })
        })
    })?;
    Ok(true)
}

/// See [`super::global_norm_cuda`].
pub(super) fn global_norm(grads: &[&Tensor]) -> Result<Option<f64>> {
    let Some(first) = grads.first() else {
        return Ok(None);
    };
    if !cuda_kernels().contains(CudaKernel::AdamW)
        || !first.device().is_cuda()
        || !grads
            .iter()
            .all(|g| g.dtype() == DType::F32 && g.device().same_device(first.device()))
    {
        return Ok(None);
    }
    let dev = first.device().as_cuda_device()?.clone();
    // SAFETY: every element is written (NORM_BLOCKS per gradient, one by finish).
    let mut partial = unsafe { dev.alloc::<f32>(grads.len() * NORM_BLOCKS)? };
    let mut total = unsafe { dev.alloc::<f32>(1)? };
    let func = dev.get_or_load_custom_func(
        &kernel_name::<f32>("sq_norm_partials"),
        ADAMW.name,
        ADAMW.ptx,
    )?;
    let cfg = LaunchConfig::from(launch::sq_norm_partials());
    for (i, g) in grads.iter().enumerate() {
        let g = g.contiguous()?;
        let (storage, layout) = g.storage_and_layout();
        let Storage::Cuda(cuda) = &*storage else {
            return Ok(None);
        };
        let gv = contiguous("gradient norm", cuda.as_cuda_slice::<f32>()?, layout)?;
        let n = layout.shape().elem_count() as u64;
        let mut out = partial.slice_mut(i * NORM_BLOCKS..(i + 1) * NORM_BLOCKS);
        // Argument order mirrored in ops/emulation/launches.rs.
        let mut b = func.builder();
        b.arg(&gv).arg(&n).arg(&mut out);
        // SAFETY: reads n values of the gradient, writes NORM_BLOCKS partial sums.
        unsafe { b.launch(cfg) }.w()?;
    }
    let count = i32::try_from(grads.len() * NORM_BLOCKS)
        .map_err(|_| crate::Error::Input("gradient norm: too many gradients".into()))?;
    let func =
        dev.get_or_load_custom_func(&kernel_name::<f32>("sq_norm_finish"), ADAMW.name, ADAMW.ptx)?;
    // Argument order mirrored in ops/emulation/launches.rs.
    let mut b = func.builder();
    b.arg(&partial).arg(&count).arg(&mut total);
    let one_block = LaunchConfig::from(launch::sq_norm_finish());
    // SAFETY: reads `count` partial sums, writes one value.
    unsafe { b.launch(one_block) }.w()?;
    let sum = dev.clone_dtoh(&total)?;
    Ok(sum.first().map(|s| f64::from(*s).sqrt()))
}

/// Whether the tensors' storages are pairwise distinct (compared by the address of the
/// storage behind each tensor's lock; the read guards are released before returning).
fn distinct_storages(tensors: &[&Tensor]) -> bool {
    let addresses: Vec<usize> = tensors
        .iter()
        .map(|t| {
            let (storage, _) = t.storage_and_layout();
            std::ptr::from_ref::<Storage>(&*storage).addr()
        })
        .collect();
    addresses
        .iter()
        .enumerate()
        .all(|(i, a)| !addresses[..i].contains(a))
}

/// Runs `f` on `t`'s CUDA storage under its write lock (a candle in-place op).
fn with_mut<F>(t: &Tensor, f: F) -> candle_core::Result<()>
where
    F: FnMut(&mut CudaStorage, &Layout) -> candle_core::Result<()>,
{
    t.inplace_op1(&WithMut(RefCell::new(f)))
}

/// The in-place op of [`with_mut`].
struct WithMut<F>(RefCell<F>);

impl<F> InplaceOp1 for WithMut<F>
where
    F: FnMut(&mut CudaStorage, &Layout) -> candle_core::Result<()>,
{
    fn name(&self) -> &'static str {
        "adamw-cuda-in-place"
    }

    fn cpu_fwd(&self, _: &mut CpuStorage, _: &Layout) -> candle_core::Result<()> {
        candle_core::bail!("adamw_update_cuda: a CPU tensor reached the CUDA update")
    }

    fn cuda_fwd(&self, storage: &mut CudaStorage, layout: &Layout) -> candle_core::Result<()> {
        (self.0.borrow_mut())(storage, layout)
    }
}

/// The contiguous f32 part of a written storage.
fn f32_view_mut<'a>(
    s: &'a mut CudaStorage,
    l: &Layout,
    what: &str,
) -> candle_core::Result<CudaViewMut<'a, f32>> {
    let CudaStorageSlice::F32(slice) = &mut s.slice else {
        candle_core::bail!("adamw_update_cuda: {what} is not f32");
    };
    let (a, b) = offsets(l, what)?;
    Ok(slice.slice_mut(a..b))
}

/// The element range a contiguous layout addresses.
fn offsets(l: &Layout, what: &str) -> candle_core::Result<(usize, usize)> {
    l.contiguous_offsets().ok_or_else(|| {
        candle_core::Error::Msg(format!("adamw_update_cuda: {what} is not contiguous"))
    })
}
