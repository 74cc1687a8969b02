// CUDA launchers of shr_ops::heatmap_loss and shr_ops::heatmap_loss_backward; the device code is
// in heatmap_loss_device.cuh, the checks, preparation and formulas in ../heatmap_loss.h. Same
// semantics as the CPU kernels.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <tuple>

#include "../heatmap_loss.h"
#include "cuda_common.cuh"
#include "heatmap_loss_device.cuh"

namespace shr_ops {
namespace cuda {
namespace {

at::Tensor heatmap_loss_cuda(const at::Tensor& pred, const at::Tensor& landmarks,
                             const c10::optional<at::Tensor>& visible, double sigma, double foreground_weight,
                             double threshold, double scale) {
  const char* op = "shr_ops.heatmap_loss";
  const HeatmapLossLaunch p =
      prepare_heatmap_loss(pred, landmarks, visible, sigma, foreground_weight, threshold, scale, kKernelDevice);
  if (p.empty()) return p.loss;
  check_map_limits(p.maps, p.height * p.width, op);
  c10::cuda::CUDAGuard guard(p.pred.device());
  at::Tensor partial = device_temporary({p.maps}, p.pred.options().dtype(at::kDouble));
  auto stream = c10::cuda::getCurrentCUDAStream();
  const at::Tensor done = completion_counter(p.pred.device(), stream);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, p.pred.scalar_type(), "shr_ops_heatmap_loss_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const LaunchShape shape = loss_launch_shape<acc_t>(p.maps, p.height, p.width);
    fit_shared_memory(heatmap_loss_kernel<scalar_t, acc_t>, shape.smem, p.height, p.width, op);
    SHR_LAUNCH(shape.blocks, shape.threads, shape.smem, stream, heatmap_loss_kernel<scalar_t, acc_t>)(
        p.pred.const_data_ptr<scalar_t>(), p.lm.const_data_ptr<acc_t>(), p.visible_data(),
        partial.mutable_data_ptr<double>(), reinterpret_cast<unsigned int*>(done.data_ptr<int32_t>()),
        p.loss.mutable_data_ptr<acc_t>(), static_cast<int>(p.height), static_cast<int>(p.width), p.count(),
        loss_params<acc_t>(sigma, foreground_weight, threshold, scale));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return p.loss;
}

std::tuple<at::Tensor, at::Tensor> heatmap_loss_backward_cuda(const at::Tensor& grad, const at::Tensor& pred,
                                                              const at::Tensor& landmarks,
                                                              const c10::optional<at::Tensor>& visible, double sigma,
                                                              double foreground_weight, double threshold,
                                                              double scale) {
  const char* op = "shr_ops.heatmap_loss_backward";
  const HeatmapLossBackwardLaunch p = prepare_heatmap_loss_backward(grad, pred, landmarks, visible, sigma,
                                                                    foreground_weight, threshold, scale, kKernelDevice);
  if (p.empty()) return {p.grad_pred, p.grad_lm};
  check_map_limits(p.maps, p.height * p.width, op);
  c10::cuda::CUDAGuard guard(p.pred.device());
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, p.pred.scalar_type(), "shr_ops_heatmap_loss_backward_cuda", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        const LaunchShape shape = loss_launch_shape<acc_t>(p.maps, p.height, p.width);
        fit_shared_memory(heatmap_loss_backward_kernel<scalar_t, acc_t>, shape.smem, p.height, p.width, op);
        SHR_LAUNCH(shape.blocks, shape.threads, shape.smem, stream, heatmap_loss_backward_kernel<scalar_t, acc_t>)(
            p.grad.const_data_ptr<acc_t>(), p.pred.const_data_ptr<scalar_t>(), p.lm.const_data_ptr<acc_t>(),
            p.visible_data(), p.grad_pred.mutable_data_ptr<scalar_t>(), p.grad_lm.mutable_data_ptr<acc_t>(),
            static_cast<int>(p.height), static_cast<int>(p.width), p.count(),
            loss_params<acc_t>(sigma, foreground_weight, threshold, scale));
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
  return {p.grad_pred, p.grad_lm};
}

}  // namespace
}  // namespace cuda
}  // namespace shr_ops

SHR_CUDA_LIBRARY_IMPL(m) {
  m.impl("heatmap_loss", &shr_ops::cuda::heatmap_loss_cuda);
  m.impl("heatmap_loss_backward", &shr_ops::cuda::heatmap_loss_backward_cuda);
}
