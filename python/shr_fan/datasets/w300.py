"""300-W (iBUG 300 faces in the wild), 68 points, read from the distributed folders of .pts files
with each image beside its .pts (same stem, .jpg or .png):

    ROOT/afw/*.pts  ROOT/helen/trainset/*.pts  ROOT/helen/testset/*.pts
    ROOT/lfpw/trainset/*.pts  ROOT/lfpw/testset/*.pts  ROOT/ibug/*.pts

Splits as the literature uses them: train = afw + helen/trainset + lfpw/trainset (3148 faces);
common = helen/testset + lfpw/testset (554); challenge = ibug (135); full = common + challenge (689).

A .pts file is `version: 1`, `n_points: 68`, `{`, 68 lines `x y`, `}`. Its coordinates are
1-based (Matlab: the first pixel's centre is 1), so 1 is subtracted to reach our 0-based
convention (pixel centres at integers); predict.write_pts adds it back. The face box is the
landmarks' extent. NME is normalised by the outer eye corners (0-based 36, 45).
"""
from __future__ import annotations

import glob
import os

import numpy as np

from .. import synthetic
from .common import AnnotatedFaces, FormatError, IMAGE_SUFFIXES, check_images, check_split, parse_float, read_image
from ..data import box_from_landmarks

NUM_LANDMARKS = 68
FLIP_PERMUTATION = synthetic.FLIP_PERMUTATION  # the iBUG 68-point order, as the synthetic faces use
SUBSETS = {
    "train": ("afw", "helen/trainset", "lfpw/trainset"),
    "common": ("helen/testset", "lfpw/testset"),
    "challenge": ("ibug",),
    "full": ("helen/testset", "lfpw/testset", "ibug"),
}


def read_pts(path: str, n_points: int | None = None) -> np.ndarray:
    """float64 [K, 2] coordinates of a .pts file exactly as written (1-based for 300-W).

    Raises FormatError naming the file, the line and what was expected."""
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = [ln.strip() for ln in f.read().splitlines()]
    # line numbers are 1-based; blank lines are allowed anywhere (some files end with several)
    content = [(i + 1, ln) for i, ln in enumerate(lines) if ln]
    if not content:
        raise FormatError(path, "empty file; expected 'version: 1', 'n_points: K', '{', K lines 'x y', '}'", 1)
    no, ln = content[0]
    if ln.replace(" ", "") != "version:1":
        raise FormatError(path, f"expected 'version: 1', got {ln!r}", no)
    if len(content) < 2:
        raise FormatError(path, "expected 'n_points: K' after the version line", no + 1)
    no, ln = content[1]
    key, _, value = ln.partition(":")
    if key.strip() != "n_points" or not value.strip().isdigit():
        raise FormatError(path, f"expected 'n_points: K' (K a positive integer), got {ln!r}", no)
    k = int(value)
    if n_points is not None and k != n_points:
        raise FormatError(path, f"expected n_points: {n_points}, got {k}", no)
    if len(content) < 3 or content[2][1] != "{":
        got = repr(content[2][1]) if len(content) >= 3 else "end of file"
        raise FormatError(path, f"expected '{{', got {got}", content[2][0] if len(content) >= 3 else no + 1)
    points = np.empty((k, 2))
    for j in range(k):
        if 3 + j >= len(content):
            raise FormatError(path, f"expected {k} points, the file ends after {j}", len(lines) + 1)
        no, ln = content[3 + j]
        fields = ln.split()
        if len(fields) != 2:
            got = f"'}}' after only {j} points" if ln == "}" else repr(ln)
            raise FormatError(path, f"expected point {j + 1} of {k} as 'x y', got {got}", no)
        points[j] = [parse_float(v, path, no, f"point {j + 1}") for v in fields]
    if 3 + k >= len(content) or content[3 + k][1] != "}":
        got = repr(content[3 + k][1]) if 3 + k < len(content) else "end of file"
        raise FormatError(path, f"expected '}}' after {k} points, got {got}",
                          content[3 + k][0] if 3 + k < len(content) else len(lines) + 1)
    if len(content) > 4 + k:
        no, ln = content[4 + k]
        raise FormatError(path, f"expected nothing after '}}', got {ln!r}", no)
    if not np.isfinite(points).all():
        raise FormatError(path, "expected finite coordinates (300-W annotates every point)")
    return points


def image_beside(pts_path: str) -> str:
    """The image next to a .pts file (same stem; .jpg/.png/.jpeg); the .jpg name when none is."""
    stem = os.path.splitext(pts_path)[0]
    for suffix in IMAGE_SUFFIXES:
        if os.path.isfile(stem + suffix):
            return stem + suffix
    return stem + ".jpg"


class W300(AnnotatedFaces):
    """300-W faces of one split (see the module docstring for layout, splits and conventions)."""

    name = "300w"
    num_landmarks = NUM_LANDMARKS
    flip_permutation = FLIP_PERMUTATION
    splits = tuple(SUBSETS)

    def __init__(self, root: str, split: str = "train", *, crop: int = 256, augment=None):
        super().__init__(crop=crop, augment=augment)
        check_split(self.name, split, SUBSETS)
        self.root, self.split = root, split
        files = []
        for sub in SUBSETS[split]:
            folder = os.path.join(root, sub)
            if not os.path.isdir(folder):
                raise FileNotFoundError(f"300w: folder {folder} not found (split {split!r} reads "
                                        f"{', '.join(SUBSETS[split])} under {root})")
            found = sorted(glob.glob(os.path.join(glob.escape(folder), "*.pts")))
            if not found:
                raise FileNotFoundError(f"300w: no .pts files in {folder}")
            files += found
        self.pts_files = files
        self.image_paths = [image_beside(p) for p in files]
        check_images(f"300w {split}", self.image_paths)
        self.points = np.stack([read_pts(p, NUM_LANDMARKS) for p in files]) - 1.0  # 1-based -> 0-based
        self.visible = np.ones(self.points.shape[:2], dtype=bool)
        self.boxes = np.stack([box_from_landmarks(p) for p in self.points])
        self.crop_boxes = self.boxes

    def image(self, index: int) -> np.ndarray:
        return read_image(self.image_paths[index])
