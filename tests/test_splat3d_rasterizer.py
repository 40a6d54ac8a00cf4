"""The CPU rasterizers, compiled and PyTorch: exactness against the dense reference,
gradients, invariances. Every test runs on both (the ``cpu_backend`` fixture)."""

import math

import pytest
import torch

import splatcourse.splat3d.rasterize as rasterize_mod
from splatcourse import constants, toy2d
from splatcourse.splat3d import (
    BACKEND_ENV_VAR,
    dense_rasterization,
    intrinsics,
    look_at,
    rasterization,
    resolve_backend,
)

W, H = 40, 30


@pytest.fixture(autouse=True, params=["compiled", "torch"])
def cpu_backend(request, monkeypatch):
    """Run each test on the compiled rasterizer and on the PyTorch one (its fallback)."""
    monkeypatch.setenv(BACKEND_ENV_VAR, request.param)
    return request.param


def scene(n=150, seed=0, dtype=torch.float32, opacity=(0.05, 0.95), scale=(0.03, 0.25)):
    g = torch.Generator().manual_seed(seed)
    z = 2.0 + 3.0 * torch.rand(n, generator=g)
    x = (torch.rand(n, generator=g) * 2 - 1) * 0.55 * z
    y = (torch.rand(n, generator=g) * 2 - 1) * 0.45 * z
    means = torch.stack([x, y, z], -1)
    quats = torch.randn(n, 4, generator=g)
    lo, hi = math.log(scale[0]), math.log(scale[1])
    scales = torch.exp(torch.rand(n, 3, generator=g) * (hi - lo) + lo)
    opac = torch.rand(n, generator=g) * (opacity[1] - opacity[0]) + opacity[0]
    colors = torch.rand(n, 3, generator=g)
    return [t.to(dtype) for t in (means, quats, scales, opac, colors)]


def cameras(n_cams=1, dtype=torch.float32, w=W, h=H):
    views = [torch.eye(4)]
    views += [
        look_at((0.6 * i, -0.3 * i, 0.2), (0.0, 0.0, 3.5), up=(0.0, -1.0, 0.0))
        for i in range(1, n_cams)
    ]
    K = intrinsics(0.9 * w, 0.9 * w, w / 2, h / 2)
    return torch.stack(views).to(dtype), K.expand(n_cams, 3, 3).to(dtype)


def render_both(params, views, Ks, w=W, h=H, **kw):
    ours = rasterization(*params, views, Ks, w, h, **kw)
    ref = dense_rasterization(*params, views, Ks, w, h, **kw)
    return ours, ref


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"render_mode": "RGB+ED", "backgrounds": torch.tensor([[0.2, 0.5, 0.9]])},
        {"render_mode": "D"},
        {"render_mode": "ED"},
        {"render_mode": "RGB+D"},
        {"rasterize_mode": "antialiased"},
        {"near_plane": 2.5, "far_plane": 4.0},
    ],
    ids=["rgb", "rgb+ed+bg", "d", "ed", "rgb+d", "antialiased", "near-far"],
)
def test_forward_matches_dense_reference(kw):
    params = scene()
    views, Ks = cameras()
    (r, a, _info), (r2, a2, _) = render_both(params, views, Ks, **kw)
    assert r.shape[:3] == (1, H, W) and a.shape == (1, H, W, 1)
    assert 0.3 < a.mean() < 0.99  # a real scene: neither empty nor saturated
    torch.testing.assert_close(a, a2, atol=1e-5, rtol=0)
    torch.testing.assert_close(r, r2, atol=1e-5 * max(1.0, float(r2.abs().max())), rtol=1e-5)


