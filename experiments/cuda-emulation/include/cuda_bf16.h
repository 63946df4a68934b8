// Stand-in for CUDA's <cuda_bf16.h> in the CPU emulation (cuda_emulation.h): the
// __nv_bfloat16 storage type and its two conversions, rounding to nearest even exactly as
// the hardware's cvt.rn.bf16.f32 does (NaN becomes the canonical quiet NaN 0x7fff).
#pragma once

#include "cuda_emulation.h"

struct __nv_bfloat16 {
  uint16_t bits;
};

inline float __bfloat162float(__nv_bfloat16 h) {
  const uint32_t u = static_cast<uint32_t>(h.bits) << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return __nv_bfloat16{0x7fff};
  // Round to nearest, ties to even: add 0x7fff plus the lowest kept bit, truncate.
  u += 0x7fffu + ((u >> 16) & 1u);
  return __nv_bfloat16{static_cast<uint16_t>(u >> 16)};
}
