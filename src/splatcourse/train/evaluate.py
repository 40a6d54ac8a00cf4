"""Held-out evaluation: SSIM and PSNR of renders against photos the fit never saw.

Fair comparison with a masked capture: outside the object mask both the photo and the
render are set to the same constant background colour, so only the object is judged (a
render cannot win or lose points on a background the photos do not share). Views are
rendered one at a time, so memory does not grow with the number of views.

Used by: lessons 5-6 and exercise 4 (held-out scores), the capture-fit bench.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..capture import Capture
from .loss import psnr, ssim
from .model import Gaussians, render

__all__ = ["EvalResult", "evaluate", "render_views"]


@dataclass
class EvalResult:
    """Mean and per-view scores, plus the images compared (for side-by-side figures)."""

    ssim: float
    psnr: float
    view_ids: list[int]
    ssim_per_view: list[float] = field(default_factory=list)
    psnr_per_view: list[float] = field(default_factory=list)
    renders: Tensor | None = None  # [V, H, W, 3]
    photos: Tensor | None = None  # [V, H, W, 3]


@torch.no_grad()
def render_views(params: Gaussians | dict[str, Tensor], capture: Capture,
                 idx: list[int] | None = None, sh_degree: int | None = None,
                 backend: str | None = None) -> Tensor:
    """[V, H, W, 3] renders of views ``idx`` (default: all) over the capture's background."""
    idx = list(range(len(capture))) if idx is None else list(idx)
    bg = capture.background_tensor()
    out = []
    for i in idx:
        rgb, _, _ = render(params, capture.viewmats[i:i + 1], capture.Ks[i:i + 1],
                           capture.width, capture.height, sh_degree, bg, backend)
        out.append(rgb[0].clamp(0, 1))
    return torch.stack(out) if out else torch.zeros(0, capture.height, capture.width, 3)


def _same_background(img: Tensor, mask: Tensor | None, bg: Tensor) -> Tensor:
    if mask is None:
        return img
    return torch.where(mask[..., None], img, bg.to(img.dtype))


@torch.no_grad()
def evaluate(params: Gaussians | dict[str, Tensor], capture: Capture,
             idx: list[int] | None = None, sh_degree: int | None = None,
             backend: str | None = None, keep_images: bool = True) -> EvalResult:
    """SSIM/PSNR on views ``idx`` (default: the held-out ``capture.test_idx``)."""
    idx = capture.test_idx if idx is None else list(idx)
    if not idx:
        raise ValueError(f"evaluate: capture {capture.name!r} has no views to evaluate")
    bg = capture.background_tensor()
    renders = render_views(params, capture, idx, sh_degree, backend)
    photos = capture.images[idx].float()
    if capture.masks is not None:
        m = capture.masks[idx]
        renders = _same_background(renders, m, bg)
        photos = _same_background(photos, m, bg)
    s = ssim(renders, photos, reduce=False)
    p = psnr(renders, photos, reduce=False)
    return EvalResult(
        ssim=float(s.mean()), psnr=float(p.mean()), view_ids=idx,
        ssim_per_view=[float(v) for v in s], psnr_per_view=[float(v) for v in p],
        renders=renders if keep_images else None, photos=photos if keep_images else None,
    )
