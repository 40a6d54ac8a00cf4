"""The viser viewer's conversion of the course's splats, its scale, its cameras and its URL.

The conversion is checked against independent maths: viser's own quaternion-to-matrix (so the
two (w, x, y, z) conventions agree) and the rasterizer's per-entry covariance.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import viser.transforms as vtf
from plyfile import PlyData, PlyElement

from splatcourse.capture.synthetic import synthetic_capture
from splatcourse.splat3d import SH_C0, rgb_to_sh, scenes
from splatcourse.splat3d.gaussians import covariance_entries
from splatcourse.train.export import save_ply
from splatcourse.ui import splat_view
from splatcourse.ui.splat_view import (
    HELD_OUT_COLOUR,
    TRAIN_COLOUR,
    SplatView,
    live_url,
    splats_for_viser,
    view_splats,
    viewer_scale,
)


def random_params(n: int = 64, seed: int = 0, size: float = 0.05) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "means": torch.randn(n, 3, generator=g),
        "scales": (size * (0.2 + torch.rand(n, 3, generator=g))).log(),
        "quats": torch.randn(n, 4, generator=g),  # any length: normalised when used
        "opacities": 3 * torch.randn(n, generator=g),
        "sh0": 2 * torch.randn(n, 1, 3, generator=g),
        "shN": torch.zeros(n, 3, 3),
    }


@pytest.fixture(scope="module")
def small_capture():
    return synthetic_capture(n_views=16, width=48, n_points=200)


@pytest.fixture
def not_grading(monkeypatch):
    monkeypatch.delenv(splat_view.ENV_GRADING, raising=False)


def test_covariances_are_r_diag_s2_rt_in_visers_quaternion_convention():
    params = random_params()
    cov = splats_for_viser(params).covariances  # [N, 3, 3]
    q = params["quats"] / params["quats"].norm(dim=-1, keepdim=True)
    s2 = params["scales"].exp().square()
    for i in range(len(q)):
        R = vtf.SO3(q[i].double().numpy()).as_matrix()
        expected = R @ np.diag(s2[i].double().numpy()) @ R.T
        np.testing.assert_allclose(cov[i], expected, rtol=1e-4, atol=1e-9)


def test_covariances_match_the_rasterizers_entries():
    params = random_params(seed=1)
    cov = torch.from_numpy(splats_for_viser(params).covariances)
    xx, xy, xz, yy, yz, zz = covariance_entries(params["quats"], params["scales"].exp())
    for (a, b), entry in zip(
        ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)), (xx, xy, xz, yy, yz, zz), strict=True
    ):
        torch.testing.assert_close(cov[:, a, b], entry, rtol=1e-5, atol=1e-9)
        torch.testing.assert_close(cov[:, b, a], entry, rtol=1e-5, atol=1e-9)


def test_colours_are_the_dc_term_clamped_and_opacities_the_sigmoid():
    params = random_params(seed=2)
    rgb = torch.tensor([[0.1, 0.5, 0.9]])
    params["sh0"][0, 0] = rgb_to_sh(rgb)[0]
    params["sh0"][1, 0] = torch.tensor([5.0, -5.0, 0.0])  # outside [0, 1] as a colour
    out = splats_for_viser(params)
    np.testing.assert_allclose(out.rgbs[0], [0.1, 0.5, 0.9], atol=1e-6)
    np.testing.assert_allclose(out.rgbs[1], [1.0, 0.0, 0.5], atol=1e-6)
    assert out.rgbs.min() >= 0 and out.rgbs.max() <= 1
    expected = 1 / (1 + np.exp(-params["opacities"].numpy()))
    np.testing.assert_allclose(out.opacities[:, 0], expected, rtol=1e-6)
    assert out.opacities.shape == (64, 1)


def test_scale_multiplies_every_length():
    params = random_params(seed=3)
    plain, scaled = splats_for_viser(params), splats_for_viser(params, scale=40.0)
    np.testing.assert_allclose(scaled.centers, 40 * plain.centers, rtol=1e-6)
    np.testing.assert_allclose(scaled.covariances, 1600 * plain.covariances, rtol=1e-5, atol=1e-9)
    np.testing.assert_array_equal(scaled.rgbs, plain.rgbs)


def float16_error(covariances: np.ndarray) -> float:
    """Largest relative error of the diagonal variances once sent as float16 (as viser does)."""
    diag = np.diagonal(covariances, axis1=1, axis2=2).astype(np.float64)  # [N, 3]
    sent = diag.astype(np.float16).astype(np.float64)
    return float(np.max(np.abs(sent - diag) / diag))


def test_the_viewer_scale_keeps_millimetre_splats_precise_in_float16():
    params = random_params(seed=4, size=1e-3)  # 0.2-1.2 mm splats in a scene measured in metres
    assert float16_error(splats_for_viser(params).covariances) > 0.01  # what the scale avoids
    scale = viewer_scale(params)
    assert float16_error(splats_for_viser(params, scale).covariances) < 1e-3
    median = float((params["scales"].exp() * scale).median())
    assert math.isclose(median, splat_view.VIEWER_SPLAT_STD, rel_tol=1e-5)


def test_live_url_goes_through_jupyter_server_proxy_under_jupyterhub(monkeypatch):
    monkeypatch.delenv("JUPYTERHUB_SERVICE_PREFIX", raising=False)
    assert live_url(8123) == "http://localhost:8123/"
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/ada/")
    assert live_url(8123) == "/user/ada/proxy/8123/"


def test_nothing_starts_under_nbgrader(monkeypatch):
    monkeypatch.setenv(splat_view.ENV_GRADING, "autograde")
    shown = view_splats(random_params())
    assert not isinstance(shown, SplatView)
    assert "nbgrader" in shown._repr_html_()


def test_capture_cameras_held_out_marked_and_the_view_starts_at_one(not_grading, small_capture):
    cap = small_capture
    view = view_splats(random_params(), cap)
    try:
        assert isinstance(view, SplatView)
        assert len(view.cameras) == len(cap)
        colours = [tuple(c.color) for c in view.cameras]
        assert [i for i, c in enumerate(colours) if c == HELD_OUT_COLOUR] == cap.test_idx
        assert all(colours[i] == TRAIN_COLOUR for i in cap.train_idx)
        first = cap.test_idx[0]
        centre = cap.camera_centers()[first].double().numpy() * view.scale
        np.testing.assert_allclose(view.cameras[first].position, centre, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(view.server.initial_camera.position, centre, atol=1e-6)
        # its photo would cover the whole view: that frustum alone starts hidden
        assert [i for i, c in enumerate(view.cameras) if not c.visible] == [first]
        # the frustum's camera looks along the photo's +z (OpenCV), as viser's cameras do
        R = vtf.SO3(np.asarray(view.cameras[first].wxyz)).as_matrix()  # camera -> world
        np.testing.assert_allclose(R.T, cap.viewmats[first, :3, :3].double().numpy(), atol=1e-5)
        assert view.cameras[first].image is not None
        assert view.cameras[first].image.shape[1] == splat_view.THUMBNAIL_WIDTH
        html = view._repr_html_()
        assert html.startswith("<iframe") and "srcdoc=" in html
    finally:
        view.stop()


def test_a_ply_file_and_a_lesson_scene_are_accepted(not_grading, tmp_path):
    params = random_params(seed=5)
    path = save_ply(params, tmp_path / "splats.ply")
    view = view_splats(path, live=True)
    try:
        assert isinstance(view, SplatView)
        assert f'src="{live_url(view.port)}"' in view._repr_html_()
    finally:
        view.stop()
    scene = scenes.sh_cloud(n=30)
    converted = splats_for_viser(splat_view.course_params(scene))
    np.testing.assert_allclose(converted.opacities[:, 0], scene.opacities.numpy(), rtol=1e-5)
    np.testing.assert_allclose(
        converted.rgbs, (SH_C0 * scene.sh[:, 0] + 0.5).clamp(0, 1).numpy(), atol=1e-6
    )


def test_a_ply_from_another_tool_is_shown(not_grading, tmp_path):
    """Other writers leave out the normals, put the properties in their own order and add
    their own: only the names matter."""
    params = random_params(n=8, seed=6)
    columns = {
        "opacity": params["opacities"],
        **{f"rot_{i}": params["quats"][:, i] for i in range(4)},
        **{f"scale_{i}": params["scales"][:, i] for i in range(3)},
        **{f"f_dc_{i}": params["sh0"][:, 0, i] for i in range(3)},
        **{name: params["means"][:, i] for i, name in enumerate("xyz")},
        "confidence": torch.ones(8),
    }
    vertex = np.empty(8, dtype=[(name, "f4") for name in columns])
    for name, values in columns.items():
        vertex[name] = values.numpy()
    path = tmp_path / "other.ply"
    PlyData([PlyElement.describe(vertex, "vertex")]).write(str(path))
    view = splat_view.serve_ply(path)
    try:
        expected = splats_for_viser(params, view.scale)
        np.testing.assert_allclose(view.centers, expected.centers, rtol=1e-6)
        assert view.live
    finally:
        view.stop()
