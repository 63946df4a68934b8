// RMSNorm and LayerNorm over the last dimension, forward and backward: the CUDA kernels of
// src/ops/norm.rs. One block per row; f32 sums; the output rounded as the composite op
// rounds it (normalised row in T, then times the weight in T).
//
// bf16 rounding points (T = bf16; every round_as is the identity for T = f32, where the
// kernels are the CPU kernels' formulas):
// - forward: xn = round(x_hat), y = round(xn * w) (RMSNorm), y = round(round(xn * w) + b)
//   (LayerNorm): the composite op casts the normalised row to T, then multiplies by the
//   weight and adds the bias as T tensors.
// - backward: the composite's gradient reaches the f32 part as h = round(g * w) (the T
//   product of the broadcast multiply), dx is formed in f32 and rounded once (the cast
//   back to T); the weight's gradient sums round(g * xn) with xn = round(x_hat), the
//   bias's sums g. The parameter sums accumulate in f32 and round once at the end.
// Products that feed an addition are written with __fmul_rn / __fsub_rn where the CPU
// kernel's order matters, so nvcc does not contract them into an FMA the CPU never forms.
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


// The input's gradient and the row statistics of RMSNorm's backward, one block per row r
// (mirrors RmsNormGrad::cpu_fwd's row loop): r_inv = 1 / sqrt(mean(x^2) + eps),
// h = g w, c = r_inv^2 sum(h x) / d, dx = r_inv (h - x c). Writes stats[2r] = 0 (the
// mean LayerNorm subtracts) and stats[2r + 1] = r_inv for norm_param_partials.
template <typename T>
__device__ __forceinline__ void rms_norm_bwd_rows(const T* __restrict__ x,
                                                  const T* __restrict__ w,
                                                  const T* __restrict__ g, T* __restrict__ dx,
                                                  float* __restrict__ stats, int d, float eps) {
  __shared__ float scratch[32];
  const size_t row = blockIdx.x;
  const T* xr = x + row * d;
  const T* gr = g + row * d;
  T* orow = dx + row * d;
  float ss = 0.0f, dot = 0.0f;
  for (int i = threadIdx.x; i < d; i += blockDim.x) {
    const float v = to_f32(xr[i]);
    const float h = round_as<T>(to_f32(gr[i]) * to_f32(w[i]));
    ss += v * v;
    dot += h * v;
  }
  ss = block_sum(ss, scratch);
  dot = block_sum(dot, scratch);
  const float inv = 1.0f / sqrtf(ss / (float)d + eps);
  const float c = inv * inv * dot / (float)d;
  for (int i = threadIdx.x; i < d; i += blockDim.x) {
    const float h = round_as<T>(to_f32(gr[i]) * to_f32(w[i]));
    orow[i] = from_f32<T>(inv * __fsub_rn(h, __fmul_rn(to_f32(xr[i]), c)));
  }
  if (threadIdx.x == 0) {
    stats[2 * row] = 0.0f;
    stats[2 * row + 1] = inv;
  }
}

// (mean, 1 / sqrt(var + eps)) of a row, two passes as the CPU's mean_inv_std.
template <typename T>
__device__ __forceinline__ float2 row_mean_inv_std(const T* __restrict__ xr, int d, float eps,
                                                   float* scratch) {
  float s = 0.0f;
  for (int i = threadIdx.x; i < d; i += blockDim.x) s += to_f32(xr[i]);
  const float mean = block_sum(s, scratch) / (float)d;
  float var = 0.0f;
  for (int i = threadIdx.x; i < d; i += blockDim.x) {
    const float c = to_f32(xr[i]) - mean;
    var += c * c;
  }
  var = block_sum(var, scratch) / (float)d;
  return make_float2(mean, 1.0f / sqrtf(var + eps));
}

// out[r] = round_T(round_T(round_T((x[r] - mean) r_inv) * w) + b), one block per row r
// (mirrors LayerNorm::cpu_fwd: (x - mean) * inv * w + b; layer_norm_composite's
// rounding for bf16).
template <typename T>
__device__ __forceinline__ void layer_norm_fwd(const T* __restrict__ x, const T* __restrict__ w,
                                               const T* __restrict__ b, T* __restrict__ out,
                                               int d, float eps) {
  __shared__ float scratch[32];
  const size_t row = blockIdx.x;
  const T* xr = x + row * d;
  T* orow = out + row * d;
  const float2 mi = row_mean_inv_std(xr, d, eps, scratch);
  for (int i = threadIdx.x; i < d; i += blockDim.x) {
    const float xn = round_as<T>((to_f32(xr[i]) - mi.x) * mi.y);
    const float xw = round_as<T>(__fmul_rn(xn, to_f32(w[i])));
    orow[i] = from_f32<T>(__fadd_rn(xw, to_f32(b[i])));
  }
}

