"""``rasterization``: gsplat's call, on gsplat's CUDA kernels or on our CPU rasterizers.

Training code written against ``gsplat.rasterization`` runs unchanged on a laptop: the same
arguments, the same ``(renders, alphas, info)`` and an ``info`` that gsplat's
``DefaultStrategy`` can read. Which engine runs is chosen by

* the ``backend`` argument, else
* the environment variable ``SPLATCOURSE_BACKEND``, else
* ``"auto"``: gsplat when its CUDA kernels are usable and the tensors live on a GPU; on the
  CPU the compiled rasterizer (``kernel.py``, numba), or the PyTorch one (``rasterize.py``)
  where the compiled one cannot load.

``"compiled"`` and ``"torch"`` force one of the two CPU rasterizers; both share the
projection and SH code below and give the same images and gradients.

Used by: lessons 4-7 and exercises 3-4 (every render), the trainer.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import warnings
from collections.abc import Callable
from typing import Any, Literal, get_args

import torch
from torch import Tensor

from .projection import project_gaussians
from .rasterize import RasterStats, rasterize_to_pixels
from .sh import eval_sh

__all__ = [
    "BACKEND_ENV_VAR",
    "compiled_available",
    "gsplat_available",
    "rasterization",
    "resolve_backend",
    "torch_rasterization",
]

BACKEND_ENV_VAR = "SPLATCOURSE_BACKEND"
_BACKENDS = ("auto", "compiled", "torch", "gsplat")
RenderMode = Literal["RGB", "D", "ED", "RGB+D", "RGB+ED"]
_RENDER_MODES = get_args(RenderMode)


@functools.lru_cache(maxsize=1)
def gsplat_available() -> tuple[bool, str]:
    """Whether gsplat's compiled CUDA kernels can run here, and if not, why."""
    if not torch.cuda.is_available():
        return False, "torch.cuda.is_available() is False (no GPU or a CPU-only torch)"
    try:
        # gsplat binds _C when imported (its compiled module, or None): the checker misses it
        import gsplat  # noqa: F401
        from gsplat.cuda._backend import _C  # pyright: ignore[reportAttributeAccessIssue]
    except Exception as exc:  # any failure to load means "unavailable"
        return False, f"gsplat could not be imported: {exc!r}"
    if _C is None:  # pragma: no cover
        return False, "gsplat's CUDA extension is not built (gsplat.cuda._backend._C is None)"
    return True, "ok"


@functools.lru_cache(maxsize=1)
def compiled_available() -> tuple[bool, str]:
    """Whether the compiled CPU rasterizer loads here (numba imports, the kernels compile or
    come from the disk cache), and if not, why."""
    try:
        from . import kernel

        kernel.warm_up()
    except Exception as exc:  # any failure to load means "use the PyTorch rasterizer"
        return False, f"the compiled rasterizer could not load: {exc!r}"
    return True, "ok"


def resolve_backend(backend: str | None = None, device: torch.device | None = None) -> str:
    """``"compiled"``, ``"torch"`` or ``"gsplat"``, from the argument,
    ``$SPLATCOURSE_BACKEND`` or auto (see the module docstring)."""
    choice = backend if backend is not None else os.environ.get(BACKEND_ENV_VAR, "auto")
    choice = choice.strip().lower()
    if choice not in _BACKENDS:
        source = "backend argument" if backend is not None else f"${BACKEND_ENV_VAR}"
        raise ValueError(f"{source} must be one of {_BACKENDS}, got {choice!r}")
    if choice == "torch":
        return "torch"
    if choice == "compiled":
        ok, why = compiled_available()
        if not ok:
            raise RuntimeError(
                f"backend 'compiled' was forced but {why}. Use backend='torch' (or unset "
                f"${BACKEND_ENV_VAR}) to run the PyTorch rasterizer."
            )
        return "compiled"
    ok, why = gsplat_available()
    if choice == "gsplat":
        if not ok:
            raise RuntimeError(
                f"backend 'gsplat' was forced but gsplat's CUDA rasterizer is unavailable: {why}. "
                f"Use backend='torch' (or unset ${BACKEND_ENV_VAR}) to run the PyTorch rasterizer."
            )
        return "gsplat"
    on_gpu = device is not None and torch.device(device).type == "cuda"
    if ok and on_gpu:
        return "gsplat"
    compiled_ok, why_not = compiled_available()
    if not compiled_ok:
        _warn_torch_fallback(why_not)
        return "torch"
    return "compiled"


