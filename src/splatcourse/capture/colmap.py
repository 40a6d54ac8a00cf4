"""COLMAP reconstructions: a plain-Python reader (and writer) for the text model format.

A COLMAP model is three files: `cameras.txt` (intrinsics per camera model), `images.txt` (per
photo a world-to-camera rotation as a quaternion QW QX QY QZ and a translation, already in the
OpenCV convention, then a line of 2D observations) and `points3D.txt` (sparse points with
colours). COLMAP puts pixel centres at +0.5, as `Capture` does, so K is used unchanged.
Binary models (`cameras.bin`, ...) are read through `pycolmap` when it is installed.
Distortion parameters are ignored (a note says so when they are not zero).

The usual layout is `ROOT/images/` + `ROOT/sparse/0/` (+ optional `ROOT/masks/`); `load_colmap`
accepts ROOT or the model folder itself.

Used by: load_folder, for students bringing their own capture; the format tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .dataset import Capture
from .frames import Frame, assemble, find_mask, masks_folder_in
from .pycolmap_import import import_pycolmap

#: Models whose leading parameters are pinhole intrinsics: name -> (fx, fy, cx, cy) indices.
_PINHOLE_PARAMS = {
    "SIMPLE_PINHOLE": (0, 0, 1, 2),
    "PINHOLE": (0, 1, 2, 3),
    "SIMPLE_RADIAL": (0, 0, 1, 2),
    "RADIAL": (0, 0, 1, 2),
    "OPENCV": (0, 1, 2, 3),
    "FULL_OPENCV": (0, 1, 2, 3),
}
_N_PARAMS = {
    "SIMPLE_PINHOLE": 3,
    "PINHOLE": 4,
    "SIMPLE_RADIAL": 4,
    "RADIAL": 5,
    "OPENCV": 8,
    "FULL_OPENCV": 12,
}

BINARY_HELP = (
    "install pycolmap (pip install pycolmap) or convert the model to text with "
    "`colmap model_converter --input_path {d} --output_path {d} --output_type TXT`"
)


@dataclass
class ColmapCamera:
    id: int
    model: str
    width: int
    height: int
    params: np.ndarray

    def K(self) -> np.ndarray:
        if self.model not in _PINHOLE_PARAMS:
            raise ValueError(
                f"COLMAP camera {self.id}: model {self.model} is not supported "
                f"(use one of {', '.join(_PINHOLE_PARAMS)}; undistort fisheye "
                f"captures with `colmap image_undistorter`)"
            )
        fx, fy, cx, cy = (self.params[i] for i in _PINHOLE_PARAMS[self.model])
        return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]])

    @property
    def has_distortion(self) -> bool:
        n = {"SIMPLE_PINHOLE": 3, "PINHOLE": 4, "SIMPLE_RADIAL": 3, "RADIAL": 3}.get(self.model, 4)
        return bool(np.any(self.params[n:] != 0))


@dataclass
class ColmapImage:
    id: int
    qvec: np.ndarray  # w, x, y, z
    tvec: np.ndarray
    camera_id: int
    name: str

    def viewmat(self) -> np.ndarray:
        V = np.eye(4)
        V[:3, :3] = quat_to_rotmat(self.qvec)
        V[:3, 3] = self.tvec
        return V


@dataclass
class ColmapModel:
    cameras: dict[int, ColmapCamera]
    images: dict[int, ColmapImage]
    points: np.ndarray  # [M, 3]
    colors: np.ndarray  # [M, 3] uint8


def quat_to_rotmat(q: np.ndarray) -> np.ndarray:
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def rotmat_to_quat(R: np.ndarray) -> np.ndarray:
    """(w, x, y, z) with w >= 0, robust for every rotation (largest-component method)."""
    R = np.asarray(R, dtype=np.float64)
    t = np.trace(R)
    if t > 0:
        s = 2 * np.sqrt(1 + t)
        q = [s / 4, (R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s]
    else:
        i = int(np.argmax(np.diag(R)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2 * np.sqrt(1 + R[i, i] - R[j, j] - R[k, k])
        q = [0.0] * 4
        q[0] = (R[k, j] - R[j, k]) / s
        q[1 + i] = s / 4
        q[1 + j] = (R[j, i] + R[i, j]) / s
        q[1 + k] = (R[k, i] + R[i, k]) / s
    q = np.array(q)
    return q if q[0] >= 0 else -q


def _data_lines(path: Path) -> list[tuple[int, str]]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise FileNotFoundError(f"COLMAP file not found: {path}") from None
    return [(n + 1, ln) for n, ln in enumerate(text.splitlines()) if not ln.startswith("#")]


def read_cameras_text(path: Path) -> dict[int, ColmapCamera]:
    cams = {}
    for n, ln in _data_lines(path):
        if not ln.strip():
            continue
        v = ln.split()
        try:
            cam = ColmapCamera(
                int(v[0]), v[1], int(v[2]), int(v[3]), np.array(v[4:], dtype=np.float64)
            )
        except (IndexError, ValueError):
            raise ValueError(
                f"{path}: line {n} is not 'CAMERA_ID MODEL WIDTH HEIGHT PARAMS...'"
            ) from None
        if cam.model in _N_PARAMS and len(cam.params) != _N_PARAMS[cam.model]:
            raise ValueError(
                f"{path}: line {n}: {cam.model} needs {_N_PARAMS[cam.model]} params, "
                f"got {len(cam.params)}"
            )
        cams[cam.id] = cam
    return cams


def read_images_text(path: Path) -> dict[int, ColmapImage]:
    images = {}
    lines = _data_lines(path)
    k = 0
    while k < len(lines):
        n, ln = lines[k]
        if not ln.strip():  # a blank line would be an image with no observations: skip it
            k += 1
            continue
        v = ln.split()
        try:
            img = ColmapImage(
                int(v[0]),
                np.array(v[1:5], dtype=np.float64),
                np.array(v[5:8], dtype=np.float64),
                int(v[8]),
                " ".join(v[9:]),
            )
        except (IndexError, ValueError):
            raise ValueError(
                f"{path}: line {n} is not 'IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME'"
            ) from None
        images[img.id] = img
        k += 2  # the next line holds the 2D points (possibly empty)
    return images


def read_points3d_text(path: Path) -> tuple[np.ndarray, np.ndarray]:
    xyz, rgb = [], []
    for n, ln in _data_lines(path):
        if not ln.strip():
            continue
        v = ln.split()
        try:
            xyz.append([float(x) for x in v[1:4]])
            rgb.append([int(c) for c in v[4:7]])
        except (IndexError, ValueError):
            raise ValueError(
                f"{path}: line {n} is not 'POINT3D_ID X Y Z R G B ERROR TRACK...'"
            ) from None
    return np.array(xyz, dtype=np.float64).reshape(-1, 3), np.array(rgb, dtype=np.uint8).reshape(
        -1, 3
    )


def _read_binary_with_pycolmap(model_dir: Path) -> ColmapModel:
    try:
        pycolmap = import_pycolmap()
    except ImportError:
        raise ImportError(
            f"{model_dir} holds a binary COLMAP model: " + BINARY_HELP.format(d=model_dir)
        ) from None
    rec = pycolmap.Reconstruction(str(model_dir))
    cams = {
        cid: ColmapCamera(cid, c.model.name, c.width, c.height, np.asarray(c.params))
        for cid, c in rec.cameras.items()
    }
    images = {}
    for iid, im in rec.images.items():
        pose = im.cam_from_world() if callable(im.cam_from_world) else im.cam_from_world
        # pycolmap is unresolved for the checker, which narrows the non-callable branch to object
        M = np.asarray(pose.matrix())  # pyright: ignore[reportAttributeAccessIssue]
        images[iid] = ColmapImage(iid, rotmat_to_quat(M[:3, :3]), M[:3, 3], im.camera_id, im.name)
    pts = list(rec.points3D.values())
    xyz = np.array([p.xyz for p in pts], dtype=np.float64).reshape(-1, 3)
    rgb = np.array([p.color for p in pts], dtype=np.uint8).reshape(-1, 3)
    return ColmapModel(cams, images, xyz, rgb)


def read_colmap_model(model_dir: str | Path) -> ColmapModel:
    """Read a text model; a binary one goes through pycolmap (clear error if missing)."""
    d = Path(model_dir)
    if (d / "cameras.txt").is_file():
        pts_file = d / "points3D.txt"
        xyz, rgb = (
            read_points3d_text(pts_file)
            if pts_file.is_file()
            else (np.zeros((0, 3)), np.zeros((0, 3), np.uint8))
        )
        return ColmapModel(
            read_cameras_text(d / "cameras.txt"), read_images_text(d / "images.txt"), xyz, rgb
        )
    if (d / "cameras.bin").is_file():
        return _read_binary_with_pycolmap(d)
    raise FileNotFoundError(f"{d}: no COLMAP model (cameras.txt or cameras.bin)")


def find_model_dir(root: Path) -> Path | None:
    for d in (root, root / "sparse" / "0", root / "sparse", root / "colmap" / "sparse" / "0"):
        if (d / "cameras.txt").is_file() or (d / "cameras.bin").is_file():
            return d
    return None


def _model_root(path: Path, model_dir: Path) -> Path:
    """The capture folder: ROOT for ROOT/sparse/0, ROOT/sparse or ROOT itself."""
    if model_dir != path:
        return path
    return path.parent.parent if path.parent.name == "sparse" else path.parent


def _frames(model: ColmapModel, images_dir: Path, masks_dir: Path | None) -> list[Frame]:
    """One frame per registered image, ordered by image name."""
    ims = sorted(model.images.values(), key=lambda im: im.name)
    missing = [im.name for im in ims if not (images_dir / im.name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{images_dir}: {len(missing)} registered images missing, e.g. {missing[0]}"
        )
    frames = []
    for im in ims:
        cam = model.cameras[im.camera_id]
        frames.append(
            Frame(
                name=im.name,
                image_path=images_dir / im.name,
                viewmat=im.viewmat(),
                K=cam.K(),
                K_size=(cam.width, cam.height),
                mask_path=find_mask(masks_dir, im.name),
            )
        )
    return frames


def _photos_folder(root: Path) -> Path:
    """ROOT/images, or ROOT itself when the photos sit beside `sparse/` (what
    `splatcourse capture PHOTOS_DIR` makes of a plain folder of photos)."""
    return root / "images" if (root / "images").is_dir() else root


def load_colmap(
    path: str | Path,
    images_dir: str | Path | None = None,
    width: int | None = None,
    background: tuple[float, float, float] = (0.0, 0.0, 0.0),
    name: str | None = None,
    attribution: str = "",
) -> Capture:
    """Load a COLMAP reconstruction. The photos are in `images/` (or beside `sparse/` when
    there is no `images/`); masks are used when `masks/` sits next to `images/` (or the photos);
    mask names and photos of different sizes follow `splatcourse.capture.frames`.
    Images are ordered by name."""
    path = Path(path)
    model_dir = find_model_dir(path)
    if model_dir is None:
        raise FileNotFoundError(
            f"{path}: no COLMAP model (looked for cameras.txt/.bin in "
            f"{path}, {path}/sparse/0 and {path}/sparse)"
        )
    root = _model_root(path, model_dir)
    images_dir = Path(images_dir) if images_dir is not None else _photos_folder(root)
    if not images_dir.is_dir():
        raise FileNotFoundError(f"images folder not found: {images_dir} (pass images_dir=...)")
    model = read_colmap_model(model_dir)
    if not model.images:
        raise ValueError(f"{model_dir}: the model has no registered images")
    notes = []
    if any(model.cameras[im.camera_id].has_distortion for im in model.images.values()):
        notes.append("COLMAP lens distortion ignored (pinhole model); undistort first for accuracy")
    return assemble(
        _frames(
            model, images_dir, masks_folder_in(root if images_dir == root else images_dir.parent)
        ),
        name=name or root.name,
        source=str(model_dir),
        width=width,
        background=background,
        points=model.points,
        point_colors=model.colors / 255.0,
        attribution=attribution,
        notes=notes,
    )


def _f(x: float) -> str:
    return repr(float(x))  # shortest text that reads back to the same double


def write_colmap_text(capture: Capture, root: str | Path) -> Path:
    """Export a capture as a COLMAP text model (`ROOT/sparse/0`) with PNGs in `ROOT/images`,
    e.g. to run another splatting tool on the synthetic capture. One PINHOLE camera per view."""
    from PIL import Image

    root = Path(root)
    model_dir = root / "sparse" / "0"
    model_dir.mkdir(parents=True, exist_ok=True)
    (root / "images").mkdir(exist_ok=True)
    cam_lines = ["# CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]"]
    img_lines = [
        "# IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME",
        "# POINTS2D[] as (X, Y, POINT3D_ID)",
    ]
    for i, name in enumerate(capture.image_names):
        K = capture.Ks[i].double().numpy()
        cam_lines.append(
            f"{i + 1} PINHOLE {capture.width} {capture.height} "
            f"{_f(K[0, 0])} {_f(K[1, 1])} {_f(K[0, 2])} {_f(K[1, 2])}"
        )
        V = capture.viewmats[i].double().numpy()
        q, t = rotmat_to_quat(V[:3, :3]), V[:3, 3]
        fname = Path(name).stem + ".png"
        img_lines.append(f"{i + 1} {' '.join(map(_f, q))} {' '.join(map(_f, t))} {i + 1} {fname}")
        img_lines.append("")
        img = (capture.images[i].clamp(0, 1).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(img).save(root / "images" / fname)
        if capture.masks is not None:
            (root / "masks").mkdir(exist_ok=True)
            Image.fromarray(capture.masks[i].numpy().astype(np.uint8) * 255).save(
                root / "masks" / fname
            )
    pts_lines = ["# POINT3D_ID X Y Z R G B ERROR TRACK[]"]
    cols = np.clip(np.round(capture.point_colors.double().numpy() * 255), 0, 255).astype(int)
    for k, (p, c) in enumerate(zip(capture.points.double().numpy(), cols)):
        pts_lines.append(f"{k + 1} {' '.join(map(_f, p))} {c[0]} {c[1]} {c[2]} 0")
    (model_dir / "cameras.txt").write_text("\n".join(cam_lines) + "\n")
    (model_dir / "images.txt").write_text("\n".join(img_lines) + "\n")
    (model_dir / "points3D.txt").write_text("\n".join(pts_lines) + "\n")
    return model_dir
