// CPU decode, the window: the window x window box around the argmax (clipped to the frame), the
// softmax moments over it that give the coordinates, and their gradient w.r.t. the box's values.
#pragma once

#include <cstdint>

#include "../../shr_ops.h"
#include "box.h"

namespace shr_ops {
namespace cpu {

// The decode window around (mi, mj), clipped to the frame.
inline Box window_box(int64_t mi, int64_t mj, int64_t r, int64_t H, int64_t W) {
  return Box{mi, mi, mj, mj}.grown(r, H, W);
}

// Softmax moments over the window w around (mi, mj): sum of weights, and mean offsets.
// Weights are computed in acc_t; their sums are accumulated in double, so a float32 result is
// the correctly rounded value of the float32 weights (the reference computes in float64).
template <typename acc_t>
struct Window {
  Box w;
  int64_t mi, mj;
  acc_t peak;
  double sum, mx, my;  // mx, my: mean offsets
  template <typename V>
  Window(const V& h, const Box& box, int64_t mi_, int64_t mj_, acc_t t) : w(box), mi(mi_), mj(mj_) {
    peak = static_cast<acc_t>(h(mi, mj));
    double s = 0, sx = 0, sy = 0;
    for (int64_t i = w.i0; i <= w.i1; ++i) {
      double srow = 0, sxrow = 0;
      for (int64_t j = w.j0; j <= w.j1; ++j) {
        const double p = weight(h(i, j), t);
        srow += p;
        sxrow += p * static_cast<double>(j - mj);
      }
      s += srow;
      sx += sxrow;
      sy += srow * static_cast<double>(i - mi);
    }
    sum = s;
    mx = sx / s;
    my = sy / s;
  }
  // The soft-argmax estimate, rounded to acc_t as the reference's (with the pre-filter: the fit's
  // start, and the result where the fit is not valid).
  acc_t x() const { return static_cast<acc_t>(static_cast<double>(mj) + mx); }
  acc_t y() const { return static_cast<acc_t>(static_cast<double>(mi) + my); }
  // Unnormalised softmax weight; the peak is the window's maximum, so no overflow.
  template <typename v_t>
  acc_t weight(v_t v, acc_t t) const { return shr_exp(t * (static_cast<acc_t>(v) - peak)); }
};

// d loss / d (window values) of one map into g (the window's rows x cols, row-major).
template <typename acc_t, typename V>
void window_grad(const V& h, const Box& wb, int64_t best, int64_t W, acc_t t, double gx, double gy, double gs,
                 double* g) {
  const Window<acc_t> win(h, wb, best / W, best % W, t);
  const double scale = static_cast<double>(t) / win.sum;
  for (int64_t i = wb.i0; i <= wb.i1; ++i) {
    const double ey = gy * (static_cast<double>(i - win.mi) - win.my);
    for (int64_t j = wb.j0; j <= wb.j1; ++j) {
      const double p = static_cast<double>(win.weight(h(i, j), t)) * scale;
      double v = p * (gx * (static_cast<double>(j - win.mj) - win.mx) + ey);
      if (i * W + j == best) v += gs;
      g[(i - wb.i0) * wb.cols() + (j - wb.j0)] = v;
    }
  }
}

}  // namespace cpu
}  // namespace shr_ops
