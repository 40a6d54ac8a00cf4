"""The compiled CPU rasterizer: alpha compositing as plain loops, compiled once by numba.

Same semantics as :mod:`.rasterize` (gsplat's and the 3DGS paper's), pixel by pixel, front to
back, written the way a GPU kernel is written, but cut to fit two CPU cores instead of
thousands of GPU threads:

    alpha_i = min(0.999, o_i exp(-power_i)),   power = 0.5 d^T conic d     (3DGS Eq. 4-5)
    skip the pair if alpha_i < 1/255; stop before T would reach 1e-4
    C = sum_i c_i alpha_i T_i,   T_i = prod_{j<i} (1 - alpha_j)              (3DGS Eq. 3)

**Why not gsplat's tiles.** gsplat gives each 16x16 tile of pixels to one CUDA block and
each pixel to one GPU thread; every Gaussian whose box touches the tile is tested at all 256
pixels. On a GPU those tests are free (the threads would idle otherwise). On a CPU every test
costs time: on the bench scene the tiles test 14x more (Gaussian, pixel) candidates than the
pairs that really have alpha >= 1/255 (:func:`tile_waste` measures it). So here:

1. **Exact runs.** For a Gaussian and a pixel row, the pixels with alpha >= 1/255 are one run,
   the chord of the ellipse ``power <= log(255 o)`` (a quadratic in x). Only those are visited,
   left to right, and along a run ``exp(-power)`` is a product of factors that change
   geometrically (:func:`_run_start`): no ``exp`` per pixel.
2. **Row lists, in depth order.** Count the Gaussians crossing each row, take a prefix sum,
   fill the lists Gaussian after Gaussian in depth order: every row's list is sorted for free.
3. **Many bands of rows, taken by whichever core is free.** Rows are independent: the image
   is cut into several bands of rows per thread (:data:`BANDS_PER_THREAD`), with equal work
   (pixels on the runs) in each. Each thread (the caller and a small pool of helpers) calls
   the same compiled kernel, which releases the GIL (``nogil=True``) and takes bands itself,
   one atomic add on a shared counter each, until none is left: no core waits for another
   inside the loop, none comes back to Python between bands, and a core slowed by another
   program simply takes fewer bands. Between kernels the helpers wait in compiled code as
   well, spinning for a few milliseconds and giving way to any other thread, so the ten
   kernels of a frame start on every core at once; when another program holds a helper up,
   the kernels run on the caller alone for a while (:class:`_Helpers`).
4. **Forward, front to back.** Walking a row's list in order and each Gaussian's run left to
   right visits every pixel's pairs front to back: the compositing loop of Eq. 3.
5. **Backward, back to front.** The same walk in reverse. ``T_i`` is recovered by division,
   ``T_i = T_{i+1} / (1 - alpha_i)`` (as gsplat does), and the colour still to come behind a
   pair is a running sum, so nothing per pair is stored. Each Gaussian's gradient is summed
   over its run and added once per row to its band's own slot for it (no two threads add to
   the same numbers, no atomics); the bands' slots are then added up in band order, so the
   gradients come out the same on every run, whichever thread took which band (gsplat's
   ``atomicAdd`` gives no such promise).

Arithmetic is float64 inside the kernel whatever the input dtype (a CPU pays about the same
for it, and ``T`` recovered by division stays exact). Compiled code is cached on disk
(``cache=True``, in :func:`numba_cache_dir`), so only the very first call on a machine pays
the compile.

The projection (EWA splatting, :func:`project_gaussians`: projection.py's maths, per
Gaussian) and the SH colours are compiled here too, forward and backward, in one pass over
the Gaussians (:func:`project_and_colour`). The glue between the kernels is a handful of
torch calls for all cameras at once: on two cores, a hundred small torch operations cost as
much as the pixels.

Used by: every CPU render (``backend.py`` picks it by default), lesson 4 (the kernel's
structure and the tile-waste figure).
"""

from __future__ import annotations

import functools
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from splatcourse.constants import ALPHA_MAX, ALPHA_MIN, POWER_AT_ALPHA_MIN, T_MIN

from . import projection
from .projection import SIGMA_EXTENT, Projection, batched_cameras, check_gaussians
from .rasterize import RasterStats, camera_images

__all__ = [
    "composite_camera",
    "glue_on_one_torch_thread",
    "numba_cache_dir",
    "project_gaussians",
    "rasterize_to_pixels",
    "tile_waste",
    "warm_up",
]

NUMBA_CACHE_ENV = "NUMBA_CACHE_DIR"
_MARGIN = 0.01  # px of slack on the analytic runs; the exact alpha test trims the rest


def numba_cache_dir() -> Path:
    """Where compiled kernels are kept: ``$NUMBA_CACHE_DIR``, else ``data/cache/numba`` of the
    course checkout, else ``~/.cache/splatcourse/numba`` (an installed package, no checkout)."""
    env = os.environ.get(NUMBA_CACHE_ENV)
    if env:
        return Path(env)
    try:
        from splatcourse.paths import data_dir

        return data_dir() / "cache" / "numba"
    except FileNotFoundError:
        return Path.home() / ".cache" / "splatcourse" / "numba"


def _set_cache_dir() -> None:
    """numba reads its cache folder when a cached function is defined: set it before that."""
    path = numba_cache_dir()
    path.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault(NUMBA_CACHE_ENV, str(path))


_set_cache_dir()

from llvmlite import ir as llvm_ir  # noqa: E402
from numba import njit, types  # noqa: E402 (after the cache folder is chosen)
from numba.core import cgutils  # noqa: E402
from numba.core import config as numba_config  # noqa: E402 (its fields are set at run time)
from numba.extending import intrinsic  # noqa: E402

# numba may have been imported before: tell it the folder directly too
numba_config.CACHE_DIR = os.environ[NUMBA_CACHE_ENV]  # pyright: ignore[reportAttributeAccessIssue]
# No numba threading layer (``parallel=True``) anywhere: every kernel is serial code that
# releases the GIL, run on bands by the module's own threads (:func:`_in_bands`). numba's layers
# were a poor fit: a static split per core, GNU OpenMP aborts a forked child (the grading zygote
# forks every kernel), and their start-up wants a writable /dev/shm, which a sandbox lacks.

_N_GRAD = 6  # per-Gaussian gradient slots before the colours: mx, my, A, B, C, opacity
BANDS_PER_THREAD = 6  # more bands than threads: a free core takes the next band


# --------------------------------------------------------------------- handing out bands
# Every parallel kernel takes ``next_band`` (an int64 array) and the edges of its bands, and
# loops: take the next band nobody has taken, do it, take another, until none is left.
# Taking one is a single atomic add on ``next_band[0]``, inside the compiled code: the
# threads never come back to Python (and the GIL) between bands. The helper threads wait
# for the next kernel in compiled code too (:class:`_Helpers`): ``control`` [4] holds the
# band counter, the helpers that have finished, the job's number and how many helpers it
# wants.
_NEXT, _FINISHED, _JOB, _WANTED = 0, 1, 2, 3

#: how long a waiting thread spins before it sleeps, in CPU cycles (2-4 ms at 2-4 GHz), and
#: at most in turns of the loop (should the cycle counter stand still)
SPIN_CYCLES, SPIN_TURNS = 8_000_000, 20_000
#: a caller that waits longer than this for its helpers' last bands (~1 ms; a band's tail
#: takes ~0.1 ms) had one held up. :data:`STALLS_IN_A_ROW` such kernels in a row (one alone
#: is a hiccup of the machine) mean another program took a helper's core, which it shares
#: now in turns of milliseconds, and every kernel would wait so for it. The next
#: :data:`ALONE_AFTER_STALL` kernels (about two frames) run on the caller alone, then the
#: helpers are tried again; each time they are held up again, twice as many run alone (up
#: to :data:`MOST_ALONE`). Each kernel cuts its work into the same bands either way: the
#: results do not change.
STALL_CYCLES, STALLS_IN_A_ROW, ALONE_AFTER_STALL, MOST_ALONE = 2_500_000, 3, 20, 320
#: a turn of the spin loop that took longer than this (in cycles, ~0.3-0.5 ms; a turn takes
#: ~0.2 us, and the virtual machine's own hiccups up to ~0.15 ms) gave the core to another
#: thread that wanted it: the spinning thread goes to sleep instead of taking it back
GAVE_WAY_CYCLES = 1_000_000

if sys.platform == "win32":  # (no sched_yield: a waiting thread spins plainly)

    @njit(cache=True, inline="always")
    def _give_way():
        return 0

else:
    #: a spinning thread lets any other thread waiting for its core run first (one system
    #: call, ~0.2 us when none is)
    _give_way = types.ExternalFunction("sched_yield", types.int32())


@intrinsic
def _cycles(typingctx):
    """The CPU's cycle counter (``rdtsc`` on x86): a clock without a system call."""

    def codegen(context, builder, signature, args):
        counter = cgutils.get_or_insert_function(
            builder.module, llvm_ir.FunctionType(llvm_ir.IntType(64), []), "llvm.readcyclecounter"
        )
        return builder.call(counter, [])

    return types.int64(), codegen


@njit(cache=True, inline="always")
def _spin_on(start):
    """Give way once, then whether to go on spinning: not after :data:`SPIN_CYCLES` since
    ``start``, nor once the core went to another thread for a while (a busy machine: a
    thread that sleeps instead gets the core back as soon as it has work, where one that
    kept spinning would have used up its share of the core)."""
    before = _cycles()  # pyright: ignore[reportCallIssue]
    _give_way()
    now = _cycles()
    return now - before < GAVE_WAY_CYCLES and now - start < SPIN_CYCLES


@intrinsic
def _fetch_add(typingctx, counter, i, value):
    """``counter[i] += value`` as one atomic instruction; returns the value before."""
    if not (isinstance(counter, types.Array) and counter.dtype == types.int64):
        return None

    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        index = context.cast(builder, args[1], signature.args[1], types.intp)
        amount = context.cast(builder, args[2], signature.args[2], types.int64)
        return builder.atomic_rmw("add", builder.gep(array.data, [index]), amount, "seq_cst")

    return types.int64(counter, i, value), codegen


@intrinsic
def _load(typingctx, counter, i):
    """``counter[i]``, read from memory every time (another thread may change it)."""
    if not (isinstance(counter, types.Array) and counter.dtype == types.int64):
        return None

    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        index = context.cast(builder, args[1], signature.args[1], types.intp)
        return builder.load_atomic(builder.gep(array.data, [index]), "acquire", 8)

    return types.int64(counter, i), codegen


@njit(cache=True, inline="always")
def _take_band(next_band, edges):
    """The next band of ``edges`` [n_bands + 1] that no thread has taken yet, or -1."""
    band = _fetch_add(next_band, _NEXT, 1)  # pyright: ignore[reportCallIssue]
    return band if band < edges.shape[0] - 1 else -1


@njit(cache=True, nogil=True)
def _post_job(control, wanted):
    """Open a new job for ``wanted`` helpers: counters back to zero, then the job's number
    moves on (an atomic add: a helper that sees the new number sees the zeros too)."""
    control[_NEXT], control[_FINISHED], control[_WANTED] = 0, 0, wanted
    _fetch_add(control, _JOB, 1)  # pyright: ignore[reportCallIssue]


@njit(cache=True, nogil=True)
def _wait_for_helpers(control):
    """Spin, without the GIL, until the job's helpers have all finished: the cycles it took,
    or -1 where it is time to sleep instead (see :func:`_spin_on`). The last helper is
    usually a band away: spinning catches it at once, where a sleeping thread takes ~0.1 ms
    to wake on a virtual machine."""
    start = _cycles()  # pyright: ignore[reportCallIssue]
    for _ in range(SPIN_TURNS):
        if _load(control, _FINISHED) >= _load(control, _WANTED):
            return _cycles() - start
        if not _spin_on(start):
            break
    return -1


@njit(cache=True, nogil=True)
def _finish_and_wait_for_job(control, finished, job):
    """A helper's time between kernels, without the GIL: count itself ``finished`` (if it
    took part), then spin until a job after ``job`` has started (True), or it is time to
    sleep instead (False; see :func:`_spin_on`). "Started" means the caller has taken a
    band, so it is inside the kernel and has let go of the GIL: the helper takes it at once
    instead of sleeping until the caller lets go (each sleep costs a wake-up, ~0.1 ms on a
    virtual machine)."""
    if finished:
        _fetch_add(control, _FINISHED, 1)  # pyright: ignore[reportCallIssue]
    start = _cycles()  # pyright: ignore[reportCallIssue]
    for _ in range(SPIN_TURNS):
        if _load(control, _JOB) != job and _load(control, _NEXT) > 0:
            return True
        if not _spin_on(start):
            break
    return False


