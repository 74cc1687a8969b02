// shr_ops: operator schemas (TORCH_LIBRARY) and the Python module stub.
//
// Kernels live in cpu/<op>_kernel.cpp and cuda/<op>_kernel.cu and register themselves with
// TORCH_LIBRARY_IMPL; fake kernels and autograd formulas are registered from Python
// (shr_ops/_fake.py, shr_ops/_autograd.py). Shapes: "..." is any number of leading dims.
#include <torch/library.h>

#include <string>

#include "schemas.h"

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
int fit_min_blocks();           // csrc/cuda/cuda_build_info.cu
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
  info += "\"fit_min_blocks\": " + std::to_string(fit_min_blocks()) + ", ";
#else
  info += "\"cuda\": false, \"cuda_version\": null, \"cuda_archs\": null, \"fit_min_blocks\": null, ";
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
  shr_ops::define_op_schemas(m);
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
