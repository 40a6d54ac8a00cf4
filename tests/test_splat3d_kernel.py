"""The compiled CPU rasterizer (splat3d/kernel.py): parity with the PyTorch one, the fallback,
threads, the disk cache, fork safety and the tile-waste figure. Exactness against the dense
reference and gradchecks run in test_splat3d_rasterizer.py on both CPU rasterizers."""

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numba
import numpy as np
import pytest
import torch
from test_splat3d_rasterizer import cameras, scene

from splatcourse.splat3d import BACKEND_ENV_VAR, backend, project_gaussians, rasterization
from splatcourse.splat3d import kernel as kernel_mod

W, H = 48, 36


@pytest.fixture(autouse=True)
def threads_on_tiny_work(monkeypatch):
    """The scenes here are tiny: let them use the second thread all the same, so the band
    machinery is exercised (real renders below the thresholds stay on one thread)."""
    monkeypatch.setattr(kernel_mod, "MIN_GAUSSIANS_PER_THREAD", 1)
    monkeypatch.setattr(kernel_mod, "MIN_PIXELS_PER_THREAD", 1)


def _render_with_grads(backend_name, params, views, Ks, **kw):
    inputs = [t.clone().requires_grad_() for t in params]
    r, a, info = rasterization(*inputs, views, Ks, W, H, backend=backend_name, **kw)
    g = torch.Generator().manual_seed(0)
    loss = (r * torch.rand(r.shape, generator=g)).sum() + (a * a).sum()
    loss.backward()
    return r.detach(), a.detach(), [t.grad for t in inputs], info


def test_compiled_matches_the_pytorch_rasterizer_images_and_gradients():
    means, quats, scales, opac, _ = scene(300, seed=21, scale=(0.02, 0.3))
    sh = torch.randn(300, 16, 3, generator=torch.Generator().manual_seed(4)) * 0.3
    views, Ks = cameras(2, w=W, h=H)
    kw = {"sh_degree": 3, "backgrounds": torch.tensor([[0.1, 0.2, 0.3], [0.5, 0.5, 0.5]])}
    params = [means, quats, scales, opac, sh]
    r, a, grads, info = _render_with_grads("compiled", params, views, Ks, **kw)
    r2, a2, grads2, info2 = _render_with_grads("torch", params, views, Ks, **kw)
    assert (info["backend"], info2["backend"]) == ("compiled", "torch")
    assert 0.3 < a.mean() < 0.99
    torch.testing.assert_close(r, r2, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a, a2, atol=1e-5, rtol=0)
    for g, g2 in zip(grads, grads2):
        torch.testing.assert_close(g, g2, atol=1e-4 * float(g2.abs().max()), rtol=1e-3)
    # the same pairs are counted: every alpha >= 1/255, and those before termination
    s, s2 = info["raster_stats"], info2["raster_stats"]
    assert (s.n_pairs, s.n_composited) == (s2.n_pairs, s2.n_composited)


def test_the_default_cpu_path_is_compiled_and_falls_back_to_pytorch(monkeypatch):
    monkeypatch.delenv(BACKEND_ENV_VAR, raising=False)
    params, (views, Ks) = scene(50, seed=2), cameras(w=W, h=H)
    assert rasterization(*params, views, Ks, W, H)[2]["backend"] == "compiled"
    # where numba cannot load, "auto" takes the PyTorch rasterizer and says why, once...
    monkeypatch.setattr(backend, "compiled_available", lambda: (False, "numba is missing"))
    backend._warn_torch_fallback.cache_clear()
    with pytest.warns(RuntimeWarning, match=r"PyTorch rasterizer.*because numba is missing"):
        assert backend.resolve_backend(None, torch.device("cpu")) == "torch"
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # not again at every render
        assert rasterization(*params, views, Ks, W, H)[2]["backend"] == "torch"
    # ...and forcing it says why, and what to do instead
    with pytest.raises(RuntimeError, match=r"numba is missing.*backend='torch'"):
        rasterization(*params, views, Ks, W, H, backend="compiled")


def test_warm_up_works_inside_no_grad():
    # the first render of a session (which loads the kernels) is often a no_grad preview
    with torch.no_grad():
        kernel_mod.warm_up()


