"""Training of FAN on synthetic faces or a benchmark's training split, with targets rendered on
the device by the chosen codec.

Each step: a batch of crops and continuous landmarks (crop pixels) from the DataLoader; the
landmarks are mapped to heatmap pixels (shr_ops.coords, stride = crop / heatmap side) and
rendered on the device by the codec's encoder (shr_ops.encode for SHR); loss = mean squared
error summed over the stacks (intermediate supervision); with `fused_loss` (SHR targets only),
shr_ops.heatmap_loss renders the targets inside the loss instead, never storing them. AdamW with a
one-cycle schedule, gradient clipping, bfloat16 autocast on CUDA (no loss scaling needed). Checkpoints hold the
whole state and are written atomically;
item i of step s is a function of (seed, s, i), so --resume continues the same run.

Siamese training (`siamese=True`): every face comes as two crops under independent random
geometric transforms (shr_fan.data, views=2); both go through the network in one batch, both get
the supervised loss, and `consistency_weight` x the transform consistency of shr_fan.consistency
(optionally ramped up linearly from 0 over the first `consistency_warmup` fraction of the steps: a
large weight applied from step 0 pushes the untrained network's outputs toward flat maps, where
they stay; docs/results.md)
(heatmap or coordinate form, on the last stack or all) is added.

Distributed: under torchrun (WORLD_SIZE > 1) the model is wrapped in DistributedDataParallel
(NCCL on CUDA, one GPU per process by LOCAL_RANK; gloo on the CPU); `batch_size` is per process,
so step s uses items [s·B·W, (s+1)·B·W) of the stream, dealt to the ranks by a DistributedSampler;
only rank 0 logs and writes checkpoints, and every rank resumes from the same checkpoint (which
refuses a different world size: the data order would change).

    torchrun --nproc_per_node 8 -m shr_fan.train --preset full --crop 256 --batch-size 16 --out runs/ddp
"""
from __future__ import annotations

import csv
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, fields, replace

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Subset
from torch.utils.data.distributed import DistributedSampler

import shr_ops
from shr_ops import codecs, coords

from . import backend, consistency
from .data import Augment, EpochCycle, FaceCrops, SyntheticFaces
from .model import FAN, PRESETS


@dataclass
class TrainConfig:
    preset: str = "tiny"
    crop: int = 128
    steps: int = 300
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    codec: str = "shr"
    sigma: float | None = None  # None: the codec's default (shr_ops.defaults)
    target_scale: float = 1.0  # heatmap targets are multiplied by this
    foreground_weight: float = 10.0  # loss weight of pixels where the target exceeds 0.1 * target_scale (1: MSE)
    fused_loss: bool = False  # shr_ops.heatmap_loss renders the targets inside the loss (codecs with SHR targets)
    seed: int = 0
    workers: int = 1
    out: str = "runs/quick"
    log_every: int = 10
    checkpoint_every: int = 100
    time_budget: float | None = None  # seconds of training; stops early (and says so) when spent
    siamese: bool = False  # two views per face and the transform-consistency loss
    consistency: str = "heatmap"  # "heatmap" (warped maps, MSE) or "coords" (decoded, mapped, distance)
    consistency_weight: float = 0.1  # the best of the CPU ablation (docs/results.md)
    consistency_stacks: str = "last"  # "last" or "all"
    stop_gradient: bool = True  # True: the view compared against is a fixed target
    consistency_warmup: float = 0.0  # fraction of the steps over which the weight ramps up from 0
    dataset: str = "synthetic"  # or a benchmark of shr_fan.datasets (300w, wflw, cofw, aflw)
    data_root: str | None = None  # the benchmark's folder as distributed
    split: str | None = None  # training split of the benchmark (None: its train split)
    device: str = "cuda" if torch.cuda.is_available() else "cpu"
    ops: str = "compiled"  # "compiled" (shr_ops' kernels) or "reference" (shr_ops.reference): shr_fan.backend

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def landmark_count(cfg: TrainConfig) -> int:
    """Landmarks of the configured dataset (68 for the synthetic faces)."""
    if cfg.dataset == "synthetic":
        return 68
    from .datasets import get_spec

    return get_spec(cfg.dataset).num_landmarks


def build_model(cfg: TrainConfig, num_landmarks: int | None = None) -> FAN:
    """FAN of the configured preset with one heatmap per landmark of the dataset (or `num_landmarks`)."""
    k = landmark_count(cfg) if num_landmarks is None else num_landmarks
    return FAN(replace(PRESETS[cfg.preset], num_landmarks=k))


