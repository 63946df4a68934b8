//! What the CPU kernels of the fused ops share: contiguous slices of their inputs,
//! row-parallel loops, vectorised row kernels (AVX2 where the CPU has it), and the
//! test that picks the fused path.
#![allow(clippy::needless_range_loop)]

use super::switch::CudaKernel;
use candle_core::{CpuStorage, DType, Layout, Shape, Tensor};
use rayon::prelude::*;
use std::sync::Mutex;

/// Rows per rayon task: enough work to outweigh the scheduling.
const ROWS_PER_TASK: usize = 8;

/// Whether the fused CPU kernels apply to all of `tensors`: on the CPU, in f32 (and
/// not inside [`super::switch::without_cpu_kernels`]).
pub(super) fn cpu_f32(tensors: &[&Tensor]) -> bool {
    super::switch::cpu_kernels_on()
        && tensors
            .iter()
            .all(|t| t.device().is_cpu() && t.dtype() == DType::F32)
}

/// Whether an op's fused node applies to `tensors`: on the CPU in f32 (its CPU kernel),
/// or on one CUDA device in f32 or bf16 when `kernel` is switched on (its CUDA kernel,
/// see [`super::switch`]). Otherwise the op falls back to differentiable tensor ops.
pub(super) fn fused(kernel: CudaKernel, tensors: &[&Tensor]) -> bool {
    cpu_f32(tensors) || cuda_kernel_applies(kernel, tensors)
}

/// Whether `kernel` is on and `tensors` are on one CUDA device in one dtype it has
/// kernels for.
#[cfg(feature = "cuda")]
fn cuda_kernel_applies(kernel: CudaKernel, tensors: &[&Tensor]) -> bool {
    let Some(first) = tensors.first() else {
        return false;
    };
    super::cuda_kernels().contains(kernel)
        && first.device().is_cuda()
        && super::cuda::has_kernels_for(first.dtype())
        && tensors
            .iter()
            .all(|t| t.device().same_device(first.device()) && t.dtype() == first.dtype())
}

/// Without the `cuda` feature no tensor is on a CUDA device.
#[cfg(not(feature = "cuda"))]
fn cuda_kernel_applies(_kernel: CudaKernel, _tensors: &[&Tensor]) -> bool {
    false
}

/// The contiguous f32 slice of a CPU storage under `layout`, or an error.
pub(super) fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    let data = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => Err(candle_core::Error::Msg(
            "fused op: non-contiguous f32 input".into(),
        )),
    }
}

/// The same for u32.
pub(super) fn u32_slice<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [u32]> {
    let data = s.as_slice::<u32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => Err(candle_core::Error::Msg(
            "fused op: non-contiguous u32 input".into(),
        )),
    }
}

/// A result computed outside the graph (by tensor ops: the matrix products) and handed
/// to the node that differentiates it. candle's custom ops must return fresh storage, so
/// the node's forward pass takes the result once (releasing it) and copies it out.
pub(super) struct Precomputed(Mutex<Option<Tensor>>);

impl Precomputed {
    /// Holds `result` for the node's forward pass.
    pub(super) fn new(result: Tensor) -> Self {
        Self(Mutex::new(Some(result)))
    }

    /// The result, once; an error when taken twice.
    fn take_tensor(&self, op: &str) -> candle_core::Result<Tensor> {
        self.0
            .lock()
            .map_err(|_| candle_core::Error::Msg(format!("{op}: poisoned result")))?
            .take()
            .ok_or_else(|| candle_core::Error::Msg(format!("{op}: result already used")))
    }

    /// The result as the node's output storage; an error when taken twice.
    pub(super) fn take(&self, op: &str) -> candle_core::Result<(CpuStorage, Shape)> {
        let t = self.take_tensor(op)?;
        let shape = t.shape().clone();
        Ok((CpuStorage::F32(t.flatten_all()?.to_vec1::<f32>()?), shape))
    }

