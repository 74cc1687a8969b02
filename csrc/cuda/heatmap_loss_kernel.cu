// CUDA kernels of shr_ops::heatmap_loss and shr_ops::heatmap_loss_backward (formulas: ../heatmap_loss.h).
// Same semantics and formulas as the CPU kernels. One block per map: the separable factors of the
// SHR target go to shared memory, each thread takes a strided share of the pixels, and a block
// reduction (fixed order) gives the map's float64 partial; a second one-block kernel sums the
// partials in a fixed order. No atomics: the result is deterministic.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <tuple>

#include "../heatmap_loss.h"
#include "cuda_common.cuh"

namespace shr_ops {
namespace cuda {
namespace {

// The map's factors in the AxesView layout (cuda_common.cuh), all zero for a missing landmark (its
// target is zero, and so is its gradient): unlike encode, every pixel is still visited (pred - 0).
template <typename acc_t>
__device__ inline void fill_loss_axes(const acc_t* lm, const bool* vis, int64_t m, int H, int W, acc_t neg_inv_2s2,
                                      const AxesView<acc_t>& a) {
  const acc_t x = lm[2 * m], y = lm[2 * m + 1];
  const bool valid = ::isfinite(x) && ::isfinite(y) && (vis == nullptr || vis[m]);
  for (int j = threadIdx.x; j < W; j += blockDim.x) {
    const acc_t d = valid ? static_cast<acc_t>(j) - x : acc_t(0);
    a.dx[j] = d;
    a.ex[j] = valid ? shr_exp(d * d * neg_inv_2s2) : acc_t(0);
  }
  for (int i = threadIdx.x; i < H; i += blockDim.x) {
    const acc_t d = valid ? static_cast<acc_t>(i) - y : acc_t(0);
    a.dy[i] = d;
    a.ey[i] = valid ? shr_exp(d * d * neg_inv_2s2) : acc_t(0);
  }
  __syncthreads();
}

// partial[m] = sum_ij w (pred - t)^2 over map m.
template <typename pred_t, typename acc_t>
__global__ void heatmap_loss_kernel(const pred_t* __restrict__ pred, const acc_t* __restrict__ lm,
                                    const bool* __restrict__ vis, double* __restrict__ partial, int H, int W,
                                    LossParams<acc_t> k) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __shared__ double scratch[kWarps];
  const AxesView<acc_t> a(reinterpret_cast<acc_t*>(smem_raw), H, W);
  const int64_t m = blockIdx.x;
  const int HW = H * W;
  const pred_t* pm = pred + m * static_cast<int64_t>(HW);
  fill_loss_axes(lm, vis, m, H, W, k.neg_inv_2s2, a);
  acc_t s = 0;
  for (int p = threadIdx.x; p < HW; p += blockDim.x) {
    const int i = p / W, j = p - i * W;
    const acc_t t = (k.scale * a.ey[i]) * a.ex[j];
    const acc_t r = static_cast<acc_t>(pm[p]) - t;
    s += (t > k.thr ? k.fw : acc_t(1)) * r * r;
  }
  double v[1] = {static_cast<double>(s)};
  block_sum<double, 1>(v, scratch);
  if (threadIdx.x == 0) partial[m] = v[0];
}

// out = sum_m partial[m] / n, one block.
template <typename acc_t>
__global__ void sum_partials_kernel(const double* __restrict__ partial, int64_t M, double n, acc_t* __restrict__ out) {
  __shared__ double scratch[kWarps];
  double v[1] = {0.0};
  for (int64_t m = threadIdx.x; m < M; m += blockDim.x) v[0] += partial[m];
  block_sum<double, 1>(v, scratch);
  if (threadIdx.x == 0) *out = static_cast<acc_t>(v[0] / n);
}

// grad_pred = c w (pred - t), c = 2 grad / n; grad_lm[m] = -c / sigma^2 sum_ij w (pred - t) t (j - x, i - y).
template <typename pred_t, typename acc_t>
__global__ void heatmap_loss_backward_kernel(const acc_t* __restrict__ grad, const pred_t* __restrict__ pred,
                                             const acc_t* __restrict__ lm, const bool* __restrict__ vis,
                                             pred_t* __restrict__ grad_pred, acc_t* __restrict__ grad_lm, int H,
                                             int W, double n, LossParams<acc_t> k) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __shared__ double scratch[2 * kWarps];
  const AxesView<acc_t> a(reinterpret_cast<acc_t*>(smem_raw), H, W);
  const int64_t m = blockIdx.x;
  const int HW = H * W;
  const int64_t offset = m * static_cast<int64_t>(HW);
  fill_loss_axes(lm, vis, m, H, W, k.neg_inv_2s2, a);
  const acc_t c = static_cast<acc_t>(2.0 * static_cast<double>(*grad) / n);
  acc_t sx = 0, sy = 0;
  for (int p = threadIdx.x; p < HW; p += blockDim.x) {
    const int i = p / W, j = p - i * W;
    const acc_t t = (k.scale * a.ey[i]) * a.ex[j];
    const acc_t wr = (t > k.thr ? k.fw : acc_t(1)) * (static_cast<acc_t>(pred[offset + p]) - t);
    grad_pred[offset + p] = static_cast<pred_t>(c * wr);
    const acc_t q = wr * t;
    sx += q * a.dx[j];
    sy += q * a.dy[i];
  }
  double v[2] = {static_cast<double>(sx), static_cast<double>(sy)};
  block_sum<double, 2>(v, scratch);
  if (threadIdx.x == 0) {
    grad_lm[2 * m] = static_cast<acc_t>(-c * k.inv_s2 * v[0]);
    grad_lm[2 * m + 1] = static_cast<acc_t>(-c * k.inv_s2 * v[1]);
  }
}

int64_t loss_smem_bytes(int64_t H, int64_t W, size_t elem, const char* op) {
  const int64_t bytes = 2 * (H + W) * static_cast<int64_t>(elem);
  TORCH_CHECK(bytes <= kMaxSharedBytes, op, ": pred's map size (H, W) = (", H, ", ", W,
              ") is too large for the CUDA kernel (needs 2 * (H + W) * ", elem, " bytes <= ", kMaxSharedBytes,
              " of shared memory)");
  return bytes;
}

at::Tensor heatmap_loss_cuda(const at::Tensor& pred, const at::Tensor& landmarks,
                             const c10::optional<at::Tensor>& visible, double sigma, double foreground_weight,
                             double threshold, double scale) {
  const char* op = "shr_ops.heatmap_loss";
  check_heatmap_loss_args(pred, landmarks, visible, sigma, foreground_weight, threshold, scale, op);
  TORCH_CHECK(pred.is_cuda(), op, ": CUDA kernel got pred on ", pred.device());
  c10::cuda::CUDAGuard guard(pred.device());
  const int64_t H = pred.size(-2), W = pred.size(-1);
  const int64_t M = pred.numel() / (H * W);
  if (M == 0) return at::zeros({}, pred.options().dtype(landmarks.scalar_type()));
  at::Tensor out = at::empty({}, pred.options().dtype(landmarks.scalar_type()));
  const unsigned int grid = grid_for_maps(M, H * W, op);
  at::Tensor partial = at::empty({M}, pred.options().dtype(at::kDouble));
  const at::Tensor p = pred.contiguous();
  const at::Tensor lm = landmarks.contiguous();
  const at::Tensor vis = visible.has_value() ? visible->contiguous() : at::Tensor();
  const bool* vis_ptr = vis.defined() ? vis.const_data_ptr<bool>() : nullptr;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, p.scalar_type(), "shr_ops_heatmap_loss_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const int64_t smem = loss_smem_bytes(H, W, sizeof(acc_t), op);
    heatmap_loss_kernel<scalar_t, acc_t><<<grid, kThreads, smem, stream>>>(
        p.const_data_ptr<scalar_t>(), lm.const_data_ptr<acc_t>(), vis_ptr, partial.mutable_data_ptr<double>(),
        static_cast<int>(H), static_cast<int>(W), loss_params<acc_t>(sigma, foreground_weight, threshold, scale));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    sum_partials_kernel<acc_t><<<1, kThreads, 0, stream>>>(partial.const_data_ptr<double>(), M,
                                                             static_cast<double>(M * H * W),
                                                             out.mutable_data_ptr<acc_t>());
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
  TORCH_CHECK(pred.is_cuda(), op, ": CUDA kernel got pred on ", pred.device());
  c10::cuda::CUDAGuard guard(pred.device());
  at::Tensor grad_pred = at::empty(pred.sizes(), pred.options());
  at::Tensor grad_lm = at::empty(landmarks.sizes(), landmarks.options());
  const int64_t H = pred.size(-2), W = pred.size(-1);
  const int64_t M = pred.numel() / (H * W);
  if (M == 0) return {grad_pred, grad_lm};
  const unsigned int grid = grid_for_maps(M, H * W, op);
  const at::Tensor g = grad.contiguous();
  const at::Tensor p = pred.contiguous();
  const at::Tensor lm = landmarks.contiguous();
  const at::Tensor vis = visible.has_value() ? visible->contiguous() : at::Tensor();
  const bool* vis_ptr = vis.defined() ? vis.const_data_ptr<bool>() : nullptr;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, p.scalar_type(), "shr_ops_heatmap_loss_backward_cuda",
                                  [&] {
                                    using acc_t = at::opmath_type<scalar_t>;
                                    const int64_t smem = loss_smem_bytes(H, W, sizeof(acc_t), op);
                                    heatmap_loss_backward_kernel<scalar_t, acc_t><<<grid, kThreads, smem, stream>>>(
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

TORCH_LIBRARY_IMPL(shr_ops, CUDA, m) {
  m.impl("heatmap_loss", &shr_ops::cuda::heatmap_loss_cuda);
  m.impl("heatmap_loss_backward", &shr_ops::cuda::heatmap_loss_backward_cuda);
}
