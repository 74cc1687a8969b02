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
// The filtered map F is never materialised: its argmax is searched only where it can be. The
// kernel filters the decode window around the raw map's argmax, grown by one pixel (about 11 x 12
// values), and takes L = the largest filtered value there (L > 0). As the taps are >= 0 and sum
// to 1, F(i, j) <= sum_d k[d] max(0, rowmax[i + d - r]) and F(i, j) <= sum_d k[d] colmax[j + d - r]
// (colmax: column maxima, clamped at 0, over the rows the candidate rows' filter reads); rows and
// columns whose bound is below L hold no maximum. When every candidate lies in the filtered
// window (the usual case: one peak) its argmax is the answer; otherwise the candidates' box (with
// the window) is filtered and searched. Flat, non-positive or non-finite maps are filtered whole.
// Filtering is separable (rows, then columns), vectorised over output columns with the partial
// sums in registers, mirrored taps added before their one multiplication; a filtered value
// depends only on its position, so every path (search, window, backward) sees the same bits.
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
#include <xmmintrin.h>
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

// Asks for row i of the map at `ahead` (the next map; nullptr: none) to be brought into the L2
// cache (not L1, which holds the current map for the filter and the window): while one map is
// searched, its successor streams in, row by row.
template <typename T>
inline void prefetch_row(const T* ahead, int64_t i, int64_t W) {
#if defined(__SSE2__)
  if (ahead == nullptr) return;
  const char* p = reinterpret_cast<const char*>(ahead + i * W);
  const int64_t n = W * static_cast<int64_t>(sizeof(T));
  for (int64_t o = 0; o < n; o += 64) _mm_prefetch(p + o, _MM_HINT_T1);
#else
  (void)ahead;
  (void)i;
  (void)W;
#endif
}

