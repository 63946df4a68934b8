// What the fused ops' CUDA kernels share: f32 arithmetic on f32 or bf16 storage, and
// block-wide sums. Every kernel computes in f32 and rounds once when it stores, as the
// CPU kernels (f32) and the composite ops (bf16 inputs cast to f32) do.
//
// Each kernel is a __device__ template over its storage type T (float or __nv_bfloat16),
// exported as two extern "C" __global__ wrappers `<name>_f32` and `<name>_bf16`, the
// names `src/ops/cuda.rs` loads (`kernel_name`).
#pragma once

#include <cuda_bf16.h>
#include <stdint.h>

namespace rmteach {

__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }

// f32 -> T, rounding to nearest even for bf16 (as candle's and torch's casts do).
template <typename T> __device__ __forceinline__ T from_f32(float x);
template <> __device__ __forceinline__ float from_f32<float>(float x) { return x; }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

// Rounds an f32 value as storing it in T would (identity for f32): the composite ops
// round intermediate results to the model's dtype at the same places.
template <typename T> __device__ __forceinline__ float round_as(float x) {
  return to_f32(from_f32<T>(x));
}

// Sum over the 32 lanes of a warp; every lane gets the total.
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Max over the 32 lanes of a warp; every lane gets it.
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1)
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// Sum over the whole block (blockDim.x a multiple of 32, at most 1024); every thread
// gets the total. `scratch` is 32 floats of shared memory; the call synchronises the
// block, so scratch can be reused by the next call.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int warps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : 0.0f;
  return warp_sum(v);
}

// Max over the whole block, as block_sum.
__device__ __forceinline__ float block_max(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int warps = blockDim.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : -INFINITY;
  return warp_max(v);
}

}  // namespace rmteach