def test_one_and_two_threads_give_the_same_render_and_gradients():
    params, (views, Ks) = scene(200, seed=3), cameras(2, w=W, h=H)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _render_with_grads("compiled", params, views, Ks)
        torch.set_num_threads(2)
        two = _render_with_grads("compiled", params, views, Ks)
    finally:
        torch.set_num_threads(before)
    bands = (one[3]["raster_stats"].n_bands, two[3]["raster_stats"].n_bands)
    assert bands == (2, 2 * 2 * kernel_mod.BANDS_PER_THREAD)  # per camera: 1, and 6 per thread
    torch.testing.assert_close(one[0], two[0], atol=0, rtol=0)  # each pixel's sum: same order
    torch.testing.assert_close(one[1], two[1], atol=0, rtol=0)
    for g1, g2 in zip(one[2], two[2]):  # the bands' gradient buffers add up in another order
        torch.testing.assert_close(g1, g2, atol=1e-6, rtol=1e-5)


def test_gradients_repeat_exactly_whichever_thread_takes_a_band(monkeypatch):
    # bands go to whichever thread is free, so which thread did which band changes from run
    # to run; each band has its own buffer, added up in band order: the same bits every time
    monkeypatch.setattr(kernel_mod, "_n_threads", lambda: 2)
    inputs = [t.clone().requires_grad_() for t in scene(400, seed=8, dtype=torch.float64)]
    views, Ks = cameras(2, dtype=torch.float64, w=W, h=H)
    r, a, info = rasterization(*inputs, views, Ks, W, H, backend="compiled")
    assert info["raster_stats"].n_bands > 2 * 6  # several bands per camera
    g = torch.Generator().manual_seed(2)
    weights = (torch.rand(r.shape, generator=g, dtype=r.dtype), torch.rand(a.shape, generator=g,
                                                                           dtype=a.dtype))  # fmt: skip
    runs = [torch.autograd.grad((r, a), inputs, weights, retain_graph=True) for _ in range(8)]
    for run in runs[1:]:
        for mine, first in zip(run, runs[0]):
            assert torch.equal(mine, first)


def test_small_work_stays_on_one_thread(monkeypatch):
    # a second thread costs more than it saves on small work (measured: MIN_*_PER_THREAD)
    monkeypatch.undo()  # the module's own thresholds
    monkeypatch.setattr(kernel_mod, "_n_threads", lambda: 2)
    assert kernel_mod._threads_for(kernel_mod.MIN_PIXELS_PER_THREAD - 1,
                                   kernel_mod.MIN_PIXELS_PER_THREAD) == 1  # fmt: skip
    assert kernel_mod._threads_for(10**7, kernel_mod.MIN_PIXELS_PER_THREAD) == 2
    params, (views, Ks) = scene(60, seed=2), cameras(w=W, h=H)  # a few thousand pixels
    info = rasterization(*params, views, Ks, W, H, backend="compiled")[2]
    assert info["raster_stats"].n_bands == 1


def test_bands_share_the_work_equally():
    work = np.array([0, 0, 50, 50, 10, 10, 10, 10, 60, 0], dtype=np.int64)  # [H]
    edges = kernel_mod._bands(work, 2)
    assert edges[0] == 0 and edges[-1] == len(work) and np.all(np.diff(edges) >= 0)
    per_band = [work[a:b].sum() for a, b in itertools.pairwise(edges)]
    assert per_band == [100, 100]  # cut where the work done (+1 per row) is nearest half
    assert list(kernel_mod._bands(work, 1)) == [0, len(work)]
    assert len(kernel_mod._bands(work, 4)) == 5


def test_tile_waste_counts_tiles_against_exact_pairs():
    params, (views, Ks) = scene(300, seed=5, scale=(0.02, 0.2)), cameras(w=64, h=48)
    means, quats, scales, opac, _ = params
    proj = project_gaussians(
        means, None, views, Ks, 64, 48, opacities=opac, quats=quats, scales=scales
    )
    waste = kernel_mod.tile_waste(proj.means2d[0], proj.conics[0], opac, proj.radii[0], 64, 48)
    _r, _a, info = rasterization(*params, views, Ks, 64, 48, backend="compiled")
    assert waste["pairs"] == info["raster_stats"].n_pairs > 0
    n_visible = int((proj.radii[0] > 0).all(-1).sum())
    assert waste["tile_entries"] >= n_visible  # every visible Gaussian is in a tile or more
    assert waste["tile_candidates"] == 256 * waste["tile_entries"]
    assert waste["waste"] == pytest.approx(waste["tile_candidates"] / waste["pairs"])
    assert waste["waste"] > 2  # tiles test far more pixels than the ellipses cover


