"""Headless tests of the 3D widgets: controls set from code must re-render what is shown.

They set trait values the way the browser does and check the tensors, the numbers and the PNG
bytes the front end would draw.
"""

from __future__ import annotations

import io

import ipywidgets as widgets
import numpy as np
import pytest
import torch
from PIL import Image

from splatcourse.splat3d import covariance_from_quat_scale, scenes
from splatcourse.ui.widgets3d import EXPLORER_SLIDERS, GaussianExplorer3D, SceneOrbiter

W, H = 64, 48


def decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


@pytest.fixture
def explorer() -> GaussianExplorer3D:
    return GaussianExplorer3D(width=W, height=H)


# --------------------------------------------------------------------------------------------
# GaussianExplorer3D
# --------------------------------------------------------------------------------------------


def test_explorer_builds_and_shows_the_gaussian(explorer: GaussianExplorer3D) -> None:
    assert explorer.image.shape == (H, W, 3) and explorer.alpha.shape == (H, W)
    assert explorer.alpha.max() > 0.5, "the Gaussian should be in view and visible"
    assert isinstance(explorer.widget, widgets.Box)
    assert "application/vnd.jupyter.widget-view+json" in explorer._repr_mimebundle_()
    shown = decode(explorer.render_view.value)
    assert shown.shape == (H * explorer.zoom, W * explorer.zoom, 3)
    assert decode(explorer.top_view.value).shape[0] > 50
    assert "Σ" in explorer.info.value and "px" in explorer.info.value


def test_render_view_shows_the_image_without_outline(explorer: GaussianExplorer3D) -> None:
    explorer.outline_toggle.value = False
    z = explorer.zoom
    shown = decode(explorer.render_view.value)[::z, ::z]
    assert np.abs(shown - explorer.image.numpy() * 255).max() <= 1


@pytest.mark.parametrize("name", list(EXPLORER_SLIDERS))
def test_each_slider_rerenders(explorer: GaussianExplorer3D, name: str) -> None:
    before_image, before_png = explorer.image.clone(), explorer.render_view.value
    before_info, count = explorer.info.value, explorer.render_count
    lo, hi, _, _, start = EXPLORER_SLIDERS[name]
    new = start + 0.3 * (hi - start) if hi - start > start - lo else start - 0.3 * (start - lo)
    explorer.sliders[name].value = new
    assert explorer.values[name] == pytest.approx(explorer.sliders[name].value)
    assert explorer.render_count == count + 1
    assert (explorer.image - before_image).abs().max() > 1e-3, f"{name} did not change the render"
    assert explorer.render_view.value != before_png
    if name != "opacity":  # opacity changes the picture, not the covariances
        assert explorer.info.value != before_info


def test_footprint_is_the_analytic_2d_gaussian(explorer: GaussianExplorer3D) -> None:
    """Alpha at each pixel is o exp(-d^T cov2d^-1 d / 2), cov2d = J W Sigma W^T J^T + 0.3 I."""
    explorer.sliders["azimuth"].value = 65.0
    cam = explorer.camera
    sigma = covariance_from_quat_scale(explorer.quat, explorer.scales)
    Wc = cam.viewmat[:3, :3]
    x, y, z = cam.viewmat[:3, 3]  # the Gaussian sits at the world origin
    f = cam.K[0, 0]
    J = torch.tensor([[f / z, 0.0, -f * x / z**2], [0.0, f / z, -f * y / z**2]])
    cov2d = J @ Wc @ sigma @ Wc.T @ J.T + 0.3 * torch.eye(2)
    assert torch.allclose(explorer.cov2d, cov2d, rtol=1e-4, atol=1e-4)
    centre = cam.K[:2, 2] + f * torch.stack([x, y]) / z
    ys, xs = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    d = torch.stack([xs - centre[0], ys - centre[1]], dim=-1)
    power = 0.5 * torch.einsum("hwi,ij,hwj->hw", d, torch.linalg.inv(cov2d), d)
    want = (explorer.values["opacity"] * torch.exp(-power)).clamp_max(0.999)
    shown = want >= 1 / 255
    assert shown.sum() > 100
    assert torch.allclose(explorer.alpha[shown], want[shown], atol=1e-4)


def test_dilation_toggle_adds_exactly_the_low_pass(explorer: GaussianExplorer3D) -> None:
    for name in ("scale_x", "scale_y", "scale_z"):
        explorer.sliders[name].value = 0.005
    with_blur, png = explorer.cov2d.clone(), explorer.render_view.value
    area_blur = explorer.alpha.sum()
    explorer.dilation_toggle.value = False
    assert explorer.eps2d == 0.0
    assert torch.allclose(with_blur - explorer.cov2d, 0.3 * torch.eye(2), atol=1e-5)
    assert explorer.render_view.value != png
    assert explorer.alpha.sum() < area_blur, "without the low-pass a tiny Gaussian shrinks"
    assert "low-pass 0.0" in explorer.info.value


