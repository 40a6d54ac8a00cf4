"""The 3DGS photometric loss: L1 for colour accuracy plus D-SSIM for local structure.

    loss = (1 - lambda) * |render - photo|_1 + lambda * (1 - SSIM(render, photo)),  lambda = 0.2

SSIM comes from ``pytorch_msssim`` (11x11 Gaussian window, sigma 1.5, the standard
constants) rather than being written here, so the number we train on is the number the
community reports.

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


def l1_ssim_loss(render: Tensor, target: Tensor, ssim_lambda: float = 0.2) -> Tensor:
    """(1 - ssim_lambda) * L1 + ssim_lambda * (1 - SSIM); images [C,H,W,3] in [0, 1]."""
    l1 = (render - target).abs().mean()
    return (1.0 - ssim_lambda) * l1 + ssim_lambda * (1.0 - ssim(render, target))
