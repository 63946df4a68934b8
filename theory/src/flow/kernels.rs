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
/// of `base` and of every `v_j`. `c`, `scratch` and `dy` are the column's own slices
/// (`scratch` empty when `terms` is).
///
/// With `p = softmax(theta)`, `u = c - lambda theta` where `c = r + lambda ln pi_ref`
/// (so `r_KL = u + lambda lse(theta)`), the gradient of Lemma 7 is
/// `dy = scale p (r_KL - E_p r_KL) = scale p (u - E_p u)`. Two passes, one `exp` per
/// entry (and one per block):
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
///
/// Columns longer than one [`SEGMENT`] run each pass segment by segment, the segments'
/// partial sums combined in order between the passes; with more than one rayon thread
/// and at least [`PAR_SEGMENTS`] segments, the segments of each pass run in parallel.
/// The segments do not depend on the thread count, so neither do the results (bit for
/// bit); a column of one segment gives the bits of the unsegmented kernel.
pub(crate) fn tabular_kl_stage(
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
    if n <= SEGMENT {
        let mut maxes = [0.0f64; STACK_BLOCKS];
        let maxes = &mut maxes[..nb];
        let p = stage_pass1(base, h, terms, off, c, lambda, scratch, dy, maxes);
        let (m, k, mean) = StagePartial::combine(&[p], scale);
        stage_pass2(
            base, off, c, lambda, combined, scratch, dy, maxes, m, k, mean,
        );
        return;
    }
    let mut maxes = vec![0.0f64; nb];
    let mut segs = Vec::with_capacity(n.div_ceil(SEGMENT));
    let (mut dy_rest, mut sc_rest, mut mx_rest) = (dy, scratch, &mut maxes[..]);
    let mut at = 0;
    while at < n {
        let len = SEGMENT.min(n - at);
        let (d, dr) = std::mem::take(&mut dy_rest).split_at_mut(len);
        let sc_len = if combined { len } else { 0 };
        let (sc, sr) = std::mem::take(&mut sc_rest).split_at_mut(sc_len);
        let (mx, mr) = std::mem::take(&mut mx_rest).split_at_mut(len.div_ceil(BLOCK));
        segs.push((at, d, sc, mx));
        (dy_rest, sc_rest, mx_rest) = (dr, sr, mr);
        at += len;
    }
    let parallel = segs.len() >= PAR_SEGMENTS && rayon::current_num_threads() > 1;
    let pass1 = |(at, d, sc, mx): &mut (usize, &mut [f64], &mut [f64], &mut [f64])| {
        let cs = &c[*at..*at + d.len()];
        stage_pass1(base, h, terms, off + *at, cs, lambda, sc, d, mx)
    };
    let partials: Vec<StagePartial> = if parallel {
        use rayon::prelude::*;
        segs.par_iter_mut().map(pass1).collect()
    } else {
        segs.iter_mut().map(pass1).collect()
    };
    let (m, k, mean) = StagePartial::combine(&partials, scale);
    let pass2 = |(at, d, sc, mx): &mut (usize, &mut [f64], &mut [f64], &mut [f64])| {
        let cs = &c[*at..*at + d.len()];
        stage_pass2(base, off + *at, cs, lambda, combined, sc, d, mx, m, k, mean);
    };
    if parallel {
        use rayon::prelude::*;
        segs.par_iter_mut().for_each(pass2);
    } else {
        segs.iter_mut().for_each(pass2);
    }
}

/// Entries of a column per segment of [`tabular_kl_stage`]: as many blocks as the
/// stack holds, so a column of one segment needs no allocation.
const SEGMENT: usize = STACK_BLOCKS * BLOCK;
/// Segments from which a column's passes are spread over rayon's threads (a pass over
/// 32768 entries takes about 0.1 ms here; a fork-join inside the pool, microseconds).
const PAR_SEGMENTS: usize = 4;

