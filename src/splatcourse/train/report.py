"""How a fit went, for people: a table, SSIM-against-time plot, side-by-side PNGs.

Used by: lesson 5 and the capture-fit bench.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

__all__ = ["plot_ssim_vs_time", "save_side_by_side", "summary_table"]


def summary_table(
    rows: list[dict[str, Any]],
    columns: tuple[str, ...] = ("step", "seconds", "gaussians", "ssim_heldout", "psnr_heldout"),
) -> str:
    """A Markdown table of the rows (e.g. the evaluated entries of a fit's history)."""

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4f}" if abs(v) < 10 else f"{v:.1f}"
        return str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)


def plot_ssim_vs_time(
    history: list[dict[str, Any]],
    ax=None,
    label: str | None = None,
    target: float | None = None,
    path: str | Path | None = None,
    clock: str = "seconds",
    key: str = "ssim_heldout",
):
    """Held-out SSIM against training time (``clock``: "seconds" wall, "cpu_seconds";
    ``key``: "ssim_heldout" full frame, "ssim_object" the object metric)."""
    import matplotlib.pyplot as plt

    pts = [(h[clock], h[key]) for h in history if key in h]
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    if pts:
        t, s = zip(*pts)
        ax.plot(t, s, marker="o", label=label)
    if target is not None:
        ax.axhline(target, color="grey", ls="--", lw=1, label=f"target {target}")
    ax.set_xlabel("training wall time (s)" if clock == "seconds" else "training CPU time (s)")
    ax.set_ylabel("held-out SSIM" if key == "ssim_heldout" else f"held-out {key}")
    ax.set_title("Held-out SSIM during training")
    ax.grid(alpha=0.3)
    if label is not None or target is not None:
        ax.legend()
    if path is not None:
        ax.figure.figure.savefig(path, dpi=120, bbox_inches="tight")  # the root, not a subfigure
    return ax


def _to_uint8(img: torch.Tensor) -> np.ndarray:
    return (img.detach().cpu().clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)


def save_side_by_side(
    photos: torch.Tensor, renders: torch.Tensor, folder: str | Path, names: list[str] | None = None
) -> list[Path]:
    """One PNG per view: photo on the left, render on the right. Returns the paths."""
    if photos.shape != renders.shape:
        raise ValueError(f"photos {tuple(photos.shape)} and renders {tuple(renders.shape)} differ")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for j in range(len(photos)):
        pair = np.concatenate([_to_uint8(photos[j]), _to_uint8(renders[j])], axis=1)
        name = names[j] if names is not None else f"view_{j:03d}"
        p = folder / f"{Path(name).stem}_photo_vs_render.png"
        Image.fromarray(pair).save(p)
        paths.append(p)
    return paths
