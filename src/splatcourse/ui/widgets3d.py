"""Interactive widgets for the 3D lessons (lesson 3: `GaussianExplorer3D`, lesson 4:
`SceneOrbiter`): turn a Gaussian, orbit a camera, watch the image.

**`GaussianExplorer3D`: one 3D Gaussian and its 2D footprint.**
Rotate the Gaussian (yaw, pitch, roll), stretch its three axes, and move the camera around it.
The view shows the render by the course's rasterizer with the 3-sigma ellipse of the projected
covariance ``J W Sigma W^T J^T + 0.3 I`` drawn on top, and the screen box the rasterizer
visits; a top view shows where the camera is. The numbers beside it (3D and 2D covariance,
footprint widths in pixels) are the ones lesson 3 derives. Switch off the 0.3 px low-pass and
shrink the Gaussian to see why it is there.

**`SceneOrbiter`: a small scene from any side.**
Orbit a scene and combine its Gaussians three ways: depth-sorted alpha compositing (the
correct rule), the same formula in the wrong order, or a plain sum. Lower the spherical-
harmonic degree to 0 to see which colour changes came from the view-dependent bands.

Both are plain ipywidgets 8 with PNG images made by Pillow, so they run in JupyterLab 4 with
no extension. Every control is a Python attribute: setting ``explorer.sliders["yaw"].value``
from code re-renders exactly as dragging does (the tests drive them that way).
"""

from __future__ import annotations

import math
import time
from typing import Any

import ipywidgets as widgets
import matplotlib
import numpy as np
import torch
from PIL import Image as PILImage
from PIL import ImageDraw

from splatcourse.splat3d import (
    Projection,
    compositing,
    covariance_from_quat_scale,
    project_gaussians,
    rasterization,
    rgb_to_sh,
)
from splatcourse.splat3d.scenes import (
    SH_DEGREE,
    Camera,
    GaussianScene,
    orbit_camera,
    quat_from_euler,
    sh_cloud,
)
from splatcourse.threads import one_torch_thread

from .display import NotebookWidget, image_to_png, titled, to_pil, whole_zoom

Tensor = torch.Tensor

__all__ = ["EXPLORER_SLIDERS", "ORBIT_MODES", "GaussianExplorer3D", "SceneOrbiter"]

DISPLAY_PIXELS = 384  # the rendered view is enlarged by a whole factor to about this width


def _ellipse_points(centre: Tensor, cov: Tensor, k: float, n: int = 64) -> list[tuple]:
    """Points of the k-sigma ellipse of a 2x2 covariance: centre + k * V sqrt(L) (cos, sin)."""
    evals, evecs = torch.linalg.eigh(cov.double())
    axes = evecs * evals.clamp_min(0).sqrt()[None, :]
    t = torch.linspace(0, 2 * math.pi, n + 1, dtype=torch.float64)
    circle = torch.stack([torch.cos(t), torch.sin(t)])
    pts = centre.double()[:, None] + k * axes @ circle
    return [(float(x), float(y)) for x, y in pts.T]


def _matrix_html(name: str, m: Tensor, fmt: str = "{:.3g}") -> str:
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td style='padding:0 6px;text-align:right'>{fmt.format(float(v))}</td>" for v in row
        )
        + "</tr>"
        for row in m
    )
    return f"<div style='margin-right:14px'>{name}<table>{rows}</table></div>"


# --------------------------------------------------------------------------------------------
# One Gaussian
# --------------------------------------------------------------------------------------------

# name -> (min, max, step, label, start value)
EXPLORER_SLIDERS: dict[str, tuple[float, float, float, str, float]] = {
    "yaw": (-180.0, 180.0, 1.0, "yaw °", 30.0),
    "pitch": (-90.0, 90.0, 1.0, "pitch °", 20.0),
    "roll": (-180.0, 180.0, 1.0, "roll °", 10.0),
    "scale_x": (0.005, 1.0, 0.005, "scale x", 0.6),
    "scale_y": (0.005, 1.0, 0.005, "scale y", 0.25),
    "scale_z": (0.005, 1.0, 0.005, "scale z", 0.1),
    "opacity": (0.05, 1.0, 0.01, "opacity", 0.9),
    "azimuth": (-180.0, 180.0, 1.0, "cam azimuth °", 20.0),
    "elevation": (-85.0, 85.0, 1.0, "cam elevation °", 20.0),
    "distance": (1.0, 10.0, 0.1, "cam distance", 4.0),
}
_GAUSSIAN_RGB = (1.0, 0.55, 0.1)


