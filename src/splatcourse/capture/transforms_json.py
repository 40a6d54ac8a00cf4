"""nerfstudio / instant-ngp / NeRF-synthetic `transforms.json` captures.

The file lists frames with a camera-to-world `transform_matrix` in the OpenGL camera
convention (x right, y up, camera looking down -z). Flipping the camera's y and z axes gives
the OpenCV convention used by `Capture`. Intrinsics come from `fl_x, fl_y, cx, cy, w, h` (per
frame or shared at the top) or, NeRF-synthetic style, from `camera_angle_x` only.
Masks come from nerfstudio's `mask_path`, else from a `masks/` folder beside the file, else from
the alpha channel of RGBA images (see `splatcourse.capture.frames`); nerfstudio's
`ply_file_path` provides initial points. Distortion coefficients are ignored (with a note).
Frames are ordered by file path so the held-out split does not depend on the file's order.

Used by: students bringing their own capture (nerfstudio / instant-ngp layouts).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .dataset import Capture
from .frames import Frame, assemble, find_mask, masks_folder_in
from .images import image_size

#: OpenGL camera axes -> OpenCV camera axes (right-multiply a camera-to-world matrix).
GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])
_INTRINSIC_KEYS = ("fl_x", "fl_y", "cx", "cy", "w", "h", "camera_angle_x", "camera_angle_y")


def _resolve_image(base: Path, file_path: str) -> Path:
    p = base / file_path
    if p.suffix == "" or not p.is_file():
        for ext in ("", ".png", ".jpg", ".jpeg", ".JPG", ".PNG"):
            if (p.parent / (p.name + ext)).is_file():
                return p.parent / (p.name + ext)
    if not p.is_file():
        raise FileNotFoundError(f"image {file_path!r} listed in transforms.json not found at {p}")
    return p


def _intrinsics(cam: dict, img_path: Path, where: str) -> tuple[np.ndarray, tuple[int, int]]:
    """(K, the size (w, h) K is in pixels of): the file's `w`, `h`, else the photo's own size."""
    img_w, img_h = image_size(img_path)
    w, h = cam.get("w", img_w), cam.get("h", img_h)
    if "fl_x" in cam or "fl_y" in cam:
        fx = cam.get("fl_x", cam.get("fl_y"))
        fy = cam.get("fl_y", fx)
    elif "camera_angle_x" in cam:
        fx = 0.5 * w / math.tan(0.5 * cam["camera_angle_x"])
        fy = 0.5 * h / math.tan(0.5 * cam["camera_angle_y"]) if "camera_angle_y" in cam else fx
    else:
        raise ValueError(f"{where}: no focal length (need fl_x/fl_y or camera_angle_x)")
    cx, cy = cam.get("cx", w / 2), cam.get("cy", h / 2)
    return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]]), (w, h)


def _viewmat(transform_matrix: list, where: str) -> np.ndarray:
    """[4, 4] world-to-camera (OpenCV) from an OpenGL camera-to-world matrix (4x4 or 3x4)."""
    M = np.asarray(transform_matrix, dtype=np.float64)
    if M.shape == (3, 4):
        M = np.vstack([M, [0, 0, 0, 1]])
    if M.shape != (4, 4):
        raise ValueError(f"{where}: transform_matrix must be 4x4, got {M.shape}")
    return np.linalg.inv(M @ GL_TO_CV)


def _frame(fr: dict, where: str, base: Path, shared: dict, masks_dir: Path | None) -> Frame:
    """One entry of `frames`; its own intrinsics keys override the shared ones."""
    if "file_path" not in fr or "transform_matrix" not in fr:
        raise ValueError(f"{where}: needs 'file_path' and 'transform_matrix'")
    img_path = _resolve_image(base, fr["file_path"])
    name = Path(fr["file_path"]).name if Path(fr["file_path"]).suffix else img_path.name
    cam = {**shared, **{k: fr[k] for k in _INTRINSIC_KEYS if k in fr}}
    K, K_size = _intrinsics(cam, img_path, where)
    mask_path = base / fr["mask_path"] if fr.get("mask_path") else find_mask(masks_dir, name)
    return Frame(name, img_path, _viewmat(fr["transform_matrix"], where), K, K_size, mask_path)


def _read_meta(path: Path) -> dict:
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"transforms.json not found: {path}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not meta.get("frames"):
        raise ValueError(f"{path}: no 'frames' list")
    return meta


def load_transforms_json(
    path: str | Path,
    width: int | None = None,
    background: tuple[float, float, float] = (0.0, 0.0, 0.0),
    name: str | None = None,
    attribution: str = "",
) -> Capture:
    """Load a capture described by a transforms.json (pass the file or its folder).
    Masks: a frame's `mask_path`, else `masks/` beside the file, else the photos' alpha;
    mask names and photos of different sizes follow `splatcourse.capture.frames`."""
    path = Path(path)
    if path.is_dir():
        path = path / "transforms.json"
    meta = _read_meta(path)
    base = path.parent
    shared = {k: meta[k] for k in _INTRINSIC_KEYS if k in meta}
    masks_dir = masks_folder_in(base)
    ordered = sorted(meta["frames"], key=lambda f: str(f.get("file_path", "")))
    frames = [
        _frame(fr, f"{path}: frame {i} ({fr.get('file_path')})", base, shared, masks_dir)
        for i, fr in enumerate(ordered)
    ]
    notes = []
    if any(meta.get(k) for k in ("k1", "k2", "p1", "p2")):
        notes.append("lens distortion in transforms.json ignored (pinhole model)")
    points, colors = None, None
    if meta.get("ply_file_path"):
        points, colors = read_points_ply(base / meta["ply_file_path"])
    return assemble(
        frames,
        name=name or base.name,
        source=str(path),
        width=width,
        background=background,
        points=points,
        point_colors=colors,
        attribution=attribution,
        notes=notes,
    )


def read_points_ply(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(xyz [M,3], rgb [M,3] in [0,1]) from a point-cloud PLY with x y z red green blue."""
    from plyfile import PlyData

    try:
        v = PlyData.read(str(path))["vertex"]
    except FileNotFoundError:
        raise FileNotFoundError(f"point cloud not found: {path}") from None
    xyz = np.stack([v["x"], v["y"], v["z"]], -1).astype(np.float64)
    names = v.data.dtype.names
    if all(c in names for c in ("red", "green", "blue")):
        rgb = np.stack([v["red"], v["green"], v["blue"]], -1).astype(np.float64) / 255.0
    else:
        rgb = np.full_like(xyz, 0.5)
    return xyz, rgb


