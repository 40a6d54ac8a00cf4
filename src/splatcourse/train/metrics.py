"""Held-out scores on image tensors: the object metric (the course's headline figure) and the
full-frame metric the lessons started with.

Why two. The full-frame metric paints the capture's constant background into both the photo
and the render outside the object mask. So most of the frame is the same constant in both,
and SSIM is high for anything (an empty render scores 0.85 on the axe at 256x170); and the
Gaussians floating outside the object ("floaters") are painted over, so they cost nothing.

The object metric instead

- scores each view's **object box** (the mask's bounding box grown by a small margin), so the
  constant background no longer dominates the average;
- composites the render over **black and over white** by its own alpha, and the photo by its
  mask, and averages the two: a floater, or a hole in the object, differs from the photo over
  at least one of the two backgrounds, whatever its colour;
- reports the **alpha agreement** (soft IoU of the render's alpha with the mask) over the
  whole frame, which catches floaters outside the box as well.

Without masks there is no object to box: the scores are the full frame with the render over
the capture's background, and ``region`` says so.

Renders are given *premultiplied* (a render over black, i.e. ``render(..., background=0)``)
with their alpha, so they can be composited over any background afterwards.

Used by: ``train.evaluate`` (lessons 5-6, exercise 4), the trainer's periodic evaluation and
the capture-fit bench.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from .loss import psnr, ssim

__all__ = [
    "OBJECT_BACKGROUNDS",
    "ObjectScores",
    "Region",
    "alpha_iou",
    "composite_over",
    "full_frame_pair",
    "masked_full_frame_scores",
    "object_box",
    "object_scores",
]

#: The backgrounds render and photo are composited over for the object metric.
OBJECT_BACKGROUNDS: tuple[tuple[float, float, float], ...] = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))

#: What the object metric scored: the object's box (masks given) or the full frame (no masks).
Region = Literal["object", "full_frame"]

SSIM_WINDOW = 11  # pytorch_msssim's window: the smallest box SSIM can score


@dataclass
class ObjectScores:
    """Mean and per-view object scores; ``alpha_iou`` is None without masks."""

    ssim: float
    psnr: float
    alpha_iou: float | None
    region: Region
    ssim_per_view: list[float]
    psnr_per_view: list[float]
    alpha_iou_per_view: list[float] | None
    boxes: list[tuple[int, int, int, int]]  # (x0, y0, x1, y1) scored in each view


def composite_over(
    premultiplied: Tensor, alpha: Tensor, background: Sequence[float] | Tensor
) -> Tensor:
    """[..., H, W, 3] the render over a constant ``background`` colour, clamped to [0, 1]."""
    bg = torch.as_tensor(background, dtype=premultiplied.dtype, device=premultiplied.device)
    return (premultiplied + (1.0 - alpha[..., None]) * bg).clamp(0, 1)  # [..., H, W, 3]


def _photo_over(photo: Tensor, mask: Tensor, background: Sequence[float] | Tensor) -> Tensor:
    """[..., H, W, 3] the photo where its mask is set, ``background`` elsewhere."""
    bg = torch.as_tensor(background, dtype=photo.dtype, device=photo.device)
    return torch.where(mask[..., None], photo, bg)


def alpha_iou(alpha: Tensor, mask: Tensor) -> Tensor:
    """[V] soft IoU (fuzzy Jaccard) of alpha [V, H, W] in [0, 1] with the mask [V, H, W].

    sum(min(alpha, mask)) / sum(max(alpha, mask)): 1 when the render covers exactly the mask,
    lower for holes in the object and for any opacity outside it, faint haze included, in
    proportion to the object's size. An empty mask with an empty render agrees perfectly (1).
    """
    m = mask.to(alpha.dtype)
    inter = torch.minimum(alpha, m).flatten(1).sum(1)  # [V]
    union = torch.maximum(alpha, m).flatten(1).sum(1)  # [V]
    return torch.where(union > 0, inter / union.clamp_min(1e-12), torch.ones_like(union))


def object_box(mask: Tensor, margin: float = 0.05) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) around one view's mask [H, W], grown by ``margin`` of the image size
    on each side and to at least SSIM's 11-pixel window; the full frame for an empty mask."""
    H, W = mask.shape
    ys, xs = torch.nonzero(mask, as_tuple=True)
    if len(xs) == 0:
        return 0, 0, W, H
    mx, my = round(margin * W), round(margin * H)
    x0, x1 = _grow_span(int(xs.min()) - mx, int(xs.max()) + 1 + mx, W)
    y0, y1 = _grow_span(int(ys.min()) - my, int(ys.max()) + 1 + my, H)
    return x0, y0, x1, y1


