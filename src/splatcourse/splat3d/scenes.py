"""Small 3D Gaussian scenes and orbiting cameras for the 3D lessons and widgets.

Each scene is a handful to a few hundred Gaussians stored exactly as 3DGS stores them
(means, quaternions, scales, opacities, spherical-harmonic colour of degree 3), so what the
lessons show is what a trained model contains. Three scenes, each built to make one point:

* :func:`one_gaussian` — a single stretched, tilted Gaussian: the 59 numbers and their 2D
  footprint;
* :func:`occluding_pair` — a red Gaussian in front of a blue one (from the default view):
  summing versus depth-sorted compositing;
* :func:`sh_cloud` — a ring of Gaussians whose colours change with the viewing direction.

Cameras orbit a target on a sphere (z is up in the world), which is all a lesson needs.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from splatcourse.splat3d import (
    covariance_from_quat_scale,
    eval_sh,
    intrinsics_from_fov,
    look_at,
    rasterization,
    rgb_to_sh,
)
from splatcourse.splat3d.backend import RenderMode

__all__ = [
    "SH_DEGREE",
    "Camera",
    "GaussianScene",
    "glossy_gaussian",
    "occluding_pair",
    "one_gaussian",
    "orbit_camera",
    "quat_from_euler",
    "sh_cloud",
]

SH_DEGREE = 3  # every scene stores full degree-3 colour: 16 coefficients per channel
_K = (SH_DEGREE + 1) ** 2


# --------------------------------------------------------------------------------------------
# Rotations and cameras
# --------------------------------------------------------------------------------------------


def quat_from_euler(yaw: float, pitch: float, roll: float) -> Tensor:
    """Unit quaternion (w, x, y, z) of yaw about z, then pitch about y, then roll about x.

    Angles in degrees: sliders speak degrees, the renderer speaks quaternions.
    """
    half = [math.radians(a) / 2 for a in (yaw, pitch, roll)]
    cy, sy = math.cos(half[0]), math.sin(half[0])
    cp, sp = math.cos(half[1]), math.sin(half[1])
    cr, sr = math.cos(half[2]), math.sin(half[2])
    return torch.tensor(
        [
            cy * cp * cr + sy * sp * sr,
            cy * cp * sr - sy * sp * cr,
            cy * sp * cr + sy * cp * sr,
            sy * cp * cr - cy * sp * sr,
        ]
    )


def _quat_multiply(a: Tensor, b: Tensor) -> Tensor:
    """Hamilton product [..., 4]: the rotation b followed by a."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        dim=-1,
    )


@dataclass(frozen=True)
class Camera:
    """A pinhole camera: world-to-camera ``viewmat`` [4, 4], intrinsics ``K`` [3, 3], size."""

    viewmat: Tensor
    K: Tensor
    width: int
    height: int

    @property
    def position(self) -> Tensor:
        """Camera centre in world coordinates (SH colour depends on it)."""
        R, t = self.viewmat[:3, :3], self.viewmat[:3, 3]
        return -R.T @ t