/// Runs `f` on one of rayon's workers when a field of dimension `dim` may spread its
/// passes over threads (a column of [`PAR_SEGMENTS`] segments or more) and the caller
/// is not a worker already: each parallel pass is then a fork-join inside the pool
/// instead of a hand-over from outside it and back (which, on the 2-core machine, cost
/// more than the second thread gained).
pub(crate) fn on_worker<R: Send>(dim: usize, f: impl FnOnce() -> R + Send) -> R {
    let spreads = dim > (PAR_SEGMENTS - 1) * SEGMENT && rayon::current_num_threads() > 1;
    if spreads && rayon::current_thread_index().is_none() {
        rayon::scope(|_| f())
    } else {
        f()
    }
}

/// What pass 1 of [`tabular_kl_stage`] leaves of one segment: its running maximum and
/// the four-lane sums `sum e`, `sum e u` relative to it (and their tails).
#[derive(Debug, Clone, Copy)]
pub(crate) struct StagePartial {
    m: f64,
    s: [f64; 4],
    su: [f64; 4],
    s_tail: f64,
    su_tail: f64,
}

impl StagePartial {
    /// The column's maximum `m`, `k = scale / sum e` and `mean = sum e u / sum e` from
    /// its segments' partials, in order (one segment: exactly its own sums).
    fn combine(parts: &[StagePartial], scale: f64) -> (f64, f64, f64) {
        let m = parts.iter().fold(f64::NEG_INFINITY, |m, p| m.max(p.m));
        let (mut s, mut su) = ([0.0f64; 4], [0.0f64; 4]);
        let (mut s_tail, mut su_tail) = (0.0, 0.0);
        for p in parts {
            let f = if p.m == m { 1.0 } else { (p.m - m).exp() };
            for l in 0..4 {
                s[l] += p.s[l] * f;
                su[l] += p.su[l] * f;
            }
            s_tail += p.s_tail * f;
            su_tail += p.su_tail * f;
        }
        let sum = (s[0] + s[1]) + (s[2] + s[3]) + s_tail;
        let mean = ((su[0] + su[1]) + (su[2] + su[3]) + su_tail) / sum;
        (m, scale / sum, mean)
    }
}

/// Pass 1 of [`tabular_kl_stage`] over one segment (`off` its start in `base` and the
/// `v_j`; `c`, `scratch`, `dy` and `maxes` its own slices).
#[inline(always)]
fn stage_pass1_impl<const FMA: bool>(
    base: &[f64],
    h: f64,
    terms: &[(f64, &[f64])],
    off: usize,
    c: &[f64],
    lambda: f64,
    scratch: &mut [f64],
    dy: &mut [f64],
    maxes: &mut [f64],
) -> StagePartial {
    let n = dy.len();
    let c = &c[..n];
    let combined = !terms.is_empty();
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
    StagePartial {
        m,
        s,
        su,
        s_tail,
        su_tail,
    }
}

/// Pass 2 of [`tabular_kl_stage`] over one segment: the column's maximum `m`,
/// `k = scale / sum e` and `mean` known.
#[inline(always)]
fn stage_pass2_impl<const FMA: bool>(
    base: &[f64],
    off: usize,
    c: &[f64],
    lambda: f64,
    combined: bool,
    scratch: &[f64],
    dy: &mut [f64],
    maxes: &[f64],
    m: f64,
    k: f64,
    mean: f64,
) {
    let n = dy.len();
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
    /// Pass 1 of [`tabular_kl_stage`] (see [`stage_pass1_impl`]).
    fn stage_pass1 / stage_pass1_avx2
        (base: &[f64], h: f64, terms: &[(f64, &[f64])], off: usize, c: &[f64], lambda: f64, scratch: &mut [f64], dy: &mut [f64], maxes: &mut [f64]) -> StagePartial = stage_pass1_impl
}

dispatch! {
    /// Pass 2 of [`tabular_kl_stage`] (see [`stage_pass2_impl`]).
    fn stage_pass2 / stage_pass2_avx2
        (base: &[f64], off: usize, c: &[f64], lambda: f64, combined: bool, scratch: &[f64], dy: &mut [f64], maxes: &[f64], m: f64, k: f64, mean: f64) -> () = stage_pass2_impl
}

