"""The course's own offline capture: 50 photos of a textured object, made by ray casting.

Why: every notebook must run with no download, and a capture whose ground truth is known
exactly is the cleanest way to check cameras, conventions and training. The renderer here is
deliberately *independent* of the splat rasterizer: it sphere-traces a signed distance
function (a rounded box fused with a ball), so fitting Gaussians to it is a real
reconstruction, not the rasterizer reproducing its own output.

The object sits at the origin with +z up. Its colour is a 3D procedural texture (coloured
checks over smooth hue bands) lit by a fixed directional light plus ambient, so it looks the
same from every view (diffuse: view-independent, SH degree 0 can fit it). Cameras orbit the
object twice on a rising spiral, always looking at the origin. Each pixel averages 2x2 rays,
which gives anti-aliased edges and a soft coverage used as the mask. Everything is
deterministic; `seed` only drives the choice of surface sample points.

Used by: lessons 5-7 and exercise 4's warm-up (load_capture("default")).
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

from ..threads import one_torch_thread
from .dataset import Capture, rgb_floats

ATTRIBUTION = (
    "Synthetic capture rendered by splatcourse.capture.synthetic (procedural, "
    "no third-party content; same licence as the course code)."
)

BOX_HALF = torch.tensor([0.75, 0.5, 0.35])  # half-size of the box before rounding
BOX_ROUND = 0.12
BALL_CENTER = torch.tensor([0.3, 0.1, 0.45])
BALL_RADIUS = 0.38
BLEND = 0.12  # smooth-union width between box and ball
LIGHT = torch.tensor([0.45, -0.35, 0.82])
AMBIENT = 0.45
#: A box that contains the object (checked by the tests).
BBOX = torch.tensor([[-0.9, -0.65, -0.5], [0.9, 0.65, 0.9]])


def sdf(p: torch.Tensor) -> torch.Tensor:
    """Signed distance (a lower bound outside) to the object, for points [..., 3]."""
    return sdf_xyz(p[..., 0], p[..., 1], p[..., 2])


def sdf_xyz(x: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """`sdf` on separate coordinate arrays (contiguous arrays keep the tracing loop fast)."""
    hx, hy, hz = BOX_HALF.tolist()
    qx, qy, qz = x.abs() - hx, y.abs() - hy, z.abs() - hz
    outside = (
        qx.clamp_min(0).square() + qy.clamp_min(0).square() + qz.clamp_min(0).square()
    ).sqrt()
    box = outside + torch.maximum(torch.maximum(qx, qy), qz).clamp_max(0) - BOX_ROUND
    bx, by, bz = BALL_CENTER.tolist()
    ball = ((x - bx).square() + (y - by).square() + (z - bz).square()).sqrt() - BALL_RADIUS
    h = (0.5 + 0.5 * (ball - box) / BLEND).clamp(0, 1)  # polynomial smooth minimum
    return ball * (1 - h) + box * h - BLEND * h * (1 - h)


def normal(p: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Unit surface normal from central differences of the SDF."""
    e = torch.eye(3, dtype=p.dtype) * eps
    g = torch.stack([sdf(p + e[i]) - sdf(p - e[i]) for i in range(3)], dim=-1)
    return g / g.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def albedo(p: torch.Tensor) -> torch.Tensor:
    """Colourful 3D texture: hue bands that wind around the object, darkened on a 3D checker."""
    hue = (
        0.6 * p[..., 0] + 0.5 * torch.atan2(p[..., 1], p[..., 0] + 0.1) / math.pi + 0.8 * p[..., 2]
    )
    phase = 2 * math.pi * hue[..., None] + torch.tensor([0.0, 2.1, 4.2])
    rgb = 0.5 + 0.45 * torch.cos(phase)
    cell = torch.floor(p * 4.0).sum(-1).remainder(2)  # 0.25-unit checks
    stripe = (torch.sin(18.0 * p[..., 2]) > 0.7).float()  # thin bright rings
    rgb = rgb * (1.0 - 0.45 * cell[..., None])
    return (rgb + 0.5 * stripe[..., None] * (1 - rgb)).clamp(0, 1)


def shade(p: torch.Tensor) -> torch.Tensor:
    """Diffuse colour of surface points (what a camera sees, from any direction)."""
    lam = (normal(p) @ (LIGHT / LIGHT.norm())).clamp_min(0)
    return (albedo(p) * (AMBIENT + (1 - AMBIENT) * lam[..., None])).clamp(0, 1)


def orbit_viewmats(n_views: int, radius: float = 4.0) -> torch.Tensor:
    """World-to-camera matrices (OpenCV) on a two-turn spiral rising from -10 to +55 degrees."""
    i = torch.arange(n_views, dtype=torch.float64)
    azim = 2 * math.pi * 2 * i / n_views
    elev = torch.deg2rad(-10 + 65 * i / max(n_views - 1, 1))
    eye = radius * torch.stack([elev.cos() * azim.cos(), elev.cos() * azim.sin(), elev.sin()], -1)
    fwd = -eye / eye.norm(dim=-1, keepdim=True)  # look at the origin
    up = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand_as(fwd)
    right = torch.linalg.cross(fwd, up)
    right = right / right.norm(dim=-1, keepdim=True)
    down = torch.linalg.cross(fwd, right)
    R = torch.stack([right, down, fwd], dim=1)  # rows: camera axes in world coordinates
    V = torch.eye(4, dtype=torch.float64).repeat(n_views, 1, 1)
    V[:, :3, :3] = R
    V[:, :3, 3] = -(R @ eye[..., None])[..., 0]
    return V.float()