def heatmap_size(cfg: TrainConfig) -> int:
    return cfg.crop // 4


# Foreground pixels (weighted by TrainConfig.foreground_weight): target > FOREGROUND_THRESHOLD * target_scale.
FOREGROUND_THRESHOLD = 0.1


def targets(codec: codecs.Codec, landmarks: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """Heatmap targets [B, K, S/4, S/4] rendered on the landmarks' device."""
    size = heatmap_size(cfg)
    hm = coords.image_to_heatmap(landmarks, cfg.crop / size)
    return codec.encode(hm.float(), (size, size)) * cfg.target_scale


def decode_to_crop(codec: codecs.Codec, heatmaps: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """The inverse of `targets`: landmarks [B, K, 2] float64 in crop pixels, decoded by the codec."""
    return coords.heatmap_to_image(codec.decode(heatmaps).double(), cfg.crop / heatmap_size(cfg))


def train_dataset(cfg: TrainConfig, length: int) -> FaceCrops:
    """The augmented training set of `length` items: synthetic faces, or the benchmark's training
    split cycled epoch after epoch (data.EpochCycle: item i is a function of (seed, i)); two views
    per item when training is Siamese."""
    views = 2 if cfg.siamese else 1
    if cfg.dataset == "synthetic":
        return SyntheticFaces(length, seed=cfg.seed, crop=cfg.crop, augment=Augment(), views=views)
    from .datasets import get_dataset, get_spec

    split = cfg.split or get_spec(cfg.dataset).train_split
    faces = get_dataset(cfg.dataset, cfg.data_root, split, crop=cfg.crop, augment=Augment())
    return EpochCycle(faces, length, seed=cfg.seed, views=views)


def check_fused_loss(codec: codecs.Codec) -> None:
    """The fused loss renders shr_ops.encode's targets: only codecs with that encoder can use it."""
    if codec.encoder != "shr":
        shr_targets = tuple(name for name, (enc, _, _) in codecs.CODEC_TABLE.items() if enc == "shr")
        raise ValueError(f"fused_loss (--fused-loss) renders SHR targets (shr_ops.encode), but codec {codec.name!r} "
                         f"uses the {codec.encoder!r} encoder; use a codec with SHR targets {shr_targets} or drop "
                         "the flag")


def supervised_loss(codec: codecs.Codec, outputs: list[torch.Tensor], landmarks: torch.Tensor,
                    cfg: TrainConfig) -> torch.Tensor:
    """The heatmap loss of one batch, summed over the stacks: targets rendered from `landmarks`
    Tensor[B, K, 2] (crop pixels) on the device; with cfg.fused_loss, inside shr_ops.heatmap_loss
    (same value and gradients within float tolerance, the target tensor never stored). Missing
    landmarks (NaN) are left out: their maps weigh 0 (an all-zero target would teach the network
    that the point is nowhere); a batch with missing landmarks takes the unfused path, which can
    mask them."""
    valid = torch.isfinite(landmarks).all(-1)
    if not bool(valid.all()):
        target = targets(codec, torch.where(valid[..., None], landmarks, torch.zeros_like(landmarks)), cfg)
        return heatmap_loss(outputs, target, cfg.foreground_weight, cfg.target_scale, valid=valid)
    if not cfg.fused_loss:
        return heatmap_loss(outputs, targets(codec, landmarks, cfg), cfg.foreground_weight, cfg.target_scale)
    check_fused_loss(codec)
    size = heatmap_size(cfg)
    hm = coords.image_to_heatmap(landmarks, cfg.crop / size).float()
    fused = backend.get_ops(cfg.ops).heatmap_loss
    return sum(fused(o, hm, codec.sigma, foreground_weight=cfg.foreground_weight,
                                    threshold=FOREGROUND_THRESHOLD, scale=cfg.target_scale) for o in outputs)


def consistency_weight(cfg: TrainConfig, step: int) -> float:
    """The consistency loss' weight at (0-based) step `step`: a linear ramp from 0 to
    cfg.consistency_weight over the first cfg.consistency_warmup x cfg.steps steps."""
    ramp = cfg.consistency_warmup * cfg.steps
    return cfg.consistency_weight * (1.0 if ramp <= 0 else min(1.0, step / ramp))


def consistency_loss(outputs: list[torch.Tensor], matrix: torch.Tensor, flip: torch.Tensor, flip_permutation,
                     cfg: TrainConfig) -> torch.Tensor:
    """The transform consistency of a Siamese batch: outputs hold [2B, K, h, w] per stack (all first
    views, then all second views), matrix Tensor[B, 2, 2, 3] and flip Tensor[B, 2] the views' crops."""
    if cfg.consistency not in ("heatmap", "coords"):
        raise ValueError(f"consistency must be 'heatmap' or 'coords', got {cfg.consistency!r}")
    if cfg.consistency_stacks not in ("last", "all"):
        raise ValueError(f"consistency_stacks must be 'last' or 'all', got {cfg.consistency_stacks!r}")
    size = outputs[-1].shape[-1]
    t_ab = consistency.view_transform(matrix[:, 0], matrix[:, 1], cfg.crop, size)
    order = consistency.channel_order(flip[:, 0], flip[:, 1], flip_permutation)
    stacks = outputs if cfg.consistency_stacks == "all" else outputs[-1:]
    total = 0.0
    for out in stacks:
        h_a, h_b = out.float().chunk(2)
        if cfg.consistency == "heatmap":
            total = total + consistency.heatmap_consistency(
                h_a, h_b, t_ab.to(h_a.device), order, stop_gradient=cfg.stop_gradient,
                foreground_weight=cfg.foreground_weight, threshold=FOREGROUND_THRESHOLD * cfg.target_scale)
        else:
            total = total + consistency.coordinate_consistency(h_a, h_b, t_ab.to(h_a.device), order,
                                                               stop_gradient=cfg.stop_gradient,
                                                               decode=backend.get_ops(cfg.ops).decode)
    return total


def heatmap_loss(outputs: list[torch.Tensor], target: torch.Tensor, foreground_weight: float = 1.0,
                 target_scale: float = 1.0, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error over every stack (outputs: Tensor[B, K, H, W] each, target likewise);
    pixels where the target exceeds FOREGROUND_THRESHOLD * target_scale (the targets' peak value)
    weigh `foreground_weight` (the peaks cover ~1% of a map: unweighted, a network first learns to
    output zeros, and on a CPU budget it may never leave that). `valid` (bool [B, K]): maps with
    False weigh 0."""
    weight = 1.0 + (foreground_weight - 1.0) * (target > FOREGROUND_THRESHOLD * target_scale)
    if valid is not None:
        weight = weight * valid[..., None, None].to(target.dtype)
    return sum(torch.mean(weight * (o.float() - target) ** 2) for o in outputs)


def _rng_state() -> dict:
    state = dict(torch=torch.get_rng_state(), numpy=np.random.get_state(), python=random.getstate())
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str, **state) -> None:
    """Write atomically: a reader sees the old file or the new one, never a partial one."""
    tmp = f"{path}.tmp{os.getpid()}"
    torch.save(state, tmp)
    os.replace(tmp, path)


def _world() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) without it."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def _all_mean(value: float, device: torch.device) -> float:
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.item() / dist.get_world_size()


def train(cfg: TrainConfig, *, resume: bool = False, progress: bool = True) -> dict:
    rank, world, local_rank = _world()
    distributed = world > 1
    device = torch.device(cfg.device)
    if distributed:
        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        own_group = not dist.is_initialized()
        if own_group:
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    lead = rank == 0
    try:
        return _train(cfg, resume, progress and lead, rank, world, device)
    finally:
        if distributed and own_group:
            dist.destroy_process_group()


def _train(cfg: TrainConfig, resume: bool, progress: bool, rank: int, world: int, device: torch.device) -> dict:
    lead, distributed = rank == 0, world > 1
    if lead:
        os.makedirs(cfg.out, exist_ok=True)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed % 2**32)
    random.seed(cfg.seed)
    codec = backend.get_codec(cfg.codec, cfg.sigma, cfg.ops)
    if cfg.fused_loss:
        check_fused_loss(codec)
    model = build_model(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.15)
    ckpt_path = os.path.join(cfg.out, "checkpoint.pt")
    step = 0
    if resume and os.path.exists(ckpt_path):
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        if state.get("world_size", 1) != world:
            raise ValueError(f"--resume: {ckpt_path} was written by a run of {state.get('world_size', 1)} "
                             f"process(es), this one has {world}; the data order would differ")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"])
        step = state["step"]
    if lead:
        with open(os.path.join(cfg.out, "config.json"), "w") as f:
            json.dump(asdict(cfg), f, indent=2)
    net = model
    if distributed:
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    per_step = cfg.batch_size * world
    dataset = train_dataset(cfg, cfg.steps * per_step)
    # Items in step order: step s uses items [s * B * W, (s + 1) * B * W), so a resumed run sees the same data.
    remaining = Subset(dataset, range(step * per_step, len(dataset)))
    sampler = DistributedSampler(remaining, num_replicas=world, rank=rank, shuffle=False, drop_last=True)
    loader = DataLoader(remaining, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.workers,
                        persistent_workers=False, drop_last=True, pin_memory=device.type == "cuda")
    log = _Log(os.path.join(cfg.out, "log.csv"), append=resume) if lead else None
    bar = _progress_bar(cfg, step) if progress else None
    net.train()
    t0 = time.time()
    seen, last_loss, last_cons, stopped_early = 0, math.nan, math.nan, False
    history = []  # (step, loss) of every step of this invocation
    for batch in loader:
        if step >= cfg.steps:
            break
        images = batch["image"].to(device, non_blocking=True)
        lm = batch["landmarks"].to(device, non_blocking=True)
        if cfg.siamese:  # [B, 2, ...] -> [2B, ...]: all first views, then all second views
            images, lm = torch.cat(images.unbind(1)), torch.cat(lm.unbind(1))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
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
            raise FloatingPointError(f"training diverged at step {step}: loss = {last_loss}")
        elapsed = time.time() - t0
        if step % cfg.log_every == 0 or step == cfg.steps:
            mean_loss = _all_mean(last_loss, device) if distributed else last_loss
            if log is not None:
                log.write(step, mean_loss, last_cons, sched.get_last_lr()[0], seen / elapsed, elapsed)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{last_loss:.4g}")
        stopped_early = cfg.time_budget is not None and elapsed > cfg.time_budget
        if distributed and cfg.time_budget is not None:  # every rank stops at the same step
            flag = torch.tensor([float(stopped_early)], device=device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            stopped_early = bool(flag.item())
        if lead and (step % cfg.checkpoint_every == 0 or step == cfg.steps or stopped_early):
            save_checkpoint(ckpt_path, model=model.state_dict(), optimizer=opt.state_dict(),
                            scheduler=sched.state_dict(), step=step, rng=_rng_state(), config=asdict(cfg),
                            world_size=world)
        if stopped_early:
            break
    if bar is not None:
        bar.close()
    if log is not None:
        log.close()
    if distributed:
        dist.barrier()  # the checkpoint is complete before any rank returns
    elapsed = time.time() - t0
    return dict(step=step, loss=last_loss, consistency=last_cons, seconds=elapsed,
                images_per_s=seen / max(elapsed, 1e-9), stopped_early=stopped_early, checkpoint=ckpt_path,
                rank=rank, world_size=world, history=history)


class _Log:
    """The CSV training log (appended to on resume), mirrored to TensorBoard (OUT/tensorboard)
    when the tensorboard package is installed."""

    COLUMNS = ["step", "loss", "consistency", "lr", "images_per_s", "elapsed_s"]

    def __init__(self, path: str, append: bool):
        new = not (append and os.path.exists(path))
        self.file = open(path, "w" if new else "a", newline="")
        self.writer = csv.writer(self.file)
        if new:
            self.writer.writerow(self.COLUMNS)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.board = SummaryWriter(os.path.join(os.path.dirname(path), "tensorboard"))
        except ImportError:  # tensorboard is optional
            self.board = None

    def write(self, step, loss, cons, lr, images_per_s, elapsed) -> None:
        self.writer.writerow([step, f"{loss:.6g}", "" if math.isnan(cons) else f"{cons:.6g}", f"{lr:.6g}",
                              f"{images_per_s:.2f}", f"{elapsed:.1f}"])
        self.file.flush()
        if self.board is not None:
            for name, value in (("loss", loss), ("consistency", cons), ("lr", lr), ("images_per_s", images_per_s)):
                if not math.isnan(value):
                    self.board.add_scalar(f"train/{name}", value, step)

    def close(self) -> None:
        self.file.close()
        if self.board is not None:
            self.board.close()


def _progress_bar(cfg: TrainConfig, step: int):
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    # disable=None: no bar when stderr is not a terminal (CI logs), a summary line is printed anyway
    return tqdm(total=cfg.steps, initial=step, desc=f"train {cfg.preset}/{cfg.codec}", leave=False, disable=None)


def load_model(checkpoint: str, device: str | torch.device = "cpu") -> tuple[FAN, TrainConfig]:
    state = torch.load(checkpoint, map_location=device, weights_only=False)
    cfg = TrainConfig.from_dict(state["config"])
    model = build_model(cfg).to(device)
    model.load_state_dict(state["model"])
    return model.eval(), cfg


if __name__ == "__main__":  # torchrun --nproc_per_node N -m shr_fan.train [shr-fan train options]
    import sys

    from .cli import main

    raise SystemExit(main(["train", *sys.argv[1:]]))
