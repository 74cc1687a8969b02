"""The transform-consistency metric: how far a model's landmarks are from moving with the image.

For each test face, two crops ("views") under random geometric transforms drawn from `views`
(a data.Augment: scale, rotation, shift, flip; by default the training augmentation's ranges,
VIEWS, without colour) with a generator seeded by (seed, face index), so the metric is a function
of the model, the faces, `views` and `seed` alone. The model predicts both views; each view's
landmarks (crop pixels, decoded by the codec asked for) are mapped back to image pixels by the
inverse of its crop matrix, and a flipped view's channels are put back in landmark order by the
flip permutation (channel k of a flipped view is landmark perm[k]). A face's consistency is the
mean distance over its landmarks between the two views' image-frame predictions, divided by the
face's normalising distance as its NME is (inter-ocular for the synthetic faces; the ground truth
is used for that distance only, so every landmark counts, annotated or not); the metric is the
mean over faces. It is 0 for a predictor whose output moves exactly with the image (equivariant),
whatever its error: it measures what the Siamese loss enforces, apart from the accuracy that
the NME measures. A model that ignores the image (the mean shape in every crop) is not 0: its
landmarks stay in the crop while the face moves.

    pairs = ViewPairs(SyntheticFaces(256, seed=TEST_SEED, crop=128), VIEWS, seed=0)
    per_face = pair_errors(pred, matrix, flip, FLIP_PERMUTATION, norm)     # pred [N, 2, K, 2]
"""
from __future__ import annotations

import argparse
import math

import numpy as np
import torch
from torch.utils.data import DataLoader

from .data import Augment, FaceCrops, apply_affine, invert_affine, sample_seed
from .errors import UserError
from .geometry import decode_to_crop

VIEWS = Augment(colour=0.0)  # the training augmentation's geometric ranges: scale 0.9-1.1, ±20°, ±5 %, flip 1/2
VIEWS_SEED = 0


class ViewPairs(FaceCrops):
    """Two views of every face of `faces` under independent draws of `views`, the draws of face i
    seeded by (seed, i): items as FaceCrops' with views=2 (image [2, 3, S, S], matrix [2, 2, 3],
    flip [2], original [K, 2] in image pixels, ...)."""

    def __init__(self, faces: FaceCrops, views: Augment = VIEWS, seed: int = VIEWS_SEED):
        super().__init__(crop=faces.crop, augment=views, views=2)
        self.faces, self.seed = faces, seed
        self.num_landmarks, self.flip_permutation = faces.num_landmarks, faces.flip_permutation

    def __len__(self) -> int:
        return len(self.faces)

    def face(self, index: int):
        image, points, box, _ = self.faces.face(index)
        return image, points, box, sample_seed(self.seed, index)

    def visibility(self, index: int):
        return self.faces.visibility(index)


def to_image(points: np.ndarray, matrix: np.ndarray, flip: np.ndarray, flip_permutation) -> np.ndarray:
    """[N, K, 2] image pixels, landmark order: crop-pixel predictions `points` [N, K, 2] of crops
    made by `matrix` [N, 2, 3] (image -> crop), `flip` [N] bool (a flipped crop's channel k holds
    landmark perm[k]; the permutation is an involution, so indexing by it restores the order)."""
    perm = np.asarray(flip_permutation)
    out = np.stack([apply_affine(p, invert_affine(m)) for p, m in zip(points, matrix)])
    flip = np.asarray(flip, dtype=bool)
    out[flip] = out[flip][:, perm]
    return out


def pair_errors(pred: np.ndarray, matrix: np.ndarray, flip: np.ndarray, flip_permutation,
                norm: np.ndarray) -> np.ndarray:
    """[N] per-face consistency: the mean over landmarks of the distance between the two views'
    predictions in image pixels, divided by `norm` [N]. pred [N, 2, K, 2] (crop pixels of each
    view), matrix [N, 2, 2, 3], flip [N, 2]."""
    pred, matrix, flip = np.asarray(pred, dtype=np.float64), np.asarray(matrix), np.asarray(flip)
    if pred.ndim != 4 or pred.shape[1] != 2 or pred.shape[-1] != 2:
        raise ValueError(f"pair_errors: pred must be [N, 2, K, 2], got {pred.shape}")
    a = to_image(pred[:, 0], matrix[:, 0], flip[:, 0], flip_permutation)
    b = to_image(pred[:, 1], matrix[:, 1], flip[:, 1], flip_permutation)
    norm = np.asarray(norm, dtype=np.float64)
    bad = ~(np.isfinite(norm) & (norm > 0))
    if bad.any():
        raise ValueError(f"pair_errors: the normalising distance must be finite and > 0; face {int(np.argmax(bad))} "
                         f"has {norm[bad][0]}")
    return np.linalg.norm(a - b, axis=-1).mean(-1) / norm