    /// The result (on a CUDA device) as the node's output storage: a device copy.
    #[cfg(feature = "cuda")]
    pub(super) fn take_cuda(
        &self,
        op: &str,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        use candle_core::backend::BackendStorage;
        let t = self.take_tensor(op)?;
        let (storage, layout) = t.storage_and_layout();
        match &*storage {
            candle_core::Storage::Cuda(s) => Ok((s.try_clone(layout)?, t.shape().clone())),
            _ => candle_core::bail!("{op}: the result is not on a CUDA device"),
        }
    }
}

/// `(rows, width)` of a rank >= 1 layout: the last dimension and the product of the others.
pub(super) fn rows_width(l: &Layout) -> (usize, usize) {
    let dims = l.shape().dims();
    let width = dims.last().copied().unwrap_or(1);
    let rows = dims[..dims.len().saturating_sub(1)].iter().product();
    (rows, width)
}

/// Elements below which a kernel runs on the calling thread: handing a job to rayon's
/// pool from a thread outside it costs a wake-up and a wait (futex round trips, measured
/// 7% of a small model's forward pass with one rayon thread).
const PARALLEL_MIN: usize = 1 << 16;

/// Whether a kernel over `elements` values should use rayon's pool.
pub(super) fn parallel(elements: usize) -> bool {
    elements >= PARALLEL_MIN && rayon::current_num_threads() > 1
}

/// Fills `out` (`rows x width`) row by row, `f(row index, row)`: in parallel when
/// [`parallel`] says so, else on the calling thread.
pub(super) fn for_each_row(out: &mut [f32], width: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    if width == 0 {
        return;
    }
    if !parallel(out.len()) {
        out.chunks_mut(width)
            .enumerate()
            .for_each(|(r, row)| f(r, row));
        return;
    }
    out.par_chunks_mut(width)
        .with_min_len(ROWS_PER_TASK)
        .enumerate()
        .for_each(|(r, row)| f(r, row));
}

/// Column sums over `rows` rows of width `width`: `add_row(r, acc)` adds row `r`'s
/// contribution into `acc`; chunks of rows are summed in parallel, then combined. The
/// parameter gradients of row-wise ops (bias, norm scales) are such sums.
pub(super) fn column_sums(
    rows: usize,
    width: usize,
    add_row: impl Fn(usize, &mut [f32]) + Sync,
) -> Vec<f32> {
    let chunk = 64;
    if !parallel(rows * width) {
        let mut acc = vec![0f32; width];
        (0..rows).for_each(|r| add_row(r, &mut acc));
        return acc;
    }
    (0..rows.div_ceil(chunk))
        .into_par_iter()
        .map(|c| {
            let mut acc = vec![0f32; width];
            for r in c * chunk..((c + 1) * chunk).min(rows) {
                add_row(r, &mut acc);
            }
            acc
        })
        .reduce(
            || vec![0f32; width],
            |mut a, b| {
                for (x, y) in a.iter_mut().zip(&b) {
                    *x += y;
                }
                a
            },
        )
}

/// `exp(x)` in f32 for `x <= 0` (the argument of a stable softmax): within 2 ulp of
/// `f32::exp`, exactly 0 below -87 (where the true value is subnormal or 0), and
/// branch-free, so loops over it vectorise (libm's `expf` is a call per element and
/// takes a slow path on underflow, which masked attention scores hit every time).
#[inline(always)]
pub(super) fn exp_nonpos(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two (Cody-Waite), the first with few mantissa bits.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 * 2^23: adding it rounds to an integer held in the low mantissa bits.
    const SHIFT: f32 = 12_582_912.0;
    let xc = if x < -87.0 { -87.0 } else { x };
    let t = xc * LOG2E + SHIFT;
    let n = t - SHIFT;
    let r = (xc - n * LN2_HI) - n * LN2_LO;
    // Minimax polynomial of (e^r - 1 - r) / r^2 on |r| <= ln2/2 (Cephes' expf).
    let mut p = 1.987_569_2e-4;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    // 2^n from the integer in t's low bits (n >= -126: a normal number).
    let two_n = f32::from_bits((t.to_bits() << 23).wrapping_add(127 << 23));
    if x < -87.0 {
        0.0
    } else {
        e * two_n
    }
}