def _grow_span(lo: int, hi: int, size: int) -> tuple[int, int]:
    """[lo, hi) clipped to [0, size) and widened to SSIM's window where the image allows."""
    lo, hi = max(lo, 0), min(hi, size)
    short = SSIM_WINDOW - (hi - lo)
    if short > 0:
        lo = max(lo - short // 2, 0)
        hi = min(lo + SSIM_WINDOW, size)
        lo = max(hi - SSIM_WINDOW, 0)
    return lo, hi


def full_frame_pair(
    premultiplied: Tensor,
    alpha: Tensor,
    photos: Tensor,
    masks: Tensor | None,
    background: Sequence[float] | Tensor,
) -> tuple[Tensor, Tensor]:
    """([V, H, W, 3] render, [V, H, W, 3] photo) as the full-frame metric compares them: the
    render over ``background``, and both set to ``background`` outside the masks."""
    renders = composite_over(premultiplied, alpha, background)  # [V, H, W, 3]
    if masks is None:
        return renders, photos
    return _photo_over(renders, masks, background), _photo_over(photos, masks, background)


def masked_full_frame_scores(
    premultiplied: Tensor,
    alpha: Tensor,
    photos: Tensor,
    masks: Tensor | None,
    background: Sequence[float] | Tensor,
) -> tuple[Tensor, Tensor]:
    """([V] SSIM, [V] PSNR) of the full frames (the lessons' first metric; blind to floaters,
    see ``full_frame_pair``)."""
    renders, photos = full_frame_pair(premultiplied, alpha, photos, masks, background)
    return ssim(renders, photos, reduce=False), psnr(renders, photos, reduce=False)


def _object_view_scores(
    premultiplied: Tensor,
    alpha: Tensor,
    photo: Tensor,
    mask: Tensor,
    box: tuple[int, int, int, int],
) -> tuple[float, float]:
    """(SSIM, PSNR) of one view's box, averaged over the object backgrounds."""
    x0, y0, x1, y1 = box
    bgs = torch.tensor(OBJECT_BACKGROUNDS, dtype=premultiplied.dtype, device=premultiplied.device)[
        :, None, None, :
    ]  # [B, 1, 1, 3]
    rgb, a = premultiplied[y0:y1, x0:x1], alpha[y0:y1, x0:x1]  # [h, w, 3], [h, w]
    renders = (rgb + (1.0 - a[..., None]) * bgs).clamp(0, 1)  # [B, h, w, 3]
    photos = torch.where(mask[y0:y1, x0:x1, None], photo[y0:y1, x0:x1], bgs)  # [B, h, w, 3]
    return float(ssim(renders, photos)), float(psnr(renders, photos))


@torch.no_grad()
def object_scores(
    premultiplied: Tensor,
    alpha: Tensor,
    photos: Tensor,
    masks: Tensor | None,
    background: Sequence[float] | Tensor = (0.0, 0.0, 0.0),
    margin: float = 0.05,
) -> ObjectScores:
    """The object metric of V views (see the module docstring).

    premultiplied [V, H, W, 3]: renders over black; alpha [V, H, W] (or [V, H, W, 1]);
    photos [V, H, W, 3]; masks [V, H, W] bool or None; ``background`` is the colour the
    photos show outside the object, used only without masks; ``margin`` grows each box by
    that fraction of the image size.
    """
    alpha = alpha[..., 0] if alpha.dim() == 4 else alpha  # [V, H, W]
    if len(photos) == 0:
        raise ValueError("object_scores: no views to score")
    if premultiplied.shape != photos.shape or alpha.shape != photos.shape[:3]:
        raise ValueError(
            f"object_scores: renders {tuple(premultiplied.shape)}, alpha "
            f"{tuple(alpha.shape)} and photos {tuple(photos.shape)} differ"
        )
    if masks is None:
        s, p = masked_full_frame_scores(premultiplied, alpha, photos, None, background)
        H, W = photos.shape[1:3]
        return ObjectScores(
            ssim=float(s.mean()),
            psnr=float(p.mean()),
            alpha_iou=None,
            region="full_frame",
            ssim_per_view=s.tolist(),
            psnr_per_view=p.tolist(),
            alpha_iou_per_view=None,
            boxes=[(0, 0, W, H)] * len(photos),
        )
    if masks.shape != alpha.shape:
        raise ValueError(
            f"object_scores: masks {tuple(masks.shape)} do not match the "
            f"images {tuple(photos.shape)}"
        )
    boxes = [object_box(m, margin) for m in masks]
    per_view = [
        _object_view_scores(premultiplied[v], alpha[v], photos[v], masks[v], box)
        for v, box in enumerate(boxes)
    ]
    s, p = (torch.tensor(col) for col in zip(*per_view, strict=True))
    iou = alpha_iou(alpha, masks)
    return ObjectScores(
        ssim=float(s.mean()),
        psnr=float(p.mean()),
        alpha_iou=float(iou.mean()),
        region="object",
        ssim_per_view=s.tolist(),
        psnr_per_view=p.tolist(),
        alpha_iou_per_view=iou.tolist(),
        boxes=boxes,
    )
