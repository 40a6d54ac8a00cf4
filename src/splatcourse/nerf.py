"""A tiny NeRF, small enough to train on a laptop CPU in a minute, to compare with splatting.

The whole method in five ideas, one function each:

1. ``positional_encoding``: sines and cosines of the position at growing frequencies, so a
   small MLP can represent fine detail (an MLP on raw xyz only learns blurry functions).
2. ``TinyNeRF``: an MLP mapping an encoded 3D point to a density and a colour.
3. ``camera_rays`` + ``ray_box_bounds`` + ``stratified_samples``: one ray per pixel, sampled
   only where the object can be (inside the scene box), at jittered depths while training.
4. ``volume_render``: alpha-composite the samples along each ray (the same front-to-back
   blending a splat rasterizer does, but with hundreds of MLP queries per pixel).
5. ``train_nerf`` / ``render_image``: random batches of rays from the training views.

No view-dependent colour and no hierarchical (coarse + fine) sampling: both improve quality,
both cost time, and neither changes the comparison this course makes (see lesson 6).

Used by: lesson 6 (NeRF next to splatting, measured).
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .capture import Capture

__all__ = [
    "NeRFConfig",
    "NeRFHistory",
    "TinyNeRF",
    "camera_rays",
    "evaluate_nerf",
    "positional_encoding",
    "psnr",
    "ray_box_bounds",
    "render_image",
    "render_rays",
    "render_views",
    "scene_box",
    "stratified_samples",
    "train_nerf",
    "volume_render",
]


# ---- 1. positional encoding -----------------------------------------------------------------
def positional_encoding(x: Tensor, n_freqs: int) -> Tensor:
    """[..., D] -> [..., D * (1 + 2 * n_freqs)]: x, then sin/cos(2^k * pi * x) for k < n_freqs."""
    if n_freqs < 0:
        raise ValueError(f"n_freqs must be >= 0, got {n_freqs}")
    freqs = (2.0 ** torch.arange(n_freqs, dtype=x.dtype, device=x.device)) * math.pi
    angles = x[..., None, :] * freqs[:, None]  # [..., F, D]
    enc = torch.cat([angles.sin(), angles.cos()], dim=-2).flatten(-2)
    return torch.cat([x, enc], dim=-1)


# ---- 2. the field -----------------------------------------------------------------------------
class TinyNeRF(nn.Module):
    """Point -> (density >= 0, colour in [0, 1]); view-independent to keep it small."""

    def __init__(self, n_freqs: int = 6, hidden: int = 64, layers: int = 3) -> None:
        super().__init__()
        if layers < 1 or hidden < 1:
            raise ValueError(f"TinyNeRF needs layers >= 1 and hidden >= 1, got {layers}, {hidden}")
        self.n_freqs = n_freqs
        dims = [3 * (1 + 2 * n_freqs)] + [hidden] * layers
        blocks: list[nn.Module] = []
        for a, b in itertools.pairwise(dims):
            blocks += [nn.Linear(a, b), nn.ReLU()]
        self.trunk = nn.Sequential(*blocks)
        self.head = nn.Linear(hidden, 4)  # density logit + 3 colour logits

    def forward(self, xyz: Tensor) -> tuple[Tensor, Tensor]:
        out = self.head(self.trunk(positional_encoding(xyz, self.n_freqs)))
        # softplus keeps density positive with a gradient everywhere (ReLU can die at start)
        sigma = nn.functional.softplus(out[..., 0] - 1.0)
        rgb = torch.sigmoid(out[..., 1:])
        return sigma, rgb


# ---- 3. rays and samples ----------------------------------------------------------------------
def camera_rays(viewmat: Tensor, K: Tensor, width: int, height: int) -> tuple[Tensor, Tensor]:
    """World-space (origins, unit directions) [H, W, 3] through pixel centres (OpenCV camera)."""
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float32) + 0.5,
        torch.arange(width, dtype=torch.float32) + 0.5,
        indexing="ij",
    )
    cam = torch.stack([(xs - K[0, 2]) / K[0, 0], (ys - K[1, 2]) / K[1, 1], torch.ones_like(xs)], -1)
    R, t = viewmat[:3, :3].float(), viewmat[:3, 3].float()
    dirs = cam @ R  # R^T applied to each row: camera -> world rotation
    dirs = dirs / dirs.norm(dim=-1, keepdim=True)
    origin = -(R.T @ t)
    return origin.expand_as(dirs), dirs


def ray_box_bounds(origins: Tensor, dirs: Tensor, box: Tensor) -> tuple[Tensor, Tensor]:
    """Where each ray enters and leaves the box [2, 3] (slab test); near == far if it misses."""
    safe = torch.where(dirs.abs() < 1e-9, torch.full_like(dirs, 1e-9), dirs)
    t0 = (box[0] - origins) / safe
    t1 = (box[1] - origins) / safe
    near = torch.minimum(t0, t1).amax(-1).clamp_min(0.0)
    far = torch.maximum(t0, t1).amin(-1)
    far = torch.maximum(far, near)  # a miss becomes an empty interval: it renders background
    return near, far


def stratified_samples(
    near: Tensor,
    far: Tensor,
    n_samples: int,
    perturb: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """[R, S] depths: one per equal bin of [near, far], at a random spot in it when training
    (so over many steps the MLP is queried everywhere, not on a fixed lattice)."""
    u = torch.arange(n_samples, dtype=near.dtype) / n_samples
    if perturb:
        u = u + torch.rand(*near.shape, n_samples, generator=generator) / n_samples
    else:
        u = u + 0.5 / n_samples
    return near[..., None] + (far - near)[..., None] * u


# ---- 4. volume rendering ----------------------------------------------------------------------
def volume_render(
    sigma: Tensor, rgb: Tensor, t: Tensor, far: Tensor, background: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Composite samples front to back; returns (colour [R, 3], weights [R, S]).

    Sample i covers [t_i, t_{i+1}) (the last one up to `far`); its opacity is
    alpha_i = 1 - exp(-sigma_i * delta_i) and it is seen through the transmittance
    T_i = prod_{j<i} (1 - alpha_j). The weights T_i * alpha_i sum to 1 - T_final <= 1;
    the rest of the light comes from the background.
    """
    delta = torch.cat([t[..., 1:] - t[..., :-1], (far[..., None] - t[..., -1:])], -1)
    alpha = 1.0 - torch.exp(-sigma * delta.clamp_min(0.0))
    trans = torch.cumprod(
        torch.cat([torch.ones_like(alpha[..., :1]), 1.0 - alpha[..., :-1] + 1e-10], -1), -1
    )
    weights = trans * alpha
    colour = (weights[..., None] * rgb).sum(-2)
    if background is not None:
        colour = colour + (1.0 - weights.sum(-1, keepdim=True)) * background
    return colour, weights


