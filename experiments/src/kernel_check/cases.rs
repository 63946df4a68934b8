//! The fused ops under check, their seeded random inputs at a given size, and one
//! evaluation: the op's value and the gradients of `sum(out * cotangent)` with respect
//! to its differentiable inputs.

use super::Sizes;
use crate::models::config::{RopeConfig, RopeScaling};
use crate::models::rotary::Rotary;
use crate::ops::{self, CudaKernel};
use crate::Result;
use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// A fused op as the model code calls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// [`ops::rms_norm`] (eps 1e-5).
    RmsNorm,
    /// [`ops::layer_norm`] (eps 1e-5).
    LayerNorm,
    /// [`ops::picked_logprob`].
    PickedLogprob,
    /// [`ops::linear_picked_logprob`] (the output head).
    LinearPickedLogprob,
    /// [`ops::swiglu`].
    SwiGlu,
    /// [`ops::gelu_erf`].
    Gelu,
    /// Rotary embedding of the first `dims` dimensions of each head.
    Rotary {
        /// Rotated dimensions per head.
        dims: usize,
    },
}

impl Op {
    /// The CUDA kernel that computes it.
    pub fn kernel(self) -> CudaKernel {
        match self {
            Op::RmsNorm => CudaKernel::RmsNorm,
            Op::LayerNorm => CudaKernel::LayerNorm,
            Op::PickedLogprob | Op::LinearPickedLogprob => CudaKernel::PickedLogprob,
            Op::SwiGlu => CudaKernel::SwiGlu,
            Op::Gelu => CudaKernel::Gelu,
            Op::Rotary { .. } => CudaKernel::Rotary,
        }
    }

    /// The op on `x` (the inputs in [`Case::inputs`]' order); the kernel switches
    /// decide which path computes it.
    fn apply(self, x: &[Tensor]) -> Result<Tensor> {
        const EPS: f64 = 1e-5;
        match self {
            Op::RmsNorm => ops::rms_norm(&x[0], &x[1], EPS),
            Op::LayerNorm => ops::layer_norm(&x[0], &x[1], &x[2], EPS),
            Op::PickedLogprob => ops::picked_logprob(&x[0], &x[1]),
            Op::LinearPickedLogprob => ops::linear_picked_logprob(&x[0], &x[1], &x[2]),
            Op::SwiGlu => ops::swiglu(&x[0], &x[1]),
            Op::Gelu => ops::gelu_erf(&x[0]),
            Op::Rotary { dims } => ops::rotary(&x[0], &x[1], &x[2], dims),
        }
    }
}

/// Rotary settings of the rotary cases (only the tables depend on them).
const ROPE: RopeConfig = RopeConfig {
    theta: 10000.0,
    scaling: RopeScaling::None,
};

/// One input of a case.
#[derive(Debug, Clone)]
pub struct Input {
    /// Its name in the report (`x`, `weight`, ...).
    pub name: &'static str,
    /// Its value on the CPU: f32 (converted to the checked dtype) or u32 (indices).
    pub value: Tensor,
    /// Whether the check compares its gradient.
    pub differentiable: bool,
}

/// One op at one size with its inputs and the cotangent of its output.
#[derive(Debug, Clone)]
pub struct Case {
    /// What the report calls it, e.g. `rms_norm 256x2048`.
    pub label: String,
    /// The op.
    pub op: Op,
    /// Its inputs.
    pub inputs: Vec<Input>,
    /// The fixed random cotangent (f32, the output's shape).
    pub cotangent: Tensor,
}

/// Seeded normal values of `shape` (mean `mean`, deviation `std`) on the CPU.
fn normal(rng: &mut ChaCha8Rng, shape: &[usize], mean: f32, std: f32) -> Result<Tensor> {
    let dist = Normal::new(mean, std)
        .map_err(|e| crate::Error::Input(format!("kernel check: normal({mean}, {std}): {e}")))?;
    let n = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| dist.sample(rng)).collect();
    Ok(Tensor::from_vec(v, shape, &Device::Cpu)?)
}

fn float(name: &'static str, value: Tensor) -> Input {
    Input {
        name,
        value,
        differentiable: true,
    }
}

fn fixed(name: &'static str, value: Tensor) -> Input {
    Input {
        name,
        value,
        differentiable: false,
    }
}

/// Random token ids below `vocab`.
fn targets(rng: &mut ChaCha8Rng, rows: usize, vocab: usize) -> Result<Tensor> {
    let ids: Vec<u32> = (0..rows)
        .map(|_| rng.random_range(0..vocab as u32))
        .collect();
    Ok(Tensor::from_vec(ids, rows, &Device::Cpu)?)
}

