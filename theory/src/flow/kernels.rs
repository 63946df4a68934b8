//! Allocation-free inner loops of the flows: a vectorisable `exp`, the fused tabular
//! KL-regularised right-hand side (fused with the Runge-Kutta stage combination that
//! forms its argument), and the stage combination for other fields.
//!
//! Each kernel is written once (`#[inline(always)]`) and compiled twice: for the
//! baseline x86-64 target and, selected at run time, with AVX2 + FMA. On other
//! architectures only the portable version exists. The two differ in rounding only
//! (`mul_add` is fused with FMA), at the level of one unit in the last place.
//!
//! The indexed four-lane loops are deliberate: they are what LLVM vectorises.
#![allow(clippy::needless_range_loop)]
// The fused stage kernel takes the stage's combination and the field's column.
#![allow(clippy::too_many_arguments)]

/// `exp(x)` for `x <= 0` (the argument of a stable softmax), within about 1 ulp, and 0
/// below -708 (where the true value is subnormal and irrelevant next to the maximum 1).
/// Branch-free, so loops over it vectorise.
#[inline(always)]
pub(crate) fn exp_nonpos<const FMA: bool>(x: f64) -> f64 {
    const LOG2_E: f64 = std::f64::consts::LOG2_E;
    const LN2_HI: f64 = 6.931_471_803_691_238e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    // 1.5 * 2^52: adding it rounds to an integer held in the low mantissa bits.
    const SHIFT: f64 = 6_755_399_441_055_744.0;
    let fma = |a: f64, b: f64, c: f64| if FMA { a.mul_add(b, c) } else { a * b + c };
    let xc = if x < -708.0 { -708.0 } else { x };
    let t = fma(xc, LOG2_E, SHIFT);
    let k = t - SHIFT;
    let r = fma(-k, LN2_LO, fma(-k, LN2_HI, xc));
    // e^r on |r| <= ln2/2 by a degree-11 polynomial 1 + r (1 + r q(r)), q interpolating
    // (e^r - 1 - r) / r^2 at 10 Chebyshev nodes (near-minimax): 1.6e-17 relative error
    // with these rounded coefficients, two multiply-adds fewer than the Taylor series
    // of the same accuracy (degree 13). q by Estrin's scheme (its rounding errors are
    // scaled by r^2 <= 0.12), the last two steps by Horner's (as accurate as the
    // whole in Horner's): half the dependency chain. Measured on the 2-core machine
    // (AVX2): 1.00 ns per exponential in a loop, against 1.35 for the degree-13 Horner.
    const Q: [f64; 10] = [
        0.500_000_000_000_000_1,
        0.166_666_666_666_666_69,
        4.166_666_666_662_416_4e-2,
        8.333_333_333_330_065e-3,
        1.388_888_891_719_671_9e-3,
        1.984_126_986_304_054_5e-4,
        2.480_152_132_236_869_2e-5,
        2.755_726_848_031_002_4e-6,
        2.762_007_587_998_336_7e-7,
        2.510_037_583_256_123_4e-8,
    ];
    let r2 = r * r;
    let r4 = r2 * r2;
    let r8 = r4 * r4;
    let b0 = fma(Q[1], r, Q[0]);
    let b1 = fma(Q[3], r, Q[2]);
    let b2 = fma(Q[5], r, Q[4]);
    let b3 = fma(Q[7], r, Q[6]);
    let b4 = fma(Q[9], r, Q[8]);
    let c0 = fma(b1, r2, b0);
    let c1 = fma(b3, r2, b2);
    let q = fma(b4, r8, fma(c1, r4, c0));
    let p = fma(fma(q, r, 1.0), r, 1.0);
    // 2^k from the integer in t's low bits: (k << 52) + bias, wrapping.
    let two_k = f64::from_bits((t.to_bits() << 52).wrapping_add(1023u64 << 52));
    if x < -708.0 {
        0.0
    } else {
        p * two_k
    }
}

/// The largest entry (NaN-free input), in four lanes so it vectorises.
#[inline(always)]
fn max_of(v: &[f64]) -> f64 {
    let mut m = [f64::NEG_INFINITY; 4];
    let mut chunks = v.chunks_exact(4);
    for c in &mut chunks {
        for l in 0..4 {
            m[l] = if c[l] > m[l] { c[l] } else { m[l] };
        }
    }
    let mut out = (m[0].max(m[1])).max(m[2].max(m[3]));
    for x in chunks.remainder() {
        out = out.max(*x);
    }
    out
}

