"""Training of FAN on synthetic faces or a benchmark's training split: the loop, its log, and the
`shr-fan train` entry point (also `python -m shr_fan.train` under torchrun).

Each step: a batch of crops and continuous landmarks (crop pixels) from the DataLoader; the
targets rendered on the device by the codec's encoder (shr_fan.geometry, shr_fan.losses); loss =
weighted mean squared error summed over the stacks (intermediate supervision), or the fused
heatmap_loss; AdamW with a one-cycle schedule, gradient clipping, bfloat16 autocast on CUDA (no
loss scaling needed). Every encode / decode / heatmap_loss runs on the backend of `cfg.ops`
(shr_fan.backend: the compiled ops or shr_ops.reference). Checkpoints hold the whole state and
are written atomically (shr_fan.checkpoint); item i of step s is a function of (seed, s, i), so
`--resume` continues the same run, refuses options that would change it, and the log continues
without repeated rows, its elapsed time cumulative.

Siamese training (`siamese=True`): every face comes as two crops (shr_fan.data, views=2), the
second differing from the first in `siamese_transforms` drawn afresh (default: every transform,
two independent crops) from the augmentation's ranges times `siamese_strength`; both go through
the network (`siamese_pairing`: in one batch of 2B crops, in two batches of B, or as B/2 faces in
one batch of B), both get the supervised loss, and `consistency_weight` x the transform
consistency of shr_fan.consistency (heatmap or coordinate form, on the last stack or all, with
the fixed targets that `stop_gradient` names; optionally ramped up linearly from 0 over the first
`consistency_warmup` fraction of the steps: a large weight applied from step 0 pushes the
untrained network's outputs toward flat maps, where they stay; docs/results.md) is added.

Finite training set (`train_faces` N): the first N synthetic faces of the stream, cycled epoch
after epoch (data.EpochCycle), as the benchmarks are. Learning curves (`eval_every`): loss, NME
and transform consistency on training and held-out faces at intervals, OUT/curves.csv
(shr_fan.curves).

Distributed: under torchrun (WORLD_SIZE > 1) the model is wrapped in DistributedDataParallel
(NCCL on CUDA, one GPU per process by LOCAL_RANK; gloo on the CPU); `batch_size` is per process,
so step s uses items [s·B·W, (s+1)·B·W) of the stream, dealt to the ranks by a DistributedSampler;
only rank 0 logs and writes checkpoints, and every rank resumes from the same checkpoint (which
refuses a different world size: the data order would change).

    torchrun --nproc_per_node 8 -m shr_fan.train --preset full --crop 256 --batch-size 16 --out runs/ddp
"""
from __future__ import annotations

import json
import math
import os
import random
import sys
import time
from dataclasses import replace

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Subset
from torch.utils.data.distributed import DistributedSampler

from . import backend, errors
from .checkpoint import (check_weights, checkpoint_config, load_checkpoint, load_model, rng_state, save_checkpoint,
                         set_rng_state)
from .config import (PER_INVOCATION, Parser, TrainConfig, add_config_arguments, check_config, config_differences,
                     config_from_args, given)
from .errors import UserError
from .curves import Curves
from .factory import build_model, items_per_step, landmark_count, train_dataset
from .geometry import heatmap_size, targets
from .losses import (FOREGROUND_THRESHOLD, check_fused_loss, consistency_loss, consistency_weight, heatmap_loss,
                     supervised_loss)
from .run_log import CsvLog, tensorboard

# The names benchmarks and older callers import from here.
__all__ = ["TrainConfig", "train", "main", "build_model", "landmark_count", "train_dataset", "heatmap_size",
           "targets", "heatmap_loss", "supervised_loss", "consistency_loss", "consistency_weight",
           "check_fused_loss", "FOREGROUND_THRESHOLD", "load_model", "save_checkpoint"]

CHECKPOINT = "checkpoint.pt"


def _world() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) without it."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def _all_mean(value: float, device: torch.device) -> float:
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.item() / dist.get_world_size()


def prepare_out(cfg: TrainConfig, resume: bool, overwrite: bool) -> str:
    """The checkpoint path in cfg.out, once the folder exists and is writable and holds what the
    mode expects: a checkpoint for `resume`; none, or `overwrite`, for a new run."""
    path = os.path.join(cfg.out, CHECKPOINT)
    if resume:
        if not os.path.isfile(path):
            raise UserError(f"--resume: no checkpoint at {path}; start the run without --resume")
    elif os.path.exists(path) and not overwrite:
        raise UserError(f"--out {cfg.out} already holds a run ({path}); pass --resume to continue it, --overwrite "
                        "to start it again, or choose another --out")
    try:
        os.makedirs(cfg.out, exist_ok=True)
    except OSError as e:
        raise UserError(f"--out {cfg.out}: cannot create the folder ({e.strerror or e})") from None
    if not os.access(cfg.out, os.W_OK | os.X_OK):
        raise UserError(f"--out {cfg.out}: the folder is not writable")
    return path


