// The MLP activations, elementwise: the CUDA kernels of src/ops/activation.rs (exact GELU
// and SwiGLU, forward and backward). f32 arithmetic on f32 or bf16 storage; the forward
// rounds where the composite op (candle's `gelu_erf`, `silu` and `mul` kernels) rounds
// in bf16, the backward computes the whole gradient in f32 and rounds once (the
// composite's backward rounds after each of its bf16 ops, so bf16 gradients agree to
// bf16 rounding, not bit for bit). Grid-stride loops over n elements.
//
// GELU's erf is CUDA's erff (within 2 ulp of the correctly rounded value); the CPU kernel
// uses a rational fit within 1 ulp (`erf_f32` in src/ops/kernel.rs), so f32 results can
// differ in the last bits. exp is CUDA's expf (within 2 ulp; the CPU's exp_nonpos too).
#include "common.cuh"

namespace rmteach {

// 1 / sqrt(2) and 1 / sqrt(2 pi), the CPU kernel's constants.
#define RMTEACH_FRAC_1_SQRT_2 0.70710678118654752f
#define RMTEACH_INV_SQRT_2PI 0.3989423f

// Mirrors `sigmoid` in src/ops/kernel.rs: 1 / (1 + e^-x) from e = exp(-|x|).
__device__ __forceinline__ float sigmoid(float x) {
  const float e = expf(-fabsf(x));
  const float r = 1.0f / (1.0f + e);
  return x >= 0.0f ? r : e * r;
}

// Phi(x) = 0.5 (1 + erf(x / sqrt 2)).
__device__ __forceinline__ float normal_cdf(float x) {
  return 0.5f * (1.0f + erff(x * RMTEACH_FRAC_1_SQRT_2));
}

// Mirrors `gelu_impl`: out = x Phi(x). (The CPU's 0.5 x (1 + erf) is the same product:
// the factor 0.5 is exact.) In bf16 Phi is rounded first, as candle's `x * normcdfg(x)`.
template <typename T>
__device__ __forceinline__ void gelu_erf_fwd(const T* __restrict__ x, T* __restrict__ out,
                                             size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
       i += (size_t)blockDim.x * gridDim.x) {
    const float v = to_f32(x[i]);
    out[i] = from_f32<T>(v * round_as<T>(normal_cdf(v)));
  }
}

// Mirrors `gelu_grad_impl`: dx = g (Phi(x) + x phi(x)).
template <typename T>
__device__ __forceinline__ void gelu_erf_bwd(const T* __restrict__ x, const T* __restrict__ g,
                                             T* __restrict__ out, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
       i += (size_t)blockDim.x * gridDim.x) {
    const float v = to_f32(x[i]);
    const float pdf = RMTEACH_INV_SQRT_2PI * expf(-0.5f * v * v);
    out[i] = from_f32<T>(to_f32(g[i]) * (normal_cdf(v) + v * pdf));
  }
}

// Mirrors `swiglu_impl`: out = silu(a) b = (a sigmoid(a)) b; in bf16 silu(a) is rounded
// first, as the composite `gate.silu()? * up` rounds it.
template <typename T>
__device__ __forceinline__ void swiglu_fwd(const T* __restrict__ a, const T* __restrict__ b,
                                           T* __restrict__ out, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
       i += (size_t)blockDim.x * gridDim.x) {
    const float av = to_f32(a[i]);
    out[i] = from_f32<T>(round_as<T>(av * sigmoid(av)) * to_f32(b[i]));
  }
}

// Mirrors `swiglu_grad_gate_impl` and `swiglu_grad_up_impl`: with s = sigmoid(a),
// da = g b s (1 + a (1 - s)) into out[0..n], db = g a s into out[n..2n] (the CPU op's
// (2, n) block).
template <typename T>
__device__ __forceinline__ void swiglu_bwd(const T* __restrict__ a, const T* __restrict__ b,
                                           const T* __restrict__ g, T* __restrict__ out,
                                           size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
       i += (size_t)blockDim.x * gridDim.x) {
    const float av = to_f32(a[i]), gv = to_f32(g[i]);
    const float s = sigmoid(av);
    out[i] = from_f32<T>(gv * to_f32(b[i]) * s * (1.0f + av * (1.0f - s)));
    out[n + i] = from_f32<T>(gv * av * s);
  }
}

}  // namespace rmteach

extern "C" __global__ void gelu_erf_fwd_f32(const float* x, float* out, size_t n) {
  rmteach::gelu_erf_fwd<float>(x, out, n);
}
extern "C" __global__ void gelu_erf_fwd_bf16(const __nv_bfloat16* x, __nv_bfloat16* out,
                                             size_t n) {
  rmteach::gelu_erf_fwd<__nv_bfloat16>(x, out, n);
}
extern "C" __global__ void gelu_erf_bwd_f32(const float* x, const float* g, float* out,
                                            size_t n) {
  rmteach::gelu_erf_bwd<float>(x, g, out, n);
}
extern "C" __global__ void gelu_erf_bwd_bf16(const __nv_bfloat16* x, const __nv_bfloat16* g,
                                             __nv_bfloat16* out, size_t n) {
  rmteach::gelu_erf_bwd<__nv_bfloat16>(x, g, out, n);
}
extern "C" __global__ void swiglu_fwd_f32(const float* a, const float* b, float* out, size_t n) {
  rmteach::swiglu_fwd<float>(a, b, out, n);
}
extern "C" __global__ void swiglu_fwd_bf16(const __nv_bfloat16* a, const __nv_bfloat16* b,
                                           __nv_bfloat16* out, size_t n) {
  rmteach::swiglu_fwd<__nv_bfloat16>(a, b, out, n);
}
extern "C" __global__ void swiglu_bwd_f32(const float* a, const float* b, const float* g,
                                          float* out, size_t n) {
  rmteach::swiglu_bwd<float>(a, b, g, out, n);
}
extern "C" __global__ void swiglu_bwd_bf16(const __nv_bfloat16* a, const __nv_bfloat16* b,
                                           const __nv_bfloat16* g, __nv_bfloat16* out,
                                           size_t n) {
  rmteach::swiglu_bwd<__nv_bfloat16>(a, b, g, out, n);
}
