"""Training images/s of the FAN on the compiled ops and on the pure-PyTorch reference
(`TrainConfig.ops`, shr_fan.backend), in one run:

  compiled    targets by shr_ops.encode (or the loss by shr_ops.heatmap_loss with --fused-loss)
  reference   the same calls on shr_ops.reference

Each step is the one shr_fan.train runs (forward, the supervised loss summed over the stacks,
backward, gradient clipping, AdamW step; bfloat16 autocast on CUDA), on one fixed batch of
augmented synthetic faces prepared in advance, so that only the step is timed. Each variant has
its own model from the same seed; the variants alternate inside each of `--repeats` rounds (a busy
machine slows them alike), and the table gives the median and best images/s and their ratio to
the compiled ops with the same loss.

`--agreement` first trains the same seed both ways with shr_fan.train (tiny FAN, 64 px crops,
batch 4, 20 steps, one thread on a CPU, as tests/test_backend.py) and prints how far apart the
free runs end (step losses, weights, NME of the synthetic test set per decoder) and, at the
compiled run's final weights, how far apart the two backends' training step (loss, gradients)
and evaluation (NME, consistency) are.

    PYTHONPATH=.:python python benchmarks/train_backends.py [--preset tiny --crop 128 --batch-size 16] \
        [--device cuda] [--agreement] [--json backends.json]
"""
from __future__ import annotations

import argparse
import datetime
import json
import statistics
import time

import torch
from torch.utils.data import DataLoader

from shr_fan import backend
from shr_fan.config import TrainConfig
from shr_fan.factory import build_model
from shr_fan.data import Augment, SyntheticFaces
from shr_fan.losses import supervised_loss

VARIANTS = [(ops, fused) for fused in (False, True) for ops in ("compiled", "reference")]


class Trainer:
    def __init__(self, cfg: TrainConfig):
        torch.manual_seed(cfg.seed)
        self.cfg, self.device = cfg, torch.device(cfg.device)
        self.codec = backend.get_codec(cfg.codec, cfg.sigma, cfg.ops)
        self.model = build_model(cfg).to(self.device).train()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def step(self, images: torch.Tensor, landmarks: torch.Tensor) -> float:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            outputs = self.model(images)
        loss = supervised_loss(self.codec, outputs, landmarks, self.cfg)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.opt.step()
        return loss.item()  # synchronises, as the training loop does


def _timed(trainer: Trainer, images, landmarks, steps: int, warmup: int) -> float:
    for _ in range(warmup):
        trainer.step(images, landmarks)
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.step(images, landmarks)
    return steps * images.shape[0] / (time.perf_counter() - t0)


