"""Decoders on the same heatmaps of trained models: the default (the soft-argmax estimate of the
pre-filtered maps corrected by its own bias on the fitted Gaussian), the fit alone (the decoder of
stop 18), and the estimate before any correction (the decoder before issue 13: "uncorrected"). NME on the
synthetic test and hard sets, each paired per-face difference to the uncorrected estimate with its
standard error, and per landmark by the distance of the true position to the outermost pixel
centre (heatmap px). Several checkpoints (for example the paired seeds of an ablation) give a line
each and a pooled line.

    PYTHONPATH=.:python python benchmarks/decoders_on_network.py runs/quick/checkpoint.pt [more.pt ...]
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from torch.utils.data import DataLoader

from shr_ops import defaults, reference
from shr_fan import metrics
from shr_fan.checkpoint import load_model
from shr_fan.evaluate import predict_heatmaps, test_sets
from shr_fan.geometry import to_crop

BINS = ((0, 1), (1, 2), (2, 3), (3, 6), (6, 10), (10, 1000))
BASE = "uncorrected"
DECODERS = ("default", "the fit alone")  # each against BASE


def decode_all(heat: torch.Tensor) -> dict:
    """name -> coords [N, K, 2] (float64) for BASE and DECODERS, at the defaults."""
    coords, _, info = reference.decode_with_info(heat, window=defaults.DEFAULT_WINDOW,
                                                 temperature=defaults.DEFAULT_TEMPERATURE, blur=defaults.DEFAULT_BLUR)
    soft = info["soft"].double()
    fit = torch.where(info["valid"][..., None], info["fit"], soft)
    return {BASE: soft, "default": coords.double(), "the fit alone": fit}


def evaluate(checkpoint: str, faces: int) -> dict:
    """set name -> (per-face NME % per decoder, per-landmark error per decoder in heatmap px,
    per-landmark distance to the edge)."""
    model, cfg = load_model(checkpoint)
    out = {}
    for name, test in test_sets(faces, cfg.crop).items():
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
        print(f"## {set_name} set: NME % (paired difference to {BASE}, +- standard error over faces)")
        rows = [(c, r[set_name]) for c, r in results]
        if len(rows) > 1:  # pooled: every model's faces
            cat = lambda i, k: np.concatenate([r[i][k] for _, r in rows])  # noqa: E731
            rows.append(("pooled", ({k: cat(0, k) for k in rows[0][1][0]}, {k: cat(1, k) for k in rows[0][1][1]},
                                    np.concatenate([r[2] for _, r in rows]))))
        for name, (nme, err, dist) in rows:
            base = nme[BASE]
            cells = ", ".join(f"{k} {nme[k].mean():.3f} ({_pm(nme[k] - base)})" for k in DECODERS)
            print(f"{name}: {BASE} {base.mean():.3f}; {cells}")
        nme, err, dist = rows[-1][1]
        for lo, hi in BINS:
            sel = (dist >= lo) & (dist < hi)
            if sel.sum() > 1:
                cells = ", ".join(f"{k} {_pm((err[k] - err[BASE])[sel])}" for k in DECODERS)
                print(f"  {lo}-{hi} px from the edge ({rows[-1][0]}): {sel.sum()} landmarks, {BASE} "
                      f"{err[BASE][sel].mean():.3f} heatmap px; {cells}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
