"""``rasterization``: gsplat's call, on gsplat's CUDA kernels or on our PyTorch rasterizer.

Training code written against ``gsplat.rasterization`` runs unchanged on a laptop: the same
arguments, the same ``(renders, alphas, info)`` and an ``info`` that gsplat's
``DefaultStrategy`` can read. Which engine runs is chosen by

* the ``backend`` argument, else
* the environment variable ``SPLATCOURSE_BACKEND``, else
* ``"auto"``: gsplat when its CUDA kernels are usable and the tensors live on a GPU,
  the PyTorch rasterizer otherwise.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import Tensor

from .projection import project_gaussians
from .rasterize import RasterStats, rasterize_to_pixels
from .sh import eval_sh

__all__ = [
    "BACKEND_ENV_VAR",
    "gsplat_available",
    "rasterization",
    "resolve_backend",
    "torch_rasterization",
]

BACKEND_ENV_VAR = "SPLATCOURSE_BACKEND"
_BACKENDS = ("auto", "torch", "gsplat")
_RENDER_MODES = ("RGB", "D", "ED", "RGB+D", "RGB+ED")


@functools.lru_cache(maxsize=1)
def gsplat_available() -> tuple[bool, str]:
    """Whether gsplat's compiled CUDA kernels can run here, and if not, why."""
    if not torch.cuda.is_available():
        return False, "torch.cuda.is_available() is False (no GPU or a CPU-only torch)"
    try:
        import gsplat  # noqa: F401
        from gsplat.cuda._backend import _C
    except Exception as exc:  # noqa: BLE001  # any failure to load means "unavailable"
        return False, f"gsplat could not be imported: {exc!r}"
    if _C is None:  # pragma: no cover
        return False, "gsplat's CUDA extension is not built (gsplat.cuda._backend._C is None)"
    return True, "ok"


def resolve_backend(backend: str | None = None, device: torch.device | None = None) -> str:
    """``"torch"`` or ``"gsplat"``, from the argument, ``$SPLATCOURSE_BACKEND`` or auto."""
    choice = backend if backend is not None else os.environ.get(BACKEND_ENV_VAR, "auto")
    choice = choice.strip().lower()
    if choice not in _BACKENDS:
        source = "backend argument" if backend is not None else f"${BACKEND_ENV_VAR}"
        raise ValueError(f"{source} must be one of {_BACKENDS}, got {choice!r}")
    if choice == "torch":
        return "torch"
    ok, why = gsplat_available()
    if choice == "gsplat":
        if not ok:
            raise RuntimeError(
                f"backend 'gsplat' was forced but gsplat's CUDA rasterizer is unavailable: {why}. "
                f"Use backend='torch' (or unset ${BACKEND_ENV_VAR}) to run the PyTorch rasterizer."
            )
        return "gsplat"
    on_gpu = device is not None and torch.device(device).type == "cuda"
    return "gsplat" if ok and on_gpu else "torch"


def _unsupported(name: str, value: Any, default: Any) -> None:
    if value is not default and value != default:
        raise NotImplementedError(
            f"rasterization: {name}={value!r} is only supported by the gsplat backend "
            "(CUDA); the PyTorch rasterizer supports pinhole cameras without distortion"
        )


