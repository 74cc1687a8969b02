"""Landmarks for images: crop around a face box, run FAN, decode with a codec, map back.

Outputs per image (never rounded): IMAGE.json (0-based pixel-centre coordinates, DESIGN.md),
IMAGE.pts (300-W format, 1-based as the .pts files of 300-W are), IMAGE.overlay.png.
"""
from __future__ import annotations

import json
import os

import cv2
import numpy as np
import torch

from . import backend
from .data import apply_affine, crop_matrix, invert_affine, to_tensor, warp
from .train import TrainConfig, decode_to_crop

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


@torch.no_grad()
def predict_image(model, cfg: TrainConfig, image_bgr: np.ndarray, box, decoder: str = "shr",
                  device: str | torch.device = "cpu") -> np.ndarray:
    """[K, 2] float64 landmarks in image pixels for a face in `box` = (x0, y0, x1, y1).

    The crop is the training one: a square of 1.3 x the box's larger side around its centre, so
    the box should be as tight as a landmark extent (a detector's box may need shrinking)."""
    matrix = crop_matrix(np.asarray(box, dtype=np.float64), cfg.crop)
    crop = warp(image_bgr, matrix, cfg.crop)
    heat = model(to_tensor(crop)[None].to(device))[-1].float().cpu()
    crop_pts = decode_to_crop(backend.get_codec(decoder, cfg.sigma, cfg.ops), heat, cfg)[0].numpy()
    return apply_affine(crop_pts, invert_affine(matrix))


def write_pts(path: str, points: np.ndarray) -> None:
    """300-W .pts: `version: 1`, `n_points: K`, braces, one 'x y' per line, 1-based coordinates."""
    with open(path, "w") as f:
        f.write(f"version: 1\nn_points: {len(points)}\n{{\n")
        for x, y in points + 1.0:
            f.write(f"{float(x)!r} {float(y)!r}\n")  # repr: every digit of the double
        f.write("}\n")


def draw_overlay(image_bgr: np.ndarray, points: np.ndarray, box=None) -> np.ndarray:
    out = image_bgr.copy()
    shift = 4  # OpenCV's fixed-point drawing: the marks sit at the subpixel positions
    scale = 1 << shift
    if box is not None:
        p0 = tuple(int(v) for v in np.rint(np.asarray(box[:2]) * scale))
        p1 = tuple(int(v) for v in np.rint(np.asarray(box[2:]) * scale))
        cv2.rectangle(out, p0, p1, (255, 200, 0), 1, cv2.LINE_AA, shift)
    r = max(1, int(round(max(out.shape[:2]) / 200)))
    for x, y in points:
        cv2.circle(out, (int(np.rint(x * scale)), int(np.rint(y * scale))), r * scale, (0, 255, 0), -1, cv2.LINE_AA,
                   shift)
    return out


def predict_paths(model, cfg: TrainConfig, path: str, out_dir: str, *, box=None, decoder: str = "shr",
                  device="cpu") -> list[dict]:
    """Predict for an image or every image of a folder; write JSON, .pts and an overlay for each.
    Without a box, the whole image is the box."""
    if os.path.isdir(path):
        files = sorted(os.path.join(path, f) for f in os.listdir(path) if f.lower().endswith(IMAGE_EXTENSIONS))
    else:
        files = [path]
    if not files:
        raise FileNotFoundError(f"predict: no images ({', '.join(IMAGE_EXTENSIONS)}) in {path}")
    os.makedirs(out_dir, exist_ok=True)
    results = []
    for f in files:
        image = cv2.imread(f, cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"predict: cannot read image {f}")
        b = box if box is not None else (0.0, 0.0, image.shape[1] - 1.0, image.shape[0] - 1.0)
        pts = predict_image(model, cfg, image, b, decoder, device)
        stem = os.path.join(out_dir, os.path.splitext(os.path.basename(f))[0])
        record = dict(image=f, box=[float(v) for v in b], decoder=decoder,
                      convention="0-based, pixel centres at integer coordinates",
                      landmarks=[[float(x), float(y)] for x, y in pts])
        with open(stem + ".json", "w") as fh:
            json.dump(record, fh, indent=1)
        write_pts(stem + ".pts", pts)
        cv2.imwrite(stem + ".overlay.png", draw_overlay(image, pts, b))
        results.append(record)
    return results
