"""Image reading with clear errors, and the few deterministic transforms the reference pipeline uses.

All images leave this module as 8-bit RGB ``PIL.Image``s.  Bad files raise :class:`BadImageError` naming the file
and the problem (missing, zero bytes, truncated, not an image).  16-bit images are scaled to 8 bits (not clipped),
palette/alpha/CMYK/grey images are converted to RGB.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import BadImageError

_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def load_rgb(path: str | Path) -> Image.Image:
    """Open ``path`` fully (so truncation is detected now, not in a worker later) and return RGB uint8."""
    path = Path(path)
    if not path.is_file():
        raise BadImageError(path, "file not found")
    if path.stat().st_size == 0:
        raise BadImageError(path, "zero-byte file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.load()
                return to_rgb(im)
    except UnidentifiedImageError as exc:
        raise BadImageError(path, "not a readable image format") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadImageError(path, f"unreadable or truncated image ({exc})") from exc
    except Image.DecompressionBombWarning as exc:
        raise BadImageError(path, f"decompression-bomb sized image ({exc})") from exc


def to_rgb(im: Image.Image) -> Image.Image:
    """8-bit RGB copy of ``im``; 16/32-bit integer images are rescaled by their bit depth, not clipped."""
    if im.mode in _SIXTEEN_BIT_MODES:
        arr = np.asarray(im).astype(np.float64)
        scale = 65535.0 if im.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr8 = np.clip(np.round(arr / scale * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(arr8, mode="L").convert("RGB")
    if im.mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        arr8 = np.clip(np.round(arr), 0, 255).astype(np.uint8)
        return Image.fromarray(arr8, mode="L").convert("RGB")
    if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, im).convert("RGB")
    return im.convert("RGB")


def bbox_crop(im: Image.Image, bbox: tuple[float, float, float, float]) -> Image.Image:
    """AttnGAN's CUB crop: square of side 1.5x the longer box side around the box centre, clipped to the image.

    r = floor(0.75 * max(w, h)); crop [cx - r, cy - r, cx + r, cy + r] clipped (non-square at borders).
    """
    x, y, w, h = bbox
    width, height = im.size
    r = int(np.maximum(w, h) * 0.75)
    cx, cy = int((2 * x + w) / 2), int((2 * y + h) / 2)
    y1, y2 = max(0, cy - r), min(height, cy + r)
    x1, x2 = max(0, cx - r), min(width, cx + r)
    return im.crop((x1, y1, x2, y2))


def resize_shorter(im: Image.Image, size: int) -> Image.Image:
    """Resize so the shorter side is ``size`` (torchvision ``Resize(int)`` semantics, bilinear, antialiased)."""
    w, h = im.size
    if min(w, h) == size:
        return im
    if w <= h:
        nw, nh = size, int(size * h / w)
    else:
        nw, nh = int(size * w / h), size
    return im.resize((nw, nh), Image.BILINEAR)


def center_crop(im: Image.Image, size: int) -> Image.Image:
    w, h = im.size
    left, top = int(round((w - size) / 2.0)), int(round((h - size) / 2.0))
    return im.crop((left, top, left + size, top + size))


def to_tensor(im: Image.Image):
    """uint8 RGB PIL image -> float tensor 3 x H x W in [-1, 1] (ToTensor + Normalize(0.5, 0.5))."""
    import torch

    arr = np.asarray(im, dtype=np.uint8)
    t = torch.from_numpy(arr.copy()).permute(2, 0, 1).float()
    return t.div_(127.5).sub_(1.0)
