//! Fused tensor ops with hand-written CPU kernels and backward passes, each falling
//! back to the same function in differentiable candle ops on other devices and dtypes.
//! With the `cuda` feature, ops also have CUDA kernels (`experiments/kernels/*.cu`, f32
//! and bf16), used on a CUDA device only when switched on ([`CudaKernels`]; off by
//! default until gpu-check has compared them on a GPU).
//!
//! Why: candle's autograd zeroes and accumulates a gradient buffer for every node of
//! the graph, and its reductions over leading dimensions (bias gradients) take a slow
//! strided path; one fused node per norm, softmax, bias and output head replaces
//! chains of full-size temporaries (see README, "Performance").

mod activation;
mod adamw;
mod attention;
mod bias;
#[cfg(feature = "cuda")]
mod cuda;
#[cfg(test)]
mod emulation;
mod kernel;
#[cfg(any(test, feature = "cuda"))]
mod launch;
mod linear;
mod norm;
mod picked_logprob;
mod qkv_attention;
mod rotary;
mod softmax;
mod switch;

pub use activation::{gelu_erf, swiglu};
pub use adamw::{adamw_update_cpu, adamw_update_cuda, global_norm_cuda, AdamWStep};
pub use attention::attention;
pub use bias::add_bias;
pub use linear::linear;
pub use norm::{layer_norm, rms_norm};
pub use picked_logprob::{linear_picked_logprob, picked_logprob};
pub use qkv_attention::{llama_attention, neox_attention};
pub use rotary::rotary;
pub use softmax::{log_softmax, softmax_last_dim};
pub use switch::{cuda_kernels, set_cuda_kernels, without_cpu_kernels, CudaKernel, CudaKernels};
