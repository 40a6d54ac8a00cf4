"""The 3D lesson scenes, cameras and the written-out compositing of splatcourse.compositing."""

from __future__ import annotations

import math

import pytest
import torch

from splatcourse.splat3d import (
    compositing,
    params_per_gaussian,
    quat_to_rotmat,
    rasterization,
    scenes,
)


def _rot(axis: str, degrees: float) -> torch.Tensor:
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return {
        "x": torch.tensor([[1.0, 0, 0], [0, c, -s], [0, s, c]]),
        "y": torch.tensor([[c, 0, s], [0, 1.0, 0], [-s, 0, c]]),
        "z": torch.tensor([[c, -s, 0], [s, c, 0], [0, 0, 1.0]]),
    }[axis]


@pytest.mark.parametrize("yaw, pitch, roll", [(0, 0, 0), (30, 20, 10), (-120, 75, 170)])
def test_quat_from_euler_is_yaw_then_pitch_then_roll(yaw, pitch, roll) -> None:
    q = scenes.quat_from_euler(yaw, pitch, roll)
    assert q.norm().item() == pytest.approx(1.0, abs=1e-6)
    want = _rot("z", yaw) @ _rot("y", pitch) @ _rot("x", roll)
    assert torch.allclose(quat_to_rotmat(q), want, atol=1e-6)


def test_orbit_camera_sits_on_the_sphere_and_looks_at_the_target() -> None:
    target = (0.3, -0.2, 0.1)
    cam = scenes.orbit_camera(40.0, 25.0, 5.0, 120, 80, target=target)
    assert cam.position.sub(torch.tensor(target)).norm().item() == pytest.approx(5.0, abs=1e-5)
    assert cam.position[2].item() == pytest.approx(0.1 + 5 * math.sin(math.radians(25)), abs=1e-5)
    p = cam.viewmat[:3, :3] @ torch.tensor(target) + cam.viewmat[:3, 3]
    assert p[2].item() == pytest.approx(5.0, abs=1e-5)  # straight ahead ...
    pixel = cam.K @ (p / p[2])
    assert torch.allclose(pixel[:2], torch.tensor([60.0, 40.0]), atol=1e-3)  # ... image centre
    above = cam.viewmat[:3, :3] @ torch.tensor([0.3, -0.2, 1.1]) + cam.viewmat[:3, 3]
    assert above[1] < 0, "world up must appear upwards (negative y) in the image"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"elevation": 90.0}, "elevation"),
        ({"distance": 0.0}, "distance"),
        ({"width": 0}, "width"),
    ],
)
def test_orbit_camera_rejects_bad_input(kwargs, message) -> None:
    args = {"azimuth": 0.0, "elevation": 10.0, "distance": 3.0} | kwargs
    with pytest.raises(ValueError, match=message):
        scenes.orbit_camera(**args)


def test_scenes_store_the_59_numbers_of_3dgs() -> None:
    for scene in (
        scenes.one_gaussian(),
        scenes.occluding_pair(),
        scenes.glossy_gaussian(),
        scenes.sh_cloud(n=12),
    ):
        n = len(scene)
        stored = sum(
            t.numel() for t in (scene.means, scene.quats, scene.scales, scene.opacities, scene.sh)
        )
        assert stored == n * params_per_gaussian(3) == n * 59


def test_scene_rejects_wrong_shapes() -> None:
    good = scenes.one_gaussian()
    with pytest.raises(ValueError, match="sh must have shape"):
        scenes.GaussianScene(good.means, good.quats, good.scales, good.opacities, good.sh[:, :9])
    with pytest.raises(ValueError, match="quats"):
        scenes.GaussianScene(good.means, good.quats[:, :3], good.scales, good.opacities, good.sh)


def test_sh_cloud_is_seeded_and_its_discs_lie_on_the_ring() -> None:
    a, b, c = scenes.sh_cloud(30, seed=1), scenes.sh_cloud(30, seed=1), scenes.sh_cloud(30, seed=2)
    assert torch.equal(a.means, b.means) and torch.equal(a.sh, b.sh)
    assert not torch.equal(a.means, c.means)
    # the flat axis (scale 0.02, column 2 of R) is the torus normal at each centre
    xy = a.means[:, :2]
    ring_point = torch.cat([xy / xy.norm(dim=-1, keepdim=True), torch.zeros(30, 1)], dim=-1)
    normal = a.means - ring_point
    normal = normal / normal.norm(dim=-1, keepdim=True)
    flat_axis = quat_to_rotmat(a.quats)[:, :, 2]
    assert torch.allclose((flat_axis * normal).sum(-1).abs(), torch.ones(30), atol=1e-4)
    assert torch.equal(scenes.sh_cloud(5, view_dependence=0.0).sh[:, 1:], torch.zeros(5, 15, 3))
    with pytest.raises(ValueError, match="n must be"):
        scenes.sh_cloud(0)


def test_glossy_gaussian_changes_colour_with_the_view() -> None:
    glossy = scenes.glossy_gaussian()
    from_x = glossy.colours(scenes.orbit_camera(0, 0, 4))[0]
    from_minus_x = glossy.colours(scenes.orbit_camera(180, 0, 4))[0]
    assert from_x[0] > from_x[2] + 0.5, "red from +x"
    assert from_minus_x[2] > from_minus_x[0] + 0.5, "blue from -x"
    flat = glossy.colours(scenes.orbit_camera(0, 0, 4), sh_degree=0)[0]
    assert torch.allclose(flat, glossy.colours(scenes.orbit_camera(180, 0, 4), sh_degree=0)[0])