def orbit_camera(
    azimuth: float,
    elevation: float,
    distance: float,
    width: int = 160,
    height: int = 120,
    fov_x: float = 50.0,
    target: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> Camera:
    """A camera on a sphere around ``target``, looking at it, z up.

    azimuth: degrees around z, 0 on the +x axis; elevation: degrees above the xy plane,
    within (-90, 90) (straight up or down has no defined "up" in the image).
    """
    if not -90.0 < elevation < 90.0:
        raise ValueError(f"orbit_camera: elevation must be in (-90, 90) degrees, got {elevation}")
    if distance <= 0:
        raise ValueError(f"orbit_camera: distance must be positive, got {distance}")
    if int(width) < 1 or int(height) < 1:
        raise ValueError(f"orbit_camera: width and height must be >= 1, got {width}x{height}")
    az, el = math.radians(azimuth), math.radians(elevation)
    offset = (
        distance * math.cos(el) * math.cos(az),
        distance * math.cos(el) * math.sin(az),
        distance * math.sin(el),
    )
    eye = tuple(t + o for t, o in zip(target, offset))
    return Camera(
        look_at(eye, target), intrinsics_from_fov(fov_x, width, height), int(width), int(height)
    )


# --------------------------------------------------------------------------------------------
# Scenes
# --------------------------------------------------------------------------------------------


@dataclass
class GaussianScene:
    """N 3D Gaussians with the parameters a 3DGS model learns (already activated).

    means [N, 3]; quats [N, 4] (w, x, y, z; any length); scales [N, 3] (standard deviations,
    world units); opacities [N] in [0, 1]; sh [N, 16, 3] degree-3 colour coefficients.
    """

    means: Tensor
    quats: Tensor
    scales: Tensor
    opacities: Tensor
    sh: Tensor
    name: str = "scene"

    def __post_init__(self) -> None:
        n = self.means.shape[0] if self.means.dim() == 2 else -1
        expected = {
            "means": (n, 3),
            "quats": (n, 4),
            "scales": (n, 3),
            "opacities": (n,),
            "sh": (n, _K, 3),
        }
        for field_name, shape in expected.items():
            value = getattr(self, field_name)
            if not isinstance(value, Tensor) or tuple(value.shape) != shape:
                got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
                raise ValueError(
                    f"GaussianScene {self.name!r}: {field_name} must have shape "
                    f"{list(shape)}, got {got}"
                )

    def __len__(self) -> int:
        return self.means.shape[0]

    def covariances(self) -> Tensor:
        """World-space 3D covariances [N, 3, 3]."""
        return covariance_from_quat_scale(self.quats, self.scales)

    def colours(self, camera: Camera, sh_degree: int = SH_DEGREE) -> Tensor:
        """The RGB [N, 3] each Gaussian shows this camera (the renderer's SH rule)."""
        dirs = self.means - camera.position.to(self.means.dtype)
        return (eval_sh(sh_degree, self.sh, dirs) + 0.5).clamp_min(0.0)

    def render(
        self,
        camera: Camera,
        sh_degree: int = SH_DEGREE,
        background: tuple[float, float, float] = (0.0, 0.0, 0.0),
        render_mode: RenderMode = "RGB",
    ) -> tuple[Tensor, Tensor, dict]:
        """(image [H, W, X], alpha [H, W], info) from the course's ``rasterization``."""
        bg = torch.tensor([background], dtype=self.means.dtype)  # depth channels get 0
        renders, alphas, info = rasterization(
            self.means,
            self.quats,
            self.scales,
            self.opacities,
            self.sh,
            camera.viewmat[None],
            camera.K[None],
            camera.width,
            camera.height,
            sh_degree=sh_degree,
            backgrounds=bg,
            render_mode=render_mode,
        )
        return renders[0], alphas[0, ..., 0], info

    def subset(self, index: Tensor | list[int] | slice) -> GaussianScene:
        return GaussianScene(
            self.means[index],
            self.quats[index],
            self.scales[index],
            self.opacities[index],
            self.sh[index],
            self.name,
        )


def _sh_from_rgb(rgb: Tensor) -> Tensor:
    """[N, 16, 3] coefficients showing ``rgb`` [N, 3] from every direction (band 0 only)."""
    sh = torch.zeros(rgb.shape[0], _K, 3)
    sh[:, 0] = rgb_to_sh(rgb)
    return sh


def one_gaussian() -> GaussianScene:
    """One orange Gaussian, stretched along one axis and tilted, at the origin."""
    return GaussianScene(
        means=torch.zeros(1, 3),
        quats=quat_from_euler(30.0, 20.0, 10.0)[None],
        scales=torch.tensor([[0.6, 0.25, 0.1]]),
        opacities=torch.tensor([0.9]),
        sh=_sh_from_rgb(torch.tensor([[1.0, 0.55, 0.1]])),
        name="one Gaussian",
    )


def occluding_pair() -> GaussianScene:
    """A red Gaussian 1 unit nearer to a camera on the +x axis than a blue one, overlapping.

    From azimuth 0 red is in front; orbit to azimuth 180 and blue is. A sum of the two
    looks the same from both sides (apart from the mirror image).
    """
    return GaussianScene(
        means=torch.tensor([[0.5, 0.15, 0.0], [-0.5, -0.15, 0.0]]),
        quats=torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]]),
        scales=torch.full((2, 3), 0.3),
        opacities=torch.tensor([0.9, 0.9]),
        sh=_sh_from_rgb(torch.tensor([[0.9, 0.1, 0.1], [0.1, 0.2, 0.9]])),
        name="occluding pair",
    )


