"""Fake (meta) kernels of every shr_ops op, so torch.compile and FakeTensor tracing know the
output shapes without running a kernel. Outputs are contiguous, like the real kernels'."""
from __future__ import annotations

import torch

from .reference import compute_dtype


@torch.library.register_fake("shr_ops::encode")
def _encode_fake(landmarks, visible, height, width, sigma, radius, dtype):
    return landmarks.new_empty((*landmarks.shape[:-1], height, width), dtype=dtype)


@torch.library.register_fake("shr_ops::encode_out")
def _encode_out_fake(landmarks, visible, sigma, radius, out):
    return None


@torch.library.register_fake("shr_ops::encode_backward")
def _encode_backward_fake(grad, landmarks, visible, sigma, radius):
    return landmarks.new_empty(landmarks.shape)


@torch.library.register_fake("shr_ops::decode")
def _decode_fake(heatmaps, window, temperature, blur=None):
    lead = heatmaps.shape[:-2]
    acc = compute_dtype(heatmaps.dtype)
    coords = heatmaps.new_empty((*lead, 2), dtype=acc)
    scores = heatmaps.new_empty(lead, dtype=acc)
    index = heatmaps.new_empty(lead, dtype=torch.int64)
    return coords, scores, index


@torch.library.register_fake("shr_ops::decode_backward")
def _decode_backward_fake(grad_coords, grad_scores, heatmaps, index, window, temperature, blur=None):
    return heatmaps.new_empty(heatmaps.shape)


@torch.library.register_fake("shr_ops::heatmap_loss")
def _heatmap_loss_fake(pred, landmarks, visible, sigma, foreground_weight, threshold, scale):
    return pred.new_empty((), dtype=compute_dtype(pred.dtype))


@torch.library.register_fake("shr_ops::heatmap_loss_backward")
def _heatmap_loss_backward_fake(grad, pred, landmarks, visible, sigma, foreground_weight, threshold, scale):
    return pred.new_empty(pred.shape), landmarks.new_empty(landmarks.shape)
