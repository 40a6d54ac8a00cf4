"""A small widget to look at fitted splats, used by lesson 5: orbit them, and hold a render up
to a photo.

Left: the splats from an orbiting camera (azimuth, elevation, distance sliders) around the
capture's centre, with "up" taken from the capture's own cameras. Right: a held-out photo,
the render from its camera and the absolute error, with that view's SSIM/PSNR. Plain
ipywidgets 8 with PNG images, so it works in JupyterLab with no extension; every control is
an attribute that code (and tests) can set.
"""

from __future__ import annotations

import math

import ipywidgets as widgets
import torch
from torch import Tensor

from ..capture import Capture
from ..splat3d import look_at
from ..train.evaluate import evaluate
from ..train.model import render
from .display import NotebookWidget, image_to_png, titled

__all__ = ["SplatViewer", "orbit_viewmat"]


def _capture_up(capture: Capture) -> Tensor:
    """World direction the photos had as 'up' (minus the mean camera y axis, OpenCV)."""
    up = -capture.viewmats[:, 1, :3].mean(0)
    return up / up.norm().clamp_min(1e-9)


def orbit_viewmat(capture: Capture, azimuth: float, elevation: float, distance: float) -> Tensor:
    """World-to-camera matrix of a camera on a sphere around the capture's centre."""
    up = _capture_up(capture)
    centre = capture.scene_center().float()
    helper = torch.tensor([1.0, 0.0, 0.0] if abs(float(up[0])) < 0.9 else [0.0, 1.0, 0.0])
    e1 = torch.linalg.cross(up, helper)
    e1 = e1 / e1.norm()
    e2 = torch.linalg.cross(up, e1)
    a, el = math.radians(azimuth), math.radians(elevation)
    direction = math.cos(el) * (math.cos(a) * e1 + math.sin(a) * e2) + math.sin(el) * up
    return look_at(centre + distance * direction, centre, up=tuple(up.tolist()))


class SplatViewer(NotebookWidget):
    """Orbit fitted splats and compare them with the capture's held-out photos.

    params: the fitted Gaussians (train.model's parameter dict); capture: the capture they
    were fitted to (its held-out views fill the dropdown); zoom: whole enlargement of the
    images. Put the viewer last in a cell to display it (``viewer.widget``, the ipywidgets
    view itself, shows the same thing).
    """

    def __init__(self, params, capture: Capture, zoom: int = 2) -> None:
        self.params, self.capture, self.zoom = params, capture, zoom
        dist = float((capture.camera_centers() - capture.scene_center()).norm(dim=-1).mean())
        self.sliders = {
            "azimuth": widgets.FloatSlider(
                value=30, min=-180, max=180, step=5, description="azimuth"
            ),
            "elevation": widgets.FloatSlider(
                value=20, min=-85, max=85, step=5, description="elevation"
            ),
            "distance": widgets.FloatSlider(
                value=dist, min=0.3 * dist, max=2 * dist, step=dist / 20, description="distance"
            ),
        }
        names = [(capture.image_names[i], i) for i in capture.test_idx]
        self.view = widgets.Dropdown(options=names, description="held-out")
        self.orbit_image = widgets.Image(format="png")
        self.compare_image = widgets.Image(format="png")
        self.scores = widgets.HTML()
        for s in self.sliders.values():
            s.observe(lambda _: self.update_orbit(), names="value")
        self.view.observe(lambda _: self.update_compare(), names="value")
        self.update_orbit()
        self.update_compare()
        self.widget = widgets.HBox(
            [
                titled("Orbit the splats", self.orbit_image, *self.sliders.values()),
                titled(
                    "Held-out photo | render | |error|", self.compare_image, self.view, self.scores
                ),
            ]
        )

    @torch.no_grad()
    def update_orbit(self) -> Tensor:
        cap = self.capture
        vm = orbit_viewmat(
            cap, *(self.sliders[k].value for k in ("azimuth", "elevation", "distance"))
        )
        rgb, _, _ = render(
            self.params,
            vm[None],
            cap.Ks[:1],
            cap.width,
            cap.height,
            background=cap.background_tensor(),
        )
        img = rgb[0].clamp(0, 1)
        self.orbit_image.value = image_to_png(img, self.zoom)
        return img

    @torch.no_grad()
    def update_compare(self) -> Tensor:
        i = self.view.value
        if i is None:  # the dropdown lists the held-out views: there are none
            raise ValueError(f"capture {self.capture.name!r} has no held-out views to compare")
        ev = evaluate(self.params, self.capture, [i], keep_images=True)
        assert ev.photos is not None and ev.renders is not None  # kept: keep_images=True
        photo, rend = ev.photos[0], ev.renders[0]
        err = (photo - rend).abs().mean(-1, keepdim=True).expand_as(photo).clamp(0, 1)
        strip = torch.cat([photo, rend, err], dim=1)
        self.compare_image.value = image_to_png(strip, self.zoom)
        self.scores.value = f"SSIM {ev.ssim:.3f} &nbsp; PSNR {ev.psnr:.1f} dB"
        return strip
