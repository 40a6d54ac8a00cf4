"""Headless tests of the splat viewer, and of the one display hook every course widget shares.

The viewer runs on a small synthetic capture with unfitted Gaussians: what matters here is that
each control re-renders what is shown, not how good the splats are.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable

import ipywidgets as widgets
import numpy as np
import pytest
import torch
from IPython.core.formatters import DisplayFormatter
from PIL import Image

from splatcourse import toy2d
from splatcourse.capture import Capture, synthetic_capture
from splatcourse.splat3d import scenes
from splatcourse.train import TrainConfig, init_gaussians
from splatcourse.train.evaluate import evaluate
from splatcourse.ui.display import NotebookWidget
from splatcourse.ui.viewer import SplatViewer
from splatcourse.ui.widgets2d import FitScrubber, SplatExplorer
from splatcourse.ui.widgets3d import GaussianExplorer3D, SceneOrbiter

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
ZOOM = 2


def decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


@pytest.fixture(scope="module")
def capture(one_thread) -> Capture:
    cap = synthetic_capture(n_views=16, width=32, n_points=60)
    assert len(cap.test_idx) >= 2, "the viewer tests need two held-out views to switch between"
    return cap


def small_viewer(capture: Capture) -> SplatViewer:
    """A few unfitted Gaussians, one per synthetic surface point: quick to render."""
    return SplatViewer(init_gaussians(capture, TrainConfig(sh_degree=1)), capture, zoom=ZOOM)


@pytest.fixture
def viewer(capture: Capture) -> SplatViewer:
    return small_viewer(capture)


# --------------------------------------------------------------------------------------------
# SplatViewer
# --------------------------------------------------------------------------------------------


def test_viewer_shows_the_orbit_render(viewer: SplatViewer, capture: Capture) -> None:
    image = viewer.update_orbit()
    assert image.shape == (capture.height, capture.width, 3)
    assert image.max() > 0, "the Gaussians should be in view from the starting orbit"
    shown = decode(viewer.orbit_image.value)
    assert shown.shape == (capture.height * ZOOM, capture.width * ZOOM, 3)
    assert np.abs(shown[::ZOOM, ::ZOOM] - image.numpy() * 255).max() <= 1


def test_each_orbit_slider_rerenders(viewer: SplatViewer) -> None:
    for name, slider in viewer.sliders.items():
        before = viewer.orbit_image.value
        slider.value = slider.value + 4 * slider.step
        assert viewer.orbit_image.value != before, f"the {name} slider did not re-render"


def test_compare_strip_and_scores_follow_the_held_out_view(
    viewer: SplatViewer, capture: Capture
) -> None:
    first, second = capture.test_idx[:2]
    assert viewer.view.value == first
    strip = decode(viewer.compare_image.value)
    assert strip.shape == (capture.height * ZOOM, 3 * capture.width * ZOOM, 3)
    before_png, before_scores = viewer.compare_image.value, viewer.scores.value

    viewer.view.value = second

    assert viewer.compare_image.value != before_png
    ev = evaluate(viewer.params, capture, [second])
    ssim, psnr = (float(x) for x in re.findall(r"[0-9]+\.[0-9]+", viewer.scores.value))
    assert ssim == pytest.approx(ev.ssim, abs=1e-3) and psnr == pytest.approx(ev.psnr, abs=0.1)
    assert viewer.scores.value != before_scores


def test_viewer_widget_is_what_it_displays(viewer: SplatViewer) -> None:
    """Lesson 5 shows `viewer.widget`; showing the viewer itself must give the same view."""
    assert isinstance(viewer.widget, widgets.Box)
    assert viewer._repr_mimebundle_()[WIDGET_VIEW] == viewer.widget._repr_mimebundle_()[WIDGET_VIEW]


# --------------------------------------------------------------------------------------------
# One display hook for every widget
# --------------------------------------------------------------------------------------------


def small_scrubber() -> FitScrubber:
    """A scrubber over a made-up two-step fit (a real fit would only slow the test down)."""
    target = toy2d.colour_target(16)  # [16, 16, 3]
    fit = toy2d.FitResult(
        params={},
        losses=[0.3, 0.1],
        seconds=0.0,
        snapshots=[(0, torch.zeros_like(target)), (1, 0.5 * target)],
    )
    return FitScrubber(fit, target)


WIDGETS: dict[str, Callable[[Capture], NotebookWidget]] = {
    "SplatExplorer": lambda _capture: SplatExplorer(n=2, size=16),
    "FitScrubber": lambda _capture: small_scrubber(),
    "GaussianExplorer3D": lambda _capture: GaussianExplorer3D(width=32, height=24),
    "SceneOrbiter": lambda _capture: SceneOrbiter(scenes.occluding_pair(), width=32, height=24),
    "SplatViewer": small_viewer,
}


@pytest.mark.parametrize("name", list(WIDGETS))
def test_every_widget_displays_its_view_through_the_one_hook(name: str, capture: Capture) -> None:
    shown = WIDGETS[name](capture)
    assert isinstance(shown, NotebookWidget)
    assert type(shown)._repr_mimebundle_ is NotebookWidget._repr_mimebundle_
    # IPython's own formatter, as for an object last in a cell: a widget view of `widget`
    # (a subclass hook that displays some other way would leave no bundle here)
    bundle, _metadata = DisplayFormatter().format(shown)
    assert bundle[WIDGET_VIEW]["model_id"] == shown.widget.model_id
    assert isinstance(shown.widget, widgets.Box)
