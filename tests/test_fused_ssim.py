"""The training loss's fused SSIM (splat3d/fused_ssim.py) against pytorch_msssim: values and
gradients, batches, odd sizes, threads, and where the loss falls back to pytorch_msssim."""

from __future__ import annotations

import pytest
import torch
from pytorch_msssim import ssim as ref_ssim

from splatcourse.splat3d import fused_ssim as fused_mod
from splatcourse.splat3d import kernel as kernel_mod
from splatcourse.splat3d.backend import compiled_available
from splatcourse.splat3d.fused_ssim import fused_ssim
from splatcourse.train import l1_ssim_loss, ssim

SSIM_PIXELS_PER_THREAD = fused_mod.MIN_PIXELS_PER_THREAD  # before the fixture below lowers it


@pytest.fixture(autouse=True)
def threads_on_tiny_images(monkeypatch):
    """Tiny images would stay on one thread: let them use two, to test the bands."""
    monkeypatch.setattr(kernel_mod, "MIN_PIXELS_PER_THREAD", 1)
    monkeypatch.setattr(fused_mod, "MIN_PIXELS_PER_THREAD", 1)


def _pair(shape, seed, dtype=torch.float64, noise=0.1):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(shape, generator=g, dtype=dtype)
    b = (a + noise * torch.randn(shape, generator=g, dtype=dtype)).clamp(0, 1)
    return a, b


def _reference(a, b):  # pytorch_msssim, per image: [C]
    return ref_ssim(a.permute(0, 3, 1, 2), b.permute(0, 3, 1, 2), data_range=1.0,
                    size_average=False)  # fmt: skip


@pytest.mark.parametrize(("shape", "threads"), [((2, 40, 57, 3), 2), ((1, 11, 13, 3), 1),
                                                ((3, 23, 11, 3), 2)])  # fmt: skip
def test_fused_ssim_matches_pytorch_msssim_with_gradients(shape, threads, monkeypatch):
    monkeypatch.setattr(kernel_mod, "_n_threads", lambda: threads)
    a, b = _pair(shape, seed=shape[1])
    weights = torch.linspace(0.5, 1.5, shape[0], dtype=torch.float64)  # dL/dSSIM per image
    results = []
    for fn in (fused_ssim, _reference):
        x = a.clone().requires_grad_()
        value = fn(x, b)
        (value * weights).sum().backward()
        results.append((value.detach(), x.grad))
    (mine, my_grad), (theirs, their_grad) = results
    assert float(theirs.min()) > 0.3 and float(theirs.max()) < 0.99  # neither trivial
    # pytorch_msssim builds its window in float32: values agree to ~1e-8, not 1e-15
    torch.testing.assert_close(mine, theirs, atol=1e-7, rtol=0)
    torch.testing.assert_close(my_grad, their_grad, atol=1e-7 * float(their_grad.abs().max()),
                               rtol=1e-5)  # fmt: skip


@pytest.mark.parametrize(("height", "width", "threads"), [(48, 64, 1), (170, 256, 2)])
def test_a_training_image_uses_both_threads_and_a_thumbnail_one(height, width, threads,
                                                                monkeypatch):  # fmt: skip
    # Measured on 2 cores, forward + backward: 64x48 took 1.4 ms on two threads and 0.9 on
    # one; the axe's 256x170 training image 6.8 against 9.0. Compositing's threshold (40k
    # pixels a thread) kept 256x170 on one thread.
    monkeypatch.setattr(fused_mod, "MIN_PIXELS_PER_THREAD", SSIM_PIXELS_PER_THREAD)
    monkeypatch.setattr(kernel_mod, "_n_threads", lambda: 2)
    used = []
    real_in_bands = fused_mod._in_bands
    monkeypatch.setattr(fused_mod, "_in_bands",
                        lambda kernel, edges, n, *args: used.append(n)
                        or real_in_bands(kernel, edges, n, *args))  # fmt: skip
    a, b = _pair((1, height, width, 3), seed=3, dtype=torch.float32)
    fused_ssim(a.requires_grad_(), b).sum().backward()
    assert used == [threads] * 3  # the two forward passes and the backward


def test_fused_ssim_in_float32_and_of_identical_images():
    a, b = _pair((1, 30, 31, 3), seed=4, dtype=torch.float32)
    torch.testing.assert_close(fused_ssim(a, b), _reference(a, b), atol=2e-6, rtol=0)
    assert fused_ssim(a, b).dtype == torch.float32
    torch.testing.assert_close(fused_ssim(a, a), torch.ones(1), atol=1e-6, rtol=0)


def test_fused_ssim_refuses_what_it_cannot_score():
    a, b = _pair((1, 10, 30, 3), seed=1)
    with pytest.raises(ValueError, match="at least 11x11"):
        fused_ssim(a, b)
    with pytest.raises(ValueError, match=r"\[C, H, W, 3\]"):
        fused_ssim(a[0], b[0])


def test_the_training_loss_uses_the_fused_ssim_and_falls_back_where_it_cannot(monkeypatch):
    # (the first check that the kernels load warms them up, SSIM included: done before counting)
    assert compiled_available()[0]
    a, b = _pair((1, 24, 32, 3), seed=2, dtype=torch.float32)
    calls = []
    real = fused_mod._FusedSsim.apply
    monkeypatch.setattr(fused_mod._FusedSsim, "apply", lambda *t: calls.append(1) or real(*t))
    want = 0.8 * (a - b).abs().mean() + 0.2 * (1 - ssim(a, b))
    x = a.clone().requires_grad_()
    loss = l1_ssim_loss(x, b)
    assert calls == [1]
    torch.testing.assert_close(loss, want, atol=1e-6, rtol=0)
    loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # a target that needs its own gradient: pytorch_msssim, which gives it one
    y = b.clone().requires_grad_()
    l1_ssim_loss(a, y).backward()
    assert calls == [1] and y.grad is not None and y.grad.abs().sum() > 0
    # a single image [H, W, 3] goes through the fused kernel too
    torch.testing.assert_close(l1_ssim_loss(a[0], b[0]), want, atol=1e-6, rtol=0)
    assert calls == [1, 1]
