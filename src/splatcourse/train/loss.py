"""The 3DGS photometric loss: L1 for colour accuracy plus D-SSIM for local structure.

    loss = (1 - lambda) * |render - photo|_1 + lambda * (1 - SSIM(render, photo)),  lambda = 0.2

:func:`ssim` is ``pytorch_msssim``'s (11x11 Gaussian window, sigma 1.5, the standard
constants), so the number we report is the number the community reports. The loss computes
the same SSIM with a fused compiled kernel on the CPU (:mod:`splatcourse.splat3d.fused_ssim`,
equal to ``pytorch_msssim`` to about 1e-7 and several times faster on two cores), and with
``pytorch_msssim`` where that kernel does not apply (a GPU, gradients to the target, or no
compiled kernels).

Used by: lesson 5 and exercise 4 (the loss students write), lesson 6.
"""

from __future__ import annotations

import torch
from pytorch_msssim import ssim as _ssim
from torch import Tensor

__all__ = ["l1_ssim_loss", "psnr", "ssim"]


def _nchw(img: Tensor) -> Tensor:
    if img.dim() == 3:
        img = img[None]
    if img.dim() != 4 or img.shape[-1] not in (1, 3):
        raise ValueError(f"expected images [H,W,3] or [C,H,W,3], got {tuple(img.shape)}")
    return img.permute(0, 3, 1, 2)


def ssim(render: Tensor, target: Tensor, reduce: bool = True) -> Tensor:
    """Structural similarity of [C,H,W,3] (or [H,W,3]) images in [0, 1]; 1 means identical.

    reduce=False returns one value per image.
    """
    if render.shape != target.shape:
        raise ValueError(f"ssim: shapes differ, {tuple(render.shape)} vs {tuple(target.shape)}")
    if min(render.shape[-3:-1]) < 11:
        raise ValueError(f"ssim: images must be at least 11x11 pixels, got {tuple(render.shape)}")
    return _ssim(_nchw(render), _nchw(target), data_range=1.0, size_average=reduce)


def psnr(render: Tensor, target: Tensor, reduce: bool = True) -> Tensor:
    """Peak signal-to-noise ratio in dB for images in [0, 1] (per image, then averaged)."""
    if render.shape != target.shape:
        raise ValueError(f"psnr: shapes differ, {tuple(render.shape)} vs {tuple(target.shape)}")
    r = render.reshape(-1, *render.shape[-3:]) if render.dim() >= 3 else render
    t = target.reshape_as(r)
    mse = (r - t).square().flatten(1).mean(1).clamp_min(1e-10)
    out = -10.0 * torch.log10(mse)
    return out.mean() if reduce else out


def _training_ssim(render: Tensor, target: Tensor) -> Tensor:
    """:func:`ssim` of [C,H,W,3] (or [H,W,3]) images, averaged; the fused kernel where it
    applies (see the module docstring)."""
    from splatcourse.splat3d.backend import compiled_available

    fused = (
        render.device.type == "cpu"
        and render.shape == target.shape
        and render.dim() in (3, 4)
        and render.shape[-1] == 3
        and min(render.shape[-3:-1]) >= 11
        and not target.requires_grad
        and compiled_available()[0]
    )
    if not fused:
        return ssim(render, target)
    from splatcourse.splat3d.fused_ssim import fused_ssim

    batched = (render[None], target[None]) if render.dim() == 3 else (render, target)
    return fused_ssim(*batched).mean()


def l1_ssim_loss(render: Tensor, target: Tensor, ssim_lambda: float = 0.2) -> Tensor:
    """(1 - ssim_lambda) * L1 + ssim_lambda * (1 - SSIM); images [C,H,W,3] in [0, 1]."""
    l1 = (render - target).abs().mean()
    return (1.0 - ssim_lambda) * l1 + ssim_lambda * (1.0 - _training_ssim(render, target))
