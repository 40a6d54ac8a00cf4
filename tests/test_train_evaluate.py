"""Evaluation: identical images score SSIM 1, the full-frame scores ignore the background
outside masks, and the object scores rank a fit above an empty render, a flat colour and
floaters (stand-ins built from the photos themselves, so no fitting is needed)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from pytorch_msssim import ssim as ref_ssim

from splatcourse.capture import COURSE_CAPTURE, find_capture, load_capture, synthetic_capture
from splatcourse.train import (
    TrainConfig,
    Trainer,
    alpha_iou,
    evaluate,
    init_gaussians,
    l1_ssim_loss,
    masked_full_frame_scores,
    object_box,
    object_scores,
    psnr,
    render_rgba_views,
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
    table = summary_table(
        [{"step": 10, "seconds": 1.5, "gaussians": 3, "ssim_heldout": 0.5, "psnr_heldout": 20.0}]
    )
    assert "| 10 | 1.5000 | 3 | 0.5000 | 20.0 |" in table


# ---- the object metric ---------------------------------------------------------------------


def test_object_box_margin_window_and_empty_mask():
    mask = torch.zeros(40, 100, dtype=torch.bool)
    mask[10:20, 30:60] = True
    assert object_box(mask, margin=0.05) == (25, 8, 65, 22)  # 5 px and 2 px either side
    assert object_box(mask, margin=0.5) == (0, 0, 100, 40)  # clipped to the frame
    dot = torch.zeros(40, 100, dtype=torch.bool)
    dot[0, 50] = True
    x0, y0, x1, y1 = object_box(dot, margin=0.0)
    assert (x1 - x0, y1 - y0) == (11, 11) and y0 == 0 and x0 <= 50 < x1  # SSIM's window
    assert object_box(torch.zeros(40, 100, dtype=torch.bool)) == (0, 0, 100, 40)


def test_alpha_iou_counts_holes_and_haze():
    mask = torch.zeros(1, 20, 20, dtype=torch.bool)
    mask[0, 5:15, 5:15] = True  # 100 pixels
    assert float(alpha_iou(mask.float(), mask)[0]) == 1.0
    assert float(alpha_iou(torch.zeros(1, 20, 20), mask)[0]) == 0.0
    haze = mask.float() + 0.25 * (~mask).float()  # faint opacity on all 300 other pixels
    assert float(alpha_iou(haze, mask)[0]) == pytest.approx(100 / (100 + 75))
    holes = mask.float() * 0.5
    assert float(alpha_iou(holes, mask)[0]) == pytest.approx(0.5)
    assert float(alpha_iou(torch.zeros(1, 4, 4), mask[:, :4, :4])[0]) == 1.0  # nothing, agreed


def _blur(img: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """[V, H, W, C] Gaussian blur (5-tap, edges replicated): a fit that is slightly soft."""
    t = torch.arange(-2, 3, dtype=img.dtype)
    k = (-t.square() / (2 * sigma**2)).exp()
    k = k / k.sum()
    x = img.permute(0, 3, 1, 2)  # [V, C, H, W]
    c = x.shape[1]
    x = F.conv2d(
        F.pad(x, (2, 2, 0, 0), mode="replicate"), k.view(1, 1, 1, 5).expand(c, 1, 1, 5), groups=c
    )
    x = F.conv2d(
        F.pad(x, (0, 0, 2, 2), mode="replicate"), k.view(1, 1, 5, 1).expand(c, 1, 5, 1), groups=c
    )
    return x.permute(0, 2, 3, 1)


def _add_floaters(
    rgb: torch.Tensor,
    alpha: torch.Tensor,
    masks: torch.Tensor,
    n: int = 20,
    sigma: float = 1.5,
    opacity: float = 0.8,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` coloured blobs per view in front of the render, centred in the object box at
    least 2 px from the object and cut off at its mask: floaters, strictly outside the object."""
    gen = torch.Generator().manual_seed(0)
    V, H, W = masks.shape
    yy, xx = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")  # [H, W]
    near = F.max_pool2d(masks[:, None].float(), 5, stride=1, padding=2)[:, 0] > 0  # [V, H, W]
    rgb, alpha = rgb.clone(), alpha.clone()
    for v in range(V):
        x0, y0, x1, y1 = object_box(masks[v])
        free = torch.zeros(H, W, dtype=torch.bool)
        free[y0:y1, x0:x1] = True
        centres = torch.nonzero(free & ~near[v])  # [M, 2]
        for cy, cx in centres[torch.randperm(len(centres), generator=gen)[:n]].tolist():
            blob = opacity * (-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2)).exp()
            blob = blob * ~masks[v]  # [H, W]
            colour = torch.rand(3, generator=gen)
            rgb[v] = colour * blob[..., None] + rgb[v] * (1 - blob[..., None])
            alpha[v] = blob + alpha[v] * (1 - blob)
    return rgb, alpha


