// Device code of shr_ops::decode and shr_ops::decode_backward (one block per map), and of decode's
// pre-filter. Block-wide first-maximum argmax (NaN wins, ties go to the lower index, as
// torch.argmax), then the window softmax moments by a deterministic block reduction. Same
// semantics as the CPU kernels (cpu/decode_kernel.cpp). No ATen: compiled by nvcc, and by g++
// under the emulator (csrc/emu).
//
// With the pre-filter, the least-squares Gaussian fit of the raw map around the filtered argmax
// (../decode_fit.h; the CPU kernel's cpu/decode/fit.h) is run by the block's first warp: its lanes
// share the fit box's columns and rows and sum each evaluation's 17 separable dots in a fixed order
// (warp_dots), and lane 0 advances the iteration, whose state stays in shared memory; every lane
// reads the same state, so the warp takes the same iteration (uniform control flow). Its barriers
// are warp-wide. Where the fit is valid,
// the coordinates are the soft-argmax estimate corrected by its own bias on the fitted Gaussian,
// which the whole block computes (forward_fit, backward_fit).
//
// The pre-filter computes every filtered value with the CPU kernel's arithmetic, operation for
// operation (filter_at: each product and sum rounded on its own, mul_rn / add_rn, in the same
// order), so that the CPU and CUDA decoders see the same filtered bits and pick the same argmax,
// ties included. With the pre-filter, maps that fit in shared memory take the fused kernels
// (decode_fused_kernel, decode_backward_fused_kernel: one launch, one pass over global memory, no
// temporaries); larger ones take blur_pass_kernel twice and then decode_kernel /
// decode_backward_kernel on the filtered maps.
#pragma once

#include "../decode_fit.h"
#include "cuda_device.cuh"

namespace shr_ops {
namespace cuda {

// (value, index) a beats (value, index) b: NaN first, then larger value, then lower index.
template <typename acc_t>
__device__ inline bool arg_better(acc_t va, int ia, acc_t vb, int ib) {
  const bool na = va != va, nb = vb != vb;
  if (na || nb) return na && (!nb || ia < ib);
  return va > vb || (va == vb && ia < ib);
}

// The block's first maximum from each thread's (bv, bi), in every thread. All threads must call it.
template <typename acc_t>
__device__ inline int reduce_argmax(acc_t bv, int bi, acc_t* sv, int* si) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) {
    const acc_t ov = __shfl_down_sync(0xffffffffu, bv, off);
    const int oi = __shfl_down_sync(0xffffffffu, bi, off);
    if (arg_better(ov, oi, bv, bi)) {
      bv = ov;
      bi = oi;
    }
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) {
    sv[warp] = bv;
    si[warp] = bi;
  }
  __syncthreads();
  bv = sv[0];
  bi = si[0];
#pragma unroll
  for (int w = 1; w < kWarps; ++w) {
    if (arg_better(sv[w], si[w], bv, bi)) {
      bv = sv[w];
      bi = si[w];
    }
  }
  __syncthreads();
  return bi;
}

// The first maximum of the n values at h (a map of the maps at base: load_map's Packs where they
// are packable; arg_better is a total order, so the thread's order does not matter).
template <typename in_t, typename acc_t>
__device__ inline int block_argmax(const in_t* base, const in_t* h, int n, acc_t* sv, int* si) {
  acc_t bv = -static_cast<acc_t>(INFINITY);
  int bi = INT32_MAX;
  load_map(base, h, n, n, [&](in_t hv, int p, int, int) {
    const acc_t v = static_cast<acc_t>(hv);
    if (arg_better(v, p, bv, bi)) {
      bv = v;
      bi = p;
    }
  });
  return reduce_argmax(bv, bi, sv, si);
}

// A compiler barrier (no instruction): values in shared memory are read from there again after it,
// rather than kept in registers from before it (or hoisted out of a loop whose body begins with it).
// The fit kernels use it where values parked in shared memory, kept in registers instead, spilled:
// lane 0's serial steps of the fit (the moments, then fit_start, then fit_propose: the moments were
// held across fit_start's division, a call to the double division's slow path), and the model
// window's loops (the window and the fit, reread for each pixel).
__device__ __forceinline__ void reread_shared() {
#if defined(__CUDA_ARCH__)
  asm volatile("" ::: "memory");
#endif
}

// Softmax moments of the clipped window around `best`: {sum w, sum w*dx, sum w*dy}, of the values
// val(p) (p = i * W + j, in acc_t: the map's, or the pre-filtered map's). Weights in acc_t, sums
// in double (as the CPU kernel; the window is small, so this costs little).
template <typename acc_t>
struct WindowMoments {
  int best, mi, mj, i0, j0, wh, ww;  // best: the argmax (p), at (mi, mj)
  acc_t peak;
  double sum, mx, my;
  WindowMoments() = default;  // share_window's
  template <typename Val>
  __device__ WindowMoments(const Val& val, int H, int W, int best_, int r, acc_t t, double* scratch) {
    best = best_;
    mi = best / W;
    mj = best - mi * W;
    i0 = max(0, mi - r);
    j0 = max(0, mj - r);
    wh = min(H - 1, mi + r) - i0 + 1;
    ww = min(W - 1, mj + r) - j0 + 1;
    peak = val(best);
    double s[3] = {0.0, 0.0, 0.0};
    for (int k = threadIdx.x; k < wh * ww; k += blockDim.x) {
      const int a = k / ww, b = k - a * ww;
      const int i = i0 + a, j = j0 + b;
      const double w = weight(val(i * W + j), t);
      s[0] += w;
      s[1] += w * static_cast<double>(j - mj);
      s[2] += w * static_cast<double>(i - mi);
    }
    block_sum<double, 3>(s, scratch);
    sum = s[0];
    mx = s[1] / s[0];
    my = s[2] / s[0];
  }
  __device__ acc_t weight(acc_t v, acc_t t) const { return shr_exp(t * (v - peak)); }
  // The soft-argmax estimate, rounded to acc_t as the reference's: the fit's start, and the result
  // where the fit is not valid.
  __device__ acc_t x() const { return static_cast<acc_t>(static_cast<double>(mj) + mx); }
  __device__ acc_t y() const { return static_cast<acc_t>(static_cast<double>(mi) + my); }
  // d (gx x + gy y) / d v at the window's pixel (i, j) of value v (scale = t / sum).
  __device__ double grad_at(acc_t v, int i, int j, double gx, double gy, double scale, acc_t t) const {
    const double prob = static_cast<double>(weight(v, t)) * scale;
    return prob * (gx * (static_cast<double>(j - mj) - mx) + gy * (static_cast<double>(i - mi) - my));
  }
};

// The window's moments w (the same in every thread) copied into the block's shared memory s, with
// the block (all threads must call it; ends with a barrier): the fit kernels read them from there,
// rather than hold them in registers across the fit, where they made the kernels spill.
template <typename acc_t>
__device__ inline const WindowMoments<acc_t>& share_window(WindowMoments<acc_t>& s, const WindowMoments<acc_t>& w) {
  if (threadIdx.x == 0) s = w;
  __syncthreads();
  return s;
}
// The values of maps in global memory, in acc_t.
template <typename in_t, typename acc_t>
struct GlobalValues {
  const in_t* h;
  __device__ acc_t operator()(int p) const { return static_cast<acc_t>(ld(h + p)); }
};

