"""Data pipeline: continuous affine crops from a face box, augmentation, and the synthetic
face dataset. Coordinates follow docs/coordinates.md (pixel centres at integers); images and landmarks go
through the same 2x3 matrix (cv2.warpAffine uses the same convention), and nothing is rounded.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from . import synthetic


def apply_affine(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """[..., 2] points through a 2x3 affine matrix."""
    return points @ matrix[:, :2].T + matrix[:, 2]


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """The inverse of a 2x3 affine matrix, as a 2x3 matrix."""
    full = np.vstack([matrix, [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def box_from_landmarks(points: np.ndarray) -> np.ndarray:
    """[x0, y0, x1, y1]: the landmarks' extent (the usual face box of landmark benchmarks);
    missing (NaN) landmarks are left out."""
    finite = np.isfinite(points).all(-1)
    if not finite.any():
        raise ValueError("box_from_landmarks: every landmark is NaN; expected at least one finite point")
    return np.concatenate([points[finite].min(0), points[finite].max(0)])


def crop_matrix(box: np.ndarray, size: int, *, enlarge: float = 1.3, scale: float = 1.0, rotation_deg: float = 0.0,
                shift=(0.0, 0.0), flip: bool = False) -> np.ndarray:
    """2x3 matrix mapping image coordinates to a size x size crop around `box`.

    The crop covers a square of side max(w, h) * enlarge / scale centred on the box centre
    (moved by `shift`, in fractions of that side), rotated by `rotation_deg` about the centre;
    its edges map to the crop's edges (-0.5 and size - 0.5), so pixel centres stay centres.
    `flip` mirrors the crop horizontally (x -> size - 1 - x); landmark identities must then be
    permuted (synthetic.FLIP_PERMUTATION).
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    side = max(x1 - x0, y1 - y0) * enlarge / scale
    cx = (x0 + x1) / 2 + shift[0] * side
    cy = (y0 + y1) / 2 + shift[1] * side
    k = size / side
    a = math.radians(rotation_deg)
    ca, sa = math.cos(a) * k, math.sin(a) * k
    mid = (size - 1) / 2.0
    m = np.array([[ca, sa, mid - ca * cx - sa * cy], [-sa, ca, mid + sa * cx - ca * cy]])
    if flip:
        m = np.array([[-1.0, 0.0, size - 1.0], [0.0, 1.0, 0.0]]) @ np.vstack([m, [0.0, 0.0, 1.0]])
    return m


