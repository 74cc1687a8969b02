"""Training images/s of the FAN with three ways of supplying the heatmap targets, in one run:

  encode   targets rendered on the device by shr_ops.encode, then the weighted MSE
           (shr_fan.train.supervised_loss: the default)
  fused    shr_ops.heatmap_loss renders them inside the loss (--fused-loss)
  numpy    targets rendered per item in the DataLoader with numpy (a Dataset wrapper adding a
           "target" map, vectorised over the landmarks), moved to the device with the batch

Each training step is the one shr_fan.train runs (forward, loss summed over the stacks,
backward, gradient clipping, AdamW step; bfloat16 autocast on CUDA), with a fresh model per
variant from the same seed. Two modes:

  step     one fixed batch prepared in advance (numpy targets included): the step alone
  loader   batches from a DataLoader over the augmented synthetic faces (`--workers` workers):
           the end-to-end throughput (the numpy variant renders its targets in the workers)

Variants alternate inside each of `--repeats` rounds (so a busy machine slows them alike); the
table gives the median and the best images/s and their ratios to `encode` in the same mode.

    PYTHONPATH=.:python python benchmarks/train_throughput.py [--preset tiny --crop 128 --batch-size 16] \
        [--json train.json]

With --json, the table also goes to a JSON file for benchmarks/report.py (--train).
"""
from __future__ import annotations

import argparse
import datetime
import json
import statistics
import time
from dataclasses import replace

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from shr_fan.train import (FOREGROUND_THRESHOLD, TrainConfig, build_model, heatmap_loss, heatmap_size,
                           supervised_loss, targets, train_dataset)
from shr_ops import codecs

from report import train_lines  # benchmarks/report.py (this script's folder is on sys.path)

VARIANTS = ("encode", "fused", "numpy")


def numpy_targets(landmarks: np.ndarray, cfg: TrainConfig, sigma: float) -> np.ndarray:
    """SHR targets of one item with numpy: landmarks [K, 2] in crop pixels -> float32 [K, S, S]
    (S = heatmap side), exact subpixel centres, zero maps for non-finite landmarks."""
    size = heatmap_size(cfg)
    stride = cfg.crop / size
    hm = (landmarks.astype(np.float32) + 0.5) / stride - 0.5  # shr_ops.coords.image_to_heatmap
    valid = np.isfinite(hm).all(-1)
    hm = np.where(valid[:, None], hm, 0.0).astype(np.float32)
    grid = np.arange(size, dtype=np.float32)
    inv = np.float32(-0.5 / (sigma * sigma))
    gx = np.exp((grid[None, :] - hm[:, 0:1]) ** 2 * inv)  # [K, S]
    gy = np.exp((grid[None, :] - hm[:, 1:2]) ** 2 * inv) * (valid[:, None] * np.float32(cfg.target_scale))
    return gy[:, :, None] * gx[:, None, :]


class WithNumpyTargets(Dataset):
    """A training set whose items also hold "target": float32 [K, S, S] rendered by numpy_targets."""

    def __init__(self, base: Dataset, cfg: TrainConfig, sigma: float):
        self.base, self.cfg, self.sigma = base, cfg, sigma

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict:
        item = dict(self.base[index])
        item["target"] = torch.from_numpy(numpy_targets(item["landmarks"].numpy(), self.cfg, self.sigma))
        return item


class Trainer:
    """One variant's model and optimiser, and its training step (as shr_fan.train.train)."""

    def __init__(self, variant: str, cfg: TrainConfig, codec: codecs.Codec):
        torch.manual_seed(cfg.seed)
        self.variant, self.codec = variant, codec
        self.cfg = replace(cfg, fused_loss=variant == "fused")
        self.device = torch.device(cfg.device)
        self.model = build_model(cfg).to(self.device).train()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def step(self, batch: dict) -> float:
        cfg, device = self.cfg, self.device
        images = batch["image"].to(device, non_blocking=True)
        lm = batch["landmarks"].to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            outputs = self.model(images)
        if self.variant == "numpy":
            target = batch["target"].to(device, non_blocking=True)
            loss = heatmap_loss(outputs, target, cfg.foreground_weight, cfg.target_scale)
        else:
            loss = supervised_loss(self.codec, outputs, lm, cfg)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.opt.step()
        return loss.item()  # synchronises, as the training loop does


def _timed(trainer: Trainer, batches, steps: int, warmup: int, batch_size: int) -> float:
    """images/s over `steps` steps after `warmup` steps."""
    it = iter(batches)
    for _ in range(warmup):
        trainer.step(next(it))
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.step(next(it))
    return steps * batch_size / (time.perf_counter() - t0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="tiny")
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=8, help="timed steps per variant and round")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3, help="rounds (variants alternate inside each)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--modes", nargs="+", default=["step", "loader"], choices=["step", "loader"])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", help="also write the header and the table's rows here (for benchmarks/report.py)")
    args = p.parse_args(argv)

    cfg = TrainConfig(preset=args.preset, crop=args.crop, batch_size=args.batch_size, device=args.device,
                      workers=args.workers)
    codec = codecs.get_codec(cfg.codec, cfg.sigma)
    device = torch.device(cfg.device)
    per_round = args.warmup + args.steps
    base = train_dataset(cfg, per_round * args.batch_size)
    data = WithNumpyTargets(base, cfg, codec.sigma)

    # The numpy targets are the device targets (else the comparison would be meaningless).
    fixed = next(iter(DataLoader(data, batch_size=args.batch_size, num_workers=0)))
    want = targets(codec, fixed["landmarks"], cfg)
    torch.testing.assert_close(fixed["target"], want, atol=1e-5, rtol=0)
    sizes = heatmap_size(cfg)
    header = [
        f"FAN {args.preset}, crop {args.crop}, batch {args.batch_size}, {sizes}x{sizes} maps, foreground weight "
        f"{cfg.foreground_weight} (threshold {FOREGROUND_THRESHOLD} x target scale)",
        f"device {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else
                              f" ({torch.get_num_threads()} threads)")
        + f", torch {torch.__version__}, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; "
        f"{args.repeats} rounds of {args.warmup} + {args.steps} steps per variant, loader workers {args.workers}",
    ]
    for line in header:
        print(f"# {line}")

    trainers = {v: Trainer(v, cfg, codec) for v in VARIANTS}
    results = {(m, v): [] for m in args.modes for v in VARIANTS}
    for _ in range(args.repeats):
        for mode in args.modes:
            for v in VARIANTS:
                if mode == "step":
                    batches = (fixed for _ in range(per_round))
                else:
                    batches = DataLoader(data if v == "numpy" else base, batch_size=args.batch_size, shuffle=False,
                                         num_workers=args.workers, drop_last=True,
                                         pin_memory=device.type == "cuda")
                results[(mode, v)].append(_timed(trainers[v], batches, args.steps, args.warmup, args.batch_size))

    rows = []
    for mode in args.modes:
        ref = results[(mode, "encode")]
        for v in VARIANTS:
            r = results[(mode, v)]
            rows.append(dict(mode=mode, targets=v, median=statistics.median(r), best=max(r), runs=r,
                             median_ratio=statistics.median(r) / statistics.median(ref), best_ratio=max(r) / max(ref)))
    print("\n" + "\n".join(train_lines(rows)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(header=header, rows=rows), f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
