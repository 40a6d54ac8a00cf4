"""Headless tests of the 2D widgets: every control must really change what is shown.

These drive the widgets the way the browser does (setting trait values, clicking buttons) and
check the outcome in the tensors and in the PNG bytes the front end would draw.
"""

from __future__ import annotations

import io
import itertools
import re

import ipywidgets as widgets
import numpy as np
import pytest
import torch
from PIL import Image

from splatcourse import toy2d
from splatcourse.ui.widgets2d import FitScrubber, Splat, SplatExplorer, image_to_png

SIZE = 40


def decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def shown_mse(explorer: SplatExplorer) -> float:
    match = re.search(r"([0-9]+\.[0-9]+)", explorer.mse_label.value)
    assert match, f"no number in the MSE label: {explorer.mse_label.value!r}"
    return float(match.group(1))


@pytest.fixture
def explorer() -> SplatExplorer:
    return SplatExplorer(target=toy2d.colour_target(SIZE), n=3, seed=0)


def two_overlapping(mode: str) -> SplatExplorer:
    """A red Gaussian nearer than a green one, both fully opaque, at the same place."""
    ex = SplatExplorer(n=1, size=SIZE)
    ex.splats[:] = [
        Splat(x=0.5, y=0.5, scale_x=0.15, scale_y=0.15, opacity=1.0, colour="#ff0000", depth=0.2),
        Splat(x=0.5, y=0.5, scale_x=0.15, scale_y=0.15, opacity=1.0, colour="#00ff00", depth=0.8),
    ]
    ex.active = 1
    ex._sync_controls()
    ex.mode_toggle.value = mode
    ex.refresh()
    return ex


