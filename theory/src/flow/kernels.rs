//! Allocation-free inner loops of the flows: a vectorisable `exp`, the fused tabular
//! KL-regularised right-hand side, and the Runge-Kutta stage combination.
//!
//! Each kernel is written once (`#[inline(always)]`) and compiled twice: for the
//! baseline x86-64 target and, selected at run time, with AVX2 + FMA. On other
//! architectures only the portable version exists. The two differ in rounding only
//! (`mul_add` is fused with FMA), at the level of one unit in the last place.
//!
//! The indexed four-lane loops are deliberate: they are what LLVM vectorises.
#![allow(clippy::needless_range_loop)]

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
    // Taylor series of e^r to degree 13 on |r| <= ln2/2: truncation below 5e-18.
    let mut p = 1.0 / 6_227_020_800.0;
    p = fma(p, r, 1.0 / 479_001_600.0);
    p = fma(p, r, 1.0 / 39_916_800.0);
    p = fma(p, r, 1.0 / 3_628_800.0);
    p = fma(p, r, 1.0 / 362_880.0);
    p = fma(p, r, 1.0 / 40_320.0);
    p = fma(p, r, 1.0 / 5_040.0);
    p = fma(p, r, 1.0 / 720.0);
    p = fma(p, r, 1.0 / 120.0);
    p = fma(p, r, 1.0 / 24.0);
    p = fma(p, r, 1.0 / 6.0);
    p = fma(p, r, 0.5);
    p = fma(p, r, 1.0);
    p = fma(p, r, 1.0);
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

/// One softmax column's part of the fused tabular KL-regularised right-hand side.
///
/// With `p = softmax(theta)`, `u = c - lambda theta` where `c = r + lambda ln pi_ref`
/// (so `r_KL = u + lambda lse(theta)`), the gradient of Lemma 7 is
/// `dy = scale p (r_KL - E_p r_KL) = scale p (u - E_p u)`: three passes (max; exp,
/// sum and `sum e u`; output), one `exp` per entry, no allocation. `dy` doubles as the
/// scratch for the exponentials. (Recomputing the exponentials in the output pass
/// instead moves 6 vectors instead of 8 but measured slower on the 2-core machine.)
#[inline(always)]
fn tabular_kl_column_impl<const FMA: bool>(
    theta: &[f64],
    c: &[f64],
    lambda: f64,
    scale: f64,
    dy: &mut [f64],
) {
    let n = theta.len();
    let (c, dy) = (&c[..n], &mut dy[..n]);
    let max = max_of(theta);
    // Blocks: the exponentials (a plain map: vectorises) into `dy`, then the two sums
    // in four lanes while the block is still in L1.
    let (mut s, mut su) = ([0.0f64; 4], [0.0f64; 4]);
    let (mut s_tail, mut su_tail) = (0.0, 0.0);
    let mut start = 0;
    while start < n {
        let len = BLOCK.min(n - start);
        let (th, cc, e) = (
            &theta[start..start + len],
            &c[start..start + len],
            &mut dy[start..start + len],
        );
        for (e, t) in e.iter_mut().zip(th) {
            *e = exp_nonpos::<FMA>(t - max);
        }
        let full = len - len % 4;
        for i in (0..full).step_by(4) {
            for l in 0..4 {
                let k = i + l;
                s[l] += e[k];
                su[l] += e[k] * (cc[k] - lambda * th[k]);
            }
        }
        for k in full..len {
            s_tail += e[k];
            su_tail += e[k] * (cc[k] - lambda * th[k]);
        }
        start += len;
    }
    let sum = (s[0] + s[1]) + (s[2] + s[3]) + s_tail;
    let mean = ((su[0] + su[1]) + (su[2] + su[3]) + su_tail) / sum;
    let k = scale / sum;
    for i in 0..n {
        dy[i] = k * dy[i] * ((c[i] - lambda * theta[i]) - mean);
    }
}

dispatch! {
    /// The fused tabular right-hand side of one column (see [`tabular_kl_column_impl`]).
    fn tabular_kl_column / tabular_kl_column_avx2
        (theta: &[f64], c: &[f64], lambda: f64, scale: f64, dy: &mut [f64]) -> () = tabular_kl_column_impl
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
        let mut dy = vec![0.0; 37];
        tabular_kl_column(&theta, &c, lambda, 0.5, &mut dy);
        let max = theta.iter().copied().fold(f64::MIN, f64::max);
        let lse = max + theta.iter().map(|t| (t - max).exp()).sum::<f64>().ln();
        let p: Vec<f64> = theta.iter().map(|t| (t - lse).exp()).collect();
        let rkl: Vec<f64> = (0..37)
            .map(|i| r[i] - lambda * (theta[i] - lse - lp0[i]))
            .collect();
        let mean: f64 = (0..37).map(|i| p[i] * rkl[i]).sum();
        for i in 0..37 {
            let want = 0.5 * p[i] * (rkl[i] - mean);
            assert!((dy[i] - want).abs() <= 1e-15, "{i}: {} vs {want}", dy[i]);
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
