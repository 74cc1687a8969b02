// CPU decode: rectangles of a map, and values addressed by frame coordinates; used by the filter
// (blur.h), the search (search.h) and the window (window.h).
#pragma once

#include <algorithm>
#include <cstdint>

namespace shr_ops {
namespace cpu {

// A rectangle [i0, i1] x [j0, j1] of a map (inclusive bounds).
struct Box {
  int64_t i0, i1, j0, j1;
  int64_t rows() const { return i1 - i0 + 1; }
  int64_t cols() const { return j1 - j0 + 1; }
  // The box grown by g on every side, clipped to an H x W frame.
  Box grown(int64_t g, int64_t H, int64_t W) const {
    return {std::max<int64_t>(0, i0 - g), std::min<int64_t>(H - 1, i1 + g), std::max<int64_t>(0, j0 - g),
            std::min<int64_t>(W - 1, j1 + g)};
  }
};

// Values of a map (or of a box of it) addressed by frame coordinates (i, j).
template <typename T>
struct View {
  const T* data;
  int64_t i0, j0, stride;
  T operator()(int64_t i, int64_t j) const { return data[(i - i0) * stride + (j - j0)]; }
};

}  // namespace cpu
}  // namespace shr_ops
