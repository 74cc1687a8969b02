// shr_ops::heatmap_loss: argument checks and shapes shared by the CPU and CUDA kernels.
//
// loss = (1 / N) sum_{m, i, j} w * (pred[m, i, j] - t[m, i, j])^2, N = pred.numel() (0 when N = 0), with
//   t[m, i, j] = scale * exp(-((j - x_m)^2 + (i - y_m)^2) / (2 sigma^2))   (0 for an invalid landmark m)
//   w = foreground_weight where t > threshold * scale, else 1.
// The target is never stored: per map, W + H exponentials (separable), then one product per pixel.
// Backward: d loss / d pred = g * 2 w (pred - t) / N and
//   d loss / d (x_m, y_m) = -g * 2 / (N sigma^2) * sum_ij w (pred - t) t ((j - x_m), (i - y_m))
// (w is piecewise constant: its derivative is zero almost everywhere, as in autograd of the reference).
//
// Keep this header light (it is included by .cu files).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>

#include <cmath>

#include "heatmap_loss_params.h"
#include "shr_ops.h"

namespace shr_ops {

inline void check_heatmap_loss_args(const at::Tensor& pred, const at::Tensor& landmarks,
                                    const c10::optional<at::Tensor>& visible, double sigma, double foreground_weight,
                                    double threshold, double scale, const char* op) {
  check_float_tensor(pred, op, "pred");
  TORCH_CHECK(pred.dim() >= 3 && pred.size(-1) >= 1 && pred.size(-2) >= 1, op,
              ": pred must have shape [..., K, H, W] with H >= 1 and W >= 1, got ", pred.sizes());
  const auto acc_type = pred.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  TORCH_CHECK(landmarks.scalar_type() == acc_type, op, ": landmarks must be ", acc_type, " for pred of dtype ",
              pred.scalar_type(), " (float64 for float64 pred, else float32; the wrapper converts), got ",
              landmarks.scalar_type());
  TORCH_CHECK(landmarks.dim() == pred.dim() - 1 && landmarks.size(-1) == 2 &&
                  landmarks.sizes().slice(0, landmarks.dim() - 1) == pred.sizes().slice(0, pred.dim() - 2),
              op, ": landmarks must have shape pred.shape[:-2] + (2,) = [..., K, 2], got landmarks ",
              landmarks.sizes(), " for pred ", pred.sizes());
  check_same_device(pred, landmarks, op, "pred", "landmarks");
  TORCH_CHECK(std::isfinite(sigma) && sigma > 0, op, ": sigma must be a finite number > 0, got ", sigma);
  TORCH_CHECK(std::isfinite(foreground_weight) && foreground_weight >= 0, op,
              ": foreground_weight must be a finite number >= 0, got ", foreground_weight);
  TORCH_CHECK(std::isfinite(threshold) && threshold >= 0, op, ": threshold must be a finite number >= 0, got ",
              threshold);
  TORCH_CHECK(std::isfinite(scale) && scale > 0, op, ": scale must be a finite number > 0, got ", scale);
  if (visible.has_value()) {
    const at::Tensor& v = *visible;
    check_same_device(pred, v, op, "pred", "visible");
    TORCH_CHECK(v.scalar_type() == at::kBool, op, ": visible must be a bool tensor, got ", v.scalar_type());
    TORCH_CHECK(v.sizes() == pred.sizes().slice(0, pred.dim() - 2), op,
                ": visible must have shape pred.shape[:-2] = [..., K] = ", pred.sizes().slice(0, pred.dim() - 2),
                ", got ", v.sizes());
  }
}

inline void check_heatmap_loss_grad(const at::Tensor& grad, const at::Tensor& pred, const char* op) {
  const auto acc_type = pred.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  TORCH_CHECK(grad.dim() == 0 && grad.scalar_type() == acc_type, op, ": grad must be a 0-dim ", acc_type,
              " tensor (the gradient of the scalar loss), got ", grad.scalar_type(), " of shape ", grad.sizes());
  check_same_device(pred, grad, op, "pred", "grad");
}

}  // namespace shr_ops