@functools.cache
def _warn_torch_fallback(why: str) -> None:
    """Say it, once per process, when "auto" falls back to the PyTorch rasterizer: it gives
    the same images, but several times slower, and nobody should find out from a timer."""
    warnings.warn(
        f"splatcourse: rendering with the PyTorch rasterizer, several times slower than the "
        f"compiled one, because {why}. (Pass backend='torch' or set ${BACKEND_ENV_VAR}=torch "
        f"to choose it on purpose.)",
        RuntimeWarning,
        stacklevel=3,
    )


# gsplat arguments whose effect the PyTorch rasterizer cannot reproduce: the torch path
# refuses any value but the default. Name -> (default, what the PyTorch rasterizer does).
_GSPLAT_ONLY: dict[str, tuple[Any, str]] = {
    "sparse_grad": (False, "its gradients are dense tensors"),
    "absgrad": (False, "it computes no absolute gradients; use DefaultStrategy(absgrad=False)"),
    "distributed": (False, "it renders in a single process"),
    "camera_model": ("pinhole", "it supports pinhole cameras only"),
    "segmented": (False, "it has no segmented radix sort (its sort is torch.sort)"),
    "with_ut": (False, "it projects by EWA linearisation, not the unscented transform"),
    "with_eval3d": (False, "it evaluates Gaussians on the image plane, not in 3D"),
    "radial_coeffs": (None, "its cameras have no lens distortion"),
    "tangential_coeffs": (None, "its cameras have no lens distortion"),
    "thin_prism_coeffs": (None, "its cameras have no lens distortion"),
    "ftheta_coeffs": (None, "its cameras have no lens distortion"),
    "rolling_shutter": (None, "its cameras have a global shutter"),
    "viewmats_rs": (None, "its cameras have a global shutter"),
}


def _is_default(name: str, value: Any, default: Any) -> bool:
    if name == "rolling_shutter" and getattr(value, "name", None) == "GLOBAL":
        return True  # gsplat's own default, RollingShutterType.GLOBAL
    if default is None or isinstance(value, Tensor):
        return value is default
    return value == default