def agreement(device: str, steps: int = 20) -> dict:
    """Train the same seed on both backends (on a CPU, on one thread, as the test) and measure
    what tests/test_backend.py asserts: how far apart the free runs' step losses, weights and NME
    end, and, at the compiled run's final weights, the training step's loss and gradients and the
    evaluation on either backend."""
    import re
    import tempfile
    from dataclasses import replace

    from torch.utils.data import Subset

    from shr_fan.checkpoint import load_model
    from shr_fan.evaluate import evaluate
    from shr_fan.factory import train_dataset
    from shr_fan.train import train

    bn_fed = re.compile(r"^(conv1\.bias|bn1\.running_mean|features\.\d+\.0\.bias)$")  # see tests/test_backend.py
    threads = torch.get_num_threads()
    if torch.device(device).type == "cpu":
        torch.set_num_threads(1)
    try:
        runs = {}
        with tempfile.TemporaryDirectory() as tmp:
            for ops in ("compiled", "reference"):
                cfg = TrainConfig(preset="tiny", crop=64, steps=steps, batch_size=4, workers=0, device=device, seed=3,
                                  log_every=1, checkpoint_every=100, out=f"{tmp}/{ops}", ops=ops)
                out = train(cfg, progress=False)
                model, saved = load_model(out["checkpoint"], device)
                runs[ops] = (cfg, out, model, saved)
            (cfg, oc, mc, saved), (_, orf, mr, _) = runs["compiled"], runs["reference"]
            weights = max(((mr.state_dict()[k] - a).abs().max() / a.abs().max().clamp_min(1e-3)).item()
                          for k, a in mc.state_dict().items() if a.dtype.is_floating_point and not bn_fed.match(k))
            free = {ops: evaluate(m, s, n=32, decoders=("shr", "hrnet"), device=device)
                    for ops, (_, _, m, s) in runs.items()}
            mc.eval()  # evaluated before the steps below, which move its batch-norm statistics
            same_model = {ops: evaluate(mc, replace(saved, ops=ops), n=32, decoders=("shr", "hrnet"), device=device)
                          for ops in ("compiled", "reference")}
            # The training step at the compiled run's final weights, on the faces of the next step.
            n = cfg.batch_size
            batch = next(iter(DataLoader(Subset(train_dataset(cfg, (steps + 1) * n), range(steps * n, (steps + 1) * n)),
                                         batch_size=n)))
            images, landmarks = batch["image"].to(device), batch["landmarks"].to(device)
            forced = {}
            for ops in ("compiled", "reference"):
                mc.train()
                mc.zero_grad(set_to_none=True)
                loss = supervised_loss(backend.get_codec(cfg.codec, cfg.sigma, ops), mc(images), landmarks,
                                       replace(cfg, ops=ops))
                loss.backward()
                forced[ops] = (loss.item(), {k: p.grad.clone() for k, p in mc.named_parameters()})
    finally:
        torch.set_num_threads(threads)

    loss_c = torch.tensor([l for _, l in oc["history"]], dtype=torch.float64)
    loss_r = torch.tensor([l for _, l in orf["history"]], dtype=torch.float64)
    loss_rel = (loss_r - loss_c).abs() / loss_c
    first_over = next((i + 1 for i, d in enumerate(loss_rel.tolist()) if d > 1e-6), None)
    (lc, gc), (lr, gr) = forced["compiled"], forced["reference"]
    grads = max(((gr[k] - g).abs().max() / g.abs().max()).item() for k, g in gc.items() if not bn_fed.match(k))
    decoders = ("shr", "hrnet", "mean shape")
    result = dict(steps=steps, first_loss=loss_c[0].item(), last_loss=loss_c[-1].item(),
                  loss_rel=loss_rel.max().item(), loss_rel_first_steps=loss_rel[:5].max().item(),
                  first_step_over_1e6=first_over, weights_rel=weights,
                  nme={k: (free["compiled"][k]["nme"], free["reference"][k]["nme"]) for k in decoders},
                  step_loss_rel=abs(lr - lc) / lc, step_grads_rel=grads,
                  same_model={k: max(abs(same_model["compiled"][k][m] - same_model["reference"][k][m])
                                     for m in ("nme", "consistency")) for k in decoders})
    print(f"# agreement, {steps} steps of the tiny FAN (crop 64, batch 4, seed 3) on each backend, {device}"
          f"{' (one thread)' if torch.device(device).type == 'cpu' else ''}:")
    print(f"#   free runs: loss {result['first_loss']:.4f} -> {result['last_loss']:.4f}; step losses differ by at "
          f"most {result['loss_rel_first_steps']:.2e} relative over steps 1-5, {result['loss_rel']:.2e} over all "
          f"(first step above 1e-6: {first_over})")
    print(f"#   free runs: weights differ by at most {weights:.2e} of each tensor's largest entry (the BN-fed biases "
          "left out)")
    for k, (a, b) in result["nme"].items():
        print(f"#   free runs: NME {k}: compiled {100 * a:.4f} %, reference {100 * b:.4f} % "
              f"(difference {100 * abs(a - b):.5f} points)")
    print(f"#   one step at the compiled run's final weights: loss differs by {result['step_loss_rel']:.2e} relative, "
          f"gradients by at most {grads:.2e} of each tensor's largest entry (the BN-fed biases left out)")
    for k, d in result["same_model"].items():
        print(f"#   that model evaluated on either backend: {k} NME and consistency differ by at most {d:.1e}")
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="tiny")
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=8, help="timed steps per variant and round")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3, help="rounds (variants alternate inside each)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--agreement", action="store_true", help="first train 20 steps both ways and compare the runs")
    p.add_argument("--json", help="also write the header and the rows here")
    args = p.parse_args(argv)
    agreed = agreement(args.device) if args.agreement else None

    base = TrainConfig(preset=args.preset, crop=args.crop, batch_size=args.batch_size, device=args.device)
    device = torch.device(base.device)
    faces = SyntheticFaces(args.batch_size, seed=base.seed, crop=base.crop, augment=Augment())
    batch = next(iter(DataLoader(faces, batch_size=args.batch_size)))
    images, landmarks = batch["image"].to(device), batch["landmarks"].to(device)
    where = (f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda"
             else f"{device} ({torch.get_num_threads()} threads)")
    header = (f"FAN {args.preset}, crop {args.crop}, batch {args.batch_size}, {where}, torch {torch.__version__}, "
              f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; {args.repeats} rounds of "
              f"{args.warmup} + {args.steps} steps per variant")
    print(f"# {header}")

    trainers = {v: Trainer(TrainConfig(**{**base.__dict__, "ops": v[0], "fused_loss": v[1]})) for v in VARIANTS}
    runs = {v: [] for v in VARIANTS}
    for _ in range(args.repeats):
        for v in VARIANTS:
            runs[v].append(_timed(trainers[v], images, landmarks, args.steps, args.warmup))

    rows = []
    for ops, fused in VARIANTS:
        r, ref = runs[(ops, fused)], runs[("compiled", fused)]
        rows.append(dict(ops=ops, loss="fused heatmap_loss" if fused else "encode + MSE", median=statistics.median(r),
                         best=max(r), runs=r, median_ratio=statistics.median(r) / statistics.median(ref)))
    print("\n| ops | loss | median images/s | best images/s | median / compiled |\n|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['ops']} | {row['loss']} | {row['median']:.1f} | {row['best']:.1f} | {row['median_ratio']:.3f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(header=header, rows=rows, agreement=agreed), f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
