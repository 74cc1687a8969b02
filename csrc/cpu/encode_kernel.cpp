// CPU kernels of shr_ops::encode and shr_ops::encode_backward.
//
// H[m, i, j] = exp(-((j - x_m)^2 + (i - y_m)^2) / (2 sigma^2)), evaluated separably: W + H
// exponentials per map, then one product per pixel. Optional disc truncation
// (zero where (j - x)^2 + (i - y)^2 > radius^2). Non-finite or invisible landmarks give zero maps.
// The forward flushes denormals: values below the smallest normal number are written as 0.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "../encode.h"
#include "cpu_common.h"

#if defined(__SSE2__)
#include <xmmintrin.h>
#endif

namespace shr_ops {
namespace cpu {
namespace {

// Per-map separable factors of encode along one axis: e_x[j] = exp(-(j - x)^2 / 2s^2), d_x[j] = j - x,
// d2_x[j] = (j - x)^2 (and for y).
template <typename acc_t>
struct EncodeAxis {
  std::vector<acc_t> e, d, d2;
  explicit EncodeAxis(int64_t n) : e(n), d(n), d2(n) {}
  // e by a recurrence from the in-frame pixel nearest c outward, in double: 4 exp calls instead of
  // n (each step multiplies by a ratio <= 1, so nothing overflows; the error stays within a few
  // double ulps, far below acc_t's rounding). The two directions are independent chains, stepped
  // together so their multiplications overlap. d and d2 only `with_distances` (truncation, backward).
  void fill(acc_t c, acc_t neg_inv_2s2, bool with_distances = true) {
    const int64_t n = static_cast<int64_t>(e.size());
    if (with_distances) {
      for (int64_t j = 0; j < n; ++j) {
        const acc_t dj = static_cast<acc_t>(j) - c;
        d[j] = dj;
        d2[j] = dj * dj;
      }
    }
    const double a = static_cast<double>(neg_inv_2s2), cd = static_cast<double>(c);
    const int64_t jc = static_cast<int64_t>(std::min(std::max(std::nearbyint(cd), 0.0), static_cast<double>(n - 1)));
    const double dc = static_cast<double>(jc) - cd, step = std::exp(2 * a);
    const double ec = std::exp(a * dc * dc);
    e[jc] = static_cast<acc_t>(ec);
    double vr = ec, qr = std::exp(a * (2 * dc + 1));  // e[j + 1] / e[j] for j = jc
    double vl = ec, ql = std::exp(a * (1 - 2 * dc));  // e[j - 1] / e[j] for j = jc
    int64_t jr = jc + 1, jl = jc - 1;
    for (; jr < n && jl >= 0; ++jr, --jl, qr *= step, ql *= step) {
      e[jr] = static_cast<acc_t>(vr *= qr);
      e[jl] = static_cast<acc_t>(vl *= ql);
    }
    for (; jr < n; ++jr, qr *= step) e[jr] = static_cast<acc_t>(vr *= qr);
    for (; jl >= 0; --jl, ql *= step) e[jl] = static_cast<acc_t>(vl *= ql);
  }
};

// While alive, the calling thread flushes denormal results to zero (x86 MXCSR FTZ and DAZ):
// the far tail of a map (values below 1.2e-38 in float32, 2.2e-308 in float64) is written as 0
// instead of taking the CPU's slow path for denormal products.
struct FlushDenormals {
#if defined(__SSE2__)
  unsigned int saved;
  FlushDenormals() : saved(_mm_getcsr()) { _mm_setcsr(saved | 0x8040); }
  ~FlushDenormals() { _mm_setcsr(saved); }
#endif
};

// row[j] = e * ex[j] for j < n, in out_t. float32 outputs get an AVX2 clone chosen at load time
// where the CPU has it (32-byte stores; no FMA, so the same bits as the SSE2 build).
template <typename out_t, typename acc_t>
inline void scaled_row(out_t* row, const acc_t* ex, acc_t e, int64_t n) {
  for (int64_t j = 0; j < n; ++j) row[j] = static_cast<out_t>(e * ex[j]);
}
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("avx2", "default"))) void scaled_row_f32(float* __restrict__ row,
                                                                      const float* __restrict__ ex, float e,
                                                                      int64_t n) {
  for (int64_t j = 0; j < n; ++j) row[j] = e * ex[j];
}
template <>
inline void scaled_row<float, float>(float* row, const float* ex, float e, int64_t n) {
  scaled_row_f32(row, ex, e, n);
}
#endif

template <typename out_t, typename acc_t>
void encode_cpu_impl(const acc_t* lm, const bool* vis, out_t* out, int64_t M, int64_t H, int64_t W, acc_t sigma,
                     acc_t r2) {
  const acc_t neg_inv_2s2 = acc_t(-0.5) / (sigma * sigma);
  const int64_t HW = H * W;
  at::parallel_for(0, M, maps_per_chunk(HW), [&](int64_t begin, int64_t end) {
    const FlushDenormals flush;
    EncodeAxis<acc_t> ax(W), ay(H);
    for (int64_t m = begin; m < end; ++m) {
      out_t* o = out + m * HW;
      if (!landmark_valid(lm, vis, m)) {
        std::fill(o, o + HW, out_t(0));
        continue;
      }
      ax.fill(lm[2 * m], neg_inv_2s2, r2 >= 0);
      ay.fill(lm[2 * m + 1], neg_inv_2s2, r2 >= 0);
      const acc_t* ex = ax.e.data();
      const acc_t* dx2 = ax.d2.data();
      for (int64_t i = 0; i < H; ++i) {
        out_t* row = o + i * W;
        const acc_t ei = ay.e[i];
        if (r2 < 0) {
          scaled_row(row, ex, ei, W);
        } else {
          const acc_t dy2 = ay.d2[i];
          for (int64_t j = 0; j < W; ++j) row[j] = static_cast<out_t>(dx2[j] + dy2 <= r2 ? ei * ex[j] : acc_t(0));
        }
      }
    }
  });
}

// gx = sum_j g_j ex_j (j - x), gs = sum_j g_j ex_j over one row (inside the disc when Trunc), in
// kSumLanes partial sums added in a fixed order: a single running sum would be a serial chain of
// additions the compiler may not reorder, so it would not vectorise.
template <bool Trunc, typename grad_t, typename acc_t>
inline void row_sums_lanes(const grad_t* g, const acc_t* ex, const acc_t* dx, const acc_t* dx2, acc_t dy2, acc_t r2,
                           int64_t W, acc_t& gx, acc_t& gs) {
  acc_t lx[kSumLanes] = {}, ls[kSumLanes] = {};
  int64_t j = 0;
  for (; j + kSumLanes <= W; j += kSumLanes) {
    for (int l = 0; l < kSumLanes; ++l) {
      acc_t ge = static_cast<acc_t>(g[j + l]) * ex[j + l];
      if (Trunc) ge = dx2[j + l] + dy2 <= r2 ? ge : acc_t(0);
      lx[l] += ge * dx[j + l];
      ls[l] += ge;
    }
  }
  for (; j < W; ++j) {
    acc_t ge = static_cast<acc_t>(g[j]) * ex[j];
    if (Trunc) ge = dx2[j] + dy2 <= r2 ? ge : acc_t(0);
    lx[0] += ge * dx[j];
    ls[0] += ge;
  }
  gx = 0;
  gs = 0;
  for (int l = 0; l < kSumLanes; ++l) {
    gx += lx[l];
    gs += ls[l];
  }
}

template <typename grad_t, typename acc_t>
inline void row_sums(const grad_t* g, const EncodeAxis<acc_t>& ax, acc_t dy2, acc_t r2, int64_t W, acc_t& gx,
                     acc_t& gs) {
  if (r2 < 0) {
    row_sums_lanes<false>(g, ax.e.data(), ax.d.data(), ax.d2.data(), dy2, r2, W, gx, gs);
  } else {
    row_sums_lanes<true>(g, ax.e.data(), ax.d.data(), ax.d2.data(), dy2, r2, W, gx, gs);
  }
}

// d loss / d (x, y) = sum_ij g_ij h_ij ((j - x), (i - y)) / sigma^2, separably per row.
template <typename grad_t, typename acc_t>
void encode_backward_cpu_impl(const grad_t* g, const acc_t* lm, const bool* vis, acc_t* out, int64_t M, int64_t H,
                              int64_t W, acc_t sigma, acc_t r2) {
  const acc_t inv_s2 = acc_t(1) / (sigma * sigma);
  const acc_t neg_inv_2s2 = acc_t(-0.5) * inv_s2;
  const int64_t HW = H * W;
  at::parallel_for(0, M, maps_per_chunk(HW), [&](int64_t begin, int64_t end) {
    EncodeAxis<acc_t> ax(W), ay(H);
    for (int64_t m = begin; m < end; ++m) {
      if (!landmark_valid(lm, vis, m)) {
        out[2 * m] = acc_t(0);
        out[2 * m + 1] = acc_t(0);
        continue;
      }
      ax.fill(lm[2 * m], neg_inv_2s2);
      ay.fill(lm[2 * m + 1], neg_inv_2s2);
      const grad_t* gm = g + m * HW;
      acc_t sx = 0, sy = 0;
      for (int64_t i = 0; i < H; ++i) {
        acc_t row_gx, row_g;  // sum_j g ex (j - x), sum_j g ex
        row_sums(gm + i * W, ax, ay.d2[i], r2, W, row_gx, row_g);
        sx += ay.e[i] * row_gx;
        sy += ay.e[i] * ay.d[i] * row_g;
      }
      out[2 * m] = sx * inv_s2;
      out[2 * m + 1] = sy * inv_s2;
    }
  });
}

// Writes the maps of a prepared encode / encode_out into its `out`.
void encode_cpu_into(const EncodeLaunch& p, double sigma) {
  if (p.empty()) return;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, p.out.scalar_type(), "shr_ops_encode_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    encode_cpu_impl<scalar_t, acc_t>(p.lm.const_data_ptr<acc_t>(), p.visible_data(),
                                     p.out.mutable_data_ptr<scalar_t>(), p.maps, p.height, p.width,
                                     static_cast<acc_t>(sigma), static_cast<acc_t>(p.r2));
  });
}

