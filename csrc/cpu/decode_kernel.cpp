// CPU kernels of shr_ops::decode and shr_ops::decode_backward.
//
// Per map: optionally pre-filter by a normalised, truncated Gaussian (std `blur`, radius
// ceil(3 blur), zero outside the frame: shr_ops.filters.gaussian_blur); m = first argmax of the
// (filtered) map in row-major order (NaN counts as the maximum, like torch.argmax); a window x window
// box centred on m, clipped to the frame; p = softmax(t * h) over the box; coords = m + sum p *
// (offset from m). Backward: d coords / d h_k = t p_k (o_k - mean offset), plus the score's
// gradient at m; zero outside the box; with the pre-filter, that gradient is carried back through
// the filter (its transpose, the same filter as the kernel is symmetric) into the box grown by
// the filter's radius.
//
// The filtered map is never materialised: its argmax is searched only where it can be. With
// L = the filtered value at the raw map's argmax (L > 0), a filtered value >= L needs a
// row-filtered value >= L in its column within the filter's radius, and that needs a raw value
// >= L in its row within the radius (the taps are >= 0 and sum to <= 1). So the kernel filters the
// rows of the raw hits' bounding box, then searches the row-filtered hits' box grown by the radius
// along columns (with the window around the raw argmax, which it reads the window from): about
// 15 x 11 pixels for a peaked 64x64 map. Flat, non-positive or non-finite maps are filtered whole.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "../shr_ops.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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

// Maximum of each row of an H x W map into rowmax[H]. Returns false when the map holds a NaN or
// an infinity (rowmax is then not meaningful). float and double use SSE2 where available (below).
template <typename in_t>
bool row_maxima(const in_t* h, int64_t H, int64_t W, in_t* rowmax) {
  bool finite = true;
  for (int64_t i = 0; i < H; ++i) {
    const in_t* row = h + i * W;
    in_t m = row[0];
    for (int64_t j = 0; j < W; ++j) {
      const in_t v = row[j];
      finite = finite && std::isfinite(static_cast<float>(v));
      m = v > m ? v : m;
    }
    rowmax[i] = m;
  }
  return finite;
}

#if defined(__SSE2__)
// SSE2 (every x86-64): 4 floats or 2 doubles per instruction, two accumulators. _mm_max_p*
// returns its second operand when either is NaN; NaN and infinity are caught by `check`.
struct SseFloat {
  using T = float;
  using V = __m128;
  static constexpr int64_t L = 4;
  static V load(const T* p) { return _mm_loadu_ps(p); }
  static V max(V a, V b) { return _mm_max_ps(a, b); }
  static V add(V a, V b) { return _mm_add_ps(a, b); }
  static V sub(V a, V b) { return _mm_sub_ps(a, b); }
  static V zero() { return _mm_setzero_ps(); }
  static void store(T* p, V v) { _mm_storeu_ps(p, v); }
};
struct SseDouble {
  using T = double;
  using V = __m128d;
  static constexpr int64_t L = 2;
  static V load(const T* p) { return _mm_loadu_pd(p); }
  static V max(V a, V b) { return _mm_max_pd(a, b); }
  static V add(V a, V b) { return _mm_add_pd(a, b); }
  static V sub(V a, V b) { return _mm_sub_pd(a, b); }
  static V zero() { return _mm_setzero_pd(); }
  static void store(T* p, V v) { _mm_storeu_pd(p, v); }
};