/// Whether the AVX2 + FMA versions can run here.
#[inline]
fn use_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Defines `pub(crate) fn $name(args)` dispatching to an AVX2+FMA or a portable copy of
/// the generic kernel `$body::<FMA>`.
macro_rules! dispatch {
    ($(#[$m:meta])* fn $name:ident / $avx:ident ($($a:ident : $t:ty),*) -> $r:ty = $body:ident) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn $avx($($a: $t),*) -> $r {
            $body::<true>($($a),*)
        }
        $(#[$m])*
        pub(crate) fn $name($($a: $t),*) -> $r {
            #[cfg(target_arch = "x86_64")]
            if use_avx2() {
                // SAFETY: the CPU supports AVX2 and FMA (checked just above).
                return unsafe { $avx($($a),*) };
            }
            $body::<false>($($a),*)
        }
    };
}

/// Block maxima of one column kept on the stack up to this many blocks (columns of up
/// to 8192 entries); longer columns allocate (once per evaluation: nothing next to it).
const STACK_BLOCKS: usize = 32;
/// Elements per prefetch step: two cache lines of doubles.
const PF: usize = 16;

/// Asks for the two cache lines holding `v[i..i + PF]` (a hint: no effect on results).
#[inline(always)]
fn prefetch(v: &[f64], i: usize) {
    if i < v.len() {
        prefetch_at(v.as_ptr().wrapping_add(i));
    }
}

/// Asks for the two cache lines at `p` (a hint: the address is only computed, never
/// dereferenced, so it may lie anywhere).
#[inline(always)]
fn prefetch_at(p: *const f64) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let p = p as *const i8;
        // SAFETY: a prefetch never faults and does not change memory.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(p);
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(64));
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// One softmax column's part of the fused tabular KL-regularised right-hand side, at
/// a Runge-Kutta stage's state `theta = base + h sum_j coef_j v_j` (`terms[j] =
/// (coef_j, v_j)`; `theta = base` when `terms` is empty), entries `off..off + dy.len()`
/// of `base` and of every `v_j`. `c`, `scratch` and `dy` are the column's own slices.
///
/// With `p = softmax(theta)`, `u = c - lambda theta` where `c = r + lambda ln pi_ref`
/// (so `r_KL = u + lambda lse(theta)`), the gradient of Lemma 7 is
/// `dy = scale p (r_KL - E_p r_KL) = scale p (u - E_p u)`. Two passes, one `exp` per
/// entry (and one per block), no allocation below [`STACK_BLOCKS`] blocks:
/// 1. per block of [`BLOCK`]: a combined state's block of `theta` into the block
///    of `scratch` (the same operations, in the same order, as [`combine`], so the same
///    bits), the block's maximum, the running sums `sum e` and `sum e u` rescaled when
///    the running maximum `m` grows (online softmax), `e = exp(theta - m)` into `dy`
///    and `u` over `theta` in `scratch` (all in L1); the block's `m` is remembered;
/// 2. `dy = scale / sum * e * exp(m_block - m_final) * (u - mean)`, `u` read back from
///    `scratch`, or, when `theta = base`, recomputed from `c` and `base` (`c` alone when
///    `lambda = 0`).
///
/// A combined stage so reads its inputs (`base`, the `v_j`) and `c` once, writes `e`
/// and `u` and rereads them, and writes `dy`: 6 vectors besides the combination's
/// reads, against 4 + 8 for [`combine`] then a three-pass kernel (state written, then
/// read by a max pass, an exp pass and an output pass); `theta = base` moves 7.
#[inline(always)]
fn tabular_kl_stage_impl<const FMA: bool>(
    base: &[f64],
    h: f64,
    terms: &[(f64, &[f64])],
    off: usize,
    c: &[f64],
    lambda: f64,
    scale: f64,
    scratch: &mut [f64],
    dy: &mut [f64],
) {
    let n = dy.len();
    let c = &c[..n];
    let combined = !terms.is_empty();
    let nb = n.div_ceil(BLOCK);
    let mut stack = [0.0f64; STACK_BLOCKS];
    let mut heap = Vec::new();
    let maxes: &mut [f64] = if nb <= STACK_BLOCKS {
        &mut stack[..nb]
    } else {
        heap.resize(nb, 0.0);
        &mut heap
    };
    let (mut s, mut su) = ([0.0f64; 4], [0.0f64; 4]);
    let (mut s_tail, mut su_tail) = (0.0, 0.0);
    let mut m = f64::NEG_INFINITY;
    let (mut start, mut b) = (0, 0);
    while start < n {
        let len = BLOCK.min(n - start);
        let (g0, g1) = (off + start, off + start + len);
        if let Some(((c0, v0), rest)) = terms.split_first() {
            // The block of theta into the block of `scratch` (in L1 from here on), by
            // exactly `combine`'s operations: the first term, the others, the base.
            let acc = &mut scratch[start..start + len];
            acc.iter_mut()
                .zip(&v0[g0..g1])
                .for_each(|(a, x)| *a = c0 * x);
            for (cj, v) in rest {
                for (a, x) in acc.iter_mut().zip(&v[g0..g1]) {
                    *a = if FMA { cj.mul_add(*x, *a) } else { *a + cj * x };
                }
            }
            for (a, b) in acc.iter_mut().zip(&base[g0..g1]) {
                *a = if FMA { h.mul_add(*a, *b) } else { b + h * *a };
            }
        }
        let th: &[f64] = if combined {
            &scratch[start..start + len]
        } else {
            &base[g0..g1]
        };
        let bm = max_of(th);
        if bm > m {
            // Online softmax: the sums so far were relative to the old maximum.
            let f = exp_nonpos::<FMA>(m - bm);
            for l in 0..4 {
                s[l] *= f;
                su[l] *= f;
            }
            s_tail *= f;
            su_tail *= f;
            m = bm;
        }
        maxes[b] = m;
        // The exponentials, in chunks of PF elements; with each chunk, the same elements
        // of the next block's inputs and outputs are prefetched, so their transfers (the
        // combination's streams and the outputs' lines miss L2) overlap this arithmetic
        // instead of stalling the loops that use them. Measured at |Y| = 10^5 with ten
        // terms: 0.44 ms a stage instead of 0.5-0.75 ms; with one to five terms, and on
        // whole flows, no difference beyond the (large) noise of the shared machine.
        let (next, ahead) = (g1, n - start - len);
        let (dy_next, sc_next) = (
            dy.as_ptr().wrapping_add(start + len),
            scratch.as_ptr().wrapping_add(start + len),
        );
        let e = &mut dy[start..start + len];
        for (ci, (e, t)) in e.chunks_mut(PF).zip(th.chunks(PF)).enumerate() {
            let at = ci * PF;
            if at < ahead {
                if combined {
                    prefetch(base, next + at);
                    for (_, v) in terms {
                        prefetch(v, next + at);
                    }
                    prefetch_at(sc_next.wrapping_add(at));
                }
                prefetch(c, start + len + at);
                prefetch_at(dy_next.wrapping_add(at));
            }
            for (e, t) in e.iter_mut().zip(t) {
                *e = exp_nonpos::<FMA>(t - m);
            }
        }
        // u = c - lambda theta and the sums, in four lanes (chunks: no bounds checks, so
        // this vectorises). A combined state's u replaces its theta in `scratch`.
        let full = len - len % 4;
        let (e, cc) = (&dy[start..start + len], &c[start..start + len]);
        if combined {
            let u = &mut scratch[start..start + len];
            for ((e4, c4), u4) in e[..full]
                .chunks_exact(4)
                .zip(cc[..full].chunks_exact(4))
                .zip(u[..full].chunks_exact_mut(4))
            {
                for l in 0..4 {
                    let ul = c4[l] - lambda * u4[l];
                    u4[l] = ul;
                    s[l] += e4[l];
                    su[l] += e4[l] * ul;
                }
            }
            for k in full..len {
                u[k] = cc[k] - lambda * u[k];
                s_tail += e[k];
                su_tail += e[k] * u[k];
            }
        } else {
            let th = &base[g0..g1];
            for ((e4, t4), c4) in e[..full]
                .chunks_exact(4)
                .zip(th[..full].chunks_exact(4))
                .zip(cc[..full].chunks_exact(4))
            {
                for l in 0..4 {
                    s[l] += e4[l];
                    su[l] += e4[l] * (c4[l] - lambda * t4[l]);
                }
            }
            for k in full..len {
                s_tail += e[k];
                su_tail += e[k] * (cc[k] - lambda * th[k]);
            }
        }
        start += len;
        b += 1;
    }
    let sum = (s[0] + s[1]) + (s[2] + s[3]) + s_tail;
    let mean = ((su[0] + su[1]) + (su[2] + su[3]) + su_tail) / sum;
    let k = scale / sum;
    let (mut start, mut b) = (0, 0);
    while start < n {
        let len = BLOCK.min(n - start);
        let f = k * exp_nonpos::<FMA>(maxes[b] - m);
        let (cc, e) = (&c[start..start + len], &mut dy[start..start + len]);
        if combined {
            let u = &scratch[start..start + len];
            for i in 0..len {
                e[i] = f * e[i] * (u[i] - mean);
            }
        } else if lambda == 0.0 {
            // u = c.
            for i in 0..len {
                e[i] = f * e[i] * (cc[i] - mean);
            }
        } else {
            let th = &base[off + start..off + start + len];
            for i in 0..len {
                e[i] = f * e[i] * ((cc[i] - lambda * th[i]) - mean);
            }
        }
        start += len;
        b += 1;
    }
}