def test_opposite_sides_see_the_same_footprint_size(explorer: GaussianExplorer3D) -> None:
    explorer.sliders["elevation"].value = 0.0
    explorer.sliders["azimuth"].value = 30.0
    det_a = torch.linalg.det(explorer.cov2d)
    explorer.sliders["azimuth"].value = -150.0
    assert torch.linalg.det(explorer.cov2d) == pytest.approx(det_a.item(), rel=1e-4)


def test_bigger_and_nearer_means_a_larger_footprint(explorer: GaussianExplorer3D) -> None:
    area = explorer.alpha.sum()
    explorer.sliders["scale_y"].value = 0.5
    bigger = explorer.alpha.sum()
    assert bigger > area
    explorer.sliders["distance"].value = 8.0
    assert explorer.alpha.sum() < bigger
    assert explorer.projection.depths[0, 0].item() == pytest.approx(8.0, abs=1e-4)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"width": 4}, "width and height"),
        ({"height": 10.5}, "width and height"),
        ({"fov_x": 200.0}, "fov_x"),
    ],
)
def test_explorer_rejects_bad_input(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        GaussianExplorer3D(**kwargs)


# --------------------------------------------------------------------------------------------
# SceneOrbiter
# --------------------------------------------------------------------------------------------


@pytest.fixture
def pair_orbiter() -> SceneOrbiter:
    return SceneOrbiter(scenes.occluding_pair(), width=W, height=H, azimuth=0.0, elevation=0.0)


def centre(orbiter: SceneOrbiter) -> torch.Tensor:
    return orbiter.image[H // 2, W // 2]


def test_orbiter_builds_and_reports(pair_orbiter: SceneOrbiter) -> None:
    assert pair_orbiter.image.shape == (H, W, 3) and pair_orbiter.depth.shape == (H, W)
    assert "2 Gaussians, 2 in view" in pair_orbiter.label.value
    assert "application/vnd.jupyter.widget-view+json" in pair_orbiter._repr_mimebundle_()
    assert decode(pair_orbiter.depth_view.value).shape[2] == 3


def test_orbiting_moves_the_camera_and_changes_who_is_in_front(pair_orbiter) -> None:
    r, _, b = centre(pair_orbiter).tolist()
    assert r > 2 * b, "from azimuth 0 the red Gaussian is in front"
    near_depth = pair_orbiter.depth[H // 2, W // 2].item()
    assert near_depth == pytest.approx(3.5, abs=0.3), "the red one is 3.5 units away"
    png = pair_orbiter.render_view.value
    pair_orbiter.sliders["azimuth"].value = 180.0
    assert pair_orbiter.camera.position[0].item() == pytest.approx(-4.0, abs=1e-4)
    assert pair_orbiter.render_view.value != png
    r, _, b = centre(pair_orbiter).tolist()
    assert b > 2 * r, "from azimuth 180 the blue Gaussian is in front"


def test_modes_show_sum_and_wrong_order(pair_orbiter: SceneOrbiter) -> None:
    correct, png = pair_orbiter.image.clone(), pair_orbiter.render_view.value
    pair_orbiter.mode_toggle.value = "reversed"
    assert pair_orbiter.mode == "reversed" and pair_orbiter.render_view.value != png
    r, _, b = centre(pair_orbiter).tolist()
    assert b > 2 * r, "the wrong order puts the far blue Gaussian on top"
    pair_orbiter.mode_toggle.value = "sum"
    summed = pair_orbiter.image
    assert summed.sum() > correct.sum() + 1.0, "without occlusion the overlap adds up"
    pair_orbiter.mode_toggle.value = "composite"
    assert torch.allclose(pair_orbiter.image, correct)


def test_sh_degree_and_play_drive_the_render() -> None:
    orbiter = SceneOrbiter(scenes.glossy_gaussian(), width=W, height=H, azimuth=0.0, elevation=0.0)
    r, _, b = centre(orbiter).tolist()
    assert r > b + 0.3, "the glossy Gaussian is red from +x"
    png = orbiter.render_view.value
    orbiter.degree_picker.value = 0
    assert orbiter.sh_degree == 0 and orbiter.render_view.value != png
    r0, _, b0 = centre(orbiter).tolist()
    assert abs(r0 - b0) < 0.05, "band 0 alone has no view-dependent tint"
    orbiter.degree_picker.value = 3
    orbiter.play.value = 180  # the spin button drives the azimuth slider
    assert orbiter.sliders["azimuth"].value == 180.0 and orbiter.azimuth == 180.0
    r, _, b = centre(orbiter).tolist()
    assert b > r + 0.3, "and blue from -x"


def test_orbiter_rejects_bad_input() -> None:
    with pytest.raises(TypeError, match="GaussianScene"):
        SceneOrbiter(scene={"means": torch.zeros(1, 3)})
    with pytest.raises(ValueError, match="width and height"):
        SceneOrbiter(scenes.one_gaussian(), width=2)
