"""A 2D 68-point face template in the iBUG 300-W point order, and random faces from it.

Order (0-based): jaw 0-16 (image left to right, chin at 8), brows 17-21 and 22-26, nose bridge
27-30, nostrils 31-35, eyes 36-41 (image-left eye, 36 outer corner, 39 inner) and 42-47
(42 inner, 45 outer), outer lip 48-59 (48 left corner, 54 right corner), inner lip 60-67.
Coordinates of the template: face width about 1, centred on the nose, y pointing down.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

NUM_POINTS = 68


def _arc(cx, cy, ax, ay, start, stop, n):
    t = torch.linspace(start, stop, n, dtype=torch.float64)
    return torch.stack([cx + ax * torch.cos(t), cy + ay * torch.sin(t)], dim=-1)


def _eye(cx, cy, w, h):
    # 6 points from the image-left corner: two upper lid, the right corner, two lower lid
    # (36 outer ... 39 inner for the image-left eye; 42 inner ... 45 outer for the other).
    angles = [math.pi, 4 * math.pi / 3, 5 * math.pi / 3, 0.0, math.pi / 3, 2 * math.pi / 3]
    t = torch.tensor(angles, dtype=torch.float64)
    return torch.stack([cx + w / 2 * torch.cos(t), cy + h / 2 * torch.sin(t)], dim=-1)


def mean_shape() -> Tensor:
    """Tensor[68, 2]: the template, in iBUG order."""
    jaw = _arc(0.0, -0.05, 0.5, 0.62, math.pi + 0.12, -0.12, 17)  # y down: sin > 0 is below
    brow_l = _arc(-0.22, -0.24, 0.17, 0.07, math.pi + 0.2, 2 * math.pi - 0.3, 5)
    brow_r = _arc(0.22, -0.24, 0.17, 0.07, math.pi + 0.3, 2 * math.pi - 0.2, 5)
    bridge = torch.stack([torch.zeros(4, dtype=torch.float64), torch.linspace(-0.17, 0.08, 4, dtype=torch.float64)], -1)
    nostrils = torch.stack([torch.linspace(-0.09, 0.09, 5, dtype=torch.float64),
                            torch.tensor([0.12, 0.14, 0.15, 0.14, 0.12], dtype=torch.float64)], -1)
    eye_l = _eye(-0.2, -0.12, 0.16, 0.06)
    eye_r = _eye(0.2, -0.12, 0.16, 0.06)
    lip_outer = torch.cat([
        _arc(0.0, 0.31, 0.2, 0.07, math.pi, 2 * math.pi, 7),  # 48..54 upper lip, left to right
        _arc(0.0, 0.31, 0.2, 0.1, 0.2 * math.pi, 0.8 * math.pi, 5),  # 55..59 lower lip, right to left
    ])
    lip_inner = torch.cat([
        _arc(0.0, 0.315, 0.13, 0.025, math.pi, 2 * math.pi, 5),  # 60..64
        _arc(0.0, 0.315, 0.13, 0.03, 0.25 * math.pi, 0.75 * math.pi, 3),  # 65..67
    ])
    pts = torch.cat([jaw, brow_l, brow_r, bridge, nostrils, eye_l, eye_r, lip_outer, lip_inner])
    assert pts.shape == (NUM_POINTS, 2)
    return pts


def random_faces(n: int, crop: int, *, generator: torch.Generator | None = None, scale=(0.55, 0.8),
                 max_rotation_deg: float = 30.0, max_shift: float = 0.08, jitter: float = 0.02) -> Tensor:
    """Tensor[n, 68, 2] of faces in a crop x crop image (pixel-centre convention): the template
    with per-point jitter (fraction of the face width), a random similarity transform (face
    width = scale x crop, rotation, shift as a fraction of the crop), continuous coordinates."""
    g = generator
    base = mean_shape()[None].expand(n, -1, -1)
    pts = base + jitter * torch.randn(n, NUM_POINTS, 2, generator=g, dtype=torch.float64)
    s = (scale[0] + (scale[1] - scale[0]) * torch.rand(n, 1, 1, generator=g, dtype=torch.float64)) * crop
    a = torch.deg2rad((2 * torch.rand(n, generator=g, dtype=torch.float64) - 1) * max_rotation_deg)
    rot = torch.stack([torch.stack([a.cos(), -a.sin()], -1), torch.stack([a.sin(), a.cos()], -1)], -2)
    shift = (2 * torch.rand(n, 1, 2, generator=g, dtype=torch.float64) - 1) * max_shift * crop
    centre = (crop - 1) / 2.0
    return (pts * s) @ rot.transpose(-1, -2) + centre + shift
