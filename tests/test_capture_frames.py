"""The rules every capture format shares (splatcourse.capture.frames): which mask file belongs
to a photo, alpha masks, and photos of different sizes. Each rule is checked for PhotoScan,
COLMAP and transforms.json by writing the same small synthetic scene in each format."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from splatcourse.capture import (
    Frame,
    assemble,
    find_mask,
    load_colmap,
    load_photoscan_folder,
    load_transforms_json,
    synthetic_capture,
    write_colmap_text,
    write_transforms_json,
)
from splatcourse.capture.frames import MASK_NAMES

FORMATS = ["photoscan", "colmap", "transforms.json"]
#: The names the PhotoScan loader accepted (a superset of the COLMAP loader's), best first.
ACCEPTED_MASK_NAMES = [
    "{stem}_mask.png",
    "{stem}_mask.jpg",
    "{stem}_mask.JPG",
    "{stem}.png",
    "{name}.png",
]


@pytest.fixture(scope="module")
def scene():
    return synthetic_capture(width=32).subset([0, 1, 2])  # 32x24, names view_00N.png


def write_photoscan_xml(cap, path):
    """A minimal PhotoScan 1.x camera export: one sensor, camera-to-world transforms."""
    K = cap.Ks[0].double()
    cams = "".join(
        f'<camera id="{i}" label="{name}" sensor_id="0"><transform>'
        + " ".join(repr(float(x)) for x in torch.linalg.inv(cap.viewmats[i].double()).flatten())
        + "</transform></camera>"
        for i, name in enumerate(cap.image_names)
    )
    path.write_text(
        f'<document version="1.2.0"><chunk><sensors><sensor id="0" label="s" type="frame">'
        f'<resolution width="{cap.width}" height="{cap.height}"/><calibration type="frame">'
        f'<resolution width="{cap.width}" height="{cap.height}"/><fx>{K[0, 0]}</fx>'
        f"<fy>{K[1, 1]}</fy><cx>{K[0, 2]}</cx><cy>{K[1, 2]}</cy></calibration></sensor>"
        f"</sensors><cameras>{cams}</cameras></chunk></document>"
    )


def write_scene(fmt, cap, root):
    """`cap` as `fmt` in root (photos in root/images, masks root/masks/STEM.png); the loader."""
    if fmt == "transforms.json":
        path = write_transforms_json(cap, root)
        meta = json.loads(path.read_text())
        for fr in meta["frames"]:
            del fr["mask_path"]  # so the masks/ folder is searched
        path.write_text(json.dumps(meta))
        return lambda **kw: load_transforms_json(root, **kw)
    write_colmap_text(cap, root)
    if fmt == "colmap":
        return lambda **kw: load_colmap(root, **kw)
    shutil.rmtree(root / "sparse")
    write_photoscan_xml(cap, root / "cameras.xml")
    return lambda **kw: load_photoscan_folder(root, **kw)


def save_as(src, dst, size=None):
    """Re-save an image under another name (the format follows the extension), resized."""
    jpeg = dst.suffix.lower() == ".jpg"
    with Image.open(src) as im:
        im = im.convert("RGB") if jpeg else im
        im = im.resize(size, Image.NEAREST) if size is not None else im
        im.save(dst, **({"quality": 100} if jpeg else {}))


# ---- mask names -------------------------------------------------------------------------------


def test_find_mask_prefers_the_first_pattern_and_names_what_it_tried(tmp_path):
    assert list(MASK_NAMES) == ACCEPTED_MASK_NAMES
    assert find_mask(None, "a.JPG") is None  # no masks folder: no mask
    (tmp_path / "a.png").touch()
    assert find_mask(tmp_path, "a.JPG") == tmp_path / "a.png"
    (tmp_path / "a_mask.png").touch()
    assert find_mask(tmp_path, "a.JPG") == tmp_path / "a_mask.png"
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.jpg.png").touch()  # photos in subfolders keep them for masks
    assert find_mask(tmp_path, "sub/b.jpg") == tmp_path / "sub" / "b.jpg.png"
    with pytest.raises(FileNotFoundError, match=r"c\.JPG.*c_mask\.png.*c_mask\.JPG.*c\.JPG\.png"):
        find_mask(tmp_path, "c.JPG")


@pytest.mark.parametrize("pattern", ACCEPTED_MASK_NAMES)
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_accepts_every_mask_name(scene, tmp_path, fmt, pattern):
    load = write_scene(fmt, scene, tmp_path)
    masks = tmp_path / "masks"
    for name in scene.image_names:
        stem = name.removesuffix(".png")
        save_as(masks / name, masks / pattern.format(stem=stem, name=name))
        if pattern.format(stem=stem, name=name) != name:
            (masks / name).unlink()
    cap = load()
    assert cap.masks is not None and torch.equal(cap.masks, scene.masks)
    assert (cap.images[~cap.masks] == 0).all()  # composited over the background


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_missing_mask_is_an_error_naming_the_photo(scene, tmp_path, fmt):
    load = write_scene(fmt, scene, tmp_path)
    (tmp_path / "masks" / "view_001.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"view_001\.png.*view_001_mask\.png"):
        load()


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_masks_by_the_alpha_channel_without_mask_files(scene, tmp_path, fmt):
    load = write_scene(fmt, scene, tmp_path)
    for name in scene.image_names:
        rgb = Image.open(tmp_path / "images" / name).convert("RGB")
        rgb.putalpha(Image.open(tmp_path / "masks" / name).convert("L"))
        rgb.save(tmp_path / "images" / name)
    shutil.rmtree(tmp_path / "masks")
    cap = load(background=(0.0, 0.0, 1.0))
    assert torch.equal(cap.masks, scene.masks)
    assert (cap.images[~cap.masks] == torch.tensor([0.0, 0.0, 1.0])).all()
    # some photos masked and some not is refused
    Image.open(tmp_path / "images" / "view_002.png").convert("RGB").save(
        tmp_path / "images" / "view_002.png"
    )
    with pytest.raises(ValueError, match=r"2 of 3 photos have a mask.*view_002\.png"):
        load()


# ---- photos of different sizes ----------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_loads_a_resized_copy_with_its_intrinsics_scaled(scene, tmp_path, fmt):
    load = write_scene(fmt, scene, tmp_path)
    reference = load()
    # the FIRST photo (and its mask) is a 2x copy: the capture keeps the others' 32x24
    for folder in ("images", "masks"):
        save_as(tmp_path / folder / "view_000.png", tmp_path / folder / "view_000.png", (64, 48))
    cap = load()
    assert (cap.width, cap.height) == (32, 24)
    assert torch.equal(cap.Ks, reference.Ks)
    assert torch.equal(cap.images[1:], reference.images[1:])
    assert (cap.images[0] - reference.images[0]).abs().mean() < 0.02  # LANCZOS of a 2x copy
    assert any("view_000.png (64x48)" in n and "resampled to 32x24" in n for n in cap.notes)
    half = load(width=16)
    assert (half.width, half.height) == (16, 12)
    scale = torch.tensor([[0.5], [0.5], [1.0]])
    assert torch.allclose(half.Ks, reference.Ks * scale, rtol=1e-6)  # the 2x one included


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_photo_rotated_against_its_calibration_is_refused(scene, tmp_path, fmt):
    load = write_scene(fmt, scene, tmp_path)
    photo = tmp_path / "images" / "view_001.png"
    Image.open(photo).transpose(Image.Transpose.ROTATE_90).save(photo)
    with pytest.raises(ValueError, match=r"view_001\.png: the photo is 24x32 .* at 32x24"):
        load()


def test_field_of_view_intrinsics_follow_each_photos_own_size(tmp_path):
    """NeRF-synthetic style (camera_angle_x, no w/h): K comes from each photo's own size."""
    rgba = np.zeros((20, 24, 4), np.uint8)
    rgba[5:15, 6:18] = [255, 0, 0, 255]
    for i, scale in enumerate((1, 2, 1)):
        Image.fromarray(rgba).resize((24 * scale, 20 * scale), Image.NEAREST).save(
            tmp_path / f"r_{i}.png"
        )
    c2w = np.eye(4)
    c2w[2, 3] = 4.0
    meta = {
        "camera_angle_x": 2 * np.arctan(0.5),
        "frames": [{"file_path": f"r_{i}", "transform_matrix": c2w.tolist()} for i in range(3)],
    }
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    cap = load_transforms_json(tmp_path)
    assert (cap.width, cap.height) == (24, 20)
    expected = torch.tensor([[24.0, 0, 12], [0, 24, 10], [0, 0, 1]])  # f = 0.5 w / tan(fov/2)
    assert torch.allclose(cap.Ks, expected.expand(3, 3, 3))
    assert (cap.masks == cap.masks[0]).all()


