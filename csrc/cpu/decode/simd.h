// CPU decode, the SIMD layer: SSE2 vectors of 4 floats or 2 doubles behind one interface (every
// x86-64 CPU has SSE2; elsewhere the scalar paths of blur.h and search.h run), and the prefetch of
// the next map.
#pragma once

#include <cstdint>

#if defined(__SSE2__)
#include <emmintrin.h>
#include <xmmintrin.h>
#endif

namespace shr_ops {
namespace cpu {

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
};
#endif

}  // namespace cpu
}  // namespace shr_ops