# ------------------------------------------------------------------------------ footprints
# Names, as in rasterize.py: (mx, my) the 2D mean in pixels, conic [[A, B], [B, C]] the
# inverse screen covariance (Eq. 5), o the opacity, t = log(255 o): alpha >= 1/255 exactly
# inside the ellipse power <= t. G visible Gaussians, front to back; R (Gaussian, row) runs.


@njit(cache=True, inline="always")
def _row_run(mx, my, A, B, det, t, y, width):
    """Pixels ``x0 .. x1`` of row ``y`` inside the ellipse ``power <= t`` (x1 < x0: none).

    With ``dy = my - (y + 0.5)``, the pixel centres inside solve a quadratic in x:
    ``px = mx + (B dy -+ s) / A``, ``s = sqrt(2 t A - det dy^2)``; round inwards.
    """
    dy = my - (y + 0.5)
    s = math.sqrt(max(2.0 * t * A - det * dy * dy, 0.0))
    x0 = max(math.ceil(mx + (B * dy - s) / A - 0.5 - _MARGIN), 0)
    x1 = min(math.floor(mx + (B * dy + s) / A - 0.5 + _MARGIN), width - 1)
    return x0, x1


@njit(cache=True, inline="always")
def _run_start(mx, my, A, B, C, x0, y):
    """Where a walk along a run starts: ``(dx, dy, power, step, e, ratio, ratio_step)``.

    At pixel x0 of row y, d = mean - pixel centre and power = 0.5 d^T conic d (Eq. 4).
    Along the row, dx drops by 1 per pixel, so power is a quadratic in x: it moves by
    ``step``, and ``step`` grows by A. Then e = exp(-power) moves by the factor
    ``ratio = exp(-step)``, and ``ratio`` by ``ratio_step = exp(-A)``: three ``exp`` per run
    instead of one per pixel.
    """
    dx = mx - (x0 + 0.5)
    dy = my - (y + 0.5)
    power = 0.5 * (A * dx * dx + C * dy * dy) + B * dx * dy
    step = 0.5 * A - (A * dx + B * dy)  # power(x + 1) - power(x)
    return dx, dy, power, step, math.exp(-power), math.exp(-step), math.exp(-A)


@njit(cache=True, inline="always")
def _alpha(power, e, o):
    """alpha = min(0.999, o exp(-power)) (Eq. 4), or 0 if the pair is skipped (power < 0
    cannot happen for a valid conic; fainter than 1/255 is the 3DGS rule)."""
    alpha = min(ALPHA_MAX, o * e)
    if power < 0.0 or alpha < ALPHA_MIN:
        return 0.0
    return alpha


@njit(cache=True, nogil=True)
def _row_spans(next_band, edges, my, A, det, t, height, ylo, yhi, counts):
    """First and last pixel row, ``ylo`` and ``yhi`` [G], of the Gaussians in each block
    ``edges[b] .. edges[b + 1] - 1`` this thread takes (none: ylo > yhi), each counted on its
    rows in ``counts[b]`` [blocks, H]. The ellipse ``power <= t`` reaches
    ``sqrt(2 t A / det)`` above and below the mean."""
    band = _take_band(next_band, edges)
    while band >= 0:  # every band this thread takes (see _in_bands)
        for g in range(edges[band], edges[band + 1]):
            half_h = math.sqrt(max(2.0 * t[g] * A[g] / det[g], 0.0)) if t[g] > 0.0 else -1.0
            ylo[g] = max(math.ceil(my[g] - half_h - 0.5 - _MARGIN), 0)
            yhi[g] = min(math.floor(my[g] + half_h - 0.5 + _MARGIN), height - 1)
            if half_h < 0.0:
                yhi[g] = ylo[g] - 1
            for y in range(ylo[g], yhi[g] + 1):
                counts[band, y] += 1
        band = _take_band(next_band, edges)


@njit(cache=True, nogil=True)
def _fill_rows(next_band, edges, mx, my, A, B, det, t, width, ylo, yhi, cursor, row_gid,
               row_work):  # fmt: skip
    """Put the Gaussians of each block ``edges[b] .. edges[b + 1] - 1`` this thread takes,
    in order, on their rows' lists: the block's next free slot on row y in ``row_gid`` [R] is
    ``cursor[b, y]`` [blocks, H]; ``row_work[b]`` [blocks, H] counts the pixels on their
    runs."""
    band = _take_band(next_band, edges)
    while band >= 0:  # every band this thread takes (see _in_bands)
        for g in range(edges[band], edges[band + 1]):
            for y in range(ylo[g], yhi[g] + 1):
                row_gid[cursor[band, y]] = g
                cursor[band, y] += 1
                x0, x1 = _row_run(mx[g], my[g], A[g], B[g], det[g], t[g], y, width)
                row_work[band, y] += max(x1 - x0 + 1, 0)
        band = _take_band(next_band, edges)


def _row_lists(mx, my, A, B, det, t, width: int, height: int):
    """The Gaussians crossing each pixel row, front to back, and the work on each row.

    Returns ``row_start`` [H + 1], ``row_gid`` [R] (row y's list is
    ``row_gid[row_start[y]:row_start[y + 1]]``), ``row_work`` [H] (pixels on the row's
    runs) and each Gaussian's first and last row, ``ylo`` and ``yhi`` [G] (none: ylo > yhi).
    Count per row, prefix sum, then fill Gaussian after Gaussian: the Gaussians come sorted
    by depth, so every list is too. Both steps run on blocks of Gaussians, in parallel; a
    block's Gaussians go after those of the blocks before it on every row, so the lists
    stay in depth order.
    """
    G = len(my)
    edges, n_workers = _gaussian_blocks(G)  # [blocks + 1]
    ylo, yhi = np.empty(G, np.int64), np.empty(G, np.int64)  # [G] each
    counts = np.zeros((len(edges) - 1, height), np.int64)  # [blocks, H]
    _in_bands(_row_spans, edges, n_workers, my, A, det, t, height, ylo, yhi, counts)
    row_start, cursor = _list_starts(counts)  # [H + 1], [blocks, H]
    row_gid = np.empty(int(row_start[-1]), np.int32)  # [R]
    work = np.zeros((len(edges) - 1, height), np.int64)  # [blocks, H]
    _in_bands(_fill_rows, edges, n_workers, mx, my, A, B, det, t, width, ylo, yhi, cursor,
              row_gid, work)  # fmt: skip
    return row_start, row_gid, work.sum(axis=0), ylo, yhi


@njit(cache=True)
def _list_starts(counts):
    """Where the row lists start, ``row_start`` [H + 1], and where each block's Gaussians
    start on each row, ``cursor`` [blocks, H] (after the blocks before it), from their
    counts [blocks, H]: prefix sums, rows in order, blocks in order within a row."""
    n_blocks, H = counts.shape
    row_start, cursor = np.empty(H + 1, np.int64), np.empty((n_blocks, H), np.int64)
    row_start[0] = 0
    for y in range(H):
        at = row_start[y]
        for b in range(n_blocks):
            cursor[b, y] = at
            at += counts[b, y]
        row_start[y + 1] = at
    return row_start, cursor


@njit(cache=True)
def _bands(row_work, n_bands):
    """Cut the rows into ``n_bands`` runs of rows with about equal work (``row_work`` [H]
    pixels on each row's runs): edges [n_bands + 1] (fewer where two cuts fall on the same
    row: a band is never empty).

    Several bands per thread (see :func:`_in_bands`): taking one costs an atomic add, nothing
    next to the work in it, and with many a core slowed by another program leaves its share
    to the others.
    """
    H = row_work.shape[0]
    done = np.cumsum(row_work + 1)  # [H] work up to each row (+1: an empty row costs a little)
    edges = np.empty(n_bands + 1, np.int64)  # [<= n_bands + 1]
    edges[0], n = 0, 1
    for i in range(1, n_bands):
        target = done[-1] * i / n_bands
        nearest = 0  # the row whose end comes nearest the target (the first, on a tie)
        for y in range(1, H):
            if abs(done[y] - target) < abs(done[nearest] - target):
                nearest = y
        if nearest + 1 > edges[n - 1]:
            edges[n] = nearest + 1
            n += 1
    if edges[n - 1] < H:
        edges[n] = H
        n += 1
    return edges[:n]


@njit(cache=True)
def _stable_order(values):
    """Indices [G] that sort ``values`` [G] ascending, equal values in index order (what a
    stable sort gives): an LSD radix sort on the bits of the float64 values, one byte per
    pass, skipping the bytes all values share (depths in a narrow range share most)."""
    G = values.shape[0]
    as_float = np.empty(G, np.float64)  # [G]
    for i in range(G):
        as_float[i] = values[i] + 0.0  # -0.0 becomes 0.0: they are equal
    bits = as_float.view(np.uint64)  # [G]
    keys = np.empty(G, np.uint64)  # [G] unsigned keys in the order of the floats
    for i in range(G):
        flip = np.uint64(0xFFFFFFFFFFFFFFFF) if bits[i] >> np.uint64(63) else np.uint64(1 << 63)
        keys[i] = bits[i] ^ flip
    counts = np.zeros((8, 257), np.int64)  # [byte, value + 1]
    for i in range(G):
        for p in range(8):
            counts[p, ((keys[i] >> np.uint64(8 * p)) & np.uint64(255)) + 1] += 1
    order, spare = np.arange(G), np.empty(G, np.int64)  # [G] each
    for p in range(8):
        if counts[p].max() == G:
            continue  # every key has the same byte here
        starts = np.cumsum(counts[p])  # [257] where each byte value's run begins
        for i in order:  # in the current order: equal bytes keep it (stable)
            byte = (keys[i] >> np.uint64(8 * p)) & np.uint64(255)
            spare[starts[byte]] = i
            starts[byte] += 1
        order, spare = spare, order
    return order


@njit(cache=True)
def _drawn(radii):
    """The Gaussians one camera draws (radii [N, 2] > 0): their indices [G], in order."""
    drawn = np.empty(radii.shape[0], np.int64)  # [N] indices of the drawn ones, first G used
    G = 0
    for n in range(radii.shape[0]):
        if radii[n, 0] > 0 and radii[n, 1] > 0:
            drawn[G] = n
            G += 1
    return drawn[:G]


@njit(cache=True, nogil=True)
def _sort_blocks(next_band, edges, values, order):
    """Sort each block ``values[edges[b]:edges[b + 1]]`` this thread takes, stably: its
    indices into ``values``, in order, into the same part of ``order`` [G]."""
    band = _take_band(next_band, edges)
    while band >= 0:
        start, stop = edges[band], edges[band + 1]
        order[start:stop] = _stable_order(values[start:stop]) + start
        band = _take_band(next_band, edges)


@njit(cache=True, nogil=True)
def _merge_halves(next_band, edges, values, order, middle, merged):
    """Merge the two sorted runs ``order[:middle]`` and ``order[middle:]`` (indices into
    ``values``, each in ascending order of value) into ``merged`` [G], on two threads: band 0
    of ``edges`` [0, h, G] writes its first h entries from the front, band 1 the rest from
    the back. On a tie the first run's index (the lower one) goes first, so the merge is as
    stable as the sorts, and the two ends meet without overlap."""
    G = order.shape[0]
    band = _take_band(next_band, edges)
    while band >= 0:  # every band this thread takes (see _in_bands)
        if band == 0:  # the smallest first
            i, j = 0, middle
            for k in range(edges[1]):
                if j >= G or (i < middle and not values[order[j]] < values[order[i]]):
                    merged[k] = order[i]
                    i += 1
                else:
                    merged[k] = order[j]
                    j += 1
        else:  # the largest first: of equal values, the second run's goes last
            i, j = middle - 1, G - 1
            for k in range(G - 1, edges[1] - 1, -1):
                if i < 0 or (j >= middle and not values[order[j]] < values[order[i]]):
                    merged[k] = order[j]
                    j -= 1
                else:
                    merged[k] = order[i]
                    i -= 1
        band = _take_band(next_band, edges)


