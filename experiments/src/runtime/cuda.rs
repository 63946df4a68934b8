//! CUDA runtime settings applied once when a CUDA device is opened (the `cuda`
//! feature only; a CPU build compiles none of this).
//!
//! What candle 0.11.1 / cudarc 0.19.10 offer, and what is set:
//! - **Per-op shape/stride uploads.** Every strided candle kernel uploads its dims and
//!   strides to the GPU before the launch. `CudaDevice::enable_cuda_graph_htod_cache`
//!   (candle-core 0.11.1, `src/cuda_backend/device.rs`) turns on, for the calling thread,
//!   a cache of those parameter vectors (`SlicePtrOrNull::params_from_vec`,
//!   `src/cuda_backend/mod.rs`; keyed by device and the vector, never evicted) — but the
//!   same switch also caches *every* host-to-device upload of at most 4096 bytes keyed by
//!   its bytes (`cached_htod_slice`, thread-local, never evicted). candle has no switch
//!   for the shape/stride cache alone. Sampling uploads each step's token ids (a new
//!   content every step), so over a long run that second cache grows without bound: it
//!   is therefore **off by default** and turned on with `RMTEACH_CUDA_HTOD_CACHE=1`
//!   (for the thread that opens the device, for the life of the process).
//! - **Memory-pool release threshold.** candle allocates through cudarc's stream-ordered
//!   `cuMemAllocAsync` from the device's default memory pool when the device supports
//!   pools. The pool's `CU_MEMPOOL_ATTR_RELEASE_THRESHOLD` is how many freed bytes it
//!   keeps instead of returning them to the driver at each synchronisation; the default
//!   here is `u64::MAX` (keep everything freed, as PyTorch's caching allocator does),
//!   overridden with `RMTEACH_CUDA_POOL_RELEASE_THRESHOLD=<bytes>` (0: CUDA's default).
//! - **Event tracking.** cudarc records a CUDA event on every read and write of every
//!   buffer so that several streams synchronise by themselves. candle opens a device on
//!   CUDA's *per-thread* default stream (`Device::new_cuda`, candle-core 0.11.1
//!   `BackendDevice::new`: `context.per_thread_stream()`), so a device used from one
//!   thread computes on one stream and the events only cost time; but `--jobs N` without
//!   `--devices` shares the run's device between N worker threads, that is N streams,
//!   and without the events a worker could read a buffer another thread's stream has not
//!   finished writing. Tracking therefore stays **on by default**;
//!   `RMTEACH_CUDA_EVENT_TRACKING=0` turns it off (`CudaDevice::disable_event_tracking`,
//!   for buffers created after the device is opened) for runs where each device is used
//!   from one thread (`--jobs 1`, or `--devices` with a device per worker).
//! - **The fused ops' own kernels** (`experiments/kernels/*.cu`): off by default until
//!   gpu-check has compared them with the CPU ops on a GPU; `RMTEACH_CUDA_KERNELS=all`
//!   or a list (`rms_norm,adamw`) turns them on, process-wide, when a device is opened.

use crate::ops::{set_cuda_kernels, CudaKernels};
use crate::{Error, Result};
use candle_core::cuda_backend::cudarc::driver::{result, sys};
use candle_core::{CudaDevice, Device};

/// The CUDA runtime settings (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CudaSettings {
    /// Cache small host-to-device uploads (candle's shape/stride parameter cache and
    /// every upload of at most 4096 bytes) on the opening thread.
    pub htod_cache: bool,
    /// Bytes the default memory pool keeps after a synchronisation (`None`: leave the
    /// driver's setting).
    pub release_threshold: Option<u64>,
    /// Keep cudarc's per-buffer event tracking (needed only across several streams).
    pub event_tracking: bool,
    /// The fused ops that run their own CUDA kernels (none by default; see
    /// [`crate::ops::CudaKernels`]).
    pub kernels: CudaKernels,
}

impl Default for CudaSettings {
    fn default() -> Self {
        Self {
            htod_cache: false,
            release_threshold: Some(u64::MAX),
            event_tracking: true,
            kernels: CudaKernels::NONE,
        }
    }
}

