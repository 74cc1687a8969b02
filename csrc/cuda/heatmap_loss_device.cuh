// Device code of shr_ops::heatmap_loss and shr_ops::heatmap_loss_backward (formulas:
// ../heatmap_loss.h). Same semantics and formulas as the CPU kernels. One block per map: the
// separable factors of the SHR target go to shared memory, each thread takes a strided share of the
// pixels (in 16-byte Packs where the maps are aligned to it), and a block reduction (fixed order)
// gives the map's float64 partial. The forward is one launch: the block that finishes last (a
// completion count) sums the partials in a fixed order. No
// floating-point atomics: the result is deterministic, whatever order the blocks run in. No ATen:
// compiled by nvcc, and by g++ under the emulator (csrc/emu).
#pragma once

#include "../heatmap_loss_params.h"
#include "cuda_device.cuh"

namespace shr_ops {
namespace cuda {

// The SHR target at (i, j) from the map's factors.
template <typename acc_t>
__device__ __forceinline__ acc_t loss_target(const AxesView<acc_t>& a, const LossParams<acc_t>& k, int i, int j) {
  return (k.scale * a.ey[i]) * a.ex[j];
}

// The backward over map m in groups of N: writes grad_pred = c w (pred - t) (one Pack load and
// store each) and adds the thread's share of sum w (pred - t) t (j - x, i - y) into (sx, sy).
template <int N, typename pred_t, typename acc_t>
__device__ inline void loss_backward_pixels(const pred_t* pm, pred_t* gm, int HW, int W, const AxesView<acc_t>& a,
                                            const LossParams<acc_t>& k, acc_t c, acc_t& sx, acc_t& sy) {
  for_each_group<N>(HW, W, [&](int p, const int (&i)[N], const int (&j)[N]) {
    const Pack<pred_t, N> pk = ld_pack<N>(pm + p);
    Pack<pred_t, N> out;
#pragma unroll
    for (int e = 0; e < N; ++e) {
      const acc_t t = loss_target(a, k, i[e], j[e]);
      const acc_t wr = (t > k.thr ? k.fw : acc_t(1)) * (static_cast<acc_t>(pk.v[e]) - t);
      out.v[e] = static_cast<pred_t>(c * wr);
      const acc_t u = wr * t;
      sx += u * a.dx[j[e]];
      sy += u * a.dy[i[e]];
    }
    st_pack(gm + p, out);
  });
}

// out = sum_m partial[m] / n, in one launch of one block per map. Block m writes its map's
// partial[m] = sum_ij w (pred - t)^2, then counts itself done on `done` (atomicInc with the limit
// gridDim.x - 1, which wraps to 0: the count is back at 0 after every launch, for the next one on
// this stream). The block that sees the count at gridDim.x - 1 is the last: every other partial is
// written and fenced, and it sums them in a fixed order (thread t the maps t, t + blockDim.x, ...,
// then block_sum), the order the two-launch version's sum kernel had.
template <typename pred_t, typename acc_t>
__global__ void heatmap_loss_kernel(const pred_t* __restrict__ pred, const acc_t* __restrict__ lm,
                                    const bool* __restrict__ vis, double* __restrict__ partial,
                                    unsigned int* __restrict__ done, acc_t* __restrict__ out, int H, int W, double n,
                                    LossParams<acc_t> k) {
  SHR_DYNAMIC_SMEM(smem_raw);
  const AxesView<acc_t> a(smem_raw, H, W);
  double* scratch = reinterpret_cast<double*>(a.scratch);  // 2 * kWarps doubles: block_sum's, then the flag
  int* last = reinterpret_cast<int*>(scratch + kWarps);
  const int64_t m = blockIdx.x;
  const int HW = H * W;
  const pred_t* pm = pred + m * static_cast<int64_t>(HW);
  fill_axes(lm, vis, m, H, W, k.neg_inv_2s2, a, true);  // a missing landmark's target is 0: pred - 0
  acc_t s = 0;
  load_map(pred, pm, HW, W, [&](pred_t pv, int, int i, int j) {
    const acc_t t = loss_target(a, k, i, j);
    const acc_t r = static_cast<acc_t>(pv) - t;
    s += (t > k.thr ? k.fw : acc_t(1)) * r * r;
  });
  double v[1] = {static_cast<double>(s)};
  block_sum<double, 1>(v, scratch);
  if (threadIdx.x == 0) {
    st(partial + m, v[0]);
    __threadfence();  // the partial is visible to every block before the count says so
    *last = atomicInc(done, gridDim.x - 1) == gridDim.x - 1;
  }
  __syncthreads();
  if (!*last) return;  // the same in every thread of the block
  __threadfence();
  double total[1] = {0.0};
  for (int64_t i = threadIdx.x; i < gridDim.x; i += blockDim.x) total[0] += ld_coherent(partial + i);
  block_sum<double, 1>(total, scratch);
  if (threadIdx.x == 0) st(out, total[0] / n);
}

// grad_pred = c w (pred - t), c = 2 grad / n; grad_lm[m] = -c / sigma^2 sum_ij w (pred - t) t (j - x, i - y).
template <typename pred_t, typename acc_t>
__global__ void heatmap_loss_backward_kernel(const acc_t* __restrict__ grad, const pred_t* __restrict__ pred,
                                             const acc_t* __restrict__ lm, const bool* __restrict__ vis,
                                             pred_t* __restrict__ grad_pred, acc_t* __restrict__ grad_lm, int H,
                                             int W, double n, LossParams<acc_t> k) {
  SHR_DYNAMIC_SMEM(smem_raw);
  const AxesView<acc_t> a(smem_raw, H, W);
  const int64_t m = blockIdx.x;
  const int HW = H * W;
  const int64_t offset = m * static_cast<int64_t>(HW);
  fill_axes(lm, vis, m, H, W, k.neg_inv_2s2, a, true);  // a missing landmark's target is 0: pred - 0
  const acc_t c = static_cast<acc_t>(2.0 * static_cast<double>(ld(grad)) / n);
  acc_t sx = 0, sy = 0;
  if (packable(pred, HW) && packable(grad_pred, HW))
    loss_backward_pixels<kPack<pred_t>>(pred + offset, grad_pred + offset, HW, W, a, k, c, sx, sy);
  else
    loss_backward_pixels<1>(pred + offset, grad_pred + offset, HW, W, a, k, c, sx, sy);
  double v[2] = {static_cast<double>(sx), static_cast<double>(sy)};
  block_sum<double, 2>(v, reinterpret_cast<double*>(a.scratch));
  if (threadIdx.x == 0) {
    st(grad_lm + 2 * m, -c * k.inv_s2 * v[0]);
    st(grad_lm + 2 * m + 1, -c * k.inv_s2 * v[1]);
  }
}

// The per-map kernels' launch for M maps of H x W: the factors and 2 * kWarps doubles of scratch.
template <typename acc_t>
inline LaunchShape loss_launch_shape(int64_t M, int64_t H, int64_t W) {
  return {static_cast<unsigned int>(M), kThreads, AxesView<acc_t>::bytes(H, W, 2 * kWarps * sizeof(double))};
}

}  // namespace cuda
}  // namespace shr_ops