def _drawn_front_to_back(depths: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """The Gaussians one camera draws (radii [N, 2] > 0), front to back: their indices
    ``vis`` [G], sorted by depths [N] (stably, so ties keep index order as in
    rasterize.py). On two threads each sorts half, and the halves are merged."""
    drawn = _drawn(radii)  # [G]
    keys = np.ascontiguousarray(depths[drawn])  # [G]
    G = len(drawn)
    if _threads_for(G, MIN_GAUSSIANS_PER_THREAD) == 1:
        return drawn[_stable_order(keys)]
    halves = np.array([0, G // 2, G], np.int64)  # [3] a half each
    order, merged = np.empty(G, np.int64), np.empty(G, np.int64)  # [G] each
    _in_bands(_sort_blocks, halves, 2, keys, order)  # [G] each half sorted
    _in_bands(_merge_halves, halves, 2, keys, order, G // 2, merged)  # [G]
    return drawn[merged]


@njit(cache=True, nogil=True)
def _gather(next_band, edges, vis, means2d, conics, colors, opacities, mx, my, A, B, C, det,
            o, t, cols):  # fmt: skip
    """The drawn Gaussians ``vis`` [G] as the kernels read them, float64, front to back
    (those of each block ``vis[edges[b]:edges[b + 1]]`` this thread takes).

    From one camera's means2d [N, 2], conics [N, 3], colors [N, D], opacities [N] into
    mx, my, A, B, C (the conic), det = AC - B^2, o and t = log(255 o) (alpha >= 1/255
    where power <= t), all [G], and cols [G, D].
    """
    band = _take_band(next_band, edges)
    while band >= 0:  # every band this thread takes (see _in_bands)
        for i in range(edges[band], edges[band + 1]):
            n = vis[i]
            mx[i], my[i] = means2d[n, 0], means2d[n, 1]
            A[i], B[i], C[i] = conics[n, 0], conics[n, 1], conics[n, 2]
            det[i] = max(A[i] * C[i] - B[i] * B[i], 1e-30)
            o[i] = opacities[n]
            t[i] = np.log(o[i]) + POWER_AT_ALPHA_MIN  # -inf for o = 0: never drawn
            for d in range(colors.shape[1]):
                cols[i, d] = colors[n, d]
        band = _take_band(next_band, edges)


@njit(cache=True, inline="always")
def _write_gradient(total, n, g_means2d, g_conics, g_colors, g_opacities):
    """One Gaussian's gradient ``total`` [6 + D] (mx, my, A, B, C, opacity, colours...) into
    row ``n`` of g_means2d [N, 2], g_conics [N, 3], g_opacities [N] and g_colors [N, D]."""
    g_means2d[n, 0], g_means2d[n, 1] = total[0], total[1]
    for k in range(3):
        g_conics[n, k] = total[2 + k]
    g_opacities[n] = total[5]
    for d in range(g_colors.shape[1]):
        g_colors[n, d] = total[_N_GRAD + d]


@njit(cache=True, nogil=True)
def _sum_bands(next_band, bands, row_start, slots, slot_of, slot_gid, n_slots, band_of_row, ylo,
               yhi, vis, g_means2d, g_conics, g_colors, g_opacities):  # fmt: skip
    """Add up the gradient of each drawn Gaussian that meets several bands over them, in band
    order, and write it to ``vis`` [G] (their indices) of one camera: g_means2d [N, 2],
    g_conics [N, 3], g_colors [N, D], g_opacities [N] (zeros elsewhere, set by the caller;
    a Gaussian inside one band was written by :func:`_backward_bands`); each Gaussian by
    the thread that takes its first band ``b`` (see :func:`_in_bands`).

    Band ``b``'s ``n_slots[b]`` slots start at ``slots[row_start[bands[b]]]`` [R, 6 + D],
    for the Gaussians ``slot_gid`` [R] there; Gaussian ``i``'s slot in band ``k`` is
    ``slot_of[k, i]`` [bands, G] (see :func:`_backward_bands`). ``band_of_row`` [H] gives
    each row's band and ``ylo``, ``yhi`` [G] each Gaussian's rows, so it meets bands
    ``band_of_row[ylo[i]] .. band_of_row[yhi[i]]``. A band's own slots are read in order;
    only a Gaussian that reaches further bands reads one slot in each. Summing in band
    order, not in the order the threads finished, makes the gradients the same on every run.
    """
    total = np.empty(slots.shape[1])  # [6 + D] one Gaussian's gradient
    band = _take_band(next_band, bands)
    while band >= 0:
        start = row_start[bands[band]]
        for s in range(start, start + n_slots[band]):
            i = slot_gid[s]
            if band_of_row[ylo[i]] != band or band_of_row[yhi[i]] == band:
                continue  # summed with its first band; or inside this one: written already
            for k in range(slots.shape[1]):
                total[k] = slots[s, k]
            for b in range(band + 1, band_of_row[yhi[i]] + 1):
                later = row_start[bands[b]] + slot_of[b, i]
                for k in range(slots.shape[1]):
                    total[k] += slots[later, k]
            _write_gradient(total, vis[i], g_means2d, g_conics, g_colors, g_opacities)
        band = _take_band(next_band, bands)


# ------------------------------------------------------------------------------- forward


@njit(cache=True, inline="always")
def _composite_row(y, mx, my, A, B, C, det, o, t, colors, row_start, row_gid, width,
                   out, T, last, stats, D):  # fmt: skip
    """Composite the pixels of row ``y`` front to back (Eq. 3) into ``out`` [W, D] (zeros
    on entry), writing its slice of ``T`` [P], ``last`` [P] and ``stats[y]`` (see
    :func:`_forward_bands`); ``D`` is the number of colour channels.

    Walking the row's list in depth order and each Gaussian's run left to right visits the
    pairs of every pixel in depth order, so each pixel is composited front to back.
    """
    done = np.zeros(width, np.bool_)  # [W] pixels past the early termination
    n_candidates = n_pairs = n_composited = 0  # the row's counts (locals: kept in registers)
    for k in range(row_start[y], row_start[y + 1]):
        g = row_gid[k]
        x0, x1 = _row_run(mx[g], my[g], A[g], B[g], det[g], t[g], y, width)
        n_candidates += max(x1 - x0 + 1, 0)
        _, _, power, step, e, ratio, ratio_step = _run_start(mx[g], my[g], A[g], B[g], C[g], x0, y)
        A_g, o_g = A[g], o[g]  # (locals: the stores below might alias the arrays, registers not)
        for x in range(x0, x1 + 1):
            alpha = _alpha(power, e, o_g)  # Eq. 4
            power, step = power + step, step + A_g  # on to the next pixel
            e, ratio = e * ratio, ratio * ratio_step
            if alpha == 0.0:
                continue  # fainter than 1/255 at this pixel
            n_pairs += 1
            if done[x]:
                continue
            p = y * width + x
            T_next = T[p] * (1.0 - alpha)  # T_{i+1} = T_i (1 - alpha_i)
            if T_next <= T_MIN:  # this pair would make the pixel opaque: stop before it
                done[x] = True
                continue
            w = alpha * T[p]  # the pair's weight alpha_i T_i
            for c in range(D):
                out[x, c] += w * colors[g, c]  # C += c_i alpha_i T_i (Eq. 3)
            T[p] = T_next
            last[p] = k
            n_composited += 1
    stats[y, 0] += n_candidates  # (+=: the cameras of one call share the counts)
    stats[y, 1] += n_pairs
    stats[y, 2] += n_composited


@njit(cache=True, nogil=True)
def _forward_bands(next_band, bands, mx, my, A, B, C, det, o, t, colors, row_start, row_gid,
                   width, out, alpha, T, last, stats):  # fmt: skip
    """Composite the rows ``bands[b] .. bands[b + 1] - 1`` of every band ``b`` this thread
    takes (see :func:`_in_bands`); runs without the GIL, beside the other threads.

    Inputs [G] per Gaussian (front to back), colors [G, D]. Writes the band's rows of
    ``out`` [H * W, D] (no background) and ``alpha`` [H * W] = 1 - T, both in the caller's
    dtype (summed in float64, rounded once), ``T`` [H * W] (final transmittance, float64),
    ``last`` [H * W] (index into row_gid of each pixel's last composited pair, -1: none) and
    ``stats`` [H, 3] (candidate pairs on the runs, pairs with alpha >= 1/255, composited
    pairs); bands share no rows, so no two threads write the same numbers.
    """
    D = colors.shape[1]
    row = np.empty((width, D))  # [W, D] one row's colour, summed in float64
    band = _take_band(next_band, bands)
    while band >= 0:
        for y in range(bands[band], bands[band + 1]):
            row[:] = 0.0
            if D == 3:  # RGB: with D a constant the colour loops unroll (9% off the band loops)
                _composite_row(y, mx, my, A, B, C, det, o, t, colors, row_start, row_gid, width,
                               row, T, last, stats, 3)  # fmt: skip
            else:
                _composite_row(y, mx, my, A, B, C, det, o, t, colors, row_start, row_gid, width,
                               row, T, last, stats, D)  # fmt: skip
            for x in range(width):
                p = y * width + x
                for c in range(D):
                    out[p, c] = row[x, c]
                alpha[p] = 1.0 - T[p]
        band = _take_band(next_band, bands)


# ------------------------------------------------------------------------------ backward


@njit(cache=True, inline="always")
def _backprop_row(y, mx, my, A, B, C, det, o, t, colors, row_start, row_gid, width, T_final,
                  last, g_out, g_alpha, y0, ylo, slot_of, n_slots, slots, slot_gid, D):  # fmt: skip
    """Add row ``y``'s share to its band's gradient ``slots`` [S, 6 + D] (mx, my, A, B, C,
    opacity, colours...), one slot per Gaussian the band meets, in the order it meets them:
    on a Gaussian's first row in the band (``y0`` the band's first row, ``ylo`` [G] each
    Gaussian's first row) it takes slot ``n_slots``, noted in ``slot_of`` [G] and
    ``slot_gid`` [S] (both ways); later rows add to it. Returns the slots used. A band's
    slots are few and side by side in memory, and need no zeroing.

    Per pixel, back to front, with ``g = dL/dout`` and ``S`` the colour still to come,
    ``S_i = sum_{j>i} alpha_j T_j (c_j . g)``:

        dL/dc_i     = alpha_i T_i g
        dL/dalpha_i = T_i (c_i . g) - (S_i - T_final dL/dalpha_pix) / (1 - alpha_i)

    then through alpha = o exp(-power) (no gradient where clamped at 0.999):
    ``dalpha/do = exp(-power)``, ``dalpha/dpower = -alpha``, and power's derivatives in
    mx, my, A, B, C. A Gaussian's gradient is summed over its run, then added once.
    ``D`` is the number of colour channels.
    """
    T = T_final[y * width : (y + 1) * width].copy()  # [W] T behind the last pair
    S = np.zeros(width)  # [W] colour still to come, sum of alpha T (c . g)
    g_colour = np.zeros(D)  # [D] one Gaussian's colour gradient, summed over its run
    for k in range(row_start[y + 1] - 1, row_start[y] - 1, -1):
        g = row_gid[k]
        x0, x1 = _row_run(mx[g], my[g], A[g], B[g], det[g], t[g], y, width)
        g_colour[:] = 0.0
        # dL/dpower summed over the run, times 1, dx and dx^2 (dy is the row's): enough for
        # mx, my, A, B, C (below), and dL/do
        sum_p = sum_p_dx = sum_p_dx2 = g_o = 0.0
        dx, dy, power, step, e, ratio, ratio_step = _run_start(
            mx[g], my[g], A[g], B[g], C[g], x0, y
        )
        A_g, o_g = A[g], o[g]  # (locals: the stores below might alias the arrays, registers not)
        for x in range(x0, x1 + 1):
            p = y * width + x
            alpha, dx_pix, e_pix = _alpha(power, e, o_g), dx, e  # the forward's walk
            dx, power, step = dx - 1.0, power + step, step + A_g  # on to the next pixel
            e, ratio = e * ratio, ratio * ratio_step
            if alpha == 0.0 or k > last[p]:
                continue  # too faint, or behind the early termination
            one_over = 1.0 / (1.0 - alpha)
            T_i = T[x] * one_over  # transmittance in front of this pair
            w = alpha * T_i
            cg = 0.0  # c_i . g
            for c in range(D):
                cg += colors[g, c] * g_out[p, c]
                g_colour[c] += w * g_out[p, c]  # dL/dc_i = alpha_i T_i g
            dL_dalpha = T_i * cg - (S[x] - T_final[p] * g_alpha[p]) * one_over
            S[x] += w * cg
            T[x] = T_i
            if alpha >= ALPHA_MAX:
                continue  # clamped: alpha does not move with the Gaussian
            dL_dpower = -alpha * dL_dalpha
            sum_p += dL_dpower
            p_dx = dL_dpower * dx_pix
            sum_p_dx += p_dx
            sum_p_dx2 += p_dx * dx_pix
            g_o += dL_dalpha * e_pix  # d alpha / d o = exp(-power)
        if y == y0 or y == ylo[g]:  # the Gaussian's first row in this band: a new slot
            slot_of[g], slot_gid[n_slots] = n_slots, g
            slots[n_slots, :] = 0.0
            n_slots += 1
        grad = slots[slot_of[g]]  # [6 + D]
        # power = 0.5 (A dx^2 + C dy^2) + B dx dy, summed over the run's pixels:
        grad[0] += A[g] * sum_p_dx + B[g] * dy * sum_p  # d power / d mx = A dx + B dy
        grad[1] += C[g] * dy * sum_p + B[g] * sum_p_dx  # d power / d my = C dy + B dx
        grad[2] += 0.5 * sum_p_dx2  # d power / d A
        grad[3] += dy * sum_p_dx  # d power / d B
        grad[4] += 0.5 * dy * dy * sum_p  # d power / d C
        grad[5] += g_o
        for c in range(D):
            grad[_N_GRAD + c] += g_colour[c]
    return n_slots


@njit(cache=True, nogil=True)
def _backward_bands(next_band, bands, mx, my, A, B, C, det, o, t, colors, row_start, row_gid,
                    width, T_final, last, g_out, g_alpha, ylo, yhi, slots, slot_of, slot_gid,
                    n_slots, vis, g_means2d, g_conics, g_colors, g_opacities):  # fmt: skip
    """The gradients of every band ``b`` (rows ``bands[b] .. bands[b + 1] - 1``) this thread
    takes (see :func:`_in_bands`), back to front, into the band's own slots: ``slots``
    [R, 6 + D] from entry ``row_start[bands[b]]`` on (a band meets at most as many
    Gaussians as its rows' lists hold), ``slot_of[b]`` [bands, G] each Gaussian's slot
    there (only those of the Gaussians the band meets are written), ``slot_gid`` [R] the
    Gaussian in each slot and ``n_slots[b]`` [bands] how many. A Gaussian whose rows
    ``ylo .. yhi`` [G] lie inside the band has its whole gradient there: it is written at
    once to ``vis`` [G] (their indices) of g_means2d [N, 2], g_conics [N, 3], g_colors
    [N, D] and g_opacities [N], while the band's slots are still in this core's cache. Runs
    without the GIL; :func:`_sum_bands` adds up the Gaussians that meet several bands."""
    D = colors.shape[1]
    band = _take_band(next_band, bands)
    while band >= 0:
        y0, y1 = bands[band], bands[band + 1]
        band_slots, n = slots[row_start[y0] : row_start[y1]], 0  # [S, 6 + D], slots used
        band_gid = slot_gid[row_start[y0] : row_start[y1]]  # [S]
        for y in range(y0, y1):
            if D == 3:  # RGB: with D a constant the colour loops unroll (as in _forward_bands)
                n = _backprop_row(y, mx, my, A, B, C, det, o, t, colors, row_start, row_gid,
                                  width, T_final, last, g_out, g_alpha, y0, ylo, slot_of[band],
                                  n, band_slots, band_gid, 3)  # fmt: skip
            else:
                n = _backprop_row(y, mx, my, A, B, C, det, o, t, colors, row_start, row_gid,
                                  width, T_final, last, g_out, g_alpha, y0, ylo, slot_of[band],
                                  n, band_slots, band_gid, D)  # fmt: skip
        n_slots[band] = n
        for k in range(n):  # the Gaussians inside this band: done
            i = band_gid[k]
            if ylo[i] >= y0 and yhi[i] < y1:
                _write_gradient(band_slots[k], vis[i], g_means2d, g_conics, g_colors, g_opacities)
        band = _take_band(next_band, bands)


# ------------------------------------------------------------------ view-dependent colour
# The real SH basis of sh.py, bands 0..3, at a unit direction (x, y, z), and its derivatives.
# colour = max(0, 0.5 + sum_k Y_k(d / |d|) coeff_k), d = mean - camera centre (as 3DGS).
_SH_C0 = 0.28209479177387814
_SH_C1 = 0.4886025119029199
_SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792,
          0.5462742152960396)  # fmt: skip
_SH_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
          -0.4570457994644658, 1.445305721320277, -0.5900435899266435)  # fmt: skip


@njit(cache=True, inline="always")
def _sh_basis(x, y, z, Y, dY):
    """Y [16] the basis at (x, y, z), dY [16, 3] its partial derivatives in x, y, z."""
    xx, yy, zz = x * x, y * y, z * z
    Y[0] = _SH_C0
    Y[1], dY[1, 1] = -_SH_C1 * y, -_SH_C1
    Y[2], dY[2, 2] = _SH_C1 * z, _SH_C1
    Y[3], dY[3, 0] = -_SH_C1 * x, -_SH_C1
    c = _SH_C2
    Y[4], dY[4, 0], dY[4, 1] = c[0] * x * y, c[0] * y, c[0] * x
    Y[5], dY[5, 1], dY[5, 2] = c[1] * y * z, c[1] * z, c[1] * y
    Y[6] = c[2] * (2 * zz - xx - yy)
    dY[6, 0], dY[6, 1], dY[6, 2] = -2 * c[2] * x, -2 * c[2] * y, 4 * c[2] * z
    Y[7], dY[7, 0], dY[7, 2] = c[3] * x * z, c[3] * z, c[3] * x
    Y[8], dY[8, 0], dY[8, 1] = c[4] * (xx - yy), 2 * c[4] * x, -2 * c[4] * y
    c = _SH_C3
    Y[9], dY[9, 0], dY[9, 1] = c[0] * y * (3 * xx - yy), 6 * c[0] * x * y, 3 * c[0] * (xx - yy)
    Y[10] = c[1] * x * y * z
    dY[10, 0], dY[10, 1], dY[10, 2] = c[1] * y * z, c[1] * x * z, c[1] * x * y
    Y[11] = c[2] * y * (4 * zz - xx - yy)
    dY[11, 0], dY[11, 1] = -2 * c[2] * x * y, c[2] * (4 * zz - xx - 3 * yy)
    dY[11, 2] = 8 * c[2] * y * z
    Y[12] = c[3] * z * (2 * zz - 3 * xx - 3 * yy)
    dY[12, 0], dY[12, 1] = -6 * c[3] * x * z, -6 * c[3] * y * z
    dY[12, 2] = c[3] * (6 * zz - 3 * xx - 3 * yy)
    Y[13] = c[4] * x * (4 * zz - xx - yy)
    dY[13, 0], dY[13, 1] = c[4] * (4 * zz - 3 * xx - yy), -2 * c[4] * x * y
    dY[13, 2] = 8 * c[4] * x * z
    Y[14] = c[5] * z * (xx - yy)
    dY[14, 0], dY[14, 1], dY[14, 2] = 2 * c[5] * x * z, -2 * c[5] * y * z, c[5] * (xx - yy)
    Y[15], dY[15, 0] = c[6] * x * (xx - 3 * yy), 3 * c[6] * (xx - yy)
    dY[15, 1] = -6 * c[6] * x * y


@njit(cache=True, inline="always")
def _view_direction(mean, campos):
    """The unit direction (x, y, z) from a camera centre campos [3] to a mean [3], and the
    distance (at least 1e-12)."""
    dx, dy, dz = mean[0] - campos[0], mean[1] - campos[1], mean[2] - campos[2]
    norm = max(math.sqrt(dx * dx + dy * dy + dz * dz), 1e-12)
    return dx / norm, dy / norm, dz / norm, norm


@njit(cache=True, inline="always")
def _sh_colour(n, n_basis, coeffs, means, campos, out, Y, dY):
    """Gaussian ``n``'s colour in every camera, ``out[c, n]`` [3] = max(0, 0.5 + sum_k
    Y_k(d / |d|) coeffs[., n, k]), d = mean - camera centre: coeffs [1 or C, N, K, 3]
    (shared by the cameras, or one set per camera), means [N, 3], campos [C, 3]; only the
    first ``n_basis`` = (degree + 1)^2 used. Y [16], dY [16, 3] are scratch."""
    shared = coeffs.shape[0] == 1
    for c in range(campos.shape[0]):
        ux, uy, uz, _ = _view_direction(means[n], campos[c])
        _sh_basis(ux, uy, uz, Y, dY)
        k_set = coeffs[0 if shared else c, n]  # [K, 3]
        r, g, b = 0.5, 0.5, 0.5
        for k in range(n_basis):
            r += Y[k] * k_set[k, 0]
            g += Y[k] * k_set[k, 1]
            b += Y[k] * k_set[k, 2]
        out[c, n, 0], out[c, n, 1], out[c, n, 2] = max(r, 0.0), max(g, 0.0), max(b, 0.0)


@njit(cache=True, inline="always")
def _sh_gradient(n, n_basis, coeffs, means, campos, g, g_coeffs, g_dir, Y, dY):
    """Gaussian ``n``'s share of the gradients of :func:`_sh_colour` from g = dL/dcolours
    [C, N, 3]: its coefficients' ``g_coeffs[., n]`` (summed over the cameras when they
    share them) and, per camera, dL/dd into ``g_dir`` [C, 3] (d = mean - camera centre).

    No gradient where a colour is clamped at 0 (torch's clamp_min passes it where the sum
    is >= 0). Through the normalisation u = d / |d|: dL/dd = (dL/du - u (u . dL/du)) / |d|.
    """
    shared = coeffs.shape[0] == 1
    for c in range(campos.shape[0]):
        ux, uy, uz, norm = _view_direction(means[n], campos[c])
        _sh_basis(ux, uy, uz, Y, dY)
        k_set, g_set = coeffs[0 if shared else c, n], g_coeffs[0 if shared else c, n]  # [K, 3]
        r, gg, b = 0.5, 0.5, 0.5
        for k in range(n_basis):
            r += Y[k] * k_set[k, 0]
            gg += Y[k] * k_set[k, 1]
            b += Y[k] * k_set[k, 2]
        g_r = g[c, n, 0] if r >= 0.0 else 0.0  # clamped at 0: no gradient
        g_g = g[c, n, 1] if gg >= 0.0 else 0.0
        g_b = g[c, n, 2] if b >= 0.0 else 0.0
        first = c == 0 or not shared  # write the coefficients' gradient, or add to it
        gx = gy = gz = 0.0  # dL/du
        for k in range(g_set.shape[0]):
            if k >= n_basis:
                if first:
                    g_set[k, 0] = g_set[k, 1] = g_set[k, 2] = 0.0
                continue
            if first:
                g_set[k, 0], g_set[k, 1], g_set[k, 2] = Y[k] * g_r, Y[k] * g_g, Y[k] * g_b
            else:
                g_set[k, 0] += Y[k] * g_r
                g_set[k, 1] += Y[k] * g_g
                g_set[k, 2] += Y[k] * g_b
            along_k = k_set[k, 0] * g_r + k_set[k, 1] * g_g + k_set[k, 2] * g_b
            gx += dY[k, 0] * along_k
            gy += dY[k, 1] * along_k
            gz += dY[k, 2] * along_k
        if norm > 1e-12:
            along = ux * gx + uy * gy + uz * gz
            g_dir[c, 0] = (gx - ux * along) / norm
            g_dir[c, 1] = (gy - uy * along) / norm
            g_dir[c, 2] = (gz - uz * along) / norm
        else:
            g_dir[c, 0] = g_dir[c, 1] = g_dir[c, 2] = 0.0


# ----------------------------------------------------------------- projection, backward
# EWA splatting (projection.py, 3DGS Eq. 5-6) run backwards, per Gaussian: the forward is
# projection.py's own (the same numbers on both CPU backends), its gradient is compiled here.
# Per Gaussian: q -> R (normalised quaternion), M = R diag(s), Sigma = M M^T (Eq. 6);
# per camera: t = W m + w (camera space), u = t_x / t_z, v = t_y / t_z, mean2d = (f_x u + c_x,
# f_y v + c_y); J's rows, clamped like gsplat's: T_0 = (f_x / t_z) (W_0 - u_c W_2),
# T_1 = (f_y / t_z) (W_1 - v_c W_2); cov2d = [[a, b], [b, c]] = T Sigma T^T + eps2d I (Eq. 5);
# conic = (c, -b, a) / (a c - b^2).


@njit(cache=True, inline="always")
def _rotation(quat, R):
    """R [3, 3] of the quaternion (w, x, y, z) [4], normalised; returns (w, x, y, z, length).
    A float32 quaternion is widened first: its length is taken in float64 too."""
    q0, q1, q2, q3 = (
        np.float64(quat[0]),
        np.float64(quat[1]),
        np.float64(quat[2]),
        np.float64(quat[3]),
    )
    norm = max(math.sqrt(q0**2 + q1**2 + q2**2 + q3**2), 1e-12)
    w, x, y, z = q0 / norm, q1 / norm, q2 / norm, q3 / norm
    R[0, 0], R[0, 1], R[0, 2] = 1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)
    R[1, 0], R[1, 1], R[1, 2] = 2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)
    R[2, 0], R[2, 1], R[2, 2] = 2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)
    return w, x, y, z, norm


