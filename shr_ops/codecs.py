"""Baseline heatmap codecs, each as its own project runs it, batched and vectorised on the same
shapes and devices as shr_ops.encode/decode, so that the cost of each encoding and decoding
choice can be measured (the codec study: docs/codec_study.md, ``shr-fan codec-error``).

Coordinates: every function here takes and returns landmarks in this project's convention
(docs/coordinates.md): (x, y) in heatmap pixels, pixel (row i, col j) centred at x = j, y = i. Each
project's own heatmap frame is expressed in it below. The projects' image <-> heatmap maps are
``shr_ops.coords`` (they invert exactly, so they add nothing to a round trip's error).

Sources (read, not guessed; the tests run the real face-alignment package and pin figures
computed with mmpose's and OpenCV's code):
  - face-alignment 1.5.0 (PyPI ``face-alignment==1.5.0``), ``face_alignment/utils.py``:
    ``_gaussian``, ``draw_gaussian``, ``transform``, ``create_target_heatmap``,
    ``get_preds_fromhm`` / ``_get_preds_fromhm``.
  - mmpose (github.com/open-mmlab/mmpose): ``mmpose/codecs/msra_heatmap.py`` @24bd295c,
    ``mmpose/codecs/udp_heatmap.py`` @4a6e88e8, ``mmpose/codecs/utils/gaussian_heatmap.py``
    @394b1740, ``mmpose/codecs/utils/post_processing.py`` @0b9a7cfc,
    ``mmpose/codecs/utils/refinement.py`` @0b9a7cfc.
  - HRNet (github.com/leoxiaobin/deep-high-resolution-net.pytorch @2ad80f22):
    ``lib/dataset/JointsDataset.py`` ``generate_target`` (the encoder mmpose ported unchanged),
    ``lib/core/inference.py`` ``get_final_preds``.
  - OpenCV (github.com/opencv/opencv @02eb4fad), ``modules/imgproc/src/smooth.dispatch.cpp``,
    ``getGaussianKernelBitExact``: the kernel of ``cv2.GaussianBlur(src, (k, k), 0)``.

Encoders: ``(landmarks Tensor[..., K, 2], size, sigma, *, visible=None) -> Tensor[..., K, H, W]``
  - ``encode_rounded``: MSRA / SimpleBaseline / HRNet, mmpose's ``generate_gaussian_heatmaps``
    (``MSRAHeatmap(unbiased=False)``) and HRNet's ``generate_target``. Centre pixel
    ``mu = int(x + 0.5)`` (numpy's truncation: rounding half up inside the frame); a
    ``ceil(6 sigma + 1)``-point grid whose centre is point ``floor((6 sigma + 1) / 2)``, pasted
    from column ``left = int(mu - 3 sigma)`` to ``int(mu + 3 sigma + 1)`` (exclusive), clipped to
    the frame; a map whose square misses the frame (``left >= W`` or ``right < 0``, either axis)
    is all zero (mmpose also zeroes its weight). For sigma 1, 2, 3 the square is
    ``|j - mu| <= 3 sigma``; for a non-integer ``3 sigma`` (sigma 1.5: 10 points, offsets -5..4)
    ``int()`` truncates toward zero, so where ``mu < 3 sigma`` the Gaussian lands 1 px inward
    (right/down) of ``mu``: ``edge_shift=True`` (default) reproduces that, ``False`` keeps it at
    ``mu``.
  - ``encode_udp``: UDP, mmpose's ``generate_udp_gaussian_heatmaps``: the same square and
    the same edge shift, the Gaussian evaluated at the exact centre ``x`` inside it. UDP's other
    half is its coordinate map, ``shr_ops.coords.udp_image_to_heatmap``.
  - ``encode_fa``: face-alignment 1.5's targets, ``create_target_heatmap`` =
    ``draw_gaussian(hm, transform(p + 1, ...).int() + 1, 2)``. Its heatmap frame is
    corner-aligned (``get_preds_fromhm`` puts pixel j at j + 0.5), ``u = x + 0.5``, and
    ``.int()`` truncates, so the centre pixel is ``c = trunc(x + 0.5)``: rounding, as in
    ``encode_rounded``. The kernel is the precomputed ``_gaussian(size=13)``: std
    0.25 x 13 = **3.25 px** whatever sigma is, on the 13 x 13 square ``|j - c| <= 6``.
    ``draw_gaussian``'s slice start ``max(1, -ul[0])`` (ul = c - 5, 1-based) is one or two short
    where ``ul < 1``: within 5 px of the top and left edges the peak moves inward, by 1 px where
    c = 5 and by 2 px where c <= 4, and the far side of the kernel is cut at 4-5 px from it.
    ``edge_shift=True`` (default: what face-alignment does) reproduces that, ``False`` draws the
    kernel at c. face-alignment draws with sigma = 2 only (its box ``floor(p -+ 3 sigma)`` and
    the fixed 13 x 13 kernel disagree for any other sigma), so ``encode_fa`` takes sigma = 2 only.
  - SHR's own encoder is ``shr_ops.encode`` (exact centre, untruncated unless ``radius``). It is
    also DARK's: mmpose's ``generate_unbiased_gaussian_heatmaps`` (``MSRAHeatmap(unbiased=True)``)
    renders the same exact-centre Gaussian over the whole frame, except that it zeroes a map
    whose 3-sigma square lies wholly outside the frame (x >= W + 3 sigma or x < -3 sigma - 1),
    where shr_ops.encode renders the tail (below 0.003 for sigma 2).

Decoders: ``(heatmaps Tensor[..., K, H, W]) -> Tensor[..., K, 2]`` (float32, float64 for float64)
  - ``decode_argmax``: the integer argmax (first maximum; ``shr_ops.decode`` with ``window=1``).
  - ``decode_quarter``: argmax moved 0.25 px toward the larger neighbour on each axis (the sign
    of the difference; no move on a tie). ``rule="mmpose"`` (default, mmpose's
    ``get_heatmap_maximum`` + ``refine_keypoints``): x moves where ``1 < x < W - 1 and y > 0``,
    y where ``1 < y < H - 1 and x > 0``; a map whose maximum is <= 0 decodes to (-1, -1).
    ``rule="hrnet"`` (HRNet's ``get_final_preds``): both axes move where
    ``1 < x < W - 1 and 1 < y < H - 1``; a map whose maximum is <= 0 decodes to (0, 0).
  - ``decode_fa``: face-alignment's ``get_preds_fromhm``: argmax, then +-0.25 px on both axes
    toward the larger neighbour where ``0 < x < 63 and 0 < y < 63`` (its hard-coded 63), then
    its -0.5, which takes its corner-aligned frame to ours: the result is ``argmax + shift``.
    On maps narrower than 64 px face-alignment's 63 would read outside the map (numba does not
    check bounds); there the rule is ``0 < x < W - 1`` (``0 < y < H - 1``). It divides the flat
    index by H for the row, which is the row only on square maps; the row here is ``index // W``.
  - ``decode_dark``: DARK as mmpose runs it (``refine_keypoints_dark``): each map blurred by
    ``cv2.GaussianBlur(ksize=blur_kernel, sigma=0)`` with a zero border (mmpose pads by the
    kernel radius), rescaled to its original maximum, ``log(max(., 1e-10))``, one Newton step
    ``-H^-1 g`` at the argmax with central differences of step 1 for g and step 2 for H, applied
    where ``1 < x < W - 2 and 1 < y < H - 2`` and ``det H != 0``. A map whose maximum is <= 0
    decodes to (-1, -1).
  - ``decode_udp``: mmpose's ``refine_keypoints_dark_udp``: the same blur, ``clip(., 1e-3, 50)``,
    log, edge padding, step-1 differences for g and H, ``-(H + eps I)^-1 g`` (eps = float32's)
    everywhere. A map whose maximum is <= 0 decodes to (-1, -1) (mmpose's own step there reads
    its neighbours from the adjacent map of its flattened array).
  - ``decode_integral``: global soft-argmax / integral regression (Sun et al., ECCV 2018):
    ``p = softmax(beta * h)`` over the whole map, result ``sum p * position``.
  - SHR's own decoder is ``shr_ops.decode`` (local-window soft-argmax).

The blur of DARK and UDP is OpenCV's, kernel for kernel (``opencv_gaussian_kernel``): for
``ksize`` 1, 3, 5, 7 and 9 with sigma 0 OpenCV uses fixed tables (1; 1 2 1 / 4; 1 4 6 4 1 / 16;
1 3.5 7 9 7 3.5 1 / 32; 4 13 30 51 60 51 30 13 4 / 256), not its sigma formula
``0.3 ((k - 1) / 2 - 1) + 0.8``, which it uses from 11 on. Their float results match mmpose's to
float32 rounding (the order of the sums differs).

Rounding inside the baseline encoders is the behaviour being measured, not a shortcut.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from . import defaults, ops
from .reference import compute_dtype, split_missing

# ------------------------------------------------------------------------------------ encoders


def _outer(gy: Tensor, gx: Tensor, keep: Tensor, out_dtype: torch.dtype) -> Tensor:
    """Separable maps gy[..., K, H] x gx[..., K, W], zero where `keep` [..., K] is False."""
    return (gy[..., :, None] * gx[..., None, :] * keep[..., None, None]).to(out_dtype)


def _mmpose_axis(coord: Tensor, n: int, sigma: float, exact: bool, edge_shift: bool) -> tuple[Tensor, Tensor]:
    """One axis of mmpose's square Gaussian (generate_gaussian_heatmaps, exact=False, and
    generate_udp_gaussian_heatmaps, exact=True): the profile [..., K, n] and whether the square
    reaches the frame on this axis ([..., K])."""
    radius = 3.0 * sigma
    extent = 2.0 * radius + 1.0
    points = math.ceil(extent)  # np.arange(0, 2 * radius + 1, 1)
    x0 = math.floor(extent / 2)  # gaussian_size // 2
    mu = torch.trunc(coord + 0.5)  # (keypoints + 0.5).astype(np.int64)
    if edge_shift:
        left = torch.trunc(mu - radius)  # (mu - radius).astype(np.int64)
        right = torch.trunc(mu + radius + 1)
    else:
        left = mu - x0
        right = left + points
    centre = left + x0 + (coord - mu if exact else 0.0)
    j = torch.arange(n, dtype=coord.dtype, device=coord.device)
    jj = j.expand(*coord.shape, n)
    inside = (jj >= left[..., None]) & (jj < torch.minimum(right, left + points)[..., None])
    profile = torch.exp(-((jj - centre[..., None]) ** 2) / (2.0 * sigma * sigma)) * inside
    return profile, (left < n) & (right >= 0)


def _encode_mmpose(landmarks, size, sigma, visible, exact: bool, edge_shift: bool, op: str) -> Tensor:
    size, sigma = ops.check_landmarks(landmarks, size, sigma, visible, op)
    height, width = size
    c, valid = split_missing(landmarks.to(torch.float64), visible)
    gx, kx = _mmpose_axis(c[..., 0], width, sigma, exact, edge_shift)
    gy, ky = _mmpose_axis(c[..., 1], height, sigma, exact, edge_shift)
    return _outer(gy, gx, valid & kx & ky, landmarks.dtype)


def encode_rounded(landmarks: Tensor, size, sigma: float, *, visible: Tensor | None = None,
                   edge_shift: bool = True) -> Tensor:
    """MSRA/HRNet targets (mmpose's generate_gaussian_heatmaps): a Gaussian at the centre pixel
    ``int(x + 0.5)`` on its 3-sigma square (module docstring). Tensor[..., K, 2] -> [..., K, H, W]."""
    return _encode_mmpose(landmarks, size, sigma, visible, False, edge_shift, "encode_rounded")


def encode_udp(landmarks: Tensor, size, sigma: float, *, visible: Tensor | None = None,
               edge_shift: bool = True) -> Tensor:
    """UDP targets (mmpose's generate_udp_gaussian_heatmaps): the Gaussian at the exact centre on
    the square of encode_rounded. Tensor[..., K, 2] -> [..., K, H, W]."""
    return _encode_mmpose(landmarks, size, sigma, visible, True, edge_shift, "encode_udp")


FA_KERNEL_STD = 0.25 * 13  # face_alignment.utils._gaussian(size=13): sigma 0.25 of the kernel width
FA_SIGMA = 2.0  # the only sigma face-alignment draws with (create_target_heatmap)


def _fa_axis(coord: Tensor, n: int, edge_shift: bool) -> Tensor:
    """One axis of face-alignment's draw_gaussian(hm, c + 1, 2) at the centre pixel c."""
    c = torch.trunc(coord + 0.5)  # transform(...).int() of u = x + 0.5
    if edge_shift:
        ul = c - 5  # floor(point - 3 sigma), 1-based
        centre = c + torch.where(ul >= 1, 0.0, torch.where(ul == 0, 1.0, 2.0))
    else:
        centre = c
    j = torch.arange(n, dtype=coord.dtype, device=coord.device)
    jj = j.expand(*coord.shape, n)
    d = jj - centre[..., None]
    inside = (jj >= c[..., None] - 6) & (jj <= c[..., None] + 6) & (d.abs() <= 6)
    return torch.exp(-(d * d) / (2.0 * FA_KERNEL_STD ** 2)) * inside


def encode_fa(landmarks: Tensor, size, sigma: float = FA_SIGMA, *, visible: Tensor | None = None,
              edge_shift: bool = True) -> Tensor:
    """face-alignment 1.5's targets: its 13 x 13 kernel of std 3.25 px at the centre pixel
    ``trunc(x + 0.5)``, with draw_gaussian's top/left edge shift unless ``edge_shift=False``
    (module docstring). sigma must be 2. Tensor[..., K, 2] -> [..., K, H, W]."""
    size, sigma = ops.check_landmarks(landmarks, size, sigma, visible, "encode_fa")
    if sigma != FA_SIGMA:
        raise ValueError(f"encode_fa: sigma must be {FA_SIGMA:g}, the only value face-alignment draws with "
                         f"(its kernel is a fixed 13 x 13 Gaussian of std {FA_KERNEL_STD:g} px), got {sigma:g}")
    height, width = size
    c, valid = split_missing(landmarks.to(torch.float64), visible)
    return _outer(_fa_axis(c[..., 1], height, edge_shift), _fa_axis(c[..., 0], width, edge_shift), valid,
                  landmarks.dtype)


# ------------------------------------------------------------------------------------ decoders


def _checked_heatmaps(heatmaps, op) -> Tensor:
    """The heatmaps, checked as shr_ops.decode checks them, in their compute dtype."""
    ops.check_heatmaps(heatmaps, op)
    return heatmaps.to(compute_dtype(heatmaps.dtype))


class _Peaks:
    """The argmax (row mi, column mj) of each map, its value, and clamped lookups around it."""

    def __init__(self, maps: Tensor):
        self.height, self.width = maps.shape[-2:]
        flat = maps.flatten(-2)
        self.index = flat.argmax(-1)
        self.value = flat.gather(-1, self.index[..., None]).squeeze(-1)
        self.mi = self.index // self.width
        self.mj = self.index % self.width

    def at(self, maps: Tensor, di: int, dj: int) -> Tensor:
        """maps[..., mi + di, mj + dj], indices clamped to the frame (edge padding)."""
        i = (self.mi + di).clamp(0, self.height - 1)
        j = (self.mj + dj).clamp(0, self.width - 1)
        return maps.flatten(-2).gather(-1, (i * self.width + j)[..., None]).squeeze(-1)

    def coords(self, dtype: torch.dtype, dx: Tensor | float = 0.0, dy: Tensor | float = 0.0,
               missing: float | None = None) -> Tensor:
        """argmax + (dx, dy); where the maximum is <= 0 and `missing` is given: (missing, missing)."""
        out = torch.stack([self.mj.to(dtype) + dx, self.mi.to(dtype) + dy], dim=-1)
        if missing is not None:
            out = torch.where((self.value <= 0)[..., None], torch.full_like(out, missing), out)
        return out


def decode_argmax(heatmaps: Tensor) -> Tensor:
    """Integer argmax (first maximum). Tensor[..., K, H, W] -> Tensor[..., K, 2]."""
    return ops.decode(heatmaps, window=1, temperature=1.0, blur=None)


QUARTER_RULES = ("mmpose", "hrnet")


def decode_quarter(heatmaps: Tensor, *, rule: str = "mmpose") -> Tensor:
    """Argmax + 0.25 px toward the larger neighbour per axis, with mmpose's (default) or HRNet's
    border rule (module docstring). Tensor[..., K, H, W] -> Tensor[..., K, 2]."""
    if rule not in QUARTER_RULES:
        raise ValueError(f"decode_quarter: rule must be one of {QUARTER_RULES}, got {rule!r}")
    h = _checked_heatmaps(heatmaps, "decode_quarter")
    p = _Peaks(h)
    x, y, width, height = p.mj, p.mi, p.width, p.height
    if rule == "mmpose":
        move_x = (x > 1) & (x < width - 1) & (y > 0)
        move_y = (y > 1) & (y < height - 1) & (x > 0)
    else:
        move_x = move_y = (x > 1) & (x < width - 1) & (y > 1) & (y < height - 1)
    dx = torch.sign(p.at(h, 0, 1) - p.at(h, 0, -1)) * 0.25
    dy = torch.sign(p.at(h, 1, 0) - p.at(h, -1, 0)) * 0.25
    zero = torch.zeros_like(dx)
    return p.coords(h.dtype, torch.where(move_x, dx, zero), torch.where(move_y, dy, zero),
                    missing=-1.0 if rule == "mmpose" else 0.0)


FA_BORDER = 63  # _get_preds_fromhm: `if pX > 0 and pX < 63 and pY > 0 and pY < 63`


def decode_fa(heatmaps: Tensor) -> Tensor:
    """face-alignment's get_preds_fromhm in this project's frame: argmax + 0.25 px toward the larger
    neighbour on both axes where ``0 < x < 63 and 0 < y < 63`` (module docstring).
    Tensor[..., K, H, W] -> Tensor[..., K, 2]."""
    h = _checked_heatmaps(heatmaps, "decode_fa")
    p = _Peaks(h)
    x, y = p.mj, p.mi
    move = (x > 0) & (x < min(FA_BORDER, p.width - 1)) & (y > 0) & (y < min(FA_BORDER, p.height - 1))
    dx = torch.sign(p.at(h, 0, 1) - p.at(h, 0, -1)) * 0.25
    dy = torch.sign(p.at(h, 1, 0) - p.at(h, -1, 0)) * 0.25
    zero = torch.zeros_like(dx)
    return p.coords(h.dtype, torch.where(move, dx, zero), torch.where(move, dy, zero))


# OpenCV's fixed kernels for sigma <= 0 (smooth.dispatch.cpp, getGaussianKernelBitExact).
_OPENCV_FIXED_KERNELS = {
    1: (1.0,),
    3: (0.25, 0.5, 0.25),
    5: (0.0625, 0.25, 0.375, 0.25, 0.0625),
    7: (0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125),
    9: tuple(v / 256 for v in (4, 13, 30, 51, 60, 51, 30, 13, 4)),
}


def _check_blur_kernel(ksize, op: str) -> int:
    if isinstance(ksize, bool) or not isinstance(ksize, int) or ksize < 1 or ksize % 2 == 0:
        raise ValueError(f"{op}: blur_kernel must be an odd integer >= 1, got {ksize!r}")
    return ksize


def opencv_gaussian_kernel(ksize: int) -> Tensor:
    """The 1D kernel (float32 [ksize]) of ``cv2.GaussianBlur(src, (ksize, ksize), 0)`` on float
    images: OpenCV's fixed tables for ksize 1-9, else ``exp(-d^2 / (2 s^2))`` normalised, with
    ``s = 0.3 ((ksize - 1) / 2 - 1) + 0.8``, computed as OpenCV does and rounded to float32."""
    ksize = _check_blur_kernel(ksize, "opencv_gaussian_kernel")
    if ksize in _OPENCV_FIXED_KERNELS:
        return torch.tensor(_OPENCV_FIXED_KERNELS[ksize], dtype=torch.float32)
    sigma = ksize * 0.15 + 0.35  # mulAdd(n, 0.15, 0.35)
    scale2 = -0.125 / (sigma * sigma)  # for x = 2 d
    half = [math.exp(float(x * x) * scale2) for x in range(1 - ksize, 0, 2)]
    total = 0.0
    for t in half:
        total += t
    total = total * 2 + 1.0
    inv = 1.0 / total
    side = [t * inv for t in half]
    return torch.tensor(side + [inv] + side[::-1], dtype=torch.float32)


def _band(n: int, kernel: Tensor) -> Tensor:
    """[n, n] matrix of a zero-padded 1D correlation with the odd-length `kernel`."""
    r = kernel.numel() // 2
    i = torch.arange(n, device=kernel.device)
    d = i[None, :] - i[:, None] + r
    inside = (d >= 0) & (d <= 2 * r)
    return torch.where(inside, kernel[d.clamp(0, 2 * r)], torch.zeros((), dtype=kernel.dtype, device=kernel.device))


def opencv_blur(heatmaps: Tensor, ksize: int) -> Tensor:
    """``cv2.GaussianBlur(map, (ksize, ksize), 0)`` of each map of Tensor[..., H, W] with a zero
    border (as mmpose's gaussian_blur pads each map by the kernel radius). Same shape and dtype."""
    k = opencv_gaussian_kernel(ksize).to(dtype=heatmaps.dtype, device=heatmaps.device)
    height, width = heatmaps.shape[-2:]
    return _band(height, k) @ heatmaps @ _band(width, k).T


def _modulate(h: Tensor, kernel: int) -> Tensor:
    """mmpose's gaussian_blur: OpenCV's blur with a zero border, rescaled so that each map keeps its
    maximum (DARK's distribution modulation)."""
    x = opencv_blur(h, kernel)
    peak = h.flatten(-2).amax(-1)[..., None, None]
    blurred_peak = x.flatten(-2).amax(-1)[..., None, None]
    return x * (peak / blurred_peak)


def _newton_step(dx, dy, dxx, dxy, dyy):
    """Offset -H^-1 g for H = [[dxx, dxy], [dxy, dyy]], g = (dx, dy); and det H."""
    det = dxx * dyy - dxy * dxy
    ox = -(dyy * dx - dxy * dy) / det
    oy = -(dxx * dy - dxy * dx) / det
    return ox, oy, det


def decode_dark(heatmaps: Tensor, *, blur_kernel: int = 11) -> Tensor:
    """DARK as mmpose runs it: OpenCV blur, log, one Newton step at the argmax (module docstring).
    Tensor[..., K, H, W] -> Tensor[..., K, 2]."""
    h = _checked_heatmaps(heatmaps, "decode_dark")
    blur_kernel = _check_blur_kernel(blur_kernel, "decode_dark")
    p = _Peaks(h)
    L = torch.log(_modulate(h, blur_kernel).clamp_min(1e-10))
    c = p.at(L, 0, 0)
    dx = 0.5 * (p.at(L, 0, 1) - p.at(L, 0, -1))
    dy = 0.5 * (p.at(L, 1, 0) - p.at(L, -1, 0))
    dxx = 0.25 * (p.at(L, 0, 2) - 2 * c + p.at(L, 0, -2))
    dyy = 0.25 * (p.at(L, 2, 0) - 2 * c + p.at(L, -2, 0))
    dxy = 0.25 * (p.at(L, 1, 1) - p.at(L, -1, 1) - p.at(L, 1, -1) + p.at(L, -1, -1))
    ox, oy, det = _newton_step(dx, dy, dxx, dxy, dyy)
    ok = (p.mj > 1) & (p.mj < p.width - 2) & (p.mi > 1) & (p.mi < p.height - 2) & (det != 0)
    zero = torch.zeros_like(ox)
    return p.coords(h.dtype, torch.where(ok, ox, zero), torch.where(ok, oy, zero), missing=-1.0)


def decode_udp(heatmaps: Tensor, *, blur_kernel: int = 11) -> Tensor:
    """UDP's DARK variant as mmpose runs it (step-1 differences, edge padding; module docstring).
    Tensor[..., K, H, W] -> Tensor[..., K, 2]."""
    h = _checked_heatmaps(heatmaps, "decode_udp")
    blur_kernel = _check_blur_kernel(blur_kernel, "decode_udp")
    p = _Peaks(h)
    L = torch.log(_modulate(h, blur_kernel).clamp(1e-3, 50.0))
    c = p.at(L, 0, 0)
    xp, xm, yp, ym = p.at(L, 0, 1), p.at(L, 0, -1), p.at(L, 1, 0), p.at(L, -1, 0)
    dx, dy = 0.5 * (xp - xm), 0.5 * (yp - ym)
    dxx, dyy = xp - 2 * c + xm, yp - 2 * c + ym
    dxy = 0.5 * (p.at(L, 1, 1) - xp - yp + 2 * c - xm - ym + p.at(L, -1, -1))
    eps = torch.finfo(torch.float32).eps
    ox, oy, _ = _newton_step(dx, dy, dxx + eps, dxy, dyy + eps)
    return p.coords(h.dtype, ox, oy, missing=-1.0)


def decode_integral(heatmaps: Tensor, *, beta: float = 1.0) -> Tensor:
    """Global soft-argmax: softmax(beta * h) over the whole map. [..., K, H, W] -> [..., K, 2]."""
    h = _checked_heatmaps(heatmaps, "decode_integral")
    beta = ops._check_positive("beta", beta, "decode_integral")
    height, width = h.shape[-2:]
    prob = torch.softmax(beta * h.flatten(-2), dim=-1).unflatten(-1, (height, width))
    xs = torch.arange(width, dtype=h.dtype, device=h.device)
    ys = torch.arange(height, dtype=h.dtype, device=h.device)
    return torch.stack([(prob.sum(-2) * xs).sum(-1), (prob.sum(-1) * ys).sum(-1)], dim=-1)


def blur_kernel_for(sigma: float) -> int:
    """DARK/UDP blur kernel size for a training sigma, as mmpose pairs them (MSRAHeatmap's
    docstring: ks 3 for sigma ~1, 7 for ~1.5, 11 for 2, 17 for ~3): the largest odd size whose
    OpenCV sigma ``0.3 ((ks - 1) / 2 - 1) + 0.8`` is at most sigma, and at least 3."""
    k = int(math.floor((sigma - 0.35) / 0.15 + 1e-9))
    k = k if k % 2 == 1 else k - 1
    return max(3, k)


# ------------------------------------------------------------------------------------ registry

ENCODERS: dict[str, Callable[..., Tensor]] = {
    "shr": ops.encode,
    "rounded": encode_rounded,
    "udp": encode_udp,
    "fa": encode_fa,
}


@dataclass(frozen=True)
class Codec:
    """An encoder and a decoder with their parameters bound: what a training run uses."""

    name: str
    sigma: float
    encoder: str
    decoder: str
    encode: Callable[..., Tensor]  # (landmarks, size, *, visible=None) -> heatmaps
    decode: Callable[[Tensor], Tensor]  # (heatmaps) -> coords
    source: str


def make_decoder(name: str, sigma: float, *, window: int | None = None, temperature: float | None = None,
                 beta: float | None = None) -> Callable[[Tensor], Tensor]:
    """A decoder by name with its parameters bound; blur kernels follow sigma (blur_kernel_for)."""
    if name == "shr":
        w = defaults.DEFAULT_WINDOW if window is None else window
        t = defaults.DEFAULT_TEMPERATURE if temperature is None else temperature
        return lambda h: ops.decode(h, window=w, temperature=t)
    if name == "argmax":
        return decode_argmax
    if name == "quarter":
        return decode_quarter
    if name == "fa":
        return decode_fa
    if name == "dark":
        k = blur_kernel_for(sigma)
        return lambda h: decode_dark(h, blur_kernel=k)
    if name == "udp":
        k = blur_kernel_for(sigma)
        return lambda h: decode_udp(h, blur_kernel=k)
    if name == "integral":
        b = INTEGRAL_BETA if beta is None else beta
        return lambda h: decode_integral(h, beta=b)
    raise ValueError(f"unknown decoder {name!r}; expected one of {DECODER_NAMES}")


# The integral decoder's beta for Gaussian targets: the best of (1, 5, 10, 20, 50) on clean
# 64x64 maps at sigma 2 in the codec study (docs/codec_study.md lists the best beta per sigma).
INTEGRAL_BETA = 20.0

DECODER_NAMES = ("shr", "argmax", "quarter", "fa", "dark", "udp", "integral")

# name: (encoder, decoder, source)
CODEC_TABLE = {
    "shr": ("shr", "shr", "this project (Bulat et al. 2021): exact-centre Gaussian; the argmax of the pre-filtered "
            "map, its local-window soft-argmax corrected by its bias on a least-squares Gaussian fit of the raw map"),
    "hrnet": ("rounded", "quarter", "MSRA SimpleBaseline / HRNet as mmpose runs it (MSRAHeatmap, unbiased=False): "
              "centre int(x + 0.5), 3-sigma square; argmax + 1/4 px toward the larger neighbour"),
    "fa": ("fa", "fa", "face-alignment 1.5 (FAN) as it runs: centre trunc(x + 0.5), its fixed 13 x 13 kernel of "
           "std 3.25 px with its top/left edge shift; get_preds_fromhm (argmax + 1/4 px where 0 < x, y < 63)"),
    "argmax": ("rounded", "argmax", "MSRA centre int(x + 0.5), integer argmax"),
    "dark": ("shr", "dark", "DARK (Zhang et al. 2020) as mmpose runs it (MSRAHeatmap, unbiased=True): exact-centre "
             "Gaussian; OpenCV blur, log, one Newton step"),
    "udp": ("udp", "udp", "UDP (Huang et al. 2020) as mmpose runs it (UDPHeatmap): exact centre on the 3-sigma "
            "square; OpenCV blur, DARK-UDP step"),
    "integral": ("shr", "integral", "integral regression (Sun et al. 2018): global soft-argmax"),
}


def get_codec(name: str, sigma: float | None = None, **decoder_kwargs) -> Codec:
    """A named codec (CODEC_TABLE) with sigma and decoder parameters bound. ('fa' encodes with
    sigma = 2 only: its encode raises for any other sigma, its decode needs none.)"""
    if name not in CODEC_TABLE:
        raise ValueError(f"unknown codec {name!r}; expected one of {tuple(CODEC_TABLE)}")
    sigma = defaults.DEFAULT_SIGMA if sigma is None else sigma
    enc_name, dec_name, source = CODEC_TABLE[name]
    encoder = ENCODERS[enc_name]
    return Codec(
        name=name, sigma=sigma, encoder=enc_name, decoder=dec_name,
        encode=lambda lm, size, *, visible=None: encoder(lm, size, sigma, visible=visible),
        decode=make_decoder(dec_name, sigma, **decoder_kwargs), source=source,
    )


__all__ = [
    "encode_rounded", "encode_udp", "encode_fa", "decode_argmax", "decode_quarter", "decode_fa", "decode_dark",
    "decode_udp", "decode_integral", "opencv_gaussian_kernel", "opencv_blur", "blur_kernel_for", "ENCODERS",
    "DECODER_NAMES", "CODEC_TABLE", "Codec", "make_decoder", "get_codec", "FA_KERNEL_STD", "FA_SIGMA",
]