def check_resume(state: dict, cfg: TrainConfig, path: str, world: int) -> None:
    """Refuse to resume `state` (read from `path`) with a configuration or world size that would
    make the resumed run differ from the one the checkpoint began."""
    saved = checkpoint_config(state, path, "--resume")
    if saved.steps != cfg.steps:
        raise UserError(f"--resume: --steps {cfg.steps} differs from the checkpoint's {saved.steps} ({path}): the "
                        "one-cycle learning-rate schedule is fixed by the step count, so a run cannot be extended "
                        "or shortened; train a new run (another --out) with the new --steps")
    diffs = config_differences(saved, cfg)
    if diffs:
        raise UserError(f"--resume: {path} was trained with other options: {'; '.join(diffs)}. Resume with the "
                        "checkpoint's options (leave them out), or train a new run in another --out")
    if state.get("world_size", 1) != world:
        raise UserError(f"--resume: {path} was written by a run of {state.get('world_size', 1)} process(es), this "
                        f"one has {world}; the data order would differ")


def train(cfg: TrainConfig, *, resume: bool = False, overwrite: bool = False, progress: bool = True) -> dict:
    """Train (or, with `resume`, continue the run in cfg.out) and return a summary: step (the last),
    start_step, steps_run, loss, consistency, seconds (this invocation's wall time, curve
    measurements left out), elapsed (training seconds of all invocations up to the last step, as the
    log's last row and the checkpoint record them), images_per_s (this invocation), stopped_early,
    checkpoint, rank, world_size, history ((step, loss) of every step run). A new run refuses a cfg.out holding a checkpoint unless
    `overwrite`."""
    check_config(cfg)
    rank, world, local_rank = _world()
    distributed = world > 1
    device = torch.device(cfg.device)
    if distributed and cfg.siamese and cfg.siamese_pairing == "separate":
        raise UserError("--siamese-pairing separate runs two forward passes before one backward, which "
                        "DistributedDataParallel does not allow; use joint or half under torchrun")
    ckpt_path = prepare_out(cfg, resume, overwrite)
    if distributed:
        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        own_group = not dist.is_initialized()
        if own_group:
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        return _train(cfg, resume, progress and rank == 0, rank, world, device, ckpt_path)
    finally:
        if distributed and own_group:
            dist.destroy_process_group()