def test_sh_colours_and_several_cameras_match_dense():
    means, quats, scales, opac, _ = scene(120, seed=3)
    sh = torch.randn(len(means), 16, 3, generator=torch.Generator().manual_seed(1)) * 0.3
    views, Ks = cameras(3)
    for degree in (0, 3):
        (r, a, info), (r2, a2, _) = render_both(
            [means, quats, scales, opac, sh], views, Ks, sh_degree=degree
        )
        assert r.shape == (3, H, W, 3) and info["n_cameras"] == 3
        torch.testing.assert_close(r, r2, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(a, a2, atol=1e-5, rtol=0)
    assert not torch.allclose(r[0], r[1])  # the cameras really differ


def test_saturated_pixels_terminate_like_the_reference():
    # Many large, nearly opaque Gaussians: most pixels reach T < 1e-4 and stop early, which
    # exercises both the masking and the compaction path of the early termination.
    params = scene(300, seed=5, opacity=(0.6, 0.99), scale=(0.2, 0.5))
    views, Ks = cameras()
    (r, a, info), (r2, _a2, _) = render_both(params, views, Ks)
    stats = info["raster_stats"]
    assert stats.n_composited < 0.75 * stats.n_pairs  # termination did cut pairs
    assert (a > 0.999).float().mean() > 0.8
    torch.testing.assert_close(r, r2, atol=1e-5, rtol=1e-5)


def test_compositing_rules_have_one_home():
    # Every renderer takes the rules from splatcourse.constants, under its historical names.
    from splatcourse.splat3d import ALPHA_THRESHOLD, compositing, dense, projection

    assert rasterize_mod.ALPHA_MAX is constants.ALPHA_MAX is compositing.ALPHA_MAX
    assert dense.ALPHA_MAX is constants.ALPHA_MAX
    assert rasterize_mod.ALPHA_MIN is constants.ALPHA_MIN is dense.ALPHA_MIN
    assert ALPHA_THRESHOLD is projection.ALPHA_THRESHOLD is constants.ALPHA_MIN
    assert rasterize_mod.T_MIN is constants.T_MIN is dense.T_MIN
    assert toy2d.TOY_ALPHA_MAX is constants.TOY_ALPHA_MAX
    assert (constants.ALPHA_MAX, constants.ALPHA_MIN, constants.T_MIN) == (0.999, 1 / 255, 1e-4)
    assert math.exp(-constants.POWER_AT_ALPHA_MIN) == pytest.approx(constants.ALPHA_MIN)


def test_bands_give_the_same_image(monkeypatch):
    # the PyTorch rasterizer's memory bands (the compiled one has no pair lists to bound)
    params = scene(200, seed=2)
    views, Ks = cameras(2)
    r, a, info = rasterization(*params, views, Ks, W, H, backend="torch")
    monkeypatch.setattr(rasterize_mod, "DEFAULT_PAIRS_PER_BAND", 500)
    r2, a2, info2 = rasterization(*params, views, Ks, W, H, backend="torch")
    assert info2["raster_stats"].n_bands > 6 * info["raster_stats"].n_bands
    torch.testing.assert_close(r, r2, atol=1e-6, rtol=0)
    torch.testing.assert_close(a, a2, atol=1e-6, rtol=0)


@pytest.mark.parametrize("sh", [False, True], ids=["rgb", "sh3"])
def test_gradcheck_every_input(sh, monkeypatch):
    # Tiny float64 scene; several bands so the band seams are differentiated too.
    monkeypatch.setattr(rasterize_mod, "DEFAULT_PAIRS_PER_BAND", 40)
    means, quats, scales, opac, colors = scene(
        5, seed=7, dtype=torch.float64, opacity=(0.2, 0.8), scale=(0.15, 0.3)
    )
    if sh:
        colors = (
            torch.randn(5, 16, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
            * 0.3
        )
    views, Ks = cameras(2, dtype=torch.float64, w=10, h=8)
    bg = torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]], dtype=torch.float64)
    inputs = [t.clone().requires_grad_() for t in (means, quats, scales, opac, colors, bg)]

    def f(m, q, s, o, c, b):
        r, a, _ = rasterization(
            m,
            q,
            s,
            o,
            c,
            views,
            Ks,
            10,
            8,
            backgrounds=b,
            render_mode="RGB+ED",
            sh_degree=3 if sh else None,
        )
        return r, a

    _r, a = f(*inputs)
    assert a.max() > 0.3 and (a > 0).float().mean() > 0.3  # the Gaussians are on screen
    # fast_mode checks random directional derivatives of every input (full mode: 1 minute).
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-6, rtol=1e-4, fast_mode=True)


def test_gradcheck_full_jacobian_single_camera():
    means, quats, scales, opac, colors = scene(
        3, seed=1, dtype=torch.float64, opacity=(0.3, 0.9), scale=(0.2, 0.3)
    )
    views, Ks = cameras(1, dtype=torch.float64, w=8, h=6)
    inputs = [t.clone().requires_grad_() for t in (means, quats, scales, opac, colors)]

    def f(m, q, s, o, c):
        r, a, _ = rasterization(m, q, s, o, c, views, Ks, 8, 6)
        return r, a

    assert f(*inputs)[1].max() > 0.3
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)


