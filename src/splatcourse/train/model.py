"""The Gaussians being trained: parameters, their initialisation, optimizers and rendering.

Parameters are stored the way the 3DGS paper optimises them, in unconstrained form, so Adam
can move them freely: log-scales, raw quaternions (normalised when used), opacity logits and
spherical-harmonic coefficients split into the DC band ``sh0`` [N, 1, 3] and the rest
``shN`` [N, K-1, 3] (they get different learning rates). The names match gsplat's, which is
what lets its ``DefaultStrategy`` clone, split and prune them for us.

Used by: lessons 5-7 and exercise 4 (through fit and render).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..capture import Capture, points_inside_masks
from ..splat3d import num_sh_coeffs, rasterization, rgb_to_sh
from .config import TrainConfig

__all__ = [
    "PARAM_NAMES",
    "Backend",
    "Gaussians",
    "InitialPoints",
    "gaussians_at",
    "init_gaussians",
    "initial_points",
    "knn_scale",
    "make_optimizers",
    "rasterization_from",
    "render",
    "set_learning_rates",
]

PARAM_NAMES = ("means", "scales", "quats", "opacities", "sh0", "shN")
Gaussians = torch.nn.ParameterDict  # keys: PARAM_NAMES
#: What renders: a name for ``splat3d.rasterization`` ("auto", "torch", "gsplat"; None reads
#: $SPLATCOURSE_BACKEND), or any function with ``rasterization``'s call and returns.
Backend = str | Callable[..., tuple[Tensor, Tensor, dict[str, Any]]] | None


def knn_scale(points: Tensor, k: int = 3, chunk: int = 2048) -> Tensor:
    """[M] RMS distance of each point to its k nearest neighbours (the paper's initial size)."""
    if len(points) <= k:
        return torch.full((len(points),), 0.01, dtype=points.dtype)
    out = []
    for block in points.split(chunk):
        d = torch.cdist(block, points).topk(k + 1, largest=False).values[:, 1:]
        out.append(d.square().mean(-1).sqrt())
    return torch.cat(out).clamp_min(1e-7)


@dataclass
class InitialPoints:
    """Where the Gaussians start: points [M, 3], colours [M, 3] in [0, 1], and their source
    ("SfM points", "visual hull", "triangulation" or "random")."""

    points: Tensor
    colors: Tensor
    source: str


def initial_points(capture: Capture, cfg: TrainConfig | None = None) -> InitialPoints:
    """The capture's SfM points inside the masks; without any, points made from the photos
    (`cfg.init_points="auto"`): the visual hull when there are masks, else features
    triangulated with the known cameras. Random points in the object's box only when asked
    for (`init_points="random"`) or when nothing else works: random "fog" trains slowly and
    badly (issue 18: 0.64 held-out SSIM after 10 minutes on a capture without points).
    Anything but the capture's own points is announced on stdout."""
    cfg = cfg or TrainConfig()
    gen = torch.Generator().manual_seed(cfg.seed)
    pts, cols = capture.points.float(), capture.point_colors.float()
    if len(pts) and capture.masks is not None:
        keep = points_inside_masks(capture)
        pts, cols = pts[keep], cols[keep]
    if len(pts):
        if cfg.max_init_points is not None and len(pts) > cfg.max_init_points:
            idx = torch.randperm(len(pts), generator=gen)[: cfg.max_init_points]
            pts, cols = pts[idx], cols[idx]
        return InitialPoints(pts, cols, "SfM points")
    init = _points_from_photos(capture) if cfg.init_points == "auto" else None
    if init is None:
        lo, hi = capture.object_bbox().float()
        n = cfg.init_random_points
        init = InitialPoints(
            lo + (hi - lo) * torch.rand(n, 3, generator=gen),
            torch.rand(n, 3, generator=gen),
            "random",
        )
    print(
        f"initialisation: {len(init.points)} points from {init.source} ({capture.name} has no SfM points)"
    )
    return init


def _points_from_photos(capture: Capture) -> InitialPoints | None:
    """Visual hull (masks) or triangulation (no masks); None, with the reason printed, when
    that fails (too few matches, pycolmap missing)."""
    from ..capture.hull import visual_hull
    from ..capture.sfm import SfmError, triangulate_capture

    try:
        if capture.masks is not None:
            return InitialPoints(*visual_hull(capture), "visual hull")
        pts, cols = triangulate_capture(capture)
    except (SfmError, ValueError, ImportError) as err:
        print(f"initialisation: could not make points from the photos ({err}); using random ones")
        return None
    return InitialPoints(pts, cols, "triangulation") if len(pts) else None


def init_gaussians(capture: Capture, cfg: TrainConfig | None = None) -> Gaussians:
    """One Gaussian per initial point (`initial_points`: SfM points inside the masks, else
    points made from the photos).

    Sizes start at the distance to the nearest neighbours, so the surface is covered without
    big overlaps; every Gaussian starts round, fairly transparent (opacity 0.1) and with the
    colour of its point.
    """
    cfg = cfg or TrainConfig()
    return gaussians_at(initial_points(capture, cfg), cfg)


def gaussians_at(init: InitialPoints, cfg: TrainConfig) -> Gaussians:
    """One Gaussian per initial point (see `init_gaussians`)."""
    pts, cols = init.points, init.colors
    n = len(pts)
    scales = (knn_scale(pts) * cfg.init_scale).log()[:, None].repeat(1, 3)
    quats = torch.zeros(n, 4)
    quats[:, 0] = 1.0
    opacities = torch.full((n,), math.log(cfg.init_opacity / (1 - cfg.init_opacity)))
    k = num_sh_coeffs(cfg.sh_degree)
    sh0 = rgb_to_sh(cols)[:, None, :]
    shN = torch.zeros(n, k - 1, 3)
    params = {
        "means": pts,
        "scales": scales,
        "quats": quats,
        "opacities": opacities,
        "sh0": sh0,
        "shN": shN,
    }
    return torch.nn.ParameterDict(
        {k_: torch.nn.Parameter(v.contiguous()) for k_, v in params.items()}
    )


def make_optimizers(
    params: Gaussians, cfg: TrainConfig, scene_scale: float
) -> dict[str, torch.optim.Optimizer]:
    """One Adam per parameter (what ``DefaultStrategy`` expects), with the paper's rates.

    ``fused=True``: torch's one-kernel Adam, on the CPU as on a GPU (the same update; the
    step-by-step one is about ten operations per parameter, 4 ms a step on the axe).
    """
    opts = {}
    for name in PARAM_NAMES:
        opts[name] = torch.optim.Adam(
            [{"params": [params[name]], "lr": 0.0, "name": name}], eps=1e-15, fused=True
        )
    set_learning_rates(opts, cfg, scene_scale, step=0)
    return opts


def set_learning_rates(
    opts: dict[str, torch.optim.Optimizer], cfg: TrainConfig, scene_scale: float, step: int
) -> None:
    """Positions decay exponentially from lr_means to lr_means_final; the rest stay fixed.

    Position rates are in units of the scene scale so the recipe does not depend on whether
    the scene is measured in metres or millimetres.
    """
    t = min(step / max(cfg.steps, 1), 1.0)
    lr_means = cfg.lr_means * (cfg.lr_means_final / cfg.lr_means) ** t * scene_scale
    rates = {
        "means": lr_means,
        "scales": cfg.lr_scales,
        "quats": cfg.lr_quats,
        "opacities": cfg.lr_opacities,
        "sh0": cfg.lr_sh0,
        "shN": cfg.lr_shN,
    }
    for name, opt in opts.items():
        for group in opt.param_groups:
            group["lr"] = rates[name]


def render(
    params: Gaussians | dict[str, Tensor],
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    sh_degree: int | None = None,
    background: Tensor | None = None,
    backend: Backend = None,
) -> tuple[Tensor, Tensor, dict]:
    """Render C cameras: (rgb [C,H,W,3], alpha [C,H,W,1], info) over a constant background.

    ``sh_degree`` None uses every band the parameters hold. A callable ``backend`` renders in
    place of ``rasterization`` (exercise 3 trains through the student's renderer this way).
    """
    colors = torch.cat([params["sh0"], params["shN"]], dim=1)
    if sh_degree is None:
        sh_degree = math.isqrt(colors.shape[1]) - 1
    C = viewmats.shape[0]
    bg = None
    if background is not None:
        bg = background.to(colors.dtype).reshape(-1, 3).expand(C, 3)
    rasterize = backend if callable(backend) else functools.partial(rasterization, backend=backend)
    rgb, alpha, info = rasterize(
        params["means"],
        params["quats"],
        torch.exp(params["scales"]),
        torch.sigmoid(params["opacities"]),
        colors,
        viewmats,
        Ks,
        width,
        height,
        sh_degree=sh_degree,
        backgrounds=bg,
        packed=False,
    )
    return rgb, alpha, info


def rasterization_from(render_one: Callable[..., tuple[Tensor, Tensor, Tensor]]) -> Callable:
    """A ``backend`` for :func:`render` from a one-camera renderer (exercise 3's ``render``).

    ``render_one(means, quats, scales, opacities, sh, viewmat, K, width, height, sh_degree,
    background)`` returns ``(image [H, W, 3], alpha [H, W], depth [H, W])``; the wrapper
    renders camera after camera and answers like ``rasterization``. It knows nothing of
    screen-space gradients, so its ``info`` cannot drive densification: train with
    ``densify=False`` (``info["means2d"]`` is a stand-in that no gradient reaches).
    """

    def rasterize(
        means, quats, scales, opacities, colors, viewmats, Ks, width, height, **kw: Any
    ) -> tuple[Tensor, Tensor, dict[str, Any]]:
        C, N = viewmats.shape[0], means.shape[0]
        bgs = kw.get("backgrounds")
        images, alphas = [], []
        for c in range(C):
            bg = means.new_zeros(3) if bgs is None else bgs[c]
            image, alpha, _ = render_one(
                means,
                quats,
                scales,
                opacities,
                colors,
                viewmats[c],
                Ks[c],
                width,
                height,
                kw.get("sh_degree"),
                bg,
            )  # [H, W, 3], [H, W]
            images.append(image)
            alphas.append(alpha[..., None])
        info = {
            "means2d": means.new_zeros(C, N, 2, requires_grad=True),
            "radii": torch.zeros(C, N, 2, dtype=torch.int32, device=means.device),
            "width": width,
            "height": height,
            "n_cameras": C,
            "packed": False,
            "backend": getattr(render_one, "__name__", "custom"),
        }
        return torch.stack(images), torch.stack(alphas), info

    return rasterize
