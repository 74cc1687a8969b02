"""Decoders on the same heatmaps of trained models: the default (the Gaussian fit), the decoder
before it (the soft-argmax of the pre-filtered maps), and a candidate, the soft-argmax corrected by
its own bias on the fitted Gaussian (below). NME on the synthetic test and hard sets, each paired
per-face difference to the decoder before the fit with its standard error, and per landmark by the
distance of the true position to the outermost pixel centre (heatmap px). Several checkpoints (for
example the paired seeds of an ablation) give a line each and a pooled line.

    PYTHONPATH=.:python python benchmarks/decoders_on_network.py runs/quick/checkpoint.pt [more.pt ...]

The candidate ("soft - bias"): with the fit's (A, x, y, lam) and the soft-argmax estimate s of the
map, the result is s - (S(model) - (x, y)), where S(model) is the same soft-argmax (same window
around the same argmax, same temperature) of the pre-filtered fitted Gaussian, zero outside the
frame (gaussian_fit._blurred_axis_tables). On a clean Gaussian the map is the model, S(model) = s
and the result is the fit, exact up to the edge; on other maps the estimate keeps the soft-argmax's
behaviour and takes from the fit only the bias that the frame and the window give the soft-argmax
on a Gaussian of that width. Where the fit is not valid, s. A prototype in pure PyTorch (float64),
not in the kernels.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from torch.utils.data import DataLoader

from shr_ops import defaults, gaussian_fit, reference
from shr_fan import metrics
from shr_fan.checkpoint import load_model
from shr_fan.data import SyntheticFaces
from shr_fan.evaluate import TEST_SEED, hard_test_set, predict_heatmaps
from shr_fan.geometry import to_crop

BINS = ((0, 1), (1, 2), (2, 3), (3, 6), (6, 10), (10, 1000))
DECODERS = ("fit", "soft - bias")  # each against "before the fit"


def model_soft_argmax(index, A, x, y, lam, size, *, window, temperature, blur):
    """The soft-argmax [..., K, 2] over the window around `index` of the pre-filtered Gaussian
    A exp(-lam |p - (x, y)|^2), zero outside the frame of `size` (H, W)."""
    height, width = size
    r = window // 2
    mi, mj = index // width, index % width
    off = torch.arange(-r, r + 1, device=index.device)
    rows, cols = (mi[..., None] + off).double(), (mj[..., None] + off).double()
    iy = ((rows >= 0) & (rows < height)).double()
    ix = ((cols >= 0) & (cols < width)).double()
    taps = gaussian_fit.prefilter_taps(blur).to(index.device)
    by = gaussian_fit._blurred_axis_tables(rows, y, lam, iy, taps, height)["k"]
    bx = gaussian_fit._blurred_axis_tables(cols, x, lam, ix, taps, width)["k"]
    F = A[..., None, None] * by[..., :, None] * bx[..., None, :]
    inside = (iy[..., :, None] * ix[..., None, :]) > 0
    p = torch.softmax((temperature * F).masked_fill(~inside, float("-inf")).flatten(-2), -1).unflatten(-1, F.shape[-2:])
    o = off.double()
    return torch.stack([mj.double() + (p.sum(-2) * o).sum(-1), mi.double() + (p.sum(-1) * o).sum(-1)], -1)


def decode_all(heat: torch.Tensor) -> dict:
    """name -> coords [N, K, 2] (float64) for "before the fit" and DECODERS, at the defaults."""
    w, t, b = defaults.DEFAULT_WINDOW, defaults.DEFAULT_TEMPERATURE, defaults.DEFAULT_BLUR
    coords, _, info = reference.decode_with_info(heat, window=w, temperature=t, blur=b)
    soft = info["soft"].double()
    fit = coords.double()
    model = model_soft_argmax(info["index"], info["A"], fit[..., 0], fit[..., 1], info["lam"], heat.shape[-2:],
                              window=w, temperature=t, blur=b)
    corrected = torch.where(info["valid"][..., None], soft - (model - fit), soft)
    return {"before the fit": soft, "fit": fit, "soft - bias": corrected}


def evaluate(checkpoint: str, faces: int) -> dict:
    """set name -> (per-face NME % per decoder, per-landmark error per decoder in heatmap px,
    per-landmark distance to the edge)."""
    model, cfg = load_model(checkpoint)
    out = {}
    for name, test in (("test", SyntheticFaces(faces, seed=TEST_SEED, crop=cfg.crop, augment=None)),
                       ("hard", hard_test_set(faces, cfg.crop))):
        heat, gt = predict_heatmaps(model, DataLoader(test, batch_size=32), "cpu")
        norm = metrics.inter_ocular(gt)
        size = heat.shape[-1]
        stride = cfg.crop / size
        err = {k: np.linalg.norm(to_crop(c, cfg.crop).numpy() - gt, axis=-1) for k, c in decode_all(heat).items()}
        nme = {k: e.mean(-1) / norm * 100 for k, e in err.items()}
        true_hm = (gt + 0.5) / stride - 0.5
        dist = np.minimum(true_hm, size - 1 - true_hm).min(-1)
        out[name] = (nme, {k: e / stride for k, e in err.items()}, dist)
    return out


def _pm(d: np.ndarray) -> str:
    return f"{d.mean():+.4f} +- {d.std(ddof=1) / np.sqrt(len(d)):.4f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--faces", type=int, default=256)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results = [(c, evaluate(c, args.faces)) for c in args.checkpoints]
    for set_name in ("test", "hard"):
        print(f"## {set_name} set: NME % (paired difference to the decoder before the fit, +- standard error over faces)")
        rows = [(c, r[set_name]) for c, r in results]
        if len(rows) > 1:  # pooled: every model's faces
            cat = lambda i, k: np.concatenate([r[i][k] for _, r in rows])  # noqa: E731
            rows.append(("pooled", ({k: cat(0, k) for k in rows[0][1][0]}, {k: cat(1, k) for k in rows[0][1][1]},
                                    np.concatenate([r[2] for _, r in rows]))))
        for name, (nme, err, dist) in rows:
            base = nme["before the fit"]
            cells = ", ".join(f"{k} {nme[k].mean():.3f} ({_pm(nme[k] - base)})" for k in DECODERS)
            print(f"{name}: before the fit {base.mean():.3f}; {cells}")
        nme, err, dist = rows[-1][1]
        for lo, hi in BINS:
            sel = dist >= lo
            sel &= dist < hi
            if sel.sum() > 1:
                cells = ", ".join(f"{k} {_pm((err[k] - err['before the fit'])[sel])}" for k in DECODERS)
                print(f"  {lo}-{hi} px from the edge ({rows[-1][0]}): {sel.sum()} landmarks, before the fit "
                      f"{err['before the fit'][sel].mean():.3f} heatmap px; {cells}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
