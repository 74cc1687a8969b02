// CUDA launchers of shr_ops::encode, shr_ops::encode_out and shr_ops::encode_backward; the device
// code is in encode_device.cuh, the checks and preparation in ../encode.h. Same semantics as the
// CPU kernels.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include "../shr_ops.h"
#include "cuda_common.cuh"
#include "encode_device.cuh"

namespace shr_ops {
namespace cuda {
namespace {

// Writes the maps of a prepared encode / encode_out into p.out (whose size the caller checked with
// check_map_limits).
void encode_cuda_into(const EncodeLaunch& p, double sigma) {
  if (p.empty()) return;
  const char* op = "shr_ops.encode";
  c10::cuda::CUDAGuard guard(p.lm.device());
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, p.out.scalar_type(), "shr_ops_encode_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const LaunchShape shape = encode_launch_shape<acc_t>(p.maps, p.height, p.width);
    fit_shared_memory(encode_kernel<scalar_t, acc_t>, shape.smem, p.height, p.width, op);
    SHR_LAUNCH(shape.blocks, shape.threads, shape.smem, stream, encode_kernel<scalar_t, acc_t>)(
        p.lm.const_data_ptr<acc_t>(), p.visible_data(), p.out.mutable_data_ptr<scalar_t>(), static_cast<int>(p.height),
        static_cast<int>(p.width), static_cast<acc_t>(-0.5 / (sigma * sigma)), static_cast<acc_t>(p.r2));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

at::Tensor encode_cuda(const at::Tensor& landmarks, const c10::optional<at::Tensor>& visible, int64_t height,
                       int64_t width, double sigma, c10::optional<double> radius, at::ScalarType dtype) {
  check_map_limits(landmarks.numel() / 2, height * width, "shr_ops.encode");  // before allocating the maps
  const EncodeLaunch p = prepare_encode(landmarks, visible, height, width, sigma, radius, dtype, kKernelDevice);
  encode_cuda_into(p, sigma);
  return p.out;
}

void encode_out_cuda(const at::Tensor& landmarks, const c10::optional<at::Tensor>& visible, double sigma,
                     c10::optional<double> radius, at::Tensor out) {
  const EncodeLaunch p = prepare_encode_out(landmarks, visible, sigma, radius, out, kKernelDevice);
  if (!p.empty()) check_map_limits(p.maps, p.height * p.width, "shr_ops.encode_out");
  encode_cuda_into(p, sigma);
}

at::Tensor encode_backward_cuda(const at::Tensor& grad, const at::Tensor& landmarks,
                                const c10::optional<at::Tensor>& visible, double sigma, c10::optional<double> radius) {
  const char* op = "shr_ops.encode_backward";
  const EncodeBackwardLaunch p = prepare_encode_backward(grad, landmarks, visible, sigma, radius, kKernelDevice);
  if (p.empty()) return p.out;
  check_map_limits(p.maps, p.height * p.width, op);
  c10::cuda::CUDAGuard guard(p.lm.device());
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, p.grad.scalar_type(), "shr_ops_encode_backward_cuda", [&] {
    using grad_t = scalar_t;
    auto launch = [&](auto acc_zero) {
      using acc_t = decltype(acc_zero);
      const LaunchShape shape = encode_launch_shape<acc_t>(p.maps, p.height, p.width);
      fit_shared_memory(encode_backward_kernel<grad_t, acc_t>, shape.smem, p.height, p.width, op);
      SHR_LAUNCH(shape.blocks, shape.threads, shape.smem, stream, encode_backward_kernel<grad_t, acc_t>)(
          p.grad.const_data_ptr<grad_t>(), p.lm.const_data_ptr<acc_t>(), p.visible_data(),
          p.out.mutable_data_ptr<acc_t>(), static_cast<int>(p.height), static_cast<int>(p.width),
          static_cast<acc_t>(-0.5 / (sigma * sigma)), static_cast<acc_t>(1.0 / (sigma * sigma)),
          static_cast<acc_t>(p.r2));
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    };
    if (p.lm.scalar_type() == at::kDouble) {
      launch(double(0));
    } else {
      launch(float(0));
    }
  });
  return p.out;
}

}  // namespace
}  // namespace cuda
}  // namespace shr_ops

SHR_CUDA_LIBRARY_IMPL(m) {
  m.impl("encode", &shr_ops::cuda::encode_cuda);
  m.impl("encode_out", &shr_ops::cuda::encode_out_cuda);
  m.impl("encode_backward", &shr_ops::cuda::encode_backward_cuda);
}