def rasterization(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    colors: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    radius_clip: float = 0.0,
    eps2d: float = 0.3,
    sh_degree: int | None = None,
    packed: bool = True,
    tile_size: int = 16,
    backgrounds: Tensor | None = None,
    render_mode: Literal["RGB", "D", "ED", "RGB+D", "RGB+ED"] = "RGB",
    sparse_grad: bool = False,
    absgrad: bool = False,
    rasterize_mode: Literal["classic", "antialiased"] = "classic",
    channel_chunk: int = 32,
    distributed: bool = False,
    camera_model: Literal["pinhole", "ortho", "fisheye", "ftheta"] = "pinhole",
    segmented: bool = False,
    covars: Tensor | None = None,
    with_ut: bool = False,
    with_eval3d: bool = False,
    radial_coeffs: Tensor | None = None,
    tangential_coeffs: Tensor | None = None,
    thin_prism_coeffs: Tensor | None = None,
    ftheta_coeffs: Any = None,
    rolling_shutter: Any = None,
    viewmats_rs: Tensor | None = None,
    *,
    backend: str | None = None,
) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """Render N Gaussians into C cameras; drop-in for ``gsplat.rasterization``.

    Returns ``renders`` [C, H, W, X] (X = colour channels, +1 for "RGB+D"/"RGB+ED", 1 for
    "D"/"ED"), ``alphas`` [C, H, W, 1] and ``info``. With the PyTorch backend ``info`` is
    unpacked (``info["packed"] is False``): ``means2d`` [C, N, 2] (gradients land there for
    densification), ``radii`` [C, N, 2] int32, ``depths``, ``conics``, ``opacities``
    [C, N], ``width``, ``height``, ``n_cameras``, ``gaussian_ids=None``.
    """
    chosen = resolve_backend(backend, means.device)
    if chosen == "gsplat":
        import gsplat

        kwargs = {
            "near_plane": near_plane, "far_plane": far_plane, "radius_clip": radius_clip,
            "eps2d": eps2d, "sh_degree": sh_degree, "packed": packed, "tile_size": tile_size,
            "backgrounds": backgrounds, "render_mode": render_mode, "sparse_grad": sparse_grad,
            "absgrad": absgrad, "rasterize_mode": rasterize_mode,
            "channel_chunk": channel_chunk, "distributed": distributed,
            "camera_model": camera_model, "segmented": segmented, "covars": covars,
            "with_ut": with_ut, "with_eval3d": with_eval3d, "radial_coeffs": radial_coeffs,
            "tangential_coeffs": tangential_coeffs, "thin_prism_coeffs": thin_prism_coeffs,
            "ftheta_coeffs": ftheta_coeffs, "viewmats_rs": viewmats_rs,
        }
        if rolling_shutter is not None:
            kwargs["rolling_shutter"] = rolling_shutter
        renders, alphas, info = gsplat.rasterization(
            means, quats, scales, opacities, colors, viewmats, Ks, width, height, **kwargs
        )
        info["packed"] = packed
        info["backend"] = "gsplat"
        return renders, alphas, info

    for name, value, default in [
        ("camera_model", camera_model, "pinhole"), ("distributed", distributed, False),
        ("with_ut", with_ut, False), ("with_eval3d", with_eval3d, False),
        ("radial_coeffs", radial_coeffs, None), ("tangential_coeffs", tangential_coeffs, None),
        ("thin_prism_coeffs", thin_prism_coeffs, None), ("ftheta_coeffs", ftheta_coeffs, None),
        ("viewmats_rs", viewmats_rs, None),
    ]:
        _unsupported(name, value, default)
    if absgrad:
        raise NotImplementedError(
            "rasterization: absgrad=True is not implemented by the PyTorch rasterizer; "
            "use DefaultStrategy(absgrad=False) or the gsplat backend"
        )
    return torch_rasterization(
        means, quats, scales, opacities, colors, viewmats, Ks, width, height,
        near_plane=near_plane, far_plane=far_plane, radius_clip=radius_clip, eps2d=eps2d,
        sh_degree=sh_degree, backgrounds=backgrounds, render_mode=render_mode,
        rasterize_mode=rasterize_mode, covars=covars, tile_size=tile_size,
    )


def _check_inputs(means, quats, scales, opacities, viewmats, Ks, width, height, covars):
    if means.dim() != 2 or means.shape[-1] != 3:
        raise ValueError(
            f"rasterization: means must be [N, 3] (batch dimensions are not supported by the "
            f"PyTorch backend), got {tuple(means.shape)}"
        )
    N = means.shape[0]
    if covars is None:
        if quats.shape != (N, 4):
            raise ValueError(f"rasterization: quats must be [N, 4]=[{N}, 4], got {tuple(quats.shape)}")
        if scales.shape != (N, 3):
            raise ValueError(f"rasterization: scales must be [N, 3]=[{N}, 3], got {tuple(scales.shape)}")
    elif covars.shape != (N, 3, 3):
        raise ValueError(f"rasterization: covars must be [N, 3, 3], got {tuple(covars.shape)}")
    if opacities.shape != (N,):
        raise ValueError(f"rasterization: opacities must be [N]=[{N}], got {tuple(opacities.shape)}")
    if viewmats.dim() != 3 or viewmats.shape[1:] != (4, 4):
        raise ValueError(f"rasterization: viewmats must be [C, 4, 4], got {tuple(viewmats.shape)}")
    C = viewmats.shape[0]
    if Ks.shape != (C, 3, 3):
        raise ValueError(f"rasterization: Ks must be [C, 3, 3]=[{C}, 3, 3], got {tuple(Ks.shape)}")
    if int(width) <= 0 or int(height) <= 0:
        raise ValueError(f"rasterization: width and height must be positive, got {width}x{height}")
    return N, C


