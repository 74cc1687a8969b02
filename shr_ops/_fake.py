"""Fake (meta) kernels of every shr_ops op, so torch.compile and FakeTensor tracing know the
output shapes without running a kernel. Outputs are contiguous, like the real kernels'.

Each fake kernel first checks its inputs as the C++ launchers do (csrc/encode.h, decode.h,
heatmap_loss.h), with torch._check and the same words, in the same order: a wrong shape or dtype
fails while tracing (torch.compile, FakeTensor, meta tensors) with the error a real call raises.
Only what a kernel can know from values is left to it (decode_backward's index range)."""
from __future__ import annotations

import math

import torch

from .ops import MAX_BLUR
from .reference import compute_dtype

# c10's names of the scalar types, as the C++ messages print them.
_SCALAR_TYPE_NAMES = {
    torch.float32: "Float", torch.float64: "Double", torch.float16: "Half", torch.bfloat16: "BFloat16",
    torch.int64: "Long", torch.int32: "Int", torch.int16: "Short", torch.int8: "Char", torch.uint8: "Byte",
    torch.bool: "Bool", torch.complex64: "ComplexFloat", torch.complex128: "ComplexDouble",
    torch.complex32: "ComplexHalf",
}


def _st(dtype: torch.dtype) -> str:
    return _SCALAR_TYPE_NAMES.get(dtype, str(dtype))


def _sizes(shape) -> str:
    """A shape as c10 prints an IntArrayRef: [2, 3]."""
    return "[" + ", ".join(str(s) for s in shape) + "]"


def _num(value: float) -> str:
    """A double as a C++ stream prints it (%g)."""
    return f"{value:g}"


def _check_float_tensor(t, op: str, name: str) -> None:
    torch._check(t.dtype.is_floating_point,
                 lambda: f"{op}: {name} must be a floating-point tensor (float32, float64, float16 or bfloat16), "
                         f"got {_st(t.dtype)}")


def _check_same_device(a, b, op: str, name_a: str, name_b: str) -> None:
    torch._check(a.device == b.device,
                 lambda: f"{op}: {name_b} must be on the same device as {name_a} ({a.device}), got {b.device}")


def _check_encode_args(landmarks, visible, height, width, sigma, radius, dtype) -> None:
    op = "shr_ops.encode"
    torch._check(landmarks.dtype in (torch.float32, torch.float64),
                 lambda: f"{op}: landmarks must be float32 or float64 (the wrapper upcasts float16/bfloat16), "
                         f"got {_st(landmarks.dtype)}")
    torch._check(landmarks.dim() >= 1 and landmarks.shape[-1] == 2,
                 lambda: f"{op}: landmarks must have shape [..., K, 2] (last dimension 2 for x, y), "
                         f"got {_sizes(landmarks.shape)}")
    torch._check(height >= 1 and width >= 1,
                 lambda: f"{op}: size must be (H, W) with H >= 1 and W >= 1, got ({height}, {width})")
    torch._check(math.isfinite(sigma) and sigma > 0,
                 lambda: f"{op}: sigma must be a finite number > 0, got {_num(sigma)}")
    if radius is not None:
        torch._check(math.isfinite(radius) and radius > 0,
                     lambda: f"{op}: radius must be None or a finite number > 0, got {_num(radius)}")
    torch._check(dtype.is_floating_point, lambda: f"{op}: dtype must be a floating-point dtype, got {_st(dtype)}")
    torch._check((dtype == torch.float64) == (landmarks.dtype == torch.float64),
                 lambda: f"{op}: landmarks must be float64 for a float64 output and float32 otherwise, "
                         f"got landmarks {_st(landmarks.dtype)} for dtype {_st(dtype)}")
    if visible is not None:
        _check_same_device(landmarks, visible, op, "landmarks", "visible")
        torch._check(visible.dtype == torch.bool,
                     lambda: f"{op}: visible must be a bool tensor, got {_st(visible.dtype)}")
        torch._check(visible.shape == landmarks.shape[:-1],
                     lambda: f"{op}: visible must have shape landmarks.shape[:-1] = {_sizes(landmarks.shape[:-1])}, "
                             f"got {_sizes(visible.shape)}")


def _check_encode_out(landmarks, out) -> None:
    op = "shr_ops.encode_out"
    _check_same_device(landmarks, out, op, "landmarks", "out")
    torch._check(out.dtype.is_floating_point,
                 lambda: f"{op}: out must be a floating-point tensor (float32, float64, float16 or bfloat16), "
                         f"got {_st(out.dtype)}")
    torch._check(out.dim() == landmarks.dim() + 1 and out.dim() >= 2 and out.shape[:-2] == landmarks.shape[:-1],
                 lambda: f"{op}: out must have shape landmarks.shape[:-1] + (H, W) = {_sizes(landmarks.shape[:-1])} "
                         f"+ (H, W), got {_sizes(out.shape)}")
    torch._check(out.is_contiguous(), lambda: f"{op}: out must be contiguous")


