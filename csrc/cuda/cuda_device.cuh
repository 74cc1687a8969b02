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

// The pixels p = n threadIdx.x, n (threadIdx.x + blockDim.x), ... of an H x W map as (row, col),
// without a division per pixel: one per thread, then each step adds n blockDim.x as (rows, cols)
// with a carry. n > 1 walks the first pixels of the thread's groups of n (for the Pack accesses).
struct PixelWalk {
  int p, i, j, di, dj, W, step;
  __device__ explicit PixelWalk(int W_, int n = 1)
      : p(n * threadIdx.x), i(p / W_), j(p % W_), di(n * blockDim.x / W_), dj(n * blockDim.x % W_), W(W_),
        step(n * blockDim.x) {}
  __device__ void next() {
    p += step;
    i += di;
    j += dj;  // dj < W, so at most one carry
    if (j >= W) j -= W, ++i;
  }
};

// N consecutive values of a map moved as one access of N sizeof(T) bytes (16: one vector load or
// store a thread, where a scalar access moves 2-8). ld_pack / st_pack count the bytes as ld / st.
template <typename T, int N>
struct alignas(sizeof(T) * N) Pack {
  T v[N];
};
template <typename T>
constexpr int kPack = 16 / static_cast<int>(sizeof(T));  // values in 16 bytes

template <int N, typename T>
__device__ __forceinline__ Pack<T, N> ld_pack(const T* p) {
  SHR_COUNT_GLOBAL(p, N * sizeof(T), false);
  return *reinterpret_cast<const Pack<T, N>*>(p);
}
template <int N, typename T>
__device__ __forceinline__ void st_pack(T* p, const Pack<T, N>& v) {
  SHR_COUNT_GLOBAL(p, N * sizeof(T), true);
  *reinterpret_cast<Pack<T, N>*>(p) = v;
}

// Whether the maps at `base` (HW values of T each, back to back) can be moved in Packs of kPack<T>:
// the base 16-byte aligned and HW a multiple of kPack, so every map starts aligned too.
template <typename T>
__device__ __forceinline__ bool packable(const T* base, int64_t HW) {
  return reinterpret_cast<uintptr_t>(base) % 16 == 0 && HW % kPack<T> == 0;
}

// Each thread's pixels of one H x W map (HW pixels) in groups of N consecutive values
// (PixelWalk(W, N)): f(p, i[N], j[N]) with the group's first index p and each value's row and
// column. N divides HW. The callers load and store the group as one Pack.
template <int N, typename F>
__device__ __forceinline__ void for_each_group(int HW, int W, const F& f) {
  for (PixelWalk q(W, N); q.p < HW; q.next()) {
    int i[N], j[N];
    i[0] = q.i, j[0] = q.j;
#pragma unroll
    for (int e = 1; e < N; ++e) {
      i[e] = i[e - 1], j[e] = j[e - 1] + 1;
      if (j[e] == W) j[e] = 0, ++i[e];
    }
    f(q.p, i, j);
  }
}

// A map's HW values at o written by the block, value(p, i, j) (in any type that converts to T) at
// pixel p = i W + j: in Packs of kPack<T> where the maps at `base` are packable, else one at a time.
template <int N, typename T, typename F>
__device__ __forceinline__ void store_groups(T* o, int HW, int W, const F& value) {
  for_each_group<N>(HW, W, [&](int p, const int (&i)[N], const int (&j)[N]) {
    Pack<T, N> pk;
#pragma unroll
    for (int e = 0; e < N; ++e) pk.v[e] = static_cast<T>(value(p + e, i[e], j[e]));
    st_pack(o + p, pk);
  });
}
template <typename T, typename F>
__device__ __forceinline__ void store_map(const T* base, T* o, int HW, int W, const F& value) {
  if (packable(base, HW))  // the same for every block of the launch
    store_groups<kPack<T>>(o, HW, W, value);
  else
    store_groups<1>(o, HW, W, value);
}

// A map's HW values at g read by the block, f(v, p, i, j) for the value v at pixel p = i W + j, the
// thread's pixels in increasing order: in Packs as store_map.
template <int N, typename T, typename F>
__device__ __forceinline__ void load_groups(const T* g, int HW, int W, const F& f) {
  for_each_group<N>(HW, W, [&](int p, const int (&i)[N], const int (&j)[N]) {
    const Pack<T, N> pk = ld_pack<N>(g + p);
#pragma unroll
    for (int e = 0; e < N; ++e) f(pk.v[e], p + e, i[e], j[e]);
  });
}
template <typename T, typename F>
__device__ __forceinline__ void load_map(const T* base, const T* g, int HW, int W, const F& f) {
  if (packable(base, HW))
    load_groups<kPack<T>>(g, HW, W, f);
  else
    load_groups<1>(g, HW, W, f);
}

constexpr int kThreads = 256;  // threads per block: one block per map
constexpr int kWarps = kThreads / 32;

// The decode kernels with the Gaussian fit are compiled for this many blocks per SM
// (__launch_bounds__), which caps their registers at 65536 / (kThreads x it): 64 at the default 4,
// where the fit's double-precision iteration fits without spilling (its state, the model window and
// the upstream live in shared memory: cuda/decode_device.cuh). A build may set another (the
// environment variable SHR_FIT_MIN_BLOCKS, which setup.py passes to nvcc; build_info() reports it):
// benchmarks/kernel_resources.py lists the registers and spills for 4, 3 and 2.
#ifndef SHR_FIT_MIN_BLOCKS
#define SHR_FIT_MIN_BLOCKS 4
#endif
constexpr int kFitMinBlocks = SHR_FIT_MIN_BLOCKS;
static_assert(kFitMinBlocks >= 1 && kFitMinBlocks <= 8, "SHR_FIT_MIN_BLOCKS: 1 to 8 blocks of kThreads per SM");
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

// Row totals of a warp's per-lane partials: out[n] = sum over the lanes l = 0..31, in that order
// (deterministic), of scratch[n * 32 + l], for n < N (lane n writes out[n]; out in shared memory,
// not overlapping scratch). All 32 lanes must call it, after writing their partials into scratch;
// every lane may read out after it returns. Two warp barriers: the first orders the partials'
// writes before their reads, the second the totals' writes before every lane's reads.
template <typename T>
__device__ inline void warp_sum_rows(const T* scratch, int N, T* out) {
  const int lane = threadIdx.x & 31;
  __syncwarp(0xffffffffu);
  for (int n = lane; n < N; n += 32) {
    T s = 0;
    for (int l = 0; l < 32; ++l) s += scratch[n * 32 + l];
    out[n] = s;
  }
  __syncwarp(0xffffffffu);
}

// A launch's shape: grid.x blocks of `threads` threads with `smem` bytes of dynamic shared memory.
struct LaunchShape {
  unsigned int blocks;
  int threads;
  int64_t smem;
};

}  // namespace cuda
}  // namespace shr_ops
