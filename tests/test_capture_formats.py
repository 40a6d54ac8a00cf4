"""transforms.json and COLMAP readers: round trips through the writers, plus small hand-made
files whose answer is known (camera conventions, intrinsics from a field of view); the PhotoScan
camera XML reader on hand-made files (Metashape intrinsics, errors naming what is missing)."""

import json
import math
import re

import numpy as np
import pytest
import torch
from PIL import Image

from splatcourse.capture import (
    load_capture,
    load_colmap,
    load_folder,
    load_transforms_json,
    read_colmap_model,
    read_photoscan_xml,
    synthetic_capture,
    write_colmap_text,
    write_transforms_json,
)
from splatcourse.capture.colmap import quat_to_rotmat, rotmat_to_quat


@pytest.fixture(scope="module")
def small():
    return synthetic_capture(width=48).subset(list(range(10)))


def assert_same_capture(a, b, image_atol=1 / 255 + 1e-6):
    assert b.image_names == [n.replace(".png", "") + ".png" for n in a.image_names]
    assert torch.allclose(a.viewmats, b.viewmats, atol=1e-5)
    assert torch.allclose(a.Ks, b.Ks, atol=1e-5)
    assert torch.equal(a.masks, b.masks)
    # The files carry hard masks, so pixels the object only partly covers come back as
    # background; on the object the photos survive up to 8-bit rounding.
    assert (a.images - b.images)[a.masks].abs().max() <= image_atol
    assert (b.images[~b.masks] == torch.tensor(b.background)).all()
    assert torch.allclose(a.points, b.points, atol=1e-6)
    assert (a.point_colors - b.point_colors).abs().max() <= 1 / 255 + 1e-6


def test_transforms_json_round_trip(small, tmp_path):
    out = write_transforms_json(small, tmp_path / "ns")
    meta = json.loads(out.read_text())
    # the file really is in the OpenGL convention: the camera's -z axis looks at the object
    c2w = np.array(meta["frames"][0]["transform_matrix"])
    to_origin = -c2w[:3, 3] / np.linalg.norm(c2w[:3, 3])
    assert np.dot(-c2w[:3, 2], to_origin) > 0.999
    back = load_transforms_json(tmp_path / "ns")
    assert_same_capture(small, back)
    assert load_folder(tmp_path / "ns").image_names == back.image_names  # format detection


def test_transforms_json_nerf_synthetic_style(tmp_path):
    """camera_angle_x only, file paths without extension, RGBA images with alpha as mask."""
    w = h = 20
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[5:15, 5:15] = [255, 0, 0, 255]
    for i in range(3):
        Image.fromarray(rgba).save(tmp_path / f"r_{i}.png")
    # camera at +z = 4 looking at the origin (OpenGL: looks down its -z axis)
    c2w = np.eye(4)
    c2w[2, 3] = 4.0
    meta = {
        "camera_angle_x": 2 * math.atan(0.5),
        "frames": [{"file_path": f"./r_{i}", "transform_matrix": c2w.tolist()} for i in (2, 0, 1)],
    }
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    cap = load_capture(tmp_path, verbose=False, background=(0.0, 1.0, 0.0))
    assert cap.image_names == ["r_0.png", "r_1.png", "r_2.png"]  # sorted by path
    assert cap.Ks[0, 0, 0].item() == pytest.approx(20.0)  # 0.5 * w / tan(fov / 2)
    assert cap.Ks[0, 0, 2].item() == pytest.approx(10.0)
    uv, depth = cap.project(torch.zeros(1, 3))
    assert depth[0, 0].item() == pytest.approx(4.0) and torch.allclose(
        uv[0, 0], torch.tensor([10.0, 10.0])
    )
    # OpenCV y points down: a world point above the origin (+y up in the GL camera) has smaller v
    uv_up, _ = cap.project(torch.tensor([[0.0, 1.0, 0.0]]))
    assert uv_up[0, 0, 1] < 10.0
    assert cap.masks[0, 10, 10] and not cap.masks[0, 0, 0]
    assert cap.images[0, 0, 0].tolist() == [0.0, 1.0, 0.0]  # transparent -> background
    assert cap.images[0, 10, 10].tolist() == [1.0, 0.0, 0.0]


def test_transforms_json_errors_name_the_problem(tmp_path):
    (tmp_path / "transforms.json").write_text(
        json.dumps(
            {
                "fl_x": 10,
                "frames": [{"file_path": "missing.png", "transform_matrix": np.eye(4).tolist()}],
            }
        )
    )
    with pytest.raises(FileNotFoundError, match=r"missing\.png"):
        load_transforms_json(tmp_path)


METASHAPE_SENSOR = (
    '<sensor id="0" label="toy" type="frame"><resolution width="200" height="100"/>'
    '<calibration type="frame"><resolution width="200" height="100"/>'
    "<f>150</f><cx>4</cx><cy>-2</cy><k1>0.1</k1></calibration></sensor>"
)
METASHAPE_CAMERA = '<camera id="3" label="a.jpg" sensor_id="0"/>'


def metashape_xml(tmp_path, sensors=METASHAPE_SENSOR, cameras=METASHAPE_CAMERA):
    path = tmp_path / "cameras.xml"
    path.write_text(
        f'<document version="1.4.0"><chunk><sensors>{sensors}</sensors>'
        f"<cameras>{cameras}</cameras></chunk></document>"
    )
    return path