/// `erf(x)` within one unit in the last place of the correctly rounded f32 value
/// (checked at every f32 of a dense grid of [0, 4], 2% of them one ulp off: libm's
/// `erff` does as well), branch-free so loops over it vectorise (libm's is a call per
/// element: 5% of a GPT-NeoX training step). `x P(x^2) / Q(x^2)` in f64 on |x| <= 4, a
/// rational fit of degrees 6 and 5 with 3e-9 relative error (fitted for this crate by
/// iterated weighted least squares on the relative error); erf(4) rounds to 1 in f32,
/// so the clamp is exact.
#[inline(always)]
pub(super) fn erf_f32(x: f32) -> f32 {
    const P: [f64; 7] = [
        1.128_379_169_519_324_6,
        0.185_143_447_990_015_3,
        0.054_320_195_010_427_584,
        0.003_848_703_910_575_559,
        0.000_380_053_051_685_391_63,
        4.697_493_624_264_415e-6,
        -1.326_114_737_465_467e-8,
    ];
    const Q: [f64; 6] = [
        1.0,
        0.497_412_526_672_306_07,
        0.113_943_647_288_729_73,
        0.015_461_707_261_680_335,
        0.001_307_998_105_804_916_1,
        6.323_323_920_528_773e-5,
    ];
    let x = (x as f64).clamp(-4.0, 4.0);
    let t = x * x;
    let p = P.iter().rev().fold(0.0, |acc, c| acc * t + c);
    let q = Q.iter().rev().fold(0.0, |acc, c| acc * t + c);
    ((x * p / q).clamp(-1.0, 1.0)) as f32
}

/// `1 / (1 + e^-x)` from one [`exp_nonpos`] of `-|x|`, branch-free.
#[inline(always)]
pub(super) fn sigmoid(x: f32) -> f32 {
    let e = exp_nonpos(-x.abs());
    let r = 1.0 / (1.0 + e);
    if x >= 0.0 {
        r
    } else {
        e * r
    }
}

/// Defines `pub(super) fn $name` running `$body` compiled for AVX2 + FMA when the CPU
/// has them (checked at run time; the check is a cached load), else for the baseline.
macro_rules! with_avx2 {
    ($(#[$m:meta])* fn $name:ident / $avx:ident ($($a:ident : $t:ty),*) -> $r:ty = $body:ident) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn $avx($($a: $t),*) -> $r {
            $body($($a),*)
        }
        $(#[$m])*
        pub(super) fn $name($($a: $t),*) -> $r {
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: the CPU has AVX2 and FMA (checked just above).
                return unsafe { $avx($($a),*) };
            }
            $body($($a),*)
        }
    };
}

pub(super) use with_avx2;

/// Lanes of the vectorised row loops (one AVX2 register of f32).
const LANES: usize = 8;

/// The largest entry of a row (NaN-free), in lanes so it vectorises.
#[inline(always)]
fn row_max(row: &[f32]) -> f32 {
    let mut m = [f32::NEG_INFINITY; LANES];
    let chunks = row.chunks_exact(LANES);
    let rem = chunks.remainder();
    for c in chunks {
        for l in 0..LANES {
            m[l] = if c[l] > m[l] { c[l] } else { m[l] };
        }
    }
    rem.iter()
        .chain(&m)
        .copied()
        .fold(f32::NEG_INFINITY, f32::max)
}

/// `sum exp(row - shift)`, in lanes.
#[inline(always)]
fn sum_exp(row: &[f32], shift: f32) -> f32 {
    let mut s = [0f32; LANES];
    let chunks = row.chunks_exact(LANES);
    let rem = chunks.remainder();
    for c in chunks {
        for l in 0..LANES {
            s[l] += exp_nonpos(c[l] - shift);
        }
    }
    rem.iter().map(|x| exp_nonpos(x - shift)).sum::<f32>() + s.iter().sum::<f32>()
}