template <typename S>
bool row_maxima_sse(const typename S::T* h, int64_t H, int64_t W, typename S::T* rowmax) {
  using T = typename S::T;
  using V = typename S::V;
  constexpr int64_t L = S::L;
  V check = S::zero();  // sum of v - v: 0 while every value is finite, NaN otherwise
  T tail_check = 0;
  T lanes[L];
  for (int64_t i = 0; i < H; ++i) {
    const T* row = h + i * W;
    T m = -std::numeric_limits<T>::infinity();
    int64_t j = 0;
    if (W >= 2 * L) {
      V a0 = S::load(row), a1 = S::load(row + L);
      for (; j + 2 * L <= W; j += 2 * L) {
        const V v0 = S::load(row + j), v1 = S::load(row + j + L);
        a0 = S::max(v0, a0);
        a1 = S::max(v1, a1);
        check = S::add(check, S::add(S::sub(v0, v0), S::sub(v1, v1)));
      }
      S::store(lanes, S::max(a0, a1));
      for (int64_t l = 0; l < L; ++l) m = lanes[l] > m ? lanes[l] : m;
    }
    for (; j < W; ++j) {
      const T v = row[j];
      m = v > m ? v : m;
      tail_check += v - v;
    }
    rowmax[i] = m;
  }
  S::store(lanes, check);
  for (int64_t l = 0; l < L; ++l) tail_check += lanes[l];
  return tail_check == T(0);
}

template <>
bool row_maxima<float>(const float* h, int64_t H, int64_t W, float* rowmax) {
  return row_maxima_sse<SseFloat>(h, H, W, rowmax);
}
template <>
bool row_maxima<double>(const double* h, int64_t H, int64_t W, double* rowmax) {
  return row_maxima_sse<SseDouble>(h, H, W, rowmax);
}
#endif

// First argmax of a finite map in row-major order (as first_argmax), from its row maxima.
template <typename in_t>
int64_t argmax_by_rows(const in_t* h, int64_t H, int64_t W, const in_t* rowmax) {
  const int64_t i = first_argmax(rowmax, H);
  const in_t m = rowmax[i];
  const in_t* row = h + i * W;
  int64_t j = 0;
  while (!(row[j] == m)) ++j;
  return i * W + j;
}

// First argmax of a map in row-major order (as first_argmax), by row maxima when it is finite.
template <typename in_t>
int64_t map_argmax(const in_t* h, int64_t H, int64_t W, std::vector<in_t>& rowmax) {
  rowmax.resize(H);
  if (!row_maxima(h, H, W, rowmax.data())) return first_argmax(h, H * W);
  return argmax_by_rows(h, H, W, rowmax.data());
}

// A rectangle [i0, i1] x [j0, j1] of a map (inclusive bounds).
struct Box {
  int64_t i0, i1, j0, j1;
  int64_t rows() const { return i1 - i0 + 1; }
  int64_t cols() const { return j1 - j0 + 1; }
  // The box grown by g on every side, clipped to an H x W frame.
  Box grown(int64_t g, int64_t H, int64_t W) const {
    return {std::max<int64_t>(0, i0 - g), std::min<int64_t>(H - 1, i1 + g), std::max<int64_t>(0, j0 - g),
            std::min<int64_t>(W - 1, j1 + g)};
  }
};

// The decode window around (mi, mj), clipped to the frame.
inline Box window_box(int64_t mi, int64_t mj, int64_t r, int64_t H, int64_t W) {
  return Box{mi, mi, mj, mj}.grown(r, H, W);
}

// The separable pre-filter: taps k[0..2r] (gaussian_taps), in acc_t.
template <typename acc_t>
struct Blur {
  int64_t r = -1;  // -1: no pre-filter
  std::vector<acc_t> k;
  explicit Blur(c10::optional<double> blur) {
    if (!blur.has_value()) return;
    const std::vector<double> kd = gaussian_taps(*blur);
    r = static_cast<int64_t>(kd.size() / 2);
    k.assign(kd.begin(), kd.end());
  }
  bool on() const { return r >= 0; }
};

// Per-thread buffers of the filter.
template <typename acc_t>
struct Scratch {
  std::vector<acc_t> rows, line, box;
};