// Maximum of each row of an H x W map into rowmax[H]. Returns false when the map holds a NaN or
// an infinity (rowmax is then not meaningful). float and double use SSE2 where available (below).
template <typename in_t>
bool row_maxima(const in_t* h, int64_t H, int64_t W, in_t* rowmax, const in_t* ahead = nullptr) {
  bool finite = true;
  for (int64_t i = 0; i < H; ++i) {
    const in_t* row = h + i * W;
    prefetch_row(ahead, i, W);
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
  static V set1(T v) { return _mm_set1_ps(v); }
  static V mul(V a, V b) { return _mm_mul_ps(a, b); }
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
  static V set1(T v) { return _mm_set1_pd(v); }
  static V mul(V a, V b) { return _mm_mul_pd(a, b); }
  static V max(V a, V b) { return _mm_max_pd(a, b); }
  static V add(V a, V b) { return _mm_add_pd(a, b); }
  static V sub(V a, V b) { return _mm_sub_pd(a, b); }
  static V zero() { return _mm_setzero_pd(); }
  static void store(T* p, V v) { _mm_storeu_pd(p, v); }
};

template <typename S>
bool row_maxima_sse(const typename S::T* h, int64_t H, int64_t W, typename S::T* rowmax, const typename S::T* ahead) {
  using T = typename S::T;
  using V = typename S::V;
  constexpr int64_t L = S::L;
  V check = S::zero();  // sum of v - v: 0 while every value is finite, NaN otherwise
  T tail_check = 0;
  T lanes[L];
  for (int64_t i = 0; i < H; ++i) {
    const T* row = h + i * W;
    prefetch_row(ahead, i, W);
    T m = -std::numeric_limits<T>::infinity();
    int64_t j = 0;
    if (W >= L) {
      // Four vectors a step, each with its own maximum and check, so no chain of dependent
      // additions limits the loop; then single vectors.
      V a0 = S::load(row), a1 = a0, a2 = a0, a3 = a0;
      V c0 = S::zero(), c1 = S::zero(), c2 = S::zero(), c3 = S::zero();
      for (; j + 4 * L <= W; j += 4 * L) {
        const V v0 = S::load(row + j), v1 = S::load(row + j + L);
        const V v2 = S::load(row + j + 2 * L), v3 = S::load(row + j + 3 * L);
        a0 = S::max(v0, a0);
        a1 = S::max(v1, a1);
        a2 = S::max(v2, a2);
        a3 = S::max(v3, a3);
        c0 = S::add(c0, S::sub(v0, v0));
        c1 = S::add(c1, S::sub(v1, v1));
        c2 = S::add(c2, S::sub(v2, v2));
        c3 = S::add(c3, S::sub(v3, v3));
      }
      for (; j + L <= W; j += L) {
        const V v0 = S::load(row + j);
        a0 = S::max(v0, a0);
        c0 = S::add(c0, S::sub(v0, v0));
      }
      check = S::add(check, S::add(S::add(c0, c1), S::add(c2, c3)));
      S::store(lanes, S::max(S::max(a0, a1), S::max(a2, a3)));
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
bool row_maxima<float>(const float* h, int64_t H, int64_t W, float* rowmax, const float* ahead) {
  return row_maxima_sse<SseFloat>(h, H, W, rowmax, ahead);
}
template <>
bool row_maxima<double>(const double* h, int64_t H, int64_t W, double* rowmax, const double* ahead) {
  return row_maxima_sse<SseDouble>(h, H, W, rowmax, ahead);
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
int64_t map_argmax(const in_t* h, int64_t H, int64_t W, std::vector<in_t>& rowmax, const in_t* ahead) {
  rowmax.resize(H);
  if (!row_maxima(h, H, W, rowmax.data(), ahead)) return first_argmax(h, H * W);
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
  std::vector<acc_t> rows, line, box, bound, maxima;  // maxima: clamped row or column maxima
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
constexpr int64_t kLanes = 4;
inline int64_t padded_cols(int64_t n) { return (n + kLanes - 1) / kLanes * kLanes; }

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
  for (int64_t i = ra; i <= rz; ++i) {
    load_padded(h + i * W, W, b.j0 - r, n + 2 * r, line);
    correlate(line, 1, k, taps, n, s.rows.data() + (i - ra) * n, true);
  }
  out.resize(b.rows() * n);
  for (int64_t i = b.i0; i <= b.i1; ++i) {
    // Tap d reads row i + d - r.
    const int64_t d0 = std::max<int64_t>(0, ra - (i - r)), d1 = std::min<int64_t>(taps - 1, rz - (i - r));
    correlate(s.rows.data() + (i - r + d0 - ra) * n, n, k + d0, d1 - d0 + 1, n, out.data() + (i - b.i0) * n,
              d0 == 0 && d1 == taps - 1);
  }
  return n;
}

// First argmax, in row-major order, of box b of values stored with row stride ld (NaN counts as
// the maximum, as in first_argmax). Returns the flat index in an H x W frame of width W.
template <typename T>
int64_t box_argmax(const T* v, const Box& b, int64_t ld, int64_t W) {
  int64_t bi = 0, bj = 0;
  T bv = v[0];
  if (bv == bv) {
    for (int64_t a = 0; a < b.rows(); ++a) {
      const T* row = v + a * ld;
      for (int64_t c = 0; c < b.cols(); ++c) {
        if (beats(row[c], bv)) {
          bi = a;
          bj = c;
          bv = row[c];
          if (bv != bv) goto done;
        }
      }
    }
  }
done:
  return (b.i0 + bi) * W + b.j0 + bj;
}

// The range [lo, hi] of positions c in [0, n) whose filtered bound sum_d k[d] v[c + d - r] (v >= 0,
// zero outside [0, n)) is >= thr; false when there is none. Only positions within r of a value
// >= thr can qualify (the taps are >= 0 and sum to 1), so only those are filtered.
template <typename acc_t>
bool bound_range(const acc_t* v, int64_t n, const Blur<acc_t>& f, acc_t thr, Scratch<acc_t>& s, int64_t& lo,
                 int64_t& hi) {
  int64_t first = 0, last = n - 1;
  while (first < n && !(v[first] >= thr)) ++first;
  if (first == n) return false;
  while (!(v[last] >= thr)) --last;
  const int64_t r = f.r, c0 = std::max<int64_t>(0, first - r), c1 = std::min<int64_t>(n - 1, last + r);
  const int64_t m = c1 - c0 + 1;
  s.line.resize(m + 2 * r);
  load_padded(v, n, c0 - r, m + 2 * r, s.line.data());
  s.bound.resize(m);
  correlate(s.line.data(), 1, f.k.data(), 2 * r + 1, m, s.bound.data(), true);
  lo = n;
  hi = -1;
  for (int64_t c = 0; c < m; ++c) {
    if (s.bound[c] >= thr) {
      lo = std::min(lo, c0 + c);
      hi = c0 + c;
    }
  }
  return hi >= 0;
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

// cm[j] = max(0, max over the n rows of h[i, j]) for j < w, rows ld apart; the maps are finite here.
template <typename in_t, typename acc_t>
void column_maxima_scalar(const in_t* h, int64_t n, int64_t ld, int64_t w, acc_t* cm) {
  std::fill(cm, cm + w, acc_t(0));
  for (int64_t i = 0; i < n; ++i) {
    const in_t* row = h + i * ld;
    for (int64_t j = 0; j < w; ++j) {
      const acc_t v = static_cast<acc_t>(row[j]);
      cm[j] = v > cm[j] ? v : cm[j];
    }
  }
}

#if defined(__SSE2__)
// Four vectors of columns at a time, their maxima kept in registers down the rows.
template <typename S>
void column_maxima_sse(const typename S::T* h, int64_t n, int64_t ld, int64_t w, typename S::T* cm) {
  using V = typename S::V;
  constexpr int64_t L = S::L, B = 4 * L;
  int64_t j = 0;
  for (; j + B <= w; j += B) {
    V a0 = S::zero(), a1 = S::zero(), a2 = S::zero(), a3 = S::zero();
    for (int64_t i = 0; i < n; ++i) {
      const typename S::T* p = h + i * ld + j;
      a0 = S::max(S::load(p), a0);
      a1 = S::max(S::load(p + L), a1);
      a2 = S::max(S::load(p + 2 * L), a2);
      a3 = S::max(S::load(p + 3 * L), a3);
    }
    S::store(cm + j, a0);
    S::store(cm + j + L, a1);
    S::store(cm + j + 2 * L, a2);
    S::store(cm + j + 3 * L, a3);
  }
  if (j < w) column_maxima_scalar(h + j, n, ld, w - j, cm + j);
}
#endif

template <typename in_t, typename acc_t>
void column_maxima(const in_t* h, int64_t n, int64_t ld, int64_t w, acc_t* cm) {
  column_maxima_scalar(h, n, ld, w, cm);
}
#if defined(__SSE2__)
template <>
void column_maxima<float, float>(const float* h, int64_t n, int64_t ld, int64_t w, float* cm) {
  column_maxima_sse<SseFloat>(h, n, ld, w, cm);
}
template <>
void column_maxima<double, double>(const double* h, int64_t n, int64_t ld, int64_t w, double* cm) {
  column_maxima_sse<SseDouble>(h, n, ld, w, cm);
}
#endif

// First argmax of the filtered map, searching only where it can be (see the top). Returns the
// flat index; `search` receives the searched box, s.box its filtered values (row stride
// padded_cols(search.cols()), as blur_box writes them).
template <typename in_t, typename acc_t>
int64_t blurred_argmax(const in_t* h, int64_t H, int64_t W, const Blur<acc_t>& f, int64_t window_r,
                       Scratch<acc_t>& s, std::vector<in_t>& rowmax, Box& search, const in_t* ahead) {
  const int64_t r = f.r;
  search = Box{0, H - 1, 0, W - 1};
  rowmax.resize(H);
  if (row_maxima(h, H, W, rowmax.data(), ahead)) {
    const int64_t raw = argmax_by_rows(h, H, W, rowmax.data());
    // The decode window around the raw argmax, grown by one pixel: the filtered argmax is usually
    // in it, and its window then too.
    const Box near = window_box(raw / W, raw % W, window_r + 1, H, W);
    const int64_t ld = blur_box(h, H, W, near, f, s, s.box);
    const int64_t best = box_argmax(s.box.data(), near, ld, W);
    const acc_t L = s.box[(best / W - near.i0) * ld + (best % W - near.j0)];
    if (L > 0) {
      const acc_t thr = L * acc_t(1 - 1e-3);  // a margin for rounding: only makes the box larger
      // Rows: F(i, j) <= sum_d k[d] max(0, rowmax[i + d - r]).
      s.maxima.resize(std::max(H, W));
      for (int64_t i = 0; i < H; ++i) s.maxima[i] = std::max(acc_t(0), static_cast<acc_t>(rowmax[i]));
      Box c;
      bool found = bound_range(s.maxima.data(), H, f, thr, s, c.i0, c.i1);
      if (found) {
        // Columns: F(i, j) <= sum_d k[d] colmax[j + d - r], colmax over the rows the candidate
        // rows' filter reads, clamped at 0.
        const int64_t i0 = std::max<int64_t>(0, c.i0 - r), i1 = std::min<int64_t>(H - 1, c.i1 + r);
        column_maxima(h + i0 * W, i1 - i0 + 1, W, W, s.maxima.data());
        found = bound_range(s.maxima.data(), W, f, thr, s, c.j0, c.j1);
      }
      if (found && c.i0 >= near.i0 && c.i1 <= near.i1 && c.j0 >= near.j0 && c.j1 <= near.j1) {
        search = near;  // nothing outside the window reaches L: the usual case
        return best;
      }
      if (found) {
        search = Box{std::min(c.i0, near.i0), std::max(c.i1, near.i1), std::min(c.j0, near.j0),
                     std::max(c.j1, near.j1)};
      }  // else only by rounding: search the whole frame
    }
  }
  return box_argmax(s.box.data(), search, blur_box(h, H, W, search, f, s, s.box), W);
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
      const in_t* ahead = m + 1 < end ? h + HW : nullptr;
      int64_t best;
      double x, y;
      acc_t peak;
      if (!f.on()) {
        best = map_argmax(h, H, W, rowmax, ahead);
        const Window<acc_t> win(View<in_t>{h, 0, 0, W}, window_box(best / W, best % W, r, H, W), best / W, best % W,
                                t);
        x = static_cast<double>(win.mj) + win.mx;
        y = static_cast<double>(win.mi) + win.my;
        peak = win.peak;
      } else {
        Box sb;
        best = blurred_argmax(h, H, W, f, r, s, rowmax, sb, ahead);
        const Box wb = window_box(best / W, best % W, r, H, W);
        View<acc_t> v{s.box.data(), sb.i0, sb.j0, padded_cols(sb.cols())};  // the window is usually inside it
        if (wb.i0 < sb.i0 || wb.i1 > sb.i1 || wb.j0 < sb.j0 || wb.j1 > sb.j1) {
          const int64_t ld = blur_box(h, H, W, wb, f, s, wv);
          v = View<acc_t>{wv.data(), wb.i0, wb.j0, ld};
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
      const int64_t ld = blur_box(h, H, W, wb, f, s, wv);
      window_grad<acc_t>(View<acc_t>{wv.data(), wb.i0, wb.j0, ld}, wb, best, W, t, gc[2 * m], gc[2 * m + 1],
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
