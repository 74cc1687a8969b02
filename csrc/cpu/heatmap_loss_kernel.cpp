// CPU kernels of shr_ops::heatmap_loss and shr_ops::heatmap_loss_backward (formulas: ../heatmap_loss.h).
//
// Per map: the separable factors e_x[j], e_y[i] of the SHR target (W + H exponentials), then one
// pass over the map's pixels; the target is never stored. Each map's loss is summed row by row
// (a row in the compute dtype over fixed lanes, rows into a float64 per-map partial); the partials are
// summed in map order in float64: the result does not depend on the thread count.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>
#include <vector>

#include "../heatmap_loss.h"

namespace shr_ops {
namespace {

constexpr int64_t kGrainElements = 32768;  // pixels per parallel_for chunk, at least
constexpr int kLanes = 8;                  // independent partial sums per row (vectorisable, fixed order)

// Per-map factors along one axis: e[j] = exp(-(j - c)^2 / 2s^2), d[j] = j - c; all zero for a
// missing landmark (the target is then zero, and so is the landmark's gradient).
template <typename acc_t>
struct Axis {
  std::vector<acc_t> e, d;
  explicit Axis(int64_t n) : e(n), d(n) {}
  void fill(acc_t c, acc_t neg_inv_2s2, bool valid) {
    const int64_t n = static_cast<int64_t>(e.size());
    for (int64_t j = 0; j < n; ++j) {
      const acc_t dj = valid ? static_cast<acc_t>(j) - c : acc_t(0);
      d[j] = dj;
      e[j] = valid ? shr_exp(dj * dj * neg_inv_2s2) : acc_t(0);
    }
  }
};

template <typename acc_t>
inline bool landmark_valid(const acc_t* lm, const bool* vis, int64_t m) {
  return std::isfinite(lm[2 * m]) && std::isfinite(lm[2 * m + 1]) && (vis == nullptr || vis[m]);
}

// sum_j w (p_j - t_j)^2 over one row, t_j = ty * ex[j] (ty = scale * e_y[i]).
template <typename pred_t, typename acc_t>
inline acc_t row_loss(const pred_t* p, const acc_t* ex, acc_t ty, const LossParams<acc_t>& k, int64_t W) {
  acc_t lane[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= W; j += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
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
  for (int l = 0; l < kLanes; ++l) s += lane[l];
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
  acc_t lq[kLanes] = {}, lqx[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= W; j += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      lq[l] += q[j + l];
      lqx[l] += q[j + l] * dx[j + l];
    }
  }
  for (; j < W; ++j) {
    lq[0] += q[j];
    lqx[0] += q[j] * dx[j];
  }
  acc_t sq = 0, sqx = 0;
  for (int l = 0; l < kLanes; ++l) {
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
  const int64_t grain = std::max<int64_t>(1, kGrainElements / HW);
  at::parallel_for(0, M, grain, [&](int64_t begin, int64_t end) {
    Axis<acc_t> ax(W), ay(H);
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
  const int64_t grain = std::max<int64_t>(1, kGrainElements / HW);
  at::parallel_for(0, M, grain, [&](int64_t begin, int64_t end) {
    Axis<acc_t> ax(W), ay(H);
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
  const char* op = "shr_ops.heatmap_loss";
  check_heatmap_loss_args(pred, landmarks, visible, sigma, foreground_weight, threshold, scale, op);
  TORCH_CHECK(pred.device().is_cpu(), op, ": CPU kernel got pred on ", pred.device());
  at::Tensor out = at::empty({}, pred.options().dtype(landmarks.scalar_type()));
  const int64_t H = pred.size(-2), W = pred.size(-1);
  const int64_t M = pred.numel() / (H * W);
  const at::Tensor p = pred.contiguous();
  const at::Tensor lm = landmarks.contiguous();
  const at::Tensor vis = visible.has_value() ? visible->contiguous() : at::Tensor();
  const bool* vis_ptr = vis.defined() ? vis.const_data_ptr<bool>() : nullptr;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, p.scalar_type(), "shr_ops_heatmap_loss_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const double total =
        M == 0 ? 0.0
               : heatmap_loss_cpu_impl<scalar_t, acc_t>(p.const_data_ptr<scalar_t>(), lm.const_data_ptr<acc_t>(),
                                                        vis_ptr, M, H, W,
                                                        loss_params<acc_t>(sigma, foreground_weight, threshold, scale));
    out.mutable_data_ptr<acc_t>()[0] = static_cast<acc_t>(M == 0 ? 0.0 : total / static_cast<double>(M * H * W));
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> heatmap_loss_backward_cpu(const at::Tensor& grad, const at::Tensor& pred,
                                                             const at::Tensor& landmarks,
                                                             const c10::optional<at::Tensor>& visible, double sigma,
                                                             double foreground_weight, double threshold,
                                                             double scale) {
  const char* op = "shr_ops.heatmap_loss_backward";
  check_heatmap_loss_args(pred, landmarks, visible, sigma, foreground_weight, threshold, scale, op);
  check_heatmap_loss_grad(grad, pred, op);
  TORCH_CHECK(pred.device().is_cpu(), op, ": CPU kernel got pred on ", pred.device());
  at::Tensor grad_pred = at::empty(pred.sizes(), pred.options());
  at::Tensor grad_lm = at::empty(landmarks.sizes(), landmarks.options());
  const int64_t H = pred.size(-2), W = pred.size(-1);
  const int64_t M = pred.numel() / (H * W);
  if (M == 0) return {grad_pred, grad_lm};
  const at::Tensor p = pred.contiguous();
  const at::Tensor lm = landmarks.contiguous();
  const at::Tensor vis = visible.has_value() ? visible->contiguous() : at::Tensor();
  const bool* vis_ptr = vis.defined() ? vis.const_data_ptr<bool>() : nullptr;
  const double c = 2.0 * grad.item<double>() / static_cast<double>(M * H * W);  // d loss / d pred = c w (pred - t)
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, p.scalar_type(), "shr_ops_heatmap_loss_backward_cpu",
                                  [&] {
                                    using acc_t = at::opmath_type<scalar_t>;
                                    heatmap_loss_backward_cpu_impl<scalar_t, acc_t>(
                                        p.const_data_ptr<scalar_t>(), lm.const_data_ptr<acc_t>(), vis_ptr,
                                        grad_pred.mutable_data_ptr<scalar_t>(), grad_lm.mutable_data_ptr<acc_t>(), M,
                                        H, W, static_cast<acc_t>(c),
                                        loss_params<acc_t>(sigma, foreground_weight, threshold, scale));
                                  });
  return {grad_pred, grad_lm};
}

}  // namespace
}  // namespace shr_ops

TORCH_LIBRARY_IMPL(shr_ops, CPU, m) {
  m.impl("heatmap_loss", &shr_ops::heatmap_loss_cpu);
  m.impl("heatmap_loss_backward", &shr_ops::heatmap_loss_backward_cpu);
}