dispatch! {
    /// The fused tabular right-hand side of one column at a stage's state (see
    /// [`tabular_kl_stage_impl`]).
    fn tabular_kl_stage / tabular_kl_stage_avx2
        (base: &[f64], h: f64, terms: &[(f64, &[f64])], off: usize, c: &[f64], lambda: f64, scale: f64, scratch: &mut [f64], dy: &mut [f64]) -> () = tabular_kl_stage_impl
}

/// `[sum p r_a, sum p r_b, sum p (ln p - lp0)]` with `p = softmax(theta)`, in one `exp`
/// pass: the observables of a tabular flow (`lp0 = ln pi_0`).
#[inline(always)]
fn softmax_moments_impl<const FMA: bool>(
    theta: &[f64],
    r_a: &[f64],
    r_b: &[f64],
    lp0: &[f64],
) -> [f64; 3] {
    let n = theta.len();
    let (r_a, r_b, lp0) = (&r_a[..n], &r_b[..n], &lp0[..n]);
    let max = max_of(theta);
    let mut acc = [[0.0f64; 4]; 4];
    let mut tail = [0.0f64; 4];
    // Blocks: exponentials into a stack buffer (vectorises), then four-lane sums.
    let mut e = [0.0f64; 256];
    let mut start = 0;
    while start < n {
        let len = 256.min(n - start);
        let th = &theta[start..start + len];
        for (e, t) in e[..len].iter_mut().zip(th) {
            *e = exp_nonpos::<FMA>(t - max);
        }
        let full = len - len % 4;
        for i in (0..full).step_by(4) {
            for l in 0..4 {
                let (j, k) = (start + i + l, i + l);
                acc[0][l] += e[k];
                acc[1][l] += e[k] * r_a[j];
                acc[2][l] += e[k] * r_b[j];
                acc[3][l] += e[k] * ((theta[j] - max) - lp0[j]);
            }
        }
        for k in full..len {
            let j = start + k;
            tail[0] += e[k];
            tail[1] += e[k] * r_a[j];
            tail[2] += e[k] * r_b[j];
            tail[3] += e[k] * ((theta[j] - max) - lp0[j]);
        }
        start += len;
    }
    let tot = |k: usize| (acc[k][0] + acc[k][1]) + (acc[k][2] + acc[k][3]) + tail[k];
    let sum = tot(0);
    // ln p = z - ln(sum), so sum p (ln p - lp0) = tot(3)/sum - ln(sum).
    [
        tot(1) / sum,
        tot(2) / sum,
        (tot(3) / sum - sum.ln()).max(0.0),
    ]
}

