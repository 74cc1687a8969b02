// CPU decode, the bounded argmax search: the first maximum of a map in row-major order (NaN counts
// as the maximum, as torch.argmax), by row maxima when the map is finite; with the pre-filter, the
// first maximum of the filtered map, searched only where the row and column bounds of the filtered
// map say it can be (the method: decode_kernel.cpp).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "../../shr_ops.h"
#include "blur.h"
#include "box.h"
#include "simd.h"
#include "window.h"

namespace shr_ops {
namespace cpu {

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
// an infinity (rowmax is then not meaningful); the SSE2 versions (float and double, below) also
// when the sums of their finiteness check overflow (then the callers' non-finite path gives the
// same answer, more slowly).
// ahead (or nullptr): stepped by a row's cache lines at each row.
template <typename in_t>
bool row_maxima(const in_t* h, int64_t H, int64_t W, in_t* rowmax, Ahead* ahead = nullptr) {
  bool finite = true;
  for (int64_t i = 0; i < H; ++i) {
    const in_t* row = h + i * W;
    if (ahead != nullptr) ahead->step(row_lines<in_t>(W));
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
// The largest of a vector's lanes (NaN-free lanes: the callers test for NaN separately).
template <typename S>
inline typename S::T lane_max(typename S::V a) {
  typename S::T lanes[S::L];
  S::store(lanes, a);
  typename S::T m = lanes[0];
  for (int64_t l = 1; l < S::L; ++l) m = lanes[l] > m ? lanes[l] : m;
  return m;
}

// The lane-wise maximum of the first whole vectors of v[0 .. n), n >= L: four vectors a step,
// each with its own maximum (so no chain of dependent operations limits the loop), then single
// vectors; j receives the number of values done. each(k, vector) sees every vector loaded, k the
// step's slot (0 .. 3), for a check of its own kept per slot.
template <typename S, typename Each>
inline typename S::V vector_max(const typename S::T* v, int64_t n, int64_t& j, Each&& each) {
  using V = typename S::V;
  constexpr int64_t L = S::L;
  V a0 = S::load(v), a1 = a0, a2 = a0, a3 = a0;
  j = 0;
  for (; j + 4 * L <= n; j += 4 * L) {
    const V v0 = S::load(v + j), v1 = S::load(v + j + L), v2 = S::load(v + j + 2 * L), v3 = S::load(v + j + 3 * L);
    a0 = S::max(v0, a0);
    a1 = S::max(v1, a1);
    a2 = S::max(v2, a2);
    a3 = S::max(v3, a3);
    each(0, v0);
    each(1, v1);
    each(2, v2);
    each(3, v3);
  }
  for (; j + L <= n; j += L) {
    const V v0 = S::load(v + j);
    a0 = S::max(v0, a0);
    each(0, v0);
  }
  return S::max(S::max(a0, a1), S::max(a2, a3));
}

// SSE2 row maxima, four vectors a step. A row of whole vectors leaves its maximum as a vector,
// and L such rows are reduced at once (S::maxima); other rows one by one. Finiteness: the values
// are summed into vectors, which a NaN or an infinity makes non-finite. So does a sum past the
// largest finite value, on maps of values within about H W / L of it (a 64 x 64 float map of
// values near 3e35): they then take the non-finite maps' path, which gives the same answer, more
// slowly.
template <typename S>
bool row_maxima_sse(const typename S::T* h, int64_t H, int64_t W, typename S::T* rowmax, Ahead* ahead) {
  using T = typename S::T;
  using V = typename S::V;
  constexpr int64_t L = S::L;
  V check = S::zero();
  T tail_check = 0;
  T lanes[L];
  V pending[L];  // the vector maxima of the np rows before row i, not yet reduced
  int64_t np = 0;
  const bool whole = W >= L && W % L == 0;
  for (int64_t i = 0; i < H; ++i) {
    const T* row = h + i * W;
    if (ahead != nullptr) ahead->step(row_lines<T>(W));
    T m = -std::numeric_limits<T>::infinity();
    int64_t j = 0;
    if (W >= L) {
      V c[4] = {S::zero(), S::zero(), S::zero(), S::zero()};  // one sum per vector of a step
      const V a = vector_max<S>(row, W, j, [&](int k, V v) { c[k] = S::add(c[k], v); });
      check = S::add(check, S::add(S::add(c[0], c[1]), S::add(c[2], c[3])));
      if (whole) {
        pending[np++] = a;
        if (np == L) {
          S::maxima(pending, rowmax + i - (L - 1));
          np = 0;
        }
        continue;
      }
      m = lane_max<S>(a);
    }
    for (; j < W; ++j) {
      const T v = row[j];
      m = v > m ? v : m;
      tail_check += v - v;
    }
    rowmax[i] = m;
  }
  for (int64_t p = 0; p < np; ++p) rowmax[H - np + p] = lane_max<S>(pending[p]);  // the last rows, fewer than L
  S::store(lanes, S::sub(check, check));
  for (int64_t l = 0; l < L; ++l) tail_check += lanes[l];
  return tail_check == T(0);
}

template <>
inline bool row_maxima<float>(const float* h, int64_t H, int64_t W, float* rowmax, Ahead* ahead) {
  return row_maxima_sse<SseFloat>(h, H, W, rowmax, ahead);
}
template <>
inline bool row_maxima<double>(const double* h, int64_t H, int64_t W, double* rowmax, Ahead* ahead) {
  return row_maxima_sse<SseDouble>(h, H, W, rowmax, ahead);
}
#endif

// m = the maximum of v[0..n), n >= 1; false when a NaN is among them (m is then not meaningful).
// ordered_max below: SSE2 for float and double.
template <typename T>
bool ordered_max_scalar(const T* v, int64_t n, T& m) {
  bool ordered = true;
  m = v[0];
  for (int64_t c = 0; c < n; ++c) {
    ordered = ordered && v[c] == v[c];
    m = v[c] > m ? v[c] : m;
  }
  return ordered;
}

#if defined(__SSE2__)
// Four vectors a step, each with its own maximum; NaN caught by an unordered compare.
template <typename S>
bool ordered_max_sse(const typename S::T* v, int64_t n, typename S::T& m) {
  using V = typename S::V;
  constexpr int64_t L = S::L;
  if (n < L) return ordered_max_scalar(v, n, m);
  V nan[4] = {S::zero(), S::zero(), S::zero(), S::zero()};  // NaN lanes, one mask per vector of a step
  const auto mark = [&](int k, V x) { nan[k] = S::bit_or(nan[k], S::unordered(x, x)); };
  int64_t c;
  V a = vector_max<S>(v, n, c, mark);
  if (c < n) {  // the last L values, overlapping the ones already seen
    const V v0 = S::load(v + n - L);
    a = S::max(v0, a);
    mark(0, v0);
  }
  if (S::any(S::bit_or(S::bit_or(nan[0], nan[1]), S::bit_or(nan[2], nan[3])))) return false;
  m = lane_max<S>(a);
  return true;
}
#endif

template <typename T>
bool ordered_max(const T* v, int64_t n, T& m) {
  return ordered_max_scalar(v, n, m);
}
#if defined(__SSE2__)
template <>
inline bool ordered_max<float>(const float* v, int64_t n, float& m) {
  return ordered_max_sse<SseFloat>(v, n, m);
}
template <>
inline bool ordered_max<double>(const double* v, int64_t n, double& m) {
  return ordered_max_sse<SseDouble>(v, n, m);
}
#endif

// First argmax of a finite map in row-major order (as first_argmax), from its row maxima.
template <typename in_t>
int64_t argmax_by_rows(const in_t* h, int64_t H, int64_t W, const in_t* rowmax) {
  in_t top;
  int64_t i = 0;
  if (ordered_max(rowmax, H, top))  // always (finite maps): the first row that holds the maximum
    while (!(rowmax[i] == top)) ++i;
  else
    i = first_argmax(rowmax, H);
  const in_t m = rowmax[i];
  const in_t* row = h + i * W;
  int64_t j = 0;
  while (!(row[j] == m)) ++j;
  return i * W + j;
}

// First argmax of a map in row-major order (as first_argmax), by row maxima when it is finite.
template <typename in_t>
int64_t map_argmax(const in_t* h, int64_t H, int64_t W, std::vector<in_t>& rowmax, Ahead* ahead) {
  rowmax.resize(H);
  if (!row_maxima(h, H, W, rowmax.data(), ahead)) return first_argmax(h, H * W);
  return argmax_by_rows(h, H, W, rowmax.data());
}

// First argmax, in row-major order, of box b of values stored with row stride ld (NaN counts as
// the maximum, as in first_argmax). Returns the flat index in an H x W frame of width W.
template <typename T>
int64_t box_argmax(const T* v, const Box& b, int64_t ld, int64_t W) {
  // Without NaN: the maximum, from each row's, then its first position.
  T top = v[0], m;
  bool ordered = true;
  for (int64_t a = 0; a < b.rows() && ordered; ++a) {
    ordered = ordered_max(v + a * ld, b.cols(), m);
    top = m > top ? m : top;
  }
  if (ordered) {
    for (int64_t a = 0; a < b.rows(); ++a) {
      const T* row = v + a * ld;
      for (int64_t c = 0; c < b.cols(); ++c)
        if (row[c] == top) return (b.i0 + a) * W + b.j0 + c;
    }
  }
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
inline void column_maxima<float, float>(const float* h, int64_t n, int64_t ld, int64_t w, float* cm) {
  column_maxima_sse<SseFloat>(h, n, ld, w, cm);
}
template <>
inline void column_maxima<double, double>(const double* h, int64_t n, int64_t ld, int64_t w, double* cm) {
  column_maxima_sse<SseDouble>(h, n, ld, w, cm);
}
#endif

// First argmax of the filtered map, searching only where it can be (see the top). Returns the
// flat index; `search` receives the searched box, s.box its filtered values (row stride
// padded_cols(search.cols()), as blur_box writes them).
template <typename in_t, typename acc_t>
int64_t blurred_argmax(const in_t* h, int64_t H, int64_t W, const Blur<acc_t>& f, int64_t window_r,
                       Scratch<acc_t>& s, std::vector<in_t>& rowmax, Box& search) {
  const int64_t r = f.r;
  search = Box{0, H - 1, 0, W - 1};
  rowmax.resize(H);
  if (row_maxima(h, H, W, rowmax.data())) {
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

}  // namespace cpu
}  // namespace shr_ops
