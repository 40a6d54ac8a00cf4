"""A small trained model of the axe, made once by the course's own trainer and cached.

Exercise 3's students write a whole renderer; its hidden test draws a *real* trained scene
with it, from the capture's held-out cameras, and compares the pictures with the course
rasterizer's. The model is built reproducibly (fixed recipe, seed and one torch thread) from
the capture, once per machine (``splatcourse renderer-model`` / ``make renderer-model``, or
the grader before its first submission), and cached under the ignored ``data/cache/``: never
per submission, never committed. The file also holds the held-out cameras, so drawing it needs
no capture loading.

Used by: exercise 3 (its real-scene test and picture), the CLI, bench/ex03_grading.py.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..capture import COURSE_CAPTURE
from ..paths import data_dir
from ..threads import one_torch_thread
from .config import TrainConfig
from .recipes import grading_capture
from .trainer import fit

__all__ = [
    "RENDERER_MODEL_NAME",
    "RENDERER_MODEL_RECIPE",
    "RENDERER_MODEL_WIDTH",
    "build_renderer_model",
    "load_renderer_model",
    "renderer_model_path",
]

RENDERER_MODEL_NAME = "axe_renderer_128"
#: Small enough for a dense pixels x Gaussians renderer (the student's) to draw a view in about
#: a second; big enough to be a recognisable axe.
RENDERER_MODEL_WIDTH = 128
#: The axe recipe compressed to 300 steps, from 1,500 of the SfM points, capped at 3,000
#: Gaussians, SH degree 1.
RENDERER_MODEL_RECIPE: dict[str, Any] = {
    "steps": 300,
    "sh_degree": 1,
    "sh_degree_interval": 75,
    "refine_start": 30,
    "refine_every": 25,
    "refine_stop": 200,
    "reset_every": 0,
    "grow_grad2d": 2e-4,
    "max_init_points": 1500,
    "max_gaussians": 3000,
    "seed": 0,
}


def renderer_model_path() -> Path:
    """``data/cache/models/axe_renderer_128.pt`` (ignored by git)."""
    return data_dir() / "cache" / "models" / f"{RENDERER_MODEL_NAME}.pt"


def build_renderer_model(force: bool = False, progress: bool = False) -> Path:
    """Train the model (unless cached and ``force`` is False) and write it atomically."""
    path = renderer_model_path()
    if path.is_file() and not force:
        return path
    cap = grading_capture(COURSE_CAPTURE, RENDERER_MODEL_WIDTH)  # the grader's split
    t0 = time.process_time()
    with one_torch_thread():  # the same model on every machine with the same torch
        result = fit(cap, TrainConfig(**RENDERER_MODEL_RECIPE), progress=progress)
    held_out = list(cap.test_idx)
    payload = {
        "name": RENDERER_MODEL_NAME,
        "recipe": dict(RENDERER_MODEL_RECIPE),
        "params": {k: v.detach().cpu().clone() for k, v in result.params.items()},
        "viewmats": cap.viewmats[held_out].cpu().clone(),  # [V, 4, 4]
        "Ks": cap.Ks[held_out].cpu().clone(),  # [V, 3, 3]
        "width": cap.width,
        "height": cap.height,
        "background": cap.background_tensor().cpu().clone(),  # [3]
        "build_cpu_seconds": round(time.process_time() - t0, 1),
        "summary": result.summary(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def load_renderer_model() -> dict[str, Any]:
    """The cached model: ``params`` (the trainer's raw parameters), the held-out ``viewmats``
    [V, 4, 4] and ``Ks`` [V, 3, 3], ``width``, ``height`` and ``background`` [3]."""
    path = renderer_model_path()
    if not path.is_file():
        raise FileNotFoundError(
            f"the trained axe model for exercise 3 is not built: {path} is missing. "
            "Build it once with `splatcourse renderer-model` (or `make renderer-model`); "
            "it needs the capture 'socketed_axe_arreton'."
        )
    out: dict[str, Any] = torch.load(path, weights_only=True)
    return out


def activated(params: dict[str, Tensor]) -> dict[str, Tensor]:
    """Renderer inputs from the trainer's raw parameters: means [N, 3], quats [N, 4],
    scales [N, 3] (exp), opacities [N] (sigmoid), sh [N, K, 3]."""
    return {
        "means": params["means"],
        "quats": params["quats"],
        "scales": torch.exp(params["scales"]),
        "opacities": torch.sigmoid(params["opacities"]),
        "sh": torch.cat([params["sh0"], params["shN"]], dim=1),
    }
