// Device code of shr_ops::decode and shr_ops::decode_backward (one block per map), and of decode's
// pre-filter. Block-wide first-maximum argmax (NaN wins, ties go to the lower index, as
// torch.argmax), then the window softmax moments by a deterministic block reduction. Same
// semantics as the CPU kernels (cpu/decode_kernel.cpp). No ATen: compiled by nvcc, and by g++
// under the emulator (csrc/emu).
//
// With the pre-filter, the coordinates are the least-squares Gaussian fit of the raw map around the
// filtered argmax (../decode_fit.h; the CPU kernel's cpu/decode/fit.h), run by the block's first
// warp: its lanes share the fit box's pixels and sum each evaluation's 14 moments with one
// deterministic warp_sum, so every lane sees the same sums and takes the same iteration (uniform
// control flow). A warp holds a 13 x 13 box in 6 pixels a lane, and its barriers are warp-wide.
//
// The pre-filter computes every filtered value with the CPU kernel's arithmetic, operation for
// operation (each product and sum rounded on its own, mul_rn / add_rn, in the same order), so that
// the CPU and CUDA decoders see the same filtered bits and pick the same argmax, ties included.
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

template <typename in_t, typename acc_t>
__device__ inline int block_argmax(const in_t* h, int n, acc_t* sv, int* si) {
  acc_t bv = -static_cast<acc_t>(INFINITY);
  int bi = INT32_MAX;
  for (int p = threadIdx.x; p < n; p += blockDim.x) {
    const acc_t v = static_cast<acc_t>(ld(h + p));
    if (arg_better(v, p, bv, bi)) {
      bv = v;
      bi = p;
    }
  }
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

// Softmax moments of the clipped window around `best`: {sum w, sum w*dx, sum w*dy}. Weights in
// acc_t, sums in double (as the CPU kernel; the window is small, so this costs little).
template <typename in_t, typename acc_t>
struct WindowMoments {
  int mi, mj, i0, j0, wh, ww;
  acc_t peak;
  double sum, mx, my;
  __device__ WindowMoments(const in_t* h, int H, int W, int best, int r, acc_t t, double* scratch) {
    mi = best / W;
    mj = best - mi * W;
    i0 = max(0, mi - r);
    j0 = max(0, mj - r);
    wh = min(H - 1, mi + r) - i0 + 1;
    ww = min(W - 1, mj + r) - j0 + 1;
    peak = static_cast<acc_t>(ld(h + best));
    double s[3] = {0.0, 0.0, 0.0};
    for (int k = threadIdx.x; k < wh * ww; k += blockDim.x) {
      const int a = k / ww, b = k - a * ww;
      const int i = i0 + a, j = j0 + b;
      const double w = weight(ld(h + i * W + j), t);
      s[0] += w;
      s[1] += w * static_cast<double>(j - mj);
      s[2] += w * static_cast<double>(i - mi);
    }
    block_sum<double, 3>(s, scratch);
    sum = s[0];
    mx = s[1] / s[0];
    my = s[2] / s[0];
  }
  __device__ acc_t weight(in_t v, acc_t t) const { return shr_exp(t * (static_cast<acc_t>(v) - peak)); }
};

// The fit's parameters: R, the fit box's radius (0: no fit, the soft-argmax estimate is the
// result), the pre-filter's std, and the stop step (fit::stop_step).
struct FitParams {
  int R;
  double blur, stop;
};

// The fit box around the argmax (mi, mj), clipped to the frame.
struct FitBox {
  int i0, j0, rows, cols;
  __device__ FitBox(int mi, int mj, int R, int H, int W)
      : i0(max(0, mi - R)), j0(max(0, mj - R)), rows(min(H - 1, mi + R) - i0 + 1), cols(min(W - 1, mj + R) - j0 + 1) {}
  __device__ int n() const { return rows * cols; }
};

// The fit's start width from the filtered map F at the three pixels around the argmax on each axis
// (fit::start_lam); every thread reads the same six values.
template <typename f_t>
__device__ inline double fit_start_lam(const f_t* F, int H, int W, int mi, int mj, double blur) {
  const bool has[2] = {W >= 3, H >= 3};
  const int cj = has[0] ? min(max(mj, 1), W - 2) : mj, ci = has[1] ? min(max(mi, 1), H - 2) : mi;
  double f[2][3] = {{0, 0, 0}, {0, 0, 0}};
  for (int e = 0; e < 3; ++e) {
    if (has[0]) f[0][e] = static_cast<double>(ld(F + mi * W + cj - 1 + e));
    if (has[1]) f[1][e] = static_cast<double>(ld(F + (ci - 1 + e) * W + mj));
  }
  return fit::start_lam(f, has, blur);
}

// The fit's per-lane partial sums at (x, y, lam): v[0..3] = sum h dk, v[4..13] = sum dk dk (packed);
// with `second`, also w[0..5] = sum h d2k and w[6..11] = sum k d2k (the gradient's).
template <typename raw_t>
__device__ inline void fit_partials(const raw_t* h, int W, const FitBox& b, double x, double y, double lam,
                                    double* v, double* w) {
  const int lane = threadIdx.x & 31;
  for (int e = 0; e < 14; ++e) v[e] = 0;
  if (w != nullptr)
    for (int e = 0; e < 12; ++e) w[e] = 0;
  for (int k = lane; k < b.n(); k += 32) {
    const int a = k / b.cols, c = k - a * b.cols;
    const int i = b.i0 + a, j = b.j0 + c;
    const fit::AxisTerms ty = fit::axis_terms(static_cast<double>(i) - y, lam);
    const fit::AxisTerms tx = fit::axis_terms(static_cast<double>(j) - x, lam);
    double dk[4];
    fit::pixel_first(ty, tx, dk);
    const double hv = static_cast<double>(ld(h + i * W + j));
    for (int p = 0; p < 4; ++p) {
      v[p] += hv * dk[p];
      for (int q = p; q < 4; ++q) v[4 + fit::sym(p, q)] += dk[p] * dk[q];
    }
    if (w != nullptr) {
      double d2[6];
      fit::pixel_second(ty, tx, d2);
      for (int e = 0; e < 6; ++e) {
        w[e] += hv * d2[e];
        w[6 + e] += dk[0] * d2[e];
      }
    }
  }
}

// Fits the raw map h over the box b from (x0, y0), with one warp: all its 32 lanes must call it.
// scratch (shared, the warp's) holds 33 * 14 doubles.
template <typename raw_t>
__device__ inline fit::Result warp_fit(const raw_t* h, int W, const FitBox& b, int mi, int mj, double x0, double y0,
                                       double lam0, const FitParams& fp, double* scratch) {
  auto eval = [&](double x, double y, double lam, fit::Moments& mo) {
    double v[14];
    fit_partials(h, W, b, x, y, lam, v, nullptr);
    warp_sum<double, 14>(v, scratch);
    for (int p = 0; p < 4; ++p) mo.D[p] = v[p];
    for (int e = 0; e < 10; ++e) mo.T[e] = v[4 + e];
  };
  return fit::gaussian_fit(eval, x0, y0, lam0, b.cols >= 2, b.rows >= 2, fp.blur, mi, mj, fp.R, fp.stop);
}

// Writes d loss / d h over the box b of a valid fit r into o (a map of stride W), with one warp: all
// its lanes must call it. scratch (shared, the warp's) holds 33 * 26 doubles.
template <typename out_t, typename raw_t>
__device__ inline void warp_fit_grad(const raw_t* h, int W, const FitBox& b, const fit::Result& r, double gx,
                                     double gy, out_t* o, double* scratch) {
  // The moments at the solution and the second-derivative sums, in one warp sum.
  double v[26];
  fit_partials(h, W, b, r.x, r.y, r.lam, v, v + 14);
  warp_sum<double, 26>(v, scratch);
  fit::Moments mo;
  fit::SecondMoments so;
  for (int p = 0; p < 4; ++p) mo.D[p] = v[p];
  for (int e = 0; e < 10; ++e) mo.T[e] = v[4 + e];
  for (int e = 0; e < 6; ++e) so.D2[e] = v[14 + e], so.K2[e] = v[20 + e];
  double coef[4];
  fit::grad_coefficients(r, mo, so, gx, gy, coef);
  for (int k = threadIdx.x & 31; k < b.n(); k += 32) {
    const int a = k / b.cols, c = k - a * b.cols;
    const int i = b.i0 + a, j = b.j0 + c;
    double dk[4];
    fit::pixel_first(fit::axis_terms(static_cast<double>(i) - r.y, r.lam),
                     fit::axis_terms(static_cast<double>(j) - r.x, r.lam), dk);
    st(o + i * W + j, fit::pixel_grad(coef, r.A, dk));
  }
}

// hm: the maps the argmax, score and soft-argmax see (the pre-filtered maps with blur); raw: the
// maps the fit reads (nullptr when fp.R is 0).
template <typename in_t, typename raw_t, typename acc_t>
__global__ void __launch_bounds__(kThreads, 4) decode_kernel(const in_t* __restrict__ hm, const raw_t* __restrict__ raw, acc_t* __restrict__ coords,
                              acc_t* __restrict__ scores, int64_t* __restrict__ index, int H, int W, int r, acc_t t,
                              FitParams fp) {
  __shared__ acc_t sv[kWarps];
  __shared__ int si[kWarps];
  __shared__ double scratch[kWarps * 3];
  __shared__ double fit_scratch[33 * 14];
  const int64_t m = blockIdx.x;
  const int64_t HW = static_cast<int64_t>(H) * W;
  const in_t* h = hm + m * HW;
  const int best = block_argmax<in_t, acc_t>(h, H * W, sv, si);
  const WindowMoments<in_t, acc_t> win(h, H, W, best, r, t, scratch);
  // The soft-argmax estimate, rounded to acc_t as the reference's: the fit's start, and the result
  // where the fit is not valid.
  const acc_t sx = static_cast<acc_t>(static_cast<double>(win.mj) + win.mx);
  const acc_t sy = static_cast<acc_t>(static_cast<double>(win.mi) + win.my);
  double x = sx, y = sy;
  if (fp.R > 0 && threadIdx.x < 32) {  // the fit: the first warp (fp.R is the same for the block)
    const double lam0 = fit_start_lam(h, H, W, win.mi, win.mj, fp.blur);
    const FitBox b(win.mi, win.mj, fp.R, H, W);
    const fit::Result fr = warp_fit(raw + m * HW, W, b, win.mi, win.mj, sx, sy, lam0, fp, fit_scratch);
    if (fr.valid) {
      x = fr.x;
      y = fr.y;
    }
  }
  if (threadIdx.x == 0) {
    st(coords + 2 * m, x);
    st(coords + 2 * m + 1, y);
    st(scores + m, win.peak);
    st(index + m, best);
  }
}

// out: the gradient w.r.t. the maps hm, zero outside each window; raw_out (with the pre-filter;
// else nullptr): the gradient w.r.t. the raw maps through a valid fit (fp.R > 0), zero outside its
// box, and zero everywhere without a fit (the launcher filters out back and adds raw_out). A map whose index is not a pixel of the map (a
// direct call with a bad index) gets a zero gradient and sets *bad_index to 1, which the launcher
// turns into an error.
template <typename in_t, typename raw_t, typename acc_t>
__global__ void __launch_bounds__(kThreads, 4) decode_backward_kernel(const acc_t* __restrict__ gc, const acc_t* __restrict__ gs,
                                       const in_t* __restrict__ hm, const raw_t* __restrict__ raw,
                                       const int64_t* __restrict__ index, in_t* __restrict__ out,
                                       acc_t* __restrict__ raw_out, int* __restrict__ bad_index, int H, int W, int r,
                                       acc_t t, FitParams fp) {
  __shared__ double scratch[kWarps * 3];
  __shared__ double fit_scratch[33 * 26];
  __shared__ int fit_valid;
  const int64_t m = blockIdx.x;
  const int HW = H * W;
  const in_t* h = hm + m * static_cast<int64_t>(HW);
  in_t* o = out + m * static_cast<int64_t>(HW);
  acc_t* ro = raw_out != nullptr ? raw_out + m * static_cast<int64_t>(HW) : nullptr;
  const int64_t best64 = ld(index + m);
  for (int p = threadIdx.x; p < HW; p += blockDim.x) st(o + p, in_t(0));
  if (ro != nullptr)
    for (int p = threadIdx.x; p < HW; p += blockDim.x) st(ro + p, acc_t(0));
  if (best64 < 0 || best64 >= HW) {  // the same for every thread of the block
    if (threadIdx.x == 0) st(bad_index, 1);
    return;
  }
  const int best = static_cast<int>(best64);
  const WindowMoments<in_t, acc_t> win(h, H, W, best, r, t, scratch);  // syncs the zero fill
  double gx = ld(gc + 2 * m), gy = ld(gc + 2 * m + 1);
  const double g_peak = ld(gs + m);
  if (fp.R > 0) {  // the forward's fit, recomputed by the first warp: the same bits, so the same `valid`
    if (threadIdx.x < 32) {
      const double sx = static_cast<acc_t>(static_cast<double>(win.mj) + win.mx);
      const double sy = static_cast<acc_t>(static_cast<double>(win.mi) + win.my);
      const double lam0 = fit_start_lam(h, H, W, win.mi, win.mj, fp.blur);
      const FitBox b(win.mi, win.mj, fp.R, H, W);
      const raw_t* hr = raw + m * static_cast<int64_t>(HW);
      const fit::Result fr = warp_fit(hr, W, b, win.mi, win.mj, sx, sy, lam0, fp, fit_scratch);
      if (fr.valid) warp_fit_grad(hr, W, b, fr, gx, gy, ro, fit_scratch);  // the coordinates' gradient: raw box
      if (threadIdx.x == 0) fit_valid = fr.valid ? 1 : 0;
    }
    __syncthreads();
    if (fit_valid) gx = gy = 0;  // the score's gradient stays below
  }
  const double scale = static_cast<double>(t) / win.sum;
  for (int k = threadIdx.x; k < win.wh * win.ww; k += blockDim.x) {
    const int a = k / win.ww, b = k - a * win.ww;
    const int i = win.i0 + a, j = win.j0 + b;
    const int p = i * W + j;
    const double prob = static_cast<double>(win.weight(ld(h + p), t)) * scale;
    double v = prob * (gx * (static_cast<double>(j - win.mj) - win.mx) + gy * (static_cast<double>(i - win.mi) - win.my));
    if (p == best) v += g_peak;
    st(o + p, v);
  }
}

// decode's pre-filter taps, passed to the kernel by value (no copy from the host, so launches can
// be captured in CUDA graphs): half[e] is the tap at distance e = 0..r from the centre of the
// symmetric 2r + 1 taps of gaussian_taps, in acc_t as the CPU kernel holds them. kCap is 16 for
// r <= 15 (blur <= 5) and 3001 for the largest blur (r = 3000: 12 KB of float, 24 KB of double,
// under CUDA 12.1's 32 KB kernel-parameter limit).
template <typename acc_t, int kCap>
struct HalfTaps {
  int r;
  acc_t half[kCap];
};
constexpr int kSmallTaps = 16;
constexpr int kLargeTaps = 3001;

// One pass of the separable filter over maps [M, H, W] (n = M * H * W values) along rows (length
// W) or columns (length H), zero outside the frame, with the CPU kernel's order of operations:
// along rows, and along columns where all 2r + 1 taps are inside the frame, the centre tap first,
// then the mirrored pairs from the outermost in, each pair added before its one multiplication;
// along clipped columns, the taps inside the frame in increasing order.
template <typename src_t, typename acc_t, int kCap>
__global__ void blur_pass_kernel(const src_t* __restrict__ x, acc_t* __restrict__ y, int64_t n, int H, int W,
                                 bool along_rows, HalfTaps<acc_t, kCap> k) {
  const int r = k.r;
  for (int64_t p = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; p < n;
       p += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int j = static_cast<int>(p % W);
    const int i = static_cast<int>((p / W) % H);
    const int pos = along_rows ? j : i, len = along_rows ? W : H;
    const int64_t step = along_rows ? 1 : W;
    auto at = [&](int e) {  // the value e steps along the pass, zero outside the frame
      const int q = pos + e;
      return q >= 0 && q < len ? static_cast<acc_t>(ld(x + p + e * step)) : acc_t(0);
    };
    acc_t s;
    const int d0 = max(0, r - pos), d1 = min(2 * r, len - 1 - pos + r);  // taps inside the frame
    if (along_rows || (d0 == 0 && d1 == 2 * r)) {
      s = mul_rn(k.half[0], at(0));
      for (int e = r; e >= 1; --e) s = add_rn(s, mul_rn(k.half[e], add_rn(at(-e), at(e))));
    } else {
      s = mul_rn(k.half[r - d0 >= 0 ? r - d0 : d0 - r], at(d0 - r));
      for (int d = d0 + 1; d <= d1; ++d) s = add_rn(s, mul_rn(k.half[d >= r ? d - r : r - d], at(d - r)));
    }
    st(y + p, s);
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