/// Environment variables that override [`CudaSettings::default`].
const HTOD_CACHE_VAR: &str = "RMTEACH_CUDA_HTOD_CACHE";
const RELEASE_THRESHOLD_VAR: &str = "RMTEACH_CUDA_POOL_RELEASE_THRESHOLD";
const EVENT_TRACKING_VAR: &str = "RMTEACH_CUDA_EVENT_TRACKING";
const KERNELS_VAR: &str = "RMTEACH_CUDA_KERNELS";

impl CudaSettings {
    /// The defaults with the `RMTEACH_CUDA_*` environment overrides; a malformed value
    /// is an error naming the variable and what it takes.
    pub fn from_env() -> Result<Self> {
        let mut s = Self::default();
        if let Some(v) = env_var(HTOD_CACHE_VAR)? {
            s.htod_cache = parse_switch(HTOD_CACHE_VAR, &v)?;
        }
        if let Some(v) = env_var(EVENT_TRACKING_VAR)? {
            s.event_tracking = parse_switch(EVENT_TRACKING_VAR, &v)?;
        }
        if let Some(v) = env_var(RELEASE_THRESHOLD_VAR)? {
            let bytes: u64 = v.trim().parse().map_err(|_| {
                Error::Input(format!(
                    "{RELEASE_THRESHOLD_VAR}={v:?}: give a number of bytes (0 keeps CUDA's default)"
                ))
            })?;
            s.release_threshold = (bytes > 0).then_some(bytes);
        }
        if let Some(v) = env_var(KERNELS_VAR)? {
            s.kernels =
                CudaKernels::parse(&v).map_err(|e| Error::Input(format!("{KERNELS_VAR}: {e}")))?;
        }
        Ok(s)
    }

    /// Applies the settings to a freshly opened device (nothing for the CPU).
    pub fn apply(&self, device: &Device) -> Result<()> {
        let Device::Cuda(cuda) = device else {
            return Ok(());
        };
        if let Some(bytes) = self.release_threshold {
            set_release_threshold(cuda, bytes)?;
        }
        if !self.event_tracking {
            // SAFETY: asked for by RMTEACH_CUDA_EVENT_TRACKING=0, for a device used from
            // one thread (one stream); see the module docs.
            unsafe { cuda.disable_event_tracking() };
        }
        set_cuda_kernels(self.kernels);
        if self.htod_cache {
            // The guard counts enablings per thread; forgetting it keeps the cache on
            // for this thread for the life of the process.
            std::mem::forget(cuda.enable_cuda_graph_htod_cache());
        }
        Ok(())
    }
}

/// Sets the release threshold of the default memory pool of `cuda`'s GPU (a device
/// without memory pools is left alone: candle then allocates synchronously).
fn set_release_threshold(cuda: &CudaDevice, bytes: u64) -> Result<()> {
    let stream = cuda.cuda_stream();
    let ctx = stream.context();
    if !ctx.has_async_alloc() {
        return Ok(());
    }
    let fail = |what: &str, e: result::DriverError| {
        Error::Input(format!(
            "CUDA device {}: cannot {what} ({e}); set {RELEASE_THRESHOLD_VAR}=0 to leave the pool as is",
            ctx.ordinal()
        ))
    };
    // SAFETY: the device handle comes from a live context; the attribute takes a u64.
    unsafe {
        let pool = result::device::get_default_mem_pool(ctx.cu_device())
            .map_err(|e| fail("get the default memory pool", e))?;
        let mut value = bytes;
        result::mem_pool::set_attribute(
            pool,
            sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
            (&mut value as *mut u64).cast(),
        )
        .map_err(|e| fail("set the memory pool's release threshold", e))?;
    }
    Ok(())
}

/// An environment variable's value (`None` when unset); non-Unicode is an error.
fn env_var(name: &str) -> Result<Option<String>> {
    match std::env::var(name) {
        Ok(v) => Ok(Some(v)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(e) => Err(Error::Input(format!("{name}: {e}"))),
    }
}

/// `1`/`true`/`on` or `0`/`false`/`off`.
fn parse_switch(name: &str, v: &str) -> Result<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "on" => Ok(true),
        "0" | "false" | "off" => Ok(false),
        _ => Err(Error::Input(format!("{name}={v:?}: give 1 or 0"))),
    }
}
