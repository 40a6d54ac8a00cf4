"""Save and load splats in the standard 3DGS ``.ply`` layout (what splat viewers open).

One vertex per Gaussian with float32 properties, in this order:
``x y z nx ny nz f_dc_0..2 f_rest_0..(3(K-1)-1) opacity scale_0..2 rot_0..3``.
Values are stored as trained, i.e. unconstrained: opacity as a logit, scales as logs,
rotations as (w, x, y, z) quaternions that viewers normalise. ``f_rest`` is channel-major
(all red coefficients, then green, then blue), as in the original implementation; the
normals are unused and written as zeros.

Used by: lesson 5 and exercise 4 (the saved .ply).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from plyfile import PlyData, PlyElement
from torch import Tensor

from .model import Gaussians

__all__ = ["load_ply", "ply_property_names", "save_ply"]


def ply_property_names(n_rest_coeffs: int) -> list[str]:
    """Property names for ``n_rest_coeffs`` SH coefficients per channel beyond the DC one."""
    return (
        ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
        + [f"f_rest_{i}" for i in range(3 * n_rest_coeffs)]
        + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    )


def save_ply(params: Gaussians | dict[str, Tensor], path: str | Path) -> Path:
    """Write Gaussians (keys means, scales, quats, opacities, sh0, shN) to ``path``."""
    for key in ("means", "scales", "quats", "opacities", "sh0", "shN"):
        if key not in params:
            raise ValueError(f"save_ply: params has no {key!r} (got {sorted(params)})")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def arr(t: Tensor) -> np.ndarray:
        return t.detach().cpu().float().numpy()

    n = params["means"].shape[0]
    shN = params["shN"].detach().reshape(n, -1, 3)
    columns = np.concatenate(
        [
            arr(params["means"]),
            np.zeros((n, 3), np.float32),
            arr(params["sh0"].reshape(n, 3)),
            arr(shN.transpose(1, 2).reshape(n, -1)),
            arr(params["opacities"].reshape(n, 1)),
            arr(params["scales"]),
            arr(params["quats"]),
        ],
        axis=1,
    )
    names = ply_property_names(shN.shape[1])
    vertex = np.empty(n, dtype=[(name, "f4") for name in names])
    for j, name in enumerate(names):
        vertex[name] = columns[:, j]
    PlyData([PlyElement.describe(vertex, "vertex")]).write(str(path))
    return path


def load_ply(path: str | Path) -> dict[str, Tensor]:
    """Read a 3DGS ``.ply`` back into the parameter dict ``save_ply`` takes (float32)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_ply: no file at {path}")
    try:
        ply = PlyData.read(str(path))
        v = ply["vertex"].data
    except Exception as exc:
        raise ValueError(
            f"load_ply: {path} is not a readable PLY with a vertex element ({exc})"
        ) from exc
    names = v.dtype.names
    need = [
        "x",
        "y",
        "z",
        "f_dc_0",
        "f_dc_1",
        "f_dc_2",
        "opacity",
        "scale_0",
        "scale_1",
        "scale_2",
        "rot_0",
        "rot_1",
        "rot_2",
        "rot_3",
    ]
    missing = [p for p in need if p not in names]
    if missing:
        raise ValueError(f"load_ply: {path} is not a 3DGS splat file (missing {missing})")
    n_rest = sum(1 for p in names if p.startswith("f_rest_"))
    if n_rest % 3 or math.isqrt(n_rest // 3 + 1) ** 2 != n_rest // 3 + 1:
        raise ValueError(
            f"load_ply: {path} has {n_rest} f_rest properties; expected 3*(K-1) "
            "for K = 1, 4, 9 or 16 SH coefficients"
        )

    def col(*props: str) -> Tensor:
        return torch.from_numpy(np.stack([np.asarray(v[p], np.float32) for p in props], 1))

    n = len(v)
    k = n_rest // 3
    rest = col(*[f"f_rest_{i}" for i in range(n_rest)]) if n_rest else torch.zeros(n, 0)
    return {
        "means": col("x", "y", "z"),
        "scales": col("scale_0", "scale_1", "scale_2"),
        "quats": col("rot_0", "rot_1", "rot_2", "rot_3"),
        "opacities": col("opacity")[:, 0],
        "sh0": col("f_dc_0", "f_dc_1", "f_dc_2")[:, None, :],
        "shN": rest.reshape(n, 3, k).transpose(1, 2).contiguous(),
    }
