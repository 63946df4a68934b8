//! `rmteach exp check-kernels`: each fused op with a CUDA kernel, on seeded random
//! inputs, computed three ways and compared (values and gradients):
//!
//! - (a) the **reference**: on the CPU in f32 with every fused CPU kernel off
//!   ([`ops::without_cpu_kernels`]: candle's tensor ops, the formula as written), from
//!   the inputs rounded to the checked dtype;
//! - (b) the **kernel** path: on the checked device with that kernel switched on (CUDA:
//!   `set_cuda_kernels(NONE.with(k))`; CPU: the fused CPU kernel, f32 only);
//! - (c) the **composite** path: on the device with the kernels off (what runs today).
//!
//! Gradients are those of `sum(out * cotangent)` for a fixed random cotangent. Errors
//! are [`ErrorStats`]: the largest absolute difference and the largest difference
//! relative to its row's scale.
//!
//! ## Tolerances (fixed before the first GPU run)
//! - f32: the kernel's relative error at most [`F32_TOLERANCE`] = 1e-5. A kernel that
//!   computes the same formula in f32 differs from the reference only by rounding
//!   order: about `2^-24 sqrt(n)` relative for a reduction of `n` terms (n = 2048:
//!   2.7e-6; n = 128256 for the head's sum of exponentials: 2.1e-5 on the sum, 1.8e-6
//!   on its logarithm against a row scale of ~12), a few roundings of 6e-8 elsewhere.
//!   1e-5 leaves a margin of 4x over the longest norm reduction and is far below
//!   any formula error (a wrong constant, index or rounding point shows as >= 1e-3).
//! - bf16: the kernel's relative error against the f32 reference at most twice the
//!   composite's plus one bf16 ulp of the row's scale ([`BF16_ULP`] = 2^-7): the
//!   kernel rounds where the composite rounds (same formula, f32 accumulation), so it
//!   should be about as far from the f32 truth as the composite that runs today.
//!
//! The composite's own errors are reported beside the kernel's but gate nothing.

mod adamw;
mod cases;
mod compare;

pub use adamw::AdamWCase;
pub use cases::{cases, evaluate, rounded_inputs, Case, Input, Op};
pub use compare::{errors, ErrorStats};

use crate::ops::{self, CudaKernel, CudaKernels};
use crate::Result;
use candle_core::{DType, Device, Tensor};
use serde::Serialize;

/// The f32 limit on the kernel's error relative to the row's scale (see the module docs).
pub const F32_TOLERANCE: f64 = 1e-5;

/// One bf16 ulp relative to the largest value of a row (7 stored mantissa bits).
pub const BF16_ULP: f64 = 1.0 / 128.0;

/// The sizes of the inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct Sizes {
    /// Rows of the row-wise ops (tokens).
    pub rows: usize,
    /// Width of the norms and of the head's hidden state.
    pub d: usize,
    /// Width of the MLP activations.
    pub mlp: usize,
    /// Vocabularies of the head cases.
    pub vocabs: Vec<usize>,
    /// `(batch, heads, time)` of the rotary cases.
    pub rotary_shape: (usize, usize, usize),
    /// `(head size, rotated dimensions)` of each rotary case.
    pub rotary_heads: Vec<(usize, usize)>,
    /// `(rows, cols)` of the AdamW matrix (its vector has `cols`).
    pub adamw: (usize, usize),
}

impl Sizes {
    /// A 1B model's: 256 rows of width 2048, MLP 8192, Pythia's and Llama 3's
    /// vocabularies (50304, 128256), rotary on Pythia-1B's heads (256, rotating 64),
    /// Pythia-410M's (64, rotating 16) and Llama-3.2-1B's (64, all), AdamW on a
    /// 2048 x 8192 matrix.
    pub fn real() -> Self {
        Self {
            rows: 256,
            d: 2048,
            mlp: 8192,
            vocabs: vec![50304, 128256],
            rotary_shape: (2, 16, 128),
            rotary_heads: vec![(256, 64), (64, 16), (64, 64)],
            adamw: (2048, 8192),
        }
    }