dispatch! {
    /// `[E_p r_a, E_p r_b, KL(p || pi_0)]` with `p = softmax(theta)` (see [`softmax_moments_impl`]).
    fn softmax_moments / softmax_moments_avx2
        (theta: &[f64], r_a: &[f64], r_b: &[f64], lp0: &[f64]) -> [f64; 3] = softmax_moments_impl
}

/// Block length of the blocked loops: a block of every input stays in L1.
const BLOCK: usize = 256;
/// The same for the end of a step, whose two error accumulators live on the stack
/// (small, so they cost little to clear for small systems).
const FIN_BLOCK: usize = 64;

/// `out = base + h * sum_j coef[j] * vecs[j]` (`base` 0 when `None`), blocked so each
/// input is read once.
#[inline(always)]
fn combine_impl<const FMA: bool>(
    out: &mut [f64],
    base: Option<&[f64]>,
    h: f64,
    terms: &[(f64, &[f64])],
) {
    let n = out.len();
    let mut start = 0;
    while start < n {
        let len = BLOCK.min(n - start);
        // The block of `out` is the accumulator (as if it started at 0).
        let acc = &mut out[start..start + len];
        match terms.split_first() {
            Some(((c0, v0), rest)) => {
                let v0 = &v0[start..start + len];
                acc.iter_mut().zip(v0).for_each(|(a, x)| *a = c0 * x);
                for (c, v) in rest {
                    let v = &v[start..start + len];
                    for (a, x) in acc.iter_mut().zip(v) {
                        *a = if FMA { c.mul_add(*x, *a) } else { *a + c * x };
                    }
                }
            }
            None => acc.iter_mut().for_each(|a| *a = 0.0),
        }
        match base {
            Some(base) => {
                let b = &base[start..start + len];
                for (a, b) in acc.iter_mut().zip(b) {
                    *a = if FMA { h.mul_add(*a, *b) } else { b + h * *a };
                }
            }
            None => acc.iter_mut().for_each(|a| *a *= h),
        }
        start += len;
    }
}

