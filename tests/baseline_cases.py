"""Deterministic inputs for the baseline-codec checks against the projects' own code
(tests/test_baselines_face_alignment.py, tests/test_baselines_mmpose.py and the script that made
tests/data/mmpose_reference.json). Plain numpy, nothing of shr_ops: the same arrays on any
machine (numpy's PCG64 bit stream and ``Generator.random`` doubles are stable across versions).

Landmarks are in this project's heatmap frame (pixel j centred at x = j), float64.
"""
from __future__ import annotations

import numpy as np

# (H, W) of the maps: square, and non-square both ways (catches swapped axes).
SIZES = ((64, 64), (48, 64), (64, 40))
SIGMAS = (1.0, 1.5, 2.0, 2.5, 3.0)
DECODER_SIGMAS = (1.0, 1.5, 2.0, 3.0)
CONDITIONS = ("clean", "noise", "random", "ties")


def landmark_cases(size: tuple[int, int], seed: int) -> np.ndarray:
    """Array[32, 2] (x, y): 8 anywhere over the frame and 2 px beyond it, 8 near the top/left
    edges, 8 near the bottom/right edges, 4 on half-integers (where rounding ties), 4 outside."""
    height, width = size
    rng = np.random.default_rng(seed)
    wh = np.array([width, height], dtype=np.float64)
    anywhere = -2.0 + rng.random((8, 2)) * (wh + 3.0)
    top_left = -1.5 + rng.random((8, 2)) * np.array([8.5, 39.0])
    top_left[4:] = top_left[4:, ::-1]  # half near the left edge, half near the top
    bottom_right = wh - 8.0 + rng.random((8, 2)) * 8.5
    bottom_right[:4, 1] = rng.random(4) * (height - 1)
    bottom_right[4:, 0] = rng.random(4) * (width - 1)
    half = np.floor(rng.random((4, 2)) * (wh - 1)) + 0.5
    outside = np.where(rng.random((4, 2)) < 0.5, -1.0 - rng.random((4, 2)) * 8, wh + rng.random((4, 2)) * 8)
    outside[:2, 1] = rng.random(2) * (height - 1)
    return np.concatenate([anywhere, top_left, bottom_right, half, outside])


def gaussian_maps(landmarks: np.ndarray, size: tuple[int, int], sigma: float) -> np.ndarray:
    """Array[K, H, W] float32: exact-centre Gaussians exp(-d^2 / (2 sigma^2)) over the whole frame."""
    height, width = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    d2 = (x[None] - landmarks[:, 0, None, None]) ** 2 + (y[None] - landmarks[:, 1, None, None]) ** 2
    return np.exp(-d2 / (2 * sigma * sigma)).astype(np.float32)


def decoder_maps(size: tuple[int, int], sigma: float, condition: str, seed: int) -> np.ndarray:
    """Array[K, H, W] float32 maps for the decoders: Gaussians at landmark_cases(size, seed) as they
    are ('clean'), plus uniform noise of amplitude 0.1 ('noise'), pure noise ('random'), or
    quantised to quarters (many equal neighbours and equal maxima: 'ties')."""
    clean = gaussian_maps(landmark_cases(size, seed), size, sigma)
    rng = np.random.default_rng(seed + 1000)
    if condition == "clean":
        return clean
    if condition == "noise":
        return (clean + 0.1 * (rng.random(clean.shape) - 0.5)).astype(np.float32)
    if condition == "random":
        return rng.random(clean.shape).astype(np.float32)
    if condition == "ties":
        return (np.floor(clean * 4) / 4).astype(np.float32)
    raise ValueError(condition)


def case_seed(size: tuple[int, int], sigma: float) -> int:
    """The seed of one (size, sigma) case."""
    return int(size[0] * 1000 + size[1] * 10 + round(sigma * 2))
