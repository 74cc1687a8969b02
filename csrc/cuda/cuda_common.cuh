// Host-side helpers shared by the CUDA launchers (cuda/*_kernel.cu): the runtime they launch on,
// the launch-limit checks and the shared-memory opt-in. Under SHR_CUDA_EMU the launchers are
// compiled by g++ against the CPU emulator (csrc/emu), which supplies the same names.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>

#if defined(SHR_CUDA_EMU)
#include "../emu/cuda_runtime_emu.h"
#else
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include <cstdint>
#include <limits>
#include <map>
#include <mutex>
#include <utility>

#include "cuda_device.cuh"

// Registers a .cu file's launchers: as shr_ops' CUDA kernels, or under the emulator as the CPU
// kernels of the test-only library shr_ops_emu (same schemas, csrc/emu/emu_ops.cpp).
#if defined(SHR_CUDA_EMU)
#define SHR_CUDA_LIBRARY_IMPL(m) TORCH_LIBRARY_IMPL(shr_ops_emu, CPU, m)
#else
#define SHR_CUDA_LIBRARY_IMPL(m) TORCH_LIBRARY_IMPL(shr_ops, CUDA, m)
#endif

namespace shr_ops {
namespace cuda {

// The device type of the tensors the launchers take: CUDA (CPU under the emulator).
#if defined(SHR_CUDA_EMU)
constexpr c10::DeviceType kKernelDevice = c10::DeviceType::CPU;
#else
constexpr c10::DeviceType kKernelDevice = c10::DeviceType::CUDA;
#endif

// The limits of the one-block-per-map kernels: the grid's x size and the int pixel loops.
inline void check_map_limits(int64_t maps, int64_t map_size, const char* op) {
  TORCH_CHECK(maps <= std::numeric_limits<int32_t>::max(), op, ": at most 2^31 - 1 maps per call on CUDA, got ",
              maps);
  TORCH_CHECK(map_size <= kMaxMapPixels, op, ": H * W must be at most 2^31 - 1 - ", kThreads, " on CUDA, got ",
              map_size);
}

// The same for maps [..., H, W] (already checked to have H, W >= 1), before anything copies them.
inline void check_map_limits(const at::Tensor& maps, const char* op) {
  const int64_t map_size = maps.size(-2) * maps.size(-1);
  check_map_limits(maps.numel() / map_size, map_size, op);
}

// Lets `kernel` take `bytes` of dynamic shared memory (its only shared memory): over the default
// 48 KiB a block needs the opt-in, up to the device's limit; beyond it the op cannot run on this
// device, which is an error naming the map size.
template <typename Kernel>
void fit_shared_memory(Kernel* kernel, int64_t bytes, int64_t H, int64_t W, const char* op) {
  if (bytes <= kDefaultSharedBytes) return;
  int device = 0, optin = 0;
  C10_CUDA_CHECK(cudaGetDevice(&device));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  TORCH_CHECK(bytes <= optin, op, ": maps of size (H, W) = (", H, ", ", W, ") need ", bytes,
              " bytes of shared memory per block on CUDA, over this device's limit of ", optin);
  C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
}

// A device temporary of the launcher (counted by the emulator: benchmarks/memory_traffic.py).
inline at::Tensor device_temporary(at::IntArrayRef sizes, const at::TensorOptions& options) {
  at::Tensor t = at::empty(sizes, options);
#if defined(SHR_CUDA_EMU)
  ::cudaemu::count_temporary(static_cast<uint64_t>(t.nbytes()));
#endif
  return t;
}

// Marks a device op the launcher runs through ATen (copy_, add_, zero_: one kernel each on a GPU)
// with the bytes it reads and writes, which the emulator counts (it runs them as CPU ops).
inline void count_aten_kernel(int64_t read_bytes, int64_t written_bytes) {
#if defined(SHR_CUDA_EMU)
  ::cudaemu::count_aten_kernel(static_cast<uint64_t>(read_bytes), static_cast<uint64_t>(written_bytes));
#else
  (void)read_bytes;
  (void)written_bytes;
#endif
}

// Marks a host read of device memory (the launcher waits for the GPU there), which the emulator counts.
inline void count_host_wait() {
#if defined(SHR_CUDA_EMU)
  ::cudaemu::count_host_wait();
#endif
}

// Whether `kernel` can take `bytes` of dynamic shared memory next to its static shared memory (at
// most `static_bytes`) on this device; past 48 KiB it is given the opt-in.
template <typename Kernel>
bool try_fit_shared_memory(Kernel* kernel, int64_t bytes, int64_t static_bytes) {
  if (bytes + static_bytes <= kDefaultSharedBytes) return true;
  int device = 0, optin = 0;
  C10_CUDA_CHECK(cudaGetDevice(&device));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  if (bytes + static_bytes > optin) return false;
  C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
  return true;
}

// Whether work queued on `stream` is being captured into a CUDA graph (then nothing may wait for it).
inline bool stream_is_capturing(cudaStream_t stream) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  C10_CUDA_CHECK(cudaStreamIsCapturing(stream, &status));
  return status != cudaStreamCaptureStatusNone;
}

// A device counter at 0 (int32, one element), for a kernel that counts its finished blocks on it
// and leaves it at 0 again (heatmap_loss: atomicInc wraps it), so that its last block can finish the
// work in the same launch. One per device and stream: launches on one stream run in order, those
// on different streams may overlap. Zeroed on its first use on a stream (one ATen fill, counted),
// then kept for the life of the process (never freed: a static tensor would be freed after the
// CUDA runtime has shut down). While the stream is captured into a CUDA graph it is a zeroed
// temporary of the call instead (two launches in the graph), as the cached one may not be zeroed
// inside a graph. The caller holds the returned tensor until its kernel is queued.
inline at::Tensor completion_counter(const at::Device& device, cudaStream_t stream) {
  const auto zeroed = [&] {
    count_aten_kernel(0, sizeof(int32_t));
    return at::zeros({1}, at::TensorOptions().device(device).dtype(at::kInt));
  };
  if (stream_is_capturing(stream)) return zeroed();
  static std::mutex mutex;
  static auto* counters = new std::map<std::pair<int, uintptr_t>, at::Tensor>();
  std::lock_guard<std::mutex> lock(mutex);
  const auto key = std::make_pair(static_cast<int>(device.index()), reinterpret_cast<uintptr_t>(stream));
  auto it = counters->find(key);
  if (it == counters->end()) it = counters->emplace(key, zeroed()).first;
  return it->second;
}

}  // namespace cuda
}  // namespace shr_ops
