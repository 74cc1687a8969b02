"""Evaluation on a fixed synthetic test set: NME (inter-ocular), FR@k, AUC@k and per-landmark
error for each decoder, against the mean-shape baseline, and a CED plot."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from shr_ops import codecs

from . import metrics, plots
from .data import Augment, FaceCrops, SyntheticFaces
from .synthetic import SynthConfig
from .train import TrainConfig, decode_to_crop

TEST_SEED = 1_000_003  # the fixed synthetic test set: disjoint from any training seed below 10^6


@torch.no_grad()
def predict_heatmaps(model, loader, device) -> tuple[torch.Tensor, np.ndarray]:
    heat, gt = [], []
    for batch in loader:
        heat.append(model(batch["image"].to(device))[-1].float().cpu())
        gt.append(batch["landmarks"].numpy())
    return torch.cat(heat), np.concatenate(gt)


def mean_shape_baseline(cfg: TrainConfig, n: int = 256) -> np.ndarray:
    """The mean training landmarks in crop pixels (what a model that ignores the image predicts)."""
    ds = SyntheticFaces(n, seed=cfg.seed, crop=cfg.crop, augment=Augment())
    return np.stack([ds[i]["landmarks"].numpy() for i in range(n)]).mean(0)


def hard_test_set(n: int, crop: int) -> SyntheticFaces:
    """A harder fixed synthetic test set: larger poses than training (yaw up to 60, pitch 30,
    roll 40 degrees; training draws 45 / 25 / 30) and an occluder on every face."""
    synth = SynthConfig(size=256, max_yaw=60.0, max_pitch=30.0, max_roll=40.0, occluder_prob=1.0)
    return SyntheticFaces(n, seed=TEST_SEED + 1, crop=crop, augment=None, synth=synth)


def evaluate(model, cfg: TrainConfig, *, n: int = 256, decoders=("shr", "hrnet"), batch_size: int = 32,
             device: str | torch.device = "cpu", workers: int = 0, ced_path: str | None = None,
             test: FaceCrops | None = None) -> dict:
    """{name: metrics.summary(...)} for each decoder (codec names of shr_ops.codecs) and for
    'mean shape', on `test` (default: the fixed synthetic test set of n faces). Predictions and
    ground truth are in crop pixels (NME is scale-free)."""
    test = test if test is not None else SyntheticFaces(n, seed=TEST_SEED, crop=cfg.crop, augment=None)
    loader = DataLoader(test, batch_size=batch_size, shuffle=False, num_workers=workers)
    heat, gt = predict_heatmaps(model.to(device).eval(), loader, device)
    norm = metrics.inter_ocular(gt)
    results = {}
    for name in decoders:
        pred = decode_to_crop(codecs.get_codec(name, cfg.sigma), heat, cfg).numpy()
        results[name] = metrics.summary(pred, gt, norm)
    mean_pred = np.broadcast_to(mean_shape_baseline(cfg), gt.shape)
    results["mean shape"] = metrics.summary(mean_pred, gt, norm)
    if ced_path:
        write_ced(results, gt, ced_path)
    return results


def write_ced(results: dict, gt: np.ndarray, path: str, k: float = 0.1) -> None:
    fig, ax = plots.pyplot().subplots(figsize=(5, 3.6))
    for name, r in results.items():
        t, frac = metrics.ced(r["per_image"], k)
        ax.plot(t, frac, label=f"{name} (AUC@{k:g} {r[f'auc@{k:g}']:.3f})")
    ax.set_xlabel("NME (inter-ocular)")
    ax.set_ylabel("fraction of images")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    plots.save(fig, path)


def table(results: dict) -> str:
    lines = ["| decoder | NME % | FR@0.08 % | FR@0.1 % | AUC@0.08 | AUC@0.1 |", "|---|---|---|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | {100 * r['nme']:.3f} | {100 * r['fr@0.08']:.2f} | {100 * r['fr@0.1']:.2f} | "
                     f"{r['auc@0.08']:.4f} | {r['auc@0.1']:.4f} |")
    return "\n".join(lines)