def torch_rasterization(
    means, quats, scales, opacities, colors, viewmats, Ks, width, height, *,
    near_plane=0.01, far_plane=1e10, radius_clip=0.0, eps2d=0.3, sh_degree=None,
    backgrounds=None, render_mode="RGB", rasterize_mode="classic", covars=None,
    tile_size=16, compositor: Callable | None = None,
):
    """The PyTorch path; ``compositor`` swaps the pixel stage (the dense reference uses it)."""
    if render_mode not in _RENDER_MODES:
        raise ValueError(f"rasterization: render_mode must be one of {_RENDER_MODES}, got {render_mode!r}")
    if rasterize_mode not in ("classic", "antialiased"):
        raise ValueError(f"rasterization: rasterize_mode must be 'classic' or 'antialiased', got {rasterize_mode!r}")
    N, C = _check_inputs(means, quats, scales, opacities, viewmats, Ks, width, height, covars)
    width, height = int(width), int(height)
    proj = project_gaussians(
        means, covars, viewmats, Ks, width, height, near_plane=near_plane, far_plane=far_plane,
        eps2d=eps2d, opacities=opacities, radius_clip=radius_clip,
        calc_compensations=rasterize_mode == "antialiased", quats=quats, scales=scales,
    )
    opac = opacities[None].expand(C, N)
    if proj.compensations is not None:
        opac = opac * proj.compensations

    if sh_degree is None:
        if colors.dim() == 2 and colors.shape[0] == N:
            colors_c = colors[None].expand(C, N, colors.shape[-1])
        elif colors.dim() == 3 and colors.shape[:2] == (C, N):
            colors_c = colors
        else:
            raise ValueError(
                f"rasterization: colors must be [N, D] or [C, N, D] (N={N}, C={C}) when "
                f"sh_degree is None, got {tuple(colors.shape)}"
            )
    else:
        if not 0 <= sh_degree <= 3:
            raise ValueError(f"rasterization: sh_degree must be in 0..3, got {sh_degree}")
        if colors.dim() == 3 and colors.shape[0] == N and colors.shape[-1] == 3:
            shs = colors[None].expand(C, *colors.shape)
        elif colors.dim() == 4 and colors.shape[:2] == (C, N) and colors.shape[-1] == 3:
            shs = colors
        else:
            raise ValueError(
                f"rasterization: colors must be [N, K, 3] or [C, N, K, 3] SH coefficients "
                f"(N={N}, C={C}) when sh_degree is set, got {tuple(colors.shape)}"
            )
        if shs.shape[-2] < (sh_degree + 1) ** 2:
            raise ValueError(
                f"rasterization: sh_degree={sh_degree} needs {(sh_degree + 1) ** 2} SH "
                f"coefficients per channel, colors has {shs.shape[-2]}"
            )
        campos = torch.linalg.inv(viewmats.to(means.dtype))[:, :3, 3]  # [C, 3]
        dirs = means[None] - campos[:, None]  # [C, N, 3]
        colors_c = torch.clamp_min(eval_sh(sh_degree, shs, dirs) + 0.5, 0.0)

    if backgrounds is not None:
        backgrounds = backgrounds.to(means.dtype)
        if backgrounds.dim() == 1:
            backgrounds = backgrounds[None].expand(C, -1)
    if render_mode in ("RGB+D", "RGB+ED"):
        colors_c = torch.cat([colors_c, proj.depths[..., None]], dim=-1)
        if backgrounds is not None:
            backgrounds = torch.cat([backgrounds, backgrounds.new_zeros(C, 1)], dim=-1)
    elif render_mode in ("D", "ED"):
        colors_c = proj.depths[..., None]
        if backgrounds is not None:
            backgrounds = backgrounds.new_zeros(C, 1)
    if backgrounds is not None and backgrounds.shape != (C, colors_c.shape[-1]):
        raise ValueError(
            f"rasterization: backgrounds must be [C, D]=[{C}, {colors_c.shape[-1]}], "
            f"got {tuple(backgrounds.shape)}"
        )

    stats = RasterStats()
    composite = compositor or rasterize_to_pixels
    renders, alphas = composite(
        proj.means2d, proj.conics, colors_c, opac, proj.depths, proj.radii, width, height,
        backgrounds=backgrounds, stats=stats,
    )
    if render_mode in ("ED", "RGB+ED"):
        renders = torch.cat(
            [renders[..., :-1], renders[..., -1:] / alphas.clamp(min=1e-10)], dim=-1
        )
    info: dict[str, Any] = {
        "batch_ids": None,
        "camera_ids": None,
        "gaussian_ids": None,
        "radii": proj.radii,
        "means2d": proj.means2d,
        "depths": proj.depths,
        "conics": proj.conics,
        "opacities": opac,
        "tile_width": math.ceil(width / tile_size),
        "tile_height": math.ceil(height / tile_size),
        "width": width,
        "height": height,
        "tile_size": tile_size,
        "n_batches": 1,
        "n_cameras": C,
        "packed": False,
        "backend": "torch",
        "n_pairs": stats.n_composited,
        "raster_stats": stats,
    }
    return renders, alphas, info
