"""gsplat's densification strategy on top of our rasterizer, with its opacity reset repaired.

``gsplat.strategy.DefaultStrategy`` (clone, split, prune, reset) is plain PyTorch and runs on
the CPU; it only needs ``info["means2d"]`` (with a gradient), ``radii``, ``width``,
``height``, ``n_cameras`` and ``gaussian_ids``, all of which our ``rasterization`` returns.

One bug in gsplat 1.5.3: the periodic opacity reset is guarded by

    if step % self.reset_every == 0 & step > 0:

``&`` binds tighter than ``==`` and ``>``, so Python reads a chained comparison
``step % reset_every == (0 & step) > 0``, i.e. ``... and 0 > 0``: never true. The reset (which
lets training get rid of floaters) silently never happens. ``ResettingDefaultStrategy`` adds
it back with the intended condition.

Used by: lesson 5 and exercise 4 (density control in every fit).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gsplat.strategy import DefaultStrategy
from gsplat.strategy.ops import reset_opa

__all__ = ["ResettingDefaultStrategy", "make_strategy"]


def _reset_condition_is_buggy(step: int = 3000, reset_every: int = 3000) -> bool:
    """True when gsplat's expression misses a reset that should happen (it always does)."""
    intended = step % reset_every == 0 and step > 0
    as_written = step % reset_every == 0 & step > 0
    return intended and not as_written


@dataclass
class ResettingDefaultStrategy(DefaultStrategy):
    """``DefaultStrategy`` whose opacity reset fires every ``reset_every`` steps, and whose
    pruning of huge Gaussians does not depend on the reset being on.

    gsplat prunes Gaussians larger than ``prune_scale3d`` x the scene scale only once
    ``step > reset_every``, i.e. after the first opacity reset. A short CPU schedule turns
    resets off (``reset_every`` far beyond the last step), which silently turned that pruning off
    too. ``prune_huge_after`` says when huge Gaussians start being pruned; ``None`` keeps
    gsplat's rule (after the first reset).

    ``packed`` defaults to ``info["packed"]`` so the same loop works with our unpacked
    PyTorch rasterizer and with gsplat's packed CUDA one.
    """

    prune_huge_after: int | None = None

    def step_post_backward(
        self,
        params,
        optimizers,
        state: dict[str, Any],
        step: int,
        info: dict[str, Any],
        packed: bool | None = None,
    ):
        if packed is None:
            packed = bool(info.get("packed", False))
        super().step_post_backward(params, optimizers, state, step, info, packed=packed)
        if step < self.refine_stop_iter and step > 0 and step % self.reset_every == 0:
            # Idempotent, so harmless should a future gsplat also reset here.
            reset_opa(params=params, optimizers=optimizers, state=state, value=self.prune_opa * 2.0)

    def _prune_gs(self, params, optimizers, state, step):
        # gsplat's _prune_gs tests `step > self.reset_every` before pruning huge Gaussians;
        # answer that test with prune_huge_after, for the duration of the call only.
        if self.prune_huge_after is None:
            return super()._prune_gs(params, optimizers, state, step)
        reset_every, self.reset_every = self.reset_every, self.prune_huge_after
        try:
            return super()._prune_gs(params, optimizers, state, step)
        finally:
            self.reset_every = reset_every


def make_strategy(**kwargs) -> ResettingDefaultStrategy:
    """A 3DGS densification strategy (gsplat's defaults, any field overridable by keyword)."""
    if kwargs.get("absgrad"):
        from .backend import resolve_backend

        if resolve_backend() != "gsplat":
            raise ValueError(
                "make_strategy: absgrad=True needs the gsplat backend; the CPU rasterizers "
                "do not compute absolute gradients"
            )
    return ResettingDefaultStrategy(**kwargs)
