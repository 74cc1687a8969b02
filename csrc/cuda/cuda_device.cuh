// Device-side helpers shared by the CUDA kernels: block shape, the shared-memory layout of the
// Gaussian factors, the deterministic block reduction, and the two macros that let the same device
// code run under the CPU emulator (csrc/emu/cudaemu.h). No ATen: the kernels (cuda/*_device.cuh)
// include only this and ../shr_math.h.
#pragma once

#include <cstdint>
#include <limits>

#include "../shr_math.h"

// The kernels' dynamic shared-memory array, and a kernel launch. The emulator defines both itself
// before including the device code; under nvcc they are the CUDA syntax.
#ifndef SHR_DYNAMIC_SMEM
#define SHR_DYNAMIC_SMEM(name) extern __shared__ __align__(16) unsigned char name[]
#endif
#ifndef SHR_LAUNCH
// SHR_LAUNCH(grid, block, smem_bytes, stream, kernel<...>)(args...)
#define SHR_LAUNCH(grid, block, smem, stream, ...) __VA_ARGS__<<<grid, block, smem, stream>>>
#endif

// Global memory is read and written through ld / st, so that the emulator can count the bytes each
// launch moves (SHR_COUNT_GLOBAL; benchmarks/memory_traffic.py). Under nvcc they are plain accesses.
#ifndef SHR_COUNT_GLOBAL
#define SHR_COUNT_GLOBAL(ptr, bytes, is_write)
#endif

namespace shr_ops {
namespace cuda {

template <typename T>
__device__ __forceinline__ T ld(const T* p) {
  SHR_COUNT_GLOBAL(p, sizeof(T), false);
  return *p;
}
template <typename T, typename V>
__device__ __forceinline__ void st(T* p, V v) {
  SHR_COUNT_GLOBAL(p, sizeof(T), true);
  *p = static_cast<T>(v);
}
// A load of a value that another block of the same launch wrote before its __threadfence: from L2,
// past this SM's L1 (__ldcg), which a plain load might serve from a stale line.
template <typename T>
__device__ __forceinline__ T ld_coherent(const T* p) {
  SHR_COUNT_GLOBAL(p, sizeof(T), false);
#if defined(__CUDA_ARCH__)
  return __ldcg(p);
#else
  return *p;
#endif
}

// The pixels p = threadIdx.x, threadIdx.x + blockDim.x, ... of an H x W map as (row, col), without a
// division per pixel: one per thread, then each step adds blockDim.x as (rows, cols) with a carry.
struct PixelWalk {
  int p, i, j, di, dj, W;
  __device__ explicit PixelWalk(int W_)
      : p(threadIdx.x), i(threadIdx.x / W_), j(threadIdx.x % W_), di(blockDim.x / W_), dj(blockDim.x % W_), W(W_) {}
  __device__ void next() {
    p += blockDim.x;
    i += di;
    j += dj;  // dj < W, so at most one carry
    if (j >= W) j -= W, ++i;
  }
};

constexpr int kThreads = 256;  // threads per block: one block per map
constexpr int kWarps = kThreads / 32;
// The default shared-memory limit of a block; more needs cudaFuncSetAttribute (opt-in).
constexpr int64_t kDefaultSharedBytes = 48 * 1024;
// Largest H * W of a map: the kernels' per-map pixel loops count in int, p += kThreads.
constexpr int64_t kMaxMapPixels = std::numeric_limits<int32_t>::max() - kThreads;

// Shared-memory layout of one map's separable Gaussian factors, used by encode and heatmap_loss:
// e_x[W], e_y[H], d_x[W], d_y[H] (d: the signed distances j - x, i - y), then the block
// reduction's scratch (8-byte aligned: 2 (H + W) values of 4 or 8 bytes). The whole layout is the
// kernel's dynamic shared memory: these kernels declare no static shared memory, so the dynamic
// size is all that the launcher must fit under the block's limit.
template <typename acc_t>
struct AxesView {
  acc_t *ex, *ey, *dx, *dy;
  unsigned char* scratch;
  __device__ AxesView(unsigned char* smem, int H, int W)
      : ex(reinterpret_cast<acc_t*>(smem)), ey(ex + W), dx(ex + W + H), dy(ex + 2 * W + H),
        scratch(smem + 2 * static_cast<int64_t>(H + W) * sizeof(acc_t)) {}
  static constexpr int64_t bytes(int64_t H, int64_t W, int64_t scratch_bytes) {
    return 2 * (H + W) * static_cast<int64_t>(sizeof(acc_t)) + scratch_bytes;
  }
};

// Fills a's factors for landmark m and returns whether it is valid (finite and visible). A missing
// landmark's factors are left unwritten (encode then writes a zero map without reading them), or
// with `zero_missing` written as 0 (heatmap_loss still visits every pixel: its target there is 0,
// and so is the landmark's gradient). Ends with a barrier: all threads of the block must call it.
template <typename acc_t>
__device__ inline bool fill_axes(const acc_t* lm, const bool* vis, int64_t m, int H, int W, acc_t neg_inv_2s2,
                                 const AxesView<acc_t>& a, bool zero_missing = false) {
  const acc_t x = ld(lm + 2 * m), y = ld(lm + 2 * m + 1);
  const bool valid = ::isfinite(x) && ::isfinite(y) && (vis == nullptr || ld(vis + m));
  if (valid || zero_missing) {
    for (int j = threadIdx.x; j < W; j += blockDim.x) {
      const acc_t d = valid ? static_cast<acc_t>(j) - x : acc_t(0);
      a.dx[j] = d;
      a.ex[j] = valid ? shr_exp(d * d * neg_inv_2s2) : acc_t(0);
    }
    for (int i = threadIdx.x; i < H; i += blockDim.x) {
      const acc_t d = valid ? static_cast<acc_t>(i) - y : acc_t(0);
      a.dy[i] = d;
      a.ey[i] = valid ? shr_exp(d * d * neg_inv_2s2) : acc_t(0);
    }
  }
  __syncthreads();
  return valid;
}

// Sum of N values over the block, in a fixed order (deterministic); the result is valid in
// every thread. All threads of the block must call it. `scratch` holds N * kWarps values.
template <typename T, int N>
__device__ inline void block_sum(T (&v)[N], T* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int n = 0; n < N; ++n) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) v[n] += __shfl_down_sync(0xffffffffu, v[n], off);
  }
  if (lane == 0) {
#pragma unroll
    for (int n = 0; n < N; ++n) scratch[n * kWarps + warp] = v[n];
  }
  __syncthreads();
