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
DEFAULT_PAIRS_PER_BAND = 3_000_000
# we build CSR matrices with torch's checks off (they are sorted by construction); the
# "beta" notice would print once per process in every student's notebook
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")


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
        D = colors_t.shape[0]
        dtype, dev = colors_t.dtype, colors_t.device
        offs = torch.cumsum(run_len, 0) - run_len
        M = int(offs[-1] + run_len[-1]) if run_len.numel() else 0
        # Run id and pixel id of every pair, in generation (depth) order, by cumulative sums
        # of per-run jumps: cheaper than repeat_interleave + gathers.
        jumps = torch.zeros(M, dtype=torch.int32, device=dev)
        jumps[offs[1:]] = 1
        r = torch.cumsum(jumps, 0, dtype=torch.int32)
        jumps.fill_(1)
        prev_end = torch.cat([run_pix0.new_zeros(1), (run_pix0 + run_len - 1)[:-1]])
        jumps[offs] = (run_pix0 - prev_end).to(torch.int32)
        pix = torch.cumsum(jumps, 0, dtype=torch.int32)
        del jumps
        # Pairs were generated front to back; a stable sort by pixel keeps that order.
        pix, order = torch.sort(pix, stable=True)
        r = r.index_select(0, order)
        xl = (order - offs.index_select(0, r)).to(dtype)
        del order
        power = torch.addcmul(c1.index_select(0, r), c2.index_select(0, r), xl)
        power = torch.addcmul(c0.index_select(0, r), power, xl)
        alpha = torch.exp(power.neg_()).clamp_max_(ALPHA_MAX)
        del power
        alpha = F.threshold(alpha, ALPHA_MIN, 0.0)  # skip pairs fainter than 1/255

        n_pairs = int(torch.count_nonzero(alpha)) if stats is not None else 0
        # log T before each pair: a cumulative sum restarted at every pixel (in float64: the
        # running sum over a whole band is large, the differences must stay exact; what is
        # left is small, so the rest, exp included, runs in the input precision again).
        la = torch.log1p(-alpha)
        la64 = la.to(torch.float64)
        starts = _run_pixel_starts(run_pix0, run_len, n_pix)
        cs_ex = torch.cumsum(la64, 0).sub_(la64)
        del la64
        logT_ex = cs_ex.sub_(cs_ex.index_select(0, starts.index_select(0, pix))).to(dtype)
        del cs_ex
        # A pair that would bring T to 1e-4 or below ends its pixel, with all pairs behind.
        dead = (logT_ex + la) <= math.log(T_MIN)
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
        T_ex = torch.exp(logT_ex)
        del logT_ex
        w = T_ex * alpha
        gid = run_gid.index_select(0, r)
        # The weights form a sparse [pixels, Gaussians] matrix in CSR layout (rows are pixels,
        # already sorted): colour and alpha of every pixel are one sparse @ dense product with
        # [colours | 1], several times faster than gathering colours per pair and reducing.
        weights = torch.sparse_csr_tensor(starts, gid, w, size=(n_pix, colors_t.shape[1]),
                                          check_invariants=False)
        ones = colors_t.new_ones(1, colors_t.shape[1])
        both = weights @ torch.cat([colors_t, ones], 0).T.contiguous()  # [P, D + 1]
        out, alpha_pix = both[:, :D].contiguous(), both[:, D].contiguous()
        del weights, both
        if stats is not None:
            stats.n_candidate_pairs += M
            stats.n_pairs += n_pairs
            stats.n_composited += int(torch.count_nonzero(w))
            stats.n_bands += 1
        # d alpha / d power: -alpha where unclamped, 0 where clamped at 0.999 or skipped.
        dadp = F.threshold(-alpha, -ALPHA_MAX, 0.0)
        ctx.save_for_backward(r, xl, alpha, dadp, T_ex, pix, starts, gid, alpha_pix, colors_t)
        ctx.n_runs = c0.shape[0]
        return out, alpha_pix

    @staticmethod
    def backward(ctx, g_out, g_alpha):
        r, xl, alpha, dadp, T_ex, pix, starts, gid, alpha_pix, colors_t = ctx.saved_tensors
        dtype, dev = T_ex.dtype, T_ex.device
        w = alpha * T_ex
        D = colors_t.shape[0]
        cols = [colors_t[k].index_select(0, gid) for k in range(D)]
        g = [g_out[:, k].index_select(0, pix) for k in range(D)]
        grad_colors = None
        if ctx.needs_input_grad[3]:
            grad_colors = torch.zeros_like(colors_t)
            for k in range(D):
                grad_colors[k].index_add_(0, gid, w * g[k])
        grads = [None, None, None]
        if any(ctx.needs_input_grad[:3]):
            cg = cols[0] * g[0]  # c_i . dL/dout
            for k in range(1, D):
                cg.addcmul_(cols[k], g[k])
            del g
            v = (w * cg).to(torch.float64)
            cs = torch.cumsum(v, 0)
            del v
            last = starts.index_select(0, pix + 1).sub_(1)  # last pair of this pair's pixel
            behind = (cs.index_select(0, last) - cs).to(dtype)  # colour still to come
            del cs, last
            # d out / d alpha_i = T_i c_i - behind_i / (1 - alpha_i);
            # d alpha_pix / d alpha_i = T_final / (1 - alpha_i).
            tail = ((1.0 - alpha_pix) * g_alpha).index_select(0, pix)
            g_a = T_ex * cg
            g_a -= (behind - tail) / (1.0 - alpha)
            g_power = g_a.mul_(dadp)
            n = ctx.n_runs
            g0 = torch.zeros(n, dtype=dtype, device=dev).index_add_(0, r, g_power)
            g_power = g_power * xl
            g1 = torch.zeros(n, dtype=dtype, device=dev).index_add_(0, r, g_power)
            g2 = torch.zeros(n, dtype=dtype, device=dev).index_add_(0, r, g_power.mul_(xl))
            grads = [g0, g1, g2]
        return (*grads, grad_colors, None, None, None, None, None)


