"""The shared real capture (socketed axe): poses, intrinsics and conventions checked against
the photos' own masks. Skipped when ../shared/data/socketed_axe_arreton is absent."""

import numpy as np
import pytest
import torch

from splatcourse.capture import (
    COURSE_CAPTURE,
    load_capture,
    read_bundler,
    read_photoscan_xml,
)
from splatcourse.capture.photoscan import bundler_agreement
from splatcourse.paths import shared_data_dir

AXE = shared_data_dir() / COURSE_CAPTURE
pytestmark = pytest.mark.skipif(not AXE.is_dir(), reason=f"shared capture not found at {AXE}")
XML = AXE / "other" / "Socketed_axe_cameras.xml"
OUT = AXE / "other" / "Socketed_axe_cameras.out"


@pytest.fixture(scope="module")
def axe():
    return load_capture(AXE, verbose=False)  # by path: the course resolution comes from the name


@pytest.fixture(scope="module")
def axe_named(tmp_path_factory):
    """By name (so at the manifest's resolution), from the shared copy even where a download
    exists (a download holds 50 views: the shared copy lacks two photos)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPLATCOURSE_CAPTURES_DIR", str(tmp_path_factory.mktemp("no_downloads")))
        return load_capture(COURSE_CAPTURE, fallback=False, verbose=False)


def test_loads_48_posed_views_with_photos_and_notes_the_rest(axe_named):
    cap = axe_named
    assert cap.name == COURSE_CAPTURE
    assert len(cap) == 48 and (cap.width, cap.height) == (256, 170)
    assert cap.image_names[0] == "IMG_8839.JPG" and cap.image_names[-1] == "IMG_8888.JPG"
    assert "IMG_8861.JPG" not in cap.image_names and "IMG_8835.JPG" not in cap.image_names
    notes = " ".join(cap.notes)
    assert "IMG_8861.JPG, IMG_8871.JPG" in notes and "IMG_8835.JPG" in notes
    assert cap.test_idx == [0, 8, 16, 24, 32, 40] and len(cap.train_idx) == 42
    assert "MicroPasts" in cap.attribution and "CC BY 4.0" in cap.attribution
    assert cap.masks is not None and cap.masks.shape == (48, 170, 256)


def test_intrinsics_are_scaled_from_full_resolution(axe, axe_named):
    assert (axe.width, axe.height) == (512, 341)
    i0 = axe.image_names.index("IMG_8839.JPG")  # sensor 0
    i1 = axe.image_names.index("IMG_8862.JPG")  # sensor 1
    sx, sy = 512 / 5184, 341 / 3456
    assert axe.Ks[i0, 0, 0].item() == pytest.approx(12150.562 * sx, rel=1e-6)
    assert axe.Ks[i0, 1, 1].item() == pytest.approx(12150.562 * sy, rel=1e-6)
    assert axe.Ks[i0, 0, 2].item() == pytest.approx(2614.596 * sx, rel=1e-6)
    assert axe.Ks[i1, 1, 2].item() == pytest.approx(1562.496 * sy, rel=1e-6)
    half = axe_named
    assert torch.allclose(half.Ks[:, 0], axe.Ks[:, 0] * 256 / 512, rtol=1e-6)
    assert torch.allclose(half.Ks[:, 1], axe.Ks[:, 1] * 170 / 341, rtol=1e-6)


@pytest.mark.parametrize("which", ["region centre", "point centroid"])
def test_object_centre_projects_inside_the_mask_in_every_view(axe, which):
    """The real geometry check: poses + intrinsics + convention against hand-made masks."""
    x = torch.zeros(1, 3) if which == "region centre" else axe.points.mean(0, keepdim=True)
    uv, depth = axe.project(x)
    assert (depth > 0).all()
    u, v = uv[:, 0, 0].long(), uv[:, 0, 1].long()
    assert ((u >= 0) & (u < axe.width) & (v >= 0) & (v < axe.height)).all()
    assert axe.masks[torch.arange(len(axe)), v, u].all()


def test_sparse_points_fall_inside_the_masks(axe):
    uv, depth = axe.project(axe.points)
    u, v = uv[..., 0].floor().long(), uv[..., 1].floor().long()
    ok = (depth > 0) & (u >= 0) & (u < axe.width) & (v >= 0) & (v < axe.height)
    n = torch.arange(len(axe))[:, None].expand_as(u)
    inside = torch.zeros_like(ok)
    inside[ok] = axe.masks[n[ok], v[ok], u[ok]]
    per_view = inside.sum(1) / ok.sum(1)
    assert per_view.min() > 0.93 and per_view.median() > 0.97, per_view
    assert 12000 < len(axe.points) <= 12354
    assert axe.point_colors.min() >= 0 and axe.point_colors.max() <= 1


def test_bbox_is_the_region_box_and_holds_the_points(axe):
    assert torch.allclose(axe.bbox[1], -axe.bbox[0])
    # PhotoScan region 3.73 x 1.80 x 1.68 chunk units at 0.0436 m per unit: a 16 cm axe
    assert axe.bbox[1, 0].item() * 2 == pytest.approx(3.7301 * 0.043607, rel=1e-3)
    inside = (axe.points.abs() <= axe.bbox[1] * 1.05).all(-1)
    assert inside.all()
    assert 0.3 < axe.scene_scale() < 1.0  # cameras about 0.5 m from the object


def test_bundler_and_photoscan_agree():
    doc = read_photoscan_xml(XML)
    model = read_bundler(OUT)
    assert len(doc.cameras) == len(model.cameras) == 50
    assert len(model.points) == 12354 and model.colors.dtype == np.uint8
    assert bundler_agreement(doc, model) < 1e-8
    # focal lengths and the first radial term are the same numbers
    for cam, bc in zip(doc.cameras, model.cameras):
        s = doc.sensors[cam.sensor_id]
        assert bc.focal == pytest.approx(s.fx, rel=1e-9)
        assert bc.k1 == pytest.approx(s.dist["k1"], rel=1e-9)


def test_background_outside_the_mask_is_constant():
    cap = load_capture(AXE, width=128, background=(1.0, 0.0, 1.0), verbose=False)
    far = ~torch.nn.functional.max_pool2d(cap.masks[:, None].float(), 5, 1, 2)[:, 0].bool()
    assert torch.allclose(cap.images[far], torch.tensor([1.0, 0.0, 1.0]), atol=1e-6)
    assert cap.background == (1.0, 0.0, 1.0)
    inside = cap.images[cap.masks]
    assert (inside - torch.tensor([1.0, 0.0, 1.0])).abs().sum(-1).mean() > 0.5  # the photo shows


def test_gsplat_projection_agrees_with_the_capture_convention(axe):
    """gsplat's own (pure-torch) projection puts the SfM points where Capture.project does,
    so the poses can go to the rasterizer unchanged."""
    from gsplat.cuda._torch_impl import _fully_fused_projection

    pts = axe.points[::50]
    covars = torch.eye(3).expand(len(pts), 3, 3) * 1e-8
    radii, means2d, depths, _, _ = _fully_fused_projection(
        pts, covars, axe.viewmats, axe.Ks, axe.width, axe.height
    )
    uv, depth = axe.project(pts)
    assert torch.allclose(means2d, uv, atol=1e-3)
    assert torch.allclose(depths, depth, atol=1e-6)
    assert (radii > 0).any(-1).float().mean() > 0.9  # gsplat keeps them (in front, on screen)