def test_gradients_match_dense_on_a_saturated_scene():
    params = scene(150, seed=11, dtype=torch.float64, opacity=(0.6, 0.99), scale=(0.3, 0.8))
    sh = torch.randn(150, 4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    views, Ks = cameras(2, dtype=torch.float64, w=24, h=18)
    bg = torch.rand(2, 3, dtype=torch.float64)
    grads = []
    for fn in (rasterization, dense_rasterization):
        inputs = [t.clone().requires_grad_() for t in (*params[:4], sh, bg)]
        r, a, _info = fn(
            *inputs[:5], views, Ks, 24, 18, sh_degree=1, backgrounds=inputs[5], render_mode="RGB+ED"
        )
        g = torch.Generator().manual_seed(3)
        loss = (r * torch.rand(r.shape, generator=g, dtype=r.dtype)).sum() + (a**2).sum()
        grads.append(torch.autograd.grad(loss, inputs))
    assert (a > 0.999).float().mean() > 0.3  # early termination is active
    for g1, g2 in zip(*grads):
        torch.testing.assert_close(g1, g2, atol=1e-9, rtol=1e-7)


def test_permuting_gaussians_changes_nothing():
    params = scene(200, seed=4)
    views, Ks = cameras(2)
    perm = torch.randperm(200, generator=torch.Generator().manual_seed(0))
    inputs = [t.clone().requires_grad_() for t in params]
    r, a, _ = rasterization(*inputs, views, Ks, W, H)
    (r.square().sum() + a.sum()).backward()
    inputs_p = [t[perm].clone().requires_grad_() for t in params]
    r2, a2, _ = rasterization(*inputs_p, views, Ks, W, H)
    (r2.square().sum() + a2.sum()).backward()
    torch.testing.assert_close(r, r2, atol=1e-6, rtol=0)
    torch.testing.assert_close(a, a2, atol=1e-6, rtol=0)
    for t, tp in zip(inputs, inputs_p):
        torch.testing.assert_close(t.grad[perm], tp.grad, atol=1e-4, rtol=1e-4)


def test_gaussians_behind_camera_or_off_screen_contribute_nothing():
    params = scene(100, seed=6)
    views, Ks = cameras()
    extra_means = torch.tensor(
        [
            [0.0, 0.0, -3.0],  # behind the camera
            [0.1, 0.0, 0.001],  # in front of the near plane
            [30.0, 0.0, 3.0],  # far to the right
            [0.0, -40.0, 3.0],  # far above
        ]
    )
    k = len(extra_means)
    extra = [
        extra_means,
        torch.randn(k, 4),
        torch.full((k, 3), 0.3),
        torch.full((k,), 0.9),
        torch.rand(k, 3),
    ]
    both = [torch.cat([p, e]).requires_grad_() for p, e in zip(params, extra)]
    r, a, info = rasterization(*both, views, Ks, W, H)
    r0, a0, _ = rasterization(*params, views, Ks, W, H)
    torch.testing.assert_close(r, r0, atol=0, rtol=0)
    torch.testing.assert_close(a, a0, atol=0, rtol=0)
    assert (info["radii"][0, -k:] == 0).all()
    (r.sum() + a.sum()).backward()
    for p in both:
        assert torch.isfinite(p.grad).all()
        assert (p.grad[-k:] == 0).all()


def test_single_gaussian_footprint_is_the_analytic_2d_gaussian():
    f, s, z, o = 30.0, 0.1, 2.0, 0.7
    mean = torch.tensor([[0.05, -0.02, z]])
    K = intrinsics(f, f, 20.0, 15.0)[None]
    _, alpha, _ = rasterization(
        mean,
        torch.tensor([[1.0, 0.0, 0.0, 0.0]]),
        torch.full((1, 3), s),
        torch.tensor([o]),
        torch.ones(1, 3),
        torch.eye(4)[None],
        K,
        40,
        30,
    )
    # Isotropic 3D Gaussian straight ahead: screen variance (f s / z)^2 plus the 0.3 px blur
    # (the Jacobian's off-axis terms are tiny here and included exactly below).
    x, y = mean[0, 0].item(), mean[0, 1].item()
    J = torch.tensor([[f / z, 0.0, -f * x / z**2], [0.0, f / z, -f * y / z**2]])
    cov = J @ (s**2 * torch.eye(3)) @ J.T + 0.3 * torch.eye(2)
    centre = torch.tensor([f * x / z + 20.0, f * y / z + 15.0])
    ys, xs = torch.meshgrid(torch.arange(30) + 0.5, torch.arange(40) + 0.5, indexing="ij")
    d = torch.stack([xs, ys], -1) - centre
    power = 0.5 * torch.einsum("hwi,ij,hwj->hw", d, torch.linalg.inv(cov), d)
    expected = o * torch.exp(-power)
    expected = torch.where(expected >= 1 / 255, expected, torch.zeros_like(expected))
    torch.testing.assert_close(alpha[0, ..., 0], expected, atol=2e-6, rtol=0)
    assert (alpha > 0).sum() > 50  # a real footprint, tens of pixels


def test_info_carries_what_densification_reads():
    params = [t.requires_grad_() for t in scene(80, seed=8)]
    views, Ks = cameras(2)
    r, a, info = rasterization(*params, views, Ks, W, H)
    for key in (
        "means2d",
        "radii",
        "width",
        "height",
        "n_cameras",
        "gaussian_ids",
        "depths",
        "conics",
        "opacities",
    ):
        assert key in info
    assert info["means2d"].shape == (2, 80, 2) and info["radii"].shape == (2, 80, 2)
    assert info["radii"].dtype == torch.int32
    info["means2d"].retain_grad()
    (r.sum() + a.sum()).backward()
    g = info["means2d"].grad
    visible = (info["radii"] > 0).all(-1)
    assert g.abs().sum(-1)[visible].gt(0).float().mean() > 0.9
    assert (g[~visible] == 0).all()


def test_empty_view_renders_background():
    params = scene(10)
    params[0] = params[0] * torch.tensor([1.0, 1.0, -1.0])  # all behind the camera
    views, Ks = cameras()
    bg = torch.tensor([[0.3, 0.6, 0.9]])
    r, a, _ = rasterization(*params, views, Ks, W, H, backgrounds=bg)
    assert (a == 0).all()
    torch.testing.assert_close(r, bg.expand(H * W, 3).reshape(1, H, W, 3))


def test_backend_switch(monkeypatch):
    monkeypatch.delenv(BACKEND_ENV_VAR, raising=False)
    assert resolve_backend("torch") == "torch"
    assert resolve_backend("compiled") == "compiled"
    assert resolve_backend(None, torch.device("cpu")) == "compiled"  # the default CPU path
    monkeypatch.setenv(BACKEND_ENV_VAR, "torch")
    assert resolve_backend() == "torch"
    monkeypatch.setenv(BACKEND_ENV_VAR, "metal")
    with pytest.raises(ValueError, match=BACKEND_ENV_VAR):
        resolve_backend()
    with pytest.raises(ValueError, match="backend argument"):
        resolve_backend("cuda")
    if not torch.cuda.is_available():
        monkeypatch.setenv(BACKEND_ENV_VAR, "gsplat")
        with pytest.raises(RuntimeError, match=r"gsplat.*unavailable.*backend='torch'"):
            rasterization(*scene(5), *cameras(), W, H)


def test_bad_arguments_raise_clear_errors():
    params = scene(5)
    views, Ks = cameras()
    with pytest.raises(ValueError, match="opacities"):
        rasterization(params[0], params[1], params[2], params[3][:4], params[4], views, Ks, W, H)
    with pytest.raises(ValueError, match="render_mode"):
        rasterization(*params, views, Ks, W, H, render_mode="RGBA")
    with pytest.raises(ValueError, match="sh_degree"):
        rasterization(*params[:4], torch.zeros(5, 4, 3), views, Ks, W, H, sh_degree=3)
    with pytest.raises(NotImplementedError, match="camera_model"):
        rasterization(*params, views, Ks, W, H, camera_model="fisheye", backend="torch")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("sparse_grad", True),
        ("absgrad", True),
        ("distributed", True),
        ("camera_model", "ortho"),
        ("segmented", True),
        ("with_ut", True),
        ("with_eval3d", True),
        ("radial_coeffs", torch.zeros(1, 6)),
        ("tangential_coeffs", torch.zeros(1, 2)),
        ("thin_prism_coeffs", torch.zeros(1, 4)),
        ("ftheta_coeffs", "any f-theta parameters"),
        ("rolling_shutter", "ROLLING_TOP_TO_BOTTOM"),
        ("viewmats_rs", torch.eye(4)[None]),
    ],
)
def test_gsplat_only_arguments_are_refused_by_name(name, value):
    if name == "rolling_shutter":
        from gsplat import RollingShutterType

        value = RollingShutterType[value]
    with pytest.raises(NotImplementedError, match=rf"rasterization: {name}=.*gsplat backend"):
        rasterization(*scene(5), *cameras(), W, H, backend="torch", **{name: value})