/// `[sum p r_a, sum p r_b, sum p (ln p - lp0)]` with `p = softmax(theta)`, in one `exp`
/// pass: the observables of a tabular flow (`lp0 = ln pi_0`). Long columns run by
/// segments (in parallel where [`tabular_kl_stage`] does), their sums combined in order.
pub(crate) fn softmax_moments(theta: &[f64], r_a: &[f64], r_b: &[f64], lp0: &[f64]) -> [f64; 3] {
    moments(theta, None, r_a, r_b, lp0).0
}

/// [`softmax_moments`] and their time derivatives along `d theta/dt = f`, in the same
/// single `exp` pass. With `p = softmax(theta)`, `d p_y/dt = p_y (f_y - E_p f)`, so the
/// derivative of `E_p v` is the covariance `Cov_p(v, f) = E_p[v f] - E_p v E_p f`, for
/// `v = r_a`, `r_b`, and `ln p - lp0` (the KL's, as `sum_y d p_y/dt = 0`).
pub(crate) fn softmax_moments_rates(
    theta: &[f64],
    f: &[f64],
    r_a: &[f64],
    r_b: &[f64],
    lp0: &[f64],
) -> ([f64; 3], [f64; 3]) {
    moments(theta, Some(f), r_a, r_b, lp0)
}

/// The sums of [`moments_segment_impl`] over segments, combined in order: the moments
/// and (with `f`) their rates (zero without).
fn moments(
    theta: &[f64],
    f: Option<&[f64]>,
    r_a: &[f64],
    r_b: &[f64],
    lp0: &[f64],
) -> ([f64; 3], [f64; 3]) {
    let parts = over_segments(theta.len(), |at, len| {
        let seg = at..at + len;
        let (th, a, b, l) = (
            &theta[seg.clone()],
            &r_a[seg.clone()],
            &r_b[seg.clone()],
            &lp0[seg.clone()],
        );
        match f {
            Some(f) => rates_segment(th, &f[seg], a, b, l),
            None => moments_segment(th, a, b, l),
        }
    });
    let m = parts.iter().fold(f64::NEG_INFINITY, |m, p| m.max(p.0));
    let (mut acc, mut tail) = ([[0.0f64; 4]; SUMS], [0.0f64; SUMS]);
    for (mp, pa, pt) in &parts {
        // A segment's sums are relative to its own maximum: e = e_p f, and the
        // `theta - max` of sums 3 and 7 shifts by `mp - m`.
        let (fac, shift) = if *mp == m {
            (1.0, 0.0)
        } else {
            ((mp - m).exp(), mp - m)
        };
        for k in 0..SUMS {
            let base = match k {
                3 => Some(0),
                7 => Some(4),
                _ => None,
            };
            for l in 0..4 {
                let add = base.map_or(0.0, |b| shift * pa[b][l]);
                acc[k][l] += (pa[k][l] + add) * fac;
            }
            tail[k] += (pt[k] + base.map_or(0.0, |b| shift * pt[b])) * fac;
        }
    }
    let tot = |k: usize| (acc[k][0] + acc[k][1]) + (acc[k][2] + acc[k][3]) + tail[k];
    let sum = tot(0);
    let mean = |k: usize| tot(k) / sum;
    // ln p = z - ln(sum), so sum p (ln p - lp0) = tot(3)/sum - ln(sum).
    let values = [mean(1), mean(2), (mean(3) - sum.ln()).max(0.0)];
    let ef = mean(4);
    let rates = if f.is_some() {
        [
            mean(5) - mean(1) * ef,
            mean(6) - mean(2) * ef,
            mean(7) - mean(3) * ef,
        ]
    } else {
        [0.0; 3]
    };
    (values, rates)
}

/// Number of sums of a moments pass: `e`, `e r_a`, `e r_b`, `e z` and the same times `f`.
const SUMS: usize = 8;

/// One segment's part of [`moments`]: its maximum `m`, and the four-lane sums of `e`,
/// `e r_a`, `e r_b`, `e z` and (with `RATES`) `e f`, `e f r_a`, `e f r_b`, `e f z`, with
/// `e = exp(theta - m)` and `z = (theta - m) - lp0`, and their tails.
type MomentsPart = (f64, [[f64; 4]; SUMS], [f64; SUMS]);

