"""The default decoder (the Gaussian fit) against the decoder before it (the soft-argmax of the
pre-filtered maps) on the same heatmaps of a trained model: NME on the synthetic test and hard sets,
the paired per-face difference with its standard error, and per landmark by the distance of the
true position to the outermost pixel centre (heatmap px).

    PYTHONPATH=.:python python benchmarks/decoders_on_network.py runs/quick/checkpoint.pt
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from torch.utils.data import DataLoader

import shr_ops
from shr_ops import reference
from shr_fan import metrics
from shr_fan.checkpoint import load_model
from shr_fan.data import SyntheticFaces
from shr_fan.evaluate import TEST_SEED, hard_test_set, predict_heatmaps
from shr_fan.geometry import to_crop

BINS = ((0, 1), (1, 2), (2, 3), (3, 6), (6, 10), (10, 1000))


def prefit(h: torch.Tensor) -> torch.Tensor:
    """The default decoder before the fit: the soft-argmax of the pre-filtered maps."""
    return reference.prefiltered_soft_argmax(h)[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--faces", type=int, default=256)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model, cfg = load_model(args.checkpoint)
    sets = (("test", SyntheticFaces(args.faces, seed=TEST_SEED, crop=cfg.crop, augment=None)),
            ("hard", hard_test_set(args.faces, cfg.crop)))
    for name, test in sets:
        heat, gt = predict_heatmaps(model, DataLoader(test, batch_size=32), "cpu")
        norm = metrics.inter_ocular(gt)
        err = {k: np.linalg.norm(to_crop(fn(heat).double(), cfg.crop).numpy() - gt, axis=-1)
               for k, fn in (("fit", shr_ops.decode), ("prefit", prefit))}
        nme = {k: e.mean(-1) / norm * 100 for k, e in err.items()}
        diff = nme["fit"] - nme["prefit"]
        print(f"{name}: NME % fit {nme['fit'].mean():.3f}, before the fit {nme['prefit'].mean():.3f}; paired "
              f"difference {diff.mean():+.4f} +- {diff.std(ddof=1) / np.sqrt(len(diff)):.4f} (standard error, "
              f"{len(diff)} faces)")
        size = heat.shape[-1]
        stride = cfg.crop / size
        true_hm = (gt + 0.5) / stride - 0.5
        dist = np.minimum(true_hm, size - 1 - true_hm).min(-1)
        for lo, hi in BINS:
            sel = (dist >= lo) & (dist < hi)
            if sel.sum() > 1:
                d = (err["fit"] - err["prefit"])[sel] / stride
                print(f"  {lo}-{hi} px from the edge: {sel.sum()} landmarks, error {err['fit'][sel].mean() / stride:.3f} "
                      f"against {err['prefit'][sel].mean() / stride:.3f} heatmap px, difference {d.mean():+.4f} +- "
                      f"{d.std(ddof=1) / np.sqrt(len(d)):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