    /// Seconds on a CPU: the same cases at toy sizes (the tests and CPU mode).
    pub fn small() -> Self {
        Self {
            rows: 6,
            d: 64,
            mlp: 96,
            vocabs: vec![97, 300],
            rotary_shape: (1, 2, 8),
            rotary_heads: vec![(32, 8), (16, 4), (16, 16)],
            adamw: (16, 24),
        }
    }
}

/// What to check.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Input sizes.
    pub sizes: Sizes,
    /// f32 and / or bf16.
    pub dtypes: Vec<DType>,
    /// The kernels to check.
    pub kernels: CudaKernels,
    /// Seed of the inputs.
    pub seed: u64,
}

/// A row's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Within its limit.
    Pass,
    /// Over its limit, or the op failed.
    Fail,
    /// No fused op calls this kernel in this build (the kernel path is the composite).
    Skip,
}

/// One compared tensor of one case in one dtype.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The case, e.g. `rms_norm 256x2048`.
    pub case: String,
    /// The kernel's `RMTEACH_CUDA_KERNELS` name.
    pub kernel: &'static str,
    /// `f32` or `bf16`.
    pub dtype: String,
    /// `out`, `grad x`, `update w`, ...
    pub tensor: String,
    /// The kernel path's error against the reference.
    pub kernel_error: Option<ErrorStats>,
    /// The composite path's error against the reference.
    pub composite_error: Option<ErrorStats>,
    /// The limit on the kernel's relative error.
    pub limit: f64,
    /// Pass, fail or skip.
    pub verdict: Verdict,
    /// Why it failed or was skipped.
    pub note: String,
}

/// The whole check.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The device checked (`cpu`, `cuda:0`).
    pub device: String,
    /// The tolerances, in words.
    pub tolerance: String,
    /// Every compared tensor.
    pub rows: Vec<Row>,
}

impl Report {
    /// The failing rows.
    pub fn failures(&self) -> Vec<&Row> {
        self.rows
            .iter()
            .filter(|r| r.verdict == Verdict::Fail)
            .collect()
    }

    /// The report as a markdown table.
    pub fn markdown(&self) -> String {
        let fmt = |e: &Option<ErrorStats>| match e {
            Some(e) => format!("{:.1e} | {:.1e}", e.max_abs, e.max_rel),
            None => "- | -".into(),
        };
        let mut s = format!(
            "## Kernel check on {}\n\n{}\n\n| case | dtype | tensor | kernel max abs | kernel max rel | \
             composite max abs | composite max rel | limit (rel) | result |\n\
             | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
            self.device, self.tolerance
        );
        for r in &self.rows {
            let verdict = match r.verdict {
                Verdict::Pass => "PASS".to_string(),
                Verdict::Fail => format!("**FAIL** {}", r.note),
                Verdict::Skip => format!("SKIP {}", r.note),
            };
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {:.1e} | {} |\n",
                r.case,
                r.dtype,
                r.tensor,
                fmt(&r.kernel_error),
                fmt(&r.composite_error),
                r.limit,
                verdict.trim()
            ));
        }
        let fails = self.failures().len();
        s.push_str(&format!(
            "\n{} rows, {} failed, {} skipped.\n",
            self.rows.len(),
            fails,
            self.rows
                .iter()
                .filter(|r| r.verdict == Verdict::Skip)
                .count()
        ));
        s
    }
}

/// The name of a dtype in the report.
fn dtype_name(dtype: DType) -> String {
    match dtype {
        DType::BF16 => "bf16".into(),
        d => format!("{d:?}").to_lowercase(),
    }
}

