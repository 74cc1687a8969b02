"""AFLW-19, read from AFLWinfo_release.mat, the 19-point release of AFLW by Zhu et al. (CCL,
CVPR 2016) that SAN, LAB, HRNet, LUVLi and the SHR paper evaluate on:

    ROOT/AFLWinfo_release.mat   bbox [N, 4] (left right top bottom), data [N, 38] (19 x then 19 y),
                                mask_new [N, 19] (1 = visible), nameList {N} (image paths),
                                ra [1, N] (a 1-based permutation fixing the split)
    ROOT/data/flickr/<nameList entry>   the AFLW images (as the AFLW archive unpacks)

Splits: train = the faces ra[0:20000] (20000), full = ra[20000:] (4386), frontal = the faces of
full with all 19 points visible (1165, as CCL defines AFLW-Frontal). Point order, each group
from image left to right: brows (0-5: corner, centre, corner twice), eyes (6-11: corner, centre,
corner twice), nose (12-14), mouth (15-17), chin (18).

Every point has coordinates (CCL annotated the ones hidden by pose by hand); `visible` holds
mask_new and is passed into every item's `visible`; hidden points are trained and scored
like the others, as in the literature. The release states no pixel convention; its coordinates
are used unchanged, as the community's loaders do (no NME depends on a constant shift). The crop
box is the annotated face box (19 points do not outline the face). NME is normalised by that
box: sqrt(w * h) ("NME_box") or its diagonal ("NME_diag").
"""
from __future__ import annotations

import os

import numpy as np

from .common import AnnotatedFaces, FormatError, check_images, check_split, read_image

NUM_LANDMARKS = 19
TRAIN_SIZE = 20000  # the first 20000 faces of `ra` train, the rest test (as SAN / LAB / HRNet split it)
_PAIRS = [(0, 5), (1, 4), (2, 3), (6, 11), (7, 10), (8, 9), (12, 14), (15, 17)]
FLIP_PERMUTATION = np.arange(NUM_LANDMARKS)
for _a, _b in _PAIRS:
    FLIP_PERMUTATION[_a], FLIP_PERMUTATION[_b] = _b, _a
MAT_FILE = "AFLWinfo_release.mat"


def read_info(path: str) -> dict:
    """{bbox [N, 4] as stored (left right top bottom), points [N, 19, 2], mask bool [N, 19],
    names [N], ra int [N] 0-based} of AFLWinfo_release.mat. Raises FormatError naming the file
    and the variable."""
    import scipy.io

    try:
        mat = scipy.io.loadmat(path)
    except Exception as e:  # scipy raises several types for a broken file
        raise FormatError(path, f"not a readable Matlab v5 file ({type(e).__name__}: {e})") from None
    for key in ("bbox", "data", "mask_new", "nameList", "ra"):
        if key not in mat:
            raise FormatError(path, f"expected a variable {key!r}; found "
                              f"{sorted(k for k in mat if not k.startswith('__'))}")
    data, bbox, mask = (np.asarray(mat[k], dtype=np.float64) for k in ("data", "bbox", "mask_new"))
    n = data.shape[0]
    if data.shape != (n, 2 * NUM_LANDMARKS):
        raise FormatError(path, f"expected data of shape [N, 38] (19 x then 19 y per face), got {list(data.shape)}")
    if bbox.shape != (n, 4):
        raise FormatError(path, f"expected bbox of shape [{n}, 4] (left right top bottom), got {list(bbox.shape)}")
    if mask.shape != (n, NUM_LANDMARKS) or not np.isin(mask, (0, 1)).all():
        raise FormatError(path, f"expected mask_new of shape [{n}, 19] holding 0/1, got {list(mask.shape)}")
    names = [str(np.asarray(c).reshape(-1)[0]) if np.asarray(c).size else "" for c in mat["nameList"].reshape(-1)]
    if len(names) != n or not all(names):
        raise FormatError(path, f"expected nameList to hold {n} non-empty image paths, got {len(names)}")
    ra = np.asarray(mat["ra"]).reshape(-1)
    if sorted(ra.astype(np.int64).tolist()) != list(range(1, n + 1)):
        raise FormatError(path, f"expected ra to be a permutation of 1..{n} (Matlab indices)")
    points = np.stack([data[:, :NUM_LANDMARKS], data[:, NUM_LANDMARKS:]], axis=-1)
    return dict(bbox=bbox, points=points, mask=mask == 1, names=names, ra=ra.astype(np.int64) - 1)


class AFLW19(AnnotatedFaces):
    """AFLW-19 faces of one split (see the module docstring for files, splits and conventions)."""

    name = "aflw"
    num_landmarks = NUM_LANDMARKS
    flip_permutation = FLIP_PERMUTATION
    splits = ("train", "full", "frontal")

    def __init__(self, root: str, split: str = "train", *, crop: int = 256, augment=None,
                 train_size: int = TRAIN_SIZE):
        super().__init__(crop=crop, augment=augment)
        check_split(self.name, split, self.splits)
        self.root, self.split = root, split
        path = os.path.join(root, MAT_FILE)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"aflw: {path} not found")
        info = read_info(path)
        order = info["ra"][:train_size] if split == "train" else info["ra"][train_size:]
        if split == "frontal":
            order = order[info["mask"][order].all(1)]
        self.indices = order  # rows of the .mat file
        self.points = info["points"][order]
        self.visible = info["mask"][order]
        left, right, top, bottom = info["bbox"][order].T
        self.boxes = np.stack([left, top, right, bottom], axis=1)
        self.crop_boxes = self.boxes
        self.image_paths = [os.path.join(root, "data", "flickr", info["names"][i]) for i in order]
        check_images(f"aflw {split}", self.image_paths)

    def image(self, index: int) -> np.ndarray:
        return read_image(self.image_paths[index])