def _check_encode_backward_args(grad, landmarks, visible, sigma, radius) -> None:
    op = "shr_ops.encode_backward"
    torch._check(grad.dim() == landmarks.dim() + 1 and grad.shape[:-2] == landmarks.shape[:-1],
                 lambda: f"{op}: grad must have shape [..., H, W] for landmarks [..., 2], "
                         f"got grad {_sizes(grad.shape)} and landmarks {_sizes(landmarks.shape)}")
    _check_encode_args(landmarks, visible, grad.shape[-2], grad.shape[-1], sigma, radius,
                       compute_dtype(landmarks.dtype))
    _check_float_tensor(grad, op, "grad")
    _check_same_device(landmarks, grad, op, "landmarks", "grad")


def _check_decode_args(heatmaps, window, temperature, blur) -> None:
    op = "shr_ops.decode"
    _check_float_tensor(heatmaps, op, "heatmaps")
    torch._check(heatmaps.dim() >= 2,
                 lambda: f"{op}: heatmaps must have shape [..., K, H, W], got {_sizes(heatmaps.shape)}")
    torch._check(heatmaps.shape[-1] >= 1 and heatmaps.shape[-2] >= 1,
                 lambda: f"{op}: heatmaps must have H >= 1 and W >= 1, got {_sizes(heatmaps.shape)}")
    torch._check(window >= 1 and window % 2 == 1, lambda: f"{op}: window must be an odd integer >= 1, got {window}")
    torch._check(math.isfinite(temperature) and temperature > 0,
                 lambda: f"{op}: temperature must be a finite number > 0, got {_num(temperature)}")
    if blur is not None:
        torch._check(math.isfinite(blur) and 0 < blur <= MAX_BLUR,
                     lambda: f"{op}: blur must be None or a finite number in (0, {_num(MAX_BLUR)}], got {_num(blur)}")


def _check_decode_backward_args(grad_coords, grad_scores, heatmaps, index, op: str) -> None:
    lead = heatmaps.shape[:-2]
    acc = compute_dtype(heatmaps.dtype)
    torch._check(index.dtype == torch.int64 and index.shape == lead,
                 lambda: f"{op}: index must be an int64 tensor of shape heatmaps.shape[:-2] = {_sizes(lead)}, "
                         f"got {_st(index.dtype)} {_sizes(index.shape)}")
    torch._check(grad_coords.dtype == acc and grad_coords.dim() == heatmaps.dim() - 1
                 and grad_coords.shape[:-1] == lead and grad_coords.shape[-1] == 2,
                 lambda: f"{op}: grad_coords must be {_st(acc)} of shape heatmaps.shape[:-2] + (2,), "
                         f"got {_st(grad_coords.dtype)} {_sizes(grad_coords.shape)}")
    torch._check(grad_scores.dtype == acc and grad_scores.shape == lead,
                 lambda: f"{op}: grad_scores must be {_st(acc)} of shape heatmaps.shape[:-2], "
                         f"got {_st(grad_scores.dtype)} {_sizes(grad_scores.shape)}")
    _check_same_device(heatmaps, grad_coords, op, "heatmaps", "grad_coords")
    _check_same_device(heatmaps, grad_scores, op, "heatmaps", "grad_scores")
    _check_same_device(heatmaps, index, op, "heatmaps", "index")


