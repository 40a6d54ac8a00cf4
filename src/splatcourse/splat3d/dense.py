"""The naive reference: every Gaussian evaluated at every pixel, then composited in depth order.

Obviously correct and obviously slow (work and memory grow as Gaussians x pixels). Tests
compare the fast rasterizer against it and the benchmark measures the gap. Pixels are
processed in chunks, recomputed in the backward pass when gradients are needed, only so that
it fits in memory on bigger scenes; the arithmetic is the plain formula.

Used by: the rasterizer's tests and bench (the reference it is checked against); lesson 4.
"""

from __future__ import annotations

import torch
from torch import Tensor

from splatcourse.constants import ALPHA_MAX, ALPHA_MIN, T_MIN

from .backend import torch_rasterization
from .rasterize import camera_images

__all__ = ["dense_composite", "dense_rasterization"]


def _composite_chunk(mx, my, A, B, C, opac, colors, px, py):
    dx = mx[None, :] - px[:, None]  # [P, G]: pixels x Gaussians, depth order along dim 1
    dy = my[None, :] - py[:, None]
    power = 0.5 * (A * dx * dx + C * dy * dy) + B * dx * dy
    alpha = torch.clamp_max(opac * torch.exp(-power), ALPHA_MAX)
    alpha = torch.where((power >= 0) & (alpha >= ALPHA_MIN), alpha, torch.zeros_like(alpha))
    with torch.no_grad():  # which pairs come before the early-termination point
        alive = torch.cumprod(1.0 - alpha.double(), dim=1) > T_MIN
    alpha = alpha * alive
    T = torch.cumprod(1.0 - alpha, dim=1)
    T_ex = torch.cat([torch.ones_like(T[:, :1]), T[:, :-1]], dim=1)
    w = alpha * T_ex  # [P, G]
    return w @ colors, 1.0 - T[:, -1]


class _Recompute(torch.autograd.Function):
    """Run a chunk without keeping its [P, G] intermediates; recompute them in backward.

    (``torch.utils.checkpoint`` either keeps part of them or forbids ``autograd.grad``.)
    """

    @staticmethod
    def forward(ctx, *args):
        ctx.save_for_backward(*args)
        with torch.no_grad():
            return _composite_chunk(*args)

    @staticmethod
    def backward(ctx, g_out, g_alpha):
        args = [a.detach().requires_grad_(a.requires_grad) for a in ctx.saved_tensors]
        wanted = [a for a, need in zip(args, ctx.needs_input_grad) if need]
        with torch.enable_grad():
            out, alpha = _composite_chunk(*args)
            grads = iter(
                torch.autograd.grad((out, alpha), wanted, (g_out, g_alpha), allow_unused=True)
            )
        return tuple(next(grads) if need else None for need in ctx.needs_input_grad)


def dense_composite(
    means2d: Tensor,
    conics: Tensor,
    colors: Tensor,
    opacities: Tensor,
    depths: Tensor,
    radii: Tensor,
    width: int,
    height: int,
    backgrounds: Tensor | None = None,
    pixels_per_chunk: int | None = None,
    stats=None,
) -> tuple[Tensor, Tensor]:
    """Same inputs and outputs as :func:`rasterize.rasterize_to_pixels`, computed densely."""
    Cn = means2d.shape[0]
    D = colors.shape[-1]
    dtype = means2d.dtype
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=dtype) + 0.5,
        torch.arange(width, dtype=dtype) + 0.5,
        indexing="ij",
    )
    px, py = xs.reshape(-1), ys.reshape(-1)
    renders, alphas = [], []
    for c in range(Cn):
        vis = torch.nonzero((radii[c] > 0).all(-1)).squeeze(-1)
        vis = vis[torch.sort(depths[c].detach()[vis], stable=True).indices]
        G = int(vis.numel())
        if G == 0:
            renders.append(means2d.new_zeros(height, width, D))
            alphas.append(means2d.new_zeros(height, width, 1))
            continue
        chunk = pixels_per_chunk or max(16, int(5e5 // G))  # cache-sized blocks
        mx, my = means2d[c, vis, 0], means2d[c, vis, 1]
        A, B, Cc = conics[c, vis].unbind(-1)
        op, col = opacities[c, vis], colors[c, vis]
        img, alp = [], []
        for s in range(0, px.numel(), chunk):
            args = (mx, my, A, B, Cc, op, col, px[s : s + chunk], py[s : s + chunk])
            if torch.is_grad_enabled() and any(a.requires_grad for a in args):
                o, a = _Recompute.apply(*args)
            else:
                o, a = _composite_chunk(*args)
            img.append(o)
            alp.append(a)
        renders.append(torch.cat(img).reshape(height, width, D))
        alphas.append(torch.cat(alp).reshape(height, width, 1))
    return camera_images(renders, alphas, width, height, backgrounds)


def dense_rasterization(
    means, quats, scales, opacities, colors, viewmats, Ks, width, height, **kwargs
):
    """``rasterization`` with the dense compositor (PyTorch path, same arguments/returns)."""
    return torch_rasterization(
        means,
        quats,
        scales,
        opacities,
        colors,
        viewmats,
        Ks,
        width,
        height,
        compositor=dense_composite,
        **kwargs,
    )
