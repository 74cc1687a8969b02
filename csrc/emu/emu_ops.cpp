// The test-only library shr_ops_emu: shr_ops' schemas, whose CPU kernels are the CUDA launchers
// and kernels (csrc/cuda/*_kernel.cu) compiled with g++ against the emulator (SHR_CUDA_EMU). Built
// and loaded by the tests (tests/cuda_emu/build.py), never installed. Also take_traffic: what the
// emulated launches moved since its last call (benchmarks/memory_traffic.py).
#include <torch/library.h>

#include <cstdint>
#include <vector>

#include "../schemas.h"
#include "cudaemu.h"

namespace {

// [bytes read, bytes written, launches, temporaries, temporary bytes, loads, bytes loaded, stores,
// bytes stored, host waits] since the last call (loads to bytes stored: the device code's ld / st
// calls and the bytes they asked for; host waits: the launchers' reads of device memory).
std::vector<int64_t> take_traffic() {
  const cudaemu::Traffic t = cudaemu::take_traffic();
  return {static_cast<int64_t>(t.read),           static_cast<int64_t>(t.written),
          static_cast<int64_t>(t.launches),       static_cast<int64_t>(t.temporaries),
          static_cast<int64_t>(t.temporary_bytes), static_cast<int64_t>(t.accesses[0]),
          static_cast<int64_t>(t.access_bytes[0]), static_cast<int64_t>(t.accesses[1]),
          static_cast<int64_t>(t.access_bytes[1]), static_cast<int64_t>(t.host_waits)};
}

}  // namespace

TORCH_LIBRARY(shr_ops_emu, m) {
  shr_ops::define_op_schemas(m);
  m.def("take_traffic() -> int[]", &take_traffic);
}