def _train(cfg: TrainConfig, resume: bool, progress: bool, rank: int, world: int, device: torch.device,
           ckpt_path: str) -> dict:
    lead, distributed = rank == 0, world > 1
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed % 2**32)
    random.seed(cfg.seed)
    codec = backend.get_codec(cfg.codec, cfg.sigma, cfg.ops)
    if cfg.fused_loss:
        check_fused_loss(codec)
    model = build_model(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.15)
    step, seen_before, elapsed_before = 0, 0, 0.0
    if resume:
        state = load_checkpoint(ckpt_path, what="--resume", map_location=device)
        check_resume(state, cfg, ckpt_path, world)
        check_weights(state["model"], model, f"--resume {ckpt_path}", cfg.preset)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        step = state["step"]
        seen_before = state.get("progress", {}).get("seen", 0)
        elapsed_before = state.get("progress", {}).get("elapsed", 0.0)
    start_step = step
    if lead:
        if not resume and os.path.exists(ckpt_path):  # --overwrite: the old run's state goes now, not at step 1
            os.remove(ckpt_path)
        with open(os.path.join(cfg.out, "config.json"), "w") as f:
            json.dump(cfg.to_dict(), f, indent=2)
    net = model
    if distributed:
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    items = items_per_step(cfg)  # B, or B/2 two-view items with --siamese-pairing half
    per_step = items * world
    dataset = train_dataset(cfg, cfg.steps * per_step)
    # Items in step order: step s uses items [s * B * W, (s + 1) * B * W), so a resumed run sees the same data.
    remaining = Subset(dataset, range(step * per_step, len(dataset)))
    sampler = DistributedSampler(remaining, num_replicas=world, rank=rank, shuffle=False, drop_last=True)
    loader = DataLoader(remaining, batch_size=items, sampler=sampler, num_workers=cfg.workers,
                        persistent_workers=False, drop_last=True, pin_memory=device.type == "cuda")
    log = Log(os.path.join(cfg.out, "log.csv"), resume_step=step if resume else None) if lead else None
    curves = Curves(cfg, codec, os.path.join(cfg.out, "curves.csv"), resume_step=step if resume else None) \
        if lead and cfg.eval_every is not None else None
    if curves is not None and step == 0:
        curves.measure(model, 0, device)
    bar = _progress_bar(cfg, step) if progress and step < cfg.steps else None
    net.train()
    t0 = time.time()
    paused = 0.0  # seconds of curve measurements, left out of the training time
    seen, last_loss, last_cons, stopped_early = 0, math.nan, math.nan, False
    total_elapsed = elapsed_before  # training seconds of all invocations, as the log and the checkpoint hold them
    history = []  # (step, loss) of every step of this invocation
    for batch in loader if step < cfg.steps else ():
        if step >= cfg.steps:
            break
        images = batch["image"].to(device, non_blocking=True)
        lm = batch["landmarks"].to(device, non_blocking=True)
        if cfg.siamese:  # [B, 2, ...] -> [2B, ...]: all first views, then all second views
            views = images.unbind(1)
            images, lm = torch.cat(views), torch.cat(lm.unbind(1))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            if cfg.siamese and cfg.siamese_pairing == "separate":  # each view set its own batch-norm batch
                outputs = [torch.cat(pair) for pair in zip(net(views[0]), net(views[1]))]
            else:
                outputs = net(images)
        loss = supervised_loss(codec, outputs, lm, cfg)
        if cfg.siamese:
            cons = consistency_loss(outputs, batch["matrix"].to(device), batch["flip"].to(device),
                                    dataset.flip_permutation, cfg)
            loss = loss + consistency_weight(cfg, step) * cons
            last_cons = cons.item()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        step += 1
        seen += images.shape[0] * world
        last_loss = loss.item()
        history.append((step, last_loss))
        if not math.isfinite(last_loss):
            raise UserError(f"training diverged at step {step}: loss = {last_loss}; lower --lr (now {cfg.lr:g})")
        elapsed = time.time() - t0 - paused
        total_seen, total_elapsed = seen_before + seen, elapsed_before + elapsed
        if step % cfg.log_every == 0 or step == cfg.steps:
            mean_loss = _all_mean(last_loss, device) if distributed else last_loss
            if log is not None:
                log.write(step, mean_loss, last_cons, sched.get_last_lr()[0], total_seen / max(total_elapsed, 1e-9),
                          total_elapsed)
        if curves is not None and curves.due(step):
            paused += curves.measure(model, step, device)["eval_s"]
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{last_loss:.4g}")
        stopped_early = cfg.time_budget is not None and elapsed > cfg.time_budget
        if distributed and cfg.time_budget is not None:  # every rank stops at the same step
            flag_t = torch.tensor([float(stopped_early)], device=device)
            dist.all_reduce(flag_t, op=dist.ReduceOp.MAX)
            stopped_early = bool(flag_t.item())
        if lead and (step % cfg.checkpoint_every == 0 or step == cfg.steps or stopped_early):
            save_checkpoint(ckpt_path, model=model.state_dict(), optimizer=opt.state_dict(),
                            scheduler=sched.state_dict(), step=step, rng=rng_state(), config=cfg.to_dict(),
                            world_size=world, progress=dict(seen=total_seen, elapsed=total_elapsed))
        if stopped_early:
            break
    if bar is not None:
        bar.close()
    if log is not None:
        log.close()
    if curves is not None:
        curves.close()
    if distributed:
        dist.barrier()  # the checkpoint is complete before any rank returns
    seconds = time.time() - t0 - paused
    return dict(step=step, start_step=start_step, steps_run=step - start_step, loss=last_loss,
                consistency=last_cons, seconds=seconds, elapsed=total_elapsed,
                images_per_s=seen / max(seconds, 1e-9), stopped_early=stopped_early, checkpoint=ckpt_path,
                rank=rank, world_size=world, history=history)


class Log:
    """The CSV training log, OUT/log.csv: step, loss, consistency, lr, images_per_s and elapsed_s
    (images seen and seconds of training since the run began, over every invocation), mirrored
    to TensorBoard (OUT/tensorboard) when the tensorboard package is installed.

    `resume_step`: a resumed run keeps the rows up to the checkpoint's step and drops later ones
    (written after the last checkpoint, they are about to be trained again), so no step repeats."""

    COLUMNS = ["step", "loss", "consistency", "lr", "images_per_s", "elapsed_s"]

    def __init__(self, path: str, resume_step: int | None = None):
        self.csv = CsvLog(path, self.COLUMNS, resume_step)
        self.board = tensorboard(os.path.dirname(path))

    def write(self, step, loss, cons, lr, images_per_s, elapsed) -> None:
        self.csv.write([step, f"{loss:.6g}", "" if math.isnan(cons) else f"{cons:.6g}", f"{lr:.6g}",
                        f"{images_per_s:.2f}", f"{elapsed:.1f}"])
        if self.board is not None:
            for name, value in (("loss", loss), ("consistency", cons), ("lr", lr), ("images_per_s", images_per_s)):
                if not math.isnan(value):
                    self.board.add_scalar(f"train/{name}", value, step)

    def close(self) -> None:
        self.csv.close()
        if self.board is not None:
            self.board.close()