at::Tensor encode_cpu(const at::Tensor& landmarks, const c10::optional<at::Tensor>& visible, int64_t height,
                      int64_t width, double sigma, c10::optional<double> radius, at::ScalarType dtype) {
  const EncodeLaunch p = prepare_encode(landmarks, visible, height, width, sigma, radius, dtype, at::kCPU);
  encode_cpu_into(p, sigma);
  return p.out;
}

void encode_out_cpu(const at::Tensor& landmarks, const c10::optional<at::Tensor>& visible, double sigma,
                    c10::optional<double> radius, at::Tensor out) {
  encode_cpu_into(prepare_encode_out(landmarks, visible, sigma, radius, out, at::kCPU), sigma);
}

at::Tensor encode_backward_cpu(const at::Tensor& grad, const at::Tensor& landmarks,
                               const c10::optional<at::Tensor>& visible, double sigma, c10::optional<double> radius) {
  const EncodeBackwardLaunch p = prepare_encode_backward(grad, landmarks, visible, sigma, radius, at::kCPU);
  if (p.empty()) return p.out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, p.grad.scalar_type(), "shr_ops_encode_backward_cpu", [&] {
    using grad_t = scalar_t;
    if (p.lm.scalar_type() == at::kDouble) {
      encode_backward_cpu_impl<grad_t, double>(p.grad.const_data_ptr<grad_t>(), p.lm.const_data_ptr<double>(),
                                               p.visible_data(), p.out.mutable_data_ptr<double>(), p.maps, p.height,
                                               p.width, sigma, p.r2);
    } else {
      encode_backward_cpu_impl<grad_t, float>(p.grad.const_data_ptr<grad_t>(), p.lm.const_data_ptr<float>(),
                                              p.visible_data(), p.out.mutable_data_ptr<float>(), p.maps, p.height,
                                              p.width, static_cast<float>(sigma), static_cast<float>(p.r2));
    }
  });
  return p.out;
}

}  // namespace
}  // namespace cpu
}  // namespace shr_ops

TORCH_LIBRARY_IMPL(shr_ops, CPU, m) {
  m.impl("encode", &shr_ops::cpu::encode_cpu);
  m.impl("encode_out", &shr_ops::cpu::encode_out_cpu);
  m.impl("encode_backward", &shr_ops::cpu::encode_backward_cpu);
}
