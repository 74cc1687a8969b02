// CUDA launchers of shr_ops::encode, shr_ops::encode_out and shr_ops::encode_backward; the device
// code is in encode_device.cuh. Same semantics as the CPU kernels.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include "../shr_ops.h"
#include "cuda_common.cuh"
#include "encode_device.cuh"

namespace shr_ops {
namespace cuda {
namespace {

// Writes the maps of `landmarks` (checked) into `out` (contiguous, of out's dtype).
void encode_cuda_into(const at::Tensor& landmarks, const c10::optional<at::Tensor>& visible, double sigma,
                      c10::optional<double> radius, at::Tensor& out) {
  const char* op = "shr_ops.encode";
  check_kernel_device(landmarks, op, "landmarks");
  c10::cuda::CUDAGuard guard(landmarks.device());
  const int64_t M = landmarks.numel() / 2;
  if (M == 0) return;
  const int64_t height = out.size(-2), width = out.size(-1);
  grid_for_maps(M, height * width, op);
  const at::Tensor lm = landmarks.contiguous();
  const at::Tensor vis = visible.has_value() ? visible->contiguous() : at::Tensor();
  const bool* vis_ptr = vis.defined() ? vis.const_data_ptr<bool>() : nullptr;
  const double r2 = radius.has_value() ? (*radius) * (*radius) : -1.0;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, out.scalar_type(), "shr_ops_encode_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const LaunchShape shape = encode_launch_shape<acc_t>(M, height, width);
    fit_shared_memory(encode_kernel<scalar_t, acc_t>, shape.smem, height, width, op);
    SHR_LAUNCH(shape.blocks, shape.threads, shape.smem, stream, encode_kernel<scalar_t, acc_t>)(
        lm.const_data_ptr<acc_t>(), vis_ptr, out.mutable_data_ptr<scalar_t>(), static_cast<int>(height),
        static_cast<int>(width), static_cast<acc_t>(-0.5 / (sigma * sigma)), static_cast<acc_t>(r2));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

at::Tensor encode_cuda(const at::Tensor& landmarks, const c10::optional<at::Tensor>& visible, int64_t height,
                       int64_t width, double sigma, c10::optional<double> radius, at::ScalarType dtype) {
  check_encode_args(landmarks, visible, height, width, sigma, radius, dtype);
  grid_for_maps(landmarks.numel() / 2, height * width, "shr_ops.encode");  // before allocating the output
  at::Tensor out = at::empty(leading_with(landmarks.sizes(), 1, {height, width}), landmarks.options().dtype(dtype));
  encode_cuda_into(landmarks, visible, sigma, radius, out);
  return out;
}

void encode_out_cuda(const at::Tensor& landmarks, const c10::optional<at::Tensor>& visible, double sigma,
                     c10::optional<double> radius, at::Tensor out) {
  check_encode_out(landmarks, out);
  check_encode_args(landmarks, visible, out.size(-2), out.size(-1), sigma, radius, out.scalar_type());
  encode_cuda_into(landmarks, visible, sigma, radius, out);
}

at::Tensor encode_backward_cuda(const at::Tensor& grad, const at::Tensor& landmarks,
                                const c10::optional<at::Tensor>& visible, double sigma, c10::optional<double> radius) {
  const char* op = "shr_ops.encode_backward";
  TORCH_CHECK(grad.dim() == landmarks.dim() + 1 && grad.sizes().slice(0, grad.dim() - 2) ==
                                                      landmarks.sizes().slice(0, landmarks.dim() - 1),
              op, ": grad must have shape [..., H, W] for landmarks [..., 2], got grad ", grad.sizes(),
              " and landmarks ", landmarks.sizes());
  const int64_t H = grad.size(-2), W = grad.size(-1);
  check_encode_args(landmarks, visible, H, W, sigma, radius,
                    landmarks.scalar_type() == at::kDouble ? at::kDouble : at::kFloat);
  check_float_tensor(grad, op, "grad");
  check_same_device(landmarks, grad, op, "landmarks", "grad");
  check_kernel_device(landmarks, op, "landmarks");
  c10::cuda::CUDAGuard guard(landmarks.device());
  at::Tensor out = at::empty(landmarks.sizes(), landmarks.options());
  const int64_t M = landmarks.numel() / 2;
  if (M == 0) return out;
  grid_for_maps(M, H * W, op);
  const at::Tensor lm = landmarks.contiguous();
  const at::Tensor g = grad.contiguous();
  const at::Tensor vis = visible.has_value() ? visible->contiguous() : at::Tensor();
  const bool* vis_ptr = vis.defined() ? vis.const_data_ptr<bool>() : nullptr;
  const double r2 = radius.has_value() ? (*radius) * (*radius) : -1.0;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, g.scalar_type(), "shr_ops_encode_backward_cuda", [&] {
    using grad_t = scalar_t;
    auto launch = [&](auto acc_zero) {
      using acc_t = decltype(acc_zero);
      const LaunchShape shape = encode_launch_shape<acc_t>(M, H, W);
      fit_shared_memory(encode_backward_kernel<grad_t, acc_t>, shape.smem, H, W, op);
      SHR_LAUNCH(shape.blocks, shape.threads, shape.smem, stream, encode_backward_kernel<grad_t, acc_t>)(
          g.const_data_ptr<grad_t>(), lm.const_data_ptr<acc_t>(), vis_ptr, out.mutable_data_ptr<acc_t>(),
          static_cast<int>(H), static_cast<int>(W), static_cast<acc_t>(-0.5 / (sigma * sigma)),
          static_cast<acc_t>(1.0 / (sigma * sigma)), static_cast<acc_t>(r2));
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    };
    if (lm.scalar_type() == at::kDouble) {
      launch(double(0));
    } else {
      launch(float(0));
    }
  });
  return out;
}

}  // namespace
}  // namespace cuda
}  // namespace shr_ops

SHR_CUDA_LIBRARY_IMPL(m) {
  m.impl("encode", &shr_ops::cuda::encode_cuda);
  m.impl("encode_out", &shr_ops::cuda::encode_out_cuda);
  m.impl("encode_backward", &shr_ops::cuda::encode_backward_cuda);
}
