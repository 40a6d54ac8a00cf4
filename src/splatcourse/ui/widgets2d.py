"""Interactive widgets for the 2D lessons (lessons 1 and 2): touch the model before you fit it.

**`SplatExplorer`: what a splat is, by hand.**
Each Gaussian has a position, two widths, a rotation, a colour and an opacity. Move the sliders
and watch the render and its error against the target (MSE) change live. Trying to match the
target by hand shows what gradient descent does for you, one parameter at a time, and how
rotation plus two widths give the ellipse-shaped footprints of anisotropic splats.
Switch between the two ways of combining Gaussians:

- *sum*: every Gaussian adds its colour; overlaps get brighter (red + green make yellow) and
  depth does not matter at all;
- *depth-sorted alpha compositing*: Gaussians are sorted by depth and the nearer one covers the
  ones behind it, in proportion to its opacity. Drag a depth slider past another Gaussian's
  depth and the overlap changes colour: this is why real splatting sorts before it blends.

**`FitScrubber`: what a fit does over time.**
Replays a recorded fit (`fit_splats(..., record_every=k)`): slide or press play to see the render
at each recorded step next to the target, the per-pixel squared error (its mean is the MSE) on a
fixed colour scale, and the loss curve with a marker at the current step. Where the error
lingers shows what the Gaussians cannot yet explain.

Both are plain ipywidgets 8 (images are PNGs made with Pillow), so they work in JupyterLab 4
with no extra extension. Put the object last in a cell to display it; every control is also
a Python attribute, so code (and the tests) can drive it: `explorer.sliders["x"].value = 0.2`
re-renders exactly as dragging the slider does.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from typing import Any

import ipywidgets as widgets
import matplotlib
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import PowerNorm, to_hex, to_rgb
from matplotlib.figure import Figure
from PIL import Image as PILImage
from PIL import ImageDraw

from splatcourse.threads import one_torch_thread
from splatcourse.toy2d import FitResult, composite_2d, mse, pixel_grid, render_anisotropic

from .display import NotebookWidget, image_to_png, titled, to_pil, whole_zoom

Tensor = torch.Tensor

__all__ = ["FitScrubber", "Splat", "SplatExplorer", "image_to_png"]

# Images are shown about this many screen pixels wide, enlarged by a whole factor so each
# model pixel stays a crisp square.
DISPLAY_PIXELS = 256
MODES = {"sum": "sum", "depth-sorted alpha compositing": "composite"}
PALETTE = [
    "#e6194b",
    "#3cb44b",
    "#4363d8",
    "#f58231",
    "#911eb4",
    "#42d4f4",
    "#f032e6",
    "#bfef45",
    "#ffe119",
    "#469990",
]


def _figure_rgb(fig: Figure) -> np.ndarray:
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


# --------------------------------------------------------------------------------------------
# Splat explorer
# --------------------------------------------------------------------------------------------


@dataclass
class Splat:
    """One hand-placed 2D Gaussian, in the units the sliders show.

    x, y in [0, 1] across the image; scale_x, scale_y are the standard deviations along the
    Gaussian's own axes (same units); angle in degrees; depth only matters when compositing
    (smaller is nearer).
    """

    x: float = 0.5
    y: float = 0.5
    scale_x: float = 0.12
    scale_y: float = 0.12
    angle: float = 0.0
    opacity: float = 0.8
    colour: str = "#e6194b"
    depth: float = 0.5


# name -> (min, max, step, label); every slider edits the Splat field of the same name.
SLIDERS: dict[str, tuple[float, float, float, str]] = {
    "x": (0.0, 1.0, 0.01, "x"),
    "y": (0.0, 1.0, 0.01, "y"),
    "scale_x": (0.01, 0.5, 0.005, "width ↔"),
    "scale_y": (0.01, 0.5, 0.005, "width ↕"),
    "angle": (0.0, 180.0, 1.0, "angle °"),
    "opacity": (0.0, 1.0, 0.01, "opacity"),
    "depth": (0.0, 1.0, 0.01, "depth"),
}


def _as_rgb_target(target: Tensor) -> Tensor:
    if not isinstance(target, torch.Tensor):
        raise TypeError(
            f"SplatExplorer: target must be a torch.Tensor, got {type(target).__name__}"
        )
    if target.dim() == 2:
        target = target[..., None]
    if target.dim() != 3 or target.shape[2] not in (1, 3):
        raise ValueError(
            "SplatExplorer: target must be [H, W] grey or [H, W, 3] colour, "
            f"got shape {tuple(target.shape)}"
        )
    return target.detach().float().expand(-1, -1, 3).clone()


class SplatExplorer(NotebookWidget):
    """A live 2D splat explorer: place Gaussians by hand and watch the render and MSE.

    target: optional [H, W] or [H, W, 3] image in [0, 1] to match (a grey target is compared
    as grey RGB, so matching it needs grey colours); its size wins over `size`.
    n: how many Gaussians to start with; seed: their (deterministic) placement.

    State, all plain attributes: `splats` (list of Splat), `active` (index being edited),
    `mode` ("sum" or "composite"), `image` (the shown render, [H, W, 3] clipped to [0, 1]),
    `mse` (float, or None without a target), `widget` (the ipywidgets container).
    Controls: `selector`, `sliders[name]` (see SLIDERS), `colour_picker`, `add_button`,
    `remove_button`, `mode_toggle`, `outline_toggle`; views `render_view`, `target_view`,
    `mse_label`.
    """

    def __init__(self, target: Tensor | None = None, n: int = 3, size: int = 96, seed: int = 0):
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"SplatExplorer: n must be a whole number >= 1, got {n!r}")
        self.target = None if target is None else _as_rgb_target(target)
        if self.target is None:
            if not isinstance(size, int) or size < 4:
                raise ValueError(f"SplatExplorer: size must be a whole number >= 4, got {size!r}")
            height = width = size
        else:
            height, width = self.target.shape[:2]
        self.grid = pixel_grid(height, width)
        self.zoom = whole_zoom(max(height, width), DISPLAY_PIXELS)
        self._rng = random.Random(seed)
        self.splats: list[Splat] = [self._new_splat(i, n) for i in range(n)]
        self.active = 0
        self.mode = "sum"
        self.image: Tensor = torch.zeros(height, width, 3)
        self.mse: float | None = None
        self.render_count = 0
        self._syncing = False
        self._build_controls()
        self._sync_controls()
        self.refresh()

    # -- model ------------------------------------------------------------------------------

    def _new_splat(self, index: int, n: int) -> Splat:
        """Spread-out, clearly visible Gaussians, the same ones for the same seed."""
        rng = self._rng
        width = 0.25 / math.sqrt(n)
        return Splat(
            x=round(rng.uniform(0.2, 0.8), 2),
            y=round(rng.uniform(0.2, 0.8), 2),
            scale_x=round(width * rng.uniform(0.8, 1.3), 3),
            scale_y=round(width * rng.uniform(0.5, 1.0), 3),
            angle=float(rng.randrange(0, 180)),
            opacity=0.8,
            colour=PALETTE[index % len(PALETTE)],
            depth=round(rng.uniform(0.1, 0.9), 2),
        )

    def params(self) -> dict[str, Tensor]:
        """The splats as the tensors toy2d's renderers take."""
        s = self.splats
        return {
            "means": torch.tensor([[p.x, p.y] for p in s], dtype=torch.float32),
            "log_scales": torch.tensor([[p.scale_x, p.scale_y] for p in s]).clamp(min=1e-4).log(),
            "angles": torch.tensor([math.radians(p.angle) for p in s], dtype=torch.float32),
            "colours": torch.tensor([to_rgb(p.colour) for p in s], dtype=torch.float32),
            "opacities": torch.tensor([p.opacity for p in s], dtype=torch.float32),
            "depths": torch.tensor([p.depth for p in s], dtype=torch.float32),
        }

    def render(self) -> Tensor:
        """Render the current splats in the current mode, [H, W, 3] clipped to [0, 1]."""
        p = self.params()
        with torch.no_grad(), one_torch_thread():
            if self.mode == "sum":
                weights = p["colours"] * p["opacities"][:, None]
                image = render_anisotropic(
                    p["means"], p["log_scales"], p["angles"], weights, self.grid
                )
            else:
                image, _ = composite_2d(
                    p["means"],
                    p["log_scales"],
                    p["angles"],
                    p["colours"],
                    p["opacities"],
                    p["depths"],
                    self.grid,
                )
        return image.clamp(0.0, 1.0)

    def refresh(self) -> None:
        """Re-render, recompute the MSE and update the views (every control calls this)."""
        with one_torch_thread():
            self.image = self.render()
            self.mse = None if self.target is None else mse(self.image, self.target)
        pil = to_pil(self.image, self.zoom)
        if self.outline_toggle.value:
            self._draw_outline(pil, self.splats[self.active])
        self.render_view.value = image_to_png(pil)
        if self.mse is None:
            self.mse_label.value = "MSE: <i>no target given</i>"
        else:
            self.mse_label.value = f"MSE vs target: <b>{self.mse:.6f}</b>"
        self.render_count += 1

    def _draw_outline(self, pil: PILImage.Image, splat: Splat) -> None:
        """The 2-sigma ellipse of the Gaussian being edited, so you can see which one it is."""
        sx, sy = pil.width, pil.height
        c, s = math.cos(math.radians(splat.angle)), math.sin(math.radians(splat.angle))
        points = []
        for k in range(48):
            t = 2 * math.pi * k / 48
            u, v = 2 * splat.scale_x * math.cos(t), 2 * splat.scale_y * math.sin(t)
            points.append(((splat.x + c * u - s * v) * sx, (splat.y + s * u + c * v) * sy))
        draw = ImageDraw.Draw(pil)
        draw.line(points + points[:1], fill=(0, 0, 0), width=3)
        draw.line(points + points[:1], fill=(255, 255, 255), width=1)

    # -- editing from code ------------------------------------------------------------------

    def add(self, splat: Splat | None = None) -> None:
        """Add a Gaussian (a fresh one if none given) and make it the active one."""
        if splat is None:
            splat = self._new_splat(len(self.splats), len(self.splats) + 1)
        self.splats.append(replace(splat))
        self.active = len(self.splats) - 1
        self._sync_controls()
        self.refresh()

    def remove(self, index: int | None = None) -> None:
        """Remove a Gaussian (the active one by default); at least one always stays."""
        index = self.active if index is None else index
        if not 0 <= index < len(self.splats):
            raise IndexError(
                f"SplatExplorer.remove: no Gaussian {index} (there are {len(self.splats)})"
            )
        if len(self.splats) == 1:
            raise ValueError("SplatExplorer.remove: the last Gaussian cannot be removed")
        del self.splats[index]
        self.active = min(self.active, len(self.splats) - 1)
        self._sync_controls()
        self.refresh()

    # -- controls ---------------------------------------------------------------------------

    def _build_controls(self) -> None:
        style = {"description_width": "70px"}
        self.selector = widgets.Dropdown(description="Gaussian", style=style)
        self.sliders: dict[str, widgets.FloatSlider] = {
            name: widgets.FloatSlider(
                min=lo,
                max=hi,
                step=step,
                description=label,
                readout_format=".2f" if step < 1 else ".0f",
                style=style,
            )
            for name, (lo, hi, step, label) in SLIDERS.items()
        }
        self.colour_picker = widgets.ColorPicker(description="colour", concise=False, style=style)
        self.add_button = widgets.Button(description="add Gaussian", icon="plus")
        self.remove_button = widgets.Button(description="remove it", icon="trash")
        self.mode_toggle = widgets.ToggleButtons(
            options=list(MODES.items()),
            value="sum",
            description="combine by",
            style={**style, "button_width": "auto"},
        )
        self.outline_toggle = widgets.Checkbox(value=True, description="outline active")
        self.render_view = widgets.Image(format="png")
        self.target_view = widgets.Image(format="png")
        self.mse_label = widgets.HTML()

        self.selector.observe(self._on_select, names="value")
        for name, slider in self.sliders.items():
            slider.observe(
                lambda change, name=name: self._on_field(name, change["new"]), names="value"
            )
        self.colour_picker.observe(
            lambda change: self._on_field("colour", change["new"]), names="value"
        )
        self.add_button.on_click(lambda _button: self.add())
        self.remove_button.on_click(lambda _button: self.remove())
        self.mode_toggle.observe(self._on_mode, names="value")
        self.outline_toggle.observe(lambda _change: self.refresh(), names="value")

        views = [titled("Your splats", self.render_view)]
        if self.target is not None:
            self.target_view.value = image_to_png(self.target, self.zoom)
            views.append(titled("Target", self.target_view))
        hint = widgets.HTML(
            "<small><i>sum</i>: overlaps add up and depth is ignored. "
            "<i>compositing</i>: the nearest (smallest depth) covers what is behind it.</small>"
        )
        controls = widgets.VBox(
            [
                self.selector,
                widgets.HBox([self.add_button, self.remove_button]),
                *self.sliders.values(),
                self.colour_picker,
                self.outline_toggle,
            ]
        )
        left = widgets.VBox([widgets.HBox(views), self.mse_label, self.mode_toggle, hint])
        self.widget = widgets.HBox([left, controls])

    def _sync_controls(self) -> None:
        """Point every control at the active Gaussian without triggering re-renders."""
        self._syncing = True
        try:
            self.selector.options = [(f"{i}", i) for i in range(len(self.splats))]
            self.selector.value = self.active
            splat = self.splats[self.active]
            for name, slider in self.sliders.items():
                slider.value = getattr(splat, name)
            self.colour_picker.value = splat.colour
            self.remove_button.disabled = len(self.splats) == 1
            self.sliders["depth"].disabled = self.mode == "sum"
        finally:
            self._syncing = False

    def _on_select(self, change: dict[str, Any]) -> None:
        if self._syncing or change["new"] is None:
            return
        self.active = int(change["new"])
        self._sync_controls()
        self.refresh()  # only the outline moves; the render itself is unchanged

    def _on_field(self, name: str, value: Any) -> None:
        if self._syncing:
            return
        if name == "colour":
            value = to_hex(to_rgb(value))  # accepts CSS names too; fails loudly on nonsense
        setattr(self.splats[self.active], name, value)
        self.refresh()

    def _on_mode(self, change: dict[str, Any]) -> None:
        self.mode = change["new"]
        self.sliders["depth"].disabled = self.mode == "sum"
        self.refresh()


