"""Landmark metrics as the face-alignment community computes them (DESIGN.md).

NME is computed per image (mean point-to-point error over the landmarks, divided by the image's
normalising distance) and then averaged over images. FR@k is the fraction of images with
NME > k. AUC@k integrates the cumulative error distribution (CED), sampled on
arange(0, k + 1e-4, 1e-4), with Simpson's rule, divided by k.
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


def point_errors(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """[N, K] Euclidean errors."""
    if pred.shape != gt.shape or pred.shape[-1] != 2:
        raise ValueError(f"point_errors: pred and gt must both be [N, K, 2], got {pred.shape} and {gt.shape}")
    return np.linalg.norm(pred - gt, axis=-1)


def nme(pred: np.ndarray, gt: np.ndarray, norm: np.ndarray) -> np.ndarray:
    """[N] per-image NME: mean over landmarks of the error, divided by norm [N]."""
    return point_errors(pred, gt).mean(-1) / norm


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
    """(thresholds, fraction of images with NME <= threshold) on arange(0, k + step, step)."""
    t = np.arange(0.0, k + step, step)
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
    out["per_landmark"] = (point_errors(pred, gt) / norm[:, None]).mean(0)
    return out
