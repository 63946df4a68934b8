//! The CUDA kernels (`experiments/kernels/*.cu`) run on the CPU by emulation
//! (`experiments/cuda-emulation`: g++ compiles the kernel files unchanged; blocks run in
//! turn, a block's threads as fibers with real barriers and warp exchanges), launched
//! exactly as the host code launches them ([`launches`]), and compared with the
//! references and tolerances of `rmteach exp check-kernels`
//! ([`crate::kernel_check`]): f32 within [`F32_TOLERANCE`] of the CPU f32 reference,
//! bf16 within twice the composite op's error plus one bf16 ulp. Every check runs with
//! two builds of the emulation: without fused multiply-adds and with them where g++
//! chooses (nvcc fuses by default), see [`driver::Contraction`].
//!
//! The test needs a C++ compiler (g++; `CXX` for another); without one it fails,
//! saying how to install it or to set `RMTEACH_SKIP_CUDA_EMULATION=1`.

mod adamw;
mod compare;
mod driver;
mod launches;
mod selftest;

use super::launch::{self, LaunchShape};
use crate::kernel_check::{cases, errors, evaluate, rounded_inputs, Op, Sizes, F32_TOLERANCE};
use candle_core::{DType, Device};
use compare::{assert_all_pass, check, emulated, sizes};
use driver::{Contraction, Driver, Elem, Request};

/// RMSNorm and LayerNorm, forward and backward (the three launches of the backward).
fn emulated_norm_kernels_match_the_reference(driver: &Driver) {
    let norm = |op: Op| matches!(op, Op::RmsNorm | Op::LayerNorm);
    let mut rows = Vec::new();
    // One row wider than 4 x 1024 (1024 threads, each looping over 5 values); 130 rows
    // (two chunks of the parameter sums) of a width that is no multiple of 32; one warp
    // and one value more.
    for (i, (r, d)) in [(1, 5000), (130, 100), (3, 33)].into_iter().enumerate() {
        rows.extend(check(driver, &sizes(r, d), norm, 11 + i as u64));
    }
    assert_all_pass(&rows);
}

/// At width 1, RMSNorm's input gradient is r_inv (h - x c) with x c = h x^2 / (x^2 +
/// eps): a difference of two nearly equal values (the exact result is h eps / (x^2 +
/// eps)^1.5), so any rounding order is far from the reference relative to that tiny
/// result (1.8e-2 here, over the f32 limit). The fused CPU kernel has the same error:
/// the emulated CUDA kernel must agree with it, i.e. compute the same formula.
fn emulated_rms_norm_at_width_one_is_the_cpu_kernels_formula(driver: &Driver) {
    let all = cases(&sizes(3, 1), |_| true, 13).expect("the check's cases");
    let case = all
        .iter()
        .find(|c| c.op == Op::RmsNorm)
        .expect("an rms_norm case");
    let inputs = rounded_inputs(case, DType::F32).expect("inputs");
    let cpu = evaluate(case, &inputs, &Device::Cpu, DType::F32).expect("the CPU kernel");
    let got = emulated(driver, case, DType::F32).expect("the emulated kernels");
    for ((name, want), got) in cpu.iter().zip(&got) {
        let e = errors(want, got).expect("comparable shapes");
        println!("rms_norm 3x1 f32 {name}: emulated vs CPU kernel {e:?}");
        assert!(e.max_rel <= F32_TOLERANCE, "{name}: {e:?}");
    }
}

/// The head's log-softmax + gather, forward and backward, alone and behind the linear
/// head's matrix products.
fn emulated_head_kernels_match_the_reference(driver: &Driver) {
    let mut rows = Vec::new();
    // Pythia's (padded) and Llama 3's vocabularies; fewer entries than threads (5);
    // many rows of a width that is no multiple of 32.
    let cases = [(2, vec![50_279, 128_256]), (1, vec![5]), (40, vec![97])];
    for (i, (r, vocabs)) in cases.into_iter().enumerate() {
        let s = Sizes {
            vocabs,
            ..sizes(r, 24)
        };
        let head = |op: Op| matches!(op, Op::PickedLogprob | Op::LinearPickedLogprob);
        rows.extend(check(driver, &s, head, 21 + i as u64));
    }
    assert_all_pass(&rows);
}

