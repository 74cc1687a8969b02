// Small math helpers of the shr_ops kernels, usable on host and device and shared by the CPU and
// CUDA implementations; and, for the launchers that include only this header, every op's header
// with its checks and preparation (op_common.h, encode.h, decode.h; heatmap_loss.h includes this
// one).
//
// Keep this header light: it is included by .cu files, which must not pull in
// <torch/extension.h> (see ENV.md: minutes of compile time per file).
#pragma once

#include <c10/macros/Macros.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "decode.h"
#include "encode.h"
#include "op_common.h"

namespace shr_ops {

// ---------------------------------------------------------------- math helpers

// decode's pre-filter: the 2r + 1 taps of a Gaussian of std `blur`, r = ceil(3 blur), normalised to
// sum 1, in double (as shr_ops.filters.gaussian_blur). Shared by the CPU and CUDA kernels.
inline std::vector<double> gaussian_taps(double blur) {
  const int64_t r = static_cast<int64_t>(std::ceil(3.0 * blur));
  std::vector<double> k(2 * r + 1);
  double s = 0;
  for (int64_t d = -r; d <= r; ++d) s += k[d + r] = std::exp(-static_cast<double>(d * d) / (2.0 * blur * blur));
  for (double& v : k) v /= s;
  return k;
}

template <typename T>
C10_HOST_DEVICE inline T shr_exp(T v);
template <>
C10_HOST_DEVICE inline float shr_exp<float>(float v) { return ::expf(v); }
template <>
C10_HOST_DEVICE inline double shr_exp<double>(double v) { return ::exp(v); }

// NaN-aware "a beats b" for a first-maximum argmax scanned in increasing index order:
// NaN beats every number (torch.argmax returns the first NaN), equal values do not beat.
template <typename T>
C10_HOST_DEVICE inline bool beats(T a, T b) {
  return (a != a) ? !(b != b) : (a > b);
}

}  // namespace shr_ops
