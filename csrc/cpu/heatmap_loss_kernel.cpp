// CPU kernels of shr_ops::heatmap_loss and shr_ops::heatmap_loss_backward (formulas: ../heatmap_loss.h).
//
// Per map: the separable factors e_x[j], e_y[i] of the SHR target (W + H exponentials), then one
// pass over the map's pixels; the target is never stored. Each map's loss is summed row by row
// (a row in the compute dtype over fixed lanes, rows into a float64 per-map partial); the partials are
// summed in map order in float64: the result does not depend on the thread count.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>
#include <vector>

#include "../heatmap_loss.h"
#include "cpu_common.h"

namespace shr_ops {
namespace cpu {
namespace {

// Per-map factors of the loss' target along one axis: e[j] = exp(-(j - c)^2 / 2s^2), d[j] = j - c;
// all zero for a missing landmark (the target is then zero, and so is the landmark's gradient).
template <typename acc_t>
struct LossAxis {
  std::vector<acc_t> e, d;
  explicit LossAxis(int64_t n) : e(n), d(n) {}
  void fill(acc_t c, acc_t neg_inv_2s2, bool valid) {
    const int64_t n = static_cast<int64_t>(e.size());
    for (int64_t j = 0; j < n; ++j) {
      const acc_t dj = valid ? static_cast<acc_t>(j) - c : acc_t(0);
      d[j] = dj;
      e[j] = valid ? shr_exp(dj * dj * neg_inv_2s2) : acc_t(0);
    }
  }
};

// sum_j w (p_j - t_j)^2 over one row, t_j = ty * ex[j] (ty = scale * e_y[i]).
template <typename pred_t, typename acc_t>
inline acc_t row_loss(const pred_t* p, const acc_t* ex, acc_t ty, const LossParams<acc_t>& k, int64_t W) {
  acc_t lane[kSumLanes] = {};
  int64_t j = 0;
  for (; j + kSumLanes <= W; j += kSumLanes) {
    for (int l = 0; l < kSumLanes; ++l) {
      const acc_t t = ty * ex[j + l];
      const acc_t r = static_cast<acc_t>(p[j + l]) - t;
      lane[l] += (t > k.thr ? k.fw : acc_t(1)) * r * r;
    }
  }
  for (; j < W; ++j) {
    const acc_t t = ty * ex[j];
    const acc_t r = static_cast<acc_t>(p[j]) - t;
    lane[0] += (t > k.thr ? k.fw : acc_t(1)) * r * r;
  }
  acc_t s = 0;
  for (int l = 0; l < kSumLanes; ++l) s += lane[l];
  return s;
}

// One row of the backward pass: gp_j = c w (p_j - t_j); returns (sum_j q_j, sum_j q_j dx_j) with
// q_j = w (p_j - t_j) t_j, the row's share of the landmark gradient. An element-wise pass (q into
// the row buffer `q`), then the two sums over fixed lanes.
template <typename pred_t, typename acc_t>
inline std::pair<acc_t, acc_t> row_backward(const pred_t* __restrict__ p, pred_t* __restrict__ gp,
                                            const acc_t* __restrict__ ex, const acc_t* __restrict__ dx,
                                            acc_t* __restrict__ q, acc_t ty, acc_t c, const LossParams<acc_t>& k,
                                            int64_t W) {
  const acc_t thr = k.thr, fw = k.fw;
  for (int64_t j = 0; j < W; ++j) {
    const acc_t t = ty * ex[j];
    const acc_t wr = (t > thr ? fw : acc_t(1)) * (static_cast<acc_t>(p[j]) - t);
    gp[j] = static_cast<pred_t>(c * wr);
    q[j] = wr * t;
  }
  acc_t lq[kSumLanes] = {}, lqx[kSumLanes] = {};
  int64_t j = 0;
  for (; j + kSumLanes <= W; j += kSumLanes) {
    for (int l = 0; l < kSumLanes; ++l) {
      lq[l] += q[j + l];
      lqx[l] += q[j + l] * dx[j + l];
    }
  }
  for (; j < W; ++j) {
    lq[0] += q[j];
    lqx[0] += q[j] * dx[j];
  }
  acc_t sq = 0, sqx = 0;
  for (int l = 0; l < kSumLanes; ++l) {
    sq += lq[l];
    sqx += lqx[l];
  }
  return {sq, sqx};
}

template <typename pred_t, typename acc_t>
double heatmap_loss_cpu_impl(const pred_t* pred, const acc_t* lm, const bool* vis, int64_t M, int64_t H, int64_t W,
                             const LossParams<acc_t>& k) {
  const int64_t HW = H * W;
  std::vector<double> partial(M);
  at::parallel_for(0, M, maps_per_chunk(HW), [&](int64_t begin, int64_t end) {
    LossAxis<acc_t> ax(W), ay(H);
    for (int64_t m = begin; m < end; ++m) {
      const bool valid = landmark_valid(lm, vis, m);
      ax.fill(lm[2 * m], k.neg_inv_2s2, valid);
      ay.fill(lm[2 * m + 1], k.neg_inv_2s2, valid);
      const pred_t* pm = pred + m * HW;
      double s = 0;
      for (int64_t i = 0; i < H; ++i) s += row_loss(pm + i * W, ax.e.data(), k.scale * ay.e[i], k, W);
      partial[m] = s;
    }
  });
  double total = 0;
  for (int64_t m = 0; m < M; ++m) total += partial[m];
  return total;
}

template <typename pred_t, typename acc_t>
void heatmap_loss_backward_cpu_impl(const pred_t* pred, const acc_t* lm, const bool* vis, pred_t* grad_pred,
                                    acc_t* grad_lm, int64_t M, int64_t H, int64_t W, acc_t c,
                                    const LossParams<acc_t>& k) {
  const int64_t HW = H * W;
  at::parallel_for(0, M, maps_per_chunk(HW), [&](int64_t begin, int64_t end) {
    LossAxis<acc_t> ax(W), ay(H);
    std::vector<acc_t> q(W);
    for (int64_t m = begin; m < end; ++m) {
      const bool valid = landmark_valid(lm, vis, m);
      ax.fill(lm[2 * m], k.neg_inv_2s2, valid);
      ay.fill(lm[2 * m + 1], k.neg_inv_2s2, valid);
      const pred_t* pm = pred + m * HW;
      pred_t* gm = grad_pred + m * HW;
      double sx = 0, sy = 0;
      for (int64_t i = 0; i < H; ++i) {
        const auto [sq, sqx] =
            row_backward(pm + i * W, gm + i * W, ax.e.data(), ax.d.data(), q.data(), k.scale * ay.e[i], c, k, W);
        sx += sqx;
        sy += static_cast<double>(ay.d[i]) * sq;
      }
      grad_lm[2 * m] = static_cast<acc_t>(-c * k.inv_s2 * sx);
      grad_lm[2 * m + 1] = static_cast<acc_t>(-c * k.inv_s2 * sy);
    }
  });
}

at::Tensor heatmap_loss_cpu(const at::Tensor& pred, const at::Tensor& landmarks,
                            const c10::optional<at::Tensor>& visible, double sigma, double foreground_weight,
                            double threshold, double scale) {
  const HeatmapLossLaunch p =
      prepare_heatmap_loss(pred, landmarks, visible, sigma, foreground_weight, threshold, scale, at::kCPU);
  if (p.empty()) return p.loss;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, p.pred.scalar_type(), "shr_ops_heatmap_loss_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const double total = heatmap_loss_cpu_impl<scalar_t, acc_t>(
        p.pred.const_data_ptr<scalar_t>(), p.lm.const_data_ptr<acc_t>(), p.visible_data(), p.maps, p.height, p.width,
        loss_params<acc_t>(sigma, foreground_weight, threshold, scale));
    p.loss.mutable_data_ptr<acc_t>()[0] = static_cast<acc_t>(total / p.count());
  });
  return p.loss;
}