def _refuse_gsplat_only(options: dict[str, Any]) -> None:
    """Raise ``NotImplementedError`` naming the first gsplat-only option that is set."""
    for name, (default, instead) in _GSPLAT_ONLY.items():
        value = options[name]
        if not _is_default(name, value, default):
            shown = f"<tensor {tuple(value.shape)}>" if isinstance(value, Tensor) else repr(value)
            raise NotImplementedError(
                f"rasterization: {name}={shown} is only supported by the gsplat backend (CUDA); "
                f"the PyTorch rasterizer cannot honour it ({instead}). Leave {name} at its "
                f"default {default!r}, or pass backend='gsplat' on a machine with gsplat's kernels."
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
    render_mode: RenderMode = "RGB",
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
    """Render N Gaussians into C cameras; drop-in for ``gsplat.rasterization`` (1.5.3).

    The arguments are gsplat's, plus ``backend`` (``"auto"``, ``"compiled"``, ``"torch"`` or
    ``"gsplat"``; see the module docstring). On the gsplat backend every argument is passed on.

    The CPU backends ("compiled" and "torch", called the PyTorch backend below: they share
    everything but the compositing loop) honour: means [N, 3], quats [N, 4] (w, x, y, z, any
    length), scales [N, 3], opacities [N], colors ([N, D] or [C, N, D]; SH coefficients
    [N, K, 3] or [C, N, K, 3] when ``sh_degree`` is set), viewmats [C, 4, 4]
    (world-to-camera), Ks [C, 3, 3], width, height, near_plane, far_plane, radius_clip,
    eps2d, sh_degree, backgrounds ([C, D] or [D]), render_mode, rasterize_mode and covars
    [N, 3, 3] (replaces quats and scales). Batch dimensions in front of N are not supported.

    Accepted but ignored by the PyTorch backend (they trade memory and speed in gsplat's
    CUDA kernels and do not change the image): ``packed`` (the output is always unpacked,
    ``info["packed"] is False``), ``tile_size`` (there are no tiles; it only sets
    ``info["tile_size"]``, ``"tile_width"`` and ``"tile_height"``) and ``channel_chunk``
    (all channels are composited at once).

    Refused by the PyTorch backend with ``NotImplementedError`` naming the argument, unless
    left at their defaults: ``sparse_grad``, ``absgrad``, ``distributed``,
    ``camera_model`` (other than "pinhole"), ``segmented``, ``with_ut``, ``with_eval3d``,
    ``radial_coeffs``, ``tangential_coeffs``, ``thin_prism_coeffs``, ``ftheta_coeffs``,
    ``rolling_shutter`` (other than gsplat's ``RollingShutterType.GLOBAL``) and
    ``viewmats_rs``.

    Returns:
        A tuple ``(renders, alphas, info)``: ``renders`` [C, H, W, X] (X = colour channels,
        +1 for "RGB+D"/"RGB+ED", 1 for "D"/"ED"), ``alphas`` [C, H, W, 1] and ``info``.
        With the PyTorch backend ``info`` is unpacked: ``means2d`` [C, N, 2] (gradients land
        there for densification), ``radii`` [C, N, 2] int32, ``depths``, ``conics``,
        ``opacities`` [C, N], ``width``, ``height``, ``n_cameras``, ``gaussian_ids=None``,
        ``packed=False``, ``backend`` ("compiled" or "torch"), ``n_pairs`` and
        ``raster_stats``.

    Examples:
        >>> import torch
        >>> from splatcourse.splat3d import rasterization
        >>> means = torch.tensor([[0.0, 0.0, 3.0], [0.4, -0.2, 4.0]])  # two Gaussians
        >>> quats = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.9, 0.1, 0.3, 0.0]])
        >>> scales = torch.tensor([[0.2, 0.1, 0.1], [0.1, 0.3, 0.2]])
        >>> opacities = torch.tensor([0.9, 0.6])
        >>> colors = torch.tensor([[1.0, 0.2, 0.2], [0.2, 0.2, 1.0]])
        >>> viewmats = torch.eye(4)[None]  # one camera at the origin, looking along +z
        >>> Ks = torch.tensor([[[60.0, 0.0, 32.0], [0.0, 60.0, 24.0], [0.0, 0.0, 1.0]]])
        >>> renders, alphas, info = rasterization(
        ...     means, quats, scales, opacities, colors, viewmats, Ks, 64, 48, backend="torch")
        >>> print(renders.shape, alphas.shape)
        torch.Size([1, 48, 64, 3]) torch.Size([1, 48, 64, 1])
        >>> print(info["means2d"].shape, info["radii"].shape, info["radii"].dtype)
        torch.Size([1, 2, 2]) torch.Size([1, 2, 2]) torch.int32
        >>> info["packed"], info["backend"]
        (False, 'torch')
        >>> rasterization(means, quats, scales, opacities, colors, viewmats, Ks, 64, 48,
        ...               sparse_grad=True, backend="torch")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        NotImplementedError: rasterization: sparse_grad=True is only supported by the gsplat ...
    """
    options = {
        "near_plane": near_plane,
        "far_plane": far_plane,
        "radius_clip": radius_clip,
        "eps2d": eps2d,
        "sh_degree": sh_degree,
        "packed": packed,
        "tile_size": tile_size,
        "backgrounds": backgrounds,
        "render_mode": render_mode,
        "sparse_grad": sparse_grad,
        "absgrad": absgrad,
        "rasterize_mode": rasterize_mode,
        "channel_chunk": channel_chunk,
        "distributed": distributed,
        "camera_model": camera_model,
        "segmented": segmented,
        "covars": covars,
        "with_ut": with_ut,
        "with_eval3d": with_eval3d,
        "radial_coeffs": radial_coeffs,
        "tangential_coeffs": tangential_coeffs,
        "thin_prism_coeffs": thin_prism_coeffs,
        "ftheta_coeffs": ftheta_coeffs,
        "rolling_shutter": rolling_shutter,
        "viewmats_rs": viewmats_rs,
    }
    gaussians_and_cameras = (means, quats, scales, opacities, colors, viewmats, Ks, width, height)
    engine = resolve_backend(backend, means.device)
    if engine == "gsplat":
        return _gsplat_rasterization(*gaussians_and_cameras, options)
    _refuse_gsplat_only(options)
    compositor = project_and_colour = None
    projector = project_gaussians
    glue = contextlib.nullcontext()
    if engine == "compiled":
        from .kernel import glue_on_one_torch_thread, project_and_colour
        from .kernel import project_gaussians as projector
        from .kernel import rasterize_to_pixels as compositor

        glue = glue_on_one_torch_thread()  # the kernels keep the caller's threads
    with glue:
        renders, alphas, info = torch_rasterization(
            *gaussians_and_cameras,
            near_plane=near_plane,
            far_plane=far_plane,
            radius_clip=radius_clip,
            eps2d=eps2d,
            sh_degree=sh_degree,
            backgrounds=backgrounds,
            render_mode=render_mode,
            rasterize_mode=rasterize_mode,
            covars=covars,
            tile_size=tile_size,
            compositor=compositor,
            projector=projector,
            project_and_colour=project_and_colour,
        )
    info["backend"] = engine
    return renders, alphas, info


def _gsplat_rasterization(
    means, quats, scales, opacities, colors, viewmats, Ks, width, height, options: dict[str, Any]
):
    """gsplat's CUDA rasterizer with every option; ``info`` says which backend ran."""
    import gsplat

    kwargs = dict(options)
    if kwargs["rolling_shutter"] is None:
        del kwargs["rolling_shutter"]  # gsplat's default, RollingShutterType.GLOBAL
    renders, alphas, info = gsplat.rasterization(
        means, quats, scales, opacities, colors, viewmats, Ks, width, height, **kwargs
    )
    info["packed"] = options["packed"]
    info["backend"] = "gsplat"
    return renders, alphas, info


def _check_inputs(means, quats, scales, opacities, viewmats, Ks, width, height, covars):
    if means.dim() != 2 or means.shape[-1] != 3:
        raise ValueError(
            f"rasterization: means must be [N, 3] (batch dimensions are not supported by the "
            f"PyTorch backend), got {tuple(means.shape)}"
        )
    N = means.shape[0]
    if covars is None:
        if quats.shape != (N, 4):
            raise ValueError(
                f"rasterization: quats must be [N, 4]=[{N}, 4], got {tuple(quats.shape)}"
            )
        if scales.shape != (N, 3):
            raise ValueError(
                f"rasterization: scales must be [N, 3]=[{N}, 3], got {tuple(scales.shape)}"
            )
    elif covars.shape != (N, 3, 3):
        raise ValueError(f"rasterization: covars must be [N, 3, 3], got {tuple(covars.shape)}")
    if opacities.shape != (N,):
        raise ValueError(
            f"rasterization: opacities must be [N]=[{N}], got {tuple(opacities.shape)}"
        )
    if viewmats.dim() != 3 or viewmats.shape[1:] != (4, 4):
        raise ValueError(f"rasterization: viewmats must be [C, 4, 4], got {tuple(viewmats.shape)}")
    C = viewmats.shape[0]
    if Ks.shape != (C, 3, 3):
        raise ValueError(f"rasterization: Ks must be [C, 3, 3]=[{C}, 3, 3], got {tuple(Ks.shape)}")
    if int(width) <= 0 or int(height) <= 0:
        raise ValueError(f"rasterization: width and height must be positive, got {width}x{height}")
    return N, C


def _check_modes(render_mode: str, rasterize_mode: str) -> None:
    if render_mode not in _RENDER_MODES:
        raise ValueError(
            f"rasterization: render_mode must be one of {_RENDER_MODES}, got {render_mode!r}"
        )
    if rasterize_mode not in ("classic", "antialiased"):
        raise ValueError(
            f"rasterization: rasterize_mode must be 'classic' or 'antialiased', "
            f"got {rasterize_mode!r}"
        )


def _colours_per_camera(colors: Tensor, N: int, C: int) -> Tensor:
    """Colours [C, N, D] from post-activation colours [N, D] or [C, N, D]."""
    if colors.dim() == 2 and colors.shape[0] == N:
        return colors[None].expand(C, N, colors.shape[-1])
    if colors.dim() == 3 and colors.shape[:2] == (C, N):
        return colors
    raise ValueError(
        f"rasterization: colors must be [N, D] or [C, N, D] (N={N}, C={C}) when "
        f"sh_degree is None, got {tuple(colors.shape)}"
    )


def _torch_sh_colours(sh_degree: int, shs: Tensor, means: Tensor, campos: Tensor) -> Tensor:
    """Colours [C, N, 3] of SH [N, K, 3] or [C, N, K, 3] seen from camera centres campos
    [C, 3] at means [N, 3]: the SH sum along mean - centre, + 0.5, clamped at 0, as in
    gsplat and 3DGS."""
    C = campos.shape[0]
    if shs.dim() == 3:
        shs = shs[None].expand(C, *shs.shape)  # [C, N, K, 3]
    dirs = means[None] - campos[:, None]  # [C, N, 3]
    return torch.clamp_min(eval_sh(sh_degree, shs, dirs) + 0.5, 0.0)


def _check_sh(shs: Tensor, sh_degree: int, N: int, C: int) -> None:
    """SH coefficients [N, K, 3] or [C, N, K, 3], enough for ``sh_degree`` (0..3), or a
    ValueError saying what is wrong."""
    if not 0 <= sh_degree <= 3:
        raise ValueError(f"rasterization: sh_degree must be in 0..3, got {sh_degree}")
    if not (
        (shs.dim() == 3 and shs.shape[0] == N and shs.shape[-1] == 3)
        or (shs.dim() == 4 and shs.shape[:2] == (C, N) and shs.shape[-1] == 3)
    ):
        raise ValueError(
            f"rasterization: colors must be [N, K, 3] or [C, N, K, 3] SH coefficients "
            f"(N={N}, C={C}) when sh_degree is set, got {tuple(shs.shape)}"
        )
    if shs.shape[-2] < (sh_degree + 1) ** 2:
        raise ValueError(
            f"rasterization: sh_degree={sh_degree} needs {(sh_degree + 1) ** 2} SH "
            f"coefficients per channel, colors has {shs.shape[-2]}"
        )


def _sh_colours_per_camera(shs: Tensor, sh_degree: int, means: Tensor, viewmats: Tensor) -> Tensor:
    """Colours [C, N, 3] of SH coefficients [N, K, 3] or [C, N, K, 3] (checked) seen from
    each camera's centre (the last column of viewmats' inverse, as gsplat)."""
    campos = torch.linalg.inv(viewmats.to(means.dtype))[:, :3, 3]  # [C, 3]
    return _torch_sh_colours(sh_degree, shs, means, campos)  # [C, N, 3]


def _channels_for_mode(
    colors_c: Tensor,
    backgrounds: Tensor | None,
    depths: Tensor,
    render_mode: str,
    dtype: torch.dtype,
):
    """What is composited for ``render_mode``, [C, N, X], and the backgrounds [C, X] to match.

    Depth channels get a background of 0; "ED" is divided by alpha after compositing.
    """
    C = colors_c.shape[0]
    if backgrounds is not None:
        backgrounds = backgrounds.to(dtype)
        if backgrounds.dim() == 1:
            backgrounds = backgrounds[None].expand(C, -1)  # [C, D]
    if render_mode in ("RGB+D", "RGB+ED"):
        colors_c = torch.cat([colors_c, depths[..., None]], dim=-1)  # [C, N, D + 1]
        if backgrounds is not None:
            backgrounds = torch.cat([backgrounds, backgrounds.new_zeros(C, 1)], dim=-1)
    elif render_mode in ("D", "ED"):
        colors_c = depths[..., None]  # [C, N, 1]
        if backgrounds is not None:
            backgrounds = backgrounds.new_zeros(C, 1)
    if backgrounds is not None and backgrounds.shape != (C, colors_c.shape[-1]):
        raise ValueError(
            f"rasterization: backgrounds must be [C, D]=[{C}, {colors_c.shape[-1]}], "
            f"got {tuple(backgrounds.shape)}"
        )
    return colors_c, backgrounds


def _torch_info(
    proj, opacities: Tensor, width: int, height: int, tile_size: int, stats: RasterStats
) -> dict[str, Any]:
    """gsplat's unpacked ``info`` (what ``DefaultStrategy`` reads), plus our statistics."""
    return {
        "batch_ids": None,
        "camera_ids": None,
        "gaussian_ids": None,
        "radii": proj.radii,
        "means2d": proj.means2d,
        "depths": proj.depths,
        "conics": proj.conics,
        "opacities": opacities,
        "tile_width": math.ceil(width / tile_size),
        "tile_height": math.ceil(height / tile_size),
        "width": width,
        "height": height,
        "tile_size": tile_size,
        "n_batches": 1,
        "n_cameras": proj.depths.shape[0],
        "packed": False,
        "backend": "torch",
        "n_pairs": stats.n_composited,
        "raster_stats": stats,
    }


def torch_rasterization(
    means,
    quats,
    scales,
    opacities,
    colors,
    viewmats,
    Ks,
    width,
    height,
    *,
    near_plane=0.01,
    far_plane=1e10,
    radius_clip=0.0,
    eps2d=0.3,
    sh_degree=None,
    backgrounds=None,
    render_mode="RGB",
    rasterize_mode="classic",
    covars=None,
    tile_size=16,
    compositor: Callable | None = None,
    projector: Callable = project_gaussians,
    project_and_colour: Callable | None = None,
):
    """The PyTorch path of :func:`rasterization` (same arguments and returns, without the
    gsplat-only ones); ``compositor`` swaps the pixel stage (the dense reference uses it),
    ``projector`` the projection, and ``project_and_colour``, where given, projects and
    evaluates the SH colours in one go (the compiled backend swaps all three;
    ``kernel.project_and_colour`` returns None where it does not apply, and then the two
    run apart)."""
    _check_modes(render_mode, rasterize_mode)
    N, C = _check_inputs(means, quats, scales, opacities, viewmats, Ks, width, height, covars)
    width, height = int(width), int(height)
    to_project = (means, covars, viewmats, Ks, width, height)
    options = {
        "near_plane": near_plane,
        "far_plane": far_plane,
        "eps2d": eps2d,
        "opacities": opacities,
        "radius_clip": radius_clip,
        "calc_compensations": rasterize_mode == "antialiased",
        "quats": quats,
        "scales": scales,
    }
    together = None
    if sh_degree is not None:
        _check_sh(colors, sh_degree, N, C)
        if project_and_colour is not None:
            together = project_and_colour(*to_project, sh_degree=sh_degree, shs=colors, **options)
    if together is not None:
        proj, colors_c = together  # [C, N, 3] colours
    else:
        proj = projector(*to_project, **options)
        if sh_degree is None:
            colors_c = _colours_per_camera(colors, N, C)  # [C, N, D]
        else:
            colors_c = _sh_colours_per_camera(colors, sh_degree, means, viewmats)  # [C, N, 3]
    opac = opacities[None].expand(C, N)  # [C, N]
    if proj.compensations is not None:
        opac = opac * proj.compensations
    colors_c, backgrounds = _channels_for_mode(
        colors_c, backgrounds, proj.depths, render_mode, means.dtype
    )  # [C, N, X], [C, X]
    stats = RasterStats()
    composite = compositor or rasterize_to_pixels
    renders, alphas = composite(
        proj.means2d,
        proj.conics,
        colors_c,
        opac,
        proj.depths,
        proj.radii,
        width,
        height,
        backgrounds=backgrounds,
        stats=stats,
    )  # [C, H, W, X], [C, H, W, 1]
    if render_mode in ("ED", "RGB+ED"):  # expected depth: accumulated depth / alpha
        renders = torch.cat(
            [renders[..., :-1], renders[..., -1:] / alphas.clamp(min=1e-10)], dim=-1
        )
    return renders, alphas, _torch_info(proj, opac, width, height, tile_size, stats)
