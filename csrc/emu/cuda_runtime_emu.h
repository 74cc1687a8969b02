// The slice of the CUDA runtime and of c10/cuda that shr_ops' CUDA launchers use, for building them
// with g++ against the emulator (cudaemu.h) as the test-only library shr_ops_emu: tensors are CPU
// tensors, a launch runs at once, and the emulator's errors become catchable c10::Error exceptions.
#pragma once

#include <c10/core/Device.h>
#include <c10/util/Exception.h>

#include <string>

#include "cudaemu.h"

using cudaError_t = int;
constexpr cudaError_t cudaSuccess = 0;
using cudaStream_t = ::cudaemu::Stream;
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
enum cudaDeviceAttr { cudaDevAttrMaxSharedMemoryPerBlockOptin = 97 };
enum cudaStreamCaptureStatus { cudaStreamCaptureStatusNone = 0, cudaStreamCaptureStatusActive = 1 };

inline cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}
inline cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int /*device*/) {
  if (attr != cudaDevAttrMaxSharedMemoryPerBlockOptin) return 1;
  *value = ::cudaemu::kSharedOptinMax;
  return cudaSuccess;
}
template <typename Kernel>
cudaError_t cudaFuncSetAttribute(Kernel* kernel, cudaFuncAttribute attr, int value) {
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return 1;
  return ::cudaemu::set_max_dynamic_smem(reinterpret_cast<const void*>(kernel), value);
}
inline cudaError_t cudaStreamIsCapturing(cudaStream_t, cudaStreamCaptureStatus* status) {
  *status = cudaStreamCaptureStatusNone;
  return cudaSuccess;
}

namespace c10 {
namespace cuda {
struct CUDAGuard {
  explicit CUDAGuard(c10::Device) {}
};
struct CUDAStream {
  operator cudaStream_t() const { return nullptr; }
};
inline CUDAStream getCurrentCUDAStream() { return CUDAStream{}; }
}  // namespace cuda
}  // namespace c10

#define C10_CUDA_CHECK(expr)                                                              \
  do {                                                                                    \
    const cudaError_t shr_emu_err = (expr);                                               \
    TORCH_CHECK(shr_emu_err == cudaSuccess, "emulated CUDA: ", #expr, " failed (error ", \
                shr_emu_err, ")");                                                        \
  } while (0)

// After a launch: any error the emulator found in it (launch limits, barriers, shuffles, asserts).
#define C10_CUDA_KERNEL_LAUNCH_CHECK()                                                                    \
  do {                                                                                                    \
    std::string shr_emu_first;                                                                            \
    const int shr_emu_errors = ::cudaemu::take_launch_errors(&shr_emu_first);                             \
    TORCH_CHECK(shr_emu_errors == 0, "emulated CUDA: ", shr_emu_errors, " error(s) in a kernel launch, the " \
                "first: ", shr_emu_first);                                                                \
  } while (0)