def test_a_fresh_process_loads_every_kernel_from_the_disk_cache():
    assert backend.compiled_available() == (True, "ok")  # compiled (or loaded) here first
    code = """
import json, torch
from splatcourse.splat3d import fused_ssim, kernel, rasterization
from splatcourse.train import l1_ssim_loss
from test_splat3d_rasterizer import cameras, scene
kernel.warm_up()
for dtype in (torch.float32, torch.float64):  # renders a course makes, after the warm-up
    params = [p.requires_grad_() for p in scene(50, seed=1, dtype=dtype)]
    sh = torch.randn(50, 16, 3, dtype=dtype, requires_grad=True)
    r, a, _ = rasterization(*params[:4], sh, *cameras(2, dtype=dtype), 32, 24, sh_degree=3,
                            backend="compiled")
    (r.sum() + a.sum()).backward()
    l1_ssim_loss(r, torch.rand_like(r)).backward()  # the training loss
ks = [k for m in (kernel, fused_ssim) for k in vars(m).values()
      if hasattr(k, "signatures") and k.signatures]
print(json.dumps([[k.__name__, sum(k.stats.cache_hits.values()),
                   sum(k.stats.cache_misses.values())] for k in ks]))
"""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(kernel_mod.numba_cache_dir())}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(loaded) >= 13, loaded  # every kernel called from Python (the rest are inlined)
    for name, hits, misses in loaded:
        assert hits >= 1 and misses == 0, f"{name}: {hits} cache hits, {misses} misses"


@pytest.fixture
def helpers():
    """The kernels' helper threads, as if no helper had been held up before (a busy machine
    sends the kernels to the caller alone for a while); the same after the test."""
    helpers = kernel_mod._helpers()
    helpers.alone, helpers.next_alone, helpers.stalls = 0, kernel_mod.ALONE_AFTER_STALL, 0
    yield helpers
    helpers.alone, helpers.next_alone, helpers.stalls = 0, kernel_mod.ALONE_AFTER_STALL, 0


def _bands_taken_by_thread(first_band_sleeps: float = 0.0, helper_sleeps: float = 0.0):
    """Run a (Python) kernel over 12 bands on two threads: the threads that took each band.
    The caller's first band and every band of a helper can be made slow."""
    caller, taken = threading.get_ident(), {}

    def kernel(next_band: np.ndarray, edges: np.ndarray) -> None:
        # a kernel's loop over the bands, as the compiled ones do it (see _take_band)
        band = kernel_mod._take_band(next_band, edges)
        while band >= 0:
            taken[band] = threading.get_ident()
            if band == 0:  # (the caller's, as a rule: it takes a band before its helpers)
                time.sleep(first_band_sleeps)
            elif taken[band] != caller:
                time.sleep(helper_sleeps)
            band = kernel_mod._take_band(next_band, edges)

    kernel_mod._in_bands(kernel, np.arange(13), 2)
    assert sorted(taken) == list(range(12))  # every band exactly once
    return caller, taken


def test_bands_go_to_whichever_thread_is_free(helpers):
    # a thread held up (by another program) on its band leaves the other bands to the rest
    _caller, taken = _bands_taken_by_thread(first_band_sleeps=0.3)
    slow = taken[0]
    assert [band for band, thread in taken.items() if thread == slow] == [0]
    assert len(set(taken.values())) == 2  # the other thread took all the rest