def write_points_ply(path: Path, xyz: np.ndarray, rgb: np.ndarray) -> None:
    from plyfile import PlyData, PlyElement

    data = np.empty(
        len(xyz),
        dtype=[
            ("x", "f4"),
            ("y", "f4"),
            ("z", "f4"),
            ("red", "u1"),
            ("green", "u1"),
            ("blue", "u1"),
        ],
    )
    data["x"], data["y"], data["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    c = np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8)
    data["red"], data["green"], data["blue"] = c[:, 0], c[:, 1], c[:, 2]
    PlyData([PlyElement.describe(data, "vertex")]).write(str(path))


def write_transforms_json(capture: Capture, folder: str | Path) -> Path:
    """Export a capture as nerfstudio data (PNG photos, masks, per-frame intrinsics, points),
    e.g. to train the synthetic capture with another tool."""
    from PIL import Image

    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    if capture.masks is not None:
        (folder / "masks").mkdir(exist_ok=True)
    frames = []
    for i, name in enumerate(capture.image_names):
        stem = Path(name).stem
        img = (capture.images[i].clamp(0, 1).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(img).save(folder / "images" / f"{stem}.png")
        c2w = (
            np.linalg.inv(capture.viewmats[i].double().numpy()) @ GL_TO_CV
        )  # GL_TO_CV is its own inverse
        K = capture.Ks[i].double().numpy()
        fr = {
            "file_path": f"images/{stem}.png",
            "transform_matrix": c2w.tolist(),
            "fl_x": K[0, 0],
            "fl_y": K[1, 1],
            "cx": K[0, 2],
            "cy": K[1, 2],
            "w": capture.width,
            "h": capture.height,
        }
        if capture.masks is not None:
            m = capture.masks[i].numpy().astype(np.uint8) * 255
            Image.fromarray(m).save(folder / "masks" / f"{stem}.png")
            fr["mask_path"] = f"masks/{stem}.png"
        frames.append(fr)
    meta = {"camera_model": "OPENCV", "frames": frames}
    if len(capture.points):
        write_points_ply(
            folder / "points3D.ply",
            capture.points.double().numpy(),
            capture.point_colors.double().numpy(),
        )
        meta["ply_file_path"] = "points3D.ply"
    out = folder / "transforms.json"
    out.write_text(json.dumps(meta, indent=2))
    return out