// decode's outputs for map m (one thread writes them).
template <typename acc_t>
__device__ inline void write_decode_outputs(acc_t* coords, acc_t* scores, int64_t* index, int64_t m, double x,
                                            double y, acc_t peak, int best) {
  st(coords + 2 * m, x);
  st(coords + 2 * m + 1, y);
  st(scores + m, peak);
  st(index + m, best);
}

// decode's pre-filter taps, passed to the kernel by value (no copy from the host, so launches can
// be captured in CUDA graphs): half[e] is the tap at distance e = 0..r from the centre of the
// symmetric 2r + 1 taps of gaussian_taps, in acc_t as the CPU kernel holds them. kCap is 16 for
// r <= 15 (blur <= 5) and 3001 for the largest blur (r = 3000: 12 KB of float, 24 KB of double,
// under CUDA 12.1's 32 KB kernel-parameter limit). Kernels take them `const __grid_constant__`:
// the filter indexes them at run time, which would otherwise copy them into every thread's local
// memory and read each tap from there (stack 304 B instead of 208 B in decode_fused_kernel).
template <typename acc_t, int kCap>
struct HalfTaps {
  int r;
  acc_t half[kCap];
};
constexpr int kSmallTaps = 16;
constexpr int kLargeTaps = 3001;

// The fit's parameters: R, the fit box's radius (0: no fit, the soft-argmax estimate is the
// result), the pre-filter's std, and the stop step (fit::stop_step).
struct FitParams {
  int R;
  double blur, stop;
};

// The fit box around the argmax (mi, mj), clipped to the frame.
struct FitBox {
  int i0, j0, rows, cols;
  FitBox() = default;  // FitScratch::box
  __device__ FitBox(int mi, int mj, int R, int H, int W)
      : i0(max(0, mi - R)), j0(max(0, mj - R)), rows(min(H - 1, mi + R) - i0 + 1), cols(min(W - 1, mj + R) - j0 + 1) {}
  __device__ int n() const { return rows * cols; }
};

// The fit's start width from the filtered map's values F(p) at the three pixels around the argmax on
// each axis (fit::start_lam); every thread reads the same six values.
template <typename Val>
__device__ inline double fit_start_lam(const Val& F, int H, int W, int mi, int mj, double blur) {
  const bool has[2] = {W >= 3, H >= 3};
  const int cj = has[0] ? min(max(mj, 1), W - 2) : mj, ci = has[1] ? min(max(mi, 1), H - 2) : mi;
  double f[2][3] = {{0, 0, 0}, {0, 0, 0}};
#pragma unroll  // (f indexed at run time would be local memory: the fused kernels' 48 B stack frame)
  for (int e = 0; e < 3; ++e) {
    if (has[0]) f[0][e] = static_cast<double>(F(mi * W + cj - 1 + e));
    if (has[1]) f[1][e] = static_cast<double>(F((ci - 1 + e) * W + mj));
  }
  return fit::start_lam(f, has, blur);
}

// The box's columns contracted down its rows by three row terms, with one warp (all its lanes must
// call it): for each column c of the box, v[q] = the sum over the rows a = 0, 1, ... in that order of
// terms(a)[q] h((i0 + a) W + j), j = j0 + c, then f(j, v) in the lane that holds the column (c =
// lane, lane + 32, ..., in that order). terms(t, out) picks the three terms from the row's AxisTerms
// t (fit::axis_terms about y). The row terms are computed once per tile of kFitTileRows rows by the
// lanes into tile (shared memory, 3 kFitTileRows doubles) rather than by each lane for each of its
// columns: the exponential in the rows loop, beside the columns' sums, took the registers that
// made the fit kernels spill. Warp barriers around each tile; every lane loops over the same tiles.
constexpr int kFitTileRows = 16;
template <typename Val, typename Terms, typename F>
__device__ inline void warp_contract_columns(const Val& h, int W, const FitBox& b, double y, double lam, double* tile,
                                             const Terms& terms, const F& f) {
  const int lane = threadIdx.x & 31;
#pragma unroll 1
  for (int c0 = 0; c0 < b.cols; c0 += 32) {
    const int c = c0 + lane, j = b.j0 + c;
    double v[3] = {0.0, 0.0, 0.0};
    for (int a0 = 0; a0 < b.rows; a0 += kFitTileRows) {
      const int n = min(kFitTileRows, b.rows - a0);
      __syncwarp(0xffffffffu);  // the previous tile's reads are done
      if (lane < n) terms(fit::axis_terms(static_cast<double>(b.i0 + a0 + lane) - y, lam), tile + 3 * lane);
      __syncwarp(0xffffffffu);
      if (c < b.cols) {
#pragma unroll 1
        for (int a = 0; a < n; ++a) {
          const double hv = static_cast<double>(h((b.i0 + a0 + a) * W + j));
          v[0] += tile[3 * a] * hv;
          v[1] += tile[3 * a + 1] * hv;
          v[2] += tile[3 * a + 2] * hv;
        }
      }
    }
    if (c < b.cols) f(j, v);
  }
  __syncwarp(0xffffffffu);  // the last tile's reads are done
}
// The row terms k, p, l and pp, pl, ll (warp_contract_columns' terms).
struct KPL {
  __device__ void operator()(const fit::AxisTerms& t, double* out) const { out[0] = t.k, out[1] = t.p, out[2] = t.l; }
};
struct PPL {
  __device__ void operator()(const fit::AxisTerms& t, double* out) const {
    out[0] = t.pp, out[1] = t.pl, out[2] = t.ll;
  }
};

// The fit's per-lane partials of the 17 separable sums (Moments from 1D dots, as the CPU kernel's
// cpu/decode/fit.h) at (x, y, lam) over the box b of the raw map's values h(p), in sums[n * 32 +
// lane]: n 0..4 the columns' dots with the box's columns contracted down the rows by the row terms
// k, p, l (V0, V1, V2): V0 . tx.k, V0 . tx.p, V1 . tx.k, then D[3]'s two, V0 . tx.l and V2 . tx.k;
// 5..10 the row terms' dots kk kp kl pp pl ll; 11..16 the column terms'. Lane c holds columns c,
// c + 32, ... and rows c, c + 32, ..., so a box up to 32 wide sums in the CPU's order. Each part in
// its own loop, with few values in registers; the columns' dots are added into sums as each column
// is done (warp_contract_columns; tile: its row terms) rather than held in registers.
constexpr int kFitSums = 17;
template <typename Val>
__device__ inline void fit_separable_partials(const Val& h, int W, const FitBox& b, double x, double y, double lam,
                                              double* sums, double* tile) {
  const int lane = threadIdx.x & 31;
  {
    double* d = sums + lane;  // the lane's partials, d[n * 32]
    for (int n = 0; n < 5; ++n) d[n * 32] = 0.0;
    warp_contract_columns(h, W, b, y, lam, tile, KPL{}, [&](int j, const double (&v)[3]) {
      const fit::AxisTerms tx = fit::axis_terms(static_cast<double>(j) - x, lam);
      d[0] += v[0] * tx.k;
      d[32] += v[0] * tx.p;
      d[64] += v[1] * tx.k;
      d[96] += v[0] * tx.l;
      d[128] += v[2] * tx.k;
    });
  }
  for (int axis = 0; axis < 2; ++axis) {  // the rows (about y), then the columns (about x)
    const int n = axis == 0 ? b.rows : b.cols, pos0 = axis == 0 ? b.i0 : b.j0;
    const double centre = axis == 0 ? y : x;
    double e[6] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
#pragma unroll 1  // (a box is rarely wider than 32: unrolled, its trip count's registers spilled)
    for (int a = lane; a < n; a += 32) {
      const fit::AxisTerms t = fit::axis_terms(static_cast<double>(pos0 + a) - centre, lam);
      e[0] += t.k * t.k;
      e[1] += t.k * t.p;
      e[2] += t.k * t.l;
      e[3] += t.p * t.p;
      e[4] += t.p * t.l;
      e[5] += t.l * t.l;
    }
    for (int q = 0; q < 6; ++q) sums[(5 + 6 * axis + q) * 32 + lane] = e[q];
  }
}

