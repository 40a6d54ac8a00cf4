"""Evaluation: identical images score SSIM 1, the background outside masks is ignored."""

from __future__ import annotations

import pytest
import torch
from pytorch_msssim import ssim as ref_ssim

from splatcourse.capture import synthetic_capture
from splatcourse.train import (
    TrainConfig,
    evaluate,
    init_gaussians,
    l1_ssim_loss,
    psnr,
    render_views,
    save_side_by_side,
    ssim,
    summary_table,
)

# tiny images: one thread avoids OpenMP hand-offs that dominate on a busy machine
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny():
    return synthetic_capture(n_views=9, width=40, n_points=200)


def test_ssim_psnr_and_loss_on_images():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(2, 24, 32, 3, generator=g)
    b = (a + 0.1 * torch.randn(2, 24, 32, 3, generator=g)).clamp(0, 1)
    assert float(ssim(a, a)) == pytest.approx(1.0, abs=1e-6)
    assert float(ssim(a, b)) < 0.95
    expected = ref_ssim(a.permute(0, 3, 1, 2), b.permute(0, 3, 1, 2), data_range=1.0)
    assert float(ssim(a, b)) == pytest.approx(float(expected), abs=1e-6)
    mse = (a - b).square().flatten(1).mean(1)
    assert float(psnr(a, b)) == pytest.approx(float((-10 * mse.log10()).mean()), rel=1e-5)
    loss = l1_ssim_loss(a, b, 0.2)
    want = 0.8 * (a - b).abs().mean() + 0.2 * (1 - expected)
    assert float(loss) == pytest.approx(float(want), rel=1e-5)
    assert float(l1_ssim_loss(a, a)) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="shapes differ"):
        ssim(a, b[:, :20])


def test_render_of_itself_scores_ssim_one(tiny):
    g = init_gaussians(tiny, TrainConfig(sh_degree=0))
    renders = render_views(g, tiny)
    cap = tiny.subset(list(range(len(tiny))))
    cap.images = renders.clone()
    cap.masks = None
    ev = evaluate(g, cap)
    assert ev.view_ids == cap.test_idx == [0, 8]
    assert ev.ssim == pytest.approx(1.0, abs=1e-5)
    assert ev.psnr > 60
    assert ev.renders.shape == ev.photos.shape == (2, cap.height, cap.width, 3)


def test_background_outside_mask_is_the_same_constant(tiny):
    g = init_gaussians(tiny, TrainConfig(sh_degree=0))
    renders = render_views(g, tiny)
    cap = tiny.subset(list(range(len(tiny))))
    # photos equal the renders on the object and are garbage outside it
    noise = torch.rand(renders.shape, generator=torch.Generator().manual_seed(3))
    cap.images = torch.where(cap.masks[..., None], renders, noise)
    ev = evaluate(g, cap)
    assert ev.ssim == pytest.approx(1.0, abs=1e-5)
    # ... but a render that differs on the object is penalised
    cap.images = torch.where(cap.masks[..., None], 1 - renders, renders)
    assert evaluate(g, cap).ssim < 0.9


def test_report_helpers(tmp_path):
    photos = torch.rand(2, 12, 16, 3)
    paths = save_side_by_side(photos, photos.flip(0), tmp_path, names=["a.jpg", "b.jpg"])
    assert [p.name for p in paths] == ["a_photo_vs_render.png", "b_photo_vs_render.png"]
    from PIL import Image

    assert Image.open(paths[0]).size == (32, 12)
    table = summary_table([{"step": 10, "seconds": 1.5, "gaussians": 3, "ssim_heldout": 0.5,
                            "psnr_heldout": 20.0}])
    assert "| 10 | 1.5000 | 3 | 0.5000 | 20.0 |" in table
