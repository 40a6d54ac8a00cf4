"""From 3D Gaussians to 2D ellipses on the image (EWA splatting), plus camera helpers.

Cameras follow gsplat and OpenCV: a world-to-camera 4x4 ``viewmat`` and pinhole intrinsics
``K``; in camera space x points right, y down and z forward (depth).

A Gaussian through a perspective camera is not a Gaussian any more; EWA splatting replaces
the projection by its first-order (affine) approximation at the Gaussian's centre, the
Jacobian ``J``, so the 2D covariance is ``J W Sigma W^T J^T``. A 0.3 px isotropic blur is
then added (``eps2d``): a low-pass filter that keeps sub-pixel Gaussians at least one pixel
wide, as in 3DGS and gsplat.
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


def _matmul(a: Tensor, b: Tensor) -> Tensor:
    """Batched product of tiny matrices by broadcasting: much faster than bmm on the CPU."""
    out = a[..., :, 0, None] * b[..., None, 0, :]
    for k in range(1, a.shape[-1]):
        out = out + a[..., :, k, None] * b[..., None, k, :]
    return out


def world_to_camera(means: Tensor, covars: Tensor, viewmats: Tensor) -> tuple[Tensor, Tensor]:
    """Means [C, N, 3] and covariances [C, N, 3, 3] in each camera's frame."""
    R = viewmats[:, :3, :3]  # [C, 3, 3]
    t = viewmats[:, :3, 3]  # [C, 3]
    means_c = torch.einsum("cij,nj->cni", R, means) + t[:, None, :]
    Rb = R[:, None]
    covars_c = _matmul(_matmul(Rb, covars[None]), Rb.transpose(-1, -2))
    return means_c, covars_c


