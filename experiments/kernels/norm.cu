// RMSNorm (and LayerNorm) over the last dimension: the CUDA kernels of
// src/ops/norm.rs. One block per row; f32 sums; the output rounded as the composite op
// rounds it (normalised row in T, then times the weight in T).
#include "common.cuh"

namespace rmteach {

// out[r] = round_T(round_T(x[r] / sqrt(mean(x[r]^2) + eps)) * w), one block per row r.
template <typename T>
__device__ __forceinline__ void rms_norm_fwd(const T* __restrict__ x, const T* __restrict__ w,
                                             T* __restrict__ out, int d, float eps) {
  __shared__ float scratch[32];
  const size_t row = blockIdx.x;
  const T* xr = x + row * d;
  T* orow = out + row * d;
  float ss = 0.0f;
  for (int i = threadIdx.x; i < d; i += blockDim.x) {
    const float v = to_f32(xr[i]);
    ss += v * v;
  }
  ss = block_sum(ss, scratch);
  const float inv = 1.0f / sqrtf(ss / (float)d + eps);
  for (int i = threadIdx.x; i < d; i += blockDim.x) {
    const float xn = round_as<T>(to_f32(xr[i]) * inv);
    orow[i] = from_f32<T>(xn * to_f32(w[i]));
  }
}

}  // namespace rmteach

extern "C" __global__ void rms_norm_fwd_f32(const float* x, const float* w, float* out, int d,
                                            float eps) {
  rmteach::rms_norm_fwd<float>(x, w, out, d, eps);
}
extern "C" __global__ void rms_norm_fwd_bf16(const __nv_bfloat16* x, const __nv_bfloat16* w,
                                             __nv_bfloat16* out, int d, float eps) {
  rmteach::rms_norm_fwd<__nv_bfloat16>(x, w, out, d, eps);
}