#[inline(always)]
fn moments_impl<const FMA: bool, const RATES: bool>(
    theta: &[f64],
    f: &[f64],
    r_a: &[f64],
    r_b: &[f64],
    lp0: &[f64],
) -> MomentsPart {
    let n = theta.len();
    let (r_a, r_b, lp0) = (&r_a[..n], &r_b[..n], &lp0[..n]);
    let f = if RATES { &f[..n] } else { f };
    let max = max_of(theta);
    let mut acc = [[0.0f64; 4]; SUMS];
    let mut tail = [0.0f64; SUMS];
    // Blocks: exponentials into a stack buffer (vectorises), then four-lane sums.
    let mut e = [0.0f64; 256];
    let mut start = 0;
    let add = |acc: &mut [f64; SUMS], j: usize, e: f64| {
        let z = (theta[j] - max) - lp0[j];
        acc[0] += e;
        acc[1] += e * r_a[j];
        acc[2] += e * r_b[j];
        acc[3] += e * z;
        if RATES {
            let ef = e * f[j];
            acc[4] += ef;
            acc[5] += ef * r_a[j];
            acc[6] += ef * r_b[j];
            acc[7] += ef * z;
        }
    };
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
                let z = (theta[j] - max) - lp0[j];
                acc[0][l] += e[k];
                acc[1][l] += e[k] * r_a[j];
                acc[2][l] += e[k] * r_b[j];
                acc[3][l] += e[k] * z;
                if RATES {
                    let ef = e[k] * f[j];
                    acc[4][l] += ef;
                    acc[5][l] += ef * r_a[j];
                    acc[6][l] += ef * r_b[j];
                    acc[7][l] += ef * z;
                }
            }
        }
        for k in full..len {
            add(&mut tail, start + k, e[k]);
        }
        start += len;
    }
    (max, acc, tail)
}

#[inline(always)]
fn moments_segment_impl<const FMA: bool>(
    theta: &[f64],
    r_a: &[f64],
    r_b: &[f64],
    lp0: &[f64],
) -> MomentsPart {
    moments_impl::<FMA, false>(theta, &[], r_a, r_b, lp0)
}

#[inline(always)]
fn rates_segment_impl<const FMA: bool>(
    theta: &[f64],
    f: &[f64],
    r_a: &[f64],
    r_b: &[f64],
    lp0: &[f64],
) -> MomentsPart {
    moments_impl::<FMA, true>(theta, f, r_a, r_b, lp0)
}

dispatch! {
    /// One segment of [`softmax_moments`] (see [`moments_impl`]).
    fn moments_segment / moments_segment_avx2
        (theta: &[f64], r_a: &[f64], r_b: &[f64], lp0: &[f64]) -> MomentsPart = moments_segment_impl
}

dispatch! {
    /// One segment of [`softmax_moments_rates`] (see [`moments_impl`]).
    fn rates_segment / rates_segment_avx2
        (theta: &[f64], f: &[f64], r_a: &[f64], r_b: &[f64], lp0: &[f64]) -> MomentsPart = rates_segment_impl
}

/// `f(at, segment)` over the segments of `v` ([`SEGMENT`] long, the last shorter; `at`
/// the segment's start), in order; in parallel as [`over_segments`].
fn over_segments_mut<T: Send>(v: &mut [f64], f: impl Fn(usize, &mut [f64]) -> T + Sync) -> Vec<T> {
    if v.len().div_ceil(SEGMENT) >= PAR_SEGMENTS && rayon::current_num_threads() > 1 {
        use rayon::prelude::*;
        v.par_chunks_mut(SEGMENT)
            .enumerate()
            .map(|(i, s)| f(i * SEGMENT, s))
            .collect()
    } else {
        v.chunks_mut(SEGMENT)
            .enumerate()
            .map(|(i, s)| f(i * SEGMENT, s))
            .collect()
    }
}

