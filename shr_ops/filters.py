"""Separable Gaussian filtering of heatmaps (differentiable, any device), shared by the SHR
decoder's optional pre-filter and the DARK/UDP baselines."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def gaussian_blur(heatmaps: Tensor, sigma: float, *, radius: int | None = None) -> Tensor:
    """Blur each map of Tensor[..., H, W] with a normalised Gaussian of std `sigma` pixels,
    truncated at `radius` (default ceil(3 sigma)), zero outside the frame. Same shape and dtype."""
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"gaussian_blur: sigma must be a finite number > 0, got {sigma}")
    r = int(math.ceil(3 * sigma)) if radius is None else int(radius)
    t = torch.arange(-r, r + 1, dtype=heatmaps.dtype, device=heatmaps.device)
    k = torch.exp(-(t * t) / (2 * sigma * sigma))
    k = k / k.sum()
    lead, (height, width) = heatmaps.shape[:-2], heatmaps.shape[-2:]
    if heatmaps.numel() == 0:
        return heatmaps.clone()
    x = heatmaps.reshape(-1, 1, height, width)
    x = F.conv2d(x, k.view(1, 1, 1, -1), padding=(0, r))
    x = F.conv2d(x, k.view(1, 1, -1, 1), padding=(r, 0))
    return x.reshape(*lead, height, width)


def opencv_kernel_sigma(kernel: int) -> float:
    """The sigma OpenCV's GaussianBlur derives from an odd kernel size (when given sigma 0)."""
    return 0.3 * ((kernel - 1) * 0.5 - 1) + 0.8
