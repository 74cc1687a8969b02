// CPU decode, the separable pre-filter: its taps, the correlation of rows or columns (SSE2,
// register-blocked, mirrored taps added before their one multiplication), the filtered values of
// a box of a map (rows first, then columns, zero outside the frame), and the transposed filter that
// carries a gradient back. A filtered value depends only on its position in the frame, not on the
// box it was computed in, so the search, the window and the backward pass all see the same bits.
#pragma once

#include <c10/util/Optional.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "../../shr_ops.h"
#include "box.h"
#include "simd.h"

namespace shr_ops {
namespace cpu {

// The separable pre-filter: taps k[0..2r] (gaussian_taps), in acc_t.
template <typename acc_t>
struct Blur {
  int64_t r = -1;  // -1: no pre-filter
  double sigma = 0;  // its std
  std::vector<acc_t> k;
  explicit Blur(c10::optional<double> blur) {
    if (!blur.has_value()) return;
    sigma = *blur;
    const std::vector<double> kd = gaussian_taps(*blur);
    r = static_cast<int64_t>(kd.size() / 2);
    k.assign(kd.begin(), kd.end());
  }
  bool on() const { return r >= 0; }
};

// Per-thread buffers of the filter.
template <typename acc_t>
struct Scratch {
  std::vector<acc_t> rows, line, box, bound, maxima;  // maxima: clamped row or column maxima
  Ahead ahead;  // the next map's read (the decode forward's; idle otherwise): stepped by the filter's
                // rows here, and by Window's rows and GaussianFit's column blocks through pointers
};

// dst[c] = sum_d k[d] src[c + d * step] for c < n, d < taps. With `sym` (all 2r + 1 taps of the
// symmetric filter) the mirrored inputs are added first and multiplied once:
// k[r] src[c + r step] + sum_{d < r} k[d] (src[c + d step] + src[c + (2r - d) step]); otherwise
// k[0] src[c] + k[1] src[c + step] + ... in increasing d. Every path sums in this order, so a
// filtered value depends only on its position in the frame, not on the box it was computed in.
template <typename acc_t>
inline void correlate_scalar(const acc_t* src, int64_t step, const acc_t* k, int64_t taps, int64_t n, acc_t* dst,
                             bool sym) {
  const int64_t r = taps / 2;
  for (int64_t c = 0; c < n; ++c) {
    acc_t a;
    if (sym) {
      a = k[r] * src[c + r * step];
      for (int64_t d = 0; d < r; ++d) a += k[d] * (src[c + d * step] + src[c + (taps - 1 - d) * step]);
    } else {
      a = k[0] * src[c];
      for (int64_t d = 1; d < taps; ++d) a += k[d] * src[c + d * step];
    }
    dst[c] = a;
  }
}

#if defined(__SSE2__)
// NV vectors of outputs at a time, their sums kept in registers across the taps.
template <typename S, int NV>
inline void correlate_block(const typename S::T* src, int64_t step, const typename S::T* k, int64_t taps,
                            typename S::T* dst, bool sym) {
  using V = typename S::V;
  constexpr int64_t L = S::L;
  V a[NV];
  if (sym) {
    const int64_t r = taps / 2;
    V kd = S::set1(k[r]);
    for (int v = 0; v < NV; ++v) a[v] = S::mul(kd, S::load(src + r * step + v * L));
    for (int64_t d = 0; d < r; ++d) {
      kd = S::set1(k[d]);
      const typename S::T* q = src + d * step;
      const typename S::T* p = src + (taps - 1 - d) * step;
      for (int v = 0; v < NV; ++v) a[v] = S::add(a[v], S::mul(kd, S::add(S::load(q + v * L), S::load(p + v * L))));
    }
  } else {
    V kd = S::set1(k[0]);
    for (int v = 0; v < NV; ++v) a[v] = S::mul(kd, S::load(src + v * L));
    for (int64_t d = 1; d < taps; ++d) {
      kd = S::set1(k[d]);
      const typename S::T* q = src + d * step;
      for (int v = 0; v < NV; ++v) a[v] = S::add(a[v], S::mul(kd, S::load(q + v * L)));
    }
  }
  for (int v = 0; v < NV; ++v) S::store(dst + v * L, a[v]);
}

template <typename S>
void correlate_sse(const typename S::T* src, int64_t step, const typename S::T* k, int64_t taps, int64_t n,
                   typename S::T* dst, bool sym) {
  constexpr int64_t L = S::L;
  int64_t c = 0;
  for (; c + 4 * L <= n; c += 4 * L) correlate_block<S, 4>(src + c, step, k, taps, dst + c, sym);
  switch ((n - c) / L) {
    case 3: correlate_block<S, 3>(src + c, step, k, taps, dst + c, sym); break;
    case 2: correlate_block<S, 2>(src + c, step, k, taps, dst + c, sym); break;
    case 1: correlate_block<S, 1>(src + c, step, k, taps, dst + c, sym); break;
    default: break;
  }
  c += (n - c) / L * L;
  correlate_scalar(src + c, step, k, taps, n - c, dst + c, sym);
}
#endif

template <typename acc_t>
inline void correlate(const acc_t* src, int64_t step, const acc_t* k, int64_t taps, int64_t n, acc_t* dst, bool sym) {
  correlate_scalar(src, step, k, taps, n, dst, sym);
}
#if defined(__SSE2__)
template <>
inline void correlate<float>(const float* src, int64_t step, const float* k, int64_t taps, int64_t n, float* dst,
                             bool sym) {
  correlate_sse<SseFloat>(src, step, k, taps, n, dst, sym);
}
template <>
inline void correlate<double>(const double* src, int64_t step, const double* k, int64_t taps, int64_t n,
                              double* dst, bool sym) {
  correlate_sse<SseDouble>(src, step, k, taps, n, dst, sym);
}
#endif

// line[c] = src[base + c] for c < len, zero where base + c is outside [0, n).
template <typename in_t, typename acc_t>
inline void load_padded(const in_t* src, int64_t n, int64_t base, int64_t len, acc_t* line) {
  const int64_t c0 = std::min(len, std::max<int64_t>(0, -base)), c1 = std::max(c0, std::min(len, n - base));
  std::fill(line, line + c0, acc_t(0));
  for (int64_t c = c0; c < c1; ++c) line[c] = static_cast<acc_t>(src[base + c]);
  std::fill(line + c1, line + len, acc_t(0));
}

// Boxes are filtered a multiple of this many columns wide, so the vectorised loops have no tail.
constexpr int64_t kColumnBlock = 4;
inline int64_t padded_cols(int64_t n) { return (n + kColumnBlock - 1) / kColumnBlock * kColumnBlock; }

// Filtered values of the map h (H x W) on box b into out: b.rows() rows of stride
// padded_cols(b.cols()) (the columns past b.cols() are scratch). Returns the stride. Rows first
// (the rows of b grown by r, those outside the frame skipped as they are zero), then columns, in
// the order of `correlate`.
template <typename in_t, typename acc_t>
int64_t blur_box(const in_t* h, int64_t H, int64_t W, const Box& b, const Blur<acc_t>& f, Scratch<acc_t>& s,
                 std::vector<acc_t>& out) {
  const int64_t r = f.r, taps = 2 * r + 1, n = padded_cols(b.cols());
  const acc_t* k = f.k.data();
  const int64_t ra = std::max<int64_t>(0, b.i0 - r), rz = std::min<int64_t>(H - 1, b.i1 + r);  // rows read
  // line[c] holds frame column b.j0 - r + c of a row, zero outside the frame.
  s.line.resize(n + 2 * r);
  acc_t* line = s.line.data();
  s.rows.resize((rz - ra + 1) * n);
  // Where the columns read lie inside the frame and the map is in acc_t, its rows are read in place.
  const bool in_place = std::is_same<in_t, acc_t>::value && b.j0 - r >= 0 && b.j0 - r + n + 2 * r <= W;
  for (int64_t i = ra; i <= rz; ++i) {
    s.ahead.step();
    const acc_t* src = line;
    if (in_place)
      src = reinterpret_cast<const acc_t*>(h + i * W + (b.j0 - r));
    else
      load_padded(h + i * W, W, b.j0 - r, n + 2 * r, line);
    correlate(src, 1, k, taps, n, s.rows.data() + (i - ra) * n, true);
  }
  out.resize(b.rows() * n);
  for (int64_t i = b.i0; i <= b.i1; ++i) {
    s.ahead.step();
    // Tap d reads row i + d - r.
    const int64_t d0 = std::max<int64_t>(0, ra - (i - r)), d1 = std::min<int64_t>(taps - 1, rz - (i - r));
    correlate(s.rows.data() + (i - r + d0 - ra) * n, n, k + d0, d1 - d0 + 1, n, out.data() + (i - b.i0) * n,
              d0 == 0 && d1 == taps - 1);
  }
  return n;
}

// The filter, transposed (it is symmetric: the same taps), for the backward pass:
// o[q] = sum over the window wb of g[p] k(p_i - q_i) k(p_j - q_j) for q in ob, the window grown by
// the radius (clipped to the frame). g holds the window's gradient (wb.rows() x wb.cols(),
// row-major), o the map (row stride W); gr is scratch. Along rows first, then columns. `extra`
// (optional) is a gradient over the box eb, inside ob, added to o before its one rounding.
template <typename out_t, typename acc_t>
void blur_transposed(const double* g, const Box& wb, const Box& ob, const Blur<acc_t>& f, std::vector<double>& gr,
                     out_t* o, int64_t W, const double* extra = nullptr, const Box& eb = Box{0, -1, 0, -1}) {
  gr.assign(wb.rows() * ob.cols(), 0.0);
  for (int64_t a = 0; a < wb.rows(); ++a) {
    for (int64_t b = 0; b < wb.cols(); ++b) {
      const double v = g[a * wb.cols() + b];
      const int64_t pj = wb.j0 + b;
      const int64_t q0 = std::max(ob.j0, pj - f.r), q1 = std::min(ob.j1, pj + f.r);
      for (int64_t qj = q0; qj <= q1; ++qj) gr[a * ob.cols() + (qj - ob.j0)] += v * f.k[pj - qj + f.r];
    }
  }
  for (int64_t qi = ob.i0; qi <= ob.i1; ++qi) {
    const int64_t a0 = std::max(wb.i0, qi - f.r), a1 = std::min(wb.i1, qi + f.r);
    for (int64_t qj = ob.j0; qj <= ob.j1; ++qj) {
      double v = 0;
      for (int64_t pi = a0; pi <= a1; ++pi) v += f.k[pi - qi + f.r] * gr[(pi - wb.i0) * ob.cols() + (qj - ob.j0)];
      if (extra != nullptr && qi >= eb.i0 && qi <= eb.i1 && qj >= eb.j0 && qj <= eb.j1)
        v += extra[(qi - eb.i0) * eb.cols() + (qj - eb.j0)];
      o[qi * W + qj] = static_cast<out_t>(v);
    }
  }
}

}  // namespace cpu
}  // namespace shr_ops
