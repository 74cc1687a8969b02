"""Landmark metrics as the face-alignment community computes them (docs/metrics.md).

NME is computed per image (mean point-to-point error over the landmarks, divided by the image's
normalising distance) and then averaged over images. FR@k is the fraction of images with
NME > k. AUC@k integrates the cumulative error distribution (CED), sampled on the grid
0, 1e-4, ..., k (what the usual arange(0, k + 1e-4, 1e-4) means; see `ced`), with Simpson's
rule, divided by k.

Normalisers (`normaliser(name, gt, boxes)`): "inter-ocular" (outer eye corners: 300-W 36/45,
WFLW 60/72, COFW 8/9), "inter-pupil" (eye centres of 68 points), "box" (sqrt(w * h) of the face
box, AFLW's NME_box) and "diagonal" (sqrt(w^2 + h^2), AFLW's NME_diag). DEFAULT_NORMALISERS
gives each benchmark's, the first being the one its tables report. Missing ground-truth points
(NaN) are left out of an image's mean; an image needs at least one.
"""
from __future__ import annotations

import numpy as np

# 0-based indices of the normalising points per landmark scheme.
INTER_OCULAR = {68: (36, 45), 98: (60, 72), 29: (8, 9)}


def inter_ocular(gt: np.ndarray) -> np.ndarray:
    """[N] outer-eye-corner distances of ground truth [N, K, 2] (300W 36/45, WFLW 60/72, COFW 8/9)."""
    k = gt.shape[-2]
    if k not in INTER_OCULAR:
        raise ValueError(f"inter_ocular: no outer-eye-corner indices for {k} landmarks; expected one of "
                         f"{sorted(INTER_OCULAR)}")
    a, b = INTER_OCULAR[k]
    return np.linalg.norm(gt[:, a] - gt[:, b], axis=-1)


def inter_pupil(gt: np.ndarray) -> np.ndarray:
    """[N] distances between the eye centres (means of 36-41 and 42-47) of 68-point ground truth."""
    if gt.shape[-2] != 68:
        raise ValueError(f"inter_pupil: defined for 68 landmarks, got {gt.shape[-2]}")
    return np.linalg.norm(gt[:, 36:42].mean(1) - gt[:, 42:48].mean(1), axis=-1)


def box_size(boxes: np.ndarray) -> np.ndarray:
    """[N] sqrt(w * h) of face boxes [N, 4] = [x0, y0, x1, y1] (w = x1 - x0, h = y1 - y0)."""
    w, h = _box_sides(boxes)
    return np.sqrt(w * h)


def box_diagonal(boxes: np.ndarray) -> np.ndarray:
    """[N] sqrt(w^2 + h^2) of face boxes [N, 4] = [x0, y0, x1, y1]."""
    w, h = _box_sides(boxes)
    return np.hypot(w, h)