dispatch! {
    /// `out = base + h * sum_j coef[j] * vecs[j]` (see [`combine_impl`]).
    fn combine / combine_avx2
        (out: &mut [f64], base: Option<&[f64]>, h: f64, terms: &[(f64, &[f64])]) -> () = combine_impl
}

/// The end of a Runge-Kutta step in one blocked pass over its stages: with
/// `terms[j] = (b_j, e_j, g_j, k_j)`, writes `y_new = y_old + h sum b_j k_j` and returns
/// `(sum_i (ea_i / sc_i)^2, sum_i (eb_i / sc_i)^2)` for the error estimates
/// `ea = eh sum e_j k_j`, `eb = sum g_j k_j`, `sc_i = atol + max(|y_old_i|, |y_new_i|) rtol`.
#[inline(always)]
fn finish_step_impl<const FMA: bool>(
    y_new: &mut [f64],
    y_old: &[f64],
    h: f64,
    eh: f64,
    terms: &[(f64, f64, f64, &[f64])],
    tol: (f64, f64),
) -> (f64, f64) {
    let (rtol, atol) = tol;
    let n = y_new.len();
    let (mut ae, mut ag) = ([0.0f64; FIN_BLOCK], [0.0f64; FIN_BLOCK]);
    let (mut sa, mut sb) = ([0.0f64; 4], [0.0f64; 4]);
    let mut start = 0;
    while start < n {
        let len = FIN_BLOCK.min(n - start);
        // The block of `y_new` accumulates sum b_j k_j before becoming y_old + h * it.
        let (ab, ae, ag) = (
            &mut y_new[start..start + len],
            &mut ae[..len],
            &mut ag[..len],
        );
        ab.iter_mut().for_each(|a| *a = 0.0);
        ae.iter_mut().for_each(|a| *a = 0.0);
        ag.iter_mut().for_each(|a| *a = 0.0);
        for (b, e, g, v) in terms {
            let v = &v[start..start + len];
            for i in 0..len {
                let x = v[i];
                if FMA {
                    ab[i] = b.mul_add(x, ab[i]);
                    ae[i] = e.mul_add(x, ae[i]);
                    ag[i] = g.mul_add(x, ag[i]);
                } else {
                    ab[i] += b * x;
                    ae[i] += e * x;
                    ag[i] += g * x;
                }
            }
        }
        let (yn, yo) = (ab, &y_old[start..start + len]);
        for i in 0..len {
            yn[i] = if FMA {
                h.mul_add(yn[i], yo[i])
            } else {
                yo[i] + h * yn[i]
            };
        }
        let mut i = 0;
        while i < len {
            for l in 0..4 {
                let k = i + l;
                if k >= len {
                    break;
                }
                let sc = atol + yo[k].abs().max(yn[k].abs()) * rtol;
                let (a, b) = (eh * ae[k] / sc, ag[k] / sc);
                sa[l] += a * a;
                sb[l] += b * b;
            }
            i += 4;
        }
        start += len;
    }
    (
        (sa[0] + sa[1]) + (sa[2] + sa[3]),
        (sb[0] + sb[1]) + (sb[2] + sb[3]),
    )
}

