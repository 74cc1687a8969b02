"""Seconds per training step of each kind of ablation row, and of the evaluations around them: the
figures docs/results.md sizes the Siamese experiment with (issue 16).

Each kind is a short run of shr_fan.train.train as `shr-fan ablation` runs it (the DataLoader,
the loss, the optimizer step, the log); its seconds per step are taken from OUT/log.csv between
step `--warmup` and the last (the first steps render the finite set's faces and warm the
allocator). Then the two evaluations a table adds: one learning-curve measurement
(shr_fan.curves, --eval-faces faces of each set) and the final evaluation of one model
(evaluate() on the test and the hard test set with the consistency's view pairs, --eval-n faces
each; the faces are rendered once per table, and that rendering is timed apart).

    PYTHONPATH=.:python python benchmarks/row_step_times.py --preset tiny --crop 128 --batch-size 16 \
        --train-faces 256 [--device cuda] [--steps 16 --warmup 6]
"""
from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
from dataclasses import replace

import torch

from shr_fan.ablation import parse_variant
from shr_fan.checkpoint import load_model
from shr_fan.config import TrainConfig, check_config
from shr_fan.consistency_metric import ViewPairs
from shr_fan.curves import Curves
from shr_fan.evaluate import evaluate, mean_shape_baseline, test_sets
from shr_fan import backend
from shr_fan.train import train

KINDS = {  # kind: TrainConfig fields (a variant's text, or a plain row's)
    "plain, finite set": None,
    "plain, endless stream": "endless",
    "Siamese heatmap, joint": "heatmap:0.1:stop",
    "Siamese heatmap, joint, endless stream": "heatmap:0.1:stop:endless",
    "Siamese coords, joint": "coords:0.05:stop",
    "Siamese heatmap, separate": "heatmap:0.1:stop:pair=separate",
    "Siamese heatmap, half": "heatmap:0.1:stop:pair=half",
    "Siamese heatmap, all stacks": "heatmap:0.1:stop:all",
}


def kind_config(base: TrainConfig, kind: str) -> TrainConfig:
    text = KINDS[kind]
    if text is None:
        return base
    if text == "endless":
        return replace(base, train_faces=None)
    return check_config(replace(base, **parse_variant(text)))


def seconds_per_step(log_path: str, warmup: int) -> float:
    with open(log_path) as f:
        rows = [r for r in csv.DictReader(f)]
    by_step = {int(r["step"]): float(r["elapsed_s"]) for r in rows}
    last = max(by_step)
    return (by_step[last] - by_step[warmup]) / (last - warmup)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="tiny")
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--train-faces", type=int, default=256)
    p.add_argument("--steps", type=int, default=16, help="steps of each timed run")
    p.add_argument("--warmup", type=int, default=6, help="steps left out of the timing")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--eval-faces", type=int, default=64)
    p.add_argument("--eval-n", type=int, default=256)
    p.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    args = p.parse_args()
    base = check_config(TrainConfig(preset=args.preset, crop=args.crop, batch_size=args.batch_size,
                                    train_faces=args.train_faces, steps=args.steps, workers=args.workers,
                                    device=args.device, log_every=1, checkpoint_every=args.steps))
    print(f"{args.preset} FAN, crop {args.crop}, batch {args.batch_size}, {torch.get_num_threads()} torch thread(s), "
          f"{args.workers} worker(s), {args.device}")
    print("| row kind | s / step | crops / s |\n|---|---|---|")
    with tempfile.TemporaryDirectory() as root:
        checkpoint = None
        for kind in args.kinds:
            cfg = replace(kind_config(base, kind), out=os.path.join(root, kind.replace(" ", "_").replace(",", "")))
            out = train(cfg, progress=False)
            checkpoint = checkpoint or out["checkpoint"]
            s = seconds_per_step(os.path.join(cfg.out, "log.csv"), args.warmup)
            crops = cfg.batch_size * (2 if cfg.siamese and cfg.siamese_pairing != "half" else 1)
            print(f"| {kind} | {s:.3f} | {crops / s:.1f} |", flush=True)
        model, cfg = load_model(checkpoint, args.device)
        cfg = replace(cfg, eval_every=1, eval_faces=args.eval_faces, out=root)
        t0 = time.time()
        curves = Curves(cfg, backend.get_codec(cfg.codec, cfg.sigma, cfg.ops), os.path.join(root, "curves.csv"))
        rendered = time.time() - t0
        measured = curves.measure(model, 0, args.device)["eval_s"]
        curves.close()
        t0 = time.time()
        sets = {}
        for name, ds in test_sets(args.eval_n, args.crop).items():
            pairs = ViewPairs(ds)
            sets[name] = ([ds[i] for i in range(len(ds))], [pairs[i] for i in range(len(pairs))])
        mean_shape = mean_shape_baseline(cfg)
        render_tests = time.time() - t0
        t0 = time.time()
        for test, pairs in sets.values():
            evaluate(model, cfg, decoders=("shr", "hrnet"), device=args.device, test=test, pairs=pairs,
                     mean_shape=mean_shape)
        evaluation = time.time() - t0
    print(f"\n| evaluation | s |\n|---|---|\n| learning-curve sets, rendered once per run ({args.eval_faces} + "
          f"{args.eval_faces} faces, plain and in view pairs) | {rendered:.1f} |\n| one learning-curve measurement | "
          f"{measured:.1f} |\n| test sets, rendered once per table ({args.eval_n} + {args.eval_n} faces, plain and in "
          f"view pairs, and the mean shape) | {render_tests:.1f} |\n| final evaluation of one model (both test sets, "
          f"two decoders, consistency) | {evaluation:.1f} |")


if __name__ == "__main__":
    main()
