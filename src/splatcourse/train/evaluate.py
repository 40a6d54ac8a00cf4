"""Held-out evaluation: how renders compare with photos the fit never saw.

Two sets of scores come back (the images are compared by ``train.metrics``):

- the **object scores**, the course's headline figure: SSIM/PSNR on each view's object box
  with render and photo over black and over white, plus the agreement of the render's alpha
  with the mask. Floaters and holes cost points. Without masks they are the full frame
  (``region == "full_frame"``).
- the **full-frame scores** ``ssim``/``psnr``, as the lessons first computed them: outside the
  object mask both images are set to the capture's background, so only the object's pixels
  differ; mostly constant background, and blind to floaters.

Views are rendered one at a time, so memory does not grow with the number of views.

Used by: lessons 5-6 and exercise 4 (held-out scores), the trainer, the capture-fit bench.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..capture import Capture
from .metrics import (
    ObjectScores,
    Region,
    composite_over,
    full_frame_pair,
    masked_full_frame_scores,
    object_scores,
)
from .model import Backend, Gaussians, render

__all__ = ["EvalResult", "empty_render_scores", "evaluate", "render_rgba_views", "render_views"]


@dataclass
class EvalResult:
    """Mean and per-view scores, plus the images compared (for side-by-side figures).

    ``ssim``/``psnr`` are the full-frame scores; ``object`` holds the object scores, also
    reachable as ``ssim_object``, ``psnr_object``, ``alpha_iou`` and ``region``.
    """

    ssim: float
    psnr: float
    view_ids: list[int]
    object: ObjectScores
    ssim_per_view: list[float] = field(default_factory=list)
    psnr_per_view: list[float] = field(default_factory=list)
    renders: Tensor | None = None  # [V, H, W, 3] as the full-frame scores compared them
    photos: Tensor | None = None  # [V, H, W, 3]

    @property
    def ssim_object(self) -> float:
        return self.object.ssim

    @property
    def psnr_object(self) -> float:
        return self.object.psnr

    @property
    def alpha_iou(self) -> float | None:
        return self.object.alpha_iou

    @property
    def region(self) -> Region:
        return self.object.region


@torch.no_grad()
def render_rgba_views(
    params: Gaussians | dict[str, Tensor],
    capture: Capture,
    idx: list[int] | None = None,
    sh_degree: int | None = None,
    backend: Backend = None,
) -> tuple[Tensor, Tensor]:
    """([V, H, W, 3] premultiplied colour, [V, H, W] alpha) of views ``idx`` (default: all):
    renders over black, to be composited over any background."""
    idx = list(range(len(capture))) if idx is None else list(idx)
    H, W = capture.height, capture.width
    empty = capture.images.new_zeros(0, H, W, 3)
    rgbs, alphas = [empty], [empty[..., 0]]
    for i in idx:
        rgb, alpha, _ = render(
            params,
            capture.viewmats[i : i + 1],
            capture.Ks[i : i + 1],
            W,
            H,
            sh_degree,
            None,
            backend,
        )  # no background: over black
        rgbs.append(rgb)  # [1, H, W, 3]
        alphas.append(alpha[..., 0])  # [1, H, W]
    return torch.cat(rgbs), torch.cat(alphas)


@torch.no_grad()
def render_views(
    params: Gaussians | dict[str, Tensor],
    capture: Capture,
    idx: list[int] | None = None,
    sh_degree: int | None = None,
    backend: Backend = None,
) -> Tensor:
    """[V, H, W, 3] renders of views ``idx`` (default: all) over the capture's background."""
    rgb, alpha = render_rgba_views(params, capture, idx, sh_degree, backend)
    return composite_over(rgb, alpha, capture.background_tensor())


@torch.no_grad()
def evaluate(
    params: Gaussians | dict[str, Tensor],
    capture: Capture,
    idx: list[int] | None = None,
    sh_degree: int | None = None,
    backend: Backend = None,
    keep_images: bool = True,
) -> EvalResult:
    """Full-frame and object scores of views ``idx`` (default: the held-out ``test_idx``)."""
    idx = capture.test_idx if idx is None else list(idx)
    if not idx:
        raise ValueError(f"evaluate: capture {capture.name!r} has no views to evaluate")
    bg = capture.background_tensor()
    rgb, alpha = render_rgba_views(params, capture, idx, sh_degree, backend)
    photos = capture.images[idx].float()
    masks = None if capture.masks is None else capture.masks[idx]
    s, p = masked_full_frame_scores(rgb, alpha, photos, masks, bg)
    compared = full_frame_pair(rgb, alpha, photos, masks, bg) if keep_images else (None, None)
    return EvalResult(
        ssim=float(s.mean()),
        psnr=float(p.mean()),
        view_ids=idx,
        object=object_scores(rgb, alpha, photos, masks, bg),
        ssim_per_view=s.tolist(),
        psnr_per_view=p.tolist(),
        renders=compared[0],
        photos=compared[1],
    )


@torch.no_grad()
def empty_render_scores(capture: Capture, idx: list[int] | None = None) -> ObjectScores:
    """What the object metric gives a render with nothing in it on views ``idx`` (default: the
    held-out ones): the floor every score should be read against."""
    idx = capture.test_idx if idx is None else list(idx)
    photos = capture.images[idx].float()  # [V, H, W, 3]
    nothing = torch.zeros_like(photos)  # [V, H, W, 3]
    masks = None if capture.masks is None else capture.masks[idx]
    return object_scores(nothing, nothing[..., 0], photos, masks, capture.background_tensor())