// The per-lane partials of the gradient's 16 further separable dots at (x, y, lam) over the box b
// (SecondMoments from 1D dots, as the CPU kernel's GaussianFit::grad), in sums[n * 32 + lane]:
// n 0..6 the columns contracted down the rows by the row terms k, p, l (V0, V1, V2) dotted with
// the column terms: V0 . pp, V1 . p, V0 . pl, V2 . p, V1 . l, V0 . ll, V2 . l; 7..9 the columns
// contracted by pp, pl, ll (V3, V4, V5) dotted with k; 10..12 the row terms' dots k . pp, k . pl,
// k . ll; 13..15 the column terms'. Lanes as fit_separable_partials'.
constexpr int kFitSecondSums = 16;
template <typename Val>
__device__ inline void fit_second_partials(const Val& h, int W, const FitBox& b, double x, double y, double lam,
                                           double* sums, double* tile) {
  const int lane = threadIdx.x & 31;
  {
    double* d = sums + lane;  // the lane's partials, d[n * 32]
    for (int n = 0; n < 7; ++n) d[n * 32] = 0.0;
    warp_contract_columns(h, W, b, y, lam, tile, KPL{}, [&](int j, const double (&v)[3]) {
      const fit::AxisTerms tx = fit::axis_terms(static_cast<double>(j) - x, lam);
      d[0] += v[0] * tx.pp;
      d[32] += v[1] * tx.p;
      d[64] += v[0] * tx.pl;
      d[96] += v[2] * tx.p;
      d[128] += v[1] * tx.l;
      d[160] += v[0] * tx.ll;
      d[192] += v[2] * tx.l;
    });
  }
  {
    double* d = sums + 7 * 32 + lane;  // the lane's partials 7..9, d[n * 32]
    for (int n = 0; n < 3; ++n) d[n * 32] = 0.0;
    warp_contract_columns(h, W, b, y, lam, tile, PPL{}, [&](int j, const double (&v)[3]) {
      const double kx = fit::axis_terms(static_cast<double>(j) - x, lam).k;
      d[0] += v[0] * kx;
      d[32] += v[1] * kx;
      d[64] += v[2] * kx;
    });
  }
  for (int axis = 0; axis < 2; ++axis) {  // the rows (about y), then the columns (about x)
    const int n = axis == 0 ? b.rows : b.cols, pos0 = axis == 0 ? b.i0 : b.j0;
    const double centre = axis == 0 ? y : x;
    double e[3] = {0.0, 0.0, 0.0};
#pragma unroll 1  // (a box is rarely wider than 32: unrolled, its trip count's registers spilled)
    for (int a = lane; a < n; a += 32) {
      const fit::AxisTerms t = fit::axis_terms(static_cast<double>(pos0 + a) - centre, lam);
      e[0] += t.k * t.pp;
      e[1] += t.k * t.pl;
      e[2] += t.k * t.ll;
    }
    for (int q = 0; q < 3; ++q) sums[(10 + 3 * axis + q) * 32 + lane] = e[q];
  }
}

// The fit's result as the block shares it: the first warp's lane 0 writes it, then a barrier.
struct SharedFit {
  double valid, A, x, y, lam, coef[4];
  double gx, gy;  // the backward's upstream d loss / d (x, y) (backward_fit's)
  __device__ void set(const fit::Result& r) {
    valid = r.valid ? 1.0 : 0.0;
    A = r.A, x = r.x, y = r.y, lam = r.lam;
  }
};

// The fit's shared memory, the first warp's: the lanes' partial sums and their totals, the two
// Moments of the iteration (in every lane's registers, 28 doubles beside the rest would spill),
// and the iteration's state with its solve's scratch, which lane 0 advances between evaluations
// (held in registers across an evaluation, it would spill: docs/performance.md). The backward's
// gradient coefficients use out for the moments at the solution, and gphi for their upstream.
struct FitScratch {
  double sums[32 * kFitSums];
  double tile[3 * kFitTileRows];  // warp_contract_columns' row terms
  double dots[kFitSums], second_dots[kFitSecondSums];
  double out[14];
  fit::SecondMoments second;
  double Hs[16];
  fit::Moments moments[2];
  fit::FitState state;
  double N[10], g[4];
  double gphi[4];
  int go;  // the iteration goes on: evaluate state's trial point
  FitBox box;  // warp_fit's
  __device__ fit::Moments& operator[](int i) { return moments[i]; }
};
static_assert(sizeof(fit::Moments) == 14 * sizeof(double), "Moments: D[4] then T[10], as a fit's 14 sums");
static_assert(sizeof(fit::SecondMoments) == 12 * sizeof(double), "SecondMoments: D2[6] then K2[6]");

// The fit's 17 separable dots at (x, y, lam) over the box b into fs.dots, with one warp: all its
// lanes must call it. The lanes' partials (fit_separable_partials) are summed in lane order by
// lanes 0..16 (warp_sum_rows, which ends with a warp barrier: every lane may read the dots after
// it); one lane then forms the moments (moments_of_dots).
template <typename Val>
__device__ inline void warp_dots(const Val& h, int W, const FitBox& b, double x, double y, double lam, FitScratch& fs) {
  fit_separable_partials(h, W, b, x, y, lam, fs.sums, fs.tile);
  warp_sum_rows(fs.sums, kFitSums, fs.dots);
}
// The moments from warp_dots' dots q, as the CPU kernel forms them.
__device__ inline void moments_of_dots(const double* q, fit::Moments& mo) {
  mo.D[0] = q[0], mo.D[1] = q[1], mo.D[2] = q[2], mo.D[3] = q[3] + q[4];
  fit::template_sums(q + 5, q + 11, mo.T);  // dots 5..10 the rows', 11..16 the columns'
}

