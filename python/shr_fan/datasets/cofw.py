"""COFW (Caltech Occluded Faces in the Wild), 29 points, read from the distributed Matlab files:

    ROOT/COFW_train_color.mat  (1345 faces: IsTr, phisTr, bboxesTr)
    ROOT/COFW_test_color.mat   (507 faces: IsT, phisT, bboxesT)

(the grey originals COFW_train.mat / COFW_test.mat are read when the colour ones are absent).
Both Matlab layouts are read: v7.3 (HDF5, through h5py; arrays appear with their axes reversed
and the images as object references) and v5 (scipy.io.loadmat; images as a cell array).
`Is*` holds the images (H x W grey or H x W x 3 RGB, uint8), `phis*` one row of 87 values a face
(29 x, 29 y, 29 occlusion flags, 1 = occluded) and `bboxes*` the detector box [x y w h].

Coordinates and boxes are 1-based Matlab pixels (RCPR's Matlab code made them): 1 is
subtracted. The occlusion flags are exposed as `visible` (= not occluded) and in every item's
`visible`; occluded points are annotated (their coordinates estimated by the annotators) and are
trained and scored like the others, as in the literature. The crop box is the landmarks'
extent; NME is normalised by the outer eye corners (0-based 8, 9).
"""
from __future__ import annotations

import os

import numpy as np

from ..data import box_from_landmarks
from .common import AnnotatedFaces, FormatError, check_split

NUM_LANDMARKS = 29
# Mirror pairs of the 29-point (LFPW) scheme: brow corners, brow top/bottom, eye corners, lids,
# pupils, nostrils, mouth corners; the nose tip and centre, lip middles and chin map to themselves.
_PAIRS = [(0, 1), (2, 3), (4, 6), (5, 7), (8, 9), (10, 11), (12, 14), (13, 15), (16, 17), (18, 19), (22, 23)]
FLIP_PERMUTATION = np.arange(NUM_LANDMARKS)
for _a, _b in _PAIRS:
    FLIP_PERMUTATION[_a], FLIP_PERMUTATION[_b] = _b, _a
FILES = {"train": ("COFW_train_color.mat", "COFW_train.mat"), "test": ("COFW_test_color.mat", "COFW_test.mat")}
KEYS = {"train": ("IsTr", "phisTr", "bboxesTr"), "test": ("IsT", "phisT", "bboxesT")}


def _read_hdf5(path: str, keys) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    import h5py

    with h5py.File(path, "r") as f:
        for key in keys:
            if key not in f:
                raise FormatError(path, f"expected a variable {key!r}; found {sorted(f.keys())}")
        refs = np.asarray(f[keys[0]]).reshape(-1)
        if refs.dtype != h5py.ref_dtype:
            raise FormatError(path, f"expected {keys[0]} to be a cell array of images (object references), got "
                              f"an array of {refs.dtype}")
        images = [np.asarray(f[r]).T for r in refs]  # Matlab's column-major axes come reversed
        phis = np.asarray(f[keys[1]], dtype=np.float64).T
        boxes = np.asarray(f[keys[2]], dtype=np.float64).T
    return images, phis, boxes


def _read_v5(path: str, keys) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    import scipy.io

    try:
        mat = scipy.io.loadmat(path)
    except Exception as e:  # scipy raises several types for a broken file
        raise FormatError(path, f"not a readable Matlab file ({type(e).__name__}: {e})") from None
    for key in keys:
        if key not in mat:
            raise FormatError(path, f"expected a variable {key!r}; found "
                              f"{sorted(k for k in mat if not k.startswith('__'))}")
    cells = mat[keys[0]]
    if cells.dtype != object:
        raise FormatError(path, f"expected {keys[0]} to be a cell array of images, got an array of {cells.dtype}")
    return [np.asarray(c) for c in cells.reshape(-1)], np.asarray(mat[keys[1]], np.float64), \
        np.asarray(mat[keys[2]], np.float64)


def read_mat(path: str, split: str) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """(images uint8 BGR [H, W, 3] list, phis float64 [N, 87], bboxes float64 [N, 4]) as stored
    (1-based), from a v7.3 or v5 COFW file. Raises FormatError naming the file and variable."""
    import h5py

    keys = KEYS[split]
    images, phis, boxes = (_read_hdf5 if h5py.is_hdf5(path) else _read_v5)(path, keys)
    n = len(images)
    if phis.shape != (n, 3 * NUM_LANDMARKS):
        raise FormatError(path, f"expected {keys[1]} of shape [{n}, {3 * NUM_LANDMARKS}] (29 x, 29 y, 29 occlusion "
                          f"flags per face, {n} faces in {keys[0]}), got {list(phis.shape)}")
    if boxes.shape != (n, 4):
        raise FormatError(path, f"expected {keys[2]} of shape [{n}, 4] (x y w h per face), got {list(boxes.shape)}")
    out = []
    for i, im in enumerate(images):
        if im.dtype != np.uint8 or not (im.ndim == 2 or (im.ndim == 3 and im.shape[2] == 3)):
            raise FormatError(path, f"expected image {i + 1} of {keys[0]} to be uint8 H x W or H x W x 3, got "
                              f"{im.dtype} of shape {list(im.shape)}")
        out.append(np.ascontiguousarray(np.repeat(im[..., None], 3, 2) if im.ndim == 2 else im[..., ::-1]))
    flags = phis[:, 2 * NUM_LANDMARKS:]
    if not np.isin(flags, (0, 1)).all():
        raise FormatError(path, f"expected the occlusion flags ({keys[1]} columns 59-87) to be 0 or 1")
    return out, phis, boxes


class COFW(AnnotatedFaces):
    """COFW-29 faces of one split (see the module docstring for files and conventions)."""

    name = "cofw"
    num_landmarks = NUM_LANDMARKS
    flip_permutation = FLIP_PERMUTATION
    splits = ("train", "test")

    def __init__(self, root: str, split: str = "train", *, crop: int = 256, augment=None):
        super().__init__(crop=crop, augment=augment)
        check_split(self.name, split, self.splits)
        self.root, self.split = root, split
        candidates = [os.path.join(root, name) for name in FILES[split]]
        path = next((p for p in candidates if os.path.isfile(p)), None)
        if path is None:
            raise FileNotFoundError(f"cofw: none of {', '.join(candidates)} found")
        self.path = path
        self.images, phis, bboxes = read_mat(path, split)
        k = NUM_LANDMARKS
        # 1-based Matlab pixels -> 0-based; NaN (never in the release, but a Matlab file may hold it) stays NaN
        self.points = np.stack([phis[:, :k], phis[:, k:2 * k]], axis=-1) - 1.0
        self.visible = phis[:, 2 * k:] == 0
        self.rects = np.concatenate([bboxes[:, :2] - 1.0, bboxes[:, :2] - 1.0 + bboxes[:, 2:]], axis=1)
        self.boxes = np.stack([box_from_landmarks(p) for p in self.points]) if len(self.points) else np.zeros((0, 4))
        self.crop_boxes = self.boxes

    def image(self, index: int) -> np.ndarray:
        return self.images[index]