@torch.no_grad()
def predict_pairs(model, pairs, codecs: dict, cfg, *, device="cpu", batch_size: int = 32, workers: int = 0) -> dict:
    """The views' predictions in crop pixels, {name: [N, 2, K, 2]} for each codec of `codecs`
    ({name: codec}, decoding the same heatmaps), and the views' geometry: matrix [N, 2, 2, 3],
    flip [N, 2], original [N, K, 2] (image pixels), from `pairs` (ViewPairs, or its items)."""
    model = model.to(device).eval()
    loader = DataLoader(pairs, batch_size=batch_size, shuffle=False, num_workers=workers)
    preds = {name: [] for name in codecs}
    matrix, flip, original = [], [], []
    for batch in loader:
        images = batch["image"]
        n = images.shape[0]
        heat = model(images.flatten(0, 1).to(device))[-1].float().cpu()
        for name, codec in codecs.items():
            preds[name].append(decode_to_crop(codec, heat, cfg).reshape(n, 2, *heat.shape[1:2], 2).numpy())
        matrix.append(batch["matrix"].numpy())
        flip.append(batch["flip"].numpy())
        original.append(batch["original"][:, 0].numpy())  # the same face in both views
    return dict(pred={name: np.concatenate(p) for name, p in preds.items()}, matrix=np.concatenate(matrix),
                flip=np.concatenate(flip), original=np.concatenate(original))


def summary(per_face: np.ndarray) -> dict:
    """The metric of per-face values: consistency (the mean) and consistency_per_image."""
    return {"consistency": float(np.mean(per_face)), "consistency_per_image": per_face}


# ------------------------------------------------------------------------------------ options


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    return value


def add_view_arguments(parser: argparse.ArgumentParser, defaults: Augment = VIEWS) -> None:
    """The options of the transform-consistency metric's views (`views_from_args` reads them)."""
    g = parser.add_argument_group("transform-consistency metric (two views of each test face; "
                                  "shr_fan.consistency_metric)")
    g.add_argument("--views-scale", nargs=2, type=_number, metavar=("LO", "HI"), default=list(defaults.scale),
                   help=f"scale range of the views (default: {defaults.scale[0]:g} {defaults.scale[1]:g})")
    g.add_argument("--views-rotation", type=_number, metavar="DEG", default=defaults.rotation_deg,
                   help=f"rotation within ± this many degrees (default: {defaults.rotation_deg:g})")
    g.add_argument("--views-shift", type=_number, metavar="FRAC", default=defaults.shift,
                   help=f"shift within ± this fraction of the crop side, each axis (default: {defaults.shift:g})")
    g.add_argument("--views-flip", type=_number, metavar="P", default=defaults.flip_prob,
                   help=f"probability of a horizontal flip (default: {defaults.flip_prob:g})")
    g.add_argument("--views-seed", type=int, metavar="N", default=VIEWS_SEED,
                   help=f"seed of the views' draws (default: {VIEWS_SEED})")


def views_from_args(args: argparse.Namespace) -> tuple[Augment, int]:
    """(views, seed) of the parsed options, refused with a message naming the option when unusable."""
    lo, hi = args.views_scale
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi):
        raise UserError(f"--views-scale {lo:g} {hi:g}: expected 0 < LO <= HI")
    for name, value, lo_ok, hi_ok in (("rotation", args.views_rotation, 0.0, 180.0),
                                      ("shift", args.views_shift, 0.0, 0.5), ("flip", args.views_flip, 0.0, 1.0)):
        if not (math.isfinite(value) and lo_ok <= value <= hi_ok):
            raise UserError(f"--views-{name} {value:g}: expected a number in [{lo_ok:g}, {hi_ok:g}]")
    if args.views_seed < 0:
        raise UserError(f"--views-seed {args.views_seed}: expected an integer >= 0")
    return Augment(scale=(lo, hi), rotation_deg=args.views_rotation, shift=args.views_shift,
                   flip_prob=args.views_flip, colour=0.0), args.views_seed


def describe(views: Augment, seed: int) -> str:
    """One line saying what the views were."""
    return (f"two views per face: scale {views.scale[0]:g}-{views.scale[1]:g}, rotation ±{views.rotation_deg:g}°, "
            f"shift ±{views.shift:g}, flip p {views.flip_prob:g}, seed {seed}")