// Fits the raw map's values h(p) over the box b from (x0, y0, lam0), with one warp: all its 32 lanes
// must call it. The iteration (fit::gaussian_fit's, step for step) keeps its state in fs: lane 0
// advances it (fit_start, fit_propose, fit_accept) while the other lanes wait at a warp barrier,
// then every lane reads the trial point and the warp evaluates the sums there, with only that
// point in registers. The box and the start are parked in fs too (fs.box; the start as the first
// trial point), and the stopped state is left in fs.state (fit::fit_result): held in registers
// across the iteration, they made the fit kernels spill.
template <typename Val>
__device__ inline void warp_fit(const Val& h, int W, const FitBox& b, double x0, double y0, double lam0, double stop,
                                FitScratch& fs) {
  const bool lane0 = (threadIdx.x & 31) == 0;
  if (lane0) fs.box = b, fs.state.xt = x0, fs.state.yt = y0, fs.state.lt = lam0;
  __syncwarp(0xffffffffu);
  warp_dots(h, W, fs.box, fs.state.xt, fs.state.yt, fs.state.lt, fs);
  if (lane0) {
    moments_of_dots(fs.dots, fs[0]);
    reread_shared();
    fit::fit_start(fs.state, fs[0], fs.state.xt, fs.state.yt, fs.state.lt, fs.box.cols >= 2, fs.box.rows >= 2, stop);
    reread_shared();
    fs.go = fit::fit_propose(fs.state, fs[fs.state.cur], fs.N, fs.g) ? 1 : 0;
  }
  __syncwarp(0xffffffffu);
  while (fs.go != 0) {  // the same in every lane
    warp_dots(h, W, fs.box, fs.state.xt, fs.state.yt, fs.state.lt, fs);
    if (lane0) {
      fit::Moments& mt = fs[1 - fs.state.cur];  // the trial point's
      moments_of_dots(fs.dots, mt);
      fit::fit_accept(fs.state, mt);
      fs.go = fit::fit_propose(fs.state, fs[fs.state.cur], fs.N, fs.g) ? 1 : 0;
    }
    __syncwarp(0xffffffffu);
  }
}

// The fit of the raw map's values raw(p) around the window's argmax, started at its soft-argmax
// estimate with the width from the filtered values F(p) (fit_start_lam), with one warp: all its
// 32 lanes must call it. Its result: fit::fit_result of fs.state.
template <typename Filtered, typename Raw, typename acc_t>
__device__ inline void warp_fit_window(const Filtered& F, const Raw& raw, const WindowMoments<acc_t>& win, int H, int W,
                                       const FitParams& fp, FitScratch& fs) {
  const double lam0 = fit_start_lam(F, H, W, win.mi, win.mj, fp.blur);
  warp_fit(raw, W, FitBox(win.mi, win.mj, fp.R, H, W), win.x(), win.y(), lam0, fp.stop, fs);
}

// The gradient coefficients of the valid fit f of the box b (fit::grad_coefficients) for the
// upstream gphi, into f.coef, with one warp: all its lanes must call it. The moments at the
// solution (warp_dots' 1D dots in fs.dots, the moments in out[0..14)) and the 16 further dots
// (fit_second_partials, summed in lane order by lanes 0..15 into second_dots) are the CPU kernel's;
// lane 0 forms the second-derivative sums (fs.second) and solves for the coefficients. (Read from the block's
// SharedFit, which holds the fit's bits, rather than kept in registers across the bias's block
// reduction; lane 0 parks gphi in fs.gphi for the same reason: held in registers across the sums,
// its 8 registers made the backward fit kernels spill 32-48 B more.)
template <typename Val>
__device__ inline void warp_fit_coefficients(const Val& h, int W, const FitBox& b, SharedFit& f, const double gphi[4],
                                             FitScratch& fs) {
  const int lane = threadIdx.x & 31;
  if (lane == 0)
    for (int a = 0; a < 4; ++a) fs.gphi[a] = gphi[a];
  const double x = f.x, y = f.y, lam = f.lam;
  warp_dots(h, W, b, x, y, lam, fs);
  fit_second_partials(h, W, b, x, y, lam, fs.sums, fs.tile);
  warp_sum_rows(fs.sums, kFitSecondSums, fs.second_dots);
  if (lane == 0) {
    const double* q = fs.second_dots;  // the 16 totals
    const double* o = fs.dots;  // warp_dots': 5.. the row terms' kk kp kl, 11.. the columns'
    const double ykk = o[5], ykp = o[6], ykl = o[7], xkk = o[11], xkp = o[12], xkl = o[13];
    fit::SecondMoments& sm = fs.second;
    sm.D2[0] = q[0];
    sm.D2[1] = q[7];
    sm.D2[2] = q[1];
    sm.D2[3] = q[2] + q[3];
    sm.D2[4] = q[8] + q[4];
    sm.D2[5] = q[5] + 2 * q[6] + q[9];
    sm.K2[0] = ykk * q[13];
    sm.K2[1] = q[10] * xkk;
    sm.K2[2] = ykp * xkp;
    sm.K2[3] = ykk * q[14] + ykl * xkp;
    sm.K2[4] = q[11] * xkk + ykp * xkl;
    sm.K2[5] = ykk * q[15] + 2 * ykl * xkl + q[12] * xkk;
    fit::Moments& mo = *reinterpret_cast<fit::Moments*>(fs.out);
    moments_of_dots(o, mo);
    const fit::Result r{f.A, x, y, lam, 0.0, 0, b.cols >= 2, b.rows >= 2, true};  // free_*: warp_fit's
    fit::grad_coefficients(r, mo, sm, fs.gphi, f.coef, fs.Hs, fs.g);
  }
}

// d loss / d h at pixel (i, j) of the fit box, from the coefficients.
__device__ inline double fit_pixel_grad(const double coef[4], double A, double x, double y, double lam, int i, int j) {
  double dk[4];
  fit::pixel_first(fit::axis_terms(static_cast<double>(i) - y, lam), fit::axis_terms(static_cast<double>(j) - x, lam),
                   dk);
  return fit::pixel_grad(coef, A, dk);
}

// Writes d loss / d h over the box b of a valid fit (A, x, y, lam) with coefficients coef into o (a
// map of stride W), with one warp.
template <typename out_t>
__device__ inline void warp_fit_grad(const FitBox& b, const SharedFit& f, out_t* o, int W) {
  for (int k = threadIdx.x & 31; k < b.n(); k += 32) {
    const int i = b.i0 + k / b.cols, j = b.j0 + k % b.cols;
    st(o + i * W + j, fit_pixel_grad(f.coef, f.A, f.x, f.y, f.lam, i, j));
  }
}

// ---------------------------------------------------------------------------- the model's bias
// Where the fit is valid, decode's result is the soft-argmax estimate corrected by its own bias on
// the fitted Gaussian (../decode_fit.h): s - S + (x, y), S the window's soft-argmax of the
// pre-filtered model, whose values ModelValues gives in acc_t (as the CPU kernel's ModelWindow).

// The pre-filtered fitted model at pixel p = i * W + j: A By(i) Bx(j) (fit::blurred_terms, the
// pre-filter's taps k as doubles), in acc_t.
template <typename acc_t, int kCap>
struct ModelValues {
  const HalfTaps<acc_t, kCap>& k;
  int H, W;
  const SharedFit& f;  // A, x, y, lam: read where used (shared memory), not held in registers
  __device__ ModelValues(const HalfTaps<acc_t, kCap>& k_, int H_, int W_, const SharedFit& f_)
      : k(k_), H(H_), W(W_), f(f_) {}
  __device__ double tap(int d) const {
    const int e = d - k.r;
    return static_cast<double>(k.half[e < 0 ? -e : e]);
  }
  __device__ fit::BlurredTerms row(int i) const {
    return fit::blurred_terms(i, [&](int d) { return tap(d); }, k.r, H,
                              [&](int64_t q) { return fit::axis_terms(static_cast<double>(q) - f.y, f.lam); });
  }
  __device__ fit::BlurredTerms col(int j) const {
    return fit::blurred_terms(j, [&](int d) { return tap(d); }, k.r, W,
                              [&](int64_t q) { return fit::axis_terms(static_cast<double>(q) - f.x, f.lam); });
  }
  __device__ acc_t operator()(int p) const {
    const int i = p / W;
    return static_cast<acc_t>(fit::model_value(f.A, row(i), col(p - i * W)));
  }
};

