"""How much of a model's error changes with the view? (issue 16: what a consistency term could remove)

A consistency term asks the model to move its landmarks with the image: it acts on the part of
the error that differs between two views of one face, not on the part every view shares. This
script measures the two parts for trained models. Each test face (the ablation's synthetic test set
and its hard set) is cropped under 2P views: P pairs of the transform-consistency metric's views
(shr_fan.consistency_metric.ViewPairs with views seeds 0 .. P-1, the training augmentation's
geometry). Every view's landmarks (SHR's decoder) are mapped back to the image, and three numbers
come out, each normalised by the inter-ocular distance as the NME is:

- single-view NME: the NME of one view, averaged over the 2P views;
- view-averaged NME: the NME of the mean of the 2P views' image-frame landmarks (test-time
  augmentation over the metric's views). It is at most the single-view NME (the distance of a mean
  is at most the mean of the distances), and the gap is the view-dependent part that averaging
  removes;
- consistency: the metric of the first pair (views seed 0), as the ablation's column.

A model that moved exactly with the image would have a gap of 0: its views agree. So the gap is
about what perfect consistency could buy by making the views agree, if the agreement came at the
views' mean. A term that helps through other means (as a regulariser of the shared error) is not
bounded by it, which the ablation's NME column measures.

Usage (OUT: a `shr-fan ablation --out`; RUN: its run folders, seed<S>/<RUN>/checkpoint.pt):
    python benchmarks/view_averaged_error.py --out OUT --runs shr RUN [RUN ...] --seeds 0 1 2 \
        [--pairs 4] [--n 256] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

from shr_fan import backend
from shr_fan.checkpoint import load_model
from shr_fan.consistency_metric import VIEWS, ViewPairs, pair_errors, predict_pairs, to_image
from shr_fan.evaluate import test_sets
from shr_fan.metrics import inter_ocular, nme

SETS = ("test", "hard")


def view_items(n: int, crop: int, pairs: int) -> dict:
    """{set: (flip permutation, [the items of ViewPairs(set, VIEWS, seed) for seed in 0 .. pairs-1])},
    rendered once for every model."""
    faces = test_sets(n, crop)
    out = {}
    for name, ds in faces.items():
        sets = [ViewPairs(ds, VIEWS, seed) for seed in range(pairs)]
        out[name] = (sets[0].flip_permutation, [[vp[i] for i in range(len(vp))] for vp in sets])
    return out


def measure(model, cfg, perm, items_by_seed: list, device: str = "cpu") -> dict:
    """{single, averaged, gap, consistency} of one model on one set's views (fractions, not %)."""
    codec = backend.get_codec("shr", cfg.sigma, cfg.ops)
    views, consistency, original, norm = [], None, None, None
    for seed, items in enumerate(items_by_seed):
        out = predict_pairs(model, items, {"shr": codec}, cfg, device=device)
        pred = out["pred"]["shr"]
        if seed == 0:  # every pair holds the same faces
            original = out["original"]
            norm = inter_ocular(original)
            consistency = float(pair_errors(pred, out["matrix"], out["flip"], perm, norm).mean())
        for v in range(2):
            views.append(to_image(pred[:, v], out["matrix"][:, v], out["flip"][:, v], perm))
    single = float(np.mean([nme(v, original, norm).mean() for v in views]))
    averaged = float(nme(np.mean(views, axis=0), original, norm).mean())
    return dict(single=single, averaged=averaged, gap=single - averaged, consistency=consistency)


def _cell(values: list[float]) -> str:
    v = 100 * np.asarray(values)
    return f"{v.mean():.3f} ± {v.std(ddof=1):.3f}" if len(v) > 1 else f"{v.mean():.3f}"


def markdown(rows: dict, pairs: int) -> str:
    cols = ("single", "averaged", "gap", "consistency")
    names = ("single-view NME %", f"{2 * pairs}-view-mean NME %", "gap %", "consistency %")
    head = "| run | " + " | ".join(f"{n}" for n in names) + " | " + " | ".join(f"hard {n}" for n in names) + " |"
    lines = [head, "|---" * (1 + 2 * len(cols)) + "|"]
    for run, per_seed in rows.items():
        cells = [_cell([s[name][c] for s in per_seed]) for name in SETS for c in cols]
        lines.append(f"| {run} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="the shr-fan ablation --out folder")
    p.add_argument("--runs", nargs="+", required=True, help="run folders (seed<S>/<RUN>), e.g. shr")
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--pairs", type=int, default=4, help="view pairs a face (2 x this many views; default: 4)")
    p.add_argument("--n", type=int, default=256, help="faces a test set (default: 256, the ablation's)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", default=None, help="write every seed's numbers here")
    args = p.parse_args(argv)
    if args.pairs < 1 or args.n < 1:
        raise SystemExit(f"--pairs {args.pairs} --n {args.n}: expected integers >= 1")
    paths = {(run, s): os.path.join(args.out, f"seed{s}", run, "checkpoint.pt") for run in args.runs for s in args.seeds}
    missing = [path for path in paths.values() if not os.path.exists(path)]
    if missing:
        raise SystemExit(f"no checkpoint at {missing[0]} (and {len(missing) - 1} more)" if len(missing) > 1
                         else f"no checkpoint at {missing[0]}")
    t0 = time.time()
    models = {key: load_model(path, args.device) for key, path in paths.items()}
    crops = {cfg.crop for _, cfg in models.values()}
    if len(crops) != 1:
        raise SystemExit(f"the runs' crops differ ({sorted(crops)}): compare runs of one table")
    items = view_items(args.n, crops.pop(), args.pairs)
    rows = {run: [] for run in args.runs}
    for (run, _), (model, cfg) in models.items():
        rows[run].append({name: measure(model, cfg, perm, sets, args.device) for name, (perm, sets) in items.items()})
    print(markdown(rows, args.pairs))
    print(f"\n{len(paths)} models, {args.n} faces a set, {2 * args.pairs} views a face, {time.time() - t0:.0f} s "
          f"({torch.get_num_threads()} torch threads)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(pairs=args.pairs, n=args.n, seeds=args.seeds, rows=rows), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
