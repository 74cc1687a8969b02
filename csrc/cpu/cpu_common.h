// Helpers shared by the CPU kernels (the counterpart of cuda/cuda_common.cuh): how the maps are
// split between threads, the fixed lanes of row sums, and which landmarks are drawn.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace shr_ops {
namespace cpu {

// Every CPU kernel runs at::parallel_for over maps, at least this many pixels per chunk.
constexpr int64_t kGrainElements = 32768;

// The grain (maps per parallel_for chunk, at least 1) for maps of `map_size` pixels.
inline int64_t maps_per_chunk(int64_t map_size) { return std::max<int64_t>(1, kGrainElements / map_size); }

// Independent partial sums of a row sum (encode backward, heatmap_loss): vectorisable, added in a
// fixed order, so a result does not depend on the thread count or the instruction set.
constexpr int kSumLanes = 8;

// Landmark m of lm [M, 2] is drawn: both coordinates finite and, with a mask, visible.
template <typename acc_t>
inline bool landmark_valid(const acc_t* lm, const bool* vis, int64_t m) {
  return std::isfinite(lm[2 * m]) && std::isfinite(lm[2 * m + 1]) && (vis == nullptr || vis[m]);
}

}  // namespace cpu
}  // namespace shr_ops