def test_scene_render_calls_the_rasterizer_with_its_parameters() -> None:
    scene = scenes.occluding_pair()
    cam = scenes.orbit_camera(0, 10, 4, 64, 48)
    image, alpha, info = scene.render(cam, background=(0.0, 1.0, 0.0))
    renders, alphas, _ = rasterization(
        scene.means,
        scene.quats,
        scene.scales,
        scene.opacities,
        scene.sh,
        cam.viewmat[None],
        cam.K[None],
        64,
        48,
        sh_degree=3,
        backgrounds=torch.tensor([[0.0, 1.0, 0.0]]),
    )
    assert torch.equal(image, renders[0]) and torch.equal(alpha, alphas[0, ..., 0])
    assert image[0, 0, 1] > 0.99, "an empty corner shows the background"
    assert info["width"] == 64 and info["height"] == 48 and info["n_cameras"] == 1
    depth, _, _ = scene.render(cam, render_mode="ED")
    assert depth.shape == (48, 64, 1)


# --------------------------------------------------------------------------------------------
# compositing
# --------------------------------------------------------------------------------------------


def test_composite_front_to_back_by_hand() -> None:
    colours = torch.tensor([[1.0, 0, 0], [0, 0, 1.0], [0, 1.0, 0]])
    colour, alpha = compositing.composite_front_to_back(colours, torch.tensor([0.5, 0.5, 0.0]))
    assert torch.allclose(colour, torch.tensor([0.5, 0.0, 0.25]))
    assert alpha.item() == pytest.approx(0.75)
    colour, alpha = compositing.composite_front_to_back(colours, torch.tensor([1.0, 0.7, 0.9]))
    assert torch.allclose(colour, colours[0]) and alpha.item() == 1.0, "opaque front hides all"
    colour, alpha = compositing.composite_front_to_back(torch.zeros(0, 3), torch.zeros(0))
    assert colour.shape == (3,) and alpha.item() == 0.0
    with pytest.raises(ValueError, match="channel axis"):
        compositing.composite_front_to_back(colours, torch.ones(2))


def test_alpha_maps_follow_the_rasterizer_rules() -> None:
    m = torch.tensor([[4.5, 3.5]])
    conic = torch.tensor([[0.5, 0.1, 0.25]])
    a = compositing.alpha_maps(m, conic, torch.tensor([1.0]), 10, 8)
    assert a.shape == (1, 8, 10)
    assert a[0, 3, 4].item() == pytest.approx(0.999), "clamped at the centre"
    dx, dy = 7.5 - 4.5, 5.5 - 3.5
    want = math.exp(-(0.5 * (0.5 * dx * dx + 0.25 * dy * dy) + 0.1 * dx * dy))
    assert a[0, 5, 7].item() == pytest.approx(want, rel=1e-5)
    assert (a[(a > 0)] >= 1 / 255).all() and (a == 0).any(), "faint pairs are dropped"


@pytest.mark.parametrize(
    "make", [scenes.one_gaussian, scenes.occluding_pair, lambda: scenes.sh_cloud(40, seed=3)]
)
def test_render_by_hand_equals_the_rasterizer(make) -> None:
    scene = make()
    cam = scenes.orbit_camera(30, 20, 4.0, 64, 48)
    want, want_alpha, _ = scene.render(cam, background=(0.2, 0.3, 0.4))
    got, got_alpha = compositing.render_by_hand(scene, cam, background=(0.2, 0.3, 0.4))
    assert torch.allclose(got, want, atol=1e-5)
    assert torch.allclose(got_alpha, want_alpha, atol=1e-5)


def test_order_matters_for_compositing_but_not_for_the_sum() -> None:
    pair = scenes.occluding_pair()
    front = scenes.orbit_camera(0, 0, 4, 64, 48)  # red is nearer
    back = scenes.orbit_camera(180, 0, 4, 64, 48)  # blue is nearer
    centre = (24, 32)
    composite_front = compositing.render_by_hand(pair, front)[0][centre]
    composite_back = compositing.render_by_hand(pair, back)[0][centre]
    assert composite_front[0] > 2 * composite_front[2], "red covers blue from the front"
    assert composite_back[2] > 2 * composite_back[0], "blue covers red from the back"
    reversed_front = compositing.render_by_hand(pair, front, "reversed")[0][centre]
    assert reversed_front[2] > 2 * reversed_front[0], (
        "compositing in the wrong order puts the far (blue) Gaussian on top"
    )
    sum_front = compositing.render_by_hand(pair, front, "sum")[0]
    # a sum is each Gaussian's a * c on its own, added up: no order, no occlusion
    alone = [compositing.render_by_hand(pair.subset([i]), front)[0] for i in range(2)]
    assert torch.allclose(sum_front, alone[0] + alone[1], atol=1e-6)
    assert not torch.allclose(compositing.render_by_hand(pair, front)[0], sum_front, atol=0.1)
    composite = compositing.render_by_hand(pair, front)[0]
    assert sum_front.sum() > composite.sum() + 1.0, "without occlusion the overlap adds up"
    with pytest.raises(ValueError, match="mode must be"):
        compositing.render_by_hand(pair, front, "backwards")