def _box_sides(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be [N, 4] = [x0, y0, x1, y1], got shape {boxes.shape}")
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    bad = ~((w > 0) & (h > 0))
    if bad.any():
        raise ValueError(f"boxes must have x1 > x0 and y1 > y0; box {int(np.argmax(bad))} is {boxes[bad][0].tolist()}")
    return w, h


NORMALISERS = ("inter-ocular", "inter-pupil", "box", "diagonal")
# Each benchmark's normalisers; the first is the one its published tables report (docs/metrics.md).
DEFAULT_NORMALISERS = {"synthetic": ("inter-ocular",), "300w": ("inter-ocular", "inter-pupil"),
                       "wflw": ("inter-ocular",), "cofw": ("inter-ocular",), "aflw": ("box", "diagonal")}


def normaliser(name: str, gt: np.ndarray, boxes: np.ndarray | None = None) -> np.ndarray:
    """[N] normalising distance `name` (one of NORMALISERS) of ground truth [N, K, 2] (and face
    boxes [N, 4] for "box" / "diagonal")."""
    if name == "inter-ocular":
        return inter_ocular(gt)
    if name == "inter-pupil":
        return inter_pupil(gt)
    if name in ("box", "diagonal"):
        if boxes is None:
            raise ValueError(f"normaliser {name!r} needs the face boxes [N, 4]")
        if len(boxes) != len(gt):
            raise ValueError(f"normaliser {name!r}: {len(boxes)} boxes for {len(gt)} faces")
        return box_size(boxes) if name == "box" else box_diagonal(boxes)
    raise ValueError(f"unknown normaliser {name!r}; expected one of {NORMALISERS}")


def point_errors(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """[N, K] Euclidean errors."""
    if pred.shape != gt.shape or pred.shape[-1] != 2:
        raise ValueError(f"point_errors: pred and gt must both be [N, K, 2], got {pred.shape} and {gt.shape}")
    return np.linalg.norm(pred - gt, axis=-1)


def nme(pred: np.ndarray, gt: np.ndarray, norm: np.ndarray) -> np.ndarray:
    """[N] per-image NME: mean over landmarks of the error, divided by norm [N]. Landmarks whose
    ground truth is NaN (missing) are left out of their image's mean."""
    err = point_errors(pred, gt)
    valid = np.isfinite(np.asarray(gt)).all(-1)
    if valid.all():
        per_image = err.mean(-1)
    else:
        empty = ~valid.any(-1)
        if empty.any():
            raise ValueError(f"nme: image {int(np.argmax(empty))} has no annotated (finite) ground-truth point")
        per_image = np.where(valid, err, 0.0).sum(-1) / valid.sum(-1)
    norm = np.asarray(norm, dtype=np.float64)
    bad = ~(np.isfinite(norm) & (norm > 0))
    if bad.any():
        raise ValueError(f"nme: the normalising distance must be finite and > 0; image {int(np.argmax(bad))} has "
                         f"{norm[bad][0]}")
    return per_image / norm


def failure_rate(nmes: np.ndarray, k: float) -> float:
    """Fraction of images with NME > k."""
    return float(np.mean(np.asarray(nmes) > k))


def _simpson(y: np.ndarray, dx: float) -> float:
    """Composite Simpson's rule on equally spaced samples (an odd number of samples; with an even
    number the last interval is added by the trapezoid rule)."""
    n = len(y)
    if n < 3:
        return float(np.trapezoid(y, dx=dx))
    m = n if n % 2 == 1 else n - 1
    s = y[0] + y[m - 1] + 4 * y[1:m - 1:2].sum() + 2 * y[2:m - 1:2].sum()
    total = s * dx / 3
    if m != n:
        total += (y[-2] + y[-1]) * dx / 2
    return float(total)


def ced(nmes: np.ndarray, k: float, step: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """(thresholds, fraction of images with NME <= threshold) on the grid 0, step, ..., k.

    The grid is linspace(0, k, round(k / step) + 1): the literal arange(0, k + step, step) of the
    usual scripts overshoots by one sample when k / step rounds up in floating point (k = 0.07
    gives 702 samples ending at 0.0701, and perfect predictions would score AUC@0.07 = 1.0014)."""
    n = int(round(k / step))
    if n < 1 or not np.isclose(n * step, k, rtol=0, atol=step * 1e-6):
        raise ValueError(f"ced: k = {k} must be a positive multiple of step = {step}")
    t = np.linspace(0.0, k, n + 1)
    nm = np.sort(np.asarray(nmes))
    return t, np.searchsorted(nm, t, side="right") / max(1, len(nm))


def auc(nmes: np.ndarray, k: float, step: float = 1e-4) -> float:
    """Area under the CED up to k, divided by k (Simpson's rule on the 1e-4 grid)."""
    t, frac = ced(nmes, k, step)
    return _simpson(frac, step) / k


def summary(pred: np.ndarray, gt: np.ndarray, norm: np.ndarray, ks=(0.08, 0.10)) -> dict:
    """NME (mean of per-image NME), FR@k and AUC@k for each k, and the per-landmark mean error
    normalised the same way."""
    per_image = nme(pred, gt, norm)
    out = {"nme": float(per_image.mean()), "n": int(len(per_image)), "per_image": per_image}
    for k in ks:
        out[f"fr@{k:g}"] = failure_rate(per_image, k)
        out[f"auc@{k:g}"] = auc(per_image, k)
    out["per_landmark"] = np.nanmean(point_errors(pred, gt) / norm[:, None], axis=0)
    return out