def _check_heatmap_loss_args(pred, landmarks, visible, sigma, foreground_weight, threshold, scale, op: str) -> None:
    _check_float_tensor(pred, op, "pred")
    torch._check(pred.dim() >= 3 and pred.shape[-1] >= 1 and pred.shape[-2] >= 1,
                 lambda: f"{op}: pred must have shape [..., K, H, W] with H >= 1 and W >= 1, got {_sizes(pred.shape)}")
    acc = compute_dtype(pred.dtype)
    torch._check(landmarks.dtype == acc,
                 lambda: f"{op}: landmarks must be {_st(acc)} for pred of dtype {_st(pred.dtype)} (float64 for float64 "
                         f"pred, else float32; the wrapper converts), got {_st(landmarks.dtype)}")
    torch._check(landmarks.dim() == pred.dim() - 1 and landmarks.shape[-1] == 2
                 and landmarks.shape[:-1] == pred.shape[:-2],
                 lambda: f"{op}: landmarks must have shape pred.shape[:-2] + (2,) = [..., K, 2], got landmarks "
                         f"{_sizes(landmarks.shape)} for pred {_sizes(pred.shape)}")
    _check_same_device(pred, landmarks, op, "pred", "landmarks")
    torch._check(math.isfinite(sigma) and sigma > 0,
                 lambda: f"{op}: sigma must be a finite number > 0, got {_num(sigma)}")
    torch._check(math.isfinite(foreground_weight) and foreground_weight >= 0,
                 lambda: f"{op}: foreground_weight must be a finite number >= 0, got {_num(foreground_weight)}")
    torch._check(math.isfinite(threshold) and threshold >= 0,
                 lambda: f"{op}: threshold must be a finite number >= 0, got {_num(threshold)}")
    torch._check(math.isfinite(scale) and scale > 0,
                 lambda: f"{op}: scale must be a finite number > 0, got {_num(scale)}")
    if visible is not None:
        _check_same_device(pred, visible, op, "pred", "visible")
        torch._check(visible.dtype == torch.bool,
                     lambda: f"{op}: visible must be a bool tensor, got {_st(visible.dtype)}")
        torch._check(visible.shape == pred.shape[:-2],
                     lambda: f"{op}: visible must have shape pred.shape[:-2] = [..., K] = {_sizes(pred.shape[:-2])}, "
                             f"got {_sizes(visible.shape)}")


def _check_heatmap_loss_grad(grad, pred, op: str) -> None:
    acc = compute_dtype(pred.dtype)
    torch._check(grad.dim() == 0 and grad.dtype == acc,
                 lambda: f"{op}: grad must be a 0-dim {_st(acc)} tensor (the gradient of the scalar loss), "
                         f"got {_st(grad.dtype)} of shape {_sizes(grad.shape)}")
    _check_same_device(pred, grad, op, "pred", "grad")


@torch.library.register_fake("shr_ops::encode")
def _encode_fake(landmarks, visible, height, width, sigma, radius, dtype):
    _check_encode_args(landmarks, visible, height, width, sigma, radius, dtype)
    return landmarks.new_empty((*landmarks.shape[:-1], height, width), dtype=dtype)


@torch.library.register_fake("shr_ops::encode_out")
def _encode_out_fake(landmarks, visible, sigma, radius, out):
    _check_encode_out(landmarks, out)
    _check_encode_args(landmarks, visible, out.shape[-2], out.shape[-1], sigma, radius, out.dtype)
    return None


@torch.library.register_fake("shr_ops::encode_backward")
def _encode_backward_fake(grad, landmarks, visible, sigma, radius):
    _check_encode_backward_args(grad, landmarks, visible, sigma, radius)
    return landmarks.new_empty(landmarks.shape)


@torch.library.register_fake("shr_ops::decode")
def _decode_fake(heatmaps, window, temperature, blur=None):
    _check_decode_args(heatmaps, window, temperature, blur)
    lead = heatmaps.shape[:-2]
    acc = compute_dtype(heatmaps.dtype)
    coords = heatmaps.new_empty((*lead, 2), dtype=acc)
    scores = heatmaps.new_empty(lead, dtype=acc)
    index = heatmaps.new_empty(lead, dtype=torch.int64)
    return coords, scores, index


@torch.library.register_fake("shr_ops::decode_backward")
def _decode_backward_fake(grad_coords, grad_scores, heatmaps, index, window, temperature, blur=None,
                          check_index=True):
    _check_decode_args(heatmaps, window, temperature, blur)
    _check_decode_backward_args(grad_coords, grad_scores, heatmaps, index, "shr_ops.decode_backward")
    return heatmaps.new_empty(heatmaps.shape)


@torch.library.register_fake("shr_ops::heatmap_loss")
def _heatmap_loss_fake(pred, landmarks, visible, sigma, foreground_weight, threshold, scale):
    _check_heatmap_loss_args(pred, landmarks, visible, sigma, foreground_weight, threshold, scale,
                             "shr_ops.heatmap_loss")
    return pred.new_empty((), dtype=compute_dtype(pred.dtype))


@torch.library.register_fake("shr_ops::heatmap_loss_backward")
def _heatmap_loss_backward_fake(grad, pred, landmarks, visible, sigma, foreground_weight, threshold, scale):
    op = "shr_ops.heatmap_loss_backward"
    _check_heatmap_loss_args(pred, landmarks, visible, sigma, foreground_weight, threshold, scale, op)
    _check_heatmap_loss_grad(grad, pred, op)
    return pred.new_empty(pred.shape), landmarks.new_empty(landmarks.shape)
