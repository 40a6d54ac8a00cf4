"""Compositing written out in full: every Gaussian at every pixel, for small scenes.

The fast rasterizer (``splat3d.rasterization``) hides the compositing formula behind pair
lists and scans. Here it is plain: an alpha map per Gaussian, a sort by depth, and

    C = sum_i c_i a_i T_i,   T_i = prod_{j<i} (1 - a_j).

Because it is plain, it can also be done *wrongly on purpose* (summed, or in the wrong
order), which is how lesson 4 shows why the order matters. Work and memory grow as
Gaussians x pixels, so keep scenes to a few hundred Gaussians and small images.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor

from splatcourse.constants import ALPHA_MAX, ALPHA_MIN
from splatcourse.splat3d import project_gaussians

from .scenes import SH_DEGREE, Camera, GaussianScene

__all__ = ["ALPHA_MAX", "MODES", "alpha_maps", "composite_front_to_back", "render_by_hand"]

Mode = Literal["composite", "reversed", "sum"]
MODES = get_args(Mode)  # ("composite", "reversed", "sum")


def composite_front_to_back(colours: Tensor, alphas: Tensor) -> tuple[Tensor, Tensor]:
    """Blend a front-to-back sorted list: (colour [..., D], total alpha [...]).

    colours [N, ..., D], alphas [N, ...] (item 0 is nearest). Item i is seen through all
    items before it, so it contributes ``c_i a_i prod_{j<i}(1 - a_j)``; what is left,
    ``prod_j (1 - a_j)``, is the light from the background.
    """
    if colours.dim() != alphas.dim() + 1 or colours.shape[:-1] != alphas.shape:
        raise ValueError(
            f"composite_front_to_back: colours {tuple(colours.shape)} must be "
            f"alphas {tuple(alphas.shape)} plus a channel axis"
        )
    if alphas.shape[0] == 0:  # nothing in front of the background
        return colours.new_zeros(colours.shape[1:]), alphas.new_zeros(alphas.shape[1:])
    through = torch.cumprod(1.0 - alphas, dim=0)  # transmittance *after* each item
    before = torch.cat([torch.ones_like(through[:1]), through[:-1]], dim=0)
    weights = alphas * before
    return (weights[..., None] * colours).sum(0), 1.0 - through[-1]


def alpha_maps(
    means2d: Tensor, conics: Tensor, opacities: Tensor, width: int, height: int
) -> Tensor:
    """Opacity of each Gaussian at each pixel centre, [N, H, W], with the rasterizer's rules.

    ``alpha = min(0.999, o exp(-d^T conic d / 2))``, and 0 where it is below 1/255.
    """
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=means2d.dtype) + 0.5,
        torch.arange(width, dtype=means2d.dtype) + 0.5,
        indexing="ij",
    )
    dx = xs[None] - means2d[:, 0, None, None]
    dy = ys[None] - means2d[:, 1, None, None]
    a, b, c = (conics[:, k, None, None] for k in range(3))
    power = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    alpha = (opacities[:, None, None] * torch.exp(-power)).clamp_max(ALPHA_MAX)
    return torch.where(alpha >= ALPHA_MIN, alpha, torch.zeros_like(alpha))


def _alpha_in_box(
    mean2d: Tensor, conic: Tensor, opacity: Tensor, x0: int, x1: int, y0: int, y1: int
) -> Tensor:
    """alpha_maps for one Gaussian on the pixel rows y0:y1 and columns x0:x1 only."""
    ys = torch.arange(y0, y1, dtype=mean2d.dtype) + 0.5
    xs = torch.arange(x0, x1, dtype=mean2d.dtype) + 0.5
    dx, dy = xs[None, :] - mean2d[0], ys[:, None] - mean2d[1]
    power = 0.5 * (conic[0] * dx * dx + conic[2] * dy * dy) + conic[1] * dx * dy
    alpha = (opacity * torch.exp(-power)).clamp_max(ALPHA_MAX)
    return torch.where(alpha >= ALPHA_MIN, alpha, torch.zeros_like(alpha))


def render_by_hand(
    scene: GaussianScene,
    camera: Camera,
    mode: Mode = "composite",
    sh_degree: int = SH_DEGREE,
    background: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> tuple[Tensor, Tensor]:
    """(image [H, W, 3], alpha [H, W]) of a small scene, combined three ways.

    Gaussians are painted one at a time into their screen boxes, in a chosen order:
    mode "composite": nearest first, each seen through the transmittance T left by those
    in front (``C += T a c; T *= 1 - a``): the correct rule, what the rasterizer computes;
    "reversed": the same loop, farthest first (the wrong order);
    "sum": every Gaussian adds ``a c``; no order, no occlusion (values may exceed 1).
    """
    if mode not in MODES:
        raise ValueError(f"render_by_hand: mode must be one of {MODES}, got {mode!r}")
    proj = project_gaussians(
        scene.means,
        scene.covariances(),
        camera.viewmat,
        camera.K,
        camera.width,
        camera.height,
        opacities=scene.opacities,
    )
    keep = proj.visible[0]
    order = torch.argsort(proj.depths[0].masked_fill(~keep, float("inf")), stable=True)
    order = order[: int(keep.sum())]  # visible ones, nearest first
    if mode == "reversed":
        order = order.flip(0)
    colours = scene.colours(camera, sh_degree)
    H, W = camera.height, camera.width
    image = colours.new_zeros(H, W, 3)
    T = colours.new_ones(H, W)  # light still coming through from behind
    for i in order.tolist():
        mx, my = (float(v) for v in proj.means2d[0, i])
        rx, ry = (int(r) for r in proj.radii[0, i])
        x0, x1 = max(0, int(mx - rx)), min(W, int(mx + rx) + 1)
        y0, y1 = max(0, int(my - ry)), min(H, int(my + ry) + 1)
        if x0 >= x1 or y0 >= y1:
            continue
        a = _alpha_in_box(proj.means2d[0, i], proj.conics[0, i], scene.opacities[i], x0, x1, y0, y1)
        t = T[y0:y1, x0:x1]
        weight = a if mode == "sum" else a * t
        image[y0:y1, x0:x1] += weight[..., None] * colours[i]
        T[y0:y1, x0:x1] = t * (1.0 - a)
    bg = torch.tensor(background, dtype=image.dtype)
    return image + T[..., None] * bg, 1.0 - T
