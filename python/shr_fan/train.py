"""Training of FAN on synthetic faces with targets rendered on the device by the chosen codec.

Each step: a batch of crops and continuous landmarks (crop pixels) from the DataLoader; the
landmarks are mapped to heatmap pixels (shr_ops.coords, stride = crop / heatmap side) and
rendered on the device by the codec's encoder (shr_ops.encode for SHR); loss = mean squared
error summed over the stacks (intermediate supervision); with `fused_loss` (SHR targets only),
shr_ops.heatmap_loss renders the targets inside the loss instead, never storing them. AdamW with a
one-cycle schedule, gradient clipping, bfloat16 autocast on CUDA (no loss scaling needed). Checkpoints hold the
whole state and are written atomically;
item i of step s is a function of (seed, s, i), so --resume continues the same run.
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
from torch.utils.data import DataLoader, Subset

import shr_ops
from shr_ops import codecs, coords

from .data import Augment, FaceCrops, SyntheticFaces
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
    device: str = "cuda" if torch.cuda.is_available() else "cpu"

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def build_model(cfg: TrainConfig, num_landmarks: int = 68) -> FAN:
    return FAN(replace(PRESETS[cfg.preset], num_landmarks=num_landmarks))


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
    """The augmented training set of `length` items (synthetic faces)."""
    return SyntheticFaces(length, seed=cfg.seed, crop=cfg.crop, augment=Augment())


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
    (same value and gradients within float tolerance, the target tensor never stored)."""
    if not cfg.fused_loss:
        return heatmap_loss(outputs, targets(codec, landmarks, cfg), cfg.foreground_weight, cfg.target_scale)
    check_fused_loss(codec)
    size = heatmap_size(cfg)
    hm = coords.image_to_heatmap(landmarks, cfg.crop / size).float()
    return sum(shr_ops.heatmap_loss(o, hm, codec.sigma, foreground_weight=cfg.foreground_weight,
                                    threshold=FOREGROUND_THRESHOLD, scale=cfg.target_scale) for o in outputs)


def heatmap_loss(outputs: list[torch.Tensor], target: torch.Tensor, foreground_weight: float = 1.0,
                 target_scale: float = 1.0) -> torch.Tensor:
    """Mean squared error over every stack (outputs: Tensor[B, K, H, W] each, target likewise);
    pixels where the target exceeds FOREGROUND_THRESHOLD * target_scale (the targets' peak value)
    weigh `foreground_weight` (the peaks cover ~1% of a map: unweighted, a network first learns to
    output zeros, and on a CPU budget it may never leave that)."""
    weight = 1.0 + (foreground_weight - 1.0) * (target > FOREGROUND_THRESHOLD * target_scale)
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


def train(cfg: TrainConfig, *, resume: bool = False, progress: bool = True) -> dict:
    os.makedirs(cfg.out, exist_ok=True)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed % 2**32)
    random.seed(cfg.seed)
    device = torch.device(cfg.device)
    codec = codecs.get_codec(cfg.codec, cfg.sigma)
    if cfg.fused_loss:
        check_fused_loss(codec)
    model = build_model(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.15)
    ckpt_path = os.path.join(cfg.out, "checkpoint.pt")
    step = 0
    if resume and os.path.exists(ckpt_path):
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"])
        step = state["step"]
    with open(os.path.join(cfg.out, "config.json"), "w") as f:
        json.dump(asdict(cfg), f, indent=2)

    dataset = train_dataset(cfg, cfg.steps * cfg.batch_size)
    # Items in step order: step s uses items [s * B, (s + 1) * B), so a resumed run sees the same data.
    loader = DataLoader(Subset(dataset, range(step * cfg.batch_size, len(dataset))), batch_size=cfg.batch_size,
                        shuffle=False, num_workers=cfg.workers, persistent_workers=False, drop_last=True,
                        pin_memory=device.type == "cuda")
    log_path = os.path.join(cfg.out, "log.csv")
    new_log = not (resume and os.path.exists(log_path))
    log_file = open(log_path, "w" if new_log else "a", newline="")
    log = csv.writer(log_file)
    if new_log:
        log.writerow(["step", "loss", "lr", "images_per_s", "elapsed_s"])
    bar = None
    if progress:
        try:
            from tqdm import tqdm

            # disable=None: no bar when stderr is not a terminal (CI logs), a summary line is printed anyway
            bar = tqdm(total=cfg.steps, initial=step, desc=f"train {cfg.preset}/{cfg.codec}", leave=False,
                       disable=None)
        except ImportError:
            bar = None
    model.train()
    t0 = time.time()
    seen, last_loss, stopped_early = 0, math.nan, False
    for batch in loader:
        if step >= cfg.steps:
            break
        images = batch["image"].to(device, non_blocking=True)
        lm = batch["landmarks"].to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            outputs = model(images)
        loss = supervised_loss(codec, outputs, lm, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        step += 1
        seen += images.shape[0]
        last_loss = loss.item()
        if not math.isfinite(last_loss):
            raise FloatingPointError(f"training diverged at step {step}: loss = {last_loss}")
        elapsed = time.time() - t0
        if step % cfg.log_every == 0 or step == cfg.steps:
            log.writerow([step, f"{last_loss:.6g}", f"{sched.get_last_lr()[0]:.6g}", f"{seen / elapsed:.2f}",
                          f"{elapsed:.1f}"])
            log_file.flush()
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{last_loss:.4g}")
        stopped_early = cfg.time_budget is not None and elapsed > cfg.time_budget
        if step % cfg.checkpoint_every == 0 or step == cfg.steps or stopped_early:
            save_checkpoint(ckpt_path, model=model.state_dict(), optimizer=opt.state_dict(),
                            scheduler=sched.state_dict(), step=step, rng=_rng_state(), config=asdict(cfg))
        if stopped_early:
            break
    if bar is not None:
        bar.close()
    log_file.close()
    elapsed = time.time() - t0
    return dict(step=step, loss=last_loss, seconds=elapsed, images_per_s=seen / max(elapsed, 1e-9),
                stopped_early=stopped_early, checkpoint=ckpt_path)


def load_model(checkpoint: str, device: str | torch.device = "cpu") -> tuple[FAN, TrainConfig]:
    state = torch.load(checkpoint, map_location=device, weights_only=False)
    cfg = TrainConfig.from_dict(state["config"])
    model = build_model(cfg).to(device)
    model.load_state_dict(state["model"])
    return model.eval(), cfg
