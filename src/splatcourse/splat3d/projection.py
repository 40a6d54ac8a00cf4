"""From 3D Gaussians to 2D ellipses on the image (EWA splatting), plus camera helpers.

Cameras follow gsplat and OpenCV: a world-to-camera 4x4 ``viewmat`` and pinhole intrinsics
``K``; in camera space x points right, y down and z forward (depth).

A Gaussian through a perspective camera is not a Gaussian any more; EWA splatting replaces
the projection by its first-order (affine) approximation at the Gaussian's centre, the
Jacobian ``J``, so the 2D covariance is ``J W Sigma W^T J^T``. A 0.3 px isotropic blur is
then added (``eps2d``): a low-pass filter that keeps sub-pixel Gaussians at least one pixel
wide, as in 3DGS and gsplat.

Used by: lessons 3-4 and exercise 3 (projection to 2D), every render.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from torch import Tensor

from splatcourse.constants import ALPHA_MIN as ALPHA_THRESHOLD

from .gaussians import covariance_entries

__all__ = [
    "ALPHA_THRESHOLD",
    "Projection",
    "intrinsics",
    "intrinsics_from_fov",
    "look_at",
    "perspective_jacobian",
    "project_gaussians",
    "world_to_camera",
]


def look_at(eye, target, up=(0.0, 0.0, 1.0)) -> Tensor:
    """World-to-camera 4x4 matrix of a camera at ``eye`` looking at ``target``.

    OpenCV convention (x right, y down, z forward), the one gsplat expects. ``up`` is the
    world direction that should appear upwards in the image.
    """
    eye_t = torch.as_tensor(eye)
    dtype = eye_t.dtype if eye_t.is_floating_point() else torch.float32
    eye_t = eye_t.to(dtype)
    tgt = torch.as_tensor(target, dtype=dtype)
    up_t = torch.as_tensor(up, dtype=dtype)
    for name, v in (("eye", eye_t), ("target", tgt), ("up", up_t)):
        if v.shape != (3,):
            raise ValueError(f"look_at: {name} must be a 3-vector, got shape {tuple(v.shape)}")
    fwd = tgt - eye_t
    if fwd.norm() < 1e-12:
        raise ValueError("look_at: eye and target coincide, the view direction is undefined")
    fwd = fwd / fwd.norm()
    right = torch.linalg.cross(fwd, up_t)
    if right.norm() < 1e-9:
        raise ValueError("look_at: up is parallel to the view direction; pick another up")
    right = right / right.norm()
    down = torch.linalg.cross(fwd, right)
    R = torch.stack([right, down, fwd])  # rows: camera axes in world coordinates
    view = torch.eye(4, dtype=dtype)
    view[:3, :3] = R
    view[:3, 3] = -R @ eye_t
    return view


def intrinsics(fx: float, fy: float, cx: float, cy: float, dtype=torch.float32) -> Tensor:
    """Pinhole intrinsics matrix K (3x3), focal lengths and principal point in pixels."""
    return torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=dtype)


def intrinsics_from_fov(fov_x_deg: float, width: int, height: int, dtype=torch.float32) -> Tensor:
    """K for a horizontal field of view, square pixels and a centred principal point."""
    if not 0.0 < fov_x_deg < 180.0:
        raise ValueError(f"fov_x_deg must be in (0, 180), got {fov_x_deg}")
    f = 0.5 * width / math.tan(math.radians(fov_x_deg) / 2)
    return intrinsics(f, f, width / 2, height / 2, dtype=dtype)


SIGMA_EXTENT = 3.33  # gsplat's screen box: 3.33 standard deviations either side of the mean


def _matmul(a: Tensor, b: Tensor) -> Tensor:
    """Batched product of tiny matrices by broadcasting: much faster than bmm on the CPU."""
    out = a[..., :, 0, None] * b[..., None, 0, :]
    for k in range(1, a.shape[-1]):
        out = out + a[..., :, k, None] * b[..., None, k, :]
    return out


def _dot3(p: list[Tensor], q: list[Tensor]) -> Tensor:
    """``p . q`` for two 3-vectors stored as three tensors each."""
    return p[0] * q[0] + p[1] * q[1] + p[2] * q[2]


def _rotation_entries(viewmats: Tensor) -> list[list[Tensor]]:
    """``W[i][j]`` [C, 1]: the cameras' rotation entries, ready to broadcast over Gaussians."""
    return [[viewmats[:, i, j, None] for j in range(3)] for i in range(3)]