// The model's window moments (WindowMoments' arithmetic, the same bits) into s in the block's shared
// memory, over the window of win (the same argmax and radius: the same box), with the block (all
// threads must call it; ends with a barrier). Each pixel rereads the window's box and the fit from
// shared memory (reread_shared) rather than hold them in registers beside the model's exponentials,
// where they spilled.
template <typename acc_t, typename Val>
__device__ inline const WindowMoments<acc_t>& model_window(WindowMoments<acc_t>& s, const WindowMoments<acc_t>& win,
                                                           const Val& val, int W, acc_t t, double* scratch) {
  if (threadIdx.x == 0) {
    s.best = win.best, s.mi = win.mi, s.mj = win.mj, s.i0 = win.i0, s.j0 = win.j0, s.wh = win.wh, s.ww = win.ww;
    s.peak = val(win.best);
  }
  __syncthreads();
  double m[3] = {0.0, 0.0, 0.0};
  for (int k = threadIdx.x; k < s.wh * s.ww; k += blockDim.x) {
    reread_shared();
    const int a = k / s.ww, b = k - a * s.ww;
    const int i = s.i0 + a, j = s.j0 + b;
    const double w = s.weight(val(i * W + j), t);
    m[0] += w;
    m[1] += w * static_cast<double>(j - s.mj);
    m[2] += w * static_cast<double>(i - s.mi);
  }
  block_sum<double, 3>(m, scratch);
  if (threadIdx.x == 0) s.sum = m[0], s.mx = m[1] / m[0], s.my = m[2] / m[0];
  __syncthreads();
  return s;
}

// d loss / d (A, x, y, lam) of the corrected result for the upstream (gx, gy) (mv.f's, in shared
// memory), with the block (all threads must call it; the same result in every thread): (0, gx, gy,
// 0) minus the bias's, sum over the window of (d loss / d M) dM / d(A, x, y, lam) (block_sum: scratch
// holds 4 kWarps). The model window's moments (model) and the fit are reread from shared memory per
// pixel (reread_shared).
template <typename acc_t, int kCap>
__device__ inline void model_upstream(const ModelValues<acc_t, kCap>& mv, const WindowMoments<acc_t>& model, acc_t t,
                                      double gphi[4], double* scratch) {
  double s[4] = {0.0, 0.0, 0.0, 0.0};
  const double scale = static_cast<double>(t) / model.sum;
  for (int e = threadIdx.x; e < model.wh * model.ww; e += blockDim.x) {
    reread_shared();  // model and mv.f: in shared memory
    const int i = model.i0 + e / model.ww, j = model.j0 + e % model.ww;
    const fit::BlurredTerms ty = mv.row(i), tx = mv.col(j);
    const acc_t M = static_cast<acc_t>(fit::model_value(mv.f.A, ty, tx));
    fit::add_model_grad(model.grad_at(M, i, j, mv.f.gx, mv.f.gy, scale, t), mv.f.A, ty, tx, s);
  }
  block_sum<double, 4>(s, scratch);
  gphi[0] = -s[0], gphi[1] = mv.f.gx - s[1], gphi[2] = mv.f.gy - s[2], gphi[3] = -s[3];
}

// The fit by the block's first warp, shared in f (all threads must call it); whether it is valid,
// the same in every thread.
template <typename acc_t, typename Filtered, typename Raw>
__device__ inline bool block_fit(const Filtered& F, const Raw& raw, const WindowMoments<acc_t>& win, int H, int W,
                                 const FitParams& fp, SharedFit& f, FitScratch& fit_scratch) {
  if (threadIdx.x < 32) {
    warp_fit_window(F, raw, win, H, W, fp, fit_scratch);
    if (threadIdx.x == 0) f.set(fit::fit_result(fit_scratch.state, fp.blur, win.mi, win.mj, fp.R));
  }
  __syncthreads();
  return f.valid != 0;
}

// decode's coordinates with the pre-filter, with the block (all threads must call it): with a fit
// box (fp.R > 0), the fit by the first warp, shared in f; where it is valid, the corrected
// estimate in (x, y) of every thread, else the window's estimate (read after the fit from win, in
// shared memory, rather than held in registers across it). scratch holds 4 kWarps doubles,
// fit_scratch warp_fit's.
template <typename acc_t, int kCap, typename Filtered, typename Raw>
__device__ inline void forward_fit(const Filtered& F, const Raw& raw, const WindowMoments<acc_t>& win,
                                   const HalfTaps<acc_t, kCap>& k, int H, int W, acc_t t,
                                   const FitParams& fp, SharedFit& f, FitScratch& fit_scratch, double* scratch, double& x,
                                   double& y) {
  if (fp.R == 0 || !block_fit(F, raw, win, H, W, fp, f, fit_scratch)) {  // the same for the block
    x = win.x(), y = win.y();
    return;
  }
  __shared__ WindowMoments<acc_t> model_s;
  const WindowMoments<acc_t>& model = model_window(model_s, win, ModelValues<acc_t, kCap>(k, H, W, f), W, t, scratch);
  x = (static_cast<double>(win.mj) + win.mx) - (static_cast<double>(win.mj) + model.mx) + f.x;
  y = (static_cast<double>(win.mi) + win.my) - (static_cast<double>(win.mi) + model.my) + f.y;
}

// The backward's fit (fp.R > 0), with the block (all threads must call it): the forward's fit
// recomputed by the first warp (the same bits, so the same `valid`), shared in f; where it is
// valid, the upstream through the bias (model_upstream) and the first warp's gradient coefficients
// (warp_fit_coefficients), in f.coef. The upstream d loss / d (x, y) is f.gx, f.gy, written by the
// block's thread 0 before the call (block_fit's barrier orders it): held in registers across the fit
// by every thread, gx and gy spilled. Ends with a barrier. Scratch as forward_fit's (fit_scratch:
// warp_fit_coefficients').
template <typename acc_t, int kCap, typename Filtered, typename Raw>
__device__ inline void backward_fit(const Filtered& F, const Raw& raw, const WindowMoments<acc_t>& win,
                                    const HalfTaps<acc_t, kCap>& k, int H, int W, acc_t t, const FitParams& fp,
                                    SharedFit& f, FitScratch& fit_scratch, double* scratch) {
  if (!block_fit(F, raw, win, H, W, fp, f, fit_scratch)) return;
  const ModelValues<acc_t, kCap> mv(k, H, W, f);
  __shared__ WindowMoments<acc_t> model_s;
  const WindowMoments<acc_t>& model = model_window(model_s, win, mv, W, t, scratch);
  double gphi[4];
  model_upstream(mv, model, t, gphi, scratch);
  if (threadIdx.x < 32) warp_fit_coefficients(raw, W, fit_scratch.box, f, gphi, fit_scratch);
  __syncthreads();
}