def trace(
    origins: torch.Tensor, dirs: torch.Tensor, steps: int = 96
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sphere tracing: (hit [R] bool, point [R,3]). Rays that miss the bounding box skip."""
    # Start where the ray enters the bounding box (slab test) and give up where it leaves.
    inv = 1.0 / torch.where(dirs.abs() < 1e-12, torch.full_like(dirs, 1e-12), dirs)
    t0, t1 = (BBOX[0] - origins) * inv, (BBOX[1] - origins) * inv
    t = torch.minimum(t0, t1).max(-1).values.clamp_min(0)
    far = torch.maximum(t0, t1).min(-1).values
    hit = torch.zeros(origins.shape[0], dtype=torch.bool)
    idx = torch.nonzero(far > t)[:, 0]
    o, d = origins[idx].T.contiguous(), dirs[idx].T.contiguous()  # [3, A]
    ta, fa = t[idx], far[idx]
    for step in range(steps):
        if idx.numel() == 0:
            break
        dist = sdf_xyz(o[0] + ta * d[0], o[1] + ta * d[1], o[2] + ta * d[2])
        done = dist < 1e-4
        ta = ta + dist * ~done  # converged rays stay put
        if step % 4 == 3 or step == steps - 1:  # drop finished rays now and then
            t[idx] = ta
            hit[idx[done]] = True
            keep = ~done & (ta < fa)
            idx, o, d, ta, fa = idx[keep], o[:, keep], d[:, keep], ta[keep], fa[keep]
    return hit, origins + t[:, None] * dirs


def render_views(
    viewmats: torch.Tensor,
    K: torch.Tensor,
    width: int,
    height: int,
    background: tuple[float, float, float],
    ss: int = 2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(images [N,H,W,3], coverage [N,H,W]) with ss x ss rays per pixel, all views at once."""
    n = viewmats.shape[0]
    # Sub-pixel sample centres; pixel (i, j) spans [j, j+1) x [i, i+1).
    u = torch.arange(width * ss)[None, :].float() / ss + 0.5 / ss
    v = torch.arange(height * ss)[:, None].float() / ss + 0.5 / ss
    u, v = torch.broadcast_tensors(u, v)
    d_cam = torch.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], torch.ones_like(u)], -1)
    d_cam = d_cam.reshape(1, -1, 3)
    R, t = viewmats[:, :3, :3], viewmats[:, :3, 3]
    dirs = d_cam @ R  # camera -> world is R^T; for row vectors that is a product with R
    dirs = (dirs / dirs.norm(dim=-1, keepdim=True)).reshape(-1, 3)
    origins = -(R.transpose(1, 2) @ t[..., None])[..., 0]
    origins = origins[:, None].expand(n, d_cam.shape[1], 3).reshape(-1, 3)
    hit, pts = trace(origins, dirs)
    rgb = torch.tensor(background, dtype=torch.float32).expand(dirs.shape[0], 3).clone()
    rgb[hit] = shade(pts[hit])
    rgb = rgb.reshape(n, height, ss, width, ss, 3).mean(dim=(2, 4))
    cover = hit.float().reshape(n, height, ss, width, ss).mean(dim=(2, 4))
    return rgb, cover


def surface_points(n: int, seed: int) -> torch.Tensor:
    """n points on the surface: random points in the bbox pulled onto it by Newton steps."""
    g = torch.Generator().manual_seed(seed)
    p = BBOX[0] + (BBOX[1] - BBOX[0]) * torch.rand(4 * n, 3, generator=g)
    for _ in range(12):
        p = p - sdf(p)[:, None] * normal(p)
    p = p[sdf(p).abs() < 1e-4]
    return p[:n]


def intrinsics(width: int, height: int) -> torch.Tensor:
    f = 1.4 * width  # the object fills about 60% of the frame
    return torch.tensor([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]])


@lru_cache(maxsize=4)
def _render_all(n_views: int, width: int, height: int, background: tuple[float, float, float]):
    viewmats = orbit_viewmats(n_views)
    K = intrinsics(width, height)
    with one_torch_thread():
        images, cover = render_views(viewmats, K, width, height, background)
    return images, cover, viewmats, K


def synthetic_capture(
    n_views: int = 50,
    width: int = 128,
    height: int | None = None,
    n_points: int = 2000,
    seed: int = 0,
    background: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> Capture:
    """The offline default capture (about a second at 128x96 on two CPU cores).

    Images are rendered at width x height (height defaults to 3/4 of width), masks are pixels
    at least half covered by the object, points are `n_points` exact surface samples with
    their shaded colour (a perfect "SfM" point cloud).
    """
    if height is None:
        height = width * 3 // 4
    if n_views < 1 or width < 8 or height < 8:
        raise ValueError(
            f"need n_views >= 1 and an image of at least 8x8, got {n_views}, {width}x{height}"
        )
    background = rgb_floats(background)
    images, cover, viewmats, K = _render_all(n_views, width, height, background)
    with one_torch_thread():
        pts = surface_points(n_points, seed)
        colors = shade(pts)
    return Capture(
        name="synthetic",
        images=images.clone(),
        masks=cover >= 0.5,
        viewmats=viewmats.clone(),
        Ks=K.expand(n_views, 3, 3).clone(),
        image_names=[f"view_{i:03d}.png" for i in range(n_views)],
        points=pts,
        point_colors=colors,
        attribution=ATTRIBUTION,
        background=background,
        bbox=BBOX.clone(),
        source="synthetic",
        notes=["rendered by sphere tracing an SDF (independent of the splat rasterizer)"],
    )