def perspective_jacobian(
    means_c: Tensor, Ks: Tensor, width: int, height: int, z: Tensor | None = None
) -> Tensor:
    """EWA Jacobian [C, N, 2, 3] of the pinhole projection at each camera-space mean.

    Like gsplat, x/z and y/z are clamped to 1.3x the half field of view before building J:
    far outside the image the linearisation explodes and would produce huge ellipses.
    """
    tx, ty, tz = means_c.unbind(-1)
    if z is not None:
        tz = z
    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    lim_x_pos = (width - cx) / fx + 0.3 * (0.5 * width / fx)
    lim_x_neg = cx / fx + 0.3 * (0.5 * width / fx)
    lim_y_pos = (height - cy) / fy + 0.3 * (0.5 * height / fy)
    lim_y_neg = cy / fy + 0.3 * (0.5 * height / fy)
    tx = tz * torch.minimum(torch.maximum(tx / tz, -lim_x_neg), lim_x_pos)
    ty = tz * torch.minimum(torch.maximum(ty / tz, -lim_y_neg), lim_y_pos)
    zero = torch.zeros_like(tz)
    J = torch.stack(
        [fx / tz, zero, -fx * tx / (tz * tz), zero, fy / tz, -fy * ty / (tz * tz)], dim=-1
    )
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
    from :func:`perspective_jacobian`; it is written out entry by entry (``T = J W`` is
    2x3) because that is several times faster on the CPU than batched matrix products.
    """
    if viewmats.dim() == 2:
        viewmats = viewmats[None]
    if Ks.dim() == 2:
        Ks = Ks[None]
    N = means.shape[0]
    if means.shape != (N, 3):
        raise ValueError(f"means must be [N, 3], got {tuple(means.shape)}")
    if covars is None:
        if quats is None or scales is None:
            raise ValueError("project_gaussians: pass covars, or quats and scales")
        if quats.shape != (N, 4) or scales.shape != (N, 3):
            raise ValueError(
                f"quats must be [N, 4] and scales [N, 3] with N={N}, got "
                f"{tuple(quats.shape)} and {tuple(scales.shape)}"
            )
        cov = covariance_entries(quats, scales)
    else:
        if covars.shape != (N, 3, 3):
            raise ValueError(f"covars must be [N, 3, 3] with N={N}, got {tuple(covars.shape)}")
        cov = _upper_entries(covars)
    C = viewmats.shape[0]
    if viewmats.shape != (C, 4, 4):
        raise ValueError(f"viewmats must be [C, 4, 4], got {tuple(viewmats.shape)}")
    if Ks.shape != (C, 3, 3):
        raise ValueError(f"Ks must be [C, 3, 3] with C={C}, got {tuple(Ks.shape)}")

    dtype = means.dtype
    V = viewmats.to(dtype)
    Ks = Ks.to(dtype)
    w = [[V[:, i, j, None] for j in range(3)] for i in range(3)]  # [C, 1] each
    mx, my, mz = means.unbind(-1)
    cam = [w[i][0] * mx + w[i][1] * my + w[i][2] * mz + V[:, i, 3, None] for i in range(3)]
    tx, ty, z = cam  # [C, N]
    in_depth = (z >= near_plane) & (z <= far_plane)
    # A safe depth for culled Gaussians keeps NaN/inf out of the graph (they get no gradient).
    z_safe = torch.where(in_depth, z, torch.ones_like(z))

    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    u, v = tx / z_safe, ty / z_safe
    means2d = torch.stack([fx * u + cx, fy * v + cy], dim=-1)
    # Jacobian at the centre, x/z and y/z clamped to 1.3x the field of view (see
    # perspective_jacobian); T = J W, rows T0 and T1.
    lim_x = 0.3 * (0.5 * width / fx)
    lim_y = 0.3 * (0.5 * height / fy)
    uc = torch.minimum(torch.maximum(u, -(cx / fx + lim_x)), (width - cx) / fx + lim_x)
    vc = torch.minimum(torch.maximum(v, -(cy / fy + lim_y)), (height - cy) / fy + lim_y)
    ax, ay = fx / z_safe, fy / z_safe
    T0 = [ax * (w[0][j] - uc * w[2][j]) for j in range(3)]
    T1 = [ay * (w[1][j] - vc * w[2][j]) for j in range(3)]
    sxx, sxy, sxz, syy, syz, szz = cov
    S = [[sxx, sxy, sxz], [sxy, syy, syz], [sxz, syz, szz]]
    U0 = [T0[0] * S[0][j] + T0[1] * S[1][j] + T0[2] * S[2][j] for j in range(3)]
    U1 = [T1[0] * S[0][j] + T1[1] * S[1][j] + T1[2] * S[2][j] for j in range(3)]
    a0 = U0[0] * T0[0] + U0[1] * T0[1] + U0[2] * T0[2]
    b0 = U0[0] * T1[0] + U0[1] * T1[1] + U0[2] * T1[2]
    c0 = U1[0] * T1[0] + U1[1] * T1[1] + U1[2] * T1[2]

    det0 = a0 * c0 - b0 * b0
    a, c = a0 + eps2d, c0 + eps2d
    det = a * c - b0 * b0
    ok = in_depth & (det > 0)
    det_safe = torch.where(ok, det, torch.ones_like(det))
    conics = torch.stack([c / det_safe, -b0 / det_safe, a / det_safe], dim=-1)
    covars2d = torch.stack([a, b0, b0, c], dim=-1).reshape(C, N, 2, 2)
    comp = None
    if calc_compensations:
        comp = torch.sqrt(torch.clamp(det0 / det_safe, min=0.0))

    with torch.no_grad():
        extend = torch.full_like(z, 3.33)
        if opacities is not None:
            op = opacities.detach().to(z.dtype)[None].expand_as(z)
            if comp is not None:
                op = op * comp.detach()
            ok = ok & (op >= ALPHA_THRESHOLD)
            extend = torch.minimum(
                extend, torch.sqrt(2.0 * torch.log(op.clamp_min(ALPHA_THRESHOLD) * (1.0 / ALPHA_THRESHOLD)))
            )
        rx = torch.ceil(extend * torch.sqrt(a.detach().clamp_min(0)))
        ry = torch.ceil(extend * torch.sqrt(c.detach().clamp_min(0)))
        ok = ok & ~((rx <= radius_clip) & (ry <= radius_clip))
        px, py = means2d.detach().unbind(-1)
        ok = ok & (px + rx > 0) & (px - rx < width) & (py + ry > 0) & (py - ry < height)
        radii = (torch.stack([rx, ry], -1) * ok[..., None]).to(torch.int32)

    keep = ok[..., None].to(dtype)
    return Projection(
        means2d=means2d * keep,
        covars2d=covars2d,
        conics=conics * keep,
        depths=z,
        radii=radii,
        compensations=comp,
    )
