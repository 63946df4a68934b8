//! Which fused ops run their own CUDA kernels on a CUDA device.
//!
//! The kernels (`experiments/kernels/*.cu`, compiled with the `cuda` feature) are **off
//! by default**: until `experiments/scripts/gpu-check.sh` has compared each with the
//! CPU op on a GPU, a CUDA run computes every op with candle's own kernels (the
//! composite path). `RMTEACH_CUDA_KERNELS` turns them on when a CUDA device is opened
//! (`runtime::cuda`): `all`, or a comma-separated list of [`CudaKernel`] names
//! (`rms_norm,layer_norm`); `none` (or unset) keeps them off. A CPU build compiles the
//! switch but never reaches a kernel.

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, Ordering};

/// A fused op with a CUDA kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CudaKernel {
    /// The AdamW update (master, moments and weight in one in-place pass) and the
    /// global gradient norm.
    AdamW,
    /// RMSNorm and its backward.
    RmsNorm,
    /// LayerNorm and its backward.
    LayerNorm,
    /// The output head's log-softmax and gather of the picked token.
    PickedLogprob,
    /// SwiGLU `silu(gate) * up` and its backward.
    SwiGlu,
    /// GELU (erf form) and its backward.
    Gelu,
    /// Rotary position embedding and its backward.
    Rotary,
}

impl CudaKernel {
    /// Every kernel, in the order `--help` texts list them.
    pub const ALL: [CudaKernel; 7] = [
        CudaKernel::AdamW,
        CudaKernel::RmsNorm,
        CudaKernel::LayerNorm,
        CudaKernel::PickedLogprob,
        CudaKernel::SwiGlu,
        CudaKernel::Gelu,
        CudaKernel::Rotary,
    ];

    /// The name `RMTEACH_CUDA_KERNELS` uses.
    pub fn name(self) -> &'static str {
        match self {
            CudaKernel::AdamW => "adamw",
            CudaKernel::RmsNorm => "rms_norm",
            CudaKernel::LayerNorm => "layer_norm",
            CudaKernel::PickedLogprob => "picked_logprob",
            CudaKernel::SwiGlu => "swiglu",
            CudaKernel::Gelu => "gelu",
            CudaKernel::Rotary => "rotary",
        }
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

/// A set of [`CudaKernel`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CudaKernels(u32);

impl CudaKernels {
    /// No kernel: every op on candle's kernels (the default).
    pub const NONE: CudaKernels = CudaKernels(0);

    /// Every kernel.
    pub fn all() -> Self {
        CudaKernels(CudaKernel::ALL.iter().fold(0, |acc, k| acc | k.bit()))
    }

    /// Whether `kernel` is in the set.
    pub fn contains(self, kernel: CudaKernel) -> bool {
        self.0 & kernel.bit() != 0
    }

    /// The set with `kernel` added.
    pub fn with(self, kernel: CudaKernel) -> Self {
        CudaKernels(self.0 | kernel.bit())
    }

    /// Parses `all`, `none` (or an empty string) or a comma-separated list of kernel
    /// names; the error lists the names there are.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        match text {
            "" | "none" | "0" => return Ok(Self::NONE),
            "all" | "1" => return Ok(Self::all()),
            _ => {}
        }
        let mut set = Self::NONE;
        for name in text.split(',').map(str::trim) {
            let kernel = CudaKernel::ALL
                .into_iter()
                .find(|k| k.name() == name)
                .ok_or_else(|| {
                    let names: Vec<_> = CudaKernel::ALL.iter().map(|k| k.name()).collect();
                    format!(
                        "unknown CUDA kernel '{name}' (expected all, none, or a comma-separated list of {})",
                        names.join(", ")
                    )
                })?;
            set = set.with(kernel);
        }
        Ok(set)
    }

    /// The names in the set, comma-separated (`none` when empty).
    pub fn names(self) -> String {
        let names: Vec<_> = CudaKernel::ALL
            .into_iter()
            .filter(|k| self.contains(*k))
            .map(CudaKernel::name)
            .collect();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(",")
        }
    }
}

/// The process-wide set (see the module documentation).
static ENABLED: AtomicU32 = AtomicU32::new(0);

/// Sets which ops use their CUDA kernels from now on, process-wide (`runtime::cuda`
/// applies `RMTEACH_CUDA_KERNELS`; gpu-check's comparisons turn them on one by one).
pub fn set_cuda_kernels(kernels: CudaKernels) {
    ENABLED.store(kernels.0, Ordering::Relaxed);
}

/// The ops that use their CUDA kernels.
pub fn cuda_kernels() -> CudaKernels {
    CudaKernels(ENABLED.load(Ordering::Relaxed))
}

thread_local! {
    /// Whether the CPU kernels are off on this thread (see [`without_cpu_kernels`]).
    static CPU_KERNELS_OFF: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with the fused CPU kernels off on the calling thread: every op called
/// inside computes its composite (differentiable tensor ops) on the CPU too. The
/// kernel check (`rmteach exp check-kernels`) takes its reference this way; nothing
/// else does, so the CPU path is unchanged.
pub fn without_cpu_kernels<R>(f: impl FnOnce() -> R) -> R {
    /// Restores the previous setting, also on unwinding.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            CPU_KERNELS_OFF.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(CPU_KERNELS_OFF.with(|c| c.replace(true)));
    f()
}

/// Whether the fused CPU kernels may run on this thread (true unless inside
/// [`without_cpu_kernels`]).
pub(super) fn cpu_kernels_on() -> bool {
    !CPU_KERNELS_OFF.with(Cell::get)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_lists_and_refuses_unknown_ones() {
        assert_eq!(CudaKernels::parse(""), Ok(CudaKernels::NONE));
        assert_eq!(CudaKernels::parse("none"), Ok(CudaKernels::NONE));
        assert_eq!(CudaKernels::parse("all"), Ok(CudaKernels::all()));
        let set = CudaKernels::parse("rms_norm, adamw").unwrap();
        assert!(set.contains(CudaKernel::RmsNorm) && set.contains(CudaKernel::AdamW));
        assert!(!set.contains(CudaKernel::Rotary));
        assert_eq!(set.names(), "adamw,rms_norm");
        assert_eq!(CudaKernels::parse(&set.names()), Ok(set));
        let err = CudaKernels::parse("rms_norm,softmax").unwrap_err();
        assert!(
            err.contains("'softmax'") && err.contains("layer_norm"),
            "{err}"
        );
        assert_eq!(CudaKernels::all().names().split(',').count(), 7);
    }
}
