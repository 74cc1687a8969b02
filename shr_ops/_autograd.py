"""Autograd formulas of shr_ops.encode, shr_ops.decode and shr_ops.heatmap_loss; each backward is
an op of its own (shr_ops::encode_backward, shr_ops::decode_backward, shr_ops::heatmap_loss_backward)
with CPU and CUDA kernels."""
from __future__ import annotations

import torch


def _encode_setup_context(ctx, inputs, output):
    landmarks, visible, _height, _width, sigma, radius, _dtype = inputs
    ctx.save_for_backward(landmarks, visible)
    ctx.sigma, ctx.radius = sigma, radius


def _encode_backward(ctx, grad):
    landmarks, visible = ctx.saved_tensors
    grad_landmarks = None
    if ctx.needs_input_grad[0]:
        grad_landmarks = torch.ops.shr_ops.encode_backward(grad, landmarks, visible, ctx.sigma, ctx.radius)
    return grad_landmarks, None, None, None, None, None, None


def _decode_setup_context(ctx, inputs, output):
    heatmaps, window, temperature, blur = inputs
    _coords, _scores, index = output
    ctx.save_for_backward(heatmaps, index)
    ctx.window, ctx.temperature, ctx.blur = window, temperature, blur


def _decode_backward(ctx, grad_coords, grad_scores, _grad_index):
    heatmaps, index = ctx.saved_tensors
    grad_heatmaps = None
    if ctx.needs_input_grad[0]:
        # The index is decode's own, saved (version-checked): no range check, so no host wait on CUDA.
        grad_heatmaps = torch.ops.shr_ops.decode_backward(
            grad_coords, grad_scores, heatmaps, index, ctx.window, ctx.temperature, ctx.blur, check_index=False
        )
    return grad_heatmaps, None, None, None


def _heatmap_loss_setup_context(ctx, inputs, output):
    pred, landmarks, visible, sigma, foreground_weight, threshold, scale = inputs
    ctx.save_for_backward(pred, landmarks, visible)
    ctx.params = (sigma, foreground_weight, threshold, scale)


def _heatmap_loss_backward(ctx, grad):
    pred, landmarks, visible = ctx.saved_tensors
    grad_pred = grad_landmarks = None
    if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
        grad_pred, grad_landmarks = torch.ops.shr_ops.heatmap_loss_backward(grad, pred, landmarks, visible,
                                                                            *ctx.params)
    return (grad_pred if ctx.needs_input_grad[0] else None, grad_landmarks if ctx.needs_input_grad[1] else None,
            None, None, None, None, None)


torch.library.register_autograd("shr_ops::encode", _encode_backward, setup_context=_encode_setup_context)
torch.library.register_autograd("shr_ops::decode", _decode_backward, setup_context=_decode_setup_context)
torch.library.register_autograd("shr_ops::heatmap_loss", _heatmap_loss_backward,
                                setup_context=_heatmap_loss_setup_context)
