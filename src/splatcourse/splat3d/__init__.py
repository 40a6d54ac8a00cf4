"""3D Gaussian splatting: geometry, spherical harmonics and a differentiable CPU rasterizer.

``rasterization`` has the call signature and return values of ``gsplat.rasterization``; it
runs gsplat's CUDA kernels when they are usable and an exact pure-PyTorch rasterizer
otherwise (see ``backend.py``).

Used by: lessons 3-4 and exercise 3 (its hidden tests compare with it), and everything that renders.
"""

from .backend import BACKEND_ENV_VAR, gsplat_available, rasterization, resolve_backend
from .dense import dense_composite, dense_rasterization
from .gaussians import (
    covariance_from_quat_scale,
    num_sh_coeffs,
    params_per_gaussian,
    quat_to_rotmat,
)
from .projection import (
    ALPHA_THRESHOLD,
    Projection,
    intrinsics,
    intrinsics_from_fov,
    look_at,
    perspective_jacobian,
    project_gaussians,
    world_to_camera,
)
from .rasterize import RasterStats, rasterize_to_pixels
from .sh import SH_C0, eval_sh, rgb_to_sh, sh_basis, sh_to_rgb
from .strategy import ResettingDefaultStrategy, make_strategy

__all__ = [
    "ALPHA_THRESHOLD",
    "BACKEND_ENV_VAR",
    "SH_C0",
    "Projection",
    "RasterStats",
    "ResettingDefaultStrategy",
    "covariance_from_quat_scale",
    "dense_composite",
    "dense_rasterization",
    "eval_sh",
    "gsplat_available",
    "intrinsics",
    "intrinsics_from_fov",
    "look_at",
    "make_strategy",
    "num_sh_coeffs",
    "params_per_gaussian",
    "perspective_jacobian",
    "project_gaussians",
    "quat_to_rotmat",
    "rasterization",
    "rasterize_to_pixels",
    "resolve_backend",
    "rgb_to_sh",
    "sh_basis",
    "sh_to_rgb",
    "world_to_camera",
]
