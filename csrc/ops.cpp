// shr_ops: operator schemas (TORCH_LIBRARY) and the Python module stub.
//
// Kernels live in cpu/<op>_kernel.cpp and cuda/<op>_kernel.cu and register themselves with
// TORCH_LIBRARY_IMPL; fake kernels and autograd formulas are registered from Python
// (shr_ops/_fake.py, shr_ops/_autograd.py). Shapes: "..." is any number of leading dims.
#include <torch/library.h>

#include <string>

#if __has_include(<torch/headeronly/version.h>)
#include <torch/headeronly/version.h>
#else
#include <torch/version.h>
#endif

#ifdef SHR_PYTHON_MODULE
#include <Python.h>
#endif

#if defined(SHR_WITH_CUDA)
#include <cuda.h>
#endif

namespace shr_ops {

#if defined(SHR_WITH_CUDA)
const char* cuda_arch_list();  // csrc/cuda/cuda_build_info.cu
#endif

// JSON describing what this binary holds (read by shr_ops.build_info()).
std::string build_info() {
  std::string info = "{";
  info += "\"torch\": \"" + std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
          std::to_string(TORCH_VERSION_PATCH) + "\", ";
#if defined(SHR_WITH_CUDA)
  info += "\"cuda\": true, ";
  info += "\"cuda_version\": \"" + std::to_string(CUDA_VERSION / 1000) + "." + std::to_string((CUDA_VERSION % 1000) / 10) +
          "\", ";
  info += "\"cuda_archs\": \"" + std::string(cuda_arch_list()) + "\", ";
#else
  info += "\"cuda\": false, \"cuda_version\": null, \"cuda_archs\": null, ";
#endif
#if defined(_OPENMP)
  info += "\"openmp\": true, ";
#else
  info += "\"openmp\": false, ";
#endif
#if defined(__clang__)
  info += "\"compiler\": \"clang " __clang_version__ "\"";
#elif defined(__GNUC__)
  info += "\"compiler\": \"gcc " __VERSION__ "\"";
#else
  info += "\"compiler\": \"unknown\"";
#endif
  info += "}";
  return info;
}

}  // namespace shr_ops

TORCH_LIBRARY(shr_ops, m) {
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
  m.def(
      "decode_backward(Tensor grad_coords, Tensor grad_scores, Tensor heatmaps, Tensor index, int window, "
      "float temperature, float? blur=None) -> Tensor");
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
  m.def("build_info() -> str", &shr_ops::build_info);
}

#ifdef SHR_PYTHON_MODULE
// An empty module: importing shr_ops._C loads this library, whose static initialisers register the ops.
extern "C" {
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {
      PyModuleDef_HEAD_INIT, "_C", "shr_ops kernels (registered as torch.ops.shr_ops.*)", -1, nullptr,
  };
  return PyModule_Create(&module_def);
}
}
#endif