@njit(cache=True, inline="always")
def _quat_gradient(w, x, y, z, norm, g_R, g_quat):
    """dL/dquat [4] from dL/dR [3, 3]: through R(w, x, y, z), then the normalisation
    q / |q| (dL/dq = (g - q_n (q_n . g)) / |q|)."""
    gw = 2 * (-z * g_R[0, 1] + y * g_R[0, 2] + z * g_R[1, 0] - x * g_R[1, 2] - y * g_R[2, 0]
              + x * g_R[2, 1])  # fmt: skip
    gx = 2 * (y * g_R[0, 1] + z * g_R[0, 2] + y * g_R[1, 0] - 2 * x * g_R[1, 1] - w * g_R[1, 2]
              + z * g_R[2, 0] + w * g_R[2, 1] - 2 * x * g_R[2, 2])  # fmt: skip
    gy = 2 * (-2 * y * g_R[0, 0] + x * g_R[0, 1] + w * g_R[0, 2] + x * g_R[1, 0]
              + z * g_R[1, 2] - w * g_R[2, 0] + z * g_R[2, 1] - 2 * y * g_R[2, 2])  # fmt: skip
    gz = 2 * (-2 * z * g_R[0, 0] - w * g_R[0, 1] + x * g_R[0, 2] + w * g_R[1, 0]
              - 2 * z * g_R[1, 1] + y * g_R[1, 2] + x * g_R[2, 0] + y * g_R[2, 1])  # fmt: skip
    along = w * gw + x * gx + y * gy + z * gz
    if norm <= 1e-12:  # the length was clamped: no gradient through it
        along = 0.0
    g_quat[0], g_quat[1] = (gw - w * along) / norm, (gx - x * along) / norm
    g_quat[2], g_quat[3] = (gy - y * along) / norm, (gz - z * along) / norm


