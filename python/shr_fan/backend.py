"""The ops backend: which implementation of encode / decode / heatmap_loss the FAN application runs.

    ops = get_ops("compiled")      shr_ops.encode / decode / heatmap_loss (the C++/CUDA kernels)
    ops = get_ops("reference")     shr_ops.reference.* (plain PyTorch, the truth of the op tests)
    codec = get_codec("shr", sigma, ops="reference")

`TrainConfig.ops` (`--ops` on train, eval and predict) picks one, and every encode, decode and
heatmap_loss call of training, evaluation and prediction goes through it: the targets, the fused
loss, the coordinate-consistency loss, the decoders of evaluation and prediction. Training the
same seed both ways gives the same run within float tolerance (tests/test_backend.py; the
figures are in docs/results.md), which is how the application's results are checked against
the reference.

Codecs: a codec of shr_ops.codecs whose encoder is SHR's (shr, dark, integral) or whose decoder
is SHR's local soft-argmax (shr) or the integer argmax (argmax, which is shr_ops.decode with
window 1) is rebound here so that those calls go through the chosen backend. The other
baselines (rounded / floored / UDP encoders, the 1/4-shift, DARK, UDP and integral decoders)
are plain PyTorch in shr_ops.codecs already and run unchanged under either backend.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import shr_ops
from shr_ops import codecs, defaults, ops as compiled_ops, reference

OPS_CHOICES = ("compiled", "reference")


def _reference_encode(landmarks, size, sigma=defaults.DEFAULT_SIGMA, *, visible=None, radius=None, dtype=None):
    """shr_ops.reference.encode with shr_ops.encode's argument checks (the same messages)."""
    size, sigma = compiled_ops.check_landmarks(landmarks, size, sigma, visible, "reference.encode")
    return reference.encode(landmarks, size, sigma, visible=visible, radius=radius, dtype=dtype)


def _reference_decode(heatmaps, *, window=defaults.DEFAULT_WINDOW, temperature=defaults.DEFAULT_TEMPERATURE,
                      blur=defaults.DEFAULT_BLUR, return_scores=False):
    compiled_ops.check_heatmaps(heatmaps, "reference.decode")
    return reference.decode(heatmaps, window=window, temperature=temperature, blur=blur, return_scores=return_scores)


def _reference_heatmap_loss(pred, landmarks, sigma=defaults.DEFAULT_SIGMA, *, visible=None, foreground_weight=1.0,
                            threshold=0.1, scale=1.0):
    compiled_ops.check_heatmaps(pred, "reference.heatmap_loss", "pred")
    _, sigma = compiled_ops.check_landmarks(landmarks, tuple(pred.shape[-2:]), sigma, visible,
                                            "reference.heatmap_loss")
    return reference.heatmap_loss(pred, landmarks, sigma, visible=visible, foreground_weight=foreground_weight,
                                  threshold=threshold, scale=scale)


@dataclass(frozen=True)
class Ops:
    """One implementation of the three ops, with shr_ops' signatures."""

    name: str
    encode: Callable  # (landmarks [..., K, 2], size, sigma, *, visible, radius, dtype) -> [..., K, H, W]
    decode: Callable  # (heatmaps [..., K, H, W], *, window, temperature, blur, return_scores) -> [..., K, 2]
    heatmap_loss: Callable  # (pred, landmarks, sigma, *, visible, foreground_weight, threshold, scale) -> []


_OPS = {
    "compiled": Ops("compiled", shr_ops.encode, shr_ops.decode, shr_ops.heatmap_loss),
    "reference": Ops("reference", _reference_encode, _reference_decode, _reference_heatmap_loss),
}


def get_ops(name: str | Ops) -> Ops:
    """The backend named `name` ("compiled" or "reference"; an Ops is returned as is)."""
    if isinstance(name, Ops):
        return name
    if name not in _OPS:
        raise ValueError(f"unknown ops backend {name!r}; expected one of {OPS_CHOICES}")
    return _OPS[name]


def get_codec(name: str, sigma: float | None = None, ops: str | Ops = "compiled") -> codecs.Codec:
    """shr_ops.codecs.get_codec(name, sigma) with its SHR encode and its shr / argmax decode
    running on the backend `ops`."""
    codec = codecs.get_codec(name, sigma)
    backend = get_ops(ops)
    if backend.name == "compiled":
        return codec
    changes = {}
    if codec.encoder == "shr":
        s = codec.sigma
        changes["encode"] = lambda lm, size, *, visible=None: backend.encode(lm, size, s, visible=visible)
    if codec.decoder == "shr":
        w, t = defaults.DEFAULT_WINDOW, defaults.DEFAULT_TEMPERATURE
        changes["decode"] = lambda h: backend.decode(h, window=w, temperature=t)
    elif codec.decoder == "argmax":
        changes["decode"] = lambda h: backend.decode(h, window=1, temperature=1.0, blur=None)
    return replace(codec, **changes)
