// Device code of shr_ops::encode and shr_ops::encode_backward (one block per map). The separable
// factors exp(-(j - x)^2 / 2s^2) and exp(-(i - y)^2 / 2s^2) are computed once per map into shared
// memory; each pixel is then one product. Maps move in 16-byte Packs where they are aligned to it
// (packable), else one value at a time. Same semantics as the CPU kernels (cpu/encode_kernel.cpp):
// the truncation test rounds as the CPU does (squared_distance), and the forward flushes results
// below the smallest normal number of the compute dtype to zero, as the CPU's flush-to-zero mode
// does. No ATen: compiled by nvcc, and by g++ under the emulator (csrc/emu).
#pragma once

#include "cuda_device.cuh"

namespace shr_ops {
namespace cuda {

template <typename out_t, typename acc_t>
__global__ void encode_kernel(const acc_t* __restrict__ lm, const bool* __restrict__ vis, out_t* __restrict__ out,
                              int H, int W, acc_t neg_inv_2s2, acc_t r2) {
  SHR_DYNAMIC_SMEM(smem_raw);
  const AxesView<acc_t> a(smem_raw, H, W);
  const int64_t m = blockIdx.x;
  const int HW = H * W;
  out_t* o = out + m * static_cast<int64_t>(HW);
  const bool valid = fill_axes(lm, vis, m, H, W, neg_inv_2s2, a);  // a missing landmark: a zero map
  store_map(out, o, HW, W, [&](int, int i, int j) {
    acc_t v = acc_t(0);
    if (valid) {
      v = a.ey[i] * a.ex[j];
      if (v < smallest_normal<acc_t>()) v = acc_t(0);  // flush denormals (v >= 0)
      if (r2 >= 0 && squared_distance(a.dx[j], a.dy[i]) > r2) v = acc_t(0);
    }
    return v;
  });
}

template <typename grad_t, typename acc_t>
__global__ void encode_backward_kernel(const grad_t* __restrict__ g, const acc_t* __restrict__ lm,
                                       const bool* __restrict__ vis, acc_t* __restrict__ out, int H, int W,
                                       acc_t neg_inv_2s2, acc_t inv_s2, acc_t r2) {
  SHR_DYNAMIC_SMEM(smem_raw);
  const AxesView<acc_t> a(smem_raw, H, W);
  const int64_t m = blockIdx.x;
  const int HW = H * W;
  const grad_t* gm = g + m * static_cast<int64_t>(HW);
  const bool valid = fill_axes(lm, vis, m, H, W, neg_inv_2s2, a);
  acc_t s[2] = {acc_t(0), acc_t(0)};
  if (valid) {
    load_map(g, gm, HW, W, [&](grad_t gv, int, int i, int j) {
      if (r2 >= 0 && squared_distance(a.dx[j], a.dy[i]) > r2) return;
      const acc_t gh = static_cast<acc_t>(gv) * a.ey[i] * a.ex[j];
      s[0] += gh * a.dx[j];
      s[1] += gh * a.dy[i];
    });
  }
  block_sum<acc_t, 2>(s, reinterpret_cast<acc_t*>(a.scratch));
  if (threadIdx.x == 0) {
    st(out + 2 * m, s[0] * inv_s2);
    st(out + 2 * m + 1, s[1] * inv_s2);
  }
}

// The launch of either kernel for M maps of H x W (the caller checks the limits): one block per
// map, the factors and (backward) the reduction scratch in dynamic shared memory.
template <typename acc_t>
inline LaunchShape encode_launch_shape(int64_t M, int64_t H, int64_t W) {
  return {static_cast<unsigned int>(M), kThreads, AxesView<acc_t>::bytes(H, W, 2 * kWarps * sizeof(acc_t))};
}

}  // namespace cuda
}  // namespace shr_ops
