"""Baseline heatmap codecs, batched and vectorised, on the same shapes as shr_ops.encode/decode,
so that the cost of each encoding and decoding choice can be measured (benchmarks/codec_error.py).

Encoders: ``(landmarks Tensor[..., K, 2], size, sigma, *, visible=None) -> Tensor[..., K, H, W]``
  - ``encode_rounded``: Gaussian at the centre rounded to the nearest pixel, ``floor(x + 0.5)``,
    truncated to a square of half-side 3 sigma (MSRA SimpleBaseline / HRNet, mmpose's
    ``generate_gaussian_heatmaps``).
  - ``encode_floored``: Gaussian at ``floor(x)``, truncated the same way (face-alignment's
    ``draw_gaussian``, whose 1-based ``floor(p - 3 sigma)`` corner puts the centre at ``floor(x)``).
  - ``encode_udp``: Gaussian at the exact centre, truncated to the 3-sigma square around the
    rounded centre (UDP, mmpose's ``generate_udp_gaussian_heatmaps``). UDP's other half is its
    coordinate map, ``shr_ops.coords.udp_image_to_heatmap``.
  - SHR's own encoder is ``shr_ops.encode`` (exact centre, untruncated unless ``radius``).

Decoders: ``(heatmaps Tensor[..., K, H, W]) -> Tensor[..., K, 2]`` (float32, float64 for float64)
  - ``decode_argmax``: the integer argmax (``shr_ops.decode`` with ``window=1``).
  - ``decode_quarter``: argmax moved 0.25 px toward the larger neighbour on each axis, where
    both neighbours of both axes exist (``1 < x < W - 1 and 1 < y < H - 1``, HRNet's
    ``get_final_preds``; mmpose's ``refine_keypoints`` tests each axis alone).
  - ``decode_dark``: DARK (Zhang et al., CVPR 2020): blur with a Gaussian of kernel
    ``blur_kernel`` (zero border, rescaled to the original maximum), log, one Newton step
    ``-H^-1 g`` at the argmax with central differences of step 1 for g and step 2 for H,
    applied where ``1 < x < W - 2 and 1 < y < H - 2`` and ``det H != 0`` (mmpose's
    ``refine_keypoints_dark``).
  - ``decode_udp``: UDP's DARK variant: the same blur, clip to [1e-3, 50], log, edge padding,
    step-1 differences for g and H, ``-(H + eps I)^-1 g`` everywhere (mmpose's
    ``refine_keypoints_dark_udp``).
  - ``decode_integral``: global soft-argmax / integral regression (Sun et al., ECCV 2018):
    ``p = softmax(beta * h)`` over the whole map, result ``sum p * position``.
  - SHR's own decoder is ``shr_ops.decode`` (local-window soft-argmax).

Rounding inside the baseline encoders is the behaviour being measured, not a shortcut.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from . import defaults, ops
from .filters import gaussian_blur, opencv_kernel_sigma
from .reference import compute_dtype, split_missing

# ------------------------------------------------------------------------------------ encoders


def _render(centres: Tensor, size: tuple[int, int], sigma: float, visible: Tensor | None,
            square_centres: Tensor | None, out_dtype: torch.dtype) -> Tensor:
    """Gaussians at `centres`, zero outside the 3-sigma squares around `square_centres`."""
    height, width = size
    c, valid = split_missing(centres.to(compute_dtype(out_dtype)), visible)
    xs = torch.arange(width, dtype=c.dtype, device=c.device)
    ys = torch.arange(height, dtype=c.dtype, device=c.device)
    gx = torch.exp(-((xs - c[..., 0:1]) ** 2) / (2 * sigma * sigma))  # [..., K, W]
    gy = torch.exp(-((ys - c[..., 1:2]) ** 2) / (2 * sigma * sigma))  # [..., K, H]
    if square_centres is not None:
        s = torch.where(valid[..., None], square_centres.to(c.dtype), torch.zeros_like(c))
        r = 3.0 * sigma
        gx = gx * ((xs - s[..., 0:1]).abs() <= r)
        gy = gy * ((ys - s[..., 1:2]).abs() <= r)
    heat = gy[..., :, None] * gx[..., None, :] * valid[..., None, None]
    return heat.to(out_dtype)


def encode_rounded(landmarks: Tensor, size, sigma: float, *, visible: Tensor | None = None) -> Tensor:
    """Gaussian at ``floor(x + 0.5)``, 3-sigma square (MSRA/HRNet). Tensor[..., K, 2] -> [..., K, H, W]."""
    size, sigma = ops.check_landmarks(landmarks, size, sigma, visible, "encode_rounded")
    centres = torch.floor(landmarks + 0.5)
    return _render(centres, size, sigma, visible, centres, landmarks.dtype)


def encode_floored(landmarks: Tensor, size, sigma: float, *, visible: Tensor | None = None) -> Tensor:
    """Gaussian at ``floor(x)``, 3-sigma square (face-alignment). Tensor[..., K, 2] -> [..., K, H, W]."""
    size, sigma = ops.check_landmarks(landmarks, size, sigma, visible, "encode_floored")
    centres = torch.floor(landmarks)
    return _render(centres, size, sigma, visible, centres, landmarks.dtype)


def encode_udp(landmarks: Tensor, size, sigma: float, *, visible: Tensor | None = None) -> Tensor:
    """Gaussian at the exact centre, 3-sigma square around the rounded centre (UDP)."""
    size, sigma = ops.check_landmarks(landmarks, size, sigma, visible, "encode_udp")
    return _render(landmarks, size, sigma, visible, torch.floor(landmarks + 0.5), landmarks.dtype)


# ------------------------------------------------------------------------------------ decoders


def _checked_heatmaps(heatmaps, op) -> Tensor:
    """The heatmaps, checked as shr_ops.decode checks them, in their compute dtype."""
    ops.check_heatmaps(heatmaps, op)
    return heatmaps.to(compute_dtype(heatmaps.dtype))


class _Peaks:
    """The argmax (row mi, column mj) of each map and clamped lookups around it."""

    def __init__(self, maps: Tensor):
        self.height, self.width = maps.shape[-2:]
        self.index = maps.flatten(-2).argmax(-1)
        self.mi = self.index // self.width
        self.mj = self.index % self.width

    def at(self, maps: Tensor, di: int, dj: int) -> Tensor:
        """maps[..., mi + di, mj + dj], indices clamped to the frame (edge padding)."""
        i = (self.mi + di).clamp(0, self.height - 1)
        j = (self.mj + dj).clamp(0, self.width - 1)
        return maps.flatten(-2).gather(-1, (i * self.width + j)[..., None]).squeeze(-1)

    def coords(self, dtype: torch.dtype, dx: Tensor | float = 0.0, dy: Tensor | float = 0.0) -> Tensor:
        return torch.stack([self.mj.to(dtype) + dx, self.mi.to(dtype) + dy], dim=-1)


def decode_argmax(heatmaps: Tensor) -> Tensor:
    """Integer argmax (first maximum). Tensor[..., K, H, W] -> Tensor[..., K, 2]."""
    return ops.decode(heatmaps, window=1, temperature=1.0, blur=None)


def decode_quarter(heatmaps: Tensor) -> Tensor:
    """Argmax + 0.25 px toward the larger neighbour per axis (HRNet). [..., K, H, W] -> [..., K, 2]."""
    h = _checked_heatmaps(heatmaps, "decode_quarter")
    p = _Peaks(h)
    inside = (p.mj > 1) & (p.mj < p.width - 1) & (p.mi > 1) & (p.mi < p.height - 1)
    dx = torch.sign(p.at(h, 0, 1) - p.at(h, 0, -1)) * 0.25
    dy = torch.sign(p.at(h, 1, 0) - p.at(h, -1, 0)) * 0.25
    zero = torch.zeros_like(dx)
    return p.coords(h.dtype, torch.where(inside, dx, zero), torch.where(inside, dy, zero))


def blur_kernel_for(sigma: float) -> int:
    """DARK/UDP blur kernel size for a training sigma: the odd size nearest 6 sigma - 1
    (mmpose: 11 for sigma 2, 17 for sigma 3), at least 3."""
    k = max(3, int(round(6 * sigma - 1)))
    return k if k % 2 == 1 else k + 1


def _modulate(h: Tensor, kernel: int) -> Tensor:
    """Gaussian blur with OpenCV's sigma for `kernel` (0.3 ((k - 1) / 2 - 1) + 0.8), zero
    border, rescaled so that each map keeps its maximum (DARK's distribution modulation)."""
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"blur_kernel must be an odd integer >= 1, got {kernel}")
    x = gaussian_blur(h, opencv_kernel_sigma(kernel), radius=kernel // 2)
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
    """DARK: blur, log, one Newton step at the argmax. Tensor[..., K, H, W] -> Tensor[..., K, 2]."""
    h = _checked_heatmaps(heatmaps, "decode_dark")
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
    return p.coords(h.dtype, torch.where(ok, ox, zero), torch.where(ok, oy, zero))


def decode_udp(heatmaps: Tensor, *, blur_kernel: int = 11) -> Tensor:
    """UDP's DARK variant (step-1 differences, edge padding). [..., K, H, W] -> [..., K, 2]."""
    h = _checked_heatmaps(heatmaps, "decode_udp")
    p = _Peaks(h)
    L = torch.log(_modulate(h, blur_kernel).clamp(1e-3, 50.0))
    c = p.at(L, 0, 0)
    xp, xm, yp, ym = p.at(L, 0, 1), p.at(L, 0, -1), p.at(L, 1, 0), p.at(L, -1, 0)
    dx, dy = 0.5 * (xp - xm), 0.5 * (yp - ym)
    dxx, dyy = xp - 2 * c + xm, yp - 2 * c + ym
    dxy = 0.5 * (p.at(L, 1, 1) - xp - yp + 2 * c - xm - ym + p.at(L, -1, -1))
    eps = torch.finfo(torch.float32).eps
    ox, oy, _ = _newton_step(dx, dy, dxx + eps, dxy, dyy + eps)
    return p.coords(h.dtype, ox, oy)


def decode_integral(heatmaps: Tensor, *, beta: float = 1.0) -> Tensor:
    """Global soft-argmax: softmax(beta * h) over the whole map. [..., K, H, W] -> [..., K, 2]."""
    h = _checked_heatmaps(heatmaps, "decode_integral")
    beta = ops._check_positive("beta", beta, "decode_integral")
    height, width = h.shape[-2:]
    prob = torch.softmax(beta * h.flatten(-2), dim=-1).unflatten(-1, (height, width))
    xs = torch.arange(width, dtype=h.dtype, device=h.device)
    ys = torch.arange(height, dtype=h.dtype, device=h.device)
    return torch.stack([(prob.sum(-2) * xs).sum(-1), (prob.sum(-1) * ys).sum(-1)], dim=-1)


# ------------------------------------------------------------------------------------ registry

ENCODERS: dict[str, Callable[..., Tensor]] = {
    "shr": ops.encode,
    "rounded": encode_rounded,
    "floored": encode_floored,
    "udp": encode_udp,
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

DECODER_NAMES = ("shr", "argmax", "quarter", "dark", "udp", "integral")

# name: (encoder, decoder, source)
CODEC_TABLE = {
    "shr": ("shr", "shr", "this project: exact-centre Gaussian, local-window soft-argmax (Bulat et al. 2021)"),
    "hrnet": ("rounded", "quarter", "MSRA SimpleBaseline / HRNet: rounded centre, argmax + 1/4 shift"),
    "fa": ("floored", "quarter", "face-alignment (FAN): floored centre, argmax + 1/4 shift"),
    "argmax": ("rounded", "argmax", "rounded centre, integer argmax"),
    "dark": ("shr", "dark", "DARK (Zhang et al. 2020): unbiased Gaussian, log-Taylor decoding"),
    "udp": ("udp", "udp", "UDP (Huang et al. 2020): exact centre, DARK-UDP decoding"),
    "integral": ("shr", "integral", "integral regression (Sun et al. 2018): global soft-argmax"),
}


def get_codec(name: str, sigma: float | None = None, **decoder_kwargs) -> Codec:
    """A named codec (CODEC_TABLE) with sigma and decoder parameters bound."""
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
    "encode_rounded", "encode_floored", "encode_udp", "decode_argmax", "decode_quarter", "decode_dark",
    "decode_udp", "decode_integral", "blur_kernel_for", "ENCODERS", "DECODER_NAMES", "CODEC_TABLE", "Codec",
    "make_decoder", "get_codec",
]
