// shr_ops::encode, encode_out and encode_backward: argument checks and the launchers' preparation,
// shared by the CPU (cpu/encode_kernel.cpp) and CUDA (cuda/encode_kernel.cu) kernels.
//
// A launcher calls prepare_encode / prepare_encode_out / prepare_encode_backward, which check every
// argument (and that the tensors are on the launcher's device type), make the inputs contiguous and
// allocate the result; for empty input (no map) the result is already complete and the launcher
// returns it (`empty()`), launching nothing.
//
// Keep this header light (it is included by .cu files).
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/util/Optional.h>

#include <cmath>
#include <cstdint>

#include "op_common.h"

namespace shr_ops {

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

// encode_backward's arguments: grad [..., H, W] (any floating dtype) for landmarks [..., 2], then
// landmarks, visible, sigma and radius as encode's (for an output of landmarks' dtype).
inline void check_encode_backward_args(const at::Tensor& grad, const at::Tensor& landmarks,
                                       const c10::optional<at::Tensor>& visible, double sigma,
                                       c10::optional<double> radius) {
  const char* op = "shr_ops.encode_backward";
  TORCH_CHECK(grad.dim() == landmarks.dim() + 1 && grad.sizes().slice(0, grad.dim() - 2) ==
                                                      landmarks.sizes().slice(0, landmarks.dim() - 1),
              op, ": grad must have shape [..., H, W] for landmarks [..., 2], got grad ", grad.sizes(),
              " and landmarks ", landmarks.sizes());
  check_encode_args(landmarks, visible, grad.size(-2), grad.size(-1), sigma, radius,
                    compute_dtype(landmarks.scalar_type()));
  check_float_tensor(grad, op, "grad");
  check_same_device(landmarks, grad, op, "landmarks", "grad");
}

// encode / encode_out, checked and prepared.
struct EncodeLaunch {
  at::Tensor lm;   // landmarks [..., 2], contiguous, of the compute dtype (float32 or float64)
  at::Tensor vis;  // visible [...], contiguous bool; undefined when absent
  at::Tensor out;  // the maps [..., H, W], contiguous, of the output dtype
  int64_t maps, height, width;
  double r2;  // radius^2, or -1 without truncation
  const bool* visible_data() const { return data_or_null<bool>(vis); }
  bool empty() const { return maps == 0; }
};

// encode_backward, checked and prepared.
struct EncodeBackwardLaunch {
  at::Tensor grad;  // grad [..., H, W], contiguous, of its own floating dtype
  at::Tensor lm;    // landmarks [..., 2], contiguous, float32 or float64
  at::Tensor vis;   // visible [...], contiguous bool; undefined when absent
  at::Tensor out;   // d loss / d landmarks [..., 2], landmarks' dtype
  int64_t maps, height, width;
  double r2;  // radius^2, or -1 without truncation
  const bool* visible_data() const { return data_or_null<bool>(vis); }
  bool empty() const { return maps == 0; }
};

inline double encode_r2(c10::optional<double> radius) { return radius.has_value() ? (*radius) * (*radius) : -1.0; }

// The inputs of `p`, whose `out` (the maps) is set, from the checked arguments.
inline void prepare_encode_inputs(EncodeLaunch& p, const at::Tensor& landmarks,
                                  const c10::optional<at::Tensor>& visible, c10::optional<double> radius) {
  p.maps = landmarks.numel() / 2;
  p.height = p.out.size(-2);
  p.width = p.out.size(-1);
  p.lm = landmarks.contiguous();
  p.vis = contiguous_or_undefined(visible);
  p.r2 = encode_r2(radius);
}

inline EncodeLaunch prepare_encode(const at::Tensor& landmarks, const c10::optional<at::Tensor>& visible,
                                   int64_t height, int64_t width, double sigma, c10::optional<double> radius,
                                   at::ScalarType dtype, c10::DeviceType kernel) {
  check_encode_args(landmarks, visible, height, width, sigma, radius, dtype);
  check_kernel_device(landmarks, kernel, "shr_ops.encode", "landmarks");
  EncodeLaunch p;
  p.out = at::empty(leading_with(landmarks.sizes(), 1, {height, width}), landmarks.options().dtype(dtype));
  prepare_encode_inputs(p, landmarks, visible, radius);
  return p;
}

// `out` is the caller's buffer (checked by check_encode_out): the maps are written into it.
inline EncodeLaunch prepare_encode_out(const at::Tensor& landmarks, const c10::optional<at::Tensor>& visible,
                                       double sigma, c10::optional<double> radius, const at::Tensor& out,
                                       c10::DeviceType kernel) {
  check_encode_out(landmarks, out);
  check_encode_args(landmarks, visible, out.size(-2), out.size(-1), sigma, radius, out.scalar_type());
  check_kernel_device(landmarks, kernel, "shr_ops.encode_out", "landmarks");
  EncodeLaunch p;
  p.out = out;
  prepare_encode_inputs(p, landmarks, visible, radius);
  return p;
}

inline EncodeBackwardLaunch prepare_encode_backward(const at::Tensor& grad, const at::Tensor& landmarks,
                                                    const c10::optional<at::Tensor>& visible, double sigma,
                                                    c10::optional<double> radius, c10::DeviceType kernel) {
  check_encode_backward_args(grad, landmarks, visible, sigma, radius);
  check_kernel_device(landmarks, kernel, "shr_ops.encode_backward", "landmarks");
  EncodeBackwardLaunch p;
  p.out = at::empty(landmarks.sizes(), landmarks.options());
  p.maps = landmarks.numel() / 2;
  p.height = grad.size(-2);
  p.width = grad.size(-1);
  p.grad = grad.contiguous();
  p.lm = landmarks.contiguous();
  p.vis = contiguous_or_undefined(visible);
  p.r2 = encode_r2(radius);
  return p;
}

}  // namespace shr_ops
