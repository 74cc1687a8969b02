"""Synthetic faces with exact continuous 68-point ground truth (the embedded default data).

Each sample is drawn from a seed alone (deterministic, any worker, any order):
  shape      the 2D iBUG template (face_shape.mean_shape) lifted to 3D with a depth per region,
             with identity variation (per-point jitter, face width/height, eye size) and
             expression (mouth opening, smile, brow raise);
  pose       random yaw / pitch / roll, weak-perspective projection, scale and position;
  rendering  OpenCV anti-aliased primitives at 2x resolution, downsampled by area averaging:
             background gradient and clutter, head with optional hair and ears, sclera, iris and
             lids, brows, nose, lips and open mouth; then directional lighting, optional
             occluders, blur, noise and JPEG artefacts.
Landmarks are the projected continuous points in the output image's pixel-centre convention
(docs/coordinates.md). Drawing rasterises with OpenCV's fixed-point `shift` (1/16 of a 2x pixel): that
quantises only the picture's polygon vertices, never the landmarks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .face_shape import NUM_POINTS, mean_shape

SUPERSAMPLE = 2
SHIFT = 4  # OpenCV fractional bits for subpixel drawing
FLIP_PERMUTATION = np.array(
    list(range(16, -1, -1))  # jaw
    + list(range(26, 16, -1))  # brows
    + [27, 28, 29, 30]  # nose bridge
    + [35, 34, 33, 32, 31]  # nostrils
    + [45, 44, 43, 42, 47, 46]  # eyes: 36..41 <-> 45..42, 47, 46
    + [39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]  # outer lip
    + [64, 63, 62, 61, 60, 67, 66, 65],  # inner lip
    dtype=np.int64,
)

# Depth of each template point (units of face width; positive toward the camera).
_DEPTH = np.concatenate([
    -0.35 * np.cos(np.linspace(-1.35, 1.35, 17)) + 0.05,  # jaw: back at the temples, forward at the chin
    np.full(10, 0.12),  # brows
    np.array([0.12, 0.18, 0.24, 0.3]),  # bridge to tip
    np.array([0.16, 0.2, 0.22, 0.2, 0.16]),  # nostrils
    np.array([0.05, 0.08, 0.08, 0.06, 0.08, 0.08]),  # eyes
    np.array([0.06, 0.08, 0.08, 0.05, 0.08, 0.08]),
    np.full(12, 0.14), np.full(8, 0.13),  # lips
])


@dataclass(frozen=True)
class SynthConfig:
    size: int = 256  # output image side
    max_yaw: float = 45.0
    max_pitch: float = 25.0
    max_roll: float = 30.0
    face_scale: tuple = (0.45, 0.62)  # face width / image side
    occluder_prob: float = 0.3
    jpeg_prob: float = 0.5


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    cy, sy = math.cos(yaw), math.sin(yaw)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cr, sr = math.cos(roll), math.sin(roll)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return rz @ rx @ ry


def random_shape_3d(rng: np.random.Generator) -> np.ndarray:
    """[68, 3] face in template units (x right, y down, z toward the camera) with identity and
    expression variation."""
    p = mean_shape().numpy().copy()
    p[:, 0] *= rng.uniform(0.9, 1.1)
    p[:, 1] *= rng.uniform(0.92, 1.1)
    for eye in (slice(36, 42), slice(42, 48)):
        c = p[eye].mean(0)
        p[eye] = c + (p[eye] - c) * rng.uniform(0.85, 1.2)
    brow = rng.uniform(-0.03, 0.04)
    p[17:27, 1] -= brow
    mouth_open = max(0.0, rng.normal(0.02, 0.05))
    p[[55, 56, 57, 58, 59], 1] += mouth_open
    p[[65, 66, 67], 1] += mouth_open
    p[[56, 57, 58], 1] += 0.5 * mouth_open  # the jaw follows an open mouth a little
    p[[6, 7, 8, 9, 10], 1] += 0.5 * mouth_open
    smile = rng.uniform(-0.02, 0.04)
    p[[48, 54, 60, 64], 1] -= smile
    p += rng.normal(0.0, 0.008, p.shape)
    z = _DEPTH + rng.normal(0.0, 0.01, NUM_POINTS)
    return np.concatenate([p, z[:, None]], axis=1)


def project(shape3d: np.ndarray, yaw: float, pitch: float, roll: float, scale: float,
            centre: np.ndarray) -> np.ndarray:
    """Weak-perspective projection: [68, 2] image points."""
    rotated = (shape3d - np.array([0.0, 0.0, 0.1])) @ _rotation(yaw, pitch, roll).T
    return rotated[:, :2] * scale + centre


class _Canvas:
    """Drawing at SUPERSAMPLE x resolution with subpixel vertex positions."""

    def __init__(self, size: int):
        self.size = size
        self.img = np.zeros((size * SUPERSAMPLE, size * SUPERSAMPLE, 3), np.uint8)

    @staticmethod
    def hr(points: np.ndarray) -> np.ndarray:
        """Output-image coordinates -> fixed-point high-resolution vertices for OpenCV."""
        return np.rint(((np.asarray(points) + 0.5) * SUPERSAMPLE - 0.5) * (1 << SHIFT)).astype(np.int32)

    def poly(self, points, color, closed=True, fill=True, thickness=1.0):
        pts = self.hr(points).reshape(-1, 1, 2)
        if fill:
            cv2.fillPoly(self.img, [pts], color, cv2.LINE_AA, SHIFT)
        else:
            cv2.polylines(self.img, [pts], closed, color, max(1, int(thickness * SUPERSAMPLE)), cv2.LINE_AA, SHIFT)

    def ellipse(self, centre, axes, angle, color, thickness=-1):
        c = tuple(int(v) for v in self.hr(np.asarray(centre, float)))
        ax = tuple(max(1, int(a * SUPERSAMPLE * (1 << SHIFT))) for a in axes)
        cv2.ellipse(self.img, c, ax, float(angle), 0.0, 360.0, color, thickness, cv2.LINE_AA, SHIFT)

    def result(self) -> np.ndarray:
        return cv2.resize(self.img, (self.size, self.size), interpolation=cv2.INTER_AREA)


def _colour(rng, lo, hi) -> tuple:
    return tuple(int(v) for v in rng.uniform(lo, hi, 3))


def _background(canvas: _Canvas, rng: np.random.Generator) -> None:
    n = canvas.img.shape[0]
    a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    t = np.linspace(0, 1, n)[:, None, None]
    grad = a * (1 - t) + b * t
    if rng.random() < 0.5:
        grad = grad.transpose(1, 0, 2)
    canvas.img[:] = np.broadcast_to(grad, canvas.img.shape).astype(np.uint8)
    s = canvas.size
    for _ in range(rng.integers(3, 12)):
        kind = rng.integers(3)
        c = _colour(rng, 0, 255)
        if kind == 0:
            p = rng.uniform(-0.1, 1.1, (4, 2)) * s
            canvas.poly(p, c)
        elif kind == 1:
            canvas.ellipse(rng.uniform(0, s, 2), rng.uniform(4, s / 4, 2), rng.uniform(0, 180), c)
        else:
            canvas.poly(rng.uniform(0, s, (2, 2)), c, closed=False, fill=False, thickness=rng.uniform(1, 4))


def _face(canvas: _Canvas, pts: np.ndarray, rng: np.random.Generator, yaw: float, width_px: float) -> None:
    """Draws the face; self-occlusion is approximated by the draw order (no depth test)."""
    tone = rng.uniform()  # dark to light skin, BGR, with a little tint
    skin = (np.array([45.0, 62.0, 98.0]) * (1 - tone) + np.array([168.0, 190.0, 236.0]) * tone) * rng.uniform(
        0.92, 1.08, 3)
    dark = tuple(int(v) for v in skin * 0.55)
    jaw, brow_l, brow_r = pts[0:17], pts[17:22], pts[22:27]
    eye_l, eye_r = pts[36:42], pts[42:48]
    up = (pts[27] - pts[8])
    up = up / (np.linalg.norm(up) + 1e-9)
    # Head outline: the jaw and a forehead arc above the brows.
    brow_top = np.concatenate([brow_r[::-1], brow_l[::-1]])
    dome = np.sin(np.linspace(0.25, math.pi - 0.25, len(brow_top)))[:, None] ** 0.5
    forehead = brow_top + up * width_px * rng.uniform(0.3, 0.42) * dome
    angle = math.degrees(math.atan2(up[1], up[0])) + 90
    if rng.random() < 0.7:  # hair: an ellipse behind the upper head
        hair_col = _colour(rng, (5, 5, 5), (90, 80, 120))
        c = forehead.mean(0) + up * width_px * rng.uniform(0.0, 0.12)
        canvas.ellipse(c, (width_px * rng.uniform(0.52, 0.65), width_px * rng.uniform(0.35, 0.55)), angle, hair_col)
    for side, sgn in ((jaw[1:4], -1.0), (jaw[13:16], 1.0)):  # ears, hidden when the face turns away
        if sgn * yaw < 0.35:
            c = side.mean(0)
            canvas.ellipse(c, (width_px * 0.07, width_px * 0.13), angle, tuple(int(v) for v in skin * 0.9))
    canvas.poly(np.concatenate([jaw, forehead]), tuple(int(v) for v in skin))
    # Cheek shading from the yaw: the side turning away is darker.
    shade = 0.85 if yaw > 0 else 1.0
    canvas.poly(np.concatenate([jaw[:9], pts[[30, 27]]]), tuple(int(v) for v in skin * shade))
    shade = 0.85 if yaw < 0 else 1.0
    canvas.poly(np.concatenate([jaw[8:], pts[[27, 30]]]), tuple(int(v) for v in skin * shade))
    # Eyes: sclera, iris, lids.
    iris_col = _colour(rng, (10, 10, 10), (120, 110, 90))
    gaze = rng.normal(0, 0.12, 2)
    for eye in (eye_l, eye_r):
        canvas.poly(eye, (235, 235, 235))
        c = eye.mean(0) + gaze * np.linalg.norm(eye[3] - eye[0]) * 0.5
        r = 0.23 * np.linalg.norm(eye[3] - eye[0])
        canvas.ellipse(c, (r, r), 0, iris_col)
        canvas.ellipse(c, (r * 0.45, r * 0.45), 0, (10, 10, 10))
        # re-draw the skin around the eye so the iris stays inside the lids
        outer = eye.mean(0) + (eye - eye.mean(0)) * 1.9
        ring = np.concatenate([outer, outer[:1], eye[:1], eye[::-1]])
        canvas.poly(ring, tuple(int(v) for v in skin))
        canvas.poly(eye, dark, fill=False, thickness=1.2)
    # Brows.
    brow_col = _colour(rng, (10, 10, 10), (80, 70, 60))
    thick = max(1.5, width_px * rng.uniform(0.02, 0.04))
    for brow in (brow_l, brow_r):
        canvas.poly(brow, brow_col, closed=False, fill=False, thickness=thick)
    # Nose: bridge, nostrils.
    canvas.poly(pts[27:31], dark, closed=False, fill=False, thickness=1.0)
    canvas.poly(pts[31:36], dark, closed=False, fill=False, thickness=1.3)
    # Mouth: lips, open mouth.
    lip_col = tuple(int(v) for v in np.clip(skin * np.array([0.6, 0.55, 1.1]), 0, 255))
    canvas.poly(pts[48:60], lip_col)
    inner = pts[60:68]
    if np.linalg.norm(inner[2] - inner[6]) > 0.01 * width_px:
        canvas.poly(inner, (30, 20, 40))
    canvas.poly(pts[60:68], tuple(int(v * 0.7) for v in lip_col), fill=False, thickness=0.8)


def _finish(img: np.ndarray, rng: np.random.Generator, cfg: SynthConfig, pts: np.ndarray) -> np.ndarray:
    s = cfg.size
    out = img.astype(np.float32)
    # Directional lighting and global brightness / contrast.
    d = rng.normal(size=2)
    d /= np.linalg.norm(d) + 1e-9
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) / s - 0.5
    light = 1.0 + rng.uniform(0.0, 0.5) * (xx * d[0] + yy * d[1])
    out = out * light[..., None] * rng.uniform(0.7, 1.2) + rng.uniform(-20, 20)
    out = np.clip(out, 0, 255).astype(np.uint8)
    if rng.random() < cfg.occluder_prob:  # an occluder over part of the face
        canvas = _Canvas(s)
        canvas.img = cv2.resize(out, (s * SUPERSAMPLE, s * SUPERSAMPLE), interpolation=cv2.INTER_LINEAR)
        c = pts[rng.integers(NUM_POINTS)]
        w = np.ptp(pts[:, 0]) * rng.uniform(0.15, 0.4)
        h = np.ptp(pts[:, 1]) * rng.uniform(0.15, 0.4)
        canvas.ellipse(c, (w, h), rng.uniform(0, 180), _colour(rng, 0, 255))
        out = canvas.result()
    if rng.random() < 0.5:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.3, 1.5))
    noise = rng.normal(0, rng.uniform(0, 8), out.shape)
    out = np.clip(out.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    if rng.random() < cfg.jpeg_prob:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 95))])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return out


def render_face(seed: int, cfg: SynthConfig = SynthConfig()) -> tuple[np.ndarray, np.ndarray]:
    """(image uint8 [S, S, 3] BGR, landmarks float64 [68, 2]) for `seed` (deterministic)."""
    rng = np.random.default_rng(seed)
    s = cfg.size
    yaw = math.radians(rng.uniform(-cfg.max_yaw, cfg.max_yaw))
    pitch = math.radians(rng.uniform(-cfg.max_pitch, cfg.max_pitch))
    roll = math.radians(rng.uniform(-cfg.max_roll, cfg.max_roll))
    width_px = rng.uniform(*cfg.face_scale) * s
    centre = np.array([s / 2, s / 2]) + rng.uniform(-0.08, 0.08, 2) * s
    pts = project(random_shape_3d(rng), yaw, pitch, roll, width_px, centre)
    canvas = _Canvas(s)
    _background(canvas, rng)
    _face(canvas, pts, rng, yaw, width_px)
    image = _finish(canvas.result(), rng, cfg, pts)
    return image, pts


def sample_grid(n: int = 16, seed: int = 0, cols: int = 4, cfg: SynthConfig = SynthConfig()) -> np.ndarray:
    """A grid of n rendered faces with their 68 landmarks drawn (green; at subpixel positions)."""
    tiles = []
    for i in range(n):
        img, pts = render_face(seed + i, cfg)
        img = img.copy()
        scale = 1 << SHIFT
        for x, y in pts:
            cv2.circle(img, (int(np.rint(x * scale)), int(np.rint(y * scale))), int(1.5 * scale), (0, 255, 0), -1,
                       cv2.LINE_AA, SHIFT)
        tiles.append(img)
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[r * cols:(r + 1) * cols], axis=1) for r in range(len(tiles) // cols)]
    return np.concatenate(rows, axis=0)
