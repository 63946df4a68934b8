//! The CUDA kernels (`experiments/kernels/*.cu`) run on the CPU by emulation
//! (`experiments/cuda-emulation`: g++ compiles the kernel files unchanged; blocks run in
//! turn, a block's threads as fibers with real barriers and warp exchanges), launched
//! exactly as the host code launches them ([`launches`]), and compared with the
//! references and tolerances of `rmteach exp check-kernels`
//! ([`crate::kernel_check`]): f32 within [`F32_TOLERANCE`] of the CPU f32 reference,
//! bf16 within twice the composite op's error plus one bf16 ulp.
//!
//! The test needs a C++ compiler (g++; `CXX` for another); without one it fails,
//! saying how to install it or to set `RMTEACH_SKIP_CUDA_EMULATION=1`.

mod driver;
mod launches;

use super::adamw::{adamw_update_cpu, AdamWStep, Consts};
use super::launch::{self, LaunchShape};
use crate::kernel_check::{
    cases, errors, evaluate, limit, rounded_inputs, Case, ErrorStats, Op, Sizes, F32_TOLERANCE,
};
use crate::ops;
use candle_core::{DType, Device, Tensor};
use driver::{Contraction, Driver, Elem, Request};

/// The norms' epsilon in the check's cases.
const EPS: f32 = 1e-5;

/// One compared tensor.
struct Row {
    case: String,
    dtype: &'static str,
    tensor: String,
    kernel: ErrorStats,
    composite: ErrorStats,
    /// The fused CPU kernel's error (f32 only: it has no bf16 path).
    cpu_kernel: Option<ErrorStats>,
    limit: f64,
}

impl Row {
    fn passes(&self) -> bool {
        self.kernel.max_rel <= self.limit
    }
}

/// The rows as a markdown table.
fn table(rows: &[Row]) -> String {
    let mut s = String::from(
        "| case | dtype | tensor | emulated max abs | emulated max rel | composite max rel | \
         CPU kernel max rel | limit | result |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for r in rows {
        let cpu = r
            .cpu_kernel
            .map_or("-".to_string(), |c| format!("{:.1e}", c.max_rel));
        s.push_str(&format!(
            "| {} | {} | {} | {:.1e} | {:.1e} | {:.1e} | {} | {:.1e} | {} |\n",
            r.case,
            r.dtype,
            r.tensor,
            r.kernel.max_abs,
            r.kernel.max_rel,
            r.composite.max_rel,
            cpu,
            r.limit,
            if r.passes() { "PASS" } else { "FAIL" }
        ));
    }
    s
}

fn elem_of(dtype: DType) -> Elem {
    if dtype == DType::BF16 {
        Elem::Bf16
    } else {
        Elem::F32
    }
}

fn dtype_name(dtype: DType) -> &'static str {
    if dtype == DType::BF16 {
        "bf16"
    } else {
        "f32"
    }
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all()
        .and_then(|t| t.to_dtype(DType::F32))
        .and_then(|t| t.to_vec1::<f32>())
        .expect("an f32 tensor on the CPU")
}

fn tensor(v: Vec<f32>, shape: &[usize]) -> Tensor {
    Tensor::from_vec(v, shape, &Device::Cpu).expect("values of the shape")
}