#pragma unroll
  for (int n = 0; n < N; ++n) {
    T s = 0;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) s += scratch[n * kWarps + w];
    v[n] = s;
  }
  __syncthreads();  // scratch may be reused after this
}

// Sum of N values over the 32 lanes of a warp, in a fixed order (deterministic), into out[0..N)
// (shared memory; lane n writes out[n]), which every lane may read after it returns. All 32 lanes
// must call it. `scratch` (shared memory, the warp's own) holds 32 * N values. Two warp barriers;
// the first also orders every lane's earlier reads of out before its new values.
template <typename T, int N>
__device__ inline void warp_sum_into(const T (&v)[N], T* scratch, T* out) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int n = 0; n < N; ++n) scratch[n * 32 + lane] = v[n];
  __syncwarp(0xffffffffu);
  for (int n = lane; n < N; n += 32) {
    T s = 0;
    for (int l = 0; l < 32; ++l) s += scratch[n * 32 + l];
    out[n] = s;
  }
  __syncwarp(0xffffffffu);
}

// warp_sum_into, with the sums back in v in every lane. `scratch` holds (32 + 1) * N values.
template <typename T, int N>
__device__ inline void warp_sum(T (&v)[N], T* scratch) {
  warp_sum_into(v, scratch, scratch + 32 * N);
#pragma unroll
  for (int n = 0; n < N; ++n) v[n] = scratch[32 * N + n];
  __syncwarp(0xffffffffu);  // scratch may be reused after this
}

// A launch's shape: grid.x blocks of `threads` threads with `smem` bytes of dynamic shared memory.
struct LaunchShape {
  unsigned int blocks;
  int threads;
  int64_t smem;
};

}  // namespace cuda
}  // namespace shr_ops