def test_a_portrait_photo_among_landscapes_projects_correctly(tmp_path):
    """Its own 24x32 calibration is squashed into the common 32x24, K scaled in x and y."""
    for i, (w, h) in enumerate([(32, 24), (24, 32), (32, 24)]):
        Image.fromarray(np.full((h, w, 3), 100, np.uint8)).save(tmp_path / f"p{i}.png")
    c2w = np.eye(4)
    c2w[2, 3] = 4.0
    frames = [
        {"file_path": f"p{i}.png", "transform_matrix": c2w.tolist(), "w": w, "h": h}
        for i, (w, h) in enumerate([(32, 24), (24, 32), (32, 24)])
    ]
    frames[1].update(fl_x=20.0, fl_y=22.0, cx=6.0, cy=9.0)
    meta = {"fl_x": 30.0, "fl_y": 30.0, "frames": frames}
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    cap = load_transforms_json(tmp_path)
    assert (cap.width, cap.height) == (32, 24)
    assert any("p1.png (24x32)" in n for n in cap.notes)
    # a point 1 right, 2 down (OpenCV camera) at depth 4: (6 + 20/4, 9 + 22*2/4) in the 24x32
    # photo, so (11 * 32/24, 20 * 24/32) in the resampled one
    xyz = torch.tensor([[1.0, -2.0, 0.0]])  # world = OpenGL camera frame shifted by 4 along z
    uv, depth = cap.project(xyz)
    assert depth[1, 0].item() == pytest.approx(4.0)
    assert torch.allclose(uv[1, 0], torch.tensor([11 * 32 / 24, 20 * 24 / 32]))


