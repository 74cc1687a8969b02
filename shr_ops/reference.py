"""Pure-PyTorch reference of every shr_ops op: readable, vectorised, and the truth the kernels
are tested against. Gradients come from autograd through these functions.

Coordinates follow docs/coordinates.md: pixel (row i, col j) has its centre at x = j, y = i.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .defaults import DEFAULT_BLUR, DEFAULT_TEMPERATURE, DEFAULT_WINDOW
from . import gaussian_fit
from .filters import gaussian_blur


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The precision a result of `dtype` is computed in: float64 for float64, float32 otherwise."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def split_missing(landmarks: Tensor, visible: Tensor | None) -> tuple[Tensor, Tensor]:
    """(landmarks with the missing ones replaced by 0, valid mask Tensor[..., K]). A landmark is
    missing when a coordinate is NaN or infinite, or `visible` says False. Replacing them before
    any arithmetic keeps NaN out of the gradient of the masked result."""
    valid = torch.isfinite(landmarks).all(-1)
    if visible is not None:
        valid = valid & visible
    return torch.where(valid[..., None], landmarks, torch.zeros_like(landmarks)), valid


def encode(
    landmarks: Tensor,
    size: tuple[int, int],
    sigma: float,
    *,
    visible: Tensor | None = None,
    radius: float | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Gaussian heatmaps at exact subpixel centres: Tensor[..., K, 2] -> Tensor[..., K, H, W].

    H[k, i, j] = exp(-((j - x_k)^2 + (i - y_k)^2) / (2 sigma^2)); zero where the squared distance
    exceeds radius^2 (when given); all-zero maps for non-finite or invisible landmarks.
    """
    height, width = size
    out_dtype = dtype or landmarks.dtype
    lm, valid = split_missing(landmarks.to(compute_dtype(out_dtype)), visible)
    xs = torch.arange(width, dtype=lm.dtype, device=lm.device)
    ys = torch.arange(height, dtype=lm.dtype, device=lm.device)
    dx2 = (xs - lm[..., 0:1]) ** 2  # [..., K, W]
    dy2 = (ys - lm[..., 1:2]) ** 2  # [..., K, H]
    d2 = dy2[..., :, None] + dx2[..., None, :]  # [..., K, H, W]
    heat = torch.exp(-d2 / (2.0 * sigma * sigma))
    if radius is not None:
        heat = torch.where(d2 <= radius * radius, heat, torch.zeros_like(heat))
    heat = heat * valid[..., None, None]
    return heat.to(out_dtype)


def heatmap_loss(
    pred: Tensor,
    landmarks: Tensor,
    sigma: float,
    *,
    visible: Tensor | None = None,
    foreground_weight: float = 1.0,
    threshold: float = 0.1,
    scale: float = 1.0,
) -> Tensor:
    """Reference of shr_ops.heatmap_loss: encode the targets, then the weighted MSE.

    pred Tensor[..., K, H, W], landmarks Tensor[..., K, 2] -> Tensor[] (0 for an empty pred):
    mean(w * (pred - t)^2), t = scale * encode(landmarks), w = foreground_weight where
    t > threshold * scale, else 1. Computed in float64 for float64 pred, else float32.
    """
    acc = compute_dtype(pred.dtype)
    target = encode(landmarks, tuple(pred.shape[-2:]), sigma, visible=visible, dtype=acc) * scale
    weight = 1.0 + (foreground_weight - 1.0) * (target > threshold * scale).to(acc)
    return (weight * (pred.to(acc) - target) ** 2).sum() / max(pred.numel(), 1)


