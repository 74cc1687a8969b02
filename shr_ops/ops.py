"""Thin wrappers over torch.ops.shr_ops.*: argument checks with clear messages, and docstrings.

Coordinates (docs/coordinates.md): a landmark is (x, y) in continuous heatmap pixels; pixel (row i, col j)
has its centre at x = j, y = i, so a map of width W spans x in [-0.5, W - 0.5]. Nothing is rounded.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from .defaults import DEFAULT_BLUR, DEFAULT_SIGMA, DEFAULT_TEMPERATURE, DEFAULT_WINDOW
from .reference import compute_dtype

_FLOAT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
MAX_BLUR = 1000.0  # decode's largest pre-filter std (csrc/decode.h, kMaxBlur)



def _check_tensor(name: str, value, op: str) -> None:
    if not isinstance(value, Tensor):
        raise TypeError(f"{op}: {name} must be a torch.Tensor, got {type(value).__name__}")


def _check_float_dtype(name: str, dtype: torch.dtype, op: str) -> None:
    if dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{op}: {name} must be float32, float64, float16 or bfloat16, got {dtype}")


def _check_positive(name: str, value, op: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{op}: {name} must be a number, got {type(value).__name__}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{op}: {name} must be a finite number > 0, got {value}")
    return float(value)


def _check_size(size, op: str) -> tuple[int, int]:
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size)
    if (
        not isinstance(size, Sequence)
        or len(size) != 2
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in size)
    ):
        raise TypeError(f"{op}: size must be an int or a pair of ints (H, W), got {size!r}")
    if size[0] < 1 or size[1] < 1:
        raise ValueError(f"{op}: size must be (H, W) with H >= 1 and W >= 1, got {tuple(size)}")
    return int(size[0]), int(size[1])


def _check_non_negative(name: str, value, op: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{op}: {name} must be a number, got {type(value).__name__}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{op}: {name} must be a finite number >= 0, got {value}")
    return float(value)


def check_landmarks(landmarks, size, sigma, visible, op: str) -> tuple[tuple[int, int], float]:
    """The checks every encoder shares: landmarks Tensor[..., K, 2] of a float dtype, size,
    sigma > 0, and visible (None or a bool Tensor[..., K] on landmarks' device).
    Returns ((H, W), sigma as float)."""
    _check_tensor("landmarks", landmarks, op)
    _check_float_dtype("landmarks", landmarks.dtype, op)
    if landmarks.dim() < 2 or landmarks.shape[-1] != 2:
        raise ValueError(f"{op}: landmarks must have shape [..., K, 2], got {tuple(landmarks.shape)}")
    size = _check_size(size, op)
    sigma = _check_positive("sigma", sigma, op)
    if visible is not None:
        _check_tensor("visible", visible, op)
        if visible.dtype != torch.bool:
            raise TypeError(f"{op}: visible must be a bool tensor, got {visible.dtype}")
        if visible.shape != landmarks.shape[:-1]:
            raise ValueError(
                f"{op}: visible must have shape landmarks.shape[:-1] = {tuple(landmarks.shape[:-1])} ([..., K]), "
                f"got {tuple(visible.shape)}"
            )
        if visible.device != landmarks.device:
            raise ValueError(
                f"{op}: visible must be on landmarks' device ({landmarks.device}), got {visible.device}"
            )
    return size, sigma


def check_heatmaps(heatmaps, op: str, name: str = "heatmaps") -> None:
    """The checks every decoder shares: heatmaps Tensor[..., K, H, W] of a float dtype, H, W >= 1
    (`name`: the argument's name in the messages)."""
    _check_tensor(name, heatmaps, op)
    _check_float_dtype(name, heatmaps.dtype, op)
    if heatmaps.dim() < 3:
        raise ValueError(f"{op}: {name} must have shape [..., K, H, W], got {tuple(heatmaps.shape)}")
    if heatmaps.shape[-1] < 1 or heatmaps.shape[-2] < 1:
        raise ValueError(f"{op}: {name} must have H >= 1 and W >= 1, got {tuple(heatmaps.shape)}")


def encode(
    landmarks: Tensor,
    size: int | tuple[int, int],
    sigma: float = DEFAULT_SIGMA,
    *,
    visible: Tensor | None = None,
    radius: float | None = None,
    dtype: torch.dtype | None = None,
    out: Tensor | None = None,
) -> Tensor:
    """Render Gaussian heatmaps centred at exact subpixel landmark positions.

    ``H[..., k, i, j] = exp(-((j - x_k)^2 + (i - y_k)^2) / (2 sigma^2))``, evaluated separably
    (W + H exponentials per map, one product per pixel). Differentiable w.r.t. ``landmarks``.
    Values below the smallest normal number of the compute dtype (1.2e-38 in float32, 2.2e-308 in
    float64) are written as 0, by the CPU and the CUDA kernels alike (denormals are flushed).

    Args:
        landmarks: Tensor[..., K, 2], (x, y) in heatmap pixels, any float dtype. A landmark with a
            NaN or infinite coordinate is missing: its map is all zero and its gradient is zero.
            Centres outside the frame are allowed: the map holds the visible tail of the Gaussian.
        size: (H, W) of the maps, or one int for square maps.
        sigma: standard deviation in heatmap pixels, > 0. Default 2.0, chosen by the codec study
            (shr_ops/defaults.py, docs/codec_study.md): with the default decoder, 1.0e-06 px mean
            round-trip error on clean 64x64 maps (up to the frame edge) and 0.0523 px on
            network-like maps.
        visible: optional Tensor[..., K] bool; False gives an all-zero map (and zero gradient).
        radius: optional truncation radius in heatmap pixels: zero where the distance to the
            centre exceeds it (a disc). None renders the untruncated Gaussian.
        dtype: output dtype (default: landmarks' dtype, or out's). float64 is computed in float64,
            float32/float16/bfloat16 in float32.
        out: optional Tensor[..., K, H, W] to write the maps into (contiguous, on landmarks'
            device; its dtype is the output dtype). Reusing one buffer, e.g. for the targets of
            every training step, saves the allocation, which on the CPU costs more than rendering
            (a fresh tensor is page-faulted in on first touch). Not differentiable: landmarks must
            not require grad while grad mode is on.

    Returns:
        Tensor[..., K, H, W] of ``dtype``, contiguous, on landmarks' device (``out`` when given).
    """
    op = "shr_ops.encode"
    (height, width), sigma = check_landmarks(landmarks, size, sigma, visible, op)
    if radius is not None:
        radius = _check_positive("radius", radius, op)
    if out is not None:
        _check_encode_out(out, landmarks, (height, width), dtype, op)
        dtype = out.dtype
    out_dtype = landmarks.dtype if dtype is None else dtype
    _check_float_dtype("dtype", out_dtype, op)
    lm = landmarks.to(compute_dtype(out_dtype))
    if out is not None:
        torch.ops.shr_ops.encode_out(lm, visible, sigma, radius, out)
        return out
    return torch.ops.shr_ops.encode(lm, visible, height, width, sigma, radius, out_dtype)


def _check_encode_out(out, landmarks: Tensor, size: tuple[int, int], dtype, op: str) -> None:
    _check_tensor("out", out, op)
    _check_float_dtype("out", out.dtype, op)
    want = (*landmarks.shape[:-1], *size)
    if tuple(out.shape) != want:
        raise ValueError(f"{op}: out must have shape landmarks.shape[:-1] + size = {want}, got {tuple(out.shape)}")
    if out.device != landmarks.device:
        raise ValueError(f"{op}: out must be on landmarks' device ({landmarks.device}), got {out.device}")
    if not out.is_contiguous():
        raise ValueError(f"{op}: out must be contiguous")
    if dtype is not None and dtype != out.dtype:
        raise ValueError(f"{op}: dtype ({dtype}) must be None or out's dtype ({out.dtype})")
    if landmarks.requires_grad and torch.is_grad_enabled():
        raise ValueError(f"{op}: out= is not differentiable; landmarks must not require grad (or use torch.no_grad())")


def decode(heatmaps: Tensor, *, window: int = DEFAULT_WINDOW, temperature: float = DEFAULT_TEMPERATURE,
           blur: float | None = DEFAULT_BLUR, return_scores: bool = False):
    """Subpixel landmark positions: a local-window soft-argmax around each map's maximum, by default
    of the pre-filtered map and corrected by its own bias on a least-squares Gaussian fit of the
    map, which makes it exact on Gaussians up to the frame's corners.

    Per map: ``m`` = the first maximum in row-major order of the (pre-filtered, see ``blur``) map
    (as torch.argmax; a NaN counts as the maximum, so a map holding NaN decodes to NaN, never to a
    finite position); a ``window x window`` box centred on ``m``, clipped to the frame;
    ``p = softmax(temperature * h)`` over the box; the estimate ``m + sum(p * offset)``. Without the
    pre-filter this estimate is the result. Differentiable w.r.t. ``heatmaps`` (the gradient is
    non-zero only inside each window, and the fit's box; the argmax itself is piecewise constant).

    Args:
        heatmaps: Tensor[..., K, H, W], float32/float64/float16/bfloat16 (the latter two
            computed in float32).
        window: odd box size >= 1 (1 gives the integer argmax). Default 9.
        temperature: softmax temperature > 0, applied as ``softmax(temperature * h)``. Default 40.
        blur: optional pre-filter: the argmax, window estimate and score are those of each map
            blurred by a normalised Gaussian of this std (heatmap px, truncated at ceil(3 blur),
            zero outside the frame: the values of ``shr_ops.filters.gaussian_blur``), which
            averages pixel noise out of the search. Then ``A exp(-lam |p - (x, y)|^2)`` is fitted
            by least squares to the *raw* map over the box of radius ``max(window // 2,
            ceil(3 blur))`` around ``m`` (13 x 13 at the defaults), clipped to the frame, by
            Levenberg-Marquardt from the window estimate ``s``, and the coordinates are
            ``s - S + (x, y)``, ``S`` the same window estimate of the pre-filtered fitted
            Gaussian (shr_ops.gaussian_fit, docs/edge_exact_decoder.md): the estimate with the
            pull of the window and of the filter's zero border removed (within 3 px of an edge
            the uncorrected estimate is pulled inward by up to 1.6 px). A clean Gaussian of any
            width is recovered exactly, also when the frame cuts it; elsewhere the result keeps
            the window estimate's behaviour (on trained networks' maps it is as accurate or more;
            the fit alone was worse). Where the fit does not converge to a peak near ``m`` (flat,
            negative or non-finite maps) the window estimate is the result. The gradient is the
            window estimate's (through the filter), the score's, and the fit's solution's
            (implicit function theorem) through ``(x, y)`` and ``S``. The CPU kernel computes blurred values only
            where the argmax can be and in the window; the CUDA kernels filter each map in shared
            memory in one pass over memory (maps too large for it: into a temporary first).
            Default 2.0; ``None`` decodes the maps as given by the window soft-argmax
            alone. The defaults (window 9, temperature 40, blur 2, for sigma 2 targets) and their
            errors are the codec study's (shr_ops/defaults.py, docs/codec_study.md); for targets
            of another sigma, take the study's settings for that sigma.
            A map holding NaN decodes to NaN (coords and score), one holding +inf to NaN coords.
        return_scores: also return the peak value of each (pre-filtered) map.

    Returns:
        coords Tensor[..., K, 2] as (x, y) in heatmap pixels, float64 for float64 heatmaps and
        float32 otherwise; with ``return_scores``, also scores Tensor[..., K] of that dtype.
    """
    op = "shr_ops.decode"
    check_heatmaps(heatmaps, op)
    if isinstance(window, bool) or not isinstance(window, int):
        raise TypeError(f"{op}: window must be an int, got {type(window).__name__}")
    if window < 1 or window % 2 == 0:
        raise ValueError(f"{op}: window must be an odd integer >= 1, got {window}")
    temperature = _check_positive("temperature", temperature, op)
    if blur is not None:
        blur = _check_positive("blur", blur, op)
        if blur > MAX_BLUR:
            raise ValueError(f"{op}: blur must be None or a finite number in (0, {MAX_BLUR:g}], got {blur}")
    coords, scores, _ = torch.ops.shr_ops.decode(heatmaps, window, temperature, blur)
    return (coords, scores) if return_scores else coords


def heatmap_loss(
    pred: Tensor,
    landmarks: Tensor,
    sigma: float = DEFAULT_SIGMA,
    *,
    visible: Tensor | None = None,
    foreground_weight: float = 1.0,
    threshold: float = 0.1,
    scale: float = 1.0,
) -> Tensor:
    """Weighted mean squared error of heatmaps against SHR targets rendered on the fly (fused).

    ``mean(w * (pred - t) ** 2)`` over every pixel, where ``t = scale * encode(landmarks, (H, W), sigma)``
    is the target ``shr_ops.encode`` renders (exact subpixel centres; zero maps for NaN/infinite or
    invisible landmarks) and ``w = foreground_weight`` where ``t > threshold * scale``, else 1. The
    target tensor is never materialised: per map, H + W exponentials (separable), then one pass over
    ``pred``; the sum is taken in float64 per map and over maps in a fixed order (deterministic).
    Same value as ``shr_ops.reference.heatmap_loss`` (encode + weighted MSE) within float tolerance.

    Differentiable w.r.t. ``pred`` (``2 w (pred - t) / N``) and ``landmarks`` (through ``t``; the
    weight ``w`` is piecewise constant and contributes nothing, as in autograd of the reference).

    Args:
        pred: Tensor[..., K, H, W], float32/float64/float16/bfloat16 (the latter two computed in
            float32). Any strides.
        landmarks: Tensor[..., K, 2], (x, y) in heatmap pixels (coordinates as in ``encode``), any
            float dtype; converted to float64 for float64 ``pred``, else float32.
        sigma: standard deviation of the target in heatmap pixels, > 0 (default as ``encode``).
        visible: optional Tensor[..., K] bool; False makes that map's target zero.
        foreground_weight: weight (>= 0) of the pixels where the target exceeds ``threshold * scale``;
            1 gives the plain MSE.
        threshold: foreground threshold (>= 0) relative to the target's peak value ``scale``.
        scale: target amplitude (> 0): ``t = scale * exp(...)``.

    Returns:
        Tensor[] (a scalar) on pred's device, float64 for float64 ``pred`` and float32 otherwise;
        0 for an empty ``pred``.
    """
    op = "shr_ops.heatmap_loss"
    check_heatmaps(pred, op, "pred")
    _, sigma = check_landmarks(landmarks, tuple(pred.shape[-2:]), sigma, visible, op)
    if landmarks.shape[:-1] != pred.shape[:-2]:
        raise ValueError(
            f"{op}: landmarks must have shape pred.shape[:-2] + (2,) = {(*pred.shape[:-2], 2)} ([..., K, 2]), "
            f"got {tuple(landmarks.shape)}"
        )
    if landmarks.device != pred.device:
        raise ValueError(f"{op}: landmarks must be on pred's device ({pred.device}), got {landmarks.device}")
    foreground_weight = _check_non_negative("foreground_weight", foreground_weight, op)
    threshold = _check_non_negative("threshold", threshold, op)
    scale = _check_positive("scale", scale, op)
    lm = landmarks.to(compute_dtype(pred.dtype))
    return torch.ops.shr_ops.heatmap_loss(pred, lm, visible, sigma, foreground_weight, threshold, scale)
