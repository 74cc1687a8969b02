"""Siamese transform consistency: two views of one face, each view's heatmaps warped into the
other's frame and compared (the paper's third contribution).

A view is a crop made by a 2x3 matrix M (image -> crop pixels, shr_fan.data.crop_matrix), maybe
flipped. Heatmap pixels relate to crop pixels by the affine map of shr_ops.coords (stride s:
x_hm = (x + 0.5) / s - 0.5), so a point in view a's heatmap frame lies at

    T_ab = C · M_b · M_a⁻¹ · C⁻¹

in view b's heatmap frame (3x3 homogeneous matrices). Warping is a bilinear `grid_sample` whose
normalised coordinates (align_corners=False: -1 and 1 are the outer pixel edges) match our
convention that pixel centres sit at integers and a map of width w spans [-0.5, w - 0.5].
Channel k of a flipped view holds landmark k (its labels were permuted with the flip), so when
exactly one of the two views is flipped, warped channel k sits where the other view's channel
perm[k] does: `channel_order` gives the gather index.

Two forms of the loss, both symmetric in the views (a -> b and b -> a, averaged):
- heatmap: mean squared difference over the pixels of the target frame whose source lies inside
  the warped map (elsewhere the warped map is unknown, not zero), peak pixels weighted like the
  supervised loss;
- coords: both views decoded by the differentiable shr_ops.decode, view a's coordinates mapped by
  T_ab, and the Euclidean distance to view b's (heatmap pixels), averaged over landmarks.
`stop_gradient` says which views are fixed targets (detached, so the gradient stops there) in both
terms: "both" (in each term the view compared against is a fixed target: each view learns from
the other's prediction but is not pulled by its own), "none" (both sides move), "first" or
"second" (that view is a fixed teacher in both terms; only the other view learns from it).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

import shr_ops


def heatmap_frame(crop: int, size: int, dtype=torch.float64, device=None) -> Tensor:
    """Tensor[3, 3]: crop pixels -> heatmap pixels (stride crop / size, shr_ops.coords' convention)."""
    s = crop / size
    off = 0.5 / s - 0.5
    return torch.tensor([[1 / s, 0.0, off], [0.0, 1 / s, off], [0.0, 0.0, 1.0]], dtype=dtype, device=device)


def _homogeneous(matrix: Tensor) -> Tensor:
    """[..., 2, 3] -> [..., 3, 3]."""
    last = torch.zeros(*matrix.shape[:-2], 1, 3, dtype=matrix.dtype, device=matrix.device)
    last[..., 0, 2] = 1.0
    return torch.cat([matrix, last], dim=-2)


def view_transform(matrix_a: Tensor, matrix_b: Tensor, crop: int, size: int) -> Tensor:
    """Tensor[B, 3, 3] float64: heatmap pixels of view a -> heatmap pixels of view b, from the crop
    matrices Tensor[B, 2, 3] (image -> crop pixels) of the two views."""
    if matrix_a.shape != matrix_b.shape or matrix_a.shape[-2:] != (2, 3):
        raise ValueError(f"matrix_a and matrix_b must both be [B, 2, 3], got {tuple(matrix_a.shape)} and "
                         f"{tuple(matrix_b.shape)}")
    c = heatmap_frame(crop, size, device=matrix_a.device)
    ma, mb = _homogeneous(matrix_a.double()), _homogeneous(matrix_b.double())
    return c @ mb @ torch.linalg.inv(ma) @ torch.linalg.inv(c)


def transform_points(points: Tensor, transform: Tensor) -> Tensor:
    """points Tensor[B, K, 2] through transform Tensor[B, 3, 3] (in the points' dtype)."""
    t = transform.to(points.dtype)
    return points @ t[:, :2, :2].transpose(-1, -2) + t[:, None, :2, 2]


def channel_order(flip_a: Tensor, flip_b: Tensor, flip_permutation) -> Tensor:
    """LongTensor[B, K]: `aligned[:, c] = warped[:, order[c]]` puts a warped view's channels in the
    other view's order (the flip permutation where exactly one view is flipped; an involution, so
    the same order serves both directions)."""
    perm = torch.as_tensor(flip_permutation, dtype=torch.long, device=flip_a.device)
    ident = torch.arange(len(perm), device=flip_a.device)
    return torch.where((flip_a.bool() ^ flip_b.bool())[:, None], perm[None], ident[None])


def _pixel_to_normalised(h: int, w: int, dtype, device) -> Tensor:
    """Tensor[3, 3]: pixel (x, y) -> grid_sample's normalised coordinates (align_corners=False)."""
    return torch.tensor([[2.0 / w, 0.0, 1.0 / w - 1.0], [0.0, 2.0 / h, 1.0 / h - 1.0], [0.0, 0.0, 1.0]],
                        dtype=dtype, device=device)


def warp_heatmaps(heatmaps: Tensor, transform: Tensor) -> tuple[Tensor, Tensor]:
    """(warped Tensor[B, K, h, w], valid Tensor[B, 1, h, w] bool): heatmaps Tensor[B, K, h, w] of
    view a resampled (bilinear) in view b's frame, where transform Tensor[B, 3, 3] maps a's heatmap
    pixels to b's. `valid` marks the pixels whose source point lies inside a's map (between its
    outermost pixel centres, where bilinear sampling needs no padding)."""
    b, _, h, w = heatmaps.shape
    n = _pixel_to_normalised(h, w, torch.float64, heatmaps.device)
    inverse = torch.linalg.inv(transform.double())  # b's pixels -> a's pixels
    theta = (n @ inverse @ torch.linalg.inv(n))[:, :2].to(heatmaps.dtype)
    grid = F.affine_grid(theta, [b, 1, h, w], align_corners=False)
    warped = F.grid_sample(heatmaps, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    src_x = ((grid[..., 0] + 1) * w - 1) / 2
    src_y = ((grid[..., 1] + 1) * h - 1) / 2
    eps = 1e-4
    valid = (src_x >= -eps) & (src_x <= w - 1 + eps) & (src_y >= -eps) & (src_y <= h - 1 + eps)
    return warped, valid[:, None]


# Which views of a pair are fixed targets (their gradient stopped): TrainConfig.stop_gradient.
STOP_GRADIENT = ("none", "both", "first", "second")


def _detached(stop_gradient: str) -> tuple[bool, bool, bool, bool]:
    """(a in a->b, b in a->b, b in b->a, a in b->a): which side of each one-way term is detached."""
    if stop_gradient not in STOP_GRADIENT:
        raise ValueError(f"stop_gradient must be one of {', '.join(STOP_GRADIENT)}, got {stop_gradient!r}")
    if stop_gradient == "both":  # the target of each term
        return False, True, False, True
    first, second = stop_gradient == "first", stop_gradient == "second"
    return first, second, second, first


def _gather_channels(x: Tensor, order: Tensor) -> Tensor:
    index = order.view(*order.shape, *([1] * (x.dim() - 2))).expand_as(x)
    return torch.gather(x, 1, index)


def _one_way_heatmap(h_a: Tensor, h_b: Tensor, t_ab: Tensor, order: Tensor, detach_a: bool, detach_b: bool,
                     foreground_weight: float, threshold: float) -> Tensor:
    warped, valid = warp_heatmaps(h_a.detach() if detach_a else h_a, t_ab)
    aligned = _gather_channels(warped, order)
    target = h_b.detach() if detach_b else h_b
    weight = valid.to(aligned.dtype)
    if foreground_weight != 1.0:
        peak = torch.maximum(aligned.detach(), h_b.detach()) > threshold
        weight = weight * (1.0 + (foreground_weight - 1.0) * peak)
    count = valid.sum() * h_a.shape[1]
    return (weight * (aligned - target) ** 2).sum() / count.clamp_min(1)


def heatmap_consistency(h_a: Tensor, h_b: Tensor, t_ab: Tensor, order: Tensor, *, stop_gradient: str = "none",
                        foreground_weight: float = 1.0, threshold: float = 0.1) -> Tensor:
    """Scalar: the symmetric heatmap consistency of two views' heatmaps Tensor[B, K, h, w] (float32
    or float64), t_ab Tensor[B, 3, 3] from `view_transform`, order from `channel_order`. Pixels
    where either aligned map exceeds `threshold` weigh `foreground_weight`."""
    if h_a.shape != h_b.shape or h_a.dim() != 4:
        raise ValueError(f"h_a and h_b must both be [B, K, h, w], got {tuple(h_a.shape)} and {tuple(h_b.shape)}")
    a_ab, b_ab, b_ba, a_ba = _detached(stop_gradient)
    t_ba = torch.linalg.inv(t_ab.double())
    ab = _one_way_heatmap(h_a, h_b, t_ab, order, a_ab, b_ab, foreground_weight, threshold)
    ba = _one_way_heatmap(h_b, h_a, t_ba, order, b_ba, a_ba, foreground_weight, threshold)
    return 0.5 * (ab + ba)


def coordinate_consistency(h_a: Tensor, h_b: Tensor, t_ab: Tensor, order: Tensor, *, stop_gradient: str = "none",
                           mask: Tensor | None = None, decode=shr_ops.decode) -> Tensor:
    """Scalar: the symmetric distance (heatmap pixels) between view b's decoded landmarks and view
    a's mapped by t_ab (and the other way round), decoded with the differentiable shr_ops.decode.
    `mask` Tensor[B, K] bool (in view b's channel order) keeps only those landmarks (e.g. inside
    both frames). `decode`: the decoder (shr_ops.decode, or a backend's: shr_fan.backend)."""
    a_ab, b_ab, b_ba, a_ba = _detached(stop_gradient)
    c_a = decode(h_a if h_a.dtype == torch.float64 else h_a.float()).double()
    c_b = decode(h_b if h_b.dtype == torch.float64 else h_b.float()).double()
    t_ba = torch.linalg.inv(t_ab.double())
    ab = _gather_channels(transform_points(c_a.detach() if a_ab else c_a, t_ab), order)
    ba = _gather_channels(transform_points(c_b.detach() if b_ba else c_b, t_ba), order)
    da = torch.linalg.vector_norm(ab - (c_b.detach() if b_ab else c_b), dim=-1)
    db = torch.linalg.vector_norm(ba - (c_a.detach() if a_ba else c_a), dim=-1)
    if mask is None:
        return (0.5 * (da.mean() + db.mean())).to(h_a.dtype)
    m_b = mask.to(da.dtype)
    m_a = _gather_channels(m_b, order)  # the same landmarks in view a's channel order
    return (0.5 * ((da * m_b).sum() + (db * m_a).sum()) / m_b.sum().clamp_min(1)).to(h_a.dtype)
