"""The clone-or-split decision of 3DGS density control, as a function you can swap.

gsplat's ``DefaultStrategy`` makes the decision inside ``_grow_gs``; here it is a plain
function of the accumulated statistics, and ``DecisionStrategy`` calls whichever function it
is given (the course's reference or a student's) and then clones/splits with gsplat's ops.

Used by: lesson 5 and exercise 4 (the densify rule students write).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from gsplat.strategy.ops import duplicate, split
from torch import Tensor

from ..splat3d import ResettingDefaultStrategy

__all__ = ["DecisionStrategy", "densify_masks"]


def densify_masks(
    grad2d: Tensor,
    count: Tensor,
    log_scales: Tensor,
    scene_scale: float,
    grow_grad2d: float = 2e-4,
    grow_scale3d: float = 0.01,
) -> tuple[Tensor, Tensor]:
    """(clone, split) boolean masks [N] from the 3DGS rule.

    A Gaussian grows when its *average* screen-space gradient norm (``grad2d / count``, over
    the views that saw it) exceeds ``grow_grad2d``. Small ones (largest axis at most
    ``grow_scale3d * scene_scale``) are cloned; large ones are split.
    """
    avg = grad2d / count.clamp_min(1)
    high = avg > grow_grad2d
    small = torch.exp(log_scales).max(dim=-1).values <= grow_scale3d * scene_scale
    return high & small, high & ~small


DecisionFn = Callable[..., tuple[Tensor, Tensor]]


class DecisionStrategy(ResettingDefaultStrategy):
    """``DefaultStrategy`` whose clone/split choice is ``decide(grad2d, count, log_scales,
    scene_scale, grow_grad2d, grow_scale3d)``."""

    decide: DecisionFn = staticmethod(densify_masks)

    @torch.no_grad()
    def _grow_gs(self, params, optimizers, state, step):
        clone, to_split = self.decide(
            state["grad2d"],
            state["count"],
            params["scales"],
            state["scene_scale"],
            self.grow_grad2d,
            self.grow_scale3d,
        )
        n = len(state["grad2d"])
        for name, m in (("clone", clone), ("split", to_split)):
            if not (torch.is_tensor(m) and m.dtype == torch.bool and m.shape == (n,)):
                raise ValueError(
                    f"densify decision: {name} must be a bool tensor of shape "
                    f"[{n}], got {getattr(m, 'dtype', type(m))} "
                    f"{tuple(getattr(m, 'shape', ()))}"
                )
        n_clone = int(clone.sum())
        if n_clone:
            duplicate(params=params, optimizers=optimizers, state=state, mask=clone)
        to_split = torch.cat([to_split, to_split.new_zeros(n_clone)])
        n_split = int(to_split.sum())
        if n_split:
            split(
                params=params,
                optimizers=optimizers,
                state=state,
                mask=to_split,
                revised_opacity=self.revised_opacity,
            )
        return n_clone, n_split
