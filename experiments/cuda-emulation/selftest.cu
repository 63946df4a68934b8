// Kernels that break CUDA's execution model on purpose, for the emulation's own test
// (ops::emulation, "emulation fails loudly"): each must stop the driver with a message,
// never give a result. Launched with one block of 64 threads and a 64-float buffer.
#include "../kernels/common.cuh"

// Only lanes 0..15 of each warp call the warp sum: the exchange never completes.
extern "C" __global__ void selftest_diverged_shuffle(float* out) {
  float v = static_cast<float>(threadIdx.x);
  if (threadIdx.x % 32 < 16) v = rmteach::warp_sum(v);
  out[threadIdx.x] = v;
}

// Warp 1 skips the barrier that warp 0 waits at.
extern "C" __global__ void selftest_skipped_barrier(float* out) {
  __shared__ float s[64];
  s[threadIdx.x] = static_cast<float>(threadIdx.x);
  if (threadIdx.x < 32) __syncthreads();
  out[threadIdx.x] = s[63 - threadIdx.x];
}

// Reads another warp's shared-memory write without a barrier in between.
extern "C" __global__ void selftest_missing_barrier(float* out) {
  __shared__ float s[64];
  s[threadIdx.x] = static_cast<float>(threadIdx.x + 1);
  out[threadIdx.x] = s[63 - threadIdx.x];
}
