// CPU decode, the SIMD layer: SSE2 vectors of 4 floats or 2 doubles behind one interface (every
// x86-64 CPU has SSE2; elsewhere the scalar paths of blur.h and search.h run), and the prefetch of
// the next map.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__SSE2__)
#include <emmintrin.h>
#include <xmmintrin.h>
#endif

namespace shr_ops {
namespace cpu {

// The cache lines of a row of W values of type T.
template <typename T>
constexpr int64_t row_lines(int64_t W) {
  return (W * static_cast<int64_t>(sizeof(T)) + 63) / 64;
}

// The next map, asked for into the L2 cache (not L1, which holds the current map for the filter
// and the window) while the current one is worked on. With the pre-filter, a few cache lines at a
// time by the loops that work on the current map (the filter's rows, the window's rows, the fit's
// column blocks), so that its read overlaps their computation: a core has only about a dozen lines
// in flight, so asking for a whole map during the current map's search read stalls until most of
// it has arrived, while a few lines at a time arrive as fast as the memory delivers them. Without
// it, a row's lines for each row of the search's read (row_maxima), which is nearly all of that
// decode's work. start() at each map, step() in the loops, finish() after the map (what is left).
class Ahead {
 public:
  static constexpr int64_t kLines = 4;  // cache lines a step
  void start(const void* next, int64_t bytes) {
    p_ = static_cast<const char*>(next);
    end_ = next == nullptr ? nullptr : p_ + bytes;
  }
  void step(int64_t lines = kLines) {
#if defined(__SSE2__)
    for (int64_t l = 0; l < lines && p_ < end_; ++l, p_ += 64) _mm_prefetch(p_, _MM_HINT_T1);
#else
    (void)lines;
    p_ = end_;  // nothing to ask with (and finish() must end)
#endif
  }
  void finish() {
    while (p_ < end_) step();
  }

 private:
  const char* p_ = nullptr;
  const char* end_ = nullptr;
};

#if defined(__SSE2__)
// SSE2: 4 floats or 2 doubles per instruction. _mm_max_p* returns its second operand when either
// is NaN (search.h catches NaN and infinity separately).
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
  static V unordered(V a, V b) { return _mm_cmpunord_ps(a, b); }
  static V bit_or(V a, V b) { return _mm_or_ps(a, b); }
  static bool any(V mask) { return _mm_movemask_ps(mask) != 0; }
  static void store(T* p, V v) { _mm_storeu_ps(p, v); }
  // out[r] = the maximum of a[r]'s lanes, r < 4 (a 4 x 4 transpose, then maxima down it).
  static void maxima(const V* a, T* out) {
    const V m01 = _mm_max_ps(_mm_unpacklo_ps(a[0], a[1]), _mm_unpackhi_ps(a[0], a[1]));
    const V m23 = _mm_max_ps(_mm_unpacklo_ps(a[2], a[3]), _mm_unpackhi_ps(a[2], a[3]));
    _mm_storeu_ps(out, _mm_max_ps(_mm_movelh_ps(m01, m23), _mm_movehl_ps(m23, m01)));
  }
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
  static V unordered(V a, V b) { return _mm_cmpunord_pd(a, b); }
  static V bit_or(V a, V b) { return _mm_or_pd(a, b); }
  static bool any(V mask) { return _mm_movemask_pd(mask) != 0; }
  static void store(T* p, V v) { _mm_storeu_pd(p, v); }
  // out[r] = the maximum of a[r]'s lanes, r < 2.
  static void maxima(const V* a, T* out) { _mm_storeu_pd(out, _mm_max_pd(_mm_unpacklo_pd(a[0], a[1]), _mm_unpackhi_pd(a[0], a[1]))); }
};

// exp of 4 floats (the decode window's softmax weights), within 1 ulp of the correctly rounded
// value (checked densely over [-87, 88]; the C library's expf agrees with it on all but about
// 0.03 % of inputs): x = n ln2 + r, |r| <= ln2 / 2 (ln2 in two parts, so r is exact), exp(r) by
// Cephes' polynomial for expf, times 2^n built in the exponent bits. Below about -87.68 it gives 0
// (where the C library gives subnormals, down to -103.97: under 1.2e-38 of the peak's weight 1),
// from about 88.377 +inf (the C library's expf is finite up to 88.72), and NaN stays NaN.
inline __m128 exp_ps(__m128 x) {
  const __m128 hi = _mm_set1_ps(88.3762626647949f), lo = _mm_set1_ps(-88.3762626647949f);
  const __m128 nan = _mm_cmpunord_ps(x, x), over = _mm_cmpgt_ps(x, hi);
  const __m128 xc = _mm_max_ps(_mm_min_ps(x, hi), lo);
  // n = floor(x log2(e) + 1/2): truncation, one less where that rounded up (negative values)
  const __m128 fx = _mm_add_ps(_mm_mul_ps(xc, _mm_set1_ps(1.44269504088896341f)), _mm_set1_ps(0.5f));
  __m128 n = _mm_cvtepi32_ps(_mm_cvttps_epi32(fx));
  n = _mm_sub_ps(n, _mm_and_ps(_mm_cmpgt_ps(n, fx), _mm_set1_ps(1.0f)));
  const __m128 r = _mm_sub_ps(_mm_sub_ps(xc, _mm_mul_ps(n, _mm_set1_ps(0.693359375f))),
                              _mm_mul_ps(n, _mm_set1_ps(-2.12194440e-4f)));
  const __m128 z = _mm_mul_ps(r, r);
  __m128 y = _mm_set1_ps(1.9875691500e-4f);
  y = _mm_add_ps(_mm_mul_ps(y, r), _mm_set1_ps(1.3981999507e-3f));
  y = _mm_add_ps(_mm_mul_ps(y, r), _mm_set1_ps(8.3334519073e-3f));
  y = _mm_add_ps(_mm_mul_ps(y, r), _mm_set1_ps(4.1665795894e-2f));
  y = _mm_add_ps(_mm_mul_ps(y, r), _mm_set1_ps(1.6666665459e-1f));
  y = _mm_add_ps(_mm_mul_ps(y, r), _mm_set1_ps(5.0000001201e-1f));
  y = _mm_add_ps(_mm_add_ps(_mm_mul_ps(y, z), r), _mm_set1_ps(1.0f));
  const __m128i e = _mm_slli_epi32(_mm_add_epi32(_mm_cvttps_epi32(n), _mm_set1_epi32(127)), 23);
  y = _mm_mul_ps(y, _mm_castsi128_ps(e));
  y = _mm_or_ps(_mm_andnot_ps(over, y), _mm_and_ps(over, _mm_set1_ps(INFINITY)));
  return _mm_or_ps(_mm_andnot_ps(nan, y), _mm_and_ps(nan, x));
}
#endif

}  // namespace cpu
}  // namespace shr_ops