/// Runs `f` with `kernel` on (`on`) or every kernel off, on `device`'s kind of
/// kernels: the CUDA switch on a CUDA device (restored afterwards), the fused CPU
/// kernels on the CPU.
fn on_path<R>(device: &Device, kernel: CudaKernel, on: bool, f: impl FnOnce() -> R) -> R {
    if device.is_cpu() {
        return if on { f() } else { ops::without_cpu_kernels(f) };
    }
    let before = ops::cuda_kernels();
    ops::set_cuda_kernels(if on {
        CudaKernels::NONE.with(kernel)
    } else {
        CudaKernels::NONE
    });
    let out = f();
    ops::set_cuda_kernels(before);
    out
}

/// One thing to check: a fused op's case or the AdamW case.
enum Item<'a> {
    Op(&'a Case),
    AdamW(&'a AdamWCase),
}

impl Item<'_> {
    fn label(&self) -> &str {
        match self {
            Item::Op(c) => &c.label,
            Item::AdamW(c) => &c.label,
        }
    }

    fn kernel(&self) -> CudaKernel {
        match self {
            Item::Op(c) => c.op.kernel(),
            Item::AdamW(_) => CudaKernel::AdamW,
        }
    }

    /// The reference: the CPU in f32, kernels off, inputs rounded to `dtype`.
    fn reference(&self, dtype: DType) -> Result<Vec<(String, Tensor)>> {
        ops::without_cpu_kernels(|| match self {
            Item::Op(c) => evaluate(c, &rounded_inputs(c, dtype)?, &Device::Cpu, DType::F32),
            Item::AdamW(c) => c.rounded(dtype)?.evaluate(&Device::Cpu, DType::F32),
        })
    }

    /// The results on `device` in `dtype` (with whatever switches are set).
    fn on_device(&self, device: &Device, dtype: DType) -> Result<Vec<(String, Tensor)>> {
        match self {
            Item::Op(c) => {
                let inputs: Vec<Tensor> = c.inputs.iter().map(|i| i.value.clone()).collect();
                evaluate(c, &inputs, device, dtype)
            }
            Item::AdamW(c) => c.evaluate(device, dtype),
        }
    }
}

/// Checks every kernel of `opts.kernels` on `device` (cpu or a CUDA device opened by
/// [`crate::runtime::Runtime::open`]), calling `progress` with each case's label.
pub fn check_kernels(
    device: &Device,
    opts: &CheckOptions,
    mut progress: impl FnMut(&str),
) -> Result<Report> {
    let cases = cases(&opts.sizes, |k| opts.kernels.contains(k), opts.seed)?;
    let adamw = if opts.kernels.contains(CudaKernel::AdamW) {
        Some(AdamWCase::new(&opts.sizes, opts.seed ^ 0xADA3)?)
    } else {
        None
    };
    let items: Vec<Item> = adamw
        .iter()
        .map(Item::AdamW)
        .chain(cases.iter().map(Item::Op))
        .collect();
    let mut rows = Vec::new();
    for item in &items {
        for &dtype in &opts.dtypes {
            progress(&format!("{} {}", item.label(), dtype_name(dtype)));
            rows.extend(check_item(item, device, dtype)?);
        }
    }
    Ok(Report {
        device: format!("{:?}", device.location()).to_lowercase(),
        tolerance: format!(
            "Reference: CPU f32, fused kernels off, inputs rounded to the dtype. Limits on the \
             kernel's error relative to the row's scale: f32 {F32_TOLERANCE:.0e}; bf16 2 x the \
             composite's + {BF16_ULP} (1 bf16 ulp)."
        ),
        rows,
    })
}

/// The limit on the kernel's relative error in `dtype`, given the composite's error
/// (see the module docs).
pub fn limit(dtype: DType, composite: &ErrorStats) -> f64 {
    if dtype == DType::F32 {
        F32_TOLERANCE
    } else {
        2.0 * composite.max_rel + BF16_ULP
    }
}

