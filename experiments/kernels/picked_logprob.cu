// The output head's log-softmax + gather: the CUDA kernels of src/ops/picked_logprob.rs.
// Logits are f32 or bf16 storage (bf16: the head's matrix product in the model's dtype,
// which the composite op casts to f32 exactly before its log-softmax); everything is
// computed in f32, the log-probabilities are f32, the logits' gradient is rounded once
// to the logits' storage type (as the composite's f32 gradient is when it passes back
// through the cast).
//
// A target id outside the vocabulary gives a NaN log-probability and a NaN gradient row
// (the CPU op reports an error; checking here would need a copy to the host, which
// synchronises the stream and cannot be captured in a CUDA graph).
#include "common.cuh"

namespace rmteach {

// Mirrors `PickedLogprob::cpu_fwd`: out[r] = x[r][t] - (max + ln sum exp(x[r] - max)),
// one block per row r. One pass over the row: each thread keeps a running maximum m and
// s = sum exp(x - m) of its entries (rescaled when m grows), then the block combines the
// pairs (the CPU op takes the maximum first, then the sum; the results differ only by f32
// rounding of the sum).
template <typename T>
__device__ __forceinline__ void picked_logprob_fwd(const T* __restrict__ logits,
                                                   const uint32_t* __restrict__ targets,
                                                   float* __restrict__ out, int vocab) {
  __shared__ float scratch[32];
  const size_t row = blockIdx.x;
  const T* x = logits + row * (size_t)vocab;
  float m = -INFINITY, s = 0.0f;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    const float v = to_f32(x[i]);
    if (v > m) {
      s = s * expf(m - v) + 1.0f;
      m = v;
    } else {
      s += expf(v - m);
    }
  }
  const float max = block_max(m, scratch);
  // A thread that saw no entry (m = -inf) adds 0.
  s = m == -INFINITY ? 0.0f : s * expf(m - max);
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) {
    const uint32_t t = targets[row];
    out[row] = t < (uint32_t)vocab ? to_f32(x[t]) - (max + logf(s)) : NAN;
  }
}

// Mirrors `PickedLogprobGrad::cpu_fwd`: with coef[r] = (logp, up) and
// lse = x[r][t] - logp, grad[r][v] = -up exp(x[r][v] - lse) + [v = t] up, one block per
// row r (no reduction: the log-sum-exp is recovered from the forward result).
template <typename T>
__device__ __forceinline__ void picked_logprob_bwd(const T* __restrict__ logits,
                                                   const uint32_t* __restrict__ targets,
                                                   const float* __restrict__ coef,
                                                   T* __restrict__ grad, int vocab) {
  const size_t row = blockIdx.x;
  const T* x = logits + row * (size_t)vocab;
  T* g = grad + row * (size_t)vocab;
  const uint32_t t = targets[row];
  const float logp = coef[2 * row], up = coef[2 * row + 1];
  const bool valid = t < (uint32_t)vocab;
  const float lse = valid ? to_f32(x[t]) - logp : NAN;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    // The CPU's exp_nonpos clamps the argument at 0 (lse >= every entry up to rounding).
    float v = -up * expf(fminf(to_f32(x[i]) - lse, 0.0f));
    if (i == (int)t) v += up;
    g[i] = from_f32<T>(v);
  }
}

}  // namespace rmteach

extern "C" __global__ void picked_logprob_fwd_f32(const float* logits, const uint32_t* targets,
                                                  float* out, int vocab) {
  rmteach::picked_logprob_fwd<float>(logits, targets, out, vocab);
}
extern "C" __global__ void picked_logprob_fwd_bf16(const __nv_bfloat16* logits,
                                                   const uint32_t* targets, float* out,
                                                   int vocab) {
  rmteach::picked_logprob_fwd<__nv_bfloat16>(logits, targets, out, vocab);
}
extern "C" __global__ void picked_logprob_bwd_f32(const float* logits, const uint32_t* targets,
                                                  const float* coef, float* grad, int vocab) {
  rmteach::picked_logprob_bwd<float>(logits, targets, coef, grad, vocab);
}
extern "C" __global__ void picked_logprob_bwd_bf16(const __nv_bfloat16* logits,
                                                   const uint32_t* targets, const float* coef,
                                                   __nv_bfloat16* grad, int vocab) {
  rmteach::picked_logprob_bwd<__nv_bfloat16>(logits, targets, coef, grad, vocab);
}