class GaussianExplorer3D(NotebookWidget):
    """One 3D Gaussian at the origin, a camera orbiting it, and the 2D footprint, live.

    width, height: render size in pixels; fov_x: horizontal field of view in degrees.

    State (plain attributes, updated on every change): `values` (slider name -> value),
    `quat`, `scales`, `camera`, `cov3d` [3, 3], `projection` (a splat3d.Projection for the
    one Gaussian and camera), `cov2d` [2, 2] (= projection.covars2d, blur included),
    `image` [H, W, 3] and `alpha` [H, W] (the rasterizer's render), `render_count`.
    Controls: `sliders[name]` (see EXPLORER_SLIDERS), `dilation_toggle` (the 0.3 px
    low-pass), `outline_toggle`; views `render_view`, `top_view`, `info`; `widget`.
    """

    def __init__(self, width: int = 192, height: int = 144, fov_x: float = 50.0):
        if not isinstance(width, int) or not isinstance(height, int) or min(width, height) < 8:
            raise ValueError(
                f"GaussianExplorer3D: width and height must be whole numbers "
                f">= 8, got {width!r} x {height!r}"
            )
        if not 1.0 <= fov_x <= 170.0:
            raise ValueError(f"GaussianExplorer3D: fov_x must be in [1, 170] degrees, got {fov_x}")
        self.width, self.height, self.fov_x = width, height, fov_x
        self.zoom = whole_zoom(width, DISPLAY_PIXELS)
        self.values = {name: spec[4] for name, spec in EXPLORER_SLIDERS.items()}
        self.render_count = 0
        self._build_controls()
        self.refresh()

    # -- model ------------------------------------------------------------------------------

    @property
    def eps2d(self) -> float:
        return 0.3 if self.dilation_toggle.value else 0.0

    def _update_model(self) -> None:
        v = self.values
        self.quat = quat_from_euler(v["yaw"], v["pitch"], v["roll"])
        self.scales = torch.tensor([v["scale_x"], v["scale_y"], v["scale_z"]])
        self.camera: Camera = orbit_camera(
            v["azimuth"], v["elevation"], v["distance"], self.width, self.height, self.fov_x
        )
        self.cov3d = covariance_from_quat_scale(self.quat, self.scales)
        self.projection: Projection = project_gaussians(
            torch.zeros(1, 3),
            self.cov3d[None],
            self.camera.viewmat,
            self.camera.K,
            self.width,
            self.height,
            eps2d=self.eps2d,
            opacities=torch.tensor([v["opacity"]]),
        )
        self.cov2d = self.projection.covars2d[0, 0]

    def render(self) -> tuple[Tensor, Tensor]:
        """(image [H, W, 3], alpha [H, W]): the Gaussian over a black background."""
        colour = rgb_to_sh(torch.tensor([[_GAUSSIAN_RGB]]))  # [1, 1, 3]: band 0 only
        renders, alphas, _ = rasterization(
            torch.zeros(1, 3),
            self.quat[None],
            self.scales[None],
            torch.tensor([self.values["opacity"]]),
            colour,
            self.camera.viewmat[None],
            self.camera.K[None],
            self.width,
            self.height,
            sh_degree=0,
            eps2d=self.eps2d,
        )
        return renders[0], alphas[0, ..., 0]

    def refresh(self) -> None:
        """Recompute everything and redraw the views (every control calls this)."""
        with torch.no_grad(), one_torch_thread():
            self._update_model()
            self.image, self.alpha = self.render()
        pil = to_pil(self.image, self.zoom)
        if self.outline_toggle.value and self.projection.visible[0, 0]:
            self._draw_footprint(pil)
        self.render_view.value = image_to_png(pil)
        self.top_view.value = image_to_png(self._draw_top_view())
        self.info.value = self._info_html()
        self.render_count += 1

    # -- drawing ----------------------------------------------------------------------------

    def _draw_footprint(self, pil: PILImage.Image) -> None:
        z = self.zoom
        centre = self.projection.means2d[0, 0]
        draw = ImageDraw.Draw(pil)
        rx, ry = (int(r) for r in self.projection.radii[0, 0])
        cx, cy = float(centre[0]) * z, float(centre[1]) * z
        draw.rectangle(
            [cx - rx * z, cy - ry * z, cx + rx * z, cy + ry * z], outline=(110, 110, 110), width=1
        )
        pts = [(x * z, y * z) for x, y in _ellipse_points(centre, self.cov2d, 3.0)]
        draw.line(pts, fill=(0, 0, 0), width=3)
        draw.line(pts, fill=(80, 220, 255), width=1)

    def _draw_top_view(self, size: int = 180) -> PILImage.Image:
        """The world's xy plane from above: the Gaussian's 2-sigma outline and the camera."""
        pil = PILImage.new("RGB", (size, size), (245, 245, 240))
        draw = ImageDraw.Draw(pil)
        extent = max(1.5, 1.15 * self.values["distance"])
        scale = size / (2 * extent)

        def px(x: float, y: float) -> tuple[float, float]:
            return size / 2 + x * scale, size / 2 - y * scale  # y up on screen

        draw.line([px(-extent, 0), px(extent, 0)], fill=(200, 200, 200))
        draw.line([px(0, -extent), px(0, extent)], fill=(200, 200, 200))
        cov_xy = self.cov3d[:2, :2] * torch.tensor([[1.0, -1.0], [-1.0, 1.0]])  # flip y
        pts = [
            (size / 2 + x * scale, size / 2 + y * scale)
            for x, y in _ellipse_points(torch.zeros(2), cov_xy, 2.0)
        ]
        draw.polygon(pts, fill=tuple(int(255 * c) for c in _GAUSSIAN_RGB), outline=(0, 0, 0))
        cam = self.camera.position
        cx, cy = px(float(cam[0]), float(cam[1]))
        half_fov = math.radians(self.fov_x) / 2
        heading = math.atan2(-float(cam[1]), -float(cam[0]))
        reach = 0.35 * size
        for side in (-1, 1):
            a = heading + side * half_fov
            draw.line(
                [(cx, cy), (cx + reach * math.cos(a), cy - reach * math.sin(a))], fill=(90, 90, 200)
            )
        draw.ellipse([cx - 5, cy - 5, cx + 5, cy + 5], fill=(40, 40, 160))
        draw.text((4, 2), "top view (x right, y up)", fill=(60, 60, 60))
        return pil

    def _info_html(self) -> str:
        proj = self.projection
        if not bool(proj.visible[0, 0]):
            return "<b>culled</b>: the Gaussian is off-screen or behind the camera"
        evals = torch.linalg.eigvalsh(self.cov2d.double()).clamp_min(0).sqrt()
        rx, ry = (int(r) for r in proj.radii[0, 0])
        mats = _matrix_html("Σ (3D, world)", self.cov3d) + _matrix_html(
            "Σ' (2D, pixels²)", self.cov2d
        )
        return (
            f"<div style='display:flex'>{mats}</div>"
            f"depth {float(proj.depths[0, 0]):.2f} · footprint σ "
            f"{float(evals[1]):.2f} × {float(evals[0]):.2f} px · screen box "
            f"±{rx} × ±{ry} px · low-pass {self.eps2d} px²"
        )

    # -- controls ---------------------------------------------------------------------------

    def _build_controls(self) -> None:
        style = {"description_width": "100px"}
        self.sliders: dict[str, widgets.FloatSlider] = {}
        for name, (lo, hi, step, label, start) in EXPLORER_SLIDERS.items():
            slider = widgets.FloatSlider(
                value=start,
                min=lo,
                max=hi,
                step=step,
                description=label,
                style=style,
                readout_format=".3f" if step < 0.01 else (".2f" if step < 1 else ".0f"),
                continuous_update=True,
            )
            slider.observe(
                lambda change, name=name: self._on_slider(name, change["new"]), names="value"
            )
            self.sliders[name] = slider
        self.dilation_toggle = widgets.Checkbox(value=True, description="0.3 px low-pass")
        self.outline_toggle = widgets.Checkbox(value=True, description="3σ outline + box")
        for toggle in (self.dilation_toggle, self.outline_toggle):
            toggle.observe(lambda _change: self.refresh(), names="value")
        self.render_view = widgets.Image(format="png")
        self.top_view = widgets.Image(format="png")
        self.info = widgets.HTML()
        gaussian = [
            self.sliders[n]
            for n in ("yaw", "pitch", "roll", "scale_x", "scale_y", "scale_z", "opacity")
        ]
        camera = [self.sliders[n] for n in ("azimuth", "elevation", "distance")]
        controls = widgets.VBox(
            [
                widgets.HTML("<b>Gaussian</b>"),
                *gaussian,
                widgets.HTML("<b>Camera</b>"),
                *camera,
                self.dilation_toggle,
                self.outline_toggle,
            ]
        )
        views = widgets.HBox(
            [titled("Camera image", self.render_view), titled("Where the camera is", self.top_view)]
        )
        self.widget = widgets.HBox([widgets.VBox([views, self.info]), controls])

    def _on_slider(self, name: str, value: float) -> None:
        self.values[name] = float(value)
        self.refresh()


