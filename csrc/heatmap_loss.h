// shr_ops::heatmap_loss and heatmap_loss_backward: argument checks, scalars and the launchers'
// preparation, shared by the CPU (cpu/heatmap_loss_kernel.cpp) and CUDA (cuda/heatmap_loss_kernel.cu)
// kernels.
//
// loss = (1 / N) sum_{m, i, j} w * (pred[m, i, j] - t[m, i, j])^2, N = pred.numel() (0 when N = 0), with
//   t[m, i, j] = scale * exp(-((j - x_m)^2 + (i - y_m)^2) / (2 sigma^2))   (0 for an invalid landmark m)
//   w = foreground_weight where t > threshold * scale, else 1.
// The target is never stored: per map, W + H exponentials (separable), then one product per pixel.
// Backward: d loss / d pred = g * 2 w (pred - t) / N and
//   d loss / d (x_m, y_m) = -g * 2 / (N sigma^2) * sum_ij w (pred - t) t ((j - x_m), (i - y_m))
// (w is piecewise constant: its derivative is zero almost everywhere, as in autograd of the reference).
//
// A launcher calls prepare_heatmap_loss / prepare_heatmap_loss_backward, which check every
// argument (and that the tensors are on the launcher's device type), make the inputs contiguous and
// allocate the outputs; for empty input (no map) the outputs are already complete (a zero loss)
// and the launcher returns them (`empty()`), launching nothing.
//
// Keep this header light (it is included by .cu files).
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/util/Optional.h>

#include <cmath>
#include <cstdint>

#include "heatmap_loss_params.h"
#include "op_common.h"
#include "shr_math.h"

namespace shr_ops {

inline void check_heatmap_loss_args(const at::Tensor& pred, const at::Tensor& landmarks,
                                    const c10::optional<at::Tensor>& visible, double sigma, double foreground_weight,
                                    double threshold, double scale, const char* op) {
  check_float_tensor(pred, op, "pred");
  TORCH_CHECK(pred.dim() >= 3 && pred.size(-1) >= 1 && pred.size(-2) >= 1, op,
              ": pred must have shape [..., K, H, W] with H >= 1 and W >= 1, got ", pred.sizes());
  const auto acc_type = compute_dtype(pred.scalar_type());
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
  const auto acc_type = compute_dtype(pred.scalar_type());
  TORCH_CHECK(grad.dim() == 0 && grad.scalar_type() == acc_type, op, ": grad must be a 0-dim ", acc_type,
              " tensor (the gradient of the scalar loss), got ", grad.scalar_type(), " of shape ", grad.sizes());
  check_same_device(pred, grad, op, "pred", "grad");
}

// heatmap_loss, checked and prepared.
struct HeatmapLossLaunch {
  at::Tensor pred;  // [..., K, H, W], contiguous, of its own dtype
  at::Tensor lm;    // landmarks [..., K, 2], contiguous, of the compute dtype
  at::Tensor vis;   // visible [..., K], contiguous bool; undefined when absent
  at::Tensor loss;  // the result: a 0-dim tensor of the compute dtype (zero for empty input)
  int64_t maps, height, width;
  double count() const { return static_cast<double>(maps * height * width); }  // N, the mean's divisor
  const bool* visible_data() const { return data_or_null<bool>(vis); }
  bool empty() const { return maps == 0; }
};

// heatmap_loss_backward, checked and prepared.
struct HeatmapLossBackwardLaunch {
  at::Tensor grad;                // 0-dim, of the compute dtype, contiguous
  at::Tensor pred, lm, vis;       // as HeatmapLossLaunch's
  at::Tensor grad_pred, grad_lm;  // the results: pred's shape and dtype, landmarks' shape and dtype
  int64_t maps, height, width;
  double count() const { return static_cast<double>(maps * height * width); }
  const bool* visible_data() const { return data_or_null<bool>(vis); }
  bool empty() const { return maps == 0; }
};

inline HeatmapLossLaunch prepare_heatmap_loss(const at::Tensor& pred, const at::Tensor& landmarks,
                                              const c10::optional<at::Tensor>& visible, double sigma,
                                              double foreground_weight, double threshold, double scale,
                                              c10::DeviceType kernel) {
  const char* op = "shr_ops.heatmap_loss";
  check_heatmap_loss_args(pred, landmarks, visible, sigma, foreground_weight, threshold, scale, op);
  check_kernel_device(pred, kernel, op, "pred");
  HeatmapLossLaunch p;
  p.height = pred.size(-2);
  p.width = pred.size(-1);
  p.maps = pred.numel() / (p.height * p.width);
  const auto options = pred.options().dtype(landmarks.scalar_type());
  p.loss = p.maps == 0 ? at::zeros({}, options) : at::empty({}, options);
  p.pred = pred.contiguous();
  p.lm = landmarks.contiguous();
  p.vis = contiguous_or_undefined(visible);
  return p;
}

inline HeatmapLossBackwardLaunch prepare_heatmap_loss_backward(const at::Tensor& grad, const at::Tensor& pred,
                                                               const at::Tensor& landmarks,
                                                               const c10::optional<at::Tensor>& visible,
                                                               double sigma, double foreground_weight,
                                                               double threshold, double scale,
                                                               c10::DeviceType kernel) {
  const char* op = "shr_ops.heatmap_loss_backward";
  check_heatmap_loss_args(pred, landmarks, visible, sigma, foreground_weight, threshold, scale, op);
  check_heatmap_loss_grad(grad, pred, op);
  check_kernel_device(pred, kernel, op, "pred");
  HeatmapLossBackwardLaunch p;
  p.grad_pred = at::empty(pred.sizes(), pred.options());
  p.grad_lm = at::empty(landmarks.sizes(), landmarks.options());
  p.height = pred.size(-2);
  p.width = pred.size(-1);
  p.maps = pred.numel() / (p.height * p.width);
  p.grad = grad.contiguous();
  p.pred = pred.contiguous();
  p.lm = landmarks.contiguous();
  p.vis = contiguous_or_undefined(visible);
  return p;
}

}  // namespace shr_ops
