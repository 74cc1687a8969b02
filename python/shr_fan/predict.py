"""Landmarks for faces in images: crop around each face box, run FAN, decode, map back.

    from shr_fan.predict import Predictor

    predictor = Predictor("runs/train/checkpoint.pt")              # device="cpu", decoder="shr", ops="compiled"
    points, scores = predictor.landmarks("photo.jpg", [[80, 60, 200, 210], [300, 40, 420, 190]])
    # points float64 [2, K, 2] in image pixels (0-based, pixel centres at integers), scores [2, K]

A box is (x0, y0, x1, y1) in image pixels, as tight as the face's landmark extent (the crop is a
square of 1.3 x its larger side around its centre, as in training). shr-fan has no face detector:
every face needs its box (README, "Prediction": why none is bundled).

Files (`predict_files`, `shr-fan predict`), never rounded: IMAGE.json (every face's box,
landmarks and scores; 0-based pixel-centre coordinates, docs/coordinates.md), IMAGE.pts (300-W
format, 1-based as the .pts files of 300-W are; IMAGE_face<i>.pts when the image has several
faces) and IMAGE.overlay.png.
"""
from __future__ import annotations

import json
import os
from dataclasses import replace

import cv2
import numpy as np
import torch

from shr_ops import codecs

from . import backend, geometry
from .checkpoint import load_model
from .config import check_device
from .data import apply_affine, crop_matrix, invert_affine, to_tensor, warp
from .errors import UserError
from .images import is_image_file, read_image

CONVENTION = "0-based, pixel centres at integer coordinates (docs/coordinates.md)"


def _fmt(box) -> str:
    return "[" + ", ".join(f"{float(v):g}" for v in box) + "]"


def check_box(box, width: int, height: int, where: str = "box") -> np.ndarray:
    """The box as float64 [4] if it is a face box of a width x height image: four finite
    numbers x0 y0 x1 y1 with x1 > x0 and y1 > y0, its centre inside the image. UserError naming
    `where` otherwise."""
    b = np.asarray(box, dtype=np.float64).reshape(-1)
    if b.shape != (4,):
        raise UserError(f"{where} {_fmt(b)}: expected four numbers X0 Y0 X1 Y1")
    if not np.isfinite(b).all():
        raise UserError(f"{where} {_fmt(b)}: expected finite coordinates")
    x0, y0, x1, y1 = b
    if not (x1 > x0 and y1 > y0):
        raise UserError(f"{where} {_fmt(b)}: expected X0 Y0 X1 Y1 with X1 > X0 and Y1 > Y0 (the top-left and "
                        "bottom-right corners of the face)")
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if not (-0.5 <= cx <= width - 0.5 and -0.5 <= cy <= height - 0.5):
        raise UserError(f"{where} {_fmt(b)}: its centre ({cx:g}, {cy:g}) lies outside the {width}x{height} image")
    return b


