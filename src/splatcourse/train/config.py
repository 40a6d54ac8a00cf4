"""The training recipe as one dataclass, so a fit is described by a handful of numbers.

Defaults follow the 3D Gaussian Splatting paper (Kerbl et al. 2023) and gsplat's
``simple_trainer.py``, with the step counts shrunk for a CPU: the paper trains 30,000 steps
and densifies from step 500 to 15,000; on a laptop we train a few thousand steps, so every
schedule is expressed relative to ``steps`` unless set explicitly.

Where the schedules differ from the paper's, and why (a short CPU fit has fewer steps to
spend, so each event comes relatively sooner and more often):

| schedule | here | the paper (30k steps) |
|---|---|---|
| densification starts | steps / 20 | step 500 = steps / 60 |
| refine (clone, split, prune) every | steps / 60 (at least 10) | 100 = steps / 300 |
| densification stops | steps / 2 | 15,000 = steps / 2 |
| opacity reset every | steps / 5 | 3,000 = steps / 10 |
| one more SH band every | steps / 6 | 1,000 = steps / 30 |

The grow threshold ``grow_grad2d`` is the paper's 2e-4, but the statistic it is compared with
is not quite the paper's: training renders the views cropped to the object's mask
(``train.trainer.train_view_capture``). The loss is a mean over the crop's pixels, so each
pixel weighs more than in the full frame, and gsplat's normalisation of the 2D gradient
(times width / 2 and height / 2 of the rendered image) multiplies by the crop's smaller sides,
which undoes only part of that. Net, the statistic grows by roughly the ratio of the full
frame's side to the crop's, so a cropped fit densifies more eagerly than a full-frame fit
with the same threshold.

Used by: lesson 5 (the recipe it explains) and exercise 4.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any


@dataclass
class TrainConfig:
    """Everything that decides what a fit does (learning rates, schedules, densification)."""

    steps: int = 3000
    seed: int = 0

    # --- initialisation -------------------------------------------------------------------
    init_opacity: float = 0.1
    init_scale: float = 1.0  # x the RMS distance to the 3 nearest neighbours
    # without SfM points: "auto" makes them (visual hull with masks, else triangulation;
    # see model.initial_points), "random" scatters init_random_points in the object's box
    init_points: str = "auto"
    init_random_points: int = 5000  # used by init_points="random" (or when "auto" fails)
    max_init_points: int | None = None  # subsample SfM points (None keeps all)

    # --- appearance -----------------------------------------------------------------------
    sh_degree: int = 3
    sh_degree_interval: int | None = None  # steps per SH band; None -> steps // 6

    # --- learning rates (3DGS paper; means' is multiplied by the scene scale) ---------------
    lr_means: float = 1.6e-4
    lr_means_final: float = 1.6e-6  # exponential decay to this by the last step
    lr_scales: float = 5e-3
    lr_quats: float = 1e-3
    lr_opacities: float = 5e-2
    lr_sh0: float = 2.5e-3
    lr_shN: float = 2.5e-3 / 20

    # --- loss -------------------------------------------------------------------------------
    ssim_lambda: float = 0.2  # loss = (1 - l) * L1 + l * (1 - SSIM)
    mask_lambda: float = 0.0  # optional L1 between rendered alpha and the object mask
    random_background: bool = False  # composite the target over a random colour each step

    # --- densification (gsplat DefaultStrategy fields; None -> scaled from steps) -----------
    densify: bool = True
    refine_start: int | None = None  # None -> steps // 20
    refine_stop: int | None = None  # None -> steps // 2
    refine_every: int | None = None  # None -> max(steps // 60, 10)
    # Opacity reset: every Gaussian's opacity drops to 2 x prune_opa so that floaters the
    # optimiser no longer needs fade and get pruned; the fit then needs time to recover, which
    # a short CPU schedule may not have (0 disables it; huge Gaussians are pruned either way).
    reset_every: int | None = None  # None -> steps // 5
    grow_grad2d: float = 2e-4
    grow_scale3d: float = 0.01
    prune_opa: float = 0.005
    prune_scale3d: float = 0.1
    max_gaussians: int | None = None  # stop growing beyond this many (a CPU safety valve)

    # --- bookkeeping --------------------------------------------------------------------------
    eval_every: int | None = None  # held-out evaluation every N steps (None: only at the end)
    checkpoint_every: int | None = None  # with a checkpoint_dir; None -> steps // 10

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"TrainConfig.steps must be positive, got {self.steps}")
        if not 0 <= self.sh_degree <= 3:
            raise ValueError(f"TrainConfig.sh_degree must be in 0..3, got {self.sh_degree}")
        if self.init_points not in ("auto", "random"):
            raise ValueError(
                f"TrainConfig.init_points must be 'auto' or 'random', got {self.init_points!r}"
            )
        if not 0.0 <= self.ssim_lambda <= 1.0:
            raise ValueError(f"TrainConfig.ssim_lambda must be in [0, 1], got {self.ssim_lambda}")

    # Resolved schedules ---------------------------------------------------------------------
    @property
    def sh_interval(self) -> int:
        return self.sh_degree_interval or max(self.steps // 6, 1)

    @property
    def refine_start_step(self) -> int:
        return self.refine_start if self.refine_start is not None else max(self.steps // 20, 1)

    @property
    def refine_stop_step(self) -> int:
        return self.refine_stop if self.refine_stop is not None else self.steps // 2

    @property
    def refine_every_steps(self) -> int:
        return self.refine_every or max(self.steps // 60, 10)

    @property
    def reset_every_steps(self) -> int:
        if self.reset_every is not None:
            return self.reset_every if self.reset_every > 0 else 10**12
        return max(self.steps // 5, 1)

    @property
    def prune_huge_after_step(self) -> int | None:
        """When Gaussians larger than ``prune_scale3d`` x the scene scale start being pruned:
        after the first opacity reset (gsplat's rule, ``None``), or, with resets off, from the
        first refinement, so that the pruning lesson 5 teaches runs on every schedule."""
        return self.refine_start_step if self.reset_every == 0 else None

    @property
    def checkpoint_every_steps(self) -> int:
        return self.checkpoint_every or max(self.steps // 10, 1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"TrainConfig: unknown fields {sorted(unknown)}")
        return cls(**d)

    def updated(self, **changes: Any) -> TrainConfig:
        return replace(self, **changes)
