"""WFLW (Wider Facial Landmarks in the Wild), 98 points, read from the distributed annotation
lists:

    ROOT/WFLW_annotations/list_98pt_rect_attr_train_test/list_98pt_rect_attr_train.txt  (7500 faces)
    ROOT/WFLW_annotations/list_98pt_rect_attr_train_test/list_98pt_rect_attr_test.txt   (2500 faces)
    ROOT/WFLW_images/<image path of the line>

One face a line, 207 space-separated fields: 196 coordinates (x0 y0 x1 y1 ... x97 y97), the
detection rectangle x_min y_min x_max y_max, six 0/1 attribute flags (pose, expression,
illumination, make-up, occlusion, blur) and the image path relative to WFLW_images.

Splits: train, test, and the test subsets by attribute flag: largepose, expression,
illumination, makeup, occlusion, blur (326, 314, 698, 206, 736, 773 faces).

Coordinates are taken as 0-based (pixel centres at integers) unchanged: they are continuous
floats produced by the LAB authors' Python tooling, and the community's loaders (HRNet, mmpose,
ADNet, STAR) use them as they are. (A constant shift would change no NME.) The crop box is the
landmarks' extent, as for 300-W (the rectangle is a detector's, exposed as `rects`); NME is
normalised by the outer eye corners (0-based 60, 72).
"""
from __future__ import annotations

import os

import numpy as np

from ..data import box_from_landmarks
from .common import AnnotatedFaces, FormatError, check_images, check_split, parse_float, read_image

NUM_LANDMARKS = 98
ATTRIBUTES = ("largepose", "expression", "illumination", "makeup", "occlusion", "blur")  # order of the flags
FIELDS = 2 * NUM_LANDMARKS + 4 + len(ATTRIBUTES) + 1
LIST_DIR = os.path.join("WFLW_annotations", "list_98pt_rect_attr_train_test")
LIST_FILES = {"train": "list_98pt_rect_attr_train.txt", "test": "list_98pt_rect_attr_test.txt"}


def _flip_permutation() -> np.ndarray:
    """The 98-point mirror map (index k of a mirrored face is point perm[k] of the original)."""
    pairs = [(i, 32 - i) for i in range(16)]  # face contour 0..32, 16 in the middle
    pairs += [(33 + i, 46 - i) for i in range(5)]  # upper eyebrow edges 33..37 <-> 46..42
    pairs += [(38 + i, 50 - i) for i in range(4)]  # lower eyebrow edges 38..41 <-> 50..47
    pairs += [(55, 59), (56, 58)]  # nostrils (51..54 nose ridge, 57 middle)
    pairs += [(60 + i, 72 - i) for i in range(5)]  # eyes: outer corner, upper lid, inner corner
    pairs += [(65 + i, 75 - i) for i in range(3)]  # lower lids 65..67 <-> 75..73
    pairs += [(76, 82), (77, 81), (78, 80), (83, 87), (84, 86)]  # outer lip (79, 85 middle)
    pairs += [(88, 92), (89, 91), (93, 95)]  # inner lip (90, 94 middle)
    pairs += [(96, 97)]  # pupils
    perm = np.arange(NUM_LANDMARKS)
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return perm


FLIP_PERMUTATION = _flip_permutation()


def read_list(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(points float64 [N, 98, 2], rects float64 [N, 4], attributes bool [N, 6], image paths) of a
    WFLW annotation list. Raises FormatError naming the file, the line and what was expected."""
    points, rects, attrs, names = [], [], [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        for no, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != FIELDS:
                raise FormatError(path, f"expected {FIELDS} fields (196 coordinates, 4 box values x_min y_min "
                                  f"x_max y_max, 6 attribute flags, image path), got {len(fields)}", no)
            values = [parse_float(v, path, no, f"field {i + 1}") for i, v in enumerate(fields[:200])]
            flags = fields[200:206]
            if any(v not in ("0", "1") for v in flags):
                raise FormatError(path, f"expected the 6 attribute flags (fields 201-206) to be 0 or 1, got "
                                  f"{' '.join(flags)}", no)
            pts = np.array(values[:196]).reshape(NUM_LANDMARKS, 2)
            if not np.isfinite(pts).all():
                raise FormatError(path, "expected finite coordinates (WFLW annotates every point)", no)
            points.append(pts)
            rects.append(values[196:200])
            attrs.append([v == "1" for v in flags])
            names.append(fields[206])
    if not points:
        raise FormatError(path, "expected one face a line, found no faces")
    return np.stack(points), np.array(rects, dtype=np.float64), np.array(attrs, dtype=bool), names


class WFLW(AnnotatedFaces):
    """WFLW faces of one split (see the module docstring for layout, splits and conventions)."""

    name = "wflw"
    num_landmarks = NUM_LANDMARKS
    flip_permutation = FLIP_PERMUTATION
    splits = ("train", "test") + ATTRIBUTES

    def __init__(self, root: str, split: str = "train", *, crop: int = 256, augment=None):
        super().__init__(crop=crop, augment=augment)
        check_split(self.name, split, self.splits)
        self.root, self.split = root, split
        path = os.path.join(root, LIST_DIR, LIST_FILES["train" if split == "train" else "test"])
        if not os.path.isfile(path):
            raise FileNotFoundError(f"wflw: annotation list {path} not found")
        points, rects, attrs, names = read_list(path)
        if split in ATTRIBUTES:
            keep = attrs[:, ATTRIBUTES.index(split)]
            points, rects, attrs, names = points[keep], rects[keep], attrs[keep], [n for n, k in zip(names, keep) if k]
        self.points, self.rects, self.attributes = points, rects, attrs
        self.image_paths = [os.path.join(root, "WFLW_images", n) for n in names]
        check_images(f"wflw {split}", self.image_paths)
        self.visible = np.ones(points.shape[:2], dtype=bool)
        self.boxes = np.stack([box_from_landmarks(p) for p in points]) if len(points) else np.zeros((0, 4))
        self.crop_boxes = self.boxes

    def image(self, index: int) -> np.ndarray:
        return read_image(self.image_paths[index])
