//! The AdamW update of one f32 parameter tensor on the CPU in a single pass (the same
//! arithmetic, in the same order, as the tensor-op update of
//! [`crate::stages::optim::AdamW`], which takes a dozen full-size passes, each
//! allocating). With the `cuda` feature, the same update runs on a CUDA device in place
//! ([`adamw_update_cuda`], `kernels/adamw.cu`) with the global gradient norm
//! ([`global_norm_cuda`]), when [`CudaKernel::AdamW`](super::CudaKernel::AdamW) is on.

#[cfg(feature = "cuda")]
mod cuda;

/// Without the `cuda` feature no tensor is on a CUDA device: nothing to update.
#[cfg(not(feature = "cuda"))]
mod cuda {
    use super::AdamWStep;
    use crate::Result;
    use candle_core::Tensor;

    pub(super) fn update(
        _theta: &Tensor,
        _m: &Tensor,
        _v: &Tensor,
        _g: &Tensor,
        _weight: Option<&Tensor>,
        _k: &AdamWStep,
    ) -> Result<bool> {
        Ok(false)
    }

    pub(super) fn global_norm(_grads: &[&Tensor]) -> Result<Option<f64>> {
        Ok(None)
    }
}

use super::kernel::{parallel, with_avx2};
use crate::Result;
use candle_core::{Storage, Tensor};
use rayon::prelude::*;

/// Per-step constants of the update (all applied in f32, as tensor ops with f64
/// scalars apply them).
#[derive(Debug, Clone, Copy)]
pub struct AdamWStep {
    /// Gradient scale from clipping (1 = none).
    pub clip: f64,
    /// First- and second-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Bias corrections `1 / (1 - beta^t)`.
    pub scale_m: f64,
    /// The same for the second moment.
    pub scale_v: f64,
    /// Denominator offset.
    pub eps: f64,
    /// Learning rate.
    pub lr: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
}

/// New `(theta, m, v)` from `theta`, `m`, `v` and the gradient `g` (same shape, f32),
/// when all four are f32 on the CPU; `None` otherwise (the caller falls back to tensor
/// ops).
pub fn adamw_update_cpu(
    theta: &Tensor,
    m: &Tensor,
    v: &Tensor,
    g: &Tensor,
    k: &AdamWStep,
) -> Result<Option<(Tensor, Tensor, Tensor)>> {
    let all = [theta, m, v, g];
    if !(super::kernel::cpu_f32(&all) && all.iter().all(|t| t.shape() == theta.shape())) {
        return Ok(None);
    }
    let all: Vec<Tensor> = all
        .iter()
        .map(|t| t.contiguous())
        .collect::<candle_core::Result<_>>()?;
    let guards: Vec<_> = all.iter().map(|t| t.storage_and_layout()).collect();
    let mut slices = Vec::with_capacity(4);
    for (storage, layout) in &guards {
        let Storage::Cpu(cpu) = &**storage else {
            return Ok(None);
        };
        let data = cpu.as_slice::<f32>()?;
        let Some((a, b)) = layout.contiguous_offsets() else {
            return Ok(None);
        };
        slices.push(&data[a..b]);
    }
    let (th, m0, v0, g0) = (slices[0], slices[1], slices[2], slices[3]);
    let n = th.len();
    let (mut th1, mut m1, mut v1) = (vec![0f32; n], vec![0f32; n], vec![0f32; n]);
    let consts = Consts::new(k);
    const CHUNK: usize = 1 << 14;
    let update = |c: usize, (th1, (m1, v1)): (&mut [f32], (&mut [f32], &mut [f32]))| {
        let r = c * CHUNK..c * CHUNK + th1.len();
        let src = [&th[r.clone()], &m0[r.clone()], &v0[r.clone()], &g0[r]];
        update_chunk(src, [th1, m1, v1], &consts);
    };
    if parallel(n) {
        th1.par_chunks_mut(CHUNK)
            .zip(m1.par_chunks_mut(CHUNK).zip(v1.par_chunks_mut(CHUNK)))
            .enumerate()
            .for_each(|(c, t)| update(c, t));
    } else {
        th1.chunks_mut(CHUNK)
            .zip(m1.chunks_mut(CHUNK).zip(v1.chunks_mut(CHUNK)))
            .enumerate()
            .for_each(|(c, t)| update(c, t));
    }
    drop(guards);
    let (shape, dev) = (theta.shape().clone(), theta.device());
    Ok(Some((
        Tensor::from_vec(th1, shape.clone(), dev)?,
        Tensor::from_vec(m1, shape.clone(), dev)?,
        Tensor::from_vec(v1, shape, dev)?,
    )))
}