# --------------------------------------------------------------------------------------------
# A scene from any side
# --------------------------------------------------------------------------------------------

ORBIT_MODES = {
    "alpha compositing, sorted": "composite",
    "same, wrong order": "reversed",
    "sum (no order)": "sum",
}


class SceneOrbiter(NotebookWidget):
    """Orbit a small GaussianScene; switch the combining rule and the SH degree.

    scene: a scenes.GaussianScene (default: the SH ring, or pass occluding_pair() etc.);
    width, height: render size. "composite" renders with the course's rasterizer; the other
    modes with compositing.render_by_hand (dense: keep scenes to a few hundred Gaussians).

    State: `azimuth`, `elevation`, `distance`, `mode` ("composite", "reversed", "sum"),
    `sh_degree`, `camera`, `image` [H, W, 3] (unclipped), `depth` [H, W] (expected depth,
    from the rasterizer), `info` (the rasterizer's info dict), `milliseconds`,
    `render_count`. Controls: `sliders` (azimuth, elevation, distance), `play` (spins the
    azimuth), `mode_toggle`, `degree_picker`; views `render_view`, `depth_view`, `label`.
    """

    def __init__(
        self,
        scene: GaussianScene | None = None,
        width: int = 160,
        height: int = 120,
        azimuth: float = 20.0,
        elevation: float = 20.0,
        distance: float = 4.0,
    ):
        scene = sh_cloud() if scene is None else scene
        if not isinstance(scene, GaussianScene):
            raise TypeError(
                f"SceneOrbiter: scene must be a GaussianScene, got {type(scene).__name__}"
            )
        if not isinstance(width, int) or not isinstance(height, int) or min(width, height) < 8:
            raise ValueError(
                f"SceneOrbiter: width and height must be whole numbers >= 8, "
                f"got {width!r} x {height!r}"
            )
        self.scene, self.width, self.height = scene, width, height
        self.zoom = whole_zoom(width, DISPLAY_PIXELS)
        self.azimuth, self.elevation, self.distance = (
            float(azimuth),
            float(elevation),
            float(distance),
        )
        self.mode: compositing.Mode = "composite"
        self.sh_degree = SH_DEGREE
        self.render_count = 0
        self._cmap = matplotlib.colormaps["viridis"]
        self._build_controls()
        self.refresh()

    def render(self) -> tuple[Tensor, Tensor, dict]:
        """(image [H, W, 3], expected depth [H, W], info) for the current camera and mode."""
        self.camera = orbit_camera(
            self.azimuth, self.elevation, self.distance, self.width, self.height
        )
        out, alpha, info = self.scene.render(self.camera, self.sh_degree, render_mode="RGB+ED")
        depth = torch.where(alpha > 0.05, out[..., 3], torch.zeros_like(alpha))
        if self.mode == "composite":
            return out[..., :3], depth, info
        image, _ = compositing.render_by_hand(self.scene, self.camera, self.mode, self.sh_degree)
        return image, depth, info

    def refresh(self) -> None:
        start = time.perf_counter()
        with torch.no_grad(), one_torch_thread():
            self.image, self.depth, self.info = self.render()
        self.milliseconds = 1e3 * (time.perf_counter() - start)
        self.render_view.value = image_to_png(self.image, self.zoom)
        side_zoom = max(1, self.zoom // 2)  # the depth is a smaller side view
        self.depth_view.value = image_to_png(self._depth_picture(), side_zoom)
        visible = int((self.info["radii"][0] > 0).all(-1).sum())
        self.label.value = (
            f"{len(self.scene)} Gaussians, {visible} in view · "
            f"{self.info['n_pairs']:,} Gaussian-pixel pairs composited · "
            f"{self.milliseconds:.0f} ms"
        )
        self.render_count += 1

    def _depth_picture(self) -> np.ndarray:
        """[H, W, 3] uint8: expected depth through viridis, white where nothing was hit."""
        d = self.depth.numpy()
        valid = d > 0
        shown = np.zeros(d.shape + (3,), dtype=np.uint8) + 255
        if valid.any():
            lo, hi = float(d[valid].min()), float(d[valid].max())
            norm = (d - lo) / max(hi - lo, 1e-6)
            shown[valid] = self._cmap(norm[valid], bytes=True)[..., :3]
        return shown

    # -- controls ---------------------------------------------------------------------------

    def _build_controls(self) -> None:
        style = {"description_width": "90px"}
        specs = {
            "azimuth": (-180.0, 180.0, 1.0, "azimuth °"),
            "elevation": (-85.0, 85.0, 1.0, "elevation °"),
            "distance": (1.5, 10.0, 0.1, "distance"),
        }
        self.sliders: dict[str, widgets.FloatSlider] = {}
        for name, (lo, hi, step, label) in specs.items():
            slider = widgets.FloatSlider(
                value=getattr(self, name), min=lo, max=hi, step=step, description=label, style=style
            )
            slider.observe(
                lambda change, name=name: self._on_camera(name, change["new"]), names="value"
            )
            self.sliders[name] = slider
        self.play = widgets.Play(
            value=int(self.azimuth), min=-180, max=180, step=10, interval=300, description="spin"
        )
        self.play.observe(
            lambda change: setattr(self.sliders["azimuth"], "value", float(change["new"])),
            names="value",
        )
        self.mode_toggle = widgets.ToggleButtons(
            options=list(ORBIT_MODES.items()),
            value="composite",
            description="combine",
            style={**style, "button_width": "auto"},
        )
        self.mode_toggle.observe(self._on_mode, names="value")
        self.degree_picker = widgets.Dropdown(
            options=[0, 1, 2, 3], value=self.sh_degree, description="SH degree", style=style
        )
        self.degree_picker.observe(self._on_degree, names="value")
        self.render_view = widgets.Image(format="png")
        self.depth_view = widgets.Image(format="png")
        self.label = widgets.HTML()
        controls = widgets.VBox(
            [*self.sliders.values(), widgets.HBox([self.play]), self.degree_picker]
        )
        views = widgets.HBox(
            [
                titled("Render", self.render_view),
                titled("Expected depth (near = dark)", self.depth_view),
            ]
        )
        self.widget = widgets.VBox([widgets.HBox([views, controls]), self.mode_toggle, self.label])

    def _on_camera(self, name: str, value: float) -> None:
        setattr(self, name, float(value))
        self.refresh()

    def _on_mode(self, change: dict[str, Any]) -> None:
        self.mode = change["new"]
        self.refresh()

    def _on_degree(self, change: dict[str, Any]) -> None:
        self.sh_degree = int(change["new"])
        self.refresh()
