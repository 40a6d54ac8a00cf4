import math

import pytest
import torch

from splatcourse import toy2d


def test_pixel_grid_centres():
    g = toy2d.pixel_grid(2, 4)
    assert g.shape == (2, 4, 2)
    assert torch.allclose(g[0, 0], torch.tensor([0.125, 0.25]))
    assert torch.allclose(g[1, 3], torch.tensor([0.875, 0.75]))
    with pytest.raises(ValueError, match="positive size"):
        toy2d.pixel_grid(0)


def test_targets_are_images_in_range():
    grey, colour = toy2d.gradient_target(32), toy2d.colour_target(32)
    assert grey.shape == (32, 32) and colour.shape == (32, 32, 3)
    for t in (grey, colour):
        assert t.min() >= 0 and t.max() <= 1
    # distinct colour regions: the three channels really differ (not a grey image)
    spread = (colour - colour.mean(-1, keepdim=True)).abs().mean()
    assert spread > 0.1


def test_render_single_gaussian_matches_formula():
    grid = toy2d.pixel_grid(8)
    img = toy2d.render_splats(
        torch.tensor([[0.5, 0.5]]), torch.tensor([math.log(0.2)]), torch.tensor([3.0]), grid
    )
    x = grid[2, 5]
    want = 3.0 * math.exp(-0.5 * float(((x - 0.5) ** 2).sum()) / 0.04)
    assert img[2, 5].item() == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("channels", [None, 1, 3])
def test_separable_and_loop_renders_agree_with_broadcast(channels):
    gen = torch.Generator().manual_seed(0)
    means = torch.rand(9, 2, generator=gen)
    log_scales = torch.rand(9, generator=gen) - 2.5
    weights = (
        torch.randn(9, generator=gen)
        if channels is None
        else torch.randn(9, channels, generator=gen)
    )
    ref = toy2d.render_splats(means, log_scales, weights, toy2d.pixel_grid(12, 10))
    sep = toy2d.render_splats_separable(means, log_scales, weights, 12, 10)
    assert torch.allclose(ref, sep, atol=1e-6)
    if channels is None:
        loop = toy2d.render_splats_loop(means.tolist(), log_scales.tolist(), weights.tolist(), 12)
        assert torch.allclose(
            torch.tensor(loop),
            toy2d.render_splats(means, log_scales, weights, toy2d.pixel_grid(12)),
            atol=1e-5,
        )


def test_anisotropic_reduces_to_isotropic_and_matches_covariance():
    gen = torch.Generator().manual_seed(1)
    means = torch.rand(4, 2, generator=gen)
    ls = torch.rand(4, generator=gen) - 2.5
    grid = toy2d.pixel_grid(9)
    w = torch.randn(4, 2, generator=gen)
    iso = toy2d.render_splats(means, ls, w, grid)
    aniso = toy2d.render_anisotropic(
        means, ls[:, None].expand(4, 2), torch.rand(4, generator=gen), w, grid
    )
    assert torch.allclose(iso, aniso, atol=1e-6)  # round Gaussians ignore the angle
    # general case against the explicit inverse covariance
    ls2, ang = torch.randn(4, 2, generator=gen) * 0.3 - 2, torch.rand(4, generator=gen) * 3
    inv = torch.linalg.inv(toy2d.covariance_2d(ls2, ang))
    d = grid[None] - means[:, None, None]
    want = torch.einsum(
        "nhw,nc->hwc", torch.exp(-0.5 * torch.einsum("nhwi,nij,nhwj->nhw", d, inv, d)), w
    )
    assert torch.allclose(toy2d.render_anisotropic(means, ls2, ang, w, grid), want, atol=1e-5)


def test_covariance_is_symmetric_positive_definite():
    cov = toy2d.covariance_2d(torch.randn(20, 2), torch.randn(20) * 5)
    assert torch.allclose(cov, cov.transpose(1, 2), atol=1e-6)
    assert (torch.linalg.eigvalsh(cov) > 0).all()


def test_composite_order_matters_and_sum_does_not():
    grid = toy2d.pixel_grid(16)
    means = torch.tensor([[0.5, 0.5], [0.5, 0.5]])
    ls = torch.full((2, 2), math.log(0.2))
    ang = torch.zeros(2)
    col = torch.tensor([[1.0, 0, 0], [0, 0, 1.0]])
    op = torch.tensor([0.99, 0.99])
    red_front, a1 = toy2d.composite_2d(means, ls, ang, col, op, torch.tensor([1.0, 2.0]), grid)
    blue_front, a2 = toy2d.composite_2d(means, ls, ang, col, op, torch.tensor([2.0, 1.0]), grid)
    centre = (8, 8)
    assert red_front[centre][0] > 0.95 and red_front[centre][2] < 0.05
    assert blue_front[centre][2] > 0.95 and blue_front[centre][0] < 0.05
    assert torch.allclose(a1, a2)  # coverage does not depend on order
    assert (a1 <= 1 + 1e-6).all()


def test_fit_lowers_error_and_is_deterministic():
    target = toy2d.gradient_target(16)
    a = toy2d.fit_splats(target, 8, steps=80, progress=False, record_every=20)
    b = toy2d.fit_splats(target, 8, steps=80, progress=False)
    assert a.mse < 0.2 * a.losses[0]
    assert a.mse == pytest.approx(b.mse, rel=1e-5)
    assert [s for s, _ in a.snapshots] == [0, 20, 40, 60, 80]
    final = toy2d.render_splats(
        a.params["means"], a.params["log_scales"], a.params["weights"], toy2d.pixel_grid(16)
    )
    assert toy2d.mse(final, target) == pytest.approx(a.mse, rel=1e-4)


def test_more_gaussians_fit_better_and_colour_fit_beats_grey_per_channel():
    grey = toy2d.gradient_target(24)
    errs = [toy2d.fit_splats(grey, n, steps=150, progress=False).mse for n in (4, 16)]
    assert errs[1] < errs[0]
    colour = toy2d.colour_target(24)
    fit = toy2d.fit_splats(colour, 32, steps=200, progress=False)
    img = toy2d.render_splats(**fit.params, grid=toy2d.pixel_grid(24))
    grey_img = colour.mean(-1, keepdim=True).expand_as(colour)
    assert all(
        f < 0.5 * g
        for f, g in zip(toy2d.mse_per_channel(img, colour), toy2d.mse_per_channel(grey_img, colour))
    )


def test_anisotropic_fit_runs():
    r = toy2d.fit_splats(toy2d.gradient_target(16), 4, steps=40, anisotropic=True, progress=False)
    assert r.params["log_scales"].shape == (4, 2) and r.mse < r.losses[0]


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="at least one Gaussian"):
        toy2d.init_splats(0)
    with pytest.raises(ValueError, match="shapes differ"):
        toy2d.mse(torch.zeros(2, 2), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="square"):
        toy2d.fit_splats(torch.zeros(4, 5), 2, steps=1, progress=False)
