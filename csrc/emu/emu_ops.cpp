// The test-only library shr_ops_emu: shr_ops' schemas, whose CPU kernels are the CUDA launchers
// and kernels (csrc/cuda/*_kernel.cu) compiled with g++ against the emulator (SHR_CUDA_EMU). Built
// and loaded by the tests (tests/cuda_emu/build.py), never installed.
#include <torch/library.h>

#include "../schemas.h"

TORCH_LIBRARY(shr_ops_emu, m) { shr_ops::define_op_schemas(m); }
