//! What the fused ops' CUDA kernels share (the `cuda` feature only): the PTX that
//! `build.rs` compiles from `experiments/kernels/*.cu`, the kernel names per dtype,
//! contiguous views of candle's device buffers and launch configurations (the shapes
//! themselves are [`super::launch`]'s).
//!
//! An op's `cuda_fwd` loads its kernel with
//! `dev.get_or_load_custom_func(&kernel_name::<T>("rms_norm_fwd"), NORM.name, NORM.ptx)`
//! (candle caches the module per device), pushes its arguments on the function's
//! `builder()` and launches it on the device's stream, as candle-nn's own ops do.
//! Kernels exist for f32 and bf16 storage (`<name>_f32`, `<name>_bf16`); which ops use
//! them is decided by [`super::kernel::fused`] and [`super::CudaKernels`].

use super::launch::{self, LaunchShape};
use candle_core::cuda_backend::cudarc::driver::{CudaSlice, CudaView, LaunchConfig};
use candle_core::{DType, Layout};

/// The generated `pub const <FILE>: &str` of PTX, one per `kernels/*.cu`.
mod ptx {
    include!(concat!(env!("OUT_DIR"), "/ptx.rs"));
}

pub(super) use candle_core::cuda_backend::kernel_name;

/// One compiled kernel file: its PTX and the name candle caches its module under.
pub(super) struct Module {
    /// Module name in the device's cache (unique per file).
    pub name: &'static str,
    /// The PTX text.
    pub ptx: &'static str,
}

/// `kernels/norm.cu`: RMSNorm and LayerNorm.
pub(super) const NORM: Module = Module {
    name: "rmteach-norm",
    ptx: ptx::NORM,
};

/// `kernels/adamw.cu`: the AdamW update in place and the global gradient norm.
pub(super) const ADAMW: Module = Module {
    name: "rmteach-adamw",
    ptx: ptx::ADAMW,
};

// khead's kernels: the output head, the activations, rotary.

/// `kernels/picked_logprob.cu`: the output head's log-softmax + gather, and its backward.
pub(super) const PICKED_LOGPROB: Module = Module {
    name: "rmteach-picked-logprob",
    ptx: ptx::PICKED_LOGPROB,
};

/// `kernels/activation.cu`: exact GELU and SwiGLU, and their backward.
pub(super) const ACTIVATION: Module = Module {
    name: "rmteach-activation",
    ptx: ptx::ACTIVATION,
};

/// `kernels/rotary.cu`: the rotary embedding and its transpose.
pub(super) const ROTARY: Module = Module {
    name: "rmteach-rotary",
    ptx: ptx::ROTARY,
};

impl From<LaunchShape> for LaunchConfig {
    fn from(s: LaunchShape) -> Self {
        LaunchConfig {
            grid_dim: s.grid,
            block_dim: s.block,
            shared_mem_bytes: 0,
        }
    }
}

/// The launch of a grid-stride kernel over `n` elements ([`launch::elementwise`]).
pub(super) fn elementwise(n: usize) -> LaunchConfig {
    launch::elementwise(n).into()
}

/// Whether the kernels exist for `dtype` (f32 and bf16 storage).
pub(super) fn has_kernels_for(dtype: DType) -> bool {
    matches!(dtype, DType::F32 | DType::BF16)
}

/// The contiguous part of `slice` that `layout` addresses, or an error naming `op`.
pub(super) fn contiguous<'a, T>(
    op: &str,
    slice: &'a CudaSlice<T>,
    layout: &Layout,
) -> candle_core::Result<CudaView<'a, T>> {
    match layout.contiguous_offsets() {
        Some((a, b)) => Ok(slice.slice(a..b)),
        None => candle_core::bail!("{op}: non-contiguous CUDA input"),
    }
}

/// One block of [`launch::row_block`] threads per row ([`launch::per_row`]).
pub(super) fn per_row(rows: usize, width: usize) -> candle_core::Result<LaunchConfig> {
    Ok(launch::per_row(rows, width)
        .map_err(candle_core::Error::Msg)?
        .into())
}

/// A row width as the kernels' `int`, or an error.
pub(super) fn int(name: &str, value: usize) -> candle_core::Result<i32> {
    i32::try_from(value)
        .map_err(|_| candle_core::Error::Msg(format!("{name} = {value} exceeds a CUDA int")))
}