def _points_to_camera(means: Tensor, viewmats: Tensor) -> list[Tensor]:
    """Camera-space x, y, z of N world points in C cameras, three [C, N] tensors.

    ``W m + t`` written per entry: on the CPU that is cheaper (forward and backward) than a
    batched matrix product.
    """
    W = _rotation_entries(viewmats)  # 3 x 3 x [C, 1]
    mx, my, mz = means.unbind(-1)  # [N] each
    return [W[i][0] * mx + W[i][1] * my + W[i][2] * mz + viewmats[:, i, 3, None] for i in range(3)]


def world_to_camera(means: Tensor, covars: Tensor, viewmats: Tensor) -> tuple[Tensor, Tensor]:
    """Means [C, N, 3] and covariances [C, N, 3, 3] in each camera's frame."""
    means_c = torch.stack(_points_to_camera(means, viewmats), dim=-1)  # [C, N, 3]
    R = viewmats[:, None, :3, :3]  # [C, 1, 3, 3]
    covars_c = _matmul(_matmul(R, covars[None]), R.transpose(-1, -2))  # W Sigma W^T
    return means_c, covars_c


def _clamp_to_view(u: Tensor, v: Tensor, Ks: Tensor, width: int, height: int):
    """x/z and y/z [C, N] clamped to 1.3x the half field of view, as gsplat does for J.

    Far outside the image the linearisation explodes and would produce huge ellipses.
    """
    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]  # [C, 1]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    slack_x = 0.3 * (0.5 * width / fx)  # 30% of the half field of view, [C, 1]
    slack_y = 0.3 * (0.5 * height / fy)
    u = torch.minimum(torch.maximum(u, -(cx / fx + slack_x)), (width - cx) / fx + slack_x)
    v = torch.minimum(torch.maximum(v, -(cy / fy + slack_y)), (height - cy) / fy + slack_y)
    return u, v


def perspective_jacobian(
    means_c: Tensor, Ks: Tensor, width: int, height: int, z: Tensor | None = None
) -> Tensor:
    """EWA Jacobian [C, N, 2, 3] of the pinhole projection at each camera-space mean.

    Like gsplat, x/z and y/z are clamped to 1.3x the half field of view before building J:
    far outside the image the linearisation explodes and would produce huge ellipses.
    """
    tx, ty, tz = means_c.unbind(-1)  # [C, N] each
    if z is not None:
        tz = z
    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]  # [C, 1]
    u, v = _clamp_to_view(tx / tz, ty / tz, Ks, width, height)  # [C, N]
    tx, ty = tz * u, tz * v
    zero = torch.zeros_like(tz)
    J = torch.stack(
        [fx / tz, zero, -fx * tx / (tz * tz), zero, fy / tz, -fy * ty / (tz * tz)], dim=-1
    )  # [C, N, 6]
    return J.reshape(tz.shape + (2, 3))


@dataclass
class Projection:
    """Per camera and Gaussian screen-space quantities (all [C, N, ...]).

    ``radii`` (int32, [C, N, 2]) is the half-size in pixels of the screen box that holds every
    pixel the Gaussian can touch; (0, 0) means culled (behind the near plane, beyond the far
    plane, off-screen, or too faint). Entries of culled Gaussians are zeros in ``means2d``
    and ``conics``.
    """

    means2d: Tensor  # [C, N, 2] pixel coordinates of the centres
    covars2d: Tensor  # [C, N, 2, 2] screen covariance, blur included
    conics: Tensor  # [C, N, 3] upper triangle (a, b, c) of the inverse of covars2d
    depths: Tensor  # [C, N] camera-space z
    radii: Tensor  # [C, N, 2] int32
    compensations: Tensor | None = None  # [C, N] antialiasing opacity factor

    def __getitem__(self, key: str):  # dict-style access, like gsplat's info
        return getattr(self, key)

    def keys(self) -> list[str]:
        return [f.name for f in fields(self)]

    @property
    def visible(self) -> Tensor:
        return (self.radii > 0).all(dim=-1)


def _upper_entries(covars: Tensor) -> tuple[Tensor, ...]:
    """(xx, xy, xz, yy, yz, zz) of symmetric 3x3 matrices [N, 3, 3]."""
    return tuple(covars[:, i, j] for i, j in ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)))


def _world_covariance_entries(means, covars, quats, scales) -> tuple[Tensor, ...]:
    """The six distinct entries of each world covariance, [N] each, after checking shapes."""
    check_gaussians(means, covars, quats, scales)
    return _upper_entries(covars) if covars is not None else covariance_entries(quats, scales)


