// Helpers shared by the CUDA kernels: launch checks and deterministic block reductions.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <cstdint>
#include <limits>

namespace shr_ops {
namespace cuda {

// Shared-memory layout of one map's separable Gaussian factors, used by encode and heatmap_loss:
// e_x[W], e_y[H], d_x[W], d_y[H] (d: the signed distances j - x, i - y).
template <typename acc_t>
struct AxesView {
  acc_t *ex, *ey, *dx, *dy;
  __device__ AxesView(acc_t* smem, int H, int W) : ex(smem), ey(smem + W), dx(smem + W + H), dy(smem + 2 * W + H) {}
};

constexpr int kThreads = 256;  // threads per block: one block per map
constexpr int kWarps = kThreads / 32;
constexpr int64_t kMaxSharedBytes = 48 * 1024;

inline unsigned int grid_for_maps(int64_t maps, int64_t map_size, const char* op) {
  TORCH_CHECK(maps <= std::numeric_limits<int32_t>::max(), op, ": at most 2^31 - 1 maps per call on CUDA, got ",
              maps);
  TORCH_CHECK(map_size <= std::numeric_limits<int32_t>::max(), op,
              ": H * W must be below 2^31 on CUDA, got ", map_size);
  return static_cast<unsigned int>(maps);
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

}  // namespace cuda
}  // namespace shr_ops