// The input's gradient and the row statistics of LayerNorm's backward, one block per row
// (mirrors LayerNormGrad::cpu_fwd's row loop): x_hat = (x - mean) r_inv, h = g w,
// dx = r_inv (h - mean(h) - x_hat mean(h x_hat)). Writes stats[2r] = mean,
// stats[2r + 1] = r_inv.
template <typename T>
__device__ __forceinline__ void layer_norm_bwd_rows(const T* __restrict__ x,
                                                    const T* __restrict__ w,
                                                    const T* __restrict__ g,
                                                    T* __restrict__ dx,
                                                    float* __restrict__ stats, int d,
                                                    float eps) {
  __shared__ float scratch[32];
  const size_t row = blockIdx.x;
  const T* xr = x + row * d;
  const T* gr = g + row * d;
  T* orow = dx + row * d;
  const float2 mi = row_mean_inv_std(xr, d, eps, scratch);
  const float mean = mi.x, inv = mi.y;
  float sh = 0.0f, shx = 0.0f;
  for (int i = threadIdx.x; i < d; i += blockDim.x) {
    const float h = round_as<T>(to_f32(gr[i]) * to_f32(w[i]));
    sh += h;
    shx += h * (to_f32(xr[i]) - mean) * inv;
  }
  const float mh = block_sum(sh, scratch) / (float)d;
  const float mhx = block_sum(shx, scratch) / (float)d;
  for (int i = threadIdx.x; i < d; i += blockDim.x) {
    const float h = round_as<T>(to_f32(gr[i]) * to_f32(w[i]));
    const float xh = (to_f32(xr[i]) - mean) * inv;
    orow[i] = from_f32<T>(inv * __fsub_rn(__fsub_rn(h, mh), __fmul_rn(xh, mhx)));
  }
  if (threadIdx.x == 0) {
    stats[2 * row] = mean;
    stats[2 * row + 1] = inv;
  }
}

// Per-chunk column sums of the norm parameters' gradients (mirrors the column_sums part
// of RmsNormGrad / LayerNormGrad::cpu_fwd): dweight += round(g round((x - mean) r_inv)),
// and for LayerNorm (k = 2) dbias += g, over the rows of one chunk.
//
// Launch shape (why not one thread per column over all rows: at rows = 16k, d = 2048
// that is 2048 threads walking 16k rows each, a few percent of an H200): grid
// (ceil(d / 32), chunks), block (32, 8): the 32 x-threads take 32 adjacent columns (one
// coalesced 32-wide load per row), the 8 y-threads rows ty, ty + 8, ... of the chunk of
// rows_per_chunk rows; the 8 partial sums meet in shared memory and y-thread 0 writes the
// chunk's sum to partial[chunk * k d + j * d + column] (j = 0 weight, 1 bias).
// norm_param_finish then adds the chunks in order: no atomics, so the result does not
// depend on scheduling (run-to-run identical).
template <typename T>
__device__ __forceinline__ void norm_param_partials(const T* __restrict__ x,
                                                    const T* __restrict__ g,
                                                    const float* __restrict__ stats,
                                                    float* __restrict__ partial, int rows, int d,
                                                    int k, int rows_per_chunk) {
  __shared__ float sw[8][33];
  __shared__ float sb[8][33];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int col = blockIdx.x * 32 + tx;
  const int chunk = blockIdx.y;
  const int r0 = chunk * rows_per_chunk;
  const int r1 = min(rows, r0 + rows_per_chunk);
  float aw = 0.0f, ab = 0.0f;
  if (col < d) {
    for (int r = r0 + ty; r < r1; r += 8) {
      const size_t at = (size_t)r * d + col;
      const float gv = to_f32(g[at]);
      const float xn = round_as<T>((to_f32(x[at]) - stats[2 * r]) * stats[2 * r + 1]);
      aw += round_as<T>(gv * xn);
      ab += gv;
    }
  }
  sw[ty][tx] = aw;
  sb[ty][tx] = ab;
  __syncthreads();
  if (ty == 0 && col < d) {
    float w_sum = 0.0f, b_sum = 0.0f;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      w_sum += sw[j][tx];
      b_sum += sb[j][tx];
    }
    float* p = partial + (size_t)chunk * k * d;
    p[col] = w_sum;
    if (k == 2) p[d + col] = b_sum;
  }
}

// params[j] = round_T(sum over chunks of partial[chunk * width + j]), one thread per
// column j of width = k d values (the chunks added in order).
template <typename T>
__device__ __forceinline__ void norm_param_finish(const float* __restrict__ partial,
                                                  T* __restrict__ params, int chunks,
                                                  int width) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= width) return;
  float s = 0.0f;
  for (int c = 0; c < chunks; ++c) s += partial[(size_t)c * width + j];
  params[j] = from_f32<T>(s);
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

#define RMTEACH_NORM_WRAPPERS(SUFFIX, T)                                                       \
  extern "C" __global__ void rms_norm_bwd_rows_##SUFFIX(const T* x, const T* w, const T* g,    \
                                                        T* dx, float* stats, int d,            \
                                                        float eps) {                           \
    rmteach::rms_norm_bwd_rows<T>(x, w, g, dx, stats, d, eps);                                 \
  }                                                                                            \
  extern "C" __global__ void layer_norm_fwd_##SUFFIX(const T* x, const T* w, const T* b,       \
                                                     T* out, int d, float eps) {               \
    rmteach::layer_norm_fwd<T>(x, w, b, out, d, eps);                                          \
  }                                                                                            \
  extern "C" __global__ void layer_norm_bwd_rows_##SUFFIX(const T* x, const T* w, const T* g,  \
                                                          T* dx, float* stats, int d,          \
                                                          float eps) {                         \
    rmteach::layer_norm_bwd_rows<T>(x, w, g, dx, stats, d, eps);                               \
  }                                                                                            \
  extern "C" __global__ void norm_param_partials_##SUFFIX(const T* x, const T* g,              \
                                                          const float* stats, float* partial,  \
                                                          int rows, int d, int k,              \
                                                          int rows_per_chunk) {                \
    rmteach::norm_param_partials<T>(x, g, stats, partial, rows, d, k, rows_per_chunk);         \
  }                                                                                            \
  extern "C" __global__ void norm_param_finish_##SUFFIX(const float* partial, T* params,       \
                                                        int chunks, int width) {               \
    rmteach::norm_param_finish<T>(partial, params, chunks, width);                             \
  }

RMTEACH_NORM_WRAPPERS(f32, float)
RMTEACH_NORM_WRAPPERS(bf16, __nv_bfloat16)