def _stand_ins(photos: torch.Tensor, masks: torch.Tensor) -> dict[str, tuple]:
    """(premultiplied render, alpha) per case, all built from the photos and their masks."""
    m = masks.float()  # [V, H, W]
    obj = photos * m[..., None]  # [V, H, W, 3]
    fit = (_blur(obj), _blur(m[..., None])[..., 0])
    mean = obj.sum((1, 2)) / m.sum((1, 2))[:, None]  # [V, 3]
    return {
        "perfect": (obj, m),
        "fit": fit,
        "empty": (torch.zeros_like(obj), torch.zeros_like(m)),
        "flat": (mean[:, None, None, :] * m[..., None], m),
        "floaters": _add_floaters(*fit, masks),
    }


#: What a metric gives to nothing (an empty render), per capture: object SSIM, full-frame SSIM.
EMPTY_RENDER_SSIM = {"axe": (0.455, 0.846), "synthetic": (0.052, 0.239)}


def _held_out(which: str):
    if which == "axe":
        if find_capture(COURSE_CAPTURE) is None:
            pytest.skip(f"the shared capture {COURSE_CAPTURE!r} is not installed")
        cap = load_capture(COURSE_CAPTURE, width=256, fallback=False, verbose=False)
    else:
        cap = load_capture("default", width=64, verbose=False)
    idx = cap.test_idx
    return cap.images[idx], cap.masks[idx], cap.background_tensor()


@pytest.mark.parametrize("which", ["synthetic", "axe"])
def test_object_scores_rank_a_fit_above_empty_flat_and_floaters(which):
    photos, masks, bg = _held_out(which)
    scores, full = {}, {}
    for case, (rgb, alpha) in _stand_ins(photos, masks).items():
        scores[case] = object_scores(rgb, alpha, photos, masks, bg)
        s, p = masked_full_frame_scores(rgb, alpha, photos, masks, bg)
        full[case] = (float(s.mean()), float(p.mean()))
        o = scores[case]
        print(
            f"{which:9s} {case:8s} object: SSIM {o.ssim:.4f} PSNR {o.psnr:6.2f} "
            f"alpha IoU {o.alpha_iou:.4f} | full frame: SSIM {full[case][0]:.4f} "
            f"PSNR {full[case][1]:.2f}"
        )
    fit = scores["fit"]
    assert all(o.region == "object" for o in scores.values())
    perfect = scores["perfect"]
    assert perfect.ssim == pytest.approx(1.0, abs=1e-5) and perfect.psnr > 60
    assert perfect.alpha_iou == pytest.approx(1.0)
    assert fit.ssim < 0.95 and fit.alpha_iou < 0.98  # the stand-in is no perfect render
    # nothing rendered: >= 0.3 SSIM and >= 10 dB below the fit, no overlap with the mask
    empty = scores["empty"]
    assert empty.ssim <= fit.ssim - 0.3 and empty.psnr <= fit.psnr - 10
    assert empty.alpha_iou == 0.0
    want_object, want_full = EMPTY_RENDER_SSIM[which]
    assert empty.ssim == pytest.approx(want_object, abs=0.01)
    assert full["empty"][0] == pytest.approx(want_full, abs=0.01)
    # a flat colour in the exact silhouette: exact alpha, so the image scores must catch it,
    # >= 0.1 SSIM and >= 3 dB below the fit
    flat = scores["flat"]
    assert flat.ssim <= fit.ssim - 0.1 and flat.psnr <= fit.psnr - 3
    assert flat.alpha_iou == pytest.approx(1.0)
    # floaters around the object: >= 0.02 SSIM, >= 2 dB and >= 0.03 alpha IoU below the fit,
    # while the full-frame scores cannot see them at all
    floaters = scores["floaters"]
    assert floaters.ssim <= fit.ssim - 0.02 and floaters.psnr <= fit.psnr - 2
    assert floaters.alpha_iou <= fit.alpha_iou - 0.03
    assert full["floaters"] == pytest.approx(full["fit"], abs=1e-6)


