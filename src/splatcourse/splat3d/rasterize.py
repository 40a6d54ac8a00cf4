"""Exact, differentiable alpha compositing of projected Gaussians on the CPU, in PyTorch.

The semantics are gsplat's (and the 3DGS paper's), pixel by pixel, front to back:

    alpha_i = min(0.999, opacity_i * exp(-power_i))      power = 0.5 d^T conic d
    skip the pair if alpha_i < 1/255
    stop before the pair that would bring transmittance T to 1e-4 or below
    colour = sum_i alpha_i T_i c_i,  T_i = prod_{j<i} (1 - alpha_j),  alpha_pixel = 1 - T_final

How it stays fast without a GPU:

1. **Exact pair enumeration, row by row.** The pixels where ``alpha >= 1/255`` form an
   ellipse ``power <= log(255 * opacity)``. For every Gaussian and every pixel row it crosses
   we solve the quadratic for the exact run of pixels on that row, so pairs outside the
   ellipse are never created (a 3-sigma box would create about twice as many). Nothing of
   size Gaussians x pixels ever exists.
2. **Depth order for free.** Gaussians are sorted by depth once; pairs are generated in that
   order, so a *stable* sort by pixel id leaves every pixel's pairs front to back.
3. **Transmittance by a scan.** ``log T`` is a cumulative sum of ``log(1 - alpha)`` (in
   float64) restarted at each pixel; early termination is "keep the prefix whose T > 1e-4".
4. **A hand-written backward.** Along a row, the power is a quadratic in the pixel offset
   ``xl``: ``power - log(opacity) = c2 xl^2 + c1 xl + c0``. The custom autograd function
   works on these three numbers per (Gaussian, row) and PyTorch's autograd turns them back
   into gradients for means2d, conics and opacities. The backward needs one more reverse
   scan, for the colour still to come behind each pair.
5. **Bands.** The image is cut into horizontal bands holding a bounded number of pairs, so
   peak memory stays bounded for any number of Gaussians.
6. **Sums as a sparse product.** The compositing weights ``T_i alpha_i``, sorted by pixel, are
   a CSR matrix [pixels, Gaussians]; every pixel's colour and alpha is one product with
   ``[colours | 1]`` instead of per-pair gathers and segment sums.

Used by: lesson 4 (how the rasterizer works) and every CPU render after it.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from splatcourse.constants import ALPHA_MAX, ALPHA_MIN, POWER_AT_ALPHA_MIN, T_MIN

__all__ = [
    "ALPHA_MAX",
    "ALPHA_MIN",
    "T_MIN",
    "RasterStats",
    "rasterize_to_pixels",
]

_MARGIN = 0.01  # px of slack on the analytic row runs; the exact alpha test trims the rest
_LOG_T_MIN = math.log(T_MIN)
DEFAULT_PAIRS_PER_BAND = 3_000_000
# we build CSR matrices with torch's checks off (they are sorted by construction); the
# "beta" notice would print once per process in every student's notebook
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")

# Key to the names below. One Gaussian's footprint on the image (3DGS paper, Kerbl et al.
# 2023: the 2D Gaussian of Eq. 4 with the screen covariance Sigma' of Eq. 5, composited by
# Eq. 3), for a pixel centre p = (x + 0.5, y + 0.5) and d = mean2d - p:
#   mx, my     mean2d, the centre in pixels
#   A, B, C    the conic [[A, B], [B, C]] = Sigma'^-1;  det = A C - B^2
#   power      0.5 d^T conic d = 0.5 (A dx^2 + C dy^2) + B dx dy
#   alpha      min(ALPHA_MAX, opacity exp(-power)); pairs below ALPHA_MIN (1/255) are skipped
#   log_o      log(opacity), so that alpha = exp(-(power - log_o))
#   t          log_o + log(255): alpha >= 1/255 exactly where power <= t (an ellipse)
#   ylo, yhi   first and last pixel row that the ellipse crosses
#   run        the pixels of one Gaussian on one row with alpha >= 1/255: x0 .. x0 + run_len - 1
#   run_gid    the Gaussian of a run (index into the visible ones, front to back)
#   xl         a pixel's offset along its run, 0 .. run_len - 1
#   c0, c1, c2 power - log_o = c0 + c1 xl + c2 xl^2 along a run (differentiable)
#   pair       one (Gaussian, pixel) with its alpha; r is its run, pix its pixel in the band
#   T_ex       transmittance in front of a pair, prod (1 - alpha_j) over the pairs before it
# Sizes in shape comments: G visible Gaussians, R runs, M pairs, P pixels of a band,
# D colour channels.


@dataclass
class RasterStats:
    """What the compositing did, for benchmarks and curious students."""

    n_candidate_pairs: int = 0  # pairs on the analytic ellipse runs
    n_pairs: int = 0  # pairs with alpha >= 1/255
    n_composited: int = 0  # pairs in front of the early-termination point
    n_bands: int = 0


def _pixel_starts(pix_sorted: Tensor, n_pix: int) -> Tensor:
    """First pair index of every pixel 0..n_pix (n_pix + 1 entries), pairs sorted by pixel."""
    counts = torch.bincount(pix_sorted, minlength=n_pix)
    return F.pad(torch.cumsum(counts, 0, dtype=torch.int32), (1, 0))


def _run_pixel_starts(run_pix0: Tensor, run_len: Tensor, n_pix: int) -> Tensor:
    """The same from the runs alone: each run adds one pair to each pixel it covers, so the
    pairs per pixel are a difference array over run ends (cheaper than counting pairs)."""
    one = torch.ones_like(run_pix0, dtype=torch.int32)
    edges = torch.zeros(n_pix + 1, dtype=torch.int32, device=run_pix0.device)
    edges.index_add_(0, run_pix0, one).index_add_(0, run_pix0 + run_len, -one)
    counts = torch.cumsum(edges[:-1], 0, dtype=torch.int32)
    return F.pad(torch.cumsum(counts, 0, dtype=torch.int32), (1, 0))


def _pairs_of_runs(run_pix0: Tensor, run_len: Tensor, dtype: torch.dtype):
    """Run ``r``, band pixel ``pix`` and offset ``xl`` of every pair, sorted by pixel.

    Pairs are numbered run after run (so front to back); ``r`` and ``pix`` are cumulative sums
    of per-run jumps, cheaper than ``repeat_interleave`` and gathers. A *stable* sort by pixel
    then leaves every pixel's pairs front to back. Returns ``(r, pix, xl, M)``.
    """
    dev = run_pix0.device
    offs = torch.cumsum(run_len, 0) - run_len  # [R] first pair of each run
    M = int(offs[-1] + run_len[-1]) if run_len.numel() else 0
    jumps = torch.zeros(M, dtype=torch.int32, device=dev)  # [M]
    jumps[offs[1:]] = 1  # a new run starts
    r = torch.cumsum(jumps, 0, dtype=torch.int32)  # [M]
    jumps.fill_(1)  # the next pixel along a run...
    prev_end = torch.cat([run_pix0.new_zeros(1), (run_pix0 + run_len - 1)[:-1]])  # [R]
    jumps[offs] = (run_pix0 - prev_end).to(torch.int32)  # ...or the jump to the next run
    pix = torch.cumsum(jumps, 0, dtype=torch.int32)  # [M]
    del jumps
    pix, order = torch.sort(pix, stable=True)  # [M], [M]
    r = r.index_select(0, order)  # [M]
    xl = (order - offs.index_select(0, r)).to(dtype)  # [M]
    return r, pix, xl, M


def _composite_weights(w: Tensor, gid: Tensor, starts: Tensor, colors_t: Tensor, n_pix: int):
    """Colour [P, D] and alpha [P] of every pixel from the pair weights ``w = T_ex alpha``.

    The weights form a sparse [pixels, Gaussians] matrix in CSR layout (rows are pixels,
    already sorted): colour and alpha of every pixel are one sparse @ dense product with
    ``[colours | 1]``, several times faster than gathering colours per pair and reducing.
    """
    D, G = colors_t.shape
    weights = torch.sparse_csr_tensor(starts, gid, w, size=(n_pix, G), check_invariants=False)
    ones = colors_t.new_ones(1, G)  # [1, G]
    both = weights @ torch.cat([colors_t, ones], 0).T.contiguous()  # [P, D + 1]
    return both[:, :D].contiguous(), both[:, D].contiguous()


class _CompositeRows(torch.autograd.Function):
    """Composite one band of pixels from its (Gaussian, row) runs.

    Inputs: ``c0, c1, c2`` [R] per run, so that at the ``xl``-th pixel of run r
    ``alpha = min(0.999, exp(-(c0 + c1 xl + c2 xl^2)))``; ``colors_t`` [D, G] (channel
    major); ``run_gid`` [R] (which Gaussian), ``run_pix0`` [R] (band pixel id of xl = 0),
    ``run_len`` [R]. Outputs: colour [P, D] (no background) and alpha [P].

    Every per-pair tensor is one-dimensional: on the CPU, PyTorch's kernels for [M, 3]
    shapes (gathers, scatters, reductions over the last axis) are several times slower
    than three [M] kernels. Pairs that fail the 1/255 test or lie behind the
    early-termination point keep their place with alpha = 0: they change nothing and get
    no gradient, which is cheaper than compacting (unless many pixels saturate).
    """

    @staticmethod
    def forward(ctx, c0, c1, c2, colors_t, run_gid, run_pix0, run_len, n_pix, stats):
        dtype = colors_t.dtype
        r, pix, xl, M = _pairs_of_runs(run_pix0, run_len, dtype)  # [M] each
        power = torch.addcmul(c1.index_select(0, r), c2.index_select(0, r), xl)  # [M]
        power = torch.addcmul(c0.index_select(0, r), power, xl)  # c0 + c1 xl + c2 xl^2
        alpha = torch.exp(power.neg_()).clamp_max_(ALPHA_MAX)  # [M]
        del power
        alpha = F.threshold(alpha, ALPHA_MIN, 0.0)  # skip pairs fainter than 1/255

        n_pairs = int(torch.count_nonzero(alpha)) if stats is not None else 0
        # log T before each pair: a cumulative sum restarted at every pixel (in float64: the
        # running sum over a whole band is large, the differences must stay exact; what is
        # left is small, so the rest, exp included, runs in the input precision again).
        la = torch.log1p(-alpha)  # [M] log(1 - alpha)
        la64 = la.to(torch.float64)
        starts = _run_pixel_starts(run_pix0, run_len, n_pix)  # [P + 1]
        cs_ex = torch.cumsum(la64, 0).sub_(la64)  # [M] sum over all earlier pairs of the band
        del la64
        logT_ex = cs_ex.sub_(cs_ex.index_select(0, starts.index_select(0, pix))).to(dtype)
        del cs_ex
        # A pair that would bring T to 1e-4 or below ends its pixel, with all pairs behind.
        dead = (logT_ex + la) <= _LOG_T_MIN  # [M]
        del la
        n_dead = int(torch.count_nonzero(dead))
        if n_dead > 0.25 * M:  # many saturated pixels: drop the dead pairs for good
            keep = torch.nonzero(~dead).squeeze(-1)
            r, xl, alpha, pix, logT_ex = (
                t.index_select(0, keep) for t in (r, xl, alpha, pix, logT_ex)
            )
            starts = _pixel_starts(pix, n_pix)
        elif n_dead:
            alpha.masked_fill_(dead, 0.0)
        del dead
        T_ex = torch.exp(logT_ex)  # [M]
        del logT_ex
        w = T_ex * alpha  # [M] compositing weight of each pair
        gid = run_gid.index_select(0, r)  # [M]
        out, alpha_pix = _composite_weights(w, gid, starts, colors_t, n_pix)  # [P, D], [P]
        if stats is not None:
            stats.n_candidate_pairs += M
            stats.n_pairs += n_pairs
            stats.n_composited += int(torch.count_nonzero(w))
            stats.n_bands += 1
        # d alpha / d power: -alpha where unclamped, 0 where clamped at 0.999 or skipped.
        dadp = F.threshold(-alpha, -ALPHA_MAX, 0.0)  # [M]
        ctx.save_for_backward(r, xl, alpha, dadp, T_ex, pix, starts, gid, alpha_pix, colors_t)
        ctx.n_runs = c0.shape[0]
        return out, alpha_pix

    @staticmethod
    def backward(ctx, g_out, g_alpha):
        r, xl, alpha, dadp, T_ex, pix, starts, gid, alpha_pix, colors_t = ctx.saved_tensors
        dtype, dev = T_ex.dtype, T_ex.device
        w = alpha * T_ex  # [M]
        D = colors_t.shape[0]
        cols = [colors_t[k].index_select(0, gid) for k in range(D)]  # D x [M] pair colours
        g = [g_out[:, k].index_select(0, pix) for k in range(D)]  # D x [M] dL/dout per pair
        grad_colors = None
        if ctx.needs_input_grad[3]:
            grad_colors = torch.zeros_like(colors_t)  # [D, G]
            for k in range(D):
                grad_colors[k].index_add_(0, gid, w * g[k])
        grads = [None, None, None]
        if any(ctx.needs_input_grad[:3]):
            cg = cols[0] * g[0]  # [M] c_i . dL/dout
            for k in range(1, D):
                cg.addcmul_(cols[k], g[k])
            del g
            v = (w * cg).to(torch.float64)  # [M]
            cs = torch.cumsum(v, 0)  # [M]
            del v
            last = starts.index_select(0, pix + 1).sub_(1)  # [M] last pair of this pixel
            behind = (cs.index_select(0, last) - cs).to(dtype)  # [M] colour still to come
            del cs, last
            # d out / d alpha_i = T_i c_i - behind_i / (1 - alpha_i);
            # d alpha_pix / d alpha_i = T_final / (1 - alpha_i).
            tail = ((1.0 - alpha_pix) * g_alpha).index_select(0, pix)  # [M] T_final dL/da_pix
            g_a = T_ex * cg  # [M] dL/dalpha_i
            g_a -= (behind - tail) / (1.0 - alpha)
            g_power = g_a.mul_(dadp)  # [M] dL/dpower
            n = ctx.n_runs
            g0 = torch.zeros(n, dtype=dtype, device=dev).index_add_(0, r, g_power)  # [R]
            g_power = g_power * xl
            g1 = torch.zeros(n, dtype=dtype, device=dev).index_add_(0, r, g_power)  # [R]
            g2 = torch.zeros(n, dtype=dtype, device=dev).index_add_(0, r, g_power.mul_(xl))
            grads = [g0, g1, g2]
        return (*grads, grad_colors, None, None, None, None, None)


@dataclass
class _Footprints:
    """Where each visible Gaussian reaches alpha >= 1/255, [G] each, front to back (no grad).

    See the key at the top of this module for the names.
    """

    mx: Tensor  # [G] centre x, pixels
    my: Tensor  # [G] centre y
    A: Tensor  # [G] conic entries (C is only needed for the width estimate)
    B: Tensor  # [G]
    t: Tensor  # [G] log(255 opacity): the ellipse is power <= t
    det: Tensor  # [G] A C - B^2
    ylo: Tensor  # [G] int64, first pixel row crossing the ellipse
    yhi: Tensor  # [G] int64, last one (-1 or < ylo: none)
    has_rows: Tensor  # [G] bool: the ellipse crosses at least one pixel row


@torch.no_grad()
def _footprints(mx, my, A, B, C, log_o, width: int, height: int):
    """The ellipses ``power <= t`` of the visible Gaussians, and the pixels per row of each.

    Returns the :class:`_Footprints` and ``width_est`` [G] (float64), an estimate of each
    ellipse's pixels per row, from which the bands are cut.
    """
    t = log_o + POWER_AT_ALPHA_MIN  # [G] the power where alpha falls to 1/255
    det = (A * C - B * B).clamp_min(1e-30)  # [G]
    half_h = torch.sqrt((2.0 * t * A / det).clamp_min(0.0))  # [G] half-height in pixels
    half_w = torch.sqrt((2.0 * t * C / det).clamp_min(0.0))  # [G] half-width
    ylo = torch.ceil(my - half_h - 0.5 - _MARGIN).clamp(0, height - 1).to(torch.int64)  # [G]
    yhi = torch.floor(my + half_h - 0.5 + _MARGIN).clamp(-1, height - 1).to(torch.int64)
    has_rows = (yhi >= ylo) & (t > 0)  # [G]
    width_est = ((2 * half_w + 1).clamp(max=width) * has_rows).to(torch.float64)  # [G]
    return _Footprints(mx, my, A, B, t, det, ylo, yhi, has_rows), width_est


def _band_edges(ylo: Tensor, yhi: Tensor, width_est: Tensor, height: int, budget: int):
    """Split rows into bands of about ``budget`` pairs (estimated from ellipse widths)."""
    load = torch.zeros(height + 1, dtype=torch.float64)
    load.index_add_(0, ylo, width_est)
    load.index_add_(0, yhi + 1, -width_est)
    per_row = torch.cumsum(load, 0)[:height].clamp_min(0)
    cum = torch.cumsum(per_row, 0)
    total = float(cum[-1]) if height > 0 else 0.0
    n_bands = max(1, math.ceil(total / budget))
    if n_bands == 1:
        return [0, height]
    cuts = torch.searchsorted(cum, torch.arange(1, n_bands, dtype=torch.float64) * budget)
    edges = sorted({0, height, *[int(c) + 1 for c in cuts.tolist() if 0 < int(c) + 1 < height]})
    return edges


@torch.no_grad()
def _row_runs(fp: _Footprints, y0: int, y1: int, width: int):
    """Every run of pixels with alpha >= 1/255, per Gaussian and pixel row, in rows y0..y1-1.

    On row y, with ``dy = my - (y + 0.5)``, the pixel centres ``px`` inside the ellipse
    ``power <= t`` solve a quadratic: ``px = mx + (B dy -+ s) / A`` with
    ``s = sqrt(2 t A - det dy^2)``. Rounding its two roots inwards to pixel centres (with
    ``_MARGIN`` of slack; the exact alpha test drops the rest) gives the run.

    Returns ``(run_gid, y, x0, run_len)``, [R] int64 each, runs with at least one pixel,
    Gaussian after Gaussian (front to back) and row after row.
    """
    sel = torch.nonzero(fp.has_rows & (fp.ylo < y1) & (fp.yhi >= y0)).squeeze(-1)  # [G']
    first_row = fp.ylo[sel].clamp_min(y0)  # [G']
    n_rows = fp.yhi[sel].clamp_max(y1 - 1) - first_row + 1  # [G']
    run_gid = torch.repeat_interleave(sel, n_rows)  # [R]
    run_offs = torch.cumsum(n_rows, 0) - n_rows  # [G'] first run of each Gaussian
    y = torch.repeat_interleave(first_row - run_offs, n_rows)  # [R]
    y += torch.arange(run_gid.numel(), device=run_gid.device)  # first_row + k for the k-th
    per_run = (fp.mx, fp.my, fp.A, fp.B, fp.t, fp.det)
    mx, my, A, B, t, det = (v.index_select(0, run_gid) for v in per_run)  # [R] each
    dy = my - (y.to(mx.dtype) + 0.5)  # [R]
    s = torch.sqrt((2.0 * t * A - det * dy * dy).clamp_min(0.0))  # [R]
    x_lo = mx + (B * dy - s) / A  # [R] leftmost pixel centre inside, as a real number
    x_hi = mx + (B * dy + s) / A  # [R] rightmost
    x0 = torch.ceil(x_lo - 0.5 - _MARGIN).clamp_min(0).to(torch.int64)  # [R]
    x1 = torch.floor(x_hi - 0.5 + _MARGIN).clamp_max(width - 1).to(torch.int64)  # [R]
    run_len = x1 - x0 + 1  # [R]
    keep = torch.nonzero(run_len > 0).squeeze(-1)  # one nonzero, four gathers
    return tuple(v.index_select(0, keep) for v in (run_gid, y, x0, run_len))


def _run_quadratics(mx, my, A, B, C, log_o, run_gid: Tensor, y: Tensor, x0: Tensor):
    """``(c0, c1, c2)`` [R]: ``power - log_o = c0 + c1 xl + c2 xl^2`` along each run.

    Differentiable in the per-Gaussian ``mx, my, A, B, C, log_o`` [G]. With ``e, d`` the
    offsets from the run's first pixel centre to the mean, the pixel ``xl`` further right
    has ``dx = e - xl`` and ``power = 0.5 (A (e - xl)^2 + C d^2) + B (e - xl) d``.
    """
    dtype = mx.dtype
    a_, b_, c_ = A.index_select(0, run_gid), B.index_select(0, run_gid), C.index_select(0, run_gid)
    e = mx.index_select(0, run_gid) - (x0.to(dtype) + 0.5)  # [R]
    d = my.index_select(0, run_gid) - (y.to(dtype) + 0.5)  # [R]
    c0 = 0.5 * (a_ * e * e + c_ * d * d) + b_ * e * d - log_o.index_select(0, run_gid)  # [R]
    c1 = -(a_ * e + b_ * d)  # [R]
    c2 = 0.5 * a_  # [R]
    return c0, c1, c2


def _rasterize_camera(
    means2d,
    conics,
    colors,
    opacities,
    depths,
    radii,
    width: int,
    height: int,
    pairs_per_band: int,
    stats: RasterStats | None,
):
    """One camera: colour [H * W, D] and alpha [H * W], no background (see
    :func:`rasterize_to_pixels` for the inputs, here without the camera axis)."""
    vis = torch.nonzero((radii > 0).all(-1)).squeeze(-1)  # [G]
    vis = vis[torch.sort(depths.detach()[vis], stable=True).indices]  # front to back
    if vis.numel() == 0:
        n_pix = height * width
        return means2d.new_zeros(n_pix, colors.shape[-1]), means2d.new_zeros(n_pix)
    # One 1D tensor per parameter (see _CompositeRows), [G] each, differentiable.
    mx, my = means2d[:, 0].index_select(0, vis), means2d[:, 1].index_select(0, vis)
    A, B, C = (conics[:, k].index_select(0, vis) for k in range(3))
    log_o = torch.log(opacities.index_select(0, vis).clamp_min(1e-30))
    colors_t = colors.index_select(0, vis).T.contiguous()  # [D, G]
    gaussians = (mx, my, A, B, C, log_o)
    fp, width_est = _footprints(*(v.detach() for v in gaussians), width=width, height=height)
    edges = _band_edges(fp.ylo, fp.yhi.clamp_min(0), width_est, height, pairs_per_band)
    colour, alpha = [], []
    for y0, y1 in itertools.pairwise(edges):
        run_gid, y, x0, run_len = _row_runs(fp, y0, y1, width)  # [R] each
        c0, c1, c2 = _run_quadratics(*gaussians, run_gid, y, x0)  # [R] each
        run_pix0 = (y - y0) * width + x0  # [R] band pixel of each run's first pixel
        o, a = _CompositeRows.apply(
            c0,
            c1,
            c2,
            colors_t,
            run_gid.to(torch.int32),
            run_pix0,
            run_len,
            (y1 - y0) * width,
            stats,
        )  # [P, D], [P]
        colour.append(o)
        alpha.append(a)
    return torch.cat(colour, 0), torch.cat(alpha, 0)


def rasterize_to_pixels(
    means2d: Tensor,
    conics: Tensor,
    colors: Tensor,
    opacities: Tensor,
    depths: Tensor,
    radii: Tensor,
    width: int,
    height: int,
    backgrounds: Tensor | None = None,
    pairs_per_band: int | None = None,
    stats: RasterStats | None = None,
) -> tuple[Tensor, Tensor]:
    """Composite C images from projected Gaussians.

    Args:
        means2d [C, N, 2], conics [C, N, 3], colors [C, N, D], opacities [C, N] (already
        multiplied by any antialiasing compensation), depths [C, N] (sort keys), radii
        [C, N, 2] (only Gaussians with both radii > 0 are drawn), backgrounds [C, D].

    Returns:
        colours [C, H, W, D] and alphas [C, H, W, 1], differentiable w.r.t. means2d, conics,
        colors and opacities.
    """
    C = means2d.shape[0]
    pairs_per_band = pairs_per_band or DEFAULT_PAIRS_PER_BAND
    renders, alphas = [], []
    for c in range(C):
        colour, alpha = _rasterize_camera(
            means2d[c],
            conics[c],
            colors[c],
            opacities[c],
            depths[c],
            radii[c],
            width,
            height,
            pairs_per_band,
            stats,
        )  # [H * W, D], [H * W]
        renders.append(colour)
        alphas.append(alpha)
    return camera_images(renders, alphas, width, height, backgrounds)


def _stacked(per_camera: list[Tensor] | Tensor) -> Tensor:
    return torch.stack(per_camera) if isinstance(per_camera, list) else per_camera


def camera_images(
    colours: list[Tensor] | Tensor,
    alphas: list[Tensor] | Tensor,
    width: int,
    height: int,
    backgrounds: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Colours [C, H, W, D] and alphas [C, H, W, 1] from each camera's composited pixels
    (colour [H * W, D] or [H, W, D], alpha [H * W] or [H, W, 1], a list or stacked), with
    ``backgrounds`` [C, D] showing through the transmittance left: the last step of every
    compositor (this one, the compiled kernel's and the dense reference's)."""
    C, D = len(colours), colours[0].shape[-1]
    render = _stacked(colours).reshape(C, height, width, D)
    alpha = _stacked(alphas).reshape(C, height, width, 1)
    if backgrounds is not None:
        render = render + (1.0 - alpha) * backgrounds[:, None, None, :]
    return render, alpha