def glossy_gaussian(strength: float = 0.8) -> GaussianScene:
    """One round Gaussian that looks red from +x and blue from -x (band-1 SH only).

    The band-1 basis function along x is ``-C1 * d_x`` with ``d`` the direction from the
    camera to the Gaussian, so one coefficient pair (+r, -b) tilts the colour from red to blue.
    """
    sh = _sh_from_rgb(torch.tensor([[0.5, 0.3, 0.5]]))
    sh[0, 3] = torch.tensor([strength, 0.0, -strength])
    return GaussianScene(
        torch.zeros(1, 3),
        torch.tensor([[1.0, 0.0, 0.0, 0.0]]),
        torch.full((1, 3), 0.4),
        torch.tensor([0.95]),
        sh,
        name="glossy",
    )


def sh_cloud(n: int = 250, seed: int = 0, view_dependence: float = 0.2) -> GaussianScene:
    """A ring (torus) of ``n`` flat Gaussians lying on its surface, hue by angle, with random higher SH bands.

    ``view_dependence`` is the spread of the band 1-3 coefficients: 0 gives constant
    colours, larger values colours that visibly shift as the camera orbits.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"sh_cloud: n must be a whole number >= 1, got {n!r}")
    gen = torch.Generator().manual_seed(seed)
    theta = torch.rand(n, generator=gen) * 2 * math.pi  # around the ring
    phi = torch.rand(n, generator=gen) * 2 * math.pi  # around the tube
    ring, tube = 1.0, 0.3
    radius = ring + tube * torch.cos(phi)
    means = torch.stack(
        [radius * torch.cos(theta), radius * torch.sin(theta), tube * torch.sin(phi)], dim=-1
    )
    # Flat discs lying on the torus surface: turn z onto the surface normal (the half-way
    # quaternion between them), after a random spin about z so the discs are not all aligned.
    normal = torch.stack(
        [torch.cos(phi) * torch.cos(theta), torch.cos(phi) * torch.sin(theta), torch.sin(phi)],
        dim=-1,
    )
    normal = torch.where(normal[:, 2:] < 0, -normal, normal)  # the side does not matter
    align = torch.stack([1 + normal[:, 2], -normal[:, 1], normal[:, 0], torch.zeros(n)], -1)
    spin = torch.rand(n, generator=gen) * math.pi
    spin_q = torch.stack([torch.cos(spin), torch.zeros(n), torch.zeros(n), torch.sin(spin)], -1)
    quats = _quat_multiply(align / align.norm(dim=-1, keepdim=True), spin_q)
    scales = torch.stack(
        [
            0.07 + 0.06 * torch.rand(n, generator=gen),
            0.05 + 0.04 * torch.rand(n, generator=gen),
            torch.full((n,), 0.02),
        ],
        dim=-1,
    )
    opacities = 0.6 + 0.4 * torch.rand(n, generator=gen)
    hues = (theta / (2 * math.pi)).tolist()
    rgb = torch.tensor([colorsys.hsv_to_rgb(h, 0.75, 0.85) for h in hues])
    sh = _sh_from_rgb(rgb)
    sh[:, 1:] = view_dependence * torch.randn(n, _K - 1, 3, generator=gen)
    return GaussianScene(means, quats, scales, opacities, sh, name="SH ring")
