"""Real spherical harmonics, bands 0..3: view-dependent colour.

Each Gaussian stores K = (degree+1)^2 coefficients per colour channel; the colour seen from
direction ``d`` is ``sum_k coeff_k * Y_k(d)``. Band 0 is a constant (the diffuse colour),
higher bands add gloss that changes as the camera moves. The basis order and signs follow
the 3DGS / gsplat convention so trained models are interchangeable.

Used by: lesson 4 (view-dependent colour) and every render with SH colours.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["SH_C0", "eval_sh", "rgb_to_sh", "sh_basis", "sh_to_rgb"]

SH_C0 = 0.28209479177387814  # 1 / (2 sqrt(pi))
_C1 = 0.4886025119029199  # sqrt(3 / (4 pi))
_C2 = (
    1.0925484305920792,
    -1.0925484305920792,
    0.31539156525252005,
    -1.0925484305920792,
    0.5462742152960396,
)
_C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)


def sh_basis(degree: int, dirs: Tensor) -> Tensor:
    """The (degree+1)^2 basis functions [..., K] at unit directions [..., 3]."""
    if not 0 <= degree <= 3:
        raise ValueError(f"SH degree must be in 0..3, got {degree}")
    x, y, z = dirs.unbind(-1)  # [...] each
    xx, yy, zz = x * x, y * y, z * z
    out = [torch.full_like(dirs[..., 0], SH_C0)]
    if degree >= 1:
        out += [-_C1 * y, _C1 * z, -_C1 * x]
    if degree >= 2:
        out += [
            _C2[0] * x * y,
            _C2[1] * y * z,
            _C2[2] * (2 * zz - xx - yy),
            _C2[3] * x * z,
            _C2[4] * (xx - yy),
        ]
    if degree >= 3:
        out += [
            _C3[0] * y * (3 * xx - yy),
            _C3[1] * x * y * z,
            _C3[2] * y * (4 * zz - xx - yy),
            _C3[3] * z * (2 * zz - 3 * xx - 3 * yy),
            _C3[4] * x * (4 * zz - xx - yy),
            _C3[5] * z * (xx - yy),
            _C3[6] * x * (xx - 3 * yy),
        ]
    return torch.stack(out, dim=-1)


def eval_sh(degree: int, coeffs: Tensor, dirs: Tensor) -> Tensor:
    """Colour [..., 3] from SH coefficients [..., K, 3] seen along directions [..., 3].

    Directions need not be unit length (they are normalised); only the first (degree+1)^2
    coefficients are used, so a model can grow its degree during training. The result is the
    raw SH sum: the renderer adds 0.5 and clamps at 0, as gsplat and 3DGS do.
    """
    if coeffs.dim() < 2 or coeffs.shape[-1] != 3:
        raise ValueError(f"coeffs must have shape [..., K, 3], got {tuple(coeffs.shape)}")
    if dirs.shape[-1] != 3:
        raise ValueError(f"dirs must have shape [..., 3], got {tuple(dirs.shape)}")
    k = (degree + 1) ** 2
    if coeffs.shape[-2] < k:
        raise ValueError(
            f"sh degree {degree} needs {k} coefficients, coeffs has {coeffs.shape[-2]}"
        )
    d = dirs / dirs.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    basis = sh_basis(degree, d)  # [..., k]
    return (basis[..., None] * coeffs[..., :k, :]).sum(dim=-2)


def rgb_to_sh(rgb: Tensor) -> Tensor:
    """Band-0 coefficient that renders as ``rgb`` (inverse of ``SH_C0 * c + 0.5``)."""
    return (rgb - 0.5) / SH_C0


def sh_to_rgb(sh0: Tensor) -> Tensor:
    """Colour of a band-0 coefficient."""
    return sh0 * SH_C0 + 0.5
