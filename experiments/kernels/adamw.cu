// The AdamW update and the global gradient norm on CUDA: the kernels of src/ops/adamw.rs.
//
// adamw_step mirrors update_chunk_impl (src/ops/adamw.rs) line by line, which is the
// tensor-op update of stages::optim::AdamW::apply in one pass: every operation is an
// explicitly rounded f32 intrinsic (__fmul_rn, __fadd_rn, __fdiv_rn, __fsqrt_rn) so nvcc
// cannot contract a product and a sum into an FMA the CPU never forms: the same inputs
// give the same bits as the CPU kernel. In place: theta (the f32 master, or the f32
// weight when there is no master), m and v are read and overwritten element by element;
// for a bf16 model the new master is also stored, rounded to nearest even, into the bf16
// weight (as Tensor::to_dtype rounds it).
//
// Launch shape: one thread per element, blocks of 256 (an element-wise, memory-bound
// pass; consecutive threads take consecutive elements, so every load and store is
// coalesced), grid ceil(n / 256) blocks (n < 2^31 * 256 is checked on the host).
//
// sq_norm_partials / sq_norm_finish: the sum of squares of every gradient in a fixed
// two-stage reduction: NORM_BLOCKS (256) blocks of 256 threads per gradient, each block
// writing one partial sum, then one block of 1024 threads adding all partials. The grid
// does not depend on the device, and there are no atomics: the norm is the same on
// every run.
#include "common.cuh"

namespace rmteach {

// The update's constants in f32 (src/ops/adamw.rs: Consts, repr(C) in this order).
struct AdamWConsts {
  float clip, b1, b2, c1, c2, sm, sv, eps, lr, decay;
  int scaled;  // 1 when clip < 1: the gradient is multiplied by clip
};

// One element of update_chunk_impl; W is the bf16 weight's type (or float with a null
// weight for an f32 model).
template <typename W>
__device__ __forceinline__ void adamw_step(float* __restrict__ theta, float* __restrict__ m,
                                           float* __restrict__ v, const float* __restrict__ g,
                                           W* __restrict__ weight, size_t n,
                                           const AdamWConsts k) {
  const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float gi = k.scaled ? __fmul_rn(g[i], k.clip) : g[i];
  const float mi = __fadd_rn(__fmul_rn(m[i], k.b1), __fmul_rn(gi, k.c1));
  const float vi = __fadd_rn(__fmul_rn(v[i], k.b2), __fmul_rn(__fmul_rn(gi, gi), k.c2));
  const float update =
      __fdiv_rn(__fmul_rn(mi, k.sm), __fadd_rn(__fsqrt_rn(__fmul_rn(vi, k.sv)), k.eps));
  const float th = __fsub_rn(__fmul_rn(theta[i], k.decay), __fmul_rn(update, k.lr));
  theta[i] = th;
  m[i] = mi;
  v[i] = vi;
  if (weight != nullptr) weight[i] = from_f32<W>(th);
}

// partial[blockIdx.x] = sum of g[i]^2 over the block's grid-stride share of g (blocks of
// 256 threads, a grid of NORM_BLOCKS = 256 set by the host: src/ops/adamw.rs).
__device__ __forceinline__ void sq_norm_partials(const float* __restrict__ g, size_t n,
                                                 float* __restrict__ partial) {
  __shared__ float scratch[32];
  float s = 0.0f;
  const size_t stride = (size_t)gridDim.x * blockDim.x;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float x = g[i];
    s += x * x;
  }
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

// out[0] = the sum of count partial sums (one block).
__device__ __forceinline__ void sq_norm_finish(const float* __restrict__ partial, int count,
                                               float* __restrict__ out) {
  __shared__ float scratch[32];
  float s = 0.0f;
  for (int i = threadIdx.x; i < count; i += blockDim.x) s += partial[i];
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) out[0] = s;
}

}  // namespace rmteach

extern "C" __global__ void adamw_step_f32(float* theta, float* m, float* v, const float* g,
                                          size_t n, rmteach::AdamWConsts k) {
  rmteach::adamw_step<float>(theta, m, v, g, nullptr, n, k);
}
extern "C" __global__ void adamw_step_bf16(float* theta, float* m, float* v, const float* g,
                                           __nv_bfloat16* weight, size_t n,
                                           rmteach::AdamWConsts k) {
  rmteach::adamw_step<__nv_bfloat16>(theta, m, v, g, weight, n, k);
}
extern "C" __global__ void sq_norm_partials_f32(const float* g, size_t n, float* partial) {
  rmteach::sq_norm_partials(g, n, partial);
}
extern "C" __global__ void sq_norm_finish_f32(const float* partial, int count, float* out) {
  rmteach::sq_norm_finish(partial, count, out);
}
