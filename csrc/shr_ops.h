// Shared declarations of the shr_ops kernels: argument checks used by both the
// CPU and the CUDA implementations, and small math helpers usable on host and device.
//
// Keep this header light: it is included by .cu files, which must not pull in
// <torch/extension.h> (see ENV.md: minutes of compile time per file).
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/macros/Macros.h>
#include <c10/util/Optional.h>

#include "shr_math.h"

#include <cmath>
#include <cstdint>
#include <tuple>
#include <vector>

namespace shr_ops {

// ---------------------------------------------------------------- checks

// Largest pre-filter std of decode (its radius, ceil(3 blur), must stay a small integer).
constexpr double kMaxBlur = 1000.0;
// Every op checks its arguments here (the Python wrappers check them too, with the
// same words, so direct calls of torch.ops.shr_ops.* are as safe as the wrappers).

inline void check_float_tensor(const at::Tensor& t, const char* op, const char* name) {
  TORCH_CHECK(at::isFloatingType(t.scalar_type()),
              op, ": ", name, " must be a floating-point tensor (float32, float64, float16 or bfloat16), got ",
              t.scalar_type());
}

inline void check_same_device(const at::Tensor& a, const at::Tensor& b, const char* op,
                              const char* name_a, const char* name_b) {
  TORCH_CHECK(a.device() == b.device(), op, ": ", name_b, " must be on the same device as ", name_a,
              " (", a.device(), "), got ", b.device());
}

inline void check_encode_args(const at::Tensor& landmarks, const c10::optional<at::Tensor>& visible,
                              int64_t height, int64_t width, double sigma,
                              c10::optional<double> radius, at::ScalarType dtype) {
  const char* op = "shr_ops.encode";
  TORCH_CHECK(landmarks.scalar_type() == at::kFloat || landmarks.scalar_type() == at::kDouble, op,
              ": landmarks must be float32 or float64 (the wrapper upcasts float16/bfloat16), got ",
              landmarks.scalar_type());
  TORCH_CHECK(landmarks.dim() >= 1 && landmarks.size(-1) == 2, op,
              ": landmarks must have shape [..., K, 2] (last dimension 2 for x, y), got ", landmarks.sizes());
  TORCH_CHECK(height >= 1 && width >= 1, op, ": size must be (H, W) with H >= 1 and W >= 1, got (", height,
              ", ", width, ")");
  TORCH_CHECK(std::isfinite(sigma) && sigma > 0, op, ": sigma must be a finite number > 0, got ", sigma);
  if (radius.has_value()) {
    TORCH_CHECK(std::isfinite(*radius) && *radius > 0, op, ": radius must be None or a finite number > 0, got ",
                *radius);
  }
  TORCH_CHECK(at::isFloatingType(dtype), op, ": dtype must be a floating-point dtype, got ", dtype);
  const bool compute_double = dtype == at::kDouble;
  TORCH_CHECK(compute_double == (landmarks.scalar_type() == at::kDouble), op,
              ": landmarks must be float64 for a float64 output and float32 otherwise, got landmarks ",
              landmarks.scalar_type(), " for dtype ", dtype);
  if (visible.has_value()) {
    const at::Tensor& v = *visible;
    check_same_device(landmarks, v, op, "landmarks", "visible");
    TORCH_CHECK(v.scalar_type() == at::kBool, op, ": visible must be a bool tensor, got ", v.scalar_type());
    TORCH_CHECK(v.sizes() == landmarks.sizes().slice(0, landmarks.dim() - 1), op,
                ": visible must have shape landmarks.shape[:-1] = ", landmarks.sizes().slice(0, landmarks.dim() - 1),
                ", got ", v.sizes());
  }
}

// encode_out's buffer: a contiguous floating-point tensor of shape landmarks.shape[:-1] + (H, W)
// on landmarks' device (H, W are its last two sizes).
inline void check_encode_out(const at::Tensor& landmarks, const at::Tensor& out) {
  const char* op = "shr_ops.encode_out";
  check_same_device(landmarks, out, op, "landmarks", "out");
  TORCH_CHECK(at::isFloatingType(out.scalar_type()), op,
              ": out must be a floating-point tensor (float32, float64, float16 or bfloat16), got ", out.scalar_type());
  TORCH_CHECK(out.dim() == landmarks.dim() + 1 && out.dim() >= 2 &&
                  out.sizes().slice(0, out.dim() - 2) == landmarks.sizes().slice(0, landmarks.dim() - 1),
              op, ": out must have shape landmarks.shape[:-1] + (H, W) = ", landmarks.sizes().slice(0, landmarks.dim() - 1),
              " + (H, W), got ", out.sizes());
  TORCH_CHECK(out.is_contiguous(), op, ": out must be contiguous");
}

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
  const auto acc_type = heatmaps.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
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

// Output shape helpers: leading dims of an input, with trailing dims appended.
inline std::vector<int64_t> leading_with(at::IntArrayRef sizes, int64_t drop, std::initializer_list<int64_t> tail) {
  std::vector<int64_t> out(sizes.begin(), sizes.end() - drop);
  out.insert(out.end(), tail.begin(), tail.end());
  return out;
}

// decode's outputs for heatmaps [..., H, W]: coords [..., 2] and scores [...] in the compute
// dtype (float64 for float64, else float32), index [...] int64.
inline std::tuple<at::Tensor, at::Tensor, at::Tensor> empty_decode_outputs(const at::Tensor& heatmaps) {
  const auto acc_type = heatmaps.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const auto sizes = heatmaps.sizes();
  return {at::empty(leading_with(sizes, 2, {2}), heatmaps.options().dtype(acc_type)),
          at::empty(leading_with(sizes, 2, {}), heatmaps.options().dtype(acc_type)),
          at::empty(leading_with(sizes, 2, {}), heatmaps.options().dtype(at::kLong))};
}

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

}  // namespace shr_ops
