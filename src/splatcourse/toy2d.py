"""Toy 2D Gaussian splats: the course's first model.

An image is approximated by a handful of 2D Gaussians, each with a position, a width and an
intensity (or colour). Lesson 1 fits them to a grey gradient, lesson 2 to a colour pattern. The
same ideas (a differentiable renderer + gradient descent on the primitives) carry over unchanged
to the 3D splatting of later lessons, which is why the course starts here.

Coordinates are normalised: x and y run over [0, 1] across the image, pixel centres included, so a
fit does not depend on the image resolution.

Used by: lessons 1-2 and exercises 1-2 (the references the hidden tests compare with), and the 2D widgets.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from splatcourse.constants import TOY_ALPHA_MAX

Tensor = torch.Tensor
Params = dict[str, Tensor]

__all__ = [
    "REFERENCE_LR",
    "REFERENCE_STEPS",
    "FitResult",
    "colour_target",
    "composite_2d",
    "covariance_2d",
    "fit_splats",
    "gradient_target",
    "init_splats",
    "mse",
    "mse_per_channel",
    "pixel_grid",
    "render_anisotropic",
    "render_splats",
    "render_splats_loop",
    "render_splats_separable",
]

# The step budget and learning rate every graded fit in exercises 1-2 uses, so a student's fit can
# be compared with the reference fit of the same seed.
REFERENCE_STEPS = 300
REFERENCE_LR = 0.05


def pixel_grid(height: int, width: int | None = None) -> Tensor:
    """Pixel-centre coordinates, shape [H, W, 2] holding (x, y) in [0, 1]."""
    width = height if width is None else width
    if height < 1 or width < 1:
        raise ValueError(f"pixel_grid needs a positive size, got height={height}, width={width}")
    ys = (torch.arange(height, dtype=torch.float32) + 0.5) / height
    xs = (torch.arange(width, dtype=torch.float32) + 0.5) / width
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], dim=-1)


def gradient_target(size: int = 64) -> Tensor:
    """The course's reference target: a smooth diagonal gradient with a soft bright bump.

    Smooth, so a few Gaussians already get close, but not a single blob, so the error keeps
    falling as Gaussians are added (4 -> 16 -> 64), which is what lesson 1 wants to show.
    """
    grid = pixel_grid(size)
    x, y = grid[..., 0], grid[..., 1]
    ramp = 0.1 + 0.6 * (0.65 * x + 0.35 * y)
    bump = 0.3 * torch.exp(-((x - 0.3) ** 2 + (y - 0.7) ** 2) / (2 * 0.12**2))
    return (ramp + bump).clamp(0.0, 1.0)


def _smoothstep_edge(signed_dist: Tensor, softness: float) -> Tensor:
    """1 inside (signed_dist < 0), 0 outside, with an anti-aliased edge `softness` wide."""
    return torch.sigmoid(-signed_dist / softness)


def colour_target(size: int = 64) -> Tensor:
    """A colour pattern with distinct regions: red disc, green square and blue bar on cream.

    Each region is a different pure-ish colour, so a fit that mixes channels (a grey answer, or
    colours summed across channels) is visibly and measurably wrong in every channel.
    """
    grid = pixel_grid(size)
    x, y = grid[..., 0], grid[..., 1]
    soft = 1.0 / size
    image = torch.empty(size, size, 3)
    image[...] = torch.tensor([0.95, 0.92, 0.80])  # cream background
    layers = [
        # (coverage, colour)
        (_smoothstep_edge(torch.hypot(x - 0.32, y - 0.32) - 0.2, soft), (0.85, 0.12, 0.10)),
        (
            _smoothstep_edge(torch.maximum((x - 0.7).abs(), (y - 0.68).abs()) - 0.18, soft),
            (0.10, 0.65, 0.20),
        ),
        (
            _smoothstep_edge(torch.maximum((x - 0.5).abs() - 0.42, (y - 0.92).abs() - 0.05), soft),
            (0.12, 0.25, 0.85),
        ),
    ]
    for coverage, colour in layers:
        c = coverage[..., None]
        image = (1 - c) * image + c * torch.tensor(colour)
    return image.clamp(0.0, 1.0)


def init_splats(n: int, seed: int = 0, channels: int = 1, anisotropic: bool = False) -> Params:
    """Deterministic starting Gaussians for a fit: the same seed gives the same start.

    Positions are uniform in the image, widths shrink with sqrt(n) so n Gaussians roughly tile
    the image, and intensities start small so the first render is not saturated.
    """
    if n < 1:
        raise ValueError(f"init_splats needs at least one Gaussian, got n={n}")
    if channels < 1:
        raise ValueError(f"init_splats needs channels >= 1, got {channels}")
    gen = torch.Generator().manual_seed(seed)
    means = 0.05 + 0.9 * torch.rand(n, 2, generator=gen)
    width = 0.5 / math.sqrt(n)
    scale_shape = (n, 2) if anisotropic else (n,)
    log_scales = math.log(width) + 0.1 * torch.randn(*scale_shape, generator=gen)
    weights = 0.3 + 0.1 * torch.randn(n, channels, generator=gen)
    params: Params = {"means": means, "log_scales": log_scales, "weights": weights}
    if anisotropic:
        params["angles"] = math.pi * torch.rand(n, generator=gen)
    return params


def render_splats(means: Tensor, log_scales: Tensor, weights: Tensor, grid: Tensor) -> Tensor:
    """Sum of isotropic Gaussians, vectorised over Gaussians and pixels.

    means [N, 2], log_scales [N], weights [N] or [N, C], grid [H, W, 2]
    -> [H, W] (weights [N]) or [H, W, C] (weights [N, C]).
    """
    d2 = ((grid[None, :, :, :] - means[:, None, None, :]) ** 2).sum(-1)  # [N, H, W]
    var = torch.exp(2.0 * log_scales)[:, None, None]
    g = torch.exp(-0.5 * d2 / var)  # [N, H, W]
    if weights.dim() == 1:
        return torch.einsum("nhw,n->hw", g, weights)
    return torch.einsum("nhw,nc->hwc", g, weights)


def render_splats_separable(
    means: Tensor, log_scales: Tensor, weights: Tensor, height: int, width: int | None = None
) -> Tensor:
    """The same image as :func:`render_splats` on a pixel grid, as one matrix product.

    A round Gaussian factorises, exp(-(dx^2 + dy^2)/2s^2) = exp(-dx^2/2s^2) exp(-dy^2/2s^2), so
    the image is (G_y * w)^T @ G_x with G_x [N, W] and G_y [N, H]: N(H + W) exponentials instead
    of N*H*W, and the sum over Gaussians becomes a matmul. `fit_splats` uses it.
    """
    width = height if width is None else width
    xs = (torch.arange(width, dtype=means.dtype) + 0.5) / width
    ys = (torch.arange(height, dtype=means.dtype) + 0.5) / height
    inv_var = torch.exp(-2.0 * log_scales)[:, None]  # [N, 1]
    gx = torch.exp(-0.5 * (xs[None, :] - means[:, 0:1]) ** 2 * inv_var)  # [N, W]
    gy = torch.exp(-0.5 * (ys[None, :] - means[:, 1:2]) ** 2 * inv_var)  # [N, H]
    if weights.dim() == 1:
        return (gy * weights[:, None]).T @ gx
    channels = weights.shape[1]
    weighted = (gy[:, :, None] * weights[:, None, :]).reshape(len(means), height * channels)
    return (weighted.T @ gx).reshape(height, channels, width).permute(0, 2, 1)


def render_splats_loop(
    means: list[list[float]], log_scales: list[float], weights: list[float], size: int
) -> list[list[float]]:
    """The same render as :func:`render_splats`, one pixel and one Gaussian at a time.

    Kept only to show (and benchmark) why the course never writes renderers this way.
    """
    image = [[0.0] * size for _ in range(size)]
    for row in range(size):
        y = (row + 0.5) / size
        for col in range(size):
            x = (col + 0.5) / size
            total = 0.0
            for (mx, my), ls, w in zip(means, log_scales, weights):
                var = math.exp(2.0 * ls)
                total += w * math.exp(-0.5 * ((x - mx) ** 2 + (y - my) ** 2) / var)
            image[row][col] = total
    return image


def covariance_2d(log_scales: Tensor, angles: Tensor) -> Tensor:
    """Sigma = R diag(s^2) R^T: a rotation and two widths always give a valid covariance.

    Optimising (angle, log-scale) instead of the matrix entries keeps Sigma symmetric positive
    definite at every step, the same trick 3D splatting plays with quaternions.
    """
    c, s = torch.cos(angles), torch.sin(angles)
    rot = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)  # [N, 2, 2]
    var = torch.exp(2.0 * log_scales)  # [N, 2]
    return rot @ torch.diag_embed(var) @ rot.transpose(-1, -2)


def _anisotropic_weights(means: Tensor, log_scales: Tensor, angles: Tensor, grid: Tensor) -> Tensor:
    """exp(-1/2 d^T Sigma^-1 d) for every Gaussian and pixel, [N, H, W].

    With Sigma = R diag(s^2) R^T the quadratic form is |R^T d|^2 weighted by 1/s^2: rotate the
    offsets into each Gaussian's own axes instead of inverting any matrix.
    """
    c = torch.cos(angles)[:, None, None]
    s = torch.sin(angles)[:, None, None]
    dx = grid[None, :, :, 0] - means[:, 0, None, None]  # [N, H, W]
    dy = grid[None, :, :, 1] - means[:, 1, None, None]
    u = c * dx + s * dy  # offset along the Gaussian's first axis
    v = -s * dx + c * dy  # and along its second
    inv_var = torch.exp(-2.0 * log_scales)  # [N, 2]
    power = u * u * inv_var[:, 0, None, None] + v * v * inv_var[:, 1, None, None]
    return torch.exp(-0.5 * power)


def render_anisotropic(
    means: Tensor, log_scales: Tensor, angles: Tensor, weights: Tensor, grid: Tensor
) -> Tensor:
    """Sum of rotated, stretched Gaussians: log_scales [N, 2], angles [N], weights [N, C]."""
    g = _anisotropic_weights(means, log_scales, angles, grid)
    return torch.einsum("nhw,nc->hwc", g, weights)


def composite_2d(
    means: Tensor,
    log_scales: Tensor,
    angles: Tensor,
    colours: Tensor,
    opacities: Tensor,
    depths: Tensor,
    grid: Tensor,
    background: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Depth-sorted front-to-back alpha compositing, the rule real splatting uses.

    Summing lets a far Gaussian shine through a near one; compositing lets the near one hide
    it. Returns (image [H, W, C], alpha [H, W]).
    """
    order = torch.argsort(depths)
    g = _anisotropic_weights(means[order], log_scales[order], angles[order], grid)
    alpha = (opacities[order][:, None, None] * g).clamp(max=TOY_ALPHA_MAX)  # [N, H, W]
    # transmittance before each Gaussian: product of (1 - alpha) of everything in front of it
    trans = torch.cumprod(torch.cat([torch.ones_like(alpha[:1]), 1 - alpha[:-1]]), dim=0)
    contrib = alpha * trans  # [N, H, W]
    image = torch.einsum("nhw,nc->hwc", contrib, colours[order])
    coverage = contrib.sum(0)
    if background is not None:
        image = image + (1 - coverage)[..., None] * background
    return image, coverage