// dst[c] = sum_d k[d] src[c + d * step] for c < n, d < taps (summed in increasing d), four outputs
// at a time in registers.
template <typename acc_t>
inline void correlate(const acc_t* src, int64_t step, const acc_t* k, int64_t taps, int64_t n, acc_t* dst) {
  int64_t c = 0;
  for (; c + 4 <= n; c += 4) {
    acc_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (int64_t d = 0; d < taps; ++d) {
      const acc_t* q = src + c + d * step;
      const acc_t kd = k[d];
      a0 += kd * q[0];
      a1 += kd * q[1];
      a2 += kd * q[2];
      a3 += kd * q[3];
    }
    dst[c] = a0;
    dst[c + 1] = a1;
    dst[c + 2] = a2;
    dst[c + 3] = a3;
  }
  for (; c < n; ++c) {
    acc_t a = 0;
    for (int64_t d = 0; d < taps; ++d) a += k[d] * src[c + d * step];
    dst[c] = a;
  }
}

// The map h (H x W) filtered along its rows, on rows [i0, i1] (those outside the frame give zeros)
// and columns [j0, j1] (inside the frame), into out (row-major, j1 - j0 + 1 per row).
template <typename in_t, typename acc_t>
void blur_rows(const in_t* h, int64_t H, int64_t W, int64_t i0, int64_t i1, int64_t j0, int64_t j1,
               const Blur<acc_t>& f, Scratch<acc_t>& s, acc_t* out) {
  const int64_t r = f.r, n = j1 - j0 + 1, taps = 2 * r + 1;
  s.line.resize(n + 2 * r);
  acc_t* line = s.line.data();
  const acc_t* k = f.k.data();
  for (int64_t i = i0; i <= i1; ++i) {
    acc_t* dst = out + (i - i0) * n;
    std::fill(dst, dst + n, acc_t(0));
    if (i < 0 || i >= H) continue;
    // The row's columns [j0 - r, j1 + r], zero outside the frame.
    const int64_t c0 = std::max<int64_t>(0, r - j0), c1 = std::min<int64_t>(n + 2 * r, W - j0 + r);
    const in_t* src_row = h + i * W + (j0 - r);
    std::fill(line, line + c0, acc_t(0));
    for (int64_t c = c0; c < c1; ++c) line[c] = static_cast<acc_t>(src_row[c]);
    std::fill(line + c1, line + n + 2 * r, acc_t(0));
    correlate(line, 1, k, taps, n, dst);
  }
}

// Filtered values of the map h (H x W) on box b, into out (b.rows() x b.cols(), row-major):
// rows first (the rows of b grown by r, zero-padded), then columns.
template <typename in_t, typename acc_t>
void blur_box(const in_t* h, int64_t H, int64_t W, const Box& b, const Blur<acc_t>& f, Scratch<acc_t>& s,
              acc_t* out) {
  const int64_t r = f.r, n = b.cols(), taps = 2 * r + 1;
  s.rows.resize((b.rows() + 2 * r) * n);
  blur_rows(h, H, W, b.i0 - r, b.i1 + r, b.j0, b.j1, f, s, s.rows.data());
  const acc_t* k = f.k.data();
  for (int64_t a = 0; a < b.rows(); ++a) correlate(s.rows.data() + a * n, n, k, taps, n, out + a * n);
}

// Values of a map (or of a box of it) addressed by frame coordinates (i, j).
template <typename T>
struct View {
  const T* data;
  int64_t i0, j0, stride;
  T operator()(int64_t i, int64_t j) const { return data[(i - i0) * stride + (j - j0)]; }
};

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
  // Unnormalised softmax weight; the peak is the window's maximum, so no overflow.
  template <typename v_t>
  acc_t weight(v_t v, acc_t t) const { return shr_exp(t * (static_cast<acc_t>(v) - peak)); }
};

