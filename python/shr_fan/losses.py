"""The training losses: the supervised heatmap loss (weighted MSE over the stacks, or the fused
shr_ops.heatmap_loss), and the Siamese transform-consistency loss with its warm-up.

Every encode / decode / heatmap_loss goes through the ops backend of `cfg.ops` (shr_fan.backend):
the codec passed in is expected to be backend.get_codec(cfg.codec, cfg.sigma, cfg.ops).
"""
from __future__ import annotations

import torch

from shr_ops import codecs

from . import backend, consistency, geometry
from .errors import UserError

# Foreground pixels (weighted by TrainConfig.foreground_weight): target > FOREGROUND_THRESHOLD * target_scale.
FOREGROUND_THRESHOLD = 0.1


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


def check_fused_loss(codec: codecs.Codec) -> None:
    """The fused loss renders shr_ops.encode's targets: only codecs with that encoder can use it."""
    if codec.encoder != "shr":
        shr_targets = tuple(name for name, (enc, _, _) in codecs.CODEC_TABLE.items() if enc == "shr")
        raise UserError(f"--fused-loss renders SHR targets (shr_ops.encode), but codec {codec.name!r} uses the "
                        f"{codec.encoder!r} encoder; use a codec with SHR targets {shr_targets} or drop the flag")


def supervised_loss(codec: codecs.Codec, outputs: list[torch.Tensor], landmarks: torch.Tensor, cfg) -> torch.Tensor:
    """The heatmap loss of one batch, summed over the stacks: targets rendered from `landmarks`
    Tensor[B, K, 2] (crop pixels) on the device; with cfg.fused_loss, inside heatmap_loss of the
    cfg.ops backend (same value and gradients within float tolerance, the target tensor never
    stored). Missing landmarks (NaN) are left out: their maps weigh 0 (an all-zero target would
    teach the network that the point is nowhere); a batch with missing landmarks takes the
    unfused path, which can mask them."""
    valid = torch.isfinite(landmarks).all(-1)
    if not bool(valid.all()):
        filled = torch.where(valid[..., None], landmarks, torch.zeros_like(landmarks))
        return heatmap_loss(outputs, geometry.targets(codec, filled, cfg), cfg.foreground_weight, cfg.target_scale,
                            valid=valid)
    if not cfg.fused_loss:
        return heatmap_loss(outputs, geometry.targets(codec, landmarks, cfg), cfg.foreground_weight, cfg.target_scale)
    check_fused_loss(codec)
    hm = geometry.to_heatmap(landmarks, cfg.crop).float()
    fused = backend.get_ops(cfg.ops).heatmap_loss
    return sum(fused(o, hm, codec.sigma, foreground_weight=cfg.foreground_weight, threshold=FOREGROUND_THRESHOLD,
                     scale=cfg.target_scale) for o in outputs)


def consistency_weight(cfg, step: int) -> float:
    """The consistency loss' weight at (0-based) step `step`: a linear ramp from 0 to
    cfg.consistency_weight over the first cfg.consistency_warmup x cfg.steps steps."""
    ramp = cfg.consistency_warmup * cfg.steps
    return cfg.consistency_weight * (1.0 if ramp <= 0 else min(1.0, step / ramp))


def consistency_loss(outputs: list[torch.Tensor], matrix: torch.Tensor, flip: torch.Tensor, flip_permutation,
                     cfg) -> torch.Tensor:
    """The transform consistency of a Siamese batch: outputs hold [2B, K, h, w] per stack (all first
    views, then all second views), matrix Tensor[B, 2, 2, 3] and flip Tensor[B, 2] the views' crops."""
    if cfg.consistency not in ("heatmap", "coords"):
        raise UserError(f"consistency must be 'heatmap' or 'coords' (--consistency), got {cfg.consistency!r}")
    if cfg.consistency_stacks not in ("last", "all"):
        raise UserError(f"consistency_stacks must be 'last' or 'all' (--consistency-stacks), got "
                        f"{cfg.consistency_stacks!r}")
    size = outputs[-1].shape[-1]
    t_ab = consistency.view_transform(matrix[:, 0], matrix[:, 1], cfg.crop, size)
    order = consistency.channel_order(flip[:, 0], flip[:, 1], flip_permutation)
    stacks = outputs if cfg.consistency_stacks == "all" else outputs[-1:]
    decode = backend.get_ops(cfg.ops).decode
    total = 0.0
    for out in stacks:
        h_a, h_b = out.float().chunk(2)
        if cfg.consistency == "heatmap":
            total = total + consistency.heatmap_consistency(
                h_a, h_b, t_ab.to(h_a.device), order, stop_gradient=cfg.stop_gradient,
                foreground_weight=cfg.foreground_weight, threshold=FOREGROUND_THRESHOLD * cfg.target_scale)
        else:
            total = total + consistency.coordinate_consistency(h_a, h_b, t_ab.to(h_a.device), order,
                                                               stop_gradient=cfg.stop_gradient, decode=decode)
    return total
