"""The codec's crop geometry: how crop pixels map to heatmap pixels and back, and which crop sizes
the FAN accepts.

FAN's heatmaps have a stride of 4 (a 256 px crop gives 64 x 64 maps). Landmarks in crop pixels
map to heatmap pixels by shr_ops.coords (pixel centres at integers on both grids, docs/coordinates.md):

    x_hm = (x_crop + 0.5) / s - 0.5        x_crop = (x_hm + 0.5) * s - 0.5        s = crop / (crop / 4)

`targets` renders the training targets of landmarks given in crop pixels with a codec's encoder;
`decode_to_crop` is its inverse, the codec's decoder followed by the map back to crop pixels.
Both take anything with `crop` (and `target_scale` for targets), e.g. a TrainConfig.
"""
from __future__ import annotations

import torch

from shr_ops import coords

from .errors import UserError

STRIDE = 4  # FAN's stem: a stride-2 convolution and a 2x2 pooling


def heatmap_side(crop: int) -> int:
    """The heatmap side of a crop side."""
    return crop // STRIDE


def heatmap_size(cfg) -> int:
    """The heatmap side of cfg.crop."""
    return heatmap_side(cfg.crop)


def crop_multiple(model_config) -> int:
    """The crop sides a FAN accepts are the multiples of this: the stride times the 2^depth of its
    hourglasses (each level halves the map and adds it back upsampled)."""
    return STRIDE * 2 ** model_config.depth


def check_crop(crop, model_config, preset: str = "") -> int:
    """`crop` if a FAN of `model_config` can run on crops of that side; else UserError naming --crop."""
    m = crop_multiple(model_config)
    if isinstance(crop, bool) or not isinstance(crop, int) or crop < m or crop % m:
        lower = max(m, (crop // m) * m) if isinstance(crop, int) and not isinstance(crop, bool) else m
        near = sorted({lower, lower + m})
        what = f"the {preset} preset" if preset else "this model"
        raise UserError(f"--crop {crop}: expected a multiple of {m} (heatmaps are crop / {STRIDE}, and {what} "
                        f"halves them {model_config.depth} times), e.g. {' or '.join(map(str, near))}")
    return crop


def to_heatmap(points: torch.Tensor, crop: int) -> torch.Tensor:
    """Tensor[..., 2] in crop pixels -> heatmap pixels."""
    return coords.image_to_heatmap(points, crop / heatmap_side(crop))


def to_crop(points: torch.Tensor, crop: int) -> torch.Tensor:
    """Tensor[..., 2] in heatmap pixels -> crop pixels (the exact inverse of to_heatmap)."""
    return coords.heatmap_to_image(points, crop / heatmap_side(crop))


def targets(codec, landmarks: torch.Tensor, cfg) -> torch.Tensor:
    """Heatmap targets [B, K, S/4, S/4] of landmarks [B, K, 2] (crop pixels), rendered on their device
    by the codec's encoder and multiplied by cfg.target_scale."""
    size = heatmap_size(cfg)
    return codec.encode(to_heatmap(landmarks, cfg.crop).float(), (size, size)) * cfg.target_scale


def decode_to_crop(codec, heatmaps: torch.Tensor, cfg) -> torch.Tensor:
    """The inverse of `targets`: landmarks [B, K, 2] float64 in crop pixels, decoded by the codec."""
    return to_crop(codec.decode(heatmaps).double(), cfg.crop)