def warp(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


# The transforms of an augmentation, by name (TrainConfig.siamese_transforms), and the keys of
# Augment.draw's result that hold each one's draws.
TRANSFORMS = ("scale", "rotation", "shift", "flip", "colour")
_DRAW_KEYS = dict(scale="scale", rotation="rotation_deg", shift="shift", flip="flip", colour="colour")


@dataclass(frozen=True)
class Augment:
    """A random crop transform: scale in [scale[0], scale[1]] (crop side / scale), rotation in
    ±rotation_deg, shift in ±shift of the crop side (each axis), horizontal flip with probability
    flip_prob, colour jitter of ±colour (brightness, contrast, per-channel gain)."""

    scale: tuple = (0.9, 1.1)
    rotation_deg: float = 20.0
    shift: float = 0.05
    flip_prob: float = 0.5
    colour: float = 0.2  # brightness / contrast / per-channel gain spread

    def sample(self, rng: np.random.Generator) -> dict:
        """The geometric draws: crop_matrix's keyword arguments."""
        return dict(scale=rng.uniform(*self.scale), rotation_deg=rng.uniform(-self.rotation_deg, self.rotation_deg),
                    shift=tuple(rng.uniform(-self.shift, self.shift, 2)), flip=bool(rng.random() < self.flip_prob))

    def sample_colour(self, rng: np.random.Generator) -> dict | None:
        """The colour jitter's draws (per-channel gain, contrast, brightness), None without jitter."""
        if self.colour <= 0:
            return None
        a = self.colour
        gain = rng.uniform(1 - a, 1 + a, (3, 1, 1))
        contrast = rng.uniform(1 - a, 1 + a)
        return dict(gain=gain, contrast=contrast, brightness=rng.uniform(-a, a) / 2)

    def draw(self, rng: np.random.Generator) -> dict:
        """Every draw of one crop: the geometric ones (`sample`) and colour (`sample_colour`)."""
        return dict(self.sample(rng), colour=self.sample_colour(rng))

    def scaled(self, strength: float) -> "Augment":
        """The same augmentation with its ranges times `strength`: rotation, shift, colour and the
        scale range's distance from 1 (the flip probability is kept)."""
        lo, hi = self.scale
        return Augment(scale=(1 - (1 - lo) * strength, 1 + (hi - 1) * strength),
                       rotation_deg=self.rotation_deg * strength, shift=self.shift * strength,
                       flip_prob=self.flip_prob, colour=self.colour * strength)


@dataclass(frozen=True)
class SiameseViews:
    """How the second view of a Siamese pair is drawn: the transforms named in `transforms` (of
    TRANSFORMS) afresh, from the augmentation with its ranges times `strength`; the others are
    copied from the first view. The first view is drawn as a single crop would be, and the second
    view's draws always consume the same random numbers, so the first views (the supervised data)
    do not depend on these settings. The default (every transform afresh, strength 1) gives two
    independent crops."""

    transforms: tuple = TRANSFORMS
    strength: float = 1.0

    def second(self, augment: Augment, first: dict, rng: np.random.Generator) -> dict:
        """The second view's draws, given the first view's (`Augment.draw`)."""
        fresh = (augment if self.strength == 1.0 else augment.scaled(self.strength)).draw(rng)
        kept = {_DRAW_KEYS[t] for t in TRANSFORMS if t not in self.transforms}
        return {key: first[key] if key in kept else value for key, value in fresh.items()}


def to_tensor(image_bgr: np.ndarray) -> torch.Tensor:
    """uint8 BGR [H, W, 3] -> float32 RGB [3, H, W] in [0, 1]."""
    rgb = np.ascontiguousarray(image_bgr[..., ::-1])
    return torch.from_numpy(rgb).permute(2, 0, 1).float().div_(255.0)


def sample_seed(base: int, index: int) -> int:
    """A 63-bit seed for item `index` of a dataset seeded with `base` (independent streams)."""
    return int(np.random.SeedSequence([base, index]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def apply_colour(tensor: torch.Tensor, colour: dict) -> torch.Tensor:
    """Brightness, contrast and per-channel gain of Augment.sample_colour's draws."""
    gain = torch.from_numpy(colour["gain"]).float()
    tensor = ((tensor - 0.5) * colour["contrast"] + 0.5 + colour["brightness"]) * gain
    return tensor.clamp_(0.0, 1.0)


def crop_sample(image: np.ndarray, points: np.ndarray, box: np.ndarray, crop: int, rng: np.random.Generator,
                augment: Augment | None, flip_permutation: np.ndarray, visible: np.ndarray | None = None, *,
                draws: dict | None = None) -> dict:
    """One training/test sample: the face in `box` cut out by a continuous affine crop (with a
    random augmentation drawn from `rng` when `augment` is given, or the augmentation's draws
    `draws` (Augment.draw) when the caller has drawn them).

    Returns dict(image Tensor[3, crop, crop] float32 RGB in [0, 1], landmarks Tensor[K, 2] float64
    in crop pixels (NaN stays NaN), matrix Tensor[2, 3] float64 image -> crop, original
    Tensor[K, 2] float64 in image pixels, visible Tensor[K] bool: the annotation's visibility
    flags `visible` (all True when None) and-ed with "the point is not NaN", flip Tensor[] bool).
    A flipped crop has its landmarks and flags permuted by `flip_permutation`, so index k keeps its
    meaning (e.g. the left eye's outer corner).

    Missing landmarks: a NaN point stays NaN in `landmarks`; training leaves it out of the loss
    (train.supervised_loss), metrics leave it out of the NME (metrics.nme). Occluded but annotated
    points (visible False, finite coordinates) are trained and scored like the others, as the
    benchmarks do.
    """
    if draws is None:
        draws = augment.draw(rng) if augment else {}
    params = {key: value for key, value in draws.items() if key != "colour"}
    matrix = crop_matrix(box, crop, **params)
    lm = apply_affine(points, matrix)
    vis = np.isfinite(points).all(-1) & (True if visible is None else np.asarray(visible, dtype=bool))
    if params.get("flip"):
        lm, vis = lm[flip_permutation], vis[flip_permutation]
    tensor = to_tensor(warp(image, matrix, crop))
    if draws.get("colour") is not None:
        tensor = apply_colour(tensor, draws["colour"])
    return dict(image=tensor, landmarks=torch.from_numpy(lm), matrix=torch.from_numpy(matrix),
                original=torch.from_numpy(np.asarray(points, dtype=np.float64)), visible=torch.from_numpy(vis),
                flip=torch.tensor(bool(params.get("flip", False))))


class FaceCrops(Dataset):
    """Base of every landmark dataset: subclasses say how many faces they hold (`__len__`), the
    landmark scheme (`num_landmarks`, `flip_permutation`) and, in `face(index)`, one face as
    (image uint8 BGR [H, W, 3], points float64 [K, 2] in image pixels (0-based, pixel centres at
    integers), box [x0, y0, x1, y1], seed of its random augmentation). Items are crops from
    `crop_sample`, a function of the index (and the dataset's seed) alone.

    With `views=2` (Siamese training) an item holds two crops of the same face, the second drawn
    as `siamese` says (SiameseViews; default: two independent augmentations), every entry stacked
    on a new first axis (image [2, 3, S, S], landmarks [2, K, 2], matrix [2, 2, 3], flip [2], ...).
    """

    num_landmarks: int = 68
    flip_permutation: np.ndarray = synthetic.FLIP_PERMUTATION

    def __init__(self, *, crop: int = 256, augment: Augment | None = None, views: int = 1,
                 siamese: SiameseViews | None = None):
        if views not in (1, 2):
            raise ValueError(f"views must be 1 or 2, got {views}")
        self.crop, self.augment, self.views = crop, augment, views
        self.siamese = siamese if siamese is not None else SiameseViews()

    def face(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        raise NotImplementedError

    def visibility(self, index: int) -> np.ndarray | None:
        """bool [K]: the annotation's visibility (occlusion) flags of face `index`; None: no flags."""
        return None

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        image, points, box, seed = self.face(index)
        rng = np.random.default_rng(seed ^ 0x5EED)
        first = self.augment.draw(rng) if self.augment else {}
        draws = [first] if self.views == 1 else [first, self.siamese.second(self.augment, first, rng)
                                                 if self.augment else {}]
        items = [crop_sample(image, points, box, self.crop, rng, self.augment, self.flip_permutation,
                             self.visibility(index), draws=d) for d in draws]
        if self.views == 1:
            return items[0]
        return {key: torch.stack([item[key] for item in items]) for key in items[0]}


class EpochCycle(FaceCrops):
    """`length` training items drawn from a finite dataset epoch after epoch: item i is face
    perm_e[i mod n] of `faces` (n faces), where perm_e is a permutation drawn afresh for epoch
    e = i // n from (seed, e), and its augmentation is seeded by (seed, i), so every epoch sees the
    faces in a new order with new augmentations, and item i is a function of (seed, i) alone (an
    exact --resume). Crop size, augmentation and landmark scheme are those of `faces`.

    `cache`: keep every face `faces` gives (image, points, box) in memory once read, so later
    epochs only crop it (for rendered synthetic faces: about 200 KB a 256 px face, per DataLoader
    worker; not for a benchmark's full-size photos).
    """

    def __init__(self, faces: FaceCrops, length: int, *, seed: int = 0, views: int = 1,
                 siamese: SiameseViews | None = None, cache: bool = False):
        super().__init__(crop=faces.crop, augment=faces.augment, views=views, siamese=siamese)
        if len(faces) == 0:
            raise ValueError("EpochCycle: the dataset holds no faces")
        self.faces, self.length, self.seed = faces, length, seed
        self.num_landmarks, self.flip_permutation = faces.num_landmarks, faces.flip_permutation
        self._perm_epoch, self._perm = -1, None
        self._cache = {} if cache else None

    def __len__(self) -> int:
        return self.length

    def source_index(self, index: int) -> int:
        """The face of `faces` that item `index` shows."""
        epoch, offset = divmod(index, len(self.faces))
        if epoch != self._perm_epoch:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, 0xE90C, epoch]))
            self._perm, self._perm_epoch = rng.permutation(len(self.faces)), epoch
        return int(self._perm[offset])

    def face(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        source = self.source_index(index)
        if self._cache is None:
            image, points, box, _ = self.faces.face(source)
        else:
            if source not in self._cache:
                self._cache[source] = self.faces.face(source)[:3]
            image, points, box = self._cache[source]
        return image, points, box, sample_seed(self.seed, index)

    def visibility(self, index: int) -> np.ndarray | None:
        return self.faces.visibility(self.source_index(index))


class SyntheticFaces(FaceCrops):
    """Synthetic 68-point faces, cropped from the landmark box to `crop` x `crop`.

    Item i is a function of (seed, i) alone (see FaceCrops for what an item holds).
    """

    def __init__(self, length: int, *, seed: int = 0, crop: int = 256, render_size: int = 256,
                 augment: Augment | None = None, synth: synthetic.SynthConfig | None = None, views: int = 1,
                 siamese: SiameseViews | None = None):
        super().__init__(crop=crop, augment=augment, views=views, siamese=siamese)
        self.length, self.seed = length, seed
        self.synth = synth or synthetic.SynthConfig(size=render_size)

    def __len__(self) -> int:
        return self.length

    def face(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        s = sample_seed(self.seed, index)
        image, points = synthetic.render_face(s, self.synth)
        return image, points, box_from_landmarks(points), s