def test_object_scores_without_masks_are_the_full_frame():
    g = torch.Generator().manual_seed(0)
    photos = torch.rand(2, 16, 24, 3, generator=g)
    alpha = torch.full((2, 16, 24), 0.5)
    rgb = photos * alpha[..., None]  # half transparent: the grey background shows through
    bg = torch.tensor([0.5, 0.5, 0.5])
    o = object_scores(rgb, alpha, photos, None, bg)
    s, p = masked_full_frame_scores(rgb, alpha, photos, None, bg)
    assert o.region == "full_frame" and o.alpha_iou is None and o.boxes == [(0, 0, 24, 16)] * 2
    assert o.ssim == pytest.approx(float(s.mean())) and o.psnr == pytest.approx(float(p.mean()))
    with pytest.raises(ValueError, match="masks"):
        object_scores(rgb, alpha, photos, torch.ones(2, 16, 23, dtype=torch.bool), bg)


def test_evaluate_reports_both_and_says_which_region(tiny):
    g = init_gaussians(tiny, TrainConfig(sh_degree=0))
    ev = evaluate(g, tiny)
    rgb, alpha = render_rgba_views(g, tiny, tiny.test_idx)
    idx = tiny.test_idx
    want = object_scores(rgb, alpha, tiny.images[idx], tiny.masks[idx], tiny.background_tensor())
    assert ev.region == "object" and ev.ssim_object == pytest.approx(want.ssim)
    assert ev.psnr_object == pytest.approx(want.psnr) and ev.alpha_iou == pytest.approx(
        want.alpha_iou
    )
    painted = torch.where(
        tiny.masks[idx, ..., None], render_views(g, tiny, idx), tiny.background_tensor()
    )
    assert torch.allclose(ev.renders, painted, atol=1e-6)  # what the full-frame scores compared
    bare = tiny.subset(list(range(len(tiny))))
    bare.masks = None
    ev = evaluate(g, bare)
    assert ev.region == "full_frame" and ev.alpha_iou is None
    assert ev.ssim_object == pytest.approx(ev.ssim) and ev.psnr_object == pytest.approx(ev.psnr)


def test_trainer_history_records_the_object_scores(tiny):
    tr = Trainer(
        tiny, TrainConfig(steps=2, sh_degree=0, densify=False, eval_every=2), progress=False
    )
    tr.run()
    rec = tr.history[-1]
    ev = tr.evaluate()
    assert rec["ssim_object"] == pytest.approx(ev.ssim_object)
    assert rec["psnr_object"] == pytest.approx(ev.psnr_object)
    assert rec["alpha_iou"] == pytest.approx(ev.alpha_iou)
    assert rec["ssim_heldout"] == pytest.approx(ev.ssim)  # full frame, as before
    assert {"ssim_object", "psnr_object", "alpha_iou"} <= set(tr.result().summary())


def test_empty_render_scores_are_the_floor_quoted_everywhere():
    """The figure the bench reports as ssim_empty_render (and lesson 5 prints)."""
    from splatcourse.capture import load_capture
    from splatcourse.train import empty_render_scores

    cap = load_capture("default", width=64, verbose=False)
    floor = empty_render_scores(cap)
    print(f"synthetic 64x48, empty render: object SSIM {floor.ssim:.4f}, IoU {floor.alpha_iou}")
    assert floor.region == "object" and floor.alpha_iou == 0.0
    assert abs(floor.ssim - 0.0516) < 0.01
