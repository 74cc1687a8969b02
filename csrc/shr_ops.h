// What the launchers of encode and decode include: the host-side taps of decode's pre-filter, the
// kernels' math helpers (shr_math.h, usable on host and device), and every op's header with its
// checks and preparation (op_common.h, encode.h, decode.h; heatmap_loss.h stands alone).
//
// Keep this header light: it is included by .cu files, which must not pull in
// <torch/extension.h> (docs/building.md: minutes of compile time per file).
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "decode.h"
#include "encode.h"
#include "op_common.h"
#include "shr_math.h"

namespace shr_ops {

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

}  // namespace shr_ops
