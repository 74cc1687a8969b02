"""Coordinate maps between an image (crop) and its heatmaps.

The convention of the whole project (docs/coordinates.md): pixel (row i, col j) has its centre at
x = j, y = i, so an image of width W spans x in [-0.5, W - 0.5]. A heatmap with stride s covers
the same area with s x s image pixels per heatmap pixel:

    x_hm = (x_img + 0.5) / s - 0.5        x_img = (x_hm + 0.5) * s - 0.5

Both are exact inverses; nothing is rounded. UDP (Huang et al., CVPR 2020) aligns the corner
pixel centres instead, ``x_hm = x_img * (W_hm - 1) / (W_img - 1)``; its pair is given too, for
the UDP codec only.
"""
from __future__ import annotations

from torch import Tensor


def image_to_heatmap(points: Tensor, stride: float) -> Tensor:
    """Tensor[..., 2] in image pixels -> Tensor[..., 2] in heatmap pixels (stride = image / heatmap size)."""
    return (points + 0.5) / stride - 0.5


def heatmap_to_image(points: Tensor, stride: float) -> Tensor:
    """Exact inverse of :func:`image_to_heatmap`."""
    return (points + 0.5) * stride - 0.5


def udp_image_to_heatmap(points: Tensor, image_size: int, heatmap_size: int) -> Tensor:
    """UDP's map: corner pixel centres coincide, ``x_hm = x_img * (W_hm - 1) / (W_img - 1)``."""
    return points * ((heatmap_size - 1) / (image_size - 1))


def udp_heatmap_to_image(points: Tensor, image_size: int, heatmap_size: int) -> Tensor:
    """Exact inverse of :func:`udp_image_to_heatmap`."""
    return points * ((image_size - 1) / (heatmap_size - 1))