@njit(cache=True, inline="always")
def _screen_covariance(W, Sigma, u, v, tz, K, width, height, eps2d, T0, T1, ST0, ST1):
    """cov2d = T Sigma T^T + eps2d I = [[a, b], [b, c]] (Eq. 5) for one camera (W [4, 4],
    K [3, 3]) and Gaussian (Sigma [3, 3], u = t_x / t_z, v = t_y / t_z, t_z), with the two
    rows of T = J W left in ``T0``, ``T1`` [3] and Sigma T^T in ``ST0``, ``ST1`` [3]; J's u
    and v clamped to 1.3x the half field of view, as gsplat and projection.py do. Returns
    (a, b, c, uc, vc, ax, ay, u_inside, v_inside): the clamped u, v, the focal lengths over
    depth, and whether u, v were inside the clamp (else no gradient)."""
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    lo_u, hi_u = -(cx / fx + 0.15 * width / fx), (width - cx) / fx + 0.15 * width / fx
    lo_v, hi_v = -(cy / fy + 0.15 * height / fy), (height - cy) / fy + 0.15 * height / fy
    uc, vc = min(max(u, lo_u), hi_u), min(max(v, lo_v), hi_v)
    ax, ay = fx / tz, fy / tz
    for j in range(3):  # J = [[ax, 0, -ax uc], [0, ay, -ay vc]]
        T0[j] = ax * (W[0, j] - uc * W[2, j])
        T1[j] = ay * (W[1, j] - vc * W[2, j])
    for i in range(3):
        ST0[i] = Sigma[i, 0] * T0[0] + Sigma[i, 1] * T0[1] + Sigma[i, 2] * T0[2]  # Sigma T0
        ST1[i] = Sigma[i, 0] * T1[0] + Sigma[i, 1] * T1[1] + Sigma[i, 2] * T1[2]  # Sigma T1
    a = T0[0] * ST0[0] + T0[1] * ST0[1] + T0[2] * ST0[2] + eps2d
    b = T0[0] * ST1[0] + T0[1] * ST1[1] + T0[2] * ST1[2]
    c = T1[0] * ST1[0] + T1[1] * ST1[1] + T1[2] * ST1[2] + eps2d
    return a, b, c, uc, vc, ax, ay, lo_u < u < hi_u, lo_v < v < hi_v


@njit(cache=True, inline="always")
def _world_covariance(quat, scale, R, M, Sigma):
    """Sigma = M M^T, M = R diag(s) (Eq. 6) into ``Sigma`` [3, 3] (R, M [3, 3] too) from a
    quaternion [4] and scales [3]; returns ``_rotation``'s (w, x, y, z, length)."""
    w, x, y, z, norm = _rotation(quat, R)
    for i in range(3):
        for j in range(3):
            M[i, j] = R[i, j] * scale[j]
    for i in range(3):
        for j in range(3):
            Sigma[i, j] = M[i, 0] * M[j, 0] + M[i, 1] * M[j, 1] + M[i, 2] * M[j, 2]
    return w, x, y, z, norm


@njit(cache=True, inline="always")
def _screen_covariance_backward(W, Sigma, u, v, tz, K, width, height, eps2d, g_conic,
                                T0, T1, ST0, ST1, g_Sigma):  # fmt: skip
    """Through cov2d = T Sigma T^T + eps2d I and its inverse, the conic, for one camera
    (W [4, 4], K [3, 3]) and Gaussian (Sigma [3, 3], u, v, t_z): adds dL/dSigma to
    ``g_Sigma`` [3, 3] and returns (dL/du, dL/dv, dL/dt_z). T0, T1, ST0, ST1 [3] are scratch.

    The conic (P, Q, R) = (c, -b, a) / det, det = a c - b^2, has the derivatives
    dP/da = -P^2, dP/db = -2PQ, dP/dc = -Q^2, dQ/da = -PQ, dQ/db = -(PR + Q^2), dQ/dc = -QR,
    dR/da = -Q^2, dR/db = -2QR, dR/dc = -R^2.
    """
    fx, fy = K[0, 0], K[1, 1]
    a, b, c, uc, vc, ax, ay, u_in, v_in = _screen_covariance(
        W, Sigma, u, v, tz, K, width, height, eps2d, T0, T1, ST0, ST1
    )
    det = a * c - b * b
    P, Q, R = c / det, -b / det, a / det  # the conic
    gP, gQ, gR = g_conic[0], g_conic[1], g_conic[2]
    g_a = -(gP * P * P + gQ * P * Q + gR * Q * Q)
    g_b = -(2.0 * gP * P * Q + gQ * (P * R + Q * Q) + 2.0 * gR * Q * R)
    g_c = -(gP * Q * Q + gQ * Q * R + gR * R * R)
    for i in range(3):  # a = T0 Sigma T0^T, b = T0 Sigma T1^T, c = T1 Sigma T1^T
        for j in range(3):
            g_Sigma[i, j] += g_a * T0[i] * T0[j] + g_b * T0[i] * T1[j] + g_c * T1[i] * T1[j]
    g_ax = g_ay = g_uc = g_vc = 0.0
    for j in range(3):
        g_T0 = 2.0 * g_a * ST0[j] + g_b * ST1[j]
        g_T1 = g_b * ST0[j] + 2.0 * g_c * ST1[j]
        g_ax += g_T0 * (W[0, j] - uc * W[2, j])
        g_uc -= g_T0 * ax * W[2, j]
        g_ay += g_T1 * (W[1, j] - vc * W[2, j])
        g_vc -= g_T1 * ay * W[2, j]
    g_u = g_uc if u_in else 0.0  # no gradient through the clamp
    g_v = g_vc if v_in else 0.0
    return g_u, g_v, -(g_ax * fx + g_ay * fy) / (tz * tz)  # ax = f_x / t_z, ay = f_y / t_z


@njit(cache=True, nogil=True)
def _projection_forward_blocks(next_band, edges, means, quats, scales, opacities, viewmats, Ks,
                               width, height, near, far, eps2d, radius_clip, n_basis, coeffs,
                               campos, means2d, covars2d, conics, depths, radii, ok,
                               colours):  # fmt: skip
    """The Gaussians in each block ``edges[b] .. edges[b + 1] - 1`` this thread takes,
    projected into every camera (projection.py's EWA projection, gsplat's semantics) and,
    where ``n_basis`` > 0, coloured (:func:`_sh_colour`): one pass over them for both.

    means [N, 3], quats [N, 4], scales [N, 3], opacities [N] (or [0]: no opacity-aware
    box), coeffs [1 or C, N, K, 3] (SH, or [1, 0, 0, 3] with n_basis = 0) in float32 or
    float64 (the arithmetic is float64 either way), viewmats [C, 4, 4], Ks [C, 3, 3] and
    the camera centres campos [C, 3] float64. Writes means2d [C, N, 2], covars2d
    [C, N, 2, 2], conics [C, N, 3], depths [C, N], colours [C, N, 3] (in the inputs' dtype),
    radii [C, N, 2] and ok [C, N] (kept); a culled Gaussian has zero means2d, conics and
    radii, as in projection.py.
    """
    R, M, Sigma = np.empty((3, 3)), np.empty((3, 3)), np.empty((3, 3))  # [3, 3] each
    T0, T1, ST0, ST1 = np.empty(3), np.empty(3), np.empty(3), np.empty(3)  # [3] each
    Y, dY = np.zeros(16), np.zeros((16, 3))  # [16], [16, 3] the SH basis
    band = _take_band(next_band, edges)
    while band >= 0:  # every band this thread takes (see _in_bands)
        for n in range(edges[band], edges[band + 1]):
            _world_covariance(quats[n], scales[n], R, M, Sigma)
            # the screen box: 3.33 std, or where o e^-p >= 1/255
            extend, faint = SIGMA_EXTENT, False
            if opacities.shape[0] > 0:
                op = opacities[n]
                faint = not op >= ALPHA_MIN
                to_faintest = math.log(max(op, ALPHA_MIN) * (1.0 / ALPHA_MIN))
                extend = min(extend, math.sqrt(2.0 * to_faintest))
            m0, m1, m2 = means[n, 0], means[n, 1], means[n, 2]
            for c in range(viewmats.shape[0]):
                W, K = viewmats[c], Ks[c]  # [4, 4], [3, 3]
                tx = W[0, 0] * m0 + W[0, 1] * m1 + W[0, 2] * m2 + W[0, 3]
                ty = W[1, 0] * m0 + W[1, 1] * m1 + W[1, 2] * m2 + W[1, 3]
                tz = W[2, 0] * m0 + W[2, 1] * m1 + W[2, 2] * m2 + W[2, 3]
                depths[c, n] = tz
                in_depth = near <= tz <= far
                z = tz if in_depth else 1.0  # a safe depth for the culled
                u, v = tx / z, ty / z
                px, py = K[0, 0] * u + K[0, 2], K[1, 1] * v + K[1, 2]  # the 2D mean
                a, b, d = _screen_covariance(W, Sigma, u, v, z, K, width, height, eps2d, T0, T1,
                                             ST0, ST1)[:3]  # cov2d (Eq. 5)  # fmt: skip
                covars2d[c, n, 0, 0], covars2d[c, n, 0, 1] = a, b
                covars2d[c, n, 1, 0], covars2d[c, n, 1, 1] = b, d
                det = a * d - b * b
                rx = math.ceil(extend * math.sqrt(max(a, 0.0)))
                ry = math.ceil(extend * math.sqrt(max(d, 0.0)))
                on_screen = px + rx > 0 and px - rx < width and py + ry > 0 and py - ry < height
                keep = (in_depth and det > 0.0 and not faint and on_screen
                        and not (rx <= radius_clip and ry <= radius_clip))  # fmt: skip
                ok[c, n] = keep
                if keep:
                    means2d[c, n, 0], means2d[c, n, 1] = px, py
                    conics[c, n, 0], conics[c, n, 1], conics[c, n, 2] = d / det, -b / det, a / det
                    radii[c, n, 0], radii[c, n, 1] = rx, ry
                else:
                    means2d[c, n, :] = 0.0
                    conics[c, n, :] = 0.0
                    radii[c, n, :] = 0
            if n_basis > 0:
                _sh_colour(n, n_basis, coeffs, means, campos, colours, Y, dY)
        band = _take_band(next_band, edges)