std::tuple<at::Tensor, at::Tensor> heatmap_loss_backward_cpu(const at::Tensor& grad, const at::Tensor& pred,
                                                             const at::Tensor& landmarks,
                                                             const c10::optional<at::Tensor>& visible, double sigma,
                                                             double foreground_weight, double threshold,
                                                             double scale) {
  const HeatmapLossBackwardLaunch p = prepare_heatmap_loss_backward(grad, pred, landmarks, visible, sigma,
                                                                    foreground_weight, threshold, scale, at::kCPU);
  if (p.empty()) return {p.grad_pred, p.grad_lm};
  const double c = 2.0 * p.grad.item<double>() / p.count();  // d loss / d pred = c w (pred - t)
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, p.pred.scalar_type(), "shr_ops_heatmap_loss_backward_cpu", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        heatmap_loss_backward_cpu_impl<scalar_t, acc_t>(
            p.pred.const_data_ptr<scalar_t>(), p.lm.const_data_ptr<acc_t>(), p.visible_data(),
            p.grad_pred.mutable_data_ptr<scalar_t>(), p.grad_lm.mutable_data_ptr<acc_t>(), p.maps, p.height, p.width,
            static_cast<acc_t>(c), loss_params<acc_t>(sigma, foreground_weight, threshold, scale));
      });
  return {p.grad_pred, p.grad_lm};
}

}  // namespace
}  // namespace cpu
}  // namespace shr_ops

TORCH_LIBRARY_IMPL(shr_ops, CPU, m) {
  m.impl("heatmap_loss", &shr_ops::cpu::heatmap_loss_cpu);
  m.impl("heatmap_loss_backward", &shr_ops::cpu::heatmap_loss_backward_cpu);
}