def decode_with_index(heatmaps: Tensor, *, window: int, temperature: float) -> tuple[Tensor, Tensor, Tensor]:
    """Local-window soft-argmax: Tensor[..., K, H, W] -> (coords [..., K, 2], scores [..., K], index [..., K]).

    index = first argmax in row-major order (torch.argmax: NaN counts as the maximum); a
    window x window box centred on it, clipped to the frame; p = softmax(temperature * h) over
    the box; coords = argmax position + sum p * offset. scores = the peak value.
    Computed in float64 (the truth), returned as float64 for float64 input and float32 otherwise.
    """
    height, width = heatmaps.shape[-2:]
    out_dtype = compute_dtype(heatmaps.dtype)
    hm = heatmaps.to(torch.float64)
    flat = hm.flatten(-2)
    index = flat.argmax(-1)
    mi, mj = index // width, index % width
    r = min(window // 2, max(height, width))  # offsets beyond the frame are masked anyway
    off = torch.arange(-r, r + 1, device=hm.device)
    rows = mi[..., None] + off  # [..., K, n]
    cols = mj[..., None] + off
    inside = ((rows >= 0) & (rows < height))[..., :, None] & ((cols >= 0) & (cols < width))[..., None, :]
    flat_idx = rows.clamp(0, height - 1)[..., :, None] * width + cols.clamp(0, width - 1)[..., None, :]
    vals = flat.gather(-1, flat_idx.flatten(-2))  # [..., K, n * n]
    logits = (temperature * vals).masked_fill(~inside.flatten(-2), float("-inf"))
    p = torch.softmax(logits, dim=-1)
    n = off.numel()
    off_f = off.to(hm.dtype)
    dx = off_f[None, :].expand(n, n).flatten()
    dy = off_f[:, None].expand(n, n).flatten()
    x = mj.to(hm.dtype) + (p * dx).sum(-1)
    y = mi.to(hm.dtype) + (p * dy).sum(-1)
    scores = flat.gather(-1, index[..., None]).squeeze(-1)
    return torch.stack([x, y], dim=-1).to(out_dtype), scores.to(out_dtype), index


def decode(heatmaps: Tensor, *, window: int = DEFAULT_WINDOW, temperature: float = DEFAULT_TEMPERATURE,
           blur: float | None = DEFAULT_BLUR, return_scores: bool = False):
    """Reference of shr_ops.decode: coords Tensor[..., K, 2] (and scores Tensor[..., K]).

    Without the pre-filter (blur=None): the local-window soft-argmax of the maps
    (decode_with_index). With it: the maps pre-filtered (filters.gaussian_blur, rounded to the
    compute dtype) give the index, the score and the soft-argmax estimate; where the least-squares
    Gaussian fit of the raw maps around that index is valid, the coordinates are that estimate
    corrected by its own bias on the fitted Gaussian (the window and the frame's zero border pull
    it inward), and the estimate elsewhere (gaussian_fit: exact on clean maps up to the frame's
    corners, the soft-argmax's behaviour on maps that are not Gaussians).
    """
    coords, scores, _ = decode_with_info(heatmaps, window=window, temperature=temperature, blur=blur)
    return (coords, scores) if return_scores else coords


def prefiltered_soft_argmax(heatmaps: Tensor, *, window: int = DEFAULT_WINDOW,
                            temperature: float = DEFAULT_TEMPERATURE, blur: float = DEFAULT_BLUR,
                            dtype: torch.dtype | None = None):
    """decode's first stage with the pre-filter (and its result before the Gaussian fit, issue 13):
    (filtered maps F, soft-argmax estimate [..., K, 2], scores [..., K], index [..., K]) of the maps
    blurred in float64 and rounded to the compute dtype of `dtype` (the maps' own dtype, by default;
    decode_with_info passes float64 maps with their original dtype, so that they are converted once
    and the gradient is summed in float64)."""
    F, soft64, scores, index = _prefiltered(heatmaps, window, temperature, blur, dtype or heatmaps.dtype)
    return F, soft64.to(F.dtype), scores, index


def _prefiltered(heatmaps: Tensor, window: int, temperature: float, blur: float, dtype: torch.dtype):
    """prefiltered_soft_argmax with the soft-argmax estimate unrounded (float64), as the fit's bias
    correction takes it (decode_with_index computes in float64 and rounds only its results)."""
    F = gaussian_blur(heatmaps.to(torch.float64), blur).to(compute_dtype(dtype))
    soft64, scores, index = decode_with_index(F.to(torch.float64), window=window, temperature=temperature)
    return F, soft64, scores.to(F.dtype), index


def decode_with_info(heatmaps: Tensor, *, window: int = DEFAULT_WINDOW, temperature: float = DEFAULT_TEMPERATURE,
                     blur: float | None = DEFAULT_BLUR, radius: int | None = None,
                     max_iterations: int = gaussian_fit.MAX_ITERATIONS) -> tuple[Tensor, Tensor, dict]:
    """decode, with what it found: (coords, scores, info). info: index (the filtered argmax), soft
    (the soft-argmax estimate, rounded) and, with the pre-filter, the fit's valid mask, A, lam, last
    step, iterations and its own centre, fit (the coordinates before the bias correction, where
    valid). radius and max_iterations override the fit's (experiments: benchmarks/edge_decoders.py)."""
    if blur is None:
        coords, scores, index = decode_with_index(heatmaps, window=window, temperature=temperature)
        return coords, scores, dict(index=index, soft=coords)
    h64 = heatmaps.to(torch.float64)
    F, soft64, scores, index = _prefiltered(h64, window, temperature, blur, heatmaps.dtype)
    soft = soft64.to(F.dtype)  # rounded, as decode_with_index's results: the fit's start and fallback
    coords, info = gaussian_fit.refine(h64, F, index, soft, soft64, window=window, temperature=temperature, blur=blur,
                                       dtype=heatmaps.dtype, radius=radius, max_iterations=max_iterations)
    info.update(index=index, soft=soft)
    return coords.to(compute_dtype(heatmaps.dtype)), scores, info
