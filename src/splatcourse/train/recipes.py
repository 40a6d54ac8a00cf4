"""The course's training recipes for the real capture, and the grader's own fit of it.

One place for the numbers that lesson 5, exercise 4 and ``bench/capture_fit.py`` share:

* ``AXE_RECIPE``: the student's full fit of the socketed axe at 256x170 (3,000 steps, about
  90 s wall on two cores with the compiled rasterizer): SH degree 1, densification in the
  first 600 steps, a random background, no opacity reset (on a schedule this short a reset
  costs more recovery steps than it saves; lesson 5 measures it).
* ``GRADING_RECIPE``: the grader's short fit of the same capture with the student's loss and
  densification rule, small enough to run inside one graded submission (about 25 CPU-seconds
  on one thread). It separates answers that wreck the reconstruction from honest ones; rules
  that are wrong but still reconstruct pass it and lose only their own test cells.

``grading_fit`` is that short fit. It owns the split: it loads the capture itself, holds out
every ``HELD_OUT_EVERY``-th view by its own rule (whatever a notebook did to the capture module's
defaults), trains only on the other views and scores the held-out ones with the course's
object metric. A student's own choices (another split, training on every photo, another seed)
therefore cannot change what is measured: only their two functions go in.

Used by: lesson 5, exercise 4 (its hidden quality test), the capture-fit bench.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch

from ..capture import COURSE_CAPTURE, Capture, load_capture
from ..threads import one_torch_thread
from .config import TrainConfig
from .evaluate import EvalResult
from .trainer import fit

__all__ = [
    "AXE_RECIPE",
    "AXE_WIDTH",
    "GRADING_BAR",
    "GRADING_RECIPE",
    "HELD_OUT_EVERY",
    "QUICK_RECIPE",
    "grading_capture",
    "grading_fit",
]

#: Width the finale trains and is graded at (height follows the photos' aspect: 170).
AXE_WIDTH = 256
#: The grader's split: view i is held out when i % HELD_OUT_EVERY == 0 (the 3DGS convention).
HELD_OUT_EVERY = 8

#: The full CPU fit of the axe (lesson 5, exercise 4, the bench): densify in the first 600
#: steps, then refine what is there, over a random background each step so that nothing the
#: photos do not show survives. Measured at 3,000 steps with and without the random
#: background: no floater pixel against 0.4% of the object's area, object SSIM 0.912 against
#: 0.903, about 290 CPU-seconds each.
AXE_RECIPE: dict[str, Any] = {
    "steps": 3000,
    "sh_degree": 1,
    "sh_degree_interval": 300,
    "refine_start": 100,
    "refine_every": 100,
    "refine_stop": 600,
    "reset_every": 0,
    "grow_grad2d": 2e-4,
    "max_gaussians": 25_000,
    "random_background": True,
}
#: The grader's short fit: the axe recipe compressed to 200 steps, over the capture's own
#: background (the bar below was measured so).
GRADING_RECIPE: dict[str, Any] = {
    "steps": 200,
    "sh_degree": 1,
    "sh_degree_interval": 50,
    "refine_start": 20,
    "refine_every": 16,
    "refine_stop": 134,
    "reset_every": 0,
    "grow_grad2d": 2e-4,
    "max_gaussians": 25_000,
}
#: Exercise 4's quality bar on ``grading_fit``'s held-out object SSIM. Measured by
#: ``bench/ex04_grading.py``: the reference over five seeds scores 0.8509-0.8527 and four
#: honest answers written differently 0.8524, so the bar sits 0.011 (five seed spreads) below
#: them; a loss that rewards SSIM instead of 1 - SSIM scores 0.212. Rules that still reconstruct
#: (swapped loss weights 0.860, no densification 0.848, clone and split swapped 0.864) pass it.
GRADING_BAR = 0.84

#: A smoke-test recipe for the synthetic capture (seconds).
QUICK_RECIPE: dict[str, Any] = {
    "steps": 40,
    "sh_degree": 0,
    "refine_start": 10,
    "refine_every": 10,
    "refine_stop": 30,
    "reset_every": 0,
    "max_gaussians": 5000,
}


def grading_capture(name: str = COURSE_CAPTURE, width: int = AXE_WIDTH) -> Capture:
    """The capture as the grader sees it: the real one (never a substitute), its split fixed."""
    cap = load_capture(name, width=width, fallback=False, verbose=False)
    return dataclasses.replace(cap, test_every=HELD_OUT_EVERY)


def grading_fit(
    loss_fn: Callable[..., torch.Tensor] | None,
    densify_fn: Callable[..., tuple[torch.Tensor, torch.Tensor]] | None,
    seed: int = 0,
    capture: Capture | None = None,
    **overrides: Any,
) -> EvalResult:
    """Fit ``GRADING_RECIPE`` with these two functions and score the held-out views.

    Deterministic for a given seed on one machine (one torch thread, fixed view order), so
    two honest answers differ only through their floating-point rounding; the exercise's
    threshold comes from the spread of such answers and of seeds (``bench/ex04_grading.py``).
    ``None`` for a function means the course's reference (for the bench).
    """
    cap = capture if capture is not None else grading_capture()
    cfg = TrainConfig(**{**GRADING_RECIPE, "seed": seed, **overrides})
    with one_torch_thread():  # the result must not depend on the core count
        result = fit(cap, cfg, progress=False, loss_fn=loss_fn, densify_fn=densify_fn)
    assert result.eval is not None  # the grading capture always has held-out views
    return result.eval