// First argmax of the filtered map, searching only where it can be (see the top). Returns the
// flat index; `search` receives the searched box and s.box its filtered values.
template <typename in_t, typename acc_t>
int64_t blurred_argmax(const in_t* h, int64_t H, int64_t W, const Blur<acc_t>& f, int64_t window_r,
                       Scratch<acc_t>& s, std::vector<in_t>& rowmax, Box& search) {
  search = Box{0, H - 1, 0, W - 1};
  rowmax.resize(H);
  if (row_maxima(h, H, W, rowmax.data())) {
    const int64_t raw = argmax_by_rows(h, H, W, rowmax.data());
    acc_t at_raw;
    blur_box(h, H, W, Box{raw / W, raw / W, raw % W, raw % W}, f, s, &at_raw);
    if (at_raw > 0) {
      const acc_t thr = at_raw * acc_t(1 - 1e-3);  // a margin for rounding: only makes the box larger
      Box hits{H, -1, W, -1};
      for (int64_t i = 0; i < H; ++i) {
        if (!(static_cast<acc_t>(rowmax[i]) >= thr)) continue;
        const in_t* row = h + i * W;
        int64_t first = 0, last = W - 1;
        while (!(static_cast<acc_t>(row[first]) >= thr)) ++first;
        while (!(static_cast<acc_t>(row[last]) >= thr)) --last;
        hits.i0 = std::min(hits.i0, i);
        hits.i1 = i;
        hits.j0 = std::min(hits.j0, first);
        hits.j1 = std::max(hits.j1, last);
      }
      // A filtered value >= L needs a row-filtered value >= L in its column within the radius,
      // and a row-filtered value >= L needs a raw value >= L in its row within the radius.
      const Box rb{hits.i0, hits.i1, std::max<int64_t>(0, hits.j0 - f.r), std::min<int64_t>(W - 1, hits.j1 + f.r)};
      s.box.resize(rb.rows() * rb.cols());
      blur_rows(h, H, W, rb.i0, rb.i1, rb.j0, rb.j1, f, s, s.box.data());
      Box rhits{H, -1, W, -1};
      for (int64_t i = rb.i0; i <= rb.i1; ++i) {
        for (int64_t j = rb.j0; j <= rb.j1; ++j) {
          if (s.box[(i - rb.i0) * rb.cols() + (j - rb.j0)] >= thr) {
            rhits.i0 = std::min(rhits.i0, i);
            rhits.i1 = std::max(rhits.i1, i);
            rhits.j0 = std::min(rhits.j0, j);
            rhits.j1 = std::max(rhits.j1, j);
          }
        }
      }
      if (rhits.i1 >= 0) {
        search = Box{std::max<int64_t>(0, rhits.i0 - f.r), std::min<int64_t>(H - 1, rhits.i1 + f.r), rhits.j0, rhits.j1};
      } else {  // only by rounding: search where the raw values allow
        search = hits.grown(f.r, H, W);
      }
      // Also filter the decode window around the raw argmax, grown by one pixel: the filtered
      // argmax is usually that close, and its window is then read from this box.
      const Box near = window_box(raw / W, raw % W, window_r + 1, H, W);
      search = Box{std::min(search.i0, near.i0), std::max(search.i1, near.i1), std::min(search.j0, near.j0),
                   std::max(search.j1, near.j1)};
    }
  }
  s.box.resize(search.rows() * search.cols());
  blur_box(h, H, W, search, f, s, s.box.data());
  const int64_t p = first_argmax(s.box.data(), search.rows() * search.cols());
  return (search.i0 + p / search.cols()) * W + search.j0 + p % search.cols();
}

