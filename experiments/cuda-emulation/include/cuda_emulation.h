// A CPU emulation of the part of CUDA that experiments/kernels/*.cu use, so that g++
// compiles the kernel files unchanged and runs their launches with CUDA's execution
// model (the test `ops::emulation` in experiments/src drives it through driver.cpp).
//
// - A launch runs the blocks of its grid one after another (x fastest, then y, z).
// - The threads of a block are cooperative fibers (ucontext) on one OS thread: a thread
//   runs until it reaches __syncthreads, __shfl_xor_sync or its end. The scheduler runs
//   one warp at a time, greedily: the first warp (in `Order`: ascending or descending
//   thread ids, and block ids) that can move runs until all its lanes block, so one warp
//   gets as far ahead of the others as the barriers allow. The driver runs every launch
//   both ways and compares the bits, so a result that depends on the schedule (a race,
//   e.g. a missing __syncthreads between warps or lanes) fails.
// - __syncthreads is a block barrier: it releases only when every thread of the block
//   waits at it, at the same source line. A thread that exits while others wait, or
//   threads waiting at different lines, are errors (real hardware hangs or corrupts).
// - __shfl_xor_sync is a warp exchange: it completes only when all 32 lanes of the warp
//   call it at the same line with the same arguments (full mask only); a diverged or
//   partial warp is an error, never a silent value.
// - A state where no thread can move is reported as a deadlock naming every thread's
//   state; every error ends the process with a message on stderr and exit status 3.
// - __shared__ variables are function statics: one copy, which the blocks (run one after
//   another) share. They are not reset between blocks, so a read of shared memory the
//   block never wrote sees an earlier block's value, not garbage.
// - f32 arithmetic is IEEE single precision. Built with -ffp-contract=off no fused
//   multiply-add is formed; built with -ffp-contract=fast (and FMA instructions), g++
//   fuses `a * b + c` where it likes, as nvcc does by default (not at the same places).
//   The __f*_rn intrinsics are never fused in either build, as in nvcc. expf, logf,
//   erff, sqrtf are glibc's, not CUDA's (CUDA's expf, logf, erff are within 2 ulp;
//   results can differ in the last bits).
//
// Not emulated: timing, occupancy, the memory model (all memory is coherent at once),
// atomics, dynamic shared memory, PTX and ptxas.
#pragma once

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <functional>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static

/// CUDA's index triples.
struct uint3 {
  unsigned int x, y, z;
};
struct dim3 {
  unsigned int x = 1, y = 1, z = 1;
};
struct float2 {
  float x, y;
};
inline float2 make_float2(float x, float y) { return float2{x, y}; }

inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }

// Makes the compiler hold `r` rounded to f32 in a register, so that it cannot fuse the
// operation that produced it with the next one: nvcc never contracts an __f*_rn
// intrinsic into a fused multiply-add, even where it contracts plain `a * b + c` (its
// default --fmad=true, which the emulation's FMA build imitates with -ffp-contract=fast).
#if defined(__x86_64__) || defined(__i386__)
#define CUDA_EMU_ROUNDED(r) __asm__("" : "+x"(r))
#elif defined(__aarch64__)
#define CUDA_EMU_ROUNDED(r) __asm__("" : "+w"(r))
#else
#define CUDA_EMU_ROUNDED(r)        \
  do {                             \
    volatile float cuda_emu_v = r; \
    r = cuda_emu_v;                \
  } while (0)
#endif

// Correctly rounded single-precision operations, each rounded on its own.
inline float __fadd_rn(float a, float b) {
  float r = a + b;
  CUDA_EMU_ROUNDED(r);
  return r;
}
inline float __fsub_rn(float a, float b) {
  float r = a - b;
  CUDA_EMU_ROUNDED(r);
  return r;
}
inline float __fmul_rn(float a, float b) {
  float r = a * b;
  CUDA_EMU_ROUNDED(r);
  return r;
}
inline float __fdiv_rn(float a, float b) {
  float r = a / b;
  CUDA_EMU_ROUNDED(r);
  return r;
}
inline float __fsqrt_rn(float a) {
  float r = sqrtf(a);
  CUDA_EMU_ROUNDED(r);
  return r;
}

namespace cuda_emu {

/// The order in which the scheduler visits blocks and threads.
enum class Order { Ascending, Descending };

/// Ends the process with `message` (printf-style) and the launch's position.
[[noreturn]] void fail(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

/// The index of the running thread in its block.
const uint3& thread_index();
/// The running block's index, the block's and the grid's dimensions.
extern uint3 block_index;
extern dim3 block_dim;
extern dim3 grid_dim;

/// The block barrier, called at `file:line`.
void syncthreads(const char* file, int line);

/// The raw exchange of __shfl_xor_sync: 4 bytes of every lane.
uint32_t shfl_xor_bits(uint32_t mask, uint32_t bits, int lane_mask, int width, const char* file,
                       int line);

/// __shfl_xor_sync for 4-byte values.
template <typename T>
T shfl_xor(const char* file, int line, uint32_t mask, T value, int lane_mask, int width = 32) {
  static_assert(sizeof(T) == 4, "the emulation exchanges 4-byte values");
  uint32_t bits;
  memcpy(&bits, &value, 4);
  bits = shfl_xor_bits(mask, bits, lane_mask, width, file, line);
  memcpy(&value, &bits, 4);
  return value;
}

/// Runs `body` as a kernel over `grid` x `block` threads, visiting them in `order`;
/// `name` is the kernel's, for messages.
void launch(const char* name, dim3 grid, dim3 block, Order order,
            const std::function<void()>& body);

}  // namespace cuda_emu

#define threadIdx (::cuda_emu::thread_index())
#define blockIdx (::cuda_emu::block_index)
#define blockDim (::cuda_emu::block_dim)
#define gridDim (::cuda_emu::grid_dim)
#define warpSize 32
#define __syncthreads() ::cuda_emu::syncthreads(__FILE__, __LINE__)
#define __shfl_xor_sync(...) ::cuda_emu::shfl_xor(__FILE__, __LINE__, __VA_ARGS__)
