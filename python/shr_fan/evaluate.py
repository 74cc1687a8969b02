"""Evaluation: NME, FR@k, AUC@k, per-landmark error and the transform consistency
(shr_fan.consistency_metric) for each decoder, and a CED plot, on the fixed synthetic test set
(inter-ocular NME, against the mean-shape baseline) or on a benchmark's test split
(`evaluate_dataset`: the benchmark's normalisers, in image pixels)."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from . import backend, consistency_metric, metrics, plots
from .consistency_metric import VIEWS, VIEWS_SEED, ViewPairs
from .data import Augment, FaceCrops, SyntheticFaces, apply_affine, crop_matrix, invert_affine
from .synthetic import FLIP_PERMUTATION, SynthConfig
from .config import TrainConfig
from .errors import UserError
from .geometry import decode_to_crop

TEST_SEED = 1_000_003  # the fixed synthetic test set: disjoint from any training seed below 10^6
# (TEST_SEED + 1: the hard test set; TEST_SEED + 2: the held-out faces of the learning curves, shr_fan.curves)


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


def test_set(n: int, crop: int) -> SyntheticFaces:
    """The fixed synthetic test set: n faces from TEST_SEED, unaugmented."""
    return SyntheticFaces(n, seed=TEST_SEED, crop=crop, augment=None)


def hard_test_set(n: int, crop: int) -> SyntheticFaces:
    """A harder fixed synthetic test set: larger poses than training (yaw up to 60, pitch 30,
    roll 40 degrees; training draws 45 / 25 / 30) and an occluder on every face."""
    synth = SynthConfig(size=256, max_yaw=60.0, max_pitch=30.0, max_roll=40.0, occluder_prob=1.0)
    return SyntheticFaces(n, seed=TEST_SEED + 1, crop=crop, augment=None, synth=synth)


def test_sets(n: int, crop: int) -> dict[str, SyntheticFaces]:
    """{"test": the fixed synthetic test set, "hard": hard_test_set}, n faces each: the two sets
    every table of the ablation and its analysis scripts are measured on."""
    return {"test": test_set(n, crop), "hard": hard_test_set(n, crop)}


def evaluate(model, cfg: TrainConfig, *, n: int = 256, decoders=("shr", "hrnet"), batch_size: int = 32,
             device: str | torch.device = "cpu", workers: int = 0, ced_path: str | None = None,
             test: FaceCrops | None = None, mean_shape: np.ndarray | None = None, pairs=None,
             views=VIEWS, views_seed: int = VIEWS_SEED) -> dict:
    """{name: metrics.summary(...) and consistency_metric.summary(...)} for each decoder (codec
    names of shr_ops.codecs) and for 'mean shape', on `test` (default: the fixed synthetic test
    set of n faces; any sequence of items works). Predictions and ground truth are in crop pixels
    (NME is scale-free). `mean_shape` [K, 2]: the baseline's prediction when the caller already
    has it (default: mean_shape_baseline(cfg)). The transform consistency is measured on `pairs`
    (ViewPairs or its items; default: ViewPairs(test, views, views_seed), which needs `test` to be
    a dataset, not a list of items)."""
    test = test if test is not None else test_set(n, cfg.crop)
    if pairs is None:
        if not isinstance(test, FaceCrops):
            raise ValueError("evaluate: with `test` given as items, give the consistency metric's `pairs` too")
        pairs = ViewPairs(test, views, views_seed)
    loader = DataLoader(test, batch_size=batch_size, shuffle=False, num_workers=workers)
    heat, gt = predict_heatmaps(model.to(device).eval(), loader, device)
    norm = metrics.inter_ocular(gt)
    codecs = {name: backend.get_codec(name, cfg.sigma, cfg.ops) for name in decoders}
    views_out = consistency_metric.predict_pairs(model, pairs, codecs, cfg, device=device, batch_size=batch_size,
                                                 workers=workers)
    pair_norm = metrics.inter_ocular(views_out["original"])
    results = {}
    for name, codec in codecs.items():
        pred = decode_to_crop(codec, heat, cfg).numpy()
        results[name] = dict(metrics.summary(pred, gt, norm), **_consistency(views_out["pred"][name], views_out,
                                                                              pairs, pair_norm))
    mean_shape = mean_shape_baseline(cfg) if mean_shape is None else mean_shape
    mean_views = np.broadcast_to(mean_shape, (len(pair_norm), 2, *mean_shape.shape))
    results["mean shape"] = dict(metrics.summary(np.broadcast_to(mean_shape, gt.shape), gt, norm),
                                 **_consistency(mean_views, views_out, pairs, pair_norm))
    if ced_path:
        write_ced(results, gt, ced_path)
    return results


def _consistency(pred: np.ndarray, views_out: dict, pairs, norm: np.ndarray) -> dict:
    perm = _flip_permutation(pairs)
    return consistency_metric.summary(consistency_metric.pair_errors(pred, views_out["matrix"], views_out["flip"],
                                                                     perm, norm))


def _flip_permutation(pairs) -> np.ndarray:
    """The landmark scheme's flip permutation of a ViewPairs (or of its items: 68 points)."""
    return getattr(pairs, "flip_permutation", FLIP_PERMUTATION)