#[inline(always)]
fn log_sum_exp_impl(row: &[f32]) -> f32 {
    let max = row_max(row);
    max + sum_exp(row, max).ln()
}

with_avx2! {
    /// `ln sum exp(row)`, stably (shifted by the row's maximum).
    fn log_sum_exp / log_sum_exp_avx2 (row: &[f32]) -> f32 = log_sum_exp_impl
}

#[inline(always)]
fn softmax_in_place_impl(row: &mut [f32]) {
    let max = row_max(row);
    row.iter_mut().for_each(|x| *x = exp_nonpos(*x - max));
    let mut s = [0f32; LANES];
    let chunks = row.chunks_exact(LANES);
    let rem: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for l in 0..LANES {
            s[l] += c[l];
        }
    }
    let inv = 1.0 / (rem + s.iter().sum::<f32>());
    row.iter_mut().for_each(|x| *x *= inv);
}

with_avx2! {
    /// Replaces a row by its softmax.
    fn softmax_in_place / softmax_in_place_avx2 (row: &mut [f32]) -> () = softmax_in_place_impl
}

#[inline(always)]
fn scaled_softmax_impl(out: &mut [f32], row: &[f32], shift: f32, scale: f32) {
    for (o, x) in out.iter_mut().zip(row) {
        *o = scale * exp_nonpos((x - shift).min(0.0));
    }
}

with_avx2! {
    /// `out = scale * exp(row - shift)` for a shift at least the row's maximum (a
    /// log-sum-exp).
    fn scaled_exp / scaled_exp_avx2 (out: &mut [f32], row: &[f32], shift: f32, scale: f32) -> () = scaled_softmax_impl
}

#[cfg(test)]
pub(super) mod tests {
    use super::{erf_f32, exp_nonpos, sigmoid};
    use crate::Result;
    use candle_core::{Device, Shape, Tensor, Var};

    /// An additive attention mask `(b, 1, t, t)`: causal, plus the first key of every
    /// row but the first padded (as `models::attention::AttentionInputs` builds it).
    pub(in crate::ops) fn causal_mask_with_pad(b: usize, t: usize) -> Result<Tensor> {
        let mask: Vec<f32> = (0..b * t * t)
            .map(|i| {
                let (bi, qi, kj) = (i / (t * t), (i / t) % t, i % t);
                if kj > qi || (bi >= 1 && kj == 0) {
                    -1e9
                } else {
                    0.0
                }
            })
            .collect();
        Ok(Tensor::from_vec(mask, (b, 1, t, t), &Device::Cpu)?)
    }

    /// Checks that `fused` and `reference` give the same values (f32 rounding) and the
    /// same gradients of a weighted sum of their outputs for every input, on inputs of
    /// the given shapes filled with a fixed, varied pattern.
    pub(in crate::ops) fn assert_same_with_grads(
        shapes: &[&[usize]],
        fused: impl Fn(&[Tensor]) -> Result<Tensor>,
        reference: impl Fn(&[Tensor]) -> Result<Tensor>,
    ) -> Result<()> {
        let dev = Device::Cpu;
        let vars: Vec<Var> = shapes
            .iter()
            .enumerate()
            .map(|(k, s)| {
                let shape = Shape::from(s.to_vec());
                let data: Vec<f32> = (0..shape.elem_count())
                    .map(|i| ((i * 7919 + k * 31) % 113) as f32 * 0.037 - 2.0)
                    .collect();
                Var::from_vec(data, shape, &dev)
            })
            .collect::<candle_core::Result<_>>()?;
        let inputs: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let (a, b) = (fused(&inputs)?, reference(&inputs)?);
        assert_eq!(a.dims(), b.dims());
        let n = a.elem_count();
        let w: Vec<f32> = (0..n).map(|i| ((i * 37) % 11) as f32 - 5.0).collect();
        let w = Tensor::from_vec(w, a.shape(), &dev)?;
        let close = |x: &Tensor, y: &Tensor, what: &str| -> Result<()> {
            let d = (x - y)?.abs()?.max_all()?.to_scalar::<f32>()?;
            let s = y.abs()?.max_all()?.to_scalar::<f32>()?.max(1.0);
            assert!(d <= 2e-5 * s, "{what} differs by {d} (scale {s})");
            Ok(())
        };
        close(&a, &b, "forward")?;
        let (ga, gb) = (
            (&a * &w)?.sum_all()?.backward()?,
            (&b * &w)?.sum_all()?.backward()?,
        );
        for (i, v) in vars.iter().enumerate() {
            let (x, y) = (
                ga.get(v).expect("fused grad"),
                gb.get(v).expect("reference grad"),
            );
            close(x, y, &format!("gradient of input {i}"))?;
        }
        Ok(())
    }