/// The case's results from the emulated kernels in `dtype`, named and ordered as
/// [`evaluate`]'s: the output, then the gradients of `sum(out * cotangent)`.
fn emulated(driver: &Driver, case: &Case, dtype: DType) -> Result<Vec<Tensor>, String> {
    let elem = elem_of(dtype);
    let inputs = rounded_inputs(case, dtype).map_err(|e| e.to_string())?;
    let mut req = Request::default();
    let buf = |req: &mut Request, t: &Tensor| req.input(elem, &values(t));
    // The gradient reaching the op: the cotangent in the op's dtype.
    let cot = &case.cotangent;
    let dims = |i: usize| inputs[i].dims().to_vec();
    let res = match case.op {
        Op::RmsNorm | Op::LayerNorm => {
            let (rows, d) = inputs[0].dims2().map_err(|e| e.to_string())?;
            let params: Vec<usize> = inputs[1..].iter().map(|t| buf(&mut req, t)).collect();
            let x = buf(&mut req, &inputs[0]);
            let g = buf(&mut req, cot);
            let (op, k) = if case.op == Op::RmsNorm {
                ("rms_norm", 1)
            } else {
                ("layer_norm", 2)
            };
            let out = launches::row_norm_fwd(&mut req, elem, op, (x, &params), (rows, d), EPS)?;
            let block = launches::norm_bwd(&mut req, elem, k, (x, params[0], g), (rows, d), EPS)?;
            let r = driver.run(&req)?;
            let grads = r.f32s(block);
            let mut res = vec![
                tensor(r.f32s(out), &[rows, d]),
                tensor(grads[..rows * d].to_vec(), &[rows, d]),
            ];
            for j in 0..k {
                let at = (rows + j) * d;
                res.push(tensor(grads[at..at + d].to_vec(), &[d]));
            }
            res
        }
        Op::PickedLogprob => {
            let (rows, vocab) = inputs[0].dims2().map_err(|e| e.to_string())?;
            let (logits, grad) = picked_logprob(driver, elem, &inputs[0], &inputs[1], cot)?;
            vec![tensor(logits, &[rows]), tensor(grad, &[rows, vocab])]
        }
        Op::LinearPickedLogprob => {
            // The host's linear_picked_logprob: logits = hidden W^T in the dtype (a
            // matrix product, candle's), the kernels on them, then the gradient's two
            // products in the dtype.
            let to = |t: &Tensor| t.to_dtype(dtype).map_err(|e| e.to_string());
            let (hidden, weight) = (to(&inputs[0])?, to(&inputs[1])?);
            let logits = hidden
                .matmul(&weight.t().map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
            let (rows, vocab) = logits.dims2().map_err(|e| e.to_string())?;
            let (picked, grad) = picked_logprob(driver, elem, &logits, &inputs[2], cot)?;
            let g = tensor(grad, &[rows, vocab])
                .to_dtype(dtype)
                .map_err(|e| e.to_string())?;
            let product = |a: &Tensor, b: &Tensor| -> Result<Tensor, String> {
                a.matmul(b)
                    .and_then(|p| p.to_dtype(DType::F32))
                    .map_err(|e| e.to_string())
            };
            vec![
                tensor(picked, &[rows]),
                product(&g, &weight)?,
                product(&g.t().map_err(|e| e.to_string())?, &hidden)?,
            ]
        }
        Op::SwiGlu | Op::Gelu => {
            let shape = dims(0);
            let n = inputs[0].elem_count();
            let ins: Vec<usize> = inputs.iter().map(|t| buf(&mut req, t)).collect();
            let g = buf(&mut req, cot);
            let (fwd, bwd, outputs) = if case.op == Op::Gelu {
                ("gelu_erf_fwd", "gelu_erf_bwd", 1)
            } else {
                ("swiglu_fwd", "swiglu_bwd", 2)
            };
            let out = launches::activation(&mut req, elem, fwd, &ins, (n, 1), None);
            let mut bwd_in = ins.clone();
            bwd_in.push(g);
            let grads = launches::activation(&mut req, elem, bwd, &bwd_in, (n, outputs), None);
            let r = driver.run(&req)?;
            let grads = r.f32s(grads);
            let mut res = vec![tensor(r.f32s(out), &shape)];
            for j in 0..outputs {
                res.push(tensor(grads[j * n..(j + 1) * n].to_vec(), &shape));
            }
            res
        }
        Op::Rotary { dims: rot } => {
            let shape = dims(0);
            let [b, h, t, d] = shape[..] else {
                return Err(format!("rotary input of shape {shape:?}"));
            };
            let (x, cos, sin) = (
                buf(&mut req, &inputs[0]),
                buf(&mut req, &inputs[1]),
                buf(&mut req, &inputs[2]),
            );
            let g = buf(&mut req, cot);
            let out = launches::rotary(&mut req, elem, (x, cos, sin), (b, h, t, d), rot, false);
            let grad = launches::rotary(&mut req, elem, (g, cos, sin), (b, h, t, d), rot, true);
            let r = driver.run(&req)?;
            vec![tensor(r.f32s(out), &shape), tensor(r.f32s(grad), &shape)]
        }
    };
    Ok(res)
}

/// The head's two kernels on `logits` (f32 values of the dtype's storage) and `targets`:
/// the f32 log-probabilities and the logits' gradient for the upstream gradient `up`
/// (the backward's coefficients `(logp, up)` per row, the forward's result as logp).
fn picked_logprob(
    driver: &Driver,
    elem: Elem,
    logits: &Tensor,
    targets: &Tensor,
    up: &Tensor,
) -> Result<(Vec<f32>, Vec<f32>), String> {
    let (rows, vocab) = logits.dims2().map_err(|e| e.to_string())?;
    let ids = targets
        .to_vec1::<u32>()
        .map_err(|e| format!("targets: {e}"))?;
    let mut req = Request::default();
    let x = req.input(elem, &values(logits));
    let t = req.input_u32(&ids);
    let out = launches::picked_logprob_fwd(&mut req, elem, (x, t), (rows, vocab))?;
    let logp = driver.run(&req)?.f32s(out);
    let coef: Vec<f32> = logp
        .iter()
        .zip(values(up))
        .flat_map(|(&l, u)| [l, u])
        .collect();
    let c = req.input(Elem::F32, &coef);
    let grad = launches::picked_logprob_bwd(&mut req, elem, (x, t, c), (rows, vocab))?;
    let r = driver.run(&req)?;
    Ok((r.f32s(out), r.f32s(grad)))
}

/// Every case of `sizes` whose op `keep` selects, emulated in f32 and bf16 and compared
/// with the check's reference: the rows.
fn check(driver: &Driver, sizes: &Sizes, keep: impl Fn(Op) -> bool, seed: u64) -> Vec<Row> {
    let all = cases(sizes, |_| true, seed).expect("the check's cases");
    let mut rows = Vec::new();
    for case in all.iter().filter(|c| keep(c.op)) {
        for dtype in [DType::F32, DType::BF16] {
            let reference = ops::without_cpu_kernels(|| {
                evaluate(
                    case,
                    &rounded_inputs(case, dtype)?,
                    &Device::Cpu,
                    DType::F32,
                )
            })
            .expect("the reference");
            // The composite (the tensor ops, as they run without the kernel) from the
            // unrounded inputs in the dtype, as the check's path (c).
            let composite = ops::without_cpu_kernels(|| {
                let inputs: Vec<Tensor> = case.inputs.iter().map(|i| i.value.clone()).collect();
                evaluate(case, &inputs, &Device::Cpu, dtype)
            })
            .expect("the composite");
            // The fused CPU kernels (f32 only), for comparison: they gate nothing.
            let cpu_kernel = (dtype == DType::F32).then(|| {
                evaluate(
                    case,
                    &rounded_inputs(case, dtype)?,
                    &Device::Cpu,
                    DType::F32,
                )
            });
            let cpu_kernel = cpu_kernel.transpose().expect("the CPU kernel");
            let got = emulated(driver, case, dtype)
                .unwrap_or_else(|e| panic!("{} {}: {e}", case.label, dtype_name(dtype)));
            assert_eq!(got.len(), reference.len(), "{}", case.label);
            for (i, (name, want)) in reference.iter().enumerate() {
                let kernel = errors(want, &got[i]).expect("comparable shapes");
                let comp = errors(want, &composite[i].1).expect("comparable shapes");
                let cpu = cpu_kernel
                    .as_ref()
                    .map(|c| errors(want, &c[i].1).expect("shapes"));
                rows.push(Row {
                    case: case.label.clone(),
                    dtype: dtype_name(dtype),
                    tensor: name.clone(),
                    kernel,
                    composite: comp,
                    cpu_kernel: cpu,
                    limit: limit(dtype, &comp),
                });
            }
        }
    }
    rows
}

/// Sizes for one family of cases (the fields other families use kept tiny).
fn sizes(rows: usize, d: usize) -> Sizes {
    Sizes {
        rows,
        d,
        mlp: 1,
        vocabs: vec![],
        rotary_shape: (1, 1, 1),
        rotary_heads: vec![],
        adamw: (1, 1),
    }
}

fn assert_all_pass(rows: &[Row]) {
    println!("{}", table(rows));
    let failed: Vec<&Row> = rows.iter().filter(|r| !r.passes()).collect();
    assert!(
        failed.is_empty(),
        "{} of {} compared tensors over their limits:\n{}",
        failed.len(),
        rows.len(),
        table(rows)
    );
}

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

/// AdamW: two steps (clipped, then not) of `adamw_step` on an odd-sized tensor give the
/// CPU kernel's bits (the kernel's claim: the same operations in the same order), the
/// bf16 weight the nearest-even rounding of the master; the gradient norm's two-stage
/// sum (one gradient longer than 256 x 256, so threads loop) is within the f32
/// tolerance of the exact sum.
fn emulated_adamw_kernels_match_the_cpu_update(driver: &Driver) {
    let n = 37 * 41;
    let wave = |k: f32, s: f32| -> Vec<f32> { (0..n).map(|i| (i as f32 * k).sin() * s).collect() };
    let (theta0, g1, g2) = (wave(0.71, 0.02), wave(1.37, 1e-3), wave(0.23, 2.5e-4));
    let cpu = |v: &[f32]| tensor(v.to_vec(), &[n]);
    let steps = [(0.4, 1), (1.0, 2)]; // (clip, step)
    for weight in [false, true] {
        let mut req = Request::default();
        let theta = req.input(Elem::F32, &theta0);
        let m = req.input(Elem::F32, &vec![0.0; n]);
        let v = req.input(Elem::F32, &vec![0.0; n]);
        let w = weight.then(|| req.output(Elem::Bf16, n));
        let (mut th_c, mut m_c, mut v_c) = (cpu(&theta0), cpu(&vec![0.0; n]), cpu(&vec![0.0; n]));
        for ((clip, t), g) in steps.into_iter().zip([&g1, &g2]) {
            let k = AdamWStep {
                clip,
                beta1: 0.9,
                beta2: 0.999,
                scale_m: 1.0 / (1.0 - 0.9f64.powi(t)),
                scale_v: 1.0 / (1.0 - 0.999f64.powi(t)),
                eps: 1e-8,
                lr: 1e-3,
                weight_decay: 0.01,
            };
            let gb = req.input(Elem::F32, g);
            launches::adamw_step(&mut req, (theta, m, v, gb), w, n, Consts::kernel_bytes(&k))
                .expect("the launch");
            (th_c, m_c, v_c) = adamw_update_cpu(&th_c, &m_c, &v_c, &cpu(g), &k)
                .expect("the CPU update")
                .expect("f32 on the CPU");
        }
        let r = driver.run(&req).expect("the launches");
        for (name, buf, want) in [("theta", theta, &th_c), ("m", m, &m_c), ("v", v, &v_c)] {
            let (got, want) = (r.f32s(buf), values(want));
            let same = got
                .iter()
                .zip(&want)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(
                same,
                "adamw {name} (bf16 weight: {weight}) differs from the CPU kernel"
            );
        }
        if let Some(w) = w {
            let rounded: Vec<u16> = values(&th_c)
                .iter()
                .map(|&x| driver::bf16_bits(x))
                .collect();
            let got: Vec<u16> = r
                .f32s(w)
                .iter()
                .map(|x| (x.to_bits() >> 16) as u16)
                .collect();
            assert_eq!(got, rounded, "the bf16 weight is not the rounded master");
        }
    }
    // The gradient norm over three gradients, one of 70001 values (> 256 x 256 threads).
    let grads: Vec<Vec<f32>> = [70_001usize, 1517, 41]
        .iter()
        .enumerate()
        .map(|(j, &len)| {
            (0..len)
                .map(|i| ((i * 7 + j) as f32 * 0.013).cos() * 1e-2)
                .collect()
        })
        .collect();
    let mut req = Request::default();
    let bufs: Vec<(usize, usize)> = grads
        .iter()
        .map(|g| (req.input(Elem::F32, g), g.len()))
        .collect();
    let total = launches::global_sq_norm(&mut req, &bufs);
    let got = f64::from(driver.run(&req).expect("the launches").f32s(total)[0]);
    let exact: f64 = grads.iter().flatten().map(|&x| f64::from(x).powi(2)).sum();
    let rel = (got - exact).abs() / exact;
    println!("sum of squares: emulated {got:e}, exact {exact:e}, relative error {rel:.1e}");
    assert!(
        rel <= F32_TOLERANCE,
        "sum of squares {got} vs {exact}: {rel:e}"
    );
}

/// The emulation itself fails loudly where real hardware would hang or misbehave: a
/// warp exchange in a partial warp, an argument of the wrong kind, a read past a buffer,
/// a diverged warp exchange, a skipped barrier, a missing barrier.
fn emulation_fails_loudly(driver: &Driver) {
    // block_sum over a block of 16 threads: its warp exchange has half a warp.
    let mut req = Request::default();
    let x = req.input(Elem::F32, &[1.0; 16]);
    let s = req.output(Elem::F32, 1);
    req.launch(
        "sq_norm_finish_f32",
        LaunchShape {
            grid: (1, 1, 1),
            block: (16, 1, 1),
        },
        vec![
            driver::Arg::Buffer(x),
            driver::Arg::I32(16),
            driver::Arg::Buffer(s),
        ],
    );
    let e = driver.run(&req).err().expect("a partial warp must fail");
    assert!(e.contains("only 16 of 32 lanes"), "{e}");
    // An argument of the wrong kind.
    let mut req = Request::default();
    let x = req.input(Elem::F32, &[1.0; 32]);
    req.launch(
        "sq_norm_finish_f32",
        launch::sq_norm_finish(),
        vec![
            driver::Arg::Buffer(x),
            driver::Arg::F32(1.0),
            driver::Arg::Buffer(x),
        ],
    );
    let e = driver
        .run(&req)
        .err()
        .expect("a float for an int must fail");
    assert!(e.contains("the kernel takes an int"), "{e}");
    // A count past the buffer's end.
    let mut req = Request::default();
    let x = req.input(Elem::F32, &[1.0; 32]);
    let s = req.output(Elem::F32, 1);
    req.launch(
        "sq_norm_finish_f32",
        launch::sq_norm_finish(),
        vec![
            driver::Arg::Buffer(x),
            driver::Arg::I32(5000),
            driver::Arg::Buffer(s),
        ],
    );
    let e = driver
        .run(&req)
        .err()
        .expect("reading past a buffer must fail");
    assert!(e.contains("past the end of buffer 0"), "{e}");
    // Kernels that break the model on purpose (cuda-emulation/selftest.cu).
    for (kernel, message) in [
        ("selftest_diverged_shuffle", "deadlock"),
        (
            "selftest_skipped_barrier",
            "threads of the block had exited",
        ),
        ("selftest_missing_barrier", "depends on the schedule"),
    ] {
        let mut req = Request::default();
        let out = req.output(Elem::F32, 64);
        let shape = LaunchShape {
            grid: (1, 1, 1),
            block: (64, 1, 1),
        };
        req.launch(kernel, shape, vec![driver::Arg::Buffer(out)]);
        let e = driver.run(&req).err().expect("a broken kernel must fail");
        assert!(e.contains(message), "{kernel}: {e}");
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
        ("emulation fails loudly", emulation_fails_loudly, true),
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
        ("adamw", emulated_adamw_kernels_match_the_cpu_update, true),
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