// hm: the maps the argmax, score and soft-argmax see (the pre-filtered maps with blur); raw: the
// maps the fit reads (nullptr when fp.R is 0); k: the pre-filter's taps (the fit's model of hm;
// unused when fp.R is 0). kFit false (blur=None: fp.R is 0) compiles the fit out: the plain
// soft-argmax kernels are compiled for 8 blocks per SM (32 registers, a full SM; with double
// maps, which spill at 32, the forward for 6 and the backward for 4) without spilling, where the
// fit's double-precision iteration is held to kFitMinBlocks blocks per SM (64 registers, where it
// keeps its state in shared memory so as not to spill; benchmarks/kernel_resources.py).
template <typename in_t, typename raw_t, typename acc_t, int kCap, bool kFit>
__global__ void __launch_bounds__(kThreads, kFit ? kFitMinBlocks : (sizeof(acc_t) == 8 ? 6 : 8))
    decode_kernel(const in_t* __restrict__ hm, const raw_t* __restrict__ raw, acc_t* __restrict__ coords,
                  acc_t* __restrict__ scores, int64_t* __restrict__ index, int H, int W, int r, acc_t t, FitParams fp,
                  const __grid_constant__ HalfTaps<acc_t, kCap> k) {
  __shared__ acc_t sv[kWarps];
  __shared__ int si[kWarps];
  __shared__ double scratch[kWarps * 4];
  const int64_t m = blockIdx.x;
  const int64_t HW = static_cast<int64_t>(H) * W;
  const in_t* h = hm + m * HW;
  const int best = block_argmax<in_t, acc_t>(hm, h, H * W, sv, si);
  const GlobalValues<in_t, acc_t> val{h};
  const WindowMoments<acc_t> window(val, H, W, best, r, t, scratch);
  __shared__ WindowMoments<acc_t> win_s;
  const WindowMoments<acc_t>& win = kFit ? share_window(win_s, window) : window;
  double x, y;
  if constexpr (kFit) {
    __shared__ FitScratch fit_scratch;
    __shared__ SharedFit fit_state;
    forward_fit(val, GlobalValues<raw_t, double>{raw + m * HW}, win, k, H, W, t, fp, fit_state, fit_scratch,
                scratch, x, y);
  } else {
    x = win.x(), y = win.y();
  }
  if (threadIdx.x == 0) write_decode_outputs(coords, scores, index, m, x, y, win.peak, win.best);
}

// out: the gradient w.r.t. the maps hm, zero outside each window; raw_out (with the pre-filter;
// else nullptr): the gradient w.r.t. the raw maps through a valid fit (fp.R > 0), zero outside its
// box, and zero everywhere without a fit (the launcher filters out back and adds raw_out). A map
// whose index is not a pixel of the map (a direct call with a bad index) gets a zero gradient and,
// with a flag (bad_index not nullptr: check_index), sets *bad_index to 1, which the launcher turns
// into an error. kFit as decode_kernel's.
template <typename in_t, typename raw_t, typename acc_t, int kCap, bool kFit>
__global__ void __launch_bounds__(kThreads, kFit ? kFitMinBlocks : (sizeof(acc_t) == 8 ? 4 : 8))
    decode_backward_kernel(const acc_t* __restrict__ gc, const acc_t* __restrict__ gs, const in_t* __restrict__ hm,
                           const raw_t* __restrict__ raw, const int64_t* __restrict__ index, in_t* __restrict__ out,
                           acc_t* __restrict__ raw_out, int* __restrict__ bad_index, int H, int W, int r, acc_t t,
                           FitParams fp, const __grid_constant__ HalfTaps<acc_t, kCap> k) {
  __shared__ double scratch[kWarps * 4];
  const int64_t m = blockIdx.x;
  const int HW = H * W;
  const in_t* h = hm + m * static_cast<int64_t>(HW);
  in_t* o = out + m * static_cast<int64_t>(HW);
  acc_t* ro = raw_out != nullptr ? raw_out + m * static_cast<int64_t>(HW) : nullptr;
  const int64_t best64 = ld(index + m);
  store_map(out, o, HW, W, [](int, int, int) { return in_t(0); });
  if (ro != nullptr) store_map(raw_out, ro, HW, W, [](int, int, int) { return acc_t(0); });
  if (best64 < 0 || best64 >= HW) {  // the same for every thread of the block
    if (threadIdx.x == 0 && bad_index != nullptr) st(bad_index, 1);
    return;
  }
  const int best = static_cast<int>(best64);
  const GlobalValues<in_t, acc_t> val{h};
  const WindowMoments<acc_t> window(val, H, W, best, r, t, scratch);  // syncs the zero fill
  __shared__ WindowMoments<acc_t> win_s;
  const WindowMoments<acc_t>& win = kFit ? share_window(win_s, window) : window;
  if constexpr (kFit) {
    __shared__ FitScratch fit_scratch;
    __shared__ SharedFit fit_state;
    if (fp.R > 0) {  // the fit's gradient, to the raw box (the estimate's and the score's stay below)
      const GlobalValues<raw_t, double> hr{raw + m * static_cast<int64_t>(HW)};
      if (threadIdx.x == 0) fit_state.gx = ld(gc + 2 * m), fit_state.gy = ld(gc + 2 * m + 1);
      backward_fit(val, hr, win, k, H, W, t, fp, fit_state, fit_scratch, scratch);
      if (fit_state.valid != 0 && threadIdx.x < 32)
        warp_fit_grad(FitBox(win.mi, win.mj, fp.R, H, W), fit_state, ro, W);
    }
  }
  const double gx = ld(gc + 2 * m), gy = ld(gc + 2 * m + 1);  // (read after the fit, which has them in shared memory)
  const double g_peak = ld(gs + m);
  const double scale = static_cast<double>(t) / win.sum;
  for (int e = threadIdx.x; e < win.wh * win.ww; e += blockDim.x) {
    const int a = e / win.ww, b = e - a * win.ww;
    const int i = win.i0 + a, j = win.j0 + b;
    const int p = i * W + j;
    double v = win.grad_at(val(p), i, j, gx, gy, scale, t);
    if (p == win.best) v += g_peak;
    st(o + p, v);
  }
}

// decode_fused_kernel's dynamic shared memory: the rows pass R[H * W] (acc_t), then the raw map
// (in_t), 16-byte aligned.
template <typename acc_t>
SHR_HOST_DEVICE constexpr int64_t decode_fused_raw_offset(int64_t HW) {
  return (HW * static_cast<int64_t>(sizeof(acc_t)) + 15) / 16 * 16;
}
template <typename in_t, typename acc_t>
constexpr int64_t decode_fused_smem(int64_t HW) {
  return decode_fused_raw_offset<acc_t>(HW) + HW * static_cast<int64_t>(sizeof(in_t));
}

// One value of one pass of the separable filter (along a row or a column of length len, at
// position pos; at(e) is the value e steps along the line, called only inside the frame), zero
// outside the frame, with the CPU kernel's order of operations: along rows, and along columns
// where all 2r + 1 taps are inside the frame, the centre tap first, then the mirrored pairs from the
// outermost in, each pair added before its one multiplication; along clipped columns, the taps
// inside the frame in increasing order.
template <typename acc_t, int kCap, typename At>
__device__ inline acc_t filter_at(const HalfTaps<acc_t, kCap>& k, int pos, int len, bool along_rows, const At& at) {
  const int r = k.r;
  auto in = [&](int e) {
    const int q = pos + e;
    return q >= 0 && q < len ? at(e) : acc_t(0);
  };
  const int d0 = max(0, r - pos), d1 = min(2 * r, len - 1 - pos + r);  // taps inside the frame
  acc_t s;
  if (along_rows || (d0 == 0 && d1 == 2 * r)) {
    s = mul_rn(k.half[0], in(0));
    for (int e = r; e >= 1; --e) s = add_rn(s, mul_rn(k.half[e], add_rn(in(-e), in(e))));
  } else {
    s = mul_rn(k.half[r - d0 >= 0 ? r - d0 : d0 - r], in(d0 - r));
    for (int d = d0 + 1; d <= d1; ++d) s = add_rn(s, mul_rn(k.half[d >= r ? d - r : r - d], in(d - r)));
  }
  return s;
}

