// shr_ops::decode and decode_backward: argument checks and the launchers' preparation, shared by
// the CPU (cpu/decode_kernel.cpp) and CUDA (cuda/decode_kernel.cu) kernels.
//
// A launcher calls prepare_decode / prepare_decode_backward, which check every argument (and that
// the tensors are on the launcher's device type), make the inputs contiguous and allocate the
// outputs; for empty input (no map) the outputs are already complete and the launcher returns
// them (`empty()`), launching nothing.
//
// Keep this header light (it is included by .cu files).
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/util/Optional.h>

#include <cmath>
#include <cstdint>
#include <tuple>

#include "op_common.h"

namespace shr_ops {

// Largest pre-filter std of decode (its radius, ceil(3 blur), must stay a small integer).
constexpr double kMaxBlur = 1000.0;

inline void check_decode_args(const at::Tensor& heatmaps, int64_t window, double temperature,
                              c10::optional<double> blur) {
  const char* op = "shr_ops.decode";
  check_float_tensor(heatmaps, op, "heatmaps");
  TORCH_CHECK(heatmaps.dim() >= 2, op, ": heatmaps must have shape [..., K, H, W], got ", heatmaps.sizes());
  TORCH_CHECK(heatmaps.size(-1) >= 1 && heatmaps.size(-2) >= 1, op,
              ": heatmaps must have H >= 1 and W >= 1, got ", heatmaps.sizes());
  TORCH_CHECK(window >= 1 && window % 2 == 1, op, ": window must be an odd integer >= 1, got ", window);
  TORCH_CHECK(std::isfinite(temperature) && temperature > 0, op,
              ": temperature must be a finite number > 0, got ", temperature);
  if (blur.has_value()) {
    TORCH_CHECK(std::isfinite(*blur) && *blur > 0 && *blur <= kMaxBlur, op,
                ": blur must be None or a finite number in (0, ", kMaxBlur, "], got ", *blur);
  }
}

inline void check_decode_backward_args(const at::Tensor& grad_coords, const at::Tensor& grad_scores,
                                       const at::Tensor& heatmaps, const at::Tensor& index, const char* op) {
  const auto lead = heatmaps.sizes().slice(0, heatmaps.dim() - 2);
  const auto acc_type = compute_dtype(heatmaps.scalar_type());
  TORCH_CHECK(index.scalar_type() == at::kLong && index.sizes() == lead, op,
              ": index must be an int64 tensor of shape heatmaps.shape[:-2] = ", lead, ", got ", index.scalar_type(),
              " ", index.sizes());
  TORCH_CHECK(grad_coords.scalar_type() == acc_type && grad_coords.dim() == heatmaps.dim() - 1 &&
                  grad_coords.sizes().slice(0, grad_coords.dim() - 1) == lead && grad_coords.size(-1) == 2,
              op, ": grad_coords must be ", acc_type, " of shape heatmaps.shape[:-2] + (2,), got ",
              grad_coords.scalar_type(), " ", grad_coords.sizes());
  TORCH_CHECK(grad_scores.scalar_type() == acc_type && grad_scores.sizes() == lead, op, ": grad_scores must be ",
              acc_type, " of shape heatmaps.shape[:-2], got ", grad_scores.scalar_type(), " ", grad_scores.sizes());
  check_same_device(heatmaps, grad_coords, op, "heatmaps", "grad_coords");
  check_same_device(heatmaps, grad_scores, op, "heatmaps", "grad_scores");
  check_same_device(heatmaps, index, op, "heatmaps", "index");
}

// decode's outputs for heatmaps [..., H, W]: coords [..., 2] and scores [...] in the compute
// dtype (float64 for float64, else float32), index [...] int64.
inline std::tuple<at::Tensor, at::Tensor, at::Tensor> empty_decode_outputs(const at::Tensor& heatmaps) {
  const auto acc_type = compute_dtype(heatmaps.scalar_type());
  const auto sizes = heatmaps.sizes();
  return {at::empty(leading_with(sizes, 2, {2}), heatmaps.options().dtype(acc_type)),
          at::empty(leading_with(sizes, 2, {}), heatmaps.options().dtype(acc_type)),
          at::empty(leading_with(sizes, 2, {}), heatmaps.options().dtype(at::kLong))};
}

// decode, checked and prepared.
struct DecodeLaunch {
  at::Tensor hm;                     // heatmaps [..., H, W], contiguous, of their own dtype
  at::Tensor coords, scores, index;  // the outputs (empty_decode_outputs)
  int64_t maps, height, width;
  int64_t radius;  // window / 2: the window spans [m - radius, m + radius] on both axes
  bool empty() const { return maps == 0; }
};

// decode_backward, checked and prepared.
struct DecodeBackwardLaunch {
  at::Tensor grad_coords, grad_scores;  // [..., 2] and [...], contiguous, of the compute dtype
  at::Tensor hm;                        // heatmaps [..., H, W], contiguous, of their own dtype
  at::Tensor index;                     // [...] int64, contiguous (each in [0, H*W): the kernels check)
  at::Tensor grad;                      // the result, d loss / d heatmaps: heatmaps' shape and dtype
  int64_t maps, height, width;
  int64_t radius;  // window / 2
  bool empty() const { return maps == 0; }
};

inline DecodeLaunch prepare_decode(const at::Tensor& heatmaps, int64_t window, double temperature,
                                   c10::optional<double> blur, c10::DeviceType kernel) {
  check_decode_args(heatmaps, window, temperature, blur);
  check_kernel_device(heatmaps, kernel, "shr_ops.decode", "heatmaps");
  DecodeLaunch p;
  std::tie(p.coords, p.scores, p.index) = empty_decode_outputs(heatmaps);
  p.maps = p.index.numel();
  p.height = heatmaps.size(-2);
  p.width = heatmaps.size(-1);
  p.radius = window / 2;
  p.hm = heatmaps.contiguous();
  return p;
}

inline DecodeBackwardLaunch prepare_decode_backward(const at::Tensor& grad_coords, const at::Tensor& grad_scores,
                                                    const at::Tensor& heatmaps, const at::Tensor& index,
                                                    int64_t window, double temperature, c10::optional<double> blur,
                                                    c10::DeviceType kernel) {
  const char* op = "shr_ops.decode_backward";
  check_decode_args(heatmaps, window, temperature, blur);
  check_decode_backward_args(grad_coords, grad_scores, heatmaps, index, op);
  check_kernel_device(heatmaps, kernel, op, "heatmaps");
  DecodeBackwardLaunch p;
  p.grad = at::empty(heatmaps.sizes(), heatmaps.options());
  p.maps = index.numel();
  p.height = heatmaps.size(-2);
  p.width = heatmaps.size(-1);
  p.radius = window / 2;
  p.hm = heatmaps.contiguous();
  p.grad_coords = grad_coords.contiguous();
  p.grad_scores = grad_scores.contiguous();
  p.index = index.contiguous();
  return p;
}

}  // namespace shr_ops