/// The rows of one item in one dtype. An op that fails on a path gives one failing
/// row naming the error (the reference must work: its failure is an error).
fn check_item(item: &Item, device: &Device, dtype: DType) -> Result<Vec<Row>> {
    let reference = item.reference(dtype)?;
    let kernel = item.kernel();
    let row = |tensor: String| Row {
        case: item.label().to_string(),
        kernel: kernel.name(),
        dtype: dtype_name(dtype),
        tensor,
        kernel_error: None,
        composite_error: None,
        limit: if dtype == DType::F32 {
            F32_TOLERANCE
        } else {
            BF16_ULP
        },
        verdict: Verdict::Fail,
        note: String::new(),
    };
    let fused = on_path(device, kernel, true, || item.on_device(device, dtype));
    let composite = on_path(device, kernel, false, || item.on_device(device, dtype));
    let (fused, composite) = match (fused, composite) {
        (Ok(f), Ok(c)) => (f, c),
        (f, c) => {
            let mut r = row("-".into());
            r.note = [("kernel", f.err()), ("composite", c.err())]
                .into_iter()
                .filter_map(|(p, e)| e.map(|e| format!("{p} path failed: {e}")))
                .collect::<Vec<_>>()
                .join("; ");
            return Ok(vec![r]);
        }
    };
    let mut rows = Vec::new();
    for (i, (name, want)) in reference.iter().enumerate() {
        let mut r = row(name.clone());
        let k = errors(want, &fused[i].1)?;
        let c = errors(want, &composite[i].1)?;
        r.limit = limit(dtype, &c);
        (r.kernel_error, r.composite_error) = (Some(k), Some(c));
        r.verdict = if device.is_cpu() && dtype != DType::F32 {
            r.note = "(no CPU kernel in this dtype: both paths composite)".into();
            Verdict::Skip
        } else if k.max_rel <= r.limit {
            Verdict::Pass
        } else {
            r.note = format!(
                "{} {} {}: relative error {:.2e} > {:.2e}",
                item.label(),
                r.dtype,
                name,
                k.max_rel,
                r.limit
            );
            Verdict::Fail
        };
        rows.push(r);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_check_passes_on_the_cpu_and_compares_real_paths() -> Result<()> {
        let opts = CheckOptions {
            sizes: Sizes::small(),
            dtypes: vec![DType::F32, DType::BF16],
            kernels: CudaKernels::all(),
            seed: 1,
        };
        let report = check_kernels(&Device::Cpu, &opts, |_| {})?;
        assert!(report.failures().is_empty(), "{}", report.markdown());
        let f32_rows: Vec<&Row> = report.rows.iter().filter(|r| r.dtype == "f32").collect();
        // The fused CPU kernels differ from the composite by rounding order: a real
        // comparison, not a path compared with itself.
        assert!(
            f32_rows
                .iter()
                .any(|r| r.verdict == Verdict::Pass
                    && r.kernel_error.is_some_and(|e| e.max_abs > 0.0)),
            "{}",
            report.markdown()
        );
        for name in [
            "adamw",
            "rms_norm",
            "layer_norm",
            "picked_logprob",
            "swiglu",
            "gelu",
        ] {
            assert!(
                f32_rows
                    .iter()
                    .any(|r| r.kernel == name && (name == "adamw" || r.tensor.starts_with("grad"))),
                "no {name} rows"
            );
        }
        assert!(report
            .markdown()
            .contains("| rms_norm 6x64 | f32 | grad weight |"));
        Ok(())
    }

    #[test]
    fn limits_catch_an_f32_formula_error_and_scale_with_the_bf16_composite() -> Result<()> {
        let r = Tensor::new(&[[1f32, 2.0]], &Device::Cpu)?;
        let g = Tensor::new(&[[1f32, 2.001]], &Device::Cpu)?;
        let e = errors(&r, &g)?;
        // A 5e-4 relative slip is far over the f32 limit.
        assert!(e.max_rel > limit(DType::F32, &e), "{e:?}");
        let composite = ErrorStats {
            max_abs: 0.01,
            max_rel: 0.004,
        };
        let l = limit(DType::BF16, &composite);
        assert!((l - (0.008 + BF16_ULP)).abs() < 1e-12, "{l}");
        Ok(())
    }
}
