// Every op's schema, defined once for the library shr_ops (ops.cpp) and for the emulated-CUDA test
// library shr_ops_emu (emu/emu_ops.cpp). Shapes: "..." is any number of leading dims.
#pragma once

#include <torch/library.h>

namespace shr_ops {

inline void define_op_schemas(torch::Library& m) {
  // landmarks: Tensor[..., 2] (x, y) in heatmap pixels; visible: Tensor[...] bool.
  // Returns Tensor[..., height, width] of `dtype` (computed in float64 for float64, else float32).
  m.def(
      "encode(Tensor landmarks, Tensor? visible, int height, int width, float sigma, float? radius, "
      "ScalarType dtype) -> Tensor");
  // grad: Tensor[..., H, W]; returns d loss / d landmarks, Tensor[..., 2] of landmarks' dtype.
  // The same maps written into `out` (Tensor[..., H, W], contiguous, any float dtype), which
  // gives H, W and the dtype: lets a caller reuse one buffer (not differentiable).
  m.def("encode_out(Tensor landmarks, Tensor? visible, float sigma, float? radius, Tensor(a!) out) -> ()");
  m.def("encode_backward(Tensor grad, Tensor landmarks, Tensor? visible, float sigma, float? radius) -> Tensor");
  // heatmaps: Tensor[..., H, W]. Returns (coords Tensor[..., 2], scores Tensor[...], index Tensor[...] int64);
  // coords and scores are float64 for float64 heatmaps, else float32; index is the flat argmax.
  // blur: std of the Gaussian pre-filter (None: none); the argmax, window and scores are then
  // those of the filtered map, which the kernels compute only where they need it.
  m.def("decode(Tensor heatmaps, int window, float temperature, float? blur=None) -> (Tensor, Tensor, Tensor)");
  // Returns d loss / d heatmaps, Tensor[..., H, W] of heatmaps' dtype, zero outside each window.
  // index: decode's (its range is an error where it is checked). check_index=False is autograd's
  // call (the index is decode's own output, saved and version-checked): the CUDA launcher then skips
  // the range check, whose flag the host must wait for, and a map with a bad index keeps a zero
  // gradient there. The CPU kernel checks either way (it costs no wait).
  m.def(
      "decode_backward(Tensor grad_coords, Tensor grad_scores, Tensor heatmaps, Tensor index, int window, "
      "float temperature, float? blur=None, bool check_index=True) -> Tensor");
  // pred: Tensor[..., K, H, W]; landmarks: Tensor[..., K, 2] (float64 for float64 pred, else float32).
  // Returns the weighted MSE of pred against SHR targets rendered on the fly (formula: heatmap_loss.h),
  // a 0-dim tensor of landmarks' dtype.
  m.def(
      "heatmap_loss(Tensor pred, Tensor landmarks, Tensor? visible, float sigma, float foreground_weight, "
      "float threshold, float scale) -> Tensor");
  // grad: 0-dim, the loss' dtype. Returns (d loss / d pred of pred's dtype, d loss / d landmarks).
  m.def(
      "heatmap_loss_backward(Tensor grad, Tensor pred, Tensor landmarks, Tensor? visible, float sigma, "
      "float foreground_weight, float threshold, float scale) -> (Tensor, Tensor)");
}

}  // namespace shr_ops
