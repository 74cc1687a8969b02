// Device code of shr_ops::decode and shr_ops::decode_backward (one block per map), and of decode's
// pre-filter. Block-wide first-maximum argmax (NaN wins, ties go to the lower index, as
// torch.argmax), then the window softmax moments by a deterministic block reduction. Same
// semantics as the CPU kernels (cpu/decode_kernel.cpp). No ATen: compiled by nvcc, and by g++
// under the emulator (csrc/emu).
//
// The pre-filter computes every filtered value with the CPU kernel's arithmetic, operation for
// operation (each product and sum rounded on its own, mul_rn / add_rn, in the same order), so that
// the CPU and CUDA decoders see the same filtered bits and pick the same argmax, ties included.
#pragma once

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
    const acc_t v = static_cast<acc_t>(h[p]);
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
    peak = static_cast<acc_t>(h[best]);
    double s[3] = {0.0, 0.0, 0.0};
    for (int k = threadIdx.x; k < wh * ww; k += blockDim.x) {
      const int a = k / ww, b = k - a * ww;
      const int i = i0 + a, j = j0 + b;
      const double w = weight(h[i * W + j], t);
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

template <typename in_t, typename acc_t>
__global__ void decode_kernel(const in_t* __restrict__ hm, acc_t* __restrict__ coords, acc_t* __restrict__ scores,
                              int64_t* __restrict__ index, int H, int W, int r, acc_t t) {
  __shared__ acc_t sv[kWarps];
  __shared__ int si[kWarps];
  __shared__ double scratch[kWarps * 3];
  const int64_t m = blockIdx.x;
  const in_t* h = hm + m * static_cast<int64_t>(H) * W;
  const int best = block_argmax<in_t, acc_t>(h, H * W, sv, si);
  const WindowMoments<in_t, acc_t> win(h, H, W, best, r, t, scratch);
  if (threadIdx.x == 0) {
    coords[2 * m] = static_cast<acc_t>(static_cast<double>(win.mj) + win.mx);
    coords[2 * m + 1] = static_cast<acc_t>(static_cast<double>(win.mi) + win.my);
    scores[m] = win.peak;
    index[m] = best;
  }
}

// out: the gradient w.r.t. the maps hm, zero outside each window. A map whose index is not a pixel
// of the map (a direct call with a bad index) gets a zero gradient and sets *bad_index to 1, which
// the launcher turns into an error.
template <typename in_t, typename acc_t>
__global__ void decode_backward_kernel(const acc_t* __restrict__ gc, const acc_t* __restrict__ gs,
                                       const in_t* __restrict__ hm, const int64_t* __restrict__ index,
                                       in_t* __restrict__ out, int* __restrict__ bad_index, int H, int W, int r,
                                       acc_t t) {
  __shared__ double scratch[kWarps * 3];
  const int64_t m = blockIdx.x;
  const int HW = H * W;
  const in_t* h = hm + m * static_cast<int64_t>(HW);
  in_t* o = out + m * static_cast<int64_t>(HW);
  const int64_t best64 = index[m];
  for (int p = threadIdx.x; p < HW; p += blockDim.x) o[p] = in_t(0);
  if (best64 < 0 || best64 >= HW) {  // the same for every thread of the block
    if (threadIdx.x == 0) *bad_index = 1;
    return;
  }
  const int best = static_cast<int>(best64);
  const WindowMoments<in_t, acc_t> win(h, H, W, best, r, t, scratch);  // syncs the zero fill
  const double gx = gc[2 * m], gy = gc[2 * m + 1], g_peak = gs[m];
  const double scale = static_cast<double>(t) / win.sum;
  for (int k = threadIdx.x; k < win.wh * win.ww; k += blockDim.x) {
    const int a = k / win.ww, b = k - a * win.ww;
    const int i = win.i0 + a, j = win.j0 + b;
    const int p = i * W + j;
    const double prob = static_cast<double>(win.weight(h[p], t)) * scale;
    double v = prob * (gx * (static_cast<double>(j - win.mj) - win.mx) + gy * (static_cast<double>(i - win.mi) - win.my));
    if (p == best) v += g_peak;
    o[p] = static_cast<in_t>(v);
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
      return q >= 0 && q < len ? static_cast<acc_t>(x[p + e * step]) : acc_t(0);
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
    y[p] = s;
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
