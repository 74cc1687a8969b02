"""What every benchmark loader shares: the annotated-face base class, format errors that name the
file and line, the missing-image report, and image reading.
"""
from __future__ import annotations

import os

import numpy as np

from ..data import FaceCrops
from ..errors import UserError
from ..images import ImageError
from ..images import read_image as _read_image

IMAGE_SUFFIXES = (".jpg", ".png", ".jpeg", ".JPG", ".PNG", ".JPEG")


class FormatError(UserError):
    """An annotation file that does not hold what its format says: names the file, the line
    (when the format has lines) and what was expected. (One argument alone is the whole message:
    that is how a DataLoader worker re-raises it.)"""

    def __init__(self, path: str, what: str | None = None, line: int | None = None):
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(where if what is None else f"{where}: {what}")
        self.path, self.line = str(path), line


class MissingImagesError(FileNotFoundError, UserError):
    """Annotated faces whose image is not on disk (the whole list is in `.missing`; the message
    names the first ten)."""

    def __init__(self, dataset: str, missing: list[str] | None = None):
        if missing is None:  # re-raised from a DataLoader worker: the message alone
            super().__init__(dataset)
            self.missing = []
            return
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        super().__init__(f"{dataset}: {len(missing)} annotated image(s) not found: {', '.join(missing[:10])}{more}")
        self.missing = list(missing)


def check_images(dataset: str, paths: list[str]) -> None:
    """Raise MissingImagesError listing every path of `paths` that is not a file."""
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise MissingImagesError(dataset, missing)


def read_image(path: str) -> np.ndarray:
    """uint8 BGR [H, W, 3] (grey images are expanded to three channels); a truncated, corrupt or
    unreadable file raises FormatError naming it (shr_fan.images.read_image)."""
    try:
        return _read_image(path)
    except ImageError as e:
        raise FormatError(e.path, e.what) from None


def parse_float(text: str, path: str, line: int, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise FormatError(path, f"expected a number for {what}, got {text!r}", line) from None


def check_split(dataset: str, split: str, splits) -> None:
    if split not in splits:
        raise UserError(f"{dataset}: unknown split {split!r}; expected one of {sorted(splits)}")


class AnnotatedFaces(FaceCrops):
    """A finite set of annotated faces held as arrays: `points` float64 [N, K, 2] (0-based image
    pixels, pixel centres at integers; NaN where a format marks a landmark missing), `visible`
    bool [N, K] (the format's occlusion/visibility flags; all True when it has none),
    `boxes` float64 [N, 4] (the face box the benchmark defines, [x0, y0, x1, y1]) and `crop_boxes`
    (the box each crop is cut around). Subclasses fill these and say how to get image i.

    Items are crops (FaceCrops) whose augmentation seed is the face index (test sets have no
    augmentation; training wraps the set in data.EpochCycle, which reseeds every epoch).
    """

    name = "faces"

    def __init__(self, *, crop: int = 256, augment=None):
        super().__init__(crop=crop, augment=augment)

    def __len__(self) -> int:
        return len(self.points)

    def image(self, index: int) -> np.ndarray:
        raise NotImplementedError

    def face(self, index: int):
        return self.image(index), self.points[index], self.crop_boxes[index], int(index)

    def visibility(self, index: int) -> np.ndarray:
        return self.visible[index]

    def annotation_box(self, index: int) -> np.ndarray:
        return self.boxes[index]
