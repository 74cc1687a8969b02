// CUDA launchers of shr_ops::heatmap_loss and shr_ops::heatmap_loss_backward; the device code is
// in heatmap_loss_device.cuh (formulas: ../heatmap_loss.h). Same semantics as the CPU kernels.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
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
  check_heatmap_loss_args(pred, landmarks, visible, sigma, foreground_weight, threshold, scale, op);
  check_kernel_device(pred, op, "pred");
  c10::cuda::CUDAGuard guard(pred.device());
  const int64_t H = pred.size(-2), W = pred.size(-1);
  const int64_t M = pred.numel() / (H * W);
  if (M == 0) return at::zeros({}, pred.options().dtype(landmarks.scalar_type()));
  at::Tensor out = at::empty({}, pred.options().dtype(landmarks.scalar_type()));
  grid_for_maps(M, H * W, op);
  at::Tensor partial = at::empty({M}, pred.options().dtype(at::kDouble));
  const at::Tensor p = pred.contiguous();
  const at::Tensor lm = landmarks.contiguous();
  const at::Tensor vis = visible.has_value() ? visible->contiguous() : at::Tensor();
  const bool* vis_ptr = vis.defined() ? vis.const_data_ptr<bool>() : nullptr;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, p.scalar_type(), "shr_ops_heatmap_loss_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const LaunchShape shape = loss_launch_shape<acc_t>(M, H, W);
    fit_shared_memory(heatmap_loss_kernel<scalar_t, acc_t>, shape.smem, H, W, op);
    SHR_LAUNCH(shape.blocks, shape.threads, shape.smem, stream, heatmap_loss_kernel<scalar_t, acc_t>)(
        p.const_data_ptr<scalar_t>(), lm.const_data_ptr<acc_t>(), vis_ptr, partial.mutable_data_ptr<double>(),
        static_cast<int>(H), static_cast<int>(W), loss_params<acc_t>(sigma, foreground_weight, threshold, scale));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    SHR_LAUNCH(1, kThreads, 0, stream, sum_partials_kernel<acc_t>)(
        partial.const_data_ptr<double>(), M, static_cast<double>(M * H * W), out.mutable_data_ptr<acc_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> heatmap_loss_backward_cuda(const at::Tensor& grad, const at::Tensor& pred,
                                                              const at::Tensor& landmarks,
                                                              const c10::optional<at::Tensor>& visible, double sigma,
                                                              double foreground_weight, double threshold,
                                                              double scale) {
  const char* op = "shr_ops.heatmap_loss_backward";
  check_heatmap_loss_args(pred, landmarks, visible, sigma, foreground_weight, threshold, scale, op);
  check_heatmap_loss_grad(grad, pred, op);
  check_kernel_device(pred, op, "pred");
  c10::cuda::CUDAGuard guard(pred.device());
  at::Tensor grad_pred = at::empty(pred.sizes(), pred.options());
  at::Tensor grad_lm = at::empty(landmarks.sizes(), landmarks.options());
  const int64_t H = pred.size(-2), W = pred.size(-1);
  const int64_t M = pred.numel() / (H * W);
  if (M == 0) return {grad_pred, grad_lm};
  grid_for_maps(M, H * W, op);
  const at::Tensor g = grad.contiguous();
  const at::Tensor p = pred.contiguous();
  const at::Tensor lm = landmarks.contiguous();
  const at::Tensor vis = visible.has_value() ? visible->contiguous() : at::Tensor();
  const bool* vis_ptr = vis.defined() ? vis.const_data_ptr<bool>() : nullptr;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, p.scalar_type(), "shr_ops_heatmap_loss_backward_cuda",
                                  [&] {
                                    using acc_t = at::opmath_type<scalar_t>;
                                    const LaunchShape shape = loss_launch_shape<acc_t>(M, H, W);
                                    fit_shared_memory(heatmap_loss_backward_kernel<scalar_t, acc_t>, shape.smem, H, W,
                                                      op);
                                    SHR_LAUNCH(shape.blocks, shape.threads, shape.smem, stream,
                                               heatmap_loss_backward_kernel<scalar_t, acc_t>)(
                                        g.const_data_ptr<acc_t>(), p.const_data_ptr<scalar_t>(),
                                        lm.const_data_ptr<acc_t>(), vis_ptr, grad_pred.mutable_data_ptr<scalar_t>(),
                                        grad_lm.mutable_data_ptr<acc_t>(), static_cast<int>(H), static_cast<int>(W),
                                        static_cast<double>(M * H * W),
                                        loss_params<acc_t>(sigma, foreground_weight, threshold, scale));
                                    C10_CUDA_KERNEL_LAUNCH_CHECK();
                                  });
  return {grad_pred, grad_lm};
}

}  // namespace
}  // namespace cuda
}  // namespace shr_ops

SHR_CUDA_LIBRARY_IMPL(m) {
  m.impl("heatmap_loss", &shr_ops::cuda::heatmap_loss_cuda);
  m.impl("heatmap_loss_backward", &shr_ops::cuda::heatmap_loss_backward_cuda);
}