// One pass of the separable filter over maps [M, H, W] (n = M * H * W values) along rows (length
// W) or columns (length H) (filter_at).
template <typename src_t, typename acc_t, int kCap>
__global__ void blur_pass_kernel(const src_t* __restrict__ x, acc_t* __restrict__ y, int64_t n, int H, int W,
                                 bool along_rows, const __grid_constant__ HalfTaps<acc_t, kCap> k) {
  for (int64_t p = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; p < n;
       p += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int j = static_cast<int>(p % W);
    const int i = static_cast<int>((p / W) % H);
    const int64_t step = along_rows ? 1 : W;
    const acc_t s = filter_at(k, along_rows ? j : i, along_rows ? W : H, along_rows,
                              [&](int e) { return static_cast<acc_t>(ld(x + p + e * step)); });
    st(y + p, s);
  }
}

// decode with the pre-filter in one kernel and one read of each map (maps that fit in shared
// memory: decode_fused_smem): the block copies its map into shared memory, filters it along the
// rows into a second buffer R, and takes the first maximum of the column pass F as it computes it.
// The window's soft-argmax and the fit's start read F again (the same function of R, so the same
// bits), the fit reads the raw map there. Every filtered value is filter_at's, as blur_pass_kernel
// computes it: the same argmax, score and estimate as the two-pass path and the CPU kernel.
template <typename in_t, typename acc_t, int kCap>
__global__ void __launch_bounds__(kThreads, kFitMinBlocks)
    decode_fused_kernel(const in_t* __restrict__ hm, acc_t* __restrict__ coords, acc_t* __restrict__ scores,
                        int64_t* __restrict__ index, int H, int W, int r, acc_t t,
                        const __grid_constant__ HalfTaps<acc_t, kCap> k, FitParams fp) {
  SHR_DYNAMIC_SMEM(smem_raw);
  __shared__ acc_t sv[kWarps];
  __shared__ int si[kWarps];
  __shared__ double scratch[kWarps * 4];
  __shared__ FitScratch fit_scratch;
  __shared__ SharedFit fit_state;
  const int64_t m = blockIdx.x;
  const int HW = H * W;
  const in_t* h = hm + m * static_cast<int64_t>(HW);
  acc_t* R = reinterpret_cast<acc_t*>(smem_raw);  // the rows pass, then the raw map after it
  in_t* raw = reinterpret_cast<in_t*>(smem_raw + decode_fused_raw_offset<acc_t>(HW));
  load_map(hm, h, HW, W, [&](in_t v, int p, int, int) { raw[p] = v; });
  __syncthreads();
  for (int p = threadIdx.x; p < HW; p += blockDim.x) {
    const int i = p / W, j = p - i * W;
    R[p] = filter_at(k, j, W, true, [&](int e) { return static_cast<acc_t>(raw[p + e]); });
  }
  __syncthreads();
  auto F = [&](int p) {
    const int i = p / W;
    return filter_at(k, i, H, false, [&](int e) { return R[p + e * W]; });
  };
  acc_t bv = -static_cast<acc_t>(INFINITY);
  int bi = INT32_MAX;
  for (int p = threadIdx.x; p < HW; p += blockDim.x) {
    const acc_t v = F(p);
    if (arg_better(v, p, bv, bi)) {
      bv = v;
      bi = p;
    }
  }
  const int best = reduce_argmax(bv, bi, sv, si);
  __shared__ WindowMoments<acc_t> win_s;
  const WindowMoments<acc_t>& win = share_window(win_s, WindowMoments<acc_t>(F, H, W, best, r, t, scratch));
  double x, y;  // with the fit of the raw map in shared memory
  forward_fit(F, [&](int p) { return static_cast<double>(raw[p]); }, win, k, H, W, t, fp, fit_state,
              fit_scratch, scratch, x, y);
  if (threadIdx.x == 0) write_decode_outputs(coords, scores, index, m, x, y, win.peak, win.best);
}

// decode_backward_fused_kernel's boxes around the argmax (mi, mj), clipped to the frame: the window
// (radius r), the filtered values it needs (the window and the fit's start stencil: radius
// max(r, 2)), the raw box they are filtered from (grown by the filter's radius rf; it holds the fit
// box too), and the window grown by rf (where the filter carries the window's gradient back).
struct BackwardBoxes {
  int wi0, wi1, wj0, wj1;  // window
  int fi0, fi1, fj0, fj1;  // filtered values
  int ri0, ri1, rj0, rj1;  // raw box
  int oi0, oi1, oj0, oj1;  // window grown by rf
  SHR_HOST_DEVICE BackwardBoxes(int mi, int mj, int r, int rf, int H, int W) {
    const int q = r > 2 ? r : 2;
    wi0 = mi - r < 0 ? 0 : mi - r, wi1 = mi + r > H - 1 ? H - 1 : mi + r;
    wj0 = mj - r < 0 ? 0 : mj - r, wj1 = mj + r > W - 1 ? W - 1 : mj + r;
    fi0 = mi - q < 0 ? 0 : mi - q, fi1 = mi + q > H - 1 ? H - 1 : mi + q;
    fj0 = mj - q < 0 ? 0 : mj - q, fj1 = mj + q > W - 1 ? W - 1 : mj + q;
    ri0 = fi0 - rf < 0 ? 0 : fi0 - rf, ri1 = fi1 + rf > H - 1 ? H - 1 : fi1 + rf;
    rj0 = fj0 - rf < 0 ? 0 : fj0 - rf, rj1 = fj1 + rf > W - 1 ? W - 1 : fj1 + rf;
    oi0 = wi0 - rf < 0 ? 0 : wi0 - rf, oi1 = wi1 + rf > H - 1 ? H - 1 : wi1 + rf;
    oj0 = wj0 - rf < 0 ? 0 : wj0 - rf, oj1 = wj1 + rf > W - 1 ? W - 1 : wj1 + rf;
  }
};

// Its dynamic shared memory, for the largest boxes on H x W maps: the raw box (in_t), the rows pass
// over the raw box's rows and the filtered values' columns (acc_t), the window's gradient and its
// rows pass over the grown window's columns (double), each 16-byte aligned.
struct BackwardSmem {
  int64_t raw, rows, g, gr, bytes;
  template <typename in_t, typename acc_t>
  static BackwardSmem of(int64_t H, int64_t W, int64_t r, int64_t rf) {
    auto clip = [](int64_t n, int64_t len) { return n < len ? n : len; };
    auto up = [](int64_t b) { return (b + 15) / 16 * 16; };
    const int64_t q = r > 2 ? r : 2;
    BackwardSmem s{};
    s.raw = 0;
    s.rows = s.raw + up(clip(2 * (q + rf) + 1, H) * clip(2 * (q + rf) + 1, W) * static_cast<int64_t>(sizeof(in_t)));
    s.g = s.rows + up(clip(2 * (q + rf) + 1, H) * clip(2 * q + 1, W) * static_cast<int64_t>(sizeof(acc_t)));
    s.gr = s.g + up(clip(2 * r + 1, H) * clip(2 * r + 1, W) * 8);
    s.bytes = s.gr + up(clip(2 * r + 1, H) * clip(2 * (r + rf) + 1, W) * 8);
    return s;
  }
};

