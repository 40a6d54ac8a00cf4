"""Tiny NeRF: encoding, rays, volume rendering against closed forms, and a short fit."""

import math

import pytest
import torch

from splatcourse import nerf
from splatcourse.capture import load_capture


def test_positional_encoding_shape_and_values():
    x = torch.tensor([[0.25, -0.5, 1.0]])
    enc = nerf.positional_encoding(x, 2)
    assert enc.shape == (1, 3 * (1 + 2 * 2))
    assert torch.allclose(enc[0, :3], x[0])
    assert torch.allclose(enc[0, 3], torch.sin(torch.tensor(math.pi * 0.25)), atol=1e-6)
    with pytest.raises(ValueError, match="n_freqs"):
        nerf.positional_encoding(x, -1)


def test_weights_sum_to_at_most_one():
    gen = torch.Generator().manual_seed(0)
    sigma = torch.rand(50, 16, generator=gen) * 20
    t = torch.sort(torch.rand(50, 16, generator=gen) * 3, dim=-1).values
    far = torch.full((50,), 3.5)
    colour, w = nerf.volume_render(sigma, torch.rand(50, 16, 3, generator=gen), t, far)
    assert w.shape == (50, 16) and colour.shape == (50, 3)
    assert (w >= 0).all() and (w.sum(-1) <= 1 + 1e-5).all()
    assert w.sum(-1).max() > 0.9  # dense media do become opaque


def test_constant_density_matches_beer_lambert():
    # a uniform medium of density s over length L lets exp(-s L) of the background through
    s, L = 0.7, 2.0
    t = torch.linspace(0, L, 65)[:-1][None]  # [1, 64] bin starts
    rgb = torch.tensor([1.0, 0.0, 0.0]).expand(1, 64, 3)
    colour, w = nerf.volume_render(
        torch.full((1, 64), s), rgb, t, torch.tensor([L]), background=torch.tensor([0.0, 0.0, 1.0])
    )
    opacity = 1 - math.exp(-s * L)
    assert w.sum().item() == pytest.approx(opacity, rel=1e-4)
    assert colour[0].tolist() == pytest.approx([opacity, 0.0, 1 - opacity], rel=1e-4)


def test_rays_and_box():
    K = torch.tensor([[10.0, 0, 2], [0, 10.0, 2], [0, 0, 1]])
    viewmat = torch.eye(4)
    viewmat[2, 3] = 5.0  # camera at z = -5 looking down +z
    o, d = nerf.camera_rays(viewmat, K, 4, 4)
    assert o.shape == d.shape == (4, 4, 3)
    assert torch.allclose(o[0, 0], torch.tensor([0.0, 0.0, -5.0]))
    assert torch.allclose(d.norm(dim=-1), torch.ones(4, 4))
    box = torch.tensor([[-1.0, -1, -1], [1.0, 1, 1]])
    near, far = nerf.ray_box_bounds(o[1:3, 1:3].reshape(-1, 3), d[1:3, 1:3].reshape(-1, 3), box)
    assert (near > 3.9).all() and (far < 6.1).all() and (far > near).all()
    miss_n, miss_f = nerf.ray_box_bounds(
        torch.tensor([[0.0, 5, -5]]), torch.tensor([[0.0, 0, 1]]), box
    )
    assert miss_f.item() == miss_n.item()
    t = nerf.stratified_samples(near, far, 8, perturb=True)
    assert t.shape == (4, 8) and (t >= near[:, None]).all() and (t <= far[:, None]).all()
    assert (t[:, 1:] > t[:, :-1]).all()


def test_model_outputs_and_render_shape():
    model = nerf.TinyNeRF(n_freqs=2, hidden=8, layers=1)
    sigma, rgb = model(torch.randn(5, 7, 3))
    assert sigma.shape == (5, 7) and rgb.shape == (5, 7, 3)
    assert (sigma >= 0).all() and (rgb >= 0).all() and (rgb <= 1).all()
    K = torch.tensor([[10.0, 0, 3], [0, 10.0, 2], [0, 0, 1]])
    viewmat = torch.eye(4)
    viewmat[2, 3] = 4.0
    img = nerf.render_image(
        model, viewmat, K, 6, 4, torch.tensor([[-1.0] * 3, [1.0] * 3]), n_samples=8, chunk=5
    )
    assert img.shape == (4, 6, 3)
    with pytest.raises(ValueError, match="steps"):
        nerf.NeRFConfig(steps=0)


def test_a_few_steps_lower_the_loss():
    cap = load_capture("default", verbose=False).resize(32, 24)
    cfg = nerf.NeRFConfig(
        steps=40, batch_rays=256, n_samples=16, render_samples=16, hidden=32, layers=2, n_freqs=4
    )
    view = cap.train_idx[0]
    o, d = nerf.camera_rays(cap.viewmats[view], cap.Ks[view], cap.width, cap.height)
    on = cap.masks[view]  # judge on the object, where an empty field is wrong
    target, box = cap.images[view][on], nerf.scene_box(cap)

    def object_mse(model: nerf.TinyNeRF) -> float:
        with torch.no_grad():
            pred = nerf.render_rays(model, o[on], d[on], box, 16, background=torch.zeros(3))
        return float(((pred - target) ** 2).mean())

    torch.manual_seed(cfg.seed)  # the same start as train_nerf's
    before = object_mse(nerf.TinyNeRF(cfg.n_freqs, cfg.hidden, cfg.layers))
    model, hist = nerf.train_nerf(cap, cfg, eval_every=20, progress=False)
    assert hist.steps == [20, 40] and hist.seconds[1] > hist.seconds[0] > 0
    assert len(hist.test_psnr) == 2 and all(math.isfinite(p) for p in hist.test_psnr)
    after = object_mse(model)
    assert after < 0.85 * before, (before, after)