# --------------------------------------------------------------------------------------------
# Fit scrubber
# --------------------------------------------------------------------------------------------


class FitScrubber(NotebookWidget):
    """Scrub through a recorded fit: render, target, error map and loss curve at each step.

    result: a FitResult from `fit_splats(..., record_every=k)` (k > 0, so it has snapshots);
    target: the image that fit was fitted to.

    State: `index` (snapshot shown), `step` (its training step), `image` (its render),
    `error` (per-pixel squared error, [H, W]), `marker` ((step, loss) on the curve) and
    `marker_xy` (the marker's pixel position in the loss image). Controls: `slider`, `play`
    (linked to it); views `render_view`, `target_view`, `error_view`, `loss_view`,
    `info_label`; `widget` is the whole thing.
    """

    def __init__(self, result: FitResult, target: Tensor):
        if not isinstance(result, FitResult):
            raise TypeError(f"FitScrubber: result must be a FitResult, got {type(result).__name__}")
        if not result.snapshots:
            raise ValueError(
                "FitScrubber: the fit has no snapshots; run fit_splats with "
                "record_every > 0 (e.g. record_every=10)"
            )
        shape = tuple(result.snapshots[0][1].shape)
        if tuple(target.shape) != shape:
            raise ValueError(
                f"FitScrubber: target shape {tuple(target.shape)} does not match "
                f"the fit's renders {shape}"
            )
        self.result = result
        self.target = target.detach().float()
        self.steps = [step for step, _ in result.snapshots]
        self.zoom = whole_zoom(max(shape[0], shape[1]), DISPLAY_PIXELS)
        errors = torch.stack([self._error(img) for _, img in result.snapshots])
        # one colour scale for every step, so colours can be compared while scrubbing; set by
        # the last three quarters of the fit (the first renders are so far off that their
        # error would squash everything after into black; they saturate instead), and a
        # square-root scale so small late errors stay visible
        self.error_max = max(float(errors[len(errors) // 4 :].max()), 1e-12)
        self.error_norm = PowerNorm(0.5, 0.0, self.error_max)
        self.cmap = matplotlib.colormaps["magma"]
        self._loss_base, self._marker_pixels, self._axes_rows = self._draw_loss_curve()

        n = len(self.steps)
        self.slider = widgets.IntSlider(
            value=0, min=0, max=n - 1, description="snapshot", continuous_update=True
        )
        self.play = widgets.Play(value=0, min=0, max=n - 1, interval=300, description="play")
        self._link = widgets.link((self.play, "value"), (self.slider, "value"))
        self.render_view = widgets.Image(format="png")
        self.target_view = widgets.Image(format="png", value=image_to_png(self.target, self.zoom))
        self.error_view = widgets.Image(format="png")
        self.colourbar_view = widgets.Image(format="png", value=self._draw_colourbar())
        self.loss_view = widgets.Image(format="png")
        self.info_label = widgets.HTML()
        self.slider.observe(lambda change: self._refresh(change["new"]), names="value")

        panels = widgets.HBox(
            [
                titled("Fit at this step", self.render_view),
                titled("Target", self.target_view),
                titled("Squared error per pixel", self.error_view, self.colourbar_view),
            ]
        )
        self.widget = widgets.VBox(
            [widgets.HBox([self.play, self.slider, self.info_label]), panels, self.loss_view]
        )
        self._refresh(0)

    @classmethod
    def from_fit(
        cls, target: Tensor, n_gaussians: int, record_every: int = 10, **fit_kwargs: Any
    ) -> FitScrubber:
        """Run `fit_splats` with snapshots and return a scrubber over it."""
        from splatcourse.toy2d import fit_splats

        result = fit_splats(target, n_gaussians, record_every=record_every, **fit_kwargs)
        return cls(result, target)

    def _error(self, image: Tensor) -> Tensor:
        err = (image.detach().float() - self.target) ** 2
        return err.mean(-1) if err.dim() == 3 else err

    def _draw_loss_curve(
        self,
    ) -> tuple[PILImage.Image, list[tuple[float, float]], tuple[float, float]]:
        """Draw the curve once; each step only paints its marker on a copy (fast scrubbing)."""
        losses = self.result.losses
        fig = Figure(figsize=(7.0, 2.6), dpi=100)
        ax = fig.add_subplot()
        ax.plot(range(len(losses)), losses, color="tab:blue", lw=1.5, label="training loss")
        if min(losses) > 0:
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("MSE" + (" (log scale)" if min(losses) > 0 else ""))
        ax.set_title("Loss per step (red: the step shown)")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        rgb = _figure_rgb(fig)
        height = rgb.shape[0]
        # where each snapshot's (step, loss) lands in the image, in pixel (x, row) coordinates
        xy = ax.transData.transform([(s, losses[s]) for s in self.steps])
        pixels = [(float(x), float(height - y)) for x, y in xy]
        box = ax.get_window_extent()
        return PILImage.fromarray(rgb), pixels, (height - box.y1, height - box.y0)

    def _draw_colourbar(self) -> bytes:
        fig = Figure(figsize=(2.8, 0.8), dpi=100)
        ax = fig.add_axes((0.06, 0.62, 0.88, 0.25))
        mappable = ScalarMappable(self.error_norm, self.cmap)
        bar = fig.colorbar(mappable, cax=ax, orientation="horizontal")
        bar.set_label("squared error (square-root scale)", fontsize=7)
        bar.ax.tick_params(labelsize=7)
        bar.ax.xaxis.get_offset_text().set_fontsize(7)
        return image_to_png(_figure_rgb(fig))

    def show(self, index: int) -> None:
        """Show snapshot `index` (0 = the start, -1 = the end), moving the slider too."""
        n = len(self.steps)
        if not -n <= index < n:
            raise IndexError(
                f"FitScrubber.show: snapshot {index} out of range, "
                f"the fit has {n} snapshots (0..{n - 1})"
            )
        index %= n
        if self.slider.value == index:
            self._refresh(index)
        else:
            self.slider.value = index  # the observer re-renders

    def _refresh(self, index: int) -> None:
        self.index = index
        self.step, self.image = self.result.snapshots[index]
        with one_torch_thread():
            self.error = self._error(self.image)
        loss = self.result.losses[self.step]
        self.marker = (self.step, loss)
        self.marker_xy = self._marker_pixels[index]

        self.render_view.value = image_to_png(self.image, self.zoom)
        coloured = self.cmap(self.error_norm(self.error.numpy()), bytes=True)
        self.error_view.value = image_to_png(coloured[..., :3], self.zoom)

        curve = self._loss_base.copy()
        draw = ImageDraw.Draw(curve)
        x, y = self.marker_xy
        top, bottom = self._axes_rows
        draw.line([(x, top), (x, bottom)], fill=(220, 40, 40), width=1)
        draw.ellipse([x - 5, y - 5, x + 5, y + 5], fill=(220, 40, 40), outline=(0, 0, 0))
        self.loss_view.value = image_to_png(curve)
        self.info_label.value = (
            f"step <b>{self.step}</b> of {self.steps[-1]} · MSE <b>{loss:.6f}</b>"
        )
