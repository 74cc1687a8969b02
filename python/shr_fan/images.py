"""Reading images: every format OpenCV reads, truncated and corrupt files refused with their name.

OpenCV decodes a truncated JPEG without an error: libjpeg fills the missing rows with grey and
only prints a warning, so `cv2.imread` returns a partly grey picture (a 300-byte stub of a JPEG
still gives "landmarks"). Before decoding, `read_image` therefore walks the file's structure for
the two formats whose decoders are lenient: JPEG (every marker segment, the entropy-coded data
up to its end-of-image marker; bytes after it are allowed, as cameras append data) and PNG
(every chunk with its CRC, up to IEND). The other decoders OpenCV ships (BMP, PNM/PPM/PGM/PBM,
PFM, TIFF, WebP, AVIF, JPEG 2000, HDR, Sun raster, GIF) refuse a truncated file themselves;
their complaint is silenced and turned into one error naming the file.
"""
from __future__ import annotations

import os
import zlib

import cv2
import numpy as np

from .errors import UserError

# Extensions of the formats this OpenCV build decodes (cv2.getBuildInformation(), "Media I/O").
IMAGE_EXTENSIONS = (".bmp", ".dib", ".jpg", ".jpeg", ".jpe", ".jp2", ".png", ".webp", ".avif", ".pbm", ".pgm", ".ppm",
                    ".pxm", ".pnm", ".pfm", ".sr", ".ras", ".tif", ".tiff", ".hdr", ".pic", ".gif")

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class ImageError(UserError):
    """An image file that cannot be used: missing, unreadable, truncated or corrupt. The message is
    'PATH: WHAT' (one argument alone is the whole message, as a DataLoader worker re-raises it)."""

    def __init__(self, path: str, what: str | None = None):
        super().__init__(path if what is None else f"{path}: {what}")
        self.path, self.what = path, what


def _jpeg_problem(data: bytes) -> str | None:
    """None if `data` is a structurally complete JPEG, else what is wrong with it."""
    n = len(data)
    truncated = "truncated JPEG (the file ends before its end-of-image marker)"
    if data[:2] != b"\xff\xd8":
        return "not a JPEG (no start-of-image marker)"
    pos = 2
    while True:
        if pos >= n:
            return truncated
        if data[pos] != 0xFF:
            return f"corrupt JPEG (no marker where one belongs, byte {pos})"
        while pos < n and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= n:
            return truncated
        marker = data[pos]
        pos += 1
        if marker == 0xD9:  # end of image
            return None
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # standalone markers
            continue
        if marker == 0x00:
            return f"corrupt JPEG (a stuffed byte outside the entropy-coded data, byte {pos - 1})"
        if pos + 2 > n:
            return truncated
        length = (data[pos] << 8) | data[pos + 1]
        if length < 2:
            return f"corrupt JPEG (segment length {length}, byte {pos})"
        pos += length
        if pos > n:
            return truncated
        if marker == 0xDA:  # start of scan: entropy-coded data up to the next marker
            while True:
                j = data.find(b"\xff", pos)
                if j < 0 or j + 1 >= n:
                    return truncated
                following = data[j + 1]
                if following == 0x00 or 0xD0 <= following <= 0xD7:  # stuffed 0xFF, restart marker
                    pos = j + 2
                elif following == 0xFF:  # fill byte before a marker
                    pos = j + 1
                else:
                    pos = j
                    break


def _png_problem(data: bytes) -> str | None:
    """None if `data` is a complete PNG whose chunks all pass their CRC, else what is wrong."""
    n, pos = len(data), len(_PNG_SIGNATURE)
    truncated = "truncated PNG (the file ends before its IEND chunk)"
    while True:
        if pos + 12 > n:
            return truncated
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        end = pos + 12 + length
        if end > n:
            return truncated
        if zlib.crc32(data[pos + 4:end - 4]) != int.from_bytes(data[end - 4:end], "big"):
            return f"corrupt PNG (chunk {kind.decode('latin-1')!r} at byte {pos} fails its CRC)"
        if kind == b"IEND":
            return None
        pos = end


def structure_problem(data: bytes) -> str | None:
    """What makes `data` (a file's bytes) an incomplete or corrupt JPEG or PNG; None if it is not
    one of those or is a complete one."""
    if data[:2] == b"\xff\xd8":
        return _jpeg_problem(data)
    if data[:8] == _PNG_SIGNATURE:
        return _png_problem(data)
    return None


def decode_image(data: bytes, name: str) -> np.ndarray:
    """uint8 BGR [H, W, 3] of an encoded image (grey images expanded, alpha dropped); ImageError
    naming `name` when it is truncated, corrupt or not an image."""
    problem = structure_problem(data)
    if problem is not None:
        raise ImageError(name, f"not a readable image: {problem}")
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        image = None
    finally:
        cv2.utils.logging.setLogLevel(level)
    if image is None or image.size == 0:
        raise ImageError(name, f"not a readable image: OpenCV cannot decode it (not an image, or a truncated or "
                         "corrupt one)")
    return image


def read_image(path: str) -> np.ndarray:
    """uint8 BGR [H, W, 3] of the image file `path` (any format OpenCV reads); ImageError naming
    the file when it is missing, unreadable, truncated, corrupt or not an image."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ImageError(path, "no such image file")
    if os.path.isdir(path):
        raise ImageError(path, "is a folder, not an image file")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ImageError(path, f"cannot be read ({e.strerror or e})") from None
    if not data:
        raise ImageError(path, "not a readable image: the file is empty")
    return decode_image(data, path)


def is_image_file(path: str) -> bool:
    """Whether a folder entry is to be read as an image: an image extension, or content OpenCV
    recognises as an image (files such as notes or annotation lists are left out)."""
    if not os.path.isfile(path):
        return False
    if path.lower().endswith(IMAGE_EXTENSIONS):
        return True
    try:
        return bool(cv2.haveImageReader(path))
    except cv2.error:
        return False
