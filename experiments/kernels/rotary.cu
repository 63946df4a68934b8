// Rotary position embedding ("rotate half", transformers' layout): the CUDA kernel of
// src/ops/rotary.rs, forward and its transpose (the backward). x is (b, h, t, d)
// contiguous, cos and sin (b, 1, t, rot); the first `rot` entries of each head are
// rotated, the rest pass through. One thread per output element (grid-stride).
//
// Products and sums use __fmul_rn / __fadd_rn so that nvcc does not contract them into
// fused multiply-adds: each is rounded on its own, as in the CPU kernel and in the
// composite op (candle's separate mul, neg and add kernels). In bf16 the two products are
// rounded to bf16 before the sum, as the composite's bf16 `mul`s round them.
#include "common.cuh"

namespace rmteach {

// Mirrors `rotate_half` in src/ops/rotary.rs. With half = rot / 2, j < half:
//   forward:   o[j] = x[j] c[j] + (-x[j+half]) s[j],  o[j+half] = x[j+half] c[j+half] + x[j] s[j+half]
//   transpose: o[j] = x[j] c[j] + x[j+half] s[j+half], o[j+half] = x[j+half] c[j+half] + (-x[j]) s[j]
template <typename T>
__device__ __forceinline__ void rotary(const T* __restrict__ x, const T* __restrict__ cos,
                                       const T* __restrict__ sin, T* __restrict__ out,
                                       size_t n, int h, int t, int d, int rot, int transpose) {
  const int half = rot / 2;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
       i += (size_t)blockDim.x * gridDim.x) {
    const size_t row = i / d;
    const int col = (int)(i - row * d);
    if (col >= rot) {
      out[i] = x[i];
      continue;
    }
    // Row (bi, hi, ti) of x; the tables' row (bi, ti).
    const size_t bi = row / ((size_t)h * t), ti = row % t;
    const size_t at = (bi * t + ti) * rot;
    const T* xr = x + row * d;
    const bool first = col < half;
    const int other = first ? col + half : col - half;
    // The partner's sine: the forward uses s[col], the transpose s[other].
    const float s = to_f32(sin[at + (transpose ? other : col)]);
    // The partner's sign: -x[j+half] for the first half (forward), -x[j] for the second
    // half (transpose).
    const float xo = to_f32(xr[other]);
    const float partner = (first != (transpose != 0)) ? -xo : xo;
    const float a = round_as<T>(__fmul_rn(to_f32(xr[col]), to_f32(cos[at + col])));
    const float b = round_as<T>(__fmul_rn(partner, s));
    out[i] = from_f32<T>(__fadd_rn(a, b));
  }
}

}  // namespace rmteach

extern "C" __global__ void rotary_f32(const float* x, const float* cos, const float* sin,
                                      float* out, size_t n, int h, int t, int d, int rot,
                                      int transpose) {
  rmteach::rotary<float>(x, cos, sin, out, n, h, t, d, rot, transpose);
}
extern "C" __global__ void rotary_bf16(const __nv_bfloat16* x, const __nv_bfloat16* cos,
                                       const __nv_bfloat16* sin, __nv_bfloat16* out, size_t n,
                                       int h, int t, int d, int rot, int transpose) {
  rmteach::rotary<__nv_bfloat16>(x, cos, sin, out, n, h, t, d, rot, transpose);
}