def test_photoscan_xml_metashape_intrinsics_are_offsets_from_the_centre(tmp_path):
    doc = read_photoscan_xml(metashape_xml(tmp_path))
    sensor = doc.sensors["0"]
    assert (sensor.fx, sensor.fy, sensor.cx, sensor.cy) == (150.0, 150.0, 104.0, 48.0)
    assert sensor.dist == {"k1": 0.1}
    cam = doc.cameras[0]
    assert (cam.id, cam.label, cam.sensor_id, cam.enabled) == ("3", "a.jpg", "0", True)
    assert cam.transform is None  # not aligned
    assert np.array_equal(doc.chunk_to_world, np.eye(4)) and doc.region_center is None


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            ('<resolution width="200" height="100"/><cal', "<cal"),
            r'<sensor id="0"> without <resolution>',
        ),
        (("calibration", "calib"), r'<sensor id="0"> without <calibration>'),
        ((' id="0" label="toy"', ""), r"<sensor> without the id attribute"),
        (
            ('<resolution width="200" height="100"/><f', '<resolution height="100"/><f'),
            r"<calibration> <resolution> without the width attribute",
        ),
        (("<f>150</f><cx>4</cx>", "<fx>150</fx>"), r"<calibration> without <cx>"),
        (("<f>150</f>", ""), r"<calibration> without a focal length"),
        (("<k1>0.1</k1>", "<k1/>"), r"<calibration>: <k1> is empty"),
        (("<f>150</f>", "<f>1 50</f>"), r"<calibration>: <f> is not a number: '1 50'"),
    ],
)
def test_photoscan_xml_errors_name_the_file_and_the_missing_element(tmp_path, edit, message):
    path = metashape_xml(tmp_path, sensors=METASHAPE_SENSOR.replace(*edit))
    with pytest.raises(ValueError, match=f"camera XML {re.escape(str(path))}: .*{message}"):
        read_photoscan_xml(path)


def test_photoscan_xml_camera_without_a_sensor_id_is_an_error(tmp_path):
    path = metashape_xml(tmp_path, cameras='<camera id="3" label="a.jpg"/>')
    with pytest.raises(
        ValueError, match=r'<camera label="a\.jpg"> without the sensor_id attribute'
    ):
        read_photoscan_xml(path)


def test_colmap_round_trip(small, tmp_path):
    model_dir = write_colmap_text(small, tmp_path / "scene")
    assert model_dir == tmp_path / "scene" / "sparse" / "0"
    back = load_colmap(tmp_path / "scene")
    assert_same_capture(small, back)
    assert load_colmap(model_dir).image_names == back.image_names  # the model folder works too
    assert load_capture(tmp_path / "scene", verbose=False).name == "scene"


def test_colmap_hand_written_model(tmp_path):
    (tmp_path / "images").mkdir()
    Image.fromarray(np.full((30, 40, 3), 128, np.uint8)).save(tmp_path / "images" / "a.jpg")
    # a camera rotated 90 degrees about y, 2 units in front of the origin
    R = np.array([[0.0, 0, -1], [0, 1, 0], [1, 0, 0]])
    q = rotmat_to_quat(R)
    (tmp_path / "cameras.txt").write_text(
        "# Camera list\n1 SIMPLE_RADIAL 80 60 50.0 40.0 30.0 0.01\n"
    )
    (tmp_path / "images.txt").write_text(
        f"# Image list\n7 {q[0]} {q[1]} {q[2]} {q[3]} 0 0 2 1 a.jpg\n10.0 20.0 -1\n"
    )
    (tmp_path / "points3D.txt").write_text("# 3D points\n1 0.5 0.25 -1 255 0 128 0.3 7 0\n")
    model = read_colmap_model(tmp_path)
    assert model.cameras[1].model == "SIMPLE_RADIAL" and model.cameras[1].has_distortion
    cap = load_colmap(tmp_path, images_dir=tmp_path / "images")
    assert (cap.width, cap.height) == (40, 30)
    # K scaled from the 80x60 calibration to the 40x30 photo
    assert torch.allclose(cap.Ks[0], torch.tensor([[25.0, 0, 20], [0, 25, 15], [0, 0, 1]]))
    assert torch.allclose(cap.viewmats[0, :3, :3], torch.tensor(R, dtype=torch.float32), atol=1e-6)
    assert cap.points.tolist() == [[0.5, 0.25, -1.0]]
    assert torch.allclose(cap.point_colors, torch.tensor([[1.0, 0.0, 128 / 255]]))
    assert any("distortion" in n for n in cap.notes)


def test_colmap_binary_without_pycolmap_says_how_to_export_text(tmp_path, monkeypatch):
    import sys

    (tmp_path / "cameras.bin").write_bytes(b"\0" * 8)
    monkeypatch.setitem(sys.modules, "pycolmap", None)  # make the import fail
    with pytest.raises(ImportError, match="model_converter"):
        read_colmap_model(tmp_path)


def test_quaternion_round_trip():
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        q = torch.randn(4, generator=g).double().numpy()
        q /= np.linalg.norm(q)
        R = quat_to_rotmat(q)
        assert np.allclose(R @ R.T, np.eye(3), atol=1e-12)
        assert np.allclose(quat_to_rotmat(rotmat_to_quat(R)), R, atol=1e-12)
    for R in (np.diag([1.0, -1, -1]), np.diag([-1.0, 1, -1]), np.diag([-1.0, -1, 1])):
        assert np.allclose(quat_to_rotmat(rotmat_to_quat(R)), R)
