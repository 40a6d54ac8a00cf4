"""One 3D Gaussian: rotation from a quaternion, covariance from rotation and scale.

A covariance must stay symmetric positive semi-definite while an optimiser pushes its numbers
around. Writing it as ``R S S^T R^T`` (rotation ``R`` from a quaternion, diagonal scale ``S``)
guarantees that for *any* quaternion and scales, which is why 3DGS stores these instead of
the six covariance entries.

Used by: lesson 3 and exercise 3 (quaternion, covariance).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "covariance_entries",
    "covariance_from_quat_scale",
    "num_sh_coeffs",
    "params_per_gaussian",
    "quat_to_rotmat",
]


def _check_last_dim(name: str, x: Tensor, size: int) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 1 or x.shape[-1] != size:
        raise ValueError(f"{name} must have shape [..., {size}], got {tuple(x.shape)}")


def _rotmat_entries(quats: Tensor) -> list[Tensor]:
    """The nine entries of R (row-major), one tensor each, from (w, x, y, z) quaternions."""
    q = quats / quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    return [
        1 - 2 * (y * y + z * z),
        2 * (x * y - w * z),
        2 * (x * z + w * y),
        2 * (x * y + w * z),
        1 - 2 * (x * x + z * z),
        2 * (y * z - w * x),
        2 * (x * z - w * y),
        2 * (y * z + w * x),
        1 - 2 * (x * x + y * y),
    ]


def quat_to_rotmat(quats: Tensor) -> Tensor:
    """Rotation matrices [..., 3, 3] from quaternions [..., 4] in (w, x, y, z) order.

    Quaternions are normalised first, so an optimiser may leave them at any length; only the
    direction of the 4-vector matters (``q`` and ``-q`` give the same rotation).
    """
    _check_last_dim("quats", quats, 4)
    return torch.stack(_rotmat_entries(quats), dim=-1).reshape(quats.shape[:-1] + (3, 3))


def covariance_from_quat_scale(quats: Tensor, scales: Tensor) -> Tensor:
    """3D covariances ``R S S^T R^T`` [..., 3, 3] from quaternions [..., 4] and scales [..., 3].

    ``scales`` are the standard deviations along the Gaussian's own axes (already activated,
    i.e. ``exp`` of the stored log-scales).
    """
    _check_last_dim("scales", scales, 3)
    R = quat_to_rotmat(quats)
    if R.shape[:-2] != scales.shape[:-1]:
        raise ValueError(
            f"quats {tuple(quats.shape)} and scales {tuple(scales.shape)} disagree on the "
            "number of Gaussians"
        )
    M = R * scales[..., None, :]  # R @ diag(s): scale each column
    # M M^T as a sum of three outer products: on the CPU, bmm and small reductions are slow.
    c0, c1, c2 = (M[..., :, k, None] * M[..., None, :, k] for k in range(3))  # [..., 3, 3] each
    return c0 + c1 + c2


def covariance_entries(quats: Tensor, scales: Tensor) -> tuple[Tensor, ...]:
    """The six distinct entries (xx, xy, xz, yy, yz, zz) of ``R S S^T R^T``, one [N] each.

    Same maths as :func:`covariance_from_quat_scale` for quats [N, 4] and scales [N, 3];
    written out per entry for the projection, because on the CPU elementwise ops on [N]
    tensors (and their backward) are far cheaper than batched 3x3 matrix products.
    """
    R = _rotmat_entries(quats)  # 9 x [N], row-major
    s = scales.unbind(-1)  # 3 x [N]
    M = [[R[3 * i + j] * s[j] for j in range(3)] for i in range(3)]  # R diag(s), 3 x 3 x [N]
    return tuple(
        M[a][0] * M[b][0] + M[a][1] * M[b][1] + M[a][2] * M[b][2]  # (M M^T)[a, b], [N]
        for a, b in ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))
    )


def num_sh_coeffs(sh_degree: int) -> int:
    """Spherical-harmonic coefficients per colour channel for bands 0..sh_degree."""
    if not 0 <= sh_degree <= 3:
        raise ValueError(f"sh_degree must be in 0..3, got {sh_degree}")
    return (sh_degree + 1) ** 2


def params_per_gaussian(sh_degree: int = 3) -> int:
    """Learnable numbers per Gaussian: position 3 + quaternion 4 + scale 3 + opacity 1 + SH.

    At degree 3 this is 3 + 4 + 3 + 1 + 3 * 16 = 59.
    """
    return 3 + 4 + 3 + 1 + 3 * num_sh_coeffs(sh_degree)
