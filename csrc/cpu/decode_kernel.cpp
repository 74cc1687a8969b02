// CPU kernels of shr_ops::decode and shr_ops::decode_backward.
//
// Per map: optionally pre-filter by a normalised, truncated Gaussian (std `blur`, radius
// ceil(3 blur), zero outside the frame: shr_ops.filters.gaussian_blur); m = first argmax of the
// (filtered) map in row-major order (NaN counts as the maximum, like torch.argmax); a window x window
// box centred on m, clipped to the frame; p = softmax(t * h) over the box; coords = m + sum p *
// (offset from m). Backward: d coords / d h_k = t p_k (o_k - mean offset), plus the score's
// gradient at m; zero outside the box; with the pre-filter, that gradient is carried back through
// the filter (its transpose, the same filter as the kernel is symmetric) into the box grown by
// the filter's radius. With the pre-filter, where the least-squares Gaussian fit of the raw map
// around m is valid (decode/fit.h), the coordinates are the soft-argmax estimate corrected by its
// own bias on the fitted model, s - S + (x, y) (S: the same soft-argmax of the pre-filtered fitted
// Gaussian, ModelWindow), and the backward adds the fit's gradient (through (x, y) and S) on the
// raw fit box to the estimate's.
//
// The filtered map F is never materialised: its argmax is searched only where it can be. The
// kernel filters the decode window around the raw map's argmax, grown by one pixel (about 11 x 12
// values), and takes L = the largest filtered value there (L > 0). As the taps are >= 0 and sum
// to 1, F(i, j) <= sum_d k[d] max(0, rowmax[i + d - r]) and F(i, j) <= sum_d k[d] colmax[j + d - r]
// (colmax: column maxima, clamped at 0, over the rows the candidate rows' filter reads); rows and
// columns whose bound is below L hold no maximum. When every candidate lies in the filtered
// window (the usual case: one peak) its argmax is the answer; otherwise the candidates' box (with
// the window) is filtered and searched. Flat, non-positive or non-finite maps (and maps whose sum
// overflows: search.h's finiteness check) are filtered whole.
// Filtering is separable (rows, then columns), vectorised over output columns with the partial
// sums in registers, mirrored taps added before their one multiplication; a filtered value
// depends only on its position, so every path (search, window, backward) sees the same bits.
//
// The parts, by job: decode/simd.h (SSE2 vectors, prefetch), decode/box.h (rectangles of a map),
// decode/blur.h (the separable filter and its transpose), decode/search.h (the bounded argmax
// search), decode/window.h (the window's softmax moments and their gradient); here, the per-map
// loops and the launchers.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <tuple>
#include <type_traits>
#include <vector>

#include "../decode.h"
#include "cpu_common.h"
#include "decode/blur.h"
#include "decode/box.h"
#include "decode/fit.h"
#include "decode/search.h"
#include "decode/window.h"