def _progress_bar(cfg: TrainConfig, step: int):
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    # disable=None: no bar when stderr is not a terminal (CI logs), a summary line is printed anyway
    return tqdm(total=cfg.steps, initial=step, desc=f"train {cfg.preset}/{cfg.codec}", leave=False, disable=None)


# ------------------------------------------------------------------------------------ entry point


def add_train_arguments(parser, defaults: TrainConfig | None = None, *, resume: bool = True) -> None:
    """The options of `shr-fan train`: every TrainConfig field, --resume / --overwrite, --debug."""
    add_config_arguments(parser, defaults)
    if resume:
        parser.add_argument("--resume", action="store_true",
                            help="continue the run in --out from its checkpoint; options left out take the "
                                 "checkpoint's values (--device and --time-budget: this command's) and options "
                                 "given must match them, except --device, --workers, --log-every, "
                                 "--checkpoint-every and --time-budget")
        parser.add_argument("--overwrite", action="store_true", help="start a new run in an --out that holds one")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")


def config_for_resume(cfg: TrainConfig, argv: list[str]) -> TrainConfig:
    """With --resume, the checkpoint's configuration with the options given in `argv` on top, and
    --out, --device and --time-budget (config.PER_INVOCATION) from this command line, given or not (a missing checkpoint is left for train() to report)."""
    path = os.path.join(cfg.out, CHECKPOINT)
    if not os.path.isfile(path):
        return cfg
    saved = checkpoint_config(load_checkpoint(path, what="--resume"), path, "--resume")
    changes = {name: getattr(cfg, name) for name in cfg.to_dict() if name in PER_INVOCATION or given(argv, name)}
    return replace(saved, **changes)


def summary(cfg: TrainConfig, out: dict) -> str:
    """The line `shr-fan train` prints at the end."""
    what = cfg.codec + " targets" + (", Siamese" if cfg.siamese else "") + (", reference ops" if cfg.ops ==
                                                                            "reference" else "")
    if out["world_size"] > 1:
        what += f", {out['world_size']} processes"
    if out["steps_run"] == 0:
        return f"{cfg.out}: the run had already finished at step {out['step']} of {cfg.steps}; checkpoint " \
               f"{out['checkpoint']}"
    resumed = f" (resumed at step {out['start_step']}; {out['elapsed']:.0f} s of training in all)" \
        if out["start_step"] else ""
    return (f"trained {cfg.preset} FAN ({what}) to step {out['step']} of {cfg.steps}: {out['steps_run']} step{'s' if out['steps_run'] != 1 else ''} in "
            f"{out['seconds']:.0f} s ({out['images_per_s']:.1f} images/s){resumed}, final loss {out['loss']:.4g}"
            + (" (stopped by the time budget)" if out["stopped_early"] else "") + f"; checkpoint {out['checkpoint']}")


def run_from_args(args, argv: list[str], *, overwrite: bool | None = None) -> tuple[TrainConfig, dict]:
    """Train with parsed `shr-fan train` options (argv: the command line, to tell given options)."""
    cfg = config_from_args(args)
    resume = getattr(args, "resume", False)
    if resume and getattr(args, "overwrite", False):
        raise UserError("--resume and --overwrite contradict each other: continue the run, or start it again")
    if resume:
        cfg = config_for_resume(cfg, argv)
    out = train(cfg, resume=resume, overwrite=getattr(args, "overwrite", False) if overwrite is None else overwrite)
    return cfg, out


def _main(argv: list[str]) -> int:
    parser = Parser(prog="shr-fan train", description="Train FAN on synthetic faces or a benchmark's training split.")
    add_train_arguments(parser)
    args = parser.parse_args(argv)
    cfg, out = run_from_args(args, argv)
    if out["rank"] == 0:  # under torchrun only rank 0 reports
        print(summary(cfg, out))
    return 0


def main(argv=None) -> int:
    """`shr-fan train` (and `python -m shr_fan.train`): errors as one line, exit status 2."""
    return errors.run("shr-fan train", _main, list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":  # torchrun --nproc_per_node N -m shr_fan.train [shr-fan train options]
    raise SystemExit(main())
