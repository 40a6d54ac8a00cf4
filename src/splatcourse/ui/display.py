"""How every notebook widget shows itself (PNG pictures, titled boxes, the one display hook),
used by lessons 1-5 through the widgets built on it, never imported by a lesson directly:
lessons 1-2 `widgets2d`, 3-4 `widgets3d`, 5 `viewer`.

Keeping the encoding and the hook in one place means every widget draws its pictures the same
way (whole-factor enlargement, so each model pixel stays a crisp square) and appears the same
way when it is the last thing in a cell.
"""

from __future__ import annotations

import io
from typing import Any

import ipywidgets as widgets
import numpy as np
import torch
from PIL import Image as PILImage

Tensor = torch.Tensor

__all__ = ["NotebookWidget", "encode_png", "image_to_png", "titled", "to_pil", "whole_zoom"]


def whole_zoom(pixels: int, display_pixels: int) -> int:
    """The whole enlargement factor (at least 1) that shows `pixels` closest to
    `display_pixels` screen pixels: a whole factor, so no pixel is smeared over its neighbour."""
    return max(1, round(display_pixels / pixels))


def _as_uint8(image: Tensor | np.ndarray) -> np.ndarray:
    """[H, W] grey or [H, W, 1 | 3] colour -> uint8 [H, W] or [H, W, 3].

    Floats are taken as [0, 1] (values outside are clipped, so an unclipped render can be
    shown as it is); uint8 arrays are already pixel values and pass through.
    """
    if isinstance(image, torch.Tensor):
        array = image.detach().float().cpu().numpy()
    elif isinstance(image, np.ndarray):
        array = image
    else:
        raise TypeError(
            "image_to_png wants a torch.Tensor, numpy array or PIL image, "
            f"got {type(image).__name__}"
        )
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3)):
        raise ValueError(f"image_to_png wants [H, W] or [H, W, 3], got {tuple(array.shape)}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]  # [H, W]
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    return (np.clip(array, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def to_pil(image: Tensor | np.ndarray | PILImage.Image, zoom: int = 1) -> PILImage.Image:
    """A Pillow image of `image` enlarged `zoom` times (nearest neighbour), ready to draw on.

    image: a [H, W] or [H, W, 3] tensor or array (floats in [0, 1] or uint8), or a Pillow
    image (returned as it is when zoom is 1).
    """
    if zoom < 1 or zoom != int(zoom):
        raise ValueError(f"image_to_png: zoom must be a whole number >= 1, got {zoom!r}")
    zoom = int(zoom)
    pil = image if isinstance(image, PILImage.Image) else PILImage.fromarray(_as_uint8(image))
    if zoom == 1:
        return pil
    return pil.resize((pil.width * zoom, pil.height * zoom), PILImage.Resampling.NEAREST)


def encode_png(pil: PILImage.Image) -> bytes:
    """PNG bytes of a Pillow image, compressed lightly: speed over size, they never leave RAM."""
    buffer = io.BytesIO()
    pil.save(buffer, format="png", compress_level=1)
    return buffer.getvalue()


def image_to_png(image: Tensor | np.ndarray | PILImage.Image, zoom: int = 1) -> bytes:
    """PNG bytes of a [H, W] or [H, W, 3] image in [0, 1] (values outside are clipped), a
    uint8 array or a Pillow image, enlarged `zoom` times: what a `widgets.Image` shows."""
    return encode_png(to_pil(image, zoom))


def titled(title: str, *children: widgets.Widget) -> widgets.VBox:
    """A column with a bold title above its children (one panel of a widget)."""
    return widgets.VBox([widgets.HTML(f"<b>{title}</b>"), *children])


class NotebookWidget:
    """Base of every course widget: it shows its ipywidgets view, `widget`, when displayed.

    Subclasses build `self.widget` in `__init__`. The hook is the one plain ipywidgets use, so
    `explorer` last in a cell, `display(explorer)` and `explorer.widget` all show the same view.
    """

    widget: widgets.Widget

    def _repr_mimebundle_(self, **kwargs: Any) -> dict | None:
        return self.widget._repr_mimebundle_(**kwargs)