dispatch! {
    /// The end of a Runge-Kutta step (see [`finish_step_impl`]).
    fn finish_step / finish_step_avx2
        (y_new: &mut [f64], y_old: &[f64], h: f64, eh: f64, terms: &[(f64, f64, f64, &[f64])], tol: (f64, f64)) -> (f64, f64) = finish_step_impl
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_libm() {
        let mut worst = 0.0f64;
        let mut x = -707.9;
        while x <= 0.0 {
            for v in [exp_nonpos::<false>(x), exp_nonpos::<true>(x)] {
                let e = x.exp();
                worst = worst.max(((v - e) / e).abs());
            }
            x += 0.000_913_7;
        }
        assert!(worst < 4e-16, "worst relative error {worst:e}");
        assert_eq!(exp_nonpos::<false>(0.0), 1.0);
        assert_eq!(exp_nonpos::<false>(-800.0), 0.0);
        assert_eq!(exp_nonpos::<true>(f64::NEG_INFINITY), 0.0);
    }

    #[test]
    fn fused_column_matches_the_formula() {
        let theta: Vec<f64> = (0..37)
            .map(|i| ((i * 7919) % 23) as f64 * 0.37 - 4.0)
            .collect();
        let r: Vec<f64> = (0..37)
            .map(|i| ((i * 31) % 17) as f64 / 8.5 - 1.0)
            .collect();
        let lp0: Vec<f64> = (0..37).map(|i| -3.0 - (i % 5) as f64 * 0.1).collect();
        let lambda = 0.07;
        let c: Vec<f64> = r.iter().zip(&lp0).map(|(r, l)| r + lambda * l).collect();
        let max = theta.iter().copied().fold(f64::MIN, f64::max);
        let lse = max + theta.iter().map(|t| (t - max).exp()).sum::<f64>().ln();
        let p: Vec<f64> = theta.iter().map(|t| (t - lse).exp()).collect();
        let rkl: Vec<f64> = (0..37)
            .map(|i| r[i] - lambda * (theta[i] - lse - lp0[i]))
            .collect();
        let mean: f64 = (0..37).map(|i| p[i] * rkl[i]).sum();
        // theta itself, and theta as the combination (theta - 1) + 0.5 (2 * 1 + 0 (theta - 1))
        // (equal up to rounding), through the fused stage.
        let ones = vec![1.0; 37];
        let shifted: Vec<f64> = theta.iter().map(|t| t - 1.0).collect();
        let terms: [(f64, &[f64]); 2] = [(2.0, &ones), (0.0, &shifted)];
        let mut scratch = vec![0.0; 37];
        for combined in [false, true] {
            let mut dy = vec![0.0; 37];
            if combined {
                tabular_kl_stage(
                    &shifted,
                    0.5,
                    &terms,
                    0,
                    &c,
                    lambda,
                    0.5,
                    &mut scratch,
                    &mut dy,
                );
            } else {
                tabular_kl_stage(&theta, 0.0, &[], 0, &c, lambda, 0.5, &mut [], &mut dy);
            }
            for i in 0..37 {
                let want = 0.5 * p[i] * (rkl[i] - mean);
                assert!((dy[i] - want).abs() <= 1e-15, "{i}: {} vs {want}", dy[i]);
            }
        }
        let m = softmax_moments(&theta, &r, &c, &lp0);
        let kl: f64 = (0..37).map(|i| p[i] * (p[i].ln() - lp0[i])).sum();
        assert!((m[0] - (0..37).map(|i| p[i] * r[i]).sum::<f64>()).abs() < 1e-14);
        assert!((m[2] - kl.max(0.0)).abs() < 1e-13);
    }

    #[test]
    fn combine_is_an_axpy_sum() {
        let n = 600;
        let base: Vec<f64> = (0..n).map(|i| i as f64).collect();
        let a: Vec<f64> = (0..n).map(|i| (i % 7) as f64).collect();
        let b: Vec<f64> = (0..n).map(|i| (i % 3) as f64).collect();
        let mut out = vec![0.0; n];
        combine(&mut out, Some(&base), 0.5, &[(2.0, &a), (-1.0, &b)]);
        for i in 0..n {
            assert_eq!(out[i], base[i] + 0.5 * (2.0 * a[i] - b[i]));
        }
    }
}
