// CUDA kernels of shr_ops::decode and shr_ops::decode_backward (one block per map).
// Block-wide first-maximum argmax (NaN wins, ties go to the lower index, as torch.argmax), then the
// window softmax moments by a deterministic block reduction. Same semantics as the CPU kernels.
//
// With the pre-filter (blur): the maps are filtered into a temporary tensor (rows, then columns,
// zero outside the frame, the taps of gaussian_taps), which the same kernels then decode; the
// backward filters the gradient w.r.t. the filtered maps once more (the filter is symmetric, so it
// is its own transpose). Unlike the CPU kernels, this materialises the filtered maps: simple and
// the same arithmetic, but not tuned (no GPU was available to measure a fused version).
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "../shr_ops.h"
#include "cuda_common.cuh"

namespace shr_ops {
namespace cuda {
namespace {

// (value, index) a beats (value, index) b: NaN first, then larger value, then lower index.
template <typename acc_t>
__device__ inline bool arg_better(acc_t va, int ia, acc_t vb, int ib) {
  const bool na = va != va, nb = vb != vb;
  if (na || nb) return na && (!nb || ia < ib);
  return va > vb || (va == vb && ia < ib);
}

template <typename in_t, typename acc_t>
__device__ inline int block_argmax(const in_t* h, int n, acc_t* sv, int* si) {
  acc_t bv = -static_cast<acc_t>(INFINITY);
  int bi = INT32_MAX;
  for (int p = threadIdx.x; p < n; p += blockDim.x) {
    const acc_t v = static_cast<acc_t>(h[p]);
    if (arg_better(v, p, bv, bi)) {
      bv = v;
      bi = p;
    }
  }
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) {
    const acc_t ov = __shfl_down_sync(0xffffffffu, bv, off);
    const int oi = __shfl_down_sync(0xffffffffu, bi, off);
    if (arg_better(ov, oi, bv, bi)) {
      bv = ov;
      bi = oi;
    }
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) {
    sv[warp] = bv;
    si[warp] = bi;
  }
  __syncthreads();
  bv = sv[0];
  bi = si[0];
#pragma unroll
  for (int w = 1; w < kWarps; ++w) {
    if (arg_better(sv[w], si[w], bv, bi)) {
      bv = sv[w];
      bi = si[w];
    }
  }
  __syncthreads();
  return bi;
}

// Softmax moments of the clipped window around `best`: {sum w, sum w*dx, sum w*dy}. Weights in
// acc_t, sums in double (as the CPU kernel; the window is small, so this costs little).
template <typename in_t, typename acc_t>
struct WindowMoments {
  int mi, mj, i0, j0, wh, ww;
  acc_t peak;
  double sum, mx, my;
  __device__ WindowMoments(const in_t* h, int H, int W, int best, int r, acc_t t, double* scratch) {
    mi = best / W;
    mj = best - mi * W;
    i0 = max(0, mi - r);
    j0 = max(0, mj - r);
    wh = min(H - 1, mi + r) - i0 + 1;
    ww = min(W - 1, mj + r) - j0 + 1;
    peak = static_cast<acc_t>(h[best]);
    double s[3] = {0.0, 0.0, 0.0};
    for (int k = threadIdx.x; k < wh * ww; k += blockDim.x) {
      const int a = k / ww, b = k - a * ww;
      const int i = i0 + a, j = j0 + b;
      const double w = weight(h[i * W + j], t);
      s[0] += w;
      s[1] += w * static_cast<double>(j - mj);
      s[2] += w * static_cast<double>(i - mi);
    }
    block_sum<double, 3>(s, scratch);
    sum = s[0];
    mx = s[1] / s[0];
    my = s[2] / s[0];
  }
  __device__ acc_t weight(in_t v, acc_t t) const { return shr_exp(t * (static_cast<acc_t>(v) - peak)); }
};

template <typename in_t, typename acc_t>
__global__ void decode_kernel(const in_t* __restrict__ hm, acc_t* __restrict__ coords, acc_t* __restrict__ scores,
                              int64_t* __restrict__ index, int H, int W, int r, acc_t t) {
  __shared__ acc_t sv[kWarps];
  __shared__ int si[kWarps];
  __shared__ double scratch[kWarps * 3];
  const int64_t m = blockIdx.x;
  const in_t* h = hm + m * static_cast<int64_t>(H) * W;
  const int best = block_argmax<in_t, acc_t>(h, H * W, sv, si);
  const WindowMoments<in_t, acc_t> win(h, H, W, best, r, t, scratch);
  if (threadIdx.x == 0) {
    coords[2 * m] = static_cast<acc_t>(static_cast<double>(win.mj) + win.mx);
    coords[2 * m + 1] = static_cast<acc_t>(static_cast<double>(win.mi) + win.my);
    scores[m] = win.peak;
    index[m] = best;
  }
}

template <typename in_t, typename acc_t>
__global__ void decode_backward_kernel(const acc_t* __restrict__ gc, const acc_t* __restrict__ gs,
                                       const in_t* __restrict__ hm, const int64_t* __restrict__ index,
                                       in_t* __restrict__ out, int H, int W, int r, acc_t t) {
  __shared__ double scratch[kWarps * 3];
  const int64_t m = blockIdx.x;
  const int HW = H * W;
  const in_t* h = hm + m * static_cast<int64_t>(HW);
  in_t* o = out + m * static_cast<int64_t>(HW);
  const int64_t best64 = index[m];
  CUDA_KERNEL_ASSERT(best64 >= 0 && best64 < HW);
  const int best = static_cast<int>(best64);
  for (int p = threadIdx.x; p < HW; p += blockDim.x) o[p] = in_t(0);
  const WindowMoments<in_t, acc_t> win(h, H, W, best, r, t, scratch);  // syncs the zero fill
  const double gx = gc[2 * m], gy = gc[2 * m + 1], g_peak = gs[m];
  const double scale = static_cast<double>(t) / win.sum;
  for (int k = threadIdx.x; k < win.wh * win.ww; k += blockDim.x) {
    const int a = k / win.ww, b = k - a * win.ww;
    const int i = win.i0 + a, j = win.j0 + b;
    const int p = i * W + j;
    const double prob = static_cast<double>(win.weight(h[p], t)) * scale;
    double v = prob * (gx * (static_cast<double>(j - win.mj) - win.mx) + gy * (static_cast<double>(i - win.mi) - win.my));
    if (p == best) v += g_peak;
    o[p] = static_cast<in_t>(v);
  }
}

// One pass of the separable filter over maps [M, H, W] (n = M * H * W values), along rows
// (step 1, length W) or columns (step W, length H): y[p] = sum_d k[d + r] x[p + d * step] over the
// taps inside the frame, summed in increasing d (as the CPU kernel).
template <typename src_t, typename acc_t>
__global__ void blur_pass_kernel(const src_t* __restrict__ x, acc_t* __restrict__ y, int64_t n, int H, int W,
                                 bool along_rows, const acc_t* __restrict__ k, int r) {
  for (int64_t p = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; p < n;
       p += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int j = static_cast<int>(p % W);
    const int i = static_cast<int>((p / W) % H);
    const int pos = along_rows ? j : i, len = along_rows ? W : H;
    const int64_t step = along_rows ? 1 : W;
    acc_t s = 0;
    for (int d = -r; d <= r; ++d) {
      const int q = pos + d;
      if (q >= 0 && q < len) s += k[d + r] * static_cast<acc_t>(x[p + d * step]);
    }
    y[p] = s;
  }
}

// The maps x [..., H, W] (contiguous) filtered by decode's pre-filter, as a tensor of the compute dtype.
at::Tensor blur_maps(const at::Tensor& x, double blur) {
  const auto acc_type = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const int64_t H = x.size(-2), W = x.size(-1), n = x.numel();
  at::Tensor tmp = at::empty(x.sizes(), x.options().dtype(acc_type));
  at::Tensor out = at::empty(x.sizes(), x.options().dtype(acc_type));
  if (n == 0) return out;
  const std::vector<double> taps = gaussian_taps(blur);
  const int r = static_cast<int>(taps.size() / 2);
  auto stream = c10::cuda::getCurrentCUDAStream();
  const unsigned int grid = static_cast<unsigned int>(std::min<int64_t>((n + kThreads - 1) / kThreads, 1 << 20));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "shr_ops_blur_maps_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const std::vector<acc_t> host(taps.begin(), taps.end());
    at::Tensor k = at::empty({static_cast<int64_t>(host.size())}, x.options().dtype(acc_type));
    // From pageable memory: `host` has been read when cudaMemcpyAsync returns.
    C10_CUDA_CHECK(cudaMemcpyAsync(k.mutable_data_ptr<acc_t>(), host.data(), host.size() * sizeof(acc_t),
                                   cudaMemcpyHostToDevice, stream));
    blur_pass_kernel<scalar_t, acc_t><<<grid, kThreads, 0, stream>>>(
        x.const_data_ptr<scalar_t>(), tmp.mutable_data_ptr<acc_t>(), n, static_cast<int>(H), static_cast<int>(W), true,
        k.const_data_ptr<acc_t>(), r);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    blur_pass_kernel<acc_t, acc_t><<<grid, kThreads, 0, stream>>>(
        tmp.const_data_ptr<acc_t>(), out.mutable_data_ptr<acc_t>(), n, static_cast<int>(H), static_cast<int>(W), false,
        k.const_data_ptr<acc_t>(), r);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> decode_cuda(const at::Tensor& heatmaps, int64_t window,
                                                           double temperature, c10::optional<double> blur) {
  const char* op = "shr_ops.decode";
  check_decode_args(heatmaps, window, temperature, blur);
  TORCH_CHECK(heatmaps.is_cuda(), op, ": CUDA kernel got heatmaps on ", heatmaps.device());
  c10::cuda::CUDAGuard guard(heatmaps.device());
  const int64_t H = heatmaps.size(-2), W = heatmaps.size(-1);
  at::Tensor coords, scores, index;
  std::tie(coords, scores, index) = empty_decode_outputs(heatmaps);
  const int64_t M = index.numel();
  if (M == 0) return {coords, scores, index};
  const unsigned int grid = grid_for_maps(M, H * W, op);
  const int r = static_cast<int>(std::min<int64_t>(window / 2, H + W));
  const at::Tensor hm = blur.has_value() ? blur_maps(heatmaps.contiguous(), *blur) : heatmaps.contiguous();
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, hm.scalar_type(), "shr_ops_decode_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    decode_kernel<scalar_t, acc_t><<<grid, kThreads, 0, stream>>>(
        hm.const_data_ptr<scalar_t>(), coords.mutable_data_ptr<acc_t>(), scores.mutable_data_ptr<acc_t>(),
        index.mutable_data_ptr<int64_t>(), static_cast<int>(H), static_cast<int>(W), r,
        static_cast<acc_t>(temperature));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {coords, scores, index};
}

at::Tensor decode_backward_cuda(const at::Tensor& grad_coords, const at::Tensor& grad_scores,
                                const at::Tensor& heatmaps, const at::Tensor& index, int64_t window,
                                double temperature, c10::optional<double> blur) {
  const char* op = "shr_ops.decode_backward";
  check_decode_args(heatmaps, window, temperature, blur);
  check_decode_backward_args(grad_coords, grad_scores, heatmaps, index, op);
  TORCH_CHECK(heatmaps.is_cuda(), op, ": CUDA kernel got heatmaps on ", heatmaps.device());
  c10::cuda::CUDAGuard guard(heatmaps.device());
  const int64_t M = index.numel();
  if (M == 0) return at::empty(heatmaps.sizes(), heatmaps.options());
  const int64_t H = heatmaps.size(-2), W = heatmaps.size(-1);
  const unsigned int grid = grid_for_maps(M, H * W, op);
  const int r = static_cast<int>(std::min<int64_t>(window / 2, H + W));
  // With the pre-filter: the gradient w.r.t. the filtered maps (compute dtype), filtered back below.
  const at::Tensor hm = blur.has_value() ? blur_maps(heatmaps.contiguous(), *blur) : heatmaps.contiguous();
  at::Tensor out = at::empty(heatmaps.sizes(), hm.options());
  const at::Tensor gc = grad_coords.contiguous();
  const at::Tensor gs = grad_scores.contiguous();
  const at::Tensor idx = index.contiguous();
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, hm.scalar_type(), "shr_ops_decode_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    decode_backward_kernel<scalar_t, acc_t><<<grid, kThreads, 0, stream>>>(
        gc.const_data_ptr<acc_t>(), gs.const_data_ptr<acc_t>(), hm.const_data_ptr<scalar_t>(),
        idx.const_data_ptr<int64_t>(), out.mutable_data_ptr<scalar_t>(), static_cast<int>(H), static_cast<int>(W), r,
        static_cast<acc_t>(temperature));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  if (blur.has_value()) return blur_maps(out, *blur).to(heatmaps.scalar_type());
  return out;
}

}  // namespace
}  // namespace cuda
}  // namespace shr_ops

TORCH_LIBRARY_IMPL(shr_ops, CUDA, m) {
  m.impl("decode", &shr_ops::cuda::decode_cuda);
  m.impl("decode_backward", &shr_ops::cuda::decode_backward_cuda);
}