namespace shr_ops {
namespace cpu {
namespace {

inline bool inside(const Box& a, const Box& b) { return a.i0 >= b.i0 && a.i1 <= b.i1 && a.j0 >= b.j0 && a.j1 <= b.j1; }

// The fit's start width (fit::start_lam) from the filtered values at the three pixels around the
// argmax (mi, mj) on each axis, shifted inward at the edge: read from v (the filtered box vb) when
// it holds them, else filtered here into tmp (the same bits: a filtered value depends only on its
// position).
template <typename in_t, typename acc_t>
double fit_start_lam(const in_t* h, int64_t H, int64_t W, int64_t mi, int64_t mj, const View<acc_t>& v,
                     const Box& vb, const Blur<acc_t>& f, Scratch<acc_t>& s, std::vector<acc_t>& tmp) {
  const bool has[2] = {W >= 3, H >= 3};  // (x axis, y axis)
  const int64_t cj = has[0] ? std::min(std::max<int64_t>(mj, 1), W - 2) : mj;
  const int64_t ci = has[1] ? std::min(std::max<int64_t>(mi, 1), H - 2) : mi;
  const Box nb{has[1] ? ci - 1 : mi, has[1] ? ci + 1 : mi, has[0] ? cj - 1 : mj, has[0] ? cj + 1 : mj};
  View<acc_t> u = v;
  if (!inside(nb, vb)) {
    const int64_t ld = blur_box(h, H, W, nb, f, s, tmp);
    u = View<acc_t>{tmp.data(), nb.i0, nb.j0, ld};
  }
  double fv[2][3] = {};
  for (int e = 0; e < 3; ++e) {
    if (has[0]) fv[0][e] = static_cast<double>(u(mi, cj - 1 + e));
    if (has[1]) fv[1][e] = static_cast<double>(u(ci - 1 + e, mj));
  }
  return fit::start_lam(fv, has, f.sigma);
}

// The fit of the raw map h around the window's argmax (GaussianFit::run over the box of radius R),
// started at the window's soft-argmax estimate with the width from the filtered values (v, of the
// filtered box vb; fit_start_lam).
template <typename in_t, typename acc_t>
fit::Result fit_window(GaussianFit& gf, const in_t* h, int64_t H, int64_t W, const Window<acc_t>& win,
                       const View<acc_t>& v, const Box& vb, const Blur<acc_t>& f, Scratch<acc_t>& s,
                       std::vector<acc_t>& tmp, int64_t R, double stop) {
  const double lam0 = fit_start_lam(h, H, W, win.mi, win.mj, v, vb, f, s, tmp);
  return gf.run(h, W, window_box(win.mi, win.mj, R, H, W), win.x(), win.y(), lam0, f.sigma, win.mi, win.mj, R, stop);
}

template <typename in_t, typename acc_t>
void decode_cpu_impl(const in_t* hm, acc_t* coords, acc_t* scores, int64_t* index, int64_t M, int64_t H, int64_t W,
                     int64_t r, acc_t t, const Blur<acc_t>& f) {
  const int64_t HW = H * W;
  const int64_t R = f.on() ? fit::box_radius(2 * r + 1, f.sigma, H, W) : 0;
  const double stop = fit::stop_step(std::is_same<in_t, double>::value);
  at::parallel_for(0, M, maps_per_chunk(HW), [&](int64_t begin, int64_t end) {
    Scratch<acc_t> s;
    std::vector<acc_t> wv, sv;
    std::vector<in_t> rowmax;
    GaussianFit gf;
    gf.ahead = &s.ahead;
    ModelWindow<acc_t> mw;
    for (int64_t m = begin; m < end; ++m) {
      const in_t* h = hm + m * HW;
      s.ahead.start(m + 1 < end ? h + HW : nullptr, HW * static_cast<int64_t>(sizeof(in_t)));  // the next map
      int64_t best;
      double x, y;
      acc_t peak;
      if (!f.on()) {
        best = map_argmax(h, H, W, rowmax, &s.ahead);  // the search is nearly all: asked for row by row
        const Window<acc_t> win(View<in_t>{h, 0, 0, W}, window_box(best / W, best % W, r, H, W), best / W, best % W,
                                t);
        x = static_cast<double>(win.mj) + win.mx;
        y = static_cast<double>(win.mi) + win.my;
        peak = win.peak;
      } else {
        Box sb;
        best = blurred_argmax(h, H, W, f, r, s, rowmax, sb);
        const int64_t mi = best / W, mj = best % W;
        const Box wb = window_box(mi, mj, r, H, W);
        View<acc_t> v{s.box.data(), sb.i0, sb.j0, padded_cols(sb.cols())};  // the window is usually inside it
        Box vb = sb;
        if (!inside(wb, sb)) {
          const int64_t ld = blur_box(h, H, W, wb, f, s, wv);
          v = View<acc_t>{wv.data(), wb.i0, wb.j0, ld};
          vb = wb;
        }
        const Window<acc_t> win(v, wb, mi, mj, t, &s.ahead);
        x = win.x();
        y = win.y();
        peak = win.peak;
        if (R > 0) {
          const fit::Result fr = fit_window(gf, h, H, W, win, v, vb, f, s, sv, R, stop);
          if (fr.valid) {  // the estimate corrected by its own bias on the fitted model
            mw.fill(fr, wb, f.k, H, W, false);
            const Window<acc_t> model(mw.view(), wb, mi, mj, t, &s.ahead);
            x = (static_cast<double>(mj) + win.mx) - (static_cast<double>(mj) + model.mx) + fr.x;
            y = (static_cast<double>(mi) + win.my) - (static_cast<double>(mi) + model.my) + fr.y;
          }
        }
      }
      s.ahead.finish();
      coords[2 * m] = static_cast<acc_t>(x);
      coords[2 * m + 1] = static_cast<acc_t>(y);
      scores[m] = peak;
      index[m] = best;
    }
  });
}

template <typename in_t, typename acc_t>
void decode_backward_cpu_impl(const acc_t* gc, const acc_t* gs, const in_t* hm, const int64_t* index, in_t* out,
                              int64_t M, int64_t H, int64_t W, int64_t r, acc_t t, const Blur<acc_t>& f) {
  const int64_t HW = H * W;
  const int64_t R = f.on() ? fit::box_radius(2 * r + 1, f.sigma, H, W) : 0;
  const double stop = fit::stop_step(std::is_same<in_t, double>::value);
  at::parallel_for(0, M, maps_per_chunk(HW), [&](int64_t begin, int64_t end) {
    Scratch<acc_t> s;
    std::vector<acc_t> wv, sv;
    std::vector<double> g, gr, fg, gm;
    GaussianFit gf;
    ModelWindow<acc_t> mw;
    for (int64_t m = begin; m < end; ++m) {
      const in_t* h = hm + m * HW;
      in_t* o = out + m * HW;
      std::fill(o, o + HW, in_t(0));
      const int64_t best = index[m];
      TORCH_CHECK(best >= 0 && best < HW, "shr_ops.decode_backward: index[", m, "] = ", best, " is outside [0, H*W)");
      const Box wb = window_box(best / W, best % W, r, H, W);
      g.resize(wb.rows() * wb.cols());
      if (!f.on()) {
        window_grad<acc_t>(View<in_t>{h, 0, 0, W}, wb, best, W, t, gc[2 * m], gc[2 * m + 1], gs[m], g.data());
        for (int64_t i = wb.i0; i <= wb.i1; ++i)
          for (int64_t j = wb.j0; j <= wb.j1; ++j)
            o[i * W + j] = static_cast<in_t>(g[(i - wb.i0) * wb.cols() + (j - wb.j0)]);
        continue;
      }
      const int64_t ld = blur_box(h, H, W, wb, f, s, wv);
      const View<acc_t> v{wv.data(), wb.i0, wb.j0, ld};
      const Box ob = wb.grown(f.r, H, W);  // back through the filter, into the window grown by its radius
      const double gx = gc[2 * m], gy = gc[2 * m + 1];
      // The estimate's and the score's gradient w.r.t. the filtered window, filtered back below.
      window_grad<acc_t>(v, wb, best, W, t, gx, gy, gs[m], g.data());
      const double* fit_grad = nullptr;  // with a valid fit: its gradient over the raw box fb, added
      Box fb{0, -1, 0, -1};
      if (R > 0) {  // the forward's fit, recomputed: the same bits, so the same `valid`
        const int64_t mi = best / W, mj = best % W;
        const fit::Result fr = fit_window(gf, h, H, W, Window<acc_t>(v, wb, mi, mj, t), v, wb, f, s, sv, R, stop);
        if (fr.valid) {  // s - S + (x, y): the fit's gradient, through (x, y) and the bias S
          fb = window_box(mi, mj, R, H, W);
          mw.fill(fr, wb, f.k, H, W, true);
          gm.resize(wb.rows() * wb.cols());
          window_grad<acc_t>(mw.view(), wb, best, W, t, gx, gy, 0.0, gm.data());
          double gphi[4] = {0.0, gx, gy, 0.0};
          mw.subtract_grad(fr, gm.data(), gphi);
          fg.assign(fb.rows() * fb.cols(), 0.0);
          gf.grad(fr, gphi, fg.data());
          fit_grad = fg.data();
        }
      }
      blur_transposed(g.data(), wb, ob, f, gr, o, W, fit_grad, fb);
    }
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> decode_cpu(const at::Tensor& heatmaps, int64_t window,
                                                          double temperature, c10::optional<double> blur) {
  const DecodeLaunch p = prepare_decode(heatmaps, window, temperature, blur, at::kCPU);
  if (p.empty()) return {p.coords, p.scores, p.index};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, p.hm.scalar_type(), "shr_ops_decode_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    decode_cpu_impl<scalar_t, acc_t>(p.hm.const_data_ptr<scalar_t>(), p.coords.mutable_data_ptr<acc_t>(),
                                     p.scores.mutable_data_ptr<acc_t>(), p.index.mutable_data_ptr<int64_t>(), p.maps,
                                     p.height, p.width, p.radius, static_cast<acc_t>(temperature), Blur<acc_t>(blur));
  });
  return {p.coords, p.scores, p.index};
}

at::Tensor decode_backward_cpu(const at::Tensor& grad_coords, const at::Tensor& grad_scores, const at::Tensor& heatmaps,
                               const at::Tensor& index, int64_t window, double temperature,
                               c10::optional<double> blur, bool check_index) {
  (void)check_index;  // the CPU kernel checks the index always (schemas.h)
  const DecodeBackwardLaunch p =
      prepare_decode_backward(grad_coords, grad_scores, heatmaps, index, window, temperature, blur, at::kCPU);
  if (p.empty()) return p.grad;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, p.hm.scalar_type(), "shr_ops_decode_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    decode_backward_cpu_impl<scalar_t, acc_t>(
        p.grad_coords.const_data_ptr<acc_t>(), p.grad_scores.const_data_ptr<acc_t>(), p.hm.const_data_ptr<scalar_t>(),
        p.index.const_data_ptr<int64_t>(), p.grad.mutable_data_ptr<scalar_t>(), p.maps, p.height, p.width, p.radius,
        static_cast<acc_t>(temperature), Blur<acc_t>(blur));
  });
  return p.grad;
}

}  // namespace
}  // namespace cpu
}  // namespace shr_ops

TORCH_LIBRARY_IMPL(shr_ops, CPU, m) {
  m.impl("decode", &shr_ops::cpu::decode_cpu);
  m.impl("decode_backward", &shr_ops::cpu::decode_backward_cpu);
}
