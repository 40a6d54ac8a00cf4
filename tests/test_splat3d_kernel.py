"""The compiled CPU rasterizer (splat3d/kernel.py): parity with the PyTorch one, the fallback,
threads, the disk cache, fork safety and the tile-waste figure. Exactness against the dense
reference and gradchecks run in test_splat3d_rasterizer.py on both CPU rasterizers."""

import itertools
import json
import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import torch
from test_splat3d_rasterizer import cameras, scene

from splatcourse.splat3d import BACKEND_ENV_VAR, backend, project_gaussians, rasterization
from splatcourse.splat3d import kernel as kernel_mod

W, H = 48, 36


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
    code = (
        "import json; from splatcourse.splat3d import kernel; kernel.warm_up(); "
        "ks = [kernel._row_lists, kernel._forward_band, kernel._backward_band, "
        "kernel._projection_backward_block]; "
        "print(json.dumps([[k.__name__, sum(k.stats.cache_hits.values()), "
        "sum(k.stats.cache_misses.values())] for k in ks]))"
    )
    env = {**os.environ, "NUMBA_CACHE_DIR": str(kernel_mod.numba_cache_dir())}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    for name, hits, misses in json.loads(out.stdout.strip().splitlines()[-1]):
        assert (hits, misses) == (1, 0), f"{name}: {hits} cache hits, {misses} misses"


def test_bands_go_to_whichever_thread_is_free():
    # a thread held up (by another program) on its band leaves the other bands to the rest
    edges = np.arange(0, 25, 2)  # [13]: 12 bands of 2 rows
    taken: list[tuple[int, int]] = []  # (worker, first row of the band)

    def work(worker: int, y0: int, y1: int) -> None:
        assert y1 == y0 + 2
        taken.append((worker, y0))
        if y0 == 0:
            time.sleep(0.3)  # the thread with the first band is slowed down

    kernel_mod._in_bands(work, edges, n_workers=2)
    assert sorted(y0 for _, y0 in taken) == list(range(0, 24, 2))  # every band exactly once
    slow = next(w for w, y0 in taken if y0 == 0)
    assert [y0 for w, y0 in taken if w == slow] == [0]  # the other thread took all the rest


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX only")
def test_a_forked_child_renders_after_the_parent_did(monkeypatch):
    # The grading zygote warms the kernels up, then forks every grading kernel from itself:
    # the band threads the parent made do not exist in the child.
    monkeypatch.setattr(kernel_mod, "_n_threads", lambda: 2)
    params, (views, Ks) = scene(40, seed=6), cameras(w=W, h=H)
    rasterization(*params, views, Ks, W, H, backend="compiled")
    assert kernel_mod._POOL is not None and kernel_mod._POOL[0] == os.getpid()
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
        "ks = (kernel._row_lists, kernel._forward_band, kernel._backward_band); "
        "before = [bool(k.signatures) for k in ks]; zygote._warm_up(); "
        "print(before, [bool(k.signatures) for k in ks])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[-2] == "[False, False, False] [True, True, True]"


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_compiled_sh_colours_match_eval_sh_with_gradients(degree, monkeypatch):
    from splatcourse.splat3d import eval_sh

    monkeypatch.setattr(kernel_mod, "_n_threads", lambda: 1 + degree % 2)  # blocks on 1 or 2

    g = torch.Generator().manual_seed(degree)
    coeffs = torch.randn(2, 300, 16, 3, generator=g, dtype=torch.float64)  # [C, N, K, 3]
    dirs = torch.randn(2, 300, 3, generator=g, dtype=torch.float64) * 3  # [C, N, 3]
    weights = torch.rand(2, 300, 3, generator=g, dtype=torch.float64)
    grads = []
    for fn in (
        kernel_mod.sh_colours,
        lambda d, c, v: torch.clamp_min(eval_sh(d, c, v) + 0.5, 0.0),
    ):
        c, v = coeffs.clone().requires_grad_(), dirs.clone().requires_grad_()
        colours = fn(degree, c, v)
        (colours * weights).sum().backward()
        g_dirs = torch.zeros_like(v) if v.grad is None else v.grad  # degree 0: no direction
        grads.append((colours.detach(), c.grad, g_dirs))
    assert (grads[1][0] == 0).float().mean() > 0.02  # some colours are clamped at 0
    for mine, theirs in zip(*grads):
        torch.testing.assert_close(mine, theirs, atol=1e-12, rtol=1e-10)


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
    for name in ("means2d", "conics", "depths", "radii"):  # the forward is projection.py's
        torch.testing.assert_close(getattr(mine, name), getattr(theirs, name), atol=0, rtol=0)
    for mine_g, their_g in zip(my_grads, their_grads):
        torch.testing.assert_close(mine_g, their_g, atol=1e-12, rtol=1e-10)


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