    #[test]
    fn erf_is_within_one_ulp_and_sigmoid_is_accurate() {
        // A dense grid of [-5, 5] plus tiny magnitudes; the reference is libm's f64 erf
        // rounded to f32.
        let grid = (-500_000..=500_000)
            .map(|i| i as f32 * 1e-5)
            .chain((0..120).map(|k| 2f32.powi(-k)));
        for x in grid {
            let (got, want) = (erf_f32(x), libm::erf(x as f64) as f32);
            let ulp = (want.abs().max(f32::MIN_POSITIVE) * f32::EPSILON).max(f32::from_bits(1));
            assert!((got - want).abs() <= ulp, "erf({x}) = {got}, want {want}");
            let s = 1.0 / (1.0 + (-(x as f64) * 8.0).exp());
            let r = sigmoid(x * 8.0) as f64;
            assert!(
                (r - s).abs() <= 5e-7 * s,
                "sigmoid({}) = {r}, want {s}",
                x * 8.0
            );
        }
        assert_eq!((erf_f32(10.0), erf_f32(-10.0)), (1.0, -1.0));
    }

    #[test]
    fn parallel_and_sequential_row_loops_agree() {
        use super::{column_sums, for_each_row, parallel};
        let (rows, width) = (1000, 77);
        let fill = |r: usize, o: &mut [f32]| {
            for (i, v) in o.iter_mut().enumerate() {
                *v = ((r * 31 + i * 7) % 101) as f32 * 0.5;
            }
        };
        let add = |r: usize, acc: &mut [f32]| {
            for (i, a) in acc.iter_mut().enumerate() {
                *a += ((r + i) % 13) as f32;
            }
        };
        let mut seq = vec![0f32; rows * width];
        fill_all(&mut seq, width, &fill);
        let seq_sums: Vec<f32> = (0..width)
            .map(|i| (0..rows).map(|r| ((r + i) % 13) as f32).sum())
            .collect();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        pool.install(|| {
            assert!(parallel(rows * width));
            let mut par = vec![0f32; rows * width];
            for_each_row(&mut par, width, fill);
            assert_eq!(par, seq);
            assert_eq!(column_sums(rows, width, add), seq_sums);
        });
    }

    fn fill_all(out: &mut [f32], width: usize, f: &dyn Fn(usize, &mut [f32])) {
        for (r, row) in out.chunks_mut(width).enumerate() {
            f(r, row);
        }
    }

    #[test]
    fn exp_nonpos_is_within_two_ulp() {
        let mut x = -86.99f32;
        let mut worst = 0f32;
        while x <= 0.0 {
            let (a, b) = (exp_nonpos(x), x.exp());
            worst = worst.max((a - b).abs() / b);
            x += 0.000_731;
        }
        assert!(worst < 2.5e-7, "worst relative error {worst:e}");
        assert_eq!(exp_nonpos(0.0), 1.0);
        assert_eq!(exp_nonpos(-1e9), 0.0);
        assert_eq!(exp_nonpos(f32::NEG_INFINITY), 0.0);
    }
}
