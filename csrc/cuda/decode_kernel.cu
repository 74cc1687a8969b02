// CUDA launchers of shr_ops::decode and shr_ops::decode_backward; the device code is in
// decode_device.cuh, the checks and preparation in ../decode.h. Same semantics as the CPU kernels.
//
// With the pre-filter (blur), where a map fits in a block's shared memory (64 x 64 float32 takes
// 32 KiB): decode is one launch that reads each map once (decode_fused_kernel), and decode_backward
// one launch that reads the box around each argmax and writes each gradient map once
// (decode_backward_fused_kernel), with no temporaries. Larger maps take the two-pass path: the maps
// are filtered into a temporary tensor (rows, then columns, zero outside the frame), whose argmax,
// score and soft-argmax decode_kernel takes before the fit of the raw maps; the backward filters
// the gradient w.r.t. the filtered maps back (the filter is symmetric, so it is its own transpose)
// and adds the fit's gradient w.r.t. the raw maps. Both paths compute every filtered value with
// filter_at, the CPU kernel's arithmetic, so they give the same bits.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "../shr_ops.h"
#include "cuda_common.cuh"
#include "decode_device.cuh"

namespace shr_ops {
namespace cuda {
namespace {

// The pre-filter's taps as the kernels take them (by value: no copy from the host, so launches can
// be captured in CUDA graphs).
template <typename acc_t, int kCap>
HalfTaps<acc_t, kCap> half_taps(const std::vector<double>& taps) {
  HalfTaps<acc_t, kCap> k{};
  k.r = static_cast<int>(taps.size() / 2);
  for (int e = 0; e <= k.r; ++e) k.half[e] = static_cast<acc_t>(taps[k.r + e]);
  return k;
}

// fn(std::integral_constant<int, kCap>{}) with the smaller capacity of HalfTaps that holds `taps`.
template <typename Fn>
decltype(auto) with_tap_capacity(const std::vector<double>& taps, Fn&& fn) {
  if (taps.size() / 2 < static_cast<size_t>(kSmallTaps)) return fn(std::integral_constant<int, kSmallTaps>{});
  return fn(std::integral_constant<int, kLargeTaps>{});
}

template <typename src_t, typename acc_t, int kCap>
void blur_passes(const at::Tensor& x, at::Tensor& tmp, at::Tensor& out, const std::vector<double>& taps,
                 cudaStream_t stream) {
  const int64_t H = x.size(-2), W = x.size(-1), n = x.numel();
  const HalfTaps<acc_t, kCap> k = half_taps<acc_t, kCap>(taps);
  const LaunchShape shape = blur_launch_shape(n);
  SHR_LAUNCH(shape.blocks, shape.threads, shape.smem, stream, blur_pass_kernel<src_t, acc_t, kCap>)(
      x.const_data_ptr<src_t>(), tmp.mutable_data_ptr<acc_t>(), n, static_cast<int>(H), static_cast<int>(W), true, k);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  SHR_LAUNCH(shape.blocks, shape.threads, shape.smem, stream, blur_pass_kernel<acc_t, acc_t, kCap>)(
      tmp.const_data_ptr<acc_t>(), out.mutable_data_ptr<acc_t>(), n, static_cast<int>(H), static_cast<int>(W), false,
      k);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// The maps x [..., H, W] (contiguous) filtered by decode's pre-filter, as a tensor of the compute dtype.
at::Tensor blur_maps(const at::Tensor& x, double blur) {
  const auto acc_type = compute_dtype(x.scalar_type());
  at::Tensor tmp = device_temporary(x.sizes(), x.options().dtype(acc_type));
  at::Tensor out = device_temporary(x.sizes(), x.options().dtype(acc_type));
  if (x.numel() == 0) return out;
  const std::vector<double> taps = gaussian_taps(blur);
  TORCH_CHECK(taps.size() / 2 < static_cast<size_t>(kLargeTaps), "shr_ops.decode: blur ", blur,
              " has more taps than the CUDA kernel holds");
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "shr_ops_blur_maps_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    with_tap_capacity(taps,
                      [&](auto cap) { blur_passes<scalar_t, acc_t, decltype(cap)::value>(x, tmp, out, taps, stream); });
  });
  return out;
}

// The fit's parameters for maps of dtype `dtype` (R = 0 without the pre-filter: no fit).
FitParams fit_params(int64_t window, c10::optional<double> blur, int64_t H, int64_t W, at::ScalarType dtype) {
  if (!blur.has_value()) return FitParams{0, 0.0, 0.0};
  return FitParams{static_cast<int>(fit::box_radius(window, *blur, H, W)), *blur,
                   fit::stop_step(dtype == at::kDouble)};
}

// decode with the pre-filter in one launch (decode_fused_kernel), when a map and its rows pass fit
// in a block's shared memory; false (nothing launched) otherwise.
template <typename in_t, typename acc_t, int kCap>
bool decode_fused(const DecodeLaunch& p, const std::vector<double>& taps, int r, acc_t t, const FitParams& fp,
                  cudaStream_t stream) {
  const int64_t smem = decode_fused_smem<in_t, acc_t>(p.height * p.width);
  constexpr int64_t kStaticBytes = 8 * 1024;  // the kernel's static shared memory is under this
  if (!try_fit_shared_memory(decode_fused_kernel<in_t, acc_t, kCap>, smem, kStaticBytes)) return false;
  const LaunchShape shape = decode_launch_shape(p.maps);
  SHR_LAUNCH(shape.blocks, shape.threads, smem, stream, decode_fused_kernel<in_t, acc_t, kCap>)(
      p.hm.const_data_ptr<in_t>(), p.coords.mutable_data_ptr<acc_t>(), p.scores.mutable_data_ptr<acc_t>(),
      p.index.mutable_data_ptr<int64_t>(), static_cast<int>(p.height), static_cast<int>(p.width), r, t,
      half_taps<acc_t, kCap>(taps), fp);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return true;
}

// decode_backward with the pre-filter in one launch (decode_backward_fused_kernel) writing into
// p.grad, when its boxes fit in a block's shared memory; false (nothing launched) otherwise.
template <typename in_t, typename acc_t, int kCap>
bool decode_backward_fused(const DecodeBackwardLaunch& p, const std::vector<double>& taps, int r, acc_t t,
                           const FitParams& fp, int* bad_index, cudaStream_t stream) {
  const int rf = static_cast<int>(taps.size() / 2);
  const BackwardSmem layout = BackwardSmem::of<in_t, acc_t>(p.height, p.width, r, rf);
  constexpr int64_t kStaticBytes = 8 * 1024;  // the kernel's static shared memory is under this
  if (!try_fit_shared_memory(decode_backward_fused_kernel<in_t, acc_t, kCap>, layout.bytes, kStaticBytes)) return false;
  const LaunchShape shape = decode_launch_shape(p.maps);
  SHR_LAUNCH(shape.blocks, shape.threads, layout.bytes, stream, decode_backward_fused_kernel<in_t, acc_t, kCap>)(
      p.grad_coords.const_data_ptr<acc_t>(), p.grad_scores.const_data_ptr<acc_t>(), p.hm.const_data_ptr<in_t>(),
      p.index.const_data_ptr<int64_t>(), p.grad.mutable_data_ptr<in_t>(), bad_index, static_cast<int>(p.height),
      static_cast<int>(p.width), r, t, half_taps<acc_t, kCap>(taps), fp, layout);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return true;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> decode_cuda(const at::Tensor& heatmaps, int64_t window,
                                                           double temperature, c10::optional<double> blur) {
  const char* op = "shr_ops.decode";
  check_decode_args(heatmaps, window, temperature, blur);
  check_map_limits(heatmaps, op);  // before the maps are made contiguous
  const DecodeLaunch p = prepare_decode(heatmaps, window, temperature, blur, kKernelDevice);
  if (p.empty()) return {p.coords, p.scores, p.index};
  c10::cuda::CUDAGuard guard(p.hm.device());
  const int r = static_cast<int>(std::min<int64_t>(p.radius, p.height + p.width));
  const FitParams fp = fit_params(window, blur, p.height, p.width, p.hm.scalar_type());
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, p.hm.scalar_type(), "shr_ops_decode_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const LaunchShape shape = decode_launch_shape(p.maps);
    const int H = static_cast<int>(p.height), W = static_cast<int>(p.width);
    if (blur.has_value()) {
      const std::vector<double> taps = gaussian_taps(*blur);
      const bool fused = with_tap_capacity(taps, [&](auto cap) {
        return decode_fused<scalar_t, acc_t, decltype(cap)::value>(p, taps, r, static_cast<acc_t>(temperature), fp,
                                                                   stream);
      });
      if (fused) return;
      // Maps too large for shared memory: filtered into a temporary first, then decoded.
      const at::Tensor F = blur_maps(p.hm, *blur);
      with_tap_capacity(taps, [&](auto cap) {
        constexpr int kCap = decltype(cap)::value;
        SHR_LAUNCH(shape.blocks, shape.threads, shape.smem, stream, decode_kernel<acc_t, scalar_t, acc_t, kCap, true>)(
            F.const_data_ptr<acc_t>(), p.hm.const_data_ptr<scalar_t>(), p.coords.mutable_data_ptr<acc_t>(),
            p.scores.mutable_data_ptr<acc_t>(), p.index.mutable_data_ptr<int64_t>(), H, W, r,
            static_cast<acc_t>(temperature), fp, half_taps<acc_t, kCap>(taps));
      });
    } else {
      SHR_LAUNCH(shape.blocks, shape.threads, shape.smem, stream, decode_kernel<scalar_t, scalar_t, acc_t, kSmallTaps, false>)(
          p.hm.const_data_ptr<scalar_t>(), nullptr, p.coords.mutable_data_ptr<acc_t>(),
          p.scores.mutable_data_ptr<acc_t>(), p.index.mutable_data_ptr<int64_t>(), H, W, r,
          static_cast<acc_t>(temperature), fp, HalfTaps<acc_t, kSmallTaps>{});
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {p.coords, p.scores, p.index};
}

at::Tensor decode_backward_cuda(const at::Tensor& grad_coords, const at::Tensor& grad_scores,
                                const at::Tensor& heatmaps, const at::Tensor& index, int64_t window,
                                double temperature, c10::optional<double> blur, bool check_index) {
  const char* op = "shr_ops.decode_backward";
  check_decode_args(heatmaps, window, temperature, blur);
  check_map_limits(heatmaps, op);  // before the maps are made contiguous
  const DecodeBackwardLaunch p =
      prepare_decode_backward(grad_coords, grad_scores, heatmaps, index, window, temperature, blur, kKernelDevice);
  if (p.empty()) return p.grad;
  c10::cuda::CUDAGuard guard(p.hm.device());
  const int r = static_cast<int>(std::min<int64_t>(p.radius, p.height + p.width));
  const FitParams fp = fit_params(window, blur, p.height, p.width, p.hm.scalar_type());
  // The index range flag (check_index): a zeroed int the kernels set on a bad index, read below.
  at::Tensor bad_index;
  if (check_index) {
    bad_index = device_temporary({1}, p.index.options().dtype(at::kInt)).zero_();
    count_aten_kernel(0, bad_index.nbytes());
  }
  int* flag = check_index ? bad_index.mutable_data_ptr<int>() : nullptr;
  auto stream = c10::cuda::getCurrentCUDAStream();
  // With the pre-filter: the gradient w.r.t. the filtered maps (compute dtype), filtered back below,
  // and the fit's w.r.t. the raw maps (compute dtype), added to it.
  at::Tensor out, raw_out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, p.hm.scalar_type(), "shr_ops_decode_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const LaunchShape shape = decode_launch_shape(p.maps);
    const int H = static_cast<int>(p.height), W = static_cast<int>(p.width);
    if (blur.has_value()) {
      const std::vector<double> taps = gaussian_taps(*blur);
      const acc_t tt = static_cast<acc_t>(temperature);
      const bool fused = with_tap_capacity(taps, [&](auto cap) {
        return decode_backward_fused<scalar_t, acc_t, decltype(cap)::value>(p, taps, r, tt, fp, flag, stream);
      });
      if (fused) return;
      // Boxes too large for shared memory: the gradient w.r.t. the filtered maps, filtered back.
      const at::Tensor F = blur_maps(p.hm, *blur);
      out = device_temporary(F.sizes(), F.options());
      raw_out = device_temporary(F.sizes(), F.options());
      with_tap_capacity(taps, [&](auto cap) {
        constexpr int kCap = decltype(cap)::value;
        SHR_LAUNCH(shape.blocks, shape.threads, shape.smem, stream,
                   decode_backward_kernel<acc_t, scalar_t, acc_t, kCap, true>)(
            p.grad_coords.const_data_ptr<acc_t>(), p.grad_scores.const_data_ptr<acc_t>(), F.const_data_ptr<acc_t>(),
            p.hm.const_data_ptr<scalar_t>(), p.index.const_data_ptr<int64_t>(), out.mutable_data_ptr<acc_t>(),
            raw_out.mutable_data_ptr<acc_t>(), flag, H, W, r,
            static_cast<acc_t>(temperature), fp, half_taps<acc_t, kCap>(taps));
      });
    } else {
      SHR_LAUNCH(shape.blocks, shape.threads, shape.smem, stream,
                 decode_backward_kernel<scalar_t, scalar_t, acc_t, kSmallTaps, false>)(
          p.grad_coords.const_data_ptr<acc_t>(), p.grad_scores.const_data_ptr<acc_t>(),
          p.hm.const_data_ptr<scalar_t>(), nullptr, p.index.const_data_ptr<int64_t>(),
          p.grad.mutable_data_ptr<scalar_t>(), nullptr, flag, H, W, r,
          static_cast<acc_t>(temperature), fp, HalfTaps<acc_t, kSmallTaps>{});
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  // A bad index is a catchable error, as on the CPU (a device-side assert would end the CUDA
  // context). Reading the flag waits for the kernel; inside a CUDA graph capture it cannot be read,
  // and a map with a bad index then keeps its zero gradient (as without check_index).
  if (check_index && !stream_is_capturing(stream)) {
    count_host_wait();
    TORCH_CHECK(bad_index.item<int>() == 0, op, ": index holds a value outside [0, H*W) = [0, ",
                p.height * p.width, "): it must be the flat argmax index that decode returns");
  }
  if (out.defined()) {  // the fallback: filter the filtered maps' gradient back, add the fit's
    at::Tensor g = blur_maps(out, *blur);
    g.add_(raw_out);
    count_aten_kernel(2 * g.nbytes(), g.nbytes());
    p.grad.copy_(g);
    count_aten_kernel(g.nbytes(), p.grad.nbytes());
  }
  return p.grad;
}

}  // namespace
}  // namespace cuda
}  // namespace shr_ops

SHR_CUDA_LIBRARY_IMPL(m) {
  m.impl("decode", &shr_ops::cuda::decode_cuda);
  m.impl("decode_backward", &shr_ops::cuda::decode_backward_cuda);
}