@njit(cache=True, nogil=True)
def _projection_backward_blocks(next_band, edges, means, quats, scales, viewmats, Ks, width,
                                height, eps2d, ok, g_means2d, g_conics, g_depths, n_basis,
                                coeffs, campos, g_colours, g_means, g_quats, g_scales,
                                g_coeffs):  # fmt: skip
    """Gradients of the Gaussians in each block this thread takes: ``g_means`` [N, 3],
    ``g_quats`` [N, 4], ``g_scales`` [N, 3] from dL/dmeans2d [C, N, 2], dL/dconics [C, N, 3],
    dL/ddepths [C, N] and, where ``n_basis`` > 0, ``g_coeffs`` [1 or C, N, K, 3] from
    dL/dcolours [C, N, 3] (:func:`_sh_gradient`): the colours' view directions move with
    the means, so both parts of dL/dmean are summed here.

    means [N, 3], quats [N, 4], scales [N, 3], coeffs and the gradients in float32 or
    float64 (the arithmetic is float64 either way), viewmats [C, 4, 4], Ks [C, 3, 3],
    campos [C, 3] float64; ``ok`` [C, N] the Gaussians the projection kept (the others have
    zero means2d and conics: only their depth has a gradient).
    """
    R, M, Sigma = np.empty((3, 3)), np.empty((3, 3)), np.empty((3, 3))  # [3, 3] each
    g_Sigma, g_R, g_M = np.empty((3, 3)), np.empty((3, 3)), np.empty((3, 3))  # [3, 3] each
    T0, T1, ST0, ST1 = np.empty(3), np.empty(3), np.empty(3), np.empty(3)  # [3] each
    t, g_t, g_m = np.empty(3), np.empty(3), np.empty(3)  # [3] camera-space mean, dL/dt, dL/dm
    Y, dY = np.zeros(16), np.zeros((16, 3))  # [16], [16, 3] the SH basis
    g_dir = np.empty((campos.shape[0], 3))  # [C, 3] dL/dd, d = mean - camera centre
    band = _take_band(next_band, edges)
    while band >= 0:  # every band this thread takes (see _in_bands)
        for n in range(edges[band], edges[band + 1]):
            w, x, y, z, norm = _world_covariance(quats[n], scales[n], R, M, Sigma)
            g_Sigma[:, :] = 0.0  # dL/dSigma summed over the cameras, every entry on its own
            g_m[:] = 0.0  # dL/dm summed over the cameras (in float64, then written once)
            for c in range(viewmats.shape[0]):
                W = viewmats[c]  # [4, 4]
                for i in range(3):  # t = W m + w
                    t[i] = W[i, 0] * means[n, 0] + W[i, 1] * means[n, 1] + W[i, 2] * means[n, 2]
                    t[i] += W[i, 3]
                g_t[0], g_t[1], g_t[2] = 0.0, 0.0, g_depths[c, n]  # depth = t_z
                if ok[c, n]:
                    u, v = t[0] / t[2], t[1] / t[2]
                    g_u, g_v, g_tz = _screen_covariance_backward(
                        W, Sigma, u, v, t[2], Ks[c], width, height, eps2d, g_conics[c, n],
                        T0, T1, ST0, ST1, g_Sigma,
                    )  # fmt: skip
                    g_u += Ks[c, 0, 0] * g_means2d[c, n, 0]  # mean2d = (f_x u + c_x, f_y v + c_y)
                    g_v += Ks[c, 1, 1] * g_means2d[c, n, 1]
                    g_t[0] += g_u / t[2]  # u = t_x / t_z, v = t_y / t_z
                    g_t[1] += g_v / t[2]
                    g_t[2] += g_tz - (g_u * t[0] + g_v * t[1]) / (t[2] * t[2])
                for k in range(3):
                    g_m[k] += W[0, k] * g_t[0] + W[1, k] * g_t[1] + W[2, k] * g_t[2]
            if n_basis > 0:  # through the colours: d = mean - camera centre
                _sh_gradient(n, n_basis, coeffs, means, campos, g_colours, g_coeffs, g_dir, Y, dY)
                for k in range(3):
                    through_colours = g_dir[0, k]
                    for c in range(1, campos.shape[0]):
                        through_colours += g_dir[c, k]
                    g_m[k] += through_colours
            g_means[n, 0], g_means[n, 1], g_means[n, 2] = g_m[0], g_m[1], g_m[2]
            for i in range(3):  # Sigma = M M^T: dL/dM = (G + G^T) M
                for j in range(3):
                    g_M[i, j] = 0.0
                    for k in range(3):
                        g_M[i, j] += (g_Sigma[i, k] + g_Sigma[k, i]) * M[k, j]
                    g_R[i, j] = g_M[i, j] * scales[n, j]  # M = R diag(s)
            for j in range(3):
                g_scales[n, j] = g_M[0, j] * R[0, j] + g_M[1, j] * R[1, j] + g_M[2, j] * R[2, j]
            _quat_gradient(w, x, y, z, norm, g_R, g_quats[n])  # (computed in float64, then stored)
        band = _take_band(next_band, edges)


# ----------------------------------------------------------------------- torch interface


_CALLER = threading.local()  # .threads: the caller's torch threads, while its glue runs on one


def _n_threads() -> int:
    """Threads for the band loops: as many as torch uses (one knob limits both), or used
    before :func:`glue_on_one_torch_thread` set it to one."""
    return max(1, getattr(_CALLER, "threads", None) or torch.get_num_threads())


@contextmanager
def glue_on_one_torch_thread() -> Iterator[None]:
    """Run the small torch operations around the kernels (the projection's forward, SH
    directions, conversions) on one torch thread; the band loops keep the caller's count.

    Why: after every parallel torch operation, OpenMP keeps its worker threads spinning for a
    while, and the glue is a hundred small operations. On a busy machine those spinning
    workers take the cores the band threads need: at a load average of 6 on 2 cores, forward
    + backward of the bench scene took 220-560 ms (190-300 ms of CPU) with torch on two
    threads and 80-107 ms (53 ms of CPU) with torch on one and the bands on two. Only the
    forward and the kernels' own backward steps are covered here: the autograd steps between
    them run on the caller's threads (``OMP_WAIT_POLICY=PASSIVE``, set before torch loads,
    stops the spinning everywhere).
    """
    outer = getattr(_CALLER, "threads", None)
    before = torch.get_num_threads()
    _CALLER.threads = outer or before
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
        _CALLER.threads = outer


def _glue_on_one_torch_thread(backward: Callable) -> Callable:
    """:func:`glue_on_one_torch_thread` around an autograd backward."""

    @functools.wraps(backward)
    def wrapped(*args):
        with glue_on_one_torch_thread():
            return backward(*args)

    return wrapped


#: how long a thread spins for the others before it sleeps (turns of the spin loop: a few
#: milliseconds on a quiet core; it gives way to other threads at every turn): the
#: caller for its helpers' last bands, a helper for the next kernel


class _Helpers:
    """The threads that run kernels beside the caller (:func:`_in_bands`), made once per
    process: ``os.cpu_count() - 1`` of them, asleep until the first kernel.

    Between kernels a helper waits in compiled code, without the GIL, spinning on
    ``control`` (see :func:`_finish_and_wait_for_job`): the gaps between the kernels of a
    frame are a fraction of a millisecond to a few, and a sleeping thread on a virtual
    machine takes ~0.1 ms to wake, as long as a small kernel. After a few milliseconds with
    no job (:data:`SPIN_CYCLES`), or as soon as another thread wants its core, it sleeps on
    a condition, and the next job (or :meth:`nudge`) wakes it.
    """

    def __init__(self, n_threads: int) -> None:
        self.control = np.zeros(4, np.int64)  # [4] band counter, finished, job, wanted
        self.job: tuple = ()  # (number, helpers wanted, kernel, edges, args) of the last job
        self.errors: list[BaseException] = []
        self.sleeping = 0  # helpers asleep on ``awake``
        self.nudges = 0  # calls to :meth:`nudge`
        self.alone = 0  # kernels still to run on the caller alone
        self.next_alone = ALONE_AFTER_STALL  # how many after the next stall
        self.stalls = 0  # kernels in a row that waited long for a helper
        self.awake = threading.Condition()
        self.one_job = threading.Lock()  # one kernel at a time, whichever thread calls it
        for index in range(n_threads):
            threading.Thread(target=self._serve, args=(index,), name=f"splat-band-{index}",
                             daemon=True).start()  # fmt: skip
        self.n_threads = n_threads

    def run(self, kernel: Callable[..., None], edges: np.ndarray, n_helpers: int, args) -> None:
        """``kernel(control, edges, *args)`` on the caller and ``n_helpers`` helpers (on the
        caller alone for a while after a helper was held up: see :data:`STALL_CYCLES`)."""
        with self.one_job:
            if self.alone > 0:
                self.alone -= 1
                kernel(np.zeros(1, np.int64), edges, *args)  # the same bands, one by one
                return
            control, wanted = self.control, min(n_helpers, self.n_threads)
            while _wait_for_helpers(control) < 0:  # (the last job's, if it was interrupted)
                time.sleep(1e-4)
            self.job = (int(control[_JOB]) + 1, wanted, kernel, edges, args)
            _post_job(control, wanted)
            if self.sleeping:
                with self.awake:
                    self.awake.notify_all()
            try:
                kernel(control, edges, *args)  # the caller's share
            finally:  # (even when it failed: the helpers may still be writing)
                waited = _wait_for_helpers(control)
                stalled = not 0 <= waited < STALL_CYCLES  # a helper held up
                while waited < 0:
                    time.sleep(1e-4)
                    waited = _wait_for_helpers(control)
                errors, self.errors = self.errors, []
            self.stalls = self.stalls + 1 if stalled else 0
            if self.stalls >= STALLS_IN_A_ROW:  # (another program is using a helper's core)
                self.stalls, self.alone = 0, self.next_alone
                self.next_alone = min(2 * self.next_alone, MOST_ALONE)
            elif not stalled:
                self.next_alone = ALONE_AFTER_STALL
            if errors:
                raise errors[0]

    def nudge(self) -> None:
        """Wake the sleeping helpers now, to spin for the kernels about to come: the
        wake-up then overlaps the caller's work before the first one."""
        if self.sleeping and not self.alone:
            with self.awake:
                self.nudges += 1
                self.awake.notify_all()

    def _serve(self, index: int) -> None:
        control, job, finished = self.control, 0, False  # no job yet
        while True:
            if not _finish_and_wait_for_job(control, finished, job):
                finished = False  # (counted)
                with self.awake:  # (a job posted before this line is seen in the loop)
                    self.sleeping += 1
                    nudges = self.nudges
                    while control[_JOB] == job and self.nudges == nudges:
                        self.awake.wait()
                    self.sleeping -= 1
                if control[_JOB] == job:
                    continue  # nudged: spin for the job on its way
            job, wanted, kernel, edges, args = self.job  # (read at once: one consistent job)
            finished = False
            if index >= wanted:
                continue  # not needed this time
            try:
                kernel(control, edges, *args)
            except BaseException as error:  # (handed to the caller)
                self.errors.append(error)
            finished = True


_HELPERS: tuple[int, _Helpers] | None = None  # (the process that made them, the helpers)
_HELPERS_LOCK = threading.Lock()