def check_gaussians(means, covars, quats, scales) -> None:
    """Raise a clear error unless means [N, 3] come with covars [N, 3, 3], or with quats
    [N, 4] and scales [N, 3] (shared by both CPU backends' projections)."""
    N = means.shape[0]
    if means.shape != (N, 3):
        raise ValueError(f"means must be [N, 3], got {tuple(means.shape)}")
    if covars is not None:
        if covars.shape != (N, 3, 3):
            raise ValueError(f"covars must be [N, 3, 3] with N={N}, got {tuple(covars.shape)}")
        return
    if quats is None or scales is None:
        raise ValueError("project_gaussians: pass covars, or quats and scales")
    if quats.shape != (N, 4) or scales.shape != (N, 3):
        raise ValueError(
            f"quats must be [N, 4] and scales [N, 3] with N={N}, got "
            f"{tuple(quats.shape)} and {tuple(scales.shape)}"
        )


def batched_cameras(viewmats: Tensor, Ks: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """viewmats [C, 4, 4] and Ks [C, 3, 3] in ``dtype``; a single camera may come unbatched."""
    if viewmats.dim() == 2:
        viewmats = viewmats[None]
    if Ks.dim() == 2:
        Ks = Ks[None]
    C = viewmats.shape[0]
    if viewmats.shape != (C, 4, 4):
        raise ValueError(f"viewmats must be [C, 4, 4], got {tuple(viewmats.shape)}")
    if Ks.shape != (C, 3, 3):
        raise ValueError(f"Ks must be [C, 3, 3] with C={C}, got {tuple(Ks.shape)}")
    return viewmats.to(dtype), Ks.to(dtype)


def _screen_covariance(cov, viewmats, Ks, u, v, z, width, height) -> tuple[Tensor, ...]:
    """Upper triangle (a, b, c) of ``J W Sigma W^T J^T``, three [C, N] tensors, no blur.

    ``cov`` are the six world covariance entries, ``u, v`` = x/z, y/z and ``z`` the depth
    of each mean. ``J`` is :func:`perspective_jacobian`'s (same clamp, by
    :func:`_clamp_to_view`); only the two rows of ``T = J W`` are formed, per entry, which
    is several times faster on the CPU than batched matrix products.
    """
    W = _rotation_entries(viewmats)  # 3 x 3 x [C, 1]
    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]  # [C, 1]
    uc, vc = _clamp_to_view(u, v, Ks, width, height)  # [C, N]
    ax, ay = fx / z, fy / z  # [C, N]
    # J = [[ax, 0, -ax uc], [0, ay, -ay vc]], so the rows of T = J W are
    T0 = [ax * (W[0][j] - uc * W[2][j]) for j in range(3)]  # 3 x [C, N]
    T1 = [ay * (W[1][j] - vc * W[2][j]) for j in range(3)]  # 3 x [C, N]
    sxx, sxy, sxz, syy, syz, szz = cov  # [N] each
    S = [[sxx, sxy, sxz], [sxy, syy, syz], [sxz, syz, szz]]  # symmetric: rows = columns
    U0 = [_dot3(T0, S[j]) for j in range(3)]  # row 0 of T Sigma, 3 x [C, N]
    U1 = [_dot3(T1, S[j]) for j in range(3)]  # row 1 of T Sigma
    return _dot3(U0, T0), _dot3(U0, T1), _dot3(U1, T1)


def _blur_and_invert(a0, b0, c0, eps2d, in_depth, calc_compensations):
    """Add the ``eps2d`` low-pass blur to the screen covariance and invert it.

    Returns ``(covars2d [C, N, 2, 2], conics [C, N, 3], compensations [C, N] or None,
    ok [C, N])``; ``ok`` is False behind the near/far planes or where the blurred
    covariance is not positive definite (a safe determinant keeps NaN out of the graph).
    The compensation ``sqrt(det(cov) / det(cov + blur))`` is antialiased mode's opacity
    factor: it keeps a sub-pixel Gaussian's total weight from growing with the blur.
    """
    det0 = a0 * c0 - b0 * b0 if calc_compensations else None  # [C, N], before the blur
    a, c = a0 + eps2d, c0 + eps2d  # [C, N]
    det = a * c - b0 * b0
    ok = in_depth & (det > 0)
    det_safe = torch.where(ok, det, torch.ones_like(det))
    conics = torch.stack([c / det_safe, -b0 / det_safe, a / det_safe], dim=-1)  # [C, N, 3]
    covars2d = torch.stack([a, b0, b0, c], dim=-1).reshape(a.shape + (2, 2))  # [C, N, 2, 2]
    comp = None if det0 is None else torch.sqrt(torch.clamp(det0 / det_safe, min=0.0))  # [C, N]
    return covars2d, conics, comp, ok