/// `f(at, len)` over the segments `at..at + len` of `0..n` ([`SEGMENT`] long, the last
/// shorter), in order; in parallel when [`tabular_kl_stage`] would spread a column of
/// `n` entries.
fn over_segments<T: Send>(n: usize, f: impl Fn(usize, usize) -> T + Sync) -> Vec<T> {
    let count = n.div_ceil(SEGMENT).max(1);
    let seg = |i: usize| {
        let at = i * SEGMENT;
        f(at, SEGMENT.min(n - at))
    };
    if count >= PAR_SEGMENTS && rayon::current_num_threads() > 1 {
        use rayon::prelude::*;
        (0..count).into_par_iter().map(seg).collect()
    } else {
        (0..count).map(seg).collect()
    }
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
/// When every `g_j` is 0 (Dopri5) the second sum is 0 and is not formed. Long states
/// run by segments (in parallel where [`tabular_kl_stage`] does), their four-lane sums
/// added in order (one segment: exactly the unsegmented sums).
pub(crate) fn finish_step(
    y_new: &mut [f64],
    y_old: &[f64],
    h: f64,
    eh: f64,
    terms: &[(f64, f64, f64, &[f64])],
    tol: (f64, f64),
) -> (f64, f64) {
    let parts = over_segments_mut(y_new, |at, yn| {
        let len = yn.len();
        let mut sub: [(f64, f64, f64, &[f64]); 16] = [(0.0, 0.0, 0.0, &[]); 16];
        for (s, (b, e, g, v)) in sub.iter_mut().zip(terms) {
            *s = (*b, *e, *g, &v[at..at + len]);
        }
        finish_segment(yn, &y_old[at..at + len], h, eh, &sub[..terms.len()], tol)
    });
    let (mut sa, mut sb) = ([0.0f64; 4], [0.0f64; 4]);
    for (pa, pb) in &parts {
        for l in 0..4 {
            sa[l] += pa[l];
            sb[l] += pb[l];
        }
    }
    (
        (sa[0] + sa[1]) + (sa[2] + sa[3]),
        (sb[0] + sb[1]) + (sb[2] + sb[3]),
    )
}

/// One segment of [`finish_step`]: its four-lane sums of both errors.
#[inline(always)]
fn finish_segment_impl<const FMA: bool>(
    y_new: &mut [f64],
    y_old: &[f64],
    h: f64,
    eh: f64,
    terms: &[(f64, f64, f64, &[f64])],
    tol: (f64, f64),
) -> ([f64; 4], [f64; 4]) {
    if terms.iter().any(|t| t.2 != 0.0) {
        finish_step_block::<FMA, true>(y_new, y_old, h, eh, terms, tol)
    } else {
        finish_step_block::<FMA, false>(y_new, y_old, h, eh, terms, tol)
    }
}

/// [`finish_segment_impl`] with (`TWO`) or without the second error estimate.
#[inline(always)]
fn finish_step_block<const FMA: bool, const TWO: bool>(
    y_new: &mut [f64],
    y_old: &[f64],
    h: f64,
    eh: f64,
    terms: &[(f64, f64, f64, &[f64])],
    tol: (f64, f64),
) -> ([f64; 4], [f64; 4]) {
    let (rtol, atol) = tol;
    let n = y_new.len();
    let (mut ae, mut ag) = ([0.0f64; FIN_BLOCK], [0.0f64; FIN_BLOCK]);
    let (mut sa, mut sb) = ([0.0f64; 4], [0.0f64; 4]);
    // Entry `i` of the error sums: lane `i % 4` (blocks start at multiples of 4).
    let err = |yo: f64, yn: f64, ae: f64, ag: f64, sa: &mut f64, sb: &mut f64| {
        let sc = atol + yo.abs().max(yn.abs()) * rtol;
        let a = eh * ae / sc;
        *sa += a * a;
        if TWO {
            let b = ag / sc;
            *sb += b * b;
        }
    };
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
        if TWO {
            ag.iter_mut().for_each(|a| *a = 0.0);
        }
        for (b, e, g, v) in terms {
            let v = &v[start..start + len];
            for i in 0..len {
                let x = v[i];
                if FMA {
                    ab[i] = b.mul_add(x, ab[i]);
                    ae[i] = e.mul_add(x, ae[i]);
                    if TWO {
                        ag[i] = g.mul_add(x, ag[i]);
                    }
                } else {
                    ab[i] += b * x;
                    ae[i] += e * x;
                    if TWO {
                        ag[i] += g * x;
                    }
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
        // Four lanes over whole chunks (this vectorises), then the block's tail.
        let full = len - len % 4;
        for (((yo4, yn4), ae4), ag4) in yo[..full]
            .chunks_exact(4)
            .zip(yn[..full].chunks_exact(4))
            .zip(ae[..full].chunks_exact(4))
            .zip(ag[..full].chunks_exact(4))
        {
            for l in 0..4 {
                err(yo4[l], yn4[l], ae4[l], ag4[l], &mut sa[l], &mut sb[l]);
            }
        }
        for k in full..len {
            let l = k - full;
            err(yo[k], yn[k], ae[k], ag[k], &mut sa[l], &mut sb[l]);
        }
        start += len;
    }
    (sa, sb)
}

dispatch! {
    /// One segment of the end of a Runge-Kutta step (see [`finish_segment_impl`]).
    fn finish_segment / finish_segment_avx2
        (y_new: &mut [f64], y_old: &[f64], h: f64, eh: f64, terms: &[(f64, f64, f64, &[f64])], tol: (f64, f64)) -> ([f64; 4], [f64; 4]) = finish_segment_impl
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

    /// The fused stage at `theta`: directly (`combined` false) or as the combination
    /// `shifted + 0.5 (2 * 1 + 0 * shifted)` of `terms` (equal up to rounding).
    fn stage_at(
        theta: &[f64],
        shifted: &[f64],
        terms: &[(f64, &[f64])],
        c: &[f64],
        lambda: f64,
        combined: bool,
    ) -> Vec<f64> {
        let n = theta.len();
        let (mut dy, mut scratch) = (vec![f64::NAN; n], vec![f64::NAN; n]);
        if combined {
            tabular_kl_stage(
                shifted,
                0.5,
                terms,
                0,
                c,
                lambda,
                0.5,
                &mut scratch,
                &mut dy,
            );
        } else {
            tabular_kl_stage(theta, 0.0, &[], 0, c, lambda, 0.5, &mut [], &mut dy);
        }
        dy
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
        for combined in [false, true] {
            let dy = stage_at(&theta, &shifted, &terms, &c, lambda, combined);
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
    fn long_columns_split_into_segments() {
        // One segment exactly, two (run in turn), four (run in parallel with threads);
        // the maximum in the last segment, so earlier segments' sums are rescaled.
        for n in [SEGMENT, SEGMENT + 1, 3 * SEGMENT + 300] {
            let theta: Vec<f64> = (0..n)
                .map(|i| ((i * 7919) % 23) as f64 * 0.37 - 4.0 + 3.0 * (i == n - 5) as u8 as f64)
                .collect();
            let c: Vec<f64> = (0..n).map(|i| ((i * 31) % 17) as f64 / 8.5 - 1.0).collect();
            let lambda = 0.07;
            let max = theta.iter().copied().fold(f64::MIN, f64::max);
            let e: Vec<f64> = theta.iter().map(|t| (t - max).exp()).collect();
            let sum: f64 = e.iter().sum();
            let u: Vec<f64> = (0..n).map(|i| c[i] - lambda * theta[i]).collect();
            let mean = (0..n).map(|i| e[i] * u[i]).sum::<f64>() / sum;
            let want: Vec<f64> = (0..n).map(|i| 0.5 * e[i] / sum * (u[i] - mean)).collect();
            let big = want.iter().fold(0.0f64, |m, w| m.max(w.abs()));
            let ones = vec![1.0; n];
            let shifted: Vec<f64> = theta.iter().map(|t| t - 1.0).collect();
            let terms: [(f64, &[f64]); 2] = [(2.0, &ones), (0.0, &shifted)];
            let run = |threads: usize, combined: bool| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                pool.install(|| stage_at(&theta, &shifted, &terms, &c, lambda, combined))
            };
            for combined in [false, true] {
                let one = run(1, combined);
                for (i, (a, w)) in one.iter().zip(&want).enumerate() {
                    assert!(
                        (a - w).abs() <= 1e-13 * big,
                        "n {n} combined {combined} [{i}]: {a} vs {w}"
                    );
                }
                let three = run(3, combined);
                assert!(
                    one.iter()
                        .zip(&three)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "n {n} combined {combined}: 1 and 3 threads differ"
                );
            }
        }
    }

    #[test]
    fn long_states_end_steps_and_observe_alike_on_any_thread_count() {
        let pool = |t: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap()
        };
        for n in [SEGMENT - 3, 2 * SEGMENT + 5, 4 * SEGMENT + 77] {
            let theta: Vec<f64> = (0..n)
                .map(|i| ((i * 7919) % 23) as f64 * 0.37 - 4.0 + 3.0 * (i == n - 5) as u8 as f64)
                .collect();
            let r_a: Vec<f64> = (0..n).map(|i| ((i * 31) % 17) as f64 / 8.5 - 1.0).collect();
            let r_b: Vec<f64> = (0..n).map(|i| ((i * 13) % 11) as f64 / 5.5 - 1.0).collect();
            let lp0: Vec<f64> = (0..n)
                .map(|i| -(n as f64).ln() - 0.01 * (i % 3) as f64)
                .collect();
            // The formula, with libm's exp.
            let max = theta.iter().copied().fold(f64::MIN, f64::max);
            let e: Vec<f64> = theta.iter().map(|t| (t - max).exp()).collect();
            let sum: f64 = e.iter().sum();
            let lse = max + sum.ln();
            let ea: f64 = (0..n).map(|i| e[i] * r_a[i]).sum::<f64>() / sum;
            let eb: f64 = (0..n).map(|i| e[i] * r_b[i]).sum::<f64>() / sum;
            let kl: f64 = (0..n)
                .map(|i| e[i] / sum * ((theta[i] - lse) - lp0[i]))
                .sum();
            let one = pool(1).install(|| softmax_moments(&theta, &r_a, &r_b, &lp0));
            let three = pool(3).install(|| softmax_moments(&theta, &r_a, &r_b, &lp0));
            assert_eq!(one.map(f64::to_bits), three.map(f64::to_bits), "n {n}");
            for (got, want) in one.iter().zip([ea, eb, kl]) {
                assert!(
                    (got - want).abs() <= 1e-12 * want.abs().max(1.0),
                    "n {n}: {got} vs {want}"
                );
            }
            // The end of a step: y_old + h (0.5 k1 + 2 k2), errors e = (1, -1), g = (0, 0.5).
            let k1: Vec<f64> = (0..n).map(|i| (i % 7) as f64 - 3.0).collect();
            let k2: Vec<f64> = r_a.clone();
            let terms: [(f64, f64, f64, &[f64]); 2] = [(0.5, 1.0, 0.0, &k1), (2.0, -1.0, 0.5, &k2)];
            let (h, eh, tol) = (0.1, 0.1, (1e-6, 1e-9));
            let end = |t: usize| {
                let mut y = vec![f64::NAN; n];
                let errs = pool(t).install(|| finish_step(&mut y, &theta, h, eh, &terms, tol));
                (y, errs)
            };
            let (y1, (a1, b1)) = end(1);
            let (y3, (a3, b3)) = end(3);
            assert!(
                y1.iter().zip(&y3).all(|(a, b)| a.to_bits() == b.to_bits()),
                "n {n}"
            );
            assert_eq!(
                (a1.to_bits(), b1.to_bits()),
                (a3.to_bits(), b3.to_bits()),
                "n {n}"
            );
            let (mut wa, mut wb) = (0.0, 0.0);
            for i in 0..n {
                let y = theta[i] + h * (0.5 * k1[i] + 2.0 * k2[i]);
                assert!((y1[i] - y).abs() <= 1e-14 * y.abs().max(1.0), "n {n} [{i}]");
                let sc = tol.1 + theta[i].abs().max(y.abs()) * tol.0;
                wa += (eh * (k1[i] - k2[i]) / sc).powi(2);
                wb += (0.5 * k2[i] / sc).powi(2);
            }
            assert!((a1 - wa).abs() <= 1e-12 * wa, "n {n}: {a1} vs {wa}");
            assert!((b1 - wb).abs() <= 1e-12 * wb, "n {n}: {b1} vs {wb}");
        }
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
