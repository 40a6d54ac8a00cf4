"""Reading photos and masks into tensors at a chosen resolution.

Resampling happens once, with Pillow (LANCZOS for photos, box averaging for masks), so that
the soft coverage of the mask at the new resolution can blend the photo into the constant
background without a jagged outline.

Used by: the capture loaders (lessons 5-7, exercise 4).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image


def target_size(width: int, height: int, new_width: int | None) -> tuple[int, int]:
    """(w, h) after scaling to `new_width`, keeping the aspect ratio (height rounded down)."""
    if new_width is None or new_width == width:
        return width, height
    if new_width < 1:
        raise ValueError(f"width must be positive, got {new_width}")
    return new_width, max(1, int(height * new_width / width))


def read_rgba(
    path: Path, size: tuple[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """(rgb [H,W,3], alpha [H,W] or None) as float32 in [0, 1], resized to size=(w, h)."""
    try:
        with Image.open(path) as im:
            im.load()
            has_alpha = im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info)
            im = im.convert("RGBA" if has_alpha else "RGB")
            if size is not None and im.size != tuple(size):
                im = im.resize(size, Image.Resampling.LANCZOS)
            a = np.asarray(im, dtype=np.float32) / 255.0
    except FileNotFoundError:
        raise FileNotFoundError(f"image file not found: {path}") from None
    except OSError as e:
        raise OSError(f"cannot read image {path}: {e}") from e
    if has_alpha:
        return np.ascontiguousarray(a[..., :3]), np.ascontiguousarray(a[..., 3])
    return a, None


def read_mask(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """Object coverage as float32 [H, W] in [0, 1] (white = object), box-averaged to size."""
    try:
        with Image.open(path) as im:
            a = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
    except FileNotFoundError:
        raise FileNotFoundError(f"mask file not found: {path}") from None
    except OSError as e:
        raise OSError(f"cannot read mask {path}: {e}") from e
    a = (a >= 0.5).astype(np.float32)  # masks are binary; JPEG masks carry ringing
    if size is not None and (a.shape[1], a.shape[0]) != tuple(size):
        a = np.asarray(Image.fromarray(a).resize(size, Image.Resampling.BOX))
    return np.clip(a, 0.0, 1.0)


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) without decoding the pixels."""
    try:
        with Image.open(path) as im:
            return im.size
    except FileNotFoundError:
        raise FileNotFoundError(f"image file not found: {path}") from None


def composite(
    rgb: np.ndarray, cover: np.ndarray, background: tuple[float, float, float]
) -> np.ndarray:
    """Photo where the object is, constant background elsewhere (soft at the edge)."""
    bg = np.asarray(background, dtype=np.float32)
    return rgb * cover[..., None] + bg * (1.0 - cover[..., None])


def stack_images(arrays: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(arrays).astype(np.float32))