def test_a_held_up_helper_sends_the_next_kernels_to_the_caller_alone(helpers):
    # Another program has the helper's core: the caller waits for its band (STALL_CYCLES,
    # ~1 ms), and would so at every kernel. After STALLS_IN_A_ROW such kernels (one is a
    # hiccup) the next ALONE_AFTER_STALL kernels run on the caller alone, twice as many
    # after each further run of stalls, back to normal after a kernel whose helper kept up.
    alone, in_a_row = kernel_mod.ALONE_AFTER_STALL, kernel_mod.STALLS_IN_A_ROW
    for stall in range(1, in_a_row + 1):
        caller, taken = _bands_taken_by_thread(first_band_sleeps=0.005, helper_sleeps=0.03)
        assert set(taken.values()) != {caller}  # the helper took a band (30 ms)
        assert helpers.alone == (alone if stall == in_a_row else 0)
    caller, taken = _bands_taken_by_thread(first_band_sleeps=0.05)
    assert set(taken.values()) == {caller} and helpers.alone == alone - 1
    helpers.alone = 0  # (its turns are up) held up again: twice as long alone
    for _ in range(in_a_row):
        _bands_taken_by_thread(first_band_sleeps=0.005, helper_sleeps=0.03)
    assert helpers.alone == 2 * alone
    helpers.alone = 0  # the helper keeps up: it takes bands, and stalls mean ALONE again
    caller, taken = _bands_taken_by_thread(first_band_sleeps=0.3)
    assert len(set(taken.values())) == 2 and helpers.alone == 0
    assert helpers.next_alone == alone and helpers.stalls == 0


def test_kernels_on_the_caller_alone_give_the_same_bits(helpers, monkeypatch):
    # the bands are the same whoever runs them: renders and gradients do not change
    monkeypatch.setattr(kernel_mod, "_n_threads", lambda: 2)
    params = scene(300, seed=12, dtype=torch.float64)
    views, Ks = cameras(2, w=W, h=H, dtype=torch.float64)
    both = _render_with_grads("compiled", params, views, Ks, sh_degree=None)
    helpers.alone = 10**6
    alone = _render_with_grads("compiled", params, views, Ks, sh_degree=None)
    assert helpers.alone < 10**6  # (it ran alone)
    for mine, theirs in zip((*alone[:2], *alone[2]), (*both[:2], *both[2])):
        assert torch.equal(mine, theirs)


def test_an_error_on_a_helper_reaches_the_caller(helpers):
    caller = threading.get_ident()

    def kernel(next_band: np.ndarray, edges: np.ndarray) -> None:
        band = kernel_mod._take_band(next_band, edges)
        while band >= 0:
            if threading.get_ident() != caller:
                raise ValueError(f"band {band} failed")
            time.sleep(0.05 if band == 0 else 0.0)  # (the helper takes a band meanwhile)
            band = kernel_mod._take_band(next_band, edges)

    with pytest.raises(ValueError, match=r"band \d+ failed"):
        kernel_mod._in_bands(kernel, np.arange(13), 2)
    caller, taken = _bands_taken_by_thread(first_band_sleeps=0.3)  # and the next kernel runs
    assert len(set(taken.values())) == 2


@numba.njit(nogil=True)
def _write_band_numbers(next_band, edges, out):
    band = kernel_mod._take_band(next_band, edges)
    while band >= 0:
        for i in range(edges[band], edges[band + 1]):
            out[i] = band
        band = kernel_mod._take_band(next_band, edges)