def test_ignored_and_default_arguments_are_accepted_and_change_nothing():
    from gsplat import RollingShutterType

    params = scene(60, seed=12)
    r, a, _ = rasterization(*params, *cameras(), W, H, backend="torch")
    r2, a2, info2 = rasterization(
        *params,
        *cameras(),
        W,
        H,
        backend="torch",
        packed=False,
        tile_size=8,
        channel_chunk=1,
        rolling_shutter=RollingShutterType.GLOBAL,
        sparse_grad=False,
        segmented=False,
        camera_model="pinhole",
        radial_coeffs=None,
    )
    torch.testing.assert_close(r2, r, atol=0, rtol=0)
    torch.testing.assert_close(a2, a, atol=0, rtol=0)
    assert info2["packed"] is False and info2["tile_size"] == 8
    assert (info2["tile_width"], info2["tile_height"]) == (math.ceil(W / 8), math.ceil(H / 8))


def test_gsplat_backend_passes_every_gsplat_argument_on(monkeypatch):
    # No GPU needed: gsplat.rasterization is replaced by a recorder. Our keywords must be
    # exactly gsplat's (the drop-in promise), gsplat-only ones included.
    import inspect

    import gsplat

    from splatcourse.splat3d import backend

    gsplat_keywords = list(inspect.signature(gsplat.rasterization).parameters)[9:]
    seen = {}

    def recorder(*args, **kwargs):
        seen.update(kwargs, n_positional=len(args))
        return "renders", "alphas", {}

    monkeypatch.setattr(gsplat, "rasterization", recorder)
    monkeypatch.setattr(backend, "resolve_backend", lambda *_: "gsplat")
    r, a, info = rasterization(
        *scene(5), *cameras(), W, H, sparse_grad=True, segmented=True, channel_chunk=7, packed=False
    )
    assert (r, a, info) == ("renders", "alphas", {"packed": False, "backend": "gsplat"})
    assert seen.pop("n_positional") == 9
    # rolling_shutter=None is left out, so that gsplat's own default (GLOBAL) applies
    assert set(seen) == set(gsplat_keywords) - {"rolling_shutter"}
    assert (seen["sparse_grad"], seen["segmented"], seen["channel_chunk"]) == (True, True, 7)