/// The update's constants, in f32 (see [`AdamWStep`]). `repr(C)`: the CUDA kernel takes
/// this struct by value, laid out as `kernels/adamw.cu`'s `AdamWConsts`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(super) struct Consts {
    clip: f32,
    b1: f32,
    b2: f32,
    c1: f32,
    c2: f32,
    sm: f32,
    sv: f32,
    eps: f32,
    lr: f32,
    decay: f32,
    /// 1 when `clip < 1` (the gradient is multiplied by `clip`), else 0: an `i32`, the
    /// kernel's `int`.
    scaled: i32,
}

impl Consts {
    /// The constants of step `k`, each rounded once from f64 (as candle's tensor ops
    /// with f64 scalars round them).
    fn new(k: &AdamWStep) -> Self {
        let f = |x: f64| x as f32;
        Self {
            clip: f(k.clip),
            b1: f(k.beta1),
            b2: f(k.beta2),
            c1: f(1.0 - k.beta1),
            c2: f(1.0 - k.beta2),
            sm: f(k.scale_m),
            sv: f(k.scale_v),
            eps: f(k.eps),
            lr: f(k.lr),
            decay: f(1.0 - k.lr * k.weight_decay),
            scaled: i32::from(k.clip < 1.0),
        }
    }

    /// The bytes of `Consts::new(k)` as the kernel receives its `AdamWConsts` (the
    /// `repr(C)` layout: ten f32 fields, then the i32), for the CPU emulation of the
    /// kernels (`ops::emulation`).
    #[cfg(test)]
    pub(super) fn kernel_bytes(k: &AdamWStep) -> Vec<u8> {
        let c = Self::new(k);
        let floats = [
            c.clip, c.b1, c.b2, c.c1, c.c2, c.sm, c.sv, c.eps, c.lr, c.decay,
        ];
        let mut bytes: Vec<u8> = floats.iter().flat_map(|f| f.to_ne_bytes()).collect();
        bytes.extend(c.scaled.to_ne_bytes());
        debug_assert_eq!(bytes.len(), std::mem::size_of::<Self>());
        bytes
    }
}

/// The AdamW update of one parameter on CUDA, in place: one kernel
/// (`kernels/adamw.cu`, `adamw_step`, the arithmetic of [`adamw_update_cpu`] in the same
/// order, so the same bits) reads the f32 gradient `g` and overwrites the f32 `theta`
/// (the master copy, or the f32 weight of an f32 model), both f32 moments `m`, `v`, and,
/// when `weight` is given (the bf16 variable of a master), stores the new theta rounded
/// to nearest even into it. No allocation.
///
/// Contract: returns `Ok(true)` when it updated; `Ok(false)`, touching nothing, unless
/// the `cuda` feature is built, [`CudaKernel::AdamW`](super::CudaKernel::AdamW) is
/// switched on and `theta`, `m`, `v`, `g` are contiguous f32 tensors of one shape on
/// one CUDA device (and `weight` a contiguous bf16 tensor of that shape there): the
/// caller then takes the tensor-op path. An error when the tensors share storage (each
/// written one must be its own buffer) or a launch fails. Writes go to the tensors'
/// storages, so every tensor sharing them (a model's clone of the variable) sees the new
/// values, as after `Var::set`.
pub fn adamw_update_cuda(
    theta: &Tensor,
    m: &Tensor,
    v: &Tensor,
    g: &Tensor,
    weight: Option<&Tensor>,
    k: &AdamWStep,
) -> Result<bool> {
    cuda::update(theta, m, v, g, weight, k)
}

