// CPU decode, the window: the window x window box around the argmax (clipped to the frame), the
// softmax moments over it that give the coordinates, and their gradient w.r.t. the box's values.
#pragma once

#include <cstdint>

#include "../../shr_ops.h"
#include "box.h"
#include "simd.h"

namespace shr_ops {
namespace cpu {

// The decode window around (mi, mj), clipped to the frame.
inline Box window_box(int64_t mi, int64_t mj, int64_t r, int64_t H, int64_t W) {
  return Box{mi, mi, mj, mj}.grown(r, H, W);
}

// The window's unnormalised softmax weights exp(t (h(i, j) - peak)) along row i, in acc_t: every
// pass over the window (the forward's moments, the backward's gradient) takes them from here, so
// they see the same bits. With float values in a float View, four at a time (exp_ps, SSE2); the C
// library's exp otherwise.
template <typename acc_t, typename V>
struct RowWeights {
  static constexpr bool kVector = false;
  static acc_t at(const V& h, int64_t i, int64_t j, acc_t peak, acc_t t) {
    return shr_exp(t * (static_cast<acc_t>(h(i, j)) - peak));
  }
};
#if defined(__SSE2__)
template <>
struct RowWeights<float, View<float>> {
  static constexpr bool kVector = true;
  // exp(t (v - peak)) of four values: every vector of weights is this expression (four, tails).
  static __m128 weights(__m128 v, float peak, float t) {
    return exp_ps(_mm_mul_ps(_mm_set1_ps(t), _mm_sub_ps(v, _mm_set1_ps(peak))));
  }
  // The weights of the window's columns j .. j + 3 on row i, of which the first `skip` weigh 0;
  // the window's columns are j0 .. j1. Every column read is in the window: a window narrower than
  // 4 is copied out, padded with the peak (a 16-byte load of values just stored one by one would
  // stall), and the lanes past j1 weigh 0 too (set to 0, not left to exp: t may round to 0).
  static __m128 four(const View<float>& h, int64_t i, int64_t j, int64_t skip, int64_t j0, int64_t j1, float peak,
                     float t) {
    const float* p = h.data + (i - h.i0) * h.stride;
    __m128 v;
    int64_t end = 4;  // lanes [skip, end) are the window's
    if (j1 - j0 >= 3) {
      v = _mm_loadu_ps(p + (j - h.j0));
    } else {
      float q[4] = {peak, peak, peak, peak};
      for (int64_t c = j; c <= j1; ++c) q[c - j] = p[c - h.j0];
      v = _mm_loadu_ps(q);
      end = j1 - j + 1;
    }
    const __m128 e = weights(v, peak, t);
    if (skip == 0 && end == 4) return e;
    const __m128 lane = _mm_set_ps(3.0f, 2.0f, 1.0f, 0.0f);
    const __m128 keep = _mm_and_ps(_mm_cmpge_ps(lane, _mm_set1_ps(static_cast<float>(skip))),
                                   _mm_cmplt_ps(lane, _mm_set1_ps(static_cast<float>(end))));
    return _mm_and_ps(keep, e);
  }
  // The vectors of a row: columns j .. j + 3 for j = j0, j0 + 4, ..., the last one moved back to
  // end at j1 (when it can: rows of 4 or more) with the columns already done skipped.
  template <typename F>
  static void for_each(int64_t j0, int64_t j1, F&& f) {
    int64_t j = j0;
    for (; j + 3 <= j1; j += 4) f(j, int64_t{0});
    if (j <= j1) {
      const int64_t back = j1 - j0 >= 3 ? j1 - 3 : j;
      f(back, j - back);
    }
  }
  // A window of at most this many rows has its rows' last vectors computed together (tails).
  static constexpr int64_t kTailRows = 32;
  // Every row's last vector, as four() gives it for for_each's last call (columns j1 - 3 .. j1, the
  // ones already done weighing 0), into out[4 (i - w.i0) ...], for a window at least 4 and not a
  // multiple of 4 wide, of at most kTailRows rows; false (nothing written) for any other. The
  // columns past the last whole vector of every row are packed together and go through exp_ps four
  // at a time (a 9 x 9 window: 3 vectors instead of 9), each value's weight the same bits as four()'s.
  static bool tails(const View<float>& h, const Box& w, float peak, float t, float* out) {
    const int64_t rem = w.cols() % 4, rows = w.rows();
    if (w.cols() < 4 || rem == 0 || rows > kTailRows) return false;
    const int64_t jt = w.j1 - rem + 1, skip = 4 - rem;  // the first tail column; lanes before it: 0
    float v[kTailRows * 3 + 3];
    int64_t n = 0;
    for (int64_t i = w.i0; i <= w.i1; ++i) {
      const float* p = h.data + (i - h.i0) * h.stride + (jt - h.j0);
      for (int64_t c = 0; c < rem; ++c) v[n++] = p[c];
    }
    while (n % 4 != 0) v[n++] = peak;  // (weight 1, not used)
    for (int64_t q = 0; q < n; q += 4)
      _mm_storeu_ps(v + q, weights(_mm_loadu_ps(v + q), peak, t));
    for (int64_t a = 0; a < rows; ++a) {
      for (int64_t c = 0; c < skip; ++c) out[4 * a + c] = 0.0f;
      for (int64_t c = 0; c < rem; ++c) out[4 * a + skip + c] = v[a * rem + c];
    }
    return true;
  }
};
#endif

// Softmax moments over the window w around (mi, mj): sum of weights, and mean offsets.
// Weights are computed in acc_t; their sums are accumulated in double, so a float32 result is
// the float32 weights' moments rounded once (the reference computes in float64).
template <typename acc_t>
struct Window {
  Box w;
  int64_t mi, mj;
  acc_t peak;
  double sum, mx, my;  // mx, my: mean offsets
#if defined(__SSE2__)
  // The rows' last vectors of weights when computed together (RowWeights::tails; has_tails), for
  // the moments here and window_grad's gradient.
  float tails[4 * RowWeights<float, View<float>>::kTailRows];
  bool has_tails = false;
#endif
  // ahead: the next map's read, stepped a row at a time (the decode forward's), or nullptr.
  template <typename V>
  Window(const V& h, const Box& box, int64_t mi_, int64_t mj_, acc_t t, Ahead* ahead = nullptr)
      : w(box), mi(mi_), mj(mj_) {
    peak = static_cast<acc_t>(h(mi, mj));
    const float* tail = nullptr;
#if defined(__SSE2__)
    if constexpr (RowWeights<acc_t, V>::kVector) {
      has_tails = RowWeights<acc_t, V>::tails(h, w, peak, t, tails);
      if (has_tails) tail = tails;
    }
#endif
    double s = 0, sx = 0, sy = 0;
    for (int64_t i = w.i0; i <= w.i1; ++i) {
      double srow = 0, sxrow = 0;
      if (ahead != nullptr) ahead->step();
      row_sums(h, i, t, tail, srow, sxrow);
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

 private:
  // Row i's weights summed, plain and times the column offset, into s and sx (tail: the rows' last
  // vectors from RowWeights::tails, or nullptr).
  template <typename V>
  void row_sums(const V& h, int64_t i, acc_t t, const float* tail, double& s, double& sx) const {
    (void)tail;
    using RW = RowWeights<acc_t, V>;
#if defined(__SSE2__)
    if constexpr (RW::kVector) {  // two doubles a lane pair: the weights' sums in two halves, added at the end
      __m128d s2 = _mm_setzero_pd(), sx2 = _mm_setzero_pd();
      RW::for_each(w.j0, w.j1, [&](int64_t j, int64_t skip) {
        const __m128 e = skip > 0 && tail != nullptr ? _mm_loadu_ps(tail + 4 * (i - w.i0))
                                                     : RW::four(h, i, j, skip, w.j0, w.j1, peak, t);
        const __m128d lo = _mm_cvtps_pd(e), hi = _mm_cvtps_pd(_mm_movehl_ps(e, e));
        const double o = static_cast<double>(j - mj);
        s2 = _mm_add_pd(s2, _mm_add_pd(lo, hi));
        sx2 = _mm_add_pd(sx2, _mm_add_pd(_mm_mul_pd(lo, _mm_set_pd(o + 1, o)), _mm_mul_pd(hi, _mm_set_pd(o + 3, o + 2))));
      });
      double a[2], b[2];
      _mm_storeu_pd(a, s2);
      _mm_storeu_pd(b, sx2);
      s = a[0] + a[1];
      sx = b[0] + b[1];
    } else
#endif
    {
      for (int64_t j = w.j0; j <= w.j1; ++j) {
        const double p = RW::at(h, i, j, peak, t);
        s += p;
        sx += p * static_cast<double>(j - mj);
      }
    }
  }
};

// d loss / d (window values) of one map into g (the window's rows x cols, row-major).
template <typename acc_t, typename V>
void window_grad(const V& h, const Box& wb, int64_t best, int64_t W, acc_t t, double gx, double gy, double gs,
                 double* g) {
  using RW = RowWeights<acc_t, V>;
  const Window<acc_t> win(h, wb, best / W, best % W, t);
  const double scale = static_cast<double>(t) / win.sum;
  for (int64_t i = wb.i0; i <= wb.i1; ++i) {
    const double ey = gy * (static_cast<double>(i - win.mi) - win.my);
    const auto put = [&](int64_t j, acc_t p) {
      const double q = static_cast<double>(p) * scale;
      double v = q * (gx * (static_cast<double>(j - win.mj) - win.mx) + ey);
      if (i * W + j == best) v += gs;
      g[(i - wb.i0) * wb.cols() + (j - wb.j0)] = v;
    };
#if defined(__SSE2__)
    if constexpr (RW::kVector) {
      RW::for_each(wb.j0, wb.j1, [&](int64_t j, int64_t skip) {
        float p[4];
        _mm_storeu_ps(p, skip > 0 && win.has_tails ? _mm_loadu_ps(win.tails + 4 * (i - wb.i0))
                                                   : RW::four(h, i, j, skip, wb.j0, wb.j1, win.peak, t));
        for (int64_t c = skip; c < 4 && j + c <= wb.j1; ++c) put(j + c, p[c]);
      });
    } else
#endif
    {
      for (int64_t j = wb.j0; j <= wb.j1; ++j) put(j, RW::at(h, i, j, win.peak, t));
    }
  }
}

}  // namespace cpu
}  // namespace shr_ops