def mse(prediction: Tensor, target: Tensor) -> float:
    """Mean squared error as a plain float (what exercises report)."""
    if prediction.shape != target.shape:
        raise ValueError(
            f"mse: shapes differ, prediction {tuple(prediction.shape)} "
            f"vs target {tuple(target.shape)}"
        )
    return float(((prediction.detach() - target) ** 2).mean())


def mse_per_channel(prediction: Tensor, target: Tensor) -> list[float]:
    """MSE of each colour channel: a grey answer to a colour target fails every one of them."""
    if prediction.shape != target.shape or prediction.dim() != 3:
        raise ValueError(
            f"mse_per_channel wants two [H, W, C] images, got "
            f"{tuple(prediction.shape)} and {tuple(target.shape)}"
        )
    return [float(v) for v in ((prediction.detach() - target) ** 2).mean(dim=(0, 1))]


@dataclass
class FitResult:
    """What a fit leaves behind: the fitted splats, the loss curve and snapshots to replay."""

    params: Params
    losses: list[float]
    seconds: float
    snapshots: list[tuple[int, Tensor]] = field(default_factory=list)

    @property
    def mse(self) -> float:
        return self.losses[-1]


def fit_splats(
    target: Tensor,
    n_gaussians: int,
    steps: int = REFERENCE_STEPS,
    lr: float = REFERENCE_LR,
    seed: int = 0,
    anisotropic: bool = False,
    record_every: int = 0,
    progress: bool = True,
    render: Callable[..., Tensor] | None = None,
) -> FitResult:
    """Fit n Gaussians to `target` ([H, W] grey or [H, W, C] colour) with Adam on the MSE.

    The loss recorded at step k is the MSE of the render *before* the k-th update, and the final
    entry is the MSE after the last update, so `result.mse` is the fit's true final error.
    """
    if target.dim() not in (2, 3):
        raise ValueError(
            f"fit_splats: target must be [H, W] or [H, W, C], got {tuple(target.shape)}"
        )
    if target.shape[0] != target.shape[1]:
        raise ValueError(f"fit_splats: the toy fit uses square images, got {tuple(target.shape)}")
    channels = 1 if target.dim() == 2 else target.shape[2]
    params = init_splats(n_gaussians, seed=seed, channels=channels, anisotropic=anisotropic)
    if target.dim() == 2:
        params["weights"] = params["weights"][:, 0]
    for p in params.values():
        p.requires_grad_(True)
    grid = pixel_grid(target.shape[0])

    def draw() -> Tensor:
        if render is not None:
            return render(**params, grid=grid)
        if anisotropic:
            out = render_anisotropic(
                params["means"],
                params["log_scales"],
                params["angles"],
                params["weights"].reshape(n_gaussians, -1),
                grid,
            )
            return out[..., 0] if target.dim() == 2 else out
        return render_splats_separable(
            params["means"],
            params["log_scales"],
            params["weights"],
            target.shape[0],
            target.shape[1],
        )

    optimiser = torch.optim.Adam(params.values(), lr=lr)
    losses: list[float] = []
    snapshots: list[tuple[int, Tensor]] = []
    start = time.perf_counter()
    for step in tqdm(range(steps), desc=f"fit {n_gaussians} Gaussians", disable=not progress):
        image = draw()
        loss = ((image - target) ** 2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
        if record_every and step % record_every == 0:
            snapshots.append((step, image.detach().clone()))
    with torch.no_grad():
        final = draw()
    losses.append(mse(final, target))
    if record_every:
        snapshots.append((steps, final.detach().clone()))
    seconds = time.perf_counter() - start
    fitted = {k: v.detach() for k, v in params.items()}
    return FitResult(params=fitted, losses=losses, seconds=seconds, snapshots=snapshots)