def _helpers() -> _Helpers:
    """The helper threads, made once per process: threads made before ``fork()`` do not
    exist in the child (the grading zygote forks every kernel), so a child makes its own."""
    global _HELPERS
    with _HELPERS_LOCK:
        if _HELPERS is None or _HELPERS[0] != os.getpid():
            _HELPERS = (os.getpid(), _Helpers(max(1, (os.cpu_count() or 2) - 1)))
        return _HELPERS[1]


#: below these amounts of work a second thread costs more (waking it, handing out parts)
#: than it saves, measured on the bench scene's kind of Gaussians: one thread does it all.
#: (250 Gaussians at 96x72: 2.1 ms on one thread, 4.5 ms on two; 5,000 at 128x96, 87k pairs:
#: two threads start to win.)
MIN_GAUSSIANS_PER_THREAD = 2_000  # the per-Gaussian loops: projection, SH, gathering
MIN_PIXELS_PER_THREAD = 40_000  # compositing (pixels on the runs; fused_ssim has its own)


def _threads_for(amount: int, per_thread: int) -> int:
    """Threads worth using on ``amount`` of work: the caller's count (:func:`_n_threads`),
    but one per ``per_thread`` at most."""
    return max(1, min(_n_threads(), amount // max(per_thread, 1)))


def _split(n: int, n_workers: int) -> tuple[np.ndarray, int]:
    """Edges [n_parts + 1] cutting ``range(n)`` into equal parts for ``n_workers`` threads
    (:data:`BANDS_PER_THREAD` each; one part on one thread), and the threads to use."""
    n_workers = max(1, min(n_workers, n))
    n_parts = 1 if n_workers == 1 else min(BANDS_PER_THREAD * n_workers, n)
    return np.arange(n_parts + 1, dtype=np.int64) * n // n_parts, n_workers


def _gaussian_blocks(n: int) -> tuple[np.ndarray, int]:
    """:func:`_split` for the per-Gaussian loops (projection, SH, gathering, row lists) of
    ``n`` Gaussians: edges and threads."""
    return _split(n, _threads_for(n, MIN_GAUSSIANS_PER_THREAD))


def _in_bands(kernel: Callable[..., None], edges: np.ndarray, n_workers: int, *args) -> None:
    """Run the compiled ``kernel(next_band, edges, *args)`` on ``n_workers`` threads at once,
    the caller and ``n_workers - 1`` helpers (:class:`_Helpers`): each takes the next band
    of ``edges`` [n_bands + 1] left, until none is (see :func:`_take_band`): a core slowed
    by another program simply takes fewer bands. The kernel releases the GIL, so the
    threads run side by side and never touch Python until their last band is done."""
    if n_workers <= 1:
        kernel(np.zeros(1, np.int64), edges, *args)
    else:
        _helpers().run(kernel, edges, n_workers - 1, args)


_SCRATCH = threading.local()  # .buffer: this thread's float64 scratch, kept between calls


def _scratch(shape: tuple[int, ...]) -> np.ndarray:
    """An uninitialised float64 array of ``shape``, from a buffer the calling thread keeps.

    Training asks for the same large buffer every step (the bands' gradients, megabytes);
    fresh memory costs a page fault per 4 KiB on first touch, reused memory does not. The
    buffer only grows, and lives as long as the thread.
    """
    size = math.prod(shape)
    buffer = getattr(_SCRATCH, "buffer", None)
    if buffer is None or buffer.size < size:
        buffer = _SCRATCH.buffer = np.empty(size)
    return buffer[:size].reshape(shape)


def _host(x: Tensor, dtype: torch.dtype) -> np.ndarray:
    """``x`` as a C-contiguous numpy array of ``dtype`` (no copy where it already is one)."""
    return np.ascontiguousarray(x.detach().to(dtype).numpy())


def _as_f64(x: Tensor) -> np.ndarray:
    return _host(x, torch.float64)


def _common_dtype(*tensors: Tensor | None) -> torch.dtype:
    """float64 if any of ``tensors`` is, else float32: the dtype the kernels read them in.
    The kernels that take both are compiled once per dtype (see :func:`warm_up`); their
    arithmetic is float64 either way, so reading float32 as it comes loses nothing, and
    saves converting inputs and outputs (torch's copies in a training step on the axe went
    from 1.5 to 0.8 ms)."""
    wide = any(t is not None and t.dtype == torch.float64 for t in tensors)
    return torch.float64 if wide else torch.float32


class _Composite(torch.autograd.Function):
    """Every camera's pixels from its projected Gaussians, through the compiled kernels.

    Inputs [C, N, ...] like :func:`.rasterize.rasterize_to_pixels`; outputs colour
    [C, H * W, D] (no background) and alpha [C, H * W].
    """

    @staticmethod
    def forward(ctx, means2d, conics, colors, opacities, depths, radii, width, height, stats):
        dtype = _common_dtype(means2d, conics, colors, opacities)
        per_camera = [_host(x, dtype) for x in (means2d, conics, colors, opacities, depths)]
        per_camera.append(radii.contiguous().numpy())  # [C, N, 2]
        n_cams, N, D = colors.shape
        host = np.float64 if means2d.dtype == torch.float64 else np.float32  # the outputs'
        out = np.empty((n_cams, height * width, D), host)  # [C, P, D]
        alpha = np.empty((n_cams, height * width), host)  # [C, P]
        T = np.ones((n_cams, height * width))  # [C, P]
        last = np.full((n_cams, height * width), -1, np.int64)  # [C, P]
        counts = np.zeros((height, 3), np.int64)  # [H, 3]
        cameras = []
        for c in range(n_cams):
            m2d, con, col, opa, dep, rad = (x[c] for x in per_camera)  # this camera's [N, ...]
            vis = _drawn_front_to_back(dep, rad)  # [G]
            G = len(vis)
            mx, my, A, B, C, det, o, t = (np.empty(G) for _ in range(8))  # [G] each
            cols = np.empty((G, D))  # [G, D]
            gathered = (vis, m2d, con, col, opa, mx, my, A, B, C, det, o, t, cols)
            _in_bands(_gather, *_gaussian_blocks(G), *gathered)
            row_start, row_gid, row_work, ylo, yhi = _row_lists(mx, my, A, B, det, t, width,
                                                                height)  # fmt: skip
            threads = _threads_for(int(row_work.sum()), MIN_PIXELS_PER_THREAD)
            even, n_workers = _split(height, threads)  # as many bands as even ones...
            bands = _bands(row_work, len(even) - 1)  # [n_bands + 1] ...with equal work
            gauss = (mx, my, A, B, C, det, o, t, cols, row_start, row_gid, width)
            image = (out[c], alpha[c], T[c], last[c], counts)
            _in_bands(_forward_bands, bands, n_workers, *gauss, *image)
            cameras.append((gauss, bands, n_workers, vis, ylo, yhi))
            if stats is not None:
                stats.n_bands += len(bands) - 1
        if stats is not None:
            n_candidates, n_pairs, n_composited = counts.sum(axis=0).tolist()
            stats.n_candidate_pairs += n_candidates
            stats.n_pairs += n_pairs
            stats.n_composited += n_composited
        ctx.cameras, ctx.T, ctx.last, ctx.N = cameras, T, last, N
        ctx.dtypes = (means2d.dtype, conics.dtype, colors.dtype, opacities.dtype)
        dtype = means2d.dtype  # (a no-op but for float16 and bfloat16)
        return torch.from_numpy(out).to(dtype), torch.from_numpy(alpha).to(dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    @_glue_on_one_torch_thread
    def backward(ctx, g_out, g_alpha):
        if any(n_workers > 1 for _, _, n_workers, *_ in ctx.cameras):
            _helpers().nudge()  # the backward's kernels are coming
        dtype = _common_dtype(g_out, g_alpha)  # read as they come (float64 arithmetic inside)
        g_out, g_alpha = _host(g_out, dtype), _host(g_alpha, dtype)  # [C, P, D], [C, P]
        C, N, D = len(ctx.cameras), ctx.N, g_out.shape[2]
        host = [np.float64 if d == torch.float64 else np.float32 for d in ctx.dtypes]
        grads = (np.zeros((C, N, 2), host[0]), np.zeros((C, N, 3), host[1]),
                 np.zeros((C, N, D), host[2]), np.zeros((C, N), host[3]))  # fmt: skip
        for c, (gauss, bands, n_workers, vis, ylo, yhi) in enumerate(ctx.cameras):
            row_start, n_bands = gauss[9], len(bands) - 1
            slots = _scratch((int(row_start[-1]), _N_GRAD + D))  # [R, 6 + D] bands' slots
            slot_of = np.empty((n_bands, len(vis)), np.int32)  # [bands, G] slots in each band
            slot_gid = np.empty(int(row_start[-1]), np.int32)  # [R] and the other way round
            n_slots = np.empty(n_bands, np.int64)  # [bands]
            g_camera = tuple(g[c] for g in grads)  # [N, 2], [N, 3], [N, D], [N]
            _in_bands(_backward_bands, bands, n_workers, *gauss, ctx.T[c], ctx.last[c], g_out[c],
                      g_alpha[c], ylo, yhi, slots, slot_of, slot_gid, n_slots, vis,
                      *g_camera)  # fmt: skip
            band_of_row = np.repeat(np.arange(n_bands), np.diff(bands))  # [H]
            _in_bands(_sum_bands, bands, n_workers, row_start, slots, slot_of, slot_gid, n_slots,
                      band_of_row, ylo, yhi, vis, *g_camera)  # fmt: skip
        g_means2d, g_conics, g_colors, g_opacities = (
            torch.from_numpy(g).to(dtype) for g, dtype in zip(grads, ctx.dtypes)
        )
        return g_means2d, g_conics, g_colors, g_opacities, None, None, None, None, None


class _ProjectGaussians(torch.autograd.Function):
    """projection.py's EWA projection and, given SH coefficients, the colours seen from each
    camera (see :func:`project_and_colour`), compiled forward and backward in one pass over
    the Gaussians: gradients to means [N, 3], quats [N, 4], scales [N, 3] and the
    coefficients [N, K, 3] or [C, N, K, 3].

    One node for both: their two gradients to the means are summed in the kernel, not by
    autograd after it, and a frame hands work to the helper threads twice fewer.
    """

    @staticmethod
    def forward(ctx, means, quats, scales, coeffs, viewmats, Ks, width, height, options):
        ctx.set_materialize_grads(False)  # an output left out of the loss: None, not zeros
        C, N = viewmats.shape[0], means.shape[0]
        if _threads_for(N, MIN_GAUSSIANS_PER_THREAD) > 1:
            _helpers().nudge()  # a frame's kernels are coming
        opacities = options.get("opacities")
        dtype = _common_dtype(means, quats, scales, opacities, coeffs)
        host = np.float64 if dtype == torch.float64 else np.float32
        n_basis = 0 if coeffs is None else options["n_basis"]
        arrays = (
            _host(means, dtype), _host(quats, dtype), _host(scales, dtype),  # [N, 3], [N, 4], [N, 3]
            np.empty(0, host) if opacities is None else _host(opacities, dtype),  # [N] or none
            _as_f64(viewmats), _as_f64(Ks),  # [C, 4, 4], [C, 3, 3]
        )  # fmt: skip
        camera = (width, height, float(options.get("near_plane", 0.01)),
                  float(options.get("far_plane", 1e10)), float(options["eps2d"]),
                  float(options.get("radius_clip", 0.0)))  # fmt: skip
        if coeffs is None:
            sh = (np.empty((1, 0, 0, 3), host), np.zeros((C, 3)))  # no colours
        else:  # coefficients [1 or C, N, K, 3]; camera centres [C, 3] (W^-1's last column)
            sh = (_host(coeffs[None] if coeffs.dim() == 3 else coeffs, dtype),
                  np.ascontiguousarray(np.linalg.inv(arrays[4])[:, :3, 3]))  # fmt: skip
        out = (np.empty((C, N, 2), host), np.empty((C, N, 2, 2), host), np.empty((C, N, 3), host),
               np.empty((C, N), host), np.empty((C, N, 2), np.int32), np.empty((C, N), np.bool_),
               np.empty((C, N if n_basis else 0, 3), host))  # fmt: skip
        _in_bands(_projection_forward_blocks, *_gaussian_blocks(N), *arrays, *camera, n_basis, *sh,
                  *out)  # fmt: skip
        means2d, covars2d, conics, depths = (torch.from_numpy(a).to(means.dtype) for a in out[:4])
        ctx.arrays, ctx.ok = (*arrays[:3], *arrays[4:], *camera[:2], camera[4]), out[5]
        ctx.sh, ctx.n_basis = sh, n_basis
        ctx.dtypes = (dtype, means.dtype, quats.dtype, scales.dtype)
        radii = torch.from_numpy(out[4])
        ctx.mark_non_differentiable(radii, covars2d)
        if coeffs is None:
            return means2d, conics, depths, radii, covars2d, None
        ctx.coeffs = (coeffs.shape, coeffs.dtype)
        return means2d, conics, depths, radii, covars2d, torch.from_numpy(out[6]).to(coeffs.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    @_glue_on_one_torch_thread
    def backward(ctx, g_means2d, g_conics, g_depths, _g_radii, _g_covars2d, g_colours):
        ok = ctx.ok
        C, N = ok.shape
        dtype, host = ctx.dtypes[0], ctx.arrays[0].dtype  # what the kernels read: torch, numpy

        def grad(g: Tensor | None, shape: tuple[int, ...]) -> np.ndarray:  # an unused output: 0
            return np.zeros(shape, host) if g is None else _host(g, dtype)

        n_basis = ctx.n_basis if g_colours is not None else 0  # (colours unused: no gradient)
        coeffs, campos = ctx.sh
        g_coeffs = np.empty_like(coeffs) if n_basis else np.empty((1, 0, 0, 3), host)
        arrays = (*ctx.arrays, ok, grad(g_means2d, (C, N, 2)), grad(g_conics, (C, N, 3)),
                  grad(g_depths, (C, N)), n_basis, coeffs, campos,
                  grad(g_colours, (C, N if n_basis else 0, 3)))  # fmt: skip
        g_means, g_quats, g_scales = (np.empty((N, 3), host), np.empty((N, 4), host),
                                      np.empty((N, 3), host))  # fmt: skip
        _in_bands(_projection_backward_blocks, *_gaussian_blocks(N), *arrays, g_means, g_quats,
                  g_scales, g_coeffs)  # fmt: skip
        grads = (torch.from_numpy(g).to(d) for g, d in zip((g_means, g_quats, g_scales),
                                                           ctx.dtypes[1:]))  # fmt: skip
        g_k = None
        if n_basis:
            shape, k_dtype = ctx.coeffs
            g_k = torch.from_numpy(g_coeffs).reshape(shape).to(k_dtype)  # [(C,) N, K, 3]
        return (*grads, g_k, None, None, None, None, None)


def _compiled_projection_applies(covars: Tensor | None, quats: Tensor | None,
                                 scales: Tensor | None, viewmats: Tensor, Ks: Tensor,
                                 options: dict) -> bool:  # fmt: skip
    """Whether the compiled projection computes what projection.py would: quats and scales
    (not covars), no antialiasing compensation, cameras that need no gradient."""
    return not (
        covars is not None
        or quats is None
        or scales is None
        or options.get("calc_compensations", False)
        or viewmats.requires_grad
        or Ks.requires_grad
    )


def _compiled_projection(means: Tensor, quats: Tensor, scales: Tensor, coeffs: Tensor | None,
                         n_basis: int, viewmats: Tensor, Ks: Tensor, width: int, height: int,
                         options: dict) -> tuple[Projection, Tensor | None]:  # fmt: skip
    """The compiled projection, and the SH colours [C, N, 3] of ``coeffs`` (None: none)."""
    check_gaussians(means, None, quats, scales)
    viewmats, Ks = batched_cameras(viewmats, Ks, means.dtype)
    options = {"eps2d": 0.3, **options, "n_basis": n_basis}
    means2d, conics, depths, radii, covars2d, colours = _ProjectGaussians.apply(
        means, quats, scales, coeffs, viewmats, Ks, int(width), int(height), options
    )
    return Projection(means2d, covars2d, conics, depths, radii, compensations=None), colours


def project_gaussians(means: Tensor, covars: Tensor | None, viewmats: Tensor, Ks: Tensor,
                      width: int, height: int, **options) -> Projection:  # fmt: skip
    """:func:`.projection.project_gaussians` (same arguments and results), compiled where it
    applies (see :func:`_compiled_projection_applies`). Elsewhere it is projection.py's
    own, through autograd."""
    quats, scales = options.pop("quats", None), options.pop("scales", None)
    if not _compiled_projection_applies(covars, quats, scales, viewmats, Ks, options):
        return projection.project_gaussians(
            means, covars, viewmats, Ks, width, height, quats=quats, scales=scales, **options
        )
    assert quats is not None and scales is not None  # (for the type checker)
    proj, _ = _compiled_projection(means, quats, scales, None, 0, viewmats, Ks, width, height,
                                   options)  # fmt: skip
    return proj


def project_and_colour(means: Tensor, covars: Tensor | None, viewmats: Tensor, Ks: Tensor,
                       width: int, height: int, *, sh_degree: int, shs: Tensor,
                       **options) -> tuple[Projection, Tensor] | None:  # fmt: skip
    """:func:`project_gaussians` and the colours [C, N, 3] of SH coefficients ``shs``
    [N, K, 3] or [C, N, K, 3] (degree ``sh_degree``) seen from each camera's centre,
    ``max(0, eval_sh(degree, shs, mean - centre) + 0.5)`` (3DGS's and gsplat's rule; see
    :mod:`.sh`), in one compiled pass. None where the compiled projection does not apply:
    the caller then projects, and colours with torch (cameras being optimised get their
    gradient that way)."""
    quats, scales = options.pop("quats", None), options.pop("scales", None)
    if not _compiled_projection_applies(covars, quats, scales, viewmats, Ks, options):
        return None
    assert quats is not None and scales is not None  # (for the type checker)
    proj, colours = _compiled_projection(means, quats, scales, shs, (sh_degree + 1) ** 2,
                                         viewmats, Ks, width, height, options)  # fmt: skip
    assert colours is not None
    return proj, colours


def composite_camera(
    means2d: Tensor,
    conics: Tensor,
    colors: Tensor,
    opacities: Tensor,
    depths: Tensor,
    radii: Tensor,
    width: int,
    height: int,
    stats: RasterStats | None = None,
) -> tuple[Tensor, Tensor]:
    """Colour [H * W, D] and alpha [H * W] of one camera, differentiable in means2d [N, 2],
    conics [N, 3], colors [N, D] and opacities [N]; only Gaussians with radii > 0 are drawn.

    The kernels use as many threads as torch does (see :func:`_in_bands`).
    """
    out, alpha = _Composite.apply(
        means2d[None], conics[None], colors[None], opacities[None], depths[None], radii[None],
        int(width), int(height), stats,
    )  # fmt: skip
    return out[0], alpha[0]


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
    stats: RasterStats | None = None,
) -> tuple[Tensor, Tensor]:
    """:func:`.rasterize.rasterize_to_pixels` on the compiled kernels: colours [C, H, W, D]
    and alphas [C, H, W, 1] from inputs [C, N, ...], background [C, D] behind."""
    out, alpha = _Composite.apply(
        means2d, conics, colors, opacities, depths, radii, int(width), int(height), stats
    )  # [C, H * W, D], [C, H * W]
    return camera_images(out, alpha, width, height, backgrounds)


def warm_up() -> None:
    """Compile (or load from the disk cache) every kernel now, on a two-Gaussian scene, in
    float32 (training) and float64 (tests, gradchecks): the kernels that read their inputs
    as they come are compiled once per dtype. The training loss's fused SSIM too.

    The grading zygote calls this before forking, so no graded kernel ever compiles.
    """
    with torch.enable_grad():  # the first render may well come inside torch.no_grad()
        for dtype in (torch.float32, torch.float64):
            means2d = torch.tensor([[3.0, 2.0], [4.0, 3.0]], dtype=dtype, requires_grad=True)
            conics = torch.tensor([[0.5, 0.1, 0.4], [0.3, 0.0, 0.3]], dtype=dtype)
            colors = torch.ones(2, 3, dtype=dtype)
            opacities = torch.tensor([0.9, 0.5], dtype=dtype)
            depths = torch.tensor([1.0, 2.0], dtype=dtype)
            radii = torch.full((2, 2), 3, dtype=torch.int32)
            out, alpha = composite_camera(means2d, conics, colors, opacities, depths, radii, 8, 6)
            (out.sum() + alpha.sum()).backward()
            means = torch.tensor([[0.0, 0.0, 3.0], [0.5, 0.2, 4.0]], dtype=dtype,
                                 requires_grad=True)  # fmt: skip
            quats = torch.tensor([[1.0, 0.0, 0.0, 0.0]] * 2, dtype=dtype)
            scales, opacities = torch.full((2, 3), 0.1, dtype=dtype), torch.ones(2, dtype=dtype)
            K = projection.intrinsics(8.0, 8.0, 4.0, 3.0)[None]  # [1, 3, 3]
            for opacity in (None, opacities):  # the box with and without the opacity
                proj = project_gaussians(means, None, torch.eye(4)[None], K, 8, 6, quats=quats,
                                         scales=scales, opacities=opacity)  # fmt: skip
                (proj.means2d.sum() + proj.conics.sum()).backward()
            coeffs = torch.ones(2, 16, 3, dtype=dtype, requires_grad=True)
            for shs in (coeffs, coeffs[None]):  # shared by the cameras, or one set per camera
                shaded = project_and_colour(means, None, torch.eye(4)[None], K, 8, 6, sh_degree=3,
                                            shs=shs, quats=quats, scales=scales,
                                            opacities=opacities)  # fmt: skip
                assert shaded is not None  # (the compiled projection applies here)
                (shaded[0].means2d.sum() + shaded[1].sum()).backward()
    control = np.zeros(4, np.int64)  # the helpers' waiting (see _Helpers), with no helper
    _post_job(control, 0)
    _wait_for_helpers(control)  # (none wanted: at once)
    control[_NEXT] = 1  # (the job has started: at once too)
    _finish_and_wait_for_job(control, False, 0)
    for host in (np.float32, np.float64):  # the depth sort in halves (two threads and more)
        depths, order = np.array([2.0, 1.0, 3.0], host), np.empty(3, np.int64)
        halves, merged = np.array([0, 1, 3], np.int64), np.empty(3, np.int64)
        _sort_blocks(np.zeros(1, np.int64), halves, depths, order)
        _merge_halves(np.zeros(1, np.int64), halves, depths, order, 1, merged)
    from . import fused_ssim  # (imports this module: not at the top)

    fused_ssim.warm_up()  # the training loss's SSIM


# ----------------------------------------------------------------------- the tile waste


def tile_waste(means2d: Tensor, conics: Tensor, opacities: Tensor, radii: Tensor, width: int,
               height: int, tile_size: int = 16) -> dict[str, float]:  # fmt: skip
    """How many (Gaussian, pixel) candidates 16x16 tiles test, against the exact runs' pairs.

    For one camera (means2d [N, 2], conics [N, 3], opacities [N], radii [N, 2]): gsplat
    lists a Gaussian in every tile its screen box (mean +- radii) touches, and every pixel of
    such a tile evaluates it. Returns ``tile_entries`` ((tile, Gaussian) entries),
    ``tile_candidates`` (entries x pixels per tile), ``pairs`` (pairs with alpha >= 1/255,
    what the exact runs visit) and ``waste`` = tile_candidates / pairs.
    """
    vis = (radii > 0).all(-1)  # [N]
    m, r = means2d.detach()[vis].double(), radii[vis].double()  # [G, 2] each
    tiles_x, tiles_y = math.ceil(width / tile_size), math.ceil(height / tile_size)
    lo = torch.floor((m - r) / tile_size).clamp_min(0)  # [G, 2] first tile touched
    hi = torch.ceil((m + r) / tile_size).clamp_max(torch.tensor([tiles_x, tiles_y]))  # [G, 2]
    entries = int(((hi - lo).clamp_min(0)).prod(-1).sum())
    stats = RasterStats()
    colors = torch.zeros(int(vis.numel()), 1, dtype=torch.float64)
    depths = torch.arange(int(vis.numel()), dtype=torch.float64)
    with torch.no_grad():
        composite_camera(means2d, conics, colors, opacities, depths, radii, width, height, stats)
    pairs = stats.n_pairs
    candidates = entries * tile_size * tile_size
    return {
        "tile_entries": entries,
        "tile_candidates": candidates,
        "pairs": pairs,
        "waste": candidates / max(pairs, 1),
    }