def test_rasterization_docstring_examples_run():
    import doctest

    from splatcourse.splat3d import backend

    result = doctest.testmod(backend, raise_on_error=False, verbose=False)
    assert result.attempted > 0
    assert result.failed == 0


# ---------------------------------------------------------------- parity with gsplat's CUDA
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA and gsplat's kernels")


@cuda
@pytest.mark.cuda
@pytest.mark.parametrize("sh", [False, True], ids=["rgb", "sh3"])
def test_parity_with_gsplat_cuda(sh):
    import gsplat

    means, quats, scales, opac, colors = scene(2000, seed=9, scale=(0.01, 0.1))
    if sh:
        colors = torch.randn(2000, 16, 3, generator=torch.Generator().manual_seed(0)) * 0.3
    views, Ks = cameras(2, w=160, h=120)
    bg = torch.tensor([[0.1, 0.2, 0.3], [0.0, 0.0, 0.0]])
    kw = {"sh_degree": 3 if sh else None, "backgrounds": bg, "render_mode": "RGB+ED"}
    outs = []
    for device in ("cpu", "cuda"):
        inputs = [t.to(device).requires_grad_() for t in (means, quats, scales, opac, colors)]
        if device == "cpu":
            r, a, info = rasterization(*inputs, views, Ks, 160, 120, backend="torch", **kw)
        else:
            r, a, info = gsplat.rasterization(
                *inputs,
                views.cuda(),
                Ks.cuda(),
                160,
                120,
                packed=False,
                **{**kw, "backgrounds": bg.cuda()},
            )
        g = torch.Generator().manual_seed(1)
        wr = torch.rand(r.shape, generator=g).to(device)
        ((r * wr).sum() + a.sum()).backward()
        outs.append(
            [x.detach().cpu() for x in (r, a, info["radii"])] + [t.grad.cpu() for t in inputs]
        )
    (r, a, radii, *grads), (r2, a2, radii2, *grads2) = outs
    torch.testing.assert_close(radii, radii2.to(radii.dtype), atol=1, rtol=0)
    assert (radii != radii2).float().mean() < 0.01
    torch.testing.assert_close(a, a2, atol=1e-3, rtol=0)
    torch.testing.assert_close(r, r2, atol=2e-3, rtol=1e-3)
    for g1, g2 in zip(grads, grads2):
        scale = float(g2.abs().max())
        assert float((g1 - g2).abs().max()) < 2e-2 * scale
