"""Separable Gaussian filtering of heatmaps (differentiable, any device), shared by the SHR
decoder's optional pre-filter and the DARK/UDP baselines."""
from __future__ import annotations

import math

import torch
from torch import Tensor


def _band(n: int, kernel: Tensor, r: int) -> Tensor:
    """[n, n] matrix of a zero-padded 1D correlation with `kernel` (length 2r + 1)."""
    i = torch.arange(n, device=kernel.device)
    d = i[None, :] - i[:, None] + r  # column - row + r
    inside = (d >= 0) & (d <= 2 * r)
    return torch.where(inside, kernel[d.clamp(0, 2 * r)], torch.zeros((), dtype=kernel.dtype, device=kernel.device))


def gaussian_blur(heatmaps: Tensor, sigma: float, *, radius: int | None = None) -> Tensor:
    """Blur each map of Tensor[..., H, W] with a normalised Gaussian of std `sigma` pixels,
    truncated at `radius` (default ceil(3 sigma)), zero outside the frame. Same shape and dtype.

    Computed as two banded matrix products (rows, then columns): on the CPU about ten times
    faster than a depthwise conv2d of the same kernel for heatmap-sized maps."""
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"gaussian_blur: sigma must be a finite number > 0, got {sigma}")
    r = int(math.ceil(3 * sigma)) if radius is None else int(radius)
    t = torch.arange(-r, r + 1, dtype=heatmaps.dtype, device=heatmaps.device)
    k = torch.exp(-(t * t) / (2 * sigma * sigma))
    k = k / k.sum()
    height, width = heatmaps.shape[-2:]
    return _band(height, k, r) @ heatmaps @ _band(width, k, r).T


def opencv_kernel_sigma(kernel: int) -> float:
    """The sigma OpenCV's GaussianBlur derives from an odd kernel size (when given sigma 0)."""
    return 0.3 * ((kernel - 1) * 0.5 - 1) + 0.8