// decode_backward with the pre-filter in one kernel that writes each output map once (maps whose
// boxes fit in shared memory): the block reads the raw box around the forward's argmax, filters the
// values the window and the fit's start need (filter_at: the forward's bits, so the same estimate,
// fit and `valid`), recomputes the fit on the raw box, forms the window's gradient w.r.t. the
// filtered map (the soft-argmax estimate's and the score's delta), carries it
// back through the filter (rows, then columns, in double, as the CPU kernel) and adds the fit's
// gradient, writing zeros elsewhere.
template <typename in_t, typename acc_t, int kCap>
__global__ void __launch_bounds__(kThreads, kFitMinBlocks)
    decode_backward_fused_kernel(const acc_t* __restrict__ gc, const acc_t* __restrict__ gs,
                                 const in_t* __restrict__ hm, const int64_t* __restrict__ index,
                                 in_t* __restrict__ out, int* __restrict__ bad_index, int H, int W, int r, acc_t t,
                                 const __grid_constant__ HalfTaps<acc_t, kCap> k, FitParams fp, BackwardSmem layout) {
  SHR_DYNAMIC_SMEM(smem_raw);
  __shared__ double scratch[kWarps * 4];
  __shared__ FitScratch fit_scratch;
  __shared__ SharedFit fit_state;
  const int64_t m = blockIdx.x;
  const int HW = H * W;
  const in_t* h = hm + m * static_cast<int64_t>(HW);
  in_t* o = out + m * static_cast<int64_t>(HW);
  const int64_t best64 = ld(index + m);
  if (best64 < 0 || best64 >= HW) {  // the same for every thread of the block
    store_map(out, o, HW, W, [](int, int, int) { return in_t(0); });
    if (threadIdx.x == 0 && bad_index != nullptr) st(bad_index, 1);
    return;
  }
  const int best = static_cast<int>(best64), mi = best / W, mj = best - mi * W, rf = k.r;
  const BackwardBoxes bx(mi, mj, r, rf, H, W);
  const int rcols = bx.rj1 - bx.rj0 + 1, rrows = bx.ri1 - bx.ri0 + 1, fcols = bx.fj1 - bx.fj0 + 1;
  const int wcols = bx.wj1 - bx.wj0 + 1, wrows = bx.wi1 - bx.wi0 + 1, ocols = bx.oj1 - bx.oj0 + 1;
  in_t* raw = reinterpret_cast<in_t*>(smem_raw + layout.raw);
  acc_t* R = reinterpret_cast<acc_t*>(smem_raw + layout.rows);
  double* g = reinterpret_cast<double*>(smem_raw + layout.g);
  double* gr = reinterpret_cast<double*>(smem_raw + layout.gr);
  for (int e = threadIdx.x; e < rrows * rcols; e += blockDim.x)
    raw[e] = ld(h + (bx.ri0 + e / rcols) * W + bx.rj0 + e % rcols);
  __syncthreads();
  for (int e = threadIdx.x; e < rrows * fcols; e += blockDim.x) {
    const int a = e / fcols, j = bx.fj0 + e % fcols;
    const in_t* row = raw + a * rcols + (j - bx.rj0);
    R[e] = filter_at(k, j, W, true, [&](int d) { return static_cast<acc_t>(row[d]); });
  }
  __syncthreads();
  auto F = [&](int p) {  // the filtered map at a pixel of the filtered values' box
    const int i = p / W, j = p - i * W;
    const acc_t* col = R + (i - bx.ri0) * fcols + (j - bx.fj0);
    return filter_at(k, i, H, false, [&](int d) { return col[d * fcols]; });
  };
  auto raw_at = [&](int p) {
    const int i = p / W, j = p - i * W;
    return static_cast<double>(raw[(i - bx.ri0) * rcols + (j - bx.rj0)]);
  };
  __shared__ WindowMoments<acc_t> win_s;
  const WindowMoments<acc_t>& win = share_window(win_s, WindowMoments<acc_t>(F, H, W, best, r, t, scratch));
  bool fitted = false;
  if (fp.R > 0) {  // the same for the block
    if (threadIdx.x == 0) fit_state.gx = ld(gc + 2 * m), fit_state.gy = ld(gc + 2 * m + 1);
    backward_fit(F, raw_at, win, k, H, W, t, fp, fit_state, fit_scratch, scratch);
    fitted = fit_state.valid != 0;
  }
  const double gx = ld(gc + 2 * m), gy = ld(gc + 2 * m + 1);  // (read after the fit, which has them in shared memory)
  const double g_peak = ld(gs + m);
  const double scale = static_cast<double>(t) / win.sum;
  for (int e = threadIdx.x; e < wrows * wcols; e += blockDim.x) {
    const int i = bx.wi0 + e / wcols, j = bx.wj0 + e % wcols, p = i * W + j;
    double v = win.grad_at(F(p), i, j, gx, gy, scale, t);
    if (p == win.best) v += g_peak;
    g[e] = v;
  }
  __syncthreads();
  for (int e = threadIdx.x; e < wrows * ocols; e += blockDim.x) {  // rows pass of the transposed filter
    const int a = e / ocols, qj = bx.oj0 + e % ocols;
    double v = 0;
    for (int b = 0; b < wcols; ++b) {
      const int d = bx.wj0 + b - qj;
      if (d >= -rf && d <= rf) v += g[a * wcols + b] * static_cast<double>(k.half[d < 0 ? -d : d]);
    }
    gr[e] = v;
  }
  __syncthreads();
  const FitBox fb(mi, mj, fp.R, H, W);
  // One store a pixel: Pack stores here (of zeros outside the boxes, or of each group's values)
  // made the fit's spills larger (benchmarks/kernel_resources.py).
  for (PixelWalk q(W); q.p < HW; q.next()) {
    reread_shared();  // the fit (fit_state) where a pixel of its box needs it, not held in registers across the loop
    const int qi = q.i, qj = q.j;
    double v = 0;
    if (qi >= bx.oi0 && qi <= bx.oi1 && qj >= bx.oj0 && qj <= bx.oj1) {  // columns pass
      const int a0 = max(bx.wi0, qi - rf), a1 = min(bx.wi1, qi + rf);
      for (int pi = a0; pi <= a1; ++pi)
        v += static_cast<double>(k.half[pi - qi < 0 ? qi - pi : pi - qi]) * gr[(pi - bx.wi0) * ocols + (qj - bx.oj0)];
    }
    if (fitted && qi >= fb.i0 && qi < fb.i0 + fb.rows && qj >= fb.j0 && qj < fb.j0 + fb.cols)
      v += fit_pixel_grad(fit_state.coef, fit_state.A, fit_state.x, fit_state.y, fit_state.lam, qi, qj);
    st(o + q.p, v);
  }
}

inline LaunchShape decode_launch_shape(int64_t M) { return {static_cast<unsigned int>(M), kThreads, 0}; }

// The filter's grid-stride launch over n values: at most 2^20 blocks.
inline LaunchShape blur_launch_shape(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return {static_cast<unsigned int>(blocks < (int64_t(1) << 20) ? blocks : (int64_t(1) << 20)), kThreads, 0};
}

}  // namespace cuda
}  // namespace shr_ops