@torch.no_grad()
def _screen_radii(means2d, covars2d, ok, opacities, comp, width, height, radius_clip):
    """Half-size in pixels of every screen box, int32 [C, N, 2], and the final ``ok``.

    The box is 3.33 standard deviations, or less where opacity (times the compensation)
    makes ``opacity * exp(-power)`` fall below 1/255 sooner (gsplat's opacity-aware
    bound); Gaussians too faint, too small for ``radius_clip`` or off-screen are culled.
    """
    extend = torch.full_like(ok, SIGMA_EXTENT, dtype=means2d.dtype)  # [C, N]
    if opacities is not None:
        op = opacities.detach().to(extend.dtype)[None].expand_as(extend)  # [C, N]
        if comp is not None:
            op = op * comp.detach()
        ok = ok & (op >= ALPHA_THRESHOLD)
        # opacity * exp(-e^2 / 2) = 1/255  <=>  e = sqrt(2 log(opacity * 255))
        reach = torch.sqrt(2.0 * torch.log(op.clamp_min(ALPHA_THRESHOLD) * (1.0 / ALPHA_THRESHOLD)))
        extend = torch.minimum(extend, reach)
    var_x, var_y = covars2d[..., 0, 0].detach(), covars2d[..., 1, 1].detach()  # [C, N]
    rx = torch.ceil(extend * torch.sqrt(var_x.clamp_min(0)))
    ry = torch.ceil(extend * torch.sqrt(var_y.clamp_min(0)))
    ok = ok & ~((rx <= radius_clip) & (ry <= radius_clip))
    px, py = means2d.detach().unbind(-1)  # [C, N]
    ok = ok & (px + rx > 0) & (px - rx < width) & (py + ry > 0) & (py - ry < height)
    return (torch.stack([rx, ry], -1) * ok[..., None]).to(torch.int32), ok


def project_gaussians(
    means: Tensor,
    covars: Tensor | None,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    opacities: Tensor | None = None,
    radius_clip: float = 0.0,
    calc_compensations: bool = False,
    quats: Tensor | None = None,
    scales: Tensor | None = None,
) -> Projection:
    """Project N world-space Gaussians into C pinhole cameras (gsplat's semantics).

    Args:
        means [N, 3], covars [N, 3, 3] (world; or None and pass ``quats`` [N, 4] and
        ``scales`` [N, 3]), viewmats [C, 4, 4] (world-to-camera), Ks [C, 3, 3]. A single
        camera may be passed as [4, 4] / [3, 3].
        opacities [N]: optional; when given, the screen box shrinks to where
        ``opacity * exp(-power)`` can still reach 1/255 (gsplat's opacity-aware bound) and
        Gaussians fainter than 1/255 everywhere are culled.

    The maths is ``cov2d = J W Sigma W^T J^T`` with ``W`` the camera rotation and ``J``
    from :func:`perspective_jacobian` (see :func:`_screen_covariance`).
    """
    cov = _world_covariance_entries(means, covars, quats, scales)  # 6 x [N]
    viewmats, Ks = batched_cameras(viewmats, Ks, means.dtype)
    tx, ty, z = _points_to_camera(means, viewmats)  # [C, N] each
    in_depth = (z >= near_plane) & (z <= far_plane)
    # A safe depth for culled Gaussians keeps NaN/inf out of the graph (they get no gradient).
    z_safe = torch.where(in_depth, z, torch.ones_like(z))
    u, v = tx / z_safe, ty / z_safe  # [C, N]
    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]  # [C, 1]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    means2d = torch.stack([fx * u + cx, fy * v + cy], dim=-1)  # [C, N, 2]
    a0, b0, c0 = _screen_covariance(cov, viewmats, Ks, u, v, z_safe, width, height)
    covars2d, conics, comp, ok = _blur_and_invert(a0, b0, c0, eps2d, in_depth, calc_compensations)
    radii, ok = _screen_radii(means2d, covars2d, ok, opacities, comp, width, height, radius_clip)
    keep = ok[..., None].to(means.dtype)  # [C, N, 1]
    return Projection(
        means2d=means2d * keep,
        covars2d=covars2d,
        conics=conics * keep,
        depths=z,
        radii=radii,
        compensations=comp,
    )