class Predictor:
    """Landmarks of faces in images from a checkpoint of `shr-fan train` (face-alignment's
    `get_landmarks` with the face boxes given).

    decoder: a codec name of shr_ops.codecs whose decoder reads the heatmaps (shr: SHR's local
    soft-argmax; hrnet, dark, udp, ...); ops: the ops backend (shr_fan.backend)."""

    def __init__(self, checkpoint: str, *, device: str = "cpu", decoder: str = "shr", ops: str = "compiled"):
        if decoder not in codecs.CODEC_TABLE:
            raise UserError(f"--decoder {decoder}: expected one of {', '.join(codecs.CODEC_TABLE)}")
        if ops not in backend.OPS_CHOICES:
            raise UserError(f"--ops {ops}: expected one of {', '.join(backend.OPS_CHOICES)}")
        self.device = check_device(device)
        self.model, cfg = load_model(checkpoint, self.device)
        self.config = replace(cfg, ops=ops, device=str(self.device))
        self.decoder = decoder
        self.codec = backend.get_codec(decoder, cfg.sigma, ops)

    @property
    def num_landmarks(self) -> int:
        return self.model.config.num_landmarks

    @torch.no_grad()
    def landmarks(self, image, boxes, *, rgb: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(points float64 [N, K, 2] in image pixels, scores float64 [N, K]) for the N faces in
        `boxes` ([N, 4] or one box [4] of x0 y0 x1 y1, image pixels) of `image`: a path, or a uint8
        array [H, W, 3] in OpenCV's BGR order (`rgb=True` for RGB arrays) or [H, W] grey. A
        landmark's score is the peak value of its heatmap (the targets peak at 1: near 1 is
        confident, near 0 is not)."""
        bgr = self._image(image, rgb)
        height, width = bgr.shape[:2]
        b = np.asarray(boxes, dtype=np.float64)
        if b.ndim == 1:
            b = b[None]
        if b.ndim != 2 or b.shape[1] != 4 or len(b) == 0:
            raise UserError(f"boxes: expected one box [x0, y0, x1, y1] or N of them [N, 4], got shape {b.shape}")
        b = np.stack([check_box(box, width, height, f"box {i}") for i, box in enumerate(b)])
        crop = self.config.crop
        matrices = [crop_matrix(box, crop) for box in b]
        batch = torch.stack([to_tensor(warp(bgr, m, crop)) for m in matrices]).to(self.device)
        heat = self.model(batch)[-1].float()
        crop_pts = geometry.decode_to_crop(self.codec, heat, self.config).cpu().numpy()
        points = np.stack([apply_affine(p, invert_affine(m)) for p, m in zip(crop_pts, matrices)])
        scores = heat.flatten(-2).amax(-1).double().cpu().numpy()
        return points, scores

    @staticmethod
    def _image(image, rgb: bool) -> np.ndarray:
        if isinstance(image, (str, os.PathLike)):
            return read_image(image)
        a = np.asarray(image)
        if a.dtype != np.uint8 or a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
            raise UserError(f"image: expected a path or a uint8 array [H, W, 3] (or [H, W]), got {a.dtype} "
                            f"{list(a.shape)}")
        if a.ndim == 2:
            return cv2.cvtColor(a, cv2.COLOR_GRAY2BGR)
        a = a[..., :3]
        return np.ascontiguousarray(a[..., ::-1] if rgb else a)


def write_pts(path: str, points: np.ndarray) -> None:
    """300-W .pts: `version: 1`, `n_points: K`, braces, one 'x y' per line, 1-based coordinates."""
    with open(path, "w") as f:
        f.write(f"version: 1\nn_points: {len(points)}\n{{\n")
        for x, y in points + 1.0:
            f.write(f"{float(x)!r} {float(y)!r}\n")  # repr: every digit of the double
        f.write("}\n")


def draw_overlay(image_bgr: np.ndarray, faces) -> np.ndarray:
    """The image with each face's box and landmarks drawn at their subpixel positions."""
    out = image_bgr.copy()
    shift = 4  # OpenCV's fixed-point drawing: the marks sit at the subpixel positions
    scale = 1 << shift
    r = max(1, int(round(max(out.shape[:2]) / 200)))
    for box, points in faces:
        p0 = tuple(int(v) for v in np.rint(np.asarray(box[:2]) * scale))
        p1 = tuple(int(v) for v in np.rint(np.asarray(box[2:]) * scale))
        cv2.rectangle(out, p0, p1, (255, 200, 0), 1, cv2.LINE_AA, shift)
        for x, y in points:
            cv2.circle(out, (int(np.rint(x * scale)), int(np.rint(y * scale))), r * scale, (0, 255, 0), -1,
                       cv2.LINE_AA, shift)
    return out


