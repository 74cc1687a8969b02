// Math helpers of the kernels, usable on host and device. No ATen: the CUDA device code
// (cuda/*_device.cuh) includes only this and cuda/cuda_device.cuh, so it compiles with nvcc, with
// g++ under the CUDA emulator (csrc/emu/cudaemu.h) and in the emulator's sanitizer harness.
#pragma once

#include <cfloat>
#include <cmath>

#if defined(__CUDACC__)
#define SHR_HOST_DEVICE __host__ __device__
#else
#define SHR_HOST_DEVICE
#endif

namespace shr_ops {

template <typename T>
SHR_HOST_DEVICE inline T shr_exp(T v);
template <>
SHR_HOST_DEVICE inline float shr_exp<float>(float v) { return ::expf(v); }
template <>
SHR_HOST_DEVICE inline double shr_exp<double>(double v) { return ::exp(v); }

// The smallest normal number of T (a macro constant: std::numeric_limits is host code under nvcc).
template <typename T>
SHR_HOST_DEVICE constexpr T smallest_normal();
template <>
SHR_HOST_DEVICE constexpr float smallest_normal<float>() { return FLT_MIN; }
template <>
SHR_HOST_DEVICE constexpr double smallest_normal<double>() { return DBL_MIN; }

// NaN-aware "a beats b" for a first-maximum argmax scanned in increasing index order:
// NaN beats every number (torch.argmax returns the first NaN), equal values do not beat.
template <typename T>
SHR_HOST_DEVICE inline bool beats(T a, T b) {
  return (a != a) ? !(b != b) : (a > b);
}

// a * b and a + b each rounded once: nvcc contracts `a * b + c` into one fused multiply-add, which
// rounds once where the CPU kernels round twice. Where a decision or an exact tie depends on the
// value (the truncation disc, the pre-filter whose maximum decode takes), the CUDA kernels use these
// so that they compute the same bits as the CPU kernels.
#define SHR_ROUNDED_OP(name, T, expr, device_intrinsic) \
  SHR_HOST_DEVICE inline T name(T a, T b) { return SHR_ROUNDED_IMPL(expr, device_intrinsic); }
#if defined(__CUDA_ARCH__)
#define SHR_ROUNDED_IMPL(expr, device_intrinsic) device_intrinsic(a, b)
#else
// Host code (and the emulator, which compiles the device code as host code) is built for x86-64
// without -mfma: no fused multiply-add instruction, so each operation rounds on its own.
#define SHR_ROUNDED_IMPL(expr, device_intrinsic) (expr)
#endif
SHR_ROUNDED_OP(mul_rn, float, a * b, __fmul_rn)
SHR_ROUNDED_OP(mul_rn, double, a * b, __dmul_rn)
SHR_ROUNDED_OP(add_rn, float, a + b, __fadd_rn)
SHR_ROUNDED_OP(add_rn, double, a + b, __dadd_rn)
#undef SHR_ROUNDED_OP
#undef SHR_ROUNDED_IMPL

// (dx^2 + dy^2) with each operation rounded, as the CPU kernels compute the truncation test.
template <typename T>
SHR_HOST_DEVICE inline T squared_distance(T dx, T dy) {
  return add_rn(mul_rn(dx, dx), mul_rn(dy, dy));
}

}  // namespace shr_ops
