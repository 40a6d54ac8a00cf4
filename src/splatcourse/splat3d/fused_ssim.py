"""SSIM for the training loss, fused into two compiled passes forward and one backward.

The structural similarity of Wang et al. (2004), as ``pytorch_msssim`` computes it (an 11x11
Gaussian window of sigma 1.5, "valid" filtering, K1 = 0.01, K2 = 0.03, data range 1): per
pixel of every colour channel,

    mu_x = w * x,  sigma_x^2 = w * x^2 - mu_x^2,  sigma_xy = w * (x y) - mu_x mu_y
    SSIM = (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1)
         * (2 sigma_xy + C2) / (sigma_x^2 + sigma_y^2 + C2),   C1 = 0.01^2, C2 = 0.03^2

averaged over pixels and channels. ``w *`` is the separable Gaussian filter, a row pass then
a column pass.

Why fused: written as torch operations SSIM is ten small convolutions and about thirty
elementwise operations per step, forward and backward, each a pass over the image and, on
two cores, a hand-off between threads. On the axe at 256 px that was a third of a training
step. Here the five filtered maps are made in one pass, each pixel's SSIM and its
derivatives in a second, and the backward is one pass of the transposed filter:

    dL/dx = w^T * G1 + 2 x (w^T * G2) + y (w^T * G3)

with G1, G2, G3 the loss's derivatives in mu_x, in w * x^2 and in w * (x y). Rows are
independent in every pass, so they run in bands on the compiled rasterizer's threads
(:func:`.kernel._in_bands`). Arithmetic is float64 inside.

Used by: the training loss (:func:`splatcourse.train.loss.l1_ssim_loss`); metrics and
evaluation keep ``pytorch_msssim``, which this matches to about 1e-7.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit
from torch import Tensor

# (kernel sets numba's cache folder on import, before the kernels below are defined)
from .kernel import (
    _as_f64,
    _glue_on_one_torch_thread,
    _in_bands,
    _split,
    _take_band,
    _threads_for,
)

__all__ = ["WINDOW", "fused_ssim", "warm_up"]

WINDOW = 11  # the Gaussian window's side, in pixels
SIGMA = 1.5  # its standard deviation
C1, C2 = 0.01**2, 0.03**2  # (K1 L)^2 and (K2 L)^2 for a data range L = 1

#: below this many image pixels (images x height x width) per thread, one thread does it all:
#: a pixel here is several hundred multiply-adds, far more than a pixel of compositing
#: (kernel.MIN_PIXELS_PER_THREAD). Measured forward + backward on 2 cores: 64x48, 1.4 ms on
#: two threads against 0.9 on one; 128x96, 3.0 against 3.0; 256x170, 6.8 against 9.0.
MIN_PIXELS_PER_THREAD = 8_000


def _window() -> np.ndarray:
    """The 1D Gaussian [WINDOW], summing to 1 (pytorch_msssim's, in float64)."""
    x = np.arange(WINDOW, dtype=np.float64) - WINDOW // 2
    g = np.exp(-(x**2) / (2.0 * SIGMA**2))
    return g / g.sum()


@njit(cache=True, nogil=True)
def _filter_rows(next_band, edges, g, X, Y, h):
    """The row pass, for each band of rows ``edges[b] .. edges[b + 1] - 1`` this thread takes
    (see :func:`.kernel._in_bands`), of images X, Y [C, 3, H, W] (one plane per
    channel): the five maps x, y, x^2, y^2, x y filtered along x, into h [C, 3, 5, H, W']
    (W' = W - 10). The inner loops run along x, over contiguous memory: the compiler
    vectorises them."""
    n, Wo = g.shape[0], h.shape[4]
    band = _take_band(next_band, edges)
    while band >= 0:  # every band this thread takes (see _in_bands)
        y0, y1 = edges[band], edges[band + 1]
        for c in range(X.shape[0]):
            for ch in range(3):
                for y in range(y0, y1):
                    hx, hy, hxx, hyy, hxy = (h[c, ch, 0, y], h[c, ch, 1, y], h[c, ch, 2, y],
                                             h[c, ch, 3, y], h[c, ch, 4, y])  # fmt: skip
                    hx[:] = hy[:] = hxx[:] = hyy[:] = hxy[:] = 0.0
                    rx, ry = X[c, ch, y], Y[c, ch, y]  # [W]
                    for j in range(n):
                        gj = g[j]
                        for x in range(Wo):
                            a, b = rx[x + j], ry[x + j]
                            hx[x] += gj * a
                            hy[x] += gj * b
                            hxx[x] += gj * a * a
                            hyy[x] += gj * b * b
                            hxy[x] += gj * a * b
        band = _take_band(next_band, edges)


@njit(cache=True, nogil=True)
def _ssim_rows(next_band, edges, g, h, row_sums, d):
    """The column pass and each pixel's SSIM, for each band of output rows this thread takes.

    From h [C, 3, 5, H, W'] (see :func:`_filter_rows`): ``row_sums`` [C, H'] gets each
    output row's SSIM summed over x and channels, ``d`` [C, 3, 3, H', W'] the derivatives
    of each pixel's SSIM in mu_x, in w * x^2 and in w * (x y).
    """
    n, Wo = g.shape[0], h.shape[4]
    m = np.empty((5, Wo))  # [5, W'] mu_x, mu_y, w * x^2, w * y^2, w * (x y) along the row
    band = _take_band(next_band, edges)
    while band >= 0:  # every band this thread takes (see _in_bands)
        y0, y1 = edges[band], edges[band + 1]
        for c in range(h.shape[0]):
            for y in range(y0, y1):
                total = 0.0
                for ch in range(3):
                    m[:] = 0.0
                    for i in range(n):
                        gi = g[i]
                        for k in range(5):
                            row, mk = h[c, ch, k, y + i], m[k]
                            for x in range(Wo):
                                mk[x] += gi * row[x]
                    for x in range(Wo):
                        mx, my = m[0, x], m[1, x]
                        vx, vy, cxy = m[2, x] - mx * mx, m[3, x] - my * my, m[4, x] - mx * my
                        a_num, a_den = 2.0 * mx * my + C1, mx * mx + my * my + C1
                        b_num, b_den = 2.0 * cxy + C2, vx + vy + C2
                        A, B = a_num / a_den, b_num / b_den
                        total += A * B
                        dS_dmx = B * 2.0 * (my - A * mx) / a_den  # with the sigmas held
                        dS_dvx = -A * B / b_den  # in sigma_x^2
                        dS_dcxy = 2.0 * A / b_den  # in sigma_xy
                        d[c, ch, 0, y, x] = dS_dmx - 2.0 * mx * dS_dvx - my * dS_dcxy  # in mu_x
                        d[c, ch, 1, y, x] = dS_dvx  # in w * x^2
                        d[c, ch, 2, y, x] = dS_dcxy  # in w * (x y)
                row_sums[c, y] = total
        band = _take_band(next_band, edges)


@njit(cache=True, nogil=True)
def _backward_rows(next_band, edges, g, X, Y, d, scale, g_X):
    """dL/dX [C, 3, H, W], for each band of input rows this thread takes: the transposed
    filter of the derivatives ``d`` [C, 3, 3, H', W'] times ``scale`` [C] (dL/dSSIM of each
    image over its number of terms), column pass then row pass, then dL/dx = F1 + 2 x F2 +
    y F3."""
    n, Ho, Wo, W = g.shape[0], d.shape[3], d.shape[4], X.shape[3]
    v = np.empty((3, Wo))  # [3, W'] this row after the column pass
    F = np.empty((3, W))  # [3, W] and after the row pass
    band = _take_band(next_band, edges)
    while band >= 0:  # every band this thread takes (see _in_bands)
        y0, y1 = edges[band], edges[band + 1]
        for c in range(X.shape[0]):
            for ch in range(3):
                for y in range(y0, y1):
                    v[:] = 0.0
                    for i in range(n):  # output rows y - i that this input row feeds
                        if 0 <= y - i < Ho:
                            gi = g[i]
                            for k in range(3):
                                row, vk = d[c, ch, k, y - i], v[k]
                                for x in range(Wo):
                                    vk[x] += gi * row[x]
                    F[:] = 0.0
                    for j in range(n):  # output column xo feeds input column xo + j
                        gj = g[j]
                        for k in range(3):
                            Fk, vk = F[k], v[k]
                            for xo in range(Wo):
                                Fk[xo + j] += gj * vk[xo]
                    rx, ry, out = X[c, ch, y], Y[c, ch, y], g_X[c, ch, y]  # [W] each
                    for x in range(W):
                        out[x] = scale[c] * (F[0, x] + 2.0 * rx[x] * F[1, x] + ry[x] * F[2, x])
        band = _take_band(next_band, edges)


class _FusedSsim(torch.autograd.Function):
    """SSIM [C] of images [C, H, W, 3] against targets (no gradient to the targets)."""

    @staticmethod
    def forward(ctx, render, target):
        X, Y = (_as_f64(t.permute(0, 3, 1, 2)) for t in (render, target))  # [C, 3, H, W]
        C, _, H, W = X.shape
        Ho, Wo = H - WINDOW + 1, W - WINDOW + 1
        g = _window()
        threads = _threads_for(C * H * W, MIN_PIXELS_PER_THREAD)
        h = np.empty((C, 3, 5, H, Wo))  # [C, 3, 5, H, W']
        _in_bands(_filter_rows, *_split(H, threads), g, X, Y, h)
        row_sums, d = np.empty((C, Ho)), np.empty((C, 3, 3, Ho, Wo))
        _in_bands(_ssim_rows, *_split(Ho, threads), g, h, row_sums, d)
        ctx.arrays, ctx.dtype, ctx.threads = (g, X, Y, d), render.dtype, threads
        return torch.from_numpy(row_sums.sum(axis=1) / (Ho * Wo * 3)).to(render.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    @_glue_on_one_torch_thread
    def backward(ctx, g_ssim):
        g, X, Y, d = ctx.arrays
        scale = _as_f64(g_ssim) / (d.shape[3] * d.shape[4] * 3)  # [C]
        g_X = np.empty_like(X)  # [C, 3, H, W]
        _in_bands(_backward_rows, *_split(X.shape[2], ctx.threads), g, X, Y, d, scale, g_X)
        return torch.from_numpy(g_X).permute(0, 2, 3, 1).to(ctx.dtype), None


def fused_ssim(render: Tensor, target: Tensor) -> Tensor:
    """SSIM of each image, [C], for renders and targets [C, H, W, 3] in [0, 1] on the CPU
    (both sides at least :data:`WINDOW` pixels); differentiable in ``render`` only."""
    if render.shape != target.shape or render.dim() != 4 or render.shape[-1] != 3:
        raise ValueError(
            f"fused_ssim: render and target must both be [C, H, W, 3], got "
            f"{tuple(render.shape)} and {tuple(target.shape)}"
        )
    if min(render.shape[1:3]) < WINDOW:
        raise ValueError(f"fused_ssim: images must be at least {WINDOW}x{WINDOW} pixels")
    return _FusedSsim.apply(render, target.detach())


def warm_up() -> None:
    """Compile (or load from the disk cache) the three passes, on a tiny image.

    Its own random generator: the warm-up runs at a fit's first render, and drawing from
    torch's global one there would change every random number the fit draws after it.
    """
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, WINDOW + 1, WINDOW + 2, 3, generator=g).requires_grad_()
    with torch.enable_grad():
        fused_ssim(x, torch.rand(1, WINDOW + 1, WINDOW + 2, 3, generator=g)).sum().backward()