def test_two_threads_rendering_at_once_share_the_helpers(helpers):
    # a notebook and the live viewer's server may both render: one kernel at a time, each
    # with its own bands
    edges = np.arange(0, 1201, 100)  # [13]
    expected = np.repeat(np.arange(12), 100)  # [1200]
    results, errors = [], []

    def caller():
        try:
            for _ in range(200):
                out = np.full(1200, -1, np.int64)
                kernel_mod._in_bands(_write_band_numbers, edges, 2, out)
                results.append(np.array_equal(out, expected))
        except BaseException as error:  # (reported below)
            errors.append(error)

    threads = [threading.Thread(target=caller) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors and len(results) == 400 and all(results)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX only")
def test_a_forked_child_renders_after_the_parent_did(monkeypatch):
    # The grading zygote warms the kernels up, then forks every grading kernel from itself:
    # the band threads the parent made do not exist in the child.
    monkeypatch.setattr(kernel_mod, "_n_threads", lambda: 2)
    params, (views, Ks) = scene(40, seed=6), cameras(w=W, h=H)
    rasterization(*params, views, Ks, W, H, backend="compiled")
    assert kernel_mod._HELPERS is not None and kernel_mod._HELPERS[0] == os.getpid()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        try:
            signal.alarm(20)  # waiting on the parent's (absent) threads would hang: die instead
            r, _a, _ = rasterization(*params, views, Ks, W, H, backend="compiled")
            os._exit(0 if torch.isfinite(r).all() else 3)
        finally:
            os._exit(4)
    _pid, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"child status {status}"


def test_numba_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    assert kernel_mod.numba_cache_dir() == tmp_path
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    assert kernel_mod.numba_cache_dir().parts[-2:] == ("cache", "numba")


def test_the_grading_zygote_compiles_the_kernels_before_forking():
    # In a fresh process: importing the course compiles nothing, the zygote's warm-up must.
    code = (
        "from splatcourse.grading import zygote; from splatcourse.splat3d import kernel; "
        "ks = (kernel._row_spans, kernel._forward_bands, kernel._backward_bands); "
        "before = [bool(k.signatures) for k in ks]; zygote._warm_up(); "
        "print(before, [bool(k.signatures) for k in ks])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[-2] == "[False, False, False] [True, True, True]"


def test_compiled_projection_backward_matches_autograd_through_projection_py():
    # two cameras (one turned and moved), Gaussians behind the camera and far off-screen (the
    # clamp of J), in float64: the compiled backward must give autograd's gradients exactly.
    means, quats, scales, opac, _ = scene(400, seed=9, dtype=torch.float64, scale=(0.05, 0.3))
    means[:20, 2] = -1.0  # behind the camera: only the depth has a gradient
    means[20:60, 0] *= 4.0  # beyond 1.3x the half field of view
    views, Ks = cameras(2, dtype=torch.float64, w=W, h=H)
    turn = torch.tensor([[0.98, 0.0, 0.2], [0.0, 1.0, 0.0], [-0.2, 0.0, 0.98]], dtype=torch.float64)
    views[1, :3, :3], views[1, :3, 3] = torch.linalg.qr(turn)[0], torch.tensor([0.1, -0.2, 0.5])
    g = torch.Generator().manual_seed(1)
    weights = [torch.randn(2, 400, k, generator=g, dtype=torch.float64) for k in (2, 3, 1)]
    results = []
    for project in (kernel_mod.project_gaussians, project_gaussians):
        inputs = [t.clone().requires_grad_() for t in (means, quats, scales)]
        p = project(inputs[0], None, views, Ks, W, H, opacities=opac, quats=inputs[1],
                    scales=inputs[2])  # fmt: skip
        outputs = (p.means2d, p.conics, p.depths[..., None])
        sum(((o * w).sum() for o, w in zip(outputs, weights)), torch.zeros(())).backward()
        results.append((p, [t.grad for t in inputs]))
    (mine, my_grads), (theirs, their_grads) = results
    assert mine.means2d.grad_fn.name() == "_ProjectGaussiansBackward"  # the compiled one ran
    assert 0 < int(mine.visible.sum()) < 2 * 400  # some culled, most not
    x = theirs.means2d[..., 0][mine.visible]  # [visible]
    assert ((x < -0.15 * W) | (x > 1.15 * W)).any()  # some drawn with a clamped J
    assert torch.equal(mine.radii, theirs.radii)  # the same boxes, the same Gaussians kept
    for name in ("means2d", "conics", "depths", "covars2d"):  # projection.py's numbers
        torch.testing.assert_close(getattr(mine, name), getattr(theirs, name), atol=1e-12,
                                   rtol=1e-12)  # fmt: skip
    for mine_g, their_g in zip(my_grads, their_grads):
        torch.testing.assert_close(mine_g, their_g, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_depth_order_on_two_threads_is_a_stable_sort(dtype, monkeypatch):
    # Each thread sorts half, then one merges from the front and one from the back: with many
    # ties (within and across the halves), an odd count and Gaussians not drawn, the order
    # must be numpy's stable sort of the drawn ones, on one thread and on two.
    rng = np.random.default_rng(0)
    depths = np.round(rng.uniform(2.0, 6.0, 10_001), 1).astype(dtype)  # [N] 41 values
    radii = rng.integers(0, 3, (10_001, 2)).astype(np.int32)  # [N, 2] some 0: not drawn
    drawn = np.flatnonzero((radii > 0).all(-1))
    expected = drawn[np.argsort(depths[drawn], kind="stable")]
    for threads in (1, 2):
        monkeypatch.setattr(kernel_mod, "_n_threads", lambda t=threads: t)
        assert np.array_equal(kernel_mod._drawn_front_to_back(depths, radii), expected)


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_projection_and_colours_in_one_pass_match_them_apart(degree, monkeypatch):
    # One node projects and colours (the means' two gradients summed in the kernel): its
    # numbers and gradients must be projection.py's and eval_sh's, through autograd, at every
    # degree, for SH shared by the cameras (even degrees) or one set per camera (odd), with
    # one camera turned and moved, some colours clamped at 0, on one thread or two.
    from splatcourse.splat3d import eval_sh

    monkeypatch.setattr(kernel_mod, "_n_threads", lambda: 1 + degree % 2)  # blocks on 1 or 2
    per_camera = degree % 2 == 1

    means, quats, scales, opac, _ = scene(300, seed=3, dtype=torch.float64, scale=(0.05, 0.3))
    views, Ks = cameras(2, dtype=torch.float64, w=W, h=H)
    turn = torch.tensor([[0.98, 0.0, 0.2], [0.0, 1.0, 0.0], [-0.2, 0.0, 0.98]], dtype=torch.float64)
    views[1, :3, :3], views[1, :3, 3] = torch.linalg.qr(turn)[0], torch.tensor([0.1, -0.2, 0.5])
    g = torch.Generator().manual_seed(2)
    shs = torch.randn(*((2,) if per_camera else ()), 300, 16, 3, generator=g, dtype=torch.float64)
    shs[..., 0, :] -= 0.8  # a darker base colour: some sums below 0, clamped
    weights = [torch.randn(2, 300, k, generator=g, dtype=torch.float64) for k in (2, 3, 3)]

    def apart(m, q, s, k):
        p = project_gaussians(m, None, views, Ks, W, H, opacities=opac, quats=q, scales=s)
        campos = torch.linalg.inv(views)[:, :3, 3]  # [C, 3]
        k = k if k.dim() == 4 else k[None].expand(2, *k.shape)  # [C, N, 16, 3]
        return p, torch.clamp_min(eval_sh(degree, k, m[None] - campos[:, None]) + 0.5, 0.0)

    def together(m, q, s, k):
        return kernel_mod.project_and_colour(m, None, views, Ks, W, H, sh_degree=degree, shs=k,
                                             opacities=opac, quats=q, scales=s)  # fmt: skip

    results = []
    for project in (together, apart):
        inputs = [t.clone().requires_grad_() for t in (means, quats, scales, shs)]
        p, colours = project(*inputs)
        outputs = (p.means2d, p.conics, colours)
        sum(((o * w).sum() for o, w in zip(outputs, weights)), torch.zeros(())).backward()
        results.append(([p.means2d, p.conics, p.depths, colours], [t.grad for t in inputs]))
    (mine, my_grads), (theirs, their_grads) = results
    assert mine[0].grad_fn.name() == "_ProjectGaussiansBackward"  # the compiled one ran
    assert (theirs[3] == 0).float().mean() > 0.02  # some colours are clamped at 0
    assert (my_grads[3][..., (degree + 1) ** 2 :, :] == 0).all()  # coefficients beyond the degree
    for a, b in zip(mine + my_grads, theirs + their_grads):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)


def test_colours_left_out_of_the_loss_give_the_projection_gradients_alone():
    means, quats, scales, opac, _ = scene(200, seed=6, dtype=torch.float64)
    views, Ks = cameras(1, dtype=torch.float64, w=W, h=H)
    shs = torch.randn(200, 4, 3, dtype=torch.float64)
    grads = []
    for with_colours in (True, False):
        m, k = means.clone().requires_grad_(), shs.clone().requires_grad_()
        kw = {"opacities": opac, "quats": quats, "scales": scales}
        if with_colours:
            p, _ = kernel_mod.project_and_colour(m, None, views, Ks, W, H, sh_degree=1, shs=k, **kw)
        else:
            p = kernel_mod.project_gaussians(m, None, views, Ks, W, H, **kw)
        (p.means2d.sum() + p.conics.sum()).backward()
        grads.append(m.grad)
        assert k.grad is None  # no loss through the colours: no gradient at all
    assert torch.equal(*grads)
    covars = torch.eye(3, dtype=torch.float64).expand(200, 3, 3) * 0.01  # not compiled: apart
    assert kernel_mod.project_and_colour(means, covars, views, Ks, W, H, sh_degree=1, shs=shs,
                                         opacities=opac) is None  # fmt: skip


def test_compiled_projection_leaves_covariances_and_antialiasing_to_projection_py():
    means, quats, scales, opac, _ = scene(30, seed=4)
    views, Ks = cameras(1, w=W, h=H)
    covars = torch.eye(3).expand(30, 3, 3) * 0.01
    aa = {"quats": quats, "scales": scales, "opacities": opac, "calc_compensations": True}
    for kw in ({"covars": covars}, aa):
        m = means.clone().requires_grad_()
        p = kernel_mod.project_gaussians(m, kw.pop("covars", None), views, Ks, W, H, **kw)
        assert p.means2d.grad_fn.name() != "_ProjectGaussiansBackward"


def test_the_glue_runs_on_one_torch_thread_and_the_bands_on_the_callers(monkeypatch):
    seen = []  # torch threads the projection saw, bands the kernel cut (per thread: 6)
    project = kernel_mod.project_gaussians
    assert backend.compiled_available()[0]  # its warm-up projects too: done before watching

    def watched(*args, **kw):
        seen.append(torch.get_num_threads())
        return project(*args, **kw)

    monkeypatch.setattr(kernel_mod, "project_gaussians", watched)
    params, (views, Ks) = scene(60, seed=2), cameras(w=W, h=H)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        info = rasterization(*params, views, Ks, W, H, backend="compiled")[2]
        assert torch.get_num_threads() == 2  # given back
    finally:
        torch.set_num_threads(before)
    assert seen == [1]
    assert info["raster_stats"].n_bands == 2 * kernel_mod.BANDS_PER_THREAD


def test_compiled_projection_forward_matches_projection_py_in_float32():
    # The bench scene's kind of Gaussians, float32 as in training, with an opacity-aware box,
    # a radius clip and a near plane that culls some: the compiled forward (float64 inside)
    # must give projection.py's float32 numbers to float32 precision and the same boxes.
    means, quats, scales, opac, _ = scene(3000, seed=5, scale=(0.005, 0.2))
    means[:100, 2] = 0.05  # in front of the near plane below
    opac[100:200] = 0.002  # fainter than 1/255 everywhere
    means[200:300, 0] = 5.0 * means[200:300, 2]  # off-screen in the first camera
    scales[300:400] = 1e-4  # the blur alone: a box of 2 px, culled by radius_clip=2
    views, Ks = cameras(2, w=W, h=H)
    kw = {"opacities": opac, "quats": quats, "scales": scales, "near_plane": 0.1,
          "radius_clip": 2.0}  # fmt: skip
    mine = kernel_mod.project_gaussians(means.requires_grad_(), None, views, Ks, W, H, **kw)
    theirs = project_gaussians(means.detach(), None, views, Ks, W, H, **kw)
    assert mine.means2d.grad_fn.name() == "_ProjectGaussiansBackward"
    assert mine.means2d.dtype == theirs.means2d.dtype == torch.float32
    kept = theirs.visible
    assert kept.float().mean() > 0.5 and not kept[:, :200].any() and not kept[:, 300:400].any()
    assert not kept[0, 200:300].any()
    assert torch.equal(mine.visible, kept)
    same_box = (mine.radii == theirs.radii).all(-1)
    # a box side is ceil(3.33 std): float32 rounding may move one across an integer
    assert same_box.float().mean() > 0.999, same_box.float().mean()
    for name in ("means2d", "conics", "depths", "covars2d"):
        torch.testing.assert_close(getattr(mine, name), getattr(theirs, name), atol=1e-5,
                                   rtol=1e-5)  # fmt: skip


def test_the_warm_up_leaves_torchs_random_numbers_alone():
    # the warm-up runs at a fit's first render: drawing from the global generator there made
    # a fit's later random numbers (gsplat's splits) depend on whether it came first
    before = torch.get_rng_state()
    kernel_mod.warm_up()
    assert torch.equal(torch.get_rng_state(), before)