def render_rays(
    model: TinyNeRF,
    origins: Tensor,
    dirs: Tensor,
    box: Tensor,
    n_samples: int,
    perturb: bool = False,
    background: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """[R, 3] colours of rays [R, 3] (origins, dirs) through the scene box."""
    near, far = ray_box_bounds(origins, dirs, box)
    t = stratified_samples(near, far, n_samples, perturb, generator)
    pts = origins[:, None] + dirs[:, None] * t[..., None]
    sigma, rgb = model(pts)
    return volume_render(sigma, rgb, t, far, background)[0]


@torch.no_grad()
def render_image(
    model: TinyNeRF,
    viewmat: Tensor,
    K: Tensor,
    width: int,
    height: int,
    box: Tensor,
    n_samples: int = 64,
    background: Tensor | None = None,
    chunk: int = 8192,
) -> Tensor:
    """[H, W, 3] image of one camera (chunks of rays bound memory)."""
    origins, dirs = camera_rays(viewmat, K, width, height)
    o, d = origins.reshape(-1, 3), dirs.reshape(-1, 3)
    out = [
        render_rays(
            model, o[i : i + chunk], d[i : i + chunk], box, n_samples, background=background
        )
        for i in range(0, len(o), chunk)
    ]
    return torch.cat(out).reshape(height, width, 3).clamp(0, 1)


# ---- 5. training --------------------------------------------------------------------------------
def psnr(image: Tensor, target: Tensor) -> float:
    """Peak signal-to-noise ratio in dB for images in [0, 1]."""
    mse = float(((image - target) ** 2).mean())
    return 10.0 * math.log10(1.0 / max(mse, 1e-12))


@dataclass
class NeRFConfig:
    """Everything that sets cost and quality; defaults train in about a minute at 64x48."""

    steps: int = 1500
    batch_rays: int = 1024
    n_samples: int = 32  # per ray while training
    render_samples: int = 64  # per ray when rendering test views
    n_freqs: int = 6
    hidden: int = 64
    layers: int = 3
    lr: float = 5e-3
    seed: int = 0
    box_margin: float = 0.05  # grow the object box by this fraction of its size

    def __post_init__(self) -> None:
        for name in ("steps", "batch_rays", "n_samples", "render_samples", "hidden", "layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"NeRFConfig.{name} must be >= 1, got {getattr(self, name)}")


@dataclass
class NeRFHistory:
    """Training curve: `seconds` counts training only (evaluation time is excluded)."""

    steps: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    test_psnr: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)


def scene_box(capture: Capture, margin: float = 0.05) -> Tensor:
    """[2, 3] box to march through: the capture's object box, grown by `margin` of its size."""
    box = capture.object_bbox().float()
    grow = (box[1] - box[0]) * margin
    return torch.stack([box[0] - grow, box[1] + grow])


def render_views(
    model: TinyNeRF,
    capture: Capture,
    idx: list[int],
    n_samples: int = 64,
    box: Tensor | None = None,
) -> Tensor:
    """[V, H, W, 3] renders of views `idx` over the capture's background."""
    box = scene_box(capture) if box is None else box
    bg = torch.tensor(capture.background, dtype=torch.float32)
    return torch.stack(
        [
            render_image(
                model,
                capture.viewmats[i],
                capture.Ks[i],
                capture.width,
                capture.height,
                box,
                n_samples,
                bg,
            )
            for i in idx
        ]
    )


def evaluate_nerf(
    model: TinyNeRF,
    capture: Capture,
    idx: list[int] | None = None,
    n_samples: int = 64,
    box: Tensor | None = None,
) -> float:
    """Mean PSNR over views `idx` (default: the held-out test views).

    Scored like the splat trainer's evaluation (``splatcourse.train.evaluate``): outside the
    object mask both images are set to the background, so only the object is compared.
    """
    idx = capture.test_idx if idx is None else idx
    renders = render_views(model, capture, idx, n_samples, box)
    photos = capture.images[idx].float()
    if capture.masks is not None:
        bg = torch.tensor(capture.background, dtype=torch.float32)
        keep = capture.masks[idx][..., None]
        renders, photos = torch.where(keep, renders, bg), torch.where(keep, photos, bg)
    return sum(psnr(r, p) for r, p in zip(renders, photos)) / len(idx)


def _training_rays(capture: Capture) -> tuple[Tensor, Tensor, Tensor]:
    """Every pixel of every training view as (origin, direction, colour) rows."""
    rays = [
        camera_rays(capture.viewmats[i], capture.Ks[i], capture.width, capture.height)
        for i in capture.train_idx
    ]
    origins = torch.cat([o.reshape(-1, 3) for o, _ in rays])
    dirs = torch.cat([d.reshape(-1, 3) for _, d in rays])
    colours = capture.images[capture.train_idx].reshape(-1, 3).float()
    return origins, dirs, colours


def train_nerf(
    capture: Capture,
    cfg: NeRFConfig | None = None,
    eval_every: int = 0,
    progress: bool = True,
    time_budget: float | None = None,
) -> tuple[TinyNeRF, NeRFHistory]:
    """Fit a TinyNeRF to the training views; every `eval_every` steps (0: only at the end)
    record the held-out PSNR against the training time spent so far. `time_budget` (seconds
    of training) stops early, so a lesson takes the same time on any machine."""
    cfg = cfg or NeRFConfig()
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model = TinyNeRF(cfg.n_freqs, cfg.hidden, cfg.layers)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    # decay 10x over the run: large steps find the shape, small ones the texture
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, 0.1 ** (1.0 / cfg.steps))
    box = scene_box(capture, cfg.box_margin)
    bg = torch.tensor(capture.background, dtype=torch.float32)
    origins, dirs, colours = _training_rays(capture)
    hist = NeRFHistory()
    spent = 0.0
    bar = tqdm(range(1, cfg.steps + 1), desc="NeRF", disable=not progress)
    for step in bar:
        start = time.perf_counter()
        pick = torch.randint(len(origins), (cfg.batch_rays,), generator=gen)
        pred = render_rays(
            model,
            origins[pick],
            dirs[pick],
            box,
            cfg.n_samples,
            perturb=True,
            background=bg,
            generator=gen,
        )
        loss = ((pred - colours[pick]) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        loss = loss.detach()
        opt.step()
        sched.step()
        spent += time.perf_counter() - start
        out_of_time = time_budget is not None and spent >= time_budget
        if (eval_every and step % eval_every == 0) or step == cfg.steps or out_of_time:
            model.eval()
            hist.steps.append(step)
            hist.seconds.append(spent)
            hist.train_loss.append(loss.item())
            hist.test_psnr.append(
                evaluate_nerf(model, capture, n_samples=cfg.render_samples, box=box)
            )
            model.train()
            bar.set_postfix(test_psnr=f"{hist.test_psnr[-1]:.2f}")
        if out_of_time:
            break
    bar.close()
    return model, hist