/// The cases of every op whose kernel `wanted` says to check, at `sizes`, inputs
/// drawn from `seed`.
pub fn cases(sizes: &Sizes, wanted: impl Fn(CudaKernel) -> bool, seed: u64) -> Result<Vec<Case>> {
    let (rows, d, mlp) = (sizes.rows, sizes.d, sizes.mlp);
    // (label, op, size): the vocabulary of a head, the head size of a rotary case.
    let mut ops: Vec<(String, Op, usize)> = vec![
        (format!("rms_norm {rows}x{d}"), Op::RmsNorm, d),
        (format!("layer_norm {rows}x{d}"), Op::LayerNorm, d),
    ];
    for &v in &sizes.vocabs {
        ops.push((format!("picked_logprob {rows}x{v}"), Op::PickedLogprob, v));
        ops.push((
            format!("linear_picked_logprob {rows}x{d} -> {v}"),
            Op::LinearPickedLogprob,
            v,
        ));
    }
    ops.push((format!("swiglu {rows}x{mlp}"), Op::SwiGlu, mlp));
    ops.push((format!("gelu {rows}x{mlp}"), Op::Gelu, mlp));
    let (b, h, t) = sizes.rotary_shape;
    for &(head, dims) in &sizes.rotary_heads {
        ops.push((
            format!("rotary {b}x{h}x{t}x{head} (rotate {dims})"),
            Op::Rotary { dims },
            head,
        ));
    }
    let mut out = Vec::new();
    for (i, (label, op, n)) in ops.into_iter().enumerate() {
        if !wanted(op.kernel()) {
            continue;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (i as u64).wrapping_mul(0x9E37_79B9));
        let rng = &mut rng;
        let inputs = match op {
            Op::RmsNorm => vec![
                float("x", normal(rng, &[rows, d], 0.0, 1.0)?),
                float("weight", normal(rng, &[d], 1.0, 0.1)?),
            ],
            Op::LayerNorm => vec![
                float("x", normal(rng, &[rows, d], 0.5, 1.0)?),
                float("weight", normal(rng, &[d], 1.0, 0.1)?),
                float("bias", normal(rng, &[d], 0.0, 0.1)?),
            ],
            Op::PickedLogprob => vec![
                float("logits", normal(rng, &[rows, n], 0.0, 2.0)?),
                fixed("targets", targets(rng, rows, n)?),
            ],
            Op::LinearPickedLogprob => vec![
                float("hidden", normal(rng, &[rows, d], 0.0, 1.0)?),
                float("weight", normal(rng, &[n, d], 0.0, 0.02)?),
                fixed("targets", targets(rng, rows, n)?),
            ],
            Op::SwiGlu => vec![
                float("gate", normal(rng, &[rows, n], 0.0, 1.0)?),
                float("up", normal(rng, &[rows, n], 0.0, 1.0)?),
            ],
            Op::Gelu => vec![float("x", normal(rng, &[rows, n], 0.0, 1.0)?)],
            Op::Rotary { dims } => {
                let pos: Vec<u32> = (0..b * t).map(|p| (p % t) as u32 + 7).collect();
                let pos = Tensor::from_vec(pos, (b, t), &Device::Cpu)?;
                let (cos, sin) = Rotary::new(dims, &ROPE).tables(&pos, DType::F32)?;
                vec![
                    float("x", normal(rng, &[b, h, t, n], 0.0, 1.0)?),
                    fixed("cos", cos),
                    fixed("sin", sin),
                ]
            }
        };
        let out_shape: Vec<usize> = match op {
            Op::PickedLogprob | Op::LinearPickedLogprob => vec![rows],
            _ => inputs[0].value.dims().to_vec(),
        };
        let cotangent = normal(rng, &out_shape, 0.0, 1.0)?;
        out.push(Case {
            label,
            op,
            inputs,
            cotangent,
        });
    }
    Ok(out)
}

/// The case's inputs as they enter the check in `dtype`: floats rounded to `dtype`
/// (on the CPU, kept in f32 for the reference), indices unchanged.
pub fn rounded_inputs(case: &Case, dtype: DType) -> Result<Vec<Tensor>> {
    case.inputs
        .iter()
        .map(|i| {
            Ok(if i.value.dtype() == DType::F32 {
                i.value.to_dtype(dtype)?.to_dtype(DType::F32)?
            } else {
                i.value.clone()
            })
        })
        .collect()
}

/// Runs `case` on `device` in `dtype` from `inputs` (as [`rounded_inputs`] gives them)
/// with whatever kernel switches are set: `[("out", value), ("grad <input>", ..)]`,
/// all f32 on the CPU.
pub fn evaluate(
    case: &Case,
    inputs: &[Tensor],
    device: &Device,
    dtype: DType,
) -> Result<Vec<(String, Tensor)>> {
    let mut vars = Vec::new();
    let mut args = Vec::new();
    for (input, value) in case.inputs.iter().zip(inputs) {
        let on_device = value.to_device(device)?;
        if input.differentiable {
            let var = Var::from_tensor(&on_device.to_dtype(dtype)?)?;
            args.push(var.as_tensor().clone());
            vars.push((input.name, var));
        } else if value.dtype() == DType::F32 {
            args.push(on_device.to_dtype(dtype)?);
        } else {
            args.push(on_device);
        }
    }
    let out = case.op.apply(&args)?;
    let cot = case.cotangent.to_device(device)?;
    let loss = (out.to_dtype(DType::F32)? * cot)?.sum_all()?;
    let grads = loss.backward()?;
    let host =
        |t: &Tensor| -> Result<Tensor> { Ok(t.to_dtype(DType::F32)?.to_device(&Device::Cpu)?) };
    let mut results = vec![("out".to_string(), host(&out)?)];
    for (name, var) in vars {
        let g = grads.get(var.as_tensor()).ok_or_else(|| {
            crate::Error::Input(format!(
                "kernel check: {}: no gradient for {name}",
                case.label
            ))
        })?;
        results.push((format!("grad {name}"), host(g)?));
    }
    Ok(results)
}