def test_assemble_hand_made_frames_with_K_in_each_photos_own_pixels(tmp_path):
    """The public API for a new format: K_size=None means K is in the photo's own pixels."""
    for name, w in (("a.png", 40), ("b.png", 20), ("c.png", 40)):
        Image.fromarray(np.full((w * 3 // 4, w, 3), 200, np.uint8)).save(tmp_path / name)
    K40 = np.array([[50.0, 0, 20], [0, 50, 15], [0, 0, 1]])
    frames = [
        Frame("a.png", tmp_path / "a.png", np.eye(4), K40),
        Frame("b.png", tmp_path / "b.png", np.eye(4), K40 * [[0.5], [0.5], [1]]),
        Frame("c.png", tmp_path / "c.png", np.eye(4), K40),
    ]
    points = np.array([[0.0, 0.0, 1.0]])
    cap = assemble(frames, name="hand", source="test", points=points, point_colors=points)
    assert (cap.width, cap.height) == (40, 30) and cap.masks is None
    assert torch.equal(cap.Ks, torch.tensor(K40, dtype=torch.float32).expand(3, 3, 3))
    assert cap.image_names == ["a.png", "b.png", "c.png"] and cap.points.tolist() == [[0, 0, 1]]
    assert len(cap.notes) == 1 and "resampled to 40x30" in cap.notes[0]
    assert cap.notes[0].endswith(": b.png (20x15)")
    with pytest.raises(ValueError, match="test: no frames"):
        assemble([], name="empty", source="test")