/// SwiGLU, GELU and rotary (forward and transpose): the grid-stride kernels.
fn emulated_activation_and_rotary_kernels_match_the_reference(driver: &Driver) {
    let mut rows = Vec::new();
    // Odd element counts: 3 x 1001 and 1 x 7.
    for (i, (r, mlp)) in [(3, 1001), (1, 7)].into_iter().enumerate() {
        let s = Sizes { mlp, ..sizes(r, 1) };
        let act = |op: Op| matches!(op, Op::SwiGlu | Op::Gelu);
        rows.extend(check(driver, &s, act, 31 + i as u64));
    }
    // Rotary: some of each head rotated, all of it, and an odd count (1 x 3 x 5 x 7).
    let rotary = [
        ((2, 3, 5), vec![(32, 8), (16, 16)]),
        ((1, 3, 5), vec![(7, 6)]),
    ];
    for (i, (shape, heads)) in rotary.into_iter().enumerate() {
        let s = Sizes {
            rotary_shape: shape,
            rotary_heads: heads,
            ..sizes(1, 1)
        };
        let rot = |op: Op| matches!(op, Op::Rotary { .. });
        rows.extend(check(driver, &s, rot, 41 + i as u64));
    }
    assert_all_pass(&rows);
}

/// A grid-stride kernel launched with fewer blocks than its elements need (as at the
/// host's cap of [`launch::ELEMENTWISE_MAX_BLOCKS`] blocks, which only 2^24 elements
/// reach) gives the same bits as the host's launch: the threads loop.
fn emulated_grid_stride_loops_cover_a_capped_grid(driver: &Driver) {
    let n = 3003;
    let x: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
    for elem in [Elem::F32, Elem::Bf16] {
        let mut req = Request::default();
        let input = req.input(elem, &x);
        let full = launches::activation(&mut req, elem, "gelu_erf_fwd", &[input], (n, 1), None);
        let capped = LaunchShape {
            grid: (3, 1, 1),
            ..launch::elementwise(n)
        };
        let looped = launches::activation(
            &mut req,
            elem,
            "gelu_erf_fwd",
            &[input],
            (n, 1),
            Some(capped),
        );
        let r = driver.run(&req).expect("the launches");
        let (a, b) = (r.f32s(full), r.f32s(looped));
        assert!(a.iter().all(|v| v.is_finite()), "unwritten elements");
        assert!(
            a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()),
            "{elem:?}"
        );
    }
}

/// A named part of the emulation test, and whether it also runs in the build with
/// fused multiply-adds.
type Section = (&'static str, fn(&Driver), bool);

/// Every section above, once with a driver built without fused multiply-adds and once
/// with them (as nvcc's default fuses; skipped on a CPU without FMA instructions): each
/// runs even when an earlier one failed; the test fails naming the failed sections.
/// The width-1 section compares bits of one formula, so it runs without fusing only (with
/// fusing, that cancellation moves by 4e-4 of its tiny result).
#[test]
fn cuda_kernels_run_by_emulation() {
    let sections: [Section; 7] = [
        (
            "emulation fails loudly",
            selftest::emulation_fails_loudly,
            true,
        ),
        ("norms", emulated_norm_kernels_match_the_reference, true),
        (
            "rms_norm at width 1",
            emulated_rms_norm_at_width_one_is_the_cpu_kernels_formula,
            false,
        ),
        ("head", emulated_head_kernels_match_the_reference, true),
        (
            "activations and rotary",
            emulated_activation_and_rotary_kernels_match_the_reference,
            true,
        ),
        (
            "grid-stride loops",
            emulated_grid_stride_loops_cover_a_capped_grid,
            true,
        ),
        (
            "adamw",
            adamw::emulated_adamw_kernels_match_the_cpu_update,
            true,
        ),
    ];
    let mut failed = Vec::new();
    for contraction in [Contraction::Off, Contraction::Fused] {
        let driver = match Driver::build(contraction) {
            Ok(Some(d)) => d,
            Ok(None) => {
                eprintln!(
                    "CUDA emulation ({contraction:?}) skipped ({}=1, or no FMA instructions)",
                    driver::SKIP_VAR
                );
                continue;
            }
            Err(e) => panic!("{e}"),
        };
        for (name, section, fused_too) in sections {
            if contraction == Contraction::Fused && !fused_too {
                continue;
            }
            let start = std::time::Instant::now();
            let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| section(&driver)));
            println!(
                "{name} (contraction {contraction:?}): {:.1} s",
                start.elapsed().as_secs_f64()
            );
            if ok.is_err() {
                failed.push(format!("{name} (contraction {contraction:?})"));
            }
        }
    }
    assert!(failed.is_empty(), "failed: {failed:?} (messages above)");
}