/// The global L2 norm of f32 gradients on one CUDA device from `kernels/adamw.cu`: a
/// fixed two-stage sum of squares (256 partial sums per gradient, then one block adding
/// them all: no atomics, the same result on every run) and one f32 copied to the host.
/// `Ok(None)` unless [`CudaKernel::AdamW`](super::CudaKernel::AdamW) is on and every
/// gradient is f32 on one CUDA device (or without the `cuda` feature): the caller
/// then sums with tensor ops.
pub fn global_norm_cuda(grads: &[&Tensor]) -> Result<Option<f64>> {
    cuda::global_norm(grads)
}

/// `(theta, m, v)` of a chunk from its `[theta, m, v, g]`. Indexed over slices of one
/// length, so the loop has no bounds checks and vectorises (square roots and divisions
/// eight at a time with AVX2; element by element it took 8% of a training step).
#[inline(always)]
fn update_chunk_impl(src: [&[f32]; 4], out: [&mut [f32]; 3], k: &Consts) {
    let [th1, m1, v1] = out;
    let n = th1.len();
    let (m1, v1) = (&mut m1[..n], &mut v1[..n]);
    let [th, m0, v0, g0] = src.map(|s| &s[..n]);
    let scaled = k.scaled != 0;
    for i in 0..n {
        let g = if scaled { g0[i] * k.clip } else { g0[i] };
        let m = m0[i] * k.b1 + g * k.c1;
        let v = v0[i] * k.b2 + (g * g) * k.c2;
        let update = (m * k.sm) / ((v * k.sv).sqrt() + k.eps);
        th1[i] = th[i] * k.decay - update * k.lr;
        m1[i] = m;
        v1[i] = v;
    }
}

with_avx2! {
    /// One chunk of the update (see [`update_chunk_impl`]).
    fn update_chunk / update_chunk_avx2 (src: [&[f32]; 4], out: [&mut [f32]; 3], k: &Consts) -> () = update_chunk_impl
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn matches_the_tensor_op_update() -> Result<()> {
        let dev = Device::Cpu;
        let n = 40_000;
        let mk = |a: usize, s: f32, o: f32| {
            Tensor::from_vec(
                (0..n)
                    .map(|i| ((i * a) % 97) as f32 * s + o)
                    .collect::<Vec<_>>(),
                (200, 200),
                &dev,
            )
        };
        let (theta, m, g) = (
            mk(31, 0.01, -0.5)?,
            mk(17, 0.001, -0.05)?,
            mk(7, 0.02, -1.0)?,
        );
        let v = mk(13, 0.0001, 0.0)?;
        let k = AdamWStep {
            clip: 0.3,
            beta1: 0.9,
            beta2: 0.999,
            scale_m: 1.0 / (1.0 - 0.9f64.powi(3)),
            scale_v: 1.0 / (1.0 - 0.999f64.powi(3)),
            eps: 1e-8,
            lr: 1e-3,
            weight_decay: 0.01,
        };
        let (t1, m1, v1) = adamw_update_cpu(&theta, &m, &v, &g, &k)?.expect("cpu f32");
        let gs = (&g * k.clip)?;
        let m2 = ((&m * k.beta1)? + (&gs * (1.0 - k.beta1))?)?;
        let v2 = ((&v * k.beta2)? + (gs.sqr()? * (1.0 - k.beta2))?)?;
        let up = ((&m2 * k.scale_m)? / ((&v2 * k.scale_v)?.sqrt()? + k.eps)?)?;
        let t2 = ((&theta * (1.0 - k.lr * k.weight_decay))? - (up * k.lr)?)?;
        for (a, b) in [(&t1, &t2), (&m1, &m2), (&v1, &v2)] {
            let d = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()?;
            let s = b.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(d <= 1e-6 * s, "differs by {d} (scale {s})");
        }
        let bf = theta.to_dtype(DType::BF16)?;
        assert!(adamw_update_cpu(&bf, &m, &v, &g, &k)?.is_none());
        // The CUDA update and norm decline CPU tensors, touching nothing.
        let before = theta.flatten_all()?.to_vec1::<f32>()?;
        assert!(!adamw_update_cuda(&theta, &m, &v, &g, None, &k)?);
        assert_eq!(theta.flatten_all()?.to_vec1::<f32>()?, before);
        assert_eq!(global_norm_cuda(&[&g])?, None);
        Ok(())
    }
}
