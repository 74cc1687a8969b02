// CPU kernels of shr_ops::decode and shr_ops::decode_backward.
//
// Per map: m = first argmax in row-major order (NaN counts as the maximum, like torch.argmax);
// a window x window box centred on m, clipped to the frame; p = softmax(t * h) over the box;
// coords = m + sum p * (offset from m). Backward: d coords / d h_k = t p_k (o_k - mean offset),
// plus the score's gradient at m; zero outside the box.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>

#include "../shr_ops.h"

namespace shr_ops {
namespace {

constexpr int64_t kGrainElements = 32768;

template <typename in_t>
inline int64_t first_argmax(const in_t* h, int64_t n) {
  int64_t best = 0;
  in_t bv = h[0];
  if (bv != bv) return 0;
  for (int64_t p = 1; p < n; ++p) {
    const in_t v = h[p];
    if (beats(v, bv)) {
      best = p;
      bv = v;
      if (v != v) break;
    }
  }
  return best;
}

// Softmax moments over the clipped window around (mi, mj): sum of weights, and mean offsets.
// Weights are computed in acc_t; their sums are accumulated in double, so a float32 result is
// the correctly rounded value of the float32 weights (the reference computes in float64).
template <typename in_t, typename acc_t>
struct Window {
  int64_t i0, i1, j0, j1, mi, mj;
  acc_t peak;
  double sum, mx, my;  // mx, my: mean offsets
  Window(const in_t* h, int64_t H, int64_t W, int64_t index, int64_t r, acc_t t) {
    mi = index / W;
    mj = index % W;
    i0 = std::max<int64_t>(0, mi - r);
    i1 = std::min<int64_t>(H - 1, mi + r);
    j0 = std::max<int64_t>(0, mj - r);
    j1 = std::min<int64_t>(W - 1, mj + r);
    peak = static_cast<acc_t>(h[index]);
    double s = 0, sx = 0, sy = 0;
    for (int64_t i = i0; i <= i1; ++i) {
      double srow = 0, sxrow = 0;
      for (int64_t j = j0; j <= j1; ++j) {
        const double w = weight(h[i * W + j], t);
        srow += w;
        sxrow += w * static_cast<double>(j - mj);
      }
      s += srow;
      sx += sxrow;
      sy += srow * static_cast<double>(i - mi);
    }
    sum = s;
    mx = sx / s;
    my = sy / s;
  }
  // Unnormalised softmax weight; the peak is the window's maximum, so no overflow.
  acc_t weight(in_t v, acc_t t) const { return shr_exp(t * (static_cast<acc_t>(v) - peak)); }
};

template <typename in_t, typename acc_t>
void decode_cpu_impl(const in_t* hm, acc_t* coords, acc_t* scores, int64_t* index, int64_t M, int64_t H, int64_t W,
                     int64_t r, acc_t t) {
  const int64_t HW = H * W;
  const int64_t grain = std::max<int64_t>(1, kGrainElements / HW);
  at::parallel_for(0, M, grain, [&](int64_t begin, int64_t end) {
    for (int64_t m = begin; m < end; ++m) {
      const in_t* h = hm + m * HW;
      const int64_t best = first_argmax(h, HW);
      const Window<in_t, acc_t> win(h, H, W, best, r, t);
      coords[2 * m] = static_cast<acc_t>(static_cast<double>(win.mj) + win.mx);
      coords[2 * m + 1] = static_cast<acc_t>(static_cast<double>(win.mi) + win.my);
      scores[m] = win.peak;
      index[m] = best;
    }
  });
}

template <typename in_t, typename acc_t>
void decode_backward_cpu_impl(const acc_t* gc, const acc_t* gs, const in_t* hm, const int64_t* index, in_t* out,
                              int64_t M, int64_t H, int64_t W, int64_t r, acc_t t) {
  const int64_t HW = H * W;
  const int64_t grain = std::max<int64_t>(1, kGrainElements / HW);
  at::parallel_for(0, M, grain, [&](int64_t begin, int64_t end) {
    for (int64_t m = begin; m < end; ++m) {
      const in_t* h = hm + m * HW;
      in_t* o = out + m * HW;
      std::fill(o, o + HW, in_t(0));
      const int64_t best = index[m];
      TORCH_CHECK(best >= 0 && best < HW, "shr_ops.decode_backward: index[", m, "] = ", best, " is outside [0, H*W)");
      const Window<in_t, acc_t> win(h, H, W, best, r, t);
      const double gx = gc[2 * m], gy = gc[2 * m + 1];
      const double scale = static_cast<double>(t) / win.sum;
      for (int64_t i = win.i0; i <= win.i1; ++i) {
        const double ey = gy * (static_cast<double>(i - win.mi) - win.my);
        for (int64_t j = win.j0; j <= win.j1; ++j) {
          const double p = static_cast<double>(win.weight(h[i * W + j], t)) * scale;
          double v = p * (gx * (static_cast<double>(j - win.mj) - win.mx) + ey);
          if (i * W + j == best) v += static_cast<double>(gs[m]);
          o[i * W + j] = static_cast<in_t>(v);
        }
      }
    }
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> decode_cpu(const at::Tensor& heatmaps, int64_t window,
                                                          double temperature) {
  check_decode_args(heatmaps, window, temperature);
  TORCH_CHECK(heatmaps.device().is_cpu(), "shr_ops.decode: CPU kernel got heatmaps on ", heatmaps.device());
  const int64_t H = heatmaps.size(-2), W = heatmaps.size(-1);
  at::Tensor coords, scores, index;
  std::tie(coords, scores, index) = empty_decode_outputs(heatmaps);
  const int64_t M = index.numel();
  if (M == 0) return {coords, scores, index};
  const at::Tensor hm = heatmaps.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, hm.scalar_type(), "shr_ops_decode_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    decode_cpu_impl<scalar_t, acc_t>(hm.const_data_ptr<scalar_t>(), coords.mutable_data_ptr<acc_t>(),
                                     scores.mutable_data_ptr<acc_t>(), index.mutable_data_ptr<int64_t>(), M, H, W,
                                     window / 2, static_cast<acc_t>(temperature));
  });
  return {coords, scores, index};
}

at::Tensor decode_backward_cpu(const at::Tensor& grad_coords, const at::Tensor& grad_scores, const at::Tensor& heatmaps,
                               const at::Tensor& index, int64_t window, double temperature) {
  const char* op = "shr_ops.decode_backward";
  check_decode_args(heatmaps, window, temperature);
  check_decode_backward_args(grad_coords, grad_scores, heatmaps, index, op);
  at::Tensor out = at::empty(heatmaps.sizes(), heatmaps.options());
  const int64_t M = index.numel();
  if (M == 0) return out;
  const int64_t H = heatmaps.size(-2), W = heatmaps.size(-1);
  const at::Tensor hm = heatmaps.contiguous();
  const at::Tensor gc = grad_coords.contiguous();
  const at::Tensor gs = grad_scores.contiguous();
  const at::Tensor idx = index.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, hm.scalar_type(), "shr_ops_decode_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    decode_backward_cpu_impl<scalar_t, acc_t>(gc.const_data_ptr<acc_t>(), gs.const_data_ptr<acc_t>(),
                                              hm.const_data_ptr<scalar_t>(), idx.const_data_ptr<int64_t>(),
                                              out.mutable_data_ptr<scalar_t>(), M, H, W, window / 2,
                                              static_cast<acc_t>(temperature));
  });
  return out;
}

}  // namespace
}  // namespace shr_ops

TORCH_LIBRARY_IMPL(shr_ops, CPU, m) {
  m.impl("decode", &shr_ops::decode_cpu);
  m.impl("decode_backward", &shr_ops::decode_backward_cpu);
}
