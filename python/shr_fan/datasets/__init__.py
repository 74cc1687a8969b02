"""The landmark benchmarks, each read in its distributed format (one module each), and the
registry: `get_dataset(name, root, split, crop=..., augment=...)` and `SPECS[name]` (number of
landmarks, flip permutation, NME normalisers, FR/AUC thresholds, splits).

    300w  68 points  train | common | challenge | full            inter-ocular NME   (w300.py)
    wflw  98 points  train | test | largepose | expression | ...   inter-ocular NME   (wflw.py)
    cofw  29 points  train | test                                  inter-ocular NME   (cofw.py)
    aflw  19 points  train | full | frontal                        box / diagonal NME (aflw.py)

Every loader gives 0-based landmarks with pixel centres at integers (docs/coordinates.md), a visibility
mask (`visible`, all True where a format has no flags), the benchmark's face box (`boxes`, used
by the box normalisations) and the crop box. Malformed annotations raise
common.FormatError (file, line, what was expected); annotated images that are not on disk raise
common.MissingImagesError listing them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import metrics
from ..data import Augment
from ..errors import UserError
from . import aflw, cofw, w300, wflw
from .common import AnnotatedFaces, FormatError, MissingImagesError


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    num_landmarks: int
    flip_permutation: np.ndarray
    ks: tuple  # thresholds of FR@k / AUC@k as the benchmark reports them
    splits: tuple
    train_split: str
    test_split: str
    loader: type

    @property
    def normalisers(self) -> tuple:
        """metrics.normaliser names (metrics.DEFAULT_NORMALISERS); the first is the headline NME."""
        return metrics.DEFAULT_NORMALISERS[self.name]


SPECS = {
    "300w": DatasetSpec("300w", 68, w300.FLIP_PERMUTATION, (0.08, 0.10),
                        w300.W300.splits, "train", "full", w300.W300),
    "wflw": DatasetSpec("wflw", 98, wflw.FLIP_PERMUTATION, (0.10,), wflw.WFLW.splits,
                        "train", "test", wflw.WFLW),
    "cofw": DatasetSpec("cofw", 29, cofw.FLIP_PERMUTATION, (0.10,), cofw.COFW.splits,
                        "train", "test", cofw.COFW),
    "aflw": DatasetSpec("aflw", 19, aflw.FLIP_PERMUTATION, (0.07,), aflw.AFLW19.splits,
                        "train", "full", aflw.AFLW19),
}


def get_spec(name: str) -> DatasetSpec:
    if name not in SPECS:
        raise UserError(f"unknown dataset {name!r}; expected one of {sorted(SPECS)}")
    return SPECS[name]


def get_dataset(name: str, root: str, split: str | None = None, *, crop: int = 256,
                augment: Augment | None = None) -> AnnotatedFaces:
    """The faces of benchmark `name` (a SPECS key) under `root`, split `split` (None: the test
    split), cropped to `crop` x `crop`, augmented when `augment` is given."""
    spec = get_spec(name)
    if root is None:
        raise UserError(f"{name}: a data root is needed (the folder holding the dataset as distributed)")
    return spec.loader(root, spec.test_split if split is None else split, crop=crop, augment=augment)


__all__ = ["SPECS", "DatasetSpec", "get_spec", "get_dataset", "AnnotatedFaces", "FormatError", "MissingImagesError"]