def _row_extents(mx, my, A, B, C, t):
    """Half-height of each ellipse ``power <= t`` (t = log(255 opacity)), in pixels."""
    det = (A * C - B * B).clamp_min(1e-30)
    return torch.sqrt((2.0 * t * A / det).clamp_min(0.0)), det


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
    D = colors.shape[-1]
    dtype = means2d.dtype
    renders, alphas = [], []
    for c in range(C):
        vis = torch.nonzero((radii[c] > 0).all(-1)).squeeze(-1)
        vis = vis[torch.sort(depths[c].detach()[vis], stable=True).indices]
        if vis.numel() == 0:
            renders.append(means2d.new_zeros(height * width, D))
            alphas.append(means2d.new_zeros(height * width))
            continue
        # Per visible Gaussian, front to back, one 1D tensor per parameter (see _CompositeRows).
        gmx = means2d[c, :, 0].index_select(0, vis)
        gmy = means2d[c, :, 1].index_select(0, vis)
        gA, gB, gC = (conics[c, :, k].index_select(0, vis) for k in range(3))
        glo = torch.log(opacities[c].index_select(0, vis).clamp_min(1e-30))
        colors_t = colors[c].index_select(0, vis).T.contiguous()  # [D, G]
        with torch.no_grad():
            mx, my, A, B, Cc, lo = (v.detach() for v in (gmx, gmy, gA, gB, gC, glo))
            t = lo + POWER_AT_ALPHA_MIN  # power threshold where alpha hits 1/255
            ext_y, det = _row_extents(mx, my, A, B, Cc, t)
            ylo = torch.ceil(my - ext_y - 0.5 - _MARGIN).clamp(0, height - 1).to(torch.int64)
            yhi = torch.floor(my + ext_y - 0.5 + _MARGIN).clamp(-1, height - 1).to(torch.int64)
            has_rows = (yhi >= ylo) & (t > 0)
            ext_x = torch.sqrt((2.0 * t * Cc / det).clamp_min(0.0))
            width_est = ((2 * ext_x + 1).clamp(max=width) * has_rows).to(torch.float64)
            edges = _band_edges(ylo, yhi.clamp_min(0), width_est, height, pairs_per_band)

        img, alp = [], []
        for y0, y1 in itertools.pairwise(edges):
            n_pix = (y1 - y0) * width
            with torch.no_grad():
                sel = torch.nonzero(has_rows & (ylo < y1) & (yhi >= y0)).squeeze(-1)
                ya = ylo[sel].clamp_min(y0)
                nrows = yhi[sel].clamp_max(y1 - 1) - ya + 1
                rg = torch.repeat_interleave(sel, nrows)  # Gaussian (index into vis) per run
                roffs = torch.cumsum(nrows, 0) - nrows
                y = torch.repeat_interleave(ya - roffs, nrows)
                y += torch.arange(rg.numel(), device=rg.device)
                qmx, qmy, qA, qB, qt, qdet = (
                    v.index_select(0, rg) for v in (mx, my, A, B, t, det)
                )
                dy = qmy - (y.to(dtype) + 0.5)
                s = torch.sqrt((2.0 * qt * qA - qdet * dy * dy).clamp_min(0.0))
                lo_x = qmx + (qB * dy - s) / qA
                hi_x = qmx + (qB * dy + s) / qA
                x0 = torch.ceil(lo_x - 0.5 - _MARGIN).clamp_min(0).to(torch.int64)
                x1 = torch.floor(hi_x - 0.5 + _MARGIN).clamp_max(width - 1).to(torch.int64)
                run_len = x1 - x0 + 1
                keep = torch.nonzero(run_len > 0).squeeze(-1)  # one nonzero, four gathers
                rg, y, x0, run_len = (v.index_select(0, keep) for v in (rg, y, x0, run_len))
                run_pix0 = (y - y0) * width + x0
            # Differentiable (c0, c1, c2) per run: power - log(opacity) as a quadratic in xl.
            a_, b_, c_ = gA.index_select(0, rg), gB.index_select(0, rg), gC.index_select(0, rg)
            e = gmx.index_select(0, rg) - (x0.to(dtype) + 0.5)
            d = gmy.index_select(0, rg) - (y.to(dtype) + 0.5)
            c0 = 0.5 * (a_ * e * e + c_ * d * d) + b_ * e * d - glo.index_select(0, rg)
            c1 = -(a_ * e + b_ * d)
            c2 = 0.5 * a_
            o, a = _CompositeRows.apply(
                c0, c1, c2, colors_t, rg.to(torch.int32), run_pix0, run_len, n_pix, stats
            )
            img.append(o)
            alp.append(a)
        renders.append(torch.cat(img, 0))
        alphas.append(torch.cat(alp, 0))
    render = torch.stack(renders).reshape(C, height, width, D)
    alpha = torch.stack(alphas).reshape(C, height, width, 1)
    if backgrounds is not None:
        render = render + (1.0 - alpha) * backgrounds[:, None, None, :]
    return render, alpha