def mean_crop_shape(dataset) -> np.ndarray:
    """[K, 2] mean landmarks of a benchmark split in unaugmented crop pixels (from the annotations
    alone, no image is read): the prediction of a model that ignores the image."""
    shapes = [apply_affine(p, crop_matrix(b, dataset.crop)) for p, b in zip(dataset.points, dataset.crop_boxes)]
    return np.nanmean(np.stack(shapes), axis=0)


@torch.no_grad()
def evaluate_dataset(model, cfg: TrainConfig, dataset, *, decoders=("shr", "hrnet"), normalisers=None, ks=None,
                     batch_size: int = 32, device: str | torch.device = "cpu", workers: int = 0,
                     ced_path: str | None = None, mean_shape: np.ndarray | None = None, views=VIEWS,
                     views_seed: int = VIEWS_SEED) -> dict:
    """{normaliser: {decoder: metrics.summary(...) and consistency_metric.summary(...)}} on a
    benchmark split (shr_fan.datasets); the transform consistency on ViewPairs(dataset, views,
    views_seed), normalised by each normaliser of the face's annotation.

    Each face is cropped as in training (no augmentation), the heatmaps decoded to crop pixels and
    mapped back to image pixels by the inverse crop matrix, and scored there against the
    annotation (NaN points left out), normalised by each of `normalisers` (default: the
    benchmark's, metrics.DEFAULT_NORMALISERS; "box"/"diagonal" use the annotated face boxes).
    FR/AUC thresholds `ks` default to the benchmark's. `mean_shape` ([K, 2] crop pixels, e.g.
    mean_crop_shape of the training split) adds a 'mean shape' row. With `ced_path`, the CED of
    the first normaliser is plotted there."""
    from .datasets import get_spec

    spec = get_spec(dataset.name)
    normalisers = tuple(normalisers or spec.normalisers)
    ks = tuple(ks or spec.ks)
    if len(dataset) == 0:
        raise UserError(f"{dataset.name} {getattr(dataset, 'split', '')}: no faces to evaluate")
    if model.config.num_landmarks != dataset.num_landmarks:
        raise UserError(f"the model predicts {model.config.num_landmarks} landmarks, {dataset.name} has "
                         f"{dataset.num_landmarks}: evaluate a checkpoint trained on this benchmark")
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    model = model.to(device).eval()
    heat, matrices, gt = [], [], []
    for batch in loader:
        heat.append(model(batch["image"].to(device))[-1].float().cpu())
        matrices.append(batch["matrix"].numpy())
        gt.append(batch["original"].numpy())
    heat, matrices, gt = torch.cat(heat), np.concatenate(matrices), np.concatenate(gt)
    boxes = np.stack([dataset.annotation_box(i) for i in range(len(dataset))])
    codecs = {name: backend.get_codec(name, cfg.sigma, cfg.ops) for name in decoders}
    pairs = ViewPairs(dataset, views, views_seed)
    views_out = consistency_metric.predict_pairs(model, pairs, codecs, cfg, device=device, batch_size=batch_size,
                                                 workers=workers)
    preds, view_preds = {}, dict(views_out["pred"])
    for name, codec in codecs.items():
        crop_pts = decode_to_crop(codec, heat, cfg).numpy()
        preds[name] = np.stack([apply_affine(p, invert_affine(m)) for p, m in zip(crop_pts, matrices)])
    if mean_shape is not None:
        preds["mean shape"] = np.stack([apply_affine(mean_shape, invert_affine(m)) for m in matrices])
        view_preds["mean shape"] = np.broadcast_to(mean_shape, (len(pairs), 2, *mean_shape.shape))
    results = {}
    for norm_name in normalisers:
        norm = metrics.normaliser(norm_name, gt, boxes)
        pair_norm = metrics.normaliser(norm_name, views_out["original"], boxes)
        results[norm_name] = {name: dict(metrics.summary(p, gt, norm, ks=ks),
                                         **_consistency(view_preds[name], views_out, pairs, pair_norm))
                              for name, p in preds.items()}
    if ced_path:
        write_ced(results[normalisers[0]], gt, ced_path, k=max(ks), label=f"NME ({normalisers[0]})")
    return results


def write_ced(results: dict, gt: np.ndarray, path: str, k: float = 0.1, label: str = "NME (inter-ocular)") -> None:
    fig, ax = plots.pyplot().subplots(figsize=(5, 3.6))
    for name, r in results.items():
        t, frac = metrics.ced(r["per_image"], k)
        ax.plot(t, frac, label=f"{name} (AUC@{k:g} {r[f'auc@{k:g}']:.3f})")
    ax.set_xlabel(label)
    ax.set_ylabel("fraction of images")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    plots.save(fig, path)


def table(results: dict, ks=(0.08, 0.10)) -> str:
    """A markdown table of {decoder: metrics.summary(...) and consistency_metric.summary(...)}:
    NME, FR@k and AUC@k for each k of `ks`, and the transform consistency."""
    head = "| decoder | NME % | " + " | ".join(f"FR@{k:g} %" for k in ks) + " | " + \
        " | ".join(f"AUC@{k:g}" for k in ks) + " | consistency % |"
    lines = [head, "|---" * (3 + 2 * len(ks)) + "|"]
    for name, r in results.items():
        lines.append(f"| {name} | {100 * r['nme']:.3f} | " + " | ".join(f"{100 * r[f'fr@{k:g}']:.2f}" for k in ks)
                     + " | " + " | ".join(f"{r[f'auc@{k:g}']:.4f}" for k in ks)
                     + f" | {100 * r['consistency']:.3f} |")
    return "\n".join(lines)
