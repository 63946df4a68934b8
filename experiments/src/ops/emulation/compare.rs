//! The emulated kernels against `check-kernels`' references: each case's results from
//! the emulated launches, the errors and limits, and the table of them.

use super::driver::{Driver, Elem, Request};
use super::launches;
use crate::kernel_check::{
    cases, errors, evaluate, limit, rounded_inputs, Case, ErrorStats, Op, Sizes,
};
use crate::ops;
use candle_core::{DType, Device, Tensor};

/// The norms' epsilon in the check's cases.
pub(super) const EPS: f32 = 1e-5;

/// One compared tensor.
pub(super) struct Row {
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
    pub(super) fn passes(&self) -> bool {
        self.kernel.max_rel <= self.limit
    }
}

/// The rows as a markdown table.
pub(super) fn table(rows: &[Row]) -> String {
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

pub(super) fn elem_of(dtype: DType) -> Elem {
    if dtype == DType::BF16 {
        Elem::Bf16
    } else {
        Elem::F32
    }
}

pub(super) fn dtype_name(dtype: DType) -> &'static str {
    if dtype == DType::BF16 {
        "bf16"
    } else {
        "f32"
    }
}

pub(super) fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all()
        .and_then(|t| t.to_dtype(DType::F32))
        .and_then(|t| t.to_vec1::<f32>())
        .expect("an f32 tensor on the CPU")
}

pub(super) fn tensor(v: Vec<f32>, shape: &[usize]) -> Tensor {
    Tensor::from_vec(v, shape, &Device::Cpu).expect("values of the shape")
}

/// The case's results from the emulated kernels in `dtype`, named and ordered as
/// [`evaluate`]'s: the output, then the gradients of `sum(out * cotangent)`.
pub(super) fn emulated(driver: &Driver, case: &Case, dtype: DType) -> Result<Vec<Tensor>, String> {
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
pub(super) fn picked_logprob(
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
pub(super) fn check(
    driver: &Driver,
    sizes: &Sizes,
    keep: impl Fn(Op) -> bool,
    seed: u64,
) -> Vec<Row> {
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
pub(super) fn sizes(rows: usize, d: usize) -> Sizes {
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

pub(super) fn assert_all_pass(rows: &[Row]) {
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
