// heatmap_loss's scalars (formulas: heatmap_loss.h). No ATen: the CUDA device code includes it.
#pragma once

namespace shr_ops {

// The op's scalars in the compute dtype: exponent factor -1/(2 sigma^2), 1/sigma^2, scale,
// absolute foreground threshold (threshold * scale) and foreground weight.
template <typename acc_t>
struct LossParams {
  acc_t neg_inv_2s2, inv_s2, scale, thr, fw;
};

template <typename acc_t>
LossParams<acc_t> loss_params(double sigma, double foreground_weight, double threshold, double scale) {
  return {static_cast<acc_t>(-0.5 / (sigma * sigma)), static_cast<acc_t>(1.0 / (sigma * sigma)),
          static_cast<acc_t>(scale), static_cast<acc_t>(threshold * scale), static_cast<acc_t>(foreground_weight)};
}

}  // namespace shr_ops
