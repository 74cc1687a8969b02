// What nvcc compiled this extension for: __CUDA_ARCH_LIST__ is nvcc's own sorted list of the
// targeted architectures (e.g. 800,900), so build_info() reports the binary, not the intent.
#define SHR_STR_(...) #__VA_ARGS__
#define SHR_STR(...) SHR_STR_(__VA_ARGS__)

#include "cuda_device.cuh"

namespace shr_ops {
int fit_min_blocks() { return cuda::kFitMinBlocks; }
const char* cuda_arch_list() {
#ifdef __CUDA_ARCH_LIST__
  return SHR_STR(__CUDA_ARCH_LIST__);
#else
  return "";
#endif
}
}  // namespace shr_ops
