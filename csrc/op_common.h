// What every op's header (encode.h, decode.h, heatmap_loss.h) builds on: the argument checks
// shared by several ops, the compute dtype, the output shapes and the pieces of a launcher's
// preparation (contiguous optional inputs, the kernel's device).
//
// Keep this header light: it is included by .cu files, which must not pull in
// <torch/extension.h> (docs/building.md: minutes of compile time per file).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/DeviceType.h>
#include <c10/util/Optional.h>

#include <cstdint>
#include <initializer_list>
#include <vector>

namespace shr_ops {

// The dtype results are computed (and coordinates, scores, losses returned) in: float64 for
// float64 inputs, float32 for the others (shr_ops.reference.compute_dtype).
inline at::ScalarType compute_dtype(at::ScalarType t) { return t == at::kDouble ? at::kDouble : at::kFloat; }

// Every op checks its arguments (the Python wrappers check them too, with the same words, so
// direct calls of torch.ops.shr_ops.* are as safe as the wrappers; the fake kernels in
// shr_ops/_fake.py repeat these checks word for word).

inline void check_float_tensor(const at::Tensor& t, const char* op, const char* name) {
  TORCH_CHECK(at::isFloatingType(t.scalar_type()),
              op, ": ", name, " must be a floating-point tensor (float32, float64, float16 or bfloat16), got ",
              t.scalar_type());
}

inline void check_same_device(const at::Tensor& a, const at::Tensor& b, const char* op,
                              const char* name_a, const char* name_b) {
  TORCH_CHECK(a.device() == b.device(), op, ": ", name_b, " must be on the same device as ", name_a,
              " (", a.device(), "), got ", b.device());
}

// A launcher runs only on its own device type (c10::DeviceType::CPU or CUDA): the tensors' common
// device (checked by check_same_device) must be it.
inline void check_kernel_device(const at::Tensor& t, c10::DeviceType kernel, const char* op, const char* name) {
  TORCH_CHECK(t.device().type() == kernel, op, ": ", c10::DeviceTypeName(kernel), " kernel got ", name, " on ",
              t.device());
}

// Output shape helpers: leading dims of an input, with trailing dims appended.
inline std::vector<int64_t> leading_with(at::IntArrayRef sizes, int64_t drop, std::initializer_list<int64_t> tail) {
  std::vector<int64_t> out(sizes.begin(), sizes.end() - drop);
  out.insert(out.end(), tail.begin(), tail.end());
  return out;
}

// An optional input made contiguous; undefined when absent.
inline at::Tensor contiguous_or_undefined(const c10::optional<at::Tensor>& t) {
  return t.has_value() ? t->contiguous() : at::Tensor();
}

// The data of an optional (possibly undefined) input: nullptr when undefined.
template <typename T>
inline const T* data_or_null(const at::Tensor& t) {
  return t.defined() ? t.const_data_ptr<T>() : nullptr;
}

}  // namespace shr_ops