def centre(ex: SplatExplorer) -> torch.Tensor:
    return ex.image[SIZE // 2, SIZE // 2]


# ---------------------------------------------------------------------------------------------
# SplatExplorer
# ---------------------------------------------------------------------------------------------


def test_explorer_builds_and_shows_render_target_and_mse(explorer: SplatExplorer) -> None:
    assert len(explorer.splats) == 3
    assert explorer.image.shape == (SIZE, SIZE, 3)
    assert explorer.image.abs().sum() > 0, "the starting Gaussians should be visible"
    assert isinstance(explorer.widget, widgets.Box)
    assert explorer.mse == pytest.approx(toy2d.mse(explorer.image, explorer.target))
    assert shown_mse(explorer) == pytest.approx(explorer.mse, abs=1e-6)
    # the target view shows the target, the render view shows the render (enlarged)
    zoom = explorer.zoom
    target_px = decode(explorer.target_view.value)[::zoom, ::zoom]
    assert np.abs(target_px - explorer.target.numpy() * 255).max() <= 1
    render_px = decode(explorer.render_view.value)
    assert render_px.shape == (SIZE * zoom, SIZE * zoom, 3)
    bundle = explorer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_render_view_matches_image_tensor_without_outline(explorer: SplatExplorer) -> None:
    explorer.outline_toggle.value = False
    zoom = explorer.zoom
    shown = decode(explorer.render_view.value)[::zoom, ::zoom]
    assert np.abs(shown - explorer.image.numpy() * 255).max() <= 1


def test_same_seed_same_start_different_seed_different_start() -> None:
    a, b, c = (
        SplatExplorer(n=4, size=SIZE, seed=1),
        SplatExplorer(n=4, size=SIZE, seed=1),
        SplatExplorer(n=4, size=SIZE, seed=2),
    )
    assert a.splats == b.splats
    assert torch.equal(a.image, b.image)
    assert a.splats != c.splats


@pytest.mark.parametrize(
    "name, value",
    [
        ("x", 0.15),
        ("y", 0.85),
        ("scale_x", 0.3),
        ("scale_y", 0.02),
        ("angle", 90.0),
        ("opacity", 0.2),
    ],
)
def test_each_slider_rerenders_and_updates_mse(
    explorer: SplatExplorer, name: str, value: float
) -> None:
    before_image = explorer.image.clone()
    before_png = explorer.render_view.value
    before_mse = explorer.mse
    before_label = explorer.mse_label.value
    assert getattr(explorer.splats[explorer.active], name) != value

    explorer.sliders[name].value = value

    assert getattr(explorer.splats[explorer.active], name) == value
    assert (explorer.image - before_image).abs().max() > 1e-3, f"{name} did not change the render"
    assert explorer.render_view.value != before_png
    assert explorer.mse != before_mse
    assert explorer.mse_label.value != before_label
    assert explorer.mse == pytest.approx(toy2d.mse(explorer.image, explorer.target))
    assert shown_mse(explorer) == pytest.approx(explorer.mse, abs=1e-6)


def test_moving_a_gaussian_moves_its_light() -> None:
    ex = SplatExplorer(n=1, size=SIZE)
    ex.sliders["scale_x"].value = ex.sliders["scale_y"].value = 0.05
    ex.sliders["x"].value, ex.sliders["y"].value = 0.2, 0.5
    left = ex.image.sum(-1)
    ex.sliders["x"].value = 0.8
    right = ex.image.sum(-1)
    half = SIZE // 2
    assert left[:, :half].sum() > 10 * left[:, half:].sum()
    assert right[:, half:].sum() > 10 * right[:, :half].sum()


def test_colour_picker_changes_the_colour() -> None:
    ex = SplatExplorer(n=1, size=SIZE)
    ex.sliders["x"].value = ex.sliders["y"].value = 0.5
    ex.sliders["opacity"].value = 1.0
    ex.colour_picker.value = "#00ff00"
    assert ex.splats[0].colour == "#00ff00"
    r, g, b = centre(ex).tolist()
    assert g > 0.9 and r < 0.05 and b < 0.05
    png = ex.render_view.value
    ex.colour_picker.value = "blue"  # CSS names work too
    assert ex.splats[0].colour == "#0000ff"
    r, g, b = centre(ex).tolist()
    assert b > 0.9 and r < 0.05 and g < 0.05
    assert ex.render_view.value != png


def test_selector_edits_the_chosen_gaussian(explorer: SplatExplorer) -> None:
    image = explorer.image.clone()
    explorer.selector.value = 2
    assert explorer.active == 2
    # the controls now show Gaussian 2 ...
    for name, slider in explorer.sliders.items():
        assert slider.value == pytest.approx(getattr(explorer.splats[2], name))
    assert explorer.colour_picker.value == explorer.splats[2].colour
    # ... selecting alone does not change the model ...
    assert torch.equal(explorer.image, image)
    # ... and a slider now edits Gaussian 2 only
    others = [explorer.splats[0].x, explorer.splats[1].x]
    explorer.sliders["x"].value = 0.05
    assert explorer.splats[2].x == 0.05
    assert [explorer.splats[0].x, explorer.splats[1].x] == others


def test_add_and_remove_buttons_change_the_count_and_render(explorer: SplatExplorer) -> None:
    image = explorer.image.clone()
    explorer.add_button.click()
    assert len(explorer.splats) == 4
    assert len(explorer.selector.options) == 4
    assert explorer.active == 3 and explorer.selector.value == 3
    assert (explorer.image - image).abs().max() > 1e-3
    assert explorer.mse == pytest.approx(toy2d.mse(explorer.image, explorer.target))

    explorer.remove_button.click()
    assert len(explorer.splats) == 3
    assert len(explorer.selector.options) == 3
    assert torch.allclose(explorer.image, image, atol=1e-6), "removing the added one restores"

    explorer.remove_button.click()
    explorer.remove_button.click()
    assert len(explorer.splats) == 1
    assert explorer.remove_button.disabled, "the last Gaussian cannot be removed"
    with pytest.raises(ValueError, match="last Gaussian"):
        explorer.remove()


def test_sum_adds_colours_and_ignores_depth() -> None:
    ex = two_overlapping("sum")
    assert ex.sliders["depth"].disabled
    r, g, b = centre(ex).tolist()
    assert r > 0.9 and g > 0.9 and b < 0.05, "red + green should sum to yellow"
    image = ex.image.clone()
    ex.sliders["depth"].value = 0.0  # green to the front: the sum does not care
    assert torch.equal(ex.image, image)


def test_compositing_lets_the_nearest_cover_and_depth_order_matters() -> None:
    ex = two_overlapping("sum")
    summed = ex.image.clone()
    ex.mode_toggle.value = "composite"
    assert ex.mode == "composite"
    assert not ex.sliders["depth"].disabled
    assert not torch.equal(ex.image, summed)
    r, g, _ = centre(ex).tolist()
    assert r > 0.9 and g < 0.05, "the nearer red should hide the green"

    ex.sliders["depth"].value = 0.1  # the active (green) one moves in front of the red
    r, g, _ = centre(ex).tolist()
    assert g > 0.9 and r < 0.05, "now green is nearer and should hide the red"


def test_explorer_with_grey_target_compares_as_grey_rgb() -> None:
    target = toy2d.gradient_target(SIZE)
    ex = SplatExplorer(target=target, n=2)
    assert ex.target.shape == (SIZE, SIZE, 3)
    assert torch.equal(ex.target[..., 0], target) and torch.equal(ex.target[..., 2], target)
    assert ex.mse == pytest.approx(toy2d.mse(ex.image, ex.target))


def test_explorer_without_target_has_no_mse() -> None:
    ex = SplatExplorer(size=24, n=2)
    assert ex.image.shape == (24, 24, 3)
    assert ex.mse is None
    assert "no target" in ex.mse_label.value
    png = ex.render_view.value
    ex.sliders["angle"].value = 45.0 if ex.splats[ex.active].angle != 45.0 else 10.0
    assert ex.render_view.value != png


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"target": torch.zeros(8, 8, 2)}, "target must be"),
        ({"target": np.zeros((8, 8))}, "torch.Tensor"),
        ({"n": 0}, "n must be"),
        ({"size": 2}, "size must be"),
    ],
)
def test_explorer_rejects_bad_input(kwargs: dict, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        SplatExplorer(**kwargs)


# ---------------------------------------------------------------------------------------------
# FitScrubber
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recorded() -> tuple[toy2d.FitResult, torch.Tensor]:
    target = toy2d.colour_target(32)
    result = toy2d.fit_splats(target, 8, steps=40, record_every=10, progress=False)
    return result, target


def test_scrubber_steps_through_the_fit(recorded) -> None:
    result, target = recorded
    scrub = FitScrubber(result, target)
    n = len(result.snapshots)
    assert n == 5 and scrub.slider.max == n - 1 and scrub.play.max == n - 1

    seen = []
    for index in range(n):
        scrub.show(index)
        step, image = result.snapshots[index]
        assert scrub.slider.value == index and scrub.step == step
        assert torch.equal(scrub.image, image)
        # the marker sits on the loss of the render shown
        assert scrub.marker == (step, result.losses[step])
        assert scrub.marker[1] == pytest.approx(toy2d.mse(image, target), rel=1e-5)
        assert torch.allclose(scrub.error, ((image - target) ** 2).mean(-1))
        assert str(step) in scrub.info_label.value
        seen.append(
            (
                scrub.render_view.value,
                scrub.error_view.value,
                scrub.loss_view.value,
                scrub.marker_xy,
            )
        )

    first, last = seen[0], seen[-1]
    assert first[0] != last[0], "render view should differ between steps"
    assert first[1] != last[1], "error map should differ between steps"
    assert first[2] != last[2], "loss curve marker should move"
    xs = [xy[0] for *_, xy in seen]
    assert all(a < b for a, b in itertools.pairwise(xs)), "marker moves right as the steps go on"
    ys = [xy[1] for *_, xy in seen]
    assert ys[-1] > ys[0], "the loss fell, so the marker sits lower in the picture"
    # the render view really shows the snapshot
    shown = decode(scrub.render_view.value)[:: scrub.zoom, :: scrub.zoom]
    assert np.abs(shown - result.snapshots[-1][1].clamp(0, 1).numpy() * 255).max() <= 1


def test_scrubber_slider_and_play_rerender(recorded) -> None:
    result, target = recorded
    scrub = FitScrubber(result, target)
    png = scrub.render_view.value
    scrub.slider.value = 3
    assert scrub.index == 3 and scrub.render_view.value != png
    scrub.play.value = 1  # the play button drives the slider
    assert scrub.slider.value == 1 and scrub.index == 1
    assert scrub.step == result.snapshots[1][0]
    scrub.show(-1)
    assert scrub.index == len(result.snapshots) - 1
    with pytest.raises(IndexError, match="out of range"):
        scrub.show(len(result.snapshots))
    assert "application/vnd.jupyter.widget-view+json" in scrub._repr_mimebundle_()


def test_scrubber_over_grey_fit() -> None:
    target = toy2d.gradient_target(24)
    scrub = FitScrubber.from_fit(target, 4, steps=20, record_every=5, progress=False)
    assert len(scrub.steps) == 5
    scrub.show(0)
    start = scrub.error.mean().item()
    scrub.show(-1)
    assert scrub.error.shape == (24, 24)
    assert scrub.error.mean().item() < start, "the fit should reduce the error"
    assert scrub.error.mean().item() == pytest.approx(scrub.marker[1], rel=1e-5)


def test_scrubber_rejects_bad_input(recorded) -> None:
    result, target = recorded
    no_snapshots = toy2d.fit_splats(target, 2, steps=3, progress=False)
    with pytest.raises(ValueError, match="record_every"):
        FitScrubber(no_snapshots, target)
    with pytest.raises(ValueError, match="does not match"):
        FitScrubber(result, toy2d.colour_target(16))
    with pytest.raises(TypeError, match="FitResult"):
        FitScrubber({"losses": []}, target)


def test_image_to_png_roundtrip() -> None:
    image = torch.rand(6, 5, 3)
    back = decode(image_to_png(image, zoom=2))
    assert back.shape == (12, 10, 3)
    assert np.abs(back[::2, ::2] - image.numpy() * 255).max() <= 1
    with pytest.raises(ValueError, match="image_to_png"):
        image_to_png(torch.rand(4, 4, 2))
