"""A numpy heatmap codec written per keypoint, in the style of mmpose's MSRA/UDP heatmap codecs,
for one measurement only: the per-image speed of shr_ops against the usual Python pipeline
(benchmarks/test_bench_ops.py::test_per_image). Not used by shr_ops or shr_fan.

One image: keypoints Array[K, 2] (x, y) in heatmap pixels -> heatmaps Array[K, H, W] float32 ->
keypoints Array[K, 2] and scores Array[K]. Encode renders each keypoint's Gaussian on a meshgrid
at its subpixel centre; decode takes each map's argmax and refines it, either by the quarter-pixel
shift toward the larger neighbour or by DARK (Gaussian-smoothed log map, one Taylor step).
"""
from __future__ import annotations

import cv2
import numpy as np


def encode(keypoints: np.ndarray, visible: np.ndarray, size: tuple[int, int], sigma: float) -> np.ndarray:
    """Array[K, 2] -> Array[K, H, W] float32; invisible keypoints give zero maps."""
    height, width = size
    heatmaps = np.zeros((len(keypoints), height, width), dtype=np.float32)
    x = np.arange(0, width, 1, dtype=np.float32)
    y = np.arange(0, height, 1, dtype=np.float32)[:, None]
    for k in range(len(keypoints)):
        if not visible[k]:
            continue
        mu_x, mu_y = keypoints[k]
        heatmaps[k] = np.exp(-((x - mu_x) ** 2 + (y - mu_y) ** 2) / (2 * sigma**2))
    return heatmaps


def argmax_locations(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Array[K, H, W] -> (integer locations Array[K, 2] as float32 (x, y), peak values Array[K])."""
    k, height, width = heatmaps.shape
    flat = heatmaps.reshape(k, -1)
    index = np.argmax(flat, axis=1)
    ys, xs = np.unravel_index(index, (height, width))
    locations = np.stack((xs, ys), axis=-1).astype(np.float32)
    scores = np.amax(flat, axis=1)
    locations[scores <= 0] = -1
    return locations, scores


def decode_quarter(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Argmax, then a quarter-pixel shift toward the larger neighbour on each axis."""
    locations, scores = argmax_locations(heatmaps)
    _, height, width = heatmaps.shape
    for k in range(len(locations)):
        heatmap = heatmaps[k]
        px, py = int(locations[k, 0]), int(locations[k, 1])
        if 1 < px < width - 1 and 1 < py < height - 1:
            diff = np.array([heatmap[py, px + 1] - heatmap[py, px - 1], heatmap[py + 1, px] - heatmap[py - 1, px]])
            locations[k] += np.sign(diff) * 0.25
    return locations, scores


def decode_dark(heatmaps: np.ndarray, blur_kernel: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """Argmax, then DARK: smooth each map (keeping its peak height), take the log and make one
    Newton step with the gradient and Hessian at the argmax."""
    locations, scores = argmax_locations(heatmaps)
    heatmaps = heatmaps.copy()
    _, height, width = heatmaps.shape
    border = (blur_kernel - 1) // 2
    for k in range(len(heatmaps)):
        peak = heatmaps[k].max()
        padded = np.zeros((height + 2 * border, width + 2 * border), dtype=np.float32)
        padded[border:-border, border:-border] = heatmaps[k]
        padded = cv2.GaussianBlur(padded, (blur_kernel, blur_kernel), 0)
        smoothed = padded[border:-border, border:-border]
        heatmaps[k] = smoothed * (peak / max(smoothed.max(), 1e-12))
    np.maximum(heatmaps, 1e-10, out=heatmaps)
    np.log(heatmaps, out=heatmaps)
    for k in range(len(locations)):
        heatmap = heatmaps[k]
        px, py = int(locations[k, 0]), int(locations[k, 1])
        if 1 < px < width - 2 and 1 < py < height - 2:
            dx = 0.5 * (heatmap[py, px + 1] - heatmap[py, px - 1])
            dy = 0.5 * (heatmap[py + 1, px] - heatmap[py - 1, px])
            dxx = 0.25 * (heatmap[py, px + 2] - 2 * heatmap[py, px] + heatmap[py, px - 2])
            dxy = 0.25 * (heatmap[py + 1, px + 1] - heatmap[py - 1, px + 1] - heatmap[py + 1, px - 1]
                          + heatmap[py - 1, px - 1])
            dyy = 0.25 * (heatmap[py + 2, px] - 2 * heatmap[py, px] + heatmap[py - 2, px])
            if dxx * dyy - dxy**2 != 0:
                hessian = np.array([[dxx, dxy], [dxy, dyy]])
                locations[k] -= np.linalg.inv(hessian) @ np.array([dx, dy])
    return locations, scores