template <typename in_t, typename acc_t>
void decode_cpu_impl(const in_t* hm, acc_t* coords, acc_t* scores, int64_t* index, int64_t M, int64_t H, int64_t W,
                     int64_t r, acc_t t, const Blur<acc_t>& f) {
  const int64_t HW = H * W;
  const int64_t grain = std::max<int64_t>(1, kGrainElements / HW);
  at::parallel_for(0, M, grain, [&](int64_t begin, int64_t end) {
    Scratch<acc_t> s;
    std::vector<acc_t> wv;
    std::vector<in_t> rowmax;
    for (int64_t m = begin; m < end; ++m) {
      const in_t* h = hm + m * HW;
      int64_t best;
      double x, y;
      acc_t peak;
      if (!f.on()) {
        best = map_argmax(h, H, W, rowmax);
        const Window<acc_t> win(View<in_t>{h, 0, 0, W}, window_box(best / W, best % W, r, H, W), best / W, best % W,
                                t);
        x = static_cast<double>(win.mj) + win.mx;
        y = static_cast<double>(win.mi) + win.my;
        peak = win.peak;
      } else {
        Box sb;
        best = blurred_argmax(h, H, W, f, r, s, rowmax, sb);
        const Box wb = window_box(best / W, best % W, r, H, W);
        View<acc_t> v{s.box.data(), sb.i0, sb.j0, sb.cols()};  // the window is usually inside the searched box
        if (wb.i0 < sb.i0 || wb.i1 > sb.i1 || wb.j0 < sb.j0 || wb.j1 > sb.j1) {
          wv.resize(wb.rows() * wb.cols());
          blur_box(h, H, W, wb, f, s, wv.data());
          v = View<acc_t>{wv.data(), wb.i0, wb.j0, wb.cols()};
        }
        const Window<acc_t> win(v, wb, best / W, best % W, t);
        x = static_cast<double>(win.mj) + win.mx;
        y = static_cast<double>(win.mi) + win.my;
        peak = win.peak;
      }
      coords[2 * m] = static_cast<acc_t>(x);
      coords[2 * m + 1] = static_cast<acc_t>(y);
      scores[m] = peak;
      index[m] = best;
    }
  });
}

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

template <typename in_t, typename acc_t>
void decode_backward_cpu_impl(const acc_t* gc, const acc_t* gs, const in_t* hm, const int64_t* index, in_t* out,
                              int64_t M, int64_t H, int64_t W, int64_t r, acc_t t, const Blur<acc_t>& f) {
  const int64_t HW = H * W;
  const int64_t grain = std::max<int64_t>(1, kGrainElements / HW);
  at::parallel_for(0, M, grain, [&](int64_t begin, int64_t end) {
    Scratch<acc_t> s;
    std::vector<acc_t> wv;
    std::vector<double> g, gr;
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
      wv.resize(wb.rows() * wb.cols());
      blur_box(h, H, W, wb, f, s, wv.data());
      window_grad<acc_t>(View<acc_t>{wv.data(), wb.i0, wb.j0, wb.cols()}, wb, best, W, t, gc[2 * m], gc[2 * m + 1],
                         gs[m], g.data());
      // Through the filter: d/dh[q] = sum over window p of g[p] k(p_i - q_i) k(p_j - q_j), q in the
      // window grown by the radius (clipped to the frame). Along rows first, then columns.
      const Box ob = wb.grown(f.r, H, W);
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
          o[qi * W + qj] = static_cast<in_t>(v);
        }
      }
    }
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> decode_cpu(const at::Tensor& heatmaps, int64_t window,
                                                          double temperature, c10::optional<double> blur) {
  check_decode_args(heatmaps, window, temperature, blur);
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
                                     window / 2, static_cast<acc_t>(temperature), Blur<acc_t>(blur));
  });
  return {coords, scores, index};
}

at::Tensor decode_backward_cpu(const at::Tensor& grad_coords, const at::Tensor& grad_scores, const at::Tensor& heatmaps,
                               const at::Tensor& index, int64_t window, double temperature,
                               c10::optional<double> blur) {
  const char* op = "shr_ops.decode_backward";
  check_decode_args(heatmaps, window, temperature, blur);
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
                                              static_cast<acc_t>(temperature), Blur<acc_t>(blur));
  });
  return out;
}

}  // namespace
}  // namespace shr_ops

TORCH_LIBRARY_IMPL(shr_ops, CPU, m) {
  m.impl("decode", &shr_ops::decode_cpu);
  m.impl("decode_backward", &shr_ops::decode_backward_cpu);
}
