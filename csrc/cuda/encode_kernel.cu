// CUDA kernels of shr_ops::encode and shr_ops::encode_backward (one block per map).
// The separable factors exp(-(j - x)^2 / 2s^2) and exp(-(i - y)^2 / 2s^2) are computed once per
// map into shared memory; each pixel is then one product. Same semantics as the CPU kernels.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include "../shr_ops.h"
#include "cuda_common.cuh"

namespace shr_ops {
namespace cuda {
namespace {

template <typename acc_t>
__device__ inline bool fill_axes(const acc_t* lm, const bool* vis, int64_t m, int H, int W, acc_t neg_inv_2s2,
                                 acc_t* smem) {
  const acc_t x = lm[2 * m], y = lm[2 * m + 1];
  const bool valid = ::isfinite(x) && ::isfinite(y) && (vis == nullptr || vis[m]);
  if (valid) {
    const AxesView<acc_t> a(smem, H, W);
    acc_t *ex = a.ex, *ey = a.ey, *dx = a.dx, *dy = a.dy;
    for (int j = threadIdx.x; j < W; j += blockDim.x) {
      const acc_t d = static_cast<acc_t>(j) - x;
      dx[j] = d;
      ex[j] = shr_exp(d * d * neg_inv_2s2);
    }
    for (int i = threadIdx.x; i < H; i += blockDim.x) {
      const acc_t d = static_cast<acc_t>(i) - y;
      dy[i] = d;
      ey[i] = shr_exp(d * d * neg_inv_2s2);
    }
  }
  __syncthreads();
  return valid;
}

template <typename out_t, typename acc_t>
__global__ void encode_kernel(const acc_t* __restrict__ lm, const bool* __restrict__ vis, out_t* __restrict__ out,
                              int H, int W, acc_t neg_inv_2s2, acc_t r2) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  acc_t* smem = reinterpret_cast<acc_t*>(smem_raw);
  const int64_t m = blockIdx.x;
  const int HW = H * W;
  out_t* o = out + m * static_cast<int64_t>(HW);
  if (!fill_axes(lm, vis, m, H, W, neg_inv_2s2, smem)) {
    for (int p = threadIdx.x; p < HW; p += blockDim.x) o[p] = out_t(0);
    return;
  }
  const AxesView<acc_t> a(smem, H, W);
  for (int p = threadIdx.x; p < HW; p += blockDim.x) {
    const int i = p / W, j = p - i * W;
    acc_t v = a.ey[i] * a.ex[j];
    if (r2 >= 0 && a.dx[j] * a.dx[j] + a.dy[i] * a.dy[i] > r2) v = acc_t(0);
    o[p] = static_cast<out_t>(v);
  }
}

template <typename grad_t, typename acc_t>
__global__ void encode_backward_kernel(const grad_t* __restrict__ g, const acc_t* __restrict__ lm,
                                       const bool* __restrict__ vis, acc_t* __restrict__ out, int H, int W,
                                       acc_t neg_inv_2s2, acc_t inv_s2, acc_t r2) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  acc_t* smem = reinterpret_cast<acc_t*>(smem_raw);
  __shared__ acc_t scratch[2 * kWarps];
  const int64_t m = blockIdx.x;
  const int HW = H * W;
  const grad_t* gm = g + m * static_cast<int64_t>(HW);
  const bool valid = fill_axes(lm, vis, m, H, W, neg_inv_2s2, smem);
  acc_t s[2] = {acc_t(0), acc_t(0)};
  if (valid) {
    const AxesView<acc_t> a(smem, H, W);
    for (int p = threadIdx.x; p < HW; p += blockDim.x) {
      const int i = p / W, j = p - i * W;
      if (r2 >= 0 && a.dx[j] * a.dx[j] + a.dy[i] * a.dy[i] > r2) continue;
      const acc_t gh = static_cast<acc_t>(gm[p]) * a.ey[i] * a.ex[j];
      s[0] += gh * a.dx[j];
      s[1] += gh * a.dy[i];
    }
  }
  block_sum<acc_t, 2>(s, scratch);
  if (threadIdx.x == 0) {
    out[2 * m] = s[0] * inv_s2;
    out[2 * m + 1] = s[1] * inv_s2;
  }
}

int64_t axes_smem_bytes(int64_t H, int64_t W, size_t elem, const char* op) {
  const int64_t bytes = 2 * (H + W) * static_cast<int64_t>(elem);
  TORCH_CHECK(bytes <= kMaxSharedBytes, op, ": size (H, W) = (", H, ", ", W,
              ") is too large for the CUDA kernel (needs 2 * (H + W) * ", elem, " bytes <= ", kMaxSharedBytes,
              " of shared memory)");
  return bytes;
}

// Writes the maps of `landmarks` (checked) into `out` (contiguous, of out's dtype).
void encode_cuda_into(const at::Tensor& landmarks, const c10::optional<at::Tensor>& visible, double sigma,
                      c10::optional<double> radius, at::Tensor& out) {
  const char* op = "shr_ops.encode";
  TORCH_CHECK(landmarks.is_cuda(), op, ": CUDA kernel got landmarks on ", landmarks.device());
  c10::cuda::CUDAGuard guard(landmarks.device());
  const int64_t M = landmarks.numel() / 2;
  if (M == 0) return;
  const int64_t height = out.size(-2), width = out.size(-1);
  const unsigned int grid = grid_for_maps(M, height * width, op);
  const at::Tensor lm = landmarks.contiguous();
  const at::Tensor vis = visible.has_value() ? visible->contiguous() : at::Tensor();
  const bool* vis_ptr = vis.defined() ? vis.const_data_ptr<bool>() : nullptr;
  const double r2 = radius.has_value() ? (*radius) * (*radius) : -1.0;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, out.scalar_type(), "shr_ops_encode_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const int64_t smem = axes_smem_bytes(height, width, sizeof(acc_t), op);
    encode_kernel<scalar_t, acc_t><<<grid, kThreads, smem, stream>>>(
        lm.const_data_ptr<acc_t>(), vis_ptr, out.mutable_data_ptr<scalar_t>(), static_cast<int>(height),
        static_cast<int>(width), static_cast<acc_t>(-0.5 / (sigma * sigma)), static_cast<acc_t>(r2));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

at::Tensor encode_cuda(const at::Tensor& landmarks, const c10::optional<at::Tensor>& visible, int64_t height,
                       int64_t width, double sigma, c10::optional<double> radius, at::ScalarType dtype) {
  check_encode_args(landmarks, visible, height, width, sigma, radius, dtype);
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
  TORCH_CHECK(landmarks.is_cuda(), op, ": CUDA kernel got landmarks on ", landmarks.device());
  c10::cuda::CUDAGuard guard(landmarks.device());
  at::Tensor out = at::empty(landmarks.sizes(), landmarks.options());
  const int64_t M = landmarks.numel() / 2;
  if (M == 0) return out;
  const unsigned int grid = grid_for_maps(M, H * W, op);
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
      const int64_t smem = axes_smem_bytes(H, W, sizeof(acc_t), op);
      encode_backward_kernel<grad_t, acc_t><<<grid, kThreads, smem, stream>>>(
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

TORCH_LIBRARY_IMPL(shr_ops, CUDA, m) {
  m.impl("encode", &shr_ops::cuda::encode_cuda);
  m.impl("encode_out", &shr_ops::cuda::encode_out_cuda);
  m.impl("encode_backward", &shr_ops::cuda::encode_backward_cuda);
}