def read_boxes_file(path: str) -> dict[str, list[np.ndarray]]:
    """{image name: [box, ...]} from a boxes file: one face per line, `NAME X0 Y0 X1 Y1` (spaces
    or commas; NAME relative to the folder, or a path; '#' starts a comment). UserError naming
    the file and line for anything else."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"--boxes {path}: cannot be read ({getattr(e, 'strerror', None) or e})") from None
    out: dict[str, list[np.ndarray]] = {}
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].replace(",", " ").strip()
        if not text:
            continue
        parts = text.split()
        try:
            if len(parts) < 5:
                raise ValueError
            box = np.array([float(v) for v in parts[-4:]])
        except ValueError:
            raise UserError(f"{path}:{number}: expected NAME X0 Y0 X1 Y1, got {line.strip()!r}") from None
        out.setdefault(" ".join(parts[:-4]), []).append(box)
    if not out:
        raise UserError(f"--boxes {path}: no boxes in the file (expected lines NAME X0 Y0 X1 Y1)")
    return out


def _output_stems(files: list[str], out_dir: str) -> dict[str, str]:
    """An output stem per image: its name without extension, or with it where two images share
    a stem (a.jpg and a.png)."""
    stems = [os.path.splitext(os.path.basename(f))[0] for f in files]
    return {f: os.path.join(out_dir, os.path.basename(f) if stems.count(s) > 1 else s) for f, s in zip(files, stems)}


def predict_files(predictor: Predictor, jobs: list[tuple[str, np.ndarray | None]], out_dir: str) -> list[dict]:
    """Predict for each (image path, boxes [N, 4], or None for the whole image as the one box)
    and write IMAGE.json, .pts and .overlay.png into out_dir. Returns the JSON records."""
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise UserError(f"--out {out_dir}: cannot create the folder ({e.strerror or e})") from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise UserError(f"--out {out_dir}: the folder is not writable")
    stems = _output_stems([f for f, _ in jobs], out_dir)
    records = []
    for path, boxes in jobs:
        image = read_image(path)
        if boxes is None:
            boxes = np.array([[0.0, 0.0, image.shape[1] - 1.0, image.shape[0] - 1.0]])
        points, scores = predictor.landmarks(image, boxes)
        stem = stems[path]
        faces = [dict(box=[float(v) for v in box], landmarks=[[float(x), float(y)] for x, y in pts],
                      scores=[float(s) for s in sc]) for box, pts, sc in zip(np.asarray(boxes), points, scores)]
        record = dict(image=path, decoder=predictor.decoder, ops=predictor.config.ops, convention=CONVENTION,
                      faces=faces)
        with open(stem + ".json", "w") as fh:
            json.dump(record, fh, indent=1)
        for i, pts in enumerate(points):
            write_pts(stem + (".pts" if len(points) == 1 else f"_face{i}.pts"), pts)
        cv2.imwrite(stem + ".overlay.png", draw_overlay(image, zip(np.asarray(boxes), points)))
        records.append(record)
    return records


def images_in(folder: str) -> list[str]:
    """The image files of a folder (shr_fan.images.is_image_file), sorted by name."""
    return sorted(p for p in (os.path.join(folder, f) for f in os.listdir(folder)) if is_image_file(p))


def plan(path: str, *, box=None, boxes_file: str | None = None, whole_image: bool = False
         ) -> list[tuple[str, np.ndarray | None]]:
    """(image, boxes) for every image `path` names (a file, or a folder's images), from --box
    (one image: one or more boxes), --boxes FILE or --whole-image; UserError for an image with no
    box, a box file entry with no image, or a box that does not fit its image."""
    if not os.path.exists(path):
        raise UserError(f"{path}: no such image file or folder")
    given = [name for name, v in (("--box", box), ("--boxes", boxes_file), ("--whole-image", whole_image)) if v]
    if len(given) > 1:
        raise UserError(f"{' and '.join(given)}: give one way of saying where the faces are")
    folder = os.path.isdir(path)
    files = images_in(path) if folder else [path]
    if not files:
        raise UserError(f"{path}: the folder holds no image files")
    if not given:
        raise UserError(f"{path}: no face box given; expected --box X0 Y0 X1 Y1 (the face's extent in pixels; "
                        "repeat it for several faces), --boxes FILE (NAME X0 Y0 X1 Y1 per line) or --whole-image "
                        "(the image is a face crop). shr-fan has no face detector")
    if whole_image:
        for f in files:
            read_image(f)  # every image is checked before any output is written
        return [(f, None) for f in files]
    if box is not None:
        if folder:
            raise UserError(f"--box applies to a single image, and {path} is a folder; give --boxes FILE (one line "
                            "per face: NAME X0 Y0 X1 Y1)")
        image = read_image(path)
        return [(path, np.stack([check_box(b, image.shape[1], image.shape[0], "--box") for b in box]))]
    table = read_boxes_file(boxes_file)
    by_name = {}
    for f in files:
        rel = os.path.relpath(f, path) if folder else os.path.basename(f)
        by_name[rel] = f
    keys = {}
    for name in table:
        target = by_name.get(name) or by_name.get(os.path.basename(name)) or (name if not folder and os.path.abspath(
            name) == os.path.abspath(path) else None)
        if target is None:
            raise UserError(f"--boxes {boxes_file}: no image {name!r} in {path}")
        keys.setdefault(target, []).extend(table[name])
    missing = [os.path.basename(f) for f in files if f not in keys]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise UserError(f"--boxes {boxes_file}: no box for {', '.join(missing[:5])}{more} in {path}; every image "
                        "needs its face boxes (shr-fan has no face detector)")
    jobs = []
    for f in files:
        image = read_image(f)
        jobs.append((f, np.stack([check_box(b, image.shape[1], image.shape[0], f"--boxes {boxes_file}: "
                                            f"{os.path.basename(f)}") for b in keys[f]])))
    return jobs


__all__ = ["Predictor", "check_box", "predict_files", "plan", "read_boxes_file", "images_in", "write_pts",
           "draw_overlay"]
