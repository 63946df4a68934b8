//! `rmteach exp check-kernels`: the fused ops' CUDA kernels (or, on the CPU, the fused
//! CPU kernels) against the CPU f32 reference and candle's composite ops, values and
//! gradients (see `rmteach_experiments::kernel_check`).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use candle_core::DType;
use clap::{Args, ValueEnum};
use rmteach::report::write_atomic;
use rmteach_experiments::kernel_check::{check_kernels, CheckOptions, Sizes};
use rmteach_experiments::ops::CudaKernels;
use rmteach_experiments::runtime::{DTypeSpec, DeviceSpec, Runtime};

/// Input sizes of the check.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizesArg {
    /// A 1B model's rows (d 2048, MLP 8192, vocabularies 50304 and 128256).
    Real,
    /// Toy sizes (seconds on a CPU; the tests).
    Small,
}

/// Flags of `exp check-kernels`.
#[derive(Args, Debug)]
pub struct CheckKernelsArgs {
    /// cpu (the fused CPU kernels against the composite), or cuda / cuda:N.
    #[arg(long, default_value = "cpu")]
    device: DeviceSpec,
    /// Comma-separated dtypes: f32, bf16.
    #[arg(long, default_value = "f32,bf16", value_delimiter = ',')]
    dtypes: Vec<DTypeSpec>,
    /// Kernels to check: all, or a comma-separated list of adamw, rms_norm, layer_norm,
    /// picked_logprob, swiglu, gelu, rotary.
    #[arg(long, default_value = "all")]
    kernels: String,
    /// Input sizes.
    #[arg(long, value_enum, default_value = "real")]
    sizes: SizesArg,
    /// Seed of the inputs.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write check-kernels.md and check-kernels.json here.
    #[arg(long)]
    out: PathBuf,
    /// No progress lines.
    #[arg(long)]
    quiet: bool,
}

/// Runs the check; exit code 1 when a kernel fails (each failure named on stderr).
pub fn run(a: &CheckKernelsArgs) -> Result<i32> {
    let kernels = CudaKernels::parse(&a.kernels)
        .map_err(anyhow::Error::msg)
        .context("--kernels")?;
    if kernels == CudaKernels::NONE {
        bail!("--kernels: nothing to check (give all or a list of kernel names)");
    }
    // Opening the device applies RMTEACH_CUDA_KERNELS; the check sets the switch itself
    // for each path afterwards.
    let rt = Runtime::open(a.device, DTypeSpec::default()).context("--device")?;
    crate::out_dir::create_out_dir("--out", &a.out)?;
    // Each dtype once, in the order given (`f32,f32` would repeat every row).
    let mut dtypes: Vec<DType> = Vec::new();
    for d in a.dtypes.iter().map(|d| d.dtype()) {
        if !dtypes.contains(&d) {
            dtypes.push(d);
        }
    }
    let opts = CheckOptions {
        sizes: match a.sizes {
            SizesArg::Real => Sizes::real(),
            SizesArg::Small => Sizes::small(),
        },
        dtypes,
        kernels,
        seed: a.seed,
    };
    let t0 = std::time::Instant::now();
    let quiet = a.quiet;
    let report = check_kernels(&rt.device, &opts, |label| {
        if !quiet {
            eprintln!("[{:6.1} s] {label}", t0.elapsed().as_secs_f64());
        }
    })?;
    let md = report.markdown();
    for (file, text) in [
        ("check-kernels.md", md.clone()),
        ("check-kernels.json", serde_json::to_string_pretty(&report)?),
    ] {
        let p = a.out.join(file);
        write_atomic(&p, text.as_bytes()).with_context(|| format!("writing {}", p.display()))?;
    }
    print!("{md}");
    println!(
        "({:.1} s; written to {})",
        t0.elapsed().as_secs_f64(),
        a.out.display()
    );
    let failures = report.failures();
    for r in &failures {
        eprintln!(
            "kernel check FAILED: {} [{}] {} {}: {}",
            r.kernel, r.case, r.dtype, r.tensor, r.note
        );
    }
    Ok(if failures.is_empty() { 0 } else { 1 })
}
